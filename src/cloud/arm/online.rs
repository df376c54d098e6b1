//! Azure ML online endpoints and deployments on ARM: endpoint PUT (LRO pattern B) with its traffic and
//! identity rules, PATCH and DELETE (pattern C), keys and tokens; deployment PUT (whose container the
//! runner really starts), PATCH, DELETE and logs.
//!
//! One function per operation, each taking the typed endpoint or deployment of its route. State goes
//! through the store's named operations; processes through the runner. Never parses paths.
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use super::ml::{Lro, operation_headers, render, user_error};
use super::protocol::{ArmCode, ArmError, ArmResult, Ctx, location, new_principal};
use super::route::{DeploymentRef, EndpointRef, ResRef};
use super::rules::{self, BodyKind};
use crate::cloud::auth::Claims;
use crate::cloud::http::{empty, json_response, with_headers};
use crate::cloud::runner;
use crate::cloud::store::ops::EndpointWrite;
use crate::cloud::store::{Principal, now_ms, random_key};

fn endpoint_not_found(ep: &EndpointRef) -> ArmError {
    user_error(
        StatusCode::NOT_FOUND,
        &format!("Could not find online endpoint '{}'.", ep.name),
    )
}

/// Endpoint and deployment names: 3-32 letters, digits and hyphens, starting with a letter.
fn check_ml_name(what: &str, n: &str) -> Result<(), ArmError> {
    if (3..=32).contains(&n.len())
        && n.starts_with(|c: char| c.is_ascii_alphabetic())
        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Ok(());
    }
    Err(user_error(
        StatusCode::BAD_REQUEST,
        &format!(
            "{what} names are 3-32 characters, start with a letter, and use letters, digits and hyphens"
        ),
    ))
}

/// The running operation on a resource, if any, as `kind id`.
fn busy(cx: &Ctx, key: &str) -> Option<String> {
    cx.st
        .store
        .operation_in_progress_on(key)
        .map(|o| format!("{} {}", o.kind, o.id))
}

/// The subscription of an endpoint's route.
fn sub(ep: &EndpointRef) -> &str {
    &ep.parent.parent.sub
}

pub(crate) fn list_endpoints(cx: &Ctx, ws: &ResRef) -> axum::response::Response {
    let list: Vec<Value> = cx
        .st
        .store
        .children(&ws.id, "onlineEndpoints")
        .into_iter()
        .map(|b| render(cx, b))
        .collect();
    json_response(StatusCode::OK, json!({"value": list}))
}

pub(crate) fn get_endpoint(cx: &Ctx, ep: &EndpointRef) -> ArmResult {
    let b = cx
        .stored(&ep.key(), &ep.id)
        .ok_or_else(|| endpoint_not_found(ep))?;
    Ok(json_response(StatusCode::OK, render(cx, b)))
}

/// Stops the endpoint's deployments, deletes it with everything under it, answers 202 (pattern C).
pub(crate) async fn delete_endpoint(cx: &Ctx, ep: &EndpointRef) -> ArmResult {
    let key = ep.key();
    if !cx.st.store.has_resource(&key) {
        return Ok(empty(StatusCode::NO_CONTENT, &[]));
    }
    let deps: Vec<String> = cx
        .st
        .store
        .children(&ep.id, "deployments")
        .iter()
        .filter_map(|d| d["id"].as_str().map(str::to_ascii_lowercase))
        .collect();
    for d in &deps {
        runner::stop(&cx.st, d).await;
    }
    cx.st.store.delete_resource_tree(&key).await?;
    let op = cx.operation("endpoint-delete", &key);
    let op_id = op.id.clone();
    cx.st.store.add_operation(op).await?;
    Ok(empty(
        StatusCode::ACCEPTED,
        &operation_headers(cx, sub(ep), &cx.st.seed().location, &op_id, Lro::C),
    ))
}

pub(crate) async fn patch_endpoint(cx: &Ctx, ep: &EndpointRef) -> ArmResult {
    let key = ep.key();
    let mut b = cx
        .st
        .store
        .resource(&key)
        .ok_or_else(|| endpoint_not_found(ep))?;
    let req = cx.json()?;
    rules::check(BodyKind::OnlineEndpointPatch, &req)?;
    if let Some(t) = req.get("tags") {
        b["tags"] = t.clone();
    }
    if req.get("identity").is_some() {
        return Err(ArmError::not_implemented(
            "changing an endpoint's identity with PATCH",
        ));
    }
    store_patched(cx, sub(ep), &key, b, "endpoint-patch").await
}

