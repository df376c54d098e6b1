//! The shared ARM client: GET/PUT/PATCH/POST/DELETE on ARM paths with the api-version, the Bearer token
//! for the ARM audience, long-running-operation completion and list paging. Every resource type goes
//! through here; only what is truly special per type lives in `resources/`.
//!
//! Conventions: a 404 on GET is `Ok(None)`; a 404 or 204 on DELETE is success (already gone).
//! It never builds a URL from a path with `?`, `#` or an empty segment, and never retries a write on its
//! own (the pipeline decides what is safe to repeat).

use reqwest::Method;
use serde_json::Value;
use url::Url;

use super::contract::Result;
use super::error::ProviderError;
use super::lro::{self, LroOptions};
use super::pipeline::{Auth, HttpRequest, Pipeline};

/// An ARM endpoint plus the pipeline and token scope to reach it.
#[derive(Debug, Clone)]
pub struct Arm {
    pipeline: Pipeline,
    base: Url,
    auth: Auth,
}

/// A progress callback for operation status words.
pub(crate) type StatusFn<'a> = &'a (dyn Fn(&str) + Send + Sync);

fn no_status(_: &str) {}

impl Arm {
    /// An ARM client at `base` authenticating with tokens for `scope`.
    pub fn new(pipeline: Pipeline, base: Url, scope: String) -> Self {
        Self {
            pipeline,
            base,
            auth: Auth::Bearer(scope),
        }
    }

