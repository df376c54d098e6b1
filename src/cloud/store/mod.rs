//! The local cloud's durable store: every ARM resource, secret, principal, role assignment,
//! long-running operation and blob (metadata and bytes), one row each in the SQLite database
//! `store.db` of the data folder, with the whole of it (bar blob bytes) cached in memory for reads.
//!
//! A write is one mutation of the cache whose changed rows are committed in one SQLite transaction
//! before it returns, so its cost does not grow with the store (a write among 100,000 resources costs
//! what it costs among 10). The database is in WAL mode with `synchronous=NORMAL`: a commit is an
//! append to `store.db-wal` without fsync, durable against `kill -9` of the process (the kernel has
//! the bytes), and a checkpoint fsyncs; an OS crash or power loss may drop the last commits but never
//! corrupts the file (the local cloud is a test double: surviving a killed process is what it needs,
//! and an fsync per request is what made the old store slow). Blob bytes are in the database too
//! (table `blob_content`): they commit in the same transaction as the record that names them, so there
//! is no orphan file and no second fsync per upload; a blob's bytes are read through a separate
//! read-only connection, so a download does not hold the writer's lock (a blob upload is at most
//! 256 MiB, `http::MAX_BLOB_BODY`, well under SQLite's 1 GB per value).
//!
//! This module knows nothing about HTTP, ARM routing or authorisation; it must never interpret a
//! request. Keys are lowercase so look-ups are case-insensitive, as ARM ids are.
//!
//! # Schema (inspect with `sqlite3 <data folder>/store.db`)
//!
//! Every record is a JSON text, so `json_extract` reads its fields:
//!
//! | table | `key` | other column |
//! | --- | --- | --- |
//! | `meta` | `schema` (`1`), `seed` (the folder's identities, JSON), `etag_counter`, `migrated_from` (SHA-256 of a migrated `state.json`) | `value` |
//! | `resources` | lowercase ARM id | `body`: the resource as GET returns it |
//! | `secrets` | `{lowercase id}#{name}` (`key1`, `primary`, ...) | `value` |
//! | `principals` | object id | `record` |
//! | `role_assignments` | lowercase id | `record` |
//! | `operations` | operation id | `record` (`status`, `resource_key`, ...) |
//! | `blobs` | `{account}/{container}/{name}` (account and container lowercase) | `record` (with `blob_type`, `committed_blocks`, `lease`); its `file` is the id of its bytes |
//! | `blob_content` | `id` | `bytes` |
//!
//! For example: `sqlite3 store.db "SELECT key, json_extract(body, '$.properties.provisioningState')
//! FROM resources"`.
//!
//! A data folder of the former format (`state.json` rewritten whole on every write, blob bytes in
//! `blobs/`) is migrated on its first start, in one transaction, and its files renamed
//! `state.json.migrated` and `blobs.migrated/`; see `legacy`.
//!
//! # Files (each imports only its siblings, never this file)
//!
//! * [`ops`]: the named operations handlers call; every cascade lives there. [`blob_writes`]: the
//!   blob operations that change a record in place (lease, metadata) or rewrite its bytes (append).
//! * `data`: the cache ([`Data`]) and its indexes; `handle`: the shared handle ([`Store`]), opening a
//!   data folder and committing each mutation.
//! * `table`: a map that remembers its changes; `db`: the SQLite file; `legacy`: the former format.
//! * `records`: the records kept besides ARM bodies; `disk`: [`StoreError`] and [`write_atomic`];
//!   `fresh`: the current time and random keys.
pub(crate) mod blob_writes;
mod data;
mod db;
mod disk;
mod fresh;
mod handle;
mod legacy;
pub(crate) mod ops;
mod records;
mod table;

pub(crate) use data::Data;
pub(crate) use disk::StoreError;
pub(crate) use disk::write_atomic;
pub(crate) use fresh::{now_ms, now_rfc3339, random_key};
pub(crate) use handle::Store;
pub(crate) use records::{
    BlobLease, BlobMeta, BlobType, Operation, Principal, RoleAssignment, Seed,
};

/// The files and folders of a data folder that hold the store (current and former format), for
/// `cloud reset` to delete.
pub(crate) const STORE_FILES: [&str; 5] = [
    db::DB_FILE,
    "store.db-wal",
    "store.db-shm",
    legacy::LEGACY_FILE,
    legacy::MIGRATED_FILE,
];
pub(crate) const STORE_DIRS: [&str; 2] = [legacy::LEGACY_BLOBS, legacy::MIGRATED_BLOBS];
