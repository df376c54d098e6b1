//! The blob data plane (contract section 5), path-style: `https://127.0.0.1:{port}/{account}/...`.
//! Authenticates Bearer tokens (storage audience) and SharedKey signatures, authorises Bearer callers by
//! blob data roles on the container, account or any parent scope (ARM roles do not count), and
//! answers in the service's XML error shape with `x-ms-error-code`.
//!
//! It never reads or writes ARM state beyond the container records and the account's keys. Routing
//! lives in [`route`]; the handlers take a typed container or blob and use the store's named
//! operations (a container's blobs go with it inside the store, never here).
//!
//! This file only wires the layer: fault injection, the account lookup, authentication and
//! authorisation ([`auth`]), then one handler per [`route::BlobRoute`] ([`containers`], [`blobs`]);
//! errors and their XML shape live in [`error`]. No child imports this file.
mod auth;
mod blobs;
mod containers;
mod error;
pub(crate) mod route;

use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::Response;

use super::faults::Injected;
use super::http::{MAX_BLOB_BODY, Query, header, injected_server_error, request_id_headers};
use super::state::CloudState;
use auth::{authenticate, authorize};
use blobs::{delete_blob, get_blob, put_blob};
use containers::{container_properties, create_container, delete_container, list_blobs};
use error::{BResult, BlobCode, err};
use route::{BlobPath, BlobRoute};

const DEFAULT_VERSION: &str = "2025-11-05";

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
    let write = !matches!(parts.method, Method::GET | Method::HEAD);
    authorize(
        st,
        &caller,
        &parts.headers,
        &acct_key,
        path.container.as_deref(),
        write,
    )?;
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
