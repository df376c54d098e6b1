//! The HTTP pipeline every provider call goes through, as ordered layers with one job each:
//!
//! 1. per call: an `x-ms-client-request-id`, and one debug log line per try (method, redacted URL,
//!    status, duration, `x-ms-request-id`);
//!    Every try is counted ([`RequestCounts`]); a try that goes to ARM (Bearer for the ARM audience)
//!    first takes a token of its class from the [`Pacer`] and waits when there is none;
//! 2. retry: exponential backoff with full jitter on 408/429/5xx and transport errors, honouring
//!    `Retry-After`, bounded in count and total time ([`RetryPolicy`]). A request that is not idempotent
//!    (a scoring POST) is sent again only when its connection could not be made
//!    ([`TransportErrorKind::Connect`]): after a timeout, a reset or a bad body the server may have
//!    acted on it already;
//! 3. per try: authentication (a Bearer token for the call's audience, or a SharedKey signature over the
//!    request as it is about to be sent, with a fresh `x-ms-date`);
//! 4. transport: one shared `reqwest::Client` (keep-alive, connection reuse, the extra CA of a local
//!    cloud), with each request's read timeout, and its errors sorted into [`TransportErrorKind`]s.
//!
//! The transport and the clock are traits so retry and long-running-operation logic can be tested with a
//! scripted transport and a clock that never really sleeps.
//!
//! Never log a header value, a request body or a query-string secret from here.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use url::Url;

use super::contract::Result;
use super::error::{ErrorKind, ProviderError};
use super::pace::{PaceClass, Pacer, Reservation, Ticket};
pub use super::retry::TransportErrorKind;
use super::retry::{
    RetryPolicy, is_retryable_status, may_resend_after, method_is_idempotent, retry_after,
};
use super::secret::Secret;
use super::shared_key::SharedKeyCredential;

/// A boxed `Send` future.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// An outgoing request. The body is held in memory (the stack's blobs and assets are small files).
#[derive(Clone)]
pub struct HttpRequest {
    pub method: Method,
    pub url: Url,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// False for calls that must not be repeated once the server may have seen them (a scoring POST);
    /// those are retried only when the connection could not be made. Set from the method by
    /// [`HttpRequest::new`] (GET, HEAD, PUT, DELETE, OPTIONS yes; POST and PATCH no), and changed only by
    /// a caller that knows better ([`HttpRequest::idempotent`], [`HttpRequest::not_idempotent`]).
    pub idempotent: bool,
    /// How long to wait for the response headers and then for each piece of the body; `None` is the
    /// transport's default ([`DEFAULT_READ_TIMEOUT`]).
    pub read_timeout: Option<Duration>,
}

/// The read timeout of a call that sets none: long enough for any ARM or blob answer.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(120);

/// How long establishing a connection (DNS, TCP, TLS handshake) may take.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header names only: values can be tokens or signatures.
        let names: Vec<&str> = self.headers.keys().map(HeaderName::as_str).collect();
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &redact_url(&self.url))
            .field("headers", &names)
            .field("body_len", &self.body.len())
            .finish()
    }
}

impl HttpRequest {
    /// A request with no headers and an empty body, idempotent when its method is.
    pub fn new(method: Method, url: Url) -> Self {
        Self {
            idempotent: method_is_idempotent(&method),
            method,
            url,
            headers: HeaderMap::new(),
            body: Bytes::new(),
            read_timeout: None,
        }
    }

    /// Adds a header; invalid names or values are a local error.
    pub fn header(mut self, name: &str, value: &str) -> Result<Self> {
        let n = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| ProviderError::invalid(format!("invalid header name {name:?}")))?;
        let v = HeaderValue::from_str(value)
            .map_err(|_| ProviderError::invalid(format!("invalid value for header {name}")))?;
        self.headers.insert(n, v);
        Ok(self)
    }

    /// Sets a JSON body and `Content-Type: application/json`.
    #[must_use]
    pub fn json(mut self, value: &serde_json::Value) -> Self {
        self.body = Bytes::from(value.to_string());
        self.headers.insert(
            reqwest::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        self
    }

    /// Sets a raw body.
    #[must_use]
    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Marks the request as not safe to repeat.
    #[must_use]
    pub(crate) fn not_idempotent(mut self) -> Self {
        self.idempotent = false;
        self
    }

    /// Marks a POST or PATCH as safe to repeat, because the API it calls changes nothing the second
    /// time (a read-only action such as `listKeys`, a JSON merge patch). The caller says why.
    #[must_use]
    pub fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }

    /// Waits up to `timeout` for the response headers and for each piece of the body (instead of
    /// [`DEFAULT_READ_TIMEOUT`]).
    #[must_use]
    pub fn read_timeout(mut self, timeout: Duration) -> Self {
        self.read_timeout = Some(timeout);
        self
    }

    /// `METHOD url` with the URL redacted, for error context. The redaction is done only when the
    /// description is shown (an error), not for every request sent.
    pub(crate) fn describe(&self) -> Described {
        Described {
            method: self.method.clone(),
            url: self.url.clone(),
        }
    }
}

/// A request as an error names it, `METHOD url` with the URL redacted ([`redact_url`]) when it is
/// displayed or turned into a `String`.
#[derive(Debug, Clone)]
pub(crate) struct Described {
    method: Method,
    url: Url,
}

impl fmt::Display for Described {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, redact_url(&self.url))
    }
}

impl From<Described> for String {
    fn from(d: Described) -> String {
        d.to_string()
    }
}

/// A response, body fully read.
#[derive(Clone)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl fmt::Debug for HttpResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpResponse")
            .field("status", &self.status)
            .field("body_len", &self.body.len())
            .finish()
    }
}

