//! What a blob request asks besides its route: its conditional headers (`If-Match`, `If-None-Match`,
//! `If-Modified-Since`, `If-Unmodified-Since`) judged against a blob's record, its `Content-MD5`
//! checked against its body, and its `x-ms-meta-*` pairs with their names as sent. Shared by the
//! handlers of `blobs`, `append`, `lease` and `metadata`.
//!
//! Pure functions of the request and a record: it never reads the store or decides a route.
use std::collections::BTreeMap;

use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use md5::Digest;

use super::error::{BlobCode, BlobError, err};
use super::raw_names::RawMetaNames;
use crate::cloud::http::header;
use crate::cloud::store::BlobMeta;

/// Evaluates conditional headers. `read` selects 304 for failed read conditions.
pub(super) fn check_conditions(
    h: &HeaderMap,
    m: Option<&BlobMeta>,
    read: bool,
) -> Result<(), BlobError> {
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

/// The `x-ms-meta-*` headers of a request, their names in the case they were sent with (see
/// `raw_names`).
pub(super) fn request_metadata(h: &HeaderMap, raw: &RawMetaNames) -> BTreeMap<String, String> {
    h.iter()
        .filter_map(|(k, v)| {
            k.as_str().strip_prefix("x-ms-meta-").map(|n| {
                (
                    raw.metadata_name(n),
                    v.to_str().unwrap_or_default().to_string(),
                )
            })
        })
        .collect()
}

/// The base64 MD5 of `body`, after checking the request's `Content-MD5` against it.
pub(super) fn checked_md5(h: &HeaderMap, body: &[u8]) -> Result<String, BlobError> {
    let md5 = B64.encode(md5::Md5::digest(body));
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
    Ok(md5)
}
