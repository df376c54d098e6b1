//! Why a deployment did not start ([`DeployError`], shown in the operation's error and the
//! deployment's logs) and why a conda file could not be read ([`CondaError`]).
//!
//! Error values only: this module never runs anything, never logs and never touches the store.
use std::path::PathBuf;

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
    #[error("the code URI {0} names a file; a code asset is a folder")]
    CodeIsAFile(String),
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
