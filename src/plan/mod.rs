//! Planning: the desired stack, its graph, the state and what a refresh read from the cloud go in; a
//! [`Plan`] of [`Change`]s comes out.
//!
//! This module is **pure**: no I/O, no async, no printing, no clock. The one step that touches the
//! world on the way in — hashing the local files the stack names — lives in [`content`] and is run by
//! the caller before [`plan`]; reading the cloud (refresh) is the provider's job and arrives as a
//! [`Snapshot`]. Rendering a plan for people is `report/`'s job.
//!
//! The rules, in the order [`plan`] applies them to each resource (walking the graph so that every
//! prerequisite is decided first):
//!
//! * not in state → create; in state but deleted in the cloud → create (and drift); tainted → replace;
//! * a field that cannot change in place (`immutable` in its spec) whose value changed, or will only be
//!   known after apply because it refers to a computed attribute of a resource that is created or
//!   replaced (`${endpoint.identity.principal_id}`), → replace, explained by the field or the knock-on;
//! * the parent named by a `parent_ref` field is replaced or created → replace (deleting a parent
//!   deletes what lives in it);
//! * any other difference → update; none → no-op;
//! * in state but not in the stack file → delete, dependents before their prerequisites.
//!
//! Values are compared after normalisation ([`normalize`]), against the live inputs when refreshed,
//! else against the state. Only fields the spec defines and the configuration sets are compared
//! (service-added values are never a change); a field the configuration stops setting is removed
//! when the state recorded it, which relies on the state's `inputs` being the inputs stackform
//! applied (not the values read back). Path fields compare by the content they name (hashes from
//! [`DesiredExtras`], the live read, or the state's `content_hash` as written by
//! [`content_hash_record`]). Drift (state versus live) is reported separately from changes.
//!
//! `changes` come in apply order: deletions of removed resources first (dependents before their
//! prerequisites), then every stack resource in topological order, no-ops included.
pub mod action;
pub mod content;
mod destroy;
mod diff;
mod drift;
pub mod json;
mod maps;
pub mod model;
pub mod moves;
pub(crate) mod normalize;
pub mod snapshot;
mod state_ids;
mod support;
pub mod value;

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};

use indexmap::IndexMap;
use serde_json::Value;

pub use action::{Action, ActionReason, PlanMode, ReplaceOrder};
pub use model::{
    AttributeChange, Change, ContentChange, Drift, MapChange, MapMember, OutputChange, Plan,
    StateRef, Summary,
};
pub(crate) use snapshot::content_hash_record;
pub use snapshot::{DesiredExtras, FileContent, Live, Snapshot};
pub(crate) use state_ids::check_import_id;
pub use state_ids::{DamagedId, check_state_ids};
pub use value::PlanValue;
pub(crate) use value::SENSITIVE_TEXT;

use destroy::{destroy_changes, removed_changes};
use diff::{DiffCtx, Diffed, Owner, SensitivePaths};
use drift::drift_of;
use maps::{MemberView, map_changes};
use model::exact;
use normalize::{comparison, equal};
use support::{
    flatten, hide_sensitive, identity_fields, live_content, named_index, parents, recorded_content,
    sensitive_paths, shown_paths, shown_paths_planned,
};
use value::eval;

use crate::graph::ResourceGraph;
use crate::specs::{Registry, ResourceSpec};
use crate::stack::{Expr, Reference, Resource, Stack};
use crate::state::{ResourceState, ResourceStatus};

/// Something that makes planning impossible (the inputs contradict each other).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("resource `{address}` has type `{type_name}`, which no spec defines")]
    UnknownType { address: String, type_name: String },
    #[error("resource `{address}` is in the stack but not in its graph")]
    NotInGraph { address: String },
    #[error("resource `{address}` refers to `{reference}`, which is not planned before it")]
    UnknownReference { address: String, reference: String },
    #[error("the state belongs to stack `{state_stack}`, not `{stack}`")]
    ForeignState { state_stack: String, stack: String },
}

