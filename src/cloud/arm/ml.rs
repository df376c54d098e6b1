//! Microsoft.MachineLearningServices: the seeded workspace and its default datastore, immutable
//! code/model/environment versions, online endpoints (LRO pattern B for PUT, C for PATCH/DELETE) and
//! online deployments, whose containers the runner really starts.
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use super::{
    ArmCode, ArmError, ArmResult, Ctx, empty, json_response, list_children, matches, new_operation,
    new_principal,
};
use crate::cloud::runner;
use crate::cloud::store::{Seed, now_ms, now_rfc3339};

pub fn workspace_body(id: &str, seed: &Seed, storage_id: &str) -> Value {
    let rg = format!(
        "/subscriptions/{}/resourceGroups/{}",
        seed.subscription_id, seed.resource_group
    );
    json!({
        "id": id, "name": seed.workspace, "type": "Microsoft.MachineLearningServices/workspaces",
        "location": seed.location, "kind": "Default",
        "identity": {"type": "SystemAssigned", "principalId": seed.workspace_guid, "tenantId": seed.tenant_id},
        "sku": {"name": "Basic", "tier": "Basic"},
        "properties": {
            "friendlyName": seed.workspace, "provisioningState": "Succeeded",
            "storageAccount": storage_id,
            "containerRegistry": format!("{rg}/providers/Microsoft.ContainerRegistry/registries/localacr"),
            "keyVault": format!("{rg}/providers/Microsoft.KeyVault/vaults/localkv"),
            "applicationInsights": format!("{rg}/providers/Microsoft.Insights/components/localai"),
            "workspaceId": seed.workspace_guid, "publicNetworkAccess": "Enabled",
            "discoveryUrl": "", "hbiWorkspace": false
        }
    })
}

fn datastore_body(ws_id: &str, seed: &Seed) -> Value {
    json!({
        "id": format!("{ws_id}/datastores/workspaceblobstore"), "name": "workspaceblobstore",
        "type": "Microsoft.MachineLearningServices/workspaces/datastores",
        "properties": {
            "datastoreType": "AzureBlob", "accountName": seed.workspace_storage_account,
            "containerName": seed.workspace_container, "endpoint": "core.windows.net", "protocol": "https",
            "isDefault": true, "credentials": {"credentialsType": "AccountKey"},
            "serviceDataAccessAuthIdentity": "None", "subscriptionId": seed.subscription_id,
            "resourceGroup": seed.resource_group, "description": "the workspace's default blob store",
            "tags": {}, "properties": {}
        }
    })
}

/// Pattern B/C status URLs.
pub async fn route_operation(cx: &Ctx) -> ArmResult {
    let s = &cx.segs;
    let Some(c) = matches(
        s,
        &[
            "subscriptions",
            "*",
            "providers",
            "Microsoft.MachineLearningServices",
            "locations",
            "*",
            "*",
            "*",
        ],
    ) else {
        return Err(ArmError::not_implemented(&format!(
            "{} {}",
            cx.method,
            cx.id(s.len())
        )));
    };
    let (kind, op_id) = (c[2], c[3].to_string());
    let op = cx.st.store.read(|d| d.operations.get(&op_id).cloned());
    let Some(op) = op else {
        return Err(ArmError::not_found(
            ArmCode::NotFound,
            "The operation was not found.",
        ));
    };
    if kind.eq_ignore_ascii_case("mfeOperationsStatus") {
        let mut b = json!({"id": cx.id(s.len()), "name": op.id, "status": op.status, "startTime": op.started});
        if let Some(e) = &op.ended {
            b["endTime"] = e.clone().into();
        }
        if let Some(err) = &op.error {
            b["error"] = err.clone();
        }
        return Ok(json_response(StatusCode::OK, b));
    }
    if kind.eq_ignore_ascii_case("mfeOperationResults") {
        if op.status == "InProgress" {
            return Ok(empty(
                StatusCode::ACCEPTED,
                &[
                    (
                        "Location",
                        format!(
                            "{}{}?api-version={}",
                            cx.st.arm_url,
                            cx.id(s.len()),
                            cx.api_version
                        ),
                    ),
                    ("Retry-After", cx.retry_after()),
                ],
            ));
        }
        if op.kind.ends_with("delete") {
            return Ok(empty(StatusCode::OK, &[]));
        }
        let body = cx
            .st
            .store
            .read(|d| d.resources.get(&op.resource_key).cloned());
        return match body {
            Some(b) => Ok(json_response(StatusCode::OK, render(cx, b))),
            None => Err(ArmError::not_found(
                ArmCode::NotFound,
                "The resource no longer exists.",
            )),
        };
    }
    Err(ArmError::not_implemented(&format!(
        "{} {}",
        cx.method,
        cx.id(s.len())
    )))
}

