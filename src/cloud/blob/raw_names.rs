//! The case of metadata header names as the client sent them. Azure keeps a metadata name's case
//! ("Metadata names preserve the case with which they were created, but are case-insensitive when set
//! or read": learn.microsoft.com rest/api/storageservices setting-and-retrieving-properties-and-metadata-
//! for-blob-resources), and List Blobs with `include=metadata` and Get Blob Properties return it. The
//! HTTP stack lowercases every header name before a handler sees it, so this layer watches the
//! decrypted HTTP/1.1 bytes of each connection, reads the `x-ms-meta-*` names of each request head as
//! sent, and hands them to that request as a [`RawMetaNames`] extension. On the way out, a response
//! that carries [`CasedHeaderNames`] (Get Blob's metadata) has those header names written with their
//! case: the same bytes, only the letters' case changed, inside that response's head.
//!
//! It changes no byte of a request, and of a response only the case of the names it was handed,
//! within the head; a connection it cannot follow (a chunked request body, an oversized head) just
//! stops getting names, and the blob layer then falls back to the lowercase names. It never decides
//! anything about a request.
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::http::{Request, Response};
use axum_server::accept::Accept;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tower_service::Service;

/// The `x-ms-meta-*` header names of a request, as the client spelled them.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RawMetaNames(pub(crate) Vec<String>);

impl RawMetaNames {
    /// The name as sent for a lowercase `x-ms-meta-{name}` header, else the lowercase name.
    pub(crate) fn metadata_name(&self, lower: &str) -> String {
        self.0
            .iter()
            .filter_map(|n| n.get("x-ms-meta-".len()..))
            .find(|n| n.eq_ignore_ascii_case(lower))
            .unwrap_or(lower)
            .to_string()
    }
}

/// Header names a response must carry with this case (e.g. `x-ms-meta-MyKey`).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct CasedHeaderNames(pub(crate) Vec<String>);

/// The names each request head of one connection carried, in request order.
type Heads = Arc<Mutex<VecDeque<RawMetaNames>>>;

/// The cased names for the next response heads of one connection, in response order.
type Outgoing = Arc<Mutex<VecDeque<CasedHeaderNames>>>;

/// Wraps an acceptor (the TLS one): each accepted connection's stream is watched and its service
/// attaches [`RawMetaNames`] to each request.
#[derive(Clone, Debug)]
pub(crate) struct RawNamesAcceptor<A>(pub(crate) A);

impl<A, I, S> Accept<I, S> for RawNamesAcceptor<A>
where
    A: Accept<I, S>,
    A::Future: Send + 'static,
    A::Stream: Send + 'static,
    A::Service: Send + 'static,
{
    type Stream = Watched<A::Stream>;
    type Service = WithRawNames<A::Service>;
    type Future = Pin<Box<dyn Future<Output = io::Result<(Self::Stream, Self::Service)>> + Send>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let inner = self.0.accept(stream, service);
        Box::pin(async move {
            let (stream, service) = inner.await?;
            let heads = Heads::default();
            let outgoing = Outgoing::default();
            Ok((
                Watched {
                    inner: stream,
                    parser: Parser::default(),
                    heads: heads.clone(),
                    outgoing: outgoing.clone(),
                },
                WithRawNames {
                    inner: service,
                    heads,
                    outgoing,
                },
            ))
        })
    }
}

/// A connection's service that attaches the next request head's names to each request.
#[derive(Clone, Debug)]
pub(crate) struct WithRawNames<S> {
    inner: S,
    heads: Heads,
    outgoing: Outgoing,
}

impl<S, B, RB> Service<Request<B>> for WithRawNames<S>
where
    S: Service<Request<B>, Response = Response<RB>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // HTTP/1.1 answers requests of a connection in order, and a head is read (through
        // `Watched`) before its request is handed here, so the front of the queue is this request's.
        let names = self
            .heads
            .lock()
            .ok()
            .and_then(|mut q| q.pop_front())
            .unwrap_or_default();
        req.extensions_mut().insert(names);
        let answer = self.inner.call(req);
        let outgoing = self.outgoing.clone();
        Box::pin(async move {
            let resp = answer.await?;
            // Queued before the head is written: HTTP/1.1 writes this response's head next.
            if let Some(cased) = resp.extensions().get::<CasedHeaderNames>()
                && let Ok(mut q) = outgoing.lock()
            {
                q.push_back(cased.clone());
            }
            Ok(resp)
        })
    }
}

