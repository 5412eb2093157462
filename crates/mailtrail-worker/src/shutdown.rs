//! Telling the worker to stop, and the worker noticing.
//!
//! One [`StopHandle`] (held by `main`'s signal task, or by a test) and any number of [`Shutdown`]
//! listeners, cloned into each part of the worker that may wait: a claim, a backoff sleep, a
//! wait for a dead predecessor's lease. A stop is never an error: each part finishes or leaves
//! its batch where a restart finds it, and returns.

use tokio::sync::watch;

/// Creates a stop handle and the listener it controls.
pub fn channel() -> (StopHandle, Shutdown) {
    let (sender, receiver) = watch::channel(false);
    (StopHandle { sender }, Shutdown { receiver })
}

/// Requests the stop. Dropping it requests the stop too: with nobody left to ask, the worker
/// would otherwise run unstoppable.
#[derive(Debug)]
pub struct StopHandle {
    sender: watch::Sender<bool>,
}

impl StopHandle {
    /// Asks every listener to stop.
    pub fn stop(&self) {
        self.sender.send_replace(true);
    }
}

/// Listens for the stop. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Shutdown {
    receiver: watch::Receiver<bool>,
}

impl Shutdown {
    /// True once the stop was requested.
    pub fn is_requested(&self) -> bool {
        *self.receiver.borrow() || self.receiver.has_changed().is_err()
    }

    /// Resolves when the stop is requested (at once if it already was).
    pub async fn requested(&mut self) {
        // `wait_for` returns an error only when the handle is gone, which is a stop as well.
        let _ = self.receiver.wait_for(|stop| *stop).await;
    }
}

/// A listener that fires when either `a` or `b` does: the worker loop's waits end on the stop
/// request and on the loss of the lease alike.
pub(crate) fn either(mut a: Shutdown, mut b: Shutdown) -> Shutdown {
    let (stop, either) = channel();
    tokio::spawn(async move {
        tokio::select! {
            () = a.requested() => {}
            () = b.requested() => {}
        }
        stop.stop();
    });
    either
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_stop_reaches_every_listener_and_a_dropped_handle_is_a_stop() {
        let (stop, mut shutdown) = channel();
        let mut other = shutdown.clone();
        assert!(!shutdown.is_requested());
        let waiting = tokio::spawn(async move { other.requested().await });
        stop.stop();
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("the listener woke up")
            .expect("the listener did not panic");
        assert!(shutdown.is_requested());
        shutdown.requested().await;

        let (stop, mut shutdown) = channel();
        drop(stop);
        assert!(shutdown.is_requested());
        shutdown.requested().await;
    }

    #[tokio::test]
    async fn either_fires_when_one_of_the_two_does() {
        let (first, a) = channel();
        let (_second, b) = channel();
        let mut both = either(a, b);
        assert!(!both.is_requested());
        first.stop();
        tokio::time::timeout(Duration::from_secs(5), both.requested())
            .await
            .expect("the combined listener woke up");
    }
}
