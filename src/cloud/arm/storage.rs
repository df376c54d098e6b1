//! Microsoft.Storage on ARM: storage accounts (create via LRO pattern A, get, list by resource group,
//! delete with everything under them, listKeys, checkNameAvailability) and blob containers.
//! Account keys live in the store's secrets and never appear in a resource body.
//!
//! Handlers take typed routes; deleting an account or a container goes through the store's one
//! cascading delete, never through its maps.
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::protocol::{ArmCode, ArmError, ArmResult, Ctx};
use super::route::{ChildRef, ResRef, RgRef};
use super::rules::{self, BodyKind};
use crate::cloud::bodies::{account_body, container_body, str_at};
use crate::cloud::http::{RESERVED, empty, json_response};
use crate::cloud::store::{now_rfc3339, random_key};

/// Storage account names: 3–24 lowercase letters and digits.
pub(crate) fn valid_account_name(n: &str) -> bool {
    (3..=24).contains(&n.len())
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Names "owned by another subscription": anything starting with `taken`, and the paths the local
/// cloud's own routes use.
pub(crate) fn is_taken_elsewhere(n: &str) -> bool {
    n.starts_with("taken") || RESERVED.contains(&n)
}

/// A container name Azure accepts (the blob data plane checks every request's with it too).
pub(crate) fn valid_container_name(n: &str) -> bool {
    (3..=63).contains(&n.len())
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !n.starts_with('-')
        && !n.ends_with('-')
        && !n.contains("--")
}

/// Fills in computed URLs for output.
fn render_account(arm_url: &str, mut b: Value) -> Value {
    let name = b["name"].as_str().unwrap_or_default().to_string();
    b["properties"]["primaryEndpoints"] = json!({"blob": format!("{arm_url}/{name}/")});
    b
}

/// `POST /subscriptions/{sub}/providers/Microsoft.Storage/checkNameAvailability`.
pub(crate) fn check_name_availability(cx: &Ctx) -> ArmResult {
    let body = cx.json()?;
    let name = body.get("name").and_then(Value::as_str).unwrap_or_default();
    let answer = if !valid_account_name(name) {
        json!({"nameAvailable": false, "reason": "AccountNameInvalid", "message": format!("{name} is not a valid storage account name. Storage account name must be between 3 and 24 characters in length and use numbers and lower-case letters only.")})
    } else if is_taken_elsewhere(name) || find_account(cx, name).is_some() {
        json!({"nameAvailable": false, "reason": "AlreadyExists", "message": format!("The storage account named {name} is already taken.")})
    } else {
        json!({"nameAvailable": true})
    };
    Ok(json_response(StatusCode::OK, answer))
}

/// Pattern A's status monitor: 202 while the creation runs, then the account.
pub(crate) fn get_operation(cx: &Ctx, sub: &str, location: &str, op_id: &str) -> ArmResult {
    let Some(op) = cx.st.store.operation(op_id) else {
        return Err(ArmError::not_found(
            ArmCode::ResourceNotFound,
            "The operation was not found.",
        ));
    };
    if op.status == "InProgress" {
        return Ok(cx.poll_again(format!(
            "{}/subscriptions/{sub}/providers/Microsoft.Storage/locations/{location}/asyncoperations/{op_id}?monitor=true&api-version={}",
            cx.st.arm_url, cx.api_version
        )));
    }
    match cx.st.store.resource(&op.resource_key) {
        Some(b) => Ok(json_response(
            StatusCode::OK,
            render_account(&cx.st.arm_url, b),
        )),
        None => Err(ArmError::not_found(
            ArmCode::ResourceNotFound,
            "The storage account no longer exists.",
        )),
    }
}

fn find_account(cx: &Ctx, name: &str) -> Option<String> {
    let suffix = format!(
        "/providers/microsoft.storage/storageaccounts/{}",
        name.to_ascii_lowercase()
    );
    cx.st
        .store
        .find_resource_by_suffix(&suffix, None)
        .map(|(k, _)| k)
}

/// StorageAccounts_ListByResourceGroup, paged by `nextLink`.
pub(crate) fn list_accounts(cx: &Ctx, rg: &RgRef) -> ArmResult {
    // Only the page's accounts are copied and rendered, not the whole group's on every page.
    let parent = format!("{}/providers/Microsoft.Storage", rg.id);
    cx.page_window("$skipToken", |skip, size| {
        let (page, total) = cx
            .st
            .store
            .children_window(&parent, "storageAccounts", skip, size);
        let page = page
            .into_iter()
            .map(|b| render_account(&cx.st.arm_url, b))
            .collect();
        (page, total)
    })
}

fn account_not_found(a: &ResRef) -> ArmError {
    ArmError::not_found(
        ArmCode::ResourceNotFound,
        &format!(
            "The Resource 'Microsoft.Storage/storageAccounts/{}' under resource group '{}' was not found.",
            a.name, a.parent.name
        ),
    )
}

pub(crate) fn get_account(cx: &Ctx, a: &ResRef) -> ArmResult {
    let b = cx
        .stored(&a.key(), &a.id)
        .ok_or_else(|| account_not_found(a))?;
    Ok(json_response(
        StatusCode::OK,
        render_account(&cx.st.arm_url, b),
    ))
}

pub(crate) async fn delete_account(cx: &Ctx, a: &ResRef) -> ArmResult {
    if !cx.st.store.has_resource(&a.key()) {
        return Ok(empty(StatusCode::NO_CONTENT, &[]));
    }
    cx.st.store.delete_storage_account(&a.key()).await?;
    Ok(empty(StatusCode::OK, &[]))
}

/// `POST {account}/listKeys`.
pub(crate) fn list_keys(cx: &Ctx, a: &ResRef) -> ArmResult {
    let key = a.key();
    let existing = cx
        .st
        .store
        .resource(&key)
        .ok_or_else(|| account_not_found(a))?;
    let secret = |n: &str| cx.st.store.secret(&key, n).unwrap_or_default();
    let created = existing
        .pointer("/properties/creationTime")
        .cloned()
        .unwrap_or(Value::Null);
    Ok(json_response(
        StatusCode::OK,
        json!({"keys": [
            {"keyName": "key1", "value": secret("key1"), "permissions": "FULL", "creationTime": created},
            {"keyName": "key2", "value": secret("key2"), "permissions": "FULL", "creationTime": created}
        ]}),
    ))
}

/// `PUT {account}`: an update in place answers 200; a create answers 202 with a pattern-A monitor.
pub(crate) async fn put_account(cx: &Ctx, a: &ResRef) -> ArmResult {
    let (id, name) = (a.id.as_str(), a.name.as_str());
    let existing = cx.st.store.resource(&a.key());
    let req = cx.json()?;
    if !valid_account_name(name) {
        return Err(ArmError::bad_request(
            ArmCode::AccountNameInvalid,
            &format!(
                "{name} is not a valid storage account name. Storage account name must be between 3 and 24 characters in length and use numbers and lower-case letters only."
            ),
        ));
    }
    let loc = super::protocol::location(&req)?.to_string();
    rules::check(BodyKind::StorageAccount, &req)?;
    let key = a.key();
    if let Some(mut b) = existing {
        // Update in place: owned fields are replaced, computed ones kept.
        let created = str_at(&b, "/properties/creationTime")
            .unwrap_or_default()
            .to_string();
        let state = b
            .pointer("/properties/provisioningState")
            .cloned()
            .unwrap_or("Succeeded".into());
        let mut nb = account_body(id, name, &req, &created);
        nb["properties"]["provisioningState"] = state;
        nb["name"] = b["name"].take();
        cx.st.store.put_resource(&key, nb.clone()).await?;
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
    let op = cx.operation("storage-create", &key);
    let op_id = op.id.clone();
    cx.st
        .store
        .create_storage_account(&key, body, (random_key(), random_key()), op)
        .await?;
    Ok(empty(
        StatusCode::ACCEPTED,
        &[
            (
                "Location",
                format!(
                    "{}/asyncoperations/{op_id}?monitor=true&api-version={}",
                    cx.op_base(&a.parent.sub, "Microsoft.Storage", &loc),
                    cx.api_version
                ),
            ),
            ("Retry-After", cx.retry_after()),
        ],
    ))
}

/// BlobContainers_List, paged by `nextLink` (`$maxpagesize` honoured).
pub(crate) fn list_containers(cx: &Ctx, a: &ResRef) -> ArmResult {
    let parent = format!("{}/blobServices/default", a.id);
    cx.page_window("$skipToken", |skip, size| {
        cx.st
            .store
            .children_window(&parent, "containers", skip, size)
    })
}

pub(crate) fn get_container(cx: &Ctx, c: &ChildRef<ResRef>) -> ArmResult {
    let b = cx.stored(&c.key(), &c.id).ok_or_else(|| {
        ArmError::not_found(
            ArmCode::ContainerNotFound,
            "The specified container does not exist.",
        )
    })?;
    Ok(json_response(StatusCode::OK, b))
}

pub(crate) async fn put_container(cx: &Ctx, c: &ChildRef<ResRef>) -> ArmResult {
    let created = !cx.st.store.has_resource(&c.key());
    let req = cx.json()?;
    rules::check(BodyKind::BlobContainer, &req)?;
    if !valid_container_name(&c.name) {
        return Err(ArmError::bad_request(
            ArmCode::ContainerOperationFailure,
            "The specified resource name contains invalid characters or length.",
        ));
    }
    let name = c.name.to_ascii_lowercase();
    let body = cx
        .st
        .store
        .put_container(&c.key(), |counter, old| {
            let mut b = container_body(&c.id, &name, &req, &now_rfc3339(), counter);
            if let Some(old) = old {
                b["name"] = old["name"].clone();
            }
            b
        })
        .await?;
    Ok(cx.created_or_ok(created, body))
}

pub(crate) async fn delete_container(cx: &Ctx, c: &ChildRef<ResRef>) -> ArmResult {
    if !cx.st.store.has_resource(&c.key()) {
        return Ok(empty(StatusCode::NO_CONTENT, &[]));
    }
    cx.st
        .store
        .delete_container(&c.parent.key(), &c.name)
        .await?;
    Ok(empty(StatusCode::OK, &[]))
}
