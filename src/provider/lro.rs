//! Long-running ARM operations (contract section 3.3): given the first response of a PUT, PATCH, POST or
//! DELETE, wait until the operation is over and return the final resource.
//!
//! * pattern B: `Azure-AsyncOperation` → poll its `status` until `Succeeded`/`Failed`/`Canceled`, then GET
//!   the original URL (it wins over `Location` when both are present);
//! * patterns A and C: `202` + `Location` → poll the Location URL until it stops answering 202;
//! * otherwise, a body whose `provisioningState` is not terminal → GET the resource until it is.
//!
//! Waits come from `Retry-After` (capped) or a default, through the pipeline's clock; the whole operation
//! is bounded by a per-type timeout (and by `x-ms-async-operation-timeout` when the service sends one).
//! An explicit `Retry-After: 0` means "poll now": the first such answer is followed at once, and each
//! further one in a row by a back-off that doubles up to the default wait, so a service that keeps
//! answering 0 for an operation still running is never polled in a tight loop.
//! A `Failed`/`Canceled` outcome is an error carrying the operation's error code and message.
//! It never sleeps except through the pipeline's clock, and never polls without a deadline.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;
use url::Url;

use super::contract::Result;
use super::error::{ErrorKind, ProviderError};
use super::pipeline::{Auth, HttpRequest, HttpResponse, Pipeline};
use super::retry::retry_after;

/// Polling settings for one operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LroOptions {
    /// Give up (with [`ErrorKind::Timeout`]) after this long.
    pub timeout: Duration,
    /// Wait between polls when the service sends no `Retry-After`.
    pub default_poll: Duration,
    /// Upper bound of one wait, whatever `Retry-After` says.
    pub max_poll: Duration,
}

impl Default for LroOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(30 * 60),
            default_poll: Duration::from_secs(5),
            max_poll: Duration::from_secs(30),
        }
    }
}

/// Terminal `status` / `provisioningState` values.
pub(crate) fn is_terminal(state: &str) -> bool {
    ["Succeeded", "Failed", "Canceled", "Cancelled"]
        .iter()
        .any(|s| s.eq_ignore_ascii_case(state))
}

fn is_success_state(state: &str) -> bool {
    state.eq_ignore_ascii_case("Succeeded")
}

/// `properties.provisioningState` of a resource body.
pub fn provisioning_state(body: &Value) -> Option<&str> {
    body.pointer("/properties/provisioningState")
        .and_then(Value::as_str)
}

