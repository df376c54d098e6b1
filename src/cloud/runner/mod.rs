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
//!
//! # Files (each imports only its siblings, never this file)
//!
//! * [`process`]: a deployment's run, restarts, stopping processes (the entry points the ARM layer and
//!   the server call).
//! * [`assets`]: the storage initializer (code and model blobs into the deployment's folder).
//! * [`env`](mod@env): the Python environment for a conda file's pip dependencies.
//! * [`folder`]: a deployment's folder and logs.
//! * [`scoring`]: the scoring HTTP proxy.
//! * [`error`]: why a deployment did not start.
//!
//! This file only declares the files and re-exports what the rest of the cloud calls.
mod assets;
mod env;
mod error;
mod folder;
mod process;
mod scoring;

pub(crate) use folder::{read_logs, remove_files};
pub(crate) use process::{deploy, restart_all, stop, stop_all};
pub(crate) use scoring::score;
