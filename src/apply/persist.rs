//! Durable bookkeeping of a run: journal intents before a step is sent, state writes (compare-and-
//! write on the serial) and journal `done`s after it is recorded. The blocking file I/O runs on
//! tokio's blocking pool so in-flight steps keep going while a write is fsync'd.
//!
//! [`Persistence::in_memory`] skips all of it, for tests of pure scheduling and for benchmarks.

use std::sync::Arc;

use crate::state::{Journal, JournalError, NewIntent, StateFile, StateStore, StepId};

/// Where a run records what it does.
#[derive(Debug)]
pub struct Persistence {
    store: Option<Arc<StateStore>>,
    journal: Option<Arc<Journal>>,
    serial: Option<u64>,
}

impl Persistence {
    /// Records into `store` (whose file currently has serial `on_disk_serial`, `None` when there is
    /// no state file yet) and journals into `journal`. The caller holds the stack's lock.
    pub fn durable(store: StateStore, journal: Journal, on_disk_serial: Option<u64>) -> Self {
        Self {
            store: Some(Arc::new(store)),
            journal: Some(Arc::new(journal)),
            serial: on_disk_serial,
        }
    }

    /// Records nothing: state lives only in the returned report.
    pub fn in_memory() -> Self {
        Self {
            store: None,
            journal: None,
            serial: None,
        }
    }

    /// The serial of the state file as last written (or as given).
    pub fn serial(&self) -> Option<u64> {
        self.serial
    }

    /// The journal, for steps that write their own intent from their task.
    pub(crate) fn journal(&self) -> Option<Arc<Journal>> {
        self.journal.clone()
    }

    /// Ends the run: removes the journal when no step is left unfinished (a clean or fully
    /// recorded run), keeps it otherwise. Returns whether it was removed.
    pub fn finish(self) -> Result<bool, JournalError> {
        let Some(journal) = self.journal else {
            return Ok(true);
        };
        match Arc::try_unwrap(journal) {
            Ok(journal) if journal.unfinished().is_empty() => journal.finish().map(|()| true),
            _ => Ok(false),
        }
    }

    /// Writes `state` and then marks `done` steps as finished. Returns the state (with its new
    /// serial) and the first error, as a message.
    pub(crate) async fn commit(
        &mut self,
        state: StateFile,
        done: Vec<StepId>,
    ) -> (StateFile, Result<(), String>) {
        let Some(store) = self.store.clone() else {
            return (state, Ok(()));
        };
        let journal = self.journal.clone();
        let expected = self.serial;
        let fallback = state.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let mut state = state;
            let written = store
                .write(&mut state, expected)
                .map_err(|e| format!("could not record the step in state: {e}"));
            let marked = match (&written, &journal) {
                (Ok(_), Some(journal)) => done.into_iter().try_for_each(|step| {
                    journal
                        .done(step)
                        .map_err(|e| format!("could not update the apply journal: {e}"))
                }),
                _ => Ok(()),
            };
            (state, written, marked)
        })
        .await;
        match joined {
            Ok((state, written, marked)) => {
                if let Ok(serial) = &written {
                    self.serial = Some(*serial);
                }
                (state, written.and(marked))
            }
            Err(join) => (
                fallback,
                Err(format!("state writer stopped unexpectedly: {join}")),
            ),
        }
    }
}

/// Writes an intent from a step's task (blocking fsync on the blocking pool).
pub(crate) async fn write_intent(
    journal: Option<Arc<Journal>>,
    intent: NewIntent,
) -> Result<Option<StepId>, String> {
    let Some(journal) = journal else {
        return Ok(None);
    };
    tokio::task::spawn_blocking(move || journal.intent(intent).map(Some))
        .await
        .map_err(|e| format!("journal writer stopped unexpectedly: {e}"))?
        .map_err(|e| format!("could not journal the step before sending it: {e}"))
}
