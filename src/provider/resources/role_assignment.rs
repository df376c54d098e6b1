//! What is special about role assignments: the name is a UUID v5 of (scope, role GUID, principal) so
//! re-runs and rollbacks find the same object; `PrincipalNotFound` (a new identity not yet replicated)
//! is retried with backoff for a bounded time; `RoleAssignmentExists` (the same grant under another name)
//! is resolved by listing the scope's assignments for the principal and adopting the identical one.
//! Role definitions compare by their trailing GUID, ids and principals case-insensitively.
//! It never creates a second assignment for a grant that already exists.

use serde_json::{Map, Value, json};

use super::common::{Ctx, arm_path, get_path, required_str, set_path, spec_body, spec_observe};
use crate::provider::contract::{Observed, ResourceRequest, ResourceType, Result};
use crate::provider::error::{ErrorKind, ProviderError};
use crate::provider::ids::{
    last_segment, role_assignment_name, role_guid, role_name, same_id, same_role_definition,
};

const T: ResourceType = ResourceType::RoleAssignment;

/// The parts of an assignment request.
pub(super) struct Parts {
    scope: String,
    principal_id: String,
    guid: String,
    role_definition_id: String,
    /// The assignment's ARM id.
    pub(super) path: String,
}

pub(super) fn parts(inputs: &Map<String, Value>) -> Result<Parts> {
    let scope = required_str(inputs, "scope")?
        .trim_end_matches('/')
        .to_owned();
    if !scope.starts_with('/') {
        return Err(ProviderError::invalid(format!(
            "role assignment scope {scope:?} must be an ARM id starting with /"
        )));
    }
    let principal_id = required_str(inputs, "principal_id")?.to_owned();
    let role = required_str(inputs, "role")?;
    let guid = role_guid(role).ok_or_else(|| {
        ProviderError::invalid(format!(
            "unknown role {role:?}: use a built-in role name, a role definition GUID or id"
        ))
    })?;
    let role_definition_id = if role.contains("/roleDefinitions/") {
        role.to_owned()
    } else {
        definition_id_at(&scope, &guid)
    };
    let name = role_assignment_name(&scope, &guid, &principal_id);
    let path = format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{name}");
    Ok(Parts {
        scope,
        principal_id,
        guid,
        role_definition_id,
        path,
    })
}

/// The role definition id an assignment at `scope` names: the definition as seen from the scope's own
/// subscription (as every `RoleAssignments_Create` example writes it, `Azure/azure-rest-api-specs:
/// specification/authorization/resource-manager/Microsoft.Authorization/stable/2022-04-01/examples/RoleAssignments_CreateForResource.json`),
/// never the configured subscription's, which is another one when the scope lies elsewhere; a scope
/// above any subscription (a management group, the tenant) gets the tenant-level id the service
/// itself returns (`/providers/Microsoft.Authorization/roleDefinitions/{guid}`).
fn definition_id_at(scope: &str, guid: &str) -> String {
    let mut segs = scope.split('/').filter(|s| !s.is_empty());
    match (segs.next(), segs.next()) {
        (Some(s), Some(sub)) if s.eq_ignore_ascii_case("subscriptions") => {
            format!("/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{guid}")
        }
        _ => format!("/providers/Microsoft.Authorization/roleDefinitions/{guid}"),
    }
}

