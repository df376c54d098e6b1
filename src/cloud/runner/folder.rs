//! A deployment's folder under the cloud's data folder (`deployments/{hash}`): where it is, its two
//! logs (storage initializer and inference server), reading them back for `getLogs`, and removing the
//! folder when the deployment is deleted.
//!
//! Files only: it never starts or stops a process and never reads or writes the store.
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::cloud::state::Shared;
use crate::cloud::store::now_rfc3339;

pub(super) fn dep_dir(st: &Shared, dep_key: &str) -> PathBuf {
    let h = hex::encode(Sha256::digest(dep_key.as_bytes()));
    st.data_dir.join("deployments").join(&h[..16])
}

/// The two logs of a deployment's folder.
pub(super) struct Logs {
    /// The storage initializer's (code and model download).
    pub(super) storage: PathBuf,
    /// The inference server's (environment, scoring script).
    pub(super) inference: PathBuf,
}

impl Logs {
    /// The logs of the deployment whose folder is `dir`.
    pub(super) fn in_folder(dir: &Path) -> Logs {
        Logs {
            storage: dir.join("storage-initializer.log"),
            inference: dir.join("inference-server.log"),
        }
    }
}

pub(super) fn append(path: &Path, line: &str) {
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{} {line}", now_rfc3339());
    }
}

/// Removes a deleted deployment's files.
pub(crate) fn remove_files(st: &Shared, dep_key: &str) {
    let _ = std::fs::remove_dir_all(dep_dir(st, dep_key));
}

/// The deployment's log (`InferenceServer` or `StorageInitializer`), last `tail` lines.
pub(crate) fn read_logs(
    st: &Shared,
    dep_key: &str,
    container: &str,
    tail: Option<usize>,
) -> String {
    let logs = Logs::in_folder(&dep_dir(st, dep_key));
    let file = if container.eq_ignore_ascii_case("StorageInitializer") {
        logs.storage
    } else {
        logs.inference
    };
    let text = std::fs::read_to_string(file).unwrap_or_default();
    match tail {
        Some(n) => {
            let lines: Vec<&str> = text.lines().collect();
            let start = lines.len().saturating_sub(n);
            lines[start..].join("\n")
        }
        None => text,
    }
}
