//! Raw HTTP/1.1 exchanges with a blob service (the local cloud over TLS, Azurite in plain text): the
//! request's header names go out exactly as written and the answer's come back as received, which
//! `reqwest` cannot do (it lowercases names). Also the SharedKey signature of such a request, the one
//! place the tests compute it.
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Where a raw request goes.
#[derive(Clone, Debug)]
pub(crate) enum Target {
    /// The local cloud: HTTPS on 127.0.0.1, trusting its CA.
    Tls { port: u16, ca: PathBuf },
    /// Azurite: plain HTTP on 127.0.0.1.
    Plain { port: u16 },
}

/// An answer with its header names as the server wrote them.
#[derive(Debug)]
pub(crate) struct RawAnswer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl RawAnswer {
    /// A header's value, its name matched without regard to case.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `x-ms-error-code`.
    pub(crate) fn code(&self) -> Option<&str> {
        self.header("x-ms-error-code")
    }
}

/// Sends one request (`target` is path and query) with exactly these headers (plus `Host` and
/// `Connection: close`) and reads the whole answer. Blocking: call it from `spawn_blocking`.
pub(crate) fn exchange(
    to: &Target,
    method: &str,
    target: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> RawAnswer {
    let port = match to {
        Target::Tls { port, .. } | Target::Plain { port } => *port,
    };
    let mut head =
        format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    let tcp = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let mut raw = Vec::new();
    match to {
        Target::Plain { .. } => {
            let mut s = tcp;
            s.write_all(&request).expect("write");
            s.read_to_end(&mut raw).expect("read");
        }
        Target::Tls { ca, .. } => {
            let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
            let mut roots = rustls::RootCertStore::empty();
            use rustls::pki_types::pem::PemObject;
            for cert in rustls::pki_types::CertificateDer::pem_file_iter(ca).expect("ca.pem") {
                roots.add(cert.expect("a certificate")).expect("a CA");
            }
            let mut cfg = rustls::ClientConfig::builder()
                .with_root_certificates(roots)
                .with_no_client_auth();
            cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
            let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("ip");
            let conn = rustls::ClientConnection::new(Arc::new(cfg), name).expect("tls");
            let mut s = rustls::StreamOwned::new(conn, tcp);
            s.write_all(&request).expect("write");
            // The server may close without close_notify; what was read is the answer.
            let _ = s.read_to_end(&mut raw);
        }
    }
    parse(&raw, method == "HEAD")
}

fn parse(raw: &[u8], head_request: bool) -> RawAnswer {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an answer head");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect();
    let rest = &raw[split + 4..];
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let body = if head_request {
        Vec::new()
    } else if chunked {
        dechunk(rest)
    } else {
        rest.to_vec()
    };
    RawAnswer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(
            String::from_utf8_lossy(&rest[..eol])
                .split(';')
                .next()
                .unwrap_or("0")
                .trim(),
            16,
        )
        .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = eol + 2;
        out.extend_from_slice(&rest[start..(start + size).min(rest.len())]);
        rest = &rest[(start + size + 2).min(rest.len())..];
    }
    out
}

/// The SharedKey `Authorization` value of a blob request (version 2015-02-21 and later: a length of 0
/// is signed as the empty string). `path` is the URL path (path-style, so it starts with the account).
pub(crate) fn shared_key(
    account: &str,
    key: &str,
    method: &str,
    path: &str,
    query: &[(String, String)],
    headers: &[(String, String)],
    content_length: usize,
) -> String {
    let get = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let len = if content_length == 0 {
        String::new()
    } else {
        content_length.to_string()
    };
    let mut sts = [
        method.to_string(),
        get("content-encoding"),
        get("content-language"),
        len,
        get("content-md5"),
        get("content-type"),
        String::new(),
        get("if-modified-since"),
        get("if-match"),
        get("if-none-match"),
        get("if-unmodified-since"),
        get("range"),
    ]
    .join("\n");
    sts.push('\n');
    let mut xms: Vec<(String, String)> = headers
        .iter()
        .filter(|(k, _)| k.to_ascii_lowercase().starts_with("x-ms-"))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .collect();
    xms.sort();
    for (k, v) in xms {
        sts.push_str(&format!("{k}:{v}\n"));
    }
    sts.push_str(&format!("/{account}{path}"));
    let mut q: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .collect();
    q.sort();
    for (k, v) in q {
        sts.push_str(&format!("\n{k}:{v}"));
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(&B64.decode(key).expect("key b64")).expect("hmac");
    mac.update(sts.as_bytes());
    format!(
        "SharedKey {account}:{}",
        B64.encode(mac.finalize().into_bytes())
    )
}