    /// The pipeline (shared with the blob data plane).
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// `{base}{path}?api-version=…&extra…`. `path` is an ARM id-like path starting with `/`.
    pub fn url(&self, path: &str, api_version: &str, extra: &[(&str, &str)]) -> Result<Url> {
        if !path.starts_with('/') || path.contains(['?', '#']) || path.contains("//") {
            return Err(ProviderError::invalid(format!("invalid arm path {path:?}")));
        }
        let mut url = Url::parse(&format!(
            "{}{path}",
            self.base.as_str().trim_end_matches('/')
        ))
        .map_err(|e| ProviderError::invalid(format!("invalid arm path {path:?}: {e}")))?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("api-version", api_version);
            for (k, v) in extra {
                q.append_pair(k, v);
            }
        }
        Ok(url)
    }

    /// GET; `Ok(None)` on 404.
    pub async fn get(&self, path: &str, api_version: &str) -> Result<Option<Value>> {
        let url = self.url(path, api_version, &[])?;
        self.get_url(url).await
    }

    /// GET of a full URL; `Ok(None)` on 404.
    pub(crate) async fn get_url(&self, url: Url) -> Result<Option<Value>> {
        let req = HttpRequest::new(Method::GET, url);
        let what = req.describe();
        let resp = self.pipeline.send(req, &self.auth).await?;
        match resp.status {
            404 => Ok(None),
            _ if resp.is_success() => resp.json().map(Some),
            _ => Err(resp.error().with_context(what)),
        }
    }

    /// GET, then wait while another operation is changing the resource ([`lro::settle`]); `Ok(None)`
    /// when it does not exist. For a read-modify-write that must not collide with a running operation.
    pub(crate) async fn get_settled(
        &self,
        path: &str,
        api_version: &str,
        lro: &LroOptions,
        status: StatusFn<'_>,
    ) -> Result<Option<Value>> {
        let url = self.url(path, api_version, &[])?;
        match self.get_url(url.clone()).await? {
            Some(body) => lro::settle(&self.pipeline, &self.auth, &url, body, lro, status).await,
            None => Ok(None),
        }
    }

    /// PUT `body`, then wait for the operation; returns the final resource.
    pub async fn put(
        &self,
        path: &str,
        api_version: &str,
        body: &Value,
        lro: &LroOptions,
        status: StatusFn<'_>,
    ) -> Result<Value> {
        self.write(Method::PUT, path, api_version, Some(body), lro, status)
            .await
    }

    /// PATCH `body`, then wait for the operation; returns the final resource.
    pub(crate) async fn patch(
        &self,
        path: &str,
        api_version: &str,
        body: &Value,
        lro: &LroOptions,
        status: StatusFn<'_>,
    ) -> Result<Value> {
        self.write(Method::PATCH, path, api_version, Some(body), lro, status)
            .await
    }

    async fn write(
        &self,
        method: Method,
        path: &str,
        api_version: &str,
        body: Option<&Value>,
        lro: &LroOptions,
        status: StatusFn<'_>,
    ) -> Result<Value> {
        let url = self.url(path, api_version, &[])?;
        let mut req = HttpRequest::new(method.clone(), url.clone());
        if let Some(b) = body {
            req = req.json(b);
        }
        if method == Method::PATCH {
            // ARM's PATCH is a JSON merge patch (RFC 7396) of the resource: applying the same body twice
            // leaves the resource as applying it once, so it may be resent like a PUT.
            req = req.idempotent();
        }
        let what = req.describe();
        let first = self.pipeline.send(req, &self.auth).await?;
        if !first.is_success() {
            return Err(first.error().with_context(what));
        }
        // The resource URL for polling is the request URL (api-version included). The write was
        // answered: a failure from here on is an unknown outcome, never "not sent".
        let done = lro::wait(
            &self.pipeline,
            &self.auth,
            &method,
            &url,
            first,
            lro,
            status,
        )
        .await
        .map_err(ProviderError::after_sent)?;
        match done {
            Some(v) if !v.is_null() => Ok(v),
            _ => self
                .get_url(url)
                .await
                .map_err(ProviderError::after_sent)?
                .ok_or_else(|| {
                    ProviderError::new(
                        super::error::ErrorKind::NotFound,
                        "resource missing right after it was written",
                    )
                    .with_context(what)
                }),
        }
    }

    /// DELETE and wait until gone; 404/204 are success.
    pub async fn delete(
        &self,
        path: &str,
        api_version: &str,
        lro: &LroOptions,
        status: StatusFn<'_>,
    ) -> Result<()> {
        let url = self.url(path, api_version, &[])?;
        let req = HttpRequest::new(Method::DELETE, url.clone());
        let what = req.describe();
        let first = self.pipeline.send(req, &self.auth).await?;
        if first.status == 404 || first.status == 204 {
            return Ok(());
        }
        if !first.is_success() {
            return Err(first.error().with_context(what));
        }
        lro::wait(
            &self.pipeline,
            &self.auth,
            &Method::DELETE,
            &url,
            first,
            lro,
            status,
        )
        .await
        .map_err(ProviderError::after_sent)?;
        Ok(())
    }

    /// A synchronous, read-only POST action (`listKeys`, `listSecrets`, `getLogs`, `token`): it changes
    /// nothing, so it is marked idempotent and resent after any transient failure. Never use this for an
    /// action with an effect (`regenerateKeys`): that one is resent only when no connection was made.
    pub async fn post(&self, path: &str, api_version: &str, body: Option<&Value>) -> Result<Value> {
        let url = self.url(path, api_version, &[])?;
        let mut req = HttpRequest::new(Method::POST, url).idempotent();
        req = match body {
            Some(b) => req.json(b),
            None => req.header("content-length", "0")?,
        };
        let what = req.describe();
        let resp = self
            .pipeline
            .send_ok(req, &self.auth)
            .await
            .map_err(|e| e.with_context(what))?;
        resp.json()
    }

    /// GET a list, following `nextLink`: every page's items together. A large collection is better
    /// read with [`Arm::pages`], one page at a time.
    pub async fn list(
        &self,
        path: &str,
        api_version: &str,
        extra: &[(&str, &str)],
    ) -> Result<Vec<Value>> {
        let mut pages = self.pages(path, api_version, extra)?;
        let mut out = Vec::new();
        while let Some(items) = pages.next().await? {
            out.extend(items);
        }
        Ok(out)
    }

    /// A list read one page at a time ([`Pages::next`]), so a caller keeps of each page only what it
    /// needs instead of every page of the collection at once.
    pub(crate) fn pages(
        &self,
        path: &str,
        api_version: &str,
        extra: &[(&str, &str)],
    ) -> Result<Pages<'_>> {
        Ok(Pages {
            arm: self,
            next: Some(self.url(path, api_version, extra)?),
            read: 0,
        })
    }

    /// A status callback that ignores everything.
    pub fn quiet() -> StatusFn<'static> {
        &no_status
    }
}

/// The pages of one ARM list, read in order by following `nextLink` (at most [`Pages::MAX`]; a
/// longer chain ends there, as if the last page had no `nextLink`).
pub(crate) struct Pages<'a> {
    arm: &'a Arm,
    next: Option<Url>,
    read: usize,
}

