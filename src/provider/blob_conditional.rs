//! Conditional blob calls, the storage primitives a shared remote state stands on: blob leases
//! (acquire, renew, change, release, break), append blobs (create, append a block at a known
//! position), ETag-guarded writes (`If-Match`, `If-None-Match: *`) that return the new ETag, and Set
//! Blob Metadata under a lease. Every refusal the service answers with 409 or 412 is mapped to a
//! [`BlobRefusal`] the caller can act on: a lost race ([`BlobRefusal::Changed`]), a lease someone
//! else holds (with what the blob's metadata says of the holder, when it can be read), a lease of the
//! caller's that is gone.
//!
//! A call that goes out again after its answer was lost (the pipeline retries a PUT after a transport
//! error or a 5xx) may meet its own first write: a retried `If-None-Match: *` then answers
//! [`BlobRefusal::Changed`], a retried append at a position [`BlobRefusal::AppendPosition`]. Callers
//! that must tell the two apart read the blob back. An append without a position is sent once only.
//!
//! Sources: Azure/azure-rest-api-specs
//! `specification/storage/data-plane/Microsoft.BlobStorage/stable/2025-11-05/blob.json` (Blob_*Lease,
//! AppendBlob_Create, AppendBlob_AppendBlock, BlockBlob_Upload, Blob_SetMetadata) and
//! learn.microsoft.com rest/api/storageservices `lease-blob`, `blob-service-error-codes`.
//!
//! Like `blob`, it never logs a body or a key.
use std::collections::BTreeMap;

use bytes::Bytes;
use reqwest::Method;

use super::blob::{BlobClient, BlobProperties, content_md5, properties};
use super::error::ProviderError;
use super::pipeline::{HttpRequest, HttpResponse};

/// How long a lease lasts: 15 to 60 seconds, or until released or broken (blob.json
/// Blob_AcquireLease, `x-ms-lease-duration`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseDuration {
    Seconds(u32),
    Infinite,
}

impl LeaseDuration {
    fn header(self) -> Result<String, ProviderError> {
        match self {
            LeaseDuration::Infinite => Ok("-1".into()),
            LeaseDuration::Seconds(s @ 15..=60) => Ok(s.to_string()),
            LeaseDuration::Seconds(s) => Err(ProviderError::invalid(format!(
                "a blob lease lasts 15 to 60 seconds or is infinite, not {s} seconds"
            ))),
        }
    }
}

/// A lease the caller holds: its id and the blob's ETag when it was granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub id: String,
    pub etag: String,
}

/// What the blob says of the lease someone else holds: the lease's state and duration as Get Blob
/// Properties reports them, and the blob's metadata (where a lock records its holder, host,
/// command and start time), names lowercased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseHolder {
    /// `leased`, `breaking`, `expired`, `broken` or `available` (`x-ms-lease-state`).
    pub state: String,
    /// `infinite` or `fixed` while leased (`x-ms-lease-duration`).
    pub duration: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub etag: String,
}

/// The precondition of a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteCondition {
    /// No condition: the blob is replaced whatever it holds.
    Always,
    /// Only if the blob still has this ETag (`If-Match`).
    IfMatch(String),
    /// Only if there is no blob yet (`If-None-Match: *`).
    IfNotExists,
}

/// The conditions of one Append Block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppendConditions {
    /// The blob's length the block must be appended at (`x-ms-blob-condition-appendpos`).
    pub position: Option<u64>,
    /// The largest the blob may become (`x-ms-blob-condition-maxsize`).
    pub max_size: Option<u64>,
    /// `If-Match`.
    pub if_match: Option<String>,
    /// The lease held on the blob (`x-ms-lease-id`).
    pub lease_id: Option<String>,
}

/// A block appended: the blob's new ETag, the offset the block starts at and how many blocks the
/// blob has now (blob.json AppendBlob_AppendBlock, `x-ms-blob-append-offset` and
/// `x-ms-blob-committed-block-count`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub etag: String,
    pub offset: u64,
    pub committed_blocks: u32,
}