/// What later resources may learn about an already planned one.
struct Planned<'a> {
    action: Action,
    spec: &'a ResourceSpec,
    /// Desired inputs (a map, possibly with unknowns).
    inputs: PlanValue,
    /// Computed attributes as last known (live, else state), for resources that keep their object:
    /// the snapshot's, not a copy.
    outputs: Option<&'a Value>,
    id: Option<&'a str>,
}

impl Planned<'_> {
    /// The value of `${name.path}`.
    fn value_of(&self, path: &str) -> PlanValue {
        let computed = self.spec.is_computed(path) || !self.spec.exports(path);
        if !computed {
            return self.inputs.get_path(path).unwrap_or_else(PlanValue::null);
        }
        if self.action.creates() {
            return PlanValue::Unknown;
        }
        if let Some(v) = self.outputs.and_then(|o| lookup_output(o, path)) {
            return PlanValue::Known(v.clone());
        }
        // A kept resource's attribute the cloud did not report is null, as apply would resolve it.
        match (path, self.id) {
            ("id", Some(id)) => PlanValue::Known(Value::String(id.to_owned())),
            _ => PlanValue::null(),
        }
    }
}

/// An output at a dotted path: nested (`{"identity": {"principal_id": …}}`) or flat.
fn lookup_output<'v>(outputs: &'v Value, path: &str) -> Option<&'v Value> {
    if let Some(v) = outputs.get(path).filter(|v| !v.is_null()) {
        return Some(v);
    }
    let mut cur = outputs;
    for part in path.split('.') {
        cur = cur.get(part)?;
    }
    (!cur.is_null()).then_some(cur)
}

/// Plans `desired` against the prior state and live cloud in `snapshot`.
///
/// `graph` must be the graph built from `desired`; `extras` holds the content of the local files the
/// stack names (see [`content::desired_extras`]). Pure: the same inputs always give the same plan.
pub fn plan(
    desired: &Stack,
    graph: &ResourceGraph,
    registry: &Registry,
    snapshot: &Snapshot,
    extras: &DesiredExtras,
    mode: PlanMode,
) -> Result<Plan, Vec<PlanError>> {
    plan_with(desired, graph, registry, snapshot, extras, mode, true)
}

