//! Python environment preparation: the `pip:` dependencies of a deployment's conda file, installed
//! into a venv per set of dependencies (`envs/{hash}`, `--system-site-packages`), built once and reused;
//! without pip dependencies the system `python3` runs the script.
//!
//! It never installs conda-level packages and never installs `azureml-inference-server-http` or
//! `azureml-defaults` (the harness plays the inference server's role); it never starts a scoring
//! process.
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::error::{CondaError, DeployError};
use super::folder::append;
use crate::cloud::procs::lock;
use crate::cloud::state::Shared;

/// The `pip:` dependencies of a conda file (YAML text).
pub(super) fn pip_dependencies(conda: &str) -> Result<Vec<String>, CondaError> {
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
pub(super) async fn prepare_env(
    st: &Shared,
    pip: &[String],
    log: &Path,
) -> Result<PathBuf, DeployError> {
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
