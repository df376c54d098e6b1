//! The state file's data types: what stackform remembers about a stack between runs.
//!
//! Plain serde data with no I/O. Field names are the on-disk format (version [`FORMAT_VERSION`]);
//! unknown fields are rejected so a file written by a newer stackform is never half-understood.
//! These types must never hold a secret in clear: values at a resource's `sensitive` paths are
//! replaced by markers (see [`super::sensitive`]) when recorded and again when written.

use std::fmt;

use indexmap::IndexMap;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::sensitive::{FieldPath, redact_paths};

/// The state format this build writes and the newest it reads.
pub const FORMAT_VERSION: u32 = 1;

/// One stack's state: every resource stackform manages and the stack's outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateFile {
    /// Format version; [`FORMAT_VERSION`] for files this build writes.
    pub version: u32,
    /// Fixed when the state is first created; a file with another lineage is another stack's history.
    pub lineage: Uuid,
    /// Bumped by every write; the compare-and-write guard of [`super::StateStore::write`].
    pub serial: u64,
    /// The `stack:` name of the stack file.
    pub stack: String,
    /// The subscription (and tenant, when known) the resources were created in, recorded by the
    /// first apply; absent in files written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud: Option<CloudBinding>,
    /// Resources by address (their key in the stack file), in the order they were recorded.
    #[serde(deserialize_with = "unique_keys")]
    pub resources: IndexMap<String, ResourceState>,
    /// The stack's outputs as last applied; sensitive ones are markers (set them with [`StateFile::set_output`]).
    #[serde(deserialize_with = "unique_keys")]
    pub outputs: IndexMap<String, Value>,
}

/// Which cloud a state belongs to: a state is only ever read against the subscription (and tenant)
/// its resources were created in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudBinding {
    pub subscription: String,
    /// The Entra tenant, when the run knew it (the local cloud's, `cloud.tenant`, `AZURE_TENANT_ID`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
}

impl StateFile {
    /// The subscription the state's resources live in: the recorded one, else the one the first ARM id
    /// names (states written before the binding was recorded).
    pub fn subscription(&self) -> Option<String> {
        if let Some(b) = &self.cloud {
            return Some(b.subscription.clone());
        }
        self.resources.values().find_map(|r| {
            let rest = r.id.strip_prefix('/')?;
            let mut parts = rest.split('/');
            let head = parts.next()?;
            let sub = parts.next()?;
            (head.eq_ignore_ascii_case("subscriptions") && !sub.is_empty()).then(|| sub.to_string())
        })
    }
}

/// Whether a recorded resource is known good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ResourceStatus {
    /// Created or updated successfully.
    Ready,
    /// A create or update failed halfway: the cloud object may exist (its id is kept so it is never
    /// orphaned) but is not trusted; the next plan replaces it.
    Tainted,
}

impl fmt::Display for ResourceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ResourceStatus::Ready => "ready",
            ResourceStatus::Tainted => "tainted",
        })
    }
}

/// What stackform knows about one resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceState {
    /// The resource type, as in `specs/` (`storage_account`, `online_deployment`, ...).
    #[serde(rename = "type")]
    pub resource_type: String,
    /// The cloud's id for it: an ARM id, or a blob URL for data-plane objects.
    pub id: String,
    pub status: ResourceStatus,
    /// The inputs last applied, as a JSON object, with sensitive values replaced by markers.
    pub inputs: Value,
    /// Attributes the cloud computed (`principal_id`, `scoring_uri`, ...), sensitive ones redacted.
    pub outputs: Value,
    /// Addresses this resource depended on when applied, so it can be destroyed in order even after
    /// it is removed from the stack file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dependencies: Vec<String>,
    /// Hash of file content the inputs reference (a blob's `source`, a deployment's code folder).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_hash: Option<String>,
    /// Paths (in `inputs` and `outputs`) whose values are secret and stored only as markers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sensitive: Vec<FieldPath>,
}

impl ResourceState {
    /// A `Ready` record with no dependencies, content hash or sensitive paths; set those fields next.
    pub fn new(
        resource_type: impl Into<String>,
        id: impl Into<String>,
        inputs: Value,
        outputs: Value,
    ) -> Self {
        Self {
            resource_type: resource_type.into(),
            id: id.into(),
            status: ResourceStatus::Ready,
            inputs,
            outputs,
            dependencies: Vec::new(),
            content_hash: None,
            sensitive: Vec::new(),
        }
    }

