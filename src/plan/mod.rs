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
//! else against the state. Drift (state versus live) is reported separately from changes.
pub mod action;
pub mod content;
mod diff;
mod json;
pub mod model;
pub mod normalize;
pub mod snapshot;
pub mod value;

#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};

use indexmap::IndexMap;
use serde_json::Value;

pub use action::{Action, ActionReason, PlanMode, ReplaceOrder};
pub use json::PLAN_JSON_SCHEMA_VERSION;
pub use model::{
    AttributeChange, Change, ContentChange, Drift, OutputChange, Plan, StateRef, Summary,
};
pub use snapshot::{
    DesiredExtras, FileContent, Live, Snapshot, content_hash_record, parse_content_hash,
};
pub use value::{PlanValue, SENSITIVE_TEXT, UNKNOWN_MARKER_KEY};

use diff::{DiffCtx, Diffed, Owner, SensitivePaths};
use normalize::{comparison, equal};
use value::eval;

use crate::graph::ResourceGraph;
use crate::specs::{FieldType, Registry, ResourceSpec};
use crate::stack::{Expr, ExprKind, Reference, Resource, Stack};
use crate::state::{ResourceState, ResourceStatus, StateFile};

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
    /// Computed attributes as last known (live, else state), for resources that keep their object.
    outputs: Option<Value>,
    id: Option<String>,
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
        if let Some(v) = self.outputs.as_ref().and_then(|o| lookup_output(o, path)) {
            return PlanValue::Known(v.clone());
        }
        // A kept resource's attribute the cloud did not report is null, as apply would resolve it.
        match (path, &self.id) {
            ("id", Some(id)) => PlanValue::Known(Value::String(id.clone())),
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
    let (changes, outputs) = match mode {
        PlanMode::RefreshOnly => (Vec::new(), Vec::new()),
        PlanMode::Destroy => destroy_changes(state, registry, desired),
        PlanMode::Normal => {
            let mut planner = Planner {
                desired,
                graph,
                registry,
                snapshot,
                extras,
                planned: HashMap::new(),
                errors: Vec::new(),
            };
            let mut changes = removed_changes(state, desired, registry);
            for name in order {
                if let Some(change) = planner.plan_resource(name) {
                    changes.push(change);
                }
            }
            let outputs = planner.outputs();
            if !planner.errors.is_empty() {
                return Err(planner.errors);
            }
            (changes, outputs)
        }
    };
    let summary = Summary::of(&changes, &drift, &outputs);
    Ok(Plan {
        mode,
        stack: desired.name.clone(),
        prior_state: state.map(|s| StateRef {
            lineage: s.lineage,
            serial: s.serial,
        }),
        changes,
        drift,
        outputs,
        summary,
    })
}

