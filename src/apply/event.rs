//! The typed events the apply engine, rollback and refresh emit, and the sink they go to.
//!
//! The engine never prints: the CLI's reporter receives these values (through an [`EventSink`]) and
//! renders them as progress bars, timestamped lines or JSON lines. Events carry no secrets: inputs
//! and outputs never appear here, only addresses, actions, statuses, durations and error texts (which
//! the provider builds without tokens or keys).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use crate::provider::ProviderError;

/// What one step does to one resource. A planned *replace* runs as two steps (`Create` of the new
/// object and `Delete` of the old one) with `replace: true` on both events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    Create,
    Update,
    Delete,
}

impl StepKind {
    /// The Terraform-like symbol of the step (`+`, `~`, `-`).
    pub(crate) fn symbol(self) -> &'static str {
        match self {
            StepKind::Create => "+",
            StepKind::Update => "~",
            StepKind::Delete => "-",
        }
    }
}

impl std::fmt::Display for StepKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            StepKind::Create => "create",
            StepKind::Update => "update",
            StepKind::Delete => "delete",
        })
    }
}

/// A failure as the user needs to see it: the whole message plus the cloud's error code and request
/// id as separate fields (for JSON output and support tickets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepFailure {
    /// The whole error text (the provider names the operation, status, code and request id).
    pub message: String,
    /// The cloud's error code (`DeploymentFailed`, `AuthorizationPermissionMismatch`, ...).
    pub code: Option<String>,
    /// The HTTP status of the failing response, when there was one.
    pub status: Option<u16>,
    /// `x-ms-request-id` of the failing response.
    pub request_id: Option<String>,
}

impl StepFailure {
    /// A failure that did not come from the cloud (journal, unresolved reference, ...).
    pub fn local(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: None,
            status: None,
            request_id: None,
        }
    }
}

impl From<&ProviderError> for StepFailure {
    fn from(err: &ProviderError) -> Self {
        Self {
            message: err.to_string(),
            code: err.code.clone(),
            status: err.status,
            request_id: err.request_id.clone(),
        }
    }
}

impl std::fmt::Display for StepFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum StepResult {
    Succeeded,
    Failed { error: StepFailure },
}

impl StepResult {
    pub fn is_success(&self) -> bool {
        matches!(self, StepResult::Succeeded)
    }
}

/// How a whole apply (or destroy) ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every step succeeded.
    Succeeded,
    /// A step failed and the run's completed steps were compensated (see the report for anything
    /// that could not be restored).
    RolledBack,
    /// A step failed with `no_rollback`, or state could not be written: partial progress was kept.
    Failed,
    /// Stopped by a first interrupt: in-flight steps finished and were recorded.
    Interrupted,
    /// Stopped by a second interrupt: in-flight steps were abandoned; the journal lists them for the
    /// next run to resolve.
    Aborted,
}

/// The compensation of one completed step during rollback.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Compensation {
    /// A resource created in this run (or left half-created by the failure) is deleted.
    DeleteCreated,
    /// An updated resource is brought back to its previous inputs.
    RestorePrevious,
    /// A resource deleted in this run is created again from its previous inputs.
    Recreate,
}

impl std::fmt::Display for Compensation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Compensation::DeleteCreated => "delete what this run created",
            Compensation::RestorePrevious => "restore the previous inputs",
            Compensation::Recreate => "re-create from the previous inputs",
        })
    }
}

/// Everything that happened to one step of the run, for the summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StepRecord {
    pub address: String,
    pub kind: StepKind,
    pub replace: bool,
    #[serde(serialize_with = "secs")]
    pub duration: Duration,
    pub result: StepResult,
}

/// One compensation of the rollback, for the summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RollbackRecord {
    pub address: String,
    pub compensation: Compensation,
    #[serde(serialize_with = "secs")]
    pub duration: Duration,
    pub result: StepResult,
}

/// Something the rollback could not put back, named exactly; state records the truth about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotRestored {
    pub address: String,
    /// Why, in words that read after "`<address>` was not restored: ".
    pub reason: String,
}

