//! The blob services the strict and lease tests send raw HTTP/1.1 to, side by side: the local cloud
//! (an account with a container `box`) and Azurite (its development account, a container `box`), with
//! SharedKey-signed requests whose header names go out as written, and the comparison of their
//! answers (status and `x-ms-error-code`).
use std::path::PathBuf;

use crate::support::azurite::{Azurite, DEV_ACCOUNT, DEV_KEY};
use crate::support::cloud::Cloud;
pub(crate) use crate::support::raw::RawAnswer;
use crate::support::raw::{Target, exchange, shared_key};

/// A blob service reached with raw requests: where, which account, its key.
pub(crate) struct Service {
    pub(crate) name: &'static str,
    to: Target,
    account: String,
    key: String,
}

/// How a request is sent.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Sign {
    SharedKey,
    Anonymous,
}

impl Service {
    /// Sends `method /{account}/{rest}` with `x-ms-date`, `x-ms-version: 2025-11-05` (unless `extra` names
    /// a version), `Content-Length` when `length` and `extra` in the order and case given.
    pub(crate) async fn call(
        &self,
        method: &str,
        rest: &str,
        extra: &[(&str, &str)],
        body: &[u8],
        length: bool,
        sign: Sign,
    ) -> RawAnswer {
        let target = format!("/{}/{rest}", self.account);
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let query: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let mut headers = vec![(
            "x-ms-date".to_string(),
            httpdate::fmt_http_date(std::time::SystemTime::now()),
        )];
        if !extra
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("x-ms-version"))
        {
            headers.push(("x-ms-version".into(), "2025-11-05".into()));
        }
        headers.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        if length {
            headers.push(("Content-Length".into(), body.len().to_string()));
        }
        if sign == Sign::SharedKey {
            let auth = shared_key(
                &self.account,
                &self.key,
                method,
                path,
                &query,
                &headers,
                body.len(),
            );
            headers.push(("Authorization".into(), auth));
        }
        let (to, method, body) = (self.to.clone(), method.to_string(), body.to_vec());
        tokio::task::spawn_blocking(move || exchange(&to, &method, &target, &headers, &body))
            .await
            .expect("the exchange ran")
    }

    pub(crate) async fn put_blob(
        &self,
        name: &str,
        extra: &[(&str, &str)],
        body: &[u8],
    ) -> RawAnswer {
        let mut headers = vec![("x-ms-blob-type", "BlockBlob")];
        headers.extend_from_slice(extra);
        self.call(
            "PUT",
            &format!("box/{name}"),
            &headers,
            body,
            true,
            Sign::SharedKey,
        )
        .await
    }
}

/// The local cloud (an account `strictacct` with a container `box`) and Azurite (its development
/// account, a container `box`); both stop when the returned guards drop.
pub(crate) async fn services() -> (Cloud, Azurite, [Service; 2]) {
    let c = Cloud::start_in_process().await;
    c.create_storage("strictacct").await;
    let key = c.account_key("strictacct").await;
    let azurite = Azurite::start().await;
    let local = Service {
        name: "local cloud",
        to: Target::Tls {
            port: c.info.port,
            ca: PathBuf::from(&c.info.ca_cert),
        },
        account: "strictacct".into(),
        key,
    };
    let az = Service {
        name: "azurite",
        to: Target::Plain { port: azurite.port },
        account: DEV_ACCOUNT.into(),
        key: DEV_KEY.into(),
    };
    for s in [&local, &az] {
        let made = s
            .call(
                "PUT",
                "box?restype=container",
                &[],
                b"",
                true,
                Sign::SharedKey,
            )
            .await;
        assert_eq!(made.status, 201, "{}: {made:?}", s.name);
    }
    (c, azurite, [local, az])
}

/// The XML body's `<Code>`.
pub(crate) fn xml_code(a: &RawAnswer) -> Option<&str> {
    let start = a.body.find("<Code>")? + "<Code>".len();
    let end = a.body[start..].find("</Code>")? + start;
    Some(&a.body[start..end])
}

/// Asserts both services answered with the same status and error code; returns the local cloud's.
pub(crate) fn same<'a>(what: &str, answers: &'a [RawAnswer; 2]) -> &'a RawAnswer {
    let [local, az] = answers;
    assert_eq!(
        (local.status, local.code()),
        (az.status, az.code()),
        "{what}: the local cloud answered {local:?}, Azurite {az:?}"
    );
    local
}
