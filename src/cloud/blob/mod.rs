//! The blob data plane (contract section 5), path-style: `https://127.0.0.1:{port}/{account}/...`.
//! Authenticates Bearer tokens (storage audience) and SharedKey signatures, authorises Bearer callers by
//! blob data roles on the container, account or any parent scope (ARM roles do not count), and
//! answers in the service's XML error shape with `x-ms-error-code`.
//!
//! It never reads or writes ARM state beyond the container records and the account's keys. Routing
//! lives in [`route`]; the handlers here take a typed container or blob and use the store's named
//! operations (a container's blobs go with it inside the store, never here).
pub(crate) mod route;

use std::collections::BTreeMap;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use md5::Digest;
use sha2::Sha256;

use super::auth::{DataLevel, STORAGE_AUDIENCE, TokenError, data_level};
use super::bodies::container_body;
use super::faults::Injected;
use super::http::{
    MAX_BLOB_BODY, Query, answer, header, injected_server_error, request_id_headers, wire_codes,
};
use super::state::{CloudState, Shared};
use super::store::{BlobMeta, StoreError, now_ms, now_rfc3339};
use route::{BlobPath, BlobRef, BlobRoute, Container};

const DEFAULT_VERSION: &str = "2025-11-05";

wire_codes!(
    /// Blob service error codes this cloud answers with (`x-ms-error-code`); each variant's name is
    /// the string on the wire.
    BlobCode,
    AuthenticationFailed,
    AuthorizationPermissionMismatch,
    BlobAlreadyExists,
    BlobNotFound,
    ConditionNotMet,
    ContainerAlreadyExists,
    ContainerNotFound,
    InternalError,
    InvalidAuthenticationInfo,
    InvalidHeaderValue,
    InvalidRange,
    InvalidResourceName,
    KeyBasedAuthenticationNotPermitted,
    Md5Mismatch,
    MissingRequiredHeader,
    NoAuthenticationInformation,
    NotImplemented,
    RequestBodyTooLarge,
    ResourceNotFound,
    ServerBusy,
);

/// A blob-service error.
struct BlobError {
    status: StatusCode,
    code: BlobCode,
    message: String,
    detail: Option<String>,
    headers: Vec<(&'static str, String)>,
}

fn err(status: StatusCode, code: BlobCode, message: impl Into<String>) -> BlobError {
    BlobError {
        status,
        code,
        message: message.into(),
        detail: None,
        headers: Vec::new(),
    }
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

impl BlobError {
    fn into_response(self, head: bool) -> Response {
        let id = uuid::Uuid::new_v4();
        let mut xml = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{}</Code><Message>{}\nRequestId:{id}\nTime:{}</Message>",
            self.code.as_str(),
            xml_escape(&self.message),
            now_rfc3339()
        );
        if let Some(d) = &self.detail {
            xml.push_str(&format!(
                "<AuthenticationErrorDetail>{}</AuthenticationErrorDetail>",
                xml_escape(d)
            ));
        }
        xml.push_str("</Error>");
        let body = if head { Body::empty() } else { Body::from(xml) };
        let mut r = (self.status, body).into_response();
        let h = r.headers_mut();
        h.insert(
            "x-ms-error-code",
            HeaderValue::from_static(self.code.as_str()),
        );
        if !head {
            h.insert("content-type", HeaderValue::from_static("application/xml"));
        }
        for (k, v) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&v) {
                h.insert(k, v);
            }
        }
        r
    }
}

type BResult = Result<Response, BlobError>;

/// Who is calling.
enum Caller {
    Principal(String),
    SharedKey,
}

/// Entry point of the blob layer.
pub(crate) async fn handle(st: CloudState, req: Request) -> Response {
    let head = req.method() == Method::HEAD;
    let client_id = req.headers().get("x-ms-client-request-id").cloned();
    let version = req
        .headers()
        .get("x-ms-version")
        .and_then(|v| v.to_str().ok())
        .unwrap_or(DEFAULT_VERSION)
        .to_string();
    let mut resp = match handle_inner(&st, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(head),
    };
    request_id_headers(&mut resp, client_id.as_ref());
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&version) {
        h.insert("x-ms-version", v);
    }
    if let Ok(v) = HeaderValue::from_str(&httpdate::fmt_http_date(std::time::SystemTime::now())) {
        h.insert("date", v);
    }
    h.remove("x-ms-correlation-request-id");
    h.remove("x-ms-routing-request-id");
    resp
}

