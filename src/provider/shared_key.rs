//! Azure Storage SharedKey authorization: the string-to-sign built from the request exactly as it will
//! be sent (standard headers, canonicalized `x-ms-*` headers, canonicalized resource), signed with
//! HMAC-SHA256 under the account key.
//!
//! The key never leaves this type: `Debug` redacts it and nothing here logs.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use reqwest::Method;
use reqwest::header::HeaderMap;
use sha2::Sha256;
use url::Url;

use super::contract::Result;
use super::error::ProviderError;

/// An account name and its (decoded) key.
#[derive(Clone)]
pub struct SharedKeyCredential {
    account: String,
    key: Vec<u8>,
}

impl fmt::Debug for SharedKeyCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedKeyCredential")
            .field("account", &self.account)
            .field("key", &"***")
            .finish()
    }
}

impl SharedKeyCredential {
    /// From the account name and the base64 key `listKeys` returns.
    pub fn new(account: impl Into<String>, key_base64: &str) -> Result<Self> {
        let key = B64
            .decode(key_base64.trim())
            .map_err(|_| ProviderError::invalid("storage account key is not valid base64"))?;
        Ok(Self {
            account: account.into(),
            key,
        })
    }

    /// The account name.
    pub fn account(&self) -> &str {
        &self.account
    }

    /// The `Authorization` header value for this request.
    pub fn authorization(
        &self,
        method: &Method,
        url: &Url,
        headers: &HeaderMap,
        content_length: usize,
    ) -> Result<String> {
        let to_sign = string_to_sign(&self.account, method, url, headers, content_length);
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key)
            .map_err(|_| ProviderError::invalid("storage account key has an invalid length"))?;
        mac.update(to_sign.as_bytes());
        Ok(format!(
            "SharedKey {}:{}",
            self.account,
            B64.encode(mac.finalize().into_bytes())
        ))
    }
}

/// The SharedKey string-to-sign for the blob service (version 2015-02-21 and later).
pub(crate) fn string_to_sign(
    account: &str,
    method: &Method,
    url: &Url,
    headers: &HeaderMap,
    content_length: usize,
) -> String {
    let h = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .trim()
            .to_owned()
    };
    let length = if content_length == 0 {
        String::new()
    } else {
        content_length.to_string()
    };
    // `Date` is left empty when `x-ms-date` is present (it always is from our pipeline).
    let date = if headers.contains_key("x-ms-date") {
        String::new()
    } else {
        h("date")
    };
    let mut lines = [
        method.as_str().to_owned(),
        h("content-encoding"),
        h("content-language"),
        length,
        h("content-md5"),
        h("content-type"),
        date,
        h("if-modified-since"),
        h("if-match"),
        h("if-none-match"),
        h("if-unmodified-since"),
        h("range"),
    ]
    .join("\n");
    lines.push('\n');

    let mut ms: Vec<(String, String)> = headers
        .iter()
        .filter(|(n, _)| n.as_str().starts_with("x-ms-"))
        .map(|(n, v)| {
            (
                n.as_str().to_owned(),
                v.to_str().unwrap_or("").trim().to_owned(),
            )
        })
        .collect();
    ms.sort();
    for (n, v) in ms {
        lines.push_str(&format!("{n}:{v}\n"));
    }

    lines.push_str(&format!("/{account}{}", url.path()));
    let mut params: std::collections::BTreeMap<String, Vec<String>> =
        std::collections::BTreeMap::new();
    for (k, v) in url.query_pairs() {
        params
            .entry(k.to_lowercase())
            .or_default()
            .push(v.into_owned());
    }
    for (k, mut vs) in params {
        vs.sort();
        lines.push_str(&format!("\n{k}:{}", vs.join(",")));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn string_to_sign_layout() {
        let url = Url::parse("https://acct.blob.core.windows.net/c/dir/b.txt?restype=container&comp=list&Include=metadata").unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-ms-version", HeaderValue::from_static("2025-11-05"));
        h.insert(
            "x-ms-date",
            HeaderValue::from_static("Tue, 04 Aug 2026 10:00:00 GMT"),
        );
        h.insert("x-ms-blob-type", HeaderValue::from_static("BlockBlob"));
        h.insert("content-type", HeaderValue::from_static("text/plain"));
        h.insert("content-md5", HeaderValue::from_static("abc=="));
        let s = string_to_sign("acct", &Method::PUT, &url, &h, 12);
        let expected = "PUT\n\n\n12\nabc==\ntext/plain\n\n\n\n\n\n\n\
x-ms-blob-type:BlockBlob\nx-ms-date:Tue, 04 Aug 2026 10:00:00 GMT\nx-ms-version:2025-11-05\n\
/acct/c/dir/b.txt\ncomp:list\ninclude:metadata\nrestype:container";
        assert_eq!(s, expected);
    }

    #[test]
    fn zero_length_is_empty_and_key_is_redacted() {
        let url = Url::parse("http://127.0.0.1:10000/devstoreaccount1/c").unwrap();
        let s = string_to_sign("devstoreaccount1", &Method::GET, &url, &HeaderMap::new(), 0);
        assert!(s.starts_with("GET\n\n\n\n"));
        assert!(s.ends_with("/devstoreaccount1/devstoreaccount1/c"));
        let cred = SharedKeyCredential::new("a", "c2VjcmV0").unwrap();
        assert!(!format!("{cred:?}").contains("c2VjcmV0"));
        let auth = cred
            .authorization(&Method::GET, &url, &HeaderMap::new(), 0)
            .unwrap();
        assert!(auth.starts_with("SharedKey a:"));
        assert!(SharedKeyCredential::new("a", "not base64!").is_err());
    }
}
