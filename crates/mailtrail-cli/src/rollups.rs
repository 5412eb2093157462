//! `mailtrail rollups rebuild | verify`: the statistics counters' repair and proof.
//!
//! `rebuild` recomputes the counters from `sent_emails` (writers wait meanwhile); `verify`
//! compares every counter with a `GROUP BY` over `sent_emails` and exits non-zero, listing the
//! buckets, when they differ. The counters are kept exact by triggers, so a difference means
//! someone changed the tables by hand or a bug: `verify` is the alarm, `rebuild` the repair.

use std::io::Write;

use anyhow::Context;
use clap::Subcommand;

use crate::CliConfig;

/// Most differing buckets listed by `verify`.
const MAX_LISTED: usize = 20;

/// `mailtrail rollups ...`.
#[derive(Subcommand, Clone, Debug)]
pub enum RollupsCommand {
    /// Recompute the statistics counters from sent_emails (writers wait until it is done).
    Rebuild,
    /// Compare the counters with sent_emails; exits non-zero on any difference.
    Verify,
}

/// Runs `mailtrail rollups ...`.
pub async fn run(
    config: &CliConfig,
    command: &RollupsCommand,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let mut connection = crate::connect_store(config, "rollups").await?;
    match command {
        RollupsCommand::Rebuild => {
            mailtrail_store::rollups::rebuild(&mut connection)
                .await
                .context("cannot rebuild the counters")?;
            writeln!(
                out,
                "rollups: rebuilt from sent_emails (and the conversion counters from conversions)"
            )?;
        }
        RollupsCommand::Verify => {
            let differences = mailtrail_store::rollups::verify(&mut connection)
                .await
                .context("cannot compare the counters with sent_emails")?;
            let conversions =
                mailtrail_store::conversion_stats::verify_conversion_rollups(&mut connection)
                    .await
                    .context("cannot compare the conversion counters with conversions")?;
            if differences.is_empty() && conversions.is_empty() {
                writeln!(
                    out,
                    "rollups: every counter matches sent_emails, every conversion counter conversions"
                )?;
                return Ok(());
            }
            for difference in conversions.iter().take(MAX_LISTED) {
                writeln!(
                    out,
                    "conversions project/day/subject/credit {difference} (conversions/value)"
                )?;
            }
            for difference in differences.iter().take(MAX_LISTED) {
                writeln!(
                    out,
                    "{} project={} day={} subject={} status={}: expected {} found {}",
                    difference.table,
                    difference
                        .project_id
                        .map_or_else(|| "-".to_owned(), |id| id.to_string()),
                    difference.day,
                    difference.subject.as_deref().unwrap_or("(none)"),
                    difference.status,
                    difference.expected,
                    difference.actual,
                )?;
            }
            out.flush()?;
            anyhow::bail!(
                "{} counter bucket(s) differ from sent_emails and {} from conversions (figures: messages/opened/clicked/\
                 human opens/bot opens/human clicks/bot clicks); `mailtrail rollups rebuild` \
                 recomputes them",
                differences.len(),
                conversions.len()
            );
        }
    }
    Ok(())
}