    /// Drops the spare room of its inputs and outputs (see [`compact`]) and of its lists.
    pub(crate) fn compact(&mut self) {
        compact(&mut self.inputs);
        compact(&mut self.outputs);
        self.dependencies.shrink_to_fit();
        self.sensitive.shrink_to_fit();
    }

    /// Replaces values at the `sensitive` paths of inputs and outputs with markers keyed by `lineage`.
    /// Idempotent. Returns how many values were replaced.
    pub fn redact(&mut self, lineage: &Uuid) -> usize {
        redact_paths(&mut self.inputs, &self.sensitive, lineage)
            + redact_paths(&mut self.outputs, &self.sensitive, lineage)
    }
}

/// `value` with no spare room in its objects and arrays, the same entries in the same order. A state
/// holds one record per resource, each of a few objects grown by doubling as they were built or
/// parsed: up to half of each object's room (112 bytes an entry) was spare, for as long as the
/// record was kept.
pub(crate) fn compact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let entries = std::mem::take(map);
            let mut exact = Map::with_capacity(entries.len());
            for (key, mut v) in entries {
                compact(&mut v);
                exact.insert(key, v);
            }
            *map = exact;
        }
        Value::Array(items) => {
            items.shrink_to_fit();
            items.iter_mut().for_each(compact);
        }
        _ => {}
    }
}

impl StateFile {
    /// An empty state for `stack` with a fresh lineage and serial 0 (nothing written yet).
    pub fn new(stack: impl Into<String>) -> Self {
        Self {
            version: FORMAT_VERSION,
            lineage: Uuid::new_v4(),
            serial: 0,
            stack: stack.into(),
            cloud: None,
            resources: IndexMap::new(),
            outputs: IndexMap::new(),
        }
    }

    /// Records (inserts or replaces) a resource after redacting its sensitive paths. This is how the
    /// apply engine records a created, updated or tainted resource; the previous record, if any, is
    /// returned. An existing record keeps its position, a new one goes last.
    pub fn record(
        &mut self,
        address: impl Into<String>,
        mut resource: ResourceState,
    ) -> Option<ResourceState> {
        resource.redact(&self.lineage);
        resource.compact();
        self.resources.insert(address.into(), resource)
    }

    /// Drops the spare room of every record's values (see [`compact`]); done to a state as read, whose
    /// objects grew by doubling while they were parsed.
    pub(crate) fn compact(&mut self) {
        for record in self.resources.values_mut() {
            record.compact();
        }
        // The records themselves: 10,000 grew room for 16,384 (5 MB where 3 would do).
        self.resources.shrink_to_fit();
    }

    /// Sets a stack output; a sensitive one is stored as a marker (the `output` command shows it as
    /// `(sensitive)`, see [`super::sensitive::is_redacted`]).
    #[cfg(test)]
    pub(crate) fn set_output(&mut self, name: impl Into<String>, value: Value, sensitive: bool) {
        let value = if sensitive && !value.is_null() {
            super::sensitive::redacted(&self.lineage, &value)
        } else {
            value
        };
        self.outputs.insert(name.into(), value);
    }

    /// Marks a recorded resource `Tainted`; false if there is no such address.
    pub fn taint(&mut self, address: &str) -> bool {
        match self.resources.get_mut(address) {
            Some(resource) => {
                resource.status = ResourceStatus::Tainted;
                true
            }
            None => false,
        }
    }

    /// Redacts every resource (idempotent); done before each write as a second line of defence
    /// against a caller that put a secret into `inputs` directly.
    pub(crate) fn redact_all(&mut self) -> usize {
        let lineage = self.lineage;
        self.resources
            .values_mut()
            .map(|resource| resource.redact(&lineage))
            .sum()
    }

