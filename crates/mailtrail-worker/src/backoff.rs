//! Waiting out a failing dependency: exponential, jittered backoff that logs once per outage.

use std::time::{Duration, Instant};

use crate::heartbeat::Progress;
use crate::shutdown::Shutdown;

/// Backoff bounds for retrying Postgres or Redis.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// The longest sleep between two attempts (the lease heartbeat's stall limit allows for it).
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Exponential, jittered backoff that logs once per outage, not once per attempt.
pub(crate) struct Backoff {
    what: &'static str,
    delay: Duration,
    failing_since: Option<Instant>,
    /// Told after every sleep: waiting out an outage is progress, not a stuck loop.
    progress: Option<Progress>,
}

impl Backoff {
    /// A backoff for the dependency named `what` (it names the outage in the logs).
    pub(crate) fn new(what: &'static str) -> Self {
        Self {
            what,
            delay: BACKOFF_MIN,
            failing_since: None,
            progress: None,
        }
    }

    /// Reports progress to the lease heartbeat after every sleep.
    pub(crate) fn reporting_to(mut self, progress: &Progress) -> Self {
        self.progress = Some(progress.clone());
        self
    }

    /// Records a failure and sleeps; false if the stop was requested meanwhile.
    pub(crate) async fn failed(
        &mut self,
        error: &(dyn std::fmt::Display + Sync),
        shutdown: &mut Shutdown,
    ) -> bool {
        if self.failing_since.is_none() {
            self.failing_since = Some(Instant::now());
            tracing::warn!(dependency = self.what, %error, "dependency failing; retrying with backoff");
        }
        // Full jitter from the clock's sub-second noise: good enough to spread workers apart.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|elapsed| elapsed.subsec_nanos())
            .unwrap_or(0);
        let sleep = self.delay.mul_f64(0.5 + f64::from(nanos % 1000) / 2000.0);
        self.delay = (self.delay * 2).min(BACKOFF_MAX);
        let go_on = tokio::select! {
            () = tokio::time::sleep(sleep) => !shutdown.is_requested(),
            () = shutdown.requested() => false,
        };
        if let Some(progress) = &self.progress {
            progress.report();
        }
        go_on
    }

    /// Records a success: logs the end of an outage and resets the delay.
    pub(crate) fn recovered(&mut self) {
        if let Some(since) = self.failing_since.take() {
            tracing::info!(
                dependency = self.what,
                outage_ms = since.elapsed().as_millis() as u64,
                "dependency recovered"
            );
        }
        self.delay = BACKOFF_MIN;
    }
}

/// Runs a Redis step until it succeeds, or returns `None` once the stop is requested.
pub(crate) async fn with_redis_retry<T, F, Fut>(
    shutdown: &mut Shutdown,
    what: &'static str,
    step: F,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, mailtrail_queue::QueueError>>,
{
    retry_redis(Backoff::new(what), shutdown, step).await
}

/// [`with_redis_retry`] for the loop, reporting its progress to the lease heartbeat.
pub(crate) async fn with_redis_retry_reporting<T, F, Fut>(
    shutdown: &mut Shutdown,
    what: &'static str,
    progress: &Progress,
    step: F,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, mailtrail_queue::QueueError>>,
{
    retry_redis(Backoff::new(what).reporting_to(progress), shutdown, step).await
}

async fn retry_redis<T, F, Fut>(
    mut backoff: Backoff,
    shutdown: &mut Shutdown,
    mut step: F,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, mailtrail_queue::QueueError>>,
{
    loop {
        match step().await {
            Ok(value) => {
                backoff.recovered();
                return Some(value);
            }
            Err(error) => {
                if !backoff.failed(&error, shutdown).await {
                    return None;
                }
            }
        }
    }
}
