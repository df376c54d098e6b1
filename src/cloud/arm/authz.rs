//! Microsoft.Authorization: role assignments at any scope (stored by scope + GUID, with the
//! RoleAssignmentExists / PrincipalNotFound rules of the contract) and the built-in role definitions.
//! Role definitions are compared by their trailing GUID only.
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use super::{ArmCode, ArmError, ArmResult, Ctx, empty, json_response};
use crate::cloud::auth::{DataLevel, ROLES, RoleDef, role, role_guid, scope_covers};
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
        (crate::cloud::auth::ArmLevel::All, _) => (vec!["*"], vec![]),
        (crate::cloud::auth::ArmLevel::Write, _) => (vec!["*"], vec![]),
        (crate::cloud::auth::ArmLevel::Read, _) => (vec!["*/read"], vec![]),
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
    let not_actions: Vec<&str> = if r.arm == crate::cloud::auth::ArmLevel::Write {
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

/// Does the scope exist (subscription, resource group or stored resource)?
fn scope_exists(cx: &Ctx, scope: &str) -> bool {
    let sub = format!("/subscriptions/{}", cx.st.seed().subscription_id);
    scope.eq_ignore_ascii_case(&sub)
        || cx
            .st
            .store
            .read(|d| d.resources.contains_key(&scope.to_ascii_lowercase()))
}

pub async fn route(cx: &Ctx, pos: usize) -> ArmResult {
    let s = &cx.segs;
    let scope = if pos == 0 { String::new() } else { cx.id(pos) };
    let rest: Vec<&str> = s[pos + 2..].iter().map(String::as_str).collect();
    let sub = cx.st.seed().subscription_id;
    match (rest.as_slice(), &cx.method) {
        ([kind], &Method::GET) if kind.eq_ignore_ascii_case("roleDefinitions") => {
            let filter = cx.q("$filter").unwrap_or_default().to_string();
            let wanted = filter.split('\'').nth(1).map(str::to_string);
            let list: Vec<Value> = ROLES
                .iter()
                .filter(|r| {
                    wanted
                        .as_ref()
                        .is_none_or(|w| r.name.eq_ignore_ascii_case(w))
                })
                .map(|r| definition_body(r, &scope))
                .collect();
            Ok(json_response(StatusCode::OK, json!({"value": list})))
        }
        ([kind, guid], &Method::GET) if kind.eq_ignore_ascii_case("roleDefinitions") => {
            match role(guid) {
                Some(r) => Ok(json_response(StatusCode::OK, definition_body(r, &scope))),
                None => Err(ArmError::not_found(
                    ArmCode::RoleDefinitionDoesNotExist,
                    "The specified role definition does not exist.",
                )),
            }
        }
        ([kind], &Method::GET) if kind.eq_ignore_ascii_case("roleAssignments") => {
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
            let list: Vec<Value> = cx.st.store.read(|d| {
                d.role_assignments
                    .values()
                    .filter(|ra| {
                        scope_covers(&ra.scope, &scope)
                            || (!at_scope && scope_covers(&scope, &ra.scope))
                    })
                    .filter(|ra| {
                        principal
                            .as_ref()
                            .is_none_or(|p| ra.principal_id.eq_ignore_ascii_case(p))
                    })
                    .map(|ra| assignment_body(ra, &sub))
                    .collect()
            });
            Ok(json_response(StatusCode::OK, json!({"value": list})))
        }
        ([kind, name], method) if kind.eq_ignore_ascii_case("roleAssignments") => {
            let id = cx.id(s.len());
            let key = id.to_ascii_lowercase();
            let existing = cx.st.store.read(|d| d.role_assignments.get(&key).cloned());
            match *method {
                Method::GET => match existing {
                    Some(ra) => {
                        let mut b = assignment_body(&ra, &sub);
                        b["id"] = id.into();
                        Ok(json_response(StatusCode::OK, b))
                    }
                    None => Err(ArmError::not_found(
                        ArmCode::RoleAssignmentNotFound,
                        "The role assignment does not exist.",
                    )),
                },
                Method::DELETE => match existing {
                    Some(ra) => {
                        cx.st
                            .store
                            .mutate(|d| d.role_assignments.remove(&key))
                            .await?;
                        Ok(json_response(StatusCode::OK, assignment_body(&ra, &sub)))
                    }
                    None => Ok(empty(StatusCode::NO_CONTENT, &[])),
                },
                Method::PUT => put_assignment(cx, &scope, name, &id, existing).await,
                _ => Err(ArmError::not_implemented(&format!(
                    "{} on role assignments",
                    cx.method
                ))),
            }
        }
        _ => Err(ArmError::not_implemented(&format!(
            "{} {}",
            cx.method,
            cx.id(s.len())
        ))),
    }
}

async fn put_assignment(
    cx: &Ctx,
    scope: &str,
    name: &str,
    id: &str,
    existing: Option<RoleAssignment>,
) -> ArmResult {
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
    let Some(role_def) = body
        .pointer("/properties/roleDefinitionId")
        .and_then(Value::as_str)
    else {
        return Err(ArmError::bad_request(
            ArmCode::InvalidRequestContent,
            "properties.roleDefinitionId is required.",
        ));
    };
    let Some(principal) = body
        .pointer("/properties/principalId")
        .and_then(Value::as_str)
    else {
        return Err(ArmError::bad_request(
            ArmCode::InvalidRequestContent,
            "properties.principalId is required.",
        ));
    };
    let guid = role_guid(role_def);
    if role(&guid).is_none() {
        return Err(ArmError::bad_request(
            ArmCode::RoleDefinitionDoesNotExist,
            "The specified role definition with ID does not exist.",
        ));
    }
    if scope.is_empty() || !scope_exists(cx, scope) {
        return Err(ArmError::not_found(
            ArmCode::ResourceNotFound,
            &format!("The scope '{scope}' does not exist."),
        ));
    }
    let delay_ms = (cx.st.faults().principal_replication_s * 1000.0) as u64;
    let known = cx.st.store.read(|d| {
        d.principals
            .get(&principal.to_ascii_lowercase())
            .map(|p| now_ms().saturating_sub(p.created_ms) >= delay_ms)
    });
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
    let duplicate = cx.st.store.read(|d| {
        d.role_assignments.values().any(|ra| {
            ra.scope.eq_ignore_ascii_case(scope)
                && role_guid(&ra.role_definition_id) == guid
                && ra.principal_id.eq_ignore_ascii_case(principal)
        })
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
        .mutate(|d| d.role_assignments.insert(id.to_ascii_lowercase(), ra))
        .await?;
    Ok(json_response(StatusCode::CREATED, b))
}
