//! The ARM protocol layer's entry point: injected faults, api-version rules, bearer-token
//! authentication, role-based authorisation, rate-limit and request-id headers, then one dispatch of
//! the typed [`route::ArmRoute`] to its handler after checking that its scope exists.
//!
//! Map: [`protocol`] (error envelope, [`protocol::Ctx`], auth), [`route`] (path → route), handlers in
//! [`resources`] (subscriptions, resource groups, identities), [`storage`], [`ml`] (workspace,
//! datastores, assets, operation status), [`online`] (endpoints and deployments) and [`authz`]; the
//! request-body rules of the published definitions are one table in [`rules`].
//! Resource semantics live in the handlers, state in the store. Every path this layer does not
//! implement gets an explicit ARM-shaped error, never a panic or a silent 200; handlers never parse
//! paths themselves.
pub(crate) mod authz;
pub(crate) mod ml;
pub(crate) mod online;
pub(crate) mod protocol;
pub(crate) mod resources;
pub(crate) mod route;
pub(crate) mod rules;
pub(crate) mod storage;

use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::auth::{ArmLevel, arm_level};
use super::faults::Injected;
use super::http::{MAX_BODY, Query, injected_server_error, percent_decode, request_id_headers};
use super::state::{Admission, CloudState};
use super::store::now_ms;
use crate::token_bucket::PaceClass;
use protocol::{ArmCode, ArmError, ArmResult, Ctx, authenticate};
use route::{ArmRoute, ResRef, RgRef, Scope};

/// Entry point of the ARM layer.
pub(crate) async fn handle(st: CloudState, req: Request) -> Response {
    let client_id = req.headers().get("x-ms-client-request-id").cloned();
    let method = req.method().clone();
    let mut resp = handle_inner(st, req)
        .await
        .unwrap_or_else(IntoResponse::into_response);
    request_id_headers(&mut resp, client_id.as_ref());
    // With throttling on, the handler already said what remains in the caller's bucket.
    let budget = match method {
        Method::GET | Method::HEAD => ("x-ms-ratelimit-remaining-subscription-reads", "11999"),
        Method::DELETE => ("x-ms-ratelimit-remaining-subscription-deletes", "14999"),
        _ => ("x-ms-ratelimit-remaining-subscription-writes", "1199"),
    };
    if !resp.headers().contains_key(budget.0) {
        resp.headers_mut()
            .insert(budget.0, HeaderValue::from_static(budget.1));
    }
    let global = if method == Method::GET {
        "x-ms-ratelimit-remaining-subscription-global-reads"
    } else {
        "x-ms-ratelimit-remaining-subscription-global-writes"
    };
    resp.headers_mut()
        .insert(global, HeaderValue::from_static("2999"));
    resp
}

/// The injected fault of this request, as an ARM error.
fn injected(i: Injected) -> Result<(), ArmError> {
    match i {
        Injected::None => Ok(()),
        Injected::Throttle(s) => Err(ArmError::new(
            StatusCode::TOO_MANY_REQUESTS,
            ArmCode::TooManyRequests,
            "injected throttling; retry after the given time",
        )
        .header("Retry-After", s.to_string())),
        Injected::ServerError(code) => {
            let (status, code) = injected_server_error(
                code,
                ArmCode::ServiceUnavailable,
                ArmCode::InternalServerError,
            );
            Err(ArmError::new(status, code, "injected transient failure"))
        }
    }
}

