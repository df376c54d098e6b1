//! Connection limits of every listener of the local cloud (HTTPS and the plain-HTTP managed-identity
//! endpoint): how long a client may take to send a request head or stay idle between requests, how
//! long a TLS handshake may take, and how many connections one listener holds open at once.
//!
//! Without them an idle or half-sent connection stayed open forever, and enough of them used up the
//! process's file limit, so the token endpoint stopped answering. At the cap a new connection is
//! closed at once (its file descriptor freed), until idle ones time out.
//!
//! It only accepts and wraps connections: it must never read or write a byte of them.
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum_server::accept::Accept;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The limits each listener applies.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnLimits {
    /// How long a connection may take to send a complete request head, counted from when the server
    /// waits for one: after the handshake, and again after each answer (so it is also the idle
    /// timeout of a kept-alive connection).
    pub header_timeout: Duration,
    /// How long a TLS handshake may take.
    pub handshake_timeout: Duration,
    /// Most connections one listener holds open at once.
    pub max_connections: usize,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            // Longer than the engine keeps an idle pooled connection (90 s, src/provider/pipeline.rs):
            // the engine drops it first, so it never sends a request on one this cloud is closing.
            header_timeout: Duration::from_secs(100),
            handshake_timeout: Duration::from_secs(10),
            // Two listeners (HTTPS, managed identity) stay well under a 1024 file-descriptor limit,
            // with room for the store, logs and the scoring processes' pipes.
            max_connections: 384,
        }
    }
}

/// Applies [`ConnLimits`] to an axum-server `Server`: HTTP/1.1 only (no protocol detection, which has
/// no timeout), hyper's header-read timeout, and a first-request timeout (both `header_timeout`).
pub(crate) fn configure<A: axum_server::Address, Acc>(
    mut server: axum_server::Server<A, Acc>,
    limits: &ConnLimits,
) -> axum_server::Server<A, Acc> {
    server
        .http_builder()
        .http1()
        .header_read_timeout(limits.header_timeout);
    server
        .http1_only()
        .first_request_timeout(limits.header_timeout)
}

/// Wraps an acceptor: a connection gets one of `max_connections` permits before anything else
/// happens to it (the TLS handshake included) and keeps it until it closes; without one it is dropped.
#[derive(Clone, Debug)]
pub(crate) struct Capped<A> {
    inner: A,
    permits: Arc<Semaphore>,
}

impl<A> Capped<A> {
    pub(crate) fn new(inner: A, max_connections: usize) -> Self {
        Capped {
            inner,
            permits: Arc::new(Semaphore::new(max_connections.max(1))),
        }
    }
}

impl<A, I, S> Accept<I, S> for Capped<A>
where
    A: Accept<I, S>,
    A::Future: Send + 'static,
    A::Stream: Send + 'static,
    A::Service: Send + 'static,
{
    type Stream = Permitted<A::Stream>;
    type Service = A::Service;
    type Future = Pin<Box<dyn Future<Output = io::Result<(Self::Stream, Self::Service)>> + Send>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            // `stream` is dropped here: the socket closes now rather than waiting its turn.
            return Box::pin(async {
                Err(io::Error::other(
                    "connection limit reached; the connection was closed",
                ))
            });
        };
        let inner = self.inner.accept(stream, service);
        Box::pin(async move {
            let (stream, service) = inner.await?;
            Ok((
                Permitted {
                    inner: stream,
                    _permit: permit,
                },
                service,
            ))
        })
    }
}

/// A stream that holds its listener's permit until it is dropped.
#[derive(Debug)]
pub(crate) struct Permitted<T> {
    inner: T,
    _permit: OwnedSemaphorePermit,
}

impl<T: AsyncRead + Unpin> AsyncRead for Permitted<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Permitted<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
