//! The remote state on Azure Blob Storage, kept as a mirror of a local working copy.
//!
//! Every state code path works on an ordinary [`StateStore`] in a private working folder; this
//! module fills that folder from the blobs at the start of a command ([`RemoteState::pull`]) and,
//! as the store's [`Replica`], keeps the blobs in step after each durable local write:
//!
//! * `<key>` — the state file, a block blob written only with a precondition: `If-Match` the ETag
//!   this run read or last wrote, `If-None-Match: *` for the first write. A lost race (412, or 409
//!   `BlobAlreadyExists`) is [`RemoteError::Changed`]: nothing is overwritten and the run stops
//!   before it acts further. Its metadata `serial` is the state's serial.
//! * `<key>.journal` — the apply journal, an append blob: each group commit of the local journal is
//!   one Append Block at the position this run knows (`x-ms-blob-condition-appendpos`), made
//!   before the journal's callers return, so an intent is remote before the cloud write it
//!   announces. A run on another machine pulls it and recovers exactly as from a local journal.
//! * `<key>.history` — an append blob of JSON lines, one per overwritten version: before each
//!   overwrite the state blob is snapshotted (Snapshot Blob) and the snapshot's time, serial, size
//!   and the time of the overwrite are appended here; `state history` reads it and `state restore`
//!   reads the snapshot back.
//! * `<key>.lock` — the lock blob (see the lease lock), never written here.
//!
//! Every remote call runs on the backend's [`Worker`] thread. A write is refused unless the caller
//! registered the lock it holds and the lock still answers for itself ([`RemoteState::hold`]).
//! This module never prints and never writes a secret: the blobs hold what the local files hold
//! (redacted state, ids-only journal), the account key stays in the provider's credential.
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::config::AzureBlob;
use super::worker::Worker;
use crate::provider::ProviderError;
use crate::provider::blob::{BlobClient, BlobItem};
use crate::provider::blob_conditional::{AppendConditions, BlobRefusal, WriteCondition};
use crate::state::{Replica, ReplicaError, StateStore};

/// The largest block one Append Block carries here (the service takes up to 4 MiB in every
/// version since 2019-12-12; blob.json AppendBlob_AppendBlock, `Content-Length`).
const BLOCK_MAX: usize = 4 << 20;

/// Failures of the remote state. Each names the blob; none holds a value from the state.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error(
        "the state blob {blob} changed behind stackform's back (it is no longer the version this run read or wrote); nothing was overwritten. Another writer changed it: run the command again to start from the current state, and check who wrote it"
    )]
    Changed { blob: String },

    #[error(
        "cannot reach {blob}: its container does not exist (create it first, e.g. `az storage container create`)"
    )]
    NoContainer { blob: String },

    #[error("cannot {action} {blob}: {source}")]
    Service {
        action: &'static str,
        blob: String,
        #[source]
        source: Box<BlobRefusal>,
    },

    #[error("refusing to write {blob} without holding its lock")]
    Unlocked { blob: String },

    #[error("{0}")]
    Lock(String),

    #[error(
        "the remote journal {blob} has {why}; it was not changed. It lists steps of an interrupted apply: check those resources in the cloud and the state, then remove it"
    )]
    Journal { blob: String, why: String },

    #[error("the history {blob} has no version `{version}` (see `stackform state history`)")]
    NoVersion { blob: String, version: String },

    #[error("cannot write the working copy {}: {source}", .path.display())]
    WorkingCopy {
        path: std::path::PathBuf,
        #[source]
        source: io::Error,
    },
}

impl RemoteError {
    fn service(action: &'static str, blob: String) -> impl FnOnce(BlobRefusal) -> Self {
        move |source| match source {
            BlobRefusal::Changed { .. } | BlobRefusal::AppendPosition => {
                RemoteError::Changed { blob }
            }
            // The journal removed since this run read or appended to it.
            BlobRefusal::NotFound if action == "append to" => RemoteError::Changed { blob },
            BlobRefusal::NotFound => RemoteError::NoContainer { blob },
            source => RemoteError::Service {
                action,
                blob,
                source: Box::new(source),
            },
        }
    }
}

