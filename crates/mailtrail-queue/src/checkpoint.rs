//! Reconciliation's checkpoint: how far `mailtrail reconcile` has queued a domain's events from
//! Mailgun's Events API, so a run without a range continues where the last one stopped.
//!
//! It lives in Redis beside the backlog, not in Postgres, because it must only ever say "queued"
//! about events that are: [`Queue::push_envelopes_with_checkpoint`] pushes a page's envelopes
//! and moves the checkpoint in one `MULTI`/`EXEC` transaction, so a crash, a lost connection or
//! a full disk leaves both or neither. (In Postgres the two writes would be in two systems, and
//! one could happen without the other.) Both keys share the queue's prefix, so they share its
//! hash tag on a Redis Cluster. Losing the checkpoint costs only a longer re-read next time:
//! the worker counts events seen twice once.

use redis::AsyncCommands;

use crate::Queue;
use crate::error::QueueError;

impl Queue {
    /// The checkpoint of `domain` in microseconds since the epoch, if a run has set one.
    pub async fn reconcile_checkpoint(&self, domain: &str) -> Result<Option<i64>, QueueError> {
        let value: Option<i64> = self
            .connection()
            .get(self.keys().reconcile_checkpoint(domain))
            .await?;
        Ok(value)
    }

    /// Pushes `envelopes` (in order: the first given is taken first) and, when `checkpoint` is
    /// given, sets `domain`'s checkpoint to it, in one transaction.
    pub async fn push_envelopes_with_checkpoint(
        &self,
        envelopes: &[String],
        domain: &str,
        checkpoint: Option<i64>,
    ) -> Result<(), QueueError> {
        let mut transaction = redis::pipe();
        transaction.atomic();
        if !envelopes.is_empty() {
            transaction.lpush(self.keys().events(), envelopes).ignore();
        }
        if let Some(micros) = checkpoint {
            transaction
                .set(self.keys().reconcile_checkpoint(domain), micros)
                .ignore();
        }
        let () = transaction.query_async(&mut self.connection()).await?;
        Ok(())
    }
}
