//! The apply journal: a durable, append-only log of steps about to be sent and of the state changes
//! they made.
//!
//! Before the apply engine sends a step to the cloud it appends an `intent` line (step, address,
//! action, the deterministic cloud id it will touch). Once the step's outcome is known it appends a
//! `commit` line: the state records the outcome changed (set or removed) and the steps it finishes.
//! If the process dies in between, the next run finds the intents without a commit
//! ([`JournalOpen::unfinished`]) and resolves them by reading the cloud — the ids are
//! deterministic, so nothing created is orphaned. A `done` line finishes steps whose outcome went
//! straight into the state file.
//!
//! The commits are the state's recent writes: the state file is only rewritten now and then as a
//! checkpoint, and reading the state replays the commits over it (see [`super::StateStore`]). Each
//! commit names the serial it extends (`base`); replay applies a commit whose base is the serial
//! reached so far and counts the serial one up, and skips the others (older ones were folded into
//! a checkpoint, which moved the serial past them). A clean run writes a last checkpoint and removes
//! the journal.
//!
//! Appends are group-committed: lines from many threads that arrive while a write is being synced
//! are written together and share the next fsync; every method returns once its own line is
//! durable. A line may also be queued now and waited for later ([`Journal::queue_intent`],
//! [`Journal::queue_commit`], [`Journal::wait`]): lines are written in the order they were queued,
//! so once a line is durable every line queued before it is too — the apply engine queues a
//! batch's commit and then the intents of the steps that follow it, and one fsync makes them all
//! durable. A write that fails leaves the journal refusing further appends (its tail may be torn).
//!
//! The file is JSON lines, `<stack>.journal` beside the state, mode 0600. It is created by the first
//! line a run appends, so a run that sends nothing (a plan without changes, a refused preflight)
//! leaves no file behind. A last line torn by a
//! crash mid-write is dropped with a [`JournalNote`]; damage anywhere else is an error, because
//! silently skipping a step record could orphan a cloud resource. Use the journal only while
//! holding the stack's lock. This module never prints and never records a secret in clear:
//! intents hold ids only, commits hold state records redacted exactly as in the state file.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};

use indexmap::IndexMap;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Serialize};

use super::host;
use super::model::Changes;
use super::replica::{Replica, Shown};

/// Identifies one step in a journal; unique within the journal file, increasing.
pub(crate) type StepId = u64;

/// A line queued for the journal's next group write; durable once that write is synced
/// ([`Journal::wait`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Queued(u64);

/// What a step does to its resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JournalAction {
    Create,
    Update,
    Delete,
    Replace,
}

impl fmt::Display for JournalAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JournalAction::Create => "create",
            JournalAction::Update => "update",
            JournalAction::Delete => "delete",
            JournalAction::Replace => "replace",
        })
    }
}

/// A step as the engine announces it, before it has an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewIntent {
    /// The resource's address in the stack (its key).
    pub address: String,
    /// Its type, so a resolver knows how to read it back.
    pub resource_type: String,
    pub action: JournalAction,
    /// The deterministic cloud id (ARM id or blob URL) the step will touch.
    pub target: String,
}

/// An intent as recorded in the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Intent {
    pub step: StepId,
    pub address: String,
    #[serde(rename = "type")]
    pub resource_type: String,
    pub action: JournalAction,
    pub target: String,
    /// When it was recorded, RFC 3339 UTC.
    pub at: String,
}

/// One line of the journal. `C` is what a commit's changes are read as: [`Changes`] to replay
/// them, [`IgnoredAny`] where only the steps and serials matter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum Record<C> {
    Intent {
        step: StepId,
        address: String,
        #[serde(rename = "type")]
        resource_type: String,
        action: JournalAction,
        target: String,
        at: String,
    },
    Done {
        step: StepId,
        at: String,
    },
    Commit {
        /// The state serial this commit extends; applying it makes the serial `base + 1`.
        base: u64,
        /// Steps whose outcome this commit records.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        steps: Vec<StepId>,
        changes: C,
        at: String,
    },
}

