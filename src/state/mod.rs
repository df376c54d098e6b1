//! What stackform remembers between runs: the state file, the per-stack lock and the apply journal.
//!
//! * [`StateFile`] / [`ResourceState`] — plain serde data: lineage, serial, every managed resource
//!   (type, cloud id, status, applied inputs, computed outputs, dependencies) and the stack outputs.
//! * [`StateStore`] — reads a state file (never modifying it; damage, newer formats and foreign
//!   lineages are typed errors) and writes it atomically (temp file, fsync, rename, folder fsync,
//!   mode 0600, one `.backup`) behind a lineage/serial compare-and-write guard.
//! * [`Lock`] — an exclusive OS file lock per stack with a holder record; stale locks of dead
//!   processes are taken over with a [`TakeoverNotice`].
//! * [`Journal`] — the fsync'd JSON-lines intent/done log that makes apply crash-safe.
//! * surgery — `list`, `show`, `remove`, `import` and `destroy_order` on a [`StateFile`].
//!
//! This module is synchronous std I/O only: it never calls the cloud, never imports the engine,
//! never prints (notices and errors are values), and never writes a secret in clear — values at a
//! resource's sensitive paths are stored as keyed digests (see [`sensitive`]).

mod host;
mod journal;
mod lock;
mod model;
pub mod sensitive;
mod store;
mod surgery;

pub use journal::{
    Intent, Journal, JournalAction, JournalError, JournalNote, JournalOpen, NewIntent, StepId,
};
pub use lock::{
    Acquired, Lock, LockError, LockGuard, LockInfo, LockRequest, TakeoverNotice, TakeoverReason,
    UnlockOutcome,
};
pub use model::{FORMAT_VERSION, ResourceState, ResourceStatus, StateFile};
pub use sensitive::FieldPath;
pub use store::{STATE_FILE_MODE, StateError, StateStore};
pub use surgery::{Removed, ResourceSummary, SurgeryError};
