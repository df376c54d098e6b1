//! The provider: the one Azure client stackform has, and the trait the engine calls it through.
//!
//! The engine hands the provider a [`ResourceRequest`] (type, address, fully resolved inputs keyed by the
//! stack-file field names) and gets back an [`Observed`] (cloud id, the inputs as read back from the cloud
//! under the same names so the planner can diff, and computed outputs). [`AzureProvider`] implements the
//! trait for real Azure and for the local cloud alike: the local cloud is only a URL, a CA certificate and
//! credentials in a [`CloudConfig`].
//!
//! Layers, outermost first: resource types (`resources/`) → the shared ARM client (`arm`) and the blob
//! data plane (`blob`; leases, append blobs and ETag-guarded writes in `blob_conditional`) →
//! long-running operations (`lro`) → the HTTP pipeline (`pipeline`: request id and logging, then
//! `retry`, then per-try auth, then the transport).
//!
//! This module must never import `crate::cloud`, never print, and never let a token, key or secret reach
//! a log line, an error or an [`Observed`].

pub mod arm;
pub mod azure;
pub mod blob;
pub mod blob_conditional;
pub mod config;
mod contract;
pub mod credential;
pub mod error;
pub mod ids;
pub mod lro;
pub mod pace;
pub mod pipeline;
mod preflight;
pub mod resources;
pub mod retry;
mod secret;
pub mod shared_key;
#[cfg(test)]
mod testlog;

pub use azure::AzureProvider;
pub use config::{CloudConfig, CloudKind};
pub(crate) use contract::ProviderFuture;
pub use contract::{
    MapRequest, Observed, Preserved, ProgressEvent, ProgressSink, Provider, ResourceRequest,
    ResourceType, Result,
};
pub use error::{ErrorKind, ProviderError};
pub use preflight::{
    NameAnswer, PermissionEntry, PreflightAnswers, PreflightQuestions, VersionAnswer,
};
pub use secret::Secret;
