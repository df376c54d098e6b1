//! Durable bookkeeping of a run: journal intents before a step is sent, state writes (compare-and-
//! write on the serial) and journal `done`s after it is recorded. The blocking file I/O runs on
//! tokio's blocking pool so in-flight steps keep going while a write is fsync'd.
//!
//! [`Persistence::in_memory`] skips all of it, for tests of pure scheduling and for benchmarks.
//!
//! It never decides what to record (the scheduler does) and never writes state without the
//! compare-and-write guard: a failed write is a [`PersistError`], never a silent overwrite.

use std::sync::Arc;

use tokio::task::JoinError;

use crate::state::{Journal, JournalError, NewIntent, StateError, StateFile, StateStore, StepId};

/// Where a run records what it does.
#[derive(Debug)]
pub struct Persistence {
    store: Option<Arc<StateStore>>,
    journal: Option<Arc<Journal>>,
}

impl Persistence {
    /// Records into `store` and journals into `journal`; the caller holds the stack's lock.
    ///
    /// The compare-and-write guard uses the serial of the [`StateFile`] being recorded: the state
    /// the run starts from must be the one read from `store` (serial 0, from `StateFile::new`,
    /// means "there is no state file yet": every written file has a serial of at least 1).
    pub fn durable(store: StateStore, journal: Journal) -> Self {
        Self {
            store: Some(Arc::new(store)),
            journal: Some(Arc::new(journal)),
        }
    }

    /// Records nothing: state lives only in the returned report.
    pub fn in_memory() -> Self {
        Self {
            store: None,
            journal: None,
        }
    }

    /// The journal, for steps that write their own intent from their task.
    pub(crate) fn journal(&self) -> Option<Arc<Journal>> {
        self.journal.clone()
    }

    /// Ends the run: removes the journal when no step is left unfinished (a clean or fully
    /// recorded run), keeps it otherwise. Returns whether it was removed. [`apply`](super::apply)
    /// calls it; call it yourself after [`recover`](super::recover) when nothing is applied next.
    ///
    /// # Errors
    ///
    /// [`JournalError`] when the journal file cannot be removed.
    pub fn finish(self) -> Result<bool, JournalError> {
        let Some(journal) = self.journal else {
            return Ok(true);
        };
        match Arc::try_unwrap(journal) {
            Ok(journal) if journal.unfinished().is_empty() => journal.finish().map(|()| true),
            _ => Ok(false),
        }
    }

    /// Writes `state` and then marks `done` steps as finished; on success `state` carries the new
    /// serial. Returns the first error.
    pub(crate) async fn commit(
        &mut self,
        state: &mut StateFile,
        done: Vec<StepId>,
    ) -> Result<(), PersistError> {
        let Some(store) = self.store.clone() else {
            return Ok(());
        };
        let journal = self.journal.clone();
        let expected = (state.serial > 0).then_some(state.serial);
        let mut copy = state.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let written = store
                .write(&mut copy, expected)
                .map_err(PersistError::RecordState);
            let marked = match (&written, &journal) {
                (Ok(_), Some(journal)) => done
                    .into_iter()
                    .try_for_each(|step| journal.done(step).map_err(PersistError::MarkDone)),
                _ => Ok(()),
            };
            (copy, written, marked)
        })
        .await;
        match joined {
            Ok((copy, written, marked)) => {
                if written.is_ok() {
                    *state = copy;
                }
                written.and(marked)
            }
            Err(join) => Err(PersistError::StateWriter(join)),
        }
    }
}

/// Writes an intent from a step's task (blocking fsync on the blocking pool).
pub(crate) async fn write_intent(
    journal: Option<Arc<Journal>>,
    intent: NewIntent,
) -> Result<Option<StepId>, PersistError> {
    let Some(journal) = journal else {
        return Ok(None);
    };
    tokio::task::spawn_blocking(move || journal.intent(intent).map(Some))
        .await
        .map_err(PersistError::JournalWriter)?
        .map_err(PersistError::Intent)
}

/// A run could not record what it did. The message includes its cause (the CLI prints one line);
/// `source()` exposes the cause too.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    #[error("could not record the step in state: {0}")]
    RecordState(#[source] StateError),
    #[error("could not update the apply journal: {0}")]
    MarkDone(#[source] JournalError),
    #[error("could not journal the step before sending it: {0}")]
    Intent(#[source] JournalError),
    #[error("state writer stopped unexpectedly: {0}")]
    StateWriter(#[source] JoinError),
    #[error("journal writer stopped unexpectedly: {0}")]
    JournalWriter(#[source] JoinError),
}