/// Traffic must name existing deployments and sum to 100 (or be empty / all zero), as Azure refuses
/// otherwise. Sources:
/// * the sum: `Azure/azure-rest-api-specs:
///   specification/machinelearningservices/resource-manager/Microsoft.MachineLearningServices/stable/2025-12-01/openapi.json`,
///   `OnlineEndpointProperties.traffic`: "Percentage of traffic from endpoint to divert to each
///   deployment. Traffic values need to sum to 100." An empty map is what a new endpoint is created
///   with (`Azure/azure-sdk-for-python: sdk/ml/azure-ai-ml/tests/recordings/online_services/e2etests/
///   test_online_deployment.pyTestOnlineDeploymenttest_online_deployment.json`, the endpoint PUT sends
///   and gets back `"traffic": {}`);
/// * existing deployments only: the documented safe rollout creates `green` first and only then
///   updates the endpoint's traffic (`Azure/azureml-examples: cli/deploy-safe-rollout-online-endpoints.sh`,
///   `create_green` before `green_10pct_traffic`), and Azure ML answers an unknown deployment name
///   with `UserError` ("Deployment … not found in endpoint …", Azure-Samples/contoso-chat#139).
///
/// The published sources show neither the status nor the message of these two refusals; the local
/// cloud answers 400 `UserError`, Azure ML's code for a refused user request.
fn check_traffic(cx: &Ctx, ep: &EndpointRef, traffic: &Value) -> Result<(), ArmError> {
    let Some(tmap) = traffic.as_object() else {
        return Err(user_error(
            StatusCode::BAD_REQUEST,
            "properties.traffic must be a map",
        ));
    };
    let mut sum = 0u64;
    for (dep, pct) in tmap {
        let Some(p) = pct.as_u64().filter(|p| *p <= 100) else {
            return Err(user_error(
                StatusCode::BAD_REQUEST,
                &format!("traffic for {dep} must be an integer 0-100"),
            ));
        };
        sum += p;
        let dep_key = format!("{}/deployments/{}", ep.key(), dep.to_ascii_lowercase());
        if !cx.st.store.has_resource(&dep_key) {
            return Err(user_error(
                StatusCode::BAD_REQUEST,
                &format!(
                    "Deployment {dep} does not exist on endpoint {}; traffic can only be set for existing deployments.",
                    ep.name
                ),
            ));
        }
    }
    if sum != 0 && sum != 100 {
        return Err(user_error(
            StatusCode::BAD_REQUEST,
            &format!("Traffic values must sum to 100 (they sum to {sum})."),
        ));
    }
    Ok(())
}

