//! Microsoft.MachineLearningServices on ARM, apart from online endpoints: the seeded workspace and its
//! default datastore, immutable code/model/environment versions (model versions positive integers,
//! version lists paged with `nextLink`; bodies judged by the rule table in [`super::rules`]), and the
//! status URLs of patterns B and C. Also the helpers the online endpoints share (the `UserError` answer, endpoint rendering,
//! operation headers).
//!
//! Handlers take typed routes and use the store's named operations; they never parse paths.
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::protocol::{ArmCode, ArmError, ArmResult, Ctx};
use super::route::{AssetKind, ChildRef, ResRef};
use super::rules::{self, BodyKind};
use crate::cloud::bodies::{datastore_body, datastore_key};
use crate::cloud::http::{empty, json_response};
use crate::cloud::store::now_rfc3339;

/// An Azure ML error: code `UserError`.
pub(crate) fn user_error(status: StatusCode, msg: &str) -> ArmError {
    ArmError::new(status, ArmCode::UserError, msg)
}

/// Fills computed URLs into an endpoint body (other bodies are returned as they are).
pub(crate) fn render(cx: &Ctx, mut b: Value) -> Value {
    if b["type"] == "Microsoft.MachineLearningServices/workspaces/onlineEndpoints" {
        let name = b["name"].as_str().unwrap_or_default().to_string();
        b["properties"]["scoringUri"] = format!("{}/inference/{name}/score", cx.st.arm_url).into();
        b["properties"]["swaggerUri"] =
            format!("{}/inference/{name}/swagger.json", cx.st.arm_url).into();
    }
    b
}

/// The status URL of an ML operation: `kind` is `mfeOperationsStatus` or `mfeOperationResults`.
fn operation_url(cx: &Ctx, sub: &str, loc: &str, kind: &str, op: &str) -> String {
    format!(
        "{}/{kind}/{op}?api-version={}",
        cx.op_base(sub, "Microsoft.MachineLearningServices", loc),
        cx.api_version
    )
}

/// The long-running-operation patterns of Azure ML.
#[derive(Clone, Copy)]
pub(crate) enum Lro {
    /// PUT: poll `Azure-AsyncOperation` (`mfeOperationsStatus`).
    B,
    /// PATCH and DELETE: poll `Location` (`mfeOperationResults`) after `Retry-After`.
    C,
}

/// The headers of an accepted ML operation `op` in `loc`.
pub(crate) fn operation_headers(
    cx: &Ctx,
    sub: &str,
    loc: &str,
    op: &str,
    pattern: Lro,
) -> Vec<(&'static str, String)> {
    let mut h = match pattern {
        Lro::B => vec![(
            "Azure-AsyncOperation",
            operation_url(cx, sub, loc, "mfeOperationsStatus", op),
        )],
        Lro::C => vec![
            (
                "Location",
                operation_url(cx, sub, loc, "mfeOperationResults", op),
            ),
            ("Retry-After", cx.retry_after()),
        ],
    };
    h.push(("x-ms-async-operation-timeout", "PT1H".into()));
    h
}

/// Pattern B/C status URLs: `mfeOperationsStatus/{op}` (status JSON) and `mfeOperationResults/{op}`
/// (202 until done, then the resource).
pub(crate) fn get_operation(cx: &Ctx, kind: &str, op_id: &str) -> ArmResult {
    let status = kind.eq_ignore_ascii_case("mfeOperationsStatus");
    if !status && !kind.eq_ignore_ascii_case("mfeOperationResults") {
        return Err(cx.unimplemented());
    }
    let Some(op) = cx.st.store.operation(op_id) else {
        return Err(ArmError::not_found(
            ArmCode::NotFound,
            "The operation was not found.",
        ));
    };
    if status {
        let mut b =
            json!({"id": cx.path, "name": op.id, "status": op.status, "startTime": op.started});
        if let Some(e) = &op.ended {
            b["endTime"] = e.clone().into();
        }
        if let Some(err) = &op.error {
            b["error"] = err.clone();
        }
        return Ok(json_response(StatusCode::OK, b));
    }
    if op.status == "InProgress" {
        return Ok(cx.poll_again(format!(
            "{}{}?api-version={}",
            cx.st.arm_url, cx.path, cx.api_version
        )));
    }
    if op.kind.ends_with("delete") {
        return Ok(empty(StatusCode::OK, &[]));
    }
    match cx.st.store.resource(&op.resource_key) {
        Some(b) => Ok(json_response(StatusCode::OK, render(cx, b))),
        None => Err(ArmError::not_found(
            ArmCode::NotFound,
            "The resource no longer exists.",
        )),
    }
}

