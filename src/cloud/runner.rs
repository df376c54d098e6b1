//! The deployment runner: makes online deployments really run. On create/update it materialises the
//! code and model folders from the emulated blob storage (the "storage initializer"), prepares a
//! Python environment, and starts the scoring script in a small harness process (`harness.py`) with
//! `AZUREML_MODEL_DIR`, the deployment's environment variables, `MSI_ENDPOINT`/`MSI_SECRET` bound to the
//! endpoint's identity, and the CA for TLS. `init()` success → `Succeeded`; an exception → `Failed` with
//! the traceback in the logs. Also serves `POST {scoringUri}` by calling `run()` in the chosen process.
//!
//! Environments: only the `pip:` dependencies of the conda file are installed, into a venv per set of
//! dependencies (`envs/{hash}`, created with `--system-site-packages` so host packages remain usable);
//! conda-level packages (python, numpy, scikit-learn, ...) are not installed by conda. Without pip
//! dependencies the system `python3` runs the script. `azureml-inference-server-http` and
//! `azureml-defaults` are skipped: the harness plays the inference server's role (init once, run per
//! request), which avoids a large install and keeps start-up fast offline.
//!
//! Processes never outlive the cloud: each harness exits when its stdin pipe closes.
use std::path::{Path, PathBuf};
use std::process::Stdio;

use axum::body::{Body, Bytes};
use axum::extract::{Path as AxPath, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::bodies::str_at;
use super::http::{percent_decode, with_headers};
use super::procs::{Proc, lock};
use super::state::{CloudState, Shared};
use super::store::{now_ms, now_rfc3339};

const HARNESS: &str = include_str!("harness.py");

/// Why a deployment did not start; shown in the operation's error and the deployment's logs.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DeployError {
    #[error("cannot create {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    WriteFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the deployment no longer exists")]
    Gone,
    #[error("{kind} asset {reference} not found")]
    AssetNotFound {
        kind: &'static str,
        reference: String,
    },
    #[error("unsupported azureml uri {0}")]
    UnsupportedAzuremlUri(String),
    #[error("datastore {0} does not exist (only workspaceblobstore)")]
    UnknownDatastore(String),
    #[error("invalid uri {uri}: {source}")]
    InvalidUri {
        uri: String,
        source: url::ParseError,
    },
    #[error("uri {0} names no container")]
    NoContainer(String),
    #[error("uri {0} names no account and container")]
    NoAccountAndContainer(String),
    #[error("no blobs found at {uri} (account {account}, container {container}, path {path})")]
    NoBlobs {
        uri: String,
        account: String,
        container: String,
        path: String,
    },
    #[error("refusing unsafe blob path {0}")]
    UnsafeBlobPath(String),
    #[error(transparent)]
    Conda(#[from] CondaError),
    #[error("cannot run {program}: {source}")]
    Run {
        program: &'static str,
        source: std::io::Error,
    },
    #[error("python3 -m venv failed ({0})")]
    VenvFailed(std::process::ExitStatus),
    #[error("pip install failed ({0}); see the log above")]
    PipFailed(std::process::ExitStatus),
    #[error("cannot start {}: {source}", python.display())]
    Start {
        python: PathBuf,
        source: std::io::Error,
    },
    #[error("harness has no stdout")]
    NoStdout,
    #[error("init() failed; see the traceback above")]
    InitFailed,
    #[error("the local cloud is shutting down")]
    ShuttingDown,
    #[error("the deployment was deleted while starting")]
    DeletedWhileStarting,
    #[error("superseded by a newer deployment")]
    Superseded,
}

/// A conda file the runner cannot read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CondaError {
    #[error("invalid conda file: {0}")]
    Invalid(String),
}

fn dep_dir(st: &Shared, dep_key: &str) -> PathBuf {
    let h = hex::encode(Sha256::digest(dep_key.as_bytes()));
    st.data_dir.join("deployments").join(&h[..16])
}

