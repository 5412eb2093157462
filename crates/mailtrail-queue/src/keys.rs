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
//! | `{prefix}recovered:{sha1}` | string, TTL 72 h | times an envelope was recovered from a dead worker |
//!
//! Invariants: an envelope is, at every instant, in exactly one of `events`, some
//! `processing:{worker}` or `dead` (briefly in two while a script moves it, never in none), and a
//! token key exists only if its envelope was pushed in the same atomic step.

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

    /// The prefix of per-envelope recovery counters (`{prefix}recovered:{sha1 of envelope}`).
    pub fn recovered_prefix(&self) -> String {
        format!("{}recovered:", self.prefix)
    }

    /// The hash of skipped-event counts by reason.
    pub fn skipped(&self) -> String {
        format!("{}skipped", self.prefix)
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
    }
}
