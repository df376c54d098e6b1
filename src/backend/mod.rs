//! Where a stack's state lives when it is not a local file: a remote backend on Azure Blob Storage.
//!
//! * [`lease_lock`] — the remote lock: a finite blob lease on `<key>.lock`, renewed by a heartbeat,
//!   its holder recorded in the blob's metadata; a killed holder's lease runs out by itself and the
//!   next run takes over with a notice.
//!
//! The backend reaches the storage service only through the provider's blob client
//! (`provider::blob`, `provider::blob_conditional`); it never prints (notices and errors are values
//! the CLI renders) and never writes a secret into a blob or its metadata.
pub mod lease_lock;