/// The identity block of an endpoint PUT, and the principal of a new system-assigned identity.
fn endpoint_identity(
    cx: &Ctx,
    req: &Value,
    existing: Option<&Value>,
) -> Result<(Value, Option<Principal>), ArmError> {
    let tenant = cx.st.seed().tenant_id;
    let id_type = req
        .pointer("/identity/type")
        .and_then(Value::as_str)
        .unwrap_or("None")
        .to_ascii_lowercase()
        .replace([' ', '_'], "");
    let (system, user) = match id_type.as_str() {
        "none" => (false, false),
        "systemassigned" => (true, false),
        "userassigned" => (false, true),
        "systemassigned,userassigned" => (true, true),
        other => {
            return Err(user_error(
                StatusCode::BAD_REQUEST,
                &format!("unknown identity type {other}"),
            ));
        }
    };
    let mut identity = json!({"type": match (system, user) { (true, true) => "SystemAssigned,UserAssigned", (true, false) => "SystemAssigned", (false, true) => "UserAssigned", _ => "None" }});
    let mut new_principal_rec = None;
    if system {
        let old = existing
            .and_then(|b| b.pointer("/identity/principalId"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let pid = match old {
            Some(p) => p,
            None => {
                let p = new_principal("SystemAssigned");
                let oid = p.object_id.clone();
                new_principal_rec = Some(p);
                oid
            }
        };
        identity["principalId"] = pid.into();
        identity["tenantId"] = tenant.clone().into();
    }
    if user {
        let Some(uais) = req
            .pointer("/identity/userAssignedIdentities")
            .and_then(Value::as_object)
        else {
            return Err(user_error(
                StatusCode::BAD_REQUEST,
                "identity.userAssignedIdentities is required for UserAssigned",
            ));
        };
        let mut out = serde_json::Map::new();
        for uai_id in uais.keys() {
            let found = cx
                .st
                .store
                .resource(&uai_id.trim_end_matches('/').to_ascii_lowercase());
            let Some(u) =
                found.filter(|u| u["type"] == "Microsoft.ManagedIdentity/userAssignedIdentities")
            else {
                return Err(ArmError::bad_request(
                    ArmCode::InvalidUserAssignedIdentity,
                    &format!("Resource '{uai_id}' was not found."),
                ));
            };
            out.insert(uai_id.clone(), json!({"principalId": u["properties"]["principalId"], "clientId": u["properties"]["clientId"]}));
        }
        identity["userAssignedIdentities"] = Value::Object(out);
        if !system {
            identity["tenantId"] = tenant.into();
        }
    }
    if let Some(old) = existing {
        let old_type = old
            .pointer("/identity/type")
            .cloned()
            .unwrap_or(Value::Null);
        if old_type != identity["type"] {
            return Err(user_error(
                StatusCode::BAD_REQUEST,
                "the identity type of an existing endpoint cannot be changed; delete and re-create it",
            ));
        }
    }
    Ok((identity, new_principal_rec))
}

/// `PUT` of an endpoint: 201 or 200 with an `Azure-AsyncOperation` to poll (pattern B).
pub(crate) async fn put_endpoint(cx: &Ctx, ep: &EndpointRef) -> ArmResult {
    let key = ep.key();
    let existing = cx.st.store.resource(&key);
    let req = cx.json()?;
    rules::check(BodyKind::OnlineEndpoint, &req)?;
    check_ml_name("endpoint", &ep.name)?;
    let loc = location(&req)?;
    let auth_mode = match req
        .pointer("/properties/authMode")
        .and_then(Value::as_str)
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("key") => "Key",
        Some("amltoken") => "AMLToken",
        Some("aadtoken") => "AADToken",
        _ => {
            return Err(user_error(
                StatusCode::BAD_REQUEST,
                "properties.authMode must be Key, AMLToken or AADToken",
            ));
        }
    };
    if let Some(op) = busy(cx, &key) {
        return Err(user_error(
            StatusCode::CONFLICT,
            &format!("Conflict: another operation ({op}) is in progress on this endpoint"),
        ));
    }
    let traffic = req
        .pointer("/properties/traffic")
        .cloned()
        .unwrap_or(json!({}));
    check_traffic(cx, ep, &traffic)?;
    let (identity, principal) = endpoint_identity(cx, &req, existing.as_ref())?;
    let mut props = req
        .get("properties")
        .cloned()
        .filter(Value::is_object)
        .unwrap_or(json!({}));
    props["authMode"] = auth_mode.into();
    props["traffic"] = traffic;
    props["keys"] = Value::Null;
    if props.get("mirrorTraffic").is_none() {
        props["mirrorTraffic"] = json!({});
    }
    if props.get("publicNetworkAccess").is_none() {
        props["publicNetworkAccess"] = "Enabled".into();
    }
    let operation = cx.operation("endpoint-put", &key);
    let headers = operation_headers(cx, sub(ep), loc, &operation.id, Lro::B);
    let mut extra = props
        .get("properties")
        .cloned()
        .filter(Value::is_object)
        .unwrap_or(json!({}));
    extra["azureml.onlineendpointid"] = key.clone().into();
    extra["AzureAsyncOperationUri"] = headers[0].1.clone().into();
    props["properties"] = extra;
    let create = existing.is_none();
    props["provisioningState"] = if create { "Creating" } else { "Updating" }.into();
    let body = json!({
        "id": ep.id, "name": ep.name, "type": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints",
        "location": loc, "kind": req.get("kind").cloned().unwrap_or(Value::Null),
        "tags": req.get("tags").cloned().unwrap_or(json!({})),
        "identity": identity, "properties": props,
    });
    let stored = cx
        .st
        .store
        .put_endpoint(EndpointWrite {
            key,
            body: body.clone(),
            create,
            principal,
            keys: (random_key(), random_key()),
            operation,
        })
        .await?;
    if !stored {
        // Two PUTs of a new endpoint at once: the second one loses.
        return Err(user_error(
            StatusCode::CONFLICT,
            "Conflict: the endpoint is being created by another request",
        ));
    }
    Ok(with_headers(
        cx.created_or_ok(create, render(cx, body)),
        &headers,
    ))
}

/// `POST {endpoint}/listKeys`.
pub(crate) fn list_endpoint_keys(cx: &Ctx, ep: &EndpointRef) -> ArmResult {
    let key = ep.key();
    if !cx.st.store.has_resource(&key) {
        return Err(endpoint_not_found(ep));
    }
    Ok(json_response(
        StatusCode::OK,
        json!({"primaryKey": cx.st.store.secret(&key, "primary"), "secondaryKey": cx.st.store.secret(&key, "secondary")}),
    ))
}

/// `POST {endpoint}/token`: an AML token for `AMLToken` endpoints, valid one hour.
pub(crate) fn endpoint_token(cx: &Ctx, ep: &EndpointRef) -> ArmResult {
    let key = ep.key();
    if !cx.st.store.has_resource(&key) {
        return Err(endpoint_not_found(ep));
    }
    let now = now_ms() / 1000;
    let token = cx.st.signer.sign(&Claims {
        aud: format!("aml-endpoint:{key}"),
        iss: cx.st.arm_url.clone(),
        oid: cx.caller.oid.clone(),
        tid: cx.st.seed().tenant_id,
        appid: cx.caller.appid.clone(),
        iat: now,
        nbf: now,
        exp: now + 3600,
    });
    Ok(json_response(
        StatusCode::OK,
        json!({"accessToken": token, "tokenType": "Bearer", "expiryTimeUtc": now + 3600, "refreshAfterTimeUtc": now + 1800}),
    ))
}

pub(crate) fn list_deployments(cx: &Ctx, ep: &EndpointRef) -> ArmResult {
    if !cx.st.store.has_resource(&ep.key()) {
        return Err(endpoint_not_found(ep));
    }
    cx.page_by(cx.st.store.children(&ep.id, "deployments"), "$skip")
}

/// `POST {deployment}/getLogs`.
pub(crate) fn deployment_logs(cx: &Ctx, dep: &DeploymentRef) -> ArmResult {
    let key = dep.key();
    if !cx.st.store.has_resource(&key) {
        return Err(user_error(
            StatusCode::NOT_FOUND,
            &format!("deployment {} not found", dep.name),
        ));
    }
    let body = cx.json()?;
    let tail = body.get("tail").and_then(Value::as_u64).map(|t| t as usize);
    let container = body
        .get("containerType")
        .and_then(Value::as_str)
        .unwrap_or("InferenceServer");
    let content = runner::read_logs(&cx.st, &key, container, tail);
    Ok(json_response(StatusCode::OK, json!({"content": content})))
}

/// Resolves an asset reference (ARM id of a version) to its stored key, if it exists.
fn asset_key(cx: &Ctx, reference: &str, kind: &str) -> Result<String, ArmError> {
    let key = reference.trim_end_matches('/').to_ascii_lowercase();
    if key.contains(&format!("/{kind}/")) && cx.st.store.has_resource(&key) {
        return Ok(key);
    }
    Err(user_error(
        StatusCode::BAD_REQUEST,
        &format!("{reference} does not exist or is not a {kind} version of this workspace"),
    ))
}

/// Every deployment operation: the endpoint must exist first (a DELETE under a missing endpoint is
/// already done).
pub(crate) async fn deployment(cx: &Ctx, dep: &DeploymentRef) -> ArmResult {
    let Some(ep) = cx.st.store.resource(&dep.parent.key()) else {
        return match cx.method {
            Method::DELETE => Ok(empty(StatusCode::NO_CONTENT, &[])),
            _ => Err(endpoint_not_found(&dep.parent)),
        };
    };
    let existing = cx.st.store.resource(&dep.key());
    match cx.method {
        Method::GET => {
            let b = cx
                .stored(&dep.key(), &dep.id)
                .ok_or_else(|| deployment_not_found(dep))?;
            Ok(json_response(StatusCode::OK, b))
        }
        Method::DELETE if existing.is_none() => Ok(empty(StatusCode::NO_CONTENT, &[])),
        Method::DELETE => delete_deployment(cx, dep, &ep).await,
        Method::PATCH => patch_deployment(cx, dep, existing).await,
        Method::PUT => put_deployment(cx, dep, existing).await,
        _ => Err(cx.unimplemented_on("online deployments")),
    }
}

fn deployment_not_found(dep: &DeploymentRef) -> ArmError {
    user_error(
        StatusCode::NOT_FOUND,
        &format!("Could not find online deployment '{}'.", dep.name),
    )
}

/// Refused while the deployment receives traffic; otherwise stops it and deletes it (pattern C).
/// The documented safe rollout moves all traffic off a deployment (`--traffic "blue:0,green:100"`)
/// before `az ml online-deployment delete --name blue` (`Azure/azureml-examples:
/// cli/deploy-safe-rollout-online-endpoints.sh`, `green_100pct_traffic` before `delete_blue`); the REST
/// definitions do not say what the service answers otherwise, so the local cloud refuses (400
/// `UserError`), never more lenient than Azure may be.
async fn delete_deployment(cx: &Ctx, dep: &DeploymentRef, ep: &Value) -> ArmResult {
    let key = dep.key();
    let traffic = ep
        .pointer("/properties/traffic")
        .and_then(Value::as_object)
        .and_then(|t| {
            t.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(&dep.name))
                .and_then(|(_, v)| v.as_u64())
        });
    if traffic.unwrap_or(0) > 0 {
        return Err(user_error(
            StatusCode::BAD_REQUEST,
            &format!(
                "Deployment {} still receives traffic; set its traffic to 0 with an endpoint PUT before deleting it.",
                dep.name
            ),
        ));
    }
    runner::stop(&cx.st, &key).await;
    cx.st.store.delete_resource_tree(&key).await?;
    runner::remove_files(&cx.st, &key);
    let op = cx.operation("deployment-delete", &key);
    let op_id = op.id.clone();
    cx.st.store.add_operation(op).await?;
    Ok(empty(
        StatusCode::ACCEPTED,
        &operation_headers(cx, sub(&dep.parent), &cx.st.seed().location, &op_id, Lro::C),
    ))
}