/// Waits for the operation `initial` started. `resource_url` is the original request URL (GET target
/// for pattern B and rule 3). Returns the final resource body, or `None` for a delete.
pub async fn wait(
    pipeline: &Pipeline,
    auth: &Auth,
    method: &Method,
    resource_url: &Url,
    initial: HttpResponse,
    options: &LroOptions,
    on_status: &(dyn Fn(&str) + Send + Sync),
) -> Result<Option<Value>> {
    let what = format!("{method} {}", super::pipeline::redact_url(resource_url));
    if !initial.is_success() {
        return Err(initial.error().with_context(what));
    }
    let is_delete = method == Method::DELETE;
    let clock = pipeline.clock().clone();
    let mut timeout = options.timeout;
    if let Some(t) = initial
        .header("x-ms-async-operation-timeout")
        .and_then(crate::iso8601::parse)
    {
        timeout = timeout.min(t.max(Duration::from_secs(1)));
    }
    let deadline = clock.elapsed() + timeout;
    let body = initial.json().unwrap_or(Value::Null);
    if let Some(state) = provisioning_state(&body) {
        on_status(state);
    }
    let mut poll = Poller {
        pipeline,
        auth,
        options,
        deadline,
        what: &what,
        zero_hints: 0,
    };

    let final_body = if let Some(url) = header_url(&initial, "azure-asyncoperation") {
        // Pattern B.
        let mut last = initial.clone();
        loop {
            poll.wait(&last, "InProgress").await?;
            last = poll.get(&url).await?;
            if !last.is_success() {
                return Err(last
                    .error()
                    .with_context(format!("{what}: polling operation status")));
            }
            let status_body = last.json()?;
            let status = status_body
                .get("status")
                .and_then(Value::as_str)
                .unwrap_or("InProgress")
                .to_owned();
            on_status(&status);
            if is_terminal(&status) {
                if !is_success_state(&status) {
                    return Err(operation_failed(&status, &status_body, &last).with_context(what));
                }
                break;
            }
        }
        if is_delete {
            return Ok(None);
        }
        let resp = poll.get(resource_url).await?;
        if !resp.is_success() {
            return Err(resp.error().with_context(what));
        }
        resp.json()?
    } else if initial.status == 202
        && let Some(url) = header_url(&initial, "location")
    {
        // Patterns A and C.
        let mut last = initial.clone();
        loop {
            poll.wait(&last, "InProgress").await?;
            last = poll.get(&url).await?;
            if last.status == 202 {
                on_status("InProgress");
                continue;
            }
            if is_delete && (last.status == 404 || last.status == 204) {
                return Ok(None);
            }
            if !last.is_success() {
                return Err(last
                    .error()
                    .with_context(format!("{what}: polling operation result")));
            }
            break;
        }
        if is_delete {
            return Ok(None);
        }
        let polled = last.json().unwrap_or(Value::Null);
        if polled.get("id").is_some() || polled.get("properties").is_some() {
            polled
        } else {
            let resp = poll.get(resource_url).await?;
            if !resp.is_success() {
                return Err(resp.error().with_context(what));
            }
            resp.json()?
        }
    } else {
        if is_delete {
            return Ok(None);
        }
        body
    };

    // Rule 3 (and a final check for the other patterns): wait for a terminal provisioningState.
    let mut current = final_body;
    while let Some(state) = provisioning_state(&current).map(str::to_owned) {
        if is_terminal(&state) {
            if !is_success_state(&state) {
                return Err(operation_failed(&state, &current, &initial).with_context(what));
            }
            break;
        }
        poll.pause(&state).await?;
        let resp = poll.get(resource_url).await?;
        if !resp.is_success() {
            return Err(resp.error().with_context(what));
        }
        current = resp.json()?;
        if let Some(s) = provisioning_state(&current) {
            on_status(s);
        }
    }
    Ok(Some(current))
}

/// Waits until a resource that another operation is still changing (its `provisioningState` is
/// `Creating`, `Updating`, …) is settled, and returns its body then (`None` once it is gone). `body` is
/// the GET answer already in hand: a settled body is returned with no request. A terminal state,
/// `Failed` included, ends the wait: the caller's own write is what may repair a failed resource.
///
/// Azure ML refuses a write to an endpoint while an operation is running on it (409 "another operation
/// … is in progress", field reports such as Azure/azure-cli#17075 and Azure/azure-sdk-for-net#36961,
/// which refused a deployment under an endpoint still `Updating`); after a run was killed mid-write, its
/// operation may still be running when the next run starts.
pub async fn settle(
    pipeline: &Pipeline,
    auth: &Auth,
    resource_url: &Url,
    body: Value,
    options: &LroOptions,
    on_status: &(dyn Fn(&str) + Send + Sync),
) -> Result<Option<Value>> {
    let what = format!("waiting for {}", super::pipeline::redact_url(resource_url));
    let deadline = pipeline.clock().elapsed() + options.timeout;
    let mut poll = Poller {
        pipeline,
        auth,
        options,
        deadline,
        what: &what,
        zero_hints: 0,
    };
    let mut current = body;
    while let Some(state) = provisioning_state(&current)
        .filter(|s| !is_terminal(s))
        .map(str::to_owned)
    {
        on_status(&state);
        poll.pause(&state).await?;
        let resp = poll.get(resource_url).await?;
        match resp.status {
            404 => return Ok(None),
            _ if resp.is_success() => current = resp.json()?,
            _ => return Err(resp.error().with_context(what)),
        }
    }
    Ok(Some(current))
}

struct Poller<'a> {
    pipeline: &'a Pipeline,
    auth: &'a Auth,
    options: &'a LroOptions,
    deadline: Duration,
    what: &'a str,
    /// Answers in a row that said `Retry-After: 0` (see [`zero_hint_delay`]).
    zero_hints: u32,
}

