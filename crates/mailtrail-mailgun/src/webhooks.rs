//! A domain's webhooks (`/v3/domains/{domain}/webhooks`): list them, and plan and apply the
//! registration of one receiver URL for every event type, idempotently.
//!
//! [`plan_install`] is pure: given what is registered, it says what to do per event type, so
//! running the install twice changes nothing the second time, and a type already pointing
//! somewhere else is reported and left alone unless the operator asks to replace it.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::client::{MailgunClient, Method};
use crate::error::MailgunError;
use crate::events::check_domain;

/// Every webhook name Mailgun offers (`permanent_fail` and `temporary_fail` both deliver
/// `failed` events; note `unsubscribed`, not `unsubscribe`).
pub const WEBHOOK_NAMES: [&str; 8] = [
    "accepted",
    "delivered",
    "permanent_fail",
    "temporary_fail",
    "opened",
    "clicked",
    "unsubscribed",
    "complained",
];

/// The URLs registered per webhook name (names without a URL are absent).
pub type RegisteredWebhooks = BTreeMap<String, Vec<String>>;

/// What to do for one webhook name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebhookAction {
    /// Nothing is registered: register the URL.
    Create,
    /// The URL is registered already: leave it alone.
    Unchanged,
    /// Other URLs are registered and the operator did not ask to replace them: report them.
    PointsElsewhere(Vec<String>),
    /// Other URLs are registered: replace them with the URL, as asked.
    Replace(Vec<String>),
}

/// The action for each of [`WEBHOOK_NAMES`], in that order.
pub fn plan_install(
    registered: &RegisteredWebhooks,
    url: &str,
    replace: bool,
) -> Vec<(&'static str, WebhookAction)> {
    WEBHOOK_NAMES
        .iter()
        .map(|name| {
            let urls = registered.get(*name).cloned().unwrap_or_default();
            let action = if urls.is_empty() {
                WebhookAction::Create
            } else if urls.iter().any(|registered| registered == url) {
                WebhookAction::Unchanged
            } else if replace {
                WebhookAction::Replace(urls)
            } else {
                WebhookAction::PointsElsewhere(urls)
            };
            (*name, action)
        })
        .collect()
}

#[derive(Deserialize)]
struct ListBody {
    #[serde(default)]
    webhooks: BTreeMap<String, Registration>,
}

/// `{"urls": [...]}` now, `{"url": "..."}` in older answers.
#[derive(Deserialize)]
struct Registration {
    #[serde(default)]
    urls: Vec<String>,
    #[serde(default)]
    url: Option<String>,
}

impl MailgunClient {
    /// The webhooks registered for `domain`.
    pub fn webhooks(&self, domain: &str) -> Result<RegisteredWebhooks, MailgunError> {
        check_domain(domain)?;
        let what = format!("list the webhooks of {domain}");
        let url = format!("{}/v3/domains/{domain}/webhooks", self.base());
        let body = self.call(Method::Get, &url, None, &what, domain)?;
        let list: ListBody =
            serde_json::from_str(&body).map_err(|error| MailgunError::InvalidResponse {
                what,
                reason: error.to_string(),
            })?;
        Ok(list
            .webhooks
            .into_iter()
            .map(|(name, registration)| {
                let mut urls = registration.urls;
                urls.extend(registration.url);
                urls.dedup();
                (name, urls)
            })
            .filter(|(_, urls)| !urls.is_empty())
            .collect())
    }

    /// Registers `url` as the only URL of webhook `name` of `domain` (none registered yet).
    pub fn create_webhook(&self, domain: &str, name: &str, url: &str) -> Result<(), MailgunError> {
        check_domain(domain)?;
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("id", name)
            .append_pair("url", url)
            .finish();
        let endpoint = format!("{}/v3/domains/{domain}/webhooks", self.base());
        let what = format!("create the {name} webhook of {domain}");
        self.call(Method::Post, &endpoint, Some(&form), &what, domain)
            .map(drop)
    }

    /// Makes `url` the only URL of webhook `name` of `domain` (registered already).
    pub fn replace_webhook(&self, domain: &str, name: &str, url: &str) -> Result<(), MailgunError> {
        check_domain(domain)?;
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("url", url)
            .finish();
        let endpoint = format!("{}/v3/domains/{domain}/webhooks/{name}", self.base());
        let what = format!("update the {name} webhook of {domain}");
        self.call(Method::Put, &endpoint, Some(&form), &what, domain)
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OURS: &str = "https://hooks.example.com/webhooks/mailgun";

    #[test]
    fn a_second_install_changes_nothing_and_other_urls_are_only_reported() {
        let mut registered = RegisteredWebhooks::new();
        registered.insert("delivered".into(), vec![OURS.into()]);
        registered.insert("opened".into(), vec!["https://old.example/hook".into()]);
        let plan = plan_install(&registered, OURS, false);
        assert_eq!(plan.len(), 8);
        assert_eq!(plan[0], ("accepted", WebhookAction::Create));
        assert_eq!(plan[1], ("delivered", WebhookAction::Unchanged));
        assert_eq!(
            plan[4],
            (
                "opened",
                WebhookAction::PointsElsewhere(vec!["https://old.example/hook".into()])
            )
        );
        let replaced = plan_install(&registered, OURS, true);
        assert_eq!(
            replaced[4],
            (
                "opened",
                WebhookAction::Replace(vec!["https://old.example/hook".into()])
            )
        );
        assert_eq!(replaced[1], ("delivered", WebhookAction::Unchanged));
    }

    #[test]
    fn both_shapes_of_the_list_are_read() {
        let list: ListBody = serde_json::from_str(
            r#"{"webhooks": {"clicked": {"urls": ["a", "b"]}, "opened": {"url": "c"}, "delivered": {"urls": []}}}"#,
        )
        .unwrap();
        let urls: Vec<_> = list
            .webhooks
            .into_iter()
            .map(|(name, r)| (name, r.urls.len() + usize::from(r.url.is_some())))
            .collect();
        assert_eq!(
            urls,
            [
                ("clicked".into(), 2),
                ("delivered".into(), 0),
                ("opened".into(), 1)
            ]
        );
    }
}