/// One version `state history` lists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Version {
    /// The snapshot's time, which names it (`None`: the current version).
    pub snapshot: Option<String>,
    pub serial: Option<u64>,
    pub size: u64,
    /// When it was replaced by the next version (`None`: the current one), RFC 3339.
    pub replaced: Option<String>,
}

/// What this run knows of the blobs: the ETag it read or last wrote, the serial and size of that
/// version, and the remote journal's length (`None`: there is none).
#[derive(Debug, Default)]
struct Mirror {
    etag: Option<String>,
    serial: Option<u64>,
    size: u64,
    journal: Option<u64>,
}

/// The check a held lock answers before each write (the lease lock's `check`).
pub(crate) type LockCheck = Box<dyn Fn() -> Result<(), String> + Send + Sync>;

/// A remote state: the blob client, where the blobs are, and what this run knows of them.
pub struct RemoteState {
    worker: Arc<Worker>,
    client: BlobClient,
    blob: AzureBlob,
    mirror: Mutex<Mirror>,
    lock: Mutex<Option<LockCheck>>,
}

impl std::fmt::Debug for RemoteState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RemoteState({})", self.blob)
    }
}

impl RemoteState {
    pub(crate) fn new(worker: Arc<Worker>, client: BlobClient, blob: AzureBlob) -> Self {
        Self {
            worker,
            client,
            blob,
            mirror: Mutex::default(),
            lock: Mutex::new(None),
        }
    }

    pub(crate) fn config(&self) -> &AzureBlob {
        &self.blob
    }

    pub(crate) fn client(&self) -> &BlobClient {
        &self.client
    }

    pub(crate) fn worker(&self) -> &Arc<Worker> {
        &self.worker
    }

    /// Registers the lock the caller now holds: writes are allowed while `check` answers `Ok`.
    pub(crate) fn hold(&self, check: LockCheck) {
        *self.lock.lock().unwrap_or_else(PoisonError::into_inner) = Some(check);
    }

    fn mirror(&self) -> std::sync::MutexGuard<'_, Mirror> {
        self.mirror.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Forgets the lock (it was released): no write is allowed any more.
    pub(crate) fn unhold(&self) {
        *self.lock.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    fn check_lock(&self) -> Result<(), RemoteError> {
        match &*self.lock.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(check) => check().map_err(RemoteError::Lock),
            None => Err(RemoteError::Unlocked {
                blob: self.url(&self.blob.key),
            }),
        }
    }

    /// A blob's URL, for messages.
    pub(crate) fn url(&self, name: &str) -> String {
        self.client
            .url(&self.blob.container, Some(name))
            .map_or_else(
                |_| format!("{}/{name}", self.blob.container),
                |u| u.to_string(),
            )
    }