fn endpoint_key(dep_key: &str) -> String {
    dep_key
        .split("/deployments/")
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Stops the process of a deployment (if any).
pub(crate) async fn stop(st: &Shared, dep_key: &str) {
    let proc = lock(&st.procs.running).remove(dep_key);
    if let Some(mut p) = proc {
        lock(&st.procs.secrets).remove(&p.secret);
        let _ = p.child.start_kill();
        let _ = p.child.wait().await;
    }
}

/// Stops every scoring process (on shutdown).
pub(crate) async fn stop_all(st: &Shared) {
    st.procs
        .closed
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let keys: Vec<String> = lock(&st.procs.running).keys().cloned().collect();
    for k in keys {
        stop(st, &k).await;
    }
}

/// Removes a deleted deployment's files.
pub(crate) fn remove_files(st: &Shared, dep_key: &str) {
    let _ = std::fs::remove_dir_all(dep_dir(st, dep_key));
}

/// Restarts every stored deployment (after the cloud restarts). Deployments that were mid-operation
/// are run again and their operations finished.
pub(crate) fn restart_all(st: &CloudState) {
    let deps: Vec<(String, Option<String>)> = st
        .store
        .resources_of_type(
            "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments",
        )
        .into_iter()
        .filter(|(_, v)| {
            v.pointer("/properties/provisioningState")
                .and_then(Value::as_str)
                != Some("Failed")
        })
        .map(|(k, _)| {
            let op = st.store.operation_in_progress_on(&k).map(|o| o.id);
            (k, op)
        })
        .collect();
    for (k, op) in deps {
        deploy(st.clone(), k, op);
    }
}

/// Starts (or restarts) a deployment in the background.
pub(crate) fn deploy(st: CloudState, dep_key: String, op_id: Option<String>) {
    let generation = {
        let mut g = lock(&st.procs.generations);
        let e = g.entry(dep_key.clone()).or_insert(0);
        *e += 1;
        *e
    };
    tokio::spawn(async move {
        let result = run_deploy(&st, &dep_key, generation).await;
        let current = lock(&st.procs.generations).get(&dep_key).copied() == Some(generation);
        // A shutdown interrupts starts; they are not failures, and run again at the next start.
        if !current || st.procs.closed.load(std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        if let Some(op) = &op_id {
            let ready = st.store.operation(op).map_or(0, |o| o.ready_ms);
            let wait = ready.saturating_sub(now_ms());
            if wait > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
            }
        }
        let (state, error) = match &result {
            Ok(()) => ("Succeeded", None),
            Err(msg) => (
                "Failed",
                Some(
                    json!({"code": "ResourceNotReady", "message": format!("User container has crashed or terminated: {msg}. Check the deployment logs (getLogs) for details.")}),
                ),
            ),
        };
        if let Err(e) = st
            .store
            .finish_deployment(&dep_key, state, op_id.as_deref(), error)
            .await
        {
            tracing::error!("local cloud: recording the deployment's outcome: {e}");
        }
    });
}

/// A string field (`pointer`) of a stored asset version, such as its `codeUri`.
fn asset_uri(st: &Shared, key: &str, pointer: &str) -> Option<String> {
    st.store
        .resource(key)?
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_string)
}

struct Logs {
    storage: PathBuf,
    inference: PathBuf,
}

fn append(path: &Path, line: &str) {
    use std::io::Write;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = writeln!(f, "{} {line}", now_rfc3339());
    }
}