async fn handle_inner(st: CloudState, req: Request) -> ArmResult {
    injected(st.inject().await)?;
    let (parts, body) = req.into_parts();
    let query = Query::parse(parts.uri.query());
    let api_version = match query.get("api-version") {
        None => {
            return Err(ArmError::bad_request(
                ArmCode::MissingApiVersionParameter,
                "The api-version query parameter (?api-version=) is required for all requests.",
            ));
        }
        Some(v) if !crate::api_version::is_well_formed(v) => {
            return Err(ArmError::bad_request(
                ArmCode::InvalidApiVersionParameter,
                &format!(
                    "The api-version '{v}' is invalid. The supported versions look like 'YYYY-MM-DD' or 'YYYY-MM-DD-preview'."
                ),
            ));
        }
        Some(v) => v.to_string(),
    };
    let caller = authenticate(&st, &parts.headers)?;
    let remaining = admit(&st, &caller.oid, &parts.method)?;
    let body = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| {
        ArmError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ArmCode::RequestEntityTooLarge,
            "the request body exceeds 16 MiB",
        )
    })?;
    let segs: Vec<String> = parts
        .uri
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let cx = Ctx {
        st: st.clone(),
        method: parts.method,
        path: format!("/{}", segs.join("/")),
        query,
        api_version,
        body,
        caller,
    };
    st.store.settle_due_operations(now_ms()).await?;
    let result = async {
        authorize(&cx, &segs)?;
        let route = ArmRoute::parse(&segs);
        require(&cx, &route.scope())?;
        dispatch(&cx, route).await
    }
    .await;
    Ok(match (result, remaining) {
        (r, None) => r?,
        (r, Some((name, left))) => {
            let mut resp = r.unwrap_or_else(IntoResponse::into_response);
            resp.headers_mut().insert(name, HeaderValue::from(left));
            resp
        }
    })
}

/// The header that reports what remains in the bucket of `method`'s class.
fn remaining_header(method: &Method) -> &'static str {
    match PaceClass::of(method.as_str()) {
        PaceClass::Read => "x-ms-ratelimit-remaining-subscription-reads",
        PaceClass::Write => "x-ms-ratelimit-remaining-subscription-writes",
        PaceClass::Delete => "x-ms-ratelimit-remaining-subscription-deletes",
    }
}

/// ARM's throttling, when `--arm-throttle` is on: one token of the request's class from the caller's
/// bucket, or 429 `SubscriptionRequestsThrottled` with `Retry-After` (whole seconds, rounded up) and
/// the bucket's remaining count (0). Limits and behaviour: Microsoft Learn, "Understand how Azure
/// Resource Manager throttles requests" (`MicrosoftDocs/azure-docs:
/// articles/azure-resource-manager/management/request-limits-and-throttling.md`, sections "Regional
/// throttling and token bucket algorithm", "Error code", "Remaining requests"); the error code and
/// message as ARM sends them: "Troubleshoot the SubscriptionRequestsThrottled error code (429)"
/// (`MicrosoftDocs/SupportArticles-docs`, AKS troubleshooting) and recorded ARM answers.
fn admit(
    st: &CloudState,
    oid: &str,
    method: &Method,
) -> Result<Option<(&'static str, u64)>, ArmError> {
    match st.admit_arm(oid, method.as_str()) {
        Admission::Unlimited => Ok(None),
        Admission::Remaining(left) => Ok(Some((remaining_header(method), left))),
        Admission::Throttled(wait) => {
            let secs = wait.as_secs_f64().ceil().max(1.0);
            let kind = match PaceClass::of(method.as_str()) {
                PaceClass::Read => "read",
                PaceClass::Write => "write",
                PaceClass::Delete => "delete",
            };
            let sub = st.seed().subscription_id;
            Err(ArmError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ArmCode::SubscriptionRequestsThrottled,
                &format!(
                    "Number of '{kind}' requests for subscription '{sub}' actor '{oid}' exceeded. Please try again after '{secs}' seconds after additional tokens are available. Refer to https://aka.ms/arm-throttling"
                ),
            )
            .header("Retry-After", format!("{secs}"))
            .header(remaining_header(method), "0".to_owned()))
        }
    }
}