pub(crate) fn get_workspace(cx: &Ctx, ws: &ResRef) -> Response {
    let mut b = cx.st.store.resource(&ws.key()).unwrap_or(Value::Null);
    b["id"] = ws.id.clone().into();
    json_response(StatusCode::OK, b)
}

/// The default datastore: the record a hardened data folder was seeded with, else the standard one
/// (account-key credentials), built from the seed.
fn datastore(cx: &Ctx, ws_id: &str) -> Value {
    cx.st
        .store
        .resource(&datastore_key(ws_id))
        .unwrap_or_else(|| datastore_body(ws_id, &cx.st.seed(), "AccountKey"))
}

pub(crate) fn list_datastores(cx: &Ctx, ws: &ResRef) -> Response {
    let ds = datastore(cx, &ws.id);
    let keep = cx
        .q("isDefault")
        .is_none_or(|v| v.eq_ignore_ascii_case("true"));
    json_response(
        StatusCode::OK,
        json!({"value": if keep { vec![ds] } else { vec![] }}),
    )
}

/// Only the default datastore exists.
fn datastore_exists(ds: &ChildRef<ResRef>) -> Result<(), ArmError> {
    if ds.name.eq_ignore_ascii_case("workspaceblobstore") {
        Ok(())
    } else {
        Err(user_error(
            StatusCode::NOT_FOUND,
            &format!("datastore {} not found", ds.name),
        ))
    }
}

pub(crate) fn get_datastore(cx: &Ctx, ds: &ChildRef<ResRef>) -> ArmResult {
    datastore_exists(ds)?;
    Ok(json_response(StatusCode::OK, datastore(cx, &ds.parent.id)))
}

/// `POST {datastore}/listSecrets`: the workspace storage account's first key.
pub(crate) fn list_datastore_secrets(cx: &Ctx, ds: &ChildRef<ResRef>) -> ArmResult {
    datastore_exists(ds)?;
    // An identity-based datastore has no secrets: the secret kinds are those of credentials
    // (Azure/azure-rest-api-specs specification/machinelearningservices/resource-manager/
    // Microsoft.MachineLearningServices/stable/2025-12-01/mlservices.json, definition
    // DatastoreSecrets: secretsType AccountKey, Certificate, Sas, ServicePrincipal, Kerberos…; none
    // for credentialsType None).
    if datastore(cx, &ds.parent.id)
        .pointer("/properties/credentials/credentialsType")
        .and_then(Value::as_str)
        == Some("None")
    {
        return Err(user_error(
            StatusCode::BAD_REQUEST,
            &format!(
                "datastore {} is identity-based (credentials of type None) and has no secrets",
                ds.name
            ),
        ));
    }
    let seed = cx.st.seed();
    let acct_key = format!(
        "/subscriptions/{}/resourcegroups/{}/providers/microsoft.storage/storageaccounts/{}",
        seed.subscription_id, seed.resource_group, seed.workspace_storage_account
    )
    .to_ascii_lowercase();
    let key = cx.st.store.secret(&acct_key, "key1").unwrap_or_default();
    Ok(json_response(
        StatusCode::OK,
        json!({"secretsType": "AccountKey", "key": key}),
    ))
}

