//! The ARM wire protocol shared by every ARM handler: the error codes and envelope, bearer-token
//! authentication, api-version syntax, the parsed request ([`Ctx`]) and the helpers that start
//! long-running operations.
//!
//! It must never route a request or implement a resource; the handlers import it, never the reverse.
use axum::body::Bytes;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::cloud::auth::{Claims, TokenError};
use crate::cloud::http::{Query, empty, json_response, wire_codes};
use crate::cloud::state::{CloudState, Shared};
use crate::cloud::store::{Operation, Principal, StoreError, now_ms, now_rfc3339};

wire_codes!(
    /// ARM error codes this cloud answers with (`error.code`); each variant's name is the string on
    /// the wire.
    ArmCode,
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
    InvalidResourceNamespace,
    InvalidResourceName,
    InvalidRoleAssignmentId,
    InvalidUserAssignedIdentity,
    LocationRequired,
    MissingApiVersionParameter,
    ModelVersionOutOfRange,
    NoRegisteredProviderFound,
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
    SubscriptionRequestsThrottled,
    UserError,
);

/// An ARM error answer: status, `error.code`, `error.message`, extra headers.
#[derive(Debug)]
pub(crate) struct ArmError {
    pub(crate) status: StatusCode,
    pub(crate) code: ArmCode,
    pub(crate) message: String,
    pub(crate) headers: Vec<(&'static str, String)>,
    /// `error.details`: more specific errors (code, message), as the service nests them.
    pub(crate) details: Vec<(ArmCode, String)>,
}

impl ArmError {
    pub(crate) fn new(status: StatusCode, code: ArmCode, message: &str) -> Self {
        ArmError {
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
            details: Vec::new(),
        }
    }
    pub(crate) fn bad_request(code: ArmCode, message: &str) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub(crate) fn not_found(code: ArmCode, message: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }
    pub(crate) fn conflict(code: ArmCode, message: &str) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }
    pub(crate) fn not_implemented(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_IMPLEMENTED,
            ArmCode::NotImplemented,
            &format!("the local cloud does not implement {what}"),
        )
    }
    pub(crate) fn header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }
    pub(crate) fn detail(mut self, code: ArmCode, message: &str) -> Self {
        self.details.push((code, message.into()));
        self
    }
}

/// A store that cannot read or write (a full disk, an I/O error) answers as the service does when it
/// fails inside: 500 with a message that says nothing of its insides (the local path and SQLite's
/// words go to the log), which clients retry. A failed write changed nothing (`store::Store::mutate`),
/// so a retry once the store can write again simply succeeds.
impl From<StoreError> for ArmError {
    fn from(e: StoreError) -> Self {
        tracing::error!("the store failed: {e}");
        ArmError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ArmCode::InternalServerError,
            "The server encountered an internal error. Please retry the request.",
        )
    }
}

impl IntoResponse for ArmError {
    fn into_response(self) -> Response {
        let details: Vec<Value> = self
            .details
            .iter()
            .map(|(code, message)| json!({"code": code.as_str(), "message": message}))
            .collect();
        let body = json!({"error": {"code": self.code.as_str(), "message": self.message, "details": details, "additionalInfo": []}});
        let mut resp = (self.status, axum::Json(body)).into_response();
        for (k, v) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&v) {
                resp.headers_mut().insert(k, v);
            }
        }
        resp
    }
}

pub(crate) type ArmResult = Result<Response, ArmError>;