async fn handle_inner(st: &CloudState, req: Request) -> BResult {
    match st.inject().await {
        Injected::None => {}
        Injected::Throttle(s) => {
            let mut e = err(
                StatusCode::SERVICE_UNAVAILABLE,
                BlobCode::ServerBusy,
                "injected throttling: the server is busy",
            );
            if s > 0 {
                e.status = StatusCode::TOO_MANY_REQUESTS;
            }
            e.headers.push(("Retry-After", s.to_string()));
            return Err(e);
        }
        Injected::ServerError(c) => {
            let (status, code) =
                injected_server_error(c, BlobCode::ServerBusy, BlobCode::InternalError);
            return Err(err(status, code, "injected transient failure"));
        }
    }
    let (parts, body) = req.into_parts();
    let raw_path = parts.uri.path().to_string();
    let query = Query::parse(parts.uri.query());
    let path = BlobPath::parse(&raw_path);
    let account = path.account.clone();
    let suffix = format!("/providers/microsoft.storage/storageaccounts/{account}");
    let acct = st.store.find_resource_by_suffix(&suffix, None);
    let Some((acct_key, acct_body)) = acct else {
        return Err(err(
            StatusCode::NOT_FOUND,
            BlobCode::ResourceNotFound,
            format!("The storage account {account} does not exist."),
        ));
    };
    if query.get("sig").is_some() {
        return Err(err(
            StatusCode::FORBIDDEN,
            BlobCode::AuthenticationFailed,
            "shared access signatures are not supported by the local cloud; use a bearer token or SharedKey",
        ));
    }
    let caller = authenticate(
        st,
        &parts.method,
        &parts.headers,
        &raw_path,
        query.pairs(),
        &account,
        &acct_key,
        &acct_body,
    )?;
    if header(&parts.headers, "x-ms-version").is_none() {
        return Err(err(
            StatusCode::BAD_REQUEST,
            BlobCode::MissingRequiredHeader,
            "An HTTP header that's mandatory for this request is not specified: x-ms-version.",
        ));
    }
    if matches!(caller, Caller::Principal(_))
        && header(&parts.headers, "x-ms-version").is_some_and(|v| v < "2017-11-09")
    {
        return Err(err(
            StatusCode::BAD_REQUEST,
            BlobCode::InvalidHeaderValue,
            "Bearer authentication needs x-ms-version 2017-11-09 or later.",
        ));
    }
    let write = !matches!(parts.method, Method::GET | Method::HEAD);
    if let Caller::Principal(oid) = &caller {
        let scope = match &path.container {
            Some(c) => format!(
                "{acct_key}/blobservices/default/containers/{}",
                c.to_ascii_lowercase()
            ),
            None => acct_key.clone(),
        };
        let delay = (st.faults().role_propagation_s * 1000.0) as u64;
        let level = data_level(&st.store.assignments_of(oid), &scope, now_ms(), delay);
        let needed = if write {
            DataLevel::Write
        } else {
            DataLevel::Read
        };
        if level < needed {
            return Err(err(
                StatusCode::FORBIDDEN,
                BlobCode::AuthorizationPermissionMismatch,
                "This request is not authorized to perform this operation using this permission.",
            ));
        }
    }
    let body = axum::body::to_bytes(body, MAX_BLOB_BODY)
        .await
        .map_err(|_| {
            err(
                StatusCode::PAYLOAD_TOO_LARGE,
                BlobCode::RequestBodyTooLarge,
                "The request body is too large.",
            )
        })?;
    let h = &parts.headers;
    match BlobRoute::parse(&parts.method, path, &query) {
        BlobRoute::CreateContainer(c) => create_container(st, &c.at(&acct_key), h).await,
        BlobRoute::DeleteContainer(c) => delete_container(st, &c.at(&acct_key)).await,
        BlobRoute::ContainerProperties(c) => container_properties(st, &c.at(&acct_key)),
        BlobRoute::ListBlobs(c) => list_blobs(st, &c.at(&acct_key), &query),
        BlobRoute::PutBlob(b) => put_blob(st, &b.at(&acct_key), h, body).await,
        BlobRoute::GetBlob { blob, head } => get_blob(st, &blob.at(&acct_key), h, head),
        BlobRoute::DeleteBlob(b) => delete_blob(st, &b.at(&acct_key), h).await,
        BlobRoute::Unimplemented => Err(err(
            StatusCode::NOT_IMPLEMENTED,
            BlobCode::NotImplemented,
            format!(
                "the local cloud does not implement {} {} with these query parameters",
                parts.method, raw_path
            ),
        )),
    }
}