/// [`plan`], where `unchanged_values` false makes a plan that is shown as text and applied, never
/// written as JSON (nor saved): a resource that stays as it is (`NoOp`) has no `before` and `after`,
/// and a deletion no `before`, which only the JSON plan shows (two copies of every input of a large
/// stack that did not change; a copy of every recorded input of a destroy). Everything else is the
/// same.
pub(crate) fn plan_with(
    desired: &Stack,
    graph: &ResourceGraph,
    registry: &Registry,
    snapshot: &Snapshot,
    extras: &DesiredExtras,
    mode: PlanMode,
    unchanged_values: bool,
) -> Result<Plan, Vec<PlanError>> {
    let state = snapshot.state.as_ref();
    if let Some(s) = state
        && s.stack != desired.name
    {
        return Err(vec![PlanError::ForeignState {
            state_stack: s.stack.clone(),
            stack: desired.name.clone(),
        }]);
    }
    let mut errors = Vec::new();
    for (name, res) in &desired.resources {
        if registry.get(&res.type_name).is_none() {
            errors.push(PlanError::UnknownType {
                address: name.clone(),
                type_name: res.type_name.clone(),
            });
        }
    }
    let order = graph.topo_order();
    let in_graph: HashSet<&str> = order.iter().copied().collect();
    for name in desired.resources.keys() {
        if !in_graph.contains(name.as_str()) {
            errors.push(PlanError::NotInGraph {
                address: name.clone(),
            });
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }

    let drift = match mode {
        PlanMode::Destroy => Vec::new(),
        PlanMode::Normal | PlanMode::RefreshOnly => state
            .map(|s| drift_of(s, snapshot, registry, desired, extras))
            .unwrap_or_default(),
    };
    let (changes, outputs, maps) = match mode {
        PlanMode::RefreshOnly => (Vec::new(), Vec::new(), Vec::new()),
        PlanMode::Destroy => {
            let (changes, outputs) = destroy_changes(state, registry, desired, unchanged_values);
            let members = removed_members(state, registry, &changes);
            let maps = map_changes(&members, snapshot);
            (changes, outputs, maps)
        }
        PlanMode::Normal => {
            let mut planner = Planner {
                desired,
                graph,
                registry,
                snapshot,
                extras,
                planned: HashMap::with_capacity(order.len()),
                named: named_index(desired),
                errors: Vec::new(),
                unchanged_values,
            };
            let mut changes = removed_changes(state, desired, registry, unchanged_values);
            // Sized up front: one change per resource, 10,000 of them grown by doubling were room
            // for 16,384 (about 2 MB spare at a plan's peak memory).
            changes.reserve(order.len());
            for name in order {
                if let Some(change) = planner.plan_resource(name) {
                    changes.push(change);
                }
            }
            let outputs = planner.outputs();
            if !planner.errors.is_empty() {
                return Err(planner.errors);
            }
            let mut members = planner.members();
            members.extend(removed_members(state, registry, &changes));
            let maps = map_changes(&members, snapshot);
            (changes, outputs, maps)
        }
    };
    let mut plan = Plan {
        mode,
        stack: desired.name.clone(),
        prior_state: state.map(|s| StateRef {
            lineage: s.lineage,
            serial: s.serial,
        }),
        changes,
        maps,
        drift,
        outputs,
        moved: Vec::new(),
        imports: Vec::new(),
        summary: Summary::default(),
    };
    plan.summary = Summary::of_plan(&plan);
    Ok(plan)
}

/// The members of maps among the deletions of resources that are not in the stack (or of everything,
/// for a destroy): their owner is the recorded dependency of the owner's type.
fn removed_members<'a>(
    state: Option<&'a crate::state::StateFile>,
    registry: &'a Registry,
    changes: &[Change],
) -> Vec<MemberView<'a>> {
    let Some(state) = state else {
        return Vec::new();
    };
    changes
        .iter()
        .filter(|c| c.action == Action::Delete)
        .filter_map(|c| {
            let (address, prior) = state.resources.get_key_value(&c.address)?;
            let spec = registry.get(&prior.resource_type)?;
            let owner_types: Vec<&str> = spec
                .aggregates()
                .filter_map(|(_, _, agg)| spec.fields.get(&agg.owner)?.parent_ref.as_deref())
                .collect();
            if owner_types.is_empty() {
                return None;
            }
            let owner_address = prior
                .dependencies
                .iter()
                .find(|d| {
                    state
                        .resources
                        .get(d.as_str())
                        .is_some_and(|r| owner_types.contains(&r.resource_type.as_str()))
                })
                .cloned();
            Some(MemberView {
                address: address.as_str(),
                spec,
                action: Action::Delete,
                desired: None,
                prior: Some(prior),
                owner_address,
            })
        })
        .collect()
}

struct Planner<'a> {
    desired: &'a Stack,
    graph: &'a ResourceGraph,
    registry: &'a Registry,
    snapshot: &'a Snapshot,
    extras: &'a DesiredExtras,
    planned: HashMap<String, Planned<'a>>,
    /// `(type, literal name)` → addresses, to find a parent named by a literal.
    named: HashMap<(&'a str, &'a str), Vec<&'a str>>,
    errors: Vec<PlanError>,
    /// A change that does nothing keeps its `before` and `after` (see [`plan_with`]).
    unchanged_values: bool,
}

impl<'a> Planner<'a> {
    fn eval(&self, expr: &Expr) -> PlanValue {
        let lookup = |r: &Reference| {
            self.planned
                .get(&r.resource)
                .map_or(PlanValue::Unknown, |p| p.value_of(&r.path))
        };
        eval(expr, &lookup)
    }

