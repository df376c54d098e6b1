//! Microsoft.Resources and Microsoft.ManagedIdentity on ARM: the one seeded subscription, resource
//! groups (get, create or update, list) and user-assigned identities (each with its own principal in
//! the emulated directory).
//!
//! Handlers take typed routes and keep state through the store's named operations; they never parse
//! paths and never touch HTTP beyond building their answer.
use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;
use serde_json::{Value, json};

use super::protocol::{ArmCode, ArmError, ArmResult, Ctx, location, new_principal};
use super::route::{ResRef, RgRef};
use crate::cloud::auth::{ArmLevel, arm_level};
use crate::cloud::bodies::resource_group_body;
use crate::cloud::http::json_response;
use crate::cloud::store::now_ms;

/// The seeded subscription's body.
fn subscription_body(cx: &Ctx) -> (String, Value) {
    let seed = cx.st.seed();
    let id = format!("/subscriptions/{}", seed.subscription_id);
    let body = json!({
        "id": id, "subscriptionId": seed.subscription_id, "tenantId": seed.tenant_id,
        "displayName": "stackform local cloud", "state": "Enabled",
        "subscriptionPolicies": {"locationPlacementId": "Public_2014-09-01", "quotaId": "Internal_2014-09-01", "spendingLimit": "Off"},
        "authorizationSource": "RoleBased", "managedByTenants": []
    });
    (id, body)
}

/// `GET /subscriptions`: the seeded subscription, if the caller may read it.
pub(crate) fn list_subscriptions(cx: &Ctx) -> ArmResult {
    let (id, body) = subscription_body(cx);
    if cx.method != Method::GET {
        return Err(cx.unimplemented_on("subscriptions"));
    }
    let visible =
        arm_level(&cx.st.store.assignments_of(&cx.caller.oid), &id, now_ms()) >= ArmLevel::Read;
    Ok(json_response(
        StatusCode::OK,
        json!({"value": if visible { vec![body] } else { vec![] }, "count": {"type": "Total", "value": usize::from(visible)}}),
    ))
}

/// `GET /subscriptions/{sub}`.
pub(crate) fn get_subscription(cx: &Ctx) -> ArmResult {
    if cx.method != Method::GET {
        return Err(cx.unimplemented_on("subscriptions"));
    }
    Ok(json_response(StatusCode::OK, subscription_body(cx).1))
}

pub(crate) fn list_resource_groups(cx: &Ctx, sub: &str) -> axum::response::Response {
    let list = cx
        .st
        .store
        .children(&format!("/subscriptions/{sub}"), "resourceGroups");
    json_response(StatusCode::OK, json!({ "value": list }))
}

fn group_not_found(rg: &RgRef) -> ArmError {
    ArmError::not_found(
        ArmCode::ResourceGroupNotFound,
        &format!("Resource group '{}' could not be found.", rg.name),
    )
}

pub(crate) fn get_resource_group(cx: &Ctx, rg: &RgRef) -> ArmResult {
    let b = cx
        .stored(&rg.id.to_ascii_lowercase(), &rg.id)
        .ok_or_else(|| group_not_found(rg))?;
    Ok(json_response(StatusCode::OK, b))
}

pub(crate) async fn put_resource_group(cx: &Ctx, rg: &RgRef) -> ArmResult {
    let key = rg.id.to_ascii_lowercase();
    let created = !cx.st.store.has_resource(&key);
    let body = cx.json()?;
    let mut b = resource_group_body(&rg.id, &rg.name, location(&body)?);
    if let Some(t) = body.get("tags") {
        b["tags"] = t.clone();
    }
    cx.st.store.put_resource(&key, b.clone()).await?;
    Ok(cx.created_or_ok(created, b))
}

pub(crate) fn list_identities(cx: &Ctx, rg: &RgRef) -> axum::response::Response {
    let list = cx.st.store.children(
        &format!("{}/providers/Microsoft.ManagedIdentity", rg.id),
        "userAssignedIdentities",
    );
    json_response(StatusCode::OK, json!({"value": list}))
}

pub(crate) fn get_identity(cx: &Ctx, id: &ResRef) -> ArmResult {
    let Some(b) = cx.stored(&id.key(), &id.id) else {
        return Err(ArmError::not_found(
            ArmCode::ResourceNotFound,
            &format!(
                "The Resource 'Microsoft.ManagedIdentity/userAssignedIdentities/{}' under resource group '{}' was not found.",
                id.name, id.parent.name
            ),
        ));
    };
    Ok(json_response(StatusCode::OK, b))
}

pub(crate) async fn put_identity(cx: &Ctx, id: &ResRef) -> ArmResult {
    let key = id.key();
    let existing = cx.st.store.resource(&key);
    let body = cx.json()?;
    let loc = location(&body)?;
    let tags = body.get("tags").cloned().unwrap_or(json!({}));
    match existing {
        Some(mut b) => {
            b["tags"] = tags;
            cx.st.store.put_identity(&key, b.clone(), None).await?;
            Ok(cx.created_or_ok(false, b))
        }
        None => {
            let p = new_principal("UserAssigned");
            let b = json!({
                "id": id.id, "name": id.name, "type": "Microsoft.ManagedIdentity/userAssignedIdentities",
                "location": loc, "tags": tags,
                "properties": {"tenantId": cx.st.seed().tenant_id, "principalId": p.object_id, "clientId": p.client_id}
            });
            cx.st.store.put_identity(&key, b.clone(), Some(p)).await?;
            Ok(cx.created_or_ok(true, b))
        }
    }
}

pub(crate) async fn delete_identity(cx: &Ctx, id: &ResRef) -> ArmResult {
    let key = id.key();
    let Some(b) = cx.st.store.resource(&key) else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let oid = b["properties"]["principalId"]
        .as_str()
        .unwrap_or_default()
        .to_ascii_lowercase();
    cx.st.store.delete_identity(&key, &oid).await?;
    Ok(StatusCode::OK.into_response())
}
