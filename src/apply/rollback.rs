//! Rollback: after a failed step, the steps this run completed are compensated one at a time, in
//! reverse order of completion (which is a reverse dependency order):
//!
//! * created (or left half-created by the failure) → deleted;
//! * updated (or left unknown by a failed update) → brought back to what was live before the run:
//!   what the provider kept before overwriting it is put back (a blob's content, from the snapshot
//!   taken before the update), and otherwise the inputs the refresh read are sent again (over those
//!   state recorded, for fields the cloud does not report). Never the inputs recomputed from the
//!   stack's local files, which may have changed since (a blob's `source`);
//! * deleted → created again from the inputs the refresh read (over those state recorded), unless
//!   they hold a secret the state keeps only as a digest and the cloud did not report;
//! * a map set (an endpoint's traffic) → set back to the map it replaced. In reverse order that is
//!   after the members the run deleted are re-created and before the members it created are deleted.
//!
//! Each compensation is journaled and recorded like any step. One that fails is named in the
//! report, state records the truth (the object stays recorded, `Tainted` when its condition is
//! unknown), and nothing it still depends on is deleted afterwards.
//!
//! The scheduler (`engine`) hands it the [`Done`] history and a [`Context`]; this module never imports
//! the scheduler, and never touches a record the history does not name.

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use serde_json::{Map, Value};

use super::event::{
    ApplyEvent, Compensation, EventSink, NotRestored, RollbackRecord, StepFailure, StepResult,
};
use super::interrupt::Interrupt;
use super::persist::{PersistError, Persistence, write_intent};
use super::step::{delete_gone_ok, observed_of};
use super::steps::{PlannedMap, deposed_key};
use super::values::{Known, KnownValues, has_marker};
use crate::provider::{Preserved, Provider, ResourceRequest, ResourceType};
use crate::specs::Registry;
use crate::state::{JournalAction, NewIntent, ResourceState, ResourceStatus, StateFile, Touched};

/// A completed (or half-completed) step, remembered for the rollback.
#[derive(Debug, Clone)]
pub(crate) enum Done {
    /// A new object exists under `address` (a create, or what a failed create left behind).
    Created { address: String },
    /// The object at `address` was changed (or a failed update left it unknown); `prior` is the
    /// record before, `live` the inputs the refresh read before the run, `preserved` what the provider
    /// kept before overwriting it.
    Updated {
        address: String,
        prior: ResourceState,
        live: Option<Map<String, Value>>,
        preserved: Option<Preserved>,
    },
    /// The object recorded under `state_key` was deleted; `live` is the inputs the refresh read
    /// before the run.
    Deleted {
        address: String,
        state_key: String,
        prior: ResourceState,
        live: Option<Map<String, Value>>,
    },
    /// An owner's map was set (`address` is the map step's); `previous` is the map it replaced.
    MapSet {
        address: String,
        map: PlannedMap,
        owner_type: ResourceType,
        owner: String,
        /// (member address, key) of the members in the stack.
        keys: Vec<(String, String)>,
        previous: BTreeMap<String, u64>,
    },
}

/// What the rollback needs from the run: the cloud, the specs of its types, where events go, and the
/// Ctrl-C token. The scheduler builds it; the rollback never reaches back into the scheduler.
pub(crate) struct Context<'a> {
    pub provider: &'a dyn Provider,
    pub registry: &'a Registry,
    pub events: &'a dyn EventSink,
    pub interrupt: &'a Interrupt,
}

pub(crate) struct RollbackResult {
    pub records: Vec<RollbackRecord>,
    pub not_restored: Vec<NotRestored>,
    pub persistence_error: Option<String>,
    pub aborted: bool,
}

fn compensation_of(done: &Done) -> (String, Compensation) {
    match done {
        Done::Created { address } => (address.clone(), Compensation::DeleteCreated),
        Done::Updated { address, .. } => (address.clone(), Compensation::RestorePrevious),
        Done::Deleted { address, .. } => (address.clone(), Compensation::Recreate),
        Done::MapSet { address, .. } => (address.clone(), Compensation::RestorePrevious),
    }
}