/// A stream whose read bytes are fed to a [`Parser`].
#[derive(Debug)]
pub(crate) struct Watched<T> {
    inner: T,
    parser: Parser,
    heads: Heads,
    outgoing: Outgoing,
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &polled {
            for names in this.parser.feed(&buf.filled()[before..]) {
                if let Ok(mut q) = this.heads.lock() {
                    q.push_back(names);
                }
            }
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let pending = this.outgoing.lock().ok().and_then(|q| q.front().cloned());
        let Some(cased) = pending else {
            return Pin::new(&mut this.inner).poll_write(cx, buf);
        };
        let mut out = buf.to_vec();
        let found = recase_head(&mut out, &cased.0);
        let written = Pin::new(&mut this.inner).poll_write(cx, &out);
        if found
            && matches!(written, Poll::Ready(Ok(_)))
            && let Ok(mut q) = this.outgoing.lock()
        {
            q.pop_front();
        }
        written
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    // Not vectored: the HTTP stack then hands a response's head over in one buffer.
    fn is_write_vectored(&self) -> bool {
        false
    }
}

/// In the first response head of `buf` (from `HTTP/1.1 ` to its blank line), gives each header
/// named like one of `names` (ignoring case) the case of that name. Returns whether a head was found.
fn recase_head(buf: &mut [u8], names: &[String]) -> bool {
    let Some(start) = find(buf, b"HTTP/1.1 ") else {
        return false;
    };
    let Some(end) = find(&buf[start..], b"\r\n\r\n").map(|e| start + e + 2) else {
        return false;
    };
    let head = &mut buf[start..end];
    let mut at = 0;
    while let Some(eol) = find(&head[at..], b"\r\n") {
        let line = at + eol + 2;
        if let Some(colon) = head[line..].iter().position(|b| *b == b':') {
            let name = &mut head[line..line + colon];
            if let Some(cased) = names
                .iter()
                .find(|n| n.as_bytes().eq_ignore_ascii_case(name))
            {
                name.copy_from_slice(cased.as_bytes());
            }
        }
        at = line;
        if at >= head.len() {
            break;
        }
    }
    true
}

/// The longest request head followed; a longer one stops the watch (the HTTP stack refuses it too).
const MAX_HEAD: usize = 64 * 1024;

/// Where a connection's byte stream is.
#[derive(Debug)]
enum State {
    /// Reading a request head (the bytes so far).
    Head(Vec<u8>),
    /// Skipping this many body bytes.
    Body(u64),
    /// No longer followed (a chunked body or an oversized head).
    Lost,
}

/// Follows HTTP/1.1 request framing (heads, `Content-Length` bodies) over a connection's bytes.
#[derive(Debug)]
struct Parser {
    state: State,
}

impl Default for Parser {
    fn default() -> Self {
        Parser {
            state: State::Head(Vec::new()),
        }
    }
}

impl Parser {
    /// Feeds bytes read from the connection; returns the names of each head completed by them.
    fn feed(&mut self, mut bytes: &[u8]) -> Vec<RawMetaNames> {
        let mut done = Vec::new();
        while !bytes.is_empty() {
            match &mut self.state {
                State::Lost => break,
                State::Body(left) => {
                    let n = (*left).min(bytes.len() as u64);
                    *left -= n;
                    bytes = &bytes[n as usize..];
                    if *left == 0 {
                        self.state = State::Head(Vec::new());
                    }
                }
                State::Head(buf) => {
                    let start = buf.len().saturating_sub(3);
                    buf.extend_from_slice(bytes);
                    bytes = &[];
                    let Some(end) = find(&buf[start..], b"\r\n\r\n").map(|i| start + i + 4) else {
                        if buf.len() > MAX_HEAD {
                            self.state = State::Lost;
                        }
                        continue;
                    };
                    let rest = buf.split_off(end);
                    let (names, body) = read_head(buf);
                    done.push(names);
                    self.state = match body {
                        Some(0) => State::Head(Vec::new()),
                        Some(n) => State::Body(n),
                        None => State::Lost,
                    };
                    // The bytes after the head belong to the body or the next request.
                    let mut more = self.feed(&rest);
                    done.append(&mut more);
                }
            }
        }
        done
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The `x-ms-meta-*` names of a request head and its body length (`None` when chunked or unreadable,
/// so the watch stops).
fn read_head(head: &[u8]) -> (RawMetaNames, Option<u64>) {
    let text = String::from_utf8_lossy(head);
    let mut names = Vec::new();
    let mut length = Some(0);
    for line in text.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name.len() > "x-ms-meta-".len()
            && name[.."x-ms-meta-".len()].eq_ignore_ascii_case("x-ms-meta-")
        {
            names.push(name.to_string());
        } else if name.eq_ignore_ascii_case("content-length") {
            length = value.trim().parse().ok();
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            length = None;
        }
    }
    (RawMetaNames(names), length)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_split_across_reads_and_bodies_are_skipped() {
        let mut p = Parser::default();
        let stream = b"PUT /a/c/b HTTP/1.1\r\nHost: x\r\nX-Ms-Meta-MyKey: 1\r\nContent-Length: 25\r\n\r\nX-Ms-Meta-NotAHeader: 1\r\nGET /a/c/b HTTP/1.1\r\nx-ms-meta-Other: 2\r\n\r\n";
        let mut got = Vec::new();
        for chunk in stream.chunks(7) {
            got.extend(p.feed(chunk));
        }
        assert_eq!(
            got,
            vec![
                RawMetaNames(vec!["X-Ms-Meta-MyKey".into()]),
                RawMetaNames(vec!["x-ms-meta-Other".into()]),
            ]
        );
        assert_eq!(got[0].metadata_name("mykey"), "MyKey");
        assert_eq!(got[0].metadata_name("unknown"), "unknown");
    }

    #[test]
    fn response_heads_get_the_case_of_the_names_handed_over() {
        let mut buf = b"HTTP/1.1 200 OK\r\nx-ms-meta-mykey: 1\r\ncontent-length: 18\r\n\r\nx-ms-meta-mykey: 2".to_vec();
        assert!(recase_head(&mut buf, &["x-ms-meta-MyKey".to_string()]));
        assert_eq!(
            buf,
            b"HTTP/1.1 200 OK\r\nx-ms-meta-MyKey: 1\r\ncontent-length: 18\r\n\r\nx-ms-meta-mykey: 2"
        );
        let mut body_only = b"x-ms-meta-mykey: 2".to_vec();
        assert!(!recase_head(
            &mut body_only,
            &["x-ms-meta-MyKey".to_string()]
        ));
    }

    #[test]
    fn a_chunked_body_stops_the_watch() {
        let mut p = Parser::default();
        let got = p.feed(
            b"PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nx-ms-meta-A: 1\r\n\r\n",
        );
        assert_eq!(got.len(), 1);
        assert!(matches!(p.state, State::Lost));
        assert!(p.feed(b"GET / HTTP/1.1\r\n\r\n").is_empty());
    }
}
