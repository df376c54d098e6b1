//! Waiting for something without sleeping a fixed time: poll a condition until it holds or a deadline
//! passes, then fail the test with what was awaited. The one polling loop of the test suite; a test
//! never asserts on how long something took here (speed belongs to the benchmarks).
use std::time::{Duration, Instant};

/// How long to wait between two polls.
const INTERVAL: Duration = Duration::from_millis(50);

/// Polls `probe` until it returns `Some`, and returns that value. Fails the test with `what` once
/// `timeout` has passed (the probe may itself assert, to fail at once on a state that cannot recover).
pub(crate) async fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting until {what}"
        );
        tokio::time::sleep(INTERVAL).await;
    }
}

/// [`wait_until`] for a test without an async runtime, with a synchronous probe.
pub(crate) fn wait_until_blocking<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> T {
    block_on(wait_until(what, timeout, async || probe()))
}

/// Runs a future to completion on a fresh single-threaded runtime (from a test that has none).
pub(crate) fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(future)
}
