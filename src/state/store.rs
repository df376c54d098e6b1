//! Reading and atomically writing one state file, with a compare-and-write guard and one backup.
//!
//! A write goes to a temporary file in the same folder, is fsync'd, replaces the old file by `rename`,
//! and the folder is fsync'd, so after a crash the file is either the old or the new version, never a
//! mix. The previous version is kept as `<file>.backup`. Reading never modifies anything: a damaged,
//! truncated, future-version or foreign file is reported with a typed error and left byte-for-byte
//! as it was. The compare-and-write check (lineage and serial) is only race-free while the caller
//! holds the stack's [`super::Lock`]; this module never takes the lock itself.
//!
//! During an apply the file is a checkpoint: the steps' state writes go to the journal as commits
//! (see [`super::Journal`]) and the file is rewritten only now and then and at the end of the run.
//! [`StateStore::read`] therefore replays the journal's commits over the file, so every reader sees
//! the state as last recorded, and a serial counts the commits too.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde::de::IgnoredAny;
use uuid::Uuid;

use super::journal::{Journal, JournalError, JournalOpen, read_commits};
use super::lock::{Acquired, Lock, LockError, LockRequest};
use super::model::{Changes, FORMAT_VERSION, StateFile};
use super::replica::{Replica, ReplicaError, Shown};

/// Permission bits of state files and their backups: owner read/write only.
pub(crate) const STATE_FILE_MODE: u32 = 0o600;

/// Everything that can go wrong reading or writing a state file. Each message names the file, says
/// what is wrong and what to do; none ever contains a value from the state.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read state file {}: {source}", .path.display())]
    Read { path: PathBuf, source: io::Error },

    #[error("cannot write state file {}: {source}; the previous state file is unchanged", .path.display())]
    Write { path: PathBuf, source: io::Error },

    #[error("state file {} is truncated ({detail}); it was not changed. {remedy}", .path.display())]
    Truncated {
        path: PathBuf,
        detail: String,
        remedy: String,
    },

    #[error("state file {} is not valid JSON ({detail}); it was not changed. {remedy}", .path.display())]
    Corrupt {
        path: PathBuf,
        detail: String,
        remedy: String,
    },

    #[error("state file {} does not have the shape of a stackform state ({detail}); it was not changed. {remedy}", .path.display())]
    Invalid {
        path: PathBuf,
        detail: String,
        remedy: String,
    },

    #[error(
        "state file {} uses format version {found}, newer than this stackform understands (up to {supported}); it was not changed. Upgrade stackform to work with this stack",
        .path.display()
    )]
    FutureVersion {
        path: PathBuf,
        found: u64,
        supported: u32,
    },

    #[error("state file {} has format version {found}, which no stackform release wrote; it was not changed. {remedy}", .path.display())]
    UnsupportedVersion {
        path: PathBuf,
        found: u64,
        remedy: String,
    },

    #[error(
        "state file {} belongs to a different state history (lineage {found}, expected {expected}); it was not changed. Check that --state/--state-dir and the stack name point at this stack's state",
        .path.display()
    )]
    LineageMismatch {
        path: PathBuf,
        expected: Uuid,
        found: Uuid,
    },

    #[error(
        "state file {} changed since it was read (expected {}, found {}); it was not overwritten. Another run wrote it: plan again against the current state",
        .path.display(), SerialDisplay(*.expected), SerialDisplay(*.found)
    )]
    Moved {
        path: PathBuf,
        expected: Option<u64>,
        found: Option<u64>,
    },

    #[error("invalid stack name `{name}` for a state file: {reason}")]
    InvalidStackName { name: String, reason: &'static str },

    /// The journal beside the state file, whose commits complete it, cannot be read.
    #[error("{0}")]
    Journal(#[source] JournalError),

    /// The local working copy was written but its replica (the remote state) refused or failed the
    /// same write: the run stops before it acts further.
    #[error("cannot write the state to {replica}: {source}")]
    Replica {
        replica: String,
        source: ReplicaError,
    },
}

/// Renders an optional serial as `serial 3` or `no state file`.
struct SerialDisplay(Option<u64>);

impl fmt::Display for SerialDisplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(serial) => write!(f, "serial {serial}"),
            None => f.write_str("no state file"),
        }
    }
}

