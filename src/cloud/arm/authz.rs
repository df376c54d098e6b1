//! Microsoft.Authorization: role assignments at any scope (stored by scope + GUID, with the
//! RoleAssignmentExists / PrincipalNotFound rules of the contract) and the built-in role definitions.
//! Role definitions are compared by their trailing GUID only.
//!
//! Handlers take the scope and names of their typed route; they never parse paths.
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};

use super::protocol::{ArmCode, ArmError, ArmResult, Ctx};
use super::rules::{self, BodyKind};
use crate::cloud::auth::{ArmLevel, DataLevel, ROLES, RoleDef, role, role_guid, scope_covers};
use crate::cloud::http::{empty, json_response};
use crate::cloud::store::{RoleAssignment, now_ms, now_rfc3339};

fn assignment_body(ra: &RoleAssignment, sub: &str) -> Value {
    json!({
        "id": ra.id, "name": ra.name, "type": "Microsoft.Authorization/roleAssignments",
        "properties": {
            "roleDefinitionId": format!("/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{}", role_guid(&ra.role_definition_id)),
            "principalId": ra.principal_id, "principalType": ra.principal_type, "scope": ra.scope,
            "description": ra.description, "condition": null, "conditionVersion": null,
            "createdOn": ra.created_on, "updatedOn": ra.created_on, "createdBy": null, "updatedBy": null,
            "delegatedManagedIdentityResourceId": null
        }
    })
}

fn definition_body(r: &RoleDef, scope: &str) -> Value {
    let (actions, data_actions): (Vec<&str>, Vec<&str>) = match (r.arm, r.data) {
        (ArmLevel::All, _) => (vec!["*"], vec![]),
        (ArmLevel::Write, _) => (vec!["*"], vec![]),
        (ArmLevel::Read, _) => (vec!["*/read"], vec![]),
        (_, DataLevel::Read) => (
            vec!["Microsoft.Storage/storageAccounts/blobServices/containers/read"],
            vec!["Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read"],
        ),
        (_, DataLevel::Write) => (
            vec!["Microsoft.Storage/storageAccounts/blobServices/containers/*"],
            vec!["Microsoft.Storage/storageAccounts/blobServices/containers/blobs/*"],
        ),
        _ => (
            vec!["Microsoft.ContainerRegistry/registries/pull/read"],
            vec![],
        ),
    };
    let not_actions: Vec<&str> = if r.arm == ArmLevel::Write {
        vec![
            "Microsoft.Authorization/*/Write",
            "Microsoft.Authorization/*/Delete",
        ]
    } else {
        vec![]
    };
    json!({
        "id": format!("{scope}/providers/Microsoft.Authorization/roleDefinitions/{}", r.guid),
        "name": r.guid, "type": "Microsoft.Authorization/roleDefinitions",
        "properties": {
            "roleName": r.name, "type": "BuiltInRole", "description": format!("built-in role {}", r.name),
            "assignableScopes": ["/"],
            "permissions": [{"actions": actions, "notActions": not_actions, "dataActions": data_actions, "notDataActions": []}]
        }
    })
}

/// The subscription an ARM id lies in (`/subscriptions/{id}/…`), if any.
fn subscription_of(id: &str) -> Option<&str> {
    let mut segs = id.split('/').filter(|s| !s.is_empty());
    match (segs.next(), segs.next()) {
        (Some(s), Some(sub)) if s.eq_ignore_ascii_case("subscriptions") => Some(sub),
        _ => None,
    }
}

/// Can an assignment at `scope` name the role definition `id`? A subscription-prefixed definition
/// id names the definition as seen from that subscription, so it must be the scope's own; the
/// tenant-level form (`/providers/Microsoft.Authorization/roleDefinitions/{guid}`, what the service
/// returns) is valid everywhere. The examples of `RoleAssignments_Create` always prefix the scope's own
/// subscription (`Azure/azure-rest-api-specs:
/// specification/authorization/resource-manager/Microsoft.Authorization/stable/2022-04-01/examples/RoleAssignments_CreateForResource.json`),
/// and a definition id of another subscription is answered `RoleDefinitionDoesNotExist`.
fn definition_visible_at(id: &str, scope: &str) -> bool {
    match (subscription_of(id), subscription_of(scope)) {
        (Some(def_sub), Some(scope_sub)) => def_sub.eq_ignore_ascii_case(scope_sub),
        (Some(_), None) => false,
        (None, _) => true,
    }
}

