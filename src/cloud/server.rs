//! Wiring of the local cloud: the shared state, the axum router (`app`) that sends each request to
//! its protocol layer, and `start`, which opens the data folder, takes its lock and serves HTTPS (and
//! the plain-HTTP managed-identity endpoint) on 127.0.0.1 until shut down.
//!
//! It must never listen on anything but loopback, and never serve ARM, blob or token traffic over
//! plain HTTP (bearer tokens only travel over TLS).
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use rand::Rng;
use tokio::sync::Notify;

use super::arm::ArmCode;
use super::auth::Signer;
use super::faults::Faults;
use super::instance::{CloudError, CloudInfo};
use super::store::{Data, Principal, RoleAssignment, Seed, Store, now_ms, now_rfc3339};
use super::{arm, blob, identity, runner, tls};

/// How to start an in-process or foreground cloud.
#[derive(Debug, Clone)]
pub struct CloudOptions {
    pub data_dir: PathBuf,
    /// 0 picks a free port.
    pub port: u16,
    pub faults: Faults,
    /// Recorded in `cloud.json` (the detached process's log file), if any.
    pub log_file: Option<PathBuf>,
}

/// Everything request handlers share.
pub struct Shared {
    pub store: Store,
    pub signer: Signer,
    pub faults: RwLock<Faults>,
    /// `https://127.0.0.1:{port}` (no trailing slash).
    pub arm_url: String,
    /// `http://127.0.0.1:{port}` of the managed-identity endpoint.
    pub msi_url: String,
    pub ca_pem: PathBuf,
    pub data_dir: PathBuf,
    pub procs: runner::Procs,
    pub shutdown: Arc<Notify>,
    /// Plain-HTTP client for loopback calls to scoring processes.
    pub local_http: reqwest::Client,
}

/// Cheap-to-clone handle on the shared state; the router's state.
#[derive(Clone)]
pub struct CloudState(pub Arc<Shared>);

impl std::ops::Deref for CloudState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

impl Shared {
    pub fn faults(&self) -> Faults {
        self.faults.read().map(|f| f.clone()).unwrap_or_default()
    }

    pub fn seed(&self) -> Seed {
        self.store.read(|d| d.seed.clone())
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
        std::fs::create_dir_all(data_dir).map_err(|source| CloudError::Io {
            path: data_dir.to_path_buf(),
            source,
        })?;
        let material = tls::ensure(data_dir)?;
        let store = Store::open(data_dir, seed_data)?;
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
            procs: runner::Procs::default(),
            shutdown: Arc::new(Notify::new()),
            local_http,
        })))
    }

    /// The connection facts clients need.
    pub fn info(&self, port: u16, msi_port: u16, log_file: Option<PathBuf>) -> CloudInfo {
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
            super::store::write_atomic(&path, &hexed, true)?;
            Ok(hexed)
        }
    }
}

