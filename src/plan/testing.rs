//! Test support for planning and rendering: a small stack builder that mirrors what the loader
//! produces (spec defaults filled in), the reference scenario of the managed-identity guide, and a
//! fake apply that turns a stack into the state a successful apply would record.
#![cfg(test)]

use std::collections::HashMap;
use std::path::PathBuf;

use indexmap::IndexMap;
use serde_json::{Value, json};
use uuid::Uuid;

use super::snapshot::{DesiredExtras, FileContent, Live, Snapshot, content_hash_record};
use crate::diag::{SourceFile, Span};
use crate::graph::{self, ResourceGraph};
use crate::specs::{FieldSpec, FieldType, Registry};
use crate::stack::{
    CloudSection, Expr, ExprKind, Loc, Output, Reference, Resource, Stack, TemplatePart,
};
use crate::state::{ResourceState, StateFile};

pub(crate) const DIR: &str = "/work/demo";
pub(crate) const LINEAGE: Uuid = Uuid::from_u128(0x0f0e_0d0c_0b0a_4908_8706_0504_0302_0100);

fn loc() -> Loc {
    Loc {
        source: SourceFile::new("stack.yaml", "x\n"),
        span: Span::new(0, 1),
    }
}

pub(crate) fn e(kind: ExprKind) -> Expr {
    Expr {
        kind,
        loc: loc(),
        sensitive: false,
    }
}

pub(crate) fn s(v: &str) -> ExprKind {
    ExprKind::String(v.to_string())
}

pub(crate) fn int(v: i64) -> ExprKind {
    ExprKind::Int(v)
}

pub(crate) fn path(rel: &str) -> ExprKind {
    ExprKind::Path(PathBuf::from(DIR).join(rel))
}

pub(crate) fn r(resource: &str, path: &str) -> ExprKind {
    ExprKind::Ref(reference(resource, path))
}

fn reference(resource: &str, path: &str) -> Reference {
    Reference {
        resource: resource.to_string(),
        path: path.to_string(),
        loc: loc(),
    }
}

/// `text${resource.path}text`.
pub(crate) fn tpl(parts: &[(&str, Option<(&str, &str)>)]) -> ExprKind {
    let mut out = Vec::new();
    for (text, rf) in parts {
        if !text.is_empty() {
            out.push(TemplatePart::Text((*text).to_string()));
        }
        if let Some((res, p)) = rf {
            out.push(TemplatePart::Ref(reference(res, p)));
        }
    }
    ExprKind::Template(out)
}

pub(crate) fn map(entries: Vec<(&str, ExprKind)>) -> ExprKind {
    ExprKind::Map(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), e(v)))
            .collect(),
    )
}

