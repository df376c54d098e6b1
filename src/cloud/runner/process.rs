//! Starting and stopping scoring processes: a deployment's run (storage initializer, environment,
//! then the scoring script in `harness.py` with the endpoint identity's `MSI_*` variables and the CA),
//! its outcome recorded on the deployment and its operation, restarts after the cloud restarts, and
//! stopping one or all processes.
//!
//! A process never outlives the cloud: each harness exits when its stdin pipe closes, and a start that
//! was superseded, deleted or interrupted by shutdown kills its process instead of registering it.
use std::path::Path;
use std::process::Stdio;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use super::assets::{asset_uri, materialise, materialise_code};
use super::env::{pip_dependencies, prepare_env};
use super::error::DeployError;
use super::folder::{Logs, append, dep_dir};
use crate::cloud::bodies::str_at;
use crate::cloud::procs::{Proc, lock};
use crate::cloud::state::{CloudState, Shared};
use crate::cloud::store::now_ms;

const HARNESS: &str = include_str!("harness.py");

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

async fn run_deploy(st: &CloudState, dep_key: &str, generation: u64) -> Result<(), DeployError> {
    stop(st, dep_key).await;
    let dir = dep_dir(st, dep_key);
    let _ = std::fs::remove_dir_all(dir.join("code"));
    let _ = std::fs::remove_dir_all(dir.join("model"));
    std::fs::create_dir_all(&dir).map_err(|source| DeployError::CreateDir {
        path: dir.clone(),
        source,
    })?;
    let logs = Logs::in_folder(&dir);
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
        materialise_code(st, &code_uri, &dir.join("code")).map_err(|e| fail(&logs.storage, e))?;
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
