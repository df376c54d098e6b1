//! The specs against what the provider sends. For every ARM type, the body built from inputs that
//! leave every optional field unset carries each spec default, in its wire spelling and format, at its
//! `arm:` path; and after a default is changed in a copy of the registry, the body (and what the type's
//! own code decides from it) carries the changed one, so no default is also written in Rust. A changed
//! default read back from the cloud plans as no change.
//!
//! Test code only; it sends nothing (the transport is scripted and empty).
use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::common::tests::{azure_config, registry};
use super::common::{Ctx, get_path, spec_body};
use super::online_deployment;
use super::online_endpoint;
use super::role_assignment;
use crate::provider::pipeline::fake::{FakeClock, FakeTransport};
use crate::specs::{FieldSpec, FieldType, Plane, Registry, ResourceSpec};

fn ctx_over(registry: Registry) -> Ctx {
    let t = FakeTransport::new(vec![]);
    let c = Arc::new(FakeClock::default());
    let mut ctx = super::common::tests::ctx_with(azure_config(), &t, &c);
    ctx.registry = Arc::new(registry);
    ctx
}

/// Inputs that set only what a type requires (and each optional object as `{}`, so the defaults of its
/// fields apply).
fn minimal_inputs(spec: &ResourceSpec) -> Map<String, Value> {
    let special = match spec.type_name.as_str() {
        "role_assignment" => json!({
            "principal_id": "p-1", "role": "Reader",
            "scope": "/subscriptions/sub/resourceGroups/rg",
        }),
        "online_deployment" => json!({
            "model": "azureml:m:1", "environment": "azureml:e:1",
            "code_configuration": {"code": "./code", "scoring_script": "score.py"},
        }),
        _ => json!({}),
    };
    let mut inputs: Map<String, Value> = serde_json::from_value(special).unwrap_or_default();
    for (name, f) in &spec.fields {
        if inputs.contains_key(name) {
            continue;
        }
        let value = match (f.required, f.kind) {
            (true, _) => json!("sample1"),
            (false, FieldType::Object) if f.default.is_none() => json!({}),
            _ => continue,
        };
        inputs.insert(name.clone(), value);
    }
    inputs
}

/// The ARM body the provider would send for `inputs` (`None` for the blob data plane).
fn body_of(ctx: &Ctx, spec: &ResourceSpec, inputs: &Map<String, Value>) -> Option<Value> {
    if spec.arm.plane == Plane::Blob {
        return None;
    }
    let body = match spec.type_name.as_str() {
        "online_endpoint" => online_endpoint::endpoint_body(ctx, inputs),
        "role_assignment" => {
            role_assignment::parts(inputs).and_then(|p| role_assignment::body(ctx, inputs, &p))
        }
        "online_deployment" => {
            let ids = online_deployment::AssetIds {
                model: "m".into(),
                code: "c".into(),
                environment: "e".into(),
            };
            online_deployment::deployment_body(ctx, inputs, "eastus", &ids)
        }
        _ => Ok(spec_body(ctx, spec, inputs)),
    };
    Some(body.expect("a body for minimal inputs"))
}

/// `(field path, full arm path, default)` of every default the common mapping places: fields with an
/// `arm:` path, nested ones under their objects', except leaves the type maps itself.
fn placed_defaults(spec: &ResourceSpec) -> Vec<(String, String, Value)> {
    fn walk(
        fields: &indexmap::IndexMap<String, FieldSpec>,
        prefix: Option<(&str, &str)>,
        out: &mut Vec<(String, String, Value)>,
    ) {
        for (name, f) in fields {
            let Some(arm) = f.arm.as_deref() else {
                continue;
            };
            let (path, full) = match prefix {
                Some((p, a)) => (format!("{p}.{name}"), format!("{a}.{arm}")),
                None if arm == "name" => continue,
                None => (name.clone(), arm.to_owned()),
            };
            if let Some(nested) = &f.fields {
                walk(nested, Some((&path, &full)), out);
            } else if let (Some(d), None) = (&f.default, &f.custom) {
                out.push((path, full, d.clone()));
            }
        }
    }
    let mut out = Vec::new();
    walk(&spec.fields, None, &mut out);
    out
}