pub(crate) fn sha(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

pub(crate) fn text_content(text: &str) -> FileContent {
    FileContent {
        sha256: sha(text),
        text: Some(text.to_string()),
    }
}

pub(crate) fn folder_content(seed: &str) -> FileContent {
    FileContent {
        sha256: sha(seed),
        text: None,
    }
}

/// Builds a [`Stack`] the way the loader would: spec defaults are filled in.
pub(crate) struct StackBuilder {
    registry: Registry,
    resources: IndexMap<String, Resource>,
    outputs: IndexMap<String, Output>,
}

impl StackBuilder {
    pub(crate) fn new() -> Self {
        StackBuilder {
            registry: Registry::embedded().expect("embedded specs load"),
            resources: IndexMap::new(),
            outputs: IndexMap::new(),
        }
    }

    pub(crate) fn res(
        mut self,
        name: &str,
        type_name: &str,
        inputs: Vec<(&str, ExprKind)>,
    ) -> Self {
        let spec = self.registry.get(type_name).expect("known type");
        let mut given: IndexMap<String, Expr> = inputs
            .into_iter()
            .map(|(k, v)| (k.to_string(), e(v)))
            .collect();
        let filled = fill_defaults(&spec.fields, &mut given);
        self.resources.insert(
            name.to_string(),
            Resource {
                name: name.to_string(),
                type_name: type_name.to_string(),
                loc: loc(),
                inputs: filled,
                depends_on: Vec::new(),
                base_file: None,
                moved_from: None,
                import: None,
            },
        );
        self
    }

    /// Gives the resource `name` a `moved: { from: FROM }`.
    pub(crate) fn moved(mut self, name: &str, from: &str) -> Self {
        if let Some(r) = self.resources.get_mut(name) {
            r.moved_from = Some((from.to_string(), loc()));
        }
        self
    }

    /// Gives the resource `name` an `import: ID`.
    pub(crate) fn import(mut self, name: &str, id: &str) -> Self {
        if let Some(r) = self.resources.get_mut(name) {
            r.import = Some((id.to_string(), loc()));
        }
        self
    }

    /// Leaves the resource `name` out of the stack.
    pub(crate) fn without(mut self, name: &str) -> Self {
        self.resources.shift_remove(name);
        self
    }

    pub(crate) fn output(mut self, name: &str, value: ExprKind) -> Self {
        self.outputs.insert(
            name.to_string(),
            Output {
                value: e(value),
                description: None,
                sensitive: false,
                loc: loc(),
            },
        );
        self
    }

    pub(crate) fn build(self) -> Stack {
        Stack {
            name: "managed-identity".to_string(),
            source: SourceFile::new("stack.yaml", "x\n"),
            dir: PathBuf::from(DIR),
            cloud: CloudSection::default(),
            backend: None,
            variables: IndexMap::new(),
            resources: self.resources,
            outputs: self.outputs,
        }
    }
}

/// Spec order, given values first, defaults for absent optional fields; nested objects too.
fn fill_defaults(
    fields: &IndexMap<String, FieldSpec>,
    given: &mut IndexMap<String, Expr>,
) -> IndexMap<String, Expr> {
    let mut out = IndexMap::new();
    for (name, f) in fields {
        match given.shift_remove(name) {
            Some(mut expr) => {
                if let (FieldType::Object, Some(nested), ExprKind::Map(m)) =
                    (f.kind, &f.fields, &mut expr.kind)
                {
                    *m = fill_defaults(nested, m);
                }
                out.insert(name.clone(), expr);
            }
            None => {
                if let Some(d) = &f.default {
                    out.insert(name.clone(), e(json_expr(d)));
                }
            }
        }
    }
    out.extend(given.drain(..));
    out
}

fn json_expr(v: &Value) -> ExprKind {
    match v {
        Value::Null => ExprKind::Null,
        Value::Bool(b) => ExprKind::Bool(*b),
        Value::Number(n) => n
            .as_i64()
            .map_or_else(|| ExprKind::Float(n.as_f64().unwrap_or(0.0)), ExprKind::Int),
        Value::String(s) => ExprKind::String(s.clone()),
        Value::Array(items) => ExprKind::List(items.iter().map(|i| e(json_expr(i))).collect()),
        Value::Object(m) => ExprKind::Map(
            m.iter()
                .map(|(k, v)| (k.clone(), e(json_expr(v))))
                .collect(),
        ),
    }
}

/// The managed-identity reference scenario, as `examples/managed-identity/stack.yaml` says it.
pub(crate) fn scenario() -> StackBuilder {
    StackBuilder::new()
        .res(
            "store",
            "storage_account",
            vec![("name", s("mistore7f3a")), ("sku", s("Standard_LRS"))],
        )
        .res(
            "data",
            "blob_container",
            vec![("account", r("store", "name")), ("name", s("hello"))],
        )
        .res(
            "greeting",
            "blob",
            vec![
                ("account", r("store", "name")),
                ("container", r("data", "name")),
                ("name", s("hello.txt")),
                ("source", path("hello.txt")),
            ],
        )
        .res(
            "endpoint",
            "online_endpoint",
            vec![
                ("name", s("my-sai-endpoint-7f3a")),
                ("auth_mode", s("key")),
                ("identity", map(vec![("type", s("system_assigned"))])),
            ],
        )
        .res(
            "reader",
            "role_assignment",
            vec![
                ("principal_id", r("endpoint", "identity.principal_id")),
                ("role", s("Storage Blob Data Reader")),
                ("scope", r("store", "id")),
            ],
        )
        .res("blue", "online_deployment", blue_inputs("info"))
        .output("scoring_uri", r("endpoint", "scoring_uri"))
        .output("principal_id", r("endpoint", "identity.principal_id"))
        .output("blob_url", r("greeting", "url"))
}

pub(crate) fn blue_inputs(log_level: &str) -> Vec<(&'static str, ExprKind)> {
    vec![
        ("name", s("blue")),
        ("endpoint", r("endpoint", "name")),
        ("model", map(vec![("path", path("model"))])),
        (
            "code_configuration",
            map(vec![
                ("code", path("onlinescoring")),
                ("scoring_script", s("score.py")),
            ]),
        ),
        (
            "environment",
            map(vec![
                ("conda_file", path("environment/conda.yaml")),
                (
                    "image",
                    s("mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest"),
                ),
            ]),
        ),
        ("instance_type", s("Standard_DS3_v2")),
        ("instance_count", int(1)),
        ("traffic", int(100)),
        (
            "environment_variables",
            map(vec![
                ("STORAGE_ACCOUNT_NAME", r("store", "name")),
                ("STORAGE_BLOB_ENDPOINT", r("store", "primary_blob_endpoint")),
                ("STORAGE_CONTAINER_NAME", r("data", "name")),
                ("FILE_NAME", r("greeting", "name")),
                ("LOG_LEVEL", s(log_level)),
            ]),
        ),
    ]
}

/// A deployment like `blue` under another name, with the given traffic share.
pub(crate) fn deployment_inputs(name: &'static str, traffic: i64) -> Vec<(&'static str, ExprKind)> {
    blue_inputs("info")
        .into_iter()
        .map(|(k, v)| match k {
            "name" => (k, s(name)),
            "traffic" => (k, int(traffic)),
            _ => (k, v),
        })
        .collect()
}

/// The scenario with `blue` replaced by `green` at the given share.
pub(crate) fn green_only(traffic: i64) -> Stack {
    scenario()
        .without("blue")
        .res(
            "green",
            "online_deployment",
            deployment_inputs("green", traffic),
        )
        .build()
}

pub(crate) const HELLO: &str = "hello world\nfrom the managed identity guide\n";
pub(crate) const CONDA: &str = "name: model-env\ndependencies:\n  - python=3.10\n";

/// File contents of the scenario, as `content::desired_extras` would compute them.
pub(crate) fn scenario_extras(hello: &str) -> DesiredExtras {
    let mut extras = DesiredExtras::default();
    extras.resources.insert(
        "greeting".into(),
        IndexMap::from([("source".to_string(), text_content(hello))]),
    );
    extras.resources.insert(
        "blue".into(),
        IndexMap::from([
            ("model.path".to_string(), folder_content("model v1")),
            (
                "code_configuration.code".to_string(),
                folder_content("code v1"),
            ),
            ("environment.conda_file".to_string(), text_content(CONDA)),
        ]),
    );
    extras
}

pub(crate) fn graph_of(stack: &Stack) -> ResourceGraph {
    graph::build(stack, &Registry::embedded().expect("embedded specs load"))
        .expect("test stacks have no cycles")
}

/// The plan `plan_with` makes to be shown as text and applied (no values only the JSON plan shows).
pub(crate) fn shown_plan(
    stack: &Stack,
    snapshot: &Snapshot,
    extras: &DesiredExtras,
    mode: super::PlanMode,
) -> super::Plan {
    let registry = Registry::embedded().expect("embedded specs load");
    super::plan_with(
        stack,
        &graph_of(stack),
        &registry,
        snapshot,
        extras,
        mode,
        false,
    )
    .expect("plans")
}

/// A computed attribute's value, as a cloud would give it.
fn fake_attribute(
    address: &str,
    type_name: &str,
    arm_type: &str,
    attr: &str,
    inputs: &Value,
) -> Value {
    let name = inputs
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or(address);
    match attr {
        "id" if type_name == "blob" => json!(format!(
            "https://{}.blob.core.windows.net/{}/{}",
            inputs
                .get("account")
                .and_then(Value::as_str)
                .unwrap_or("acct"),
            inputs
                .get("container")
                .and_then(Value::as_str)
                .unwrap_or("c"),
            name
        )),
        "id" => json!(format!(
            "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/demo-rg/providers/{arm_type}/{name}"
        )),
        "url" => json!(format!("https://acct.blob.core.windows.net/{name}")),
        "primary_blob_endpoint" => json!(format!("https://{name}.blob.core.windows.net/")),
        "scoring_uri" => json!(format!(
            "https://{name}.eastus.inference.ml.azure.com/score"
        )),
        a if a.ends_with("principal_id")
            || a.ends_with("tenant_id")
            || a.ends_with("client_id") =>
        {
            json!(
                Uuid::new_v5(&Uuid::NAMESPACE_OID, format!("{address}/{a}").as_bytes()).to_string()
            )
        }
        "provisioning_state" => json!("Succeeded"),
        other => json!(format!("{address}-{other}")),
    }
}

fn set_path(target: &mut Value, path: &str, value: Value) {
    let mut cur = target;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        if !cur.is_object() {
            *cur = json!({});
        }
        let Some(obj) = cur.as_object_mut() else {
            return;
        };
        if i + 1 == parts.len() {
            obj.insert((*part).to_string(), value);
            return;
        }
        cur = obj.entry((*part).to_string()).or_insert_with(|| json!({}));
    }
}