/// Why a conditional call did not happen, in the terms a caller decides on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlobRefusal {
    /// Another writer changed (or created) the blob since the caller last read it: 412
    /// `ConditionNotMet` or 409 `BlobAlreadyExists`. The caller lost a race; nothing was written.
    #[error("the blob was changed by another writer ({code})")]
    Changed { code: String },
    /// The blob is leased by someone else: 409 `LeaseAlreadyPresent` or
    /// `LeaseIsBreakingAndCannotBeAcquired` to an acquire, 412 `LeaseIdMissing` to a write sent
    /// without a lease. `holder` is what the blob says of them, when it could be read.
    #[error("the blob is leased by another holder ({code})")]
    LeasedByOther {
        code: String,
        holder: Option<LeaseHolder>,
    },
    /// The lease the caller sent is not the blob's active lease any more (it expired, was broken,
    /// released, or taken over): 412 `LeaseLost`, `LeaseNotPresentWithBlobOperation`,
    /// `LeaseIdMismatchWithBlobOperation`, or 409 `LeaseIdMismatchWithLeaseOperation`,
    /// `LeaseNotPresentWithLeaseOperation`, `LeaseIsBrokenAndCannotBeRenewed`,
    /// `LeaseIsBreakingAndCannotBeChanged`.
    #[error("the lease is no longer held ({code})")]
    LeaseLost { code: String },
    /// The append blob is not at the position the block was meant for (412
    /// `AppendPositionConditionNotMet`).
    #[error("the append blob is not at the expected position")]
    AppendPosition,
    /// The block would take the blob past the size limit given (412 `MaxBlobSizeConditionNotMet`).
    #[error("the append blob would grow past its size limit")]
    MaxSize,
    /// The append blob has its 50,000 blocks (409 `BlockCountExceedsLimit`).
    #[error("the append blob has reached its 50,000 blocks")]
    BlockLimit,
    /// The blob (or its container) does not exist.
    #[error("the blob does not exist")]
    NotFound,
    /// Any other failure (authentication, throttling past the retries, transport, a 400).
    #[error(transparent)]
    Failed(#[from] ProviderError),
}

/// The refusal an error answer means, for a call sent with (`sent_lease`) or without a lease id.
fn classify(resp: &HttpResponse, sent_lease: bool) -> Option<BlobRefusal> {
    let err = resp.error();
    let code = err.code.clone().unwrap_or_default();
    let lost = || BlobRefusal::LeaseLost { code: code.clone() };
    Some(match (resp.status, code.as_str()) {
        (404, _) => BlobRefusal::NotFound,
        (412, "ConditionNotMet") | (409, "BlobAlreadyExists") => {
            BlobRefusal::Changed { code: code.clone() }
        }
        (412, "AppendPositionConditionNotMet") => BlobRefusal::AppendPosition,
        (412, "MaxBlobSizeConditionNotMet") => BlobRefusal::MaxSize,
        (409, "BlockCountExceedsLimit") => BlobRefusal::BlockLimit,
        (409, "LeaseAlreadyPresent" | "LeaseIsBreakingAndCannotBeAcquired") => {
            BlobRefusal::LeasedByOther {
                code: code.clone(),
                holder: None,
            }
        }
        (412, "LeaseIdMissing") => BlobRefusal::LeasedByOther {
            code: code.clone(),
            holder: None,
        },
        // A write sent with a lease that is not the blob's: someone else may hold it now, but what
        // the caller must know is that its own lease is gone.
        (412, "LeaseIdMismatchWithBlobOperation") if sent_lease => lost(),
        (412, "LeaseIdMismatchWithBlobOperation") => BlobRefusal::LeasedByOther {
            code: code.clone(),
            holder: None,
        },
        (412, "LeaseLost" | "LeaseNotPresentWithBlobOperation")
        | (
            409,
            "LeaseIdMismatchWithLeaseOperation"
            | "LeaseNotPresentWithLeaseOperation"
            | "LeaseIsBrokenAndCannotBeRenewed"
            | "LeaseIsBreakingAndCannotBeChanged",
        ) => lost(),
        _ => return None,
    })
}

