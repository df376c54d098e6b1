//! Resource types: the spec-driven common path shared by every ARM type, and one file per type only for
//! what is truly special.
//!
//! The common path reads the type's `specs/*.yaml`: the id template gives the ARM path, each field's
//! `arm:` path places its value in the PUT body and reads it back from the GET body (enum spellings
//! normalised both ways), each attribute's `arm:` path gives a computed output. So a type whose fields
//! map one-to-one onto ARM (`blob_container`, `user_assigned_identity`) has no Rust of its own.
//!
//! Special cases live beside: `storage_account` (keys, blob endpoint), `online_endpoint` (identity,
//! traffic, keys), `role_assignment` (deterministic name, adoption, replication retries), `blob` (data
//! plane), `online_deployment` (asset upload and registration, scale by PATCH, logs).
//!
//! Nothing here sends a request except through [`Arm`] or the blob client, so every call is retried,
//! authenticated and logged the same way; no secret is ever put into an [`Observed`].

pub mod blob;
pub mod online_deployment;
pub mod online_endpoint;
pub mod role_assignment;
pub mod storage_account;

use std::collections::HashMap;

use serde_json::{Map, Value, json};
use tokio::sync::Mutex;

use super::arm::Arm;
use super::config::CloudConfig;
use super::error::{ErrorKind, ProviderError};
use super::pipeline::Auth;
use super::{Observed, ResourceRequest, ResourceType, Result};
use crate::specs::{FieldSpec, FieldType, Registry, ResourceSpec};

/// What resource code needs: the configuration, the ARM client, the specs, and caches.
pub struct Ctx {
    pub config: CloudConfig,
    pub arm: Arm,
    pub registry: Registry,
    /// Blob endpoint and data-plane auth per storage account (SharedKey from `listKeys`, or Bearer when
    /// shared-key access is disabled).
    pub(crate) account_access: Mutex<HashMap<String, (url::Url, Auth)>>,
    /// The ML workspace's region, read once.
    workspace_location: tokio::sync::OnceCell<String>,
}

impl std::fmt::Debug for Ctx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Ctx {
    pub fn new(config: CloudConfig, arm: Arm, registry: Registry) -> Self {
        Self {
            config,
            arm,
            registry,
            account_access: Mutex::new(HashMap::new()),
            workspace_location: tokio::sync::OnceCell::new(),
        }
    }

    /// The ML workspace's region (endpoints and deployments must be created in it); the cloud's
    /// default location when the workspace does not say.
    pub async fn workspace_location(&self) -> Result<String> {
        self.workspace_location
            .get_or_try_init(|| async {
                let api = self.api_version(ResourceType::OnlineEndpoint)?;
                let ws = self
                    .arm
                    .get(&self.config.workspace_id(), &api)
                    .await?
                    .ok_or_else(|| {
                        ProviderError::new(
                            ErrorKind::NotFound,
                            format!("ml workspace {} does not exist", self.config.workspace),
                        )
                    })?;
                Ok(ws
                    .get("location")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .unwrap_or_else(|| self.config.location.clone()))
            })
            .await
            .cloned()
    }

    /// The spec of a type (the embedded specs cover all seven).
    pub fn spec(&self, t: ResourceType) -> Result<&ResourceSpec> {
        self.registry
            .get(t.as_str())
            .ok_or_else(|| ProviderError::invalid(format!("no spec for resource type {t}")))
    }

    /// The api-version for a type: a per-type or per-namespace override from the cloud config, else
    /// the spec's.
    pub fn api_version(&self, t: ResourceType) -> Result<String> {
        let spec = self.spec(t)?;
        let namespace = spec.arm.resource_type.split('/').next().unwrap_or_default();
        Ok(self
            .config
            .api_versions
            .get(t.as_str())
            .or_else(|| self.config.api_versions.get(namespace))
            .cloned()
            .unwrap_or_else(|| spec.arm.api_version.clone()))
    }

