//! The one error type the CLI renders. Library errors convert into it with `?` (`#[from]`); the
//! commands' own conditions are variants here or in their command's error enum. Each variant renders
//! in exactly one place (its `#[error]` text, or [`CliError::render`] for what goes around it) and
//! knows its exit code ([`CliError::exit_code`], from [`super::exit`]).
//!
//! Never build a message here from a value that can hold a secret (a variable's value, a token, a
//! request body): the library errors wrapped here are written not to carry them, and the CLI's own
//! variants name only addresses, paths, flags and ids.
use std::fmt;
use std::path::PathBuf;
use std::process::ExitCode;

use super::exit;
use crate::apply::{ApplyError, RecoveryError, RefreshError, SettleError};
use crate::cloud::CloudError;
use crate::cloud::faults::FaultsError;
use crate::plan::PlanError;
use crate::plan::content::ContentError;
use crate::provider::ProviderError;
use crate::report::stdio::err;
use crate::specs::SpecError;
use crate::state::{JournalAction, JournalError, LockError, LockInfo, StateError, SurgeryError};

/// Everything a command can fail with, as the user sees it.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Located problems in user input (stack files, variables); rendered with source snippets.
    #[error("{count} problem(s) found; nothing was changed")]
    Diagnostics { count: usize, rendered: String },

    /// The command was interrupted (Ctrl-C) before the apply began; nothing was changed.
    #[error("stopped before anything was changed")]
    Interrupted,

    /// The stack file named by `-f` (or the default `stack.yaml`) does not exist.
    #[error("stack file {} not found{}", .path.display(), default_file_hint(.path))]
    StackFileMissing { path: PathBuf },

    #[error("internal error in the embedded specs: {0}")]
    Specs(#[from] SpecError),

    #[error(transparent)]
    State(#[from] StateError),

    #[error(transparent)]
    Lock(#[from] LockError),

    /// The backend configuration (stack file, `--backend`, `--backend-config`, environment) does
    /// not name a usable backend.
    #[error(transparent)]
    BackendConfig(#[from] crate::backend::BackendConfigError),

    /// The remote state could not be opened, read, locked or written.
    #[error(transparent)]
    Backend(#[from] crate::backend::BackendError),

    #[error(transparent)]
    Journal(#[from] JournalError),

    #[error(transparent)]
    Surgery(#[from] SurgeryError),

    #[error(transparent)]
    Recovery(#[from] RecoveryError),

    /// Some unfinished steps of an interrupted run could not be settled; nothing else was done.
    #[error(
        "could not resolve the interrupted run's steps; nothing else was done:\n  {}",
        unsettled_lines(.0)
    )]
    RecoveryIncomplete(Vec<(String, JournalAction, SettleError)>),

    #[error("refresh failed: {0}")]
    Refresh(#[from] RefreshError),

    /// Local files the stack names (blob sources, code and model folders) cannot be read.
    #[error("cannot read the files the stack names:\n  {}", lines(.0))]
    StackFiles(Vec<ContentError>),

    #[error("cannot plan:\n  {}", lines(.0))]
    Plan(Vec<PlanError>),

    /// A `moved:` or an `import:` of the stack file cannot be followed; nothing was done.
    #[error("cannot follow the stack file's `moved:` and `import:`:\n  {}", lines(.0))]
    Addresses(Vec<crate::plan::moves::AddressError>),

    #[error("cannot apply this plan: {0}")]
    Apply(#[from] ApplyError),

    /// The local cloud's lifecycle (`cloud up|down|status|reset`, its data folder).
    #[error(transparent)]
    Cloud(#[from] CloudError),

    #[error(transparent)]
    CloudSetup(#[from] CloudSetupError),

    #[error(transparent)]
    PlanFile(#[from] PlanFileError),

    #[error(transparent)]
    Invoke(#[from] InvokeError),

    #[error(transparent)]
    StateCommand(#[from] StateCommandError),

    /// A file or folder the command reads or writes; `action` reads after "cannot".
    #[error("cannot {action} {}: {source}", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },

    /// Standard output could not be written: a closed pipe ends the command quietly, anything else
    /// (a full disk) is reported.
    #[error(transparent)]
    Stdout(#[from] crate::report::stdio::StdoutError),

    /// Turning a document the command prints into JSON failed.
    #[error(transparent)]
    Json(#[from] serde_json::Error),

    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),

    #[error("cannot find the stackform executable: {0}")]
    CurrentExe(#[source] std::io::Error),

    #[error("cannot read the answer: {0}")]
    ReadAnswer(#[source] std::io::Error),

    /// Apply or destroy would have to ask "yes" but cannot.
    #[error(
        "refusing to ask for confirmation: standard input is not a terminal; pass --auto-approve to {verb} without asking"
    )]
    NotATerminal { verb: String },

    #[error("--target `{target}` is not a resource of this stack or its state{hint}")]
    UnknownTarget { target: String, hint: Hint },

    #[error("no output named `{name}` in state{hint}")]
    UnknownOutput { name: String, hint: Hint },

    /// A command that needs a past apply found no state; `state_file` is shown when given.
    #[error(
        "no state for stack `{stack}`{}: run `stackform apply` first",
        .state_file.as_ref().map(|f| format!(" at {f}")).unwrap_or_default()
    )]
    NotApplied {
        stack: String,
        state_file: Option<String>,
    },

    /// A flag the command accepts with the others it shares but cannot use (`env list --state`).
    #[error("`{command}` does not take {flag}: {why}")]
    FlagNotHere {
        command: &'static str,
        flag: &'static str,
        why: &'static str,
    },

    #[error("the local cloud is not running (data: {})", .data_dir.display())]
    CloudNotRunning { data_dir: PathBuf },

    /// Recorded ids that do not point at what their records describe; nothing was done.
    #[error(
        "the state's ids do not fit their records, so nothing was done:\n{}\nrepair the state (`stackform state rm` and `state import`) or restore its backup",
        .0.iter().map(|d| format!("  {d}")).collect::<Vec<_>>().join("\n")
    )]
    DamagedIds(Vec<crate::plan::DamagedId>),

    /// The state file is a symbolic link that leads to no file (dangling, or a loop).
    #[error(
        "the state file {} is a symbolic link to {}, which cannot be reached: {source}; fix or remove the link",
        .link.display(), .target.display()
    )]
    StateLink {
        link: PathBuf,
        target: PathBuf,
        source: std::io::Error,
    },

    /// The local cloud's fault settings (flags or `STACKFORM_CLOUD_FAULT_*`) are invalid.
    #[error(transparent)]
    Faults(#[from] FaultsError),

    /// The state's resources live in another subscription or tenant than the one this run reaches.
    #[error(
        "the state file {state_file} belongs to {recorded}, but this run reaches {current}; nothing was read or changed. \
Run it against the cloud the state belongs to (--cloud, --cloud-dir or STACKFORM_CLOUD_DIR, cloud.subscription or \
AZURE_SUBSCRIPTION_ID, cloud.tenant or AZURE_TENANT_ID), or give this cloud a state of its own (--env NAME or --state-dir DIR)"
    )]
    ForeignState {
        state_file: String,
        recorded: String,
        current: String,
    },

    /// Apply would create objects that exist already, unknown to the stack's state; `report` is
    /// what the plan showed (the objects and the commands that adopt them).
    #[error(
        "{count} object(s) the plan creates already exist in the cloud, so nothing was changed (see the warning above: adopt them, or run with the state that created them)"
    )]
    ExistsOutsideState { count: usize },
}

impl CliError {
    /// The process exit code for this error (see [`super::exit`]).
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Interrupted => exit::INTERRUPTED,
            CliError::Stdout(e) if e.is_closed() => exit::CLOSED_STDOUT,
            CliError::Stdout(_) => exit::ERROR,
            CliError::Diagnostics { .. }
            | CliError::StackFileMissing { .. }
            | CliError::Specs(_)
            | CliError::State(_)
            | CliError::Lock(_)
            | CliError::BackendConfig(_)
            | CliError::Backend(_)
            | CliError::Journal(_)
            | CliError::Surgery(_)
            | CliError::Recovery(_)
            | CliError::RecoveryIncomplete(_)
            | CliError::Refresh(_)
            | CliError::StackFiles(_)
            | CliError::Plan(_)
            | CliError::Addresses(_)
            | CliError::Apply(_)
            | CliError::Cloud(_)
            | CliError::CloudSetup(_)
            | CliError::PlanFile(_)
            | CliError::Invoke(_)
            | CliError::StateCommand(_)
            | CliError::Io { .. }
            | CliError::Json(_)
            | CliError::Runtime(_)
            | CliError::CurrentExe(_)
            | CliError::ReadAnswer(_)
            | CliError::NotATerminal { .. }
            | CliError::UnknownTarget { .. }
            | CliError::UnknownOutput { .. }
            | CliError::NotApplied { .. }
            | CliError::CloudNotRunning { .. }
            | CliError::FlagNotHere { .. }
            | CliError::StateLink { .. }
            | CliError::DamagedIds(_)
            | CliError::Faults(_)
            | CliError::ForeignState { .. }
            | CliError::ExistsOutsideState { .. } => exit::ERROR,
        }
    }

    /// Everything the user sees on stderr for this error, newline included: its message after
    /// `error: ` (`interrupted: ` for Ctrl-C), below the located snippets of diagnostics.
    pub fn render(&self) -> String {
        match self {
            CliError::Diagnostics { rendered, .. } => format!("{rendered}error: {self}\n"),
            CliError::Interrupted => format!("interrupted: {self}\n"),
            _ => format!("error: {self}\n"),
        }
    }

    /// Prints the error to stderr and returns its exit code. A closed stdout prints nothing: the
    /// reader asked for no more, as with `git log | head`.
    pub fn report(&self) -> ExitCode {
        if !matches!(self, CliError::Stdout(e) if e.is_closed()) {
            err!("{}", self.render());
        }
        ExitCode::from(self.exit_code())
    }

    /// A file or folder operation that failed; `action` reads after "cannot" (`"read"`,
    /// `"create the state folder"`).
    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| CliError::Io {
            action,
            path,
            source,
        }
    }
}

/// Choosing and reaching the stack's cloud: its `cloud:` settings, the local cloud, connecting.
#[derive(Debug, thiserror::Error)]
pub enum CloudSetupError {
    #[error("the {kind} cloud needs `cloud.{field}` in the stack file or {env} in the environment")]
    Missing {
        kind: &'static str,
        field: &'static str,
        env: &'static str,
    },
    #[error("a custom cloud needs `cloud.arm_endpoint` in the stack file")]
    CustomWithoutArmEndpoint,
    #[error("bad cloud.arm_endpoint `{url}`: {source}")]
    BadArmEndpoint {
        url: String,
        source: url::ParseError,
    },
    #[error("bad cloud.authority_host: {0}")]
    BadAuthorityHost(#[source] url::ParseError),
    /// The well-known endpoints of a named cloud.
    #[error(transparent)]
    Endpoints(Box<ProviderError>),
    /// No data folder for the local cloud.
    #[error(transparent)]
    DataDir(CloudError),
    #[error("cannot start the local cloud: {0}")]
    LocalStart(#[source] CloudError),
    #[error("the local cloud reported a bad endpoint: {0}")]
    LocalEndpoint(#[source] url::ParseError),
    #[error("cannot connect to the cloud: {0}")]
    Connect(#[source] Box<ProviderError>),
}

/// `stackform invoke` and `stackform logs`: the request file, finding the endpoint and deployment in
/// state, and the calls themselves.
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    #[error("{} is not JSON: {source}", .path.display())]
    NotJson {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("`{address}` is not in state (has the stack been applied?){hint}")]
    NotInState { address: String, hint: Hint },
    /// A name the command needs is missing from the resource's record (`what` is e.g. "endpoint's name").
    #[error("the {what} is not recorded")]
    NotRecorded { what: &'static str },
    #[error("`{address}` is a {type_name}, not an online_endpoint or online_deployment")]
    NotAnEndpoint { address: String, type_name: String },
    #[error("the stack has no deployment in state")]
    NoDeployment,
    #[error("the stack has several deployments; name one: {}", .names.join(", "))]
    SeveralDeployments { names: Vec<String> },
    #[error("endpoint `{endpoint}` has no deployment in state")]
    EndpointWithoutDeployment { endpoint: String },
    #[error("endpoint `{endpoint}` has several deployments; name one of: {}", .names.join(", "))]
    EndpointWithSeveralDeployments {
        endpoint: String,
        names: Vec<String>,
    },
    #[error("invoking `{endpoint}` failed: {source}")]
    Call {
        endpoint: String,
        source: Box<ProviderError>,
    },
    #[error("cannot read the log of `{deployment}`: {source}")]
    Logs {
        deployment: String,
        source: Box<ProviderError>,
    },
}

/// A saved plan (`plan -o FILE`, `apply FILE`) that cannot be written, read or used.
#[derive(Debug, thiserror::Error)]
pub enum PlanFileError {
    #[error("cannot write the plan to {}: {source}", .path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the saved plan {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a saved plan made by `stackform plan -o`: {source}", .path.display())]
    NotASavedPlan {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(
        "{} is a saved plan of another format ({found_format} v{found_version}); this stackform reads {format} v{version}",
        .path.display()
    )]
    OtherFormat {
        path: PathBuf,
        found_format: String,
        found_version: u32,
        format: &'static str,
        version: u32,
    },
    #[error("the saved plan has an unusable mode {0:?}")]
    BadMode(Option<String>),
    /// The plan JSON inside a saved plan cannot be used (its `schema_version`, a missing field).
    #[error("{}: {message}", .path.display())]
    BadPlan { path: PathBuf, message: String },
    /// The digests of sensitive values in a saved plan cannot be used; the text says why.
    #[error(
        "the saved plan's digests of sensitive values cannot be checked: {0}; make a new plan with `stackform plan -o`"
    )]
    BadDigests(String),
    /// A sensitive variable's value differs from the one the saved plan was made with.
    #[error(
        "variable `{0}` is sensitive and its value differs from the one this plan was made with; pass the same value, or make a new plan with `stackform plan -o`"
    )]
    SensitiveChanged(String),
    #[error(
        "variable `{0}` is sensitive, so the saved plan does not hold its value: pass --var {0}=... again"
    )]
    SensitiveVariable(String),
    #[error("the saved plan belongs to another stack")]
    OtherStack,
    /// `apply FILE --env NAME` where the plan was made for another environment (or none).
    #[error(
        "the saved plan was made for {}, not --env {now}; apply it without --env, or make a plan for `{now}`",
        .saved.as_ref().map_or("no environment".to_string(), |e| format!("--env {e}"))
    )]
    OtherEnv { saved: Option<String>, now: String },
    #[error(
        "the state changed since this plan was made (was {was}, now {now}); make a new plan with `stackform plan -o`"
    )]
    StateChanged { was: String, now: String },
    #[error(
        "the stack file, its variables or the files it uploads changed since this plan was made; make a new plan with `stackform plan -o`"
    )]
    ConfigChanged,
    #[error(
        "the cloud changed since this plan was made, so it would not do what was shown; make a new plan with `stackform plan -o`"
    )]
    CloudChanged,
}

