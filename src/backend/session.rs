//! One command's use of the remote backend: the connection (the provider's credentials and blob
//! endpoint, on the backend's own worker thread), the private working folder the command's
//! [`StateStore`] lives in, and the lock.
//!
//! The working folder is `.stackform/backend/<host>-<pid>-<random>/` beside the stack file, mode
//! 0700, made for one command and removed when it ends; one a killed command left behind is removed
//! by the next command on that host (nothing reads it again: every command pulls afresh). It never
//! holds the account key.
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use super::config::AzureBlob;
use super::lease_lock::{LeaseLock, LeaseLockError};
use super::remote::{RemoteError, RemoteState, Version};
use super::worker::Worker;
use crate::provider::{AzureProvider, CloudConfig, ProviderError, Secret};
use crate::specs::Registry;
use crate::state::{LockInfo, LockRequest, StateStore, UnlockOutcome};

/// Failures of opening or using the remote backend.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("cannot start the remote state's worker thread: {0}")]
    Worker(#[source] std::io::Error),

    #[error("cannot reach the remote state {blob}: {source}")]
    Connect {
        blob: String,
        #[source]
        source: Box<ProviderError>,
    },

    #[error("cannot make the working folder {}: {source}", .path.display())]
    WorkingFolder {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error(transparent)]
    Remote(#[from] RemoteError),

    #[error(transparent)]
    Lock(#[from] LeaseLockError),
}

/// One environment's state blob, as `env list` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteEnv {
    pub name: String,
    /// The state blob's URL.
    pub location: String,
    pub serial: Option<u64>,
    /// Resources in its state (`None`: it cannot be read; `error` says why).
    pub resources: Option<usize>,
    pub error: Option<String>,
    /// When the state blob was made and last written.
    pub created: Option<std::time::SystemTime>,
    pub updated: Option<std::time::SystemTime>,
}

/// An open remote backend for one command.
pub struct Session {
    remote: Arc<RemoteState>,
    store: StateStore,
    folder: PathBuf,
    /// The lease lock while this command holds it.
    lease: Arc<Mutex<Option<LeaseLock>>>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Session({:?})", self.remote)
    }
}

/// The environment variables an account key is read from, in order: Terraform's, then
/// stackform's own.
pub const ACCESS_KEY_VARS: [&str; 2] = ["ARM_ACCESS_KEY", "STACKFORM_BACKEND_ACCESS_KEY"];

/// The account key from the environment, if one is set.
pub fn access_key_from_env() -> Option<Secret> {
    ACCESS_KEY_VARS
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|k| !k.is_empty()))
        .map(Secret::new)
}

impl Session {
    /// Connects to the state blob `blob` with the stack's cloud configuration `cloud` (its
    /// credential chain and trust; in `blob.resource_group` when given) and makes the working
    /// folder under `root` for the store of `stack`. Reads nothing yet.
    pub fn open(
        blob: AzureBlob,
        mut cloud: CloudConfig,
        registry: Arc<Registry>,
        access_key: Option<Secret>,
        root: &Path,
        stack: &str,
    ) -> Result<Self, BackendError> {
        let worker = Arc::new(Worker::new().map_err(BackendError::Worker)?);
        if let Some(rg) = &blob.resource_group {
            cloud.resource_group = rg.clone();
        }
        let (account, endpoint) = (blob.account.clone(), blob.endpoint.clone());
        let client = worker
            .call(async move {
                let provider = AzureProvider::connect_with(cloud, registry).await?;
                provider
                    .blob_client(&account, endpoint, access_key.as_ref())
                    .await
            })
            .map_err(|source| BackendError::Connect {
                blob: blob.to_string(),
                source: Box::new(source),
            })?;
        let folder = working_folder(root)?;
        let remote = Arc::new(RemoteState::new(worker, client, blob));
        let store = StateStore::for_stack(&folder, stack)
            .map_err(|e| BackendError::WorkingFolder {
                path: folder.clone(),
                source: std::io::Error::other(e.to_string()),
            })?
            .with_replica(remote.clone());
        Ok(Self {
            remote,
            store,
            folder,
            lease: Arc::default(),
        })
    }

