//! The per-stack lock that keeps two runs from changing one stack at once.
//!
//! The lock is an OS file lock (`flock` through std's `File::try_lock`) on `<stack>.lock`, which the
//! kernel releases when its holder dies, plus a small JSON record inside the file naming the holder
//! (user, host, pid, command, start time) for error messages. A lock file that still has a record
//! but whose OS lock is free was left by a process that died (or lost its lock): it is taken over
//! and the caller gets a [`TakeoverNotice`] to show. The holder removes the file when it releases;
//! because a waiter may have opened the file just before that, every acquire checks, after locking,
//! that the path still names the file it locked, and starts over if not.
//!
//! This module never prints (notices and errors are values for the CLI) and never blocks forever:
//! without a timeout an acquire fails at once, with one it polls until the deadline.

use std::fmt;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::host::{self, Liveness};

/// How often a waiting acquire tries again.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Who holds (or held) a lock. Stored as JSON inside the lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockInfo {
    /// Unique per acquisition.
    pub id: Uuid,
    /// `user@host`.
    pub holder: String,
    pub user: String,
    pub host: String,
    pub pid: u32,
    /// What the holder is doing (`apply`, `destroy`); never command-line arguments, which may hold
    /// secrets.
    pub command: String,
    /// When the lock was taken, RFC 3339 UTC.
    pub since: String,
}

impl LockInfo {
    /// A fresh record of this process taking a lock now for `command` (a new id; user, host, pid
    /// and start time read from this machine). Shared by the file lock and the remote lease lock.
    pub(crate) fn for_this_process(command: &str) -> Self {
        Self {
            id: Uuid::new_v4(),
            holder: format!("{}@{}", host::username(), host::hostname()),
            user: host::username(),
            host: host::hostname(),
            pid: std::process::id(),
            command: command.to_owned(),
            since: host::now_rfc3339(),
        }
    }
}

impl fmt::Display for LockInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (pid {} on host {}, running `{}`, since {})",
            self.holder, self.pid, self.host, self.command, self.since
        )
    }
}

/// Renders an optional holder for messages.
struct HolderDisplay<'a>(Option<&'a LockInfo>);

impl fmt::Display for HolderDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(info) => info.fmt(f),
            None => {
                f.write_str("an unknown process (the lock file has no readable holder record yet)")
            }
        }
    }
}

/// What an acquire is for, and how long it may wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockRequest {
    /// Recorded as [`LockInfo::command`]; a command name, not its arguments.
    pub command: String,
    /// `None`: fail at once if the lock is held. `Some(t)`: poll until `t` has passed.
    pub timeout: Option<Duration>,
}

impl LockRequest {
    /// A request that fails at once if the lock is held.
    pub fn new(command: impl Into<String>) -> Self {
        Self {
            command: command.into(),
            timeout: None,
        }
    }

    /// The same request, waiting up to `timeout` for the holder to release.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// Why a left-over lock could be taken over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TakeoverReason {
    /// The recorded process no longer runs on this host.
    HolderDead,
    /// The recorded process may still run (or its pid was reused) but no longer holds the lock.
    HolderReleased,
    /// The holder ran on another host; the OS lock it held is gone.
    OtherHost,
    /// The lock file held a record that could not be read (a holder died while writing it).
    Unreadable,
}

/// Returned with a lock that was taken over from a holder that left its record behind. The CLI shows
/// it; the previous run may have been interrupted, so its journal deserves a look.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TakeoverNotice {
    pub path: PathBuf,
    pub previous: Option<LockInfo>,
    pub reason: TakeoverReason,
}

impl fmt::Display for TakeoverNotice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let why = match self.reason {
            TakeoverReason::HolderDead => "that process is no longer running",
            TakeoverReason::HolderReleased => "that process no longer holds it",
            TakeoverReason::OtherHost => "its lock on the file was released",
            TakeoverReason::Unreadable => "its record was incomplete",
        };
        write!(
            f,
            "took over the stale lock {} left by {}: {why}",
            self.path.display(),
            HolderDisplay(self.previous.as_ref())
        )
    }
}