/// Role-based check of the caller on the request path.
fn authorize(cx: &Ctx, segs: &[String]) -> Result<(), ArmError> {
    let path = &cx.path;
    let is_role_write = cx.method != Method::GET
        && segs
            .iter()
            .any(|s| s.eq_ignore_ascii_case("roleAssignments"));
    let needed = if is_role_write {
        ArmLevel::All
    } else if cx.method == Method::GET
        || cx.method == Method::HEAD
        || segs
            .last()
            .is_some_and(|s| s.eq_ignore_ascii_case("checkNameAvailability"))
    {
        ArmLevel::Read
    } else {
        ArmLevel::Write
    };
    if segs.len() <= 1 {
        return Ok(()); // `GET /subscriptions` filters by permission itself
    }
    // Built-in role definitions are readable by every authenticated caller, at any scope.
    if cx.method == Method::GET
        && segs
            .iter()
            .any(|s| s.eq_ignore_ascii_case("roleDefinitions"))
    {
        return Ok(());
    }
    let have = arm_level(&cx.st.store.assignments_of(&cx.caller.oid), path, now_ms());
    if have >= needed {
        Ok(())
    } else {
        Err(ArmError::new(
            StatusCode::FORBIDDEN,
            ArmCode::AuthorizationFailed,
            &format!(
                "The client with object id '{}' does not have authorization to perform action '{} {}' over scope '{}' or the scope is invalid.",
                cx.caller.oid, cx.method, path, path
            ),
        ))
    }
}

/// Checks that the route's scope exists, outermost first: the subscription, the resource group, then
/// the workspace or the storage account.
fn require(cx: &Ctx, scope: &Scope) -> Result<(), ArmError> {
    let seed = cx.st.seed();
    let subscription = |sub: &str| {
        if sub.eq_ignore_ascii_case(&seed.subscription_id) {
            Ok(())
        } else {
            Err(ArmError::not_found(
                ArmCode::SubscriptionNotFound,
                &format!("The subscription '{sub}' could not be found."),
            ))
        }
    };
    let group = |rg: &RgRef| {
        subscription(&rg.sub)?;
        if cx.st.store.has_resource(&rg.id.to_ascii_lowercase()) {
            Ok(())
        } else {
            Err(ArmError::not_found(
                ArmCode::ResourceGroupNotFound,
                &format!("Resource group '{}' could not be found.", rg.name),
            ))
        }
    };
    match scope {
        Scope::None => Ok(()),
        Scope::Subscription(sub) => subscription(sub),
        Scope::ResourceGroup(rg) => group(rg),
        Scope::StorageAccount(account) => {
            group(&account.parent)?;
            if cx.st.store.has_resource(&account.key()) {
                Ok(())
            } else {
                Err(ArmError::not_found(
                    ArmCode::ParentResourceNotFound,
                    &format!(
                        "Can not perform requested operation on nested resource. Parent resource '{}' not found.",
                        account.name
                    ),
                ))
            }
        }
        Scope::Workspace(ws) => {
            group(&ws.parent)?;
            workspace(cx, ws)
        }
    }
}

/// Only the seeded workspace exists.
fn workspace(cx: &Ctx, ws: &ResRef) -> Result<(), ArmError> {
    let seed = cx.st.seed();
    if ws.name.eq_ignore_ascii_case(&seed.workspace)
        && ws.parent.name.eq_ignore_ascii_case(&seed.resource_group)
    {
        return Ok(());
    }
    Err(ArmError::not_found(
        ArmCode::ResourceNotFound,
        &format!(
            "The Resource 'Microsoft.MachineLearningServices/workspaces/{}' under resource group '{}' was not found.",
            ws.name, ws.parent.name
        ),
    ))
}

