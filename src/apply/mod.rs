//! Executing a plan against the cloud: the scheduler, crash safety, rollback, destroy (a plan mode,
//! not a second engine), propagation waits, recovery of an interrupted run, and refresh.
//!
//! # How a run goes
//!
//! The planned changes become cloud operations in an operation graph (see `opgraph` for the edge
//! rules), each owner's map of `aggregate` entries (an endpoint's traffic) an operation of its own. A node starts the moment all its predecessors have finished — in-degree counters and a
//! ready queue fed by completion events, never waves — with at most `parallelism` steps in flight;
//! among ready steps the one with the longest chain behind it goes first. A step's expressions are
//! resolved when it starts, from the values recorded so far, so ids, `principal_id` or
//! `scoring_uri` computed by the cloud a moment ago flow into the steps that use them.
//!
//! Each step is journaled (fsync'd intent) before it is sent; its result is recorded by a journal
//! commit that also marks it done (see `persist`: the state file itself is a checkpoint, written
//! with compare-and-write on the serial at the run's first write, every few seconds and at the
//! end). A step's successors start only once the commit recording it is durable; the slots a
//! batch of finished steps frees are given to other ready steps while that commit is synced. A
//! killed process therefore loses nothing: [`recover`] resolves unfinished intents by reading the cloud. A failed step stops new
//! steps, lets in-flight ones finish, and rolls back what the run completed, in reverse order
//! (unless `no_rollback`). An [`Interrupt`] stops scheduling at the first signal and abandons
//! in-flight steps at the second.
//!
//! # Destroy order
//!
//! Deletes run in reverse dependency order, from the dependencies recorded in state (so a resource
//! removed from the stack file is still deleted in order). For the reference stack — an arrow means
//! "is deleted before":
//!
//! ```text
//!   blue (deployment)
//!    ├──► reader (role assignment) ──┬──► endpoint
//!    │                               └──► store
//!    ├──► endpoint
//!    ├──► greeting (blob) ──► data (container) ──► store (storage account)
//!    ├──► data
//!    └──► store
//! ```
//!
//! The endpoint's traffic map is emptied first (a map step of its own, planned by `plan::maps`:
//! Azure refuses to delete a deployment that has traffic), then the deployment goes. Then the role
//! assignment (before the identity and the scope it names) and the blob; then the endpoint and the
//! container; the storage account last. Independent deletes run in parallel. A 404 on delete means "already gone" and
//! counts as success.
//!
//! # Entry points
//!
//! * [`recover`] — settle the journal of a run that died, before planning;
//! * [`refresh`] — read every recorded resource into the planner's snapshot;
//! * [`ApplyPlan::from_plan`] then [`apply`] — execute a plan (`PlanMode::Destroy` plans make
//!   destroy; [`ApplyPlan::destroy`] builds one from state alone);
//! * [`Interrupt`] — the token the CLI's Ctrl-C handler signals;
//! * [`ApplyEvent`] / [`EventSink`] — what the reporter receives.
//!
//! # What this module must never do
//!
//! Print (it emits [`ApplyEvent`]s to an [`EventSink`]); leave an object it created or touched
//! untracked by state; let step tasks share mutable state (only the scheduler records results);
//! put inputs or secrets in the journal or in events.

mod engine;
mod event;
mod interrupt;
pub mod memory;
mod opgraph;
mod ownership;
mod persist;
mod propagation;
mod recover;
mod refresh;
mod rollback;
mod step;
mod steps;
mod values;

#[cfg(test)]
mod plan_tests;
#[cfg(test)]
mod tests;

pub use engine::{ApplyError, ApplyOptions, ApplyReport, apply};
pub use event::{
    ApplyEvent, Compensation, EventLog, EventSink, FailureRecord, NoEvents, NotRestored, Outcome,
    RefreshStatus, RollbackRecord, StepFailure, StepKind, StepRecord, StepResult, Summary,
};
pub use interrupt::Interrupt;
pub use opgraph::PlanShapeError;
pub use persist::{PersistError, Persistence};
pub use propagation::PropagationPolicy;
pub(crate) use recover::expected_from_plan;
pub use recover::{Expected, RecoveryError, RecoveryOutcome, RecoveryReport, SettleError, recover};
pub(crate) use refresh::refresh_live;
pub use refresh::{RefreshError, refresh};
pub use steps::{ApplyPlan, Desired, PlannedMap, PlannedStep, Refreshed};