/// Failures to take or release a lock.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "state is locked by {} ({}){}. Wait for it to finish, retry with a lock timeout, or, if that process is certainly gone, run `stackform state unlock --force`",
        HolderDisplay(.holder.as_deref()), .path.display(), dead_note(*.recorded_pid_dead)
    )]
    Held {
        path: PathBuf,
        holder: Option<Box<LockInfo>>,
        /// The record names a pid on this host that is not running: the lock is held by some other
        /// process than the one recorded.
        recorded_pid_dead: bool,
    },

    #[error(
        "state is still locked by {} ({}) after waiting {:.1}s{}. Try again later, or, if that process is certainly gone, run `stackform state unlock --force`",
        HolderDisplay(.holder.as_deref()), .path.display(), .waited.as_secs_f64(), dead_note(*.recorded_pid_dead)
    )]
    Timeout {
        path: PathBuf,
        waited: Duration,
        holder: Option<Box<LockInfo>>,
        recorded_pid_dead: bool,
    },

    #[error("cannot use lock file {}: {source}", .path.display())]
    Io { path: PathBuf, source: io::Error },
}

fn dead_note(recorded_pid_dead: bool) -> &'static str {
    if recorded_pid_dead {
        "; the recorded pid is not running, so another process holds the file lock"
    } else {
        ""
    }
}

/// Whether a record names a process on this host that is not running.
fn recorded_pid_dead(holder: Option<&LockInfo>) -> bool {
    holder.is_some_and(|info| {
        info.host == host::hostname() && host::liveness(info.pid) == Liveness::Dead
    })
}

/// A held lock; released when dropped (or explicitly, to see errors, with [`LockGuard::release`]).
#[derive(Debug)]
#[must_use = "the lock is released when the guard is dropped"]
pub struct LockGuard {
    path: PathBuf,
    file: Option<File>,
    info: LockInfo,
}

/// A successful acquire: the guard, and a notice if a stale lock was taken over.
#[derive(Debug)]
pub struct Acquired {
    pub guard: LockGuard,
    pub notice: Option<TakeoverNotice>,
}

/// What [`Lock::force_unlock`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnlockOutcome {
    /// There was no lock file.
    NotLocked,
    /// The lock file was left over (no process held it); removed. Holds the record it had.
    RemovedStale(Option<LockInfo>),
    /// A running process held the lock; its file was removed anyway so others can lock again.
    /// That process may still be changing the stack.
    BrokeHeldLock(Option<LockInfo>),
}

/// Entry points for the per-stack lock file.
pub struct Lock;

enum Attempt {
    Got {
        file: File,
        previous: Vec<u8>,
    },
    Busy,
    /// The file was replaced or removed between open and lock; try again at once.
    Stale,
}

impl Lock {
    /// Takes the lock at `path` (creating the file and its folder as needed).
    ///
    /// Without a timeout, a held lock fails at once with [`LockError::Held`] naming the holder; with
    /// one, the lock is polled until the deadline, then [`LockError::Timeout`]. A lock file left by a
    /// dead holder is taken over and reported in [`Acquired::notice`].
    pub fn acquire(path: impl Into<PathBuf>, request: &LockRequest) -> Result<Acquired, LockError> {
        Self::acquire_with(path, request, |_| {})
    }