    /// Reads the state blob and the journal blob into the working copy `store` (replacing what
    /// it held), remembering the state's ETag and the journal's length. Reads only, no lock.
    pub(crate) fn pull(&self, store: &StateStore) -> Result<(), RemoteError> {
        let (client, container) = (self.client.clone(), self.blob.container.clone());
        let (key, journal) = (self.blob.key.clone(), self.blob.journal_blob());
        let state_url = self.url(&key);
        let journal_url = self.url(&journal);
        let (state, journal) = self.worker.call(async move {
            let state = client
                .get_blob(&container, &key)
                .await
                .map_err(|e| read_error(e, state_url))?;
            let journal = client
                .get_blob(&container, &journal)
                .await
                .map_err(|e| read_error(e, journal_url))?;
            Ok::<_, RemoteError>((state, journal))
        })?;
        let mut mirror = self.mirror();
        *mirror = Mirror::default();
        if let Some((bytes, props)) = &state {
            mirror.etag = Some(props.etag.clone());
            mirror.serial = props.metadata.get("serial").and_then(|s| s.parse().ok());
            mirror.size = bytes.len() as u64;
        }
        mirror.journal = journal.as_ref().map(|(bytes, _)| bytes.len() as u64);
        drop(mirror);
        let dir = store.path().parent().unwrap_or(Path::new("."));
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| RemoteError::WorkingCopy {
                path: dir.to_owned(),
                source,
            })?;
        put_file(store.path(), state.as_ref().map(|(b, _)| b.as_ref()))?;
        put_file(
            &store.journal_path(),
            journal.as_ref().map(|(b, _)| b.as_ref()),
        )?;
        put_file(&store.backup_path(), None)?;
        Ok(())
    }

    /// The blobs of the state's container whose names start with `prefix` (List Blobs, with
    /// their metadata). Reads only, no lock.
    pub(crate) fn list(&self, prefix: &str) -> Result<Vec<BlobItem>, RemoteError> {
        let (client, container) = (self.client.clone(), self.blob.container.clone());
        let prefix = prefix.to_string();
        let url = self.url(&prefix);
        self.worker.call(async move {
            client
                .list_blobs(&container, Some(&prefix))
                .await
                .map_err(|e| read_error(e, url))
        })
    }

    /// The versions of the state: the current one first (when there is one), then every version
    /// it replaced, newest first.
    pub(crate) fn history(&self) -> Result<Vec<Version>, RemoteError> {
        let (client, container) = (self.client.clone(), self.blob.container.clone());
        let (key, index) = (self.blob.key.clone(), self.blob.history_blob());
        let (state_url, index_url) = (self.url(&key), self.url(&index));
        let (current, lines) = self.worker.call(async move {
            let current = client
                .head_blob(&container, &key)
                .await
                .map_err(|e| read_error(e, state_url))?;
            let lines = client
                .get_blob(&container, &index)
                .await
                .map_err(|e| read_error(e, index_url))?;
            Ok::<_, RemoteError>((current, lines))
        })?;
        let mut out = Vec::new();
        if let Some(props) = current {
            out.push(Version {
                snapshot: None,
                serial: props.metadata.get("serial").and_then(|s| s.parse().ok()),
                size: props.content_length,
                replaced: None,
            });
        }
        if let Some((bytes, _)) = lines {
            let mut older: Vec<Version> = bytes
                .split(|b| *b == b'\n')
                .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
                // A line torn by a crash mid-append is not a version.
                .filter_map(|l| serde_json::from_slice(l).ok())
                .collect();
            older.reverse();
            out.extend(older);
        }
        Ok(out)
    }

    /// The bytes of one version: `version` is a snapshot time, or a serial (the newest version
    /// with it).
    pub(crate) fn version_bytes(&self, version: &str) -> Result<Vec<u8>, RemoteError> {
        let history = self.history()?;
        let found = history.iter().find(|v| {
            v.snapshot.as_deref() == Some(version)
                || v.serial.map(|s| s.to_string()).as_deref() == Some(version)
        });
        let Some(found) = found.cloned() else {
            return Err(RemoteError::NoVersion {
                blob: self.url(&self.blob.history_blob()),
                version: version.to_string(),
            });
        };
        let (client, container, key) = (
            self.client.clone(),
            self.blob.container.clone(),
            self.blob.key.clone(),
        );
        let url = self.url(&key);
        let version = version.to_string();
        let blob = url.clone();
        let bytes = self.worker.call(async move {
            client
                .get_blob_at(&container, &key, found.snapshot.as_deref())
                .await
                .map_err(|e| read_error(e, blob))
        })?;
        match bytes {
            Some((bytes, _)) => Ok(bytes.to_vec()),
            None => Err(RemoteError::NoVersion { blob: url, version }),
        }
    }

    fn write_state(&self, bytes: &[u8], serial: u64) -> Result<(), RemoteError> {
        self.check_lock()?;
        let (etag, previous) = {
            let m = self.mirror();
            (m.etag.clone(), (m.serial, m.size))
        };
        let (client, container) = (self.client.clone(), self.blob.container.clone());
        let (key, index) = (self.blob.key.clone(), self.blob.history_blob());
        let (url, index_url) = (self.url(&key), self.url(&index));
        let data = Bytes::copy_from_slice(bytes);
        let props = self.worker.call(async move {
            let condition = match &etag {
                Some(etag) => {
                    // Keep the version about to be replaced: a snapshot, listed in the history.
                    let snapshot = client
                        .snapshot_blob(&container, &key)
                        .await
                        .map_err(|e| read_error(e, url.clone()))?
                        .ok_or_else(|| RemoteError::Changed { blob: url.clone() })?;
                    let line = Version {
                        snapshot: Some(snapshot),
                        serial: previous.0,
                        size: previous.1,
                        replaced: Some(now()),
                    };
                    let mut line = serde_json::to_vec(&line).unwrap_or_default();
                    line.push(b'\n');
                    match append_line(&client, &container, &index, line).await {
                        Ok(()) => {}
                        // A full index (50,000 versions) does not stop a state write: the
                        // snapshot is kept, only no longer listed.
                        Err(BlobRefusal::BlockLimit) => tracing::warn!(
                            "the history {index_url} is full; this version is kept as a snapshot but not listed"
                        ),
                        Err(e) => {
                            return Err(RemoteError::service("record the history in", index_url)(e));
                        }
                    }
                    WriteCondition::IfMatch(etag.clone())
                }
                None => WriteCondition::IfNotExists,
            };
            let meta = BTreeMap::from([(String::from("serial"), serial.to_string())]);
            client
                .put_blob_if(&container, &key, data, &meta, &condition, None)
                .await
                .map_err(RemoteError::service("write", url))
        })?;
        let mut m = self.mirror();
        m.etag = Some(props.etag);
        m.serial = Some(serial);
        m.size = bytes.len() as u64;
        Ok(())
    }

    fn append_journal(&self, bytes: &[u8]) -> Result<(), RemoteError> {
        self.check_lock()?;
        let known = self.mirror().journal;
        let (client, container) = (self.client.clone(), self.blob.container.clone());
        let name = self.blob.journal_blob();
        let url = self.url(&name);
        let chunks: Vec<Bytes> = blocks(bytes, BLOCK_MAX)
            .into_iter()
            .map(Bytes::copy_from_slice)
            .collect();
        let len = self.worker.call(async move {
            let mut at = match known {
                Some(at) => at,
                None => {
                    client
                        .create_append_blob(
                            &container,
                            &name,
                            &BTreeMap::new(),
                            &WriteCondition::IfNotExists,
                            None,
                        )
                        .await
                        .map_err(RemoteError::service("create", url.clone()))?;
                    0
                }
            };
            for chunk in chunks {
                let n = chunk.len() as u64;
                let conditions = AppendConditions {
                    position: Some(at),
                    ..AppendConditions::default()
                };
                client
                    .append_block(&container, &name, chunk, &conditions)
                    .await
                    .map_err(RemoteError::service("append to", url.clone()))?;
                at += n;
            }
            Ok::<_, RemoteError>(at)
        })?;
        self.mirror().journal = Some(len);
        Ok(())
    }

    fn remove_journal(&self) -> Result<(), RemoteError> {
        self.check_lock()?;
        let (client, container) = (self.client.clone(), self.blob.container.clone());
        let name = self.blob.journal_blob();
        let url = self.url(&name);
        self.worker.call(async move {
            match client
                .delete_blob_if(&container, &name, &WriteCondition::Always, None, false)
                .await
            {
                Ok(()) | Err(BlobRefusal::NotFound) => Ok(()),
                Err(e) => Err(RemoteError::service("remove", url)(e)),
            }
        })?;
        self.mirror().journal = None;
        Ok(())
    }

    /// Deletes the journal, the history index and the state blob with all its snapshots, under
    /// the lock: for an environment destroyed (the caller checked that its state records nothing).
    /// The state blob goes last and only if it is still the version this run read or wrote
    /// (`If-Match`), so a run stopped halfway leaves the environment listed, to be destroyed again.
    /// The lock blob is the lock's to delete.
    pub(crate) fn remove_all(&self) -> Result<(), RemoteError> {
        self.check_lock()?;
        let etag = self.mirror().etag.clone();
        let (client, container) = (self.client.clone(), self.blob.container.clone());
        let names = [self.blob.journal_blob(), self.blob.history_blob()];
        let urls = names.clone().map(|n| self.url(&n));
        let key = self.blob.key.clone();
        let state_url = self.url(&key);
        self.worker.call(async move {
            for (name, url) in names.iter().zip(urls) {
                match client
                    .delete_blob_if(&container, name, &WriteCondition::Always, None, false)
                    .await
                {
                    Ok(()) | Err(BlobRefusal::NotFound) => {}
                    Err(e) => return Err(RemoteError::service("remove", url)(e)),
                }
            }
            let Some(etag) = etag else {
                return Ok(());
            };
            client
                .delete_blob_if(&container, &key, &WriteCondition::IfMatch(etag), None, true)
                .await
                .map_err(RemoteError::service("remove", state_url))
        })?;
        *self.mirror() = Mirror::default();
        Ok(())
    }
}