/// Something unusual the journal tolerated while opening; for the CLI to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JournalNote {
    /// The last line was incomplete (a crash mid-write) and was dropped. The step it described was
    /// never sent, because intents are durable before sending.
    TornTail { line: usize, bytes: usize },
    /// A `done` line for a step with no intent; ignored.
    DoneWithoutIntent { line: usize, step: StepId },
}

impl fmt::Display for JournalNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JournalNote::TornTail { line, bytes } => write!(
                f,
                "ignored an incomplete last journal line ({line}, {bytes} bytes) left by an interrupted write"
            ),
            JournalNote::DoneWithoutIntent { line, step } => {
                write!(
                    f,
                    "ignored journal line {line}: step {step} finished but was never started"
                )
            }
        }
    }
}

/// Failures of the journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot use apply journal {}: {source}", .path.display())]
    Io { path: PathBuf, source: io::Error },

    #[error(
        "apply journal {} is damaged at line {line} ({detail}); it was not changed. It lists steps of an interrupted apply: check those resources in the cloud and the state, then remove the journal",
        .path.display()
    )]
    Corrupt {
        path: PathBuf,
        line: usize,
        detail: String,
    },

    #[error("step {step} is not an unfinished step of apply journal {}", .path.display())]
    UnknownStep { path: PathBuf, step: StepId },

    #[error("apply journal {} still has unfinished steps {steps:?}; it was kept so the next run can resolve them", .path.display())]
    Unfinished { path: PathBuf, steps: Vec<StepId> },
}

/// An open journal. Methods take `&self`, so parallel steps may share it (behind an `Arc`); each
/// append is durable (fsync'd, possibly together with others) before the method returns.
pub struct Journal {
    path: PathBuf,
    /// Where each group write is mirrored once it is durable (a remote state's journal), before
    /// the callers of the group return.
    pub(super) replica: Option<std::sync::Arc<dyn Replica>>,
    /// Written only by the thread leading a group write (see [`Inner::writing`]); opened (and the
    /// file created) by the first write when the journal did not exist.
    file: OnceLock<File>,
    inner: Mutex<Inner>,
    /// Signalled when a group write ends.
    written: Condvar,
    /// Tests: holds groups with commits back, to see what runs while one is being made.
    #[cfg(test)]
    gate: std::sync::Arc<CommitGate>,
}

impl fmt::Debug for Journal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Journal")
            .field("path", &self.path)
            .field("replica", &self.replica.as_deref().map(Shown))
            .finish_non_exhaustive()
    }
}

/// A test hook of the group write: while held, a group holding a commit waits before it is written.
#[cfg(test)]
#[derive(Debug, Default)]
pub(crate) struct CommitGate {
    state: Mutex<GateState>,
    changed: Condvar,
}

#[cfg(test)]
#[derive(Debug, Default)]
struct GateState {
    held: bool,
    /// Steps of the commits waiting at the gate.
    waiting: usize,
}

#[cfg(test)]
impl CommitGate {
    fn lock(&self) -> MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Commits wait from now on.
    pub(crate) fn hold(&self) {
        self.lock().held = true;
    }

    /// Lets every commit through.
    pub(crate) fn release(&self) {
        self.lock().held = false;
        self.changed.notify_all();
    }

    /// How many steps the commits waiting at the gate finish.
    pub(crate) fn steps_waiting(&self) -> usize {
        self.lock().waiting
    }

