//! Who is calling the blob service and whether they may: a bearer token for the storage audience or a
//! SharedKey signature over the request (contract section 5.1), then blob data roles on the container,
//! the account or any parent scope for bearer callers (ARM roles do not count).
//!
//! It only reads the account's keys and the caller's role assignments; it never changes the store and
//! never handles a blob or container operation.
use std::collections::BTreeMap;

use axum::http::{HeaderMap, Method, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::error::{BlobCode, BlobError, err};
use crate::cloud::auth::{DataLevel, STORAGE_AUDIENCE, TokenError, data_level};
use crate::cloud::http::header;
use crate::cloud::state::Shared;
use crate::cloud::store::now_ms;
use crate::cloud::store::ops::container_key;

/// Who is calling.
pub(super) enum Caller {
    Principal(String),
    SharedKey,
}

#[expect(
    clippy::too_many_arguments,
    reason = "all request parts are needed to verify a signature"
)]
pub(super) fn authenticate(
    st: &Shared,
    method: &Method,
    h: &HeaderMap,
    raw_path: &str,
    query: &[(String, String)],
    account: &str,
    acct_key: &str,
    acct_body: &serde_json::Value,
) -> Result<Caller, BlobError> {
    // The bearer challenge of every 401, anonymous requests included: `resource_id` is the storage
    // audience without its trailing slash (clients append `/.default` to it). Azure's form, with
    // login.microsoftonline.com where this cloud names its own token endpoint:
    // `Bearer authorization_uri=https://login.microsoftonline.com/{tenant}/oauth2/authorize
    // resource_id=https://storage.azure.com` (Azure/azure-sdk-for-java storage-common
    // StorageBearerTokenChallengeAuthorizationPolicy tests; recorded 401 answers in the Azure SDKs'
    // storage test recordings).
    let tenant = st.seed().tenant_id;
    let challenge = format!(
        "Bearer authorization_uri={}/{tenant}/oauth2/authorize resource_id={}",
        st.arm_url,
        STORAGE_AUDIENCE.trim_end_matches('/')
    );
    let Some(auth) = header(h, "authorization") else {
        let mut be = err(
            StatusCode::UNAUTHORIZED,
            BlobCode::NoAuthenticationInformation,
            "Server failed to authenticate the request. Please refer to the information in the www-authenticate header.",
        );
        be.headers.push(("WWW-Authenticate", challenge));
        return Err(be);
    };
    if let Some(token) = auth.strip_prefix("Bearer ") {
        let claims = st
            .signer
            .verify(token.trim(), &[STORAGE_AUDIENCE], now_ms() / 1000)
            .map_err(|e| {
                let mut be = err(
                    StatusCode::UNAUTHORIZED,
                    BlobCode::InvalidAuthenticationInfo,
                    match e {
                        TokenError::Expired => {
                            "Server failed to authenticate the request. The token is expired."
                        }
                        TokenError::WrongAudience => {
                            "Audience validation failed. Audience did not match."
                        }
                        _ => "Server failed to authenticate the request. The token is invalid.",
                    },
                );
                be.headers.push(("WWW-Authenticate", challenge.clone()));
                be
            })?;
        return Ok(Caller::Principal(claims.oid));
    }
    let Some(rest) = auth.strip_prefix("SharedKey ") else {
        let mut be = err(
            StatusCode::UNAUTHORIZED,
            BlobCode::InvalidAuthenticationInfo,
            "Authentication information is not given in the correct format.",
        );
        be.headers.push(("WWW-Authenticate", challenge));
        return Err(be);
    };
    if acct_body.pointer("/properties/allowSharedKeyAccess")
        == Some(&serde_json::Value::Bool(false))
    {
        return Err(err(
            StatusCode::FORBIDDEN,
            BlobCode::KeyBasedAuthenticationNotPermitted,
            "Key based authentication is not permitted on this storage account.",
        ));
    }
    let fail = |detail: &str| {
        err(
            StatusCode::FORBIDDEN,
            BlobCode::AuthenticationFailed,
            "Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature.",
        )
        .with_detail("AuthenticationErrorDetail", detail)
    };
    let (name, sig) = rest
        .split_once(':')
        .ok_or_else(|| fail("the Authorization header is not SharedKey account:signature"))?;
    if !name.eq_ignore_ascii_case(account) {
        return Err(fail(
            "the account name in the Authorization header does not match the request",
        ));
    }
    let date = header(h, "x-ms-date")
        .or_else(|| header(h, "date"))
        .ok_or_else(|| fail("x-ms-date or Date is required"))?;
    let when = httpdate::parse_http_date(date)
        .map_err(|_| fail("the request date is not a valid RFC 1123 date"))?;
    let skew = match std::time::SystemTime::now().duration_since(when) {
        Ok(d) => d,
        Err(e) => e.duration(),
    };
    if skew > std::time::Duration::from_secs(15 * 60) {
        return Err(fail("Request date header too old or too far in the future"));
    }
    let keys: Vec<String> = ["key1", "key2"]
        .iter()
        .filter_map(|k| st.store.secret(acct_key, k))
        .collect();
    let without_account = raw_path
        .trim_start_matches('/')
        .split_once('/')
        .map(|(_, r)| format!("/{r}"))
        .unwrap_or_else(|| "/".into());
    for resource_path in [raw_path.to_string(), without_account] {
        let sts = string_to_sign(method, h, account, &resource_path, query);
        for k in &keys {
            if let Ok(kb) = B64.decode(k)
                && let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&kb)
            {
                mac.update(sts.as_bytes());
                if let Ok(sigb) = B64.decode(sig)
                    && mac.verify_slice(&sigb).is_ok()
                {
                    return Ok(Caller::SharedKey);
                }
            }
        }
    }
    Err(fail(
        "The MAC signature found in the HTTP request is not the same as any computed signature.",
    ))
}

