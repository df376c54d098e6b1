//! Values known so far in a run: each resource's cloud id, applied inputs and computed outputs, from
//! state at the start and from each step as it finishes. A step's expressions are resolved against
//! them at the moment it starts, so `${endpoint.identity.principal_id}` is the value the cloud gave
//! the endpoint a moment ago.
//!
//! A run keeps of each resource only what some expression of its plan refers to (the id, and the
//! top-level fields its references start with: [`KnownValues::for_plan`]), not a second copy of every
//! record: state already holds the records, and the values are what references read.
//!
//! It only reads what it was given: it never calls the cloud, and never resolves a secret from its
//! digest (an input whose value state keeps only as a digest is refused, not sent).

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::steps::{ApplyPlan, Desired, Refreshed};
use crate::stack::{Expr, Reference};
use crate::state::{ResourceState, StateFile};

/// What is known about one resource.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Known {
    pub id: String,
    pub inputs: Value,
    pub outputs: Value,
}

impl From<&ResourceState> for Known {
    fn from(r: &ResourceState) -> Self {
        Self {
            id: r.id.clone(),
            inputs: r.inputs.clone(),
            outputs: r.outputs.clone(),
        }
    }
}

/// Address → known values.
#[derive(Debug, Clone, Default)]
pub(crate) struct KnownValues {
    map: HashMap<String, Known>,
    /// When set, the only values kept: by address, the top-level fields that references start with
    /// (`${store.identity.principal_id}` → `identity` of `store`). A resource no reference names
    /// keeps nothing.
    referred: Option<HashMap<String, HashSet<String>>>,
}

impl KnownValues {
    /// Every record of `state`, whole.
    pub(crate) fn from_state(state: &StateFile) -> Self {
        Self::refreshed(state, &HashMap::new())
    }

    /// The values at the start of a run: state's, with the id and outputs of each resource the refresh
    /// read replaced by the live ones, as the planner resolved references (`plan::Planned::value_of`),
    /// so a step sends what the plan showed.
    pub(crate) fn refreshed(state: &StateFile, live: &HashMap<String, Refreshed>) -> Self {
        Self {
            map: state
                .resources
                .iter()
                .map(|(a, r)| {
                    let mut known = Known::from(r);
                    if let Some(live) = live.get(a) {
                        known.id.clone_from(&live.id);
                        known.outputs.clone_from(&live.outputs);
                    }
                    (a.clone(), known)
                })
                .collect(),
            referred: None,
        }
    }

    /// The values `plan` can read: of each record of `state` (and of each value [`set`](Self::set)
    /// later), the id and the top-level inputs and outputs that a reference in the plan's steps or
    /// stack outputs starts with, the id and outputs the refresh read (`plan.refreshed`) taking the
    /// place of the recorded ones as in [`refreshed`](Self::refreshed). Every lookup those
    /// references make finds what it would find in the whole record.
    pub(crate) fn for_plan(plan: &ApplyPlan, state: &StateFile) -> Self {
        let mut referred: HashMap<String, HashSet<String>> = HashMap::new();
        let mut note = |expr: &Expr| {
            for r in expr.references() {
                let field = r.path.split('.').next().unwrap_or_default();
                referred
                    .entry(r.resource.clone())
                    .or_default()
                    .insert(field.to_owned());
            }
        };
        // A destroy's steps are deletes, which send the recorded inputs: they resolve nothing.
        for step in plan.steps.iter().filter(|_| !plan.destroy) {
            for expr in step.desired.iter().flat_map(|d| d.inputs.values()) {
                note(expr);
            }
        }
        plan.outputs.values().for_each(&mut note);
        let mut map = HashMap::new();
        for (address, record) in &state.resources {
            if let Some(fields) = referred.get(address) {
                let (id, outputs) = match plan.refreshed.get(address) {
                    Some(live) => (&live.id, &live.outputs),
                    None => (&record.id, &record.outputs),
                };
                let kept = Known {
                    id: id.clone(),
                    inputs: only(&record.inputs, fields),
                    outputs: only(outputs, fields),
                };
                map.insert(address.clone(), kept);
            }
        }
        Self {
            map,
            referred: Some(referred),
        }
    }

    pub(super) fn set(&mut self, address: &str, known: Known) {
        let Some(referred) = &self.referred else {
            self.map.insert(address.to_owned(), known);
            return;
        };
        let Some(fields) = referred.get(address) else {
            self.map.remove(address);
            return;
        };
        let kept = Known {
            id: known.id,
            inputs: only(&known.inputs, fields),
            outputs: only(&known.outputs, fields),
        };
        self.map.insert(address.to_owned(), kept);
    }