async fn run_deploy(st: &CloudState, dep_key: &str, generation: u64) -> Result<(), DeployError> {
    stop(st, dep_key).await;
    let dir = dep_dir(st, dep_key);
    let _ = std::fs::remove_dir_all(dir.join("code"));
    let _ = std::fs::remove_dir_all(dir.join("model"));
    std::fs::create_dir_all(&dir).map_err(|source| DeployError::CreateDir {
        path: dir.clone(),
        source,
    })?;
    let logs = Logs {
        storage: dir.join("storage-initializer.log"),
        inference: dir.join("inference-server.log"),
    };
    let _ = std::fs::write(&logs.storage, b"");
    let _ = std::fs::write(&logs.inference, b"");
    let fail = |log: &Path, e: DeployError| {
        append(log, &format!("ERROR: {e}"));
        e
    };
    let Some(dep) = st.store.resource(dep_key) else {
        return Err(DeployError::Gone);
    };
    let props = &dep["properties"];
    // Storage initializer: code and model.
    let code_ref = str_at(props, "/codeConfiguration/codeId")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let script = str_at(props, "/codeConfiguration/scoringScript")
        .unwrap_or("score.py")
        .to_string();
    let code_uri = asset_uri(st, &code_ref, "/properties/codeUri").ok_or_else(|| {
        fail(
            &logs.storage,
            DeployError::AssetNotFound {
                kind: "code",
                reference: code_ref.clone(),
            },
        )
    })?;
    append(&logs.storage, &format!("downloading code from {code_uri}"));
    let n =
        materialise(st, &code_uri, &dir.join("code"), false).map_err(|e| fail(&logs.storage, e))?;
    append(&logs.storage, &format!("downloaded {n} code file(s)"));
    let model_dir = dir.join("model");
    std::fs::create_dir_all(&model_dir)?;
    if let Some(model_ref) = props.get("model").and_then(Value::as_str) {
        let model_uri = asset_uri(st, &model_ref.to_ascii_lowercase(), "/properties/modelUri")
            .ok_or_else(|| {
                fail(
                    &logs.storage,
                    DeployError::AssetNotFound {
                        kind: "model",
                        reference: model_ref.to_string(),
                    },
                )
            })?;
        append(
            &logs.storage,
            &format!("downloading model from {model_uri}"),
        );
        let n =
            materialise(st, &model_uri, &model_dir, true).map_err(|e| fail(&logs.storage, e))?;
        append(&logs.storage, &format!("downloaded {n} model file(s)"));
    }
    // Environment.
    let env_ref = props
        .get("environmentId")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_ascii_lowercase();
    let conda = asset_uri(st, &env_ref, "/properties/condaFile");
    let pip = conda
        .as_deref()
        .map(pip_dependencies)
        .transpose()
        .map_err(|e| fail(&logs.inference, e.into()))?
        .unwrap_or_default();
    let python = prepare_env(st, &pip, &logs.inference)
        .await
        .map_err(|e| fail(&logs.inference, e))?;
    // Harness.
    let harness = st.data_dir.join("harness.py");
    if std::fs::read_to_string(&harness).ok().as_deref() != Some(HARNESS) {
        std::fs::write(&harness, HARNESS).map_err(|e| fail(&logs.inference, e.into()))?;
    }
    let secret = hex::encode(rand::random::<[u8; 16]>());
    let err_log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&logs.inference)?;
    let mut cmd = tokio::process::Command::new(&python);
    cmd.arg(&harness)
        .arg(dir.join("code"))
        .arg(&script)
        .current_dir(dir.join("code"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(err_log))
        .kill_on_drop(true);
    for var in [
        "AZURE_CLIENT_SECRET",
        "AZURE_CLIENT_ID",
        "AZURE_TENANT_ID",
        "IDENTITY_ENDPOINT",
        "IDENTITY_HEADER",
    ] {
        cmd.env_remove(var);
    }
    if let Some(vars) = props.get("environmentVariables").and_then(Value::as_object) {
        for (k, v) in vars {
            let v = v
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| v.to_string());
            cmd.env(k, v);
        }
    }
    cmd.env("AZUREML_MODEL_DIR", &model_dir)
        .env("AZUREML_ENTRY_SCRIPT", &script)
        .env("MSI_ENDPOINT", format!("{}/msi/token", st.msi_url))
        .env("MSI_SECRET", &secret)
        .env("SSL_CERT_FILE", &st.ca_pem)
        .env("REQUESTS_CA_BUNDLE", &st.ca_pem)
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1");
    lock(&st.procs.secrets).insert(secret.clone(), endpoint_key(dep_key));
    append(
        &logs.inference,
        &format!("starting scoring script {script} with {}", python.display()),
    );
    let mut child = cmd.spawn().map_err(|source| {
        fail(
            &logs.inference,
            DeployError::Start {
                python: python.clone(),
                source,
            },
        )
    })?;
    let Some(stdout) = child.stdout.take() else {
        return Err(DeployError::NoStdout);
    };
    let mut lines = BufReader::new(stdout).lines();
    let first = tokio::time::timeout(std::time::Duration::from_secs(900), lines.next_line()).await;
    let port = match first {
        Ok(Ok(Some(line))) if line.starts_with("READY ") => line[6..].trim().parse::<u16>().ok(),
        _ => None,
    };
    let Some(port) = port else {
        lock(&st.procs.secrets).remove(&secret);
        let _ = child.start_kill();
        let _ = child.wait().await;
        return Err(fail(&logs.inference, DeployError::InitFailed));
    };
    let superseded = lock(&st.procs.generations).get(dep_key).copied() != Some(generation);
    let deleted = !st.store.has_resource(dep_key);
    let closed = st.procs.closed.load(std::sync::atomic::Ordering::SeqCst);
    if superseded || deleted || closed {
        lock(&st.procs.secrets).remove(&secret);
        let _ = child.start_kill();
        let _ = child.wait().await;
        return Err(if closed {
            DeployError::ShuttingDown
        } else if deleted {
            DeployError::DeletedWhileStarting
        } else {
            DeployError::Superseded
        });
    }
    append(
        &logs.inference,
        &format!("scoring server ready on 127.0.0.1:{port}"),
    );
    lock(&st.procs.running).insert(
        dep_key.to_string(),
        Proc {
            child,
            port,
            secret,
        },
    );
    Ok(())
}

