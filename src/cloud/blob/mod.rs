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
//! authorisation ([`auth`]), then one handler per [`route::BlobRoute`] ([`containers`], [`blobs`],
//! [`lease`] for Lease Blob and the lease rule of every read and write, [`append`] for append blobs,
//! [`metadata`] for Set Blob Metadata; what a request asks of a blob, its conditional headers,
//! `Content-MD5` and metadata, in [`request`]; what properties and listings say of a blob's type
//! and lease, in [`properties`]); errors and their XML shape live in [`error`]. No child
//! imports this file.
mod append;
mod auth;
mod blobs;
mod containers;
mod error;
mod lease;
mod metadata;
mod properties;
pub(crate) mod raw_names;
mod request;
pub(crate) mod route;

use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::Response;

use super::faults::Injected;
use super::http::{MAX_BLOB_BODY, Query, header, injected_server_error, request_id_headers};
use super::state::CloudState;
use auth::{authenticate, authorize};
use blobs::{delete_blob, get_blob, put_blob, snapshot_blob};
use containers::{container_properties, create_container, delete_container, list_blobs};
use error::{BResult, BlobCode, BlobError, err};
use route::{BlobPath, BlobRoute};

const DEFAULT_VERSION: &str = "2025-11-05";

/// The `x-ms-version`s the blob service serves; any other is refused with 400 `InvalidHeaderValue`
/// naming the header. Sources: learn.microsoft.com rest/api/storageservices
/// versioning-for-the-azure-storage-services and previous-azure-storage-service-versions (the list of
/// supported versions), and the stable folders of Azure/azure-rest-api-specs
/// `specification/storage/data-plane/Microsoft.BlobStorage/stable/` for the versions after 2025-11-05.
const SERVED_VERSIONS: &[&str] = &[
    "2009-04-14",
    "2009-07-17",
    "2009-09-19",
    "2011-08-18",
    "2012-02-12",
    "2013-08-15",
    "2014-02-14",
    "2015-02-21",
    "2015-04-05",
    "2015-07-08",
    "2015-12-11",
    "2016-05-31",
    "2017-04-17",
    "2017-07-29",
    "2017-11-09",
    "2018-03-28",
    "2018-11-09",
    "2019-02-02",
    "2019-07-07",
    "2019-10-10",
    "2019-12-12",
    "2020-02-10",
    "2020-04-08",
    "2020-06-12",
    "2020-08-04",
    "2020-10-02",
    "2020-12-06",
    "2021-02-12",
    "2021-04-10",
    "2021-06-08",
    "2021-08-06",
    "2021-10-04",
    "2021-12-02",
    "2022-11-02",
    "2023-01-03",
    "2023-08-03",
    "2023-11-03",
    "2024-02-04",
    "2024-05-04",
    "2024-08-04",
    "2024-11-04",
    "2025-01-05",
    "2025-05-05",
    "2025-07-05",
    "2025-11-05",
    "2026-02-06",
    "2026-04-06",
    "2026-06-06",
    "2026-10-06",
    "2026-12-06",
];

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
    match st.inject(req.headers()).await {
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
    let path = BlobPath::parse(&raw_path).map_err(|e| {
        err(
            StatusCode::BAD_REQUEST,
            BlobCode::InvalidResourceName,
            format!("The specified resource name contains invalid characters: {e}."),
        )
    })?;
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
    match header(&parts.headers, "x-ms-version") {
        None => {
            return Err(err(
                StatusCode::BAD_REQUEST,
                BlobCode::MissingRequiredHeader,
                "An HTTP header that's mandatory for this request is not specified: x-ms-version.",
            ));
        }
        Some(v) if !SERVED_VERSIONS.contains(&v) => {
            return Err(BlobError::invalid_header("x-ms-version", v));
        }
        Some(_) => {}
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
    let raw = parts
        .extensions
        .get::<raw_names::RawMetaNames>()
        .cloned()
        .unwrap_or_default();
    match BlobRoute::parse(&parts.method, path, &query) {
        BlobRoute::CreateContainer(c) => create_container(st, &c.at(&acct_key), h).await,
        BlobRoute::DeleteContainer(c) => delete_container(st, &c.at(&acct_key)).await,
        BlobRoute::ContainerProperties(c) => container_properties(st, &c.at(&acct_key)),
        BlobRoute::ListBlobs(c) => list_blobs(st, &c.at(&acct_key), &query),
        BlobRoute::PutBlob(b) => put_blob(st, &b.at(&acct_key), h, &raw, body).await,
        BlobRoute::SnapshotBlob(b) => snapshot_blob(st, &b.at(&acct_key), h).await,
        BlobRoute::GetBlob {
            blob,
            head,
            snapshot,
        } => get_blob(st, &blob.at(&acct_key), h, head, snapshot.as_deref()),
        BlobRoute::DeleteBlob { blob, snapshot } => {
            delete_blob(st, &blob.at(&acct_key), h, snapshot.as_deref()).await
        }
        BlobRoute::LeaseBlob(b) => lease::lease_blob(st, &b.at(&acct_key), h).await,
        BlobRoute::AppendBlock(b) => append::append_block(st, &b.at(&acct_key), h, body).await,
        BlobRoute::SetBlobMetadata(b) => {
            metadata::set_blob_metadata(st, &b.at(&acct_key), h, &raw).await
        }
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