/// `req` with what guards a write: the metadata it sets, its precondition and the caller's lease.
fn guarded(
    mut req: HttpRequest,
    metadata: &BTreeMap<String, String>,
    condition: &WriteCondition,
    lease_id: Option<&str>,
) -> Result<HttpRequest, ProviderError> {
    for (k, v) in metadata {
        req = req.header(&format!("x-ms-meta-{k}"), v)?;
    }
    req = match condition {
        WriteCondition::Always => req,
        WriteCondition::IfMatch(etag) => req.header("if-match", etag)?,
        WriteCondition::IfNotExists => req.header("if-none-match", "*")?,
    };
    match lease_id {
        Some(id) => req.header("x-ms-lease-id", id),
        None => Ok(req),
    }
}

fn etag_of(resp: &HttpResponse) -> String {
    resp.header("etag").unwrap_or_default().to_owned()
}

impl BlobClient {
    /// Sends `req` and returns the success answer, or the refusal it means; a lease refused as held
    /// by someone else is completed with what the blob says of its holder.
    async fn conditional(
        &self,
        container: &str,
        name: &str,
        req: HttpRequest,
    ) -> Result<HttpResponse, BlobRefusal> {
        let sent_lease = req.headers.contains_key("x-ms-lease-id");
        let (resp, what) = self.send(req).await?;
        if resp.is_success() {
            return Ok(resp);
        }
        match classify(&resp, sent_lease) {
            Some(BlobRefusal::LeasedByOther { code, .. }) => Err(BlobRefusal::LeasedByOther {
                code,
                holder: self.lease_holder(container, name).await.ok().flatten(),
            }),
            Some(refusal) => Err(refusal),
            None => Err(BlobRefusal::Failed(resp.error().with_context(what))),
        }
    }

    /// Lease Blob with `x-ms-lease-action: action` and the action's `headers`.
    async fn lease_call(
        &self,
        container: &str,
        name: &str,
        action: &str,
        headers: &[(&str, &str)],
    ) -> Result<HttpResponse, BlobRefusal> {
        let mut url = self.url(container, Some(name))?;
        url.query_pairs_mut().append_pair("comp", "lease");
        // Content-Length: 0 on a PUT without a body, as every recorded Lease Blob request carries
        // (the HTTP stack leaves it out of an empty body; SharedKey signs it as the empty string).
        let mut req = self
            .request(Method::PUT, url)?
            .header("content-length", "0")?
            .header("x-ms-lease-action", action)?;
        for (k, v) in headers {
            req = req.header(k, v)?;
        }
        self.conditional(container, name, req).await
    }

    /// Acquire Lease (201): a new lease for `duration`, with the id `proposed` (a GUID) or one the
    /// service makes. Refused with [`BlobRefusal::LeasedByOther`] while another lease is active.
    pub async fn acquire_lease(
        &self,
        container: &str,
        name: &str,
        duration: LeaseDuration,
        proposed: Option<&str>,
    ) -> Result<Lease, BlobRefusal> {
        let duration = duration.header()?;
        let mut headers = vec![("x-ms-lease-duration", duration.as_str())];
        if let Some(p) = proposed {
            headers.push(("x-ms-proposed-lease-id", p));
        }
        let resp = self
            .lease_call(container, name, "acquire", &headers)
            .await?;
        Ok(Lease {
            id: resp
                .header("x-ms-lease-id")
                .or(proposed)
                .unwrap_or_default()
                .to_owned(),
            etag: etag_of(&resp),
        })
    }

    /// Renew Lease (200): restarts the lease's clock. [`BlobRefusal::LeaseLost`] when it is no longer
    /// the blob's lease (an expired lease renews only if nobody wrote or leased the blob since).
    pub async fn renew_lease(
        &self,
        container: &str,
        name: &str,
        lease_id: &str,
    ) -> Result<(), BlobRefusal> {
        let headers = [("x-ms-lease-id", lease_id)];
        self.lease_call(container, name, "renew", &headers)
            .await
            .map(drop)
    }

    /// Change Lease (200): the lease takes the id `proposed`.
    pub async fn change_lease(
        &self,
        container: &str,
        name: &str,
        lease_id: &str,
        proposed: &str,
    ) -> Result<(), BlobRefusal> {
        let headers = [
            ("x-ms-lease-id", lease_id),
            ("x-ms-proposed-lease-id", proposed),
        ];
        self.lease_call(container, name, "change", &headers)
            .await
            .map(drop)
    }