    /// The ARM path of a resource from its spec template, `{subscription}`, `{resource_group}` and
    /// `{workspace}` from the cloud, other placeholders from the inputs.
    pub fn path(&self, t: ResourceType, inputs: &Map<String, Value>) -> Result<String> {
        let template = &self.spec(t)?.arm.path;
        fill_template(template, |name| match name {
            "subscription" => Some(self.config.subscription_id.clone()),
            "resource_group" => Some(self.config.resource_group.clone()),
            "workspace" => Some(self.config.workspace.clone()),
            other => inputs.get(other).and_then(Value::as_str).map(str::to_owned),
        })
    }
}

/// Replaces `{name}` placeholders; names must resolve to path-safe values (no `/`, `?`, `#`).
pub fn fill_template(template: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..]
            .find('}')
            .ok_or_else(|| ProviderError::invalid(format!("bad path template {template}")))?
            + open;
        let name = &rest[open + 1..close];
        let value = lookup(name).ok_or_else(|| {
            ProviderError::invalid(format!("missing `{name}` for the resource path"))
        })?;
        if value.is_empty() || value.contains(['/', '?', '#', '\\']) {
            return Err(ProviderError::invalid(format!(
                "`{name}` value {value:?} cannot be part of a resource path"
            )));
        }
        out.push_str(&value);
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Stack spellings of enum values whose ARM spelling differs.
const ENUM_WIRE: &[(&str, &str)] = &[
    ("key", "Key"),
    ("aml_token", "AMLToken"),
    ("aad_token", "AADToken"),
    ("enabled", "Enabled"),
    ("disabled", "Disabled"),
    ("system_assigned", "SystemAssigned"),
    ("user_assigned", "UserAssigned"),
];

/// Stack value → ARM value for a field.
pub fn to_wire(field: &FieldSpec, value: &Value) -> Value {
    if let (Some(_), Some(s)) = (&field.allowed, value.as_str())
        && let Some((_, wire)) = ENUM_WIRE.iter().find(|(stack, _)| *stack == s)
    {
        return Value::String((*wire).to_owned());
    }
    value.clone()
}

/// ARM value → stack value for a field: enum values matched case-insensitively to the spec's spelling.
pub fn from_wire(field: &FieldSpec, value: &Value) -> Value {
    if let (Some(allowed), Some(s)) = (&field.allowed, value.as_str()) {
        if let Some((stack, _)) = ENUM_WIRE.iter().find(|(stack, wire)| {
            wire.eq_ignore_ascii_case(s) && allowed.iter().any(|a| a == stack)
        }) {
            return Value::String((*stack).to_owned());
        }
        if let Some(a) = allowed.iter().find(|a| a.eq_ignore_ascii_case(s)) {
            return Value::String(a.clone());
        }
    }
    value.clone()
}

/// The value at a dotted ARM path; `*` takes the first entry of a map.
pub fn get_path<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = value;
    for part in path.split('.') {
        cur = if part == "*" {
            cur.as_object()?.values().next()?
        } else {
            cur.get(part)?
        };
    }
    (!cur.is_null()).then_some(cur)
}

/// Sets the value at a dotted path, creating objects on the way.
pub fn set_path(target: &mut Value, path: &str, value: Value) {
    let mut cur = target;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, part) in parts.iter().enumerate() {
        if !cur.is_object() {
            *cur = Value::Object(Map::new());
        }
        let Value::Object(map) = cur else { return };
        if i == parts.len() - 1 {
            map.insert((*part).to_owned(), value);
            return;
        }
        cur = map
            .entry((*part).to_owned())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}

/// An input with the spec default applied.
pub fn input_or_default<'a>(
    spec: &'a ResourceSpec,
    inputs: &'a Map<String, Value>,
    name: &str,
) -> Option<&'a Value> {
    inputs
        .get(name)
        .filter(|v| !v.is_null())
        .or_else(|| spec.fields.get(name)?.default.as_ref())
}

/// A required string input.
pub fn required_str<'a>(inputs: &'a Map<String, Value>, name: &str) -> Result<&'a str> {
    inputs
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ProviderError::invalid(format!("missing required input `{name}`")))
}