/// Where one stack's state lives: the state file and, beside it, its backup, lock and journal; and
/// the replica every durable write is mirrored to, when the state is kept remotely (see
/// [`Replica`]; the file is then a working copy).
#[derive(Clone)]
pub struct StateStore {
    path: PathBuf,
    replica: Option<Arc<dyn Replica>>,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StateStore")
            .field("path", &self.path)
            .field("replica", &self.replica.as_deref().map(Shown))
            .finish()
    }
}

/// Two stores are the same when they name the same file.
impl PartialEq for StateStore {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path
    }
}

impl Eq for StateStore {}

/// Which version of a state file a checkpoint wrote: each write makes a new file (rename), so an
/// unchanged stamp means nobody wrote the file since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
}

/// A state serialised for a checkpoint (see [`StateStore::snapshot`]).
#[derive(Debug)]
pub(crate) struct Snapshot {
    lineage: Uuid,
    /// The serial the file on disk must have (`None`: no file yet).
    expected: Option<u64>,
    /// The serial written.
    serial: u64,
    bytes: Vec<u8>,
}

/// Test-only places where a write can be made to fail, to prove the old file survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailPoint {
    /// After the temporary file was written but before it was synced.
    AfterTempWrite,
    /// After the backup was made, just before the rename.
    BeforeRename,
}