/// Resolves `uri` to (account, container, path).
fn resolve_uri(st: &Shared, uri: &str) -> Result<(String, String, String), DeployError> {
    let seed = st.seed();
    if let Some(rest) = uri.strip_prefix("azureml://") {
        let lower = rest.to_ascii_lowercase();
        let ds_pos = lower
            .find("datastores/")
            .ok_or_else(|| DeployError::UnsupportedAzuremlUri(uri.to_string()))?;
        let after = &rest[ds_pos + "datastores/".len()..];
        let (ds, path) = after
            .split_once("/paths/")
            .ok_or_else(|| DeployError::UnsupportedAzuremlUri(uri.to_string()))?;
        if !ds.eq_ignore_ascii_case("workspaceblobstore") {
            return Err(DeployError::UnknownDatastore(ds.to_string()));
        }
        return Ok((
            seed.workspace_storage_account,
            seed.workspace_container,
            path.trim_matches('/').to_string(),
        ));
    }
    let parsed = url::Url::parse(uri).map_err(|source| DeployError::InvalidUri {
        uri: uri.to_string(),
        source,
    })?;
    let host = parsed.host_str().unwrap_or_default().to_ascii_lowercase();
    let segs: Vec<String> = parsed
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    if let Some(acct) = host.split_once(".blob.").map(|(a, _)| a.to_string()) {
        if segs.is_empty() {
            return Err(DeployError::NoContainer(uri.to_string()));
        }
        return Ok((acct, segs[0].clone(), segs[1..].join("/")));
    }
    if segs.len() < 2 {
        return Err(DeployError::NoAccountAndContainer(uri.to_string()));
    }
    Ok((segs[0].clone(), segs[1].clone(), segs[2..].join("/")))
}