    /// What is kept of `address` (tests).
    #[cfg(test)]
    pub(crate) fn held(&self, address: &str) -> Option<&Known> {
        self.map.get(address)
    }

    pub(super) fn remove(&mut self, address: &str) {
        self.map.remove(address);
    }

    /// The value of `${resource.path}`: `id` is the cloud id; other paths look in the computed
    /// outputs first, then in the applied inputs.
    pub(crate) fn lookup(&self, reference: &Reference) -> Option<Value> {
        let known = self.map.get(&reference.resource)?;
        if reference.path == "id" {
            return Some(Value::String(known.id.clone()));
        }
        get_path(&known.outputs, &reference.path)
            .or_else(|| get_path(&known.inputs, &reference.path))
            .filter(|v| !v.is_null())
            .cloned()
    }

    /// Resolves every desired input; the error names the first input that cannot be sent.
    pub(super) fn resolve(&self, desired: &Desired) -> Result<Map<String, Value>, ResolveError> {
        let lookup = |r: &Reference| self.lookup(r);
        let mut out = Map::with_capacity(desired.inputs.len());
        for (name, expr) in &desired.inputs {
            match expr.resolve(&lookup) {
                Some(value) if has_marker(&value) => {
                    return Err(ResolveError::SecretDigest {
                        input: name.clone(),
                    });
                }
                Some(value) => {
                    out.insert(name.clone(), value);
                }
                None => {
                    let reference = expr
                        .references()
                        .into_iter()
                        .find(|r| self.lookup(r).is_none())
                        .map(|r| format!("${{{}.{}}}", r.resource, r.path));
                    return Err(ResolveError::NoValue {
                        input: name.clone(),
                        reference,
                    });
                }
            }
        }
        Ok(out)
    }
}

/// Why a step's inputs cannot be sent; the step then fails without reaching the cloud.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ResolveError {
    /// A map step could not be made from its members' inputs.
    #[error("{0}")]
    Map(String),
    /// The value is a sensitive-value marker: state holds only a digest of the secret.
    #[error(
        "input `{input}` refers to a secret that state keeps only as a digest, so it cannot be sent"
    )]
    SecretDigest { input: String },
    /// A reference (shown as `${resource.path}` when one can be named) has no value yet.
    #[error(
        "input `{input}` refers to {}, which has no value (its resource did not report it)",
        .reference.as_deref().unwrap_or("a reference")
    )]
    NoValue {
        input: String,
        reference: Option<String>,
    },
}

