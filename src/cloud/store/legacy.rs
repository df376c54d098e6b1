//! The store's format before `store.db`: one `state.json` holding every map, rewritten whole on each
//! write, with blob bytes in `blobs/{file}`. A data folder in that format is migrated on its first
//! start (see `Store::open`): read here, written to the database in one transaction, then the old
//! files are renamed aside (`state.json.migrated`, `blobs.migrated/`), never deleted.
//!
//! It only reads the old files and renames them; it never writes the database itself.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::data::Data;
use super::disk::StoreError;
use super::records::{BlobMeta, Operation, Principal, RoleAssignment, Seed};

/// The old store file.
pub(crate) const LEGACY_FILE: &str = "state.json";
/// Its name once migrated.
pub(crate) const MIGRATED_FILE: &str = "state.json.migrated";
/// The old folder of blob bytes, and its name once migrated.
pub(crate) const LEGACY_BLOBS: &str = "blobs";
pub(crate) const MIGRATED_BLOBS: &str = "blobs.migrated";

/// `state.json` as the store wrote it before `store.db`.
#[derive(Deserialize)]
struct Legacy {
    seed: Seed,
    resources: BTreeMap<String, Value>,
    principals: BTreeMap<String, Principal>,
    role_assignments: BTreeMap<String, RoleAssignment>,
    operations: BTreeMap<String, Operation>,
    blobs: BTreeMap<String, BlobMeta>,
    secrets: BTreeMap<String, String>,
    etag_counter: u64,
}

/// A legacy data folder read into memory: its records (all to be written), the blob bytes they
/// name, and the SHA-256 of `state.json` (recorded in the database as `meta.migrated_from`).
pub(super) struct Read {
    pub data: Data,
    pub contents: Vec<(String, Vec<u8>)>,
    pub sha256: String,
}

fn refused(path: &Path, why: impl std::fmt::Display) -> StoreError {
    StoreError::Refused {
        path: path.to_path_buf(),
        message: format!(
            "cannot migrate this local-cloud store (the format before store.db): {why}; the file is left as it is"
        ),
    }
}

/// The SHA-256 (hex) of the legacy file's bytes.
pub(super) fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Reads `state.json` and the blob files it names from `dir`.
pub(super) fn read(dir: &Path) -> Result<Read, StoreError> {
    let path = dir.join(LEGACY_FILE);
    let bytes = std::fs::read(&path).map_err(|source| StoreError::Read {
        path: path.clone(),
        source,
    })?;
    let old: Legacy = serde_json::from_slice(&bytes).map_err(|e| refused(&path, e))?;
    let mut data = Data::new(old.seed);
    for (k, v) in old.resources {
        data.resources.insert(k, v);
    }
    for (k, v) in old.principals {
        data.principals.insert(k, v);
    }
    for (k, v) in old.role_assignments {
        data.role_assignments.insert(k, v);
    }
    for (k, v) in old.operations {
        data.operations.insert(k, v);
    }
    for (k, v) in old.secrets {
        data.secrets.insert(k, v);
    }
    data.etag_counter = old.etag_counter;
    let mut contents = Vec::new();
    for (k, meta) in old.blobs {
        let file = dir.join(LEGACY_BLOBS).join(&meta.file);
        match std::fs::read(&file) {
            Ok(b) => contents.push((meta.file.clone(), b)),
            // Its bytes were already gone before the migration (the old store answered 500 for
            // it); the record is kept so the blob can still be listed and deleted.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(
                    "migrating {}: blob {k} has no file {}",
                    path.display(),
                    file.display()
                );
            }
            Err(e) => return Err(refused(&file, e)),
        }
        data.blobs.insert(k, meta);
    }
    Ok(Read {
        data: data.indexed(),
        contents,
        sha256: sha256(&bytes),
    })
}

/// Renames the migrated files aside: `state.json` → `state.json.migrated`, `blobs/` →
/// `blobs.migrated/` (left in place if that name is taken).
pub(super) fn set_aside(dir: &Path) -> Result<(), StoreError> {
    let (from, to) = (dir.join(LEGACY_FILE), dir.join(MIGRATED_FILE));
    std::fs::rename(&from, &to).map_err(|source| StoreError::Write { path: from, source })?;
    let blobs: PathBuf = dir.join(LEGACY_BLOBS);
    let moved = dir.join(MIGRATED_BLOBS);
    if blobs.is_dir() && !moved.exists() {
        let _ = std::fs::rename(&blobs, &moved);
    }
    Ok(())
}

/// The message for a `state.json` found beside a database that was not migrated from it.
pub(super) fn newer_than_db(path: &Path) -> StoreError {
    StoreError::Refused {
        path: path.to_path_buf(),
        message: format!(
            "this data folder has both store.db and a {LEGACY_FILE} that store.db was not migrated from \
             (an older stackform wrote it after the migration?). The local cloud reads store.db only: \
             move {LEGACY_FILE} away to keep store.db, or move store.db away to migrate {LEGACY_FILE}"
        ),
    }
}
