//! Deletions: of resources removed from the stack file (normal mode) and of everything in state
//! (destroy mode), in reverse dependency order as recorded in state:
//!
//! ```text
//!   store ◄── data ◄── greeting        apply order:   store, data, greeting, endpoint, reader
//!     ▲                                 delete order:  reader, endpoint, greeting, data, store
//!     └────── reader ──► endpoint
//! ```
//!
//! Only the dependencies stored in state are used, so a resource no longer in the stack file still
//! goes before what it needed.
use super::action::{Action, ActionReason};
use super::diff::SensitivePaths;
use super::model::{Change, OutputChange};
use super::support::{hide_sensitive, shown_paths};
use super::value::PlanValue;
use crate::specs::Registry;
use crate::stack::Stack;
use crate::state::StateFile;

/// Deletions of resources in state but not in the stack, dependents first. `values`: each keeps what
/// it deletes as its `before` (see [`deletion`]).
pub(super) fn removed_changes(
    state: Option<&StateFile>,
    desired: &Stack,
    registry: &Registry,
    values: bool,
) -> Vec<Change> {
    let Some(state) = state else {
        return Vec::new();
    };
    state
        .destroy_order()
        .into_iter()
        .filter(|a| !desired.resources.contains_key(a))
        .filter_map(|a| {
            deletion(
                state,
                &a,
                ActionReason::RemovedFromConfig,
                registry,
                &desired.dir,
                values,
            )
        })
        .collect()
}

/// The deletion of `address`. `values` false (a plan only shown as text and applied, see
/// [`super::plan_with`]): no `before`, which only the JSON plan shows (for a destroy of 10,000
/// resources, a copy of every recorded input at the engine's peak memory).
pub(super) fn deletion(
    state: &StateFile,
    address: &str,
    reason: ActionReason,
    registry: &Registry,
    dir: &std::path::Path,
    values: bool,
) -> Option<Change> {
    let r = state.resources.get(address)?;
    let before = values.then(|| {
        let inputs = match registry.get(&r.resource_type) {
            Some(spec) => shown_paths(&r.inputs, &spec.fields, dir),
            None => r.inputs.clone(),
        };
        let mut sensitive = SensitivePaths::default();
        for p in &r.sensitive {
            sensitive.add(&p.to_string());
        }
        hide_sensitive(&PlanValue::Known(inputs), &sensitive, "")
    });
    Some(Change {
        address: address.to_string(),
        type_name: r.resource_type.clone(),
        action: Action::Delete,
        before,
        after: None,
        attributes: Vec::new(),
        reasons: vec![reason],
        dependencies: r.dependencies.clone(),
    })
}

/// Deletions of everything in state, dependents first, and of the stack's outputs. `values`: as
/// [`removed_changes`].
pub(super) fn destroy_changes(
    state: Option<&StateFile>,
    registry: &Registry,
    desired: &Stack,
    values: bool,
) -> (Vec<Change>, Vec<OutputChange>) {
    let Some(state) = state else {
        return (Vec::new(), Vec::new());
    };
    let changes = state
        .destroy_order()
        .into_iter()
        .filter_map(|a| {
            deletion(
                state,
                &a,
                ActionReason::DestroyRequested,
                registry,
                &desired.dir,
                values,
            )
        })
        .collect();
    let outputs = state
        .outputs
        .iter()
        .map(|(name, value)| OutputChange {
            name: name.clone(),
            action: Action::Delete,
            before: Some(PlanValue::Known(value.clone())),
            after: PlanValue::null(),
            sensitive: false,
        })
        .collect();
    (changes, outputs)
}