    /// How `keys` differ between `before` (each key's record before a change; `None`: absent) and
    /// this state: a record now present and different is set, one now absent is removed. Records
    /// are copied redacted.
    pub(crate) fn changes<'a>(
        &self,
        before: impl IntoIterator<Item = (&'a String, &'a Option<ResourceState>)>,
    ) -> Changes {
        let mut changes = Changes::default();
        for (key, old) in before {
            match (self.resources.get(key), old) {
                (Some(now), Some(old)) if now == old => {}
                (Some(now), _) => {
                    let mut now = now.clone();
                    now.redact(&self.lineage);
                    changes.set.insert(key.clone(), now);
                }
                (None, Some(_)) => changes.remove.push(key.clone()),
                (None, None) => {}
            }
        }
        changes
    }

    /// Addresses of recorded resources that list `address` as a dependency, in state order.
    pub(crate) fn dependents_of(&self, address: &str) -> Vec<&str> {
        self.resources
            .iter()
            .filter(|(_, r)| r.dependencies.iter().any(|d| d == address))
            .map(|(a, _)| a.as_str())
            .collect()
    }
}

/// One state write as the journal keeps it: records set (inserted or replaced) or removed, and the
/// stack's outputs when they changed. Built from a [`StateFile`] (see [`StateFile::changes`]), so its
/// records are redacted like the state file's.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Changes {
    #[serde(
        default,
        skip_serializing_if = "IndexMap::is_empty",
        deserialize_with = "unique_keys"
    )]
    pub set: IndexMap<String, ResourceState>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<IndexMap<String, Value>>,
}

impl Changes {
    /// Applies the changes to `state` (the serial is the caller's business). Applying the same
    /// changes twice gives the same state: every change is absolute.
    pub(crate) fn apply_to(self, state: &mut StateFile) {
        for address in &self.remove {
            state.resources.shift_remove(address);
        }
        for (address, resource) in self.set {
            state.record(address, resource);
        }
        if let Some(outputs) = self.outputs {
            state.outputs = outputs;
        }
    }
}

/// The records a write is about to change, as they were before: collect them with
/// [`watch`](Self::watch) before changing a state, then [`StateFile::changes`] gives what changed.
#[derive(Debug, Clone, Default)]
pub(crate) struct Touched {
    before: IndexMap<String, Option<ResourceState>>,
}

impl Touched {
    /// Remembers `key`'s record in `state` as it is now, unless it is already watched (the first
    /// look is the "before").
    pub(crate) fn watch(&mut self, state: &StateFile, key: &str) {
        if !self.before.contains_key(key) {
            self.before
                .insert(key.to_owned(), state.resources.get(key).cloned());
        }
    }

    /// What changed in `state` among the watched records.
    pub(crate) fn changes(&self, state: &StateFile) -> Changes {
        state.changes(&self.before)
    }
}