/// Sends a route, whose scope exists, to its handler.
async fn dispatch(cx: &Ctx, route: ArmRoute) -> ArmResult {
    use ArmRoute as R;
    let m = &cx.method;
    let get = *m == Method::GET;
    let post = *m == Method::POST;
    match route {
        R::Subscriptions => resources::list_subscriptions(cx),
        R::Subscription { .. } => resources::get_subscription(cx),
        R::ResourceGroups { sub } if get => Ok(resources::list_resource_groups(cx, &sub)),
        R::ResourceGroup(rg) => match *m {
            Method::GET | Method::HEAD => resources::get_resource_group(cx, &rg),
            Method::PUT => resources::put_resource_group(cx, &rg).await,
            _ => Err(cx.unimplemented_on("resource groups")),
        },
        R::Identities { rg } if get => Ok(resources::list_identities(cx, &rg)),
        R::Identity(id) => match *m {
            Method::GET => resources::get_identity(cx, &id),
            Method::PUT => resources::put_identity(cx, &id).await,
            Method::DELETE => resources::delete_identity(cx, &id).await,
            _ => Err(cx.unimplemented_on("user-assigned identities")),
        },
        R::CheckNameAvailability { .. } if post => storage::check_name_availability(cx),
        R::StorageOperation { sub, location, op } if get => {
            storage::get_operation(cx, &sub, &location, &op)
        }
        R::StorageAccounts { rg } if get => storage::list_accounts(cx, &rg),
        R::StorageAccount(a) => match *m {
            Method::GET => storage::get_account(cx, &a),
            Method::PUT => storage::put_account(cx, &a).await,
            Method::DELETE => storage::delete_account(cx, &a).await,
            _ => Err(cx.unimplemented()),
        },
        R::StorageAccountKeys(a) if post => storage::list_keys(cx, &a),
        R::Containers(a) if get => storage::list_containers(cx, &a),
        R::Container(c) => match *m {
            Method::GET => storage::get_container(cx, &c),
            Method::PUT => storage::put_container(cx, &c).await,
            Method::DELETE => storage::delete_container(cx, &c).await,
            _ => Err(cx.unimplemented_on("blob containers")),
        },
        R::MlOperation { kind, op, .. } => ml::get_operation(cx, &kind, &op),
        R::Workspace(ws) if get => Ok(ml::get_workspace(cx, &ws)),
        R::Datastores(ws) if get => Ok(ml::list_datastores(cx, &ws)),
        R::Datastore(ds) if get => ml::get_datastore(cx, &ds),
        R::DatastoreSecrets(ds) if post => ml::list_datastore_secrets(cx, &ds),
        R::AssetContainers { ws, kind } if get => Ok(ml::list_asset_containers(cx, &ws, kind)),
        R::AssetContainer { kind, asset } if get => ml::get_asset_container(cx, kind, &asset),
        R::AssetVersions { asset, .. } if get => ml::list_asset_versions(cx, &asset),
        R::AssetVersion { kind, version } => match *m {
            Method::GET => ml::get_asset_version(cx, kind, &version),
            Method::DELETE => ml::delete_asset_version(cx, &version).await,
            Method::PUT => ml::put_asset_version(cx, kind, &version).await,
            Method::POST => Err(ml::pending_upload()),
            _ => Err(cx.unimplemented_on("asset versions")),
        },
        R::AssetPendingUpload { .. } => Err(ml::pending_upload()),
        R::OnlineEndpoints(ws) if get => Ok(online::list_endpoints(cx, &ws)),
        R::OnlineEndpoint(ep) => match *m {
            Method::GET => online::get_endpoint(cx, &ep),
            Method::PUT => online::put_endpoint(cx, &ep).await,
            Method::PATCH => online::patch_endpoint(cx, &ep).await,
            Method::DELETE => online::delete_endpoint(cx, &ep).await,
            _ => Err(cx.unimplemented_on("online endpoints")),
        },
        R::EndpointKeys(ep) if post => online::list_endpoint_keys(cx, &ep),
        R::EndpointToken(ep) if post => online::endpoint_token(cx, &ep),
        R::Deployments(ep) if get => online::list_deployments(cx, &ep),
        R::Deployment(dep) => online::deployment(cx, &dep).await,
        R::DeploymentLogs(dep) if post => online::deployment_logs(cx, &dep),
        R::RoleDefinitions { scope } if get => Ok(authz::list_definitions(cx, &scope)),
        R::RoleDefinition { scope, guid } if get => authz::get_definition(&scope, &guid),
        R::RoleAssignments { scope } if get => authz::list_assignments(cx, &scope),
        R::RoleAssignment { scope, id, name } => match *m {
            Method::GET => authz::get_assignment(cx, &id),
            Method::DELETE => authz::delete_assignment(cx, &id).await,
            Method::PUT => authz::put_assignment(cx, &scope, &name, &id).await,
            _ => Err(cx.unimplemented_on("role assignments")),
        },
        _ => Err(cx.unimplemented()),
    }
}
