//! What is special about online endpoints: the managed identity block (system- or user-assigned, ids
//! compared case-insensitively), keeping the live traffic split on every PUT (traffic belongs to the
//! deployments' `traffic` inputs, gathered by the planner into one map and set through [`set_map`]),
//! the endpoint keys and invoking the scoring URI.
//!
//! Keys and tokens are [`Secret`]s; a scoring response body is returned to the caller, never logged.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Map, Value, json};
use url::Url;

use super::common::{
    Ctx, arm_delete, arm_get, arm_path, failed, get_path, input_or_default, set_path, spec_body,
    spec_observe, spec_outputs,
};
use crate::provider::contract::{MapRequest, Observed, ResourceRequest, ResourceType, Result};
use crate::provider::error::{ErrorKind, ProviderError};
use crate::provider::pipeline::{Auth, HttpRequest};
use crate::provider::secret::Secret;
use crate::specs::{FieldSpec, FieldType, ResourceSpec};

const T: ResourceType = ResourceType::OnlineEndpoint;

/// The identity object's spec and its `type` and `user_assigned_identities` fields.
struct IdentitySpec<'a> {
    object: &'a FieldSpec,
    kind: &'a FieldSpec,
    ids: &'a FieldSpec,
    kind_path: String,
    ids_path: String,
}

impl<'a> IdentitySpec<'a> {
    fn of(spec: &'a ResourceSpec) -> Result<Self> {
        let field = |path: &str| {
            spec.field(path)
                .ok_or_else(|| ProviderError::invalid(format!("the spec has no `{path}`")))
        };
        Ok(Self {
            object: field("identity")?,
            kind: field("identity.type")?,
            ids: field("identity.user_assigned_identities")?,
            kind_path: arm_path(spec, "identity.type")?,
            ids_path: arm_path(spec, "identity.user_assigned_identities")?,
        })
    }

