//! Durable bookkeeping of a run: journal intents before a step is sent; once steps finish, one
//! journal commit with the records they changed (steps finishing together share it, and the
//! journal group-commits it with intents written meanwhile: one fsync); and now and then, and at
//! the end of the run, a checkpoint that rewrites the state file. A commit costs what the step
//! changed, not the size of the state; a checkpoint costs one serialisation of the state, at most
//! every [`CHECKPOINT_EVERY`] (or 20 times as long as the last checkpoint took, if that is longer:
//! checkpoints never take more than about 5% of a run). The blocking file I/O runs on tokio's blocking pool so in-flight
//! steps keep going while a write is fsync'd.
//!
//! [`Persistence::in_memory`] skips all of it, for tests of pure scheduling and for benchmarks.
//!
//! It never decides what to record (the scheduler does) and never writes state without the
//! compare-and-write guard: the run's first write is a checkpoint that checks the state file is
//! the one the run started from, and a failed write is a [`PersistError`], never a silent
//! overwrite.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinError;

use crate::state::{
    Journal, JournalError, NewIntent, Queued, Stamp, StateError, StateFile, StateStore, StepId,
    Touched,
};

/// How often a run rewrites the state file while it journals commits (at most).
pub(crate) const CHECKPOINT_EVERY: Duration = Duration::from_secs(2);

/// Where a run records what it does.
#[derive(Debug)]
pub struct Persistence {
    store: Option<Arc<StateStore>>,
    journal: Option<Arc<Journal>>,
    /// When this run last wrote the state file and how long that took; `None` before its first
    /// write.
    checkpointed: Option<(Instant, Duration)>,
    /// Commits were journaled since the last checkpoint.
    unsaved: bool,
    /// The state file this run's last checkpoint wrote, so the next one can tell nobody wrote it
    /// since without reading it.
    stamp: Option<Stamp>,
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
            checkpointed: None,
            unsaved: false,
            stamp: None,
        }
    }

    /// Records nothing: state lives only in the returned report.
    pub fn in_memory() -> Self {
        Self {
            store: None,
            journal: None,
            checkpointed: None,
            unsaved: false,
            stamp: None,
        }
    }

    /// The journal, for steps that write their own intent from their task.
    pub(crate) fn journal(&self) -> Option<Arc<Journal>> {
        self.journal.clone()
    }

    /// Ends the run: removes the journal when no step is left unfinished (a clean or fully
    /// recorded run), keeps it otherwise. Returns whether it was removed. Call
    /// [`flush`](Self::flush) first: a journal with commits not yet in the state file is kept.
    /// [`apply`](super::apply) calls both; call them yourself after [`recover`](super::recover)
    /// when nothing is applied next.
    ///
    /// # Errors
    ///
    /// [`JournalError`] when the journal file cannot be removed.
    pub fn finish(self) -> Result<bool, JournalError> {
        let Some(journal) = self.journal else {
            return Ok(true);
        };
        if self.unsaved {
            return Ok(false);
        }
        match Arc::try_unwrap(journal) {
            Ok(journal) if journal.unfinished().is_empty() => journal.finish().map(|()| true),
            _ => Ok(false),
        }
    }

    /// Records what changed in `state` among the `touched` records and marks `done` steps as
    /// finished: a journal commit, or a checkpoint of the whole state when none was written yet
    /// by this run or the last is [`CHECKPOINT_EVERY`] old. On success `state` carries the new
    /// serial. Returns the first error.
    pub(crate) async fn commit(
        &mut self,
        state: &mut StateFile,
        done: Vec<StepId>,
        touched: &Touched,
    ) -> Result<(), PersistError> {
        let commit = self.start_commit(state, done, touched);
        self.finish_commit(state, commit).await
    }

    /// The first half of [`commit`](Self::commit): a journal commit is queued at once (the caller
    /// may start other work, and queue intents that the same fsync makes durable, before waiting
    /// for it), a checkpoint is left to [`finish_commit`](Self::finish_commit). Changes to `state`
    /// after this call are not part of the commit. A queued commit gives `state` its serial at
    /// once, so the next commit can be queued behind it before it is durable (lines are written
    /// in the order they are queued); a commit that then fails to become durable stops the run.
    pub(crate) fn start_commit(
        &mut self,
        state: &mut StateFile,
        done: Vec<StepId>,
        touched: &Touched,
    ) -> Commit {
        if self.store.is_none() {
            return Commit::Nothing;
        }
        let due = self
            .checkpointed
            .is_none_or(|(at, took)| at.elapsed() >= CHECKPOINT_EVERY.max(took * 20));
        let Some(journal) = self.journal.clone().filter(|_| !due) else {
            return Commit::Checkpoint(done);
        };
        // Every batch counts as one write, as when each rewrote the file, even one that changed
        // no record: the serial keeps its meaning.
        let base = state.serial;
        let Some(next) = base.checked_add(1) else {
            return Commit::Checkpoint(done);
        };
        let changes = touched.changes(state);
        let queued = journal.queue_commit(base, &done, &changes);
        if queued.is_ok() {
            state.serial = next;
            self.unsaved = true;
        }
        Commit::Journal { queued, journal }
    }

    /// The second half of [`commit`](Self::commit): waits until `commit` is durable (writing the
    /// checkpoint if that is what it is); on success `state` carries the new serial.
    pub(crate) async fn finish_commit(
        &mut self,
        state: &mut StateFile,
        commit: Commit,
    ) -> Result<(), PersistError> {
        match commit {
            Commit::Checkpoint(done) => self.checkpoint(state, done).await,
            other => other.durable().await,
        }
    }

    /// Writes the state file when there is none yet (serial 0), before the run sends anything: the
    /// lineage the run stamps its objects with (`apply::ownership`) must be on disk before any object
    /// carries it, or a run killed before its first checkpoint would leave objects stamped with a
    /// lineage no state has. The run's first checkpoint is still written when its first steps finish.
    pub(crate) async fn ensure_lineage(
        &mut self,
        state: &mut StateFile,
    ) -> Result<(), PersistError> {
        if self.store.is_none() || state.serial != 0 {
            return Ok(());
        }
        self.write_state(state, Vec::new(), true).await?;
        self.checkpointed = None;
        Ok(())
    }

    /// Writes the state file if commits were journaled since the last checkpoint (or it was
    /// never written by this run and `state` differs from nothing). Call at the end of a run.
    pub(crate) async fn flush(&mut self, state: &mut StateFile) -> Result<(), PersistError> {
        if self.unsaved {
            self.write_state(state, Vec::new(), false).await
        } else {
            Ok(())
        }
    }

    /// Rewrites the state file from `state` (compare-and-write on the serial) and then marks
    /// `done` steps as finished; on success `state` carries the new serial.
    pub(crate) async fn checkpoint(
        &mut self,
        state: &mut StateFile,
        done: Vec<StepId>,
    ) -> Result<(), PersistError> {
        self.write_state(state, done, true).await
    }

    /// [`checkpoint`](Self::checkpoint); with `bump` false the serial stays (the file only writes
    /// down commits already counted).
    async fn write_state(
        &mut self,
        state: &mut StateFile,
        done: Vec<StepId>,
        bump: bool,
    ) -> Result<(), PersistError> {
        let Some(store) = self.store.clone() else {
            return Ok(());
        };
        let journal = self.journal.clone();
        let last = self.stamp;
        let started = Instant::now();
        // Serialised here, from the run's own state (no copy); only the bytes go to the writer.
        let snapshot = store
            .snapshot(state, bump)
            .map_err(PersistError::RecordState)?;
        let (written, marked) = tokio::task::spawn_blocking(move || {
            let written = store.checkpoint(snapshot, last);
            let marked = match (&written, journal) {
                (Ok(_), Some(journal)) => journal.done_all(&done),
                _ => Ok(()),
            };
            (written, marked)
        })
        .await
        .map_err(PersistError::StateWriter)?;
        let (serial, stamp) = written.map_err(PersistError::RecordState)?;
        self.stamp = stamp;
        state.version = crate::state::FORMAT_VERSION;
        state.serial = serial;
        self.checkpointed = Some((Instant::now(), started.elapsed()));
        self.unsaved = false;
        marked.map_err(PersistError::MarkDone)
    }
}

