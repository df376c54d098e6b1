//! The hook a state kept elsewhere hangs on: after each durable local write of the state file or
//! the journal, the store calls its [`Replica`] (when it has one) with the bytes just written, so a
//! remote copy is kept in step with the local working copy.
//!
//! This module only declares the hook: it never knows where the copy lives (a blob, a server) and
//! never calls anything itself. A replica's refusal stops the write's caller exactly as a failed
//! local write does.
use std::fmt;

/// Why a replica could not keep up with a local write; rendered after "failed to …" in the
/// message of the state or journal error that carries it.
pub type ReplicaError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A copy of a stack's state kept in step with its local files. Each method is called after the
/// local write it mirrors is durable, from whatever thread made that write (the journal's group
/// commit runs on async workers and blocking threads alike), and returns once the copy has it.
pub trait Replica: Send + Sync {
    /// The state file was replaced with `bytes`, whose serial is `serial`.
    fn state_written(&self, bytes: &[u8], serial: u64) -> Result<(), ReplicaError>;
    /// `bytes` (whole journal lines) were appended to the journal.
    fn journal_appended(&self, bytes: &[u8]) -> Result<(), ReplicaError>;
    /// The journal was removed at the end of a clean run.
    fn journal_removed(&self) -> Result<(), ReplicaError>;
    /// Where the copy lives, for messages (`azure_blob account/container/key`).
    fn describe(&self) -> String;
}

/// A replica's `Debug`: where it lives.
pub(crate) struct Shown<'a>(pub &'a dyn Replica);

impl fmt::Debug for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.describe())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::state::{JournalAction, NewIntent, StateFile, StateStore};

    /// Records what it was told; refuses everything once `fail` is set.
    #[derive(Default)]
    struct Recorder {
        seen: Mutex<Vec<String>>,
        fail: Mutex<bool>,
    }

    impl Recorder {
        fn note(&self, what: String) -> Result<(), ReplicaError> {
            if *self.fail.lock().unwrap() {
                return Err("refused".into());
            }
            self.seen.lock().unwrap().push(what);
            Ok(())
        }
    }

    impl Replica for Recorder {
        fn state_written(&self, bytes: &[u8], serial: u64) -> Result<(), ReplicaError> {
            let parsed: StateFile = serde_json::from_slice(bytes).unwrap();
            assert_eq!(parsed.serial, serial);
            self.note(format!("state {serial}"))
        }
        fn journal_appended(&self, bytes: &[u8]) -> Result<(), ReplicaError> {
            assert!(bytes.ends_with(b"\n"), "whole lines");
            let lines = bytes
                .split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .count();
            self.note(format!("journal {lines}"))
        }
        fn journal_removed(&self) -> Result<(), ReplicaError> {
            self.note("removed".into())
        }
        fn describe(&self) -> String {
            "recorder".into()
        }
    }

    /// Every durable write reaches the replica after it is on disk: a state write with its serial,
    /// each journal append (whole lines, before the call returns), the journal's removal; a replica
    /// that refuses fails the write that called it, and the journal then refuses further appends.
    #[test]
    fn each_durable_write_reaches_the_replica_and_a_refusal_fails_it() {
        let dir = tempfile::tempdir().unwrap();
        let rec = Arc::new(Recorder::default());
        let store = StateStore::for_stack(dir.path(), "demo")
            .unwrap()
            .with_replica(rec.clone());
        let mut state = StateFile::new("demo");
        store.write(&mut state, None).unwrap();
        let journal = store.open_journal().unwrap().journal;
        let step = journal
            .intent(NewIntent {
                address: "store".into(),
                resource_type: "storage_account".into(),
                action: JournalAction::Create,
                target: "/sub/x".into(),
            })
            .unwrap();
        assert_eq!(
            rec.seen.lock().unwrap().clone(),
            vec!["state 1", "journal 1"],
            "the intent is replicated before intent() returns"
        );
        journal.done(step).unwrap();
        journal.finish().unwrap();
        assert_eq!(
            rec.seen.lock().unwrap().clone(),
            vec!["state 1", "journal 1", "journal 1", "removed"]
        );

        *rec.fail.lock().unwrap() = true;
        let err = store.write(&mut state, Some(1)).unwrap_err();
        assert!(
            err.to_string()
                .contains("cannot write the state to recorder: refused"),
            "{err}"
        );
        let journal = store.open_journal().unwrap().journal;
        let intent = || NewIntent {
            address: "b".into(),
            resource_type: "blob".into(),
            action: JournalAction::Create,
            target: "https://a/c/b".into(),
        };
        let err = journal.intent(intent()).unwrap_err();
        assert!(
            err.to_string().contains("cannot append to recorder"),
            "{err}"
        );
        *rec.fail.lock().unwrap() = false;
        assert!(
            journal.intent(intent()).is_err(),
            "a failed journal stays failed"
        );
    }
}