    /// Release Lease (200): the blob is free for anyone at once.
    pub async fn release_lease(
        &self,
        container: &str,
        name: &str,
        lease_id: &str,
    ) -> Result<(), BlobRefusal> {
        let headers = [("x-ms-lease-id", lease_id)];
        self.lease_call(container, name, "release", &headers)
            .await
            .map(drop)
    }

    /// Break Lease (202), whoever holds it: after `period` seconds (0 to 60; `None`: a fixed lease
    /// runs out, an infinite one breaks at once). Returns the seconds before a new lease can be
    /// acquired (`x-ms-lease-time`).
    pub async fn break_lease(
        &self,
        container: &str,
        name: &str,
        period: Option<u32>,
    ) -> Result<u64, BlobRefusal> {
        let period = period.map(|p| p.to_string());
        let headers: Vec<(&str, &str)> = period
            .iter()
            .map(|p| ("x-ms-lease-break-period", p.as_str()))
            .collect();
        let resp = self.lease_call(container, name, "break", &headers).await?;
        Ok(resp
            .header("x-ms-lease-time")
            .and_then(|t| t.parse().ok())
            .unwrap_or(0))
    }

    /// Break Lease (202) only while the blob's ETag is still `etag` (Blob_BreakLease accepts
    /// `If-Match`: Azure/azure-rest-api-specs
    /// `specification/storage/data-plane/Microsoft.BlobStorage/stable/2025-11-05/blob.json`), so a
    /// lease whose holder has written its record since `etag` was read is left alone
    /// ([`BlobRefusal::Changed`]).
    pub async fn break_lease_if_match(
        &self,
        container: &str,
        name: &str,
        period: u32,
        etag: &str,
    ) -> Result<(), BlobRefusal> {
        let period = period.to_string();
        let headers = [
            ("x-ms-lease-break-period", period.as_str()),
            ("if-match", etag),
        ];
        self.lease_call(container, name, "break", &headers).await?;
        Ok(())
    }

    /// The lease state of a blob and its metadata (Get Blob Properties); `Ok(None)` when it does not
    /// exist.
    pub async fn lease_holder(
        &self,
        container: &str,
        name: &str,
    ) -> Result<Option<LeaseHolder>, ProviderError> {
        let url = self.url(container, Some(name))?;
        let (resp, what) = self.send(self.request(Method::HEAD, url)?).await?;
        match resp.status {
            404 => Ok(None),
            _ if resp.is_success() => {
                let props = properties(&resp);
                Ok(Some(LeaseHolder {
                    state: resp
                        .header("x-ms-lease-state")
                        .unwrap_or("available")
                        .to_owned(),
                    duration: resp.header("x-ms-lease-duration").map(str::to_owned),
                    metadata: props.metadata,
                    etag: props.etag,
                }))
            }
            _ => Err(resp.error().with_context(what)),
        }
    }

    /// Put Blob (block blob) under `condition` and, when the blob is leased, the caller's
    /// `lease_id`; returns the new blob's properties (its ETag for the next `If-Match`).
    pub async fn put_blob_if(
        &self,
        container: &str,
        name: &str,
        data: Bytes,
        metadata: &BTreeMap<String, String>,
        condition: &WriteCondition,
        lease_id: Option<&str>,
    ) -> Result<BlobProperties, BlobRefusal> {
        let url = self.url(container, Some(name))?;
        let md5 = content_md5(&data);
        let req = self
            .request(Method::PUT, url)?
            .header("content-length", &data.len().to_string())?
            .header("x-ms-blob-type", "BlockBlob")?
            .header("content-md5", &md5)?
            .header("content-type", "application/octet-stream")?;
        let req = guarded(req, metadata, condition, lease_id)?;
        let resp = self.conditional(container, name, req.body(data)).await?;
        let mut props = properties(&resp);
        props.content_md5 = props.content_md5.or(Some(md5));
        Ok(props)
    }

