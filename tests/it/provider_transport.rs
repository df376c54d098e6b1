//! The pipeline's retry rule over a real socket: a loopback TCP server that reads each request in full,
//! counts it, then stalls or hangs up without answering. A request that is not idempotent (a scoring
//! POST) must reach the server exactly once, since the server may have acted on it; an idempotent GET
//! is sent again. The count is taken on the server side.

use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::Method;
use stackform::provider::pipeline::{
    Auth, HttpRequest, Pipeline, ReqwestTransport, SystemClock, build_transport_client,
};
use stackform::provider::retry::RetryPolicy;
use url::Url;

/// What the server does once it has read a request.
#[derive(Clone, Copy)]
enum Misbehaviour {
    /// Closes the connection without a response.
    HangUp,
    /// Says nothing for this long, then closes.
    Stall(Duration),
}

/// A loopback server that reads whole requests and never answers; counts what it read.
struct SilentServer {
    url: Url,
    requests: Arc<AtomicUsize>,
}

impl SilentServer {
    fn start(how: Misbehaviour) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("local address").port();
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        // The thread lives until the test process ends; it only ever blocks in accept.
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let counter = counter.clone();
                std::thread::spawn(move || serve(stream, how, &counter));
            }
        });
        Self {
            url: Url::parse(&format!("http://127.0.0.1:{port}/score")).expect("url"),
            requests,
        }
    }

    fn count(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// Reads one request (head and `Content-Length` body), counts it, then misbehaves.
fn serve(stream: TcpStream, how: Misbehaviour, counter: &AtomicUsize) {
    let mut reader = BufReader::new(&stream);
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    counter.fetch_add(1, Ordering::SeqCst);
    if let Misbehaviour::Stall(d) = how {
        std::thread::sleep(d);
    }
    // Dropping the stream closes the connection without a byte of response.
}

fn pipeline() -> Pipeline {
    let retry = RetryPolicy {
        max_retries: 3,
        initial_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        max_total: Duration::from_secs(30),
        max_retry_after: Duration::from_secs(1),
    };
    Pipeline::new(
        Arc::new(ReqwestTransport::new(
            build_transport_client(None).expect("http client"),
        )),
        Arc::new(SystemClock::default()),
        retry,
        None,
    )
}

fn scoring_post(server: &SilentServer) -> HttpRequest {
    HttpRequest::new(Method::POST, server.url.clone())
        .body(r#"{"data": [[1, 2, 3]]}"#)
        .header("content-type", "application/json")
        .expect("header")
}

/// The bug: a scoring POST whose connection was lost after it was sent was retried as if nothing had
/// happened (the transport error was a bare string), so the model ran once per retry.
#[tokio::test]
async fn a_post_the_server_hung_up_on_is_sent_exactly_once() {
    let server = SilentServer::start(Misbehaviour::HangUp);
    let err = pipeline()
        .send(scoring_post(&server), &Auth::None)
        .await
        .expect_err("no response");
    assert_eq!(server.count(), 1, "the POST was sent again: {err}");
    assert!(err.to_string().contains("connection lost"), "{err}");
}

/// The bug, after a read timeout: a scoring POST the model was still working on was sent again.
#[tokio::test]
async fn a_post_that_timed_out_is_sent_exactly_once() {
    let server = SilentServer::start(Misbehaviour::Stall(Duration::from_secs(3)));
    let req = scoring_post(&server).read_timeout(Duration::from_millis(300));
    let err = pipeline()
        .send(req, &Auth::None)
        .await
        .expect_err("no response");
    assert_eq!(server.count(), 1, "the POST was sent again: {err}");
    assert!(err.to_string().contains("timed out"), "{err}");
}

#[tokio::test]
async fn a_get_is_sent_again_after_a_hang_up_or_a_timeout() {
    for how in [
        Misbehaviour::HangUp,
        Misbehaviour::Stall(Duration::from_secs(3)),
    ] {
        let server = SilentServer::start(how);
        let req = HttpRequest::new(Method::GET, server.url.clone())
            .read_timeout(Duration::from_millis(300));
        let err = pipeline()
            .send(req, &Auth::None)
            .await
            .expect_err("no response");
        assert_eq!(server.count(), 4, "1 try + 3 retries: {err}");
    }
}

#[tokio::test]
async fn a_post_that_could_not_connect_is_reported_as_a_connect_failure() {
    // A port nobody listens on: bound, then released.
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let url = Url::parse(&format!("http://127.0.0.1:{port}/score")).expect("url");
    let err = pipeline()
        .send(HttpRequest::new(Method::POST, url), &Auth::None)
        .await
        .expect_err("nothing listens");
    assert!(err.to_string().contains("connection failed"), "{err}");
}

/// A TLS handshake that fails happens before one byte of the request is sent, so even a POST is tried
/// again: the server counts connections, none of which ever carried the request.
#[tokio::test]
async fn a_failed_tls_handshake_is_a_connect_failure_and_a_post_is_tried_again() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let port = listener.local_addr().expect("local address").port();
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            counter.fetch_add(1, Ordering::SeqCst);
            // Not TLS: the client's handshake fails on this answer.
            let _ = std::io::Write::write_all(&mut &stream, b"HTTP/1.1 400 not tls\r\n\r\n");
        }
    });
    let url = Url::parse(&format!("https://127.0.0.1:{port}/score")).expect("url");
    let err = pipeline()
        .send(HttpRequest::new(Method::POST, url).body("{}"), &Auth::None)
        .await
        .expect_err("no TLS server");
    assert!(err.to_string().contains("connection failed"), "{err}");
    assert_eq!(
        connections.load(Ordering::SeqCst),
        4,
        "1 try + 3 retries: {err}"
    );
}