pub(crate) async fn run(
    cx: &Context<'_>,
    state: &mut StateFile,
    known: &mut KnownValues,
    persist: &mut Persistence,
    failed: &str,
    history: Vec<Done>,
) -> RollbackResult {
    let plan: Vec<Done> = history.into_iter().rev().collect();
    cx.events.emit(ApplyEvent::RollbackStarted {
        failed: failed.to_owned(),
        steps: plan.iter().map(compensation_of).collect(),
    });
    let mut out = RollbackResult {
        records: Vec::new(),
        not_restored: Vec::new(),
        persistence_error: None,
        aborted: false,
    };
    // Addresses left in place; what they depend on must stay too.
    let mut kept: HashSet<String> = HashSet::new();
    for done in plan {
        if cx.interrupt.level() >= 2 {
            out.aborted = true;
            break;
        }
        let (address, compensation) = compensation_of(&done);
        if compensation == Compensation::DeleteCreated
            && let Some(user) = kept.iter().find(|k| {
                state
                    .resources
                    .get(k.as_str())
                    .is_some_and(|r| r.dependencies.contains(&address))
            })
        {
            out.not_restored.push(NotRestored {
                address: address.clone(),
                reason: format!(
                    "kept, because `{user}`, which depends on it, could not be rolled back"
                ),
            });
            kept.insert(address);
            continue;
        }
        cx.events.emit(ApplyEvent::RollbackStepStarted {
            address: address.clone(),
            compensation,
        });
        let started = Instant::now();
        let result = compensate(cx, state, known, persist, &done).await;
        let duration = started.elapsed();
        let step_result = match result {
            Ok(note) => {
                if let Some(reason) = note {
                    out.not_restored.push(NotRestored {
                        address: address.clone(),
                        reason,
                    });
                }
                StepResult::Succeeded
            }
            Err(Failure::Cloud(error)) => {
                kept.insert(address.clone());
                out.not_restored.push(NotRestored {
                    address: address.clone(),
                    reason: format!("could not {compensation}: {error}"),
                });
                StepResult::Failed { error }
            }
            Err(Failure::Refused(reason)) => {
                kept.insert(address.clone());
                out.not_restored.push(NotRestored {
                    address: address.clone(),
                    reason: reason.clone(),
                });
                StepResult::Failed {
                    error: StepFailure::local(reason),
                }
            }
            Err(Failure::Persistence(e)) => {
                let e = e.to_string();
                out.persistence_error = Some(e.clone());
                out.records.push(RollbackRecord {
                    address: address.clone(),
                    compensation,
                    duration,
                    result: StepResult::Failed {
                        error: StepFailure::local(e.clone()),
                    },
                });
                cx.events.emit(ApplyEvent::RollbackStepFinished {
                    address,
                    compensation,
                    duration,
                    result: StepResult::Failed {
                        error: StepFailure::local(e),
                    },
                });
                break;
            }
        };
        out.records.push(RollbackRecord {
            address: address.clone(),
            compensation,
            duration,
            result: step_result.clone(),
        });
        cx.events.emit(ApplyEvent::RollbackStepFinished {
            address,
            compensation,
            duration,
            result: step_result,
        });
    }
    out
}

enum Failure {
    Cloud(StepFailure),
    Refused(String),
    Persistence(PersistError),
}

