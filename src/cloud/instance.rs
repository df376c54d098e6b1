//! Managing a local-cloud instance from outside: the data folder (default
//! `dirs::data_dir()/stackform/cloud`, or `STACKFORM_CLOUD_DIR`), the OS file lock that keeps two
//! instances off one folder, `cloud.json` describing the running instance, starting it detached in
//! the background and waiting until it answers, and stopping it through its admin API.
//!
//! `cloud.json` holds the seeded service principal's fixture secret and is written with mode 0600.
//! This module never serves requests and never reads the store: it finds, starts and stops an
//! instance from the outside.
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::store::{StoreError, write_atomic};
use super::tls::TlsError;

/// Name of the instance description file in the data folder.
pub(crate) const INFO_FILE: &str = "cloud.json";
const LOCK_FILE: &str = "cloud.lock";
/// Log of a detached instance.
pub(crate) const LOG_FILE: &str = "cloud.log";

/// Everything a client needs to use a running local cloud (what `cloud status --json` prints).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CloudInfo {
    /// ARM base URL with a trailing slash, e.g. `https://127.0.0.1:48443/`.
    pub arm_endpoint: String,
    /// Entra authority host: tokens at `{authority_host}{tenant_id}/oauth2/v2.0/token`.
    pub authority_host: String,
    pub tenant_id: String,
    pub client_id: String,
    /// Fixture secret of the seeded service principal (local only, not sensitive).
    pub client_secret: String,
    pub subscription_id: String,
    pub resource_group: String,
    pub workspace: String,
    pub location: String,
    /// PEM file of the local CA to trust.
    pub ca_cert: PathBuf,
    /// Blob endpoint of an account: replace `{account}`.
    pub blob_endpoint_template: String,
    pub metadata_endpoint: String,
    /// Managed-identity endpoint given to scoring processes (plain HTTP on loopback).
    pub msi_endpoint: String,
    pub pid: u32,
    pub port: u16,
    pub msi_port: u16,
    pub data_dir: PathBuf,
    pub log_file: Option<PathBuf>,
    pub started_at: String,
    /// The ARM throttling the instance was started with (`--arm-throttle`; empty when off), so
    /// clients pace with the same buckets.
    #[serde(default)]
    pub arm_throttle: String,
}

/// Failures of the local cloud's lifecycle.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("another local cloud is already running with data folder {0}")]
    AlreadyRunning(PathBuf),
    #[error("the local cloud is not running (data folder {0})")]
    NotRunning(PathBuf),
    #[error("cannot start the local cloud: {0}")]
    Start(String),
    #[error("no data folder: set STACKFORM_CLOUD_DIR or pass --data-dir")]
    NoDataDir,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("invalid {path}: {source}")]
    Info {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("the local cloud did not answer: {0}")]
    Unreachable(String),
}

/// `STACKFORM_CLOUD_DIR`, else `dirs::data_dir()/stackform/cloud`.
pub fn default_data_dir() -> Result<PathBuf, CloudError> {
    if let Some(d) = std::env::var_os("STACKFORM_CLOUD_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d));
    }
    dirs::data_dir()
        .map(|d| d.join("stackform").join("cloud"))
        .ok_or(CloudError::NoDataDir)
}

/// Takes the data folder's exclusive lock; fails if another instance holds it.
pub(crate) fn take_lock(dir: &Path) -> Result<std::fs::File, CloudError> {
    let path = dir.join(LOCK_FILE);
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| CloudError::Io {
            path: path.clone(),
            source,
        })?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(CloudError::AlreadyRunning(dir.to_path_buf()))
        }
        Err(std::fs::TryLockError::Error(source)) => Err(CloudError::Io { path, source }),
    }
}

/// True when some process holds the data folder's lock.
pub(crate) fn is_locked(dir: &Path) -> bool {
    if !dir.join(LOCK_FILE).exists() {
        return false;
    }
    matches!(take_lock(dir), Err(CloudError::AlreadyRunning(_)))
}

