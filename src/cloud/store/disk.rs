//! The store's disk primitives: its error type and the atomic, durable file write (temp file, fsync,
//! rename, fsync of the folder) that the cloud's small files (certificates, keys, `cloud.json`) use.
//!
//! It never knows what it writes, and never leaves a half-written file in place of a whole one.
use std::io::Write;
use std::path::{Path, PathBuf};

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
    #[error("database {path}: {source}")]
    Db {
        path: PathBuf,
        source: rusqlite::Error,
    },
    /// A data folder the store will not open as it is; the message says why and what to do.
    #[error("{path}: {message}")]
    Refused { path: PathBuf, message: String },
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
