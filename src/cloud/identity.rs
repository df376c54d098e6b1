//! Identity surfaces of the local cloud: the Entra-style client-credentials token endpoint with its
//! error JSON, OIDC discovery, the cloud metadata document, and the plain-HTTP managed-identity
//! endpoint (`MSI_ENDPOINT` + `MSI_SECRET`, api-version 2017-09-01) given to scoring processes.
//!
//! Secrets are compared, never logged or echoed.
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

use super::auth::{Claims, ML_AUDIENCE, STORAGE_AUDIENCE, same_audience};
use super::state::CloudState;
use super::store::{now_ms, now_rfc3339};

fn entra_error(error: &str, code: u32, text: &str) -> Response {
    // RFC 6749 section 5.2: a client that failed to authenticate is 401, every other error 400.
    let status = if error == "invalid_client" {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::BAD_REQUEST
    };
    let trace = uuid::Uuid::new_v4().to_string();
    let body = json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {text} Trace ID: {trace} Correlation ID: {trace} Timestamp: {}", now_rfc3339()),
        "error_codes": [code],
        "timestamp": now_rfc3339(),
        "trace_id": trace,
        "correlation_id": trace,
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
    });
    (status, axum::Json(body)).into_response()
}

/// Resources a token may be issued for: scope without `/.default`.
fn resource_for_scope(st: &CloudState, scope: &str) -> Option<String> {
    let scope = scope
        .split_whitespace()
        .find(|s| s.ends_with("/.default"))?;
    let resource = scope.strip_suffix(".default")?;
    // `https://management.core.windows.net//.default` keeps its double slash: the resource is the
    // audience with its trailing slash.
    known_resource(st, resource.trim_end_matches('/'))
}

/// The Entra resources this cloud issues tokens for (ARM, storage, Azure ML), as their canonical
/// audience. Anything else, an online endpoint's own `aml-endpoint:` audience included, is never
/// issued by the token or managed-identity endpoints: an AML token comes from ARM's
/// `onlineEndpoints/token` action, which checks the caller's role on that endpoint.
fn known_resource(st: &CloudState, resource: &str) -> Option<String> {
    let allowed = [
        "https://management.azure.com/",
        "https://management.core.windows.net/",
        STORAGE_AUDIENCE,
        ML_AUDIENCE,
        &format!("{}/", st.arm_url),
    ];
    allowed
        .iter()
        .find(|a| same_audience(a, resource))
        .map(|a| (*a).to_string())
}

/// `POST /{tenant}/oauth2/v2.0/token` (client credentials).
pub(crate) async fn token(
    State(st): State<CloudState>,
    Path(tenant): Path<String>,
    body: Bytes,
) -> Response {
    let form = super::http::Query::parse(Some(&String::from_utf8_lossy(&body)));
    let get = |k: &str| form.get_exact(k);
    let seed = st.seed();
    if !tenant.eq_ignore_ascii_case(&seed.tenant_id) {
        return entra_error(
            "invalid_request",
            90002,
            &format!("Tenant '{tenant}' not found."),
        );
    }
    if get("grant_type") != Some("client_credentials") {
        return entra_error(
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type; only client_credentials is supported by the local cloud.",
        );
    }
    let Some(client_id) = get("client_id") else {
        return entra_error(
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        );
    };
    if !client_id.eq_ignore_ascii_case(&seed.client_id) {
        return entra_error(
            "unauthorized_client",
            700016,
            &format!("Application with identifier '{client_id}' was not found in the directory."),
        );
    }
    if get("client_assertion").is_some() {
        return entra_error(
            "invalid_request",
            50027,
            "Client assertions are not supported by the local cloud; use the client secret.",
        );
    }
    let secret_ok = get("client_secret")
        .is_some_and(|s| constant_time_eq(s.as_bytes(), seed.client_secret.as_bytes()));
    if !secret_ok {
        return entra_error(
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
        );
    }
    let Some(resource) = get("scope").and_then(|s| resource_for_scope(&st, s)) else {
        return entra_error(
            "invalid_scope",
            70011,
            "The provided value for the input parameter 'scope' is not valid.",
        );
    };
    let now = now_ms() / 1000;
    let token = st.signer.sign(&Claims {
        aud: resource,
        iss: format!("{}/{}/v2.0", st.arm_url, seed.tenant_id),
        oid: seed.sp_object_id.clone(),
        tid: seed.tenant_id.clone(),
        appid: seed.client_id.clone(),
        iat: now,
        nbf: now,
        exp: now + 3599,
    });
    axum::Json(json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token})).into_response()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `GET /{tenant}/v2.0/.well-known/openid-configuration`.
