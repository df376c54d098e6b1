//! The blob operations of the blob service: Put Blob (a block blob, or the empty append blob that
//! `append` then grows), Get Blob (with ranges, of the blob or of a snapshot), Get Blob Properties,
//! Delete Blob and snapshots (create, read, delete), with the conditional headers and the lease rule
//! (`lease::check_write`, `lease::check_read`) evaluated under the store's lock (contract section 5),
//! on a typed [`BlobRef`].
//!
//! Handlers only: they never authenticate and never touch containers beyond checking one exists.
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode};

use super::append;
use super::containers::container_exists;
use super::error::{BResult, BlobCode, BlobError, blob_not_found, err, internal};
use super::lease;
use super::properties;
use super::raw_names::{CasedHeaderNames, RawMetaNames};
use super::request::{check_conditions, checked_md5, request_metadata};
use super::route::BlobRef;
use crate::cloud::http::{answer, header};
use crate::cloud::state::Shared;
use crate::cloud::store::ops::DeleteSnapshots;
use crate::cloud::store::{BlobMeta, BlobType, now_ms};

pub(super) async fn put_blob(
    st: &Shared,
    b: &BlobRef,
    h: &HeaderMap,
    raw: &RawMetaNames,
    body: Bytes,
) -> BResult {
    // Put Blob's `Content-Length` is required, 0 included (Azure/azure-rest-api-specs
    // specification/storage/data-plane/Microsoft.BlobStorage/stable/2025-11-05/blob.json, operation
    // BlockBlob_Upload, parameter ContentLength `required: true`); without it the service answers 411
    // `MissingContentLengthHeader` (learn.microsoft.com rest/api/storageservices
    // common-rest-api-error-codes: "Length Required (411) The Content-Length header was not specified").
    if header(h, "content-length").is_none() {
        return Err(err(
            StatusCode::LENGTH_REQUIRED,
            BlobCode::MissingContentLengthHeader,
            "The Content-Length header was not specified.",
        ));
    }
    container_exists(st, &b.container)?;
    let blob_type = match header(h, "x-ms-blob-type") {
        None => {
            return Err(err(
                StatusCode::BAD_REQUEST,
                BlobCode::MissingRequiredHeader,
                "An HTTP header that's mandatory for this request is not specified.",
            )
            .with_detail("HeaderName", "x-ms-blob-type"));
        }
        Some("BlockBlob") => BlobType::BlockBlob,
        Some("AppendBlob") => append::new_append_blob(&body)?,
        // The blob types of the service (blob.json, definition BlobType: BlockBlob, PageBlob,
        // AppendBlob): the local cloud stores block and append blobs.
        Some(other @ "PageBlob") => {
            return Err(err(
                StatusCode::NOT_IMPLEMENTED,
                BlobCode::NotImplemented,
                format!("the local cloud implements BlockBlob and AppendBlob, not {other}"),
            ));
        }
        // Any other value is a malformed header: 400, as Azure and Azurite answer.
        Some(other) => return Err(BlobError::invalid_header("x-ms-blob-type", other)),
    };
    let md5 = checked_md5(h, &body)?;
    let existing = st
        .store
        .blob(&b.container.account, &b.container.name, &b.name);
    check_conditions(h, existing.as_ref(), false)?;
    let now = std::time::SystemTime::now();
    let modified = httpdate::fmt_http_date(now);
    let metadata = request_metadata(h, raw);
    let opt = |n: &str| header(h, n).map(str::to_string);
    let content_type = opt("x-ms-blob-content-type")
        .or_else(|| opt("content-type"))
        .unwrap_or_else(|| "application/octet-stream".into());
    // An append blob has no MD5 of its own: its blocks come later (a recorded Get Blob Properties of
    // an append blob carries no Content-MD5: test_append_blob.pyTestStorageAppendBlobtest_create_blob_with_lease_id.json).
    let stored_md5 = match blob_type {
        BlobType::BlockBlob => md5.clone(),
        BlobType::AppendBlob => String::new(),
    };
    let meta = BlobMeta {
        file: String::new(),
        len: body.len() as u64,
        etag: String::new(),
        content_type,
        content_md5: stored_md5.clone(),
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
        blob_type,
        committed_blocks: 0,
        lease: None,
    };
    // Conditions and the lease are evaluated again under the store's lock, so two conditional
    // writers (e.g. `If-None-Match: *` used as a lock) cannot both win; a writer holding the lease
    // keeps it on the new blob.
    let tag = st
        .store
        .put_blob(b.key(), &body, meta, |m| {
            check_conditions(h, m, false)?;
            lease::check_write(h, m, now_ms())
        })
        .await
        .map_err(internal)??;
    let mut headers = vec![
        ("etag", tag),
        ("last-modified", modified),
        ("x-ms-request-server-encrypted", "true".into()),
    ];
    if !stored_md5.is_empty() {
        headers.push(("content-md5", stored_md5));
    }
    Ok(answer(StatusCode::CREATED, Body::empty(), &headers))
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

/// Get Blob and Get Blob Properties, of the blob or of one of its snapshots (`?snapshot=`, the time
/// Create Snapshot answered in `x-ms-snapshot`; blob.json, parameter `snapshot` of Blob_Download).
pub(super) fn get_blob(
    st: &Shared,
    b: &BlobRef,
    h: &HeaderMap,
    head: bool,
    snapshot: Option<&str>,
) -> BResult {
    container_exists(st, &b.container)?;
    let found = match snapshot {
        None => st
            .store
            .blob(&b.container.account, &b.container.name, &b.name),
        Some(s) => st.store.blob_snapshot(b.key(), s),
    };
    let Some(m) = found else {
        return Err(blob_not_found());
    };
    check_conditions(h, Some(&m), true)?;
    let now = now_ms();
    lease::check_read(h, &m, now)?;
    let mut headers: Vec<(&'static str, String)> = vec![
        ("etag", m.etag.clone()),
        ("last-modified", m.modified.clone()),
        ("content-type", m.content_type.clone()),
        ("x-ms-creation-time", m.created.clone()),
        ("x-ms-server-encrypted", "true".into()),
        ("accept-ranges", "bytes".into()),
    ];
    headers.extend(properties::type_headers(&m));
    headers.extend(properties::lease_headers(&m, now));
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
            if !m.content_md5.is_empty() {
                headers.push(("content-md5", m.content_md5.clone()));
            }
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
    // The HTTP stack writes header names lowercase; `raw_names` gives these their stored case.
    let cased: Vec<String> = m
        .metadata
        .keys()
        .filter(|k| k.bytes().any(|b| b.is_ascii_uppercase()))
        .map(|k| format!("x-ms-meta-{k}"))
        .collect();
    if !cased.is_empty() {
        resp.extensions_mut().insert(CasedHeaderNames(cased));
    }
    Ok(resp)
}

/// Create Snapshot: a read-only copy of the blob as it is now, named by the time answered in
/// `x-ms-snapshot` (201, with the blob's ETag and Last-Modified; recorded in Azure/azure-sdk-for-python
/// sdk/storage/azure-storage-blob/tests/recordings/test_common_blob.test_delete_blob_with_snapshots.yaml,
/// the `comp=snapshot` request; operation `comp=snapshot` of Azure/azure-rest-api-specs
/// specification/storage/data-plane/Microsoft.BlobStorage/stable/2025-11-05/blob.json).
pub(super) async fn snapshot_blob(st: &Shared, b: &BlobRef, h: &HeaderMap) -> BResult {
    container_exists(st, &b.container)?;
    // The bytes are copied outside the store's lock; a write in between changes the ETag, and the
    // blob is then read again.
    for _ in 0..8 {
        let Some(m) = st
            .store
            .blob(&b.container.account, &b.container.name, &b.name)
        else {
            return Err(blob_not_found());
        };
        check_conditions(h, Some(&m), false)?;
        let bytes = st.store.read_blob_file(&m.file).map_err(internal)?;
        if let Some(snapshot) = st
            .store
            .snapshot_blob(b.key(), &m, &bytes)
            .await
            .map_err(internal)?
        {
            return Ok(answer(
                StatusCode::CREATED,
                Body::empty(),
                &[
                    ("etag", m.etag),
                    ("last-modified", m.modified),
                    ("x-ms-snapshot", snapshot),
                    ("x-ms-request-server-encrypted", "false".into()),
                ],
            ));
        }
    }
    Err(err(
        StatusCode::SERVICE_UNAVAILABLE,
        BlobCode::ServerBusy,
        "The blob kept changing while its snapshot was taken; retry.",
    ))
}

/// Delete Blob: the blob, or one snapshot of it (`?snapshot=`). For the blob, `x-ms-delete-snapshots`
/// says what happens to its snapshots: `include` deletes them with it, `only` deletes them alone, and
/// without the header a blob that has snapshots is refused with 409 `SnapshotsPresent`; the header on
/// a request for a snapshot is 400 `InvalidOperation` (blob.json, Blob_Delete parameter
/// `x-ms-delete-snapshots`, enum `include`/`only`; learn.microsoft.com rest/api/storageservices
/// blob-service-error-codes, `SnapshotsPresent` 409 "This operation is not permitted while the blob has
/// snapshots." and `InvalidOperation` 400 "Invalid operation against a blob snapshot."; Azure/Azurite
/// src/blob/persistence/LokiBlobMetadataStore.ts, `deleteBlob`).
pub(super) async fn delete_blob(
    st: &Shared,
    b: &BlobRef,
    h: &HeaderMap,
    snapshot: Option<&str>,
) -> BResult {
    container_exists(st, &b.container)?;
    let mode = header(h, "x-ms-delete-snapshots");
    if let Some(snapshot) = snapshot {
        if mode.is_some() {
            return Err(err(
                StatusCode::BAD_REQUEST,
                BlobCode::InvalidOperation,
                "Invalid operation against a blob snapshot.",
            ));
        }
        st.store
            .delete_blob_snapshot(b.key(), snapshot, |m| match m {
                None => Err(blob_not_found()),
                Some(m) => check_conditions(h, Some(m), false),
            })
            .await
            .map_err(internal)??;
    } else {
        let mode = match mode {
            None => DeleteSnapshots::None,
            Some("include") => DeleteSnapshots::Include,
            Some("only") => DeleteSnapshots::Only,
            Some(other) => return Err(BlobError::invalid_header("x-ms-delete-snapshots", other)),
        };
        st.store
            .delete_blob(b.key(), mode, |m, snapshots| match m {
                None => Err(blob_not_found()),
                Some(_) if mode == DeleteSnapshots::None && snapshots > 0 => Err(err(
                    StatusCode::CONFLICT,
                    BlobCode::SnapshotsPresent,
                    "This operation is not permitted while the blob has snapshots.",
                )),
                // Checked under the store's lock, like writes; a leased blob is deleted only by its
                // holder (Lease Blob: Delete Blob needs the active lease id).
                Some(m) => {
                    check_conditions(h, Some(m), false)?;
                    lease::check_write(h, Some(m), now_ms()).map(drop)
                }
            })
            .await
            .map_err(internal)??;
    }
    Ok(answer(
        StatusCode::ACCEPTED,
        Body::empty(),
        &[("x-ms-delete-type-permanent", "true".into())],
    ))
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
}
