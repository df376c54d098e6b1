//! The local cloud: an offline emulator of the Azure REST contract (`shared/azure-api/README.md`)
//! built into the binary. It serves ARM, an Entra-style token endpoint, OIDC discovery, the cloud
//! metadata document, the blob data plane and endpoint scoring over HTTPS on 127.0.0.1 with its own
//! CA, plus a plain-HTTP managed-identity endpoint for the scoring processes it runs.
//!
//! Layers: [`server`] routes HTTP to the protocol layers ([`arm`], [`blob`], [`identity`], scoring in
//! [`runner`]); those turn requests into typed operations on the [`store`] (durable state) and the
//! [`runner`] (deployment processes), checking tokens and roles through [`auth`]; [`faults`] injects
//! failures; [`instance`] manages a running instance (data folder, lock, `cloud.json`, detach).
//!
//! This module never imports the engine (plan/apply/provider); the engine sees it only as a URL, a CA
//! and credentials, through [`ensure_running`] called by the CLI.
//!
//! # Using it from other modules
//!
//! * `ensure_running(&data_dir)` returns the running instance's [`CloudInfo`], starting
//!   `stackform cloud up` in the background first when needed (and saying so on stderr).
//!   [`default_data_dir`] gives the folder (`STACKFORM_CLOUD_DIR`, else `<data dir>/stackform/cloud`).
//! * [`CloudInfo`] carries the ARM endpoint, authority host (tokens at
//!   `{authority_host}{tenant_id}/oauth2/v2.0/token`), tenant, client id and fixture secret,
//!   subscription, resource group, workspace, location, the CA PEM path to trust, and
//!   `blob_endpoint_template` (`https://127.0.0.1:{port}/{account}/`, path-style).
//! * Blob URLs: always take `properties.primaryEndpoints.blob` of the storage account. The workspace
//!   datastore's `endpoint` says `core.windows.net` as in Azure; resolve the workspace storage account
//!   (`workspace.properties.storageAccount`) and use its `primaryEndpoints.blob` instead.
//! * In-process (tests): `start(CloudOptions { data_dir, port: 0, faults, log_file: None }).await`
//!   gives a [`RunningCloud`] with `.info`, `.set_faults(patch)` and `.shutdown().await`;
//!   `app(CloudState::open(..))` is the bare router for `tower::ServiceExt::oneshot`.
//! * Faults at run time: `POST {arm_endpoint}_admin/faults` with the seeded service principal's ARM
//!   token and a JSON patch of [`faults::Faults`] fields (`latency_ms`, `lro_ms`, `retry_after_s`,
//!   `error_rate`, `throttle_rate`, `throttle_retry_after_s`, `role_propagation_s`,
//!   `principal_replication_s`); `GET` reads them. At start: `cloud up --lro-ms ...` flags or
//!   `STACKFORM_CLOUD_FAULT_<FIELD>` variables.
pub mod arm;
pub mod auth;
pub mod blob;
pub mod faults;
pub mod identity;
pub mod instance;
pub mod runner;
pub mod server;
pub mod store;
pub mod tls;

pub use instance::{CloudError, CloudInfo, default_data_dir, ensure_running, read_info, status};
pub use server::{CloudOptions, CloudState, RunningCloud, app, start};