impl Pages<'_> {
    /// How many pages one listing reads at most.
    const MAX: usize = 1000;

    /// The next page's items, moved out of the page (a page of a large collection is megabytes), or
    /// `None` after the last page.
    ///
    /// # Errors
    ///
    /// The page's request failing (a 404 is an error here: the caller decides what a gone parent
    /// means) or its body not being JSON.
    pub(crate) async fn next(&mut self) -> Result<Option<Vec<Value>>> {
        let Some(url) = self.next.take() else {
            return Ok(None);
        };
        self.read += 1;
        if self.read > Self::MAX {
            return Ok(None);
        }
        let req = HttpRequest::new(Method::GET, url);
        let what = req.describe();
        let mut page: Value = self
            .arm
            .pipeline
            .send_ok(req, &self.arm.auth)
            .await
            .map_err(|e| e.with_context(what))?
            .json()?;
        self.next = page
            .get("nextLink")
            .and_then(Value::as_str)
            .and_then(|s| Url::parse(s).ok());
        Ok(Some(match page.get_mut("value").map(Value::take) {
            Some(Value::Array(items)) => items,
            _ => Vec::new(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::pipeline::fake::*;
    use crate::provider::retry::RetryPolicy;
    use std::sync::Arc;

    fn arm(t: &Arc<FakeTransport>) -> Arm {
        let c = Arc::new(FakeClock::default());
        Arm::new(
            pipeline(t, &c, RetryPolicy::none()),
            Url::parse("https://arm.test/").unwrap(),
            "s/.default".into(),
        )
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn get_404_is_none_and_other_errors_are_errors() {
        let t = FakeTransport::new(vec![
            reply(
                404,
                &[],
                r#"{"error":{"code":"ResourceNotFound","message":"x"}}"#,
            ),
            reply(
                403,
                &[],
                r#"{"error":{"code":"AuthorizationFailed","message":"no"}}"#,
            ),
        ]);
        let a = arm(&t);
        assert_eq!(
            rt().block_on(a.get("/subscriptions/s/x", "1")).unwrap(),
            None
        );
        let e = rt().block_on(a.get("/subscriptions/s/x", "1")).unwrap_err();
        assert!(e.is_auth());
        assert!(
            e.to_string()
                .contains("GET https://arm.test/subscriptions/s/x?api-version=1"),
            "{e}"
        );
        assert_eq!(
            t.requests()[0].headers.get("authorization").unwrap(),
            "Bearer tok-SECRET-123"
        );
    }

    #[test]
    fn delete_treats_404_and_204_as_gone_and_list_follows_next_link() {
        let t = FakeTransport::new(vec![
            reply(204, &[], ""),
            reply(404, &[], ""),
            reply(
                200,
                &[],
                r#"{"value":[{"id":"a"}],"nextLink":"https://arm.test/next?api-version=1&page=2"}"#,
            ),
            reply(200, &[], r#"{"value":[{"id":"b"}]}"#),
        ]);
        let a = arm(&t);
        let lro = LroOptions::default();
        rt().block_on(a.delete("/x", "1", &lro, Arm::quiet()))
            .unwrap();
        rt().block_on(a.delete("/x", "1", &lro, Arm::quiet()))
            .unwrap();
        let items = rt()
            .block_on(a.list("/x", "1", &[("$filter", "principalId eq 'p'")]))
            .unwrap();
        assert_eq!(items.len(), 2);
        assert!(
            t.requests()[2]
                .url
                .as_str()
                .contains("%24filter=principalId+eq+%27p%27")
        );
    }

    #[test]
    fn pages_are_read_one_request_at_a_time_up_to_the_limit() {
        // A listing is read a page per `next` (a caller keeps of each page what it needs before
        // the next one is fetched), and a `nextLink` chain that never ends stops after the limit.
        let endless =
            r#"{"value":[{"id":"a"}],"nextLink":"https://arm.test/x?api-version=1&page=n"}"#;
        let t = FakeTransport::new(
            (0..Pages::MAX + 5)
                .map(|_| reply(200, &[], endless))
                .collect(),
        );
        let a = arm(&t);
        let rt = rt();
        let mut pages = a.pages("/x", "1", &[]).unwrap();
        assert_eq!(
            t.requests().len(),
            0,
            "nothing is sent before the first page is asked for"
        );
        let first = rt.block_on(pages.next()).unwrap().unwrap();
        assert_eq!(first, vec![serde_json::json!({"id": "a"})]);
        assert_eq!(t.requests().len(), 1);
        let mut read = 1;
        while rt.block_on(pages.next()).unwrap().is_some() {
            read += 1;
        }
        assert_eq!(read, Pages::MAX);
        assert_eq!(t.requests().len(), Pages::MAX);
        assert!(rt.block_on(pages.next()).unwrap().is_none());
    }

    #[test]
    fn rejects_odd_paths() {
        let t = FakeTransport::new(vec![]);
        let a = arm(&t);
        assert!(a.url("no-slash", "1", &[]).is_err());
        assert!(a.url("/a?b", "1", &[]).is_err());
    }
}