fn guid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A random base64 key of 64 bytes, like a storage account key.
pub fn random_key() -> String {
    use base64::Engine;
    let bytes: [u8; 64] = std::array::from_fn(|_| rand::rng().random());
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The seeded world: one tenant, subscription, service principal (Owner of the subscription, and
/// Storage Blob Data Contributor on the workspace storage account so it can upload assets with a
/// bearer token), resource group, ML workspace with its storage account and default datastore.
fn seed_data() -> Data {
    let hex8: String = hex::encode(rand::rng().random::<[u8; 5]>());
    let seed = Seed {
        tenant_id: guid(),
        subscription_id: guid(),
        client_id: guid(),
        client_secret: format!("local~{}", hex::encode(rand::rng().random::<[u8; 18]>())),
        sp_object_id: guid(),
        resource_group: "demo-rg".into(),
        workspace: "demo-ws".into(),
        location: "eastus".into(),
        workspace_storage_account: format!("mlws{hex8}"),
        workspace_container: format!("azureml-blobstore-{}", guid()),
        workspace_guid: guid(),
    };
    let mut d = Data {
        seed: seed.clone(),
        resources: BTreeMap::new(),
        principals: BTreeMap::new(),
        role_assignments: BTreeMap::new(),
        operations: BTreeMap::new(),
        blobs: BTreeMap::new(),
        secrets: BTreeMap::new(),
        etag_counter: 0,
    };
    let now = now_ms();
    let created = now_rfc3339();
    d.principals.insert(
        seed.sp_object_id.clone(),
        Principal {
            object_id: seed.sp_object_id.clone(),
            client_id: seed.client_id.clone(),
            kind: "ServicePrincipal".into(),
            created_ms: 0,
        },
    );
    let sub = format!("/subscriptions/{}", seed.subscription_id);
    let rg = format!("{sub}/resourceGroups/{}", seed.resource_group);
    d.resources.insert(
        rg.to_ascii_lowercase(),
        arm::resource_group_body(&rg, &seed.resource_group, &seed.location),
    );
    let acct_id = format!(
        "{rg}/providers/Microsoft.Storage/storageAccounts/{}",
        seed.workspace_storage_account
    );
    let mut acct = arm::storage::account_body(
        &acct_id,
        &seed.workspace_storage_account,
        &serde_json::json!({"location": seed.location, "kind": "StorageV2", "sku": {"name": "Standard_LRS"}}),
        &created,
    );
    acct["properties"]["provisioningState"] = "Succeeded".into();
    d.resources.insert(acct_id.to_ascii_lowercase(), acct);
    d.secrets.insert(
        format!("{}#key1", acct_id.to_ascii_lowercase()),
        random_key(),
    );
    d.secrets.insert(
        format!("{}#key2", acct_id.to_ascii_lowercase()),
        random_key(),
    );
    let cont_id = format!(
        "{acct_id}/blobServices/default/containers/{}",
        seed.workspace_container
    );
    d.resources.insert(
        cont_id.to_ascii_lowercase(),
        arm::storage::container_body(
            &cont_id,
            &seed.workspace_container,
            &serde_json::json!({}),
            &created,
            0,
        ),
    );
    let ws_id = format!(
        "{rg}/providers/Microsoft.MachineLearningServices/workspaces/{}",
        seed.workspace
    );
    d.resources.insert(
        ws_id.to_ascii_lowercase(),
        arm::ml::workspace_body(&ws_id, &seed, &acct_id),
    );
    for (scope, role) in [
        (sub.clone(), "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"),
        (acct_id.clone(), "ba92f5b4-2d11-453d-a403-e96b0029c9fe"),
    ] {
        let name = guid();
        let id = format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{name}");
        d.role_assignments.insert(
            id.to_ascii_lowercase(),
            RoleAssignment {
                id,
                name,
                scope,
                role_definition_id: format!(
                    "/subscriptions/{}/providers/Microsoft.Authorization/roleDefinitions/{role}",
                    seed.subscription_id
                ),
                principal_id: seed.sp_object_id.clone(),
                principal_type: "ServicePrincipal".into(),
                description: Some("seeded by the local cloud".into()),
                created_ms: 0,
                created_on: created.clone(),
            },
        );
    }
    let _ = now;
    d
}

/// Request bodies larger than this are refused.
pub const MAX_BODY: usize = 16 << 20;
/// Blob bodies may be larger.
pub const MAX_BLOB_BODY: usize = 256 << 20;

/// Path segments the blob data plane can never own (storage account names may not take them).
pub const RESERVED: &[&str] = &[
    "subscriptions",
    "providers",
    "metadata",
    "inference",
    "common",
    "organizations",
    "consumers",
    "tenants",
    "health",
];

/// The router of the HTTPS listener: token and metadata endpoints, admin API, scoring, ARM and blob.
/// Tests drive it in-process with `tower::ServiceExt::oneshot`.
pub fn app(state: CloudState) -> Router {
    Router::new()
        .route("/metadata/endpoints", get(identity::metadata))
        .route("/_admin/health", get(health))
        .route("/_admin/faults", get(get_faults).post(set_faults))
        .route("/_admin/shutdown", post(shutdown))
        .route("/inference/{endpoint}/score", any(runner::score))
        .route("/{tenant}/oauth2/v2.0/token", post(identity::token))
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(identity::openid),
        )
        .route(
            "/{tenant}/discovery/instance",
            get(identity::instance_discovery),
        )
        .fallback(dispatch)
        .with_state(state)
}

/// Sends everything else to ARM (paths under `/subscriptions` or `/providers`) or the blob data plane.
async fn dispatch(State(st): State<CloudState>, req: Request) -> Response {
    let first = req
        .uri()
        .path()
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    if first == "subscriptions" || first == "providers" {
        arm::handle(st, req).await
    } else if first.is_empty() || first.starts_with('_') || RESERVED.contains(&first.as_str()) {
        arm::not_found_route(&req)
    } else {
        blob::handle(st, req).await
    }
}

async fn health() -> Response {
    axum::Json(serde_json::json!({"status": "ok", "pid": std::process::id()})).into_response()
}

/// Admin calls need the seeded service principal's ARM token.
fn admin_auth(st: &Shared, req_headers: &axum::http::HeaderMap) -> Option<Response> {
    match arm::authenticate(st, req_headers) {
        Ok(c) if c.oid.eq_ignore_ascii_case(&st.seed().sp_object_id) => None,
        Ok(_) => Some(
            arm::ArmError::new(
                StatusCode::FORBIDDEN,
                ArmCode::AuthorizationFailed,
                "only the seeded service principal may use the admin api",
            )
            .into_response(),
        ),
        Err(e) => Some(e.into_response()),
    }
}

async fn get_faults(State(st): State<CloudState>, headers: axum::http::HeaderMap) -> Response {
    if let Some(r) = admin_auth(&st, &headers) {
        return r;
    }
    axum::Json(st.faults()).into_response()
}

async fn set_faults(
    State(st): State<CloudState>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(r) = admin_auth(&st, &headers) {
        return r;
    }
    let patch: super::faults::FaultsPatch = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => {
            return arm::ArmError::new(
                StatusCode::BAD_REQUEST,
                ArmCode::InvalidRequestContent,
                &format!("invalid faults: {e}"),
            )
            .into_response();
        }
    };
    let mut guard = match st.faults.write() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    };
    if let Err(e) = guard.apply(patch) {
        return arm::ArmError::new(StatusCode::BAD_REQUEST, ArmCode::InvalidRequestContent, &e)
            .into_response();
    }
    axum::Json(guard.clone()).into_response()
}

