//! The ARM protocol layer: api-version rules, bearer-token authentication, role-based authorisation,
//! the ARM error envelope, request/correlation ids and rate-limit headers, case-insensitive routing
//! of resource paths, and the long-running-operation status URLs of patterns A, B and C.
//!
//! Resource semantics live in the submodules (one per provider); state lives in the store. Every
//! path this layer does not implement gets an explicit ARM-shaped error, never a panic or a silent 200.
pub mod authz;
pub mod ml;
pub mod storage;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::auth::{ArmLevel, Claims, TokenError, arm_level};
use super::faults::Injected;
use super::server::{CloudState, MAX_BODY, Shared, request_id_headers};
use super::store::{Operation, Principal, StoreError, now_ms, now_rfc3339};

/// ARM error codes this cloud answers with; each variant's name is the string on the wire.
macro_rules! arm_codes {
    ($($code:ident),* $(,)?) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum ArmCode { $($code),* }
        impl ArmCode {
            /// The `error.code` string.
            pub fn as_str(self) -> &'static str {
                match self { $(ArmCode::$code => stringify!($code)),* }
            }
        }
    };
}

arm_codes!(
    AccountNameInvalid,
    AuthenticationFailed,
    AuthorizationFailed,
    ContainerNotFound,
    ContainerOperationFailure,
    ExpiredAuthenticationToken,
    InternalServerError,
    InvalidApiVersionParameter,
    InvalidAuthenticationToken,
    InvalidAuthenticationTokenAudience,
    InvalidRequestContent,
    InvalidRoleAssignmentId,
    InvalidUserAssignedIdentity,
    LocationRequired,
    MissingApiVersionParameter,
    NotFound,
    NotImplemented,
    ParentResourceNotFound,
    PrincipalNotFound,
    RequestEntityTooLarge,
    ResourceGroupNotFound,
    ResourceNotFound,
    RoleAssignmentExists,
    RoleAssignmentNotFound,
    RoleAssignmentUpdateNotPermitted,
    RoleDefinitionDoesNotExist,
    ServiceUnavailable,
    StorageAccountAlreadyExists,
    StorageAccountAlreadyTaken,
    SubscriptionNotFound,
    TooManyRequests,
    UserError,
);

/// An ARM error answer: status, `error.code`, `error.message`, extra headers.
#[derive(Debug)]
pub struct ArmError {
    pub status: StatusCode,
    pub code: ArmCode,
    pub message: String,
    pub headers: Vec<(&'static str, String)>,
}

impl ArmError {
    pub fn new(status: StatusCode, code: ArmCode, message: &str) -> Self {
        ArmError {
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }
    pub fn bad_request(code: ArmCode, message: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn not_found(code: ArmCode, message: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }
    pub fn conflict(code: ArmCode, message: &str) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }
    pub fn not_implemented(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_IMPLEMENTED,
            ArmCode::NotImplemented,
            &format!("the local cloud does not implement {what}"),
        )
    }
    pub fn header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }
}

impl From<StoreError> for ArmError {
    fn from(e: StoreError) -> Self {
        ArmError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ArmCode::InternalServerError,
            &e.to_string(),
        )
    }
}

impl IntoResponse for ArmError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code.as_str(), "message": self.message, "details": [], "additionalInfo": []}});
        let mut resp = (self.status, axum::Json(body)).into_response();
        for (k, v) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&v) {
                resp.headers_mut().insert(k, v);
            }
        }
        resp
    }
}

pub type ArmResult = Result<Response, ArmError>;

