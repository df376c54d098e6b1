//! The spec-driven common path every ARM type shares: the [`Ctx`] resource code runs with (configuration,
//! ARM client, specs, caches), the body builder and observer that map fields to and from their `arm:`
//! paths, and the GET/PUT/DELETE helpers. What a type does beyond this lives in its own file beside.
//!
//! It sends requests only through [`Arm`], and never puts a secret into an [`Observed`].

use std::collections::HashMap;
use std::sync::Arc;

use indexmap::IndexMap;
use serde_json::{Map, Value, json};
use tokio::sync::Mutex;

use crate::provider::arm::Arm;
use crate::provider::config::CloudConfig;
use crate::provider::contract::{Observed, ResourceRequest, ResourceType, Result};
use crate::provider::error::{ErrorKind, ProviderError};
use crate::provider::pipeline::Auth;
use crate::specs::{FieldSpec, FieldType, Registry, ResourceSpec};

/// How reads of the blob data plane are authorised in this run. Listing blobs with a SharedKey
/// signature needs the account's key, one `listKeys` (Azure/azure-rest-api-specs:
/// specification/storage/resource-manager/Microsoft.Storage/stable/2025-01-01/storage.json,
/// `StorageAccounts_ListKeys`) per account on top of the listing; the blob service also takes a
/// bearer token for `https://storage.azure.com/.default` on every operation, List Blobs included
/// (specification/storage/data-plane/Microsoft.BlobStorage/stable/2025-11-05/blob.json: the
/// document-wide `security` `OAuth2Auth`, which `Container_ListBlobFlatSegment` does not override),
/// authorised by the caller's blob data roles (403 `AuthorizationPermissionMismatch` without one), as
/// `az storage blob list --auth-mode login` does. So reads try the engine's own token first; the first
/// refusal switches the rest of the run to `listKeys` (one wasted request per run, not per account).
/// Until one bearer read has answered, others wait for it, so a run without a data role pays exactly
/// one refusal.
#[derive(Debug, Default)]
pub(crate) struct BearerReads {
    /// [`Self::UNKNOWN`], [`Self::WORKS`] or [`Self::REFUSED`].
    state: std::sync::atomic::AtomicU8,
    /// Held by the read that is the run's first bearer trial.
    pub(crate) probe: Mutex<()>,
}

impl BearerReads {
    /// Not known yet.
    pub(crate) const UNKNOWN: u8 = 0;
    /// A bearer read succeeded.
    pub(crate) const WORKS: u8 = 1;
    /// Refused: use keys for the rest of the run.
    pub(crate) const REFUSED: u8 = 2;

    pub(crate) fn state(&self) -> u8 {
        self.state.load(std::sync::atomic::Ordering::Acquire)
    }

    pub(crate) fn set(&self, state: u8) {
        self.state
            .store(state, std::sync::atomic::Ordering::Release);
    }
}

/// What resource code needs: the configuration, the ARM client, the specs, and caches.
pub struct Ctx {
    pub config: CloudConfig,
    pub arm: Arm,
    pub registry: Arc<Registry>,
    /// Blob endpoint and data-plane auth per storage account (SharedKey from `listKeys`, or Bearer when
    /// shared-key access is disabled).
    pub(crate) account_access: Mutex<HashMap<String, (url::Url, Auth)>>,
    /// Blob endpoint per storage account and whether it allows shared keys (name lowercased); filled
    /// by a listing of the accounts too, so the blob data plane's access needs no GET of an account
    /// refresh has just listed.
    pub(crate) account_endpoints: Mutex<HashMap<String, (url::Url, bool)>>,
    /// Whether reads of the blob data plane go with the engine's own bearer token, learnt once per
    /// run.
    pub(crate) bearer_reads: BearerReads,
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
    pub fn new(config: CloudConfig, arm: Arm, registry: Arc<Registry>) -> Self {
        Self {
            config,
            arm,
            registry,
            account_access: Mutex::new(HashMap::new()),
            account_endpoints: Mutex::new(HashMap::new()),
            bearer_reads: BearerReads::default(),
            workspace_location: tokio::sync::OnceCell::new(),
        }
    }

