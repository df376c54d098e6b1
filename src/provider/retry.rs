//! Retry policy: which responses and transport errors are retried, how long to wait (exponential backoff
//! with full jitter, or the server's `Retry-After`), and the bounds on attempts and total time.
//!
//! Pure functions and a small policy value; the pipeline does the sleeping through its injected clock,
//! so nothing here ever waits.

use std::time::{Duration, SystemTime};

use reqwest::Method;
use reqwest::header::HeaderMap;

/// Bounds and base delays for retrying one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first try (so at most `max_retries + 1` tries).
    pub max_retries: u32,
    /// Base of the exponential backoff.
    pub initial_delay: Duration,
    /// Ceiling of one computed backoff delay.
    pub max_delay: Duration,
    /// Give up when the next wait would end after this much time since the first try.
    pub max_total: Duration,
    /// A `Retry-After` above this is not waited for: the call fails instead.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    /// Sensible for real Azure: 8 retries, 0.8 s base, 30 s ceiling, 3 min total.
    fn default() -> Self {
        Self {
            max_retries: 8,
            initial_delay: Duration::from_millis(800),
            max_delay: Duration::from_secs(30),
            max_total: Duration::from_secs(180),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// A quick policy for a local cloud: many cheap retries, short waits.
    pub fn fast() -> Self {
        Self {
            max_retries: 10,
            initial_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(500),
            max_total: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(30),
        }
    }

    /// No retries at all.
    pub fn none() -> Self {
        Self {
            max_retries: 0,
            ..Self::fast()
        }
    }

    /// The upper bound of the full-jitter backoff before retry number `retry` (0-based):
    /// `min(max_delay, initial_delay * 2^retry)`.
    pub(crate) fn backoff_ceiling(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.min(20)).unwrap_or(u32::MAX);
        self.initial_delay
            .saturating_mul(factor)
            .min(self.max_delay)
    }

    /// Full jitter: a uniformly random delay in `[0, ceiling]`, with `unit` in `[0, 1)` supplied by the
    /// caller (so tests can pin it).
    pub(crate) fn jittered(&self, retry: u32, unit: f64) -> Duration {
        self.backoff_ceiling(retry).mul_f64(unit.clamp(0.0, 1.0))
    }
}

/// Statuses that are retried: 408, 429, 500, 502, 503, 504.
pub(crate) fn is_retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// At which point a request failed below HTTP. This decides whether it may be sent again: only a
/// [`TransportErrorKind::Connect`] failure proves the server never saw the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportErrorKind {
    /// No connection was made: DNS resolution, the TCP connect, the TLS handshake, or the connect
    /// timeout. Not one byte of the request was sent.
    Connect,
    /// The connection was made and the request (perhaps) sent, but the response or the next piece of
    /// its body did not arrive within the read timeout.
    Timeout,
    /// The connection failed after the request was (perhaps) sent: closed or reset before a complete
    /// response.
    Io,
    /// The response arrived but its body could not be decoded.
    Decode,
}

impl TransportErrorKind {
    /// A short phrase for messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connection failed",
            Self::Timeout => "timed out",
            Self::Io => "connection lost",
            Self::Decode => "reading the response failed",
        }
    }
}

/// Whether RFC 9110 (section 9.2.2) calls `method` idempotent: the methods whose repetition has the same
/// effect as one request. PATCH is not, in general; a caller whose PATCH is (ARM's JSON merge patch)
/// marks its request with `HttpRequest::idempotent`.
pub(crate) fn method_is_idempotent(method: &Method) -> bool {
    [
        Method::GET,
        Method::HEAD,
        Method::PUT,
        Method::DELETE,
        Method::OPTIONS,
        Method::TRACE,
    ]
    .contains(method)
}

/// Whether a request that failed below HTTP with `kind` may be sent again. An idempotent request may,
/// whatever the failure (sending it twice has the effect of sending it once). One that is not (a
/// scoring POST) only when no connection was made: after a timeout, a lost connection or an unreadable
/// body the server may already have acted on it, and running a scoring call twice is not ours to
/// decide.
pub(crate) fn may_resend_after(kind: TransportErrorKind, idempotent: bool) -> bool {
    idempotent || kind == TransportErrorKind::Connect
}

/// How long the server asked us to wait: `retry-after-ms` / `x-ms-retry-after-ms` (milliseconds), or
/// `Retry-After` as seconds or an HTTP date (relative to `now`).
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let get = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).map(str::trim);
    for name in ["retry-after-ms", "x-ms-retry-after-ms"] {
        if let Some(ms) = get(name).and_then(|v| v.parse::<u64>().ok()) {
            return Some(Duration::from_millis(ms));
        }
    }
    let value = get("retry-after")?;
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = value.parse::<f64>()
        && secs.is_finite()
        && secs >= 0.0
    {
        return Some(Duration::from_secs_f64(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            ..RetryPolicy::default()
        };
        assert_eq!(p.backoff_ceiling(0), Duration::from_millis(100));
        assert_eq!(p.backoff_ceiling(1), Duration::from_millis(200));
        assert_eq!(p.backoff_ceiling(3), Duration::from_millis(800));
        assert_eq!(p.backoff_ceiling(4), Duration::from_secs(1));
        assert_eq!(p.backoff_ceiling(60), Duration::from_secs(1));
        assert_eq!(p.jittered(2, 0.5), Duration::from_millis(200));
        assert_eq!(p.jittered(2, 0.0), Duration::ZERO);
    }

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h, now), None);
        h.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(7)));
        let date = httpdate::fmt_http_date(now + Duration::from_secs(30));
        h.insert("retry-after", HeaderValue::from_str(&date).unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(30)));
        h.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(retry_after(&h, now), Some(Duration::from_millis(250)));
        let mut bad = HeaderMap::new();
        bad.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&bad, now), None);
    }

    /// The bug: every transport error was retried, so a scoring POST that timed out or lost its
    /// connection after being sent could run twice.
    #[test]
    fn transport_errors_resend_only_what_is_safe() {
        use TransportErrorKind as K;
        for (method, idempotent) in [
            (Method::GET, true),
            (Method::HEAD, true),
            (Method::PUT, true),
            (Method::DELETE, true),
            (Method::OPTIONS, true),
            (Method::POST, false),
            (Method::PATCH, false),
        ] {
            assert_eq!(method_is_idempotent(&method), idempotent, "{method}");
            for kind in [K::Connect, K::Timeout, K::Io, K::Decode] {
                let expected = idempotent || kind == K::Connect;
                assert_eq!(
                    may_resend_after(kind, idempotent),
                    expected,
                    "{method} after {kind:?}"
                );
            }
        }
    }

    #[test]
    fn retryable_statuses() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(is_retryable_status(s));
        }
        for s in [200, 400, 401, 403, 404, 409, 501] {
            assert!(!is_retryable_status(s));
        }
    }
}