    /// The working copy every state code path uses; its writes are mirrored to the blobs.
    pub fn store(&self) -> &StateStore {
        &self.store
    }

    pub fn remote(&self) -> &RemoteState {
        &self.remote
    }

    /// `azure_blob account/container/key`.
    pub fn describe(&self) -> String {
        self.remote.config().to_string()
    }

    /// Reads the remote state and journal into the working copy.
    pub fn pull(&self) -> Result<(), BackendError> {
        Ok(self.remote.pull(&self.store)?)
    }

    /// Takes the state's lock (the lease on `<key>.lock`, see [`LeaseLock::acquire`]: waiting up
    /// to `request`'s timeout while another run holds it) for `request`, then pulls the state again
    /// so the command works on what the lock protects. From then on each write to the blobs first
    /// asks the lock whether it still holds ([`LeaseLock::check`]). Returns a notice when a lock
    /// left by another run was taken over.
    pub fn lock(&self, request: &LockRequest) -> Result<Option<String>, BackendError> {
        let (client, container, blob) = self.lock_blob();
        let request = request.clone();
        let acquired = self
            .remote
            .worker()
            .call(async move { LeaseLock::acquire(client, &container, &blob, &request).await })?;
        let notice = acquired.notice.map(|n| n.to_string());
        *self.lease() = Some(acquired.lock);
        let lease = self.lease.clone();
        self.remote.hold(Box::new(move || {
            match &*lease.lock().unwrap_or_else(PoisonError::into_inner) {
                Some(lock) => lock.check().map_err(|e| e.to_string()),
                None => Err(String::from("the state's lock was released")),
            }
        }));
        self.pull()?;
        Ok(notice)
    }

    fn lease(&self) -> std::sync::MutexGuard<'_, Option<LeaseLock>> {
        self.lease.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Removes the state for good, under the lock taken by [`lock`](Self::lock): the journal, the
    /// history index, the state blob with its snapshots, then the lock blob (deleted under its
    /// lease, which ends the lock). For an environment destroyed; the caller checked that its
    /// state records nothing.
    pub fn remove(&self) -> Result<(), BackendError> {
        self.remote.remove_all()?;
        self.remote.unhold();
        let taken = self.lease().take();
        if let Some(lock) = taken {
            self.remote.worker().call(lock.delete())?;
        }
        Ok(())
    }

    /// Releases the lock taken by [`lock`](Self::lock) (no-op when none is held); writes are
    /// refused from then on.
    pub fn unlock(&self) -> Result<(), BackendError> {
        self.remote.unhold();
        let taken = self.lease().take();
        if let Some(lock) = taken {
            self.remote.worker().call(lock.release())?;
        }
        Ok(())
    }

    /// The lock blob: the client, the container and its name.
    fn lock_blob(&self) -> (crate::provider::blob::BlobClient, String, String) {
        let config = self.remote.config();
        (
            self.remote.client().clone(),
            config.container.clone(),
            config.lock_blob(),
        )
    }

    /// Who holds the state's lock now, if anyone.
    pub fn holder(&self) -> Result<Option<LockInfo>, BackendError> {
        let (client, container, blob) = self.lock_blob();
        Ok(self
            .remote
            .worker()
            .call(async move { LeaseLock::holder(&client, &container, &blob).await })?)
    }

    /// Breaks the state's lock whoever holds it (`state unlock --force`, see
    /// [`LeaseLock::force_unlock`]): its holder stops before its next write.
    pub fn force_unlock(&self) -> Result<UnlockOutcome, BackendError> {
        let (client, container, blob) = self.lock_blob();
        Ok(self
            .remote
            .worker()
            .call(async move { LeaseLock::force_unlock(&client, &container, &blob).await })?)
    }