    /// Like [`acquire`](Self::acquire), and calls `on_wait` once, with the holder's record, when the
    /// lock was found held and a timeout lets it wait (so the CLI can say whom it is waiting for).
    pub fn acquire_with(
        path: impl Into<PathBuf>,
        request: &LockRequest,
        mut on_wait: impl FnMut(Option<&LockInfo>),
    ) -> Result<Acquired, LockError> {
        let path = path.into();
        let io_err = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io_err)?;
        }
        let started = Instant::now();
        // A timeout too large to add to the clock means "wait as good as forever".
        let deadline = request.timeout.map(|t| {
            started
                .checked_add(t)
                .unwrap_or_else(|| started + Duration::from_secs(100 * 365 * 24 * 3600))
        });
        let mut announced = false;
        loop {
            match try_once(&path).map_err(io_err)? {
                Attempt::Got { mut file, previous } => {
                    let notice = takeover_notice(&path, &previous);
                    let info = LockInfo::for_this_process(&request.command);
                    if let Err(err) = write_info(&mut file, &info) {
                        // A full disk: leave no empty lock file behind. Removed while we hold the
                        // OS lock, as a release does, so a waiter that opened it starts over.
                        let _ = fs::remove_file(&path);
                        return Err(io_err(err));
                    }
                    return Ok(Acquired {
                        guard: LockGuard {
                            path,
                            file: Some(file),
                            info,
                        },
                        notice,
                    });
                }
                Attempt::Stale => {}
                Attempt::Busy => {
                    let now = Instant::now();
                    match deadline {
                        Some(deadline) if now < deadline => {
                            if !announced {
                                announced = true;
                                on_wait(Self::holder(&path).unwrap_or(None).as_ref());
                            }
                            std::thread::sleep(POLL_INTERVAL.min(deadline - now));
                        }
                        Some(_) => {
                            let holder = Self::holder(&path).unwrap_or(None);
                            return Err(LockError::Timeout {
                                path,
                                waited: now - started,
                                recorded_pid_dead: recorded_pid_dead(holder.as_ref()),
                                holder: holder.map(Box::new),
                            });
                        }
                        None => {
                            let holder = Self::holder(&path).unwrap_or(None);
                            return Err(LockError::Held {
                                path,
                                recorded_pid_dead: recorded_pid_dead(holder.as_ref()),
                                holder: holder.map(Box::new),
                            });
                        }
                    }
                }
            }
        }
    }

    /// The record in the lock file at `path`, if there is a readable one. Does not say whether the
    /// lock is held (a record may be stale); for display only.
    pub fn holder(path: &Path) -> Result<Option<LockInfo>, LockError> {
        match fs::read(path) {
            Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(LockError::Io {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// Removes the lock at `path` whoever holds it (`stackform state unlock --force`). A lock held
    /// by a running process cannot be revoked from it, so its file is removed instead: the next
    /// acquire creates a fresh one. The outcome says which case it was, for the CLI to report.
    pub fn force_unlock(path: impl AsRef<Path>) -> Result<UnlockOutcome, LockError> {
        let path = path.as_ref();
        let io_err = |source| LockError::Io {
            path: path.to_owned(),
            source,
        };
        let file = match OpenOptions::new().read(true).write(true).open(path) {
            Ok(file) => file,
            Err(err) if err.kind() == io::ErrorKind::NotFound => {
                return Ok(UnlockOutcome::NotLocked);
            }
            Err(source) => return Err(io_err(source)),
        };
        let previous = Self::holder(path)?;
        let held = match file.try_lock() {
            Ok(()) => false,
            Err(TryLockError::WouldBlock) => true,
            Err(TryLockError::Error(source)) => return Err(io_err(source)),
        };
        match fs::remove_file(path) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(io_err(source)),
        }
        drop(file);
        Ok(if held {
            UnlockOutcome::BrokeHeldLock(previous)
        } else {
            UnlockOutcome::RemovedStale(previous)
        })
    }
}

/// Opens (creating if needed) and tries to lock the file once.
fn try_once(path: &Path) -> io::Result<Attempt> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => return Ok(Attempt::Busy),
        Err(TryLockError::Error(err)) => return Err(err),
    }
    if !names_same_file(path, &file)? {
        return Ok(Attempt::Stale);
    }
    let mut previous = Vec::new();
    file.read_to_end(&mut previous)?;
    Ok(Attempt::Got { file, previous })
}

/// Whether `path` currently names the open `file` (not a newer file, and not removed).
fn names_same_file(path: &Path, file: &File) -> io::Result<bool> {
    let ours = file.metadata()?;
    match fs::metadata(path) {
        Ok(theirs) => Ok(theirs.dev() == ours.dev() && theirs.ino() == ours.ino()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(err) => Err(err),
    }
}

fn write_info(file: &mut File, info: &LockInfo) -> io::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(info).map_err(io::Error::other)?;
    bytes.push(b'\n');
    file.set_len(0)?;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(&bytes)?;
    file.sync_data()
}