/// Fields of a version that cannot change once created.
const IMMUTABLE: &[&str] = &["codeUri", "modelUri", "image", "condaFile", "build"];

/// `startPendingUpload` is not implemented: assets are uploaded to the workspace datastore.
pub(crate) fn pending_upload() -> ArmError {
    ArmError::not_implemented("startPendingUpload (use the workspace datastore)")
}

pub(crate) fn list_asset_containers(cx: &Ctx, ws: &ResRef, kind: AssetKind) -> Response {
    let list = cx.st.store.children(&ws.id, kind.as_str());
    json_response(StatusCode::OK, json!({"value": list}))
}

/// The latest of a container's versions: the highest number when they are numbers (model versions
/// always are; stored in name order, `10` comes before `9`), else the last one.
fn latest_version(versions: &[Value]) -> Option<Value> {
    let name = |v: &Value| v["name"].as_str().unwrap_or_default().to_owned();
    let numbers: Option<Vec<u64>> = versions.iter().map(|v| name(v).parse().ok()).collect();
    match numbers {
        Some(n) if !n.is_empty() => n.into_iter().max().map(|m| m.to_string().into()),
        _ => versions.last().map(|v| v["name"].clone()),
    }
}

/// An asset container, summarised from its versions.
pub(crate) fn get_asset_container(
    cx: &Ctx,
    kind: AssetKind,
    asset: &ChildRef<ResRef>,
) -> ArmResult {
    let versions = cx.st.store.children(&asset.id, "versions");
    if versions.is_empty() && !cx.st.store.has_resource(&asset.key()) {
        return Err(user_error(
            StatusCode::NOT_FOUND,
            &format!("{} container {} not found", kind.as_str(), asset.name),
        ));
    }
    Ok(json_response(
        StatusCode::OK,
        json!({"id": asset.id, "name": asset.name, "type": format!("Microsoft.MachineLearningServices/workspaces/{}", kind.as_str()), "properties": {"latestVersion": latest_version(&versions), "isArchived": false, "provisioningState": "Succeeded"}}),
    ))
}

/// Model versions are positive integers: the service answers 400 `UserError` with the detail
/// `ModelVersionOutOfRange` ("Model version must be a positive integer.") for anything else, although
/// the definition types the version as a plain string (`ModelVersions_CreateOrUpdate`'s `version`
/// parameter in `Azure/azure-rest-api-specs:
/// specification/machinelearningservices/resource-manager/Microsoft.MachineLearningServices/stable/2025-12-01/openapi.json`;
/// the code and detail are those azure-ai-ml reports: "(UserError) Model version must be a positive
/// integer. Code: ModelVersionOutOfRange"). Code and environment versions may be any string.
fn check_model_version(version: &str) -> Result<(), ArmError> {
    let positive =
        version.bytes().all(|b| b.is_ascii_digit()) && version.parse::<i32>().is_ok_and(|n| n > 0);
    if positive {
        return Ok(());
    }
    let msg = "Model version must be a positive integer.";
    Err(user_error(StatusCode::BAD_REQUEST, msg).detail(ArmCode::ModelVersionOutOfRange, msg))
}

/// Versions per page of a version list when the request sets no `$top`.
const VERSIONS_PAGE: usize = 100;

