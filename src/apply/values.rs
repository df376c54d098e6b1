//! Values known so far in a run: each resource's cloud id, applied inputs and computed outputs, from
//! state at the start and from each step as it finishes. A step's expressions are resolved against
//! them at the moment it starts, so `${endpoint.identity.principal_id}` is the value the cloud gave
//! the endpoint a moment ago.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::steps::Desired;
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
    pub fn from_state(state: &StateFile) -> Self {
        Self {
            map: state
                .resources
                .iter()
                .map(|(a, r)| (a.clone(), Known::from(r)))
                .collect(),
        }
    }

    pub fn set(&mut self, address: &str, known: Known) {
        self.map.insert(address.to_owned(), known);
    }

    pub fn remove(&mut self, address: &str) {
        self.map.remove(address);
    }

    /// The value of `${resource.path}`: `id` is the cloud id; other paths look in the computed
    /// outputs first, then in the applied inputs.
    pub fn lookup(&self, reference: &Reference) -> Option<Value> {
        let known = self.map.get(&reference.resource)?;
        if reference.path == "id" {
            return Some(Value::String(known.id.clone()));
        }
        get_path(&known.outputs, &reference.path)
            .or_else(|| get_path(&known.inputs, &reference.path))
            .filter(|v| !v.is_null())
            .cloned()
    }

    /// Resolves every desired input; the error names the first reference with no value yet.
    pub fn resolve(&self, desired: &Desired) -> Result<Map<String, Value>, String> {
        let lookup = |r: &Reference| self.lookup(r);
        let mut out = Map::with_capacity(desired.inputs.len());
        for (name, expr) in &desired.inputs {
            match expr.resolve(&lookup) {
                Some(value) => {
                    out.insert(name.clone(), value);
                }
                None => {
                    let missing = expr
                        .references()
                        .into_iter()
                        .find(|r| self.lookup(r).is_none())
                        .map(|r| format!("${{{}.{}}}", r.resource, r.path))
                        .unwrap_or_else(|| String::from("a reference"));
                    return Err(format!(
                        "input `{name}` refers to {missing}, which has no value (its resource did not report it)"
                    ));
                }
            }
        }
        Ok(out)
    }
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
