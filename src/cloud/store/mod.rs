//! The local cloud's durable store: every ARM resource, principal, role assignment, long-running
//! operation and blob's metadata, kept in memory and written to `state.json` in the data folder.
//!
//! Writes are group-committed: a mutation bumps a version number and waits until a background writer
//! has serialised a snapshot that includes it to a temp file, fsynced it and renamed it over
//! `state.json`. So a request is answered only once its change is on disk (state survives `kill -9`),
//! yet many concurrent requests share one fsync. Blob bytes live in their own files under `blobs/`,
//! written (temp + fsync + rename) before the metadata that points at them.
//!
//! This module knows nothing about HTTP, ARM routing or authorisation; it must never interpret a
//! request. Keys are lowercase so look-ups are case-insensitive, as ARM ids are.
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{Notify, watch};

pub(crate) mod ops;

/// Failure to read or write the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("parse {path}: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the store's writer has stopped")]
    WriterGone,
}

/// Fixed identities created when a data folder is first used.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Seed {
    pub tenant_id: String,
    pub subscription_id: String,
    pub client_id: String,
    /// The seeded service principal's secret: a local fixture, only ever shown by `cloud status --json`.
    pub client_secret: String,
    pub sp_object_id: String,
    pub resource_group: String,
    pub workspace: String,
    pub location: String,
    pub workspace_storage_account: String,
    pub workspace_container: String,
    pub workspace_guid: String,
}

/// A principal the emulated directory knows: the seeded service principal or a managed identity.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Principal {
    pub object_id: String,
    pub client_id: String,
    pub kind: String,
    /// Unix milliseconds when it was created (for the replication-delay fault).
    pub created_ms: u64,
}

/// A role assignment, stored by its full id (scope + GUID).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RoleAssignment {
    pub id: String,
    pub name: String,
    pub scope: String,
    pub role_definition_id: String,
    pub principal_id: String,
    pub principal_type: String,
    pub description: Option<String>,
    pub created_ms: u64,
    pub created_on: String,
}

/// A long-running operation's record, polled through a status URL.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Operation {
    pub id: String,
    /// `storage-create`, `endpoint-put`, `endpoint-patch`, `endpoint-delete`, `deployment-put`,
    /// `deployment-patch`, `deployment-delete`.
    pub kind: String,
    /// Lowercase key of the resource the operation works on.
    pub resource_key: String,
    pub started: String,
    pub ready_ms: u64,
    /// `InProgress`, `Succeeded`, `Failed`, `Canceled`.
    pub status: String,
    pub error: Option<Value>,
    pub ended: Option<String>,
}

/// Metadata of one blob; its bytes live in `blobs/{file}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct BlobMeta {
    pub file: String,
    pub len: u64,
    pub etag: String,
    pub content_type: String,
    pub content_md5: String,
    pub content_encoding: Option<String>,
    pub content_language: Option<String>,
    pub cache_control: Option<String>,
    pub content_disposition: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub created: String,
    pub modified: String,
    pub modified_unix: i64,
}

/// Everything the local cloud remembers. Its maps are private: handlers go through the named
/// operations of [`Store`], so the backing can change without touching them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Data {
    seed: Seed,
    /// ARM resources by lowercase id; the value is the resource body as GET returns it.
    resources: BTreeMap<String, Value>,
    principals: BTreeMap<String, Principal>,
    role_assignments: BTreeMap<String, RoleAssignment>,
    operations: BTreeMap<String, Operation>,
    /// Blob metadata by `{account}/{container}/{blob}` (account and container lowercase).
    blobs: BTreeMap<String, BlobMeta>,
    /// Resource secrets (storage account keys, endpoint keys) by `{lowercase id}#{name}`; never in bodies.
    secrets: BTreeMap<String, String>,
    /// Counter that makes ETags unique.
    etag_counter: u64,
}

/// Building the first state of a data folder (see `cloud::seed`).
impl Data {
    pub(crate) fn new(seed: Seed) -> Data {
        Data {
            seed,
            resources: BTreeMap::new(),
            principals: BTreeMap::new(),
            role_assignments: BTreeMap::new(),
            operations: BTreeMap::new(),
            blobs: BTreeMap::new(),
            secrets: BTreeMap::new(),
            etag_counter: 0,
        }
    }

