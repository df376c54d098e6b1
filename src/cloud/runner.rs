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
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Path as AxPath, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::server::{CloudState, Shared};
use super::store::{now_ms, now_rfc3339};

const HARNESS: &str = include_str!("harness.py");

struct Proc {
    child: tokio::process::Child,
    port: u16,
    secret: String,
}

/// Running scoring processes, MSI secrets and in-flight deploy generations.
#[derive(Default)]
pub struct Procs {
    running: Mutex<HashMap<String, Proc>>,
    secrets: Mutex<HashMap<String, String>>,
    generations: Mutex<HashMap<String, u64>>,
    env_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Set on shutdown: processes that finish starting afterwards are stopped at once.
    closed: std::sync::atomic::AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Procs {
    /// The endpoint (lowercase id) a managed-identity secret belongs to.
    pub fn endpoint_for_secret(&self, secret: &str) -> Option<String> {
        if secret.is_empty() {
            return None;
        }
        lock(&self.secrets).get(secret).cloned()
    }

    fn port(&self, dep_key: &str) -> Option<u16> {
        lock(&self.running).get(dep_key).map(|p| p.port)
    }
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
pub async fn stop(st: &Shared, dep_key: &str) {
    let proc = lock(&st.procs.running).remove(dep_key);
    if let Some(mut p) = proc {
        lock(&st.procs.secrets).remove(&p.secret);
        let _ = p.child.start_kill();
        let _ = p.child.wait().await;
    }
}

/// Stops every scoring process (on shutdown).
pub async fn stop_all(st: &Shared) {
    st.procs
        .closed
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let keys: Vec<String> = lock(&st.procs.running).keys().cloned().collect();
    for k in keys {
        stop(st, &k).await;
    }
}

/// Removes a deleted deployment's files.
pub fn remove_files(st: &Shared, dep_key: &str) {
    let _ = std::fs::remove_dir_all(dep_dir(st, dep_key));
}

/// Restarts every stored deployment (after the cloud restarts). Deployments that were mid-operation
/// are run again and their operations finished.
pub fn restart_all(st: &CloudState) {
    let deps: Vec<(String, Option<String>)> = st.store.read(|d| {
        d.resources
            .iter()
            .filter(|(_, v)| {
                v["type"]
                    == "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments"
            })
            .filter(|(_, v)| {
                v.pointer("/properties/provisioningState")
                    .and_then(Value::as_str)
                    != Some("Failed")
            })
            .map(|(k, _)| {
                let op = d
                    .operations
                    .values()
                    .find(|o| o.status == "InProgress" && &o.resource_key == k)
                    .map(|o| o.id.clone());
                (k.clone(), op)
            })
            .collect()
    });
    for (k, op) in deps {
        deploy(st.clone(), k, op);
    }
}

/// Starts (or restarts) a deployment in the background.
pub fn deploy(st: CloudState, dep_key: String, op_id: Option<String>) {
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
            let ready = st
                .store
                .read(|d| d.operations.get(op).map(|o| o.ready_ms))
                .unwrap_or(0);
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
        let key = dep_key.clone();
        let _ = st
            .store
            .mutate(move |d| {
                if let Some(r) = d.resources.get_mut(&key) {
                    r["properties"]["provisioningState"] = state.into();
                }
                if let Some(op) = op_id.and_then(|o| d.operations.get_mut(&o)) {
                    op.status = state.into();
                    op.error = error;
                    op.ended = Some(now_rfc3339());
                }
            })
            .await;
    });
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

async fn run_deploy(st: &CloudState, dep_key: &str, generation: u64) -> Result<(), String> {
    stop(st, dep_key).await;
    let dir = dep_dir(st, dep_key);
    let _ = std::fs::remove_dir_all(dir.join("code"));
    let _ = std::fs::remove_dir_all(dir.join("model"));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let logs = Logs {
        storage: dir.join("storage-initializer.log"),
        inference: dir.join("inference-server.log"),
    };
    let _ = std::fs::write(&logs.storage, b"");
    let _ = std::fs::write(&logs.inference, b"");
    let fail = |log: &Path, msg: String| {
        append(log, &format!("ERROR: {msg}"));
        msg
    };
    let Some(dep) = st.store.read(|d| d.resources.get(dep_key).cloned()) else {
        return Err("the deployment no longer exists".into());
    };
    let props = &dep["properties"];
    // Storage initializer: code and model.
    let code_ref = props
        .pointer("/codeConfiguration/codeId")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_ascii_lowercase();
    let script = props
        .pointer("/codeConfiguration/scoringScript")
        .and_then(Value::as_str)
        .unwrap_or("score.py")
        .to_string();
    let code_uri = st
        .store
        .read(|d| {
            d.resources.get(&code_ref).and_then(|c| {
                c.pointer("/properties/codeUri")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
        })
        .ok_or_else(|| fail(&logs.storage, format!("code asset {code_ref} not found")))?;
    append(&logs.storage, &format!("downloading code from {code_uri}"));
    let n =
        materialise(st, &code_uri, &dir.join("code"), false).map_err(|e| fail(&logs.storage, e))?;
    append(&logs.storage, &format!("downloaded {n} code file(s)"));
    let model_dir = dir.join("model");
    std::fs::create_dir_all(&model_dir).map_err(|e| e.to_string())?;
    if let Some(model_ref) = props.get("model").and_then(Value::as_str) {
        let model_uri = st
            .store
            .read(|d| {
                d.resources
                    .get(&model_ref.to_ascii_lowercase())
                    .and_then(|c| {
                        c.pointer("/properties/modelUri")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                    })
            })
            .ok_or_else(|| fail(&logs.storage, format!("model asset {model_ref} not found")))?;
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
    let conda = st.store.read(|d| {
        d.resources.get(&env_ref).and_then(|e| {
            e.pointer("/properties/condaFile")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
    });
    let pip = conda
        .as_deref()
        .map(pip_dependencies)
        .transpose()
        .map_err(|e| fail(&logs.inference, e))?
        .unwrap_or_default();
    let python = prepare_env(st, &pip, &logs.inference)
        .await
        .map_err(|e| fail(&logs.inference, e))?;
    // Harness.
    let harness = st.data_dir.join("harness.py");
    if std::fs::read_to_string(&harness).ok().as_deref() != Some(HARNESS) {
        std::fs::write(&harness, HARNESS).map_err(|e| fail(&logs.inference, e.to_string()))?;
    }
    let secret = hex::encode(rand::random::<[u8; 16]>());
    let err_log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&logs.inference)
        .map_err(|e| e.to_string())?;
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
    let mut child = cmd.spawn().map_err(|e| {
        fail(
            &logs.inference,
            format!("cannot start {}: {e}", python.display()),
        )
    })?;
    let Some(stdout) = child.stdout.take() else {
        return Err("harness has no stdout".into());
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
        return Err(fail(
            &logs.inference,
            "init() failed; see the traceback above".into(),
        ));
    };
    let superseded = lock(&st.procs.generations).get(dep_key).copied() != Some(generation);
    let deleted = !st.store.read(|d| d.resources.contains_key(dep_key));
    let closed = st.procs.closed.load(std::sync::atomic::Ordering::SeqCst);
    if superseded || deleted || closed {
        lock(&st.procs.secrets).remove(&secret);
        let _ = child.start_kill();
        let _ = child.wait().await;
        return Err(if closed {
            "the local cloud is shutting down"
        } else if deleted {
            "the deployment was deleted while starting"
        } else {
            "superseded by a newer deployment"
        }
        .into());
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
fn resolve_uri(st: &Shared, uri: &str) -> Result<(String, String, String), String> {
    let seed = st.seed();
    if let Some(rest) = uri.strip_prefix("azureml://") {
        let lower = rest.to_ascii_lowercase();
        let ds_pos = lower
            .find("datastores/")
            .ok_or_else(|| format!("unsupported azureml uri {uri}"))?;
        let after = &rest[ds_pos + "datastores/".len()..];
        let (ds, path) = after
            .split_once("/paths/")
            .ok_or_else(|| format!("unsupported azureml uri {uri}"))?;
        if !ds.eq_ignore_ascii_case("workspaceblobstore") {
            return Err(format!(
                "datastore {ds} does not exist (only workspaceblobstore)"
            ));
        }
        return Ok((
            seed.workspace_storage_account,
            seed.workspace_container,
            path.trim_matches('/').to_string(),
        ));
    }
    let parsed = url::Url::parse(uri).map_err(|e| format!("invalid uri {uri}: {e}"))?;
    let host = parsed.host_str().unwrap_or_default().to_ascii_lowercase();
    let segs: Vec<String> = parsed
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(super::arm::percent_decode)
        .collect();
    if let Some(acct) = host.split_once(".blob.").map(|(a, _)| a.to_string()) {
        if segs.is_empty() {
            return Err(format!("uri {uri} names no container"));
        }
        return Ok((acct, segs[0].clone(), segs[1..].join("/")));
    }
    if segs.len() < 2 {
        return Err(format!("uri {uri} names no account and container"));
    }
    Ok((segs[0].clone(), segs[1].clone(), segs[2..].join("/")))
}

/// Copies the blobs under `uri` into `dest`. With `keep_name`, the folder (or file) keeps its own name
/// under `dest`, as Azure ML lays out models under `AZUREML_MODEL_DIR`.
fn materialise(st: &Shared, uri: &str, dest: &Path, keep_name: bool) -> Result<usize, String> {
    let (account, container, path) = resolve_uri(st, uri)?;
    let exact = super::blob::read_prefix(st, &account, &container, &path)
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
            super::blob::read_prefix(st, &account, &container, &folder),
            folder,
        )
    };
    if files.is_empty() {
        return Err(format!(
            "no blobs found at {uri} (account {account}, container {container}, path {path})"
        ));
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
            return Err(format!("refusing unsafe blob path {blob}"));
        }
        let target = if keep_name && !exact_is_file(&files, &path) {
            dest.join(&name).join(rel)
        } else {
            dest.join(rel)
        };
        if let Some(p) = target.parent() {
            std::fs::create_dir_all(p)
                .map_err(|e| format!("cannot create {}: {e}", p.display()))?;
        }
        std::fs::write(&target, bytes)
            .map_err(|e| format!("cannot write {}: {e}", target.display()))?;
    }
    Ok(files.len())
}

fn exact_is_file(files: &[(String, Vec<u8>)], path: &str) -> bool {
    files.len() == 1 && files[0].0 == path
}

/// The `pip:` dependencies of a conda file (YAML text).
pub fn pip_dependencies(conda: &str) -> Result<Vec<String>, String> {
    let doc = yaml_to_json(conda)?;
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

/// A minimal YAML → JSON conversion (scalars stay strings) on saphyr's event parser, bounded in depth.
fn yaml_to_json(text: &str) -> Result<Value, String> {
    use saphyr_parser::{Event, Parser};
    enum Frame {
        Seq(Vec<Value>),
        Map(serde_json::Map<String, Value>, Option<String>),
    }
    let mut stack: Vec<Frame> = Vec::new();
    let mut root = Value::Null;
    fn push(stack: &mut [Frame], root: &mut Value, v: Value) {
        match stack.last_mut() {
            Some(Frame::Seq(s)) => s.push(v),
            Some(Frame::Map(m, key)) => match key.take() {
                Some(k) => {
                    m.insert(k, v);
                }
                None => {
                    *key = Some(
                        v.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| v.to_string()),
                    )
                }
            },
            None => *root = v,
        }
    }
    for ev in Parser::new_from_str(text) {
        let (ev, _) = ev.map_err(|e| format!("invalid conda file: {e}"))?;
        match ev {
            Event::Scalar(s, ..) => push(&mut stack, &mut root, Value::String(s.into_owned())),
            Event::SequenceStart(..) => stack.push(Frame::Seq(Vec::new())),
            Event::MappingStart(..) => stack.push(Frame::Map(serde_json::Map::new(), None)),
            Event::SequenceEnd | Event::MappingEnd => {
                let v = match stack.pop() {
                    Some(Frame::Seq(s)) => Value::Array(s),
                    Some(Frame::Map(m, _)) => Value::Object(m),
                    None => return Err("invalid conda file".into()),
                };
                push(&mut stack, &mut root, v);
            }
            Event::Alias(_) => push(&mut stack, &mut root, Value::Null),
            _ => {}
        }
        if stack.len() > 64 {
            return Err("conda file nests too deeply".into());
        }
    }
    Ok(root)
}

/// The python interpreter for a set of pip dependencies, creating the venv on first use.
async fn prepare_env(st: &Shared, pip: &[String], log: &Path) -> Result<PathBuf, String> {
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
    let out_log = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map(Stdio::from)
            .unwrap_or_else(|_| Stdio::null())
    };
    let status = tokio::process::Command::new("python3")
        .args(["-m", "venv", "--system-site-packages"])
        .arg(&env_dir)
        .stdout(out_log())
        .stderr(out_log())
        .status()
        .await
        .map_err(|e| format!("cannot run python3 -m venv: {e}"))?;
    if !status.success() {
        return Err(format!("python3 -m venv failed ({status})"));
    }
    let status = tokio::process::Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "-q",
        ])
        .args(&sorted)
        .stdout(out_log())
        .stderr(out_log())
        .status()
        .await
        .map_err(|e| format!("cannot run pip: {e}"))?;
    if !status.success() {
        return Err(format!("pip install failed ({status}); see the log above"));
    }
    std::fs::write(&ready, sorted.join("\n")).map_err(|e| e.to_string())?;
    append(log, "environment ready");
    Ok(python)
}

/// The deployment's log (`InferenceServer` or `StorageInitializer`), last `tail` lines.
pub fn read_logs(st: &Shared, dep_key: &str, container: &str, tail: Option<usize>) -> String {
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

/// `POST /inference/{endpoint}/score`: authenticates with the endpoint key (or token), picks a
/// deployment (header `azureml-model-deployment`, else the traffic split) and calls `run()`.
pub async fn score(
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
    let ep = st.store.read(|d| {
        d.resources
            .iter()
            .find(|(k, v)| {
                k.ends_with(&suffix)
                    && v["type"] == "Microsoft.MachineLearningServices/workspaces/onlineEndpoints"
            })
            .map(|(k, v)| (k.clone(), v.clone()))
    });
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
    let mode = ep
        .pointer("/properties/authMode")
        .and_then(Value::as_str)
        .unwrap_or("Key");
    let authorised = match mode {
        "Key" => st.store.read(|d| {
            ["primary", "secondary"]
                .iter()
                .filter_map(|k| d.secrets.get(&format!("{ep_key}#{k}")))
                .any(|k| !presented.is_empty() && *k == presented)
        }),
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
    let dep = st.store.read(|d| d.resources.get(&dep_key).cloned());
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
        let mut r = score_error(
            StatusCode::FAILED_DEPENDENCY,
            &format!("deployment {chosen} is not serving (provisioningState {state})"),
        );
        r.headers_mut().insert(
            "ms-azureml-model-error-statuscode",
            HeaderValue::from_static("503"),
        );
        r.headers_mut().insert(
            "ms-azureml-model-error-reason",
            HeaderValue::from_static("model not ready"),
        );
        return r;
    };
    let timeout = dep
        .pointer("/properties/requestSettings/requestTimeout")
        .and_then(Value::as_str)
        .and_then(parse_iso_seconds)
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
            let mut r = score_error(
                StatusCode::FAILED_DEPENDENCY,
                "the model container did not answer",
            );
            r.headers_mut().insert(
                "ms-azureml-model-error-statuscode",
                HeaderValue::from_static("502"),
            );
            r.headers_mut().insert(
                "ms-azureml-model-error-reason",
                HeaderValue::from_static("connection failed"),
            );
            return r;
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
        let mut r = score_error(
            StatusCode::FAILED_DEPENDENCY,
            &format!("the model answered {}: {reason}", status.as_u16()),
        );
        if let Ok(v) = HeaderValue::from_str(&status.as_u16().to_string()) {
            r.headers_mut()
                .insert("ms-azureml-model-error-statuscode", v);
        }
        if let Ok(v) = HeaderValue::from_str(
            &reason
                .chars()
                .filter(|c| c.is_ascii() && !c.is_ascii_control())
                .collect::<String>(),
        ) {
            r.headers_mut().insert("ms-azureml-model-error-reason", v);
        }
        r
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

/// `PT5S`, `PT0.5S`, `PT1M` → seconds.
fn parse_iso_seconds(s: &str) -> Option<f64> {
    let rest = s.strip_prefix("PT")?;
    let mut total = 0.0;
    let mut num = String::new();
    for c in rest.chars() {
        match c {
            '0'..='9' | '.' => num.push(c),
            'H' => total += num.parse::<f64>().ok()? * 3600.0,
            'M' => total += num.parse::<f64>().ok()? * 60.0,
            'S' => total += num.parse::<f64>().ok()?,
            _ => return None,
        }
        if c.is_ascii_alphabetic() {
            num.clear();
        }
    }
    Some(total)
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

    #[test]
    fn iso_durations() {
        assert_eq!(parse_iso_seconds("PT5S"), Some(5.0));
        assert_eq!(parse_iso_seconds("PT0.5S"), Some(0.5));
        assert_eq!(parse_iso_seconds("PT1M30S"), Some(90.0));
        assert_eq!(parse_iso_seconds("5s"), None);
    }
}