/// Does the scope exist (subscription, resource group or stored resource)?
fn scope_exists(cx: &Ctx, scope: &str) -> bool {
    let sub = format!("/subscriptions/{}", cx.st.seed().subscription_id);
    scope.eq_ignore_ascii_case(&sub) || cx.st.store.has_resource(&scope.to_ascii_lowercase())
}

/// The built-in roles, filtered by `$filter=roleName eq '...'`.
pub(crate) fn list_definitions(cx: &Ctx, scope: &str) -> Response {
    let filter = cx.q("$filter").unwrap_or_default().to_string();
    let wanted = filter.split('\'').nth(1).map(str::to_string);
    let list: Vec<Value> = ROLES
        .iter()
        .filter(|r| {
            wanted
                .as_ref()
                .is_none_or(|w| r.name.eq_ignore_ascii_case(w))
        })
        .map(|r| definition_body(r, scope))
        .collect();
    json_response(StatusCode::OK, json!({"value": list}))
}

pub(crate) fn get_definition(scope: &str, guid: &str) -> ArmResult {
    match role(guid) {
        Some(r) => Ok(json_response(StatusCode::OK, definition_body(r, scope))),
        None => Err(ArmError::not_found(
            ArmCode::RoleDefinitionDoesNotExist,
            "The specified role definition does not exist.",
        )),
    }
}

/// Assignments at, above or (without `atScope()`) below `scope`, optionally of one principal.
/// RoleAssignments_ListForScope (Microsoft.Authorization 2022-04-01, `Azure/azure-rest-api-specs:
/// specification/authorization/resource-manager/Microsoft.Authorization/stable/2022-04-01/authorization-RoleAssignmentsCalls.json`):
/// `$filter` (`atScope()`, `principalId eq '…'`), paged by `nextLink` with `$skipToken`.
pub(crate) fn list_assignments(cx: &Ctx, scope: &str) -> ArmResult {
    let sub = cx.st.seed().subscription_id;
    let filter = cx.q("$filter").unwrap_or_default().to_string();
    let at_scope = filter.to_ascii_lowercase().contains("atscope()");
    let principal = filter
        .to_ascii_lowercase()
        .find("principalid eq '")
        .and_then(|i| {
            filter[i + 16..]
                .split('\'')
                .next()
                .map(str::to_ascii_lowercase)
        });
    let list: Vec<Value> = cx
        .st
        .store
        .role_assignments()
        .iter()
        .filter(|ra| {
            scope_covers(&ra.scope, scope) || (!at_scope && scope_covers(scope, &ra.scope))
        })
        .filter(|ra| {
            principal
                .as_ref()
                .is_none_or(|p| ra.principal_id.eq_ignore_ascii_case(p))
        })
        .map(|ra| assignment_body(ra, &sub))
        .collect();
    cx.page(list)
}

pub(crate) fn get_assignment(cx: &Ctx, id: &str) -> ArmResult {
    let Some(ra) = cx.st.store.role_assignment(&id.to_ascii_lowercase()) else {
        return Err(ArmError::not_found(
            ArmCode::RoleAssignmentNotFound,
            "The role assignment does not exist.",
        ));
    };
    let mut b = assignment_body(&ra, &cx.st.seed().subscription_id);
    b["id"] = id.into();
    Ok(json_response(StatusCode::OK, b))
}

pub(crate) async fn delete_assignment(cx: &Ctx, id: &str) -> ArmResult {
    let key = id.to_ascii_lowercase();
    let Some(ra) = cx.st.store.role_assignment(&key) else {
        return Ok(empty(StatusCode::NO_CONTENT, &[]));
    };
    cx.st.store.delete_role_assignment(&key).await?;
    Ok(json_response(
        StatusCode::OK,
        assignment_body(&ra, &cx.st.seed().subscription_id),
    ))
}