/// Fills computed URLs into an endpoint body.
fn render(cx: &Ctx, mut b: Value) -> Value {
    if b["type"] == "Microsoft.MachineLearningServices/workspaces/onlineEndpoints" {
        let name = b["name"].as_str().unwrap_or_default().to_string();
        b["properties"]["scoringUri"] = format!("{}/inference/{name}/score", cx.st.arm_url).into();
        b["properties"]["swaggerUri"] =
            format!("{}/inference/{name}/swagger.json", cx.st.arm_url).into();
    }
    b
}

fn user_error(status: StatusCode, msg: &str) -> ArmError {
    ArmError::new(status, ArmCode::UserError, msg)
}

pub async fn route(cx: &Ctx) -> ArmResult {
    let s = &cx.segs;
    let seed = cx.st.seed();
    let ws_id = cx.id(8);
    if !s[7].eq_ignore_ascii_case(&seed.workspace)
        || !s[3].eq_ignore_ascii_case(&seed.resource_group)
    {
        return Err(ArmError::not_found(
            ArmCode::ResourceNotFound,
            &format!(
                "The Resource 'Microsoft.MachineLearningServices/workspaces/{}' under resource group '{}' was not found.",
                s[7], s[3]
            ),
        ));
    }
    let rest: Vec<String> = s[8..].iter().map(|x| x.to_ascii_lowercase()).collect();
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    let m = &cx.method;
    match rest.as_slice() {
        [] if *m == Method::GET => {
            let mut b = cx
                .st
                .store
                .read(|d| d.resources.get(&ws_id.to_ascii_lowercase()).cloned())
                .unwrap_or(Value::Null);
            b["id"] = ws_id.into();
            Ok(json_response(StatusCode::OK, b))
        }
        ["datastores"] if *m == Method::GET => {
            let ds = datastore_body(&ws_id, &seed);
            let keep = cx
                .q("isDefault")
                .is_none_or(|v| v.eq_ignore_ascii_case("true"));
            Ok(json_response(
                StatusCode::OK,
                json!({"value": if keep { vec![ds] } else { vec![] }}),
            ))
        }
        ["datastores", name] if *m == Method::GET => {
            if *name != "workspaceblobstore" {
                return Err(user_error(
                    StatusCode::NOT_FOUND,
                    &format!("datastore {} not found", s[9]),
                ));
            }
            Ok(json_response(StatusCode::OK, datastore_body(&ws_id, &seed)))
        }
        ["datastores", name, "listsecrets"] if *m == Method::POST => {
            if *name != "workspaceblobstore" {
                return Err(user_error(
                    StatusCode::NOT_FOUND,
                    &format!("datastore {} not found", s[9]),
                ));
            }
            let acct_key = format!(
                "/subscriptions/{}/resourcegroups/{}/providers/microsoft.storage/storageaccounts/{}#key1",
                seed.subscription_id, seed.resource_group, seed.workspace_storage_account
            )
            .to_ascii_lowercase();
            let key = cx
                .st
                .store
                .read(|d| d.secrets.get(&acct_key).cloned())
                .unwrap_or_default();
            Ok(json_response(
                StatusCode::OK,
                json!({"secretsType": "AccountKey", "key": key}),
            ))
        }
        [kind @ ("codes" | "models" | "environments"), ..] => assets(cx, kind).await,
        ["onlineendpoints"] if *m == Method::GET => {
            let list: Vec<Value> = list_children(&cx.st, &ws_id, "onlineEndpoints")
                .into_iter()
                .map(|b| render(cx, b))
                .collect();
            Ok(json_response(StatusCode::OK, json!({"value": list})))
        }
        ["onlineendpoints", _] => endpoint(cx).await,
        ["onlineendpoints", _, "listkeys"] if *m == Method::POST => {
            let ep_key = cx.id(10).to_ascii_lowercase();
            let keys = cx.st.store.read(|d| {
                d.resources.contains_key(&ep_key).then(|| {
                    (
                        d.secrets.get(&format!("{ep_key}#primary")).cloned(),
                        d.secrets.get(&format!("{ep_key}#secondary")).cloned(),
                    )
                })
            });
            match keys {
                Some((p, q)) => Ok(json_response(
                    StatusCode::OK,
                    json!({"primaryKey": p, "secondaryKey": q}),
                )),
                None => Err(endpoint_not_found(cx)),
            }
        }
        ["onlineendpoints", _, "token"] if *m == Method::POST => {
            let ep_key = cx.id(10).to_ascii_lowercase();
            let exists = cx.st.store.read(|d| d.resources.contains_key(&ep_key));
            if !exists {
                return Err(endpoint_not_found(cx));
            }
            let now = now_ms() / 1000;
            let token = cx.st.signer.sign(&crate::cloud::auth::Claims {
                aud: format!("aml-endpoint:{ep_key}"),
                iss: cx.st.arm_url.clone(),
                oid: cx.caller.oid.clone(),
                tid: seed.tenant_id.clone(),
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
        ["onlineendpoints", _, "deployments"] if *m == Method::GET => {
            if !cx
                .st
                .store
                .read(|d| d.resources.contains_key(&cx.id(10).to_ascii_lowercase()))
            {
                return Err(endpoint_not_found(cx));
            }
            Ok(json_response(
                StatusCode::OK,
                json!({"value": list_children(&cx.st, &cx.id(10), "deployments")}),
            ))
        }
        ["onlineendpoints", _, "deployments", _] => deployment(cx).await,
        ["onlineendpoints", _, "deployments", _, "getlogs"] if *m == Method::POST => {
            let key = cx.id(12).to_ascii_lowercase();
            if !cx.st.store.read(|d| d.resources.contains_key(&key)) {
                return Err(user_error(
                    StatusCode::NOT_FOUND,
                    &format!("deployment {} not found", s[11]),
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
        _ => Err(ArmError::not_implemented(&format!(
            "{} {}",
            cx.method,
            cx.id(s.len())
        ))),
    }
}

fn endpoint_not_found(cx: &Ctx) -> ArmError {
    user_error(
        StatusCode::NOT_FOUND,
        &format!("Could not find online endpoint '{}'.", cx.segs[9]),
    )
}

/// Fields of a version that cannot change once created.
const IMMUTABLE: &[&str] = &["codeUri", "modelUri", "image", "condaFile", "build"];

async fn assets(cx: &Ctx, kind: &str) -> ArmResult {
    let s = &cx.segs;
    let m = &cx.method;
    let type_name = match kind {
        "codes" => "codes",
        "models" => "models",
        _ => "environments",
    };
    match s.len() {
        9 if *m == Method::GET => {
            let list = list_children(&cx.st, &cx.id(8), kind);
            Ok(json_response(StatusCode::OK, json!({"value": list})))
        }
        10 if *m == Method::GET => {
            let key = cx.id(10).to_ascii_lowercase();
            let versions = list_children(&cx.st, &cx.id(10), "versions");
            if versions.is_empty() && !cx.st.store.read(|d| d.resources.contains_key(&key)) {
                return Err(user_error(
                    StatusCode::NOT_FOUND,
                    &format!("{} container {} not found", kind, s[9]),
                ));
            }
            Ok(json_response(
                StatusCode::OK,
                json!({"id": cx.id(10), "name": s[9], "type": format!("Microsoft.MachineLearningServices/workspaces/{type_name}"), "properties": {"latestVersion": versions.last().map(|v| v["name"].clone()), "isArchived": false, "provisioningState": "Succeeded"}}),
            ))
        }
        11 if *m == Method::GET && s[10].eq_ignore_ascii_case("versions") => {
            let list = list_children(&cx.st, &cx.id(10), "versions");
            Ok(json_response(StatusCode::OK, json!({"value": list})))
        }
        12 if s[10].eq_ignore_ascii_case("versions") => {
            let id = cx.id(12);
            let key = id.to_ascii_lowercase();
            let existing = cx.st.store.read(|d| d.resources.get(&key).cloned());
            match *m {
                Method::GET => existing
                    .map(|mut b| {
                        b["id"] = id.clone().into();
                        json_response(StatusCode::OK, b)
                    })
                    .ok_or_else(|| {
                        user_error(
                            StatusCode::NOT_FOUND,
                            &format!("{kind} {}:{} not found", s[9], s[11]),
                        )
                    }),
                Method::DELETE => match existing {
                    Some(_) => {
                        cx.st.store.mutate(|d| d.resources.remove(&key)).await?;
                        Ok(empty(StatusCode::OK, &[]))
                    }
                    None => Ok(empty(StatusCode::NO_CONTENT, &[])),
                },
                Method::PUT => {
                    let req = cx.json()?;
                    let mut props = req
                        .get("properties")
                        .cloned()
                        .filter(Value::is_object)
                        .unwrap_or(json!({}));
                    let required = match kind {
                        "codes" => Some("codeUri"),
                        "models" => Some("modelUri"),
                        _ => None,
                    };
                    if let Some(f) = required
                        && props.get(f).and_then(Value::as_str).is_none()
                    {
                        return Err(user_error(
                            StatusCode::BAD_REQUEST,
                            &format!("properties.{f} is required"),
                        ));
                    }
                    if kind == "environments"
                        && props.get("image").is_none()
                        && props.get("build").is_none()
                    {
                        return Err(user_error(
                            StatusCode::BAD_REQUEST,
                            "an environment needs properties.image or properties.build",
                        ));
                    }
                    if let Some(old) = &existing {
                        for f in IMMUTABLE {
                            if old["properties"].get(*f) != props.get(*f) {
                                return Err(user_error(
                                    StatusCode::CONFLICT,
                                    &format!(
                                        "Asset paths cannot be updated. {f} of {kind} {}:{} differs from the existing version.",
                                        s[9], s[11]
                                    ),
                                ));
                            }
                        }
                    }
                    props["provisioningState"] = "Succeeded".into();
                    if kind == "models" && props.get("flavors").is_none_or(Value::is_null) {
                        props["flavors"] = json!({});
                    }
                    if kind == "environments" {
                        props["environmentType"] = "UserCreated".into();
                        if props.get("osType").is_none() {
                            props["osType"] = "Linux".into();
                        }
                    }
                    let body = json!({
                        "id": id, "name": s[11], "type": format!("Microsoft.MachineLearningServices/workspaces/{type_name}/versions"),
                        "properties": props,
                        "systemData": {"createdAt": existing.as_ref().and_then(|o| o.pointer("/systemData/createdAt").cloned()).unwrap_or(now_rfc3339().into()), "createdBy": cx.caller.oid, "createdByType": "Application"}
                    });
                    let b2 = body.clone();
                    cx.st.store.mutate(|d| d.resources.insert(key, b2)).await?;
                    Ok(json_response(
                        if existing.is_some() {
                            StatusCode::OK
                        } else {
                            StatusCode::CREATED
                        },
                        body,
                    ))
                }
                Method::POST => Err(ArmError::not_implemented(
                    "startPendingUpload (use the workspace datastore)",
                )),
                _ => Err(ArmError::not_implemented(&format!(
                    "{} on asset versions",
                    cx.method
                ))),
            }
        }
        13 if s[12].eq_ignore_ascii_case("startPendingUpload") => Err(ArmError::not_implemented(
            "startPendingUpload (use the workspace datastore)",
        )),
        _ => Err(ArmError::not_implemented(&format!(
            "{} {}",
            cx.method,
            cx.id(s.len())
        ))),
    }
}

fn valid_ml_name(n: &str) -> bool {
    (3..=32).contains(&n.len())
        && n.starts_with(|c: char| c.is_ascii_alphabetic())
        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

fn async_headers(cx: &Ctx, loc: &str, op: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "Azure-AsyncOperation",
            format!(
                "{}/mfeOperationsStatus/{op}?api-version={}",
                cx.op_base("Microsoft.MachineLearningServices", loc),
                cx.api_version
            ),
        ),
        ("x-ms-async-operation-timeout", "PT1H".into()),
    ]
}

fn location_headers(cx: &Ctx, loc: &str, op: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "Location",
            format!(
                "{}/mfeOperationResults/{op}?api-version={}",
                cx.op_base("Microsoft.MachineLearningServices", loc),
                cx.api_version
            ),
        ),
        ("Retry-After", cx.retry_after()),
        ("x-ms-async-operation-timeout", "PT1H".into()),
    ]
}

/// The op URL of a running operation on this resource, if one is in progress.
/// The running operation on this resource, if any, as `kind id`.
fn busy(cx: &Ctx, key: &str) -> Option<String> {
    cx.st.store.read(|d| {
        d.operations
            .values()
            .find(|o| o.status == "InProgress" && o.resource_key == key)
            .map(|o| format!("{} {}", o.kind, o.id))
    })
}

async fn endpoint(cx: &Ctx) -> ArmResult {
    let s = &cx.segs;
    let id = cx.id(10);
    let key = id.to_ascii_lowercase();
    let name = s[9].clone();
    let existing = cx.st.store.read(|d| d.resources.get(&key).cloned());
    let seed = cx.st.seed();
    match cx.method {
        Method::GET => existing
            .map(|mut b| {
                b["id"] = id.clone().into();
                json_response(StatusCode::OK, render(cx, b))
            })
            .ok_or_else(|| endpoint_not_found(cx)),
        Method::DELETE => {
            let Some(_) = existing else {
                return Ok(empty(StatusCode::NO_CONTENT, &[]));
            };
            let deps: Vec<String> = list_children(&cx.st, &id, "deployments")
                .iter()
                .filter_map(|d| d["id"].as_str().map(str::to_ascii_lowercase))
                .collect();
            for d in &deps {
                runner::stop(&cx.st, d).await;
            }
            let files = cx.st.store.mutate(|d| super::remove_tree(d, &key)).await?;
            cx.st.store.remove_blob_files(&files);
            let op = new_operation(&cx.st, "endpoint-delete", &key, cx.st.faults().lro_ms).await?;
            Ok(empty(
                StatusCode::ACCEPTED,
                &location_headers(cx, &seed.location, &op),
            ))
        }
        Method::PATCH => {
            let Some(mut b) = existing else {
                return Err(endpoint_not_found(cx));
            };
            let req = cx.json()?;
            if let Some(t) = req.get("tags") {
                b["tags"] = t.clone();
            }
            if req.get("identity").is_some() {
                return Err(ArmError::not_implemented(
                    "changing an endpoint's identity with PATCH",
                ));
            }
            store_patched(cx, &key, b, "endpoint-patch", &seed.location).await
        }
        Method::PUT => {
            let req = cx.json()?;
            if !valid_ml_name(&name) {
                return Err(user_error(
                    StatusCode::BAD_REQUEST,
                    "endpoint names are 3-32 characters, start with a letter, and use letters, digits and hyphens",
                ));
            }
            let Some(loc) = req.get("location").and_then(Value::as_str) else {
                return Err(ArmError::bad_request(
                    ArmCode::LocationRequired,
                    "The location property is required for this definition.",
                ));
            };
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
            // Traffic must name existing deployments and sum to 100 (or be empty / all zero).
            let traffic = req
                .pointer("/properties/traffic")
                .cloned()
                .unwrap_or(json!({}));
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
                let dep_key = format!("{key}/deployments/{}", dep.to_ascii_lowercase());
                if !cx.st.store.read(|d| d.resources.contains_key(&dep_key)) {
                    return Err(user_error(
                        StatusCode::BAD_REQUEST,
                        &format!(
                            "Deployment {dep} does not exist on endpoint {name}; traffic can only be set for existing deployments."
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
            // Identity.
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
                    .as_ref()
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
                identity["tenantId"] = seed.tenant_id.clone().into();
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
                    let found = cx.st.store.read(|d| {
                        d.resources
                            .get(&uai_id.trim_end_matches('/').to_ascii_lowercase())
                            .cloned()
                    });
                    let Some(u) = found.filter(|u| {
                        u["type"] == "Microsoft.ManagedIdentity/userAssignedIdentities"
                    }) else {
                        return Err(ArmError::bad_request(
                            ArmCode::InvalidUserAssignedIdentity,
                            &format!("Resource '{uai_id}' was not found."),
                        ));
                    };
                    out.insert(uai_id.clone(), json!({"principalId": u["properties"]["principalId"], "clientId": u["properties"]["clientId"]}));
                }
                identity["userAssignedIdentities"] = Value::Object(out);
                if !system {
                    identity["tenantId"] = seed.tenant_id.clone().into();
                }
            }
            if let Some(old) = &existing {
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
            let mut props = req
                .get("properties")
                .cloned()
                .filter(Value::is_object)
                .unwrap_or(json!({}));
            props["authMode"] = auth_mode.into();
            props["traffic"] = traffic.clone();
            props["keys"] = Value::Null;
            if props.get("mirrorTraffic").is_none() {
                props["mirrorTraffic"] = json!({});
            }
            if props.get("publicNetworkAccess").is_none() {
                props["publicNetworkAccess"] = "Enabled".into();
            }
            let op_record = super::operation_record("endpoint-put", &key, cx.st.faults().lro_ms);
            let op = op_record.id.clone();
            let headers = async_headers(cx, loc, &op);
            let mut extra = props
                .get("properties")
                .cloned()
                .filter(Value::is_object)
                .unwrap_or(json!({}));
            extra["azureml.onlineendpointid"] = key.clone().into();
            extra["AzureAsyncOperationUri"] = headers[0].1.clone().into();
            props["properties"] = extra;
            props["provisioningState"] = if existing.is_some() {
                "Updating"
            } else {
                "Creating"
            }
            .into();
            let body = json!({
                "id": id, "name": name, "type": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints",
                "location": loc, "kind": req.get("kind").cloned().unwrap_or(Value::Null),
                "tags": req.get("tags").cloned().unwrap_or(json!({})),
                "identity": identity, "properties": props,
            });
            let created = existing.is_none();
            let b2 = body.clone();
            let (k1, k2) = (
                crate::cloud::server::random_key(),
                crate::cloud::server::random_key(),
            );
            let raced = cx
                .st
                .store
                .mutate(|d| {
                    // Two PUTs of a new endpoint at once: the second one loses.
                    if created && d.resources.contains_key(&key) {
                        return true;
                    }
                    if let Some(p) = new_principal_rec {
                        d.principals.insert(p.object_id.clone(), p);
                    }
                    if created {
                        d.secrets.insert(format!("{key}#primary"), k1);
                        d.secrets.insert(format!("{key}#secondary"), k2);
                    }
                    d.resources.insert(key.clone(), b2);
                    d.operations.insert(op_record.id.clone(), op_record);
                    false
                })
                .await?;
            if raced {
                return Err(user_error(
                    StatusCode::CONFLICT,
                    "Conflict: the endpoint is being created by another request",
                ));
            }
            let resp = json_response(
                if created {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                },
                render(cx, body),
            );
            Ok(super::with_headers(resp, &headers))
        }
        _ => Err(ArmError::not_implemented(&format!(
            "{} on online endpoints",
            cx.method
        ))),
    }
}

/// Resolves an asset reference (ARM id of a version) to its stored key, if it exists.
fn asset_key(cx: &Ctx, reference: &str, kind: &str) -> Result<String, ArmError> {
    let key = reference.trim_end_matches('/').to_ascii_lowercase();
    if key.contains(&format!("/{kind}/")) && cx.st.store.read(|d| d.resources.contains_key(&key)) {
        return Ok(key);
    }
    Err(user_error(
        StatusCode::BAD_REQUEST,
        &format!("{reference} does not exist or is not a {kind} version of this workspace"),
    ))
}

async fn deployment(cx: &Ctx) -> ArmResult {
    let s = &cx.segs;
    let ep_key = cx.id(10).to_ascii_lowercase();
    let id = cx.id(12);
    let key = id.to_ascii_lowercase();
    let name = s[11].clone();
    let ep = cx.st.store.read(|d| d.resources.get(&ep_key).cloned());
    let existing = cx.st.store.read(|d| d.resources.get(&key).cloned());
    let seed = cx.st.seed();
    let not_found = || {
        user_error(
            StatusCode::NOT_FOUND,
            &format!("Could not find online deployment '{}'.", s[11]),
        )
    };
    let Some(ep) = ep else {
        return match cx.method {
            Method::DELETE => Ok(empty(StatusCode::NO_CONTENT, &[])),
            _ => Err(endpoint_not_found(cx)),
        };
    };
    match cx.method {
        Method::GET => existing
            .map(|mut b| {
                b["id"] = id.clone().into();
                json_response(StatusCode::OK, b)
            })
            .ok_or_else(not_found),
        Method::DELETE => {
            let Some(_) = existing else {
                return Ok(empty(StatusCode::NO_CONTENT, &[]));
            };
            let traffic = ep
                .pointer("/properties/traffic")
                .and_then(Value::as_object)
                .and_then(|t| {
                    t.iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(&name))
                        .and_then(|(_, v)| v.as_u64())
                });
            if traffic.unwrap_or(0) > 0 {
                return Err(user_error(
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "Deployment {name} still receives traffic; set its traffic to 0 with an endpoint PUT before deleting it."
                    ),
                ));
            }
            runner::stop(&cx.st, &key).await;
            cx.st.store.mutate(|d| super::remove_tree(d, &key)).await?;
            runner::remove_files(&cx.st, &key);
            let op =
                new_operation(&cx.st, "deployment-delete", &key, cx.st.faults().lro_ms).await?;
            Ok(empty(
                StatusCode::ACCEPTED,
                &location_headers(cx, &seed.location, &op),
            ))
        }
        Method::PATCH => {
            let Some(mut b) = existing else {
                return Err(not_found());
            };
            let req = cx.json()?;
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
            store_patched(cx, &key, b, "deployment-patch", &seed.location).await
        }
        Method::PUT => {
            let req = cx.json()?;
            if !valid_ml_name(&name) {
                return Err(user_error(
                    StatusCode::BAD_REQUEST,
                    "deployment names are 3-32 characters, start with a letter, and use letters, digits and hyphens",
                ));
            }
            let Some(loc) = req.get("location").and_then(Value::as_str) else {
                return Err(ArmError::bad_request(
                    ArmCode::LocationRequired,
                    "The location property is required for this definition.",
                ));
            };
            let mut props = req
                .get("properties")
                .cloned()
                .filter(Value::is_object)
                .unwrap_or(json!({}));
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
            if let Some(op) = busy(cx, &key) {
                return Err(user_error(
                    StatusCode::CONFLICT,
                    &format!(
                        "Conflict: another operation ({op}) is in progress on this deployment"
                    ),
                ));
            }
            if let Some(old) = &existing
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
                Some(e) if e.to_ascii_lowercase().starts_with("azureml://registries/") => {}
                Some(e) => {
                    asset_key(cx, e, "environments")?;
                }
                None => {
                    return Err(user_error(
                        StatusCode::BAD_REQUEST,
                        "properties.environmentId is required",
                    ));
                }
            }
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
            props["provisioningState"] = if existing.is_some() {
                "Updating"
            } else {
                "Creating"
            }
            .into();
            let sku = req
                .get("sku")
                .cloned()
                .filter(Value::is_object)
                .unwrap_or(json!({"name": "Default", "capacity": 1}));
            let body = json!({
                "id": id, "name": name, "type": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments",
                "location": loc, "kind": "Managed", "sku": sku,
                "tags": req.get("tags").cloned().unwrap_or(json!({})),
                "properties": props,
            });
            let op = new_operation(&cx.st, "deployment-put", &key, cx.st.faults().lro_ms).await?;
            let created = existing.is_none();
            let b2 = body.clone();
            cx.st
                .store
                .mutate(|d| d.resources.insert(key.clone(), b2))
                .await?;
            runner::deploy(cx.st.clone(), key.clone(), Some(op.clone()));
            let resp = json_response(
                if created {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                },
                body,
            );
            Ok(super::with_headers(
                resp,
                &async_headers(cx, &seed.location, &op),
            ))
        }
        _ => Err(ArmError::not_implemented(&format!(
            "{} on online deployments",
            cx.method
        ))),
    }
}

/// Stores a PATCHed body and answers 202 with a `Location` operation to poll (pattern C).
async fn store_patched(
    cx: &Ctx,
    key: &str,
    body: Value,
    kind: &str,
    location: &str,
) -> Result<axum::response::Response, ArmError> {
    cx.st
        .store
        .mutate(|d| d.resources.insert(key.to_owned(), body))
        .await?;
    let op = new_operation(&cx.st, kind, key, cx.st.faults().lro_ms).await?;
    Ok(empty(
        StatusCode::ACCEPTED,
        &location_headers(cx, location, &op),
    ))
}