/// A JSON answer.
pub fn json_response(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// Adds headers to a response.
pub fn with_headers(mut resp: Response, headers: &[(&'static str, String)]) -> Response {
    for (k, v) in headers {
        if let Ok(v) = HeaderValue::from_str(v) {
            resp.headers_mut().insert(*k, v);
        }
    }
    resp
}

/// ARM audiences the cloud accepts: the public ones and its own URL.
pub fn arm_audiences(st: &Shared) -> Vec<String> {
    vec![
        "https://management.azure.com/".into(),
        "https://management.core.windows.net/".into(),
        format!("{}/", st.arm_url),
    ]
}

fn www_authenticate(st: &Shared, tenant: &str) -> String {
    format!(
        "Bearer authorization_uri=\"{}/{}\", error=\"invalid_token\", error_description=\"the access token is missing or invalid\"",
        st.arm_url, tenant
    )
}

/// Checks the bearer token of an ARM request.
pub fn authenticate(st: &Shared, headers: &HeaderMap) -> Result<Claims, ArmError> {
    let tenant = st.seed().tenant_id;
    let unauth = |code: ArmCode, msg: &str| {
        ArmError::new(StatusCode::UNAUTHORIZED, code, msg)
            .header("WWW-Authenticate", www_authenticate(st, &tenant))
    };
    let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return Err(unauth(
            ArmCode::AuthenticationFailed,
            "Authentication failed. The 'Authorization' header is missing.",
        ));
    };
    let Some(token) = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
    else {
        return Err(unauth(
            ArmCode::AuthenticationFailed,
            "Authentication failed. The 'Authorization' header is provided in an invalid format.",
        ));
    };
    let auds = arm_audiences(st);
    let auds: Vec<&str> = auds.iter().map(String::as_str).collect();
    st.signer
        .verify(token.trim(), &auds, now_ms() / 1000)
        .map_err(|e| match e {
            TokenError::Expired => unauth(
                ArmCode::ExpiredAuthenticationToken,
                "The access token expiry UTC time is earlier than current UTC time.",
            ),
            TokenError::WrongAudience => unauth(
                ArmCode::InvalidAuthenticationTokenAudience,
                "The access token has been obtained for wrong audience or resource.",
            ),
            _ => unauth(
                ArmCode::InvalidAuthenticationToken,
                "The access token is invalid.",
            ),
        })
}

/// One parsed ARM request.
pub struct Ctx {
    pub st: CloudState,
    pub method: Method,
    /// Percent-decoded path segments, original casing.
    pub segs: Vec<String>,
    pub query: Vec<(String, String)>,
    pub api_version: String,
    pub body: Bytes,
    pub caller: Claims,
}

impl Ctx {
    /// `/`-joined id of the first `n` segments, with the request's casing.
    pub fn id(&self, n: usize) -> String {
        format!("/{}", self.segs[..n.min(self.segs.len())].join("/"))
    }
    pub fn q(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// The body as JSON; an empty body is `{}`.
    pub fn json(&self) -> Result<Value, ArmError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(json!({}));
        }
        let v: Value = serde_json::from_slice(&self.body).map_err(|e| {
            ArmError::bad_request(
                ArmCode::InvalidRequestContent,
                &format!("The request content was invalid and could not be deserialized: {e}"),
            )
        })?;
        if !v.is_object() {
            return Err(ArmError::bad_request(
                ArmCode::InvalidRequestContent,
                "The request content must be a JSON object.",
            ));
        }
        Ok(v)
    }
    pub fn sub(&self) -> &str {
        &self.segs[1]
    }
    /// Status-monitor URL base: `{arm}/subscriptions/{sub}/providers/{ns}/locations/{loc}`.
    pub fn op_base(&self, ns: &str, loc: &str) -> String {
        format!(
            "{}/subscriptions/{}/providers/{ns}/locations/{loc}",
            self.st.arm_url,
            self.sub()
        )
    }
    pub fn retry_after(&self) -> String {
        self.st.faults().retry_after_s.to_string()
    }
}

/// Case-insensitive segment match; `*` captures. Returns the captures.
pub fn matches<'a>(segs: &'a [String], pat: &[&str]) -> Option<Vec<&'a str>> {
    if segs.len() != pat.len() {
        return None;
    }
    let mut caps = Vec::new();
    for (s, p) in segs.iter().zip(pat) {
        if *p == "*" {
            caps.push(s.as_str());
        } else if !s.eq_ignore_ascii_case(p) {
            return None;
        }
    }
    Some(caps)
}

