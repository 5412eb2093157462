//! The producer's side: putting envelopes on the backlog.
//!
//! The receiver pushes with [`Queue::push_webhook`], which marks the signature token and pushes
//! the envelope in one script (`PUSH`): a token is marked only if its
//! envelope is queued, so answering 200 to a token already seen never loses an event. Everyone
//! else (operators' replays, load generation, tests) pushes without a token.
//!
//! Envelopes go on the left (`LPUSH`) and workers take from the right, so each shard's backlog
//! is FIFO. On a sharded queue a webhook goes to the shard of its token (so the token's marker
//! and the push stay one script on one slot) and other pushes go to the shards in turn.

use std::sync::atomic::Ordering;
use std::time::Duration;

use redis::AsyncCommands;

use crate::error::QueueError;
use crate::keys::{QueueKeys, shard_of_token};
use crate::{Queue, scripts};

/// How a push ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PushOutcome {
    /// The envelope is on the backlog.
    Queued,
    /// The token was already used: a Mailgun retry or a replay; nothing was pushed.
    DuplicateToken,
    /// The backlog is at its cap; nothing was pushed.
    BacklogFull,
}

impl Queue {
    /// Marks `token` as used for `token_ttl` and pushes `envelope`, atomically; refuses when the
    /// backlog holds `backlog_cap` envelopes or more (0 means no cap).
    pub async fn push_webhook(
        &self,
        token: &str,
        token_ttl: Duration,
        envelope: &str,
        backlog_cap: u64,
    ) -> Result<PushOutcome, QueueError> {
        let keys = self.keys_for_token(token);
        let outcome: i64 = scripts::PUSH
            .key(keys.token(token))
            .key(keys.events())
            .arg(token_ttl.as_secs().max(1))
            .arg(envelope)
            .arg(backlog_cap)
            .invoke_async(&mut self.connection())
            .await?;
        Ok(match outcome {
            1 => PushOutcome::Queued,
            0 => PushOutcome::DuplicateToken,
            _ => PushOutcome::BacklogFull,
        })
    }

    /// Pushes an envelope without a token (operators' replays, benchmarks, tests).
    pub async fn push_envelope(&self, envelope: &str) -> Result<(), QueueError> {
        let _: i64 = self
            .connection()
            .lpush(self.next_push_keys().events(), envelope)
            .await?;
        Ok(())
    }

    /// Pushes envelopes without tokens in one `LPUSH`, in order (the first given is taken
    /// first). For filling the backlog in bulk; keep each call to a few thousand envelopes so one
    /// command does not hold Redis up.
    pub async fn push_envelopes(&self, envelopes: &[String]) -> Result<(), QueueError> {
        if envelopes.is_empty() {
            return Ok(());
        }
        let _: i64 = self
            .connection()
            .lpush(self.next_push_keys().events(), envelopes)
            .await?;
        Ok(())
    }

    /// The keys of the shard a webhook signed with `token` goes to.
    pub(crate) fn keys_for_token(&self, token: &str) -> &QueueKeys {
        let count = self.shard_count();
        if count == 1 {
            return self.keys();
        }
        let index = shard_of_token(token, u16::try_from(count).unwrap_or(u16::MAX));
        self.shard_keys(index as usize)
    }

    /// The keys of the shard whose turn it is to take a push without a token.
    fn next_push_keys(&self) -> &QueueKeys {
        let count = self.shard_count();
        if count == 1 {
            return self.keys();
        }
        self.shard_keys(self.push_turn.fetch_add(1, Ordering::Relaxed) % count)
    }
}