async fn patch_deployment(cx: &Ctx, dep: &DeploymentRef, existing: Option<Value>) -> ArmResult {
    let mut b = existing.ok_or_else(|| deployment_not_found(dep))?;
    let req = cx.json()?;
    rules::check(BodyKind::OnlineDeploymentPatch, &req)?;
    if let Some(cap) = req.pointer("/sku/capacity") {
        let Some(c) = cap.as_u64().filter(|c| (1..=20).contains(c)) else {
            return Err(user_error(
                StatusCode::BAD_REQUEST,
                "sku.capacity must be an integer between 1 and 20",
            ));
        };
        b["sku"]["capacity"] = c.into();
    }
    if let Some(t) = req.get("tags") {
        b["tags"] = t.clone();
    }
    store_patched(cx, sub(&dep.parent), &dep.key(), b, "deployment-patch").await
}

/// Checks a deployment PUT's properties: compute type, no concurrent operation, fixed instance type,
/// and code, model and environment references that exist.
fn check_deployment(
    cx: &Ctx,
    key: &str,
    props: &Value,
    existing: Option<&Value>,
) -> Result<(), ArmError> {
    match props.get("endpointComputeType").and_then(Value::as_str) {
        Some(t) if t.eq_ignore_ascii_case("Managed") => {}
        Some(t) => {
            return Err(ArmError::not_implemented(&format!(
                "endpointComputeType {t}"
            )));
        }
        None => {
            return Err(user_error(
                StatusCode::BAD_REQUEST,
                "properties.endpointComputeType is required",
            ));
        }
    }
    if let Some(op) = busy(cx, key) {
        return Err(user_error(
            StatusCode::CONFLICT,
            &format!("Conflict: another operation ({op}) is in progress on this deployment"),
        ));
    }
    if let Some(old) = existing
        && old.pointer("/properties/instanceType")
            != props
                .get("instanceType")
                .or(Some(&json!("Standard_F4s_v2")))
    {
        return Err(user_error(
            StatusCode::BAD_REQUEST,
            "instanceType cannot be changed after creation",
        ));
    }
    if let Some(m) = props.get("model").and_then(Value::as_str) {
        asset_key(cx, m, "models")?;
    }
    if let Some(c) = props
        .pointer("/codeConfiguration/codeId")
        .and_then(Value::as_str)
    {
        asset_key(cx, c, "codes")?;
        if props
            .pointer("/codeConfiguration/scoringScript")
            .and_then(Value::as_str)
            .is_none()
        {
            return Err(user_error(
                StatusCode::BAD_REQUEST,
                "codeConfiguration.scoringScript is required",
            ));
        }
    } else {
        return Err(ArmError::not_implemented(
            "deployments without codeConfiguration (no-code / MLflow deployments)",
        ));
    }
    match props.get("environmentId").and_then(Value::as_str) {
        Some(e) if e.to_ascii_lowercase().starts_with("azureml://registries/") => Ok(()),
        Some(e) => asset_key(cx, e, "environments").map(|_| ()),
        None => Err(user_error(
            StatusCode::BAD_REQUEST,
            "properties.environmentId is required",
        )),
    }
}