    /// Creates an empty append blob (Put Blob with `x-ms-blob-type: AppendBlob`, `Content-Length: 0`)
    /// under `condition`; returns its ETag.
    pub async fn create_append_blob(
        &self,
        container: &str,
        name: &str,
        metadata: &BTreeMap<String, String>,
        condition: &WriteCondition,
        lease_id: Option<&str>,
    ) -> Result<String, BlobRefusal> {
        let url = self.url(container, Some(name))?;
        let req = self
            .request(Method::PUT, url)?
            .header("content-length", "0")?
            .header("x-ms-blob-type", "AppendBlob")?;
        let req = guarded(req, metadata, condition, lease_id)?;
        let resp = self.conditional(container, name, req).await?;
        Ok(etag_of(&resp))
    }

    /// Append Block: `data` (not empty) at the end of an append blob, under `conditions`, with
    /// `Content-MD5` so the service checks what it stored. Sent once only unless a position is given
    /// (a second copy of a block without one would be appended twice).
    pub async fn append_block(
        &self,
        container: &str,
        name: &str,
        data: Bytes,
        conditions: &AppendConditions,
    ) -> Result<Appended, BlobRefusal> {
        let mut url = self.url(container, Some(name))?;
        url.query_pairs_mut().append_pair("comp", "appendblock");
        let mut req = self
            .request(Method::PUT, url)?
            .header("content-length", &data.len().to_string())?
            .header("content-md5", &content_md5(&data))?;
        if let Some(p) = conditions.position {
            req = req.header("x-ms-blob-condition-appendpos", &p.to_string())?;
        } else {
            req = req.not_idempotent();
        }
        if let Some(m) = conditions.max_size {
            req = req.header("x-ms-blob-condition-maxsize", &m.to_string())?;
        }
        let condition = match &conditions.if_match {
            Some(etag) => WriteCondition::IfMatch(etag.clone()),
            None => WriteCondition::Always,
        };
        let req = guarded(
            req,
            &BTreeMap::new(),
            &condition,
            conditions.lease_id.as_deref(),
        )?;
        let resp = self.conditional(container, name, req.body(data)).await?;
        let number = |h: &str| resp.header(h).and_then(|v| v.parse().ok());
        Ok(Appended {
            etag: etag_of(&resp),
            offset: number("x-ms-blob-append-offset").unwrap_or(0),
            committed_blocks: number("x-ms-blob-committed-block-count")
                .and_then(|n: u64| u32::try_from(n).ok())
                .unwrap_or(0),
        })
    }

    /// Set Blob Metadata: replaces the blob's metadata (under the caller's lease when it is leased)
    /// and returns the new ETag.
    pub async fn set_metadata(
        &self,
        container: &str,
        name: &str,
        metadata: &BTreeMap<String, String>,
        condition: &WriteCondition,
        lease_id: Option<&str>,
    ) -> Result<String, BlobRefusal> {
        let mut url = self.url(container, Some(name))?;
        url.query_pairs_mut().append_pair("comp", "metadata");
        let req = self
            .request(Method::PUT, url)?
            .header("content-length", "0")?;
        let req = guarded(req, metadata, condition, lease_id)?;
        let resp = self.conditional(container, name, req).await?;
        Ok(etag_of(&resp))
    }

