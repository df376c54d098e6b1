//! The machine-readable plan (`stackform plan --json`, `-o plan.json`). Stable: fields are only ever
//! added; a breaking change bumps `schema_version`.
//!
//! ```text
//! {
//!   "schema_version": 1,
//!   "stack": "managed-identity",
//!   "mode": "normal" | "destroy" | "refresh-only",
//!   "prior_state": { "lineage": "<uuid>", "serial": 7 } | null,   // null: never applied
//!   "summary": { "add": 3, "change": 1, "destroy": 0, "replace": 0, "drifted": 0, "outputs_changed": 1 },
//!   "changes": [                                   // apply order; no-ops included
//!     {
//!       "address": "store",
//!       "type": "storage_account",
//!       "action": "no-op" | "create" | "update" | "replace" | "delete",
//!       "replace_order": "delete_before_create" | "create_before_delete" | null,
//!       "reasons": [ { "kind": "immutable_field", "message": "…", "field": "identity.type" } ],
//!       "dependencies": ["store"],
//!       "before": { …inputs… } | null,             // null: does not exist yet
//!       "after":  { …inputs… } | null,             // null: deleted
//!       "attributes": [
//!         { "path": "sku", "before": "Standard_LRS" | null, "after": "Standard_GRS",
//!           "sensitive": false, "forces_replacement": false, "computed": false,
//!           "content": { "before_sha256": "…", "after_sha256": "…" } | null }
//!       ]
//!     }
//!   ],
//!   "maps": [                                      // one per endpoint whose deployments have a `traffic`
//!     { "address": "endpoint", "owner_type": "online_endpoint", "owner": "my-endpoint",
//!       "field": "traffic", "map": "properties.traffic", "action": "update" | "no-op",
//!       "before": { "blue": 100 }, "interim": { … } | null, "after": { "blue": 50, "green": 50 },
//!       "members": [ { "address": "green", "key": "green", "after": 50 | null, "stays": true } ],
//!       "releases": ["old"] }                      // deletes that wait for the map
//!   ],
//!   "drift": [ { "address": "greeting", "type": "blob", "gone": false, "attributes": [ … ] } ],
//!   "outputs": [ { "name": "scoring_uri", "action": "create", "before": null,
//!                  "after": { "$unknown": true }, "sensitive": false } ],
//!   "moved": [ { "from": "store", "to": "storage" } ],   // only when any: records renamed (`moved:`), no cloud change
//!   "imports": [ { "address": "store", "id": "/subscriptions/…" } ]   // only when any: adopted at apply (`import:`)
//! }
//! ```
//!
//! Values are JSON; a value known only after apply is the object `{"$unknown": true}`; a sensitive
//! value is the string `"(sensitive)"`. Reason kinds: `not_in_state`, `removed_from_config`,
//! `destroy_requested`, `immutable_field` (+ `field`), `knock_on` (+ `upstream`, `attribute`,
//! `field`), `parent_replaced` (+ `parent`), `tainted`, `gone_from_cloud`, `type_changed`
//! (+ `from`, `to`). File text is never included, only content hashes.
//!
//! A saved plan is checked before use with [`read_saved_header`]: its `stack` and `prior_state`
//! (lineage and serial) must match the current state.
use serde_json::{Map, Value, json};

use super::action::{Action, ActionReason};
use super::model::{AttributeChange, Change, Drift, MapChange, OutputChange, Plan};
use super::value::PlanValue;

/// The `schema_version` of the JSON this build writes.
pub(crate) const PLAN_JSON_SCHEMA_VERSION: u32 = 1;

