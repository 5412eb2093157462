//! `mailtrail mailgun webhooks install --domain D --url URL [--replace]` and
//! `mailtrail mailgun webhooks list [--domain D]`: the receiver registered with Mailgun for every
//! event type in one command.
//!
//! Install is idempotent: an event type already sending to the URL is left alone, a missing one is
//! created, and one that sends somewhere else is reported and left as it is, unless `--replace`
//! says to point it at the URL (the decision is `mailtrail_mailgun::plan_install`). Reported
//! conflicts make the command fail, so a script notices the setup is not complete.

use std::io::Write;

use anyhow::Context;
use clap::{Args, Subcommand};
use mailtrail_mailgun::{
    MailgunClient, MailgunError, RetryPolicy, WEBHOOK_NAMES, WebhookAction, plan_install,
};

use crate::config::CliConfig;

/// `mailtrail mailgun ...`.
#[derive(Subcommand, Clone, Debug)]
pub enum MailgunCommand {
    /// The domain's webhooks.
    Webhooks {
        /// What to do.
        #[command(subcommand)]
        command: WebhooksCommand,
    },
}

/// `mailtrail mailgun webhooks ...`.
#[derive(Subcommand, Clone, Debug)]
pub enum WebhooksCommand {
    /// Register the receiver's URL for every event type Mailgun offers.
    Install(InstallArgs),
    /// Show the URLs registered for each event type.
    List(ListArgs),
}

/// `mailtrail mailgun webhooks install`.
#[derive(Args, Clone, Debug)]
pub struct InstallArgs {
    /// The sending domain (default: MAILGUN_DOMAIN).
    #[arg(long)]
    pub domain: Option<String>,
    /// The receiver's public URL, e.g. https://hooks.example.com/webhooks/mailgun.
    #[arg(long)]
    pub url: String,
    /// Point event types that send elsewhere at this URL instead (their URLs are replaced).
    #[arg(long)]
    pub replace: bool,
}

/// `mailtrail mailgun webhooks list`.
#[derive(Args, Clone, Debug)]
pub struct ListArgs {
    /// The sending domain (default: MAILGUN_DOMAIN).
    #[arg(long)]
    pub domain: Option<String>,
}

/// Runs `mailtrail mailgun ...`.
pub async fn run(
    config: &CliConfig,
    command: &MailgunCommand,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let MailgunCommand::Webhooks { command } = command;
    let (domain, name) = match command {
        WebhooksCommand::Install(args) => (args.domain.as_deref(), "mailgun webhooks install"),
        WebhooksCommand::List(args) => (args.domain.as_deref(), "mailgun webhooks list"),
    };
    let domain = config.mailgun_domain(domain)?;
    let client = MailgunClient::new(
        config.mailgun_api_base(),
        config.mailgun_api_key(name)?,
        RetryPolicy::default(),
    )?;
    let command = command.clone();
    // The client blocks; its lines are written once it is done.
    let lines = tokio::task::spawn_blocking(move || match &command {
        WebhooksCommand::Install(args) => install(&client, &domain, args),
        WebhooksCommand::List(_) => list(&client, &domain),
    })
    .await
    .context("the Mailgun call's thread failed")?;
    let (lines, outcome) = match lines {
        Ok(lines) => (lines, Ok(())),
        Err((lines, error)) => (lines, Err(error)),
    };
    for line in lines {
        writeln!(out, "{line}")?;
    }
    outcome
}

type Outcome = Result<Vec<String>, (Vec<String>, anyhow::Error)>;

fn list(client: &MailgunClient, domain: &str) -> Outcome {
    let registered = client
        .webhooks(domain)
        .map_err(|error| (Vec::new(), error.into()))?;
    let mut lines = Vec::new();
    for name in WEBHOOK_NAMES {
        let urls = registered.get(name).map(|urls| urls.join(" "));
        lines.push(format!(
            "{name:<15} {}",
            urls.unwrap_or_else(|| "(none)".to_owned())
        ));
    }
    for (name, urls) in registered
        .iter()
        .filter(|(name, _)| !WEBHOOK_NAMES.contains(&name.as_str()))
    {
        lines.push(format!("{name:<15} {}", urls.join(" ")));
    }
    Ok(lines)
}

fn install(client: &MailgunClient, domain: &str, args: &InstallArgs) -> Outcome {
    let url = args.url.trim();
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err((
            Vec::new(),
            anyhow::anyhow!("--url must be the receiver's public http(s) URL, not `{url}`"),
        ));
    }
    let registered = client
        .webhooks(domain)
        .map_err(|error| (Vec::new(), error.into()))?;
    let mut lines = Vec::new();
    let mut elsewhere = 0;
    for (name, action) in plan_install(&registered, url, args.replace) {
        let done: Result<String, MailgunError> = match &action {
            WebhookAction::Create => client
                .create_webhook(domain, name, url)
                .map(|()| format!("{name:<15} created    {url}")),
            WebhookAction::Unchanged => Ok(format!("{name:<15} unchanged  {url}")),
            WebhookAction::Replace(old) => client
                .replace_webhook(domain, name, url)
                .map(|()| format!("{name:<15} replaced   {url} (was {})", old.join(" "))),
            WebhookAction::PointsElsewhere(urls) => {
                elsewhere += 1;
                Ok(format!(
                    "{name:<15} elsewhere  {} (left as it is; --replace points it at {url})",
                    urls.join(" ")
                ))
            }
        };
        match done {
            Ok(line) => lines.push(line),
            Err(error) => return Err((lines, error.into())),
        }
    }
    if elsewhere > 0 {
        let error = anyhow::anyhow!(
            "{elsewhere} event types of {domain} send to another URL and were left as they are; \
             run again with --replace to point them at {url}"
        );
        return Err((lines, error));
    }
    Ok(lines)
}
