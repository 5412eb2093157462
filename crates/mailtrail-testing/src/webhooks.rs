//! What a test needs to sign a webhook the way Mailgun does: a token never used before and the
//! current time. The signing itself is `mailtrail_core::sample`'s.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use mailtrail_core::sample::token_from_seed;

/// The signing key a [`crate::TestApp`]'s receiver accepts unless the test names others.
pub const TEST_SIGNING_KEY: &str = "mailtrail-test-signing-key";

/// A token no other webhook signed in this process has used, so the receiver's single-use check
/// never takes a test's post for a replay.
pub fn fresh_token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    token_from_seed(&format!(
        "{}-{:?}-{}",
        std::process::id(),
        Instant::now(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Now, in whole seconds since the epoch: the timestamp a webhook signed now carries.
pub fn now_seconds() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs() as i64)
        .unwrap_or(0)
}