impl StateStore {
    /// A store for an explicit state file path (`--state FILE`).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            replica: None,
        }
    }

    /// The same store, with every durable write of the state file and the journal mirrored to
    /// `replica` once it is on disk.
    pub fn with_replica(mut self, replica: Arc<dyn Replica>) -> Self {
        self.replica = Some(replica);
        self
    }

    /// Where the state is mirrored to, when it is.
    pub fn replica(&self) -> Option<&Arc<dyn Replica>> {
        self.replica.as_ref()
    }

    /// Calls the replica (if any) after a durable write of the state file.
    fn replicate(&self, bytes: &[u8], serial: u64) -> Result<(), StateError> {
        match &self.replica {
            Some(r) => r
                .state_written(bytes, serial)
                .map_err(|source| StateError::Replica {
                    replica: r.describe(),
                    source,
                }),
            None => Ok(()),
        }
    }

    /// The store for `stack` in `dir`: `dir/<stack>.json`. The stack name becomes a file name, so it
    /// must be non-empty and free of path separators and leading dots.
    pub fn for_stack(dir: impl AsRef<Path>, stack: &str) -> Result<Self, StateError> {
        let invalid = |reason| StateError::InvalidStackName {
            name: stack.to_owned(),
            reason,
        };
        if stack.is_empty() {
            return Err(invalid("it is empty"));
        }
        if stack.starts_with('.') {
            return Err(invalid("it starts with a dot"));
        }
        if stack
            .chars()
            .any(|c| c == '/' || c == '\\' || c.is_control())
        {
            return Err(invalid("it contains a path separator or control character"));
        }
        Ok(Self::new(dir.as_ref().join(format!("{stack}.json"))))
    }

    /// The state file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `<state file>.backup`: the version before the last write.
    pub fn backup_path(&self) -> PathBuf {
        sibling(&self.path, ".backup", false)
    }

    /// `<stack>.lock` beside the state file (`x.json` → `x.lock`).
    pub fn lock_path(&self) -> PathBuf {
        sibling(&self.path, ".lock", true)
    }

    /// `<stack>.journal` beside the state file (`x.json` → `x.journal`).
    pub fn journal_path(&self) -> PathBuf {
        sibling(&self.path, ".journal", true)
    }

    /// Takes this stack's lock (see [`Lock::acquire`]).
    pub fn lock(&self, request: &LockRequest) -> Result<Acquired, LockError> {
        Lock::acquire(self.lock_path(), request)
    }

    /// Opens this stack's apply journal (see [`Journal::open`]).
    pub(crate) fn open_journal(&self) -> Result<JournalOpen, JournalError> {
        let mut open = Journal::open(self.journal_path())?;
        open.journal.replica = self.replica.clone();
        Ok(open)
    }

    /// Reads the state, or `None` if there is no state file yet: the file with the commits of the
    /// journal beside it replayed over it (each one that extends the serial reached so far is
    /// applied and counts the serial one up). Never modifies any file.
    pub fn read(&self) -> Result<Option<StateFile>, StateError> {
        let Some(mut state) = read_state(&self.path, &self.remedy())? else {
            // A run writes the state file before its first commit, so commits without a file
            // belong to a state that was removed since: there is nothing to extend.
            return Ok(None);
        };
        let commits: Vec<(u64, Changes)> =
            read_commits(&self.journal_path()).map_err(StateError::Journal)?;
        for (base, changes) in commits {
            if base == state.serial
                && let Some(next) = base.checked_add(1)
            {
                changes.apply_to(&mut state);
                state.serial = next;
            }
        }
        Ok(Some(state))
    }

    /// The lineage and serial [`read`](Self::read) would give, without building the state: the
    /// file is checked for JSON syntax and format version only.
    fn head(&self) -> Result<Option<(Uuid, u64)>, StateError> {
        let Some(head) = read_head(&self.path, &self.remedy())? else {
            return Ok(None);
        };
        let commits: Vec<(u64, IgnoredAny)> =
            read_commits(&self.journal_path()).map_err(StateError::Journal)?;
        let mut serial = head.serial;
        for (base, _) in commits {
            if base == serial
                && let Some(next) = base.checked_add(1)
            {
                serial = next;
            }
        }
        Ok(Some((head.lineage, serial)))
    }

    /// Like [`read`](Self::read), but a state of another lineage is an error.
    pub fn read_expecting(&self, lineage: Uuid) -> Result<Option<StateFile>, StateError> {
        let state = self.read()?;
        if let Some(found) = &state
            && found.lineage != lineage
        {
            return Err(StateError::LineageMismatch {
                path: self.path.clone(),
                expected: lineage,
                found: found.lineage,
            });
        }
        Ok(state)
    }

    /// The state to work on and the serial to pass to [`write`](Self::write): the file's state, or a
    /// new empty state for `stack` (fresh lineage) with `None` when there is no file yet.
    pub fn read_or_new(&self, stack: &str) -> Result<(StateFile, Option<u64>), StateError> {
        Ok(match self.read()? {
            Some(state) => {
                let serial = state.serial;
                (state, Some(serial))
            }
            None => (StateFile::new(stack), None),
        })
    }

    /// Reads the backup (the version before the last write), or `None` if there is none.
    pub fn read_backup(&self) -> Result<Option<StateFile>, StateError> {
        read_state(&self.backup_path(), "")
    }

    /// Writes `state` atomically if the file on disk is still the one the caller read.
    ///
    /// `expected_serial` is the serial the caller read (`None`: "there was no state file"). The write
    /// fails with [`StateError::Moved`] if the file on disk has another serial (or appeared or
    /// vanished), with [`StateError::LineageMismatch`] if it belongs to another lineage, and with the
    /// read errors if it is damaged; in all those cases nothing is changed. On success the new
    /// serial (greater than both the old one and `state.serial`) is stored in `state.serial` and
    /// returned, sensitive paths are redacted in the written copy, and the previous file is kept
    /// as the backup. Callers must hold the stack's lock for the check to be race-free.
    pub fn write(
        &self,
        state: &mut StateFile,
        expected_serial: Option<u64>,
    ) -> Result<u64, StateError> {
        self.write_inner(state, expected_serial, None)
    }

    /// Serialises `state` for [`checkpoint`](Self::checkpoint), on the caller's thread, with the
    /// serial the write will give it (one more than its own). Sensitive paths are redacted in
    /// `state` itself (idempotent) so no copy of the state is made.
    ///
    /// With `bump` false the serial stays: the snapshot only writes down commits the journal
    /// already counted (the last checkpoint of a run).
    pub(crate) fn snapshot(
        &self,
        state: &mut StateFile,
        bump: bool,
    ) -> Result<Snapshot, StateError> {
        let Some(serial) = state.serial.checked_add(u64::from(bump)) else {
            return Err(self.serial_exhausted());
        };
        let bytes = self.serialize(state, serial)?;
        Ok(Snapshot {
            lineage: state.lineage,
            expected: (state.serial > 0).then_some(state.serial),
            serial,
            bytes,
        })
    }

    /// Writes a [`snapshot`](Self::snapshot) as the state file, for a run that holds the lock and
    /// journaled every change since it read the state. When the file is still the one this run's
    /// last checkpoint wrote (`last`, compared by inode, size and modification time) it needs no
    /// check; otherwise it is checked for lineage, serial (with the journal's commits counted) and
    /// syntax, as [`write`](Self::write) does, but not parsed into a state. Returns the new serial
    /// (the caller sets it in its state) and the stamp of the file written.
    pub(crate) fn checkpoint(
        &self,
        snapshot: Snapshot,
        last: Option<Stamp>,
    ) -> Result<(u64, Option<Stamp>), StateError> {
        let has_current = match last {
            Some(last) if self.stamp() == Some(last) => true,
            _ => {
                let current = self.head()?;
                self.check(snapshot.lineage, snapshot.expected, current)?;
                current.is_some()
            }
        };
        self.replace(&snapshot.bytes, has_current, None)?;
        self.replicate(&snapshot.bytes, snapshot.serial)?;
        Ok((snapshot.serial, self.stamp()))
    }

    /// The stamp of the state file as it is now (`None`: there is none, or it cannot be read).
    fn stamp(&self) -> Option<Stamp> {
        let meta = fs::metadata(&self.path).ok()?;
        Some(Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
        })
    }

    pub(crate) fn write_inner(
        &self,
        state: &mut StateFile,
        expected_serial: Option<u64>,
        fail: Option<FailPoint>,
    ) -> Result<u64, StateError> {
        let current = self.read()?.map(|s| (s.lineage, s.serial));
        self.check(state.lineage, expected_serial, current)?;
        let found_serial = current.map(|(_, serial)| serial);
        let Some(serial) = found_serial.unwrap_or(0).max(state.serial).checked_add(1) else {
            return Err(self.serial_exhausted());
        };
        let bytes = self.serialize(state, serial)?;
        self.replace(&bytes, current.is_some(), fail)?;
        self.replicate(&bytes, serial)?;
        state.version = FORMAT_VERSION;
        state.serial = serial;
        Ok(serial)
    }

    /// The compare of compare-and-write: `current` (the lineage and serial on disk) must be the
    /// caller's lineage and the serial it expects.
    fn check(
        &self,
        lineage: Uuid,
        expected_serial: Option<u64>,
        current: Option<(Uuid, u64)>,
    ) -> Result<(), StateError> {
        if let Some((found, _)) = current
            && found != lineage
        {
            return Err(StateError::LineageMismatch {
                path: self.path.clone(),
                expected: lineage,
                found,
            });
        }
        let found_serial = current.map(|(_, serial)| serial);
        if found_serial != expected_serial {
            return Err(StateError::Moved {
                path: self.path.clone(),
                expected: expected_serial,
                found: found_serial,
            });
        }
        Ok(())
    }

    /// Redacts `state` in place and serialises it with the version and serial the file will hold
    /// (its own are left as they were).
    fn serialize(&self, state: &mut StateFile, serial: u64) -> Result<Vec<u8>, StateError> {
        state.redact_all();
        let before = (state.version, state.serial);
        state.version = FORMAT_VERSION;
        state.serial = serial;
        let bytes = serde_json::to_vec_pretty(&*state);
        (state.version, state.serial) = before;
        let mut bytes = bytes.map_err(|e| self.write_error(io::Error::other(e)))?;
        bytes.push(b'\n');
        Ok(bytes)
    }

    /// Durably replaces the state file with `bytes` (temporary file, fsync, backup of the current
    /// file when there is one, rename, folder fsync).
    fn replace(
        &self,
        bytes: &[u8],
        has_current: bool,
        fail: Option<FailPoint>,
    ) -> Result<(), StateError> {
        // A symlinked state file (kept elsewhere on purpose) stays a symlink: write its target.
        let target = resolve_symlink(&self.path);
        let dir = parent_dir(&target);
        let temp = temp_path(&target);
        let result = (|| {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)?;
            write_synced(&temp, bytes, fail)?;
            if has_current {
                self.keep_backup(&target)?;
            }
            if fail == Some(FailPoint::BeforeRename) {
                return Err(io::Error::other("injected failure before rename"));
            }
            fs::rename(&temp, &target)?;
            sync_dir(&dir)
        })();
        if let Err(err) = result {
            let _ = fs::remove_file(&temp);
            return Err(self.write_error(err));
        }
        Ok(())
    }

    fn serial_exhausted(&self) -> StateError {
        StateError::Invalid {
            path: self.path.clone(),
            detail: String::from("its serial is at the largest possible value"),
            remedy: self.remedy(),
        }
    }

    /// Makes `<file>.backup` a copy of the current file, atomically (hard link, else copy, then
    /// rename over the old backup).
    fn keep_backup(&self, current: &Path) -> io::Result<()> {
        let backup = self.backup_path();
        let temp = temp_path(&backup);
        let result = (|| {
            if fs::hard_link(current, &temp).is_err() {
                let bytes = fs::read(current)?;
                write_synced(&temp, &bytes, None)?;
            }
            // A linked old file keeps its mode, which a user may have loosened.
            fs::set_permissions(&temp, fs::Permissions::from_mode(STATE_FILE_MODE))?;
            fs::rename(&temp, &backup)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&temp);
        }
        result
    }

    fn write_error(&self, source: io::Error) -> StateError {
        StateError::Write {
            path: self.path.clone(),
            source,
        }
    }

    /// What to tell a user whose state file is damaged.
    fn remedy(&self) -> String {
        let backup = self.backup_path();
        if backup.exists() {
            format!(
                "Repair it, or restore the previous version from {} (copy it over the state file)",
                backup.display()
            )
        } else {
            String::from(
                "Repair it by hand, or move it aside and import the resources again with `stackform state import`",
            )
        }
    }
}

