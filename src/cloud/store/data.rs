//! The durable heart of the store: [`Data`] (every map the cloud remembers) behind [`Store`], a shared
//! handle whose mutations return only once a group-committed snapshot including them is on disk.
//!
//! It offers only `read` and `mutate` to the store's own operations (`store::ops`); it never
//! interprets a record and never serves a handler directly.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::sync::{Notify, watch};

use super::disk::{StoreError, write_atomic};
use super::records::{BlobMeta, Operation, Principal, RoleAssignment, Seed};

/// Everything the local cloud remembers. Its maps are private to the store: handlers go through the
/// named operations of [`Store`] (in `store::ops`), so the backing can change without touching them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Data {
    pub(super) seed: Seed,
    /// ARM resources by lowercase id; the value is the resource body as GET returns it.
    pub(super) resources: BTreeMap<String, Value>,
    pub(super) principals: BTreeMap<String, Principal>,
    pub(super) role_assignments: BTreeMap<String, RoleAssignment>,
    pub(super) operations: BTreeMap<String, Operation>,
    /// Blob metadata by `{account}/{container}/{blob}` (account and container lowercase).
    pub(super) blobs: BTreeMap<String, BlobMeta>,
    /// Resource secrets (storage account keys, endpoint keys) by `{lowercase id}#{name}`; never in bodies.
    pub(super) secrets: BTreeMap<String, String>,
    /// Counter that makes ETags unique.
    pub(super) etag_counter: u64,
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
    pub(super) fn read<R>(&self, f: impl FnOnce(&Data) -> R) -> R {
        f(&lock(&self.inner.data))
    }

    /// Changes the data and returns once the change is durable on disk.
    pub(super) async fn mutate<R>(&self, f: impl FnOnce(&mut Data) -> R) -> Result<R, StoreError> {
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
    pub(super) fn remove_blob_files(&self, files: &[String]) {
        for f in files {
            let _ = std::fs::remove_file(self.inner.dir.join("blobs").join(f));
        }
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave the maps half-written in a way that matters more than
    // losing the whole cloud, so a poisoned lock is simply taken over.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A small seeded world for the store's tests.
#[cfg(test)]
pub(super) fn test_data() -> Data {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn mutation_is_on_disk_when_it_returns() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), test_data).unwrap();
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
        let store = Store::open(dir.path(), test_data).unwrap();
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
