//! The local cloud: an offline emulator of the Azure REST contract (`shared/azure-api/README.md`)
//! built into the binary. It serves ARM, an Entra-style token endpoint, the cloud metadata document,
//! the blob data plane and endpoint scoring over HTTPS on 127.0.0.1 with its own CA, plus a plain-HTTP
//! managed-identity endpoint for the scoring processes it runs.
//!
//! Layers: [`server`] routes HTTP to the protocol layers ([`arm`], [`blob`], [`identity`], scoring);
//! those turn requests into typed operations on the [`store`] (durable state) and the [`runner`]
//! (deployment processes), checking tokens and roles through [`auth`]; [`faults`] injects failures;
//! [`instance`] manages a running instance (data folder, lock, `cloud.json`, detach).
//!
//! This module never imports the engine (plan/apply/provider); the engine sees it only as a URL, a CA
//! and credentials, through [`instance::ensure_running`] called by the CLI.
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
