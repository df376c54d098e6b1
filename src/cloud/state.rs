//! The shared state of one running local cloud: the store, the token signer, the fault settings, the
//! URLs it answers on, the running scoring processes and the shutdown signal. Every protocol layer
//! receives it as the router's state ([`CloudState`]).
//!
//! It holds things and opens them; it must never route or answer HTTP, and never import a protocol
//! layer (ARM, blob, identity, runner, server), which all import it.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::Notify;

use super::auth::Signer;
use super::faults::{Faults, Injected};
use super::instance::{CloudError, CloudInfo};
use super::procs::Procs;
use super::seed::SeedProfile;
use super::store::{Seed, Store, now_rfc3339, write_atomic};
use super::{seed, tls};
use crate::token_bucket::{PaceClass, PaceLimits, TokenBucket};

/// ARM's throttling buckets, one set per principal (object id), when `Faults::arm_throttle` is on.
#[derive(Debug)]
pub(crate) struct Throttle {
    origin: Instant,
    limits: Option<PaceLimits>,
    buckets: HashMap<String, [TokenBucket; 3]>,
}

/// Whether a throttled ARM request may proceed.
#[derive(Debug, PartialEq)]
pub(crate) enum Admission {
    /// Throttling is off.
    Unlimited,
    /// Admitted; this many requests of its class remain in the caller's bucket.
    Remaining(u64),
    /// The caller's bucket is empty; a token comes back after this long.
    Throttled(Duration),
}

/// Everything request handlers share.
pub struct Shared {
    pub(crate) store: Store,
    pub(crate) signer: Signer,
    /// Public because integration tests swap fault settings in place (`RunningCloud::set_faults`
    /// is the API for everyone else).
    pub faults: RwLock<Faults>,
    /// `https://127.0.0.1:{port}` (no trailing slash).
    pub(crate) arm_url: String,
    /// `http://127.0.0.1:{port}` of the managed-identity endpoint.
    pub(crate) msi_url: String,
    pub(crate) ca_pem: PathBuf,
    pub(crate) data_dir: PathBuf,
    pub(crate) procs: Procs,
    pub(crate) shutdown: Arc<Notify>,
    /// Plain-HTTP client for loopback calls to scoring processes.
    pub(crate) local_http: reqwest::Client,
    pub(crate) throttle: Mutex<Throttle>,
}

/// Cheap-to-clone handle on the shared state; the router's state.
#[derive(Clone)]
pub struct CloudState(Arc<Shared>);

impl std::ops::Deref for CloudState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl Shared {
    pub(crate) fn faults(&self) -> Faults {
        self.faults.read().map(|f| f.clone()).unwrap_or_default()
    }

    pub(crate) fn seed(&self) -> Seed {
        self.store.seed()
    }

    /// Charges one ARM request of `method` to principal `oid`'s bucket, when throttling is on. The
    /// buckets restart full whenever the limits change.
    pub(crate) fn admit_arm(&self, oid: &str, method: &str) -> Admission {
        let limits = self.faults().arm_limits();
        let Ok(mut t) = self.throttle.lock() else {
            return Admission::Unlimited;
        };
        if t.limits != limits {
            t.limits = limits;
            t.buckets.clear();
        }
        let Some(limits) = limits else {
            return Admission::Unlimited;
        };
        let now = t.origin.elapsed();
        let class = PaceClass::of(method);
        let buckets = t
            .buckets
            .entry(oid.to_ascii_lowercase())
            .or_insert_with(|| PaceClass::ALL.map(|c| TokenBucket::new(limits.of(c), now)));
        match buckets[class.index()].try_take(now) {
            Ok(left) => Admission::Remaining(left),
            Err(wait) => Admission::Throttled(wait),
        }
    }

    /// Applies injected latency and draws the injected failure for one ARM or blob request.
    pub(crate) async fn inject(&self) -> Injected {
        let f = self.faults();
        if f.latency_ms > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(f.latency_ms)).await;
        }
        if f.error_rate > 0.0 || f.throttle_rate > 0.0 {
            f.draw(rand::random::<f64>())
        } else {
            Injected::None
        }
    }
}

impl CloudState {
    /// Opens the store in `data_dir` (seeding it on first use) for a cloud reachable at `arm_url`, with
    /// its managed-identity endpoint at `msi_url`. Must run inside a tokio runtime. Generates the CA if
    /// absent. Does not take the instance lock: `start` does.
    pub fn open(
        data_dir: &Path,
        arm_url: String,
        msi_url: String,
        faults: Faults,
    ) -> Result<CloudState, CloudError> {
        Self::open_seeded(data_dir, arm_url, msi_url, faults, SeedProfile::Standard)
    }

    /// [`CloudState::open`], seeding a new data folder with `profile`.
    pub fn open_seeded(
        data_dir: &Path,
        arm_url: String,
        msi_url: String,
        faults: Faults,
        profile: SeedProfile,
    ) -> Result<CloudState, CloudError> {
        std::fs::create_dir_all(data_dir).map_err(|source| CloudError::Io {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let material = tls::ensure(data_dir)?;
        let store = Store::open(data_dir, || seed::seed_data(profile))?;
        let signer = Signer::new(signing_key(data_dir)?);
        let local_http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .map_err(|e| CloudError::Start(e.to_string()))?;
        Ok(CloudState(Arc::new(Shared {
            store,
            signer,
            faults: RwLock::new(faults),
            arm_url,
            msi_url,
            ca_pem: material.ca_pem,
            data_dir: data_dir.to_path_buf(),
            procs: Procs::default(),
            shutdown: Arc::new(Notify::new()),
            local_http,
            throttle: Mutex::new(Throttle {
                origin: Instant::now(),
                limits: None,
                buckets: HashMap::new(),
            }),
        })))
    }

    /// The connection facts clients need.
    pub(crate) fn info(&self, port: u16, msi_port: u16, log_file: Option<PathBuf>) -> CloudInfo {
        let s = self.seed();
        CloudInfo {
            arm_endpoint: format!("{}/", self.arm_url),
            authority_host: format!("{}/", self.arm_url),
            tenant_id: s.tenant_id,
            client_id: s.client_id,
            client_secret: s.client_secret,
            subscription_id: s.subscription_id,
            resource_group: s.resource_group,
            workspace: s.workspace,
            location: s.location,
            ca_cert: self.ca_pem.clone(),
            blob_endpoint_template: format!("{}/{{account}}/", self.arm_url),
            metadata_endpoint: format!(
                "{}/metadata/endpoints?api-version=2022-09-01",
                self.arm_url
            ),
            msi_endpoint: format!("{}/msi/token", self.msi_url),
            pid: std::process::id(),
            port,
            msi_port,
            data_dir: self.data_dir.clone(),
            log_file,
            started_at: now_rfc3339(),
            arm_throttle: self.faults().arm_throttle,
        }
    }
}

fn signing_key(dir: &Path) -> Result<Vec<u8>, CloudError> {
    let path = dir.join("signing.key");
    match std::fs::read(&path) {
        Ok(k) if k.len() >= 32 => Ok(k),
        _ => {
            let key: [u8; 32] = rand::rng().random();
            let hexed = hex::encode(key).into_bytes();
            write_atomic(&path, &hexed, true)?;
            Ok(hexed)
        }
    }
}