struct Planner<'a> {
    desired: &'a Stack,
    graph: &'a ResourceGraph,
    registry: &'a Registry,
    snapshot: &'a Snapshot,
    extras: &'a DesiredExtras,
    planned: HashMap<String, Planned<'a>>,
    errors: Vec<PlanError>,
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
        let state = self.snapshot.state.as_ref();
        let prior = state.and_then(|s| s.resources.get(name));
        let live = self.snapshot.live.get(name).unwrap_or(&Live::NotRefreshed);
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
                res,
                spec,
                &inputs,
                &sensitive,
                vec![ActionReason::NotInState],
                dependencies,
            ),
            (Some(p), _) if p.resource_type != res.type_name => {
                let mut c = self.creation(
                    name,
                    res,
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
                c.before = Some(PlanValue::Known(p.inputs.clone()));
                c
            }
            (Some(_), Live::Gone) => self.creation(
                name,
                res,
                spec,
                &inputs,
                &sensitive,
                vec![ActionReason::GoneFromCloud],
                dependencies,
            ),
            (Some(p), live) => {
                let (current, current_content) = self.current(name, spec, p, live);
                let ctx = DiffCtx {
                    type_name: &res.type_name,
                    dir: &self.desired.dir,
                    owner: Owner::Config,
                    lineage: state.map(|s| s.lineage),
                    sensitive: &sensitive,
                    new_content: self.extras.resources.get(name).unwrap_or(&EMPTY_CONTENT),
                    old_content: &current_content,
                };
                let diffs = diff::diff(&ctx, &spec.fields, &inputs, current, Some(&p.inputs));
                let mut reasons = Vec::new();
                if p.status == ResourceStatus::Tainted {
                    reasons.push(ActionReason::Tainted);
                }
                for parent in parents(self.desired, res, spec) {
                    if self
                        .planned
                        .get(&parent)
                        .is_some_and(|pl| pl.action.creates())
                    {
                        reasons.push(ActionReason::ParentReplaced {
                            parent,
                            child_type: res.type_name.clone(),
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
                Change {
                    address: name.to_string(),
                    type_name: res.type_name.clone(),
                    action,
                    before: Some(hide(&PlanValue::Known(shown_paths(
                        current,
                        &spec.fields,
                        &self.desired.dir,
                    )))),
                    after: Some(hide(&shown_paths_planned(
                        &inputs,
                        &spec.fields,
                        &self.desired.dir,
                    ))),
                    attributes: diffs.into_iter().map(|d| d.change).collect(),
                    reasons,
                    dependencies,
                }
            }
        };
        let (outputs, id) = match (prior, live) {
            (_, Live::Present { id, outputs, .. }) => (Some(outputs.clone()), Some(id.clone())),
            (Some(p), _) => (Some(p.outputs.clone()), Some(p.id.clone())),
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
        name: &str,
        spec: &ResourceSpec,
        prior: &'a ResourceState,
        live: &'a Live,
    ) -> (&'a Value, IndexMap<String, FileContent>) {
        let _ = name;
        match live {
            Live::Present {
                inputs,
                outputs,
                content,
                ..
            } => {
                let mut c = content.clone();
                if let Some(field) = single_path_field(spec)
                    && !c.contains_key(&field)
                    && let Some(Value::String(sha)) = outputs.get("content_sha256")
                {
                    c.insert(
                        field,
                        FileContent {
                            sha256: sha.to_ascii_lowercase(),
                            text: None,
                        },
                    );
                }
                if c.is_empty() {
                    c = recorded_content(spec, prior);
                }
                (inputs, c)
            }
            Live::Gone | Live::NotRefreshed => (&prior.inputs, recorded_content(spec, prior)),
        }
    }

    #[expect(clippy::too_many_arguments, reason = "the parts of a creation")]
    fn creation(
        &self,
        name: &str,
        res: &Resource,
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
        let _ = res;
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
            let cmp = comparison(&spec.type_name, field, spec.field(field));
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

    fn outputs(&self) -> Vec<OutputChange> {
        let recorded = self.snapshot.state.as_ref().map(|s| &s.outputs);
        let mut out = Vec::new();
        for (name, output) in &self.desired.outputs {
            let after = self.eval(&output.value);
            let sensitive = output.sensitive || output.value.is_sensitive();
            let before = recorded.and_then(|r| r.get(name)).cloned();
            let action = match (&before, after.known()) {
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

static EMPTY_CONTENT: std::sync::LazyLock<IndexMap<String, FileContent>> =
    std::sync::LazyLock::new(IndexMap::new);

fn dedup(reasons: &mut Vec<ActionReason>) {
    let mut seen = HashSet::new();
    reasons.retain(|r| seen.insert(r.message()));
}

/// Walks the set inputs of a resource in spec order, calling `f(path, value, is_path_field)` for each
/// leaf (scalars, lists, map entries, nested object fields).
fn flatten(
    fields: &IndexMap<String, crate::specs::FieldSpec>,
    prefix: &str,
    value: &PlanValue,
    f: &mut dyn FnMut(&str, &PlanValue, bool),
) {
    for (name, spec) in fields {
        let Some(v) = value.get(name).filter(|v| !v.is_null()) else {
            continue;
        };
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        let map_like = matches!(v, PlanValue::Known(Value::Object(_)) | PlanValue::Map(_));
        match (spec.kind, &spec.fields) {
            (FieldType::Object, Some(nested)) if map_like => flatten(nested, &path, &v, f),
            (FieldType::Map, _) if map_like => {
                let keys: Vec<String> = match &v {
                    PlanValue::Known(Value::Object(m)) => m.keys().cloned().collect(),
                    PlanValue::Map(m) => m.keys().cloned().collect(),
                    _ => Vec::new(),
                };
                for key in keys {
                    if let Some(entry) = v.get(&key) {
                        f(&format!("{path}.{key}"), &entry, false);
                    }
                }
            }
            _ => f(&path, &v, spec.kind == FieldType::Path),
        }
    }
}

/// Replaces the sensitive parts of a value with [`PlanValue::Sensitive`].
fn hide_sensitive(v: &PlanValue, sensitive: &SensitivePaths, prefix: &str) -> PlanValue {
    if sensitive.is_empty() {
        return v.clone();
    }
    if !prefix.is_empty() && sensitive.is_sensitive(prefix) {
        return PlanValue::Sensitive;
    }
    let entries: Vec<(String, PlanValue)> = match v {
        PlanValue::Known(Value::Object(m)) => m
            .iter()
            .map(|(k, x)| (k.clone(), PlanValue::Known(x.clone())))
            .collect(),
        PlanValue::Map(m) => m.iter().map(|(k, x)| (k.clone(), x.clone())).collect(),
        other => return other.clone(),
    };
    PlanValue::map(
        entries
            .into_iter()
            .map(|(k, x)| {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                let hidden = hide_sensitive(&x, sensitive, &path);
                (k, hidden)
            })
            .collect(),
    )
}

/// A recorded or live value with its path fields shown relative to the stack folder.
fn shown_paths(
    value: &Value,
    fields: &IndexMap<String, crate::specs::FieldSpec>,
    dir: &std::path::Path,
) -> Value {
    let Value::Object(map) = value else {
        return value.clone();
    };
    let mut out = map.clone();
    for (name, f) in fields {
        let Some(v) = out.get_mut(name) else {
            continue;
        };
        match (f.kind, &f.fields, &*v) {
            (FieldType::Path, _, Value::String(s)) => {
                *v = Value::String(normalize::normal_path(s, dir));
            }
            (_, Some(nested), Value::Object(_)) => *v = shown_paths(v, nested, dir),
            _ => {}
        }
    }
    Value::Object(out)
}

/// [`shown_paths`] for a value that may hold unknown parts.
fn shown_paths_planned(
    value: &PlanValue,
    fields: &IndexMap<String, crate::specs::FieldSpec>,
    dir: &std::path::Path,
) -> PlanValue {
    match value {
        PlanValue::Known(v) => PlanValue::Known(shown_paths(v, fields, dir)),
        PlanValue::Map(entries) => PlanValue::Map(
            entries
                .iter()
                .map(|(k, v)| {
                    let shown = match (fields.get(k), v) {
                        (Some(f), PlanValue::Known(Value::String(s)))
                            if f.kind == FieldType::Path =>
                        {
                            PlanValue::Known(Value::String(normalize::normal_path(s, dir)))
                        }
                        (Some(f), _) => match &f.fields {
                            Some(nested) => shown_paths_planned(v, nested, dir),
                            None => v.clone(),
                        },
                        (None, _) => v.clone(),
                    };
                    (k.clone(), shown)
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Sensitive paths of a resource: those the state recorded and those whose configured values come
/// from sensitive variables.
fn sensitive_paths(res: &Resource, prior: Option<&ResourceState>) -> SensitivePaths {
    let mut s = SensitivePaths::default();
    if let Some(p) = prior {
        for path in &p.sensitive {
            s.add(&path.to_string());
        }
    }
    fn visit(expr: &Expr, path: &str, s: &mut SensitivePaths) {
        if expr.sensitive {
            s.add(path);
            return;
        }
        if let ExprKind::Map(m) = &expr.kind {
            for (k, e) in m {
                visit(e, &format!("{path}.{k}"), s);
            }
        } else if expr.is_sensitive() {
            s.add(path);
        }
    }
    for (k, e) in &res.inputs {
        visit(e, k, &mut s);
    }
    s
}

/// The resources named by the `parent_ref` fields of `res`: by reference or by literal name.
fn parents(stack: &Stack, res: &Resource, spec: &ResourceSpec) -> Vec<String> {
    let mut out = Vec::new();
    for (field, f) in &spec.fields {
        let Some(parent_type) = &f.parent_ref else {
            continue;
        };
        let Some(expr) = res.inputs.get(field) else {
            continue;
        };
        let mut found: Vec<String> = expr
            .references()
            .into_iter()
            .filter(|r| {
                stack
                    .resources
                    .get(&r.resource)
                    .is_some_and(|p| &p.type_name == parent_type)
            })
            .map(|r| r.resource.clone())
            .collect();
        if found.is_empty()
            && let ExprKind::String(literal) = &expr.kind
        {
            found.extend(stack.resources.iter().filter_map(|(key, p)| {
                let named = &p.type_name == parent_type
                    && matches!(p.inputs.get("name").map(|e| &e.kind), Some(ExprKind::String(n)) if n == literal);
                named.then(|| key.clone())
            }));
        }
        for p in found {
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    out
}

/// The fields a type's cloud id is built from: the `{placeholders}` of its ARM path that name fields.
fn identity_fields(spec: &ResourceSpec) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = spec.arm.path.as_str();
    while let Some(start) = rest.find('{') {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        let inner = &rest[start + 1..start + len];
        for word in inner.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if spec.fields.contains_key(word) && !out.iter().any(|w| w == word) {
                out.push(word.to_string());
            }
        }
        rest = &rest[start + len + 1..];
    }
    out
}

/// The only path field of a type, when it has exactly one (a blob's `source`).
fn single_path_field(spec: &ResourceSpec) -> Option<String> {
    let mut paths = Vec::new();
    collect_path_fields(&spec.fields, "", &mut paths);
    (paths.len() == 1).then(|| paths.remove(0))
}

fn collect_path_fields(
    fields: &IndexMap<String, crate::specs::FieldSpec>,
    prefix: &str,
    out: &mut Vec<String>,
) {
    for (name, f) in fields {
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        if f.kind == FieldType::Path {
            out.push(path.clone());
        }
        if let Some(nested) = &f.fields {
            collect_path_fields(nested, &path, out);
        }
    }
}

/// The content hashes the state recorded, by field path.
fn recorded_content(spec: &ResourceSpec, prior: &ResourceState) -> IndexMap<String, FileContent> {
    let Some(record) = &prior.content_hash else {
        return IndexMap::new();
    };
    let single = single_path_field(spec);
    parse_content_hash(record)
        .into_iter()
        .filter_map(|(field, sha)| {
            let field = if field.is_empty() {
                single.clone()?
            } else {
                field
            };
            Some((
                field,
                FileContent {
                    sha256: sha,
                    text: None,
                },
            ))
        })
        .collect()
}

/// Deletions of resources in state but not in the stack, dependents first.
fn removed_changes(state: Option<&StateFile>, desired: &Stack, registry: &Registry) -> Vec<Change> {
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
            )
        })
        .collect()
}

fn deletion(
    state: &StateFile,
    address: &str,
    reason: ActionReason,
    registry: &Registry,
    dir: &std::path::Path,
) -> Option<Change> {
    let r = state.resources.get(address)?;
    let inputs = match registry.get(&r.resource_type) {
        Some(spec) => shown_paths(&r.inputs, &spec.fields, dir),
        None => r.inputs.clone(),
    };
    let mut sensitive = SensitivePaths::default();
    for p in &r.sensitive {
        sensitive.add(&p.to_string());
    }
    Some(Change {
        address: address.to_string(),
        type_name: r.resource_type.clone(),
        action: Action::Delete,
        before: Some(hide_sensitive(&PlanValue::Known(inputs), &sensitive, "")),
        after: None,
        attributes: Vec::new(),
        reasons: vec![reason],
        dependencies: r.dependencies.clone(),
    })
}

fn destroy_changes(
    state: Option<&StateFile>,
    registry: &Registry,
    desired: &Stack,
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

/// Drift: for every recorded resource the refresh read, the recorded inputs against the live ones.
fn drift_of(
    state: &StateFile,
    snapshot: &Snapshot,
    registry: &Registry,
    desired: &Stack,
    extras: &DesiredExtras,
) -> Vec<Drift> {
    let mut out = Vec::new();
    for (address, r) in &state.resources {
        let Some(live) = snapshot.live.get(address) else {
            continue;
        };
        match live {
            Live::NotRefreshed => {}
            Live::Gone => out.push(Drift {
                address: address.clone(),
                type_name: r.resource_type.clone(),
                gone: true,
                attributes: Vec::new(),
            }),
            Live::Present {
                inputs,
                outputs,
                content,
                ..
            } => {
                let Some(spec) = registry.get(&r.resource_type) else {
                    continue;
                };
                let mut recorded = recorded_content(spec, r);
                // The recorded side has no text; the local file does when it still matches.
                for (field, c) in recorded.iter_mut() {
                    if let Some(local) = extras.content(address, field)
                        && local.sha256 == c.sha256
                    {
                        c.text.clone_from(&local.text);
                    }
                }
                let mut live_content = content.clone();
                if let Some(field) = single_path_field(spec)
                    && !live_content.contains_key(&field)
                    && let Some(Value::String(sha)) = outputs.get("content_sha256")
                {
                    live_content.insert(
                        field,
                        FileContent {
                            sha256: sha.to_ascii_lowercase(),
                            text: None,
                        },
                    );
                }
                let mut sensitive = SensitivePaths::default();
                for p in &r.sensitive {
                    sensitive.add(&p.to_string());
                }
                let ctx = DiffCtx {
                    type_name: &r.resource_type,
                    dir: &desired.dir,
                    owner: Owner::State,
                    lineage: Some(state.lineage),
                    sensitive: &sensitive,
                    new_content: &live_content,
                    old_content: &recorded,
                };
                let diffs = diff::diff(
                    &ctx,
                    &spec.fields,
                    &PlanValue::Known(inputs.clone()),
                    &r.inputs,
                    None,
                );
                if !diffs.is_empty() {
                    out.push(Drift {
                        address: address.clone(),
                        type_name: r.resource_type.clone(),
                        gone: false,
                        attributes: diffs.into_iter().map(|d| d.change).collect(),
                    });
                }
            }
        }
    }
    out
}