pub(crate) fn arm_audiences(st: &Shared) -> Vec<String> {
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
pub(crate) fn authenticate(st: &Shared, headers: &HeaderMap) -> Result<Claims, ArmError> {
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

/// One ARM request, authenticated and with its api-version checked.
/// The most entries one page of an ARM list holds here. ARM's own page sizes are the service's
/// choice; clients follow `nextLink` whatever they are.
pub(crate) const PAGE_SIZE: usize = 1000;

pub(crate) struct Ctx {
    pub(crate) st: CloudState,
    pub(crate) method: Method,
    /// The percent-decoded path with the request's casing (`/subscriptions/...`).
    pub(crate) path: String,
    pub(crate) query: Query,
    pub(crate) api_version: String,
    pub(crate) body: Bytes,
    pub(crate) caller: Claims,
}

impl Ctx {
    pub(crate) fn q(&self, name: &str) -> Option<&str> {
        self.query.get(name)
    }

    /// One page of a collection, as ARM's pageable lists answer: `{"value": [...], "nextLink": url}`,
    /// the link present only when more entries follow. The page holds `$maxpagesize` (or `$top`)
    /// entries when the request names a positive number, at most [`PAGE_SIZE`]; the link carries the
    /// api-version, the page size and a `$skipToken` with the offset of the next entry (ARM's
    /// `x-ms-pageable` contract: `nextLinkName: nextLink`, e.g. StorageAccounts_ListByResourceGroup and
    /// BlobContainers_List in `Azure/azure-rest-api-specs:
    /// specification/storage/resource-manager/Microsoft.Storage/stable/2025-01-01/{storage,blob}.json`).
    /// A `$skipToken` that is not an offset this cloud gave is a 400.
    pub(crate) fn page(&self, items: Vec<Value>) -> Result<Response, ArmError> {
        self.page_by(items, "$skipToken")
    }

    /// [`Ctx::page`] with the continuation parameter named `token` (Azure ML's lists use `$skip`:
    /// OnlineDeployments_List in `Azure/azure-rest-api-specs:
    /// specification/machinelearningservices/resource-manager/Microsoft.MachineLearningServices/stable/2025-12-01/mlservices.json`,
    /// parameters `$top` and `$skip`, "Continuation token for pagination").
    pub(crate) fn page_by(&self, items: Vec<Value>, token: &str) -> Result<Response, ArmError> {
        self.page_window(token, |skip, size| {
            let total = items.len();
            (items.into_iter().skip(skip).take(size).collect(), total)
        })
    }

    /// [`Ctx::page_by`] for a collection that builds only the entries of the page asked for:
    /// `window(skip, size)` answers those entries and the size of the whole collection (a list of
    /// thousands of storage accounts rendered every account on each of its pages).
    pub(crate) fn page_window(
        &self,
        token: &str,
        window: impl FnOnce(usize, usize) -> (Vec<Value>, usize),
    ) -> Result<Response, ArmError> {
        let size = ["$maxpagesize", "$top"]
            .iter()
            .find_map(|k| self.q(k))
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|n| *n > 0)
            .map_or(PAGE_SIZE, |n| n.min(PAGE_SIZE));
        let skip = match self.q(token) {
            None => 0,
            Some(t) => t.parse::<usize>().map_err(|_| {
                ArmError::bad_request(
                    ArmCode::InvalidRequestContent,
                    &format!("The value of the {token} query parameter is invalid."),
                )
            })?,
        };
        let (page, total) = window(skip, size);
        let mut body = serde_json::json!({ "value": page });
        if skip + size < total {
            let mut next =
                url::Url::parse(&format!("{}{}", self.st.arm_url, self.path)).map_err(|e| {
                    ArmError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        ArmCode::InternalServerError,
                        &format!("bad next link: {e}"),
                    )
                })?;
            {
                let mut q = next.query_pairs_mut();
                // The request's own parameters (a `$filter`) hold for every page.
                for (k, v) in self.query.pairs() {
                    let paging = ["api-version", "$maxpagesize", "$top", token];
                    if !paging.iter().any(|p| k.eq_ignore_ascii_case(p)) {
                        q.append_pair(k, v);
                    }
                }
                q.append_pair("api-version", &self.api_version)
                    .append_pair("$maxpagesize", &size.to_string())
                    .append_pair(token, &(skip + size).to_string());
            }
            body["nextLink"] = Value::String(next.to_string());
        }
        Ok(json_response(StatusCode::OK, body))
    }

    /// The body as JSON; an empty body is `{}`.
    pub(crate) fn json(&self) -> Result<Value, ArmError> {
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

    /// Status-monitor URL base: `{arm}/subscriptions/{sub}/providers/{ns}/locations/{loc}`.
    pub(crate) fn op_base(&self, sub: &str, ns: &str, loc: &str) -> String {
        format!(
            "{}/subscriptions/{sub}/providers/{ns}/locations/{loc}",
            self.st.arm_url
        )
    }

    pub(crate) fn retry_after(&self) -> String {
        self.st.faults().retry_after_s.to_string()
    }

    /// The answer for a method or path this cloud does not implement.
    pub(crate) fn unimplemented(&self) -> ArmError {
        ArmError::not_implemented(&format!("{} {}", self.method, self.path))
    }

    /// The answer for a method a resource does not implement (`what`: "resource groups", ...).
    pub(crate) fn unimplemented_on(&self, what: &str) -> ArmError {
        ArmError::not_implemented(&format!("{} on {what}", self.method))
    }

    /// A `201 Created` or `200 OK` JSON answer.
    pub(crate) fn created_or_ok(&self, created: bool, body: Value) -> Response {
        json_response(
            if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            },
            body,
        )
    }

    /// A stored resource's body with `id` as the request spelled it (ARM echoes the client's casing).
    pub(crate) fn stored(&self, key: &str, id: &str) -> Option<Value> {
        let mut b = self.st.store.resource(key)?;
        b["id"] = id.into();
        Some(b)
    }

    /// `202 Accepted` telling the client to poll `url` again after the advertised delay.
    pub(crate) fn poll_again(&self, url: String) -> Response {
        empty(
            StatusCode::ACCEPTED,
            &[("Location", url), ("Retry-After", self.retry_after())],
        )
    }

    /// A new in-progress operation on `resource_key`, ready after the `lro_ms` fault's delay.
    pub(crate) fn operation(&self, kind: &str, resource_key: &str) -> Operation {
        operation_record(kind, resource_key, self.st.faults().lro_ms)
    }
}

