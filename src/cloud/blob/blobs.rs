//! The block-blob operations of the blob service: put, get (with ranges), head, delete and snapshots
//! (create, read, delete), with the conditional headers evaluated under the store's lock (contract
//! section 5), on a typed [`BlobRef`].
//!
//! Handlers only: they never authenticate and never touch containers beyond checking one exists.
use std::collections::BTreeMap;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use md5::Digest;

use super::containers::container_exists;
use super::error::{BResult, BlobCode, BlobError, blob_not_found, err, internal};
use super::raw_names::{CasedHeaderNames, RawMetaNames};
use super::route::BlobRef;
use crate::cloud::http::{answer, header};
use crate::cloud::state::Shared;
use crate::cloud::store::BlobMeta;
use crate::cloud::store::ops::DeleteSnapshots;

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
    match header(h, "x-ms-blob-type") {
        None => {
            return Err(err(
                StatusCode::BAD_REQUEST,
                BlobCode::MissingRequiredHeader,
                "An HTTP header that's mandatory for this request is not specified.",
            )
            .with_detail("HeaderName", "x-ms-blob-type"));
        }
        Some("BlockBlob") => {}
        // The blob types of the service (blob.json, definition BlobType: BlockBlob, PageBlob,
        // AppendBlob): the local cloud stores block blobs only.
        Some(other @ ("PageBlob" | "AppendBlob")) => {
            return Err(err(
                StatusCode::NOT_IMPLEMENTED,
                BlobCode::NotImplemented,
                format!("the local cloud only implements BlockBlob, not {other}"),
            ));
        }
        // Any other value is a malformed header: 400, as Azure and Azurite answer.
        Some(other) => return Err(BlobError::invalid_header("x-ms-blob-type", other)),
    }
    let md5 = B64.encode(md5::Md5::digest(&body));
    if let Some(given) = header(h, "content-md5") {
        // A Content-MD5 that is not 16 bytes in base64 is 400 `InvalidMd5`; a well-formed one that
        // differs is 400 `Md5Mismatch` naming both values (learn.microsoft.com rest/api/storageservices
        // common-rest-api-error-codes; the `<UserSpecifiedMd5>`/`<ServerCalculatedMd5>` elements as in
        // recorded service answers of the Azure SDKs' storage tests).
        if B64.decode(given.trim()).map(|d| d.len()) != Ok(16) {
            return Err(err(
                StatusCode::BAD_REQUEST,
                BlobCode::InvalidMd5,
                "The MD5 value specified in the request is invalid. The MD5 value must be 128 bits and Base64-encoded.",
            ));
        }
        if given.trim() != md5 {
            return Err(err(
                StatusCode::BAD_REQUEST,
                BlobCode::Md5Mismatch,
                "The MD5 value specified in the request did not match with the MD5 value calculated by the server.",
            )
            .with_detail("UserSpecifiedMd5", given.trim())
            .with_detail("ServerCalculatedMd5", md5));
        }
    }
    let existing = st
        .store
        .blob(&b.container.account, &b.container.name, &b.name);
    check_conditions(h, existing.as_ref(), false)?;
    let now = std::time::SystemTime::now();
    let modified = httpdate::fmt_http_date(now);
    // Metadata names keep the case they were sent with (see `raw_names`).
    let metadata: BTreeMap<String, String> = h
        .iter()
        .filter_map(|(k, v)| {
            k.as_str().strip_prefix("x-ms-meta-").map(|n| {
                (
                    raw.metadata_name(n),
                    v.to_str().unwrap_or_default().to_string(),
                )
            })
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
    let mut headers: Vec<(&'static str, String)> = vec![
        ("etag", m.etag.clone()),
        ("last-modified", m.modified.clone()),
        ("content-type", m.content_type.clone()),
        ("x-ms-blob-type", "BlockBlob".into()),
        ("x-ms-creation-time", m.created.clone()),
        ("x-ms-lease-state", "available".into()),
        ("x-ms-lease-status", "unlocked".into()),
        ("x-ms-server-encrypted", "true".into()),
        // Every block blob is on the account's default tier (blob.json, Blob_GetProperties response
        // headers x-ms-access-tier and x-ms-access-tier-inferred).
        ("x-ms-access-tier", "Hot".into()),
        ("x-ms-access-tier-inferred", "true".into()),
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
                // Checked under the store's lock, like writes.
                Some(m) => check_conditions(h, Some(m), false),
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