impl Replica for RemoteState {
    fn state_written(&self, bytes: &[u8], serial: u64) -> Result<(), ReplicaError> {
        Ok(self.write_state(bytes, serial)?)
    }

    fn journal_appended(&self, bytes: &[u8]) -> Result<(), ReplicaError> {
        Ok(self.append_journal(bytes)?)
    }

    fn journal_removed(&self) -> Result<(), ReplicaError> {
        Ok(self.remove_journal()?)
    }

    fn describe(&self) -> String {
        self.blob.to_string()
    }
}

/// `bytes` (whole lines) cut into blocks of at most `max` bytes, each ending at a line's end unless
/// one line alone is longer: a run killed between two Append Blocks leaves only whole lines.
fn blocks(bytes: &[u8], max: usize) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        if rest.len() <= max {
            out.push(rest);
            break;
        }
        let cut = rest[..max]
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(max, |i| i + 1);
        let (block, tail) = rest.split_at(cut);
        out.push(block);
        rest = tail;
    }
    out
}

/// Appends one line to the history index, creating it on first use.
async fn append_line(
    client: &BlobClient,
    container: &str,
    name: &str,
    line: Vec<u8>,
) -> Result<(), BlobRefusal> {
    let none = BTreeMap::new();
    match client
        .create_append_blob(container, name, &none, &WriteCondition::IfNotExists, None)
        .await
    {
        Ok(_) | Err(BlobRefusal::Changed { .. }) => {}
        Err(e) => return Err(e),
    }
    client
        .append_block(
            container,
            name,
            Bytes::from(line),
            &AppendConditions::default(),
        )
        .await
        .map(drop)
}