#[expect(
    clippy::too_many_arguments,
    reason = "all request parts are needed to verify a signature"
)]
fn authenticate(
    st: &Shared,
    method: &Method,
    h: &HeaderMap,
    raw_path: &str,
    query: &[(String, String)],
    account: &str,
    acct_key: &str,
    acct_body: &serde_json::Value,
) -> Result<Caller, BlobError> {
    let Some(auth) = header(h, "authorization") else {
        return Err(err(
            StatusCode::UNAUTHORIZED,
            BlobCode::NoAuthenticationInformation,
            "Server failed to authenticate the request. Please refer to the information in the www-authenticate header.",
        ));
    };
    let tenant = st.seed().tenant_id;
    let challenge = format!(
        "Bearer authorization_uri={}/{tenant}/oauth2/authorize resource_id={STORAGE_AUDIENCE}",
        st.arm_url
    );
    if let Some(token) = auth.strip_prefix("Bearer ") {
        let claims = st
            .signer
            .verify(token.trim(), &[STORAGE_AUDIENCE], now_ms() / 1000)
            .map_err(|e| {
                let mut be = err(
                    StatusCode::UNAUTHORIZED,
                    BlobCode::InvalidAuthenticationInfo,
                    match e {
                        TokenError::Expired => {
                            "Server failed to authenticate the request. The token is expired."
                        }
                        TokenError::WrongAudience => {
                            "Audience validation failed. Audience did not match."
                        }
                        _ => "Server failed to authenticate the request. The token is invalid.",
                    },
                );
                be.headers.push(("WWW-Authenticate", challenge.clone()));
                be
            })?;
        return Ok(Caller::Principal(claims.oid));
    }
    let Some(rest) = auth.strip_prefix("SharedKey ") else {
        let mut be = err(
            StatusCode::UNAUTHORIZED,
            BlobCode::InvalidAuthenticationInfo,
            "Authentication information is not given in the correct format.",
        );
        be.headers.push(("WWW-Authenticate", challenge));
        return Err(be);
    };
    if acct_body.pointer("/properties/allowSharedKeyAccess")
        == Some(&serde_json::Value::Bool(false))
    {
        return Err(err(
            StatusCode::FORBIDDEN,
            BlobCode::KeyBasedAuthenticationNotPermitted,
            "Key based authentication is not permitted on this storage account.",
        ));
    }
    let fail = |detail: &str| {
        let mut be = err(
            StatusCode::FORBIDDEN,
            BlobCode::AuthenticationFailed,
            "Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature.",
        );
        be.detail = Some(detail.to_string());
        be
    };
    let (name, sig) = rest
        .split_once(':')
        .ok_or_else(|| fail("the Authorization header is not SharedKey account:signature"))?;
    if !name.eq_ignore_ascii_case(account) {
        return Err(fail(
            "the account name in the Authorization header does not match the request",
        ));
    }
    let date = header(h, "x-ms-date")
        .or_else(|| header(h, "date"))
        .ok_or_else(|| fail("x-ms-date or Date is required"))?;
    let when = httpdate::parse_http_date(date)
        .map_err(|_| fail("the request date is not a valid RFC 1123 date"))?;
    let skew = match std::time::SystemTime::now().duration_since(when) {
        Ok(d) => d,
        Err(e) => e.duration(),
    };
    if skew > std::time::Duration::from_secs(15 * 60) {
        return Err(fail("Request date header too old or too far in the future"));
    }
    let keys: Vec<String> = ["key1", "key2"]
        .iter()
        .filter_map(|k| st.store.secret(acct_key, k))
        .collect();
    let without_account = raw_path
        .trim_start_matches('/')
        .split_once('/')
        .map(|(_, r)| format!("/{r}"))
        .unwrap_or_else(|| "/".into());
    for resource_path in [raw_path.to_string(), without_account] {
        let sts = string_to_sign(method, h, account, &resource_path, query);
        for k in &keys {
            if let Ok(kb) = B64.decode(k)
                && let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&kb)
            {
                mac.update(sts.as_bytes());
                if let Ok(sigb) = B64.decode(sig)
                    && mac.verify_slice(&sigb).is_ok()
                {
                    return Ok(Caller::SharedKey);
                }
            }
        }
    }
    Err(fail(
        "The MAC signature found in the HTTP request is not the same as any computed signature.",
    ))
}

