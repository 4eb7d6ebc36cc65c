//! Waiting in tests: look at a condition again and again until it holds or a deadline
//! passes, then fail naming what was awaited. The one way tests wait for something they
//! cannot be told about directly (never a blind sleep).
#![allow(dead_code)]

use std::future::Future;
use std::time::{Duration, Instant};

/// Pause between two looks at a condition: short against the waits (seconds), long enough
/// not to keep a core busy.
pub const POLL: Duration = Duration::from_millis(10);

/// Poll `check` until it returns `Some`, or panic after `limit` naming `what`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// [`eventually`] for a condition that needs no `await`.
pub async fn until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    eventually(limit, what, || std::future::ready(cond().then_some(()))).await
}

/// [`eventually`] for a thread outside any async runtime.
pub fn blocking<T>(limit: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(POLL);
    }
}