/// Copies the blobs under `uri` into `dest`. With `keep_name`, the folder (or file) keeps its own name
/// under `dest`, as Azure ML lays out models under `AZUREML_MODEL_DIR`.
fn materialise(st: &Shared, uri: &str, dest: &Path, keep_name: bool) -> Result<usize, DeployError> {
    let (account, container, path) = resolve_uri(st, uri)?;
    let exact = st
        .store
        .read_blobs_under(&account, &container, &path)
        .into_iter()
        .filter(|(n, _)| *n == path)
        .collect::<Vec<_>>();
    let (files, base) = if !exact.is_empty() && !path.is_empty() {
        let parent = path
            .rsplit_once('/')
            .map(|(p, _)| format!("{p}/"))
            .unwrap_or_default();
        (exact, parent)
    } else {
        let folder = if path.is_empty() {
            String::new()
        } else {
            format!("{}/", path.trim_end_matches('/'))
        };
        (
            st.store.read_blobs_under(&account, &container, &folder),
            folder,
        )
    };
    if files.is_empty() {
        return Err(DeployError::NoBlobs {
            uri: uri.to_string(),
            account,
            container,
            path,
        });
    }
    let name = path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    for (blob, bytes) in &files {
        let rel = &blob[base.len()..];
        if rel.split('/').any(|c| c == ".." || c.is_empty()) {
            return Err(DeployError::UnsafeBlobPath(blob.clone()));
        }
        let target = if keep_name && !exact_is_file(&files, &path) {
            dest.join(&name).join(rel)
        } else {
            dest.join(rel)
        };
        if let Some(p) = target.parent() {
            std::fs::create_dir_all(p).map_err(|source| DeployError::CreateDir {
                path: p.to_path_buf(),
                source,
            })?;
        }
        std::fs::write(&target, bytes).map_err(|source| DeployError::WriteFile {
            path: target.clone(),
            source,
        })?;
    }
    Ok(files.len())
}

fn exact_is_file(files: &[(String, Vec<u8>)], path: &str) -> bool {
    files.len() == 1 && files[0].0 == path
}

