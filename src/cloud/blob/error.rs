//! The blob service's errors: its wire codes (`x-ms-error-code`), the error value every blob handler
//! returns, and its XML answer shape (contract section 5).
//!
//! It only describes and renders errors; it never authenticates, reads the store or decides which
//! error a request deserves.
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::cloud::http::wire_codes;
use crate::cloud::store::{StoreError, now_rfc3339};

wire_codes!(
    /// Blob service error codes this cloud answers with (`x-ms-error-code`); each variant's name is
    /// the string on the wire.
    BlobCode,
    AuthenticationFailed,
    AuthorizationPermissionMismatch,
    AppendPositionConditionNotMet,
    BlobAlreadyExists,
    BlobNotFound,
    BlockCountExceedsLimit,
    ConditionNotMet,
    ContainerAlreadyExists,
    ContainerNotFound,
    InternalError,
    InvalidAuthenticationInfo,
    InvalidBlobType,
    InvalidHeaderValue,
    InvalidMd5,
    InvalidOperation,
    InvalidRange,
    InvalidResourceName,
    KeyBasedAuthenticationNotPermitted,
    LeaseAlreadyPresent,
    LeaseIdMismatchWithBlobOperation,
    LeaseIdMismatchWithLeaseOperation,
    LeaseIdMissing,
    LeaseIsBreakingAndCannotBeAcquired,
    LeaseIsBreakingAndCannotBeChanged,
    LeaseIsBrokenAndCannotBeRenewed,
    LeaseLost,
    LeaseNotPresentWithBlobOperation,
    LeaseNotPresentWithLeaseOperation,
    MaxBlobSizeConditionNotMet,
    Md5Mismatch,
    MissingContentLengthHeader,
    MissingRequiredHeader,
    NoAuthenticationInformation,
    NotImplemented,
    RequestBodyTooLarge,
    ResourceNotFound,
    ServerBusy,
    SnapshotsPresent,
);

/// A blob-service error.
#[derive(Debug)]
pub(super) struct BlobError {
    pub(super) status: StatusCode,
    pub(super) code: BlobCode,
    pub(super) message: String,
    /// Extra elements of the XML answer after `<Message>`, in order (`AuthenticationErrorDetail`,
    /// `HeaderName`/`HeaderValue`, `UserSpecifiedMd5`/`ServerCalculatedMd5`).
    pub(super) details: Vec<(&'static str, String)>,
    pub(super) headers: Vec<(&'static str, String)>,
}

pub(super) fn err(status: StatusCode, code: BlobCode, message: impl Into<String>) -> BlobError {
    BlobError {
        status,
        code,
        message: message.into(),
        details: Vec::new(),
        headers: Vec::new(),
    }
}

/// Text escaped for an XML element or attribute.
pub(super) fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

impl BlobError {
    /// The same error with one more XML detail element.
    pub(super) fn with_detail(mut self, element: &'static str, value: impl Into<String>) -> Self {
        self.details.push((element, value.into()));
        self
    }

    /// `InvalidHeaderValue` for `name: value`, naming both in `<HeaderName>`/`<HeaderValue>` as the
    /// service does (its answer to a bad `x-ms-version`, quoted in the Azure Storage SDKs'
    /// TROUBLESHOOTING.md; the message is the one of learn.microsoft.com
    /// rest/api/storageservices/common-rest-api-error-codes).
    pub(super) fn invalid_header(name: &str, value: &str) -> Self {
        err(
            StatusCode::BAD_REQUEST,
            BlobCode::InvalidHeaderValue,
            "The value for one of the HTTP headers is not in the correct format.",
        )
        .with_detail("HeaderName", name)
        .with_detail("HeaderValue", value)
    }

    /// The service's XML error answer (no body for HEAD or 304), with `x-ms-error-code`.
    pub(super) fn into_response(self, head: bool) -> Response {
        // A 304 has no body and no Content-Length, as RFC 9110 section 15.4.5 and the service's
        // recorded answers to a failed read condition show.
        let head = head || self.status == StatusCode::NOT_MODIFIED;
        let id = uuid::Uuid::new_v4();
        let mut xml = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{}</Code><Message>{}\nRequestId:{id}\nTime:{}</Message>",
            self.code.as_str(),
            xml_escape(&self.message),
            now_rfc3339()
        );
        for (element, value) in &self.details {
            xml.push_str(&format!("<{element}>{}</{element}>", xml_escape(value)));
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

/// What a blob handler answers.
pub(super) type BResult = Result<Response, BlobError>;

pub(super) fn container_not_found() -> BlobError {
    err(
        StatusCode::NOT_FOUND,
        BlobCode::ContainerNotFound,
        "The specified container does not exist.",
    )
}

pub(super) fn blob_not_found() -> BlobError {
    err(
        StatusCode::NOT_FOUND,
        BlobCode::BlobNotFound,
        "The specified blob does not exist.",
    )
}

/// A store failure (a full disk, an I/O error) as the service's 500 `InternalError`, with the
/// service's own message ("Common REST API error codes", learn.microsoft.com/rest/api/storageservices/
/// common-rest-api-error-codes: `InternalError`, 500, "The server encountered an internal error.
/// Please retry the request."); the local path and SQLite's words go to the log, not to the client.
/// A failed write changed nothing, so the client's retry succeeds once the disk has room again.
pub(super) fn internal(e: StoreError) -> BlobError {
    tracing::error!("the store failed: {e}");
    err(
        StatusCode::INTERNAL_SERVER_ERROR,
        BlobCode::InternalError,
        "The server encountered an internal error. Please retry the request.",
    )
}