pub(crate) async fn openid(State(st): State<CloudState>, Path(tenant): Path<String>) -> Response {
    let base = format!("{}/{tenant}", st.arm_url);
    axum::Json(json!({
        "issuer": format!("{base}/v2.0"),
        "token_endpoint": format!("{base}/oauth2/v2.0/token"),
        "authorization_endpoint": format!("{base}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{base}/oauth2/v2.0/devicecode"),
        "jwks_uri": format!("{base}/discovery/v2.0/keys"),
        "token_endpoint_auth_methods_supported": ["client_secret_post"],
        "response_types_supported": ["token"],
        "grant_types_supported": ["client_credentials"],
        "tenant_region_scope": "NA",
        "cloud_instance_name": "stackform.local",
    }))
    .into_response()
}

/// `GET /{tenant}/discovery/instance`: MSAL's instance discovery, answered for this authority only.
pub(crate) async fn instance_discovery(
    State(st): State<CloudState>,
    Path(tenant): Path<String>,
) -> Response {
    let host = st.arm_url.trim_start_matches("https://").to_string();
    axum::Json(json!({
        "tenant_discovery_endpoint": format!("{}/{tenant}/v2.0/.well-known/openid-configuration", st.arm_url),
        "api-version": "1.1",
        "metadata": [{"preferred_network": host, "preferred_cache": host, "aliases": [host]}]
    }))
    .into_response()
}

/// `GET /metadata/endpoints?api-version=2022-09-01`: one cloud object pointing at this emulator.
pub(crate) async fn metadata(State(st): State<CloudState>) -> Response {
    let arm = format!("{}/", st.arm_url);
    axum::Json(json!({
        "name": "StackformLocal",
        "portal": arm,
        "resourceManager": arm,
        "authentication": {
            "loginEndpoint": st.arm_url,
            "audiences": ["https://management.core.windows.net/", "https://management.azure.com/", arm],
            "tenant": "common",
            "identityProvider": "AAD"
        },
        "media": arm, "graphAudience": "https://graph.windows.net/", "graph": "https://graph.windows.net/",
        "sqlManagement": arm, "batch": arm,
        "microsoftGraphResourceId": "https://graph.microsoft.com/",
        "activeDirectoryDataLake": arm, "vmImageAliasDoc": "",
        "appInsightsResourceId": arm, "appInsightsTelemetryChannelResourceId": arm,
        "attestationResourceId": arm, "synapseAnalyticsResourceId": arm,
        "logAnalyticsResourceId": arm, "ossrDbmsResourceId": arm,
        "suffixes": {
            "storage": "core.windows.net", "keyVaultDns": "vault.azure.net", "acrLoginServer": "azurecr.io",
            "sqlServerHostname": "database.windows.net", "storageSyncEndpointSuffix": "afs.azure.net",
            "mhsmDns": "managedhsm.azure.net", "azureDataLakeStoreFileSystem": "azuredatalakestore.net",
            "azureDataLakeAnalyticsCatalogAndJob": "azuredatalakeanalytics.net",
            "azureFrontDoorEndpointSuffix": "azurefd.net", "mysqlServerEndpoint": "mysql.database.azure.com",
            "postgresqlServerEndpoint": "postgres.database.azure.com", "mariadbServerEndpoint": "mariadb.database.azure.com",
            "synapseAnalytics": "dev.azuresynapse.net", "attestationEndpoint": "attest.azure.net"
        }
    }))
    .into_response()
}

