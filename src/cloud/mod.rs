//! The local cloud: an offline emulator of the Azure REST contract (`shared/azure-api/README.md`)
//! built into the binary. It serves ARM, an Entra-style token endpoint, OIDC discovery, the cloud
//! metadata document, the blob data plane and endpoint scoring over HTTPS on 127.0.0.1 with its own
//! CA, plus a plain-HTTP managed-identity endpoint for the scoring processes it runs.
//!
//! # Module map (a layer imports only the layers below it: no import circle)
//!
//! * [`server`] assembles the router (`app`) and starts a cloud (`start`); nothing imports it.
//! * Protocol layers, each turning a request into a typed operation once: [`arm`] (`arm::route`
//!   parses the path into an `ArmRoute`, `arm::protocol` holds the error envelope, api-version and
//!   bearer auth, handlers per provider), [`blob`] (`blob::route` → `BlobRoute`, `blob::auth` SharedKey
//!   and bearer auth with data-role checks, `blob::error` XML errors, handlers in `blob::containers`
//!   and `blob::blobs`), [`identity`] (token endpoint, OIDC, metadata, managed identity) and
//!   [`runner`] (deployment processes: `runner::process` runs and stops them, `runner::assets` is the
//!   storage initializer, `runner::env` the Python environments, `runner::folder` a deployment's
//!   folder and logs, `runner::scoring` the scoring proxy).
//! * Inside a layer, `mod.rs` only wires its files; a file imports its siblings, never its `mod.rs`.
//! * Below them: [`state`] (the shared handle every handler receives), [`store`] (durable state behind
//!   named operations; cascades such as "a container's blobs go with it" live only there), [`auth`]
//!   (tokens and role checks over role assignments), [`faults`], [`procs`] (the table of running
//!   scoring processes), [`bodies`] (ARM resource bodies more than one layer builds), [`seed`] (a
//!   new data folder's world), [`tls`], [`instance`] (data folder, lock, `cloud.json`, detach).
//! * [`http`] (request ids, query parsing, percent-decoding, header helpers) imports no other module
//!   of the cloud.
//!
//! Besides its own files the cloud imports only pure top-level modules of the crate (`crate::yaml`,
//! `crate::iso8601`, `crate::api_version`, `crate::diag`). This module never imports the engine
//! (plan/apply/provider); the engine sees it only as a URL, a CA
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
//! * In-process (tests): `start(CloudOptions { data_dir, port: 0, faults, log_file: None, seed })`
//!   gives a [`RunningCloud`] with `.info`, `.set_faults(patch)` and `.shutdown().await`;
//!   `app(CloudState::open(..))` is the bare router for `tower::ServiceExt::oneshot`.
//! * Faults at run time: `POST {arm_endpoint}_admin/faults` with the seeded service principal's ARM
//!   token and a JSON patch of [`faults::Faults`] fields (`latency_ms`, `lro_ms`, `retry_after_s`,
//!   `error_rate`, `throttle_rate`, `throttle_retry_after_s`, `role_propagation_s`,
//!   `principal_replication_s`); `GET` reads them. At start: `cloud up --lro-ms ...` flags or
//!   `STACKFORM_CLOUD_FAULT_<FIELD>` variables.
pub(crate) mod arm;
pub mod auth;
pub(crate) mod blob;
pub(crate) mod bodies;
pub mod faults;
pub(crate) mod http;
pub(crate) mod identity;
pub mod instance;
pub(crate) mod procs;
pub(crate) mod runner;
pub(crate) mod seed;
pub(crate) mod server;
pub(crate) mod state;
pub(crate) mod store;
pub(crate) mod tls;

pub use faults::throttle_limits;
pub use instance::{CloudError, CloudInfo, default_data_dir, ensure_running, read_info, status};
pub use seed::SeedProfile;
pub use server::{CloudOptions, RunningCloud, app, start};
pub use state::CloudState;