impl Plan {
    /// The documented JSON form (see the module documentation of `plan::json`).
    pub fn to_json(&self) -> Value {
        let mut doc = json!({
            "schema_version": PLAN_JSON_SCHEMA_VERSION,
            "stack": self.stack,
            "mode": self.mode.as_str(),
            "prior_state": self.prior_state.map(|s| json!({
                "lineage": s.lineage.to_string(),
                "serial": s.serial,
            })),
            "summary": {
                "add": self.summary.add,
                "change": self.summary.change,
                "destroy": self.summary.destroy,
                "replace": self.summary.replace,
                "drifted": self.summary.drifted,
                "outputs_changed": self.summary.outputs_changed,
            },
            "changes": self.changes.iter().map(change_json).collect::<Vec<_>>(),
            "maps": self.maps.iter().map(map_json).collect::<Vec<_>>(),
            "drift": self.drift.iter().map(drift_json).collect::<Vec<_>>(),
            "outputs": self.outputs.iter().map(output_json).collect::<Vec<_>>(),
        });
        // Present only when there are any, so plans without them read as before.
        if !self.moved.is_empty() {
            doc["moved"] = self
                .moved
                .iter()
                .map(|m| json!({ "from": m.from, "to": m.to }))
                .collect();
        }
        if !self.imports.is_empty() {
            doc["imports"] = self
                .imports
                .iter()
                .map(|i| json!({ "address": i.address, "id": i.id }))
                .collect();
        }
        doc
    }
}

fn map_json(m: &MapChange) -> Value {
    json!({
        "address": m.address,
        "owner_type": m.owner_type,
        "owner": m.owner,
        "field": m.field,
        "map": m.map,
        "action": m.action.as_str(),
        "before": m.before,
        "interim": m.interim,
        "after": m.after,
        "members": m.members.iter().map(|x| json!({
            "address": x.address, "key": x.key, "after": x.after, "stays": x.stays,
        })).collect::<Vec<_>>(),
        "releases": m.releases,
    })
}

fn opt(v: Option<&PlanValue>) -> Value {
    v.map_or(Value::Null, PlanValue::to_json)
}

fn change_json(c: &Change) -> Value {
    json!({
        "address": c.address,
        "type": c.type_name,
        "action": c.action.as_str(),
        "replace_order": match c.action {
            Action::Replace(order) => Value::String(order.as_str().to_string()),
            _ => Value::Null,
        },
        "reasons": c.reasons.iter().map(reason_json).collect::<Vec<_>>(),
        "dependencies": c.dependencies,
        "before": opt(c.before.as_ref()),
        "after": opt(c.after.as_ref()),
        "attributes": c.attributes.iter().map(attribute_json).collect::<Vec<_>>(),
    })
}

fn reason_json(r: &ActionReason) -> Value {
    let mut m = Map::new();
    m.insert("kind".into(), r.kind().into());
    m.insert("message".into(), r.message().into());
    match r {
        ActionReason::ImmutableField { field, .. } => {
            m.insert("field".into(), field.as_str().into());
        }
        ActionReason::KnockOn {
            upstream,
            attribute,
            field,
            ..
        } => {
            m.insert("upstream".into(), upstream.as_str().into());
            m.insert("attribute".into(), attribute.as_str().into());
            m.insert("field".into(), field.as_str().into());
        }
        ActionReason::ParentReplaced { parent, .. } => {
            m.insert("parent".into(), parent.as_str().into());
        }
        ActionReason::TypeChanged { from, to } => {
            m.insert("from".into(), from.as_str().into());
            m.insert("to".into(), to.as_str().into());
        }
        _ => {}
    }
    Value::Object(m)
}

fn attribute_json(a: &AttributeChange) -> Value {
    json!({
        "path": a.path,
        "before": opt(a.before.as_deref()),
        "after": a.after.to_json(),
        "sensitive": a.sensitive,
        "forces_replacement": a.forces_replacement,
        "computed": a.computed,
        "content": a.content.as_ref().map(|c| json!({
            "before_sha256": c.before_sha256,
            "after_sha256": c.after_sha256,
        })),
    })
}

fn drift_json(d: &Drift) -> Value {
    json!({
        "address": d.address,
        "type": d.type_name,
        "gone": d.gone,
        "attributes": d.attributes.iter().map(attribute_json).collect::<Vec<_>>(),
    })
}