pub(crate) fn write_info(info: &CloudInfo) -> Result<(), CloudError> {
    let bytes = serde_json::to_vec_pretty(info).unwrap_or_default();
    write_atomic(&info.data_dir.join(INFO_FILE), &bytes, true)?;
    Ok(())
}

/// Reads `cloud.json` (whether or not the instance is still alive).
pub fn read_info(dir: &Path) -> Result<CloudInfo, CloudError> {
    let path = dir.join(INFO_FILE);
    let bytes = std::fs::read(&path).map_err(|source| CloudError::Io {
        path: path.clone(),
        source,
    })?;
    serde_json::from_slice(&bytes).map_err(|source| CloudError::Info { path, source })
}

/// The running instance of `dir`, if any (lock held and `cloud.json` present).
pub fn status(dir: &Path) -> Option<CloudInfo> {
    if !is_locked(dir) {
        return None;
    }
    read_info(dir).ok()
}

async fn healthy(info: &CloudInfo) -> Result<(), CloudError> {
    let client = super::tls::client(&info.ca_cert)?;
    let r = client
        .get(format!("{}_admin/health", info.arm_endpoint))
        .timeout(Duration::from_secs(2))
        .send()
        .await
        .map_err(|e| CloudError::Unreachable(e.to_string()))?;
    if r.status().is_success() {
        Ok(())
    } else {
        Err(CloudError::Unreachable(format!(
            "health answered {}",
            r.status()
        )))
    }
}