async fn shutdown(State(st): State<CloudState>, headers: axum::http::HeaderMap) -> Response {
    if let Some(r) = admin_auth(&st, &headers) {
        return r;
    }
    st.shutdown.notify_one();
    (StatusCode::ACCEPTED, Body::empty()).into_response()
}

/// A cloud serving on loopback. Stop it with [`RunningCloud::shutdown`].
pub struct RunningCloud {
    pub info: CloudInfo,
    pub state: CloudState,
    handle: axum_server::Handle<SocketAddr>,
    msi_stop: Arc<Notify>,
    _lock: std::fs::File,
}

impl RunningCloud {
    /// Changes fault settings at run time (the in-process equivalent of `POST /_admin/faults`).
    pub fn set_faults(&self, patch: super::faults::FaultsPatch) -> Result<Faults, String> {
        let mut guard = self.state.faults.write().unwrap_or_else(|p| p.into_inner());
        guard.apply(patch)?;
        Ok(guard.clone())
    }

    /// Resolves when an admin shutdown was requested.
    pub async fn shutdown_requested(&self) {
        self.state.shutdown.notified().await;
    }

    /// Stops scoring processes and listeners, removes `cloud.json` and releases the lock.
    pub async fn shutdown(self) {
        runner::stop_all(&self.state).await;
        self.handle
            .graceful_shutdown(Some(std::time::Duration::from_secs(2)));
        self.msi_stop.notify_waiters();
        let _ = std::fs::remove_file(self.info.data_dir.join(super::instance::INFO_FILE));
    }
}