/// SharedKey string-to-sign (contract section 5.1).
pub(crate) fn string_to_sign(
    method: &Method,
    h: &HeaderMap,
    account: &str,
    path: &str,
    query: &[(String, String)],
) -> String {
    let g = |n: &str| header(h, n).unwrap_or_default().to_string();
    let len = g("content-length");
    let len = if len == "0" { String::new() } else { len };
    let date = if h.contains_key("x-ms-date") {
        String::new()
    } else {
        g("date")
    };
    let mut out = [
        method.as_str().to_string(),
        g("content-encoding"),
        g("content-language"),
        len,
        g("content-md5"),
        g("content-type"),
        date,
        g("if-modified-since"),
        g("if-match"),
        g("if-none-match"),
        g("if-unmodified-since"),
        g("range"),
    ]
    .join("\n");
    out.push('\n');
    let mut xms: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in h {
        let name = k.as_str().to_ascii_lowercase();
        if name.starts_with("x-ms-") {
            xms.insert(name, v.to_str().unwrap_or_default().trim().to_string());
        }
    }
    for (k, v) in xms {
        out.push_str(&format!("{k}:{v}\n"));
    }
    out.push_str(&format!("/{account}{path}"));
    let mut params: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in query {
        params
            .entry(k.to_ascii_lowercase())
            .or_default()
            .push(v.clone());
    }
    for (k, mut vs) in params {
        vs.sort();
        out.push_str(&format!("\n{k}:{}", vs.join(",")));
    }
    out
}

fn container_not_found() -> BlobError {
    err(
        StatusCode::NOT_FOUND,
        BlobCode::ContainerNotFound,
        "The specified container does not exist.",
    )
}

/// The container's record, or `ContainerNotFound`.
fn container_exists(st: &Shared, c: &Container) -> Result<serde_json::Value, BlobError> {
    st.store.resource(&c.key()).ok_or_else(container_not_found)
}

fn internal(e: StoreError) -> BlobError {
    err(
        StatusCode::INTERNAL_SERVER_ERROR,
        BlobCode::InternalError,
        e.to_string(),
    )
}

