//! The provider's error type: what the engine needs to decide what to do next (retry, treat as gone,
//! stop and roll back), plus the cloud's own error code and request id for the user.
//!
//! Never put a token, key, secret or a SAS query string into an error: messages are built from status
//! lines, ARM/blob error codes and redacted URLs only.

use std::fmt;

/// What kind of failure this is, from the caller's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Throttling or a transient server failure (408, 429, 5xx) that survived the retry budget, or that
    /// the caller may retry later.
    Retryable,
    /// 409/412: the resource exists elsewhere, another operation is running, a condition failed.
    Conflict,
    /// 404: the resource or its parent does not exist.
    NotFound,
    /// 401/403: the credential is wrong or lacks permission.
    Auth,
    /// 400 and other client errors: the request itself is wrong.
    UserError,
    /// A long-running operation did not finish within its time limit.
    Timeout,
    /// A long-running operation finished as `Failed` or `Canceled`.
    Failed,
    /// The request could not be sent or the response could not be read (connection refused, reset,
    /// TLS failure). A connection error means the request was never processed, so it is safe to retry.
    Transport,
    /// Local problem: bad configuration, unreadable file, invalid input value.
    Invalid,
}

impl ErrorKind {
    /// Maps an HTTP status to a kind.
    pub(crate) fn from_status(status: u16) -> Self {
        match status {
            408 | 429 | 500 | 502 | 503 | 504 => Self::Retryable,
            401 | 403 => Self::Auth,
            404 => Self::NotFound,
            409 | 412 => Self::Conflict,
            400..=499 => Self::UserError,
            _ => Self::Failed,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Self::Retryable => "transient",
            Self::Conflict => "conflict",
            Self::NotFound => "not found",
            Self::Auth => "not authorized",
            Self::UserError => "bad request",
            Self::Timeout => "timed out",
            Self::Failed => "operation failed",
            Self::Transport => "connection error",
            Self::Invalid => "invalid input",
        };
        f.write_str(s)
    }
}

/// An error from the provider. `Display` reads well after "failed to …": it names the operation and
/// carries the status, the cloud's error code and the request id when there is one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderError {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// HTTP status of the failing response, when there was one.
    pub status: Option<u16>,
    /// The cloud's error code (ARM `error.code`, blob `x-ms-error-code`, Entra `error`).
    pub code: Option<String>,
    /// Human-readable message (the cloud's message, or ours).
    pub message: String,
    /// `x-ms-request-id` of the failing response, for support tickets.
    pub request_id: Option<String>,
    /// What was being done, e.g. `PUT https://…/storageAccounts/x` (URL already redacted).
    pub context: Option<String>,
    /// The operation's request never reached the server: every try failed to connect, and no earlier
    /// request of the same operation (the PUT before a poll) was answered. Only then did the
    /// operation certainly not happen; any other failure without an answer is an unknown outcome.
    pub(crate) unsent: bool,
}

impl std::error::Error for ProviderError {}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(ctx) = &self.context {
            write!(f, "{ctx}: ")?;
        }
        write!(f, "{}", self.kind)?;
        match (self.status, &self.code) {
            (Some(s), Some(c)) => write!(f, " ({s} {c})")?,
            (Some(s), None) => write!(f, " ({s})")?,
            (None, Some(c)) => write!(f, " ({c})")?,
            (None, None) => {}
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        if let Some(id) = &self.request_id {
            write!(f, " [request id {id}]")?;
        }
        Ok(())
    }
}

impl ProviderError {
    /// A new error of `kind` with `message`, no HTTP details.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            status: None,
            code: None,
            message: message.into(),
            request_id: None,
            context: None,
            unsent: false,
        }
    }

    /// Marks the error as coming after a request of its operation was answered (see `unsent`).
    #[must_use]
    pub(crate) fn after_sent(mut self) -> Self {
        self.unsent = false;
        self
    }

    /// Local invalid input or configuration.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, message)
    }

    /// Adds (or replaces) what was being done.
    #[must_use]
    pub(crate) fn with_context(mut self, context: impl Into<String>) -> Self {
        self.context = Some(context.into());
        self
    }

    /// Sets the cloud error code.
    #[must_use]
    pub(crate) fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    /// Builds an error from a non-success HTTP response: the status decides the kind; the code and
    /// message come from the ARM JSON envelope, the blob XML error, the Entra error JSON or the
    /// `x-ms-error-code` header, whichever is present.
    pub(crate) fn from_response(
        status: u16,
        headers: &reqwest::header::HeaderMap,
        body: &[u8],
    ) -> Self {
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let (mut code, message) = parse_error_body(body);
        if code.is_none() {
            code = header("x-ms-error-code");
        }
        Self {
            kind: ErrorKind::from_status(status),
            status: Some(status),
            code,
            message: message.unwrap_or_default(),
            request_id: header("x-ms-request-id"),
            context: None,
            unsent: false,
        }
    }

    /// True for a 404 / not-found error: the resource is gone.
    pub(crate) fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }

    /// True when retrying the same call later may succeed (throttling, transient server or connection
    /// errors).
    pub fn is_retryable(&self) -> bool {
        matches!(self.kind, ErrorKind::Retryable | ErrorKind::Transport)
    }

    /// True for 409/412.
    #[cfg(test)]
    pub(crate) fn is_conflict(&self) -> bool {
        self.kind == ErrorKind::Conflict
    }

    /// True for 401/403.
    pub fn is_auth(&self) -> bool {
        self.kind == ErrorKind::Auth
    }

    /// True when the cloud error code equals `code` (case-insensitively).
    pub(crate) fn has_code(&self, code: &str) -> bool {
        self.code
            .as_deref()
            .is_some_and(|c| c.eq_ignore_ascii_case(code))
    }
}