/// The wait after the `n`-th answer in a row (0-based) that said `Retry-After: 0`. The header's value
/// is a number of seconds to wait (RFC 9110, section 10.2.3: `delay-seconds`, a non-negative
/// integer), so 0 asks for the next poll now: the first one is sent at once, which is what makes an
/// operation the service finished at once (the local cloud's, with `--retry-after-s 0`) cost no
/// sleep. An operation still running after that is polled after `default_poll / 16`, doubling up to
/// `default_poll`: a service that keeps answering 0 gets a handful of quick polls, never a tight loop.
fn zero_hint_delay(n: u32, default_poll: Duration) -> Duration {
    if n == 0 {
        return Duration::ZERO;
    }
    let factor = 1u32.checked_shl((n - 1).min(16)).unwrap_or(u32::MAX);
    (default_poll / 16).saturating_mul(factor).min(default_poll)
}

impl Poller<'_> {
    async fn wait(&mut self, last: &HttpResponse, state: &str) -> Result<()> {
        let clock = self.pipeline.clock();
        let delay = match retry_after(&last.headers, clock.now_utc()) {
            Some(hint) if hint.is_zero() => {
                let delay = zero_hint_delay(self.zero_hints, self.options.default_poll);
                self.zero_hints = self.zero_hints.saturating_add(1);
                delay
            }
            hint => {
                self.zero_hints = 0;
                hint.unwrap_or(self.options.default_poll)
                    .min(self.options.max_poll)
            }
        };
        let now = clock.elapsed();
        if now + delay > self.deadline {
            let mut e = ProviderError::new(
                ErrorKind::Timeout,
                format!(
                    "operation still {state} after {}s",
                    self.options.timeout.as_secs()
                ),
            );
            e.context = Some(self.what.to_owned());
            return Err(e);
        }
        if !delay.is_zero() {
            clock.sleep(delay).await;
        }
        Ok(())
    }

    /// Waits the default poll interval: for a resource read, which carries no `Retry-After`.
    async fn pause(&mut self, state: &str) -> Result<()> {
        let no_hint = HttpResponse {
            status: 200,
            headers: Default::default(),
            body: Default::default(),
        };
        self.wait(&no_hint, state).await
    }

    async fn get(&self, url: &Url) -> Result<HttpResponse> {
        self.pipeline
            .send(HttpRequest::new(Method::GET, url.clone()), self.auth)
            .await
    }
}

fn header_url(resp: &HttpResponse, name: &str) -> Option<Url> {
    resp.header(name).and_then(|v| Url::parse(v).ok())
}