/// Refuses an api-version Azure does not serve for `namespace`/`resource_type` (the table in
/// `specs/api_versions.yaml`), with the code and message shape ARM answers with (observed in ARM
/// answers quoted in public issue threads; e.g. "No registered resource provider found for location
/// 'centralus' and API version '2018-07-02' for type 'storageAccounts'. The supported api-versions
/// are '…'. The supported locations are '…'."): 400 `NoRegisteredProviderFound` for a resource
/// provider's types, 400 `InvalidApiVersionParameter` ("The api-version '…' is invalid. The supported
/// versions are '…'.") for Microsoft.Resources' own (subscriptions, resource groups, providers).
pub(crate) fn check_served(
    (namespace, resource_type): (&str, &str),
    api_version: &str,
    location: &str,
) -> Result<(), ArmError> {
    let Some(served) = super::versions::Served::embedded().versions(namespace, resource_type)
    else {
        return Ok(());
    };
    if served.iter().any(|v| v.eq_ignore_ascii_case(api_version)) {
        return Ok(());
    }
    Err(if namespace.eq_ignore_ascii_case("Microsoft.Resources") {
        ArmError::bad_request(
            ArmCode::InvalidApiVersionParameter,
            &format!(
                "The api-version '{api_version}' is invalid. The supported versions are '{}'.",
                served.join(",")
            ),
        )
    } else {
        let short = resource_type.rsplit('/').next().unwrap_or(resource_type);
        ArmError::bad_request(
            ArmCode::NoRegisteredProviderFound,
            &format!(
                "No registered resource provider found for location '{location}' and API version '{api_version}' for type '{short}'. The supported api-versions are '{}'. The supported locations are '{location}'.",
                served.join(", ")
            ),
        )
    })
}

/// The `location` of a PUT body, which every PUT requires.
pub(crate) fn location(body: &Value) -> Result<&str, ArmError> {
    body.get("location").and_then(Value::as_str).ok_or_else(|| {
        ArmError::bad_request(
            ArmCode::LocationRequired,
            "The location property is required for this definition.",
        )
    })
}

/// 404 for paths no layer owns.
pub(crate) fn not_found_route(req: &Request) -> Response {
    ArmError::not_found(
        ArmCode::NotFound,
        &format!("no route for {} {}", req.method(), req.uri().path()),
    )
    .into_response()
}

/// A new principal (a managed identity) for the emulated directory.
pub(crate) fn new_principal(kind: &str) -> Principal {
    Principal {
        object_id: uuid::Uuid::new_v4().to_string(),
        client_id: uuid::Uuid::new_v4().to_string(),
        kind: kind.into(),
        created_ms: now_ms(),
    }
}

/// A new in-progress operation record, to be stored in the same mutation as the resource it works
/// on: stored apart, a settle could finish it before the resource shows `Creating`, leaving the
/// resource `Creating` for ever.
fn operation_record(kind: &str, resource_key: &str, delay_ms: u64) -> Operation {
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
