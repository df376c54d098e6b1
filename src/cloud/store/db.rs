//! The store's SQLite database, `store.db` in the data folder: its schema, reading it whole into
//! [`Data`] at start, writing the rows one mutation changed in one transaction, and reading blob
//! contents. The schema is documented in the store's module doc (`store/mod.rs`).
//!
//! It writes only what [`Table::changes`] says changed and never decides what a record means.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, params};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::data::Data;
use super::disk::StoreError;
use super::records::{BlobMeta, Seed};
use super::table::Table;

/// The database file in the data folder (with `store.db-wal` and `store.db-shm` beside it while open).
pub(crate) const DB_FILE: &str = "store.db";

/// The schema's version, in `meta.schema`; a database of another version is refused.
const SCHEMA_VERSION: &str = "1";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS resources (key TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS secrets (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS principals (key TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS role_assignments (key TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS operations (key TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blobs (key TEXT PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS blob_content (id TEXT PRIMARY KEY, bytes BLOB NOT NULL);
";

/// The writing connection. One per data folder (the instance lock keeps a second cloud out).
pub(super) struct Db {
    conn: Connection,
    path: PathBuf,
    /// `meta.seed` is written: the folder is initialised.
    seeded: bool,
    /// The ETag counter as last committed.
    etag_counter: u64,
}

/// A blob content to store with a mutation: its id (recorded in [`BlobMeta::file`]) and bytes.
pub(super) type Content<'a> = (&'a str, &'a [u8]);

impl Db {
    /// Opens (creating it owner-only when absent) the database at `path` in WAL mode with
    /// `synchronous=NORMAL`, and creates its tables.
    pub(super) fn open(path: &Path) -> Result<Db, StoreError> {
        create_private(path)?;
        let err = db_err(path);
        let conn = Connection::open(path).map_err(&err)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(&err)?;
        // WAL: a commit appends to `store.db-wal`, readers never block the writer, and a torn tail
        // is ignored on the next open. NORMAL: commits are not fsynced (checkpoints are), so a
        // process killed with SIGKILL loses nothing (the kernel holds what it wrote); only an OS
        // crash or power loss can drop the last commits, never corrupt the file.
        let mode: String = conn
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .map_err(&err)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Refused {
                path: path.to_path_buf(),
                message: format!("SQLite would not use WAL mode (it answered `{mode}`)"),
            });
        }
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(&err)?;
        conn.execute_batch(SCHEMA).map_err(&err)?;
        let version: Option<String> = meta(&conn, "schema").map_err(&err)?;
        match version.as_deref() {
            None => {
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema', ?1)",
                    [SCHEMA_VERSION],
                )
                .map_err(&err)?;
            }
            Some(SCHEMA_VERSION) => {}
            Some(other) => {
                return Err(StoreError::Refused {
                    path: path.to_path_buf(),
                    message: format!(
                        "the store's schema is version {other}; this stackform reads version {SCHEMA_VERSION}"
                    ),
                });
            }
        }
        Ok(Db {
            conn,
            path: path.to_path_buf(),
            seeded: false,
            etag_counter: 0,
        })
    }

    #[cfg(test)]
    pub(super) fn set_busy_timeout_for_test(&self, t: Duration) {
        self.conn.busy_timeout(t).unwrap();
    }

    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    /// A `meta` value (`migrated_from`, ...).
    pub(super) fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        meta(&self.conn, key).map_err(db_err(&self.path))
    }

    /// Everything the database holds, or `None` when it was never seeded (a new data folder, or one
    /// whose first start stopped before its first commit).
    pub(super) fn load(&mut self) -> Result<Option<Data>, StoreError> {
        let Some(seed) = self.meta("seed")? else {
            return Ok(None);
        };
        let seed: Seed = self.parse("meta", "seed", &seed)?;
        let etag_counter = match self.meta("etag_counter")? {
            Some(v) => v
                .parse()
                .map_err(|_| self.bad_row("meta", "etag_counter"))?,
            None => 0,
        };
        let data = Data {
            seed,
            resources: Table::loaded(self.rows("resources", "body", from_json)?),
            secrets: Table::loaded(self.rows("secrets", "value", |s| Some(s.to_string()))?),
            principals: Table::loaded(self.rows("principals", "record", from_json)?),
            role_assignments: Table::loaded(self.rows("role_assignments", "record", from_json)?),
            operations: Table::loaded(self.rows("operations", "record", from_json)?),
            blobs: Table::loaded(self.rows("blobs", "record", from_json)?),
            etag_counter,
            by_name: Default::default(),
            in_progress: Default::default(),
        };
        self.seeded = true;
        self.etag_counter = etag_counter;
        Ok(Some(data.indexed()))
    }

    fn rows<V>(
        &self,
        table: &str,
        column: &str,
        parse: impl Fn(&str) -> Option<V>,
    ) -> Result<BTreeMap<String, V>, StoreError> {
        let err = db_err(&self.path);
        let mut stmt = self
            .conn
            .prepare(&format!("SELECT key, {column} FROM {table}"))
            .map_err(&err)?;
        let mut rows = stmt.query([]).map_err(&err)?;
        let mut out = BTreeMap::new();
        while let Some(row) = rows.next().map_err(&err)? {
            let key: String = row.get(0).map_err(&err)?;
            let text: String = row.get(1).map_err(&err)?;
            let value = parse(&text).ok_or_else(|| self.bad_row(table, &key))?;
            out.insert(key, value);
        }
        Ok(out)
    }

    fn parse<V: DeserializeOwned>(
        &self,
        table: &str,
        key: &str,
        text: &str,
    ) -> Result<V, StoreError> {
        serde_json::from_str(text).map_err(|_| self.bad_row(table, key))
    }

    fn bad_row(&self, table: &str, key: &str) -> StoreError {
        StoreError::Refused {
            path: self.path.clone(),
            message: format!("the row `{key}` of table `{table}` cannot be read"),
        }
    }

    /// Writes every change of `d` since its last commit, the `contents` its blob records now name,
    /// and `extra` meta values, in one transaction. On success the caller marks `d` committed; on
    /// failure nothing was written.
    pub(super) fn write(
        &mut self,
        d: &Data,
        contents: &[Content<'_>],
        extra: &[(&str, String)],
    ) -> Result<(), StoreError> {
        let err = db_err(&self.path);
        let tx = self.conn.transaction().map_err(&err)?;
        write_table(&tx, "resources", "body", &d.resources, json).map_err(&err)?;
        write_table(&tx, "secrets", "value", &d.secrets, |v| Ok(v.clone())).map_err(&err)?;
        write_table(&tx, "principals", "record", &d.principals, json).map_err(&err)?;
        write_table(&tx, "role_assignments", "record", &d.role_assignments, json).map_err(&err)?;
        write_table(&tx, "operations", "record", &d.operations, json).map_err(&err)?;
        write_table(&tx, "blobs", "record", &d.blobs, json).map_err(&err)?;
        write_contents(&tx, &d.blobs, contents).map_err(&err)?;
        if !self.seeded {
            put_meta(&tx, "seed", &json(&d.seed).map_err(&err)?).map_err(&err)?;
        }
        if d.etag_counter != self.etag_counter {
            put_meta(&tx, "etag_counter", &d.etag_counter.to_string()).map_err(&err)?;
        }
        for (k, v) in extra {
            put_meta(&tx, k, v).map_err(&err)?;
        }
        tx.commit().map_err(&err)?;
        self.seeded = true;
        self.etag_counter = d.etag_counter;
        Ok(())
    }
}

/// A read-only connection for blob contents, so a large download never holds the writer's lock.
pub(super) struct Reader {
    conn: Connection,
    path: PathBuf,
}

impl Reader {
    pub(super) fn open(path: &Path) -> Result<Reader, StoreError> {
        let err = db_err(path);
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(&err)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(&err)?;
        Ok(Reader {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// The bytes stored under a content id.
    pub(super) fn content(&self, id: &str) -> Result<Vec<u8>, StoreError> {
        let got: Option<Vec<u8>> = self
            .conn
            .prepare_cached("SELECT bytes FROM blob_content WHERE id = ?1")
            .and_then(|mut s| s.query_row([id], |r| r.get(0)).optional())
            .map_err(db_err(&self.path))?;
        got.ok_or_else(|| StoreError::Read {
            path: self.path.join("blob_content").join(id),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such blob content"),
        })
    }
}

fn from_json<V: DeserializeOwned>(text: &str) -> Option<V> {
    serde_json::from_str(text).ok()
}

fn meta(conn: &Connection, key: &str) -> rusqlite::Result<Option<String>> {
    conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()
}

fn put_meta(tx: &Transaction<'_>, key: &str, value: &str) -> rusqlite::Result<()> {
    tx.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")?
        .execute(params![key, value])?;
    Ok(())
}

fn json<T: Serialize>(v: &T) -> rusqlite::Result<String> {
    serde_json::to_string(v).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

/// Upserts the changed rows of `table` that exist and deletes those that no longer do.
fn write_table<V: Clone>(
    tx: &Transaction<'_>,
    name: &str,
    column: &str,
    table: &Table<V>,
    text: impl Fn(&V) -> rusqlite::Result<String>,
) -> rusqlite::Result<()> {
    let mut upsert = tx.prepare_cached(&format!(
        "INSERT OR REPLACE INTO {name} (key, {column}) VALUES (?1, ?2)"
    ))?;
    let mut delete = tx.prepare_cached(&format!("DELETE FROM {name} WHERE key = ?1"))?;
    for (key, _, now) in table.changes() {
        match now {
            Some(v) => upsert.execute(params![key, text(v)?])?,
            None => delete.execute([key])?,
        };
    }
    Ok(())
}

/// Keeps `blob_content` in step with the blob records: the content a changed record no longer names
/// is deleted, and the content it now names is inserted from `contents`.
fn write_contents(
    tx: &Transaction<'_>,
    blobs: &Table<BlobMeta>,
    contents: &[Content<'_>],
) -> rusqlite::Result<()> {
    let mut insert =
        tx.prepare_cached("INSERT OR REPLACE INTO blob_content (id, bytes) VALUES (?1, ?2)")?;
    let mut delete = tx.prepare_cached("DELETE FROM blob_content WHERE id = ?1")?;
    for (_, before, now) in blobs.changes() {
        let (old, new) = (before.map(|m| &m.file), now.map(|m| &m.file));
        if old == new {
            continue;
        }
        if let Some(old) = old {
            delete.execute([old])?;
        }
        if let Some(new) = new
            && let Some((id, bytes)) = contents.iter().find(|(id, _)| *id == new.as_str())
        {
            insert.execute(params![id, bytes])?;
        }
    }
    Ok(())
}

fn db_err(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |source| StoreError::Db {
        path: path.to_path_buf(),
        source,
    }
}

/// Creates an empty database file readable by its owner only (it holds account keys and the service
/// principal's secret); SQLite gives `-wal` and `-shm` the same permissions.
fn create_private(path: &Path) -> Result<(), StoreError> {
    if path.exists() {
        return Ok(());
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    opts.open(path)
        .map(drop)
        .map_err(|source| StoreError::Write {
            path: path.to_path_buf(),
            source,
        })
}