    fn pass(&self, steps: usize) {
        let mut state = self.lock();
        state.waiting += steps;
        while state.held {
            state = self
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
        state.waiting -= steps;
    }
}

#[derive(Debug)]
struct Inner {
    next_step: StepId,
    pending: IndexMap<StepId, Intent>,
    /// Whole lines waiting for the next group write.
    queue: Vec<u8>,
    /// Lines queued so far and lines known durable, counted since the journal was opened.
    queued: u64,
    durable: u64,
    /// Steps that queued lines finish (a commit, `done` lines), by the line that finishes them: they
    /// stay unfinished until that line is durable.
    finishing: Vec<(u64, Vec<StepId>)>,
    /// Tests: steps finished by the commits queued and not yet written (the commit gate holds
    /// the write of a group holding any).
    #[cfg(test)]
    gated: usize,
    /// A thread is writing and syncing a group; the others wait for it.
    writing: bool,
    /// Why a group write failed; the journal then refuses every append.
    failed: Option<(io::ErrorKind, String)>,
    /// Group writes made, for tests of the grouping.
    #[cfg(test)]
    groups: u64,
}

/// The result of opening a journal: the journal, the steps an earlier run left unfinished (in the
/// order they were started) and notes about tolerated damage.
#[derive(Debug)]
pub struct JournalOpen {
    pub journal: Journal,
    pub unfinished: Vec<Intent>,
    pub notes: Vec<JournalNote>,
}

/// What parsing a journal file found.
struct Parsed<C> {
    pending: IndexMap<StepId, Intent>,
    next_step: StepId,
    notes: Vec<JournalNote>,
    /// Length of the intact prefix (everything before a torn tail).
    good_len: usize,
    /// Every commit, in file order, with the serial it extends.
    commits: Vec<(u64, C)>,
}

impl Journal {
    /// Opens the journal at `path` (a missing one is created by the first append), returns the steps
    /// a previous run left unfinished, and drops a torn last line so new records start on a clean
    /// line.
    pub fn open(path: impl Into<PathBuf>) -> Result<JournalOpen, JournalError> {
        let path = path.into();
        let io_err = |source| JournalError::Io {
            path: path.clone(),
            source,
        };
        let existing = match fs::read(&path) {
            Ok(bytes) => Some(bytes),
            Err(err) if err.kind() == io::ErrorKind::NotFound => None,
            Err(source) => return Err(io_err(source)),
        };
        let parsed: Parsed<IgnoredAny> = match &existing {
            Some(bytes) => parse(&path, bytes)?,
            None => Parsed {
                pending: IndexMap::new(),
                next_step: 1,
                notes: Vec::new(),
                good_len: 0,
                commits: Vec::new(),
            },
        };

        let file = OnceLock::new();
        if let Some(bytes) = &existing {
            let mut f = OpenOptions::new()
                .append(true)
                .mode(0o600)
                .open(&path)
                .map_err(io_err)?;
            if parsed.good_len < bytes.len() {
                f.set_len(parsed.good_len as u64).map_err(io_err)?;
            }
            // A last record that lost only its newline must not run into the next one.
            if parsed.good_len > 0 && bytes.get(parsed.good_len - 1) != Some(&b'\n') {
                f.write_all(b"\n").map_err(io_err)?;
            }
            f.sync_data().map_err(io_err)?;
            let _ = file.set(f);
        }

        let unfinished = parsed.pending.values().cloned().collect();
        Ok(JournalOpen {
            journal: Journal {
                path,
                replica: None,
                file,
                inner: Mutex::new(Inner {
                    next_step: parsed.next_step,
                    pending: parsed.pending,
                    queue: Vec::new(),
                    queued: 0,
                    durable: 0,
                    finishing: Vec::new(),
                    #[cfg(test)]
                    gated: 0,
                    writing: false,
                    failed: None,
                    #[cfg(test)]
                    groups: 0,
                }),
                written: Condvar::new(),
                #[cfg(test)]
                gate: std::sync::Arc::default(),
            },
            unfinished,
            notes: parsed.notes,
        })
    }