/// `PUT` of a deployment: stores it `Creating`/`Updating` and has the runner start it (pattern B).
async fn put_deployment(cx: &Ctx, dep: &DeploymentRef, existing: Option<Value>) -> ArmResult {
    let key = dep.key();
    let req = cx.json()?;
    rules::check(BodyKind::OnlineDeployment, &req)?;
    check_ml_name("deployment", &dep.name)?;
    let loc = location(&req)?;
    let mut props = req
        .get("properties")
        .cloned()
        .filter(Value::is_object)
        .unwrap_or(json!({}));
    check_deployment(cx, &key, &props, existing.as_ref())?;
    if props.get("instanceType").is_none() {
        props["instanceType"] = "Standard_F4s_v2".into();
    }
    props["endpointComputeType"] = "Managed".into();
    if props.get("scaleSettings").is_none_or(Value::is_null) {
        props["scaleSettings"] = json!({"scaleType": "Default"});
    }
    if props.get("environmentVariables").is_none() {
        props["environmentVariables"] = json!({});
    }
    let create = existing.is_none();
    props["provisioningState"] = if create { "Creating" } else { "Updating" }.into();
    let sku = req
        .get("sku")
        .cloned()
        .filter(Value::is_object)
        .unwrap_or(json!({"name": "Default", "capacity": 1}));
    let body = json!({
        "id": dep.id, "name": dep.name, "type": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments",
        "location": loc, "kind": "Managed", "sku": sku,
        "tags": req.get("tags").cloned().unwrap_or(json!({})),
        "properties": props,
    });
    let op = cx.operation("deployment-put", &key);
    let op_id = op.id.clone();
    cx.st
        .store
        .put_resource_with_operation(&key, body.clone(), op)
        .await?;
    runner::deploy(cx.st.clone(), key, Some(op_id.clone()));
    Ok(with_headers(
        cx.created_or_ok(create, body),
        &operation_headers(cx, sub(&dep.parent), &cx.st.seed().location, &op_id, Lro::B),
    ))
}

/// Stores a PATCHed body and answers 202 with a `Location` operation to poll (pattern C).
async fn store_patched(cx: &Ctx, sub: &str, key: &str, body: Value, kind: &str) -> ArmResult {
    let op = cx.operation(kind, key);
    let op_id = op.id.clone();
    cx.st
        .store
        .put_resource_with_operation(key, body, op)
        .await?;
    Ok(empty(
        StatusCode::ACCEPTED,
        &operation_headers(cx, sub, &cx.st.seed().location, &op_id, Lro::C),
    ))
}