async fn create_container(st: &Shared, c: &Container, h: &HeaderMap) -> BResult {
    let name = &c.name;
    if !(3..=63).contains(&name.len())
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(err(
            StatusCode::BAD_REQUEST,
            BlobCode::InvalidResourceName,
            "The specified resource name contains invalid characters.",
        ));
    }
    let public = header(h, "x-ms-blob-public-access")
        .map(|p| {
            if p == "container" {
                "Container"
            } else {
                "Blob"
            }
        })
        .unwrap_or("None");
    let account_id = st
        .store
        .resource(&c.acct_key)
        .and_then(|b| b["id"].as_str().map(str::to_string))
        .unwrap_or_default();
    let id = format!("{account_id}/blobServices/default/containers/{name}");
    let created = st
        .store
        .create_container(&c.key(), |counter| {
            container_body(
                &id,
                name,
                &serde_json::json!({"properties": {"publicAccess": public}}),
                &now_rfc3339(),
                counter,
            )
        })
        .await
        .map_err(internal)?;
    let Some(body) = created else {
        return Err(err(
            StatusCode::CONFLICT,
            BlobCode::ContainerAlreadyExists,
            "The specified container already exists.",
        ));
    };
    Ok(answer(
        StatusCode::CREATED,
        Body::empty(),
        &[
            (
                "etag",
                body["etag"].as_str().unwrap_or_default().to_string(),
            ),
            (
                "last-modified",
                httpdate::fmt_http_date(std::time::SystemTime::now()),
            ),
        ],
    ))
}

async fn delete_container(st: &Shared, c: &Container) -> BResult {
    container_exists(st, c)?;
    st.store
        .delete_container(&c.acct_key, &c.name)
        .await
        .map_err(internal)?;
    Ok(answer(StatusCode::ACCEPTED, Body::empty(), &[]))
}

fn container_properties(st: &Shared, c: &Container) -> BResult {
    let b = container_exists(st, c)?;
    Ok(answer(
        StatusCode::OK,
        Body::empty(),
        &[
            ("etag", b["etag"].as_str().unwrap_or_default().to_string()),
            ("x-ms-lease-state", "available".into()),
            ("x-ms-lease-status", "unlocked".into()),
            ("x-ms-has-immutability-policy", "false".into()),
            ("x-ms-has-legal-hold", "false".into()),
        ],
    ))
}

fn list_blobs(st: &Shared, c: &Container, query: &Query) -> BResult {
    container_exists(st, c)?;
    let q = |k: &str| query.get(k).map(str::to_string);
    let prefix = q("prefix").unwrap_or_default();
    let delimiter = q("delimiter").filter(|d| !d.is_empty());
    let marker = q("marker").unwrap_or_default();
    let max: usize = q("maxresults")
        .and_then(|m| m.parse().ok())
        .filter(|m| *m > 0)
        .unwrap_or(5000)
        .min(5000);
    let with_meta = q("include").is_some_and(|i| i.split(',').any(|x| x == "metadata"));
    let blobs: Vec<(String, BlobMeta)> = st
        .store
        .blobs_under(&c.account, &c.name, &prefix)
        .into_iter()
        .filter(|(n, _)| n.as_str() >= marker.as_str())
        .collect();
    let mut entries = String::new();
    let mut count = 0;
    let mut next_marker = String::new();
    let mut last_prefix: Option<String> = None;
    for (name, m) in blobs {
        if let Some(d) = &delimiter
            && let Some(pos) = name[prefix.len()..].find(d.as_str())
        {
            let p = name[..prefix.len() + pos + d.len()].to_string();
            if last_prefix.as_deref() == Some(p.as_str()) {
                continue;
            }
            if count == max {
                next_marker = name;
                break;
            }
            entries.push_str(&format!(
                "<BlobPrefix><Name>{}</Name></BlobPrefix>",
                xml_escape(&p)
            ));
            last_prefix = Some(p);
            count += 1;
            continue;
        }
        if count == max {
            next_marker = name;
            break;
        }
        let mut meta = String::new();
        if with_meta {
            meta.push_str("<Metadata>");
            for (k, v) in &m.metadata {
                meta.push_str(&format!("<{k}>{}</{k}>", xml_escape(v)));
            }
            meta.push_str("</Metadata>");
        }
        entries.push_str(&format!(
            "<Blob><Name>{}</Name><Properties><Creation-Time>{}</Creation-Time><Last-Modified>{}</Last-Modified><Etag>{}</Etag><Content-Length>{}</Content-Length><Content-Type>{}</Content-Type><Content-MD5>{}</Content-MD5><BlobType>BlockBlob</BlobType><AccessTier>Hot</AccessTier><LeaseStatus>unlocked</LeaseStatus><LeaseState>available</LeaseState><ServerEncrypted>true</ServerEncrypted></Properties>{meta}</Blob>",
            xml_escape(&name), m.created, m.modified, xml_escape(m.etag.trim_matches('"')), m.len, xml_escape(&m.content_type), m.content_md5
        ));
        count += 1;
    }
    let container = c.name.clone();
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><EnumerationResults ServiceEndpoint=\"{}/{}/\" ContainerName=\"{}\"><Prefix>{}</Prefix><Marker>{}</Marker><MaxResults>{max}</MaxResults>{}<Blobs>{entries}</Blobs><NextMarker>{}</NextMarker></EnumerationResults>",
        xml_escape(&st.arm_url),
        c.account,
        xml_escape(&container),
        xml_escape(&prefix),
        xml_escape(&marker),
        delimiter
            .as_ref()
            .map(|d| format!("<Delimiter>{}</Delimiter>", xml_escape(d)))
            .unwrap_or_default(),
        xml_escape(&next_marker)
    );
    Ok(answer(
        StatusCode::OK,
        Body::from(xml),
        &[("content-type", "application/xml".into())],
    ))
}

