//! Where a stack's state lives when it is not a local file: a remote backend on Azure Blob Storage.
//!
//! * [`config`] — which backend a command uses (stack file, flags, environment); pure.
//! * [`remote`] — the remote state as a mirror of a local working copy: pulled at the start of a
//!   command, kept in step after each durable local write through the state's `Replica` hook
//!   (ETag-guarded state writes, the journal as an append blob, every overwritten version kept
//!   as a snapshot and listed in a history index).
//! * [`lease_lock`] — the remote lock: a finite blob lease on `<key>.lock`, renewed by a heartbeat,
//!   its holder recorded in the blob's metadata; a killed holder's lease runs out by itself and the
//!   next run takes over with a notice.
//! * [`session`] — one command's connection, working folder and lock.
//! * `worker` — the one thread (its own tokio runtime) every remote call runs on.
//!
//! Imported only by `cli/`. The backend reaches the storage service only through the provider's
//! blob client (`provider::blob`, `provider::blob_conditional`); it never prints (notices and
//! errors are values the CLI renders), never writes without the state's lock, and never writes a
//! secret into a blob or its metadata.
pub mod config;
pub mod lease_lock;
pub mod remote;
pub mod session;
mod worker;

pub use config::BackendConfigError;
pub use remote::{RemoteError, RemoteState, Version};
pub use session::{BackendError, RemoteEnv, Session};