    /// The ML workspace's region (endpoints and deployments must be created in it); the cloud's
    /// default location when the workspace does not say.
    pub(crate) async fn workspace_location(&self) -> Result<String> {
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
    pub(crate) fn api_version(&self, t: ResourceType) -> Result<String> {
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
        self.fill(&self.spec(t)?.arm.path, inputs)
    }

    /// Fills an ARM path template as [`Ctx::path`] does.
    pub(crate) fn fill(&self, template: &str, inputs: &Map<String, Value>) -> Result<String> {
        fill_template(template, |name| match name {
            "subscription" => Some(self.config.subscription_id.clone()),
            "resource_group" => Some(self.config.resource_group.clone()),
            "workspace" => Some(self.config.workspace.clone()),
            other => inputs.get(other).and_then(Value::as_str).map(str::to_owned),
        })
    }
}

/// Replaces `{name}` placeholders; names must resolve to path-safe values (no `/`, `?`, `#`).
pub(crate) fn fill_template(
    template: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<String> {
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

/// The value at a dotted ARM path; `*` takes the first entry of a map.
pub(crate) fn get_path<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
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
pub(crate) fn set_path(target: &mut Value, path: &str, value: Value) {
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
pub(crate) fn input_or_default<'a>(
    field: &'a FieldSpec,
    inputs: &'a Map<String, Value>,
    name: &str,
) -> Option<&'a Value> {
    inputs
        .get(name)
        .filter(|v| !v.is_null())
        .or(field.default.as_ref())
}

/// The `arm:` path of a field the common path maps (not `custom`), relative to its object's.
fn mapped(field: &FieldSpec) -> Option<&str> {
    field.arm.as_deref().filter(|_| field.custom.is_none())
}

/// The full ARM path of a field, nested paths joined to their objects' (`code_configuration.code` →
/// `properties.codeConfiguration.codeId`), for a type placing a `custom` field where its spec says.
pub(crate) fn arm_path(spec: &ResourceSpec, field_path: &str) -> Result<String> {
    let mut parts = field_path.split('.');
    let missing = || ProviderError::invalid(format!("the spec gives `{field_path}` no arm path"));
    let mut field = parts
        .next()
        .and_then(|p| spec.fields.get(p))
        .ok_or_else(missing)?;
    let mut path = field.arm.clone().ok_or_else(missing)?;
    for part in parts {
        field = field
            .fields
            .as_ref()
            .and_then(|f| f.get(part))
            .ok_or_else(missing)?;
        path = format!("{path}.{}", field.arm.as_deref().ok_or_else(missing)?);
    }
    Ok(path)
}

/// A required string input.
pub(crate) fn required_str<'a>(inputs: &'a Map<String, Value>, name: &str) -> Result<&'a str> {
    inputs
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ProviderError::invalid(format!("missing required input `{name}`")))
}

