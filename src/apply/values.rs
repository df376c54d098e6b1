//! Values known so far in a run: each resource's cloud id, applied inputs and computed outputs, from
//! state at the start and from each step as it finishes. A step's expressions are resolved against
//! them at the moment it starts, so `${endpoint.identity.principal_id}` is the value the cloud gave
//! the endpoint a moment ago.
//!
//! It only reads what it was given: it never calls the cloud, and never resolves a secret from its
//! digest (an input whose value state keeps only as a digest is refused, not sent).

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::steps::{Desired, Refreshed};
use crate::stack::Reference;
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
}

impl KnownValues {
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
        }
    }

    pub(super) fn set(&mut self, address: &str, known: Known) {
        self.map.insert(address.to_owned(), known);
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
