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
