//! Every Redis key mailtrail uses, in one place.
//!
//! | key | type | meaning |
//! |---|---|---|
//! | `{prefix}events` | list | backlog: the receiver LPUSHes envelopes, workers take from the right |
//! | `{prefix}processing:{worker}` | list | envelopes a worker has claimed and not yet acknowledged |
//! | `{prefix}workers` | set | worker ids that may own a processing list |
//! | `{prefix}worker:{worker}` | string, TTL | heartbeat lease `{renewed_ms}:{instance}`; gone means the worker is dead |
//! | `{prefix}dead` | list | dead letters: JSON `{reason, dead_at_ms, worker, envelope}` |
//! | `{prefix}token:{token}` | string, TTL | signature tokens already accepted (replay protection) |
//! | `{prefix}skipped` | hash | reason → count of events skipped for lack of custom variables |
//! | `{prefix}recovered` | hash | SHA-1 of an envelope → `{count}:{first_ms}`: times it was recovered from a dead worker since `first_ms` |
//! | `{prefix}reaped:{worker}` | hash, TTL | the recovery counts the last reap of `worker` added (SHA-1 → count), taken back if that worker turns out to be alive |
//! | `{prefix}settled:{batch}` | string, TTL | a claimed batch whose settle took effect; a repeated settle of it does nothing |
//! | `{prefix}reconcile:{domain}` | string | microseconds since the epoch up to which `mailtrail reconcile` has queued `domain`'s events; set in the same transaction as the push of the events it covers |
//!
//! Invariants: an envelope is, at every instant, in exactly one of `events`, some
//! `processing:{worker}` or `dead` (briefly in two while a script moves it, never in none), and a
//! token key exists only if its envelope was pushed in the same atomic step. A settle takes
//! effect at most once per claimed batch (its `settled:{batch}` marker is set in the same step),
//! and only while its worker's process holds the lease, so no settle reaches a processing list
//! that a reaper has emptied meanwhile.
//!
//! Every key a script touches is one of the script's `KEYS`, never built inside the script, so
//! the scripts stay valid on Redis Cluster once the keys share a hash tag. That is why the
//! recovery counters are fields of one hash rather than one key per envelope: a field has no TTL
//! of its own, so its value carries the start of its window, the requeue script ignores (and
//! restarts) a counter whose window is over, and the reaper prunes such fields a bounded number
//! at a time.

/// The key names under one prefix (default `mailtrail:`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueKeys {
    prefix: String,
}

impl QueueKeys {
    /// Keys under `prefix`, used verbatim (include the trailing `:`).
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The backlog list.
    pub fn events(&self) -> String {
        format!("{}events", self.prefix)
    }

    /// A worker's in-flight list.
    pub fn processing(&self, worker: &str) -> String {
        format!("{}processing:{worker}", self.prefix)
    }

    /// The set of registered workers.
    pub fn workers(&self) -> String {
        format!("{}workers", self.prefix)
    }

    /// A worker's heartbeat lease.
    pub fn lease(&self, worker: &str) -> String {
        format!("{}worker:{worker}", self.prefix)
    }

    /// The dead-letter list.
    pub fn dead(&self) -> String {
        format!("{}dead", self.prefix)
    }

    /// The marker of an accepted signature token.
    pub fn token(&self, token: &str) -> String {
        format!("{}token:{token}", self.prefix)
    }

    /// The hash of per-envelope recovery counters (field: SHA-1 of the envelope).
    pub fn recovered(&self) -> String {
        format!("{}recovered", self.prefix)
    }

    /// The hash of skipped-event counts by reason.
    pub fn skipped(&self) -> String {
        format!("{}skipped", self.prefix)
    }

    /// What the last reap of `worker` added to the recovery counters.
    pub fn reaped(&self, worker: &str) -> String {
        format!("{}reaped:{worker}", self.prefix)
    }

    /// The marker of a settled batch.
    pub fn settled(&self, batch: &str) -> String {
        format!("{}settled:{batch}", self.prefix)
    }

    /// How far reconciliation with Mailgun's Events API got for `domain`.
    pub fn reconcile_checkpoint(&self, domain: &str) -> String {
        format!("{}reconcile:{domain}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_documented_names() {
        let keys = QueueKeys::new("mailtrail:");
        assert_eq!(keys.events(), "mailtrail:events");
        assert_eq!(keys.processing("w1"), "mailtrail:processing:w1");
        assert_eq!(keys.workers(), "mailtrail:workers");
        assert_eq!(keys.lease("w1"), "mailtrail:worker:w1");
        assert_eq!(keys.dead(), "mailtrail:dead");
        assert_eq!(keys.token("abc"), "mailtrail:token:abc");
        assert_eq!(keys.skipped(), "mailtrail:skipped");
        assert_eq!(keys.recovered(), "mailtrail:recovered");
        assert_eq!(keys.reaped("w1"), "mailtrail:reaped:w1");
        assert_eq!(keys.settled("b7"), "mailtrail:settled:b7");
        assert_eq!(
            keys.reconcile_checkpoint("mg.example.com"),
            "mailtrail:reconcile:mg.example.com"
        );
    }
}