/// The body of a PUT from the spec: the type's `fixed` values, then each field at its `arm:` path with
/// defaults applied, in its wire spelling and format; an object's fields at their paths under it.
/// `location` defaults to the cloud's. The name (it travels in the URL) and `custom` fields are left to
/// the type's own code.
pub(crate) fn spec_body(ctx: &Ctx, spec: &ResourceSpec, inputs: &Map<String, Value>) -> Value {
    let mut body = json!({});
    for (path, value) in &spec.arm.fixed {
        set_path(&mut body, path, value.clone());
    }
    place_fields(&mut body, "", &spec.fields, inputs);
    if let Some(location) = spec.fields.get("location")
        && mapped(location).is_some()
        && input_or_default(location, inputs, "location").is_none()
    {
        set_path(
            &mut body,
            location.arm.as_deref().unwrap_or("location"),
            Value::String(ctx.config.location.clone()),
        );
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

fn place_fields(
    body: &mut Value,
    prefix: &str,
    fields: &IndexMap<String, FieldSpec>,
    inputs: &Map<String, Value>,
) {
    for (name, field) in fields {
        let Some(arm) = mapped(field).filter(|a| !(prefix.is_empty() && *a == "name")) else {
            continue;
        };
        let path = if prefix.is_empty() {
            arm.to_owned()
        } else {
            format!("{prefix}.{arm}")
        };
        match (input_or_default(field, inputs, name), &field.fields) {
            (Some(Value::Object(object)), Some(nested)) if field.kind == FieldType::Object => {
                place_fields(body, &path, nested, object);
            }
            (Some(v), _) => set_path(body, &path, field.to_wire(v)),
            (None, _) => {}
        }
    }
}

/// Locations compare without case and spaces (`East US` == `eastus`).
pub(crate) fn same_location(a: &str, b: &str) -> bool {
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
/// the id) are echoed from the request: the resource was found at the path they built. A value the
/// field's comparison finds equal to the requested one keeps the requested spelling; one the response
/// leaves out reads as its default (what the cloud applies). An optional object is read back only when
/// the stack sets it, and an empty map only when the stack sets it: the service fills in what the stack
/// does not manage. `custom` fields are left to the type's own code.
pub(crate) fn spec_observe(
    ctx: &Ctx,
    spec: &ResourceSpec,
    desired: &Map<String, Value>,
    body: &Value,
) -> Observed {
    let mut inputs = read_fields(body, "", &spec.fields, desired);
    for (name, value) in inputs.iter_mut() {
        match (name.as_str(), &*value) {
            ("location", Value::String(loc)) => {
                let wanted = desired
                    .get("location")
                    .and_then(Value::as_str)
                    .unwrap_or(&ctx.config.location);
                if same_location(loc, wanted) {
                    *value = Value::String(wanted.to_owned());
                }
            }
            ("name", Value::String(n)) => {
                // ARM echoes names with its own casing; keep the requested spelling when it is the same name.
                if let Some(wanted) = desired.get("name").and_then(Value::as_str)
                    && n.eq_ignore_ascii_case(wanted)
                {
                    *value = Value::String(wanted.to_owned());
                }
            }
            _ => {}
        }
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
        owner: None,
    }
}

fn read_fields(
    body: &Value,
    prefix: &str,
    fields: &IndexMap<String, FieldSpec>,
    desired: &Map<String, Value>,
) -> Map<String, Value> {
    let mut inputs = Map::new();
    for (name, field) in fields {
        if field.custom.is_some() {
            continue;
        }
        let wanted = desired.get(name).filter(|v| !v.is_null());
        let Some(arm) = field.arm.as_deref() else {
            if let Some(v) = wanted {
                inputs.insert(name.clone(), v.clone());
            }
            continue;
        };
        let path = if prefix.is_empty() {
            arm.to_owned()
        } else {
            format!("{prefix}.{arm}")
        };
        if let (FieldType::Object, Some(nested)) = (field.kind, &field.fields) {
            let empty = Map::new();
            let object = match wanted {
                Some(Value::Object(o)) => o,
                _ if field.required => &empty,
                _ => continue,
            };
            inputs.insert(
                name.clone(),
                Value::Object(read_fields(body, &path, nested, object)),
            );
            continue;
        }
        let value = match get_path(body, &path).map(|v| field.from_wire(v)) {
            Some(Value::Object(m)) if m.is_empty() && wanted.is_none() => continue,
            Some(live) => match wanted {
                Some(w) if field.comparison().same(w, &live) => w.clone(),
                _ => live,
            },
            None => match (&field.default, field.kind) {
                (Some(d), _) => d.clone(),
                (None, FieldType::Map) if wanted.is_some() => json!({}),
                _ => continue,
            },
        };
        inputs.insert(name.clone(), value);
    }
    inputs
}

/// Computed outputs from the attributes' `arm:` paths (or their `arm_fallback`); dotted attribute
/// names nest.
pub(crate) fn spec_outputs(spec: &ResourceSpec, body: &Value) -> Map<String, Value> {
    let mut outputs = Value::Object(Map::new());
    for (name, attr) in &spec.attributes {
        let at = |path: &Option<String>| path.as_deref().and_then(|p| get_path(body, p));
        if let Some(v) = at(&attr.arm).or_else(|| at(&attr.arm_fallback)) {
            set_path(&mut outputs, name, v.clone());
        }
    }
    match outputs {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// The common ARM read: GET the path; 404 → `None`.
pub(crate) async fn arm_get(
    ctx: &Ctx,
    t: ResourceType,
    req: &ResourceRequest,
) -> Result<Option<Value>> {
    let path = match &req.cloud_id {
        Some(id) if !id.is_empty() => id.clone(),
        _ => ctx.path(t, &req.inputs)?,
    };
    ctx.arm.get(&path, &ctx.api_version(t)?).await
}

/// The common ARM write: PUT the body and wait for the operation.
pub(crate) async fn arm_put(
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
pub(crate) async fn arm_delete(ctx: &Ctx, t: ResourceType, req: &ResourceRequest) -> Result<()> {
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
pub(crate) async fn generic_read(ctx: &Ctx, req: &ResourceRequest) -> Result<Option<Observed>> {
    let t = req.resource_type;
    let spec = ctx.spec(t)?;
    Ok(arm_get(ctx, t, req)
        .await?
        .map(|body| spec_observe(ctx, spec, &req.inputs, &body)))
}

pub(crate) async fn generic_put(ctx: &Ctx, req: &ResourceRequest) -> Result<Observed> {
    let t = req.resource_type;
    let spec = ctx.spec(t)?;
    let body = spec_body(ctx, spec, &req.inputs);
    let done = arm_put(ctx, t, req, &body).await?;
    Ok(spec_observe(ctx, spec, &req.inputs, &done))
}

/// An error for an answer of the cloud that lacks what the operation needs.
pub fn failed(message: impl Into<String>) -> ProviderError {
    ProviderError::new(ErrorKind::Failed, message)
}

#[cfg(test)]
pub(crate) mod tests {
    // The module's own file, by its full path (an inline module's `super`).
    use crate::provider::resources::common::*;

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
        Ctx::new(config, arm, std::sync::Arc::new(registry()))
    }

    pub(crate) fn azure_config() -> CloudConfig {
        CloudConfig::azure(
            crate::provider::config::CloudKind::Azure,
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
        let body = spec_body(&ctx, spec, &inputs);
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
        let obs = spec_observe(&ctx, spec, &inputs, &live);
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
        assert_eq!(auth.to_wire(&json!("aml_token")), json!("AMLToken"));
        assert_eq!(auth.from_wire(&json!("AMLToken")), json!("aml_token"));
        assert_eq!(auth.from_wire(&json!("key")), json!("key"));
        let sa = reg.get("storage_account").unwrap();
        let tls = sa.fields.get("minimum_tls_version").unwrap();
        assert_eq!(tls.to_wire(&json!("TLS1_2")), json!("TLS1_2"));
        assert_eq!(tls.from_wire(&json!("tls1_2")), json!("TLS1_2"));
    }
}