/// `stackform state ...`: what the state commands refuse.
#[derive(Debug, thiserror::Error)]
pub enum StateCommandError {
    /// There is no state file; `action` is what the command would have done ("show", "remove").
    #[error("no state yet: nothing to {action}")]
    NoState { action: &'static str },
    /// `state restore VERSION` named a version that is not a state it can bring back.
    #[error("cannot restore version `{version}`: {detail}")]
    BadVersion { version: String, detail: String },
    /// `state migrate` refused or failed; nothing was overwritten.
    #[error("cannot migrate the state: {0}")]
    Migrate(String),
    #[error("`{address}` is not a resource of the stack file{hint}")]
    UnknownResource { address: String, hint: Hint },
    #[error("cannot import a `{type_name}`")]
    CannotImport { type_name: String },
    #[error("cannot read {id}: {source}")]
    Read {
        id: String,
        source: Box<ProviderError>,
    },
    #[error("nothing exists at {id}; nothing was imported")]
    NothingAt { id: String },
    /// The object carries another stack's ownership stamp (`apply::ownership`).
    #[error(
        "{id} belongs to {owner}; importing it would let two stacks manage one object, so nothing was imported (`stackform state import --take-over` adopts it all the same)"
    )]
    OwnedElsewhere { id: String, owner: String },
    #[error(
        "cannot move `{source_address}` to `{destination}`: it is a {from_type} in state, but the stack file declares `{destination}` as a {to_type}"
    )]
    MoveChangesType {
        source_address: String,
        destination: String,
        from_type: String,
        to_type: String,
    },
    /// The id to import cannot be the resource's: another type, or another object than the
    /// stack file's inputs name.
    #[error("cannot import {id} as `{address}`: the id {reason}; nothing was imported")]
    NotThisResource {
        address: String,
        id: String,
        reason: String,
    },
    #[error(
        "the lock is held by {0}; pass --force to break it (only when that run is really gone)"
    )]
    LockHeld(Box<LockInfo>),
    #[error("the stack is not locked")]
    NotLocked,
}

