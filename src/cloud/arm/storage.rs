//! Microsoft.Storage on ARM: storage accounts (create via LRO pattern A, get, list by resource group,
//! delete with everything under them, listKeys, checkNameAvailability) and blob containers.
//! Account keys live in the store's secrets and never appear in a resource body.
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use super::{
    ArmCode, ArmError, ArmResult, Ctx, empty, json_response, list_children, matches, new_operation,
    remove_tree,
};
use crate::cloud::server::{RESERVED, random_key};
use crate::cloud::store::now_rfc3339;

/// Storage account names: 3–24 lowercase letters and digits.
pub fn valid_account_name(n: &str) -> bool {
    (3..=24).contains(&n.len())
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Names "owned by another subscription": anything starting with `taken`, and the paths the local
/// cloud's own routes use.
pub fn is_taken_elsewhere(n: &str) -> bool {
    n.starts_with("taken") || RESERVED.contains(&n)
}

fn valid_container_name(n: &str) -> bool {
    (3..=63).contains(&n.len())
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !n.starts_with('-')
        && !n.ends_with('-')
        && !n.contains("--")
}

/// The stored body of an account (primaryEndpoints are filled in when rendered).
pub fn account_body(id: &str, name: &str, req: &Value, created: &str) -> Value {
    let sku = req
        .pointer("/sku/name")
        .and_then(Value::as_str)
        .unwrap_or("Standard_LRS");
    let tier = if sku.starts_with("Premium") {
        "Premium"
    } else {
        "Standard"
    };
    let loc = req
        .get("location")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut props = req
        .get("properties")
        .cloned()
        .filter(Value::is_object)
        .unwrap_or(json!({}));
    props["provisioningState"] = "Creating".into();
    props["creationTime"] = created.into();
    props["primaryLocation"] = loc.into();
    props["statusOfPrimary"] = "available".into();
    if props.get("allowSharedKeyAccess").is_none() {
        props["allowSharedKeyAccess"] = true.into();
    }
    if props.get("supportsHttpsTrafficOnly").is_none() {
        props["supportsHttpsTrafficOnly"] = true.into();
    }
    json!({
        "id": id, "name": name, "type": "Microsoft.Storage/storageAccounts",
        "location": loc, "kind": req.get("kind").cloned().unwrap_or("StorageV2".into()),
        "sku": {"name": sku, "tier": tier},
        "tags": req.get("tags").cloned().unwrap_or(json!({})),
        "properties": props,
    })
}

/// Fills in computed URLs for output.
pub fn render_account(arm_url: &str, mut b: Value) -> Value {
    let name = b["name"].as_str().unwrap_or_default().to_string();
    b["properties"]["primaryEndpoints"] = json!({"blob": format!("{arm_url}/{name}/")});
    b
}

pub fn container_body(id: &str, name: &str, req: &Value, created: &str, counter: u64) -> Value {
    let public = req
        .pointer("/properties/publicAccess")
        .and_then(Value::as_str)
        .unwrap_or("None");
    json!({
        "id": id, "name": name, "type": "Microsoft.Storage/storageAccounts/blobServices/containers",
        "etag": format!("\"0x8D{counter:013X}\""),
        "properties": {
            "publicAccess": public, "leaseStatus": "Unlocked", "leaseState": "Available",
            "lastModifiedTime": created, "hasImmutabilityPolicy": false, "hasLegalHold": false,
            "metadata": req.pointer("/properties/metadata").cloned().unwrap_or(json!({})),
            "deleted": false, "remainingRetentionDays": 0
        }
    })
}

/// `/subscriptions/{sub}/providers/Microsoft.Storage/...`: checkNameAvailability, pattern-A polls.
pub async fn route_subscription(cx: &Ctx) -> ArmResult {
    let s = &cx.segs;
    if matches(
        s,
        &[
            "subscriptions",
            "*",
            "providers",
            "Microsoft.Storage",
            "checkNameAvailability",
        ],
    )
    .is_some()
        && cx.method == Method::POST
    {
        let body = cx.json()?;
        let name = body.get("name").and_then(Value::as_str).unwrap_or_default();
        let answer = if !valid_account_name(name) {
            json!({"nameAvailable": false, "reason": "AccountNameInvalid", "message": format!("{name} is not a valid storage account name. Storage account name must be between 3 and 24 characters in length and use numbers and lower-case letters only.")})
        } else if is_taken_elsewhere(name) || find_account(cx, name).is_some() {
            json!({"nameAvailable": false, "reason": "AlreadyExists", "message": format!("The storage account named {name} is already taken.")})
        } else {
            json!({"nameAvailable": true})
        };
        return Ok(json_response(StatusCode::OK, answer));
    }
    if let Some(c) = matches(
        s,
        &[
            "subscriptions",
            "*",
            "providers",
            "Microsoft.Storage",
            "locations",
            "*",
            "asyncoperations",
            "*",
        ],
    ) && cx.method == Method::GET
    {
        let op_id = c[2].to_string();
        let op = cx.st.store.read(|d| d.operations.get(&op_id).cloned());
        let Some(op) = op else {
            return Err(ArmError::not_found(
                ArmCode::ResourceNotFound,
                "The operation was not found.",
            ));
        };
        if op.status == "InProgress" {
            return Ok(empty(
                StatusCode::ACCEPTED,
                &[
                    (
                        "Location",
                        format!(
                            "{}/subscriptions/{}/providers/Microsoft.Storage/locations/{}/asyncoperations/{}?monitor=true&api-version={}",
                            cx.st.arm_url, s[1], c[1], op_id, cx.api_version
                        ),
                    ),
                    ("Retry-After", cx.retry_after()),
                ],
            ));
        }
        let body = cx
            .st
            .store
            .read(|d| d.resources.get(&op.resource_key).cloned());
        return match body {
            Some(b) => Ok(json_response(
                StatusCode::OK,
                render_account(&cx.st.arm_url, b),
            )),
            None => Err(ArmError::not_found(
                ArmCode::ResourceNotFound,
                "The storage account no longer exists.",
            )),
        };
    }
    Err(ArmError::not_implemented(&format!(
        "{} {}",
        cx.method,
        cx.id(s.len())
    )))
}

fn find_account(cx: &Ctx, name: &str) -> Option<String> {
    let suffix = format!(
        "/providers/microsoft.storage/storageaccounts/{}",
        name.to_ascii_lowercase()
    );
    cx.st
        .store
        .read(|d| d.resources.keys().find(|k| k.ends_with(&suffix)).cloned())
}

/// `/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Storage/...`
pub async fn route(cx: &Ctx) -> ArmResult {
    let s = &cx.segs;
    let base = [
        "subscriptions",
        "*",
        "resourceGroups",
        "*",
        "providers",
        "Microsoft.Storage",
        "storageAccounts",
    ];
    if matches(s, &base).is_some() && cx.method == Method::GET {
        let list: Vec<Value> = list_children(&cx.st, &cx.id(6), "storageAccounts")
            .into_iter()
            .map(|b| render_account(&cx.st.arm_url, b))
            .collect();
        return Ok(json_response(StatusCode::OK, json!({"value": list})));
    }
    if s.len() < 8 || matches(&s[..7], &base).is_none() {
        return Err(ArmError::not_implemented(&format!(
            "{} {}",
            cx.method,
            cx.id(s.len())
        )));
    }
    let acct_id = cx.id(8);
    let acct_key = acct_id.to_ascii_lowercase();
    let name = s[7].clone();
    let existing = cx.st.store.read(|d| d.resources.get(&acct_key).cloned());
    let not_found = || {
        ArmError::not_found(
            ArmCode::ResourceNotFound,
            &format!(
                "The Resource 'Microsoft.Storage/storageAccounts/{}' under resource group '{}' was not found.",
                name, s[3]
            ),
        )
    };
    match (s.len(), &cx.method) {
        (8, &Method::GET) => match existing {
            Some(mut b) => {
                b["id"] = acct_id.into();
                Ok(json_response(
                    StatusCode::OK,
                    render_account(&cx.st.arm_url, b),
                ))
            }
            None => Err(not_found()),
        },
        (8, &Method::PUT) => put_account(cx, &acct_id, &name, existing).await,
        (8, &Method::DELETE) => {
            if existing.is_none() {
                return Ok(empty(StatusCode::NO_CONTENT, &[]));
            }
            let files = cx.st.store.mutate(|d| remove_tree(d, &acct_key)).await?;
            cx.st.store.remove_blob_files(&files);
            Ok(empty(StatusCode::OK, &[]))
        }
        (9, &Method::POST) if s[8].eq_ignore_ascii_case("listKeys") => {
            if existing.is_none() {
                return Err(not_found());
            }
            let (k1, k2) = cx.st.store.read(|d| {
                (
                    d.secrets
                        .get(&format!("{acct_key}#key1"))
                        .cloned()
                        .unwrap_or_default(),
                    d.secrets
                        .get(&format!("{acct_key}#key2"))
                        .cloned()
                        .unwrap_or_default(),
                )
            });
            let created = existing
                .as_ref()
                .and_then(|b| b.pointer("/properties/creationTime").cloned())
                .unwrap_or(Value::Null);
            Ok(json_response(
                StatusCode::OK,
                json!({"keys": [
                    {"keyName": "key1", "value": k1, "permissions": "FULL", "creationTime": created},
                    {"keyName": "key2", "value": k2, "permissions": "FULL", "creationTime": created}
                ]}),
            ))
        }
        _ if s.len() >= 10 && matches(&s[8..10], &["blobServices", "default"]).is_some() => {
            if existing.is_none() {
                return Err(ArmError::not_found(
                    ArmCode::ParentResourceNotFound,
                    &format!(
                        "Can not perform requested operation on nested resource. Parent resource '{name}' not found."
                    ),
                ));
            }
            container(cx, &acct_id).await
        }
        _ => Err(ArmError::not_implemented(&format!(
            "{} {}",
            cx.method,
            cx.id(s.len())
        ))),
    }
}

async fn put_account(cx: &Ctx, id: &str, name: &str, existing: Option<Value>) -> ArmResult {
    let req = cx.json()?;
    if !valid_account_name(name) {
        return Err(ArmError::bad_request(
            ArmCode::AccountNameInvalid,
            &format!(
                "{name} is not a valid storage account name. Storage account name must be between 3 and 24 characters in length and use numbers and lower-case letters only."
            ),
        ));
    }
    if req.get("location").and_then(Value::as_str).is_none() {
        return Err(ArmError::bad_request(
            ArmCode::LocationRequired,
            "The location property is required for this definition.",
        ));
    }
    if req.pointer("/sku/name").and_then(Value::as_str).is_none() {
        return Err(ArmError::bad_request(
            ArmCode::InvalidRequestContent,
            "The sku.name property is required.",
        ));
    }
    if req.get("kind").and_then(Value::as_str).is_none() {
        return Err(ArmError::bad_request(
            ArmCode::InvalidRequestContent,
            "The kind property is required.",
        ));
    }
    let key = id.to_ascii_lowercase();
    if let Some(mut b) = existing {
        // Update in place: owned fields are replaced, computed ones kept.
        let created = b
            .pointer("/properties/creationTime")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let state = b
            .pointer("/properties/provisioningState")
            .cloned()
            .unwrap_or("Succeeded".into());
        let mut nb = account_body(id, name, &req, &created);
        nb["properties"]["provisioningState"] = state;
        nb["name"] = b["name"].take();
        let nb2 = nb.clone();
        cx.st.store.mutate(|d| d.resources.insert(key, nb2)).await?;
        nb["id"] = id.into();
        return Ok(json_response(
            StatusCode::OK,
            render_account(&cx.st.arm_url, nb),
        ));
    }
    if is_taken_elsewhere(name) {
        return Err(ArmError::conflict(
            ArmCode::StorageAccountAlreadyTaken,
            &format!("The storage account named {name} is already taken."),
        ));
    }
    if find_account(cx, name).is_some() {
        return Err(ArmError::conflict(
            ArmCode::StorageAccountAlreadyExists,
            &format!("The storage account named {name} already exists under the subscription."),
        ));
    }
    let body = account_body(id, name, &req, &now_rfc3339());
    let (k1, k2) = (random_key(), random_key());
    cx.st
        .store
        .mutate(|d| {
            d.resources.insert(key.clone(), body);
            d.secrets.insert(format!("{key}#key1"), k1);
            d.secrets.insert(format!("{key}#key2"), k2);
        })
        .await?;
    let loc = req["location"].as_str().unwrap_or_default().to_string();
    let op = new_operation(&cx.st, "storage-create", &key, cx.st.faults().lro_ms).await?;
    Ok(empty(
        StatusCode::ACCEPTED,
        &[
            (
                "Location",
                format!(
                    "{}/asyncoperations/{op}?monitor=true&api-version={}",
                    cx.op_base("Microsoft.Storage", &loc),
                    cx.api_version
                ),
            ),
            ("Retry-After", cx.retry_after()),
        ],
    ))
}

async fn container(cx: &Ctx, acct_id: &str) -> ArmResult {
    let s = &cx.segs;
    if s.len() == 11 && s[10].eq_ignore_ascii_case("containers") && cx.method == Method::GET {
        let list = list_children(&cx.st, &cx.id(10), "containers");
        return Ok(json_response(StatusCode::OK, json!({"value": list})));
    }
    if s.len() != 12 || !s[10].eq_ignore_ascii_case("containers") {
        return Err(ArmError::not_implemented(&format!(
            "{} {}",
            cx.method,
            cx.id(s.len())
        )));
    }
    let id = cx.id(12);
    let key = id.to_ascii_lowercase();
    let name = s[11].clone();
    let existing = cx.st.store.read(|d| d.resources.get(&key).cloned());
    match cx.method {
        Method::GET => match existing {
            Some(mut b) => {
                b["id"] = id.into();
                Ok(json_response(StatusCode::OK, b))
            }
            None => Err(ArmError::not_found(
                ArmCode::ContainerNotFound,
                "The specified container does not exist.",
            )),
        },
        Method::PUT => {
            let req = cx.json()?;
            if !valid_container_name(&name) {
                return Err(ArmError::bad_request(
                    ArmCode::ContainerOperationFailure,
                    "The specified resource name contains invalid characters or length.",
                ));
            }
            let created = existing.is_none();
            let body = cx
                .st
                .store
                .mutate(|d| {
                    d.etag_counter += 1;
                    let mut b = container_body(
                        &id,
                        &name.to_ascii_lowercase(),
                        &req,
                        &now_rfc3339(),
                        d.etag_counter,
                    );
                    if let Some(old) = d.resources.get(&key) {
                        b["name"] = old["name"].clone();
                    }
                    d.resources.insert(key.clone(), b.clone());
                    b
                })
                .await?;
            Ok(json_response(
                if created {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                },
                body,
            ))
        }
        Method::DELETE => {
            if existing.is_none() {
                return Ok(empty(StatusCode::NO_CONTENT, &[]));
            }
            let account = acct_id
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .to_ascii_lowercase();
            let prefix = format!("{account}/{}/", name.to_ascii_lowercase());
            let files = cx
                .st
                .store
                .mutate(|d| {
                    let mut files = remove_tree(d, &key);
                    d.blobs.retain(|k, m| {
                        if k.starts_with(&prefix) {
                            files.push(m.file.clone());
                            false
                        } else {
                            true
                        }
                    });
                    files
                })
                .await?;
            cx.st.store.remove_blob_files(&files);
            Ok(empty(StatusCode::OK, &[]))
        }
        _ => Err(ArmError::not_implemented(&format!(
            "{} on blob containers",
            cx.method
        ))),
    }
}