/// The part of a state file read first: only its format version.
#[derive(Deserialize)]
#[serde(expecting = "a JSON object with a `version` field")]
struct Probe {
    version: Option<u64>,
}

/// Reads and parses a state file without modifying it. `remedy` ends messages about damage.
fn read_state(path: &Path, remedy: &str) -> Result<Option<StateFile>, StateError> {
    let Some(bytes) = read_checked(path, remedy)? else {
        return Ok(None);
    };
    let mut state = serde_json::from_slice::<StateFile>(&bytes)
        .map_err(|e| parse_error(path, &e, remedy.to_owned()))?;
    state.compact();
    Ok(Some(state))
}

/// A state file's bytes once they are known to be a JSON object of a format version this build
/// reads, or `None` when there is no file.
fn read_checked(path: &Path, remedy: &str) -> Result<Option<Vec<u8>>, StateError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StateError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    let remedy = remedy.to_owned();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(StateError::Truncated {
            path: path.to_owned(),
            detail: String::from("the file is empty"),
            remedy,
        });
    }

    // serde would also accept a state as a positional array; a state file is an object.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(StateError::Invalid {
            path: path.to_owned(),
            detail: String::from("it is not a JSON object"),
            remedy,
        });
    }
    // First only the version, so a newer format is reported as such rather than as a parse error.
    let probe: Probe =
        serde_json::from_slice(&bytes).map_err(|e| parse_error(path, &e, remedy.clone()))?;
    match probe.version {
        None => {
            return Err(StateError::Invalid {
                path: path.to_owned(),
                detail: String::from("there is no `version` field"),
                remedy,
            });
        }
        Some(found) if found > u64::from(FORMAT_VERSION) => {
            return Err(StateError::FutureVersion {
                path: path.to_owned(),
                found,
                supported: FORMAT_VERSION,
            });
        }
        Some(0) => {
            return Err(StateError::UnsupportedVersion {
                path: path.to_owned(),
                found: 0,
                remedy,
            });
        }
        Some(_) => {}
    }
    Ok(Some(bytes))
}