/// True when `segs` starts with `pat` (same rules as [`matches`]).
pub fn starts(segs: &[String], pat: &[&str]) -> bool {
    segs.len() >= pat.len() && matches(&segs[..pat.len()], pat).is_some()
}

pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) =
                u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses a query string into decoded pairs (`+` is a space).
pub fn parse_query(q: Option<&str>) -> Vec<(String, String)> {
    q.unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (
                percent_decode(&k.replace('+', " ")),
                percent_decode(&v.replace('+', " ")),
            )
        })
        .collect()
}

fn valid_api_version(v: &str) -> bool {
    let base = v.strip_suffix("-preview").unwrap_or(v);
    let b = base.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

/// 404 for paths no layer owns.
pub fn not_found_route(req: &Request) -> Response {
    ArmError::not_found(
        ArmCode::NotFound,
        &format!("no route for {} {}", req.method(), req.uri().path()),
    )
    .into_response()
}

/// Entry point of the ARM layer.
pub async fn handle(st: CloudState, req: Request) -> Response {
    let client_id = req.headers().get("x-ms-client-request-id").cloned();
    let method = req.method().clone();
    let mut resp = handle_inner(st, req)
        .await
        .unwrap_or_else(IntoResponse::into_response);
    request_id_headers(&mut resp, client_id.as_ref());
    let budget = match method {
        Method::GET | Method::HEAD => ("x-ms-ratelimit-remaining-subscription-reads", "11999"),
        Method::DELETE => ("x-ms-ratelimit-remaining-subscription-deletes", "14999"),
        _ => ("x-ms-ratelimit-remaining-subscription-writes", "1199"),
    };
    resp.headers_mut()
        .insert(budget.0, HeaderValue::from_static(budget.1));
    let global = if method == Method::GET {
        "x-ms-ratelimit-remaining-subscription-global-reads"
    } else {
        "x-ms-ratelimit-remaining-subscription-global-writes"
    };
    resp.headers_mut()
        .insert(global, HeaderValue::from_static("2999"));
    resp
}

/// Applies injected latency and failures; shared with the blob layer.
pub async fn inject(st: &Shared) -> Injected {
    let f = st.faults();
    if f.latency_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(f.latency_ms)).await;
    }
    if f.error_rate > 0.0 || f.throttle_rate > 0.0 {
        f.draw(rand::random::<f64>())
    } else {
        Injected::None
    }
}

async fn handle_inner(st: CloudState, req: Request) -> ArmResult {
    match inject(&st).await {
        Injected::None => {}
        Injected::Throttle(s) => {
            return Err(ArmError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ArmCode::TooManyRequests,
                "injected throttling; retry after the given time",
            )
            .header("Retry-After", s.to_string()));
        }
        Injected::ServerError(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return Err(ArmError::new(
                status,
                if code == 503 {
                    ArmCode::ServiceUnavailable
                } else {
                    ArmCode::InternalServerError
                },
                "injected transient failure",
            ));
        }
    }
    let (parts, body) = req.into_parts();
    let query = parse_query(parts.uri.query());
    let api_version = match query
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("api-version"))
    {
        None => {
            return Err(ArmError::bad_request(
                ArmCode::MissingApiVersionParameter,
                "The api-version query parameter (?api-version=) is required for all requests.",
            ));
        }
        Some((_, v)) if !valid_api_version(v) => {
            return Err(ArmError::bad_request(
                ArmCode::InvalidApiVersionParameter,
                &format!(
                    "The api-version '{v}' is invalid. The supported versions look like 'YYYY-MM-DD' or 'YYYY-MM-DD-preview'."
                ),
            ));
        }
        Some((_, v)) => v.clone(),
    };
    let caller = authenticate(&st, &parts.headers)?;
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
        segs,
        query,
        api_version,
        body,
        caller,
    };
    settle_due(&st).await?;
    authorize(&cx)?;
    route(&cx).await
}