/// The string at an ARM path of a body, empty when there is none.
fn live_str(body: &Value, path: &str) -> String {
    get_path(body, path)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// The assignment as read back: the spec's mapping (principal kept in the requested spelling, the
/// principal type's default), and the role and scope, which the body does not carry as the stack
/// writes them: each kept in the requested form when it names the same thing.
pub(super) fn observe(ctx: &Ctx, req: &ResourceRequest, body: &Value) -> Result<Observed> {
    let spec = ctx.spec(T)?;
    let mut obs = spec_observe(ctx, spec, &req.inputs, body);
    let live = |field: &str| -> Result<String> { Ok(live_str(body, &arm_path(spec, field)?)) };
    let desired = |k: &str| {
        req.inputs
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let role_def = live("role")?;
    let wanted_role = desired("role");
    let role = match role_guid(&wanted_role) {
        Some(g) if same_role_definition(&g, &role_def) => wanted_role,
        _ => role_name(last_segment(&role_def))
            .map(str::to_owned)
            .unwrap_or_else(|| role_def.clone()),
    };
    obs.inputs.insert("role".into(), json!(role));
    let scope = live("scope")?;
    obs.inputs.insert(
        "scope".into(),
        json!(if same_id(&scope, &desired("scope")) || scope.is_empty() {
            desired("scope")
        } else {
            scope
        }),
    );
    Ok(obs)
}

pub async fn read(ctx: &Ctx, req: &ResourceRequest) -> Result<Option<Observed>> {
    let path = match &req.cloud_id {
        Some(id) if !id.is_empty() => id.clone(),
        _ => parts(&req.inputs)?.path,
    };
    ctx.arm
        .get(&path, &ctx.api_version(T)?)
        .await?
        .map(|b| observe(ctx, req, &b))
        .transpose()
}

/// The PUT body: the spec's mapping, and the role as the full definition id.
pub(super) fn body(ctx: &Ctx, inputs: &Map<String, Value>, p: &Parts) -> Result<Value> {
    let spec = ctx.spec(T)?;
    let mut body = spec_body(ctx, spec, inputs);
    set_path(
        &mut body,
        &arm_path(spec, "role")?,
        json!(p.role_definition_id),
    );
    Ok(body)
}

/// PUT the assignment; retry `PrincipalNotFound` while the principal replicates; adopt an identical
/// assignment on `RoleAssignmentExists`.
pub async fn create(ctx: &Ctx, req: &ResourceRequest) -> Result<Observed> {
    let p = parts(&req.inputs)?;
    let api = ctx.api_version(T)?;
    let body = body(ctx, &req.inputs, &p)?;
    let clock = ctx.arm.pipeline().clock().clone();
    let start = clock.elapsed();
    let mut attempt = 0u32;
    loop {
        match ctx
            .arm
            .put(&p.path, &api, &body, &ctx.config.lro_for(T), &|_| {})
            .await
        {
            Ok(done) => return observe(ctx, req, &done),
            Err(e) if e.has_code("RoleAssignmentExists") => return adopt(ctx, req, &p, &api).await,
            Err(e) if e.has_code("PrincipalNotFound") => {
                let delay = ctx
                    .config
                    .retry
                    .backoff_ceiling(attempt)
                    .max(ctx.config.retry.initial_delay);
                if clock.elapsed().saturating_sub(start) + delay > ctx.config.principal_wait {
                    return Err(e.with_context(format!(
                        "principal {} still not found after {}s",
                        p.principal_id,
                        ctx.config.principal_wait.as_secs()
                    )));
                }
                tracing::debug!(
                    attempt = attempt + 1,
                    delay_ms = delay.as_millis() as u64,
                    "principal not replicated yet; retrying role assignment"
                );
                req.report("WaitingForPrincipal");
                clock.sleep(delay).await;
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Finds the assignment with the same scope, role and principal under another name.
async fn adopt(ctx: &Ctx, req: &ResourceRequest, p: &Parts, api: &str) -> Result<Observed> {
    let filter = format!("principalId eq '{}'", p.principal_id);
    let list = ctx
        .arm
        .list(
            &format!(
                "{}/providers/Microsoft.Authorization/roleAssignments",
                p.scope
            ),
            api,
            &[("$filter", &filter)],
        )
        .await?;
    let spec = ctx.spec(T)?;
    let (role, principal, scope) = (
        arm_path(spec, "role")?,
        arm_path(spec, "principal_id")?,
        arm_path(spec, "scope")?,
    );
    let found = list.into_iter().find(|a| {
        let live_scope = live_str(a, &scope);
        same_role_definition(&live_str(a, &role), &p.guid)
            && live_str(a, &principal).eq_ignore_ascii_case(&p.principal_id)
            && (live_scope.is_empty() || same_id(&live_scope, &p.scope))
    });
    match found {
        Some(a) => {
            let id = a
                .get("id")
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned();
            tracing::debug!(id = %id, "adopting existing role assignment");
            observe(ctx, req, &a)
        }
        None => Err(ProviderError::new(
            ErrorKind::Conflict,
            "role assignment exists under another name but was not found at the scope",
        )
        .with_code("RoleAssignmentExists")),
    }
}

pub async fn delete(ctx: &Ctx, req: &ResourceRequest) -> Result<()> {
    let path = match &req.cloud_id {
        Some(id) if !id.is_empty() => id.clone(),
        _ => parts(&req.inputs)?.path,
    };
    ctx.arm
        .delete(&path, &ctx.api_version(T)?, &ctx.config.lro_for(T), &|_| {})
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::pipeline::Clock;
    use crate::provider::pipeline::fake::{FakeClock, FakeTransport, reply};
    use crate::provider::resources::common::tests::{azure_config, ctx_with};
    use std::sync::Arc;
    use std::time::Duration;

    const SCOPE: &str =
        "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/acct";
    const READER: &str = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1";

    fn request() -> ResourceRequest {
        let inputs = serde_json::from_value(json!({
            "principal_id": "P-1", "role": "Storage Blob Data Reader", "scope": SCOPE,
        }))
        .unwrap();
        ResourceRequest::new(T, "reader", inputs)
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    fn created(name: &str) -> String {
        json!({"id": format!("{SCOPE}/providers/Microsoft.Authorization/roleAssignments/{name}"), "name": name,
            "properties": {"roleDefinitionId": format!("/providers/Microsoft.Authorization/roleDefinitions/{READER}"),
            "principalId": "p-1", "principalType": "ServicePrincipal", "scope": SCOPE}})
        .to_string()
    }

    const NOT_FOUND: &str = r#"{"error":{"code":"PrincipalNotFound","message":"not replicated"}}"#;

    #[test]
    fn put_uses_the_deterministic_name_and_service_principal_type() {
        let name = role_assignment_name(SCOPE, READER, "p-1").to_string();
        let t = FakeTransport::new(vec![reply(201, &[], &created(&name))]);
        let c = Arc::new(FakeClock::default());
        let ctx = ctx_with(azure_config(), &t, &c);
        let obs = rt().block_on(create(&ctx, &request())).unwrap();
        let sent = &t.requests()[0];
        assert!(
            sent.url
                .path()
                .ends_with(&format!("/roleAssignments/{name}")),
            "{}",
            sent.url
        );
        let body: Value = serde_json::from_slice(&sent.body).unwrap();
        assert_eq!(body["properties"]["principalType"], "ServicePrincipal");
        assert_eq!(
            body["properties"]["roleDefinitionId"],
            format!(
                "/subscriptions/sub/providers/Microsoft.Authorization/roleDefinitions/{READER}"
            )
        );
        // The service normalised the role id and lowercased the principal: still the requested inputs.
        assert_eq!(obs.inputs["role"], "Storage Blob Data Reader");
        assert_eq!(obs.inputs["principal_id"], "P-1");
        assert_eq!(obs.outputs["name"], json!(name));
    }

    #[test]
    fn the_role_definition_is_named_from_the_scopes_subscription() {
        // Bug: roleDefinitionId was built from the configured subscription even when the scope lay in
        // another one, naming a definition the scope's subscription does not see.
        let other = "/subscriptions/other-sub/resourceGroups/rg2/providers/Microsoft.Storage/storageAccounts/acct2";
        let inputs = serde_json::from_value(json!({
            "principal_id": "p-1", "role": "Storage Blob Data Reader", "scope": other,
        }))
        .unwrap();
        let p = parts(&inputs).unwrap();
        assert_eq!(
            p.role_definition_id,
            format!(
                "/subscriptions/other-sub/providers/Microsoft.Authorization/roleDefinitions/{READER}"
            )
        );
        assert_eq!(
            definition_id_at(
                "/providers/Microsoft.Management/managementGroups/mg",
                READER
            ),
            format!("/providers/Microsoft.Authorization/roleDefinitions/{READER}")
        );
    }

    #[test]
    fn principal_not_found_is_retried_until_it_replicates() {
        let name = role_assignment_name(SCOPE, READER, "p-1").to_string();
        let t = FakeTransport::new(vec![
            reply(400, &[], NOT_FOUND),
            reply(400, &[], NOT_FOUND),
            reply(201, &[], &created(&name)),
        ]);
        let c = Arc::new(FakeClock::default());
        let ctx = ctx_with(azure_config(), &t, &c);
        rt().block_on(create(&ctx, &request())).unwrap();
        assert_eq!(t.requests().len(), 3);
        assert_eq!(c.sleeps().len(), 2);
    }

    #[test]
    fn principal_not_found_gives_up_after_the_wait() {
        let t = FakeTransport::new((0..500).map(|_| reply(400, &[], NOT_FOUND)).collect());
        let c = Arc::new(FakeClock::default());
        let mut config = azure_config();
        config.principal_wait = Duration::from_secs(120);
        let ctx = ctx_with(config, &t, &c);
        let e = rt().block_on(create(&ctx, &request())).unwrap_err();
        assert!(e.has_code("PrincipalNotFound"), "{e}");
        assert_eq!(e.kind, ErrorKind::UserError);
        assert!(c.elapsed() <= Duration::from_secs(120));
        assert!(t.remaining() > 0, "stopped before the script ran out");
    }

    #[test]
    fn role_assignment_exists_adopts_the_identical_one() {
        let other = "11111111-2222-3333-4444-555555555555";
        let list = json!({"value": [
            {"id": "x", "name": "y", "properties": {"roleDefinitionId": "/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7", "principalId": "p-1", "scope": SCOPE}},
            serde_json::from_str::<Value>(&created(other)).unwrap(),
        ]})
        .to_string();
        let t = FakeTransport::new(vec![
            reply(
                409,
                &[],
                r#"{"error":{"code":"RoleAssignmentExists","message":"The role assignment already exists."}}"#,
            ),
            reply(200, &[], &list),
        ]);
        let c = Arc::new(FakeClock::default());
        let ctx = ctx_with(azure_config(), &t, &c);
        let obs = rt().block_on(create(&ctx, &request())).unwrap();
        assert!(obs.id.ends_with(other), "{}", obs.id);
        let listed = &t.requests()[1];
        assert!(
            listed
                .url
                .query()
                .unwrap_or_default()
                .contains("principalId+eq+%27P-1%27"),
            "{}",
            listed.url
        );
    }
}
