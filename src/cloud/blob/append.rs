//! Append blobs (contract section 5): creating one (Put Blob with `x-ms-blob-type: AppendBlob`, no
//! body) and Append Block (`PUT ?comp=appendblock`) with its position and size conditions (what Get
//! Blob Properties and List Blobs say of a blob's type is in `properties`).
//!
//! A block is appended by rewriting the blob's bytes as old + new in one store transaction, decided
//! on the record found under the store's lock (a writer that raced in between makes the append read
//! again), so concurrent appenders never lose a block and `x-ms-blob-condition-appendpos` is exact.
//! Handlers only: they never authenticate.
//!
//! Sources: Azure/azure-rest-api-specs
//! `specification/storage/data-plane/Microsoft.BlobStorage/stable/2025-11-05/blob.json` (operations
//! AppendBlob_Create and AppendBlob_AppendBlock); learn.microsoft.com rest/api/storageservices
//! `append-block` and `blob-service-error-codes`; recorded answers in Azure/azure-sdk-for-python
//! `sdk/storage/azure-storage-blob/tests/recordings/test_append_blob.pyTestStorageAppendBlob*.json`.
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode};

use super::containers::container_exists;
use super::error::{BResult, BlobCode, BlobError, blob_not_found, err, internal};
use super::lease;
use super::request::{check_conditions, checked_md5};
use super::route::BlobRef;
use crate::cloud::http::{answer, header};
use crate::cloud::state::Shared;
use crate::cloud::store::{BlobMeta, BlobType, now_ms};

/// The most blocks an append blob commits: 50,000 (learn.microsoft.com append-block, Remarks: "Each
/// block in an append blob can be a different size... an append blob can include up to 50,000
/// blocks"; beyond it 409 `BlockCountExceedsLimit`, blob-service-error-codes).
pub(crate) const MAX_BLOCKS: u32 = 50_000;

/// The largest block, 100 MiB from version 2022-11-02, 4 MiB before (learn.microsoft.com
/// append-block, request headers, `Content-Length`); a larger one is 413 `RequestBodyTooLarge`
/// (common-rest-api-error-codes).
fn max_block(version: &str) -> usize {
    if version >= "2022-11-02" {
        100 * 1024 * 1024
    } else {
        4 * 1024 * 1024
    }
}

/// How many times an append reads again after another writer changed the blob between its read and
/// its commit, before answering 503 `ServerBusy` (which clients retry).
const RACE_RETRIES: usize = 32;

/// The type of a new blob with `x-ms-blob-type: AppendBlob`: its Put Blob has no body
/// (AppendBlob_Create: `Content-Length` is required with the one value 0). Another length is 400
/// `InvalidHeaderValue` naming the header (Azurite answers 400 `InvalidOperation`; the local cloud
/// names the header the published definition constrains).
pub(super) fn new_append_blob(body: &Bytes) -> Result<BlobType, BlobError> {
    if body.is_empty() {
        Ok(BlobType::AppendBlob)
    } else {
        Err(BlobError::invalid_header(
            "Content-Length",
            &body.len().to_string(),
        ))
    }
}

/// An integer condition header, or 400 `InvalidHeaderValue`.
fn number(h: &HeaderMap, name: &'static str) -> Result<Option<u64>, BlobError> {
    match header(h, name) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| BlobError::invalid_header(name, v)),
    }
}

/// The append conditions of one block of `len` bytes on the blob `m`: an append blob (else 409
/// `InvalidBlobType`), below the block limit (else 409 `BlockCountExceedsLimit`), at the position
/// `x-ms-blob-condition-appendpos` names (else 412 `AppendPositionConditionNotMet`) and within
/// `x-ms-blob-condition-maxsize` (else 412 `MaxBlobSizeConditionNotMet`) (blob.json
/// AppendBlob_AppendBlock, the two headers' descriptions; blob-service-error-codes).
pub(crate) fn check_append(
    m: &BlobMeta,
    len: u64,
    appendpos: Option<u64>,
    maxsize: Option<u64>,
) -> Result<(), BlobError> {
    if m.blob_type != BlobType::AppendBlob {
        return Err(err(
            StatusCode::CONFLICT,
            BlobCode::InvalidBlobType,
            "The blob type is invalid for this operation.",
        ));
    }
    if m.committed_blocks >= MAX_BLOCKS {
        return Err(err(
            StatusCode::CONFLICT,
            BlobCode::BlockCountExceedsLimit,
            "The committed block count cannot exceed the maximum limit of 50,000 blocks.",
        ));
    }
    if appendpos.is_some_and(|p| p != m.len) {
        return Err(err(
            StatusCode::PRECONDITION_FAILED,
            BlobCode::AppendPositionConditionNotMet,
            "The append position condition specified was not met.",
        ));
    }
    if maxsize.is_some_and(|max| m.len + len > max) {
        return Err(err(
            StatusCode::PRECONDITION_FAILED,
            BlobCode::MaxBlobSizeConditionNotMet,
            "The max blob size condition specified was not met.",
        ));
    }
    Ok(())
}