/// Role-based check of the caller on the request path.
fn authorize(cx: &Ctx) -> Result<(), ArmError> {
    let path = format!("/{}", cx.segs.join("/"));
    let is_role_write = cx.method != Method::GET
        && cx
            .segs
            .iter()
            .any(|s| s.eq_ignore_ascii_case("roleAssignments"));
    let needed = if is_role_write {
        ArmLevel::All
    } else if cx.method == Method::GET
        || cx.method == Method::HEAD
        || cx
            .segs
            .last()
            .is_some_and(|s| s.eq_ignore_ascii_case("checkNameAvailability"))
    {
        ArmLevel::Read
    } else {
        ArmLevel::Write
    };
    if cx.segs.len() <= 1 {
        return Ok(()); // `GET /subscriptions` filters by permission itself
    }
    // Built-in role definitions are readable by every authenticated caller, at any scope.
    if cx.method == Method::GET
        && cx
            .segs
            .iter()
            .any(|s| s.eq_ignore_ascii_case("roleDefinitions"))
    {
        return Ok(());
    }
    let have = cx
        .st
        .store
        .read(|d| arm_level(d, &cx.caller.oid, &path, now_ms()));
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

async fn route(cx: &Ctx) -> ArmResult {
    let s = &cx.segs;
    let seed = cx.st.seed();
    // Role assignments and definitions at any scope.
    if let Some(pos) = s.windows(2).rposition(|w| {
        w[0].eq_ignore_ascii_case("providers")
            && w[1].eq_ignore_ascii_case("Microsoft.Authorization")
    }) {
        return authz::route(cx, pos).await;
    }
    if matches(s, &["subscriptions"]).is_some() {
        return subscriptions(cx, None);
    }
    if s[0].eq_ignore_ascii_case("providers") {
        return Err(ArmError::not_implemented(&format!(
            "{} {}",
            cx.method,
            cx.id(s.len())
        )));
    }
    if s.len() < 2 {
        return Err(ArmError::not_found(ArmCode::NotFound, "unknown path"));
    }
    if !s[1].eq_ignore_ascii_case(&seed.subscription_id) {
        return Err(ArmError::not_found(
            ArmCode::SubscriptionNotFound,
            &format!("The subscription '{}' could not be found.", s[1]),
        ));
    }
    if s.len() == 2 {
        return subscriptions(cx, Some(&s[1]));
    }
    if starts(s, &["subscriptions", "*", "providers", "Microsoft.Storage"]) {
        return storage::route_subscription(cx).await;
    }
    if starts(
        s,
        &[
            "subscriptions",
            "*",
            "providers",
            "Microsoft.MachineLearningServices",
            "locations",
            "*",
        ],
    ) {
        return ml::route_operation(cx).await;
    }
    if matches(s, &["subscriptions", "*", "resourceGroups"]).is_some() && cx.method == Method::GET {
        let list = list_children(&cx.st, &cx.id(2), "resourceGroups");
        return Ok(json_response(StatusCode::OK, json!({ "value": list })));
    }
    if !starts(s, &["subscriptions", "*", "resourceGroups", "*"]) {
        return Err(ArmError::not_implemented(&format!(
            "{} {}",
            cx.method,
            cx.id(s.len())
        )));
    }
    let rg_id = cx.id(4);
    if s.len() == 4 {
        return resource_group(cx, &rg_id).await;
    }
    if !cx
        .st
        .store
        .read(|d| d.resources.contains_key(&rg_id.to_ascii_lowercase()))
    {
        return Err(ArmError::not_found(
            ArmCode::ResourceGroupNotFound,
            &format!("Resource group '{}' could not be found.", s[3]),
        ));
    }
    if starts(
        s,
        &[
            "subscriptions",
            "*",
            "resourceGroups",
            "*",
            "providers",
            "Microsoft.Storage",
        ],
    ) {
        return storage::route(cx).await;
    }
    if starts(
        s,
        &[
            "subscriptions",
            "*",
            "resourceGroups",
            "*",
            "providers",
            "Microsoft.MachineLearningServices",
            "workspaces",
            "*",
        ],
    ) {
        return ml::route(cx).await;
    }
    if starts(
        s,
        &[
            "subscriptions",
            "*",
            "resourceGroups",
            "*",
            "providers",
            "Microsoft.ManagedIdentity",
            "userAssignedIdentities",
        ],
    ) {
        return user_assigned_identity(cx).await;
    }
    Err(ArmError::not_implemented(&format!(
        "{} {}",
        cx.method,
        cx.id(s.len())
    )))
}

fn subscriptions(cx: &Ctx, one: Option<&str>) -> ArmResult {
    let seed = cx.st.seed();
    let id = format!("/subscriptions/{}", seed.subscription_id);
    let body = json!({
        "id": id, "subscriptionId": seed.subscription_id, "tenantId": seed.tenant_id,
        "displayName": "stackform local cloud", "state": "Enabled",
        "subscriptionPolicies": {"locationPlacementId": "Public_2014-09-01", "quotaId": "Internal_2014-09-01", "spendingLimit": "Off"},
        "authorizationSource": "RoleBased", "managedByTenants": []
    });
    if cx.method != Method::GET {
        return Err(ArmError::not_implemented(&format!(
            "{} on subscriptions",
            cx.method
        )));
    }
    let visible = cx
        .st
        .store
        .read(|d| arm_level(d, &cx.caller.oid, &id, now_ms()))
        >= ArmLevel::Read;
    match one {
        Some(_) => Ok(json_response(StatusCode::OK, body)),
        None => Ok(json_response(
            StatusCode::OK,
            json!({"value": if visible { vec![body] } else { vec![] }, "count": {"type": "Total", "value": usize::from(visible)}}),
        )),
    }
}

pub fn resource_group_body(id: &str, name: &str, location: &str) -> Value {
    json!({"id": id, "name": name, "type": "Microsoft.Resources/resourceGroups", "location": location, "properties": {"provisioningState": "Succeeded"}})
}

async fn resource_group(cx: &Ctx, id: &str) -> ArmResult {
    let key = id.to_ascii_lowercase();
    let existing = cx.st.store.read(|d| d.resources.get(&key).cloned());
    match cx.method {
        Method::GET | Method::HEAD => match existing {
            Some(mut b) => {
                b["id"] = id.into();
                Ok(json_response(StatusCode::OK, b))
            }
            None => Err(ArmError::not_found(
                ArmCode::ResourceGroupNotFound,
                &format!("Resource group '{}' could not be found.", cx.segs[3]),
            )),
        },
        Method::PUT => {
            let body = cx.json()?;
            let Some(loc) = body.get("location").and_then(Value::as_str) else {
                return Err(ArmError::bad_request(
                    ArmCode::LocationRequired,
                    "The location property is required for this definition.",
                ));
            };
            let mut b = resource_group_body(id, &cx.segs[3], loc);
            if let Some(t) = body.get("tags") {
                b["tags"] = t.clone();
            }
            let created = existing.is_none();
            cx.st
                .store
                .mutate(|d| d.resources.insert(key, b.clone()))
                .await?;
            Ok(json_response(
                if created {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                },
                b,
            ))
        }
        _ => Err(ArmError::not_implemented(&format!(
            "{} on resource groups",
            cx.method
        ))),
    }
}

/// Registers a new principal (a managed identity) in the emulated directory.
pub fn new_principal(kind: &str) -> Principal {
    Principal {
        object_id: uuid::Uuid::new_v4().to_string(),
        client_id: uuid::Uuid::new_v4().to_string(),
        kind: kind.into(),
        created_ms: now_ms(),
    }
}

async fn user_assigned_identity(cx: &Ctx) -> ArmResult {
    let s = &cx.segs;
    if s.len() == 7 && cx.method == Method::GET {
        let prefix = format!("{}/", cx.id(7).to_ascii_lowercase());
        let list: Vec<Value> = cx.st.store.read(|d| {
            d.resources
                .range(prefix.clone()..)
                .take_while(|(k, _)| k.starts_with(&prefix))
                .filter(|(k, _)| !k[prefix.len()..].contains('/'))
                .map(|(_, v)| v.clone())
                .collect()
        });
        return Ok(json_response(StatusCode::OK, json!({"value": list})));
    }
    if s.len() != 8 {
        return Err(ArmError::not_implemented(&format!(
            "{} {}",
            cx.method,
            cx.id(s.len())
        )));
    }
    let id = cx.id(8);
    let key = id.to_ascii_lowercase();
    let existing = cx.st.store.read(|d| d.resources.get(&key).cloned());
    match cx.method {
        Method::GET => match existing {
            Some(mut b) => {
                b["id"] = id.into();
                Ok(json_response(StatusCode::OK, b))
            }
            None => Err(ArmError::not_found(
                ArmCode::ResourceNotFound,
                &format!(
                    "The Resource 'Microsoft.ManagedIdentity/userAssignedIdentities/{}' under resource group '{}' was not found.",
                    s[7], s[3]
                ),
            )),
        },
        Method::PUT => {
            let body = cx.json()?;
            let Some(loc) = body.get("location").and_then(Value::as_str) else {
                return Err(ArmError::bad_request(
                    ArmCode::LocationRequired,
                    "The location property is required for this definition.",
                ));
            };
            let tenant = cx.st.seed().tenant_id;
            let (b, created) = match existing {
                Some(mut b) => {
                    b["tags"] = body.get("tags").cloned().unwrap_or(json!({}));
                    (b, false)
                }
                None => {
                    let p = new_principal("UserAssigned");
                    let b = json!({
                        "id": id, "name": s[7], "type": "Microsoft.ManagedIdentity/userAssignedIdentities",
                        "location": loc, "tags": body.get("tags").cloned().unwrap_or(json!({})),
                        "properties": {"tenantId": tenant, "principalId": p.object_id, "clientId": p.client_id}
                    });
                    let b2 = b.clone();
                    cx.st
                        .store
                        .mutate(move |d| {
                            d.principals.insert(p.object_id.clone(), p);
                            d.resources.insert(key.clone(), b2);
                        })
                        .await?;
                    return Ok(json_response(StatusCode::CREATED, b));
                }
            };
            let b2 = b.clone();
            cx.st
                .store
                .mutate(move |d| d.resources.insert(key, b2))
                .await?;
            Ok(json_response(
                if created {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                },
                b,
            ))
        }
        Method::DELETE => match existing {
            None => Ok(StatusCode::NO_CONTENT.into_response()),
            Some(b) => {
                let oid = b["properties"]["principalId"]
                    .as_str()
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                cx.st
                    .store
                    .mutate(move |d| {
                        d.resources.remove(&key);
                        d.principals.remove(&oid);
                    })
                    .await?;
                Ok(StatusCode::OK.into_response())
            }
        },
        _ => Err(ArmError::not_implemented(&format!(
            "{} on user-assigned identities",
            cx.method
        ))),
    }
}

/// Starts an operation record; returns its id.
pub async fn new_operation(
    st: &Shared,
    kind: &str,
    resource_key: &str,
    delay_ms: u64,
) -> Result<String, ArmError> {
    let op = operation_record(kind, resource_key, delay_ms);
    let id = op.id.clone();
    st.store
        .mutate(|d| d.operations.insert(id.clone(), op))
        .await?;
    Ok(id)
}

/// A new in-progress operation record, to be stored in the same mutation as the resource it works
/// on: stored apart, a settle could finish it before the resource shows `Creating`, leaving the
/// resource `Creating` for ever.
pub fn operation_record(kind: &str, resource_key: &str, delay_ms: u64) -> Operation {
    Operation {
        id: uuid::Uuid::new_v4().to_string(),
        kind: kind.into(),
        resource_key: resource_key.into(),
        started: now_rfc3339(),
        ready_ms: now_ms() + delay_ms,
        status: "InProgress".into(),
        error: None,
        ended: None,
    }
}

/// Finishes time-based operations whose delay has passed (storage account creation, endpoint PUT,
/// PATCH and DELETE). Deployment PUTs are finished by the runner.
pub async fn settle_due(st: &Shared) -> Result<(), ArmError> {
    let now = now_ms();
    let due = st.store.read(|d| {
        d.operations
            .values()
            .any(|o| o.status == "InProgress" && o.ready_ms <= now && o.kind != "deployment-put")
    });
    if !due {
        return Ok(());
    }
    st.store
        .mutate(|d| {
            let ids: Vec<String> = d
                .operations
                .values()
                .filter(|o| {
                    // Never settle a PUT whose resource is not stored: the resource would then stay
                    // `Creating` for ever (PUTs store both together; this guards any that do not).
                    let stored =
                        !o.kind.ends_with("-put") || d.resources.contains_key(&o.resource_key);
                    o.status == "InProgress"
                        && o.ready_ms <= now
                        && o.kind != "deployment-put"
                        && stored
                })
                .map(|o| o.id.clone())
                .collect();
            for id in ids {
                let Some(op) = d.operations.get_mut(&id) else {
                    continue;
                };
                op.status = "Succeeded".into();
                op.ended = Some(now_rfc3339());
                let key = op.resource_key.clone();
                if let Some(r) = d.resources.get_mut(&key)
                    && let Some(ps) = r.pointer_mut("/properties/provisioningState")
                    && (ps == "Creating" || ps == "Updating")
                {
                    *ps = "Succeeded".into();
                }
            }
        })
        .await?;
    Ok(())
}

/// Lists direct children of `parent_id` whose next segment is `kind` (e.g. `deployments`).
pub fn list_children(st: &Shared, parent_id: &str, kind: &str) -> Vec<Value> {
    let prefix = format!(
        "{}/{}/",
        parent_id.to_ascii_lowercase(),
        kind.to_ascii_lowercase()
    );
    st.store.read(|d| {
        d.resources
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .filter(|(k, _)| !k[prefix.len()..].contains('/'))
            .map(|(_, v)| v.clone())
            .collect()
    })
}

/// Removes a resource and everything under it (children, role assignments scoped to it, blobs of a
/// storage account, secrets). Returns the blob files to delete.
pub fn remove_tree(d: &mut super::store::Data, key: &str) -> Vec<String> {
    let prefix = format!("{key}/");
    d.resources
        .retain(|k, _| k != key && !k.starts_with(&prefix));
    d.secrets
        .retain(|k, _| !(k.starts_with(&format!("{key}#")) || k.starts_with(&prefix)));
    d.role_assignments.retain(|_, ra| {
        let s = ra.scope.to_ascii_lowercase();
        s != key && !s.starts_with(&prefix)
    });
    let mut files = Vec::new();
    if key.contains("/providers/microsoft.storage/storageaccounts/")
        && !key.contains("/blobservices/")
    {
        let account = key.rsplit('/').next().unwrap_or_default().to_string();
        let bp = format!("{account}/");
        d.blobs.retain(|k, m| {
            if k.starts_with(&bp) {
                files.push(m.file.clone());
                false
            } else {
                true
            }
        });
    }
    files
}

/// An empty 2xx/202 answer with headers.
pub fn empty(status: StatusCode, headers: &[(&'static str, String)]) -> Response {
    with_headers((status, Body::empty()).into_response(), headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_versions() {
        assert!(valid_api_version("2022-04-01"));
        assert!(valid_api_version("2024-01-01-preview"));
        assert!(!valid_api_version("2022-4-1"));
        assert!(!valid_api_version("latest"));
    }

    #[test]
    fn matching_is_case_insensitive() {
        let segs: Vec<String> = ["Subscriptions", "abc", "RESOURCEGROUPS", "rg"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            matches(&segs, &["subscriptions", "*", "resourceGroups", "*"]),
            Some(vec!["abc", "rg"])
        );
        assert!(starts(&segs, &["subscriptions", "*"]));
        assert!(matches(&segs, &["subscriptions", "*"]).is_none());
    }

    #[test]
    fn query_decoding() {
        let q = parse_query(Some("$filter=principalId%20eq%20'x'&a=b+c"));
        assert_eq!(q[0], ("$filter".into(), "principalId eq 'x'".into()));
        assert_eq!(q[1].1, "b c");
    }
}