/// The end-of-run summary: what failed and why, what was rolled back, how long each step took.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub outcome: Outcome,
    /// Every step that finished, in finishing order.
    pub steps: Vec<StepRecord>,
    /// The first failure, which stopped the run.
    pub failure: Option<FailureRecord>,
    /// Compensations, in the order they ran.
    pub rollback: Vec<RollbackRecord>,
    /// What the rollback could not restore.
    pub not_restored: Vec<NotRestored>,
    /// Steps that were planned but never started (stopped by a failure or an interrupt).
    pub not_started: Vec<String>,
    /// Creates whose outcome is unknown (the connection was lost after the request was sent, and no
    /// read could tell whether the object exists): the journal keeps them and the next run settles
    /// them by reading the cloud before anything else.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unsettled: Vec<String>,
    /// Set when state or the journal could not be written; the run stopped and the next run must
    /// recover the journaled steps first.
    pub persistence_error: Option<String>,
    #[serde(serialize_with = "secs")]
    pub duration: Duration,
}

/// The failure that stopped a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FailureRecord {
    pub address: String,
    pub kind: StepKind,
    pub error: StepFailure,
}

/// What refresh found for one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefreshStatus {
    Present,
    Gone,
    Failed,
}

/// An event of apply, destroy, rollback or refresh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ApplyEvent {
    /// The run begins: how many steps, how many at once.
    ApplyStarted { steps: usize, parallelism: usize },
    /// A step was journaled and sent to the cloud.
    StepStarted {
        address: String,
        kind: StepKind,
        replace: bool,
    },
    /// A long-running operation reported a status (`Creating`, `Succeeded`, ...), or the engine
    /// reports a sub-step (`setting traffic to 0`).
    StepProgress { address: String, status: String },
    /// A step ended and its result is recorded in state. A step that failed before reaching the
    /// cloud (an input with no value, a journal that cannot be written) has no `StepStarted`.
    StepFinished {
        address: String,
        kind: StepKind,
        replace: bool,
        #[serde(serialize_with = "secs")]
        duration: Duration,
        result: StepResult,
    },
    /// A deployment failed because a role assignment made in this run has not taken effect yet; it
    /// is retried after `retry_in`.
    WaitingForPropagation {
        address: String,
        /// The role assignments the deployment waits for.
        waiting_for: Vec<String>,
        attempt: u32,
        #[serde(serialize_with = "secs")]
        waited: Duration,
        #[serde(serialize_with = "secs")]
        retry_in: Duration,
        reason: String,
    },
    /// An interrupt arrived. `level` 1: no new steps, in-flight ones finish; 2: abort now.
    Interrupted { level: u32, in_flight: usize },
    /// A step failed; these compensations will run, in this order.
    RollbackStarted {
        failed: String,
        steps: Vec<(String, Compensation)>,
    },
    /// One compensation starts.
    RollbackStepStarted {
        address: String,
        compensation: Compensation,
    },
    /// One compensation ended.
    RollbackStepFinished {
        address: String,
        compensation: Compensation,
        #[serde(serialize_with = "secs")]
        duration: Duration,
        result: StepResult,
    },
    /// The run is over.
    Summary(Summary),
    /// Refresh begins reading this many resources.
    RefreshStarted { resources: usize },
    /// Refresh read one resource.
    ResourceRefreshed {
        address: String,
        status: RefreshStatus,
        #[serde(serialize_with = "secs")]
        duration: Duration,
    },
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// Where events go. Called from the engine's tasks; must not block for long.
pub trait EventSink: Send + Sync {
    fn emit(&self, event: ApplyEvent);
}

/// Discards every event (benchmarks, callers that only want the returned report).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEvents;

impl EventSink for NoEvents {
    fn emit(&self, _event: ApplyEvent) {}
}

impl EventSink for tokio::sync::mpsc::UnboundedSender<ApplyEvent> {
    fn emit(&self, event: ApplyEvent) {
        // A reporter that went away cannot be told anything more; the run goes on.
        let _ = self.send(event);
    }
}

impl<F: Fn(ApplyEvent) + Send + Sync> EventSink for F {
    fn emit(&self, event: ApplyEvent) {
        self(event);
    }
}

/// Keeps every event in memory, in order (tests, and JSON reports written at the end).
#[derive(Debug, Clone, Default)]
pub struct EventLog {
    events: Arc<Mutex<Vec<ApplyEvent>>>,
}

impl EventLog {
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of the events so far.
    pub fn events(&self) -> Vec<ApplyEvent> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<ApplyEvent>> {
        self.events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl EventSink for EventLog {
    fn emit(&self, event: ApplyEvent) {
        self.lock().push(event);
    }
}