/// The `pip:` dependencies of a conda file (YAML text).
pub(crate) fn pip_dependencies(conda: &str) -> Result<Vec<String>, CondaError> {
    let source = crate::diag::SourceFile::new("conda.yaml", conda);
    let doc = crate::yaml::parse(&source, crate::yaml::Budget::default())
        .map_err(|diags| {
            CondaError::Invalid(diags.first().map(|d| d.message.clone()).unwrap_or_default())
        })?
        .to_json();
    let mut out = Vec::new();
    if let Some(deps) = doc.get("dependencies").and_then(Value::as_array) {
        for d in deps {
            if let Some(pip) = d.get("pip").and_then(Value::as_array) {
                for p in pip {
                    if let Some(s) = p.as_str() {
                        let name = s
                            .split(['=', '<', '>', '~', '!', '[', ';', ' '])
                            .next()
                            .unwrap_or_default()
                            .to_ascii_lowercase();
                        if name == "azureml-inference-server-http" || name == "azureml-defaults" {
                            continue;
                        }
                        out.push(s.to_string());
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Runs `cmd` to completion with its output appended to `log`.
async fn run_logged(
    mut cmd: tokio::process::Command,
    program: &'static str,
    log: &Path,
) -> Result<std::process::ExitStatus, DeployError> {
    let out_log = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map(Stdio::from)
            .unwrap_or_else(|_| Stdio::null())
    };
    cmd.stdout(out_log())
        .stderr(out_log())
        .status()
        .await
        .map_err(|source| DeployError::Run { program, source })
}

/// The python interpreter for a set of pip dependencies, creating the venv on first use.
async fn prepare_env(st: &Shared, pip: &[String], log: &Path) -> Result<PathBuf, DeployError> {
    if pip.is_empty() {
        append(log, "no pip dependencies: using the system python3");
        return Ok(PathBuf::from("python3"));
    }
    let mut sorted = pip.to_vec();
    sorted.sort();
    let hash = hex::encode(Sha256::digest(sorted.join("\n").as_bytes()));
    let env_dir = st.data_dir.join("envs").join(&hash[..16]);
    let python = env_dir.join("bin").join("python");
    let ready = env_dir.join(".ready");
    let guard = {
        let mut locks = lock(&st.procs.env_locks);
        locks.entry(hash.clone()).or_default().clone()
    };
    let _held = guard.lock().await;
    if ready.exists() {
        append(
            log,
            &format!(
                "reusing environment {} ({})",
                &hash[..16],
                sorted.join(", ")
            ),
        );
        return Ok(python);
    }
    let _ = std::fs::remove_dir_all(&env_dir);
    append(
        log,
        &format!(
            "building environment {}: python3 -m venv + pip install {}",
            &hash[..16],
            sorted.join(" ")
        ),
    );
    let mut venv = tokio::process::Command::new("python3");
    venv.args(["-m", "venv", "--system-site-packages"])
        .arg(&env_dir);
    let status = run_logged(venv, "python3 -m venv", log).await?;
    if !status.success() {
        return Err(DeployError::VenvFailed(status));
    }
    let mut pip = tokio::process::Command::new(&python);
    pip.args([
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--no-input",
        "-q",
    ])
    .args(&sorted);
    let status = run_logged(pip, "pip", log).await?;
    if !status.success() {
        return Err(DeployError::PipFailed(status));
    }
    std::fs::write(&ready, sorted.join("\n"))?;
    append(log, "environment ready");
    Ok(python)
}

/// The deployment's log (`InferenceServer` or `StorageInitializer`), last `tail` lines.
pub(crate) fn read_logs(
    st: &Shared,
    dep_key: &str,
    container: &str,
    tail: Option<usize>,
) -> String {
    let dir = dep_dir(st, dep_key);
    let file = if container.eq_ignore_ascii_case("StorageInitializer") {
        "storage-initializer.log"
    } else {
        "inference-server.log"
    };
    let text = std::fs::read_to_string(dir.join(file)).unwrap_or_default();
    match tail {
        Some(n) => {
            let lines: Vec<&str> = text.lines().collect();
            let start = lines.len().saturating_sub(n);
            lines[start..].join("\n")
        }
        None => text,
    }
}

fn score_error(status: StatusCode, msg: &str) -> Response {
    (status, axum::Json(json!({"message": msg}))).into_response()
}

/// `424 Failed Dependency` from the model: its status and reason in the `ms-azureml-model-error-*`
/// headers, as Azure ML reports them (the reason is reduced to printable ASCII).
fn model_error(msg: &str, model_status: u16, reason: &str) -> Response {
    let printable: String = reason
        .chars()
        .filter(|c| c.is_ascii() && !c.is_ascii_control())
        .collect();
    with_headers(
        score_error(StatusCode::FAILED_DEPENDENCY, msg),
        &[
            (
                "ms-azureml-model-error-statuscode",
                model_status.to_string(),
            ),
            ("ms-azureml-model-error-reason", printable),
        ],
    )
}

/// `POST /inference/{endpoint}/score`: authenticates with the endpoint key (or token), picks a
/// deployment (header `azureml-model-deployment`, else the traffic split) and calls `run()`.
pub(crate) async fn score(
    State(st): State<CloudState>,
    AxPath(endpoint): AxPath<String>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if method != Method::POST {
        return score_error(StatusCode::METHOD_NOT_ALLOWED, "use POST to score");
    }
    let suffix = format!("/onlineendpoints/{}", endpoint.to_ascii_lowercase());
    let ep = st.store.find_resource_by_suffix(
        &suffix,
        Some("Microsoft.MachineLearningServices/workspaces/onlineEndpoints"),
    );
    let Some((ep_key, ep)) = ep else {
        return score_error(StatusCode::NOT_FOUND, "endpoint not found");
    };
    let presented = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or_default()
        .to_string();
    let mode = str_at(&ep, "/properties/authMode").unwrap_or("Key");
    let authorised = match mode {
        "Key" => ["primary", "secondary"]
            .iter()
            .filter_map(|k| st.store.secret(&ep_key, k))
            .any(|k| !presented.is_empty() && k == presented),
        "AMLToken" => st
            .signer
            .verify(
                &presented,
                &[&format!("aml-endpoint:{ep_key}")],
                now_ms() / 1000,
            )
            .is_ok(),
        _ => st
            .signer
            .verify(&presented, &[super::auth::ML_AUDIENCE], now_ms() / 1000)
            .is_ok(),
    };
    if !authorised {
        return score_error(
            StatusCode::UNAUTHORIZED,
            "the key or token is missing or invalid",
        );
    }
    let forced = headers
        .get("azureml-model-deployment")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let chosen = match forced {
        Some(d) => d,
        None => {
            let traffic: Vec<(String, u64)> = ep
                .pointer("/properties/traffic")
                .and_then(Value::as_object)
                .map(|t| {
                    t.iter()
                        .filter_map(|(k, v)| v.as_u64().filter(|p| *p > 0).map(|p| (k.clone(), p)))
                        .collect()
                })
                .unwrap_or_default();
            let total: u64 = traffic.iter().map(|(_, p)| p).sum();
            if total == 0 {
                return score_error(
                    StatusCode::NOT_FOUND,
                    "no deployment receives traffic; set the endpoint's traffic or send azureml-model-deployment",
                );
            }
            let mut roll = rand::random::<u64>() % total;
            let mut pick = traffic[0].0.clone();
            for (k, p) in traffic {
                if roll < p {
                    pick = k;
                    break;
                }
                roll -= p;
            }
            pick
        }
    };
    let dep_key = format!("{ep_key}/deployments/{}", chosen.to_ascii_lowercase());
    let dep = st.store.resource(&dep_key);
    let Some(dep) = dep else {
        return score_error(
            StatusCode::NOT_FOUND,
            &format!("deployment {chosen} not found"),
        );
    };
    let Some(port) = st.procs.port(&dep_key) else {
        let state = dep
            .pointer("/properties/provisioningState")
            .and_then(Value::as_str)
            .unwrap_or("Unknown");
        return model_error(
            &format!("deployment {chosen} is not serving (provisioningState {state})"),
            503,
            "model not ready",
        );
    };
    let timeout = dep
        .pointer("/properties/requestSettings/requestTimeout")
        .and_then(Value::as_str)
        .and_then(crate::iso8601::parse_seconds)
        .unwrap_or(60.0);
    let call = st
        .local_http
        .post(format!("http://127.0.0.1:{port}/score"))
        .header(
            "content-type",
            headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("application/json"),
        )
        .body(body)
        .timeout(std::time::Duration::from_secs_f64(timeout.max(0.1)))
        .send()
        .await;
    let resp = match call {
        Ok(r) => r,
        Err(e) if e.is_timeout() => {
            return score_error(
                StatusCode::REQUEST_TIMEOUT,
                "the model exceeded requestTimeout",
            );
        }
        Err(_) => {
            return model_error(
                "the model container did not answer",
                502,
                "connection failed",
            );
        }
    };
    let status = resp.status();
    let ctype = resp.headers().get("content-type").cloned();
    let bytes = resp.bytes().await.unwrap_or_default();
    let mut out = if status.is_success() {
        (StatusCode::OK, Body::from(bytes)).into_response()
    } else {
        let reason = serde_json::from_slice::<Value>(&bytes)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_string))
            .unwrap_or_else(|| "model error".into());
        model_error(
            &format!("the model answered {}: {reason}", status.as_u16()),
            status.as_u16(),
            &reason,
        )
    };
    if status.is_success()
        && let Some(c) = ctype
    {
        out.headers_mut().insert("content-type", c);
    }
    if let Ok(v) = HeaderValue::from_str(&chosen) {
        out.headers_mut().insert("azureml-model-deployment", v);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pip_dependencies_skip_conda_and_inference_server() {
        let conda = "name: model-env\nchannels:\n  - conda-forge\ndependencies:\n  - python=3.9\n  - numpy=1.23.5\n  - pip\n  - pip:\n    - azureml-defaults==1.56.0\n    - azureml-inference-server-http\n    - azure-identity==1.16.0\n    - azure-storage-blob\n";
        assert_eq!(
            pip_dependencies(conda).unwrap(),
            vec!["azure-identity==1.16.0", "azure-storage-blob"]
        );
        assert!(
            pip_dependencies("dependencies:\n  - python=3.9\n")
                .unwrap()
                .is_empty()
        );
        assert!(pip_dependencies("a: [").is_err());
    }
}