/// A state write begun by [`Persistence::start_commit`]; [`Persistence::finish_commit`] ends it.
pub(crate) enum Commit {
    /// Nothing is recorded (in-memory persistence).
    Nothing,
    /// A checkpoint is due: the state file is rewritten by `finish_commit`, then these steps are
    /// marked done.
    Checkpoint(Vec<StepId>),
    /// A journal commit queued (or why it could not be); `state` already carries the serial it
    /// gives.
    Journal {
        queued: Result<Queued, JournalError>,
        journal: Arc<Journal>,
    },
}

impl Commit {
    /// Whether the write is a journal commit already under way, which steps that do not wait for
    /// its records may overlap (a checkpoint, the run's first write among them, is written alone).
    pub(crate) fn is_under_way(&self) -> bool {
        matches!(self, Commit::Journal { .. })
    }

    /// Returns once a journal commit is durable (a blocking fsync on the blocking pool, unless a
    /// group write already made it so); owns what it needs, so the scheduler can wait for it in a
    /// task of its own while it goes on. Nothing to wait for otherwise: a checkpoint is written by
    /// [`Persistence::finish_commit`].
    pub(crate) async fn durable(self) -> Result<(), PersistError> {
        let Commit::Journal { queued, journal } = self else {
            return Ok(());
        };
        let queued = queued.map_err(PersistError::Journal)?;
        if journal.is_durable(queued) {
            return Ok(());
        }
        tokio::task::spawn_blocking(move || journal.wait(queued))
            .await
            .map_err(PersistError::StateWriter)?
            .map_err(PersistError::Journal)
    }
}

/// Waits until an intent queued by the scheduler is durable (a blocking fsync on the blocking pool,
/// unless a group write already made it so).
pub(crate) async fn wait_intent(
    journal: &Arc<Journal>,
    queued: Queued,
) -> Result<(), PersistError> {
    if journal.is_durable(queued) {
        return Ok(());
    }
    let journal = journal.clone();
    tokio::task::spawn_blocking(move || journal.wait(queued))
        .await
        .map_err(PersistError::JournalWriter)?
        .map_err(PersistError::Intent)
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
    #[error("could not record the step in the apply journal: {0}")]
    Journal(#[source] JournalError),
    #[error("could not update the apply journal: {0}")]
    MarkDone(#[source] JournalError),
    #[error("could not journal the step before sending it: {0}")]
    Intent(#[source] JournalError),
    #[error("state writer stopped unexpectedly: {0}")]
    StateWriter(#[source] JoinError),
    #[error("journal writer stopped unexpectedly: {0}")]
    JournalWriter(#[source] JoinError),
}