/// Runs one compensation and records its result. `Ok(Some(note))` means done, with something the
/// user must know (new computed values after a re-create).
async fn compensate(
    cx: &Context<'_>,
    state: &mut StateFile,
    known: &mut KnownValues,
    persist: &mut Persistence,
    done: &Done,
) -> Result<Option<String>, Failure> {
    let provider = cx.provider;
    // Every record a compensation may change, as it is before: what the journal commit records.
    let mut touched = Touched::default();
    let keys: Vec<String> = match done {
        Done::Created { address } | Done::Updated { address, .. } => {
            vec![address.clone(), deposed_key(address)]
        }
        Done::Deleted {
            address, state_key, ..
        } => vec![address.clone(), state_key.clone(), deposed_key(address)],
        // A map's entries live in its members' records.
        Done::MapSet { keys, .. } => keys.iter().map(|(member, _)| member.clone()).collect(),
    };
    for key in &keys {
        touched.watch(state, key);
    }
    let touched = &touched;
    match done {
        Done::MapSet {
            map,
            owner_type,
            owner,
            keys,
            previous,
            ..
        } => {
            // Runs after the members this run deleted are back and before those it created go
            // (reverse order), so the previous map names only objects that exist.
            let req = map.request(*owner_type, owner, previous.clone());
            match provider.set_map(&req).await {
                Ok(_) => {
                    record_entries(map, state, known, keys, previous);
                    commit(persist, state, None, touched).await?;
                    Ok(None)
                }
                Err(err) => Err(Failure::Cloud(StepFailure::from(&err))),
            }
        }
        Done::Created { address } => {
            let Some(current) = state.resources.get(address).cloned() else {
                return Ok(None);
            };
            let rt = resource_type(address, &current)?;
            let step = intent(
                persist,
                address,
                &current,
                JournalAction::Delete,
                &current.id,
            )
            .await?;
            let req =
                ResourceRequest::new(rt, address.clone(), super::values::as_map(&current.inputs))
                    .with_cloud_id(current.id.clone());
            let result = delete_gone_ok(provider, &req).await;
            match result {
                Ok(()) => {
                    state.resources.shift_remove(address);
                    known.remove(address);
                    if let Some(old) = state.resources.shift_remove(&deposed_key(address)) {
                        known.set(address, Known::from(&old));
                        state.record(address.clone(), old);
                    }
                    commit(persist, state, step, touched).await?;
                    Ok(None)
                }
                Err(err) => {
                    commit(persist, state, step, touched).await?;
                    Err(Failure::Cloud(StepFailure::from(&err)))
                }
            }
        }
        Done::Updated {
            address,
            prior,
            live,
            preserved,
        } => {
            let Some(current) = state.resources.get(address).cloned() else {
                return Err(Failure::Refused(String::from(
                    "it is no longer recorded in state, so it cannot be restored",
                )));
            };
            let inputs = restore_inputs(cx.registry, prior, live.as_ref());
            if has_marker(&Value::Object(inputs.clone())) {
                return Err(Failure::Refused(String::from(
                    "its previous inputs include a secret that state keeps only as a digest; apply the previous configuration to restore it",
                )));
            }
            let rt = resource_type(address, prior)?;
            let step = intent(persist, address, prior, JournalAction::Update, &current.id).await?;
            let req =
                ResourceRequest::new(rt, address.clone(), inputs).with_cloud_id(current.id.clone());
            let restored = match preserved {
                Some(kept) => provider.restore(&req, kept).await,
                None => provider.update(&observed_of(&current), &req).await,
            };
            match restored {
                Ok(observed) => {
                    let mut record = prior.clone();
                    record.id = observed.id;
                    record.outputs = Value::Object(observed.outputs);
                    known.set(address, Known::from(&record));
                    state.record(address.clone(), record);
                    commit(persist, state, step, touched).await?;
                    Ok(None)
                }
                Err(err) => {
                    state.taint(address);
                    commit(persist, state, step, touched).await?;
                    Err(Failure::Cloud(StepFailure::from(&err)))
                }
            }
        }
        Done::Deleted {
            address,
            state_key,
            prior,
            live,
        } => {
            let inputs = restore_inputs(cx.registry, prior, live.as_ref());
            if has_marker(&Value::Object(inputs.clone())) {
                return Err(Failure::Refused(String::from(
                    "it was deleted and its inputs include a secret that state keeps only as a digest, so it cannot be re-created; apply the previous configuration to create it again",
                )));
            }
            let rt = resource_type(address, prior)?;
            let step = intent(persist, address, prior, JournalAction::Create, &prior.id).await?;
            let req = ResourceRequest::new(rt, address.clone(), inputs);
            // Where the re-created object is recorded: its old key if free, else beside the object
            // that now holds the address (a create-before-delete replacement, undone next).
            let key = if state.resources.contains_key(address) {
                if state_key == address {
                    deposed_key(address)
                } else {
                    state_key.clone()
                }
            } else {
                address.clone()
            };
            match provider.create(&req).await {
                Ok(observed) => {
                    let mut record = prior.clone();
                    record.status = ResourceStatus::Ready;
                    let note = (observed.id != prior.id
                        || Value::Object(observed.outputs.clone()) != prior.outputs)
                        .then(|| {
                            String::from(
                                "re-created, but the cloud gave it new computed values (id or outputs); resources that use them will show changes in the next plan",
                            )
                        });
                    record.id = observed.id;
                    record.outputs = Value::Object(observed.outputs);
                    if key == *address {
                        known.set(address, Known::from(&record));
                    }
                    state.record(key, record);
                    commit(persist, state, step, touched).await?;
                    Ok(note)
                }
                Err(err) => {
                    if let Ok(Some(left)) = provider.read(&req).await {
                        let mut record = prior.clone();
                        record.status = ResourceStatus::Tainted;
                        record.id = left.id;
                        record.outputs = Value::Object(left.outputs);
                        state.record(key, record);
                    }
                    commit(persist, state, step, touched).await?;
                    Err(Failure::Cloud(StepFailure::from(&err)))
                }
            }
        }
    }
}