    fn plan_resource(&mut self, name: &str) -> Option<Change> {
        let res = self.desired.resources.get(name)?;
        let spec = self.registry.get(&res.type_name)?;
        for r in res.references() {
            if !self.planned.contains_key(&r.resource) {
                self.errors.push(PlanError::UnknownReference {
                    address: name.to_string(),
                    reference: format!("{}.{}", r.resource, r.path),
                });
                return None;
            }
        }
        let inputs = PlanValue::map(
            res.inputs
                .iter()
                .map(|(k, e)| (k.clone(), self.eval(e)))
                .collect(),
        );
        let snapshot: &'a Snapshot = self.snapshot;
        let state = snapshot.state.as_ref();
        let prior = state.and_then(|s| s.resources.get(name));
        let live = snapshot.live.get(name).unwrap_or(&Live::NotRefreshed);
        let sensitive = sensitive_paths(res, prior);
        let dependencies: Vec<String> = self
            .graph
            .dependencies(name)
            .into_iter()
            .map(str::to_string)
            .collect();
        let hide = |v: &PlanValue| hide_sensitive(v, &sensitive, "");

        let change = match (prior, live) {
            (None, _) => self.creation(
                name,
                spec,
                &inputs,
                &sensitive,
                vec![ActionReason::NotInState],
                dependencies,
            ),
            (Some(p), _) if p.resource_type != res.type_name => {
                let mut c = self.creation(
                    name,
                    spec,
                    &inputs,
                    &sensitive,
                    vec![ActionReason::TypeChanged {
                        from: p.resource_type.clone(),
                        to: res.type_name.clone(),
                    }],
                    dependencies,
                );
                c.action = Action::Replace(ReplaceOrder::DeleteBeforeCreate);
                c.before = Some(hide(&PlanValue::Known(p.inputs.clone())));
                c
            }
            (Some(_), Live::Gone) => self.creation(
                name,
                spec,
                &inputs,
                &sensitive,
                vec![ActionReason::GoneFromCloud],
                dependencies,
            ),
            (Some(p), live) => {
                let (current, current_content) = self.current(spec, p, live);
                let no_content = IndexMap::new();
                let ctx = DiffCtx {
                    dir: &self.desired.dir,
                    owner: Owner::Config,
                    lineage: state.map(|s| s.lineage),
                    sensitive: &sensitive,
                    new_content: self.extras.resources.get(name).unwrap_or(&no_content),
                    old_content: &current_content,
                };
                let diffs = diff::diff(&ctx, &spec.fields, &inputs, current, Some(&p.inputs));
                let mut reasons = Vec::new();
                if p.status == ResourceStatus::Tainted {
                    reasons.push(ActionReason::Tainted);
                }
                for parent in parents(self.desired, &self.named, res, spec) {
                    let parent_action = self.planned.get(&parent).map(|pl| pl.action);
                    if parent_action.is_some_and(Action::creates) {
                        reasons.push(ActionReason::ParentReplaced {
                            parent,
                            child_type: res.type_name.clone(),
                            parent_created: parent_action == Some(Action::Create),
                        });
                    }
                }
                for d in &diffs {
                    if let Some(reason) = &d.immutable_reason {
                        reasons.push(self.replacement_reason(res, &d.change, reason.clone()));
                    }
                }
                dedup(&mut reasons);
                let action = if !reasons.is_empty() {
                    Action::Replace(self.replace_order(spec, &reasons, &diffs, &inputs, current))
                } else if diffs.is_empty() {
                    Action::NoOp
                } else {
                    Action::Update
                };
                // What stays as it is keeps its values only for a plan written as JSON.
                let values = self.unchanged_values || !action.is_noop();
                Change {
                    address: name.to_string(),
                    type_name: res.type_name.clone(),
                    action,
                    before: values.then(|| {
                        hide(&PlanValue::Known(shown_paths(
                            current,
                            &spec.fields,
                            &self.desired.dir,
                        )))
                    }),
                    after: values.then(|| {
                        hide(&shown_paths_planned(
                            &inputs,
                            &spec.fields,
                            &self.desired.dir,
                        ))
                    }),
                    attributes: exact(diffs.into_iter().map(|d| d.change).collect()),
                    reasons,
                    dependencies,
                }
            }
        };
        let (outputs, id) = match (prior, live) {
            (_, Live::Present { id, outputs, .. }) => (Some(outputs), Some(id.as_str())),
            (Some(p), _) => (Some(&p.outputs), Some(p.id.as_str())),
            (None, _) => (None, None),
        };
        self.planned.insert(
            name.to_string(),
            Planned {
                action: change.action,
                spec,
                inputs,
                outputs,
                id,
            },
        );
        Some(change)
    }