/// `GET {asset}/versions`: a page of versions and, when more follow, a `nextLink` that continues at
/// `$skip` (the paging of `ModelVersions_List` and friends: `x-ms-pageable` with `nextLinkName:
/// nextLink`; the example's next link carries `$skip`, `Azure/azure-rest-api-specs:
/// specification/machinelearningservices/resource-manager/Microsoft.MachineLearningServices/stable/2025-12-01/examples/Workspace/ModelVersion/list.json`).
/// [emulator choice] `$top` is the page size (at most [`VERSIONS_PAGE`]).
pub(crate) fn list_asset_versions(cx: &Ctx, asset: &ChildRef<ResRef>) -> ArmResult {
    let number = |name: &str| -> Result<usize, ArmError> {
        cx.q(name).map_or(Ok(0), |v| {
            v.parse::<usize>().map_err(|_| {
                user_error(
                    StatusCode::BAD_REQUEST,
                    &format!("The query parameter {name} must be a non-negative integer."),
                )
            })
        })
    };
    let skip = number("$skip")?;
    let page = match number("$top")? {
        0 => VERSIONS_PAGE,
        n => n.min(VERSIONS_PAGE),
    };
    let all = cx.st.store.children(&asset.id, "versions");
    let items: Vec<Value> = all.iter().skip(skip).take(page).cloned().collect();
    let mut body = json!({ "value": items });
    if skip + page < all.len() {
        let mut next = format!(
            "{}{}/versions?api-version={}&$skip={}",
            cx.st.arm_url,
            asset.id,
            cx.api_version,
            skip + page
        );
        if let Some(top) = cx.q("$top") {
            next.push_str(&format!("&$top={top}"));
        }
        body["nextLink"] = next.into();
    }
    Ok(json_response(StatusCode::OK, body))
}

pub(crate) fn get_asset_version(
    cx: &Ctx,
    kind: AssetKind,
    v: &ChildRef<ChildRef<ResRef>>,
) -> ArmResult {
    let b = cx.stored(&v.key(), &v.id).ok_or_else(|| {
        user_error(
            StatusCode::NOT_FOUND,
            &format!("{} {}:{} not found", kind.as_str(), v.parent.name, v.name),
        )
    })?;
    Ok(json_response(StatusCode::OK, b))
}

pub(crate) async fn delete_asset_version(cx: &Ctx, v: &ChildRef<ChildRef<ResRef>>) -> ArmResult {
    if !cx.st.store.has_resource(&v.key()) {
        return Ok(empty(StatusCode::NO_CONTENT, &[]));
    }
    cx.st.store.delete_resource(&v.key()).await?;
    Ok(empty(StatusCode::OK, &[]))
}

/// `PUT` of a version: created once; a later PUT may change anything but [`IMMUTABLE`] fields.
pub(crate) async fn put_asset_version(
    cx: &Ctx,
    kind: AssetKind,
    v: &ChildRef<ChildRef<ResRef>>,
) -> ArmResult {
    let key = v.key();
    let existing = cx.st.store.resource(&key);
    let req = cx.json()?;
    if kind == AssetKind::Models {
        check_model_version(&v.name)?;
    }
    rules::check(
        match kind {
            AssetKind::Codes => BodyKind::CodeVersion,
            AssetKind::Models => BodyKind::ModelVersion,
            AssetKind::Environments => BodyKind::EnvironmentVersion,
        },
        &req,
    )?;
    let mut props = req
        .get("properties")
        .cloned()
        .filter(Value::is_object)
        .unwrap_or(json!({}));
    if kind == AssetKind::Environments
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
                        "Asset paths cannot be updated. {f} of {} {}:{} differs from the existing version.",
                        kind.as_str(),
                        v.parent.name,
                        v.name
                    ),
                ));
            }
        }
    }
    props["provisioningState"] = "Succeeded".into();
    if kind == AssetKind::Models && props.get("flavors").is_none_or(Value::is_null) {
        props["flavors"] = json!({});
    }
    if kind == AssetKind::Environments {
        props["environmentType"] = "UserCreated".into();
        if props.get("osType").is_none() {
            props["osType"] = "Linux".into();
        }
    }
    let body = json!({
        "id": v.id, "name": v.name, "type": format!("Microsoft.MachineLearningServices/workspaces/{}/versions", kind.as_str()),
        "properties": props,
        "systemData": {"createdAt": existing.as_ref().and_then(|o| o.pointer("/systemData/createdAt").cloned()).unwrap_or(now_rfc3339().into()), "createdBy": cx.caller.oid, "createdByType": "Application"}
    });
    cx.st.store.put_resource(&key, body.clone()).await?;
    Ok(cx.created_or_ok(existing.is_none(), body))
}
