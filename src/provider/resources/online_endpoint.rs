//! What is special about online endpoints: the managed identity block (system- or user-assigned, ids
//! compared case-insensitively), keeping the live traffic split on every PUT (traffic belongs to the
//! deployments' `traffic` inputs, set through [`set_traffic`]), the endpoint keys and invoking the
//! scoring URI.
//!
//! Keys and tokens are [`Secret`]s; a scoring response body is returned to the caller, never logged.

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{Map, Value, json};
use url::Url;

use super::{Ctx, arm_delete, arm_get, spec_body, spec_observe};
use crate::provider::error::{ErrorKind, ProviderError};
use crate::provider::ids::same_id;
use crate::provider::pipeline::{Auth, HttpRequest};
use crate::provider::{Observed, ResourceRequest, ResourceType, Result, Secret};

const T: ResourceType = ResourceType::OnlineEndpoint;

/// The user-assigned identity ids the inputs list.
fn requested_uais(inputs: &Map<String, Value>) -> Vec<String> {
    inputs
        .get("identity")
        .and_then(|i| i.get("user_assigned_identities"))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The identity block of the PUT body.
fn identity_body(inputs: &Map<String, Value>) -> Result<Value> {
    let identity = inputs.get("identity").filter(|v| !v.is_null());
    let kind = identity
        .and_then(|i| i.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("system_assigned");
    let ids = requested_uais(inputs);
    match kind {
        "system_assigned" if ids.is_empty() => Ok(json!({"type": "SystemAssigned"})),
        "system_assigned" => {
            let map: Map<String, Value> = ids.into_iter().map(|id| (id, json!({}))).collect();
            Ok(json!({"type": "SystemAssigned,UserAssigned", "userAssignedIdentities": map}))
        }
        "user_assigned" => {
            if ids.is_empty() {
                return Err(ProviderError::invalid(
                    "identity.user_assigned_identities must list at least one identity id",
                ));
            }
            let map: Map<String, Value> = ids.into_iter().map(|id| (id, json!({}))).collect();
            Ok(json!({"type": "UserAssigned", "userAssignedIdentities": map}))
        }
        other => Err(ProviderError::invalid(format!(
            "unknown identity type {other:?}"
        ))),
    }
}

/// The identity input as read back, in the request's spelling when it names the same identities.
fn identity_observed(body: &Value, desired: &Map<String, Value>) -> Value {
    let wire = body
        .pointer("/identity/type")
        .and_then(Value::as_str)
        .unwrap_or("None");
    let kind = if wire.to_ascii_lowercase().starts_with("systemassigned") {
        "system_assigned"
    } else {
        "user_assigned"
    };
    let live: Vec<String> = body
        .pointer("/identity/userAssignedIdentities")
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    let wanted = requested_uais(desired);
    let same_set =
        live.len() == wanted.len() && live.iter().all(|l| wanted.iter().any(|w| same_id(l, w)));
    let ids = if same_set { wanted } else { live };
    let mut out = Map::new();
    out.insert("type".into(), Value::String(kind.into()));
    if !ids.is_empty() {
        out.insert(
            "user_assigned_identities".into(),
            ids.into_iter().map(Value::String).collect(),
        );
    }
    Value::Object(out)
}

fn observe(ctx: &Ctx, req: &ResourceRequest, body: &Value) -> Result<Observed> {
    let spec = ctx.spec(T)?;
    let mut obs = spec_observe(ctx, spec, &req.inputs, body, &["identity"]);
    obs.inputs
        .insert("identity".into(), identity_observed(body, &req.inputs));
    // A user-assigned-only endpoint has no top-level principal: report the (first) attached identity's.
    let identity = obs.outputs.entry("identity").or_insert_with(|| json!({}));
    if identity.get("principal_id").is_none()
        && let Some(p) = body
            .pointer("/identity/userAssignedIdentities")
            .and_then(Value::as_object)
            .and_then(|m| m.values().next())
        && let Some(obj) = identity.as_object_mut()
    {
        for (from, to) in [("principalId", "principal_id"), ("clientId", "client_id")] {
            if let Some(v) = p.get(from).filter(|v| !v.is_null()) {
                obj.entry(to).or_insert(v.clone());
            }
        }
    }
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

/// Create or update by PUT (pattern B). The live traffic split is carried over so an endpoint update
/// never moves traffic.
pub async fn put(ctx: &Ctx, req: &ResourceRequest) -> Result<Observed> {
    let spec = ctx.spec(T)?;
    let mut body = spec_body(ctx, spec, &req.inputs, &["identity"]);
    body["identity"] = identity_body(&req.inputs)?;
    // Endpoints live in their workspace's region.
    body["location"] = json!(ctx.workspace_location().await?);
    if let Some(current) = arm_get(ctx, T, req).await?
        && let Some(traffic) = current
            .pointer("/properties/traffic")
            .filter(|t| t.is_object())
    {
        body["properties"]["traffic"] = traffic.clone();
    }
    let path = ctx.path(T, &req.inputs)?;
    let report = |s: &str| req.report(s);
    let done = ctx
        .arm
        .put(
            &path,
            &ctx.api_version(T)?,
            &body,
            &ctx.config.lro_for(T),
            &report,
        )
        .await?;
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
        None => Err(ProviderError::new(
            ErrorKind::NotFound,
            format!("online endpoint {endpoint} does not exist"),
        )),
    }
}

/// The writable part of a GET body, for a full PUT that changes only what the caller changes.
fn writable(current: &Value) -> Value {
    let mut body = json!({ "location": current.get("location").cloned().unwrap_or(Value::Null) });
    for key in ["tags", "kind", "sku"] {
        if let Some(v) = current.get(key).filter(|v| !v.is_null()) {
            body[key] = v.clone();
        }
    }
    if let Some(identity) = current.get("identity").filter(|v| !v.is_null()) {
        let mut id =
            json!({ "type": identity.get("type").cloned().unwrap_or(json!("SystemAssigned")) });
        if let Some(uais) = identity
            .get("userAssignedIdentities")
            .and_then(Value::as_object)
        {
            let keys: Map<String, Value> = uais.keys().map(|k| (k.clone(), json!({}))).collect();
            id["userAssignedIdentities"] = Value::Object(keys);
        }
        body["identity"] = id;
    }
    let mut props = Map::new();
    for key in [
        "authMode",
        "description",
        "publicNetworkAccess",
        "traffic",
        "mirrorTraffic",
    ] {
        if let Some(v) = current
            .pointer(&format!("/properties/{key}"))
            .filter(|v| !v.is_null())
        {
            props.insert(key.into(), v.clone());
        }
    }
    body["properties"] = Value::Object(props);
    body
}

/// Sets the endpoint's traffic split: GET the endpoint, replace `properties.traffic`, PUT the whole body
/// (pattern B). Deployments at 0 % are left out of the map.
pub async fn set_traffic(
    ctx: &Ctx,
    endpoint: &str,
    traffic: &BTreeMap<String, u32>,
    progress: &(dyn Fn(&str) + Send + Sync),
) -> Result<()> {
    let (path, api, current) = existing(ctx, endpoint).await?;
    let mut body = writable(&current);
    let map: Map<String, Value> = traffic
        .iter()
        .filter(|(_, p)| **p > 0)
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    body["properties"]["traffic"] = Value::Object(map);
    ctx.arm
        .put(&path, &api, &body, &ctx.config.lro_for(T), progress)
        .await?;
    Ok(())
}

/// The live traffic split of an endpoint (`None` when the endpoint does not exist).
pub async fn traffic(ctx: &Ctx, endpoint: &str) -> Result<Option<BTreeMap<String, u32>>> {
    let path = endpoint_path(ctx, endpoint)?;
    let Some(current) = ctx.arm.get(&path, &ctx.api_version(T)?).await? else {
        return Ok(None);
    };
    Ok(Some(
        current
            .pointer("/properties/traffic")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0) as u32))
                    .collect()
            })
            .unwrap_or_default(),
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
        _ => Err(ProviderError::new(
            ErrorKind::Failed,
            format!("listKeys of endpoint {endpoint} returned no key"),
        )),
    }
}