/// Fields the common path does not place by their `arm:` path: the name (in the URL), objects (their
/// children carry the paths), and fields a type handles itself.
fn generic_fields<'a>(
    spec: &'a ResourceSpec,
    skip: &'a [&str],
) -> impl Iterator<Item = (&'a String, &'a FieldSpec, &'a str)> {
    spec.fields.iter().filter_map(move |(name, f)| {
        let arm = f.arm.as_deref()?;
        (arm != "name" && f.kind != FieldType::Object && !skip.contains(&name.as_str()))
            .then_some((name, f, arm))
    })
}

/// The PUT body from the spec's field mappings (defaults applied; `location` defaults to the cloud's).
pub fn spec_body(
    ctx: &Ctx,
    spec: &ResourceSpec,
    inputs: &Map<String, Value>,
    skip: &[&str],
) -> Value {
    let mut body = json!({});
    for (name, field, arm) in generic_fields(spec, skip) {
        let value = match (name.as_str(), input_or_default(spec, inputs, name)) {
            ("location", None) => Value::String(ctx.config.location.clone()),
            (_, Some(v)) => to_wire(field, v),
            (_, None) => continue,
        };
        set_path(&mut body, arm, value);
    }
    if spec.arm.tracked && body.get("location").is_none() {
        set_path(
            &mut body,
            "location",
            Value::String(ctx.config.location.clone()),
        );
    }
    body
}

/// Locations compare without case and spaces (`East US` == `eastus`).
pub fn same_location(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        s.chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .to_ascii_lowercase()
    };
    norm(a) == norm(b)
}

/// The inputs as read back from an ARM body, normalised to the stack's names and spellings, and the
/// computed outputs from the attributes' `arm:` paths. Fields without an `arm:` path (parents named in
/// the id) are echoed from the request: the resource was found at the path they built.
pub fn spec_observe(
    ctx: &Ctx,
    spec: &ResourceSpec,
    desired: &Map<String, Value>,
    body: &Value,
    skip: &[&str],
) -> Observed {
    let mut inputs = Map::new();
    for (name, field) in &spec.fields {
        if skip.contains(&name.as_str()) || field.kind == FieldType::Object {
            continue;
        }
        let Some(arm) = field.arm.as_deref() else {
            if let Some(v) = desired.get(name) {
                inputs.insert(name.clone(), v.clone());
            }
            continue;
        };
        let read = get_path(body, arm).map(|v| from_wire(field, v));
        let value = match (name.as_str(), read) {
            ("location", Some(Value::String(loc))) => {
                let wanted = desired
                    .get("location")
                    .and_then(Value::as_str)
                    .unwrap_or(&ctx.config.location);
                Value::String(if same_location(&loc, wanted) {
                    wanted.to_owned()
                } else {
                    loc
                })
            }
            ("name", Some(Value::String(n))) => {
                // ARM echoes names with its own casing; keep the requested spelling when it is the same name.
                let wanted = desired
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                Value::String(if n.eq_ignore_ascii_case(wanted) {
                    wanted.to_owned()
                } else {
                    n
                })
            }
            (_, Some(v)) => v,
            // Absent from the response: the default is what the cloud applies.
            (_, None) => match (&field.default, field.kind) {
                (Some(d), _) => d.clone(),
                (None, FieldType::Map) if desired.contains_key(name) => json!({}),
                _ => continue,
            },
        };
        inputs.insert(name.clone(), value);
    }
    let outputs = spec_outputs(spec, body);
    let id = body
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    Observed {
        id,
        inputs,
        outputs,
    }
}