/// `PUT` of a role assignment: created once; a repeat with the same role and principal answers 200.
pub(crate) async fn put_assignment(cx: &Ctx, scope: &str, name: &str, id: &str) -> ArmResult {
    let existing = cx.st.store.role_assignment(&id.to_ascii_lowercase());
    let body = cx.json()?;
    let sub = cx.st.seed().subscription_id;
    if uuid::Uuid::parse_str(name).is_err() {
        return Err(ArmError::bad_request(
            ArmCode::InvalidRoleAssignmentId,
            &format!(
                "The role assignment ID '{name}' is not valid. The role assignment ID must be a GUID."
            ),
        ));
    }
    rules::check(BodyKind::RoleAssignment, &body)?;
    let text = |field: &str| {
        body.pointer(&format!("/properties/{field}"))
            .and_then(Value::as_str)
            .ok_or_else(|| {
                ArmError::bad_request(
                    ArmCode::InvalidRequestContent,
                    &format!("The property 'properties.{field}' must be a string."),
                )
            })
    };
    let role_def = text("roleDefinitionId")?;
    let principal = text("principalId")?;
    let guid = role_guid(role_def);
    if role(&guid).is_none() || !definition_visible_at(role_def, scope) {
        return Err(ArmError::bad_request(
            ArmCode::RoleDefinitionDoesNotExist,
            &format!("The specified role definition with ID '{guid}' does not exist."),
        ));
    }
    if scope.is_empty() || !scope_exists(cx, scope) {
        return Err(ArmError::not_found(
            ArmCode::ResourceNotFound,
            &format!("The scope '{scope}' does not exist."),
        ));
    }
    let delay_ms = (cx.st.faults().principal_replication_s * 1000.0) as u64;
    let known = cx
        .st
        .store
        .principal(&principal.to_ascii_lowercase())
        .map(|p| now_ms().saturating_sub(p.created_ms) >= delay_ms);
    if known != Some(true) {
        return Err(ArmError::bad_request(
            ArmCode::PrincipalNotFound,
            &format!(
                "Principal {} does not exist in the directory {}. Check that you have the correct principal ID. If you are creating this principal and then immediately assigning a role, this error might be related to a replication delay.",
                principal.replace('-', ""),
                cx.st.seed().tenant_id
            ),
        ));
    }
    if let Some(ra) = existing {
        if role_guid(&ra.role_definition_id) == guid
            && ra.principal_id.eq_ignore_ascii_case(principal)
        {
            let mut b = assignment_body(&ra, &sub);
            b["id"] = id.into();
            return Ok(json_response(StatusCode::OK, b));
        }
        return Err(ArmError::bad_request(
            ArmCode::RoleAssignmentUpdateNotPermitted,
            "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.",
        ));
    }
    let duplicate = cx.st.store.role_assignments().iter().any(|ra| {
        ra.scope.eq_ignore_ascii_case(scope)
            && role_guid(&ra.role_definition_id) == guid
            && ra.principal_id.eq_ignore_ascii_case(principal)
    });
    if duplicate {
        return Err(ArmError::conflict(
            ArmCode::RoleAssignmentExists,
            "The role assignment already exists.",
        ));
    }
    let ra = RoleAssignment {
        id: id.to_string(),
        name: name.to_string(),
        scope: scope.to_string(),
        role_definition_id: role_def.to_string(),
        principal_id: principal.to_ascii_lowercase(),
        principal_type: body
            .pointer("/properties/principalType")
            .and_then(Value::as_str)
            .unwrap_or("User")
            .to_string(),
        description: body
            .pointer("/properties/description")
            .and_then(Value::as_str)
            .map(str::to_string),
        created_ms: now_ms(),
        created_on: now_rfc3339(),
    };
    let b = assignment_body(&ra, &sub);
    cx.st
        .store
        .put_role_assignment(&id.to_ascii_lowercase(), ra)
        .await?;
    Ok(json_response(StatusCode::CREATED, b))
}