fn output_json(o: &OutputChange) -> Value {
    json!({
        "name": o.name,
        "action": o.action.as_str(),
        "before": opt(o.before.as_ref()),
        "after": o.after.to_json(),
        "sensitive": o.sensitive,
    })
}

/// What a saved plan (`-o plan.json`) was made for: enough to refuse it when the state moved since
/// (compare `prior_state` with the current state's lineage and serial) or when it is another stack's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SavedPlanHeader {
    pub stack: String,
    pub mode: super::action::PlanMode,
    pub prior_state: Option<super::model::StateRef>,
}

/// A saved plan that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SavedPlanError {
    #[error(
        "the plan file has schema_version {found}; this stackform reads version {PLAN_JSON_SCHEMA_VERSION}"
    )]
    Version { found: String },
    #[error("the plan file has no valid `{field}`")]
    Field { field: &'static str },
}

/// Reads the header of a saved plan's JSON, refusing a `schema_version` this build does not write.
pub(crate) fn read_saved_header(value: &Value) -> Result<SavedPlanHeader, SavedPlanError> {
    match value.get("schema_version").and_then(Value::as_u64) {
        Some(v) if v == u64::from(PLAN_JSON_SCHEMA_VERSION) => {}
        _ => {
            return Err(SavedPlanError::Version {
                found: value
                    .get("schema_version")
                    .map_or_else(|| "(none)".to_string(), Value::to_string),
            });
        }
    }
    let stack = value
        .get("stack")
        .and_then(Value::as_str)
        .ok_or(SavedPlanError::Field { field: "stack" })?
        .to_string();
    let mode = match value.get("mode").and_then(Value::as_str) {
        Some("normal") => super::action::PlanMode::Normal,
        Some("destroy") => super::action::PlanMode::Destroy,
        Some("refresh-only") => super::action::PlanMode::RefreshOnly,
        _ => return Err(SavedPlanError::Field { field: "mode" }),
    };
    let prior_state = match value.get("prior_state") {
        None | Some(Value::Null) => None,
        Some(prior) => {
            let lineage = prior
                .get("lineage")
                .and_then(Value::as_str)
                .and_then(|s| uuid::Uuid::parse_str(s).ok())
                .ok_or(SavedPlanError::Field {
                    field: "prior_state.lineage",
                })?;
            let serial =
                prior
                    .get("serial")
                    .and_then(Value::as_u64)
                    .ok_or(SavedPlanError::Field {
                        field: "prior_state.serial",
                    })?;
            Some(super::model::StateRef { lineage, serial })
        }
    };
    Ok(SavedPlanHeader {
        stack,
        mode,
        prior_state,
    })
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::plan::action::PlanMode;
    use crate::plan::model::StateRef;

    #[test]
    fn saved_header_round_trips_and_rejects_other_versions() {
        let plan = Plan {
            mode: PlanMode::Destroy,
            stack: "demo".into(),
            prior_state: Some(StateRef {
                lineage: Uuid::from_u128(7),
                serial: 12,
            }),
            changes: Vec::new(),
            maps: Vec::new(),
            drift: Vec::new(),
            outputs: Vec::new(),
            moved: Vec::new(),
            imports: Vec::new(),
            summary: Default::default(),
        };
        let header = read_saved_header(&plan.to_json()).expect("valid");
        assert_eq!(
            header,
            SavedPlanHeader {
                stack: "demo".into(),
                mode: PlanMode::Destroy,
                prior_state: plan.prior_state,
            }
        );
        let mut j = plan.to_json();
        j["schema_version"] = json!(2);
        assert_eq!(
            read_saved_header(&j).expect_err("newer").to_string(),
            "the plan file has schema_version 2; this stackform reads version 1"
        );
        let mut j = plan.to_json();
        j["prior_state"]["serial"] = json!("x");
        assert_eq!(
            read_saved_header(&j),
            Err(SavedPlanError::Field {
                field: "prior_state.serial"
            })
        );
    }
}
