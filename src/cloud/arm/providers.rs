//! What ARM tells a client about itself without changing anything: "Providers - Get" (which
//! resource types a namespace has and the api-versions each serves, from `specs/api_versions.yaml`)
//! and "Permissions - List For Resource Group / For Resource" (the caller's own permissions at a
//! scope, from its role assignments and the built-in roles' actions).
//!
//! Handlers take the typed route's values; they never parse paths and never change the store.
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::protocol::{ArmCode, ArmError, ArmResult, Ctx};
use super::versions::Served;
use crate::cloud::auth::roles_at;
use crate::cloud::http::json_response;

/// `GET /subscriptions/{sub}/providers/{namespace}`: the `Provider` definition of
/// Azure/azure-rest-api-specs `specification/resources/resource-manager/Microsoft.Resources/stable/2024-11-01/resources.json`
/// (`namespace`, `registrationState`, `resourceTypes[]` with `resourceType`, `locations`,
/// `apiVersions`). An unknown namespace is 404 `InvalidResourceNamespace`, as ARM answers.
pub(crate) fn get_provider(cx: &Ctx, sub: &str, namespace: &str) -> ArmResult {
    let Some(ns) = Served::embedded().namespace(namespace) else {
        return Err(ArmError::not_found(
            ArmCode::InvalidResourceNamespace,
            &format!("The resource namespace '{namespace}' is invalid."),
        ));
    };
    let location = cx.st.seed().location;
    let types: Vec<Value> = ns
        .types
        .iter()
        .map(|(ty, versions)| {
            json!({
                "resourceType": ty,
                "locations": [location],
                "apiVersions": versions,
                "defaultApiVersion": versions.iter().find(|v| !v.ends_with("-preview")),
            })
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        json!({
            "id": format!("/subscriptions/{sub}/providers/{}", ns.name),
            "namespace": ns.name,
            "registrationState": "Registered",
            "registrationPolicy": "RegistrationRequired",
            "resourceTypes": types,
        }),
    ))
}

/// `GET {scope}/providers/Microsoft.Authorization/permissions`: Permissions_ListForResourceGroup and
/// Permissions_ListForResource of Azure/azure-rest-api-specs
/// `specification/authorization/resource-manager/Microsoft.Authorization/stable/2022-04-01/authorization-RoleDefinitionsCalls.json`
/// (`PermissionGetResult`: `value[]` of `Permission` with `actions`, `notActions`, `dataActions`,
/// `notDataActions`). One entry per role the caller holds at or above the scope; the scope must
/// exist (a resource group, or a resource the cloud stores).
pub(crate) fn list_permissions(cx: &Ctx, scope: &str) -> ArmResult {
    let key = scope.to_ascii_lowercase();
    let segs: Vec<&str> = scope.split('/').filter(|s| !s.is_empty()).collect();
    let seed = cx.st.seed();
    let in_subscription = segs
        .get(1)
        .is_some_and(|s| s.eq_ignore_ascii_case(&seed.subscription_id));
    if !in_subscription {
        return Err(ArmError::not_found(
            ArmCode::SubscriptionNotFound,
            &format!(
                "The subscription '{}' could not be found.",
                segs.get(1).unwrap_or(&"")
            ),
        ));
    }
    if !cx.st.store.has_resource(&key) {
        return Err(match segs.as_slice() {
            [_, _, _, rg] => ArmError::not_found(
                ArmCode::ResourceGroupNotFound,
                &format!("Resource group '{rg}' could not be found."),
            ),
            _ => ArmError::not_found(
                ArmCode::ResourceNotFound,
                &format!("The Resource '{scope}' was not found."),
            ),
        });
    }
    let held = cx.st.store.assignments_of(&cx.caller.oid);
    let value: Vec<Value> = roles_at(&held, scope)
        .map(|r| {
            json!({
                "actions": r.actions,
                "notActions": r.not_actions,
                "dataActions": r.data_actions,
                "notDataActions": [],
            })
        })
        .collect();
    Ok(json_response(
        StatusCode::OK,
        json!({"value": value, "nextLink": null}),
    ))
}