/// Deserializes a JSON object into an `IndexMap`, rejecting duplicate keys (serde's default would
/// silently keep the last one, hiding a damaged or hand-merged file).
fn unique_keys<'de, D, V>(deserializer: D) -> Result<IndexMap<String, V>, D::Error>
where
    D: Deserializer<'de>,
    V: Deserialize<'de>,
{
    struct UniqueKeys<V>(std::marker::PhantomData<V>);

    impl<'de, V: Deserialize<'de>> Visitor<'de> for UniqueKeys<V> {
        type Value = IndexMap<String, V>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object with unique keys")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
            let mut map = IndexMap::with_capacity(access.size_hint().unwrap_or(0));
            while let Some((key, value)) = access.next_entry::<String, V>()? {
                if map.contains_key(&key) {
                    return Err(serde::de::Error::custom(format_args!(
                        "duplicate key `{key}`"
                    )));
                }
                map.insert(key, value);
            }
            Ok(map)
        }
    }

    deserializer.deserialize_map(UniqueKeys(std::marker::PhantomData))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn compact_keeps_every_entry_in_its_order() {
        let mut value = json!({"z": 1, "a": {"y": [3, {"b": null, "a": "x"}], "c": true}, "m": []});
        let before = value.to_string();
        compact(&mut value);
        assert_eq!(value.to_string(), before);
        let keys: Vec<&String> = value
            .as_object()
            .map(|m| m.keys().collect())
            .unwrap_or_default();
        assert_eq!(keys, ["z", "a", "m"]);
    }

    fn sample() -> StateFile {
        let mut state = StateFile::new("managed-identity");
        let mut store = ResourceState::new(
            "storage_account",
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/mistore7f3a",
            json!({ "name": "mistore7f3a", "sku": "Standard_LRS" }),
            json!({ "primary_blob_endpoint": "https://mistore7f3a.blob.core.windows.net/" }),
        );
        store.sensitive = vec![FieldPath::parse("access_key").expect("valid path")];
        state.record("store", store);
        let mut data = ResourceState::new(
            "blob_container",
            "/subscriptions/s/.../containers/hello",
            json!({ "name": "hello" }),
            json!({}),
        );
        data.dependencies = vec![String::from("store")];
        state.record("data", data);
        state
            .outputs
            .insert(String::from("scoring_uri"), json!("https://x/score"));
        state
    }

    #[test]
    fn serializes_with_documented_field_names_and_round_trips() {
        let state = sample();
        let text = serde_json::to_string_pretty(&state).expect("serialize");
        for field in [
            "\"version\": 1",
            "\"lineage\"",
            "\"serial\": 0",
            "\"stack\": \"managed-identity\"",
            "\"type\": \"storage_account\"",
            "\"status\": \"Ready\"",
            "\"dependencies\"",
            "\"sensitive\"",
        ] {
            assert!(text.contains(field), "missing {field} in {text}");
        }
        let back: StateFile = serde_json::from_str(&text).expect("parse");
        assert_eq!(back, state);
    }

    #[test]
    fn the_subscription_is_the_recorded_one_else_the_first_arm_ids() {
        let mut state = sample();
        assert_eq!(state.subscription().as_deref(), Some("s"));
        state.cloud = Some(CloudBinding {
            subscription: "sub-2".into(),
            tenant: Some("t".into()),
        });
        assert_eq!(state.subscription().as_deref(), Some("sub-2"));
        let text = serde_json::to_string(&state).expect("serialize");
        assert!(
            text.contains(r#""cloud":{"subscription":"sub-2","tenant":"t"}"#),
            "{text}"
        );
        assert_eq!(
            serde_json::from_str::<StateFile>(&text).expect("parse"),
            state
        );
        let mut blobs = StateFile::new("b");
        blobs.record(
            "b",
            ResourceState::new("blob", "https://a.blob/c/x", json!({}), json!({})),
        );
        assert_eq!(blobs.subscription(), None);
    }

    #[test]
    fn record_redacts_sensitive_inputs_and_outputs() {
        let mut state = StateFile::new("s");
        let mut r = ResourceState::new(
            "storage_account",
            "id",
            json!({ "name": "n", "access_key": "AAA-secret" }),
            json!({ "access_key": "BBB-secret" }),
        );
        r.sensitive = vec![FieldPath::parse("access_key").expect("valid path")];
        state.record("store", r);
        let text = serde_json::to_string(&state).expect("serialize");
        assert!(
            !text.contains("AAA-secret") && !text.contains("BBB-secret"),
            "{text}"
        );
    }

    #[test]
    fn sensitive_outputs_are_stored_as_markers() {
        let mut state = StateFile::new("s");
        state.set_output("key", json!("primary-key-secret"), true);
        state.set_output("uri", json!("https://x/score"), false);
        assert!(crate::state::sensitive::is_redacted(&state.outputs["key"]));
        assert_eq!(state.outputs["uri"], "https://x/score");
        let text = serde_json::to_string(&state).expect("serialize");
        assert!(!text.contains("primary-key-secret"), "{text}");
    }

    #[test]
    fn duplicate_addresses_and_unknown_fields_are_rejected() {
        let state = sample();
        let text = serde_json::to_string(&state).expect("serialize");
        let dup = text.replacen("\"data\":", "\"store\":", 1);
        let err = serde_json::from_str::<StateFile>(&dup).expect_err("duplicate must fail");
        assert!(err.to_string().contains("duplicate key `store`"), "{err}");
        let unknown = text.replacen("\"serial\"", "\"colour\":1,\"serial\"", 1);
        assert!(serde_json::from_str::<StateFile>(&unknown).is_err());
    }

    #[test]
    fn taint_and_dependents() {
        let mut state = sample();
        assert!(state.taint("store"));
        assert!(!state.taint("nope"));
        assert_eq!(state.resources["store"].status, ResourceStatus::Tainted);
        assert_eq!(state.dependents_of("store"), vec!["data"]);
        assert!(state.dependents_of("data").is_empty());
    }
}
