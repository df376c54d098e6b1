//! The ownership stamp on the wire: where a type's spec says (`arm.stamp`), a create or update writes
//! the [`Owner`] of the object (the stack's lineage and name) and a read takes it back out of what the
//! cloud returned, into [`Observed::owner`], so the inputs the planner compares never hold it.
//!
//! Pure functions over JSON values; nothing here sends a request or decides what a stamp means (the
//! engine does, `apply::ownership`).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::contract::{Observed, Owner};
use crate::specs::{FieldType, ResourceSpec};

/// The map entry (tag, container or blob metadata) holding the owner's lineage. Metadata names must
/// be C# identifiers (blob service REST, "Naming and Referencing Containers, Blobs, and Metadata"),
/// so the names use `_`, which ARM tags accept as well.
pub(crate) const LINEAGE_KEY: &str = "stackform_lineage";
/// The map entry holding the owner's stack name.
pub(crate) const STACK_KEY: &str = "stackform_stack";
const MARKER_OPEN: &str = "[stackform stack=";
const MARKER_LINEAGE: &str = " lineage=";

/// The two metadata entries of `owner` (for a blob's `x-ms-meta-*` headers).
pub(crate) fn metadata(owner: &Owner) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LINEAGE_KEY.to_owned(), owner.lineage.clone()),
        (STACK_KEY.to_owned(), owner.stack.clone()),
    ])
}

/// The owner a string map (tags, metadata) names, if it carries a lineage.
pub(crate) fn owner_of_map<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Option<Owner> {
    let lineage = get(LINEAGE_KEY).filter(|l| !l.is_empty())?;
    Some(Owner {
        lineage: lineage.to_owned(),
        stack: get(STACK_KEY).unwrap_or_default().to_owned(),
    })
}

/// The marker a text field (a role assignment's description) carries.
fn marker(owner: &Owner) -> String {
    format!(
        "{MARKER_OPEN}{}{MARKER_LINEAGE}{}]",
        owner.stack, owner.lineage
    )
}

/// Splits a text into the stack's own part and the owner its trailing marker names.
fn split_marker(text: &str) -> (&str, Option<Owner>) {
    let Some(start) = text.rfind(MARKER_OPEN) else {
        return (text, None);
    };
    let Some(inner) = text[start + MARKER_OPEN.len()..].strip_suffix(']') else {
        return (text, None);
    };
    let Some((stack, lineage)) = inner.rsplit_once(MARKER_LINEAGE) else {
        return (text, None);
    };
    if lineage.is_empty() {
        return (text, None);
    }
    let owner = Owner {
        lineage: lineage.to_owned(),
        stack: stack.to_owned(),
    };
    (text[..start].trim_end(), Some(owner))
}