/// The members of the object `value` named in `fields`, copied into an object of their own (an
/// object with no such member, and anything but an object, give an empty object: no path is found in
/// either).
fn only(value: &Value, fields: &HashSet<String>) -> Value {
    let kept = match value {
        Value::Object(map) => map
            .iter()
            .filter(|(k, _)| fields.contains(k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        _ => Map::new(),
    };
    Value::Object(kept)
}

/// The value at a dotted path inside a JSON value.
pub(crate) fn get_path<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |v, part| match v {
        Value::Object(map) => map.get(part),
        Value::Array(items) => part.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// True if a sensitive-value marker appears anywhere in `value` (such inputs cannot be sent again:
/// the state holds only a digest of the secret).
pub(crate) fn has_marker(value: &Value) -> bool {
    match value {
        Value::Object(map) => {
            crate::state::sensitive::is_redacted(value) || map.values().any(has_marker)
        }
        Value::Array(items) => items.iter().any(has_marker),
        _ => false,
    }
}

/// A JSON object as a map (anything else is empty).
pub(crate) fn as_map(value: &Value) -> Map<String, Value> {
    match value {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::apply::steps::Desired;
    use crate::diag::{SourceFile, Span};
    use crate::stack::{Expr, ExprKind, Loc};

    fn reference(resource: &str, path: &str) -> Expr {
        let loc = Loc {
            source: SourceFile::new("t", ""),
            span: Span::new(0, 0),
        };
        Expr {
            kind: ExprKind::Ref(Reference {
                resource: resource.to_owned(),
                path: path.to_owned(),
                loc: loc.clone(),
            }),
            loc,
            sensitive: false,
        }
    }

    fn known() -> KnownValues {
        let mut k = KnownValues::default();
        k.set(
            "store",
            Known {
                id: String::from("/s/store"),
                inputs: json!({"name": "mistore", "key": {"$sensitive": "hmac-sha256:ab"}}),
                outputs: json!({"primary_blob_endpoint": "https://b/", "identity": {"principal_id": "p-1"}}),
            },
        );
        k
    }

    fn desired(name: &str, expr: Expr) -> Desired {
        let mut d = Desired::from_json(serde_json::Map::new(), Vec::new());
        d.inputs.insert(name.to_owned(), expr);
        d
    }

    #[test]
    fn references_read_the_id_outputs_then_inputs() {
        let k = known();
        let get = |path: &str| {
            k.lookup(&match reference("store", path).kind {
                ExprKind::Ref(r) => r,
                _ => unreachable!("built as a reference"),
            })
        };
        assert_eq!(get("id"), Some(json!("/s/store")));
        assert_eq!(get("identity.principal_id"), Some(json!("p-1")));
        assert_eq!(get("name"), Some(json!("mistore")));
        assert_eq!(get("missing"), None);
    }

    /// A run used to hold a second copy of every record's inputs and outputs for its references to
    /// read; it keeps only what they read, and every lookup finds what the whole record gives.
    #[test]
    fn a_run_keeps_only_what_its_references_read() {
        use crate::apply::steps::{ApplyPlan, PlannedStep};
        use crate::state::ResourceState;
        let mut state = StateFile::new("t");
        let store = || {
            ResourceState::new(
                "storage_account",
                "/s/store",
                json!({"name": "mistore", "sku": "Standard_LRS", "kind": "StorageV2"}),
                json!({"primary_blob_endpoint": "https://b/", "identity": {"principal_id": "p-1"}, "etag": "e"}),
            )
        };
        state.record("store", store());
        state.record(
            "other",
            ResourceState::new("blob", "/o", json!({"name": "x"}), json!({})),
        );
        let mut d = desired("account", reference("store", "name"));
        d.inputs.insert(
            "principal".into(),
            reference("store", "identity.principal_id"),
        );
        d.inputs.insert(
            "endpoint".into(),
            reference("store", "primary_blob_endpoint"),
        );
        d.inputs.insert("id".into(), reference("store", "id"));
        let plan = ApplyPlan {
            steps: vec![PlannedStep {
                address: "user".into(),
                resource_type: "blob".into(),
                action: crate::plan::Action::Create,
                desired: Some(d.clone()),
            }],
            ..ApplyPlan::default()
        };
        let mut known = KnownValues::for_plan(&plan, &state);
        let whole = KnownValues::from_state(&state);
        assert_eq!(known.resolve(&d), whole.resolve(&d));
        assert_eq!(
            known.resolve(&d).expect("resolves")["principal"],
            json!("p-1")
        );
        let held = known.held("store").expect("store is referred to");
        assert_eq!(held.inputs, json!({"name": "mistore"}));
        assert_eq!(
            held.outputs,
            json!({"primary_blob_endpoint": "https://b/", "identity": {"principal_id": "p-1"}})
        );
        assert!(known.held("other").is_none());
        // Values recorded during the run are kept the same way.
        known.set("other", Known::from(&store()));
        assert!(known.held("other").is_none());
        let mut changed = Known::from(&store());
        changed.inputs["name"] = json!("renamed");
        known.set("store", changed);
        assert_eq!(
            known.held("store").expect("kept").inputs,
            json!({"name": "renamed"})
        );
        // A destroy resolves nothing and keeps nothing.
        let destroy = ApplyPlan {
            destroy: true,
            ..plan
        };
        assert!(
            KnownValues::for_plan(&destroy, &state)
                .held("store")
                .is_none()
        );
    }

    #[test]
    fn unknown_values_and_secret_markers_are_refused_by_name() {
        let k = known();
        let err = k
            .resolve(&desired("scope", reference("store", "nope")))
            .expect_err("no value");
        assert_eq!(
            err.to_string(),
            "input `scope` refers to ${store.nope}, which has no value (its resource did not report it)"
        );
        let err = k
            .resolve(&desired("secret", reference("store", "key")))
            .expect_err("marker");
        assert_eq!(
            err.to_string(),
            "input `secret` refers to a secret that state keeps only as a digest, so it cannot be sent"
        );
        let ok = k
            .resolve(&desired(
                "endpoint",
                reference("store", "primary_blob_endpoint"),
            ))
            .expect("resolves");
        assert_eq!(ok["endpoint"], json!("https://b/"));
    }
}