/// The error for a `Failed`/`Canceled` operation, with the code and message of its `error` object
/// (and of its first-level details).
fn operation_failed(state: &str, body: &Value, resp: &HttpResponse) -> ProviderError {
    let err = body
        .get("error")
        .or_else(|| body.pointer("/properties/error"));
    let code = err
        .and_then(|e| e.get("code"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let mut message = err
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if let Some(details) = err.and_then(|e| e.get("details")).and_then(Value::as_array) {
        for d in details {
            let c = d.get("code").and_then(Value::as_str).unwrap_or_default();
            let m = d.get("message").and_then(Value::as_str).unwrap_or_default();
            if !c.is_empty() || !m.is_empty() {
                message.push_str(&format!("; {c}: {m}"));
            }
        }
    }
    if message.is_empty() {
        message = format!("operation ended {state}");
    }
    ProviderError {
        kind: ErrorKind::Failed,
        status: None,
        code,
        message,
        request_id: resp.header("x-ms-request-id").map(str::to_owned),
        context: None,
        unsent: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::pipeline::fake::*;
    use crate::provider::retry::RetryPolicy;
    use std::sync::{Arc, Mutex};

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    fn opts() -> LroOptions {
        LroOptions {
            timeout: Duration::from_secs(100),
            default_poll: Duration::from_secs(2),
            max_poll: Duration::from_secs(10),
        }
    }

    const RES: &str = "https://arm.test/subscriptions/s/resourceGroups/rg/providers/P/x/a";

    fn run(
        initial: Reply,
        rest: Vec<Reply>,
        method: Method,
    ) -> (
        Result<Option<Value>>,
        Arc<FakeTransport>,
        Arc<FakeClock>,
        Vec<String>,
    ) {
        let mut all = vec![initial];
        all.extend(rest);
        let t = FakeTransport::new(all);
        let c = Arc::new(FakeClock::default());
        let p = pipeline(&t, &c, RetryPolicy::none());
        let url = Url::parse(RES).unwrap();
        let statuses = Arc::new(Mutex::new(Vec::new()));
        let s2 = statuses.clone();
        let result = rt().block_on(async {
            let first = p
                .send(HttpRequest::new(method.clone(), url.clone()), &Auth::None)
                .await
                .unwrap();
            wait(
                &p,
                &Auth::None,
                &method,
                &url,
                first,
                &opts(),
                &move |s: &str| s2.lock().unwrap().push(s.to_owned()),
            )
            .await
        });
        let seen = statuses.lock().unwrap().clone();
        (result, t, c, seen)
    }

    #[test]
    fn pattern_a_location_202_until_done() {
        let loc = "https://arm.test/providers/Microsoft.Storage/locations/eastus/asyncoperations/1?monitor=true";
        let (r, t, c, _) = run(
            reply(202, &[("location", loc), ("retry-after", "3")], ""),
            vec![
                reply(202, &[("location", loc), ("retry-after", "1")], ""),
                reply(
                    200,
                    &[],
                    r#"{"id":"x","properties":{"provisioningState":"Succeeded"}}"#,
                ),
            ],
            Method::PUT,
        );
        let body = r.unwrap().unwrap();
        assert_eq!(body["id"], "x");
        let reqs = t.requests();
        assert_eq!(reqs.len(), 3);
        assert!(reqs[1].url.as_str().contains("asyncoperations/1"));
        assert_eq!(
            c.sleeps(),
            vec![Duration::from_secs(3), Duration::from_secs(1)]
        );
    }

    /// An operation the service finished at once, answered with an explicit `Retry-After: 0`, used to
    /// cost a full default wait (200 ms per storage account on the local cloud): the zero was taken as
    /// no hint.
    #[test]
    fn explicit_zero_retry_after_polls_at_once() {
        let loc = "https://arm.test/providers/Microsoft.Storage/locations/eastus/asyncoperations/2?monitor=true";
        let (r, t, c, _) = run(
            reply(202, &[("location", loc), ("retry-after", "0")], ""),
            vec![reply(
                200,
                &[],
                r#"{"id":"x","properties":{"provisioningState":"Succeeded"}}"#,
            )],
            Method::PUT,
        );
        assert_eq!(r.unwrap().unwrap()["id"], "x");
        assert_eq!(t.requests().len(), 2);
        assert_eq!(c.sleeps(), Vec::<Duration>::new());
    }

    /// A service that keeps answering `Retry-After: 0` while the operation runs is polled after a
    /// back-off that doubles up to the default wait, not in a tight loop; a real hint resets it.
    #[test]
    fn repeated_zero_retry_after_backs_off_up_to_the_default() {
        let loc = "https://arm.test/mfeOperationResults/7";
        let zero = || reply(202, &[("location", loc), ("retry-after", "0")], "");
        let (r, _, c, _) = run(
            zero(),
            vec![
                zero(),
                zero(),
                zero(),
                zero(),
                zero(),
                zero(),
                reply(202, &[("location", loc), ("retry-after", "3")], ""),
                zero(),
                zero(),
                reply(200, &[], r#"{"id":"d"}"#),
            ],
            Method::PUT,
        );
        assert_eq!(r.unwrap().unwrap()["id"], "d");
        let ms = Duration::from_millis;
        // Default 2 s: at once, then 125, 250, 500, 1000 ms, then 2 s (capped at the default), the
        // hinted 3 s, and after it the zeros start over.
        assert_eq!(
            c.sleeps(),
            vec![
                ms(125),
                ms(250),
                ms(500),
                ms(1000),
                ms(2000),
                ms(2000),
                ms(3000),
                ms(125),
            ]
        );
    }

    #[test]
    fn pattern_b_async_operation_then_get_original() {
        let op = "https://arm.test/providers/Microsoft.MachineLearningServices/locations/eastus/mfeOperationsStatus/9";
        let (r, t, c, seen) = run(
            reply(
                201,
                &[("azure-asyncoperation", op)],
                r#"{"properties":{"provisioningState":"Creating"}}"#,
            ),
            vec![
                reply(200, &[], r#"{"status":"InProgress"}"#),
                reply(200, &[("retry-after", "60")], r#"{"status":"Succeeded"}"#),
                reply(
                    200,
                    &[],
                    r#"{"id":"e","properties":{"provisioningState":"Succeeded","scoringUri":"u"}}"#,
                ),
            ],
            Method::PUT,
        );
        let body = r.unwrap().unwrap();
        assert_eq!(body["properties"]["scoringUri"], "u");
        assert_eq!(t.requests()[3].url.as_str(), RES);
        // No Retry-After on the first response: default 2 s; then 2 s again.
        assert_eq!(
            c.sleeps(),
            vec![Duration::from_secs(2), Duration::from_secs(2)]
        );
        assert_eq!(seen, vec!["Creating", "InProgress", "Succeeded"]);
    }

    #[test]
    fn pattern_b_failed_carries_the_operation_error() {
        let op = "https://arm.test/op/1";
        let (r, _, _, _) = run(
            reply(201, &[("azure-asyncoperation", op)], "{}"),
            vec![reply(
                200,
                &[("x-ms-request-id", "rq-7")],
                r#"{"status":"Failed","error":{"code":"DeploymentFailed","message":"init() failed","details":[{"code":"UserError","message":"403 reading blob"}]}}"#,
            )],
            Method::PUT,
        );
        let e = r.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Failed);
        assert_eq!(e.code.as_deref(), Some("DeploymentFailed"));
        assert!(e.message.contains("init() failed"));
        assert!(e.message.contains("403 reading blob"));
        assert_eq!(e.request_id.as_deref(), Some("rq-7"));
    }

    #[test]
    fn pattern_c_patch_and_delete() {
        let loc = "https://arm.test/mfeOperationResults/5";
        let (r, _, _, _) = run(
            reply(202, &[("location", loc)], ""),
            vec![
                reply(202, &[("location", loc)], ""),
                reply(200, &[], r#"{"id":"d","sku":{"capacity":2}}"#),
            ],
            Method::PATCH,
        );
        assert_eq!(r.unwrap().unwrap()["sku"]["capacity"], 2);
        let (r, t, _, _) = run(
            reply(202, &[("location", loc)], ""),
            vec![reply(204, &[], "")],
            Method::DELETE,
        );
        assert_eq!(r.unwrap(), None);
        assert_eq!(t.requests().len(), 2);
        let (r, t, _, _) = run(reply(200, &[], ""), vec![], Method::DELETE);
        assert_eq!(r.unwrap(), None);
        assert_eq!(t.requests().len(), 1);
    }

    #[test]
    fn rule_three_polls_provisioning_state() {
        let (r, _, _, seen) = run(
            reply(
                200,
                &[],
                r#"{"properties":{"provisioningState":"Updating"}}"#,
            ),
            vec![
                reply(
                    200,
                    &[],
                    r#"{"properties":{"provisioningState":"Updating"}}"#,
                ),
                reply(200, &[], r#"{"properties":{"provisioningState":"Failed"}}"#),
            ],
            Method::PUT,
        );
        let e = r.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Failed);
        assert_eq!(seen, vec!["Updating", "Updating", "Failed"]);
    }

    #[test]
    fn times_out_with_a_clear_error() {
        let op = "https://arm.test/op/2";
        let replies = (0..200)
            .map(|_| reply(200, &[("retry-after", "10")], r#"{"status":"InProgress"}"#))
            .collect();
        let (r, _, c, _) = run(
            reply(201, &[("azure-asyncoperation", op)], "{}"),
            replies,
            Method::PUT,
        );
        let e = r.unwrap_err();
        assert_eq!(e.kind, ErrorKind::Timeout);
        assert!(e.to_string().contains("still InProgress"), "{e}");
        assert!(crate::provider::pipeline::Clock::elapsed(&*c) <= Duration::from_secs(100));
    }

    #[test]
    fn service_timeout_header_shortens_the_wait() {
        let op = "https://arm.test/op/3";
        let replies = (0..200)
            .map(|_| reply(200, &[], r#"{"status":"InProgress"}"#))
            .collect();
        let (r, _, c, _) = run(
            reply(
                201,
                &[
                    ("azure-asyncoperation", op),
                    ("x-ms-async-operation-timeout", "PT10S"),
                ],
                "{}",
            ),
            replies,
            Method::PUT,
        );
        assert_eq!(r.unwrap_err().kind, ErrorKind::Timeout);
        assert!(crate::provider::pipeline::Clock::elapsed(&*c) <= Duration::from_secs(10));
    }
}
