//! The registry of resource types: the spec files embedded in the binary, loaded and checked by the
//! CLI once per command and handed to every consumer (loader, graph, planner, apply engine, provider)
//! by reference, so a registry given to one is the one they all decide by. There is deliberately no
//! global copy. It does no I/O beyond the embedded text and never names a resource type in its logic.
use indexmap::IndexMap;

use super::spec::{ResourceSpec, SpecError};

/// The embedded spec files, one per resource type, in the order they are documented.
const EMBEDDED: &[(&str, &str)] = &[
    (
        "storage_account",
        include_str!("../../specs/storage_account.yaml"),
    ),
    (
        "blob_container",
        include_str!("../../specs/blob_container.yaml"),
    ),
    ("blob", include_str!("../../specs/blob.yaml")),
    (
        "user_assigned_identity",
        include_str!("../../specs/user_assigned_identity.yaml"),
    ),
    (
        "online_endpoint",
        include_str!("../../specs/online_endpoint.yaml"),
    ),
    (
        "role_assignment",
        include_str!("../../specs/role_assignment.yaml"),
    ),
    (
        "online_deployment",
        include_str!("../../specs/online_deployment.yaml"),
    ),
];

/// All resource types stackform knows, by type name.
#[derive(Debug, Clone)]
pub struct Registry {
    types: IndexMap<String, ResourceSpec>,
}

impl Registry {
    /// Loads and checks the specs embedded in the binary.
    pub fn embedded() -> Result<Registry, SpecError> {
        let mut types = IndexMap::new();
        for (name, text) in EMBEDDED {
            let spec = ResourceSpec::parse(name, text)?;
            types.insert(spec.type_name.clone(), spec);
        }
        Ok(Registry { types })
    }

    pub fn get(&self, type_name: &str) -> Option<&ResourceSpec> {
        self.types.get(type_name)
    }

    pub(crate) fn type_names(&self) -> impl Iterator<Item = &str> {
        self.types.keys().map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = &ResourceSpec> {
        self.types.values()
    }
}

#[cfg(test)]
impl Registry {
    /// A type's spec to change, for tests that prove a spec change reaches every consumer.
    pub(crate) fn get_mut(&mut self, type_name: &str) -> Option<&mut ResourceSpec> {
        self.types.get_mut(type_name)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, Value};

    use super::*;
    use crate::specs::spec::FieldType;

    #[test]
    fn every_embedded_spec_loads() {
        let reg = Registry::embedded().expect("embedded specs are valid");
        let names: Vec<_> = reg.type_names().collect();
        assert_eq!(
            names,
            [
                "storage_account",
                "blob_container",
                "blob",
                "user_assigned_identity",
                "online_endpoint",
                "role_assignment",
                "online_deployment"
            ]
        );
    }

    #[test]
    fn references_resolve_to_fields_attributes_and_nested_paths() {
        let reg = Registry::embedded().unwrap();
        let ep = reg.get("online_endpoint").unwrap();
        assert!(ep.exports("identity.principal_id"));
        assert!(ep.exports("name"));
        assert!(ep.exports("identity.type"));
        assert!(!ep.exports("identity.nope"));
        assert!(ep.is_computed("scoring_uri"));
        let dep = reg.get("online_deployment").unwrap();
        assert!(dep.exports("environment_variables.ANY"));
        assert_eq!(
            dep.field("code_configuration.scoring_script").unwrap().kind,
            FieldType::String
        );
    }

    #[test]
    fn immutable_fields_say_why() {
        let reg = Registry::embedded().unwrap();
        let identity = reg
            .get("online_endpoint")
            .unwrap()
            .field("identity")
            .unwrap();
        assert!(identity.immutable);
        assert_eq!(
            identity.immutable_reason.as_deref(),
            Some("identity cannot change after the endpoint is created")
        );
        assert!(
            reg.get("storage_account")
                .unwrap()
                .field("name")
                .unwrap()
                .immutable
        );
    }

    #[test]
    fn durations_and_wire_spellings_convert_both_ways() {
        use serde_json::json;
        let reg = Registry::embedded().unwrap();
        let dep = reg.get("online_deployment").unwrap();
        let timeout = dep.field("request_settings.request_timeout_ms").unwrap();
        assert_eq!(timeout.to_wire(&json!(5000)), json!("PT5S"));
        assert_eq!(timeout.to_wire(&json!(500)), json!("PT0.5S"));
        assert_eq!(timeout.from_wire(&json!("PT0.5S")), json!(500));
        let delay = dep.field("liveness_probe.initial_delay").unwrap();
        assert_eq!(delay.to_wire(&json!(10)), json!("PT10S"));
        assert_eq!(delay.from_wire(&json!("PT10S")), json!(10));
        assert_eq!(delay.from_wire(&json!("PT1.5S")), json!(1.5));
        assert_eq!(delay.from_wire(&json!("soon")), json!("soon"));
        let egress = dep.field("egress_public_network_access").unwrap();
        assert_eq!(egress.to_wire(&json!("disabled")), json!("Disabled"));
        assert_eq!(egress.from_wire(&json!("DISABLED")), json!("disabled"));
        let tier = reg
            .get("storage_account")
            .unwrap()
            .field("access_tier")
            .unwrap();
        assert_eq!(tier.to_wire(&json!("Hot")), json!("Hot"));
        assert_eq!(tier.from_wire(&json!("hot")), json!("Hot"));
    }

    #[test]
    fn rollback_restores_the_versions_a_deployment_ran() {
        use serde_json::json;
        let inputs: Map<String, Value> = serde_json::from_value(json!({
            "name": "blue", "model": {"path": "/s/model"}, "environment": {"image": "i"},
            "code_configuration": {"code": "/s/code", "scoring_script": "score.py"},
        }))
        .unwrap();
        let ws = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/w";
        let outputs = json!({
            "model_id": format!("{ws}/models/ep-blue-model/versions/abc"),
            "code_id": format!("{ws}/codes/ep-blue-code/versions/def/"),
            "environment_id": "not-a-version-id",
        });
        let reg = Registry::embedded().unwrap();
        let restore = |t: &str, inputs: Map<String, Value>| {
            reg.get(t).unwrap().restore_inputs(inputs, &outputs)
        };
        let restored = restore("online_deployment", inputs.clone());
        assert_eq!(restored["model"], "azureml:ep-blue-model:abc");
        assert_eq!(
            restored["code_configuration"],
            json!({"code": "azureml:ep-blue-code:def", "scoring_script": "score.py"})
        );
        assert_eq!(restored["environment"], inputs["environment"]);
        assert_eq!(restore("storage_account", inputs.clone()), inputs);
    }

    #[test]
    fn only_role_grants_wait_for_propagation() {
        let reg = Registry::embedded().unwrap();
        let waiting: Vec<&str> = reg
            .iter()
            .filter(|s| s.waits_for_propagation())
            .map(|s| s.type_name.as_str())
            .collect();
        assert_eq!(waiting, ["role_assignment"]);
    }

    #[test]
    fn only_role_grants_adopt_an_existing_object_and_only_blobs_store_a_file() {
        let reg = Registry::embedded().unwrap();
        let adopting: Vec<&str> = reg
            .iter()
            .filter(|s| s.arm.adopt_existing)
            .map(|s| s.type_name.as_str())
            .collect();
        assert_eq!(adopting, ["role_assignment"]);
        let stored: Vec<(&str, (&str, &str))> = reg
            .iter()
            .filter_map(|s| s.stored_content().map(|c| (s.type_name.as_str(), c)))
            .collect();
        assert_eq!(stored, [("blob", ("source", "content_sha256"))]);
    }
}