/// A notice when the file we just locked still holds someone else's record.
fn takeover_notice(path: &Path, previous: &[u8]) -> Option<TakeoverNotice> {
    if previous.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    let (previous, reason) = match serde_json::from_slice::<LockInfo>(previous) {
        Err(_) => (None, TakeoverReason::Unreadable),
        Ok(info) => {
            let reason = if info.host != host::hostname() {
                TakeoverReason::OtherHost
            } else if host::liveness(info.pid) == Liveness::Dead {
                TakeoverReason::HolderDead
            } else {
                TakeoverReason::HolderReleased
            };
            (Some(info), reason)
        }
    };
    Some(TakeoverNotice {
        path: path.to_owned(),
        previous,
        reason,
    })
}

impl LockGuard {
    /// The record this guard wrote into the lock file.
    pub fn info(&self) -> &LockInfo {
        &self.info
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Releases the lock, reporting errors that dropping would hide.
    pub fn release(mut self) -> Result<(), LockError> {
        self.release_inner().map_err(|source| LockError::Io {
            path: self.path.clone(),
            source,
        })
    }

    /// Removes the lock file while still holding the lock (unless it was force-unlocked and now
    /// belongs to someone else), then closes it, which releases the OS lock.
    fn release_inner(&mut self) -> io::Result<()> {
        let Some(file) = self.file.take() else {
            return Ok(());
        };
        let result = match names_same_file(&self.path, &file) {
            Ok(true) => match fs::remove_file(&self.path) {
                Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
                _ => Ok(()),
            },
            Ok(false) => Ok(()),
            Err(err) => Err(err),
        };
        drop(file);
        result
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        let _ = self.release_inner();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock_path() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("demo.lock");
        (dir, path)
    }

    #[test]
    fn second_acquire_in_same_process_is_refused_with_holder_named() {
        let (_dir, path) = lock_path();
        let first = Lock::acquire(&path, &LockRequest::new("apply")).expect("first acquire");
        assert!(first.notice.is_none());
        let err = Lock::acquire(&path, &LockRequest::new("destroy")).expect_err("held");
        let LockError::Held {
            holder: Some(holder),
            ..
        } = &err
        else {
            panic!("unexpected {err:?}");
        };
        assert_eq!(holder.as_ref(), first.guard.info());
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        assert!(msg.contains("`apply`"), "{msg}");
        assert!(msg.contains("state unlock --force"), "{msg}");
        drop(first);
        let again = Lock::acquire(&path, &LockRequest::new("destroy")).expect("after release");
        assert!(
            again.notice.is_none(),
            "a clean release leaves nothing to take over"
        );
    }

    #[test]
    fn a_huge_timeout_does_not_overflow_the_clock() {
        let (_dir, path) = lock_path();
        let acquired = Lock::acquire(
            &path,
            &LockRequest::new("apply").with_timeout(Duration::MAX),
        );
        assert!(acquired.is_ok());
    }

    #[test]
    fn release_removes_the_file() {
        let (_dir, path) = lock_path();
        let acquired = Lock::acquire(&path, &LockRequest::new("apply")).expect("acquire");
        assert!(path.exists());
        acquired.guard.release().expect("release");
        assert!(!path.exists());
    }

    #[test]
    fn timeout_expires_while_held() {
        let (_dir, path) = lock_path();
        let _held = Lock::acquire(&path, &LockRequest::new("apply")).expect("acquire");
        let err = Lock::acquire(
            &path,
            &LockRequest::new("plan").with_timeout(Duration::from_millis(250)),
        )
        .expect_err("still held");
        assert!(
            matches!(
                err,
                LockError::Timeout {
                    holder: Some(_),
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn record_of_a_dead_process_is_taken_over_with_notice() {
        let (_dir, path) = lock_path();
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let dead_pid = child.id();
        child.wait().expect("wait");
        let stale = LockInfo {
            id: Uuid::new_v4(),
            holder: format!("ghost@{}", host::hostname()),
            user: String::from("ghost"),
            host: host::hostname(),
            pid: dead_pid,
            command: String::from("apply"),
            since: String::from("2026-01-01T00:00:00Z"),
        };
        fs::write(&path, serde_json::to_vec(&stale).expect("json")).expect("write stale");
        let acquired = Lock::acquire(&path, &LockRequest::new("plan")).expect("takeover");
        let notice = acquired.notice.expect("a notice");
        assert_eq!(notice.reason, TakeoverReason::HolderDead);
        assert_eq!(notice.previous.as_ref(), Some(&stale));
        let text = notice.to_string();
        assert!(
            text.contains("ghost@") && text.contains("no longer running"),
            "{text}"
        );
        assert_eq!(
            Lock::holder(&path).expect("read").as_ref(),
            Some(acquired.guard.info())
        );
    }

    #[test]
    fn held_lock_with_a_dead_recorded_pid_says_so() {
        let (_dir, path) = lock_path();
        let _held = Lock::acquire(&path, &LockRequest::new("apply")).expect("acquire");
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let dead_pid = child.id();
        child.wait().expect("wait");
        let mut record = Lock::holder(&path).expect("read").expect("record");
        record.pid = dead_pid;
        fs::write(&path, serde_json::to_vec(&record).expect("json")).expect("rewrite record");
        let err = Lock::acquire(&path, &LockRequest::new("plan")).expect_err("still held");
        assert!(
            matches!(
                err,
                LockError::Held {
                    recorded_pid_dead: true,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(
            err.to_string().contains("recorded pid is not running"),
            "{err}"
        );
    }

    #[test]
    fn unreadable_and_foreign_host_records_are_taken_over() {
        let (_dir, path) = lock_path();
        fs::write(&path, b"{\"id\": \"tor").expect("write torn");
        let acquired = Lock::acquire(&path, &LockRequest::new("plan")).expect("takeover");
        assert_eq!(
            acquired.notice.map(|n| n.reason),
            Some(TakeoverReason::Unreadable)
        );
        drop(acquired.guard);

        let foreign = LockInfo {
            id: Uuid::new_v4(),
            holder: String::from("bob@elsewhere"),
            user: String::from("bob"),
            host: String::from("elsewhere-not-this-host"),
            pid: std::process::id(),
            command: String::from("apply"),
            since: String::from("2026-01-01T00:00:00Z"),
        };
        fs::write(&path, serde_json::to_vec(&foreign).expect("json")).expect("write");
        let acquired = Lock::acquire(&path, &LockRequest::new("plan")).expect("takeover");
        assert_eq!(
            acquired.notice.map(|n| n.reason),
            Some(TakeoverReason::OtherHost)
        );
    }

    #[test]
    fn force_unlock_breaks_a_held_lock_and_reports_it() {
        let (_dir, path) = lock_path();
        assert_eq!(
            Lock::force_unlock(&path).expect("unlock"),
            UnlockOutcome::NotLocked
        );
        let held = Lock::acquire(&path, &LockRequest::new("apply")).expect("acquire");
        let outcome = Lock::force_unlock(&path).expect("force");
        assert_eq!(
            outcome,
            UnlockOutcome::BrokeHeldLock(Some(held.guard.info().clone()))
        );
        // Someone else can lock again, and the old guard's release does not remove the new file.
        let next = Lock::acquire(&path, &LockRequest::new("plan")).expect("after force");
        assert!(next.notice.is_none());
        held.guard.release().expect("old release");
        assert!(
            path.exists(),
            "old holder removed the new holder's lock file"
        );
        let err = Lock::acquire(&path, &LockRequest::new("plan")).expect_err("new lock holds");
        assert!(matches!(err, LockError::Held { .. }));
    }

    #[test]
    fn force_unlock_removes_a_stale_file() {
        let (_dir, path) = lock_path();
        fs::write(&path, b"").expect("write");
        assert_eq!(
            Lock::force_unlock(&path).expect("force"),
            UnlockOutcome::RemovedStale(None)
        );
        assert!(!path.exists());
    }
}