    /// The inputs to compare against (live when refreshed, else recorded) and the content behind
    /// their path fields.
    fn current(
        &self,
        spec: &ResourceSpec,
        prior: &'a ResourceState,
        live: &'a Live,
    ) -> (&'a Value, IndexMap<String, FileContent>) {
        match live {
            Live::Present {
                inputs,
                outputs,
                content,
                ..
            } => {
                let mut c = live_content(spec, content, outputs);
                if c.is_empty() {
                    c = recorded_content(spec, prior);
                }
                (inputs, c)
            }
            Live::Gone | Live::NotRefreshed => (&prior.inputs, recorded_content(spec, prior)),
        }
    }

    fn creation(
        &self,
        name: &str,
        spec: &ResourceSpec,
        inputs: &PlanValue,
        sensitive: &SensitivePaths,
        reasons: Vec<ActionReason>,
        dependencies: Vec<String>,
    ) -> Change {
        let mut attributes = Vec::new();
        let dir = &self.desired.dir;
        flatten(
            &spec.fields,
            "",
            inputs,
            &mut |path, value, kind_is_path| {
                let mut after = value.clone();
                if kind_is_path && let PlanValue::Known(Value::String(s)) = &after {
                    after = PlanValue::Known(Value::String(normalize::normal_path(s, dir)));
                }
                let is_sensitive =
                    sensitive.is_sensitive(path) || spec.field(path).is_some_and(|f| f.sensitive);
                let mut a = AttributeChange::new(
                    path,
                    None,
                    if is_sensitive {
                        PlanValue::Sensitive
                    } else {
                        after
                    },
                );
                a.sensitive = is_sensitive;
                attributes.push(a);
            },
        );
        for attr in spec.attributes.keys() {
            let mut a = AttributeChange::new(attr.clone(), None, PlanValue::Unknown);
            a.computed = true;
            attributes.push(a);
        }
        let attributes = exact(attributes);
        Change {
            address: name.to_string(),
            type_name: spec.type_name.clone(),
            action: Action::Create,
            before: None,
            after: Some(hide_sensitive(
                &shown_paths_planned(inputs, &spec.fields, &self.desired.dir),
                sensitive,
                "",
            )),
            attributes,
            reasons,
            dependencies,
        }
    }

    /// Explains why a difference in an immutable field forces replacement: a knock-on when the new
    /// value is unknown because it refers to a computed attribute of a created or replaced resource.
    fn replacement_reason(
        &self,
        res: &Resource,
        change: &AttributeChange,
        reason: String,
    ) -> ActionReason {
        if change.after.has_unknown() {
            let top = change.path.split('.').next().unwrap_or(&change.path);
            let upstream = res.inputs.get(top).and_then(|e| {
                e.references().into_iter().find(|r| {
                    self.planned.get(&r.resource).is_some_and(|p| {
                        p.action.creates()
                            && (p.spec.is_computed(&r.path) || !p.spec.exports(&r.path))
                    })
                })
            });
            if let Some(r) = upstream {
                let recreated = self
                    .planned
                    .get(&r.resource)
                    .is_some_and(|p| p.action == Action::Create);
                return ActionReason::KnockOn {
                    upstream: r.resource.clone(),
                    attribute: r.path.clone(),
                    field: change.path.clone(),
                    reason,
                    upstream_recreated: recreated,
                };
            }
        }
        ActionReason::ImmutableField {
            field: change.path.clone(),
            reason,
        }
    }