/// A different valid value for a default.
fn changed(f: &FieldSpec, d: &Value) -> Value {
    match (f.kind, d) {
        (FieldType::Integer, Value::Number(n)) => {
            let n = n.as_i64().unwrap_or_default();
            json!(if f.maximum.is_some_and(|m| n + 1 > m) {
                n - 1
            } else {
                n + 1
            })
        }
        (FieldType::Boolean, Value::Bool(b)) => json!(!b),
        (_, Value::String(s)) => match &f.allowed {
            Some(allowed) => json!(
                allowed
                    .iter()
                    .find(|a| *a != s)
                    .cloned()
                    .unwrap_or_default()
            ),
            None => json!(format!("{s}-changed")),
        },
        _ => d.clone(),
    }
}

#[test]
fn every_spec_default_and_wire_spelling_is_what_the_provider_sends() {
    let reg = registry();
    let ctx = ctx_over(reg.clone());
    let mut checked = 0;
    for spec in reg.iter() {
        let inputs = minimal_inputs(spec);
        let Some(body) = body_of(&ctx, spec, &inputs) else {
            assert!(
                placed_defaults(spec).is_empty(),
                "{}: a data-plane type with ARM defaults",
                spec.type_name
            );
            continue;
        };
        for (path, arm, default) in placed_defaults(spec) {
            let field = spec.field(&path).expect("walked field");
            assert_eq!(
                get_path(&body, &arm),
                Some(&field.to_wire(&default)),
                "{}.{path}: the default is not at `{arm}` in {body}",
                spec.type_name
            );
            checked += 1;
        }
        for (path, value) in &spec.arm.fixed {
            assert_eq!(
                get_path(&body, path),
                Some(value),
                "{}: fixed `{path}`",
                spec.type_name
            );
        }
    }
    assert!(checked >= 20, "only {checked} defaults checked");
    // Wire spellings: each one travels as the spec spells it.
    let ep = reg.get("online_endpoint").expect("endpoint spec");
    let mut inputs = minimal_inputs(ep);
    inputs.insert("auth_mode".into(), json!("aad_token"));
    inputs.insert("public_network_access".into(), json!("disabled"));
    let body = body_of(&ctx, ep, &inputs).expect("ARM type");
    assert_eq!(body["properties"]["authMode"], "AADToken");
    assert_eq!(body["properties"]["publicNetworkAccess"], "Disabled");
}

#[test]
fn a_changed_spec_default_changes_what_is_sent() {
    let reg = registry();
    for spec in reg.iter() {
        for (path, arm, default) in placed_defaults(spec) {
            // A field under an object whose own default sets it follows that default instead.
            let parent_default = path
                .rsplit_once('.')
                .and_then(|(p, _)| spec.field(p)?.default.clone());
            if parent_default.is_some() {
                continue;
            }
            let field = spec.field(&path).expect("walked field");
            let new = changed(field, &default);
            assert_ne!(new, default, "{}.{path}", spec.type_name);
            let wire = field.to_wire(&new);
            let mut copy = reg.clone();
            assert!(
                copy.get_mut(&spec.type_name)
                    .is_some_and(|s| s.set_default(&path, new.clone()))
            );
            let ctx = ctx_over(copy);
            let changed_spec = ctx.registry.get(&spec.type_name).expect("spec");
            let body =
                body_of(&ctx, changed_spec, &minimal_inputs(changed_spec)).expect("ARM type");
            assert_eq!(
                get_path(&body, &arm),
                Some(&wire),
                "{}.{path}: changed default not sent at `{arm}`",
                spec.type_name
            );
        }
    }
}