/// Starts a cloud in this process: takes the data folder's lock (two instances cannot share a folder),
/// serves HTTPS on `127.0.0.1:{port}` and the managed-identity endpoint on a free port, restarts
/// stored deployments, and writes `cloud.json`.
pub async fn start(opts: CloudOptions) -> Result<RunningCloud, CloudError> {
    let dir = &opts.data_dir;
    std::fs::create_dir_all(dir).map_err(|source| CloudError::Io {
        path: dir.clone(),
        source,
    })?;
    let lock = super::instance::take_lock(dir)?;
    let std_listener =
        std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, opts.port)).map_err(|e| {
            CloudError::Start(format!(
                "cannot listen on 127.0.0.1:{}: {e} (choose another with --port)",
                opts.port
            ))
        })?;
    std_listener
        .set_nonblocking(true)
        .map_err(|e| CloudError::Start(e.to_string()))?;
    let port = std_listener
        .local_addr()
        .map_err(|e| CloudError::Start(e.to_string()))?
        .port();
    let msi_listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .map_err(|e| CloudError::Start(e.to_string()))?;
    let msi_port = msi_listener
        .local_addr()
        .map_err(|e| CloudError::Start(e.to_string()))?
        .port();
    let state = CloudState::open(
        dir,
        format!("https://127.0.0.1:{port}"),
        format!("http://127.0.0.1:{msi_port}"),
        opts.faults.clone(),
    )?;
    let material = tls::ensure(dir)?;
    let cfg = tls::server_config(&material)?;
    let handle = axum_server::Handle::new();
    let server = axum_server::from_tcp_rustls(
        std_listener,
        axum_server::tls_rustls::RustlsConfig::from_config(cfg),
    )
    .map_err(|e| CloudError::Start(e.to_string()))?
    .handle(handle.clone());
    let router = app(state.clone());
    tokio::spawn(async move {
        if let Err(e) = server.serve(router.into_make_service()).await {
            tracing::error!("local cloud listener stopped: {e}");
        }
    });
    let msi_stop = Arc::new(Notify::new());
    let stop = msi_stop.clone();
    let msi_router = identity::msi_router(state.clone());
    tokio::spawn(async move {
        let _ = axum::serve(msi_listener, msi_router)
            .with_graceful_shutdown(async move { stop.notified().await })
            .await;
    });
    let info = state.info(port, msi_port, opts.log_file.clone());
    super::instance::write_info(&info)?;
    let _ = std::fs::write(dir.join("last_port"), port.to_string());
    runner::restart_all(&state);
    Ok(RunningCloud {
        info,
        state,
        handle,
        msi_stop,
        _lock: lock,
    })
}

/// Adds the headers every HTTPS answer carries.
pub fn request_id_headers(resp: &mut Response, client_request_id: Option<&HeaderValue>) {
    let id = uuid::Uuid::new_v4().to_string();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&id) {
        h.insert("x-ms-request-id", v.clone());
        h.insert("x-ms-correlation-request-id", v.clone());
        h.insert(
            "x-ms-routing-request-id",
            HeaderValue::from_static("LOCAL:00000000T000000Z:stackform"),
        );
    }
    if let Some(c) = client_request_id {
        h.insert("x-ms-client-request-id", c.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    #[tokio::test]
    async fn the_router_answers_in_process() {
        let dir = tempfile::tempdir().unwrap();
        let st = CloudState::open(
            dir.path(),
            "https://127.0.0.1:1".into(),
            "http://127.0.0.1:2".into(),
            Faults::default(),
        )
        .unwrap();
        let meta = app(st.clone())
            .oneshot(
                Request::get("/metadata/endpoints?api-version=2022-09-01")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(meta.status(), StatusCode::OK);
        let sub = st.seed().subscription_id;
        let arm = app(st)
            .oneshot(
                Request::get(format!("/subscriptions/{sub}?api-version=2022-12-01"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(arm.status(), StatusCode::UNAUTHORIZED);
        assert!(arm.headers().contains_key("www-authenticate"));
        assert!(arm.headers().contains_key("x-ms-request-id"));
    }
}