    /// Adds a resource body under its lowercase id.
    pub(crate) fn insert_resource(&mut self, key: String, body: Value) {
        self.resources.insert(key, body);
    }

    /// Adds a secret (`key1`, `primary`, ...) of the resource `owner_key`.
    pub(crate) fn insert_secret(&mut self, owner_key: &str, name: &str, value: String) {
        self.secrets.insert(format!("{owner_key}#{name}"), value);
    }

    pub(crate) fn insert_principal(&mut self, p: Principal) {
        self.principals.insert(p.object_id.clone(), p);
    }

    /// Adds a role assignment under its lowercase id.
    pub(crate) fn insert_role_assignment(&mut self, key: String, ra: RoleAssignment) {
        self.role_assignments.insert(key, ra);
    }
}

struct Inner {
    data: Mutex<Data>,
    version: Mutex<u64>,
    dirty: Arc<Notify>,
    persisted: watch::Receiver<u64>,
    dir: PathBuf,
}

/// Shared handle on the store.
#[derive(Clone)]
pub(crate) struct Store {
    inner: Arc<Inner>,
}

const STATE_FILE: &str = "state.json";

impl Store {
    /// Opens (or creates, with `seed()`) the store in `dir` and starts its writer task; must be
    /// called inside a tokio runtime.
    pub(crate) fn open(dir: &Path, seed: impl FnOnce() -> Data) -> Result<Store, StoreError> {
        let path = dir.join(STATE_FILE);
        std::fs::create_dir_all(dir.join("blobs")).map_err(|source| StoreError::Write {
            path: dir.join("blobs"),
            source,
        })?;
        let (data, fresh) = match std::fs::read(&path) {
            Ok(bytes) => {
                let data: Data =
                    serde_json::from_slice(&bytes).map_err(|source| StoreError::Parse {
                        path: path.clone(),
                        source,
                    })?;
                (data, false)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (seed(), true),
            Err(source) => return Err(StoreError::Read { path, source }),
        };
        if fresh {
            write_atomic(&path, &serde_json::to_vec(&data).unwrap_or_default(), true)?;
        }
        let (tx, rx) = watch::channel(0u64);
        let inner = Arc::new(Inner {
            data: Mutex::new(data),
            version: Mutex::new(0),
            dirty: Arc::new(Notify::new()),
            persisted: rx,
            dir: dir.to_path_buf(),
        });
        let weak = Arc::downgrade(&inner);
        let dirty = inner.dirty.clone();
        tokio::spawn(async move {
            loop {
                let notified = dirty.notified();
                let job = {
                    let Some(inner) = weak.upgrade() else { return };
                    let target = *lock(&inner.version);
                    (target > *tx.borrow()).then(|| {
                        let snapshot = serde_json::to_vec(&*lock(&inner.data)).unwrap_or_default();
                        (target, snapshot, inner.dir.join(STATE_FILE))
                    })
                };
                let Some((target, snapshot, path)) = job else {
                    notified.await;
                    continue;
                };
                match tokio::task::spawn_blocking(move || write_atomic(&path, &snapshot, true))
                    .await
                {
                    Ok(Ok(())) => {
                        let _ = tx.send(target);
                    }
                    Ok(Err(e)) => {
                        tracing::error!("local cloud: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    }
                    Err(_) => return,
                }
            }
        });
        Ok(Store { inner })
    }

    /// Reads under the lock.
    fn read<R>(&self, f: impl FnOnce(&Data) -> R) -> R {
        f(&lock(&self.inner.data))
    }

    /// Changes the data and returns once the change is durable on disk.
    async fn mutate<R>(&self, f: impl FnOnce(&mut Data) -> R) -> Result<R, StoreError> {
        let (r, v) = {
            let mut data = lock(&self.inner.data);
            let r = f(&mut data);
            let mut version = lock(&self.inner.version);
            *version += 1;
            (r, *version)
        };
        self.inner.dirty.notify_one();
        self.wait_persisted(v).await?;
        Ok(r)
    }

    async fn wait_persisted(&self, v: u64) -> Result<(), StoreError> {
        let mut rx = self.inner.persisted.clone();
        rx.wait_for(|p| *p >= v)
            .await
            .map_err(|_| StoreError::WriterGone)?;
        Ok(())
    }

    /// Writes blob bytes to a new file and returns its name (to be recorded in [`BlobMeta::file`]).
    pub(crate) fn write_blob_file(&self, bytes: &[u8]) -> Result<String, StoreError> {
        let name = uuid::Uuid::new_v4().simple().to_string();
        write_atomic(&self.inner.dir.join("blobs").join(&name), bytes, false)?;
        Ok(name)
    }

    /// Reads the bytes of a blob file.
    pub(crate) fn read_blob_file(&self, file: &str) -> Result<Vec<u8>, StoreError> {
        let path = self.inner.dir.join("blobs").join(file);
        std::fs::read(&path).map_err(|source| StoreError::Read { path, source })
    }

    /// Removes blob files no longer referenced (best effort).
    fn remove_blob_files(&self, files: &[String]) {
        for f in files {
            let _ = std::fs::remove_file(self.inner.dir.join("blobs").join(f));
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave the maps half-written in a way that matters more than
    // losing the whole cloud, so a poisoned lock is simply taken over.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Writes `bytes` to `path` atomically: temp file, fsync, rename, then fsync of the folder.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], private: bool) -> Result<(), StoreError> {
    let err = |source| StoreError::Write {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    owner_only(&mut opts, private);
    let mut f = opts.open(&tmp).map_err(err)?;
    f.write_all(bytes).map_err(err)?;
    f.sync_data().map_err(err)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(err)?;
    if let Some(parent) = path.parent()
        && let Ok(d) = std::fs::File::open(parent)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

/// A random base64 key of 64 bytes, like a storage account key.
pub(crate) fn random_key() -> String {
    use base64::Engine;
    let bytes: [u8; 64] = std::array::from_fn(|_| rand::rng().random());
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Makes a file created with `opts` readable by its owner only, when `private` (Unix permissions; other
/// systems keep their defaults).
#[cfg(unix)]
fn owner_only(opts: &mut std::fs::OpenOptions, private: bool) {
    use std::os::unix::fs::OpenOptionsExt;
    if private {
        opts.mode(0o600);
    }
}

#[cfg(not(unix))]
fn owner_only(_opts: &mut std::fs::OpenOptions, _private: bool) {}

/// Current time in unix milliseconds.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Current time as RFC 3339 (UTC).
pub(crate) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn seed() -> Data {
        Data::new(Seed {
            tenant_id: "t".into(),
            subscription_id: "s".into(),
            client_id: "c".into(),
            client_secret: "x".into(),
            sp_object_id: "o".into(),
            resource_group: "rg".into(),
            workspace: "ws".into(),
            location: "eastus".into(),
            workspace_storage_account: "wsstore".into(),
            workspace_container: "c".into(),
            workspace_guid: "g".into(),
        })
    }

    #[tokio::test]
    async fn mutation_is_on_disk_when_it_returns() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), seed).unwrap();
        store
            .mutate(|d| d.resources.insert("/a".into(), serde_json::json!({"x": 1})))
            .await
            .unwrap();
        let on_disk: Data =
            serde_json::from_slice(&std::fs::read(dir.path().join(STATE_FILE)).unwrap()).unwrap();
        assert_eq!(on_disk.resources["/a"]["x"], 1);
        drop(store);
        let reopened = Store::open(dir.path(), || panic!("must not reseed")).unwrap();
        assert!(reopened.read(|d| d.resources.contains_key("/a")));
    }

    #[tokio::test]
    async fn concurrent_mutations_all_persist() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), seed).unwrap();
        let mut tasks = Vec::new();
        for i in 0..50 {
            let s = store.clone();
            tasks.push(tokio::spawn(async move {
                s.mutate(|d| d.resources.insert(format!("/r{i}"), Value::Null))
                    .await
                    .unwrap();
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let on_disk: Data =
            serde_json::from_slice(&std::fs::read(dir.path().join(STATE_FILE)).unwrap()).unwrap();
        assert_eq!(on_disk.resources.len(), 50);
    }
}
