//! Recovery of a run that died between sending a step and recording it.
//!
//! The journal lists every step that was sent (or about to be) without a `done`. Names are
//! deterministic, so each can be settled by reading the cloud: an object that exists is recorded in
//! state (`Ready` when what the cloud has matches what the step asked for, `Tainted` otherwise, so
//! the next plan replaces it); an object that is gone is dropped from state. Only then is the
//! intent marked done. An intent that cannot be settled (the read fails) stays in the journal and
//! is reported, and the caller must not apply until it is — nothing in the cloud is ever left
//! untracked by state.
//!
//! It never sends a create, update or delete: recovery only reads the cloud and records what it
//! finds.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::ownership::{foreign, owner_of};
use super::persist::{PersistError, Persistence};
use super::steps::{ApplyPlan, deposed_key};
use super::values::{KnownValues, as_map};
use crate::provider::{Observed, Provider, ProviderError, ResourceRequest, ResourceType};
use crate::state::{Intent, JournalAction, ResourceState, ResourceStatus, StateFile, StepId};

/// What the current configuration expects of a resource, to judge a half-finished step.
#[derive(Debug, Clone, PartialEq)]
pub struct Expected {
    /// Desired inputs, resolved from the values recorded in state.
    pub inputs: Map<String, Value>,
    pub dependencies: Vec<String>,
}

/// How one unfinished step was settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecoveryOutcome {
    /// The object exists and is now recorded with this status.
    Recorded(ResourceStatus),
    /// The object does not exist and nothing was recorded for it.
    Dropped,
    /// The object is gone and its record was removed.
    Removed,
}

/// The result of [`recover`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecoveryReport {
    /// Settled steps: `(address, action, outcome)`, in journal order.
    pub resolved: Vec<(String, JournalAction, RecoveryOutcome)>,
    /// Steps that could not be settled, with why; they stay in the journal.
    pub unresolved: Vec<(String, JournalAction, SettleError)>,
}

impl RecoveryReport {
    pub(crate) fn is_complete(&self) -> bool {
        self.unresolved.is_empty()
    }
}

/// Recovery could not record what it found.
#[derive(Debug, thiserror::Error)]
#[error("could not record the recovered steps: {0}")]
pub struct RecoveryError(#[source] pub PersistError);

/// Why one unfinished step could not be settled (it stays in the journal).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettleError {
    #[error("resource type `{type_name}` is not one stackform manages")]
    UnknownType { type_name: String },
    #[error(
        "the journal has no cloud id for it and the configuration no longer describes it; check the cloud and import it with `stackform state import` if it exists"
    )]
    NoCloudId,
    #[error("could not read it from the cloud: {0}")]
    Read(#[source] ProviderError),
}

/// Settles every unfinished intent in `persistence`'s journal (see the module doc) and writes the
/// result to state. `expected` holds, per address, what the configuration wants (see
/// [`expected_from_plan`]); without it an existing object is recorded `Tainted` unless it matches
/// its previous record. Call it, holding the stack's lock, before refreshing and planning; apply
/// only when [`RecoveryReport::is_complete`].
///
/// # Errors
///
/// [`RecoveryError`] when the settled steps could not be written to state (the journal keeps them).
pub async fn recover(
    provider: &dyn Provider,
    state: &mut StateFile,
    persistence: &mut Persistence,
    expected: &HashMap<String, Expected>,
) -> Result<RecoveryReport, RecoveryError> {
    let Some(journal) = persistence.journal() else {
        return Ok(RecoveryReport::default());
    };
    let unfinished: Vec<Intent> = journal.unfinished();
    let mut report = RecoveryReport::default();
    let mut done: Vec<StepId> = Vec::new();
    for intent in unfinished {
        match settle(provider, state, expected, &intent).await {
            Ok(outcome) => {
                done.push(intent.step);
                report
                    .resolved
                    .push((intent.address.clone(), intent.action, outcome));
            }
            Err(why) => report
                .unresolved
                .push((intent.address.clone(), intent.action, why)),
        }
    }
    if done.is_empty() {
        return Ok(report);
    }
    // Recovery runs before planning, and a run may end right after it (nothing to apply): its
    // result goes straight into the state file.
    persistence
        .checkpoint(state, done)
        .await
        .map_err(RecoveryError)?;
    Ok(report)
}

/// What the plan's creates and updates expect, resolved against the values in `state` (steps
/// whose references are not known yet are left out).
pub(crate) fn expected_from_plan(plan: &ApplyPlan, state: &StateFile) -> HashMap<String, Expected> {
    let known = KnownValues::from_state(state);
    plan.steps
        .iter()
        .filter_map(|step| {
            let desired = step.desired.as_ref()?;
            let inputs = known.resolve(desired).ok()?;
            Some((
                step.address.clone(),
                Expected {
                    inputs,
                    dependencies: desired.dependencies.clone(),
                },
            ))
        })
        .collect()
}

fn matches(observed: &Map<String, Value>, expected: &Map<String, Value>) -> bool {
    expected.iter().all(|(k, v)| observed.get(k) == Some(v))
}