/// The answer of a scoring call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoreResponse {
    pub status: u16,
    pub body: String,
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
    let uri = current
        .pointer("/properties/scoringUri")
        .and_then(Value::as_str)
        .and_then(|u| Url::parse(u).ok())
        .ok_or_else(|| {
            ProviderError::new(
                ErrorKind::Failed,
                format!("endpoint {endpoint} has no scoring uri yet"),
            )
        })?;
    let mode = current
        .pointer("/properties/authMode")
        .and_then(Value::as_str)
        .unwrap_or("Key")
        .to_ascii_lowercase();
    let auth = match mode.as_str() {
        "amltoken" => {
            let t = ctx.arm.post(&format!("{path}/token"), &api, None).await?;
            let token = t
                .get("accessToken")
                .and_then(Value::as_str)
                .ok_or_else(|| {
                    ProviderError::new(
                        ErrorKind::Failed,
                        format!("endpoint {endpoint} returned no token"),
                    )
                })?;
            Some(Secret::new(token))
        }
        "aadtoken" => None,
        _ => Some(list_keys(ctx, endpoint).await?.primary),
    };
    let mut req = HttpRequest::new(Method::POST, uri)
        .body(request_body.to_vec())
        .not_idempotent()
        .header("content-type", "application/json")?;
    if let Some(d) = deployment {
        req = req.header("azureml-model-deployment", d)?;
    }
    let how = match auth {
        Some(secret) => Auth::Secret(secret),
        None => Auth::Bearer("https://ml.azure.com/.default".into()),
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

    #[test]
    fn identity_bodies() {
        let mut i = Map::new();
        assert_eq!(identity_body(&i).unwrap(), json!({"type":"SystemAssigned"}));
        i.insert(
            "identity".into(),
            json!({"type":"user_assigned","user_assigned_identities":["/subs/x/uai"]}),
        );
        assert_eq!(
            identity_body(&i).unwrap(),
            json!({"type":"UserAssigned","userAssignedIdentities":{"/subs/x/uai":{}}})
        );
        i.insert("identity".into(), json!({"type":"user_assigned"}));
        assert!(identity_body(&i).is_err());
    }

    #[test]
    fn identity_read_back_keeps_requested_spelling() {
        let mut desired = Map::new();
        desired.insert(
            "identity".into(),
            json!({"type":"user_assigned","user_assigned_identities":["/Subs/X/UAI"]}),
        );
        let body = json!({"identity":{"type":"userAssigned","userAssignedIdentities":{"/subs/x/uai":{"principalId":"p"}}}});
        assert_eq!(
            identity_observed(&body, &desired),
            json!({"type":"user_assigned","user_assigned_identities":["/Subs/X/UAI"]})
        );
        let sys = json!({"identity":{"type":"SystemAssigned","principalId":"p"}});
        assert_eq!(
            identity_observed(&sys, &Map::new()),
            json!({"type":"system_assigned"})
        );
    }

    #[test]
    fn writable_body_drops_read_only_fields() {
        let got = json!({"id":"x","name":"e","location":"eastus","identity":{"type":"SystemAssigned","principalId":"p"},
            "properties":{"authMode":"Key","scoringUri":"u","provisioningState":"Succeeded","traffic":{"blue":100}},"systemData":{}});
        let w = writable(&got);
        assert_eq!(
            w,
            json!({"location":"eastus","identity":{"type":"SystemAssigned"},"properties":{"authMode":"Key","traffic":{"blue":100}}})
        );
    }
}