    /// The identity type the inputs ask for (the spec's default when they say none) and the ids they list.
    fn requested(&self, inputs: &Map<String, Value>) -> (Option<String>, Vec<String>) {
        let identity = input_or_default(self.object, inputs, "identity");
        let kind = identity
            .and_then(|i| i.get("type"))
            .filter(|v| !v.is_null())
            .or(self.kind.default.as_ref())
            .and_then(Value::as_str)
            .map(str::to_owned);
        let ids = identity
            .and_then(|i| i.get("user_assigned_identities"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
        (kind, ids)
    }

    fn wire(&self, kind: &str) -> Value {
        self.kind.to_wire(&json!(kind))
    }

    /// The identity block of the PUT body: system-assigned with listed identities is both kinds at once,
    /// and the listed ids travel as the keys of a map.
    fn place(&self, body: &mut Value, inputs: &Map<String, Value>) -> Result<()> {
        let (kind, ids) = self.requested(inputs);
        let map: Map<String, Value> = ids.iter().map(|id| (id.clone(), json!({}))).collect();
        match kind.as_deref() {
            Some(SYSTEM) if ids.is_empty() => set_path(body, &self.kind_path, self.wire(SYSTEM)),
            Some(SYSTEM) => {
                let both = [self.wire(SYSTEM), self.wire(USER)]
                    .iter()
                    .filter_map(|w| w.as_str().map(str::to_owned))
                    .collect::<Vec<_>>()
                    .join(",");
                set_path(body, &self.kind_path, json!(both));
                set_path(body, &self.ids_path, Value::Object(map));
            }
            Some(USER) if ids.is_empty() => {
                return Err(ProviderError::invalid(
                    "identity.user_assigned_identities must list at least one identity id",
                ));
            }
            Some(USER) => {
                set_path(body, &self.kind_path, self.wire(USER));
                set_path(body, &self.ids_path, Value::Object(map));
            }
            other => {
                return Err(ProviderError::invalid(format!(
                    "unknown identity type {other:?}"
                )));
            }
        }
        Ok(())
    }

    /// The identity input as read back, in the request's spelling when it names the same identities.
    fn observed(&self, body: &Value, desired: &Map<String, Value>) -> Value {
        let first_kind = get_path(body, &self.kind_path)
            .and_then(Value::as_str)
            .and_then(|w| w.split(',').next())
            .map(|w| self.kind.from_wire(&json!(w.trim())));
        let kind = if first_kind.as_ref().and_then(Value::as_str) == Some(SYSTEM) {
            SYSTEM
        } else {
            USER
        };
        let live: Vec<Value> = get_path(body, &self.ids_path)
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().map(Value::String).collect())
            .unwrap_or_default();
        let wanted: Vec<Value> = self
            .requested(desired)
            .1
            .into_iter()
            .map(Value::String)
            .collect();
        let ids = if self.ids.comparison().same(&json!(live), &json!(wanted)) {
            wanted
        } else {
            live
        };
        let mut out = Map::new();
        out.insert("type".into(), Value::String(kind.into()));
        if !ids.is_empty() {
            out.insert("user_assigned_identities".into(), Value::Array(ids));
        }
        Value::Object(out)
    }
}

/// The identity types, as the stack spells them.
const SYSTEM: &str = "system_assigned";
const USER: &str = "user_assigned";

fn observe(ctx: &Ctx, req: &ResourceRequest, body: &Value) -> Result<Observed> {
    let spec = ctx.spec(T)?;
    let mut obs = spec_observe(ctx, spec, &req.inputs, body);
    obs.inputs.insert(
        "identity".into(),
        IdentitySpec::of(spec)?.observed(body, &req.inputs),
    );
    if let Some(traffic) = body
        .pointer("/properties/traffic")
        .filter(|t| t.is_object())
    {
        obs.outputs.insert("traffic".into(), traffic.clone());
    }
    Ok(obs)
}

pub async fn read(ctx: &Ctx, req: &ResourceRequest) -> Result<Option<Observed>> {
    match arm_get(ctx, T, req).await? {
        Some(body) => observe(ctx, req, &body).map(Some),
        None => Ok(None),
    }
}

/// The endpoint body the inputs ask for: the spec's mapping and the identity block.
pub(crate) fn endpoint_body(ctx: &Ctx, inputs: &Map<String, Value>) -> Result<Value> {
    let spec = ctx.spec(T)?;
    let mut body = spec_body(ctx, spec, inputs);
    IdentitySpec::of(spec)?.place(&mut body, inputs)?;
    Ok(body)
}

/// Create or update by PUT (pattern B). The live traffic split is carried over so an endpoint update
/// never moves traffic.
pub async fn put(ctx: &Ctx, req: &ResourceRequest) -> Result<Observed> {
    let mut body = endpoint_body(ctx, &req.inputs)?;
    // Endpoints live in their workspace's region.
    body["location"] = json!(ctx.workspace_location().await?);
    let path = ctx.path(T, &req.inputs)?;
    let api = ctx.api_version(T)?;
    let lro = ctx.config.lro_for(T);
    let report = |s: &str| req.report(s);
    // An update waits for an operation still running on the endpoint (a killed run's) to end first.
    if let Some(current) = ctx.arm.get_settled(&path, &api, &lro, &report).await?
        && let Some(traffic) = current
            .pointer("/properties/traffic")
            .filter(|t| t.is_object())
    {
        body["properties"]["traffic"] = traffic.clone();
    }
    let done = ctx.arm.put(&path, &api, &body, &lro, &report).await?;
    observe(ctx, req, &done)
}

pub async fn delete(ctx: &Ctx, req: &ResourceRequest) -> Result<()> {
    arm_delete(ctx, T, req).await
}

pub(crate) fn endpoint_path(ctx: &Ctx, endpoint: &str) -> Result<String> {
    let mut inputs = Map::new();
    inputs.insert("name".into(), Value::String(endpoint.to_owned()));
    ctx.path(T, &inputs)
}

/// The endpoint's path, api-version and current body; not-found when it does not exist.
async fn existing(ctx: &Ctx, endpoint: &str) -> Result<(String, String, Value)> {
    let path = endpoint_path(ctx, endpoint)?;
    let api = ctx.api_version(T)?;
    match ctx.arm.get(&path, &api).await? {
        Some(current) => Ok((path, api, current)),
        None => Err(not_found(endpoint)),
    }
}

fn not_found(endpoint: &str) -> ProviderError {
    ProviderError::new(
        ErrorKind::NotFound,
        format!("online endpoint {endpoint} does not exist"),
    )
}

/// Parts of an endpoint body that no field maps but a full PUT must carry over.
const CARRIED: &[&str] = &[
    "kind",
    "sku",
    "properties.traffic",
    "properties.mirrorTraffic",
];

/// The writable part of a GET body, for a full PUT that changes only what the caller changes: the
/// location, what the spec's fields map, the identity without its read-only parts, and [`CARRIED`].
fn writable(spec: &ResourceSpec, current: &Value) -> Result<Value> {
    let mut body = json!({ "location": current.get("location").cloned().unwrap_or(Value::Null), "properties": {} });
    let mapped = spec
        .fields
        .values()
        .filter(|f| f.kind != FieldType::Object && f.custom.is_none())
        .filter_map(|f| f.arm.as_deref())
        .filter(|arm| *arm != "name");
    for path in mapped.chain(CARRIED.iter().copied()) {
        if let Some(v) = get_path(current, path) {
            set_path(&mut body, path, v.clone());
        }
    }
    let identity = IdentitySpec::of(spec)?;
    let object_path = arm_path(spec, "identity")?;
    if get_path(current, &object_path).is_some() {
        let kind = get_path(current, &identity.kind_path)
            .cloned()
            .or_else(|| {
                identity
                    .kind
                    .default
                    .as_ref()
                    .map(|d| identity.kind.to_wire(d))
            })
            .unwrap_or(Value::Null);
        set_path(&mut body, &identity.kind_path, kind);
        if let Some(uais) = get_path(current, &identity.ids_path).and_then(Value::as_object) {
            let keys: Map<String, Value> = uais.keys().map(|k| (k.clone(), json!({}))).collect();
            set_path(&mut body, &identity.ids_path, Value::Object(keys));
        }
    }
    Ok(body)
}

/// Sets a whole map of the endpoint (its traffic map, `req.map` = `properties.traffic`): GET the
/// endpoint, replace the map, PUT the whole body (pattern B) — one update, so the cloud checks the new
/// map as a whole (it must add up to 100 or be empty, and name only existing deployments). Entries at 0
/// are left out. Returns the map it replaced, for a rollback.
pub(crate) async fn set_map(ctx: &Ctx, req: &MapRequest) -> Result<BTreeMap<String, u64>> {
    let path = endpoint_path(ctx, &req.owner)?;
    let api = ctx.api_version(T)?;
    let lro = ctx.config.lro_for(T);
    let report = |s: &str| req.report(s);
    // The map is read and written whole: wait for any operation still running on the endpoint (a
    // killed run's update) to end, or the PUT is refused with 409 and would overwrite its outcome.
    let current = ctx
        .arm
        .get_settled(&path, &api, &lro, &report)
        .await?
        .ok_or_else(|| not_found(&req.owner))?;
    let previous = shares(get_path(&current, &req.map));
    let mut body = writable(ctx.spec(T)?, &current)?;
    let map: Map<String, Value> = req
        .entries
        .iter()
        .filter(|(_, p)| **p > 0)
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    set_path(&mut body, &req.map, Value::Object(map));
    req.report("SettingTraffic");
    ctx.arm.put(&path, &api, &body, &lro, &report).await?;
    Ok(previous)
}

/// The entries of a traffic map (non-numbers count as 0).
fn shares(map: Option<&Value>) -> BTreeMap<String, u64> {
    map.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default()
}

/// The live traffic split of an endpoint (`None` when the endpoint does not exist).
pub async fn traffic(ctx: &Ctx, endpoint: &str) -> Result<Option<BTreeMap<String, u32>>> {
    let path = endpoint_path(ctx, endpoint)?;
    let Some(current) = ctx.arm.get(&path, &ctx.api_version(T)?).await? else {
        return Ok(None);
    };
    Ok(Some(
        shares(current.pointer("/properties/traffic"))
            .into_iter()
            .map(|(k, v)| (k, u32::try_from(v).unwrap_or(u32::MAX)))
            .collect(),
    ))
}

/// An endpoint's keys. `Debug` shows neither.
#[derive(Debug, Clone)]
pub struct EndpointKeys {
    pub primary: Secret,
    pub secondary: Secret,
}

/// `listKeys` of an endpoint (auth mode `key`).
pub async fn list_keys(ctx: &Ctx, endpoint: &str) -> Result<EndpointKeys> {
    let path = format!("{}/listKeys", endpoint_path(ctx, endpoint)?);
    let body = ctx.arm.post(&path, &ctx.api_version(T)?, None).await?;
    let get = |k: &str| body.get(k).and_then(Value::as_str).map(Secret::new);
    match (get("primaryKey"), get("secondaryKey")) {
        (Some(primary), secondary) => Ok(EndpointKeys {
            secondary: secondary.unwrap_or_else(|| primary.clone()),
            primary,
        }),
        _ => Err(failed(format!(
            "listKeys of endpoint {endpoint} returned no key"
        ))),
    }
}

/// The answer of a scoring call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoreResponse {
    pub status: u16,
    pub body: String,
}