    /// Delete Blob under `condition` and the caller's lease; with `snapshots`, together with all
    /// the blob's snapshots (`x-ms-delete-snapshots: include`; without it a blob that has snapshots
    /// is refused with 409 `SnapshotsPresent`: Azure/azure-rest-api-specs specification/storage/
    /// data-plane/Microsoft.BlobStorage/stable/2025-11-05/blob.json, Blob_Delete,
    /// `x-ms-delete-snapshots`).
    pub async fn delete_blob_if(
        &self,
        container: &str,
        name: &str,
        condition: &WriteCondition,
        lease_id: Option<&str>,
        snapshots: bool,
    ) -> Result<(), BlobRefusal> {
        let url = self.url(container, Some(name))?;
        let mut req = self.request(Method::DELETE, url)?;
        if snapshots {
            req = req.header("x-ms-delete-snapshots", "include")?;
        }
        let req = guarded(req, &BTreeMap::new(), condition, lease_id)?;
        self.conditional(container, name, req).await.map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::pipeline::Auth;
    use crate::provider::pipeline::fake::{FakeClock, FakeTransport, pipeline, reply};
    use crate::provider::retry::RetryPolicy;

    fn error(status: u16, code: &str) -> HttpResponse {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("x-ms-error-code", code.parse().unwrap());
        HttpResponse {
            status,
            headers,
            body: Bytes::new(),
        }
    }

    /// Each 409/412 code the service answers conditional calls with is a refusal the caller can act
    /// on; a write's `LeaseIdMismatchWithBlobOperation` is a lost lease when the caller sent one.
    #[test]
    fn refusals_by_code() {
        let c = |s, code, sent| classify(&error(s, code), sent);
        assert!(matches!(
            c(412, "ConditionNotMet", false),
            Some(BlobRefusal::Changed { .. })
        ));
        assert!(matches!(
            c(409, "BlobAlreadyExists", false),
            Some(BlobRefusal::Changed { .. })
        ));
        assert!(matches!(
            c(409, "LeaseAlreadyPresent", false),
            Some(BlobRefusal::LeasedByOther { .. })
        ));
        assert!(matches!(
            c(412, "LeaseIdMissing", false),
            Some(BlobRefusal::LeasedByOther { .. })
        ));
        assert!(matches!(
            c(412, "LeaseIdMismatchWithBlobOperation", true),
            Some(BlobRefusal::LeaseLost { .. })
        ));
        assert!(matches!(
            c(412, "LeaseIdMismatchWithBlobOperation", false),
            Some(BlobRefusal::LeasedByOther { .. })
        ));
        for (s, code) in [
            (412, "LeaseLost"),
            (412, "LeaseNotPresentWithBlobOperation"),
            (409, "LeaseIdMismatchWithLeaseOperation"),
            (409, "LeaseNotPresentWithLeaseOperation"),
            (409, "LeaseIsBrokenAndCannotBeRenewed"),
        ] {
            assert!(
                matches!(c(s, code, true), Some(BlobRefusal::LeaseLost { .. })),
                "{code}"
            );
        }
        assert_eq!(
            c(412, "AppendPositionConditionNotMet", false),
            Some(BlobRefusal::AppendPosition)
        );
        assert_eq!(
            c(412, "MaxBlobSizeConditionNotMet", false),
            Some(BlobRefusal::MaxSize)
        );
        assert_eq!(
            c(409, "BlockCountExceedsLimit", false),
            Some(BlobRefusal::BlockLimit)
        );
        assert_eq!(c(404, "BlobNotFound", false), Some(BlobRefusal::NotFound));
        assert_eq!(c(403, "AuthenticationFailed", false), None);
    }

    /// An acquire goes out as Lease Blob does on the wire (recorded requests: `comp=lease`,
    /// `x-ms-lease-action`, `x-ms-lease-duration`, `x-ms-proposed-lease-id`, `Content-Length: 0`), and
    /// a duration the service would refuse never leaves.
    #[test]
    fn an_acquire_is_sent_as_the_service_expects() {
        let t = FakeTransport::new(vec![reply(
            201,
            &[
                ("etag", "\"0x1\""),
                ("x-ms-lease-id", "00000000-1111-2222-3333-444444444444"),
            ],
            "",
        )]);
        let c = std::sync::Arc::new(FakeClock::default());
        let b = BlobClient::new(
            pipeline(&t, &c, RetryPolicy::none()),
            url::Url::parse("https://acct.blob.core.windows.net/").unwrap(),
            Auth::None,
            "2025-11-05",
        );
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let lease = rt
            .block_on(b.acquire_lease(
                "c",
                "lock",
                LeaseDuration::Seconds(60),
                Some("00000000-1111-2222-3333-444444444444"),
            ))
            .unwrap();
        assert_eq!(lease.etag, "\"0x1\"");
        let sent = &t.requests()[0];
        assert_eq!(
            sent.url.as_str(),
            "https://acct.blob.core.windows.net/c/lock?comp=lease"
        );
        let h = |n: &str| sent.headers.get(n).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(h("x-ms-lease-action").as_deref(), Some("acquire"));
        assert_eq!(h("x-ms-lease-duration").as_deref(), Some("60"));
        assert_eq!(h("content-length").as_deref(), Some("0"));
        let refused = rt.block_on(b.acquire_lease("c", "lock", LeaseDuration::Seconds(90), None));
        assert!(matches!(refused, Err(BlobRefusal::Failed(_))));
        assert_eq!(t.requests().len(), 1, "the 90 s lease was never sent");
    }
}