/// Evaluates conditional headers. `read` selects 304 for failed read conditions.
fn check_conditions(h: &HeaderMap, m: Option<&BlobMeta>, read: bool) -> Result<(), BlobError> {
    let failed = || {
        if read {
            err(
                StatusCode::NOT_MODIFIED,
                BlobCode::ConditionNotMet,
                "The condition specified using HTTP conditional header(s) is not met.",
            )
        } else {
            err(
                StatusCode::PRECONDITION_FAILED,
                BlobCode::ConditionNotMet,
                "The condition specified using HTTP conditional header(s) is not met.",
            )
        }
    };
    let precondition = || {
        err(
            StatusCode::PRECONDITION_FAILED,
            BlobCode::ConditionNotMet,
            "The condition specified using HTTP conditional header(s) is not met.",
        )
    };
    let tag_matches =
        |list: &str, tag: &str| list.split(',').map(str::trim).any(|t| t == "*" || t == tag);
    if let Some(im) = header(h, "if-match") {
        match m {
            Some(m) if tag_matches(im, &m.etag) => {}
            _ => return Err(precondition()),
        }
    }
    if let Some(inm) = header(h, "if-none-match")
        && let Some(m) = m
        && tag_matches(inm, &m.etag)
    {
        if inm.trim() == "*" && !read {
            return Err(err(
                StatusCode::CONFLICT,
                BlobCode::BlobAlreadyExists,
                "The specified blob already exists.",
            ));
        }
        return Err(failed());
    }
    if let Some(m) = m {
        if let Some(ims) =
            header(h, "if-modified-since").and_then(|d| httpdate::parse_http_date(d).ok())
            && let Ok(since) = ims.duration_since(std::time::UNIX_EPOCH)
            && m.modified_unix <= since.as_secs() as i64
        {
            return Err(failed());
        }
        if let Some(ius) =
            header(h, "if-unmodified-since").and_then(|d| httpdate::parse_http_date(d).ok())
            && let Ok(since) = ius.duration_since(std::time::UNIX_EPOCH)
            && m.modified_unix > since.as_secs() as i64
        {
            return Err(precondition());
        }
    }
    Ok(())
}

