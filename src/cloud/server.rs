//! Wiring of the local cloud: the axum router (`app`) that sends each request to its protocol layer,
//! the admin API, and `start`, which opens the data folder, takes its lock and serves HTTPS (and the
//! plain-HTTP managed-identity endpoint) on 127.0.0.1 until shut down.
//!
//! It must never listen on anything but loopback, and never serve ARM, blob or token traffic over
//! plain HTTP (bearer tokens only travel over TLS).
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use tokio::sync::Notify;

use super::arm::protocol::{ArmCode, ArmError, authenticate};
use super::faults::{Faults, FaultsError, FaultsPatch};
use super::http::RESERVED;
use super::instance::{CloudError, CloudInfo};
use super::seed::SeedProfile;
use super::state::{CloudState, Shared};
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
    /// How a new data folder is seeded; a folder seeded otherwise is refused for `Hardened`.
    pub seed: SeedProfile,
}

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
        arm::protocol::not_found_route(&req)
    } else {
        blob::handle(st, req).await
    }
}

async fn health() -> Response {
    axum::Json(serde_json::json!({"status": "ok", "pid": std::process::id()})).into_response()
}

/// Admin calls need the seeded service principal's ARM token.
fn admin_auth(st: &Shared, req_headers: &axum::http::HeaderMap) -> Option<Response> {
    match authenticate(st, req_headers) {
        Ok(c) if c.oid.eq_ignore_ascii_case(&st.seed().sp_object_id) => None,
        Ok(_) => Some(
            ArmError::new(
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
    let patch: FaultsPatch = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => {
            return ArmError::new(
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
        return ArmError::new(
            StatusCode::BAD_REQUEST,
            ArmCode::InvalidRequestContent,
            &e.to_string(),
        )
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
    pub fn set_faults(&self, patch: FaultsPatch) -> Result<Faults, FaultsError> {
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
    let state = CloudState::open_seeded(
        dir,
        format!("https://127.0.0.1:{port}"),
        format!("http://127.0.0.1:{msi_port}"),
        opts.faults.clone(),
        opts.seed,
    )?;
    if opts.seed == SeedProfile::Hardened && !super::seed::is_hardened(&state.store, &state.seed())
    {
        return Err(CloudError::Start(format!(
            "--hardened seeds a new data folder, and {} was seeded without it (use another --data-dir)",
            dir.display()
        )));
    }
    let material = tls::ensure(dir)?;
    let cfg = tls::server_config(&material)?;
    let handle = axum_server::Handle::new();
    let server = axum_server::from_tcp_rustls(
        std_listener,
        axum_server::tls_rustls::RustlsConfig::from_config(cfg),
    )
    .map_err(|e| CloudError::Start(e.to_string()))?
    // Metadata header names as sent (the HTTP stack lowercases them): see `blob::raw_names`.
    .map(blob::raw_names::RawNamesAcceptor)
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

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    /// A cloud's state in a fresh data folder (kept alive by the returned guard), not listening.
    fn open_state() -> (tempfile::TempDir, CloudState) {
        let dir = tempfile::tempdir().unwrap();
        let st = CloudState::open(
            dir.path(),
            "https://127.0.0.1:1".into(),
            "http://127.0.0.1:2".into(),
            Faults::default(),
        )
        .unwrap();
        (dir, st)
    }

    #[tokio::test]
    async fn the_router_answers_in_process() {
        let (_dir, st) = open_state();
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

    /// Sends `method path` with the seeded principal's ARM token; returns status and `error.code`.
    async fn arm_call(st: &CloudState, method: &str, path: &str) -> (StatusCode, String) {
        let seed = st.seed();
        let now = crate::cloud::store::now_ms() / 1000;
        let token = st.signer.sign(&crate::cloud::auth::Claims {
            aud: "https://management.azure.com/".into(),
            iss: "i".into(),
            oid: seed.sp_object_id.clone(),
            tid: seed.tenant_id.clone(),
            appid: seed.client_id.clone(),
            iat: now,
            nbf: now,
            exp: now + 600,
        });
        let resp = app(st.clone())
            .oneshot(
                Request::builder()
                    .method(method)
                    .uri(path)
                    .header("authorization", format!("Bearer {token}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        (
            status,
            v["error"]["code"].as_str().unwrap_or_default().to_string(),
        )
    }

    #[tokio::test]
    async fn arm_paths_get_the_error_of_their_first_missing_scope() {
        let (_dir, st) = open_state();
        let seed = st.seed();
        let sub = format!("/subscriptions/{}", seed.subscription_id);
        let rg = format!("{sub}/resourceGroups/{}", seed.resource_group);
        let v = "?api-version=2024-04-01";
        let acct = format!(
            "{rg}/providers/Microsoft.Storage/storageAccounts/{}",
            seed.workspace_storage_account
        );
        let ws = format!(
            "{rg}/providers/Microsoft.MachineLearningServices/workspaces/{}",
            seed.workspace
        );
        let cases = [
            ("GET", format!("{sub}{v}"), StatusCode::OK, ""),
            (
                "GET",
                sub.clone(),
                StatusCode::BAD_REQUEST,
                "MissingApiVersionParameter",
            ),
            (
                "GET",
                format!("{sub}?api-version=latest"),
                StatusCode::BAD_REQUEST,
                "InvalidApiVersionParameter",
            ),
            (
                "GET",
                format!("{rg}/providers/Microsoft.Compute/virtualMachines/vm{v}"),
                StatusCode::NOT_IMPLEMENTED,
                "NotImplemented",
            ),
            (
                "GET",
                format!("{sub}/resourceGroups/nope/providers/Microsoft.Compute/x{v}"),
                StatusCode::NOT_FOUND,
                "ResourceGroupNotFound",
            ),
            (
                "GET",
                format!("{sub}/resourceGroups/nope{v}"),
                StatusCode::NOT_FOUND,
                "ResourceGroupNotFound",
            ),
            (
                "DELETE",
                format!("{rg}{v}"),
                StatusCode::NOT_IMPLEMENTED,
                "NotImplemented",
            ),
            (
                "GET",
                format!(
                    "{rg}/providers/Microsoft.Storage/storageAccounts/nope/blobServices/default/containers/c{v}"
                ),
                StatusCode::NOT_FOUND,
                "ParentResourceNotFound",
            ),
            (
                "GET",
                format!("{acct}/blobServices/default/containers/nope{v}"),
                StatusCode::NOT_FOUND,
                "ContainerNotFound",
            ),
            (
                "GET",
                format!("{acct}/listKeys{v}"),
                StatusCode::NOT_IMPLEMENTED,
                "NotImplemented",
            ),
            ("POST", format!("{acct}/listKeys{v}"), StatusCode::OK, ""),
            (
                "GET",
                format!(
                    "{rg}/providers/Microsoft.MachineLearningServices/workspaces/other/onlineEndpoints{v}"
                ),
                StatusCode::NOT_FOUND,
                "ResourceNotFound",
            ),
            (
                "GET",
                format!("{ws}/onlineEndpoints/nope{v}"),
                StatusCode::NOT_FOUND,
                "UserError",
            ),
            (
                "GET",
                format!("{ws}/computes{v}"),
                StatusCode::NOT_IMPLEMENTED,
                "NotImplemented",
            ),
            (
                "PUT",
                format!("{ws}/codes/c/versions/1/startPendingUpload{v}"),
                StatusCode::NOT_IMPLEMENTED,
                "NotImplemented",
            ),
            // Tenant-level paths: nobody holds a role at the root, so authorisation answers first.
            (
                "GET",
                format!("/providers/Microsoft.Compute/operations{v}"),
                StatusCode::FORBIDDEN,
                "AuthorizationFailed",
            ),
            (
                "GET",
                format!("{rg}/providers/Microsoft.Authorization/roleDefinitions{v}"),
                StatusCode::OK,
                "",
            ),
            (
                "PATCH",
                format!("{rg}/providers/Microsoft.Authorization/roleAssignments/x{v}"),
                StatusCode::NOT_IMPLEMENTED,
                "NotImplemented",
            ),
        ];
        for (method, path, status, code) in cases {
            assert_eq!(
                arm_call(&st, method, &path).await,
                (status, code.to_string()),
                "{method} {path}"
            );
        }
        // Another subscription: the caller holds no role there, so authorisation answers first.
        let other = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/x?api-version=2024-04-01";
        assert_eq!(
            arm_call(&st, "GET", other).await,
            (StatusCode::FORBIDDEN, "AuthorizationFailed".to_string())
        );
    }
}