async fn settle(
    provider: &dyn Provider,
    state: &mut StateFile,
    expected: &HashMap<String, Expected>,
    intent: &Intent,
) -> Result<RecoveryOutcome, SettleError> {
    let Some(rt) = ResourceType::parse(&intent.resource_type) else {
        return Err(SettleError::UnknownType {
            type_name: intent.resource_type.clone(),
        });
    };
    let address = intent.address.as_str();
    let hint = expected.get(address);
    // The record this step was about: the one with the journaled id, else the address's own.
    let keys = [address.to_owned(), deposed_key(address)];
    let key_with_target = keys.iter().find(|k| {
        !intent.target.is_empty()
            && state
                .resources
                .get(k.as_str())
                .is_some_and(|r| r.id == intent.target)
    });
    let record_key = match intent.action {
        JournalAction::Create | JournalAction::Replace => key_with_target.cloned(),
        JournalAction::Update | JournalAction::Delete => key_with_target.cloned().or_else(|| {
            state
                .resources
                .contains_key(address)
                .then(|| address.to_owned())
        }),
    };
    let record = record_key.as_ref().and_then(|k| state.resources.get(k));
    let cloud_id = if intent.target.is_empty() {
        record.map(|r| r.id.clone())
    } else {
        Some(intent.target.clone())
    };
    let inputs = hint
        .map(|h| h.inputs.clone())
        .or_else(|| record.map(|r| as_map(&r.inputs)))
        .unwrap_or_default();
    if cloud_id.is_none() && hint.is_none() {
        return Err(SettleError::NoCloudId);
    }
    let mut req = ResourceRequest::new(rt, address.to_owned(), inputs);
    req.cloud_id = cloud_id;
    let read = provider
        .read(&req)
        .await
        .or_else(|e| if e.is_not_found() { Ok(None) } else { Err(e) })
        .map_err(SettleError::Read)?;
    // What a create finds with another stack's stamp is that stack's (its PUT came last): never
    // recorded here.
    let read = match (intent.action, read) {
        (JournalAction::Create | JournalAction::Replace, Some(found))
            if foreign(&owner_of(state), &found).is_some() =>
        {
            None
        }
        (_, read) => read,
    };

    match (intent.action, read) {
        (JournalAction::Delete | JournalAction::Update, None) => {
            if let Some(k) = record_key {
                state.resources.shift_remove(&k);
                Ok(RecoveryOutcome::Removed)
            } else {
                Ok(RecoveryOutcome::Dropped)
            }
        }
        (JournalAction::Create | JournalAction::Replace, None) => Ok(RecoveryOutcome::Dropped),
        (action, Some(observed)) => {
            let status = record_observed(state, intent, action, record_key, hint, observed);
            Ok(RecoveryOutcome::Recorded(status))
        }
    }
}

fn record_observed(
    state: &mut StateFile,
    intent: &Intent,
    action: JournalAction,
    record_key: Option<String>,
    hint: Option<&Expected>,
    observed: Observed,
) -> ResourceStatus {
    let address = intent.address.as_str();
    let existing = record_key
        .as_ref()
        .and_then(|k| state.resources.get(k))
        .cloned();
    if action == JournalAction::Delete {
        // The delete did not happen (or not yet): keep the record, trusting it only if the cloud
        // still matches it.
        let key = record_key.unwrap_or_else(|| address.to_owned());
        let mut record = existing.unwrap_or_else(|| {
            ResourceState::new(
                intent.resource_type.clone(),
                observed.id.clone(),
                Value::Object(observed.inputs.clone()),
                Value::Object(Map::new()),
            )
        });
        if !matches(&observed.inputs, &as_map(&record.inputs)) {
            record.status = ResourceStatus::Tainted;
        }
        record.id = observed.id;
        record.outputs = Value::Object(observed.outputs);
        let status = record.status;
        state.record(key, record);
        return status;
    }
    // What the step asked for: the configuration's inputs, else (an update of a resource the
    // configuration no longer describes) the inputs recorded before it.
    let asked = hint
        .map(|h| h.inputs.clone())
        .or_else(|| existing.as_ref().map(|r| as_map(&r.inputs)));
    let (status, inputs) = match asked {
        Some(asked) if matches(&observed.inputs, &asked) => (ResourceStatus::Ready, asked),
        _ => (ResourceStatus::Tainted, observed.inputs.clone()),
    };
    let mut record = ResourceState::new(
        intent.resource_type.clone(),
        observed.id.clone(),
        Value::Object(inputs),
        Value::Object(observed.outputs),
    );
    record.status = status;
    record.dependencies = hint
        .map(|h| h.dependencies.clone())
        .or_else(|| existing.as_ref().map(|r| r.dependencies.clone()))
        .unwrap_or_default();
    if let Some(old) = &existing {
        record.content_hash.clone_from(&old.content_hash);
        record.sensitive.clone_from(&old.sensitive);
    }
    // A create whose address still holds another object (the old half of a create-before-delete
    // replacement) keeps that one as deposed.
    if matches!(action, JournalAction::Create | JournalAction::Replace)
        && let Some(other) = state.resources.get(address)
        && other.id != observed.id
        && let Some(old) = state.resources.shift_remove(address)
    {
        state.record(deposed_key(address), old);
    }
    let key = match (action, record_key) {
        (JournalAction::Update, Some(k)) => k,
        _ => address.to_owned(),
    };
    state.record(key, record);
    status
}