/// Computed outputs from the attributes' `arm:` paths; dotted attribute names nest.
pub fn spec_outputs(spec: &ResourceSpec, body: &Value) -> Map<String, Value> {
    let mut outputs = Value::Object(Map::new());
    for (name, attr) in &spec.attributes {
        if let Some(v) = attr.arm.as_deref().and_then(|p| get_path(body, p)) {
            set_path(&mut outputs, name, v.clone());
        }
    }
    match outputs {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// The common ARM read: GET the path; 404 → `None`.
pub async fn arm_get(ctx: &Ctx, t: ResourceType, req: &ResourceRequest) -> Result<Option<Value>> {
    let path = match &req.cloud_id {
        Some(id) if !id.is_empty() => id.clone(),
        _ => ctx.path(t, &req.inputs)?,
    };
    ctx.arm.get(&path, &ctx.api_version(t)?).await
}

/// The common ARM write: PUT the body and wait for the operation.
pub async fn arm_put(
    ctx: &Ctx,
    t: ResourceType,
    req: &ResourceRequest,
    body: &Value,
) -> Result<Value> {
    let path = ctx.path(t, &req.inputs)?;
    let report = |s: &str| req.report(s);
    ctx.arm
        .put(
            &path,
            &ctx.api_version(t)?,
            body,
            &ctx.config.lro_for(t),
            &report,
        )
        .await
}

/// The common ARM delete: DELETE and wait; already gone is success.
pub async fn arm_delete(ctx: &Ctx, t: ResourceType, req: &ResourceRequest) -> Result<()> {
    let path = match &req.cloud_id {
        Some(id) if !id.is_empty() => id.clone(),
        _ => ctx.path(t, &req.inputs)?,
    };
    let report = |s: &str| req.report(s);
    ctx.arm
        .delete(&path, &ctx.api_version(t)?, &ctx.config.lro_for(t), &report)
        .await
}

/// Read / create-or-update / delete for a type that is fully described by its spec.
pub async fn generic_read(ctx: &Ctx, req: &ResourceRequest) -> Result<Option<Observed>> {
    let t = req.resource_type;
    let spec = ctx.spec(t)?;
    Ok(arm_get(ctx, t, req)
        .await?
        .map(|body| spec_observe(ctx, spec, &req.inputs, &body, &[])))
}

pub async fn generic_put(ctx: &Ctx, req: &ResourceRequest) -> Result<Observed> {
    let t = req.resource_type;
    let spec = ctx.spec(t)?;
    let body = spec_body(ctx, spec, &req.inputs, &[]);
    let done = arm_put(ctx, t, req, &body).await?;
    Ok(spec_observe(ctx, spec, &req.inputs, &done, &[]))
}

/// An error for an input of the wrong shape.
pub fn bad_input(name: &str, expected: &str) -> ProviderError {
    ProviderError::new(
        ErrorKind::Invalid,
        format!("input `{name}` must be {expected}"),
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn registry() -> Registry {
        Registry::embedded().unwrap()
    }

    /// A context over a scripted transport and a fake clock.
    pub(crate) fn ctx_with(
        config: CloudConfig,
        t: &std::sync::Arc<crate::provider::pipeline::fake::FakeTransport>,
        c: &std::sync::Arc<crate::provider::pipeline::fake::FakeClock>,
    ) -> Ctx {
        let p = crate::provider::pipeline::fake::pipeline(t, c, config.retry.clone());
        let arm = Arm::new(p, config.arm_endpoint.clone(), config.arm_scope());
        Ctx::new(config, arm, registry())
    }

    pub(crate) fn azure_config() -> CloudConfig {
        CloudConfig::azure(
            crate::provider::CloudKind::Azure,
            "sub",
            "rg",
            "ws",
            "eastus",
        )
        .unwrap()
    }

    #[test]
    fn api_versions_come_from_specs_with_overrides() {
        let t = crate::provider::pipeline::fake::FakeTransport::new(vec![]);
        let c = std::sync::Arc::new(crate::provider::pipeline::fake::FakeClock::default());
        let mut config = azure_config();
        config
            .api_versions
            .insert("Microsoft.Storage".into(), "2026-09-01".into());
        config
            .api_versions
            .insert("blob_container".into(), "2025-08-01".into());
        let ctx = ctx_with(config, &t, &c);
        assert_eq!(
            ctx.api_version(ResourceType::RoleAssignment).unwrap(),
            "2022-04-01"
        );
        assert_eq!(
            ctx.api_version(ResourceType::StorageAccount).unwrap(),
            "2026-09-01"
        );
        assert_eq!(
            ctx.api_version(ResourceType::BlobContainer).unwrap(),
            "2025-08-01"
        );
        let mut inputs = Map::new();
        inputs.insert("account".into(), json!("acct"));
        inputs.insert("name".into(), json!("c1"));
        assert_eq!(
            ctx.path(ResourceType::BlobContainer, &inputs).unwrap(),
            "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct/blobServices/default/containers/c1"
        );
    }

    #[test]
    fn spec_body_and_observe_round_trip() {
        let t = crate::provider::pipeline::fake::FakeTransport::new(vec![]);
        let c = std::sync::Arc::new(crate::provider::pipeline::fake::FakeClock::default());
        let ctx = ctx_with(azure_config(), &t, &c);
        let spec = ctx.spec(ResourceType::StorageAccount).unwrap();
        let mut inputs = Map::new();
        inputs.insert("name".into(), json!("acct"));
        inputs.insert("access_tier".into(), json!("Cool"));
        let body = spec_body(&ctx, spec, &inputs, &[]);
        assert_eq!(body["location"], "eastus");
        assert_eq!(body["sku"]["name"], "Standard_LRS");
        assert_eq!(body["kind"], "StorageV2");
        assert_eq!(body["properties"]["accessTier"], "Cool");
        assert_eq!(body["properties"]["allowSharedKeyAccess"], true);
        assert!(body.get("name").is_none(), "the name travels in the path");
        // What ARM sends back (different casing, extra read-only fields) reads as the same inputs.
        let mut live = body.clone();
        live["name"] = json!("ACCT");
        live["location"] = json!("EastUS");
        live["id"] = json!(
            "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct"
        );
        live["properties"]["minimumTlsVersion"] = json!("tls1_2");
        live["properties"]["primaryEndpoints"] =
            json!({"blob": "https://acct.blob.core.windows.net/"});
        live["properties"]["provisioningState"] = json!("Succeeded");
        let obs = spec_observe(&ctx, spec, &inputs, &live, &[]);
        assert_eq!(obs.inputs["name"], "acct");
        assert_eq!(obs.inputs["location"], "eastus");
        assert_eq!(obs.inputs["access_tier"], "Cool");
        assert_eq!(obs.inputs["minimum_tls_version"], "TLS1_2");
        assert_eq!(
            obs.outputs["primary_blob_endpoint"],
            "https://acct.blob.core.windows.net/"
        );
        assert_eq!(obs.outputs["provisioning_state"], "Succeeded");
        assert_eq!(obs.id, live["id"]);
    }

    #[test]
    fn templates_fill_and_refuse_unsafe_values() {
        let p = fill_template("/a/{x}/b/{y}", |n| Some(format!("v{n}"))).unwrap();
        assert_eq!(p, "/a/vx/b/vy");
        assert!(fill_template("/a/{x}", |_| Some("a/b".into())).is_err());
        assert!(fill_template("/a/{x}", |_| None).is_err());
    }

    #[test]
    fn paths_and_values() {
        let mut v = json!({});
        set_path(&mut v, "properties.a.b", json!(1));
        set_path(&mut v, "properties.c", json!("x"));
        assert_eq!(v, json!({"properties":{"a":{"b":1},"c":"x"}}));
        assert_eq!(get_path(&v, "properties.a.b"), Some(&json!(1)));
        let ids = json!({"identity":{"userAssignedIdentities":{"/x":{"clientId":"c1"}}}});
        assert_eq!(
            get_path(&ids, "identity.userAssignedIdentities.*.clientId"),
            Some(&json!("c1"))
        );
        assert_eq!(get_path(&json!({"a":null}), "a"), None);
    }

    #[test]
    fn enum_spellings_round_trip() {
        let reg = registry();
        let ep = reg.get("online_endpoint").unwrap();
        let auth = ep.fields.get("auth_mode").unwrap();
        assert_eq!(to_wire(auth, &json!("aml_token")), json!("AMLToken"));
        assert_eq!(from_wire(auth, &json!("AMLToken")), json!("aml_token"));
        assert_eq!(from_wire(auth, &json!("key")), json!("key"));
        let sa = reg.get("storage_account").unwrap();
        let tls = sa.fields.get("minimum_tls_version").unwrap();
        assert_eq!(to_wire(tls, &json!("TLS1_2")), json!("TLS1_2"));
        assert_eq!(from_wire(tls, &json!("tls1_2")), json!("TLS1_2"));
    }
}