/// Records in state (and in the known values) each member's entry of the map `map` just set to
/// `entries`: the field of a member the map leaves out is 0. `keys` are (member address, key).
pub(crate) fn record_entries(
    map: &PlannedMap,
    state: &mut StateFile,
    known: &mut KnownValues,
    keys: &[(String, String)],
    entries: &BTreeMap<String, u64>,
) {
    for (address, key) in keys {
        let Some(record) = state.resources.get_mut(address) else {
            continue;
        };
        if let Some(inputs) = record.inputs.as_object_mut() {
            let share = entries.get(key).copied().unwrap_or(0);
            inputs.insert(map.field.clone(), Value::from(share));
        }
        known.set(address, Known::from(&*record));
    }
}

/// The inputs that bring a resource back to what was live before the run: state's record `prior`,
/// with each mutable field the refresh read (`live`) as it was live (a secret state keeps only as a
/// digest included, when the cloud reports it; a map entry made by another step left out); then fields
/// whose spec names a `restore_from` attribute (a deployment's code, model and environment) become the
/// registered versions it ran before, not the local folders, which may have changed since. State's
/// inputs alone for a type the registry does not know.
fn restore_inputs(
    registry: &Registry,
    prior: &ResourceState,
    live: Option<&Map<String, Value>>,
) -> Map<String, Value> {
    let mut inputs = super::values::as_map(&prior.inputs);
    let Some(spec) = registry.get(&prior.resource_type) else {
        return inputs;
    };
    for (name, value) in live.into_iter().flatten() {
        if spec
            .fields
            .get(name)
            .is_some_and(|f| !f.immutable && f.aggregate.is_none() && !value.is_null())
        {
            inputs.insert(name.clone(), value.clone());
        }
    }
    spec.restore_inputs(inputs, &prior.outputs)
}

fn resource_type(address: &str, record: &ResourceState) -> Result<ResourceType, Failure> {
    ResourceType::parse(&record.resource_type).ok_or_else(|| {
        Failure::Refused(format!(
            "`{address}` has resource type `{}`, which stackform does not manage",
            record.resource_type
        ))
    })
}

async fn intent(
    persist: &Persistence,
    address: &str,
    record: &ResourceState,
    action: JournalAction,
    target: &str,
) -> Result<Option<crate::state::StepId>, Failure> {
    write_intent(
        persist.journal(),
        NewIntent {
            address: address.to_owned(),
            resource_type: record.resource_type.clone(),
            action,
            target: target.to_owned(),
        },
    )
    .await
    .map_err(Failure::Persistence)
}

async fn commit(
    persist: &mut Persistence,
    state: &mut StateFile,
    step: Option<crate::state::StepId>,
    touched: &Touched,
) -> Result<(), Failure> {
    persist
        .commit(state, step.into_iter().collect(), touched)
        .await
        .map_err(Failure::Persistence)
}