    /// The environments kept beside this state (opened without `--env`): each state blob
    /// `env/NAME/<key>` of the container, with its serial and times from the listing (List Blobs
    /// with `prefix=env/`) and its resources counted from the state and journal blobs read into
    /// the working folder, as the local backend counts them from its files. Sorted by name; reads
    /// only, no lock. A NAME is any segment without `/` (the caller checks the name's form).
    pub fn environments(&self) -> Result<Vec<RemoteEnv>, BackendError> {
        let config = self.remote.config().clone();
        let listed = self.remote.list("env/")?;
        let mut found = Vec::new();
        for item in listed {
            let Some(name) = item
                .name
                .strip_prefix("env/")
                .and_then(|rest| rest.strip_suffix(config.key.as_str()))
                .and_then(|rest| rest.strip_suffix('/'))
                .filter(|n| !n.is_empty() && !n.contains('/'))
            else {
                continue;
            };
            let blob = AzureBlob {
                key: item.name.clone(),
                ..config.clone()
            };
            let remote = RemoteState::new(
                self.remote.worker().clone(),
                self.remote.client().clone(),
                blob,
            );
            let store = StateStore::for_stack(self.folder.join("env").join(name), "state")
                .map_err(|e| BackendError::WorkingFolder {
                    path: self.folder.clone(),
                    source: std::io::Error::other(e.to_string()),
                })?;
            let counted = match remote.pull(&store) {
                Ok(()) => store
                    .read()
                    .map(|s| s.map_or(0, |s| s.resources.len()))
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            found.push(RemoteEnv {
                name: name.to_string(),
                location: self.remote.url(&item.name),
                serial: item
                    .properties
                    .metadata
                    .get("serial")
                    .and_then(|s| s.parse().ok()),
                resources: counted.as_ref().ok().copied(),
                error: counted.err(),
                created: item.properties.created,
                updated: item.properties.modified,
            });
        }
        found.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(found)
    }

    /// The versions `state history` lists, the current one first.
    pub fn history(&self) -> Result<Vec<Version>, BackendError> {
        Ok(self.remote.history()?)
    }

    /// The bytes of a version of the state (a snapshot time or a serial).
    pub fn version_bytes(&self, version: &str) -> Result<Vec<u8>, BackendError> {
        Ok(self.remote.version_bytes(version)?)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // A lock still held (an error between lock and unlock) is released; if that fails, its
        // lease runs out by itself.
        let _ = self.unlock();
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}

/// `<root>/<host>-<pid>-<random>/`, made 0700 (and `root` with it). Folders this host's commands
/// left behind when they were killed (their pid no longer runs) are removed first.
fn working_folder(root: &Path) -> Result<PathBuf, BackendError> {
    use std::os::unix::fs::DirBuilderExt;
    let host: String = crate::state::hostname()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    sweep(root, &host);
    let unique = uuid::Uuid::new_v4().simple().to_string();
    let folder = root.join(format!("{host}-{}-{}", std::process::id(), &unique[..12]));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&folder)
        .map_err(|source| BackendError::WorkingFolder {
            path: folder.clone(),
            source,
        })?;
    Ok(folder)
}

/// Removes the working folders of `host`'s commands that no longer run.
fn sweep(root: &Path, host: &str) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix(host)
            .and_then(|rest| rest.strip_prefix('-'))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        if let Some(pid) = pid
            && crate::state::liveness(pid) == crate::state::Liveness::Dead
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A killed command's working folder (its pid gone) is removed by the next command on the
    /// host; a running one's and another host's are left alone.
    #[test]
    fn working_folders_of_dead_commands_are_swept() {
        let root = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let host = "ci_7";
        let gone = root.path().join(format!("{host}-{dead}-abc"));
        let live = root
            .path()
            .join(format!("{host}-{}-abc", std::process::id()));
        let other = root.path().join(format!("elsewhere-{dead}-abc"));
        for d in [&gone, &live, &other] {
            std::fs::create_dir_all(d).unwrap();
        }
        sweep(root.path(), host);
        assert!(!gone.exists() && live.exists() && other.exists());
        let made = working_folder(root.path()).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&made).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }
}