impl HttpResponse {
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON; an empty body is `null`.
    pub fn json(&self) -> Result<serde_json::Value> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&self.body).map_err(|e| {
            ProviderError::new(
                ErrorKind::Failed,
                format!("response body is not valid json: {e}"),
            )
            .with_status(self.status)
            .with_request_id(self.header("x-ms-request-id"))
        })
    }

    /// The error this (non-success) response stands for.
    pub fn error(&self) -> ProviderError {
        ProviderError::from_response(self.status, &self.headers, &self.body)
    }
}

impl ProviderError {
    pub(crate) fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    pub(crate) fn with_request_id(mut self, id: Option<&str>) -> Self {
        self.request_id = id.map(str::to_owned);
        self
    }
}

/// Why a request could not be sent or its response read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportError {
    /// Where it failed, which decides whether it may be retried.
    pub kind: TransportErrorKind,
    /// Redaction-safe description.
    pub message: String,
}

impl TransportError {
    /// An error of `kind` with a redaction-safe `message`.
    pub fn new(kind: TransportErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// Sorts a reqwest error: a connect error (reqwest also reports DNS, TLS handshake and connect
    /// timeout failures as connect errors) before anything else, since nothing was sent; then a
    /// timeout; then a decode error; everything else (a connection closed or reset mid-exchange, a
    /// body read error) happened after the request may have reached the server.
    pub(crate) fn from_reqwest(context: &str, e: &reqwest::Error) -> Self {
        let kind = if e.is_connect() {
            TransportErrorKind::Connect
        } else if e.is_timeout() {
            TransportErrorKind::Timeout
        } else if e.is_decode() {
            TransportErrorKind::Decode
        } else {
            TransportErrorKind::Io
        };
        Self::new(
            kind,
            format!("{context}: {}: {}", kind.as_str(), error_sources(e)),
        )
    }
}

/// Sends one request, once. No retries, no auth: the pipeline does those.
pub trait Transport: Send + Sync {
    fn send(
        &self,
        req: HttpRequest,
    ) -> BoxFuture<'static, std::result::Result<HttpResponse, TransportError>>;
}

/// Monotonic time, wall time, sleeping and the jitter source, injectable for tests.
pub trait Clock: Send + Sync {
    /// Monotonic time since an arbitrary origin.
    fn elapsed(&self) -> Duration;
    /// Wall-clock time (for `x-ms-date` and HTTP-date `Retry-After`).
    fn now_utc(&self) -> SystemTime;
    /// Waits for `d`.
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()>;
    /// A uniformly random number in `[0, 1)` for full jitter.
    fn random_unit(&self) -> f64;
}

/// The real clock: tokio sleeping, `rand` jitter.
#[derive(Debug)]
pub struct SystemClock {
    origin: Instant,
}

impl Default for SystemClock {
    fn default() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
}

impl Clock for SystemClock {
    fn elapsed(&self) -> Duration {
        self.origin.elapsed()
    }
    fn now_utc(&self) -> SystemTime {
        SystemTime::now()
    }
    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(d))
    }
    fn random_unit(&self) -> f64 {
        rand::random::<f64>()
    }
}

/// Builds a `reqwest::Client` for callers that use it directly (the credentials' token calls):
/// keep-alive and connection reuse, bounded connect time, a read timeout of [`DEFAULT_READ_TIMEOUT`],
/// and, for a local cloud, its CA added to the trusted roots (verification is never turned off).
pub fn build_http_client(extra_ca_pem: Option<&[u8]>) -> Result<reqwest::Client> {
    client_with(extra_ca_pem, Some(DEFAULT_READ_TIMEOUT))
}

/// The client under [`ReqwestTransport`]: as [`build_http_client`] but with no client-wide read
/// timeout, since the transport applies each request's own (a scoring call may wait longer than an ARM
/// call).
pub fn build_transport_client(extra_ca_pem: Option<&[u8]>) -> Result<reqwest::Client> {
    client_with(extra_ca_pem, None)
}

fn client_with(
    extra_ca_pem: Option<&[u8]>,
    read_timeout: Option<Duration>,
) -> Result<reqwest::Client> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let mut builder = reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(16)
        .connect_timeout(CONNECT_TIMEOUT)
        .user_agent(concat!("stackform/", env!("CARGO_PKG_VERSION")));
    if let Some(t) = read_timeout {
        builder = builder.read_timeout(t);
    }
    if let Some(pem) = extra_ca_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| ProviderError::invalid(format!("cannot read ca certificate: {e}")))?;
        if certs.is_empty() {
            return Err(ProviderError::invalid(
                "ca certificate file holds no certificate",
            ));
        }
        builder = builder.tls_certs_merge(certs);
    }
    builder
        .build()
        .map_err(|e| ProviderError::invalid(format!("cannot build http client: {e}")))
}

/// [`Transport`] over a shared `reqwest::Client` (best built by [`build_transport_client`], so each
/// request's read timeout is the only one).
#[derive(Debug, Clone)]
pub struct ReqwestTransport {
    client: reqwest::Client,
}

impl ReqwestTransport {
    pub fn new(client: reqwest::Client) -> Self {
        Self { client }
    }

    /// The underlying client (shared with the credential's token calls).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }
}