async fn put_blob(st: &Shared, b: &BlobRef, h: &HeaderMap, body: Bytes) -> BResult {
    container_exists(st, &b.container)?;
    match header(h, "x-ms-blob-type") {
        None => {
            return Err(err(
                StatusCode::BAD_REQUEST,
                BlobCode::MissingRequiredHeader,
                "An HTTP header that's mandatory for this request is not specified: x-ms-blob-type.",
            ));
        }
        Some("BlockBlob") => {}
        Some(other) => {
            return Err(err(
                StatusCode::NOT_IMPLEMENTED,
                BlobCode::NotImplemented,
                format!("the local cloud only implements BlockBlob, not {other}"),
            ));
        }
    }
    let md5 = B64.encode(md5::Md5::digest(&body));
    if let Some(given) = header(h, "content-md5")
        && given.trim() != md5
    {
        return Err(err(
            StatusCode::BAD_REQUEST,
            BlobCode::Md5Mismatch,
            "The MD5 value specified in the request did not match with the MD5 value calculated by the server.",
        ));
    }
    let existing = st
        .store
        .blob(&b.container.account, &b.container.name, &b.name);
    check_conditions(h, existing.as_ref(), false)?;
    let now = std::time::SystemTime::now();
    let modified = httpdate::fmt_http_date(now);
    let metadata: BTreeMap<String, String> = h
        .iter()
        .filter_map(|(k, v)| {
            k.as_str()
                .strip_prefix("x-ms-meta-")
                .map(|n| (n.to_string(), v.to_str().unwrap_or_default().to_string()))
        })
        .collect();
    let opt = |n: &str| header(h, n).map(str::to_string);
    let content_type = opt("x-ms-blob-content-type")
        .or_else(|| opt("content-type"))
        .unwrap_or_else(|| "application/octet-stream".into());
    let meta = BlobMeta {
        file: String::new(),
        len: body.len() as u64,
        etag: String::new(),
        content_type,
        content_md5: md5.clone(),
        content_encoding: opt("x-ms-blob-content-encoding").or_else(|| opt("content-encoding")),
        content_language: opt("x-ms-blob-content-language").or_else(|| opt("content-language")),
        cache_control: opt("x-ms-blob-cache-control"),
        content_disposition: opt("x-ms-blob-content-disposition"),
        metadata,
        created: existing
            .as_ref()
            .map(|e| e.created.clone())
            .unwrap_or_else(|| modified.clone()),
        modified: modified.clone(),
        modified_unix: now
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0),
    };
    // Conditions are evaluated again under the store's lock, so two conditional writers (e.g.
    // `If-None-Match: *` used as a lock) cannot both win.
    let tag = st
        .store
        .put_blob(b.key(), &body, meta, |m| check_conditions(h, m, false))
        .await
        .map_err(internal)??;
    Ok(answer(
        StatusCode::CREATED,
        Body::empty(),
        &[
            ("etag", tag),
            ("last-modified", modified),
            ("content-md5", md5),
            ("x-ms-request-server-encrypted", "true".into()),
        ],
    ))
}

fn parse_range(spec: &str, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(r) = spec.trim().strip_prefix("bytes=") else {
        return Err(());
    };
    let (a, b) = r.split_once('-').ok_or(())?;
    let start: u64 = a.trim().parse().map_err(|_| ())?;
    if start >= len {
        return Ok(None);
    }
    let end = if b.trim().is_empty() {
        len - 1
    } else {
        b.trim().parse::<u64>().map_err(|_| ())?.min(len - 1)
    };
    if end < start {
        return Err(());
    }
    Ok(Some((start, end)))
}