/// "; did you mean `x`?" after an unknown name, or nothing when no candidate is close.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Hint(Option<String>);

impl Hint {
    /// The closest of `candidates` to `name`, if any is close enough.
    pub(crate) fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Self {
        Hint(crate::diag::did_you_mean(name, candidates))
    }
}

impl fmt::Display for Hint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(h) => write!(f, "; {h}"),
            None => Ok(()),
        }
    }
}

fn default_file_hint(path: &std::path::Path) -> &'static str {
    if path.as_os_str() == "stack.yaml" {
        " (no stack.yaml in the current folder; name one with -f FILE)"
    } else {
        ""
    }
}

fn lines<T: fmt::Display>(items: &[T]) -> String {
    let lines: Vec<String> = items.iter().map(ToString::to_string).collect();
    lines.join("\n  ")
}

fn unsettled_lines(items: &[(String, JournalAction, SettleError)]) -> String {
    let lines: Vec<String> = items
        .iter()
        .map(|(a, _, why)| format!("{a}: {why}"))
        .collect();
    lines.join("\n  ")
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;

    fn io_error() -> io::Error {
        io::Error::new(io::ErrorKind::PermissionDenied, "permission denied")
    }

    fn json_error() -> serde_json::Error {
        serde_json::from_str::<serde_json::Value>("{").expect_err("not JSON")
    }

    fn url_error() -> url::ParseError {
        url::Url::parse("not a url").expect_err("not a URL")
    }

    fn provider_error() -> Box<ProviderError> {
        Box::new(ProviderError::invalid("no such thing"))
    }

    fn lock_info() -> LockInfo {
        LockInfo {
            id: uuid::Uuid::nil(),
            holder: "me@host".into(),
            user: "me".into(),
            host: "host".into(),
            pid: 1,
            command: "apply".into(),
            since: "2026-01-01T00:00:00Z".into(),
        }
    }

    /// One error of every variant (and of every command error enum's variant).
    fn one_of_each() -> Vec<CliError> {
        let path = || PathBuf::from("p.json");
        vec![
            CliError::Diagnostics {
                count: 2,
                rendered: String::new(),
            },
            CliError::Interrupted,
            CliError::StackFileMissing { path: path() },
            CliError::Specs(SpecError::Invalid {
                file: "blob".into(),
                message: "bad".into(),
            }),
            CliError::State(StateError::Read {
                path: path(),
                source: io_error(),
            }),
            CliError::Lock(LockError::Io {
                path: path(),
                source: io_error(),
            }),
            CliError::Journal(JournalError::Io {
                path: path(),
                source: io_error(),
            }),
            CliError::Surgery(SurgeryError::AlreadyExists {
                address: "a".into(),
            }),
            CliError::Recovery(RecoveryError(crate::apply::PersistError::Intent(
                JournalError::Io {
                    path: path(),
                    source: io_error(),
                },
            ))),
            CliError::RecoveryIncomplete(vec![(
                "a".into(),
                JournalAction::Create,
                SettleError::NoCloudId,
            )]),
            CliError::Refresh(RefreshError {
                failures: Vec::new(),
                read: 0,
            }),
            CliError::StackFiles(vec![ContentError {
                address: "a".into(),
                field: "source".into(),
                path: path(),
                source: io_error(),
            }]),
            CliError::Plan(vec![PlanError::NotInGraph {
                address: "a".into(),
            }]),
            CliError::Apply(ApplyError::UnknownType {
                address: "a".into(),
                type_name: "t".into(),
            }),
            CliError::Cloud(CloudError::NoDataDir),
            CloudSetupError::Missing {
                kind: "azure",
                field: "subscription",
                env: "AZURE_SUBSCRIPTION_ID",
            }
            .into(),
            CloudSetupError::CustomWithoutArmEndpoint.into(),
            CloudSetupError::BadArmEndpoint {
                url: "x".into(),
                source: url_error(),
            }
            .into(),
            CloudSetupError::BadAuthorityHost(url_error()).into(),
            CloudSetupError::Endpoints(provider_error()).into(),
            CloudSetupError::DataDir(CloudError::NoDataDir).into(),
            CloudSetupError::LocalStart(CloudError::NoDataDir).into(),
            CloudSetupError::LocalEndpoint(url_error()).into(),
            CloudSetupError::Connect(provider_error()).into(),
            PlanFileError::Write {
                path: path(),
                source: io_error(),
            }
            .into(),
            PlanFileError::Read {
                path: path(),
                source: io_error(),
            }
            .into(),
            PlanFileError::NotASavedPlan {
                path: path(),
                source: json_error(),
            }
            .into(),
            PlanFileError::OtherFormat {
                path: path(),
                found_format: "x".into(),
                found_version: 9,
                format: "f",
                version: 1,
            }
            .into(),
            PlanFileError::BadMode(None).into(),
            PlanFileError::BadPlan {
                path: path(),
                message: "m".into(),
            }
            .into(),
            PlanFileError::BadDigests("d".into()).into(),
            PlanFileError::SensitiveChanged("key".into()).into(),
            PlanFileError::SensitiveVariable("key".into()).into(),
            PlanFileError::OtherStack.into(),
            PlanFileError::OtherEnv {
                saved: Some("alice".into()),
                now: "bob".into(),
            }
            .into(),
            PlanFileError::StateChanged {
                was: "serial 1".into(),
                now: "serial 2".into(),
            }
            .into(),
            PlanFileError::ConfigChanged.into(),
            PlanFileError::CloudChanged.into(),
            InvokeError::NotJson {
                path: path(),
                source: json_error(),
            }
            .into(),
            InvokeError::NotInState {
                address: "a".into(),
                hint: Hint::default(),
            }
            .into(),
            InvokeError::NotRecorded {
                what: "endpoint's name",
            }
            .into(),
            InvokeError::NotAnEndpoint {
                address: "a".into(),
                type_name: "blob".into(),
            }
            .into(),
            InvokeError::NoDeployment.into(),
            InvokeError::SeveralDeployments {
                names: vec!["a".into(), "b".into()],
            }
            .into(),
            InvokeError::EndpointWithoutDeployment {
                endpoint: "e".into(),
            }
            .into(),
            InvokeError::EndpointWithSeveralDeployments {
                endpoint: "e".into(),
                names: vec!["a".into(), "b".into()],
            }
            .into(),
            InvokeError::Call {
                endpoint: "e".into(),
                source: provider_error(),
            }
            .into(),
            InvokeError::Logs {
                deployment: "d".into(),
                source: provider_error(),
            }
            .into(),
            StateCommandError::NoState { action: "show" }.into(),
            StateCommandError::UnknownResource {
                address: "a".into(),
                hint: Hint::default(),
            }
            .into(),
            StateCommandError::CannotImport {
                type_name: "t".into(),
            }
            .into(),
            StateCommandError::Read {
                id: "/x".into(),
                source: provider_error(),
            }
            .into(),
            StateCommandError::NothingAt { id: "/x".into() }.into(),
            StateCommandError::OwnedElsewhere {
                id: "/x".into(),
                owner: "stack `b` (lineage 1)".into(),
            }
            .into(),
            StateCommandError::MoveChangesType {
                source_address: "a".into(),
                destination: "b".into(),
                from_type: "blob".into(),
                to_type: "blob_container".into(),
            }
            .into(),
            StateCommandError::NotThisResource {
                address: "a".into(),
                id: "/x".into(),
                reason: "is not an ARM id".into(),
            }
            .into(),
            CliError::Addresses(vec![crate::plan::moves::AddressError::ImportTracked {
                location: "stack.yaml:3:5".into(),
                address: "a".into(),
                id: "/x".into(),
                other: "b".into(),
            }]),
            CliError::Surgery(SurgeryError::IdTracked {
                address: "a".into(),
                id: "/x".into(),
                other: "b".into(),
            }),
            StateCommandError::LockHeld(Box::new(lock_info())).into(),
            StateCommandError::NotLocked.into(),
            CliError::Io {
                action: "read",
                path: path(),
                source: io_error(),
            },
            CliError::Json(json_error()),
            CliError::Runtime(io_error()),
            CliError::CurrentExe(io_error()),
            CliError::ReadAnswer(io_error()),
            CliError::NotATerminal {
                verb: "apply".into(),
            },
            CliError::UnknownTarget {
                target: "a".into(),
                hint: Hint::default(),
            },
            CliError::UnknownOutput {
                name: "a".into(),
                hint: Hint::default(),
            },
            CliError::NotApplied {
                stack: "s".into(),
                state_file: None,
            },
            CliError::CloudNotRunning { data_dir: path() },
            CliError::StateLink {
                link: path(),
                target: path(),
                source: io_error(),
            },
            CliError::DamagedIds(vec![crate::plan::DamagedId {
                address: "a".into(),
                id: "i".into(),
                reason: "r".into(),
            }]),
            FaultsError::RateOutOfRange("error_rate").into(),
            CliError::ForeignState {
                state_file: "state/s.json".into(),
                recorded: "subscription a".into(),
                current: "subscription b".into(),
            },
            CliError::ExistsOutsideState { count: 2 },
        ]
    }

    /// The contract documented in [`exit`]: Ctrl-C is 130, every error is 1.
    fn documented_code(e: &CliError) -> u8 {
        if matches!(e, CliError::Interrupted) {
            130
        } else {
            1
        }
    }

    #[test]
    fn every_error_exits_with_its_documented_code() {
        let errors = one_of_each();
        let kinds: std::collections::HashSet<_> =
            errors.iter().map(std::mem::discriminant).collect();
        assert_eq!(kinds.len(), 35, "one example of every CliError variant");
        for e in &errors {
            assert_eq!(e.exit_code(), documented_code(e), "{e:?}");
        }
        assert_eq!(
            (exit::SUCCESS, exit::ERROR, exit::CHANGES, exit::INTERRUPTED),
            (0, 1, 2, 130)
        );
    }

    #[test]
    fn every_error_renders_one_line_or_its_diagnostics() {
        for e in one_of_each() {
            let text = e.render();
            assert!(text.ends_with('\n'), "{text:?}");
            let expected_prefix = match e {
                CliError::Diagnostics { .. } => "error: 2 problem(s) found",
                CliError::Interrupted => "interrupted: ",
                _ => "error: ",
            };
            assert!(text.starts_with(expected_prefix), "{text:?}");
        }
    }

    /// The texts below are the messages the CLI printed before its errors were typed; they must not
    /// drift.
    #[test]
    fn messages_are_the_ones_users_know() {
        let cases: Vec<(CliError, &str)> = vec![
            (
                CliError::StackFileMissing {
                    path: PathBuf::from("stack.yaml"),
                },
                "error: stack file stack.yaml not found (no stack.yaml in the current folder; name one with -f FILE)\n",
            ),
            (
                CliError::StackFileMissing {
                    path: PathBuf::from("other.yaml"),
                },
                "error: stack file other.yaml not found\n",
            ),
            (
                CliError::Interrupted,
                "interrupted: stopped before anything was changed\n",
            ),
            (
                CliError::Diagnostics {
                    count: 2,
                    rendered: "x.yaml:1:1: bad\n".into(),
                },
                "x.yaml:1:1: bad\nerror: 2 problem(s) found; nothing was changed\n",
            ),
            (
                CliError::UnknownTarget {
                    target: "blu".into(),
                    hint: Hint::closest("blu", ["blue", "store"]),
                },
                "error: --target `blu` is not a resource of this stack or its state; did you mean `blue`?\n",
            ),
            (
                CliError::UnknownOutput {
                    name: "zzz".into(),
                    hint: Hint::closest("zzz", ["scoring_uri"]),
                },
                "error: no output named `zzz` in state\n",
            ),
            (
                CliError::NotApplied {
                    stack: "demo".into(),
                    state_file: Some("state/demo.json".into()),
                },
                "error: no state for stack `demo` at state/demo.json: run `stackform apply` first\n",
            ),
            (
                CliError::NotApplied {
                    stack: "demo".into(),
                    state_file: None,
                },
                "error: no state for stack `demo`: run `stackform apply` first\n",
            ),
            (
                CliError::Plan(vec![
                    PlanError::NotInGraph {
                        address: "a".into(),
                    },
                    PlanError::NotInGraph {
                        address: "b".into(),
                    },
                ]),
                "error: cannot plan:\n  resource `a` is in the stack but not in its graph\n  resource `b` is in the stack but not in its graph\n",
            ),
            (
                CliError::RecoveryIncomplete(vec![(
                    "store".into(),
                    JournalAction::Create,
                    SettleError::UnknownType {
                        type_name: "t".into(),
                    },
                )]),
                "error: could not resolve the interrupted run's steps; nothing else was done:\n  store: resource type `t` is not one stackform manages\n",
            ),
            (
                CliError::Io {
                    action: "create the state folder",
                    path: PathBuf::from("state"),
                    source: io_error(),
                },
                "error: cannot create the state folder state: permission denied\n",
            ),
            // `state unlock` without `--force` named the holder as a Rust debug dump
            // (`LockInfo { id: …, holder: … }`) instead of the sentence the other lock errors use.
            (
                StateCommandError::LockHeld(Box::new(lock_info())).into(),
                "error: the lock is held by me@host (pid 1 on host host, running `apply`, since 2026-01-01T00:00:00Z); pass --force to break it (only when that run is really gone)\n",
            ),
            (
                FaultsError::RateOutOfRange("error_rate").into(),
                "error: error_rate must be between 0 and 1\n",
            ),
            (
                FaultsError::NotANumber("STACKFORM_CLOUD_FAULT_LRO_MS".into()).into(),
                "error: STACKFORM_CLOUD_FAULT_LRO_MS must be a number\n",
            ),
            (
                CliError::NotATerminal {
                    verb: "destroy".into(),
                },
                "error: refusing to ask for confirmation: standard input is not a terminal; pass --auto-approve to destroy without asking\n",
            ),
            (
                CloudSetupError::Missing {
                    kind: "azure",
                    field: "workspace",
                    env: "AZUREML_WORKSPACE",
                }
                .into(),
                "error: the azure cloud needs `cloud.workspace` in the stack file or AZUREML_WORKSPACE in the environment\n",
            ),
            (
                PlanFileError::OtherFormat {
                    path: PathBuf::from("p.json"),
                    found_format: "x".into(),
                    found_version: 9,
                    format: "stackform-saved-plan",
                    version: 1,
                }
                .into(),
                "error: p.json is a saved plan of another format (x v9); this stackform reads stackform-saved-plan v1\n",
            ),
            (
                PlanFileError::BadMode(Some("weird".into())).into(),
                "error: the saved plan has an unusable mode Some(\"weird\")\n",
            ),
            (
                InvokeError::SeveralDeployments {
                    names: vec!["blue".into(), "green".into()],
                }
                .into(),
                "error: the stack has several deployments; name one: blue, green\n",
            ),
            (
                InvokeError::EndpointWithSeveralDeployments {
                    endpoint: "ep".into(),
                    names: vec!["blue".into(), "green".into()],
                }
                .into(),
                "error: endpoint `ep` has several deployments; name one of: blue, green\n",
            ),
            (
                InvokeError::NotRecorded {
                    what: "deployment's endpoint",
                }
                .into(),
                "error: the deployment's endpoint is not recorded\n",
            ),
            (
                StateCommandError::NoState { action: "remove" }.into(),
                "error: no state yet: nothing to remove\n",
            ),
            (
                StateCommandError::NotLocked.into(),
                "error: the stack is not locked\n",
            ),
        ];
        for (error, expected) in cases {
            assert_eq!(error.render(), expected);
        }
    }
}
