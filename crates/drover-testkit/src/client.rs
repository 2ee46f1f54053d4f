//! A small HTTP/1.1 client for tests and benchmarks: explicit connections (so tests control
//! keep-alive), whole-body replies, raw exchanges for malformed input, and deadline polling.
//!
//! Every wait here is bounded by [`DEADLINE`]; nothing sleeps a fixed time hoping for an outcome.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Upper bound for anything that should happen "soon"; generous for a loaded CI machine.
pub const DEADLINE: Duration = Duration::from_secs(10);

pub type Body = BoxBody<Bytes, Infallible>;

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("utf-8 body")
    }
}

/// One HTTP/1.1 client connection; requests sent on it reuse the same TCP connection.
pub async fn connect(addr: SocketAddr) -> SendRequest<Body> {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender
}

pub fn get_request(addr: SocketAddr, path: &str) -> Request<Body> {
    Request::get(path)
        .header("host", addr.to_string())
        .body(Empty::new().boxed())
        .expect("request")
}

pub async fn send(sender: &mut SendRequest<Body>, req: Request<Body>) -> Reply {
    try_send(sender, req).await.expect("response")
}

/// Like [`send`], but a transport error is returned instead of failing the test.
pub async fn try_send(
    sender: &mut SendRequest<Body>,
    req: Request<Body>,
) -> Result<Reply, hyper::Error> {
    sender.ready().await?;
    let res = sender.send_request(req).await?;
    let (parts, body) = res.into_parts();
    let body = body.collect().await?.to_bytes();
    Ok(Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

/// GET `path` on a fresh connection.
pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    let mut sender = connect(addr).await;
    send(&mut sender, get_request(addr, path)).await
}

/// Write `request` as is on a fresh connection and read until the member closes it; returns
/// the response head and body as text.
pub async fn raw_exchange(addr: SocketAddr, request: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    tokio::time::timeout(DEADLINE, stream.read_to_end(&mut out))
        .await
        .expect("member closes the connection in time")
        .expect("read");
    let text = String::from_utf8(out).expect("utf-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    (head.to_owned(), body.to_owned())
}

/// Poll `cond` until it holds, failing the test with `what` after `DEADLINE`.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// A connect to a killed or stopped member is refused.
pub async fn assert_refused(addr: SocketAddr) {
    match TcpStream::connect(addr).await {
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}"),
        Ok(_) => panic!("connect to {addr} succeeded after the member went down"),
    }
}