/// Router of the plain-HTTP managed-identity endpoint.
pub(crate) fn msi_router(state: CloudState) -> Router {
    Router::new()
        .route("/msi/token", get(msi_token))
        .with_state(state)
}

fn msi_error(status: StatusCode, msg: &str) -> Response {
    (
        status,
        axum::Json(json!({"error": "invalid_request", "error_description": msg})),
    )
        .into_response()
}

/// `GET /msi/token?api-version=2017-09-01&resource=...[&clientid=...]` with header `secret`.
async fn msi_token(
    State(st): State<CloudState>,
    headers: HeaderMap,
    Query(q): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let secret = headers
        .get("secret")
        .or_else(|| headers.get("x-identity-header"))
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let Some(endpoint_key) = st.procs.endpoint_for_secret(secret) else {
        return msi_error(
            StatusCode::UNAUTHORIZED,
            "the secret header is missing or does not match this compute",
        );
    };
    let Some(requested) = q.get("resource").filter(|r| !r.is_empty()) else {
        return msi_error(
            StatusCode::BAD_REQUEST,
            "the resource parameter is required",
        );
    };
    // A managed identity gets tokens for Entra resources only; what it may do with them is then
    // decided by its roles where it presents them (never by the audience it could ask for here).
    let Some(resource) = known_resource(&st, requested) else {
        return msi_error(
            StatusCode::BAD_REQUEST,
            "the resource is not one this cloud issues managed-identity tokens for",
        );
    };
    if !q.contains_key("api-version") {
        return msi_error(
            StatusCode::BAD_REQUEST,
            "the api-version parameter is required",
        );
    }
    let endpoint = st.store.resource(&endpoint_key);
    let Some(ep) = endpoint else {
        return msi_error(
            StatusCode::BAD_REQUEST,
            "the endpoint of this compute no longer exists",
        );
    };
    let wanted = q.get("clientid").or_else(|| q.get("client_id"));
    let principal = match wanted {
        Some(cid) => ep
            .pointer("/identity/userAssignedIdentities")
            .and_then(Value::as_object)
            .and_then(|m| {
                m.values().find(|v| {
                    v["clientId"]
                        .as_str()
                        .is_some_and(|c| c.eq_ignore_ascii_case(cid))
                })
            })
            .and_then(|v| v["principalId"].as_str().map(str::to_string)),
        None => ep
            .pointer("/identity/principalId")
            .and_then(Value::as_str)
            .map(str::to_string),
    };
    let Some(oid) = principal else {
        return msi_error(
            StatusCode::BAD_REQUEST,
            "no managed identity matches the request (is the identity assigned to the endpoint?)",
        );
    };
    st.note_deployment_principal(&oid);
    let seed = st.seed();
    let now = now_ms() / 1000;
    let exp = now + 3599;
    let token = st.signer.sign(&Claims {
        aud: resource.clone(),
        iss: format!("{}/{}/v2.0", st.arm_url, seed.tenant_id),
        oid,
        tid: seed.tenant_id.clone(),
        appid: wanted.cloned().unwrap_or_default(),
        iat: now,
        nbf: now,
        exp,
    });
    axum::Json(json!({"access_token": token, "expires_on": exp.to_string(), "resource": requested, "token_type": "Bearer"})).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_failed_client_authentication_is_401() {
        assert_eq!(
            entra_error("invalid_client", 7000215, "bad secret").status(),
            StatusCode::UNAUTHORIZED
        );
        for error in [
            "invalid_request",
            "unsupported_grant_type",
            "unauthorized_client",
            "invalid_scope",
        ] {
            assert_eq!(
                entra_error(error, 90002, "x").status(),
                StatusCode::BAD_REQUEST,
                "{error}"
            );
        }
    }
}