/// Writes `owner`'s stamp into `inputs` where `spec` says (nothing for a type without a stamp field).
pub(crate) fn stamp_inputs(spec: &ResourceSpec, owner: &Owner, inputs: &mut Map<String, Value>) {
    let Some(place) = spec.arm.stamp.as_deref() else {
        return;
    };
    match spec.fields.get(place).map(|f| f.kind) {
        Some(FieldType::Map) => {
            let entry = inputs
                .entry(place.to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            if let Value::Object(map) = entry {
                map.insert(LINEAGE_KEY.into(), Value::String(owner.lineage.clone()));
                map.insert(STACK_KEY.into(), Value::String(owner.stack.clone()));
            }
        }
        Some(FieldType::String) => {
            let own = inputs
                .get(place)
                .and_then(Value::as_str)
                .map(|t| split_marker(t).0)
                .unwrap_or_default();
            let text = if own.is_empty() {
                marker(owner)
            } else {
                format!("{own} {}", marker(owner))
            };
            inputs.insert(place.to_owned(), Value::String(text));
        }
        _ => {}
    }
}

/// Moves the stamp out of `observed.inputs` into `observed.owner`. A field the request did not set
/// and that held only the stamp is removed, as if the cloud had returned nothing for it.
pub(crate) fn take_stamp(
    spec: &ResourceSpec,
    requested: &Map<String, Value>,
    observed: &mut Observed,
) {
    let Some(place) = spec.arm.stamp.as_deref() else {
        return;
    };
    let asked = requested.get(place).is_some_and(|v| !v.is_null());
    let Some(value) = observed.inputs.get_mut(place) else {
        return;
    };
    let emptied = match value {
        Value::Object(map) => {
            let owner = owner_of_map(|k| map.get(k).and_then(Value::as_str));
            if owner.is_some() {
                observed.owner = owner;
            }
            map.shift_remove(LINEAGE_KEY);
            map.shift_remove(STACK_KEY);
            map.is_empty()
        }
        Value::String(text) => {
            let (own, owner) = split_marker(text);
            if owner.is_some() {
                observed.owner = owner;
                *text = own.to_owned();
            }
            text.is_empty()
        }
        _ => false,
    };
    if emptied && !asked {
        observed.inputs.shift_remove(place);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::specs::Registry;
    use serde_json::json;

    fn owner() -> Owner {
        Owner {
            lineage: "5f0c1a9e-0000-4000-8000-000000000001".into(),
            stack: "shop".into(),
        }
    }

    fn observed(inputs: Value) -> Observed {
        Observed {
            id: "x".into(),
            inputs: serde_json::from_value(inputs).unwrap(),
            outputs: Map::new(),
            owner: None,
        }
    }

    #[test]
    fn tags_carry_the_stamp_and_read_back_without_it() {
        let reg = Registry::embedded().unwrap();
        let spec = reg.get("storage_account").unwrap();
        // The stack's own tags are kept beside the stamp.
        let mut inputs: Map<String, Value> =
            serde_json::from_value(json!({"name": "a", "tags": {"team": "ml"}})).unwrap();
        stamp_inputs(spec, &owner(), &mut inputs);
        assert_eq!(
            inputs["tags"],
            json!({"team": "ml", LINEAGE_KEY: owner().lineage, STACK_KEY: "shop"})
        );
        let asked: Map<String, Value> =
            serde_json::from_value(json!({"name": "a", "tags": {"team": "ml"}})).unwrap();
        let mut o = observed(Value::Object(inputs.clone()));
        take_stamp(spec, &asked, &mut o);
        assert_eq!(o.owner, Some(owner()));
        assert_eq!(o.inputs["tags"], json!({"team": "ml"}));
        // A stack without tags: the tags the stamp made up are not an input read back.
        let mut bare: Map<String, Value> = serde_json::from_value(json!({"name": "a"})).unwrap();
        stamp_inputs(spec, &owner(), &mut bare);
        let mut o = observed(Value::Object(bare));
        take_stamp(spec, &Map::new(), &mut o);
        assert_eq!(o.owner, Some(owner()));
        assert!(!o.inputs.contains_key("tags"), "{:?}", o.inputs);
        // Taking a field out keeps the others in their order (plans and their snapshots list them so).
        let mut o =
            observed(json!({"name": "a", "tags": {LINEAGE_KEY: "l"}, "sku": "x", "kind": "k"}));
        take_stamp(spec, &Map::new(), &mut o);
        assert_eq!(
            o.inputs.keys().map(String::as_str).collect::<Vec<_>>(),
            ["name", "sku", "kind"]
        );
        // Nothing stamped: no owner, nothing removed.
        let mut o = observed(json!({"name": "a", "tags": {}}));
        take_stamp(spec, &asked, &mut o);
        assert_eq!(o.owner, None);
        assert_eq!(o.inputs["tags"], json!({}));
    }

    #[test]
    fn a_description_carries_the_stamp_after_the_stacks_text() {
        let reg = Registry::embedded().unwrap();
        let spec = reg.get("role_assignment").unwrap();
        let mut inputs: Map<String, Value> =
            serde_json::from_value(json!({"description": "reads the data"})).unwrap();
        stamp_inputs(spec, &owner(), &mut inputs);
        let text = inputs["description"].as_str().unwrap().to_owned();
        assert_eq!(
            text,
            format!(
                "reads the data [stackform stack=shop lineage={}]",
                owner().lineage
            )
        );
        // Stamping twice does not stack markers.
        stamp_inputs(spec, &owner(), &mut inputs);
        assert_eq!(inputs["description"], json!(text));
        let asked: Map<String, Value> =
            serde_json::from_value(json!({"description": "reads the data"})).unwrap();
        let mut o = observed(Value::Object(inputs));
        take_stamp(spec, &asked, &mut o);
        assert_eq!(o.owner, Some(owner()));
        assert_eq!(o.inputs["description"], "reads the data");
        // Only a marker, and the stack set no description: no description read back.
        let mut only = Map::new();
        stamp_inputs(spec, &owner(), &mut only);
        let mut o = observed(Value::Object(only));
        take_stamp(spec, &Map::new(), &mut o);
        assert_eq!(o.owner, Some(owner()));
        assert!(!o.inputs.contains_key("description"));
        // Text that merely looks like a marker is the stack's own.
        let mut o = observed(json!({"description": "[stackform stack=x]"}));
        take_stamp(spec, &Map::new(), &mut o);
        assert_eq!(o.owner, None);
        assert_eq!(o.inputs["description"], "[stackform stack=x]");
    }

    #[test]
    fn a_type_without_a_stamp_is_left_alone() {
        let reg = Registry::embedded().unwrap();
        let mut spec = reg.get("storage_account").unwrap().clone();
        spec.arm.stamp = None;
        let mut inputs = Map::new();
        stamp_inputs(&spec, &owner(), &mut inputs);
        assert!(inputs.is_empty());
        let mut o = observed(json!({"tags": {LINEAGE_KEY: "l"}}));
        take_stamp(&spec, &Map::new(), &mut o);
        assert_eq!(o.owner, None);
    }

    #[test]
    fn metadata_names_the_owner() {
        let m = metadata(&owner());
        assert_eq!(
            owner_of_map(|k| m.get(k).map(String::as_str)),
            Some(owner())
        );
        assert_eq!(owner_of_map(|_| None), None);
    }
}