impl Transport for ReqwestTransport {
    fn send(
        &self,
        req: HttpRequest,
    ) -> BoxFuture<'static, std::result::Result<HttpResponse, TransportError>> {
        let client = self.client.clone();
        Box::pin(async move {
            let described = req.describe();
            let wait = req.read_timeout.unwrap_or(DEFAULT_READ_TIMEOUT);
            // The wait counts from sending, as reqwest's own read timeout does; connecting is bounded
            // separately (CONNECT_TIMEOUT), and a connect failure inside the wait is still `Connect`.
            let timed_out = |what: &str| {
                TransportError::new(
                    TransportErrorKind::Timeout,
                    format!(
                        "{described}: {}: no {what} within {} s",
                        TransportErrorKind::Timeout.as_str(),
                        wait.as_secs_f64()
                    ),
                )
            };
            let sending = client
                .request(req.method, req.url)
                .headers(req.headers)
                .body(req.body)
                .send();
            let mut resp = match tokio::time::timeout(wait, sending).await {
                Ok(r) => r.map_err(|e| TransportError::from_reqwest(&described.to_string(), &e))?,
                Err(_) => return Err(timed_out("response")),
            };
            let status = resp.status().as_u16();
            let headers = std::mem::take(resp.headers_mut());
            let mut body = bytes::BytesMut::new();
            loop {
                match tokio::time::timeout(wait, resp.chunk()).await {
                    Ok(Ok(Some(chunk))) => body.extend_from_slice(&chunk),
                    Ok(Ok(None)) => break,
                    Ok(Err(e)) => {
                        return Err(TransportError::from_reqwest(&described.to_string(), &e));
                    }
                    Err(_) => return Err(timed_out("response body")),
                }
            }
            Ok(HttpResponse {
                status,
                headers,
                body: body.freeze(),
            })
        })
    }
}

/// The error's sources, without the URL reqwest adds (ours is redacted already).
fn error_sources(e: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    if parts.is_empty() {
        "no detail".to_owned()
    } else {
        parts.join(": ")
    }
}

/// How a request authenticates (the per-try layer).
#[derive(Clone, Debug)]
pub enum Auth {
    /// Anonymous (metadata discovery).
    None,
    /// `Authorization: Bearer` with a token for this scope (e.g. `https://management.azure.com/.default`).
    Bearer(String),
    /// Azure Storage SharedKey.
    SharedKey(Arc<SharedKeyCredential>),
    /// `Authorization: Bearer` with a credential the caller already holds (an endpoint key or AML
    /// token for scoring).
    Secret(Secret),
}

/// Hands out Bearer tokens per scope: what the per-try auth layer asks for a [`Auth::Bearer`] call.
/// The credentials in `credential` implement it; the pipeline never depends on them.
pub trait TokenSource: Send + Sync {
    /// A token for `scope` (e.g. `https://management.azure.com/.default`).
    fn token<'a>(&'a self, scope: &'a str) -> BoxFuture<'a, Result<Secret>>;
    /// Which credential this is, for "using … credentials" messages.
    fn name(&self) -> &str;
}

/// Added to every pacing wait: the server's bucket starts when the first request arrives, later than
/// ours by that request's connection setup, so a request sent the moment our bucket refills could
/// find the server's a little short.
pub(crate) const PACE_SKEW: Duration = Duration::from_millis(10);

/// How many requests the pipeline sent (every try, retries included), shared by its clones.
#[derive(Debug, Default)]
pub struct RequestCounts {
    arm: AtomicU64,
    other: AtomicU64,
    throttled: AtomicU64,
}

/// A reading of [`RequestCounts`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestTally {
    /// Tries sent to ARM (Bearer for the ARM audience).
    pub arm: u64,
    /// Tries sent elsewhere: the blob data plane, token-less metadata, scoring.
    pub other: u64,
    /// Responses with status 429 (throttled), of either kind.
    pub throttled: u64,
}

impl RequestTally {
    /// Every try.
    pub fn total(&self) -> u64 {
        self.arm + self.other
    }

    /// What was sent since `earlier`.
    #[must_use]
    pub fn since(&self, earlier: &Self) -> Self {
        Self {
            arm: self.arm.saturating_sub(earlier.arm),
            other: self.other.saturating_sub(earlier.other),
            throttled: self.throttled.saturating_sub(earlier.throttled),
        }
    }
}

impl RequestCounts {
    /// The counts now.
    pub fn tally(&self) -> RequestTally {
        RequestTally {
            arm: self.arm.load(Ordering::Relaxed),
            other: self.other.load(Ordering::Relaxed),
            throttled: self.throttled.load(Ordering::Relaxed),
        }
    }
}

/// The layered pipeline. Cheap to clone; clones share the request counts and the pacer.
#[derive(Clone)]
pub struct Pipeline {
    transport: Arc<dyn Transport>,
    clock: Arc<dyn Clock>,
    retry: RetryPolicy,
    tokens: Option<Arc<dyn TokenSource>>,
    counts: Arc<RequestCounts>,
    /// ARM's token scope: requests with a Bearer token for it are ARM requests (counted as such, and
    /// paced when `pacer` is set).
    arm_scope: Option<String>,
    pacer: Option<Arc<Pacer>>,
}

impl fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pipeline")
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}

impl Pipeline {
    /// A pipeline over `transport`, sleeping with `clock`, retrying per `retry`, getting Bearer tokens
    /// from `tokens`.
    pub fn new(
        transport: Arc<dyn Transport>,
        clock: Arc<dyn Clock>,
        retry: RetryPolicy,
        tokens: Option<Arc<dyn TokenSource>>,
    ) -> Self {
        Self {
            transport,
            clock,
            retry,
            tokens,
            counts: Arc::new(RequestCounts::default()),
            arm_scope: None,
            pacer: None,
        }
    }

    /// Knows requests authenticated with a Bearer token for `arm_scope` as ARM requests, and paces
    /// them with `pacer` when there is one; the blob data plane and scoring are never paced.
    #[must_use]
    pub fn with_arm(mut self, arm_scope: impl Into<String>, pacer: Option<Arc<Pacer>>) -> Self {
        self.arm_scope = Some(arm_scope.into());
        self.pacer = pacer;
        self
    }

    /// The pacer, when pacing is on.
    pub fn pacer(&self) -> Option<&Arc<Pacer>> {
        self.pacer.as_ref()
    }

    /// The requests sent so far through this pipeline and its clones.
    pub fn counts(&self) -> RequestTally {
        self.counts.tally()
    }

    /// Whether a request with `auth` goes to ARM.
    fn is_arm(&self, auth: &Auth) -> bool {
        matches!((&self.arm_scope, auth), (Some(scope), Auth::Bearer(s)) if s == scope)
    }

