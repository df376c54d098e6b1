//! HTTP helpers every protocol layer of the local cloud shares: request ids, query strings, path
//! percent-decoding, header look-ups and small response builders, plus the request-size limits.
//!
//! It knows nothing about ARM, blobs, tokens or the store, and must never import another module of
//! the cloud: every other layer may import it, so it sits at the bottom of the module graph.
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// Request bodies larger than this are refused.
pub(crate) const MAX_BODY: usize = 16 << 20;
/// Blob bodies may be larger.
pub(crate) const MAX_BLOB_BODY: usize = 256 << 20;

/// Path segments the blob data plane can never own (storage account names may not take them).
pub(crate) const RESERVED: &[&str] = &[
    "subscriptions",
    "providers",
    "metadata",
    "inference",
    "common",
    "organizations",
    "consumers",
    "tenants",
    "health",
];

/// Declares an enum of error codes whose variant names are the strings on the wire, with `as_str`.
macro_rules! wire_codes {
    ($(#[$doc:meta])* $name:ident, $($code:ident),* $(,)?) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum $name { $($code),* }
        impl $name {
            /// The code as sent on the wire.
            pub(crate) fn as_str(self) -> &'static str {
                match self { $($name::$code => stringify!($code)),* }
            }
        }
    };
}
pub(crate) use wire_codes;

/// Adds the request-id headers every HTTPS answer carries, echoing the client's own request id.
pub(crate) fn request_id_headers(resp: &mut Response, client_request_id: Option<&HeaderValue>) {
    let id = uuid::Uuid::new_v4().to_string();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&id) {
        h.insert("x-ms-request-id", v.clone());
        h.insert("x-ms-correlation-request-id", v.clone());
        h.insert(
            "x-ms-routing-request-id",
            HeaderValue::from_static("LOCAL:00000000T000000Z:stackform"),
        );
    }
    if let Some(c) = client_request_id {
        h.insert("x-ms-client-request-id", c.clone());
    }
}

/// Percent-decodes one path segment (`+` stays a plus; invalid UTF-8 is replaced).
pub(crate) fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Why a path segment was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SegmentError {
    #[error("a path segment is not valid UTF-8 once percent-decoded")]
    NotUtf8,
    #[error("a path segment holds an encoded '/' or '\\'")]
    EncodedSeparator,
    #[error("a path segment holds a control character")]
    Control,
    #[error("a path segment is '.' or '..'")]
    Dot,
}

/// Percent-decodes one segment of a path already split on `/`, refusing what would change the
/// path's shape once decoded: an encoded `/` or `\` (`%2F`, `%5C`), a control character, invalid
/// UTF-8, or a `.`/`..` segment. Callers split first and decode each segment once, here, so no layer
/// ever sees `a%2Fb` as one name and another as two.
pub(crate) fn decode_segment(raw: &str) -> Result<String, SegmentError> {
    let s = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| SegmentError::NotUtf8)?;
    if s.contains(['/', '\\']) {
        return Err(SegmentError::EncodedSeparator);
    }
    if s.chars().any(char::is_control) {
        return Err(SegmentError::Control);
    }
    if s == "." || s == ".." {
        return Err(SegmentError::Dot);
    }
    Ok(s.into_owned())
}

/// A decoded query string (or form body): pairs in order, looked up case-insensitively.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Query(Vec<(String, String)>);

impl Query {
    /// Parses `a=b&c=d` (`+` is a space, `%XX` decoded).
    pub(crate) fn parse(q: Option<&str>) -> Query {
        Query(
            url::form_urlencoded::parse(q.unwrap_or_default().as_bytes())
                .into_owned()
                .collect(),
        )
    }

    /// The first value of `name`, compared case-insensitively.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The first value of `name`, compared exactly (form fields of the token endpoint).
    pub(crate) fn get_exact(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn pairs(&self) -> &[(String, String)] {
        &self.0
    }
}

/// A header's value when it is visible ASCII.
pub(crate) fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// Adds headers to a response (values that are not valid header values are skipped).
pub(crate) fn with_headers(mut resp: Response, headers: &[(&'static str, String)]) -> Response {
    for (k, v) in headers {
        if let Ok(v) = HeaderValue::from_str(v) {
            resp.headers_mut().insert(*k, v);
        }
    }
    resp
}

/// The status of an injected server error (`code` is 500 or 503) and the protocol's error code for
/// it: `unavailable` for 503, `internal` otherwise.
pub(crate) fn injected_server_error<C>(code: u16, unavailable: C, internal: C) -> (StatusCode, C) {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, if code == 503 { unavailable } else { internal })
}

/// An answer with a status, a body and headers.
pub(crate) fn answer(
    status: StatusCode,
    body: Body,
    headers: &[(&'static str, String)],
) -> Response {
    with_headers((status, body).into_response(), headers)
}

/// A JSON answer.
pub(crate) fn json_response(status: StatusCode, body: Value) -> Response {
    (status, axum::Json(body)).into_response()
}

/// An empty answer with headers.
pub(crate) fn empty(status: StatusCode, headers: &[(&'static str, String)]) -> Response {
    answer(status, Body::empty(), headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_decoding() {
        let q = Query::parse(Some("$filter=principalId%20eq%20'x'&a=b+c&Api-Version=1"));
        assert_eq!(
            q.pairs()[0],
            ("$filter".into(), "principalId eq 'x'".into())
        );
        assert_eq!(q.get("a"), Some("b c"));
        assert_eq!(q.get("api-version"), Some("1"));
        assert_eq!(q.get_exact("api-version"), None);
        assert_eq!(Query::parse(None).pairs(), &[]);
    }

    #[test]
    fn path_decoding_keeps_plus() {
        assert_eq!(percent_decode("a%2Fb+c%20d"), "a/b+c d");
        assert_eq!(percent_decode("100%"), "100%");
    }

    #[test]
    fn segments_never_change_the_shape_of_a_path() {
        assert_eq!(decode_segment("a%20b+c"), Ok("a b+c".into()));
        for (raw, want) in [
            ("a%2Fb", SegmentError::EncodedSeparator),
            ("a%2fb", SegmentError::EncodedSeparator),
            ("a%5Cb", SegmentError::EncodedSeparator),
            ("a%0Ab", SegmentError::Control),
            ("a%00", SegmentError::Control),
            ("%FF", SegmentError::NotUtf8),
            ("..", SegmentError::Dot),
            ("%2E%2E", SegmentError::Dot),
        ] {
            assert_eq!(decode_segment(raw), Err(want), "{raw}");
        }
    }
}
