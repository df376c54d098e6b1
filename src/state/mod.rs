//! What stackform remembers between runs: the state file, the per-stack lock and the apply journal.
//!
//! * [`StateFile`] / [`ResourceState`] — plain serde data: lineage, serial, every managed resource
//!   (type, cloud id, status, applied inputs, computed outputs, dependencies) and the stack outputs.
//! * [`StateStore`] — reads a state file (never modifying it; damage, newer formats and foreign
//!   lineages are typed errors) and writes it atomically (temp file, fsync, rename, folder fsync,
//!   mode 0600, one `.backup`) behind a lineage/serial compare-and-write guard.
//! * [`Lock`] — an exclusive OS file lock per stack with a holder record; stale locks of dead
//!   processes are taken over with a [`TakeoverNotice`].
//! * [`Journal`] — the fsync'd (group-committed) JSON-lines log of step intents and of the state
//!   writes of a run (commits), which makes apply crash-safe and its writes proportional to the
//!   change; [`StateStore::read`] replays its commits over the state file, a checkpoint.
//! * [`Replica`] — the hook a remote copy of the state hangs on: called after each durable write
//!   of the state file or the journal (the remote backend, `crate::backend`, is one).
//! * surgery — `list`, `show`, `remove`, `import` and `destroy_order` on a [`StateFile`].
//!
//! A state file (format version 1), abridged:
//!
//! ```json
//! {
//!   "version": 1,
//!   "lineage": "efffea8c-91d5-48e9-bb51-7688b0fce02b",
//!   "serial": 7,
//!   "stack": "managed-identity",
//!   "cloud": { "subscription": "2f6b…", "tenant": "72f9…" },
//!   "resources": {
//!     "store": {
//!       "type": "storage_account",
//!       "id": "/subscriptions/…/providers/Microsoft.Storage/storageAccounts/mistore7f3a",
//!       "status": "Ready",
//!       "inputs": { "name": "mistore7f3a", "access_key": { "$sensitive": "hmac-sha256:0774…51fc" } },
//!       "outputs": { "primary_blob_endpoint": "https://mistore7f3a.blob.core.windows.net/" },
//!       "sensitive": ["access_key"]
//!     },
//!     "greeting": {
//!       "type": "blob",
//!       "id": "https://mistore7f3a.blob.core.windows.net/hello/hello.txt",
//!       "status": "Tainted",
//!       "inputs": { "account": "mistore7f3a", "container": "hello", "name": "hello.txt" },
//!       "outputs": {},
//!       "dependencies": ["store"],
//!       "content_hash": "sha256:2cf2…"
//!     }
//!   },
//!   "outputs": { "scoring_uri": "https://my-sai-endpoint.eastus.inference.ml.azure.com/score" }
//! }
//! ```
//!
//! Beside it: `<stack>.json.backup` (the previous version), `<stack>.lock` (while a run holds the
//! lock) and `<stack>.journal` (while an apply runs, or after one was interrupted: then its commits
//! complete the state file, and reading the state replays them).
//!
//! This module is synchronous std I/O only: it never calls the cloud, never imports the engine,
//! never prints (notices and errors are values), and never writes a secret in clear — values at a
//! resource's sensitive paths are stored as keyed digests (see [`sensitive`]).

pub(crate) mod host;
mod journal;
mod lock;
mod model;
mod replica;
pub mod sensitive;
mod store;
mod surgery;

pub(crate) use host::{Liveness, hostname, liveness};
pub use journal::{
    Intent, Journal, JournalAction, JournalError, JournalNote, JournalOpen, NewIntent,
};
pub(crate) use journal::{Queued, StepId};
pub use lock::{
    Acquired, Lock, LockError, LockGuard, LockInfo, LockRequest, TakeoverNotice, TakeoverReason,
    UnlockOutcome,
};
pub use model::{CloudBinding, FORMAT_VERSION, ResourceState, ResourceStatus, StateFile};
pub(crate) use model::{Touched, compact};
pub use replica::{Replica, ReplicaError};
pub use sensitive::FieldPath;
pub(crate) use store::Stamp;
pub use store::{StateError, StateStore};
pub use surgery::{Removed, ResourceSummary, SurgeryError};
