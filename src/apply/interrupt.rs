//! The interrupt token the CLI's Ctrl-C handler signals and the engine watches.
//!
//! First signal: no new step starts, in-flight steps finish and are recorded, the run returns
//! `Interrupted`. Second signal: the run stops at once and abandons in-flight steps; their journal
//! intents stay unfinished and the next run resolves them by reading the cloud. This module never
//! installs a signal handler itself (that is the CLI's job).

use std::sync::Arc;

use tokio::sync::watch;

/// A cloneable interrupt counter. Cheap to clone; all clones share one count.
#[derive(Debug, Clone)]
pub struct Interrupt {
    tx: Arc<watch::Sender<u32>>,
}

impl Default for Interrupt {
    fn default() -> Self {
        Self::new()
    }
}

impl Interrupt {
    /// A token with no signal yet.
    pub fn new() -> Self {
        Self {
            tx: Arc::new(watch::Sender::new(0)),
        }
    }

    /// Records one more interrupt (the CLI calls this on each Ctrl-C).
    pub fn signal(&self) {
        self.tx.send_modify(|n| *n = n.saturating_add(1));
    }

    /// How many interrupts so far.
    pub fn level(&self) -> u32 {
        *self.tx.borrow()
    }

    /// Waits until the count reaches at least `level`.
    pub async fn reached(&self, level: u32) {
        let mut rx = self.tx.subscribe();
        // The sender lives in `self`, so `wait_for` cannot fail while we hold it.
        let _ = rx.wait_for(|n| *n >= level).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_signals_and_wakes_waiters() {
        let token = Interrupt::new();
        assert_eq!(token.level(), 0);
        let waiter = {
            let token = token.clone();
            tokio::spawn(async move { token.reached(2).await })
        };
        token.signal();
        assert_eq!(token.level(), 1);
        token.signal();
        waiter.await.expect("waiter");
        assert_eq!(token.level(), 2);
    }
}