    /// The pacer that applies to a request with `auth`, if any.
    fn pacer_for(&self, auth: &Auth) -> Option<&Pacer> {
        self.pacer.as_deref().filter(|_| self.is_arm(auth))
    }

    /// The pipeline's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Waits for `pacer` to let a request of `class` go; the ticket ends with the request.
    async fn paced<'p>(&self, pacer: &'p Pacer, class: PaceClass) -> Ticket<'p> {
        loop {
            match pacer.reserve(class, self.clock.elapsed()) {
                Reservation::Send { wait, ticket } => {
                    if !wait.is_zero() {
                        self.clock.sleep(wait + PACE_SKEW).await;
                    }
                    return ticket;
                }
                // The class's first answer is awaited: then the bucket holds what the server said.
                Reservation::Learning(mut probe) => {
                    if probe.changed().await.is_err() {
                        // The pacer is gone only with the pipeline; reserve again regardless.
                        tokio::task::yield_now().await;
                    }
                }
            }
        }
    }

    /// Sends `req` through the layers and returns the final response, whatever its status (a
    /// retryable status is returned once the retry budget is spent). `Err` means no response at all:
    /// connection failures after retries, or no token.
    pub async fn send(&self, mut req: HttpRequest, auth: &Auth) -> Result<HttpResponse> {
        // Per call: one client request id for all tries, so server logs tie them together.
        let client_request_id = match req
            .headers
            .get("x-ms-client-request-id")
            .and_then(|v| v.to_str().ok())
        {
            Some(id) => id.to_owned(),
            None => {
                let id = uuid::Uuid::new_v4().to_string();
                if let Ok(v) = HeaderValue::from_str(&id) {
                    req.headers.insert("x-ms-client-request-id", v);
                }
                id
            }
        };
        let start = self.clock.elapsed();
        let mut retry = 0u32;
        // Whether any try may have reached the server (anything but a connect failure): then a
        // failure is an unknown outcome, not "never sent".
        let mut maybe_seen = false;
        loop {
            let attempt = retry + 1;
            let mut try_req = req.clone();
            // Ends (answered or dropped) before any retry wait, so the pacer knows it is no longer
            // on its way.
            let ticket = match self.pacer_for(auth) {
                Some(p) => Some(self.paced(p, PaceClass::of(req.method.as_str())).await),
                None => None,
            };
            self.authorize(&mut try_req, auth).await?;
            let t0 = self.clock.elapsed();
            let counter = if self.is_arm(auth) {
                &self.counts.arm
            } else {
                &self.counts.other
            };
            counter.fetch_add(1, Ordering::Relaxed);
            let result = self.transport.send(try_req).await;
            maybe_seen |= !matches!(&result, Err(e) if e.kind == TransportErrorKind::Connect);
            if let Ok(resp) = &result
                && resp.status == 429
            {
                self.counts.throttled.fetch_add(1, Ordering::Relaxed);
            }
            if let (Some(ticket), Ok(resp)) = (ticket, &result) {
                ticket.answered(&resp.headers, resp.status == 429, self.clock.elapsed());
            }
            let duration_ms = self.clock.elapsed().saturating_sub(t0).as_millis();
            // Redacted only when something logs it (`-v`), not for every request.
            let url = if tracing::enabled!(tracing::Level::DEBUG) {
                redact_url(&req.url)
            } else {
                String::new()
            };
            if let Ok(resp) = &result {
                tracing::debug!(
                    method = %req.method,
                    url = %url,
                    status = resp.status,
                    duration_ms = duration_ms as u64,
                    request_id = %resp.header("x-ms-request-id").unwrap_or("-"),
                    client_request_id = %client_request_id,
                    attempt,
                    "http"
                );
            }
            let result = match result {
                Ok(resp) if !(is_retryable_status(resp.status) && req.idempotent) => {
                    return Ok(resp);
                }
                other => other,
            };
            let server_wait = match &result {
                Ok(resp) => retry_after(&resp.headers, self.clock.now_utc()),
                Err(e) => {
                    tracing::debug!(
                        method = %req.method,
                        url = %url,
                        error = %e.message,
                        error_kind = e.kind.as_str(),
                        duration_ms = duration_ms as u64,
                        client_request_id = %client_request_id,
                        attempt,
                        "http transport error"
                    );
                    if !may_resend_after(e.kind, req.idempotent) {
                        tracing::debug!(
                            method = %req.method,
                            url = %url,
                            attempt,
                            reason = "not idempotent and the server may have seen it",
                            "http giving up"
                        );
                        return finish(result, maybe_seen);
                    }
                    None
                }
            };
            let give_up = |reason: &str| {
                tracing::debug!(method = %req.method, url = %url, attempt, reason, "http giving up");
            };
            if retry >= self.retry.max_retries {
                give_up("retry count exhausted");
                return finish(result, maybe_seen);
            }
            let delay = match server_wait {
                Some(wait) if wait > self.retry.max_retry_after => {
                    give_up("retry-after too long");
                    return finish(result, maybe_seen);
                }
                Some(wait) => wait,
                None => self.retry.jittered(retry, self.clock.random_unit()),
            };
            let spent = self.clock.elapsed().saturating_sub(start);
            if spent + delay > self.retry.max_total {
                give_up("retry time exhausted");
                return finish(result, maybe_seen);
            }
            tracing::debug!(
                method = %req.method,
                url = %url,
                attempt,
                next_attempt = attempt + 1,
                delay_ms = delay.as_millis() as u64,
                status = result.as_ref().map(|r| r.status).unwrap_or(0),
                "http retry"
            );
            self.clock.sleep(delay).await;
            retry += 1;
        }
    }

    /// Sends and turns any non-2xx into an error carrying the cloud's code and request id.
    pub(crate) async fn send_ok(&self, req: HttpRequest, auth: &Auth) -> Result<HttpResponse> {
        let described = req.describe();
        let resp = self.send(req, auth).await?;
        if resp.is_success() {
            Ok(resp)
        } else {
            Err(resp.error().with_context(described))
        }
    }

    async fn authorize(&self, req: &mut HttpRequest, auth: &Auth) -> Result<()> {
        // Storage requests (they carry x-ms-version) need a fresh x-ms-date on every try.
        if req.headers.contains_key("x-ms-version") {
            let date = httpdate::fmt_http_date(self.clock.now_utc());
            if let Ok(v) = HeaderValue::from_str(&date) {
                req.headers.insert("x-ms-date", v);
            }
        }
        let value = match auth {
            Auth::None => return Ok(()),
            Auth::Bearer(scope) => {
                let tokens = self.tokens.as_ref().ok_or_else(|| {
                    ProviderError::new(ErrorKind::Auth, "no credential configured for bearer auth")
                })?;
                let token = tokens.token(scope).await?;
                format!("Bearer {}", token.expose())
            }
            Auth::SharedKey(cred) => {
                cred.authorization(&req.method, &req.url, &req.headers, req.body.len())?
            }
            Auth::Secret(secret) => format!("Bearer {}", secret.expose()),
        };
        let mut v = HeaderValue::from_str(&value).map_err(|_| {
            ProviderError::new(ErrorKind::Auth, "credential is not a valid header value")
        })?;
        v.set_sensitive(true);
        req.headers.insert(reqwest::header::AUTHORIZATION, v);
        Ok(())
    }
}