/// Extracts `(code, message)` from an error body in any of the shapes the clouds use.
pub(crate) fn parse_error_body(body: &[u8]) -> (Option<String>, Option<String>) {
    if body.is_empty() {
        return (None, None);
    }
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) {
        // ARM envelope, or a bare error object (LRO status bodies carry `error` the same way).
        let err = json.get("error").filter(|e| e.is_object()).unwrap_or(&json);
        let code = err.get("code").and_then(|c| c.as_str()).map(str::to_owned);
        let message = err
            .get("message")
            .and_then(|m| m.as_str())
            .map(str::to_owned);
        if code.is_some() || message.is_some() {
            return (code, message);
        }
        // Entra token endpoint: { "error": "invalid_client", "error_description": "AADSTS…" }
        let code = json
            .get("error")
            .and_then(|c| c.as_str())
            .map(str::to_owned);
        let message = json
            .get("error_description")
            .and_then(|m| m.as_str())
            .map(str::to_owned);
        return (code, message);
    }
    let text = String::from_utf8_lossy(body);
    if text.contains("<Error>") {
        let code = xml_element(&text, "Code");
        let message =
            xml_element(&text, "Message").map(|m| m.lines().next().unwrap_or_default().to_owned());
        return (code, message);
    }
    let trimmed: String = text.trim().chars().take(300).collect();
    (None, (!trimmed.is_empty()).then_some(trimmed))
}

/// The text of the first `<name>…</name>` element, XML entities decoded. Enough for the flat blob
/// error and listing documents; not a general XML parser.
pub(crate) fn xml_element(text: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = text.find(&open)? + open.len();
    let end = text[start..].find(&close)? + start;
    Some(xml_unescape(&text[start..end]))
}

pub(crate) fn xml_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    #[test]
    fn arm_envelope_gives_code_message_and_request_id() {
        let mut h = HeaderMap::new();
        h.insert("x-ms-request-id", HeaderValue::from_static("req-1"));
        let body = br#"{"error":{"code":"ResourceNotFound","message":"gone"}}"#;
        let e = ProviderError::from_response(404, &h, body);
        assert!(e.is_not_found());
        assert!(!e.is_retryable());
        assert_eq!(e.code.as_deref(), Some("ResourceNotFound"));
        assert_eq!(e.request_id.as_deref(), Some("req-1"));
        assert_eq!(
            e.to_string(),
            "not found (404 ResourceNotFound): gone [request id req-1]"
        );
    }

    #[test]
    fn blob_xml_error_and_header_code() {
        let body = b"<?xml version=\"1.0\"?><Error><Code>BlobNotFound</Code><Message>The specified blob does not exist.\nRequestId:x</Message></Error>";
        let e = ProviderError::from_response(404, &HeaderMap::new(), body);
        assert_eq!(e.code.as_deref(), Some("BlobNotFound"));
        assert_eq!(e.message, "The specified blob does not exist.");
        let mut h = HeaderMap::new();
        h.insert(
            "x-ms-error-code",
            HeaderValue::from_static("ConditionNotMet"),
        );
        let e = ProviderError::from_response(412, &h, b"");
        assert!(e.is_conflict());
        assert!(e.has_code("conditionnotmet"));
    }

    #[test]
    fn entra_error_shape() {
        let body = br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret."}"#;
        let e = ProviderError::from_response(401, &HeaderMap::new(), body);
        assert!(e.is_auth());
        assert_eq!(e.code.as_deref(), Some("invalid_client"));
    }

    #[test]
    fn status_kinds() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert_eq!(ErrorKind::from_status(s), ErrorKind::Retryable, "{s}");
        }
        assert_eq!(ErrorKind::from_status(400), ErrorKind::UserError);
        assert_eq!(ErrorKind::from_status(403), ErrorKind::Auth);
        assert_eq!(ErrorKind::from_status(409), ErrorKind::Conflict);
        assert_eq!(ErrorKind::from_status(501), ErrorKind::Failed);
        assert!(ProviderError::new(ErrorKind::Transport, "reset").is_retryable());
        assert!(!ProviderError::new(ErrorKind::Failed, "x").is_retryable());
    }
}