/// Refuses a bearer caller whose `x-ms-version` predates bearer support, or whose blob data roles on
/// the container (or the account, when the request names none) do not allow the request.
pub(super) fn authorize(
    st: &Shared,
    caller: &Caller,
    h: &HeaderMap,
    acct_key: &str,
    container: Option<&str>,
    write: bool,
) -> Result<(), BlobError> {
    let Caller::Principal(oid) = caller else {
        return Ok(());
    };
    if header(h, "x-ms-version").is_some_and(|v| v < "2017-11-09") {
        return Err(err(
            StatusCode::BAD_REQUEST,
            BlobCode::InvalidHeaderValue,
            "Bearer authentication needs x-ms-version 2017-11-09 or later.",
        ));
    }
    let scope = match container {
        Some(c) => container_key(acct_key, c),
        None => acct_key.to_string(),
    };
    let delay = (st.faults().role_propagation_s * 1000.0) as u64;
    let level = data_level(&st.store.assignments_of(oid), &scope, now_ms(), delay);
    let needed = if write {
        DataLevel::Write
    } else {
        DataLevel::Read
    };
    if level < needed {
        return Err(err(
            StatusCode::FORBIDDEN,
            BlobCode::AuthorizationPermissionMismatch,
            "This request is not authorized to perform this operation using this permission.",
        ));
    }
    Ok(())
}

/// SharedKey string-to-sign (contract section 5.1).
fn string_to_sign(
    method: &Method,
    h: &HeaderMap,
    account: &str,
    path: &str,
    query: &[(String, String)],
) -> String {
    let g = |n: &str| header(h, n).unwrap_or_default().to_string();
    let len = g("content-length");
    let len = if len == "0" { String::new() } else { len };
    let date = if h.contains_key("x-ms-date") {
        String::new()
    } else {
        g("date")
    };
    let mut out = [
        method.as_str().to_string(),
        g("content-encoding"),
        g("content-language"),
        len,
        g("content-md5"),
        g("content-type"),
        date,
        g("if-modified-since"),
        g("if-match"),
        g("if-none-match"),
        g("if-unmodified-since"),
        g("range"),
    ]
    .join("\n");
    out.push('\n');
    let mut xms: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in h {
        let name = k.as_str().to_ascii_lowercase();
        if name.starts_with("x-ms-") {
            xms.insert(name, v.to_str().unwrap_or_default().trim().to_string());
        }
    }
    for (k, v) in xms {
        out.push_str(&format!("{k}:{v}\n"));
    }
    out.push_str(&format!("/{account}{path}"));
    let mut params: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in query {
        params
            .entry(k.to_ascii_lowercase())
            .or_default()
            .push(v.clone());
    }
    for (k, mut vs) in params {
        vs.sort();
        out.push_str(&format!("\n{k}:{}", vs.join(",")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn string_to_sign_canonicalises_headers_and_query() {
        let mut h = HeaderMap::new();
        h.insert("x-ms-version", HeaderValue::from_static("2025-11-05"));
        h.insert(
            "x-ms-date",
            HeaderValue::from_static("Tue, 04 Aug 2026 10:00:00 GMT"),
        );
        h.insert("content-length", HeaderValue::from_static("0"));
        let q = vec![
            ("restype".to_string(), "container".to_string()),
            ("comp".to_string(), "list".to_string()),
        ];
        let s = string_to_sign(&Method::GET, &h, "acct", "/c", &q);
        assert_eq!(
            s,
            "GET\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:Tue, 04 Aug 2026 10:00:00 GMT\nx-ms-version:2025-11-05\n/acct/c\ncomp:list\nrestype:container"
        );
    }
}
