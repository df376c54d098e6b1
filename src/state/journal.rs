//! The apply journal: a durable, append-only record of steps about to be sent and steps recorded.
//!
//! Before the apply engine sends a step to the cloud it appends an `intent` line (step, address,
//! action, the deterministic cloud id it will touch) and fsyncs it; after the state file records the
//! step's outcome it appends a `done` line. If the process dies in between, the next run finds the
//! intents without a `done` ([`JournalOpen::unfinished`]) and resolves them by reading the cloud —
//! the ids are deterministic, so nothing created is orphaned. A clean run removes the journal.
//!
//! The file is JSON lines, `<stack>.journal` beside the state. A last line torn by a crash mid-write
//! is dropped with a [`JournalNote`]; damage anywhere else is an error, because silently skipping a
//! step record could orphan a cloud resource. Use the journal only while holding the stack's lock.
//! This module never prints and never records inputs or secrets, only ids.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::host;

/// Identifies one step in a journal; unique within the journal file, increasing.
pub(crate) type StepId = u64;

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

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum Record {
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

/// An open journal. Methods take `&self` and serialise appends, so parallel steps may share it
/// (behind an `Arc`); each append is fsync'd before the method returns.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    inner: Mutex<Inner>,
}

#[derive(Debug)]
struct Inner {
    file: File,
    next_step: StepId,
    pending: IndexMap<StepId, Intent>,
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
struct Parsed {
    pending: IndexMap<StepId, Intent>,
    next_step: StepId,
    notes: Vec<JournalNote>,
    /// Length of the intact prefix (everything before a torn tail).
    good_len: usize,
}

impl Journal {
    /// Opens (creating if needed) the journal at `path`, returns the steps a previous run left
    /// unfinished, and drops a torn last line so new records start on a clean line.
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
        let parsed = match &existing {
            Some(bytes) => parse(&path, bytes)?,
            None => Parsed {
                pending: IndexMap::new(),
                next_step: 1,
                notes: Vec::new(),
                good_len: 0,
            },
        };

        let dir = parent_dir(&path);
        if existing.is_none() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(io_err)?;
        }
        let mut file = OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&path)
            .map_err(io_err)?;
        if let Some(bytes) = &existing {
            if parsed.good_len < bytes.len() {
                file.set_len(parsed.good_len as u64).map_err(io_err)?;
            }
            // A last record that lost only its newline must not run into the next one.
            if parsed.good_len > 0 && bytes.get(parsed.good_len - 1) != Some(&b'\n') {
                file.write_all(b"\n").map_err(io_err)?;
            }
            file.sync_data().map_err(io_err)?;
        } else {
            sync_dir(&dir).map_err(io_err)?;
        }

        let unfinished = parsed.pending.values().cloned().collect();
        Ok(JournalOpen {
            journal: Journal {
                path,
                inner: Mutex::new(Inner {
                    file,
                    next_step: parsed.next_step,
                    pending: parsed.pending,
                }),
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
                let parsed = parse(path, &bytes)?;
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
        let mut inner = self.inner();
        let intent = Intent {
            step: inner.next_step,
            address: new.address,
            resource_type: new.resource_type,
            action: new.action,
            target: new.target,
            at: host::now_rfc3339(),
        };
        let record = Record::Intent {
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
        self.append(&mut inner.file, &record)?;
        inner.next_step = next;
        let step = intent.step;
        inner.pending.insert(step, intent);
        Ok(step)
    }

    /// Durably records that a step's outcome is in the state file. Works for steps recovered from
    /// an earlier run too (after they were resolved).
    pub fn done(&self, step: StepId) -> Result<(), JournalError> {
        let mut inner = self.inner();
        if !inner.pending.contains_key(&step) {
            return Err(JournalError::UnknownStep {
                path: self.path.clone(),
                step,
            });
        }
        let record = Record::Done {
            step,
            at: host::now_rfc3339(),
        };
        self.append(&mut inner.file, &record)?;
        inner.pending.shift_remove(&step);
        Ok(())
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
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !inner.pending.is_empty() {
            return Err(JournalError::Unfinished {
                path: self.path,
                steps: inner.pending.keys().copied().collect(),
            });
        }
        drop(inner.file);
        let io_err = |source| JournalError::Io {
            path: self.path.clone(),
            source,
        };
        match fs::remove_file(&self.path) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(source) => return Err(io_err(source)),
        }
        sync_dir(&parent_dir(&self.path)).map_err(io_err)
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        // A panic in another thread mid-append leaves at worst a torn line, which open tolerates.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn append(&self, file: &mut File, record: &Record) -> Result<(), JournalError> {
        let io_err = |source| JournalError::Io {
            path: self.path.clone(),
            source,
        };
        let mut line = serde_json::to_vec(record).map_err(|e| io_err(io::Error::other(e)))?;
        line.push(b'\n');
        file.write_all(&line).map_err(io_err)?;
        file.sync_data().map_err(io_err)
    }
}

/// Parses journal bytes. A last line that does not parse is a torn tail; any other bad line is
/// damage.
fn parse(path: &Path, bytes: &[u8]) -> Result<Parsed, JournalError> {
    let mut pending: IndexMap<StepId, Intent> = IndexMap::new();
    let mut notes = Vec::new();
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
        match serde_json::from_slice::<Record>(raw) {
            Ok(record) => {
                good_len = offset;
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
                    Record::Done { step, .. } => {
                        max_step = max_step.max(step);
                        if pending.shift_remove(&step).is_none() {
                            notes.push(JournalNote::DoneWithoutIntent { line: number, step });
                        }
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
    use super::*;

    fn step(address: &str, action: JournalAction) -> NewIntent {
        NewIntent {
            address: address.to_owned(),
            resource_type: String::from("storage_account"),
            action,
            target: format!("/subscriptions/s/x/{address}"),
        }
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