/// Added to the longest request timeout a deployment may have: the scoring front end's queueing and the
/// network.
const SCORING_MARGIN: Duration = Duration::from_secs(30);

/// How long `invoke` waits for the scoring answer: the longest `request_timeout_ms` any deployment may
/// have (the spec's maximum; Azure ML allows up to 180 s, longer than the 120 s an ARM call waits) plus
/// [`SCORING_MARGIN`], so the client never gives up on a call the deployment may still be working on.
fn scoring_read_timeout(deployment: &ResourceSpec) -> Result<Duration> {
    let field = "request_settings.request_timeout_ms";
    let max_ms = deployment
        .field(field)
        .and_then(|f| f.maximum)
        .and_then(|m| u64::try_from(m).ok())
        .ok_or_else(|| {
            ProviderError::invalid(format!("the spec gives no maximum for `{field}`"))
        })?;
    Ok(Duration::from_millis(max_ms) + SCORING_MARGIN)
}

/// POSTs `request_body` to the endpoint's scoring URI with the credential its auth mode needs, optionally
/// pinned to one deployment (`azureml-model-deployment`). Not retried once the server may have seen it.
pub async fn invoke(
    ctx: &Ctx,
    endpoint: &str,
    request_body: &[u8],
    deployment: Option<&str>,
) -> Result<ScoreResponse> {
    let (path, api, current) = existing(ctx, endpoint).await?;
    let spec = ctx.spec(T)?;
    let uri = spec_outputs(spec, &current)
        .get("scoring_uri")
        .and_then(Value::as_str)
        .and_then(|u| Url::parse(u).ok())
        .ok_or_else(|| failed(format!("endpoint {endpoint} has no scoring uri yet")))?;
    let auth_mode = spec
        .field("auth_mode")
        .ok_or_else(|| ProviderError::invalid("the spec has no `auth_mode`"))?;
    let mode = get_path(&current, &arm_path(spec, "auth_mode")?)
        .map(|m| auth_mode.from_wire(m))
        .or_else(|| auth_mode.default.clone());
    let auth = match mode.as_ref().and_then(Value::as_str) {
        Some("aml_token") => {
            let t = ctx.arm.post(&format!("{path}/token"), &api, None).await?;
            let token = t
                .get("accessToken")
                .and_then(Value::as_str)
                .ok_or_else(|| failed(format!("endpoint {endpoint} returned no token")))?;
            Some(Secret::new(token))
        }
        Some("aad_token") => None,
        _ => Some(list_keys(ctx, endpoint).await?.primary),
    };
    let mut req = HttpRequest::new(Method::POST, uri)
        .body(request_body.to_vec())
        .not_idempotent()
        .read_timeout(scoring_read_timeout(
            ctx.spec(ResourceType::OnlineDeployment)?,
        )?)
        .header("content-type", "application/json")?;
    if let Some(d) = deployment {
        req = req.header("azureml-model-deployment", d)?;
    }
    let how = match auth {
        Some(secret) => Auth::Secret(secret),
        None => Auth::Bearer(ctx.config.ml_scope.clone()),
    };
    let resp = ctx.arm.pipeline().send(req, &how).await?;
    Ok(ScoreResponse {
        status: resp.status,
        body: String::from_utf8_lossy(&resp.body).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records the scopes it is asked for.
    #[derive(Default)]
    struct ScopeLog(std::sync::Mutex<Vec<String>>);

    impl crate::provider::pipeline::TokenSource for ScopeLog {
        fn token<'a>(
            &'a self,
            scope: &'a str,
        ) -> crate::provider::pipeline::BoxFuture<'a, Result<Secret>> {
            if let Ok(mut s) = self.0.lock() {
                s.push(scope.to_owned());
            }
            Box::pin(async { Ok(Secret::new("tok")) })
        }
        fn name(&self) -> &str {
            "scope log"
        }
    }

    /// The bugs: the scoring call gave up after the 120 s every call waited, though a deployment may
    /// take 180 s; and it asked for a public-cloud ML token whatever the cloud.
    #[tokio::test]
    async fn invoke_waits_longer_than_any_deployment_and_asks_for_the_clouds_ml_token() {
        use crate::provider::pipeline::fake::{FakeClock, FakeTransport, reply};
        let t = FakeTransport::new(vec![
            reply(
                200,
                &[],
                r#"{"location":"chinaeast2","properties":{"authMode":"AADToken","scoringUri":"https://ep.chinaeast2.inference.ml.azure.cn/score"}}"#,
            ),
            reply(200, &[], "[1]"),
        ]);
        let tokens = std::sync::Arc::new(ScopeLog::default());
        let ctx = fake_ctx(
            crate::provider::config::CloudKind::AzureChina,
            &t,
            &std::sync::Arc::new(FakeClock::default()),
            tokens.clone(),
        );
        let answer = invoke(&ctx, "ep", b"{}", None).await.unwrap();
        assert_eq!(answer.body, "[1]");
        let score = &t.requests()[1];
        assert_eq!(score.method, Method::POST);
        let wait = score.read_timeout.expect("a scoring read timeout");
        assert!(
            wait >= Duration::from_secs(180) + SCORING_MARGIN,
            "{wait:?}"
        );
        assert!(wait > crate::provider::pipeline::DEFAULT_READ_TIMEOUT);
        // The ARM GET keeps the default wait.
        assert_eq!(t.requests()[0].read_timeout, None);
        let scopes = tokens.0.lock().unwrap().clone();
        assert_eq!(
            scopes,
            [
                "https://management.chinacloudapi.cn/.default",
                "https://ml.azure.cn/.default"
            ]
        );
    }

    /// A context on `kind`'s cloud whose requests go to the scripted transport `t`.
    fn fake_ctx(
        kind: crate::provider::config::CloudKind,
        t: &std::sync::Arc<crate::provider::pipeline::fake::FakeTransport>,
        clock: &std::sync::Arc<crate::provider::pipeline::fake::FakeClock>,
        tokens: std::sync::Arc<ScopeLog>,
    ) -> Ctx {
        let config =
            crate::provider::config::CloudConfig::azure(kind, "sub", "rg", "ws", "chinaeast2")
                .unwrap();
        let p = crate::provider::pipeline::Pipeline::new(
            t.clone(),
            clock.clone(),
            config.retry.clone(),
            Some(tokens),
        );
        let arm =
            crate::provider::arm::Arm::new(p, config.arm_endpoint.clone(), config.arm_scope());
        Ctx::new(
            config,
            arm,
            std::sync::Arc::new(crate::provider::resources::common::tests::registry()),
        )
    }

    /// The bug: the traffic map was PUT while a killed run's update of the endpoint was still running
    /// (`Updating`), so the cloud refused it with 409 and the step failed; it now waits for the update
    /// to end, then reads the map it replaces from the settled endpoint.
    #[tokio::test]
    async fn set_map_waits_for_an_operation_still_running_on_the_endpoint() {
        use crate::provider::pipeline::fake::{FakeClock, FakeTransport, reply};
        let endpoint = |state: &str, traffic: &str| {
            format!(
                r#"{{"location":"eastus","kind":"Managed","properties":{{"authMode":"Key","provisioningState":"{state}","traffic":{traffic}}}}}"#
            )
        };
        let t = FakeTransport::new(vec![
            reply(200, &[], &endpoint("Updating", "{}")),
            reply(200, &[], &endpoint("Succeeded", r#"{"blue":100}"#)),
            reply(200, &[], &endpoint("Succeeded", r#"{"green":100}"#)),
        ]);
        let clock = std::sync::Arc::new(FakeClock::default());
        let ctx = fake_ctx(
            crate::provider::config::CloudKind::Azure,
            &t,
            &clock,
            std::sync::Arc::default(),
        );
        let req = MapRequest {
            address: "endpoint.traffic".into(),
            owner_type: T,
            owner: "ep".into(),
            map: "properties.traffic".into(),
            entries: BTreeMap::from([("green".to_owned(), 100)]),
            progress: None,
        };
        let previous = set_map(&ctx, &req).await.unwrap();
        assert_eq!(previous, BTreeMap::from([("blue".to_owned(), 100)]));
        let methods: Vec<Method> = t.requests().iter().map(|r| r.method.clone()).collect();
        assert_eq!(methods, [Method::GET, Method::GET, Method::PUT]);
        assert_eq!(clock.sleeps().len(), 1, "one wait between the two reads");
        let sent: Value = serde_json::from_slice(&t.requests()[2].body).unwrap();
        assert_eq!(sent["properties"]["traffic"], json!({"green": 100}));
    }

    fn spec() -> ResourceSpec {
        crate::provider::resources::common::tests::registry()
            .get("online_endpoint")
            .cloned()
            .expect("online_endpoint spec")
    }

    fn identity_body(spec: &ResourceSpec, inputs: &Map<String, Value>) -> Result<Value> {
        let mut body = json!({});
        IdentitySpec::of(spec)?.place(&mut body, inputs)?;
        Ok(body["identity"].clone())
    }

    #[test]
    fn identity_bodies() {
        let spec = spec();
        let uai = json!(["/subs/x/uai"]);
        for (identity, body) in [
            (Value::Null, json!({"type": "SystemAssigned"})),
            (
                json!({"type": "user_assigned", "user_assigned_identities": uai}),
                json!({"type": "UserAssigned", "userAssignedIdentities": {"/subs/x/uai": {}}}),
            ),
            (
                json!({"type": "system_assigned", "user_assigned_identities": uai}),
                json!({"type": "SystemAssigned,UserAssigned", "userAssignedIdentities": {"/subs/x/uai": {}}}),
            ),
        ] {
            let mut inputs = Map::new();
            inputs.insert("identity".into(), identity.clone());
            assert_eq!(identity_body(&spec, &inputs).unwrap(), body, "{identity}");
        }
        let mut inputs = Map::new();
        inputs.insert("identity".into(), json!({"type": "user_assigned"}));
        assert!(identity_body(&spec, &inputs).is_err());
    }

    #[test]
    fn identity_read_back_keeps_requested_spelling() {
        let spec = spec();
        let identity = IdentitySpec::of(&spec).unwrap();
        let mut desired = Map::new();
        desired.insert(
            "identity".into(),
            json!({"type":"user_assigned","user_assigned_identities":["/Subs/X/UAI"]}),
        );
        let body = json!({"identity":{"type":"userAssigned","userAssignedIdentities":{"/subs/x/uai":{"principalId":"p"}}}});
        assert_eq!(
            identity.observed(&body, &desired),
            json!({"type":"user_assigned","user_assigned_identities":["/Subs/X/UAI"]})
        );
        let sys = json!({"identity":{"type":"SystemAssigned","principalId":"p"}});
        assert_eq!(
            identity.observed(&sys, &Map::new()),
            json!({"type":"system_assigned"})
        );
    }

    #[test]
    fn writable_body_drops_read_only_fields() {
        let got = json!({"id":"x","name":"e","location":"eastus","identity":{"type":"SystemAssigned","principalId":"p"},
            "properties":{"authMode":"Key","scoringUri":"u","provisioningState":"Succeeded","traffic":{"blue":100}},"systemData":{}});
        let w = writable(&spec(), &got).unwrap();
        assert_eq!(
            w,
            json!({"location":"eastus","identity":{"type":"SystemAssigned"},"properties":{"authMode":"Key","traffic":{"blue":100}}})
        );
    }
}
