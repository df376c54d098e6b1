//! Set Blob Metadata (contract section 5): `PUT /{account}/{container}/{blob}?comp=metadata` replaces
//! a blob's `x-ms-meta-*` pairs (none sent: none kept) and gives it a new ETag, its bytes unchanged.
//! A lock blob records who holds its lease this way, so it is allowed under a lease to its holder.
//!
//! Handlers only: they never authenticate.
//!
//! Source: Azure/azure-rest-api-specs
//! `specification/storage/data-plane/Microsoft.BlobStorage/stable/2025-11-05/blob.json`, operation
//! Blob_SetMetadata (parameters x-ms-meta, x-ms-lease-id and the conditional headers; response 200
//! with ETag, Last-Modified and x-ms-request-server-encrypted); learn.microsoft.com
//! rest/api/storageservices lease-blob (Set Blob Metadata needs the active lease id).
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};

use super::containers::container_exists;
use super::error::{BResult, blob_not_found, internal};
use super::lease;
use super::raw_names::RawMetaNames;
use super::request::{check_conditions, request_metadata};
use super::route::BlobRef;
use crate::cloud::http::answer;
use crate::cloud::state::Shared;
use crate::cloud::store::blob_writes::RecordChange;
use crate::cloud::store::{BlobMeta, now_ms};

pub(super) async fn set_blob_metadata(
    st: &Shared,
    b: &BlobRef,
    h: &HeaderMap,
    raw: &RawMetaNames,
) -> BResult {
    container_exists(st, &b.container)?;
    let metadata = request_metadata(h, raw);
    let at = std::time::SystemTime::now();
    let m = st
        .store
        .change_blob(b.key(), |m| {
            let m = m.ok_or_else(blob_not_found)?;
            check_conditions(h, Some(m), false)?;
            let lease = lease::check_write(h, Some(m), now_ms())?;
            Ok(RecordChange::Modified(BlobMeta {
                metadata,
                lease,
                modified: httpdate::fmt_http_date(at),
                modified_unix: at
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or(0),
                ..m.clone()
            }))
        })
        .await
        .map_err(internal)??;
    Ok(answer(
        StatusCode::OK,
        Body::empty(),
        &[
            ("etag", m.etag),
            ("last-modified", m.modified),
            ("x-ms-request-server-encrypted", "true".into()),
        ],
    ))
}