fn finish(
    result: std::result::Result<HttpResponse, TransportError>,
    maybe_seen: bool,
) -> Result<HttpResponse> {
    // The message names the kind ("timed out", "connection lost", …). Only when every try failed to
    // connect did the server never see the request.
    result.map_err(|e| {
        let mut err = ProviderError::new(ErrorKind::Transport, e.message);
        err.unsent = !maybe_seen;
        err
    })
}

/// Query parameters whose values are never shown (SAS signatures, codes, secrets).
const SECRET_QUERY_KEYS: &[&str] = &[
    "sig",
    "signature",
    "code",
    "client_secret",
    "secret",
    "token",
    "access_token",
    "key",
];

/// The URL with secret query values replaced by `REDACTED`, and any user info dropped.
pub(crate) fn redact_url(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    if u.query().is_some() {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| {
                let secret = SECRET_QUERY_KEYS.iter().any(|s| k.eq_ignore_ascii_case(s));
                (
                    k.into_owned(),
                    if secret {
                        "REDACTED".to_owned()
                    } else {
                        v.into_owned()
                    },
                )
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.to_string()
}

#[cfg(test)]
pub(crate) mod fake {
    //! A scripted transport and a clock that only pretends to sleep.
    // The module's own file, by its full path (an inline module's `super`).
    use crate::provider::pipeline::*;
    use std::collections::VecDeque;
    use std::sync::Mutex;

    /// A scripted reply.
    pub(crate) enum Reply {
        Status(u16, Vec<(&'static str, String)>, String),
        /// The connection could not be made.
        ConnectError,
        /// A transport failure of the given kind.
        Fail(TransportErrorKind),
    }

    pub(crate) fn reply(status: u16, headers: &[(&'static str, &str)], body: &str) -> Reply {
        Reply::Status(
            status,
            headers.iter().map(|(k, v)| (*k, (*v).to_owned())).collect(),
            body.to_owned(),
        )
    }

    /// Answers from a queue (or a handler), records every request.
    #[derive(Default)]
    pub(crate) struct FakeTransport {
        pub(crate) replies: Mutex<VecDeque<Reply>>,
        pub(crate) requests: Mutex<Vec<HttpRequest>>,
    }

    impl FakeTransport {
        pub(crate) fn new(replies: Vec<Reply>) -> Arc<Self> {
            Arc::new(Self {
                replies: Mutex::new(replies.into()),
                requests: Mutex::default(),
            })
        }
        pub(crate) fn requests(&self) -> Vec<HttpRequest> {
            self.requests.lock().map(|r| r.clone()).unwrap_or_default()
        }
        pub(crate) fn remaining(&self) -> usize {
            self.replies.lock().map(|r| r.len()).unwrap_or_default()
        }
    }

    impl Transport for FakeTransport {
        fn send(
            &self,
            req: HttpRequest,
        ) -> BoxFuture<'static, std::result::Result<HttpResponse, TransportError>> {
            if let Ok(mut r) = self.requests.lock() {
                r.push(req);
            }
            let next = self.replies.lock().ok().and_then(|mut q| q.pop_front());
            Box::pin(async move {
                match next {
                    Some(Reply::Status(status, headers, body)) => {
                        let mut h = HeaderMap::new();
                        for (k, v) in headers {
                            h.insert(
                                k,
                                HeaderValue::from_str(&v).map_err(|_| {
                                    TransportError::new(TransportErrorKind::Decode, "bad header")
                                })?,
                            );
                        }
                        Ok(HttpResponse {
                            status,
                            headers: h,
                            body: Bytes::from(body),
                        })
                    }
                    Some(Reply::ConnectError) => Err(TransportError::new(
                        TransportErrorKind::Connect,
                        "connection refused",
                    )),
                    Some(Reply::Fail(kind)) => Err(TransportError::new(kind, kind.as_str())),
                    None => Err(TransportError::new(
                        TransportErrorKind::Connect,
                        "script exhausted",
                    )),
                }
            })
        }
    }

    /// Time advances only when someone sleeps; sleeps are recorded.
    #[derive(Default)]
    pub(crate) struct FakeClock {
        pub(crate) now: Mutex<Duration>,
        pub(crate) sleeps: Mutex<Vec<Duration>>,
    }

    impl FakeClock {
        pub(crate) fn sleeps(&self) -> Vec<Duration> {
            self.sleeps.lock().map(|s| s.clone()).unwrap_or_default()
        }
    }

    impl Clock for FakeClock {
        fn elapsed(&self) -> Duration {
            self.now.lock().map(|n| *n).unwrap_or_default()
        }
        fn now_utc(&self) -> SystemTime {
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000) + self.elapsed()
        }
        fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
            if let Ok(mut n) = self.now.lock() {
                *n += d;
            }
            if let Ok(mut s) = self.sleeps.lock() {
                s.push(d);
            }
            Box::pin(async {})
        }
        fn random_unit(&self) -> f64 {
            0.5
        }
    }

    /// A token source that hands out a fixed token.
    pub(crate) struct StaticTokens(pub(crate) &'static str);

    impl TokenSource for StaticTokens {
        fn token<'a>(
            &'a self,
            _scope: &'a str,
        ) -> BoxFuture<'a, Result<crate::provider::secret::Secret>> {
            Box::pin(async move { Ok(crate::provider::secret::Secret::new(self.0)) })
        }
        fn name(&self) -> &str {
            "static"
        }
    }

    pub(crate) fn pipeline(
        t: &Arc<FakeTransport>,
        c: &Arc<FakeClock>,
        retry: RetryPolicy,
    ) -> Pipeline {
        Pipeline::new(
            t.clone(),
            c.clone(),
            retry,
            Some(Arc::new(StaticTokens("tok-SECRET-123"))),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::fake::*;
    use super::*;

    fn get(url: &str) -> HttpRequest {
        HttpRequest::new(Method::GET, Url::parse(url).unwrap())
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_retries: 4,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
            max_total: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(30),
        }
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn retries_each_transient_status_then_succeeds() {
        for status in [408, 429, 500, 502, 503, 504] {
            let t = FakeTransport::new(vec![reply(status, &[], ""), reply(200, &[], "{}")]);
            let c = Arc::new(FakeClock::default());
            let resp = rt()
                .block_on(pipeline(&t, &c, policy()).send(get("https://arm.test/x"), &Auth::None))
                .unwrap();
            assert_eq!(resp.status, 200, "status {status}");
            assert_eq!(t.requests().len(), 2);
            // Full jitter with the fake's 0.5: half of the first ceiling (100 ms).
            assert_eq!(c.sleeps(), vec![Duration::from_millis(50)]);
        }
    }

    #[test]
    fn does_not_retry_client_errors() {
        for status in [400, 401, 403, 404, 409] {
            let t = FakeTransport::new(vec![reply(status, &[], "")]);
            let c = Arc::new(FakeClock::default());
            let resp = rt()
                .block_on(pipeline(&t, &c, policy()).send(get("https://arm.test/x"), &Auth::None))
                .unwrap();
            assert_eq!(resp.status, status);
            assert!(c.sleeps().is_empty());
        }
    }

    #[test]
    fn honours_retry_after_seconds() {
        let t = FakeTransport::new(vec![
            reply(429, &[("retry-after", "7")], ""),
            reply(200, &[], ""),
        ]);
        let c = Arc::new(FakeClock::default());
        rt().block_on(pipeline(&t, &c, policy()).send(get("https://arm.test/x"), &Auth::None))
            .unwrap();
        assert_eq!(c.sleeps(), vec![Duration::from_secs(7)]);
    }

    #[test]
    fn retry_count_is_bounded_and_last_response_returned() {
        let replies = (0..10).map(|_| reply(503, &[], "")).collect();
        let t = FakeTransport::new(replies);
        let c = Arc::new(FakeClock::default());
        let resp = rt()
            .block_on(pipeline(&t, &c, policy()).send(get("https://arm.test/x"), &Auth::None))
            .unwrap();
        assert_eq!(resp.status, 503);
        assert_eq!(t.requests().len(), 5, "1 try + 4 retries");
        // Exponential ceilings 100, 200, 400, 800 ms, halved by the pinned jitter.
        let expected: Vec<Duration> = [50, 100, 200, 400]
            .into_iter()
            .map(Duration::from_millis)
            .collect();
        assert_eq!(c.sleeps(), expected);
        let err = resp.error();
        assert!(err.is_retryable());
    }

    #[test]
    fn total_time_is_bounded() {
        let replies = (0..10)
            .map(|_| reply(429, &[("retry-after", "25")], ""))
            .collect();
        let t = FakeTransport::new(replies);
        let c = Arc::new(FakeClock::default());
        let resp = rt()
            .block_on(pipeline(&t, &c, policy()).send(get("https://arm.test/x"), &Auth::None))
            .unwrap();
        assert_eq!(resp.status, 429);
        // 25 s + 25 s = 50 s; a third wait would pass the 60 s budget.
        assert_eq!(c.sleeps().len(), 2);
    }

    #[test]
    fn too_long_retry_after_fails_fast() {
        let t = FakeTransport::new(vec![reply(429, &[("retry-after", "3600")], "")]);
        let c = Arc::new(FakeClock::default());
        let resp = rt()
            .block_on(pipeline(&t, &c, policy()).send(get("https://arm.test/x"), &Auth::None))
            .unwrap();
        assert_eq!(resp.status, 429);
        assert!(c.sleeps().is_empty());
    }

    #[test]
    fn connection_errors_are_retried_then_reported_as_transport() {
        let t = FakeTransport::new(vec![Reply::ConnectError, reply(200, &[], "")]);
        let c = Arc::new(FakeClock::default());
        let resp = rt()
            .block_on(pipeline(&t, &c, policy()).send(get("https://arm.test/x"), &Auth::None))
            .unwrap();
        assert_eq!(resp.status, 200);
        let t = FakeTransport::new((0..10).map(|_| Reply::ConnectError).collect());
        let err = rt()
            .block_on(pipeline(&t, &c, policy()).send(get("https://arm.test/x"), &Auth::None))
            .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Transport);
        assert!(err.is_retryable());
    }

    #[test]
    fn non_idempotent_requests_are_not_repeated_after_a_response() {
        let t = FakeTransport::new(vec![reply(503, &[], ""), reply(200, &[], "")]);
        let c = Arc::new(FakeClock::default());
        let req = get("https://arm.test/score").not_idempotent();
        let resp = rt()
            .block_on(pipeline(&t, &c, policy()).send(req, &Auth::None))
            .unwrap();
        assert_eq!(resp.status, 503);
        assert_eq!(t.remaining(), 1);
    }

    /// The bug: a POST that timed out, lost its connection or sent back an unreadable body after it was
    /// sent was sent again (the transport error was a bare string), so a scoring call could run twice.
    #[test]
    fn non_idempotent_requests_are_resent_only_after_a_connect_failure() {
        let post = || {
            HttpRequest::new(Method::POST, Url::parse("https://ep.test/score").unwrap()).body("{}")
        };
        for kind in [
            TransportErrorKind::Timeout,
            TransportErrorKind::Io,
            TransportErrorKind::Decode,
        ] {
            let t = FakeTransport::new(vec![Reply::Fail(kind), reply(200, &[], "")]);
            let c = Arc::new(FakeClock::default());
            let err = rt()
                .block_on(pipeline(&t, &c, policy()).send(post(), &Auth::None))
                .unwrap_err();
            assert_eq!(t.requests().len(), 1, "POST after {kind:?} was sent again");
            assert_eq!(err.kind, ErrorKind::Transport);
            assert!(err.message.contains(kind.as_str()), "{err}");
            assert!(c.sleeps().is_empty());
        }
        // No connection: the server never saw it, so it is sent again.
        let t = FakeTransport::new(vec![Reply::ConnectError, reply(200, &[], "")]);
        let c = Arc::new(FakeClock::default());
        let resp = rt()
            .block_on(pipeline(&t, &c, policy()).send(post(), &Auth::None))
            .unwrap();
        assert_eq!((resp.status, t.requests().len()), (200, 2));
    }

    /// A PUT whose tries all failed to connect never reached the server: it did not happen. One try
    /// that may have reached it (a timeout) makes the outcome unknown, whatever the last try says.
    #[test]
    fn only_a_request_that_never_connected_is_unsent() {
        let put = || HttpRequest::new(Method::PUT, Url::parse("https://arm.test/x").unwrap());
        let fails = |replies: Vec<Reply>| {
            let t = FakeTransport::new(replies);
            let c = Arc::new(FakeClock::default());
            let mut p = policy();
            p.max_retries = 1;
            rt().block_on(pipeline(&t, &c, p).send(put(), &Auth::None))
                .unwrap_err()
        };
        let err = fails(vec![Reply::ConnectError, Reply::ConnectError]);
        assert_eq!(err.kind, ErrorKind::Transport);
        assert!(err.unsent, "{err}");
        let err = fails(vec![
            Reply::Fail(TransportErrorKind::Timeout),
            Reply::ConnectError,
        ]);
        assert!(!err.unsent, "{err}");
        let err = fails(vec![
            Reply::Fail(TransportErrorKind::Io),
            Reply::Fail(TransportErrorKind::Io),
        ]);
        assert!(!err.unsent, "{err}");
    }

    #[test]
    fn idempotence_follows_the_method_unless_the_caller_marks_it() {
        let url = Url::parse("https://x.test/").unwrap();
        for (method, idempotent) in [
            (Method::GET, true),
            (Method::PUT, true),
            (Method::POST, false),
            (Method::PATCH, false),
        ] {
            assert_eq!(HttpRequest::new(method, url.clone()).idempotent, idempotent);
        }
        assert!(
            HttpRequest::new(Method::POST, url.clone())
                .idempotent()
                .idempotent
        );
        assert!(
            !HttpRequest::new(Method::PUT, url)
                .not_idempotent()
                .idempotent
        );
    }

    #[test]
    fn idempotent_requests_are_resent_after_any_transport_failure() {
        for method in [Method::GET, Method::PUT, Method::DELETE, Method::HEAD] {
            for kind in [
                TransportErrorKind::Connect,
                TransportErrorKind::Timeout,
                TransportErrorKind::Io,
                TransportErrorKind::Decode,
            ] {
                let t = FakeTransport::new(vec![Reply::Fail(kind), reply(200, &[], "")]);
                let c = Arc::new(FakeClock::default());
                let req =
                    HttpRequest::new(method.clone(), Url::parse("https://arm.test/x").unwrap());
                let resp = rt()
                    .block_on(pipeline(&t, &c, policy()).send(req, &Auth::None))
                    .unwrap();
                assert_eq!(resp.status, 200, "{method} after {kind:?}");
                assert_eq!(t.requests().len(), 2);
            }
        }
        // A POST its caller marks as safe (a read-only action) too.
        let t = FakeTransport::new(vec![
            Reply::Fail(TransportErrorKind::Timeout),
            reply(200, &[], ""),
        ]);
        let c = Arc::new(FakeClock::default());
        let req = HttpRequest::new(
            Method::POST,
            Url::parse("https://arm.test/listKeys").unwrap(),
        )
        .idempotent();
        let resp = rt()
            .block_on(pipeline(&t, &c, policy()).send(req, &Auth::None))
            .unwrap();
        assert_eq!(resp.status, 200);
    }

    #[test]
    fn bearer_is_added_per_try_and_client_request_id_is_stable() {
        let t = FakeTransport::new(vec![reply(500, &[], ""), reply(200, &[], "")]);
        let c = Arc::new(FakeClock::default());
        let auth = Auth::Bearer("https://management.azure.com/.default".into());
        rt().block_on(pipeline(&t, &c, policy()).send(get("https://arm.test/x"), &auth))
            .unwrap();
        let reqs = t.requests();
        assert_eq!(reqs.len(), 2);
        for r in &reqs {
            assert_eq!(
                r.headers.get("authorization").unwrap(),
                "Bearer tok-SECRET-123"
            );
        }
        assert_eq!(
            reqs[0].headers.get("x-ms-client-request-id"),
            reqs[1].headers.get("x-ms-client-request-id")
        );
        assert!(reqs[0].headers.get("x-ms-client-request-id").is_some());
        // Debug never shows header values.
        assert!(!format!("{:?}", reqs[0]).contains("tok-SECRET"));
    }

    #[test]
    fn arm_requests_are_paced_and_counted_and_the_data_plane_is_not() {
        use crate::provider::pace::{PaceLimits, Pacer};
        let arm = "https://management.azure.com/.default";
        let replies = (0..6).map(|_| reply(200, &[], "")).collect();
        let t = FakeTransport::new(replies);
        let c = Arc::new(FakeClock::default());
        let pacer = Arc::new(Pacer::new(
            PaceLimits::parse("reads=2/4,writes=1/2").unwrap(),
            Duration::ZERO,
        ));
        let p = pipeline(&t, &c, policy()).with_arm(arm, Some(pacer.clone()));
        let bearer = Auth::Bearer(arm.into());
        rt().block_on(async {
            for _ in 0..3 {
                p.send(get("https://arm.test/x"), &bearer).await.unwrap();
            }
            // The blob data plane (another audience) is never paced.
            let storage = Auth::Bearer("https://storage.azure.com/.default".into());
            p.send(get("https://acct.blob.test/c/b"), &storage)
                .await
                .unwrap();
            let put = HttpRequest::new(Method::PUT, Url::parse("https://arm.test/y").unwrap());
            p.send(put.clone(), &bearer).await.unwrap();
            p.send(put, &bearer).await.unwrap();
        });
        // Reads: 2 at once, the 3rd waits 1/4 s; writes: 1 at once (a bucket of 1 holds no more
        // however long it waited), the next 1/2 s; each wait plus the skew allowance.
        assert_eq!(
            c.sleeps(),
            [
                Duration::from_millis(250) + PACE_SKEW,
                Duration::from_millis(500) + PACE_SKEW
            ]
        );
        let n = p.counts();
        assert_eq!((n.arm, n.other, n.throttled, n.total()), (5, 1, 0, 6));
        assert_eq!(pacer.delayed(), (1, 1, 0));
    }

    #[test]
    fn throttled_answers_are_counted_and_remaining_headers_slow_the_pacer() {
        use crate::provider::pace::{PaceLimits, Pacer};
        let arm = "https://management.azure.com/.default";
        let t = FakeTransport::new(vec![
            reply(
                429,
                &[
                    ("retry-after", "1"),
                    ("x-ms-ratelimit-remaining-subscription-reads", "0"),
                ],
                r#"{"error":{"code":"SubscriptionRequestsThrottled","message":"m"}}"#,
            ),
            reply(200, &[], ""),
        ]);
        let c = Arc::new(FakeClock::default());
        let pacer = Arc::new(Pacer::new(PaceLimits::ARM, Duration::ZERO));
        let p = pipeline(&t, &c, policy()).with_arm(arm, Some(pacer.clone()));
        rt().block_on(p.send(get("https://arm.test/x"), &Auth::Bearer(arm.into())))
            .unwrap();
        // The server's Retry-After (1 s) refilled 25 read tokens, so the retry did not wait more.
        assert_eq!(c.sleeps(), [Duration::from_secs(1)]);
        assert_eq!(p.counts().throttled, 1);
        assert_eq!(p.counts().arm, 2);
    }

    use crate::provider::testlog::capture_logs;

    #[test]
    fn debug_log_has_call_details_and_no_secrets() {
        let t = FakeTransport::new(vec![
            reply(503, &[("x-ms-request-id", "rid-1")], ""),
            reply(201, &[("x-ms-request-id", "rid-2")], ""),
        ]);
        let c = Arc::new(FakeClock::default());
        let logs = capture_logs(|| {
            let req = HttpRequest::new(
                Method::PUT,
                Url::parse("https://acct.blob.test/c/b?sv=1&sig=SIGSECRET").unwrap(),
            )
            .header("x-ms-version", "2025-11-05")
            .unwrap()
            .body("payload");
            let key = SharedKeyCredential::new("acct", "S0VZU0VDUkVU").unwrap();
            rt().block_on(pipeline(&t, &c, policy()).send(req, &Auth::SharedKey(Arc::new(key))))
                .unwrap();
            let bearer = Auth::Bearer("scope".into());
            let t2 = FakeTransport::new(vec![reply(200, &[("x-ms-request-id", "rid-3")], "")]);
            rt().block_on(
                pipeline(&t2, &c, policy()).send(get("https://arm.test/y?api-version=1"), &bearer),
            )
            .unwrap();
        });
        for needle in [
            "method=PUT",
            "url=https://acct.blob.test/c/b",
            "status=503",
            "status=201",
            "duration_ms=",
            "request_id=rid-1",
            "request_id=rid-2",
            "request_id=rid-3",
            "attempt=2",
            "http retry",
            "client_request_id=",
        ] {
            assert!(logs.contains(needle), "missing {needle} in:\n{logs}");
        }
        let auth_header = t.requests()[0]
            .headers
            .get("authorization")
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let signature = auth_header.rsplit(':').next().unwrap().to_owned();
        for secret in [
            "SIGSECRET",
            "S0VZU0VDUkVU",
            "tok-SECRET-123",
            signature.as_str(),
            "SharedKey",
            "Bearer",
        ] {
            assert!(!logs.contains(secret), "{secret} leaked into logs:\n{logs}");
        }
    }

    #[test]
    fn redacts_query_secrets() {
        let u =
            Url::parse("https://a.blob.test/c/b?sv=2020&sig=abc%2B&api-version=1&client_secret=s")
                .unwrap();
        let r = redact_url(&u);
        assert!(r.contains("sig=REDACTED"), "{r}");
        assert!(r.contains("client_secret=REDACTED"));
        assert!(r.contains("api-version=1"));
        assert!(!r.contains("abc"));
    }
}