/// The fields of a state file a checkpoint checks; the rest is skipped (but must be valid JSON).
#[derive(Deserialize)]
#[serde(expecting = "a JSON object with `version`, `lineage` and `serial` fields")]
struct Head {
    lineage: Uuid,
    serial: u64,
}

/// Reads a state file's lineage and serial, with the version checks of [`read_state`].
fn read_head(path: &Path, remedy: &str) -> Result<Option<Head>, StateError> {
    let Some(bytes) = read_checked(path, remedy)? else {
        return Ok(None);
    };
    serde_json::from_slice::<Head>(&bytes)
        .map(Some)
        .map_err(|e| parse_error(path, &e, remedy.to_owned()))
}

fn parse_error(path: &Path, err: &serde_json::Error, remedy: String) -> StateError {
    use serde_json::error::Category;
    let path = path.to_owned();
    let detail = err.to_string();
    match err.classify() {
        Category::Eof => StateError::Truncated {
            path,
            detail: format!("it ends early, {detail}"),
            remedy,
        },
        Category::Syntax | Category::Io => StateError::Corrupt {
            path,
            detail,
            remedy,
        },
        Category::Data => StateError::Invalid {
            path,
            detail,
            remedy,
        },
    }
}

/// Writes `bytes` to a new file at `path` with mode 0600 and syncs it to disk.
fn write_synced(path: &Path, bytes: &[u8], fail: Option<FailPoint>) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(STATE_FILE_MODE)
        .open(path)?;
    // The umask may only have removed bits; make the mode exact anyway.
    file.set_permissions(fs::Permissions::from_mode(STATE_FILE_MODE))?;
    file.write_all(bytes)?;
    if fail == Some(FailPoint::AfterTempWrite) {
        return Err(io::Error::other(
            "injected failure after writing the temporary file",
        ));
    }
    file.sync_all()
}

