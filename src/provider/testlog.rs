//! Test helper: capture the debug log of code run on the current thread.
//!
//! One global subscriber (set once per test binary) writes into a per-thread buffer while a capture is
//! active. A global subscriber avoids the callsite-interest races of scoped subscribers when tests run in
//! parallel.

use std::cell::RefCell;
use std::io::Write;
use std::sync::OnceLock;

thread_local! {
    static BUFFER: RefCell<Option<Vec<u8>>> = const { RefCell::new(None) };
}

struct ThreadBuf;

impl Write for ThreadBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        BUFFER.with(|buf| {
            if let Some(v) = buf.borrow_mut().as_mut() {
                v.extend_from_slice(b);
            }
        });
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `f` and returns everything logged (at debug and above) on this thread meanwhile. `f` must do
/// its async work on a current-thread runtime so events stay on this thread.
pub(crate) fn capture_logs(f: impl FnOnce()) -> String {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .with_writer(|| ThreadBuf)
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
    BUFFER.with(|b| *b.borrow_mut() = Some(Vec::new()));
    f();
    let bytes = BUFFER.with(|b| b.borrow_mut().take()).unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}