    /// Create-before-delete only when the new object certainly has another name: every field its
    /// cloud id is built from is known, one of them differs, and nothing else forces the order.
    fn replace_order(
        &self,
        spec: &ResourceSpec,
        reasons: &[ActionReason],
        diffs: &[Diffed],
        inputs: &PlanValue,
        current: &Value,
    ) -> ReplaceOrder {
        let only_fields = reasons
            .iter()
            .all(|r| matches!(r, ActionReason::ImmutableField { .. }));
        let identity = identity_fields(spec);
        if !only_fields || identity.is_empty() || diffs.iter().any(|d| d.change.after.has_unknown())
        {
            return ReplaceOrder::DeleteBeforeCreate;
        }
        let renamed = identity.iter().any(|field| {
            let cmp = comparison(spec.field(field));
            match (
                inputs.get_path(field).and_then(PlanValue::into_known),
                current.get(field),
            ) {
                (Some(n), Some(o)) => !equal(cmp, &n, o, &self.desired.dir),
                _ => false,
            }
        });
        if renamed {
            ReplaceOrder::CreateBeforeDelete
        } else {
            ReplaceOrder::DeleteBeforeCreate
        }
    }

    /// The stack's resources that hold an entry of another resource's map, as planned.
    fn members(&self) -> Vec<MemberView<'_>> {
        let state = self.snapshot.state.as_ref();
        let mut out = Vec::new();
        for (address, res) in &self.desired.resources {
            let Some(spec) = self.registry.get(&res.type_name) else {
                continue;
            };
            let Some((_, _, agg)) = spec.aggregates().next() else {
                continue;
            };
            let Some(planned) = self.planned.get(address) else {
                continue;
            };
            let owner_type = spec
                .fields
                .get(&agg.owner)
                .and_then(|f| f.parent_ref.as_deref());
            let owner_address = parents(self.desired, &self.named, res, spec)
                .into_iter()
                .find(|p| {
                    self.desired
                        .resources
                        .get(p)
                        .is_some_and(|r| Some(r.type_name.as_str()) == owner_type)
                });
            out.push(MemberView {
                address: address.as_str(),
                spec,
                action: planned.action,
                desired: Some(&planned.inputs),
                prior: state.and_then(|s| s.resources.get(address)),
                owner_address,
            });
        }
        out
    }

    fn outputs(&self) -> Vec<OutputChange> {
        let recorded = self.snapshot.state.as_ref().map(|s| &s.outputs);
        let mut out = Vec::new();
        for (name, output) in &self.desired.outputs {
            let after = self.eval(&output.value);
            let sensitive = output.sensitive || output.value.is_sensitive();
            let before = recorded.and_then(|r| r.get(name)).cloned();
            let applied_before = self.snapshot.state.is_some();
            let action = match (&before, after.known()) {
                // The state never records a sensitive output, so "not recorded" says nothing:
                // it changes only when what it is made of does.
                (None, Some(_)) if sensitive && applied_before => Action::NoOp,
                (None, None) if sensitive && applied_before => Action::Update,
                (None, _) => Action::Create,
                (Some(_), None) => Action::Update,
                (Some(b), Some(a)) if normalize::json_eq(b, a) => Action::NoOp,
                (Some(_), Some(_)) => Action::Update,
            };
            let (before, after) = if sensitive {
                (
                    before.map(|_| PlanValue::Sensitive),
                    if after.has_unknown() {
                        PlanValue::Unknown
                    } else {
                        PlanValue::Sensitive
                    },
                )
            } else {
                (before.map(PlanValue::Known), after)
            };
            out.push(OutputChange {
                name: name.clone(),
                action,
                before,
                after,
                sensitive,
            });
        }
        if let Some(recorded) = recorded {
            for (name, value) in recorded {
                if !self.desired.outputs.contains_key(name) {
                    out.push(OutputChange {
                        name: name.clone(),
                        action: Action::Delete,
                        before: Some(PlanValue::Known(value.clone())),
                        after: PlanValue::null(),
                        sensitive: false,
                    });
                }
            }
        }
        out
    }
}

fn dedup(reasons: &mut Vec<ActionReason>) {
    let mut seen = HashSet::new();
    reasons.retain(|r| seen.insert(r.message()));
}