fn get_blob(st: &Shared, b: &BlobRef, h: &HeaderMap, head: bool) -> BResult {
    container_exists(st, &b.container)?;
    let Some(m) = st
        .store
        .blob(&b.container.account, &b.container.name, &b.name)
    else {
        return Err(blob_not_found());
    };
    check_conditions(h, Some(&m), true)?;
    let mut headers: Vec<(&'static str, String)> = vec![
        ("etag", m.etag.clone()),
        ("last-modified", m.modified.clone()),
        ("content-type", m.content_type.clone()),
        ("x-ms-blob-type", "BlockBlob".into()),
        ("x-ms-creation-time", m.created.clone()),
        ("x-ms-lease-state", "available".into()),
        ("x-ms-lease-status", "unlocked".into()),
        ("x-ms-server-encrypted", "true".into()),
        ("accept-ranges", "bytes".into()),
    ];
    for (k, v) in [
        ("content-encoding", &m.content_encoding),
        ("content-language", &m.content_language),
        ("cache-control", &m.cache_control),
        ("content-disposition", &m.content_disposition),
    ] {
        if let Some(v) = v {
            headers.push((k, v.clone()));
        }
    }
    let range = header(h, "x-ms-range").or_else(|| header(h, "range"));
    let bytes = if head {
        Vec::new()
    } else {
        st.store.read_blob_file(&m.file).map_err(internal)?
    };
    let mut resp = match range {
        Some(spec) => {
            let invalid = || {
                let mut e = err(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    BlobCode::InvalidRange,
                    "The range specified is invalid for the current size of the resource.",
                );
                e.headers
                    .push(("content-range", format!("bytes */{}", m.len)));
                e
            };
            let Some((s, e)) = parse_range(spec, m.len).map_err(|_| invalid())? else {
                return Err(invalid());
            };
            headers.push(("content-range", format!("bytes {s}-{e}/{}", m.len)));
            headers.push(("x-ms-blob-content-md5", m.content_md5.clone()));
            let part = if head {
                Vec::new()
            } else {
                bytes
                    .get(s as usize..=e as usize)
                    .map(<[u8]>::to_vec)
                    .unwrap_or_default()
            };
            let mut r = answer(StatusCode::PARTIAL_CONTENT, Body::from(part), &headers);
            if let Ok(v) = HeaderValue::from_str(&(e - s + 1).to_string()) {
                r.headers_mut().insert("content-length", v);
            }
            r
        }
        None => {
            headers.push(("content-md5", m.content_md5.clone()));
            let mut r = answer(StatusCode::OK, Body::from(bytes), &headers);
            if let Ok(v) = HeaderValue::from_str(&m.len.to_string()) {
                r.headers_mut().insert("content-length", v);
            }
            r
        }
    };
    for (k, v) in &m.metadata {
        if let (Ok(n), Ok(v)) = (
            axum::http::HeaderName::from_bytes(format!("x-ms-meta-{k}").as_bytes()),
            HeaderValue::from_str(v),
        ) {
            resp.headers_mut().insert(n, v);
        }
    }
    Ok(resp)
}

async fn delete_blob(st: &Shared, b: &BlobRef, h: &HeaderMap) -> BResult {
    container_exists(st, &b.container)?;
    st.store
        .delete_blob(b.key(), |m| match m {
            None => Err(blob_not_found()),
            // Checked under the store's lock, like writes.
            Some(m) => check_conditions(h, Some(m), false),
        })
        .await
        .map_err(internal)??;
    Ok(answer(
        StatusCode::ACCEPTED,
        Body::empty(),
        &[("x-ms-delete-type-permanent", "true".into())],
    ))
}

fn blob_not_found() -> BlobError {
    err(
        StatusCode::NOT_FOUND,
        BlobCode::BlobNotFound,
        "The specified blob does not exist.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-", 12), Ok(Some((0, 11))));
        assert_eq!(parse_range("bytes=0-33554431", 12), Ok(Some((0, 11))));
        assert_eq!(parse_range("bytes=3-5", 12), Ok(Some((3, 5))));
        assert_eq!(parse_range("bytes=12-", 12), Ok(None));
        assert!(parse_range("items=0-1", 12).is_err());
    }

    #[test]
    fn string_to_sign_canonicalises_headers_and_query() {
        let mut h = HeaderMap::new();
        h.insert("x-ms-version", HeaderValue::from_static("2025-11-05"));
        h.insert(
            "x-ms-date",
            HeaderValue::from_static("Tue, 04 Aug 2026 10:00:00 GMT"),
        );
        h.insert("content-length", HeaderValue::from_static("0"));
        let q = vec![
            ("restype".to_string(), "container".to_string()),
            ("comp".to_string(), "list".to_string()),
        ];
        let s = string_to_sign(&Method::GET, &h, "acct", "/c", &q);
        assert_eq!(
            s,
            "GET\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:Tue, 04 Aug 2026 10:00:00 GMT\nx-ms-version:2025-11-05\n/acct/c\ncomp:list\nrestype:container"
        );
    }
}