    /// Reads the unfinished steps at `path` without opening the journal for writing or changing the
    /// file (for `plan`, which warns about an interrupted apply but must not touch anything).
    pub fn read_unfinished(
        path: impl AsRef<Path>,
    ) -> Result<(Vec<Intent>, Vec<JournalNote>), JournalError> {
        let path = path.as_ref();
        match fs::read(path) {
            Ok(bytes) => {
                let parsed: Parsed<IgnoredAny> = parse(path, &bytes)?;
                Ok((parsed.pending.into_values().collect(), parsed.notes))
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok((Vec::new(), Vec::new())),
            Err(source) => Err(JournalError::Io {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// The journal file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Durably records that a step is about to be sent; returns its id. Call before sending.
    pub fn intent(&self, new: NewIntent) -> Result<StepId, JournalError> {
        let (step, queued) = self.queue_intent(new)?;
        self.wait(queued)?;
        Ok(step)
    }

    /// Queues the intent of a step about to be sent and returns its id: the step is unfinished from
    /// now on, and its request may be sent once [`wait`](Self::wait) says the line is durable.
    pub(crate) fn queue_intent(&self, new: NewIntent) -> Result<(StepId, Queued), JournalError> {
        let mut inner = self.inner();
        let intent = Intent {
            step: inner.next_step,
            address: new.address,
            resource_type: new.resource_type,
            action: new.action,
            target: new.target,
            at: host::now_rfc3339(),
        };
        let record: Record<&Changes> = Record::Intent {
            step: intent.step,
            address: intent.address.clone(),
            resource_type: intent.resource_type.clone(),
            action: intent.action,
            target: intent.target.clone(),
            at: intent.at.clone(),
        };
        let next = inner
            .next_step
            .checked_add(1)
            .ok_or_else(|| JournalError::Io {
                path: self.path.clone(),
                source: io::Error::other("step ids are exhausted; resolve and remove the journal"),
            })?;
        let line = self.line(&record)?;
        let queued = self.enqueue(&mut inner, &line)?;
        inner.next_step = next;
        let step = intent.step;
        inner.pending.insert(step, intent);
        Ok((step, queued))
    }

    /// Durably records that a step's outcome is in the state file. Works for steps recovered from
    /// an earlier run too (after they were resolved).
    pub fn done(&self, step: StepId) -> Result<(), JournalError> {
        self.done_all(&[step])
    }

    /// [`done`](Self::done) for several steps, made durable together.
    pub(crate) fn done_all(&self, steps: &[StepId]) -> Result<(), JournalError> {
        if steps.is_empty() {
            return Ok(());
        }
        let inner = self.inner();
        self.check_pending(&inner, steps)?;
        let mut lines = Vec::new();
        let at = host::now_rfc3339();
        for &step in steps {
            let record: Record<&Changes> = Record::Done {
                step,
                at: at.clone(),
            };
            lines.extend(self.line(&record)?);
        }
        let mut inner = inner;
        let queued = self.enqueue(&mut inner, &lines)?;
        inner.finishing.push((queued.0, steps.to_vec()));
        drop(inner);
        self.wait(queued)
    }

    /// Durably records a state write: `changes` applied to the state whose serial is `base`, which
    /// finishes `steps`. `changes` must already be redacted (see [`Changes`]). (The engine queues
    /// its commits: [`queue_commit`](Self::queue_commit).)
    #[cfg(test)]
    pub(crate) fn commit(
        &self,
        base: u64,
        steps: &[StepId],
        changes: &Changes,
    ) -> Result<(), JournalError> {
        let queued = self.queue_commit(base, steps, changes)?;
        self.wait(queued)
    }

    /// Queues a [`commit`](Self::commit) without waiting: `steps` stay unfinished until
    /// [`wait`](Self::wait) says it is durable. Lines queued after it are written after it.
    pub(crate) fn queue_commit(
        &self,
        base: u64,
        steps: &[StepId],
        changes: &Changes,
    ) -> Result<Queued, JournalError> {
        let mut inner = self.inner();
        self.check_pending(&inner, steps)?;
        let record = Record::Commit {
            base,
            steps: steps.to_vec(),
            changes,
            at: host::now_rfc3339(),
        };
        let line = self.line(&record)?;
        let queued = self.enqueue(&mut inner, &line)?;
        inner.finishing.push((queued.0, steps.to_vec()));
        #[cfg(test)]
        {
            inner.gated += steps.len();
        }
        Ok(queued)
    }

    /// Whether `queued` is durable (no wait).
    pub(crate) fn is_durable(&self, queued: Queued) -> bool {
        self.inner().durable >= queued.0
    }

    /// The gate of this journal's commits (tests).
    #[cfg(test)]
    pub(crate) fn commit_gate(&self) -> std::sync::Arc<CommitGate> {
        self.gate.clone()
    }

    /// Steps started (in this run or an earlier one) and not yet done, in the order started.
    pub fn unfinished(&self) -> Vec<Intent> {
        self.inner().pending.values().cloned().collect()
    }

    /// Ends a clean run: removes the journal. Refused (and the journal kept) while steps are
    /// unfinished.
    pub fn finish(self) -> Result<(), JournalError> {
        let inner = self
            .inner
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        if !inner.pending.is_empty() {
            return Err(JournalError::Unfinished {
                path: self.path,
                steps: inner.pending.keys().copied().collect(),
            });
        }
        // Nothing was ever written: there is no file to remove.
        let Some(file) = self.file.into_inner() else {
            return Ok(());
        };
        drop(file);
        let io_err = |source| JournalError::Io {
            path: self.path.clone(),
            source,
        };
        match fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(io_err(source)),
        }
        sync_dir(&parent_dir(&self.path)).map_err(io_err)?;
        match &self.replica {
            Some(r) => r.journal_removed().map_err(|e| {
                io_err(io::Error::other(format!(
                    "cannot remove the journal from {}: {e}",
                    r.describe()
                )))
            }),
            None => Ok(()),
        }
    }

    /// Mirrors a durable group write to the replica, if any; its failure fails the group.
    fn replicate(&self, group: &[u8]) -> io::Result<()> {
        match &self.replica {
            Some(r) if !group.is_empty() => r
                .journal_appended(group)
                .map_err(|e| io::Error::other(format!("cannot append to {}: {e}", r.describe()))),
            _ => Ok(()),
        }
    }

    /// The journal file, created (with its folder, 0700, and the folder's entry made durable) by the
    /// first write of a journal that did not exist. Called only by the thread leading a group write.
    fn file(&self) -> io::Result<&File> {
        if let Some(f) = self.file.get() {
            return Ok(f);
        }
        let dir = parent_dir(&self.path);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        let f = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&self.path)?;
        sync_dir(&dir)?;
        Ok(self.file.get_or_init(|| f))
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        // Nothing panics while holding the lock; a poisoned lock still guards consistent data.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn check_pending(&self, inner: &Inner, steps: &[StepId]) -> Result<(), JournalError> {
        match steps.iter().find(|s| !inner.pending.contains_key(*s)) {
            Some(&step) => Err(JournalError::UnknownStep {
                path: self.path.clone(),
                step,
            }),
            None => Ok(()),
        }
    }

    fn line<C: Serialize>(&self, record: &Record<C>) -> Result<Vec<u8>, JournalError> {
        let mut line = serde_json::to_vec(record).map_err(|e| JournalError::Io {
            path: self.path.clone(),
            source: io::Error::other(e),
        })?;
        line.push(b'\n');
        Ok(line)
    }

    /// Queues whole `lines` for the next group write; refused once a write has failed.
    fn enqueue(&self, inner: &mut Inner, lines: &[u8]) -> Result<Queued, JournalError> {
        self.check_failed(inner)?;
        inner.queue.extend_from_slice(lines);
        inner.queued += 1;
        Ok(Queued(inner.queued))
    }

    fn check_failed(&self, inner: &Inner) -> Result<(), JournalError> {
        match &inner.failed {
            Some((kind, message)) => Err(JournalError::Io {
                path: self.path.clone(),
                source: io::Error::new(
                    *kind,
                    format!("an earlier write failed ({message}); nothing more is appended"),
                ),
            }),
            None => Ok(()),
        }
    }

    /// Returns once `queued` (and so every line queued before it) is durable: the first thread to
    /// find no write under way writes and syncs everything queued (its lines and those queued
    /// meanwhile, by any thread); the others wait for that write. This is the one place where the
    /// journal's bytes are written and synced.
    pub(crate) fn wait(&self, queued: Queued) -> Result<(), JournalError> {
        let mut inner = self.inner();
        loop {
            if inner.durable >= queued.0 {
                return Ok(());
            }
            self.check_failed(&inner)?;
            if inner.writing {
                inner = self
                    .written
                    .wait(inner)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            inner.writing = true;
            let group = std::mem::take(&mut inner.queue);
            let upto = inner.queued;
            #[cfg(test)]
            let gated = std::mem::take(&mut inner.gated);
            drop(inner);
            #[cfg(test)]
            if gated > 0 {
                self.gate.pass(gated);
            }
            let result = self
                .file()
                .and_then(|mut f| f.write_all(&group).and_then(|()| f.sync_data()))
                .and_then(|()| self.replicate(&group));
            inner = self.inner();
            inner.writing = false;
            #[cfg(test)]
            {
                inner.groups += 1;
            }
            match result {
                Ok(()) => {
                    inner.durable = upto;
                    // What the group's commits and `done` lines finish is finished now.
                    let (now, later): (Vec<_>, Vec<_>) = std::mem::take(&mut inner.finishing)
                        .into_iter()
                        .partition(|(at, _)| *at <= upto);
                    inner.finishing = later;
                    for step in now.iter().flat_map(|(_, steps)| steps) {
                        inner.pending.shift_remove(step);
                    }
                }
                Err(err) => inner.failed = Some((err.kind(), err.to_string())),
            }
            self.written.notify_all();
        }
    }
}

/// The commits of the journal at `path`, in order, each with the serial it extends; none when
/// there is no journal. A torn last line is left out. Never changes the file.
pub(crate) fn read_commits<C: DeserializeOwned>(
    path: &Path,
) -> Result<Vec<(u64, C)>, JournalError> {
    match fs::read(path) {
        Ok(bytes) => Ok(parse::<C>(path, &bytes)?.commits),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(JournalError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Parses journal bytes. A last line that does not parse is a torn tail; any other bad line is
/// damage.
fn parse<C: DeserializeOwned>(path: &Path, bytes: &[u8]) -> Result<Parsed<C>, JournalError> {
    let mut pending: IndexMap<StepId, Intent> = IndexMap::new();
    let mut notes = Vec::new();
    let mut commits = Vec::new();
    let mut max_step = 0;
    let mut good_len = 0;
    let mut offset = 0;
    let lines: Vec<&[u8]> = bytes.split_inclusive(|b| *b == b'\n').collect();
    let last_content = lines.iter().rposition(|l| !is_blank(l)).unwrap_or(0);
    for (index, raw) in lines.iter().enumerate() {
        let number = index + 1;
        let start = offset;
        offset += raw.len();
        if is_blank(raw) {
            if index < last_content {
                good_len = offset;
            }
            continue;
        }
        match serde_json::from_slice::<Record<C>>(raw) {
            Ok(record) => {
                good_len = offset;
                let mut finish = |step: StepId| {
                    max_step = max_step.max(step);
                    if pending.shift_remove(&step).is_none() {
                        notes.push(JournalNote::DoneWithoutIntent { line: number, step });
                    }
                };
                match record {
                    Record::Intent {
                        step,
                        address,
                        resource_type,
                        action,
                        target,
                        at,
                    } => {
                        max_step = max_step.max(step);
                        pending.insert(
                            step,
                            Intent {
                                step,
                                address,
                                resource_type,
                                action,
                                target,
                                at,
                            },
                        );
                    }
                    Record::Done { step, .. } => finish(step),
                    Record::Commit {
                        base,
                        steps,
                        changes,
                        ..
                    } => {
                        steps.into_iter().for_each(&mut finish);
                        commits.push((base, changes));
                    }
                }
            }
            Err(_) if index == last_content => {
                good_len = start;
                notes.push(JournalNote::TornTail {
                    line: number,
                    bytes: bytes.len() - start,
                });
            }
            Err(err) => {
                return Err(JournalError::Corrupt {
                    path: path.to_owned(),
                    line: number,
                    detail: err.to_string(),
                });
            }
        }
    }
    Ok(Parsed {
        pending,
        // A step id of u64::MAX can only come from a hand-edited file; `intent` then refuses.
        next_step: max_step.saturating_add(1),
        notes,
        good_len,
        commits,
    })
}

/// Whitespace only (NUL bytes count: some filesystems leave zeros after a crash).
fn is_blank(line: &[u8]) -> bool {
    line.iter().all(|b| b.is_ascii_whitespace() || *b == 0)
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn step(address: &str, action: JournalAction) -> NewIntent {
        NewIntent {
            address: address.to_owned(),
            resource_type: String::from("storage_account"),
            action,
            target: format!("/subscriptions/s/x/{address}"),
        }
    }

    /// The bug: opening the journal created the file, so a run that sent nothing (an apply whose plan
    /// had no changes) left an empty journal behind. The file now comes with the first line.
    #[test]
    fn a_journal_nothing_was_written_to_leaves_no_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("state").join("demo.journal");
        let journal = Journal::open(&path).expect("open").journal;
        assert!(!path.exists(), "opening creates nothing");
        journal.finish().expect("finish");
        assert!(!path.exists());
        drop(Journal::open(&path).expect("open again"));
        assert!(!path.exists(), "dropping an unused journal leaves nothing");

        let journal = Journal::open(&path).expect("open").journal;
        let a = journal
            .intent(step("a", JournalAction::Create))
            .expect("the first line creates the file and its folder");
        let mode = fs::metadata(&path).expect("created").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        journal.done(a).expect("done");
        journal.finish().expect("finish");
        assert!(!path.exists());
    }

    #[test]
    fn intents_without_done_survive_a_crash() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("demo.journal");
        let opened = Journal::open(&path).expect("open");
        assert!(opened.unfinished.is_empty());
        let journal = opened.journal;
        let a = journal
            .intent(step("a", JournalAction::Create))
            .expect("intent a");
        let b = journal
            .intent(step("b", JournalAction::Delete))
            .expect("intent b");
        journal.done(a).expect("done a");
        drop(journal); // the crash: no finish

        let (peeked, _) = Journal::read_unfinished(&path).expect("peek");
        let reopened = Journal::open(&path).expect("reopen");
        assert_eq!(reopened.unfinished.len(), 1);
        assert_eq!(reopened.unfinished[0].step, b);
        assert_eq!(reopened.unfinished[0].address, "b");
        assert_eq!(reopened.unfinished[0].action, JournalAction::Delete);
        assert_eq!(peeked, reopened.unfinished);
        assert!(reopened.notes.is_empty());

        // New steps get fresh ids; resolving the old one lets the run finish.
        let journal = reopened.journal;
        let c = journal
            .intent(step("c", JournalAction::Update))
            .expect("intent c");
        assert!(c > b);
        assert!(matches!(
            journal.done(99),
            Err(JournalError::UnknownStep { step: 99, .. })
        ));
        journal.done(c).expect("done c");
        journal.done(b).expect("resolve b");
        journal.finish().expect("finish");
        assert!(!path.exists());
    }

    /// Appends that arrive while a write is being synced are written together by the next one:
    /// many steps starting or finishing at once share one fsync.
    #[test]
    fn appends_waiting_for_a_write_share_the_next_one() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("demo.journal");
        let journal = std::sync::Arc::new(Journal::open(&path).expect("open").journal);
        // A write is under way: every append queues behind it.
        journal.inner().writing = true;
        let threads: Vec<_> = (0..8)
            .map(|i| {
                let journal = journal.clone();
                std::thread::spawn(move || {
                    journal.intent(step(&format!("r{i}"), JournalAction::Create))
                })
            })
            .collect();
        while journal.inner().queued < 8 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        journal.inner().writing = false;
        journal.written.notify_all();
        for thread in threads {
            thread.join().expect("thread").expect("intent");
        }
        assert_eq!(journal.inner().groups, 1, "one write for the eight lines");
        assert_eq!(Journal::open(&path).expect("reopen").unfinished.len(), 8);
    }

    #[test]
    fn commits_finish_their_steps_and_are_read_back_in_order() {
        use crate::state::model::ResourceState;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("demo.journal");
        let journal = Journal::open(&path).expect("open").journal;
        let a = journal
            .intent(step("a", JournalAction::Create))
            .expect("intent a");
        let b = journal
            .intent(step("b", JournalAction::Create))
            .expect("intent b");
        let mut first = Changes::default();
        first.set.insert(
            String::from("a"),
            ResourceState::new(
                "storage_account",
                "/x/a",
                serde_json::json!({}),
                serde_json::json!({}),
            ),
        );
        let second = Changes {
            remove: vec![String::from("old")],
            ..Changes::default()
        };
        journal.commit(4, &[a], &first).expect("commit a");
        journal.commit(5, &[], &second).expect("commit");
        assert!(matches!(
            journal.commit(6, &[a], &Changes::default()),
            Err(JournalError::UnknownStep { .. })
        ));
        drop(journal);
        let reopened = Journal::open(&path).expect("reopen");
        let open: Vec<StepId> = reopened.unfinished.iter().map(|i| i.step).collect();
        assert_eq!(open, vec![b]);
        let commits: Vec<(u64, Changes)> = read_commits(&path).expect("read");
        assert_eq!(commits, vec![(4, first), (5, second)]);
    }

    #[test]
    fn finish_is_refused_while_steps_are_open() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("demo.journal");
        let journal = Journal::open(&path).expect("open").journal;
        let s = journal
            .intent(step("a", JournalAction::Replace))
            .expect("intent");
        let err = journal.finish().expect_err("open step");
        assert!(
            matches!(&err, JournalError::Unfinished { steps, .. } if steps == &vec![s]),
            "{err}"
        );
        assert!(path.exists());
    }

    #[test]
    fn torn_last_line_is_dropped_with_a_note_and_appends_continue_cleanly() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("demo.journal");
        let journal = Journal::open(&path).expect("open").journal;
        journal
            .intent(step("a", JournalAction::Create))
            .expect("intent");
        drop(journal);
        let mut bytes = fs::read(&path).expect("read");
        let good = bytes.len();
        bytes.extend_from_slice(br#"{"kind":"intent","step":2,"addr"#);
        fs::write(&path, &bytes).expect("write torn");

        let opened = Journal::open(&path).expect("torn tail tolerated");
        assert_eq!(opened.unfinished.len(), 1);
        assert_eq!(
            opened.notes,
            vec![JournalNote::TornTail {
                line: 2,
                bytes: bytes.len() - good
            }]
        );
        assert_eq!(
            fs::read(&path).expect("read").len(),
            good,
            "torn bytes removed"
        );
        opened
            .journal
            .intent(step("b", JournalAction::Create))
            .expect("append");
        let reopened = Journal::open(&path).expect("reopen");
        assert!(reopened.notes.is_empty());
        assert_eq!(reopened.unfinished.len(), 2);
    }

    #[test]
    fn record_that_lost_only_its_newline_is_kept_and_separated() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("demo.journal");
        let journal = Journal::open(&path).expect("open").journal;
        journal
            .intent(step("a", JournalAction::Create))
            .expect("intent");
        drop(journal);
        let mut bytes = fs::read(&path).expect("read");
        bytes.pop();
        fs::write(&path, &bytes).expect("write");
        let opened = Journal::open(&path).expect("open");
        assert_eq!(opened.unfinished.len(), 1);
        opened
            .journal
            .intent(step("b", JournalAction::Create))
            .expect("append");
        assert_eq!(Journal::open(&path).expect("reopen").unfinished.len(), 2);
    }

    #[test]
    fn damage_before_the_last_line_is_an_error_and_nothing_is_changed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("demo.journal");
        let journal = Journal::open(&path).expect("open").journal;
        journal
            .intent(step("a", JournalAction::Create))
            .expect("intent");
        drop(journal);
        let mut bytes = b"not json\n".to_vec();
        bytes.extend(fs::read(&path).expect("read"));
        fs::write(&path, &bytes).expect("write");
        let err = Journal::open(&path).expect_err("damaged");
        assert!(
            matches!(err, JournalError::Corrupt { line: 1, .. }),
            "{err}"
        );
        assert_eq!(fs::read(&path).expect("read"), bytes);
    }

    #[test]
    fn the_largest_step_id_does_not_overflow() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("demo.journal");
        let line = format!("{{\"kind\":\"done\",\"step\":{},\"at\":\"t\"}}\n", u64::MAX);
        fs::write(&path, line).expect("write");
        let opened = Journal::open(&path).expect("open");
        let err = opened
            .journal
            .intent(step("a", JournalAction::Create))
            .expect_err("no ids left");
        assert!(err.to_string().contains("exhausted"), "{err}");
    }

    #[test]
    fn done_without_intent_is_noted() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("demo.journal");
        fs::write(&path, b"{\"kind\":\"done\",\"step\":7,\"at\":\"t\"}\n").expect("write");
        let opened = Journal::open(&path).expect("open");
        assert_eq!(
            opened.notes,
            vec![JournalNote::DoneWithoutIntent { line: 1, step: 7 }]
        );
        let next = opened
            .journal
            .intent(step("a", JournalAction::Create))
            .expect("intent");
        assert_eq!(next, 8);
    }
}