/// Append Block: `PUT /{account}/{container}/{blob}?comp=appendblock`. `Content-Length` is required
/// (411 without it, as Put Blob) and a block is not empty (400 `InvalidHeaderValue` for 0, as Azurite
/// answers); `Content-MD5` is checked as Put Blob checks it; then, under the store's lock, the
/// conditional headers, the lease ([`lease::check_write`]) and [`check_append`]. Answers 201 with the
/// new ETag, the offset the block was committed at and the committed block count (blob.json
/// AppendBlob_AppendBlock response headers `x-ms-blob-append-offset`,
/// `x-ms-blob-committed-block-count`).
pub(super) async fn append_block(st: &Shared, b: &BlobRef, h: &HeaderMap, body: Bytes) -> BResult {
    if header(h, "content-length").is_none() {
        return Err(err(
            StatusCode::LENGTH_REQUIRED,
            BlobCode::MissingContentLengthHeader,
            "The Content-Length header was not specified.",
        ));
    }
    if header(h, "x-ms-copy-source").is_some() {
        return Err(err(
            StatusCode::NOT_IMPLEMENTED,
            BlobCode::NotImplemented,
            "the local cloud does not implement Append Block From URL",
        ));
    }
    if body.is_empty() {
        return Err(BlobError::invalid_header("Content-Length", "0"));
    }
    if body.len() > max_block(header(h, "x-ms-version").unwrap_or_default()) {
        return Err(err(
            StatusCode::PAYLOAD_TOO_LARGE,
            BlobCode::RequestBodyTooLarge,
            "The request body is too large and exceeds the maximum permissible limit.",
        ));
    }
    let md5 = checked_md5(h, &body)?;
    let appendpos = number(h, "x-ms-blob-condition-appendpos")?;
    let maxsize = number(h, "x-ms-blob-condition-maxsize")?;
    container_exists(st, &b.container)?;
    let len = body.len() as u64;
    // Every refusal is decided on the record under the lock; this check before reading the bytes
    // only spares reading them for a request that fails anyway.
    let decide = |m: Option<&BlobMeta>, now: u64| -> Result<(BlobMeta, u64), BlobError> {
        let m = m.ok_or_else(blob_not_found)?;
        check_conditions(h, Some(m), false)?;
        let keep = lease::check_write(h, Some(m), now)?;
        check_append(m, len, appendpos, maxsize)?;
        let at = std::time::SystemTime::now();
        let next = BlobMeta {
            len: m.len + len,
            committed_blocks: m.committed_blocks + 1,
            modified: httpdate::fmt_http_date(at),
            modified_unix: at
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0),
            lease: keep,
            ..m.clone()
        };
        Ok((next, m.len))
    };
    for _ in 0..RACE_RETRIES {
        let read = st
            .store
            .blob(&b.container.account, &b.container.name, &b.name);
        decide(read.as_ref(), now_ms())?;
        let Some(read) = read else {
            return Err(blob_not_found());
        };
        let mut bytes = st.store.read_blob_file(&read.file).map_err(internal)?;
        bytes.extend_from_slice(&body);
        let mut offset = 0;
        let stored = st
            .store
            .rewrite_blob(b.key(), &bytes, |m| {
                if m.is_some_and(|m| m.file != read.file) {
                    return Ok(None);
                }
                let (next, at) = decide(m, now_ms())?;
                offset = at;
                Ok(Some(next))
            })
            .await
            .map_err(internal)??;
        if let Some(m) = stored {
            return Ok(answer(
                StatusCode::CREATED,
                Body::empty(),
                &[
                    ("etag", m.etag.clone()),
                    ("last-modified", m.modified.clone()),
                    ("content-md5", md5),
                    ("x-ms-blob-append-offset", offset.to_string()),
                    (
                        "x-ms-blob-committed-block-count",
                        m.committed_blocks.to_string(),
                    ),
                    ("x-ms-request-server-encrypted", "true".into()),
                ],
            ));
        }
    }
    Err(err(
        StatusCode::SERVICE_UNAVAILABLE,
        BlobCode::ServerBusy,
        "The server is busy: the blob changed under every attempt to append; retry the request.",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append_blob(len: u64, blocks: u32) -> BlobMeta {
        BlobMeta {
            len,
            blob_type: BlobType::AppendBlob,
            committed_blocks: blocks,
            ..Default::default()
        }
    }

    fn code(r: Result<(), BlobError>) -> Option<(u16, &'static str)> {
        r.err().map(|e| (e.status.as_u16(), e.code.as_str()))
    }

    /// The 50,000th block is the last one an append blob takes; the next is 409
    /// `BlockCountExceedsLimit` (checked here rather than by 50,000 requests).
    #[test]
    fn the_block_limit_is_50000() {
        assert_eq!(
            code(check_append(
                &append_blob(10, MAX_BLOCKS - 1),
                1,
                None,
                None
            )),
            None
        );
        assert_eq!(
            code(check_append(&append_blob(10, MAX_BLOCKS), 1, None, None)),
            Some((409, "BlockCountExceedsLimit"))
        );
    }

    #[test]
    fn position_size_and_type_conditions() {
        let m = append_blob(10, 2);
        assert_eq!(code(check_append(&m, 5, Some(10), Some(15))), None);
        assert_eq!(
            code(check_append(&m, 5, Some(9), None)),
            Some((412, "AppendPositionConditionNotMet"))
        );
        assert_eq!(
            code(check_append(&m, 6, None, Some(15))),
            Some((412, "MaxBlobSizeConditionNotMet"))
        );
        let block = BlobMeta {
            blob_type: BlobType::BlockBlob,
            ..m
        };
        assert_eq!(
            code(check_append(&block, 1, None, None)),
            Some((409, "InvalidBlobType"))
        );
        assert_eq!(max_block("2021-12-02"), 4 * 1024 * 1024);
        assert_eq!(max_block("2025-11-05"), 100 * 1024 * 1024);
    }
}
