//! Keeping `email_events`' monthly partitions ahead of the data, from the worker.
//!
//! At start and then hourly, a task of its own (with its own Postgres connection, so it never
//! delays a batch) ensures this month's partition and the next
//! [`DEFAULT_MONTHS_AHEAD`](mailtrail_store::partitions::DEFAULT_MONTHS_AHEAD)
//! ([`mailtrail_store::partitions::ensure_partitions_ahead`]). It never moves rows out of the
//! default partition: a query planned just before such a move commits could miss them (the
//! operator's `mailtrail partitions ensure` does it). Nothing depends on it for correctness:
//! a row whose month has no partition lands in the default partition, so a batch never fails for
//! want of one. Every worker runs it; an advisory lock makes them take turns, and a partition
//! that exists is left alone. A failure (Postgres down, a lock not granted within the timeout) is
//! logged and tried again at the next round.

use std::time::Duration;

use mailtrail_store::partitions::ensure_partitions_ahead;
use secrecy::{ExposeSecret, SecretString};
use tokio::task::JoinHandle;

use crate::shutdown::Shutdown;

/// How often the partitions are ensured: months are long, an hour is plenty of margin.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(3600);

/// The running upkeep task; stopped when dropped (with its worker).
pub(crate) struct PartitionUpkeep {
    task: JoinHandle<()>,
}

impl PartitionUpkeep {
    /// Starts the task: a first round at once, then one every [`UPKEEP_INTERVAL`].
    pub(crate) fn spawn(
        database_url: SecretString,
        statement_timeout: Duration,
        mut shutdown: Shutdown,
    ) -> Self {
        let task = tokio::spawn(async move {
            loop {
                ensure_once(&database_url, statement_timeout).await;
                tokio::select! {
                    () = tokio::time::sleep(UPKEEP_INTERVAL) => {}
                    () = shutdown.requested() => return,
                }
            }
        });
        Self { task }
    }
}

impl Drop for PartitionUpkeep {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One round; failures are logged, not returned: the next round tries again.
async fn ensure_once(database_url: &SecretString, statement_timeout: Duration) {
    let result = async {
        let mut connection =
            mailtrail_store::connect(database_url.expose_secret(), statement_timeout).await?;
        ensure_partitions_ahead(&mut connection).await
    }
    .await;
    match result {
        Ok(ensured) => {
            let created = ensured.iter().filter(|p| p.created).count();
            tracing::debug!(
                months = ensured.len(),
                created,
                "email_events partitions ensured"
            );
        }
        Err(error) => tracing::warn!(
            %error,
            "cannot ensure the email_events partitions; rows go to the default partition meanwhile, retrying in an hour"
        ),
    }
}