fn read_error(e: ProviderError, blob: String) -> RemoteError {
    if e.code.as_deref() == Some("ContainerNotFound") {
        return RemoteError::NoContainer { blob };
    }
    RemoteError::Service {
        action: "read",
        blob,
        source: Box::new(BlobRefusal::Failed(e)),
    }
}

/// Makes `path` hold `bytes` (0600, written whole then renamed), or removes it for `None`.
fn put_file(path: &Path, bytes: Option<&[u8]>) -> Result<(), RemoteError> {
    let err = |source| RemoteError::WorkingCopy {
        path: path.to_owned(),
        source,
    };
    let Some(bytes) = bytes else {
        return match fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(err(e)),
            _ => Ok(()),
        };
    };
    let mut temp = path.as_os_str().to_owned();
    temp.push(".pull");
    let temp = std::path::PathBuf::from(temp);
    let _ = fs::remove_file(&temp);
    let written = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .and_then(|()| fs::rename(&temp, path));
    written.map_err(err)
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A group bigger than one block is cut at line ends, so a kill between two appends never
    /// leaves a torn line in the journal blob; a line longer than a block is cut where it must be.
    #[test]
    fn blocks_end_at_line_ends() {
        let text = b"aaaa\nbb\ncccccc\nd\n";
        let cut = blocks(text, 8);
        assert_eq!(cut, vec![&b"aaaa\nbb\n"[..], b"cccccc\n", b"d\n"]);
        assert_eq!(cut.concat(), text);
        assert_eq!(blocks(b"0123456789\n", 4).concat(), b"0123456789\n");
        assert!(blocks(b"", 4).is_empty());
    }
}
