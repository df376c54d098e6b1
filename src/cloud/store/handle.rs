//! The store's shared handle, [`Store`]: opening a data folder (the database, a migration from the
//! former format, or a new seeded world), and `read` and `mutate` over the cache ([`Data`]), whose
//! mutations return only once the rows they changed are committed to `store.db`, in one transaction
//! per mutation.
//!
//! It offers only `read` and `mutate` to the store's own operations (`store::ops`); it never
//! interprets a record and never serves a handler directly.
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use super::data::Data;
use super::db::{Content, DB_FILE, Db, Reader};
use super::disk::StoreError;
use super::legacy;

/// The cache and the writing connection, under one lock: a mutation changes both or neither, and
/// writes commit in the order they changed the cache.
struct Inner {
    data: Data,
    db: Db,
}

struct Shared {
    state: Mutex<Inner>,
    reader: Mutex<Reader>,
}

/// Shared handle on the store.
#[derive(Clone)]
pub(crate) struct Store {
    inner: Arc<Shared>,
}

impl Store {
    /// Opens the store in `dir`: `store.db` when it is initialised; else migrates a `state.json` of
    /// the former format (then renamed `state.json.migrated`); else seeds a new world with `seed()`.
    /// A `state.json` that the database was not migrated from is refused, naming the file.
    pub(crate) fn open(dir: &Path, seed: impl FnOnce() -> Data) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
        let legacy_path = dir.join(legacy::LEGACY_FILE);
        let mut db = Db::open(&dir.join(DB_FILE))?;
        let data = match db.load()? {
            Some(data) => {
                if legacy_path.exists() {
                    // A migration whose commit landed but whose rename did not: finish it. Any other
                    // `state.json` holds writes the database does not have.
                    let bytes = std::fs::read(&legacy_path).map_err(|source| StoreError::Read {
                        path: legacy_path.clone(),
                        source,
                    })?;
                    if db.meta("migrated_from")? != Some(legacy::sha256(&bytes)) {
                        return Err(legacy::newer_than_db(&legacy_path));
                    }
                    legacy::set_aside(dir)?;
                }
                data
            }
            None if legacy_path.exists() => {
                let legacy::Read {
                    mut data,
                    contents,
                    sha256,
                } = legacy::read(dir)?;
                let contents: Vec<Content<'_>> = contents
                    .iter()
                    .map(|(id, b)| (id.as_str(), b.as_slice()))
                    .collect();
                db.write(&data, &contents, &[("migrated_from", sha256)])?;
                data.committed();
                legacy::set_aside(dir)?;
                tracing::info!(
                    "migrated {} to {}",
                    legacy_path.display(),
                    db.path().display()
                );
                data
            }
            None => {
                let mut data = seed().indexed();
                db.write(&data, &[], &[])?;
                data.committed();
                data
            }
        };
        let reader = Reader::open(db.path())?;
        Ok(Store {
            inner: Arc::new(Shared {
                state: Mutex::new(Inner { data, db }),
                reader: Mutex::new(reader),
            }),
        })
    }

    /// Reads under the lock.
    pub(super) fn read<R>(&self, f: impl FnOnce(&Data) -> R) -> R {
        f(&lock(&self.inner.state).data)
    }

    /// Changes the data and returns once the change is committed (durable against `kill -9`).
    pub(super) async fn mutate<R>(&self, f: impl FnOnce(&mut Data) -> R) -> Result<R, StoreError> {
        self.mutate_with(&[], f).await
    }

    /// [`Store::mutate`], storing with it the blob `contents` that its blob records now name.
    ///
    /// Async so that callers need not change if the write ever moves off the caller's thread; today
    /// the commit (a WAL append, no fsync) runs under the lock, so writes are ordered as the cache
    /// saw them and a reader never sees a change that is not committed once the lock is released.
    pub(super) async fn mutate_with<R>(
        &self,
        contents: &[Content<'_>],
        f: impl FnOnce(&mut Data) -> R,
    ) -> Result<R, StoreError> {
        let mut guard = lock(&self.inner.state);
        let Inner { data, db } = &mut *guard;
        let etag_before = data.etag_counter;
        let r = f(data);
        data.reindex_changes();
        match db.write(data, contents, &[]) {
            Ok(()) => {
                data.committed();
                Ok(r)
            }
            Err(e) => {
                data.undo(etag_before);
                Err(e)
            }
        }
    }

    /// Reads the bytes of a blob (its [`BlobMeta::file`] names them).
    pub(crate) fn read_blob_file(&self, file: &str) -> Result<Vec<u8>, StoreError> {
        lock(&self.inner.reader).content(file)
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock cannot leave the tables half-written in a way that matters more
    // than losing the whole cloud, so a poisoned lock is simply taken over.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::super::data::test_data;
    use super::*;
    use serde_json::Value;

    /// What the `sqlite3` shell would show: the body of a resource row, read by a separate connection.
    fn row(dir: &Path, key: &str) -> Option<Value> {
        let conn = rusqlite::Connection::open(dir.join(DB_FILE)).unwrap();
        conn.query_row("SELECT body FROM resources WHERE key = ?1", [key], |r| {
            r.get::<_, String>(0)
        })
        .ok()
        .map(|s| serde_json::from_str(&s).unwrap())
    }

    #[tokio::test]
    async fn mutation_is_in_the_database_when_it_returns() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), test_data).unwrap();
        store
            .mutate(|d| d.resources.insert("/a".into(), serde_json::json!({"x": 1})))
            .await
            .unwrap();
        assert_eq!(row(dir.path(), "/a").unwrap()["x"], 1);
        drop(store);
        let reopened = Store::open(dir.path(), || panic!("must not reseed")).unwrap();
        assert!(reopened.read(|d| d.resources.contains_key("/a")));
        assert_eq!(reopened.read(|d| d.seed.tenant_id.clone()), "t");
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
        let conn = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
        let n: i64 = conn
            .query_row("SELECT count(*) FROM resources", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 50);
    }

    #[tokio::test]
    async fn a_failed_write_leaves_the_cache_as_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), test_data).unwrap();
        store
            .mutate(|d| d.resources.insert("/keep".into(), serde_json::json!(1)))
            .await
            .unwrap();
        // Another connection holds the write lock past the busy timeout: the commit fails.
        let other = rusqlite::Connection::open(dir.path().join(DB_FILE)).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        lock(&store.inner.state)
            .db
            .set_busy_timeout_for_test(std::time::Duration::from_millis(10));
        let failed = store
            .mutate(|d| {
                d.resources.remove("/keep");
                d.resources.insert("/new".into(), serde_json::json!(2));
                d.etag_counter += 1;
            })
            .await;
        assert!(matches!(failed, Err(StoreError::Db { .. })), "{failed:?}");
        assert!(store.read(|d| d.resources.contains_key("/keep")));
        assert!(!store.read(|d| d.resources.contains_key("/new")));
        assert_eq!(store.read(|d| d.etag_counter), 0);
        assert!(store.read(|d| d.by_name.contains_key("keep") && !d.by_name.contains_key("new")));
        other.execute_batch("ROLLBACK").unwrap();
        store
            .mutate(|d| d.resources.insert("/new".into(), serde_json::json!(3)))
            .await
            .unwrap();
        assert_eq!(row(dir.path(), "/new").unwrap(), 3);
        assert_eq!(row(dir.path(), "/keep").unwrap(), 1);
    }

    /// A copy of `tests/fixtures/cloud/legacy-data`: a data folder written by the store before
    /// `store.db` (a storage account, container, blob, endpoint and role assignment applied by
    /// `stackform apply`, then `cloud down`).
    fn legacy_folder() -> tempfile::TempDir {
        let fixture =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cloud/legacy-data");
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(fixture.join("state.json"), dir.path().join("state.json")).unwrap();
        std::fs::create_dir(dir.path().join("blobs")).unwrap();
        for f in std::fs::read_dir(fixture.join("blobs")).unwrap() {
            let f = f.unwrap();
            std::fs::copy(f.path(), dir.path().join("blobs").join(f.file_name())).unwrap();
        }
        dir
    }

    const LEGACY_ACCOUNT: &str = "/providers/microsoft.storage/storageaccounts/legacystore1";

    fn check_legacy_content(store: &Store) {
        let (key, body) = store.find_resource_by_suffix(LEGACY_ACCOUNT, None).unwrap();
        assert_eq!(body["name"], "legacystore1");
        assert!(store.secret(&key, "key1").is_some());
        let blob = store.blob("legacystore1", "box", "dir/hello.txt").unwrap();
        assert_eq!(
            store.read_blob_file(&blob.file).unwrap(),
            b"hello from the old format\n"
        );
        assert_eq!(store.role_assignments().len(), 3);
        assert_eq!(store.read(|d| d.etag_counter), 2);
        assert_eq!(
            store.seed().tenant_id,
            "2e777a56-ace5-4b29-bdb2-a70dbeb2d7b5"
        );
    }

    #[tokio::test]
    async fn a_legacy_folder_is_migrated_once_and_its_files_set_aside() {
        let dir = legacy_folder();
        let store = Store::open(dir.path(), || {
            panic!("a legacy folder must not be reseeded")
        })
        .unwrap();
        check_legacy_content(&store);
        assert!(!dir.path().join("state.json").exists());
        assert!(dir.path().join("state.json.migrated").exists());
        assert!(dir.path().join("blobs.migrated").is_dir() && !dir.path().join("blobs").exists());
        drop(store);
        let reopened = Store::open(dir.path(), || panic!("must not reseed")).unwrap();
        check_legacy_content(&reopened);
    }

    #[tokio::test]
    async fn a_migration_interrupted_before_its_rename_is_finished() {
        let dir = legacy_folder();
        drop(Store::open(dir.path(), || panic!("must not reseed")).unwrap());
        // As if the process died after the commit, before renaming state.json aside.
        std::fs::rename(
            dir.path().join("state.json.migrated"),
            dir.path().join("state.json"),
        )
        .unwrap();
        let store = Store::open(dir.path(), || panic!("must not reseed")).unwrap();
        check_legacy_content(&store);
        assert!(!dir.path().join("state.json").exists());
    }

    #[tokio::test]
    async fn a_legacy_file_the_database_was_not_migrated_from_is_refused() {
        let dir = legacy_folder();
        drop(Store::open(dir.path(), || panic!("must not reseed")).unwrap());
        let mut other: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("state.json.migrated")).unwrap())
                .unwrap();
        other["etag_counter"] = 99.into();
        std::fs::write(dir.path().join("state.json"), other.to_string()).unwrap();
        let Err(e) = Store::open(dir.path(), || panic!("must not reseed")) else {
            panic!("a state.json newer than store.db must be refused");
        };
        let msg = e.to_string();
        assert!(
            msg.contains("state.json") && msg.contains("store.db"),
            "{msg}"
        );
        assert!(
            dir.path().join("state.json").exists(),
            "the file is left as it is"
        );
    }

    #[tokio::test]
    async fn an_unreadable_legacy_file_is_refused_and_left_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("state.json"), "{\"seed\": ").unwrap();
        let Err(e) = Store::open(dir.path(), || panic!("must not seed over a legacy file")) else {
            panic!("a corrupt state.json must be refused");
        };
        let msg = e.to_string();
        assert!(
            msg.contains("state.json") && msg.contains("cannot migrate"),
            "{msg}"
        );
        assert!(dir.path().join("state.json").exists());
        // Nothing was committed: once the file is fixed (here: moved away), the folder starts fresh.
        std::fs::rename(
            dir.path().join("state.json"),
            dir.path().join("broken.json"),
        )
        .unwrap();
        let store = Store::open(dir.path(), test_data).unwrap();
        assert_eq!(store.seed().tenant_id, "t");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn the_database_is_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), test_data).unwrap();
        store
            .mutate(|d| d.secrets.insert("/a#key1".into(), "s".into()))
            .await
            .unwrap();
        for f in [DB_FILE, "store.db-wal"] {
            let mode = std::fs::metadata(dir.path().join(f))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
    }
}