/// Makes a completed rename durable.
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The file a symlink points to (following chains), or `path` itself if it is not a symlink or
/// its target cannot be resolved.
fn resolve_symlink(path: &Path) -> PathBuf {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => {
            fs::canonicalize(path).unwrap_or_else(|_| path.to_owned())
        }
        _ => path.to_owned(),
    }
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// A unique hidden temporary name in the same folder as `path`, so `rename` stays atomic.
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let unique = Uuid::new_v4().simple().to_string();
    parent_dir(path).join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        &unique[..12]
    ))
}

/// `x.json` + `.lock` → `x.lock` (when `replace_json`), `x.json` + `.backup` → `x.json.backup`.
fn sibling(path: &Path, suffix: &str, replace_json: bool) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| String::from("state"));
    let stem = match name.strip_suffix(".json") {
        Some(stem) if replace_json && !stem.is_empty() => stem.to_owned(),
        _ => name,
    };
    parent_dir(path).join(format!("{stem}{suffix}"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::state::FieldPath;
    use crate::state::model::ResourceState;

    fn store() -> (tempfile::TempDir, StateStore) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = StateStore::for_stack(dir.path(), "demo").expect("valid name");
        (dir, store)
    }

    fn sample() -> StateFile {
        let mut state = StateFile::new("demo");
        state.record(
            "store",
            ResourceState::new(
                "storage_account",
                "/sub/x/storageAccounts/s",
                json!({"name": "s"}),
                json!({}),
            ),
        );
        state
    }

    #[test]
    fn a_serial_at_its_maximum_is_an_error_not_an_overflow() {
        let (_dir, store) = store();
        let mut state = sample();
        state.serial = u64::MAX;
        let err = store.write(&mut state, None).expect_err("no room");
        assert!(err.to_string().contains("largest possible"), "{err}");
        assert!(!store.path().exists());
    }

    #[test]
    fn sibling_paths() {
        let s = StateStore::new("state/demo.json");
        assert_eq!(s.backup_path(), PathBuf::from("state/demo.json.backup"));
        assert_eq!(s.lock_path(), PathBuf::from("state/demo.lock"));
        assert_eq!(s.journal_path(), PathBuf::from("state/demo.journal"));
        let odd = StateStore::new("plain");
        assert_eq!(odd.lock_path(), PathBuf::from("./plain.lock"));
    }

    #[test]
    fn stack_names_that_are_not_file_names_are_refused() {
        for bad in ["", "../x", "a/b", ".hidden", "a\nb"] {
            assert!(
                matches!(
                    StateStore::for_stack("d", bad),
                    Err(StateError::InvalidStackName { .. })
                ),
                "{bad:?} accepted"
            );
        }
    }

    /// Reading replays the journal's commits that extend the file's serial (each counts as a
    /// write); a checkpoint folds them in, after which they no longer apply.
    #[test]
    fn read_replays_the_commits_that_extend_the_file() {
        use crate::state::model::Touched;
        let (_dir, store) = store();
        let mut state = sample();
        store.write(&mut state, None).expect("write");
        let journal = store.open_journal().expect("journal").journal;
        let mut live = state.clone();
        let mut touched = Touched::default();
        touched.watch(&live, "blob");
        live.record(
            "blob",
            ResourceState::new("blob", "https://s/c/b", json!({"name": "b"}), json!({})),
        );
        journal
            .commit(1, &[], &touched.changes(&live))
            .expect("commit");
        let mut touched = Touched::default();
        touched.watch(&live, "store");
        live.resources.shift_remove("store");
        journal
            .commit(2, &[], &touched.changes(&live))
            .expect("commit");
        // A commit that extends another serial (a stray one) changes nothing.
        journal
            .commit(9, &[], &touched.changes(&state))
            .expect("commit");

        let read = store.read().expect("read").expect("state");
        assert_eq!(read.serial, 3);
        assert_eq!(read.resources.keys().collect::<Vec<_>>(), vec!["blob"]);
        let mut replayed = read.clone();
        assert_eq!(store.write(&mut replayed, Some(3)).expect("checkpoint"), 4);
        let again = store.read().expect("read").expect("state");
        assert_eq!(again.serial, 4);
        assert_eq!(again.resources, read.resources);
        // A write expecting the file's own serial, not the replayed one, is refused.
        assert!(matches!(
            store.write(&mut state, Some(1)),
            Err(StateError::Moved { .. })
        ));
    }

    /// A checkpoint skips reading the file only while it is the very file the last checkpoint
    /// wrote: one written by anyone else in between is caught by the compare.
    #[test]
    fn a_checkpoint_after_another_write_is_refused() {
        let (_dir, store) = store();
        let mut state = sample();
        store.write(&mut state, None).expect("write");
        let snapshot = store.snapshot(&mut state, true).expect("snapshot");
        let (serial, stamp) = store.checkpoint(snapshot, None).expect("checkpoint");
        assert_eq!(serial, 2);
        state.serial = serial;
        let snapshot = store.snapshot(&mut state, true).expect("snapshot");
        let (serial, stamp) = store.checkpoint(snapshot, stamp).expect("unchanged file");
        assert_eq!(serial, 3);
        state.serial = serial;

        let mut other = store.read().expect("read").expect("state");
        store.write(&mut other, Some(3)).expect("another writer");
        let snapshot = store.snapshot(&mut state, true).expect("snapshot");
        let err = store.checkpoint(snapshot, stamp).expect_err("moved");
        assert!(matches!(err, StateError::Moved { .. }), "{err}");
        assert_eq!(store.read().expect("read").expect("state").serial, 4);
    }

    /// A commit holds records redacted as in the state file, even one put in without `record`.
    #[test]
    fn commits_never_hold_a_secret() {
        use crate::state::model::Touched;
        let (_dir, store) = store();
        let mut state = sample();
        store.write(&mut state, None).expect("write");
        let journal = store.open_journal().expect("journal").journal;
        let mut touched = Touched::default();
        touched.watch(&state, "store");
        let mut secret = ResourceState::new(
            "storage_account",
            "/sub/x/storageAccounts/s",
            json!({"name": "s", "access_key": "TOP-SECRET-KEY"}),
            json!({}),
        );
        secret.sensitive = vec![FieldPath::parse("access_key").expect("path")];
        state.resources.insert(String::from("store"), secret);
        journal
            .commit(1, &[], &touched.changes(&state))
            .expect("commit");
        let text = fs::read_to_string(store.journal_path()).expect("journal");
        assert!(
            text.contains("access_key") && !text.contains("TOP-SECRET-KEY"),
            "{text}"
        );
        let mode = fs::metadata(store.journal_path())
            .expect("meta")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }

    /// A failure at any point of a write leaves the previous state file and backup as they were and no
    /// temporary files behind.
    #[test]
    fn failed_write_leaves_old_file_intact() {
        for point in [FailPoint::AfterTempWrite, FailPoint::BeforeRename] {
            let (dir, store) = store();
            let mut state = sample();
            store.write(&mut state, None).expect("first write");
            store.write(&mut state, Some(1)).expect("second write");
            let before = fs::read(store.path()).expect("read state");
            let backup_before = fs::read(store.backup_path()).expect("read backup");

            state.outputs.insert(String::from("new"), json!(1));
            let err = store
                .write_inner(&mut state, Some(2), Some(point))
                .expect_err("injected failure");
            assert!(matches!(err, StateError::Write { .. }), "{err}");
            assert!(
                err.to_string().contains("previous state file is unchanged"),
                "{err}"
            );
            assert_eq!(
                fs::read(store.path()).expect("read state"),
                before,
                "{point:?}"
            );
            assert_eq!(state.serial, 2, "serial must not move on failure");
            let names: Vec<String> = fs::read_dir(dir.path())
                .expect("list")
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect();
            assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");
            if point == FailPoint::AfterTempWrite {
                assert_eq!(
                    fs::read(store.backup_path()).expect("read backup"),
                    backup_before
                );
            }
            // The store still works after the failure.
            assert_eq!(
                store
                    .write(&mut state, Some(2))
                    .expect("write after failure"),
                3
            );
        }
    }
}