#[test]
fn defaults_the_deployment_code_decides_from_follow_the_spec() {
    let mut reg = registry();
    let dep = reg.get_mut("online_deployment").expect("spec");
    // `traffic` is no longer the deployment code's: the planner reads its default when it makes the
    // endpoint's map (`plan::tests::a_changed_traffic_default_reaches_the_map`).
    assert!(dep.set_default("environment.image", json!("example.io/other:1")));
    assert!(dep.set_default("instance_count", json!(3)));
    let ctx = ctx_over(reg);
    let mut inputs = minimal_inputs(ctx.registry.get("online_deployment").expect("spec"));
    inputs.insert("environment".into(), json!({}));
    let (image, _, _) = online_deployment::environment_content(&ctx, &inputs)
        .expect("no conda file to read")
        .expect("an environment object");
    assert_eq!(image, "example.io/other:1");
    let spec = ctx.registry.get("online_deployment").expect("spec");
    let count = crate::provider::resources::common::input_or_default(
        spec.field("instance_count").expect("count"),
        &inputs,
        "instance_count",
    );
    let patch =
        online_deployment::scale_patch(spec, count.cloned().unwrap_or_default()).expect("a patch");
    assert_eq!(patch["sku"]["capacity"], 3);
}

#[test]
fn a_changed_default_read_back_from_the_cloud_plans_as_no_change() {
    use crate::plan::{
        PlanMode,
        snapshot::{DesiredExtras, Live, Snapshot},
    };
    let mut reg = registry();
    let sa = reg.get_mut("storage_account").expect("spec");
    assert!(sa.set_default("access_tier", json!("Cool")));
    assert!(sa.set_default("minimum_tls_version", json!("TLS1_1")));
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("stack.yaml");
    std::fs::write(
        &file,
        "stack: s\nresources:\n  store:\n    type: storage_account\n    name: acct1\n",
    )
    .expect("write");
    let stack = crate::stack::load(&file, &crate::stack::LoadOptions::default(), &reg)
        .expect("the stack loads");
    let inputs: Map<String, Value> = stack.resources["store"]
        .inputs
        .iter()
        .map(|(k, e)| (k.clone(), e.resolve(&|_| None).expect("a literal")))
        .collect();
    let ctx = ctx_over(reg.clone());
    let spec = ctx.registry.get("storage_account").expect("spec");
    let mut live = spec_body(&ctx, spec, &inputs);
    assert_eq!(live["properties"]["accessTier"], "Cool");
    assert_eq!(live["properties"]["minimumTlsVersion"], "TLS1_1");
    // What the cloud answers: the body, with its id and read-only parts.
    let id =
        "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct1";
    live["id"] = json!(id);
    live["name"] = json!("acct1");
    live["properties"]["provisioningState"] = json!("Succeeded");
    let observed = super::common::spec_observe(&ctx, spec, &inputs, &live);
    assert_eq!(observed.inputs["access_tier"], "Cool");
    // Apply records the inputs it sent; a refresh reads the cloud back.
    let mut state = crate::state::StateFile::new("s");
    let sent = Value::Object(inputs.clone());
    let before = Value::Object(observed.inputs.clone());
    let outputs = Value::Object(observed.outputs.clone());
    state.record(
        "store",
        crate::state::ResourceState::new("storage_account", id, sent, outputs.clone()),
    );
    let snapshot = Snapshot {
        state: Some(state),
        live: [("store".to_string(), Live::present(id, before, outputs))]
            .into_iter()
            .collect(),
    };
    let graph = crate::graph::build(&stack, &reg).expect("a graph");
    let plan = crate::plan::plan(
        &stack,
        &graph,
        &reg,
        &snapshot,
        &DesiredExtras::default(),
        PlanMode::Normal,
    )
    .expect("a plan");
    assert_eq!(plan.changes.len(), 1);
    assert!(
        plan.changes[0].action.is_noop(),
        "{:?}",
        plan.changes[0].attributes
    );
}