/// Starts `exe cloud up --data-dir dir [--port port] [extra_args]` detached (own process group, output to
/// `cloud.log`) and waits until it answers, for up to 60 s.
pub(crate) fn spawn_detached(
    exe: &Path,
    dir: &Path,
    port: Option<u16>,
    extra_args: &[String],
) -> Result<CloudInfo, CloudError> {
    std::fs::create_dir_all(dir).map_err(|source| CloudError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    if is_locked(dir) {
        return Err(CloudError::AlreadyRunning(dir.to_path_buf()));
    }
    let log_path = dir.join(LOG_FILE);
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|source| CloudError::Io {
            path: log_path.clone(),
            source,
        })?;
    let log2 = log.try_clone().map_err(|source| CloudError::Io {
        path: log_path.clone(),
        source,
    })?;
    let mut cmd = std::process::Command::new(exe);
    cmd.args(["cloud", "up", "--data-dir"])
        .arg(dir)
        .arg("--log-file")
        .arg(&log_path);
    if let Some(p) = port {
        cmd.arg("--port").arg(p.to_string());
    }
    cmd.args(extra_args);
    cmd.stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(log2);
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| CloudError::Start(format!("cannot run {}: {e}", exe.display())))?;
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(60);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CloudError::Start(e.to_string()))?;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let tail = std::fs::read_to_string(&log_path).unwrap_or_default();
            let tail: Vec<&str> = tail.lines().rev().take(5).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            return Err(CloudError::Start(format!(
                "the background process exited ({status}): {}",
                tail.join(" | ")
            )));
        }
        if let Ok(info) = read_info(dir)
            && info.pid == pid
            && rt.block_on(healthy(&info)).is_ok()
        {
            return Ok(info);
        }
        if Instant::now() > deadline {
            return Err(CloudError::Start(format!(
                "no answer within 60 s; see {}",
                log_path.display()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Returns the running local cloud of `data_dir`, starting it in the background (with the current
/// executable) when it is not running, and saying so on stderr.
pub fn ensure_running(data_dir: &Path) -> Result<CloudInfo, CloudError> {
    let exe = std::env::current_exe()
        .map_err(|e| CloudError::Start(format!("cannot find the stackform executable: {e}")))?;
    ensure_running_with(&exe, data_dir)
}

/// [`ensure_running`] with an explicit `stackform` executable (tests pass `CARGO_BIN_EXE_stackform`).
pub fn ensure_running_with(exe: &Path, data_dir: &Path) -> Result<CloudInfo, CloudError> {
    if let Some(info) = status(data_dir) {
        return Ok(info);
    }
    // Never `eprintln!`: it panics on a closed stderr, and this note is not worth failing for.
    let _ = std::io::Write::write_fmt(
        &mut std::io::stderr(),
        format_args!(
            "starting the local cloud in the background (data: {})\n",
            data_dir.display()
        ),
    );
    spawn_detached(exe, data_dir, None, &[])
}

/// Gets a management token for the seeded service principal of a running instance.
pub async fn admin_token(client: &reqwest::Client, info: &CloudInfo) -> Result<String, CloudError> {
    let r = client
        .post(format!(
            "{}{}/oauth2/v2.0/token",
            info.authority_host, info.tenant_id
        ))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair("grant_type", "client_credentials")
                .append_pair("client_id", &info.client_id)
                .append_pair("client_secret", &info.client_secret)
                .append_pair("scope", "https://management.azure.com/.default")
                .finish(),
        )
        .send()
        .await
        .map_err(|e| CloudError::Unreachable(e.to_string()))?;
    let v: serde_json::Value = r
        .json()
        .await
        .map_err(|e| CloudError::Unreachable(e.to_string()))?;
    v["access_token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| CloudError::Unreachable("no token in the answer".into()))
}

/// Stops the running instance of `dir` through its admin API and waits (up to 30 s) until its lock is
/// released.
pub fn stop(dir: &Path) -> Result<CloudInfo, CloudError> {
    let info = status(dir).ok_or_else(|| CloudError::NotRunning(dir.to_path_buf()))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CloudError::Start(e.to_string()))?;
    let client = super::tls::client(&info.ca_cert)?;
    let token = rt.block_on(admin_token(&client, &info))?;
    // The server may close the connection as it shuts down, before its answer arrives: a transport
    // error is therefore not a failure as long as the instance then lets go of its data folder.
    let answered = rt.block_on(async {
        client
            .post(format!("{}_admin/shutdown", info.arm_endpoint))
            .bearer_auth(token)
            .send()
            .await
            .map(|r| r.status())
            .map_err(|e| CloudError::Unreachable(e.to_string()))
    });
    if let Ok(status) = &answered
        && !status.is_success()
    {
        return Err(CloudError::Unreachable(format!(
            "shutdown answered {status}"
        )));
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while is_locked(dir) {
        if Instant::now() > deadline {
            return Err(match answered {
                Err(e) => e,
                Ok(_) => CloudError::Unreachable("the local cloud did not stop within 30 s".into()),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(info)
}

/// Deletes the cloud's state (resources, blobs, deployments, logs) but keeps the CA, keys and the
/// Python environment cache. Refuses while an instance is running.
pub(crate) fn reset(dir: &Path) -> Result<(), CloudError> {
    if is_locked(dir) {
        return Err(CloudError::AlreadyRunning(dir.to_path_buf()));
    }
    for name in super::store::STORE_FILES.into_iter().chain([
        INFO_FILE,
        LOG_FILE,
        "last_port",
        "harness.py",
    ]) {
        let _ = std::fs::remove_file(dir.join(name));
    }
    for name in super::store::STORE_DIRS.into_iter().chain(["deployments"]) {
        let p = dir.join(name);
        if p.exists() {
            std::fs::remove_dir_all(&p).map_err(|source| CloudError::Io {
                path: p.clone(),
                source,
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_is_exclusive() {
        let dir = tempfile::tempdir().unwrap();
        let held = take_lock(dir.path()).unwrap();
        assert!(matches!(
            take_lock(dir.path()),
            Err(CloudError::AlreadyRunning(_))
        ));
        assert!(is_locked(dir.path()));
        drop(held);
        assert!(!is_locked(dir.path()));
    }
}