/// The state a successful apply of `stack` records (inputs resolved, outputs made up, content hashes).
pub(crate) fn applied_state(stack: &Stack, extras: &DesiredExtras) -> StateFile {
    let registry = Registry::embedded().expect("embedded specs load");
    let graph = graph_of(stack);
    let mut state = StateFile::new(stack.name.clone());
    state.lineage = LINEAGE;
    state.serial = 4;
    let mut applied: HashMap<String, (Value, Value, String)> = HashMap::new();
    for name in graph.topo_order() {
        let res = &stack.resources[name];
        let spec = registry.get(&res.type_name).expect("known type");
        let lookup = |rf: &Reference| -> Option<Value> {
            let (inputs, outputs, id) = applied.get(&rf.resource)?;
            let target = applied_spec(stack, &registry, &rf.resource);
            if target.is_computed(&rf.path) {
                if rf.path == "id" {
                    return Some(Value::String(id.clone()));
                }
                let mut cur = outputs;
                for p in rf.path.split('.') {
                    cur = cur.get(p)?;
                }
                Some(cur.clone())
            } else {
                let mut cur = inputs;
                for p in rf.path.split('.') {
                    cur = cur.get(p)?;
                }
                Some(cur.clone())
            }
        };
        let inputs: serde_json::Map<String, Value> = res
            .inputs
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.resolve(&lookup).expect("applied references resolve"),
                )
            })
            .collect();
        let inputs = Value::Object(inputs);
        let mut outputs = json!({});
        for attr in spec.attributes.keys() {
            let v = if attr == "content_sha256" {
                extras
                    .content(name, "source")
                    .map_or(Value::Null, |c| json!(c.sha256))
            } else {
                fake_attribute(name, &res.type_name, &spec.arm.resource_type, attr, &inputs)
            };
            set_path(&mut outputs, attr, v);
        }
        let id = outputs
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or(name)
            .to_string();
        let mut record = ResourceState::new(
            res.type_name.clone(),
            id.clone(),
            inputs.clone(),
            outputs.clone(),
        );
        record.dependencies = graph
            .dependencies(name)
            .into_iter()
            .map(str::to_string)
            .collect();
        record.content_hash = extras.resources.get(name).and_then(content_hash_record);
        state.record(name, record);
        applied.insert(name.to_string(), (inputs, outputs, id));
    }
    for (name, out) in &stack.outputs {
        let lookup = |rf: &Reference| -> Option<Value> {
            let rec = state.resources.get(&rf.resource)?;
            let mut cur = if applied_spec(stack, &registry, &rf.resource).is_computed(&rf.path) {
                &rec.outputs
            } else {
                &rec.inputs
            };
            for p in rf.path.split('.') {
                cur = cur.get(p)?;
            }
            Some(cur.clone())
        };
        if let Some(v) = out.value.resolve(&lookup) {
            state.outputs.insert(name.clone(), v);
        }
    }
    state
}

