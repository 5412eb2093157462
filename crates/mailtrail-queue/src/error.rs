//! Queue errors.

/// Anything that went wrong talking to the queue.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Redis refused, timed out or is unreachable.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// A dead letter or envelope is not the JSON we wrote.
    #[error("queue entry is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
}