fn applied_spec<'r>(
    stack: &Stack,
    registry: &'r Registry,
    address: &str,
) -> &'r crate::specs::ResourceSpec {
    registry
        .get(&stack.resources[address].type_name)
        .expect("known type")
}

/// A snapshot whose live view is exactly the state (a refresh that found nothing changed).
pub(crate) fn refreshed(state: &StateFile) -> Snapshot {
    let live = state
        .resources
        .iter()
        .map(|(a, r)| {
            (
                a.clone(),
                Live::present(r.id.clone(), r.inputs.clone(), r.outputs.clone()),
            )
        })
        .collect();
    Snapshot {
        state: Some(state.clone()),
        live,
    }
}

/// The scenario with the endpoint switched to a user-assigned identity (its identity cannot change in
/// place).
pub(crate) fn uai_endpoint_scenario() -> StackBuilder {
    let mut b = scenario();
    b = b.res(
        "endpoint",
        "online_endpoint",
        vec![
            ("name", s("my-sai-endpoint-7f3a")),
            ("auth_mode", s("key")),
            (
                "identity",
                map(vec![
                    ("type", s("user_assigned")),
                    (
                        "user_assigned_identities",
                        ExprKind::List(vec![e(s(
                            "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/demo-rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/ep-identity",
                        ))]),
                    ),
                ]),
            ),
        ],
    );
    b
}
