//! The two pull ports: the HAProxy agent-check port and the HTTP report.
//!
//! Agent-check ([`agent_check`]): on each connection, write the current line at once (HAProxy's
//! `agent-send` line may arrive, but the reply never waits for it), close the write side, then read
//! and discard whatever the client sent for up to [`DRAIN`] before closing: closing a socket with
//! unread input makes the kernel send a reset, which can destroy the reply before the client
//! reads it.
//!
//! HTTP ([`http`]): `GET /` and `GET /report` answer the JSON report (the push body); other paths
//! 404, other methods 405. HTTP/1.1 with hyper.
//!
//! Both read the newest [`Snapshot`] from the collector's watch channel: one `Arc` clone per
//! connection, nothing rendered per request.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::wire::Snapshot;

/// How long the agent-check port keeps reading (and discarding) a client's input after replying.
pub const DRAIN: Duration = Duration::from_secs(1);

/// Serves the agent-check port on `listener` until the task is dropped.
pub async fn agent_check(listener: TcpListener, snapshots: watch::Receiver<Arc<Snapshot>>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let snapshot = Arc::clone(&snapshots.borrow());
                tokio::spawn(reply(stream, snapshot));
            }
            Err(e) => {
                // EMFILE and friends: back off a little instead of spinning.
                tracing::warn!(error = %e, "agent-check accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn reply(mut stream: TcpStream, snapshot: Arc<Snapshot>) {
    if stream.write_all(snapshot.line.as_bytes()).await.is_err() {
        return;
    }
    let _ = stream.shutdown().await;
    let drain = async {
        let mut buf = [0u8; 512];
        while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
    };
    let _ = tokio::time::timeout(DRAIN, drain).await;
}

/// Serves the HTTP report on `listener` until the task is dropped.
pub async fn http(listener: TcpListener, snapshots: watch::Receiver<Arc<Snapshot>>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "http accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let snapshots = snapshots.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let snapshot = Arc::clone(&snapshots.borrow());
                async move { Ok::<_, Infallible>(answer(&req, &snapshot)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn answer<B>(req: &Request<B>, snapshot: &Snapshot) -> Response<Full<Bytes>> {
    let (status, kind, body) = match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/" | "/report") => (
            StatusCode::OK,
            "application/json",
            Bytes::from(format!("{}\n", snapshot.json)),
        ),
        (_, "/" | "/report") => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            Bytes::from_static(b"method not allowed (use GET)\n"),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            Bytes::from_static(b"not found (GET / or /report)\n"),
        ),
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(kind) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, v);
    }
    if status == StatusCode::METHOD_NOT_ALLOWED {
        response.headers_mut().insert(
            hyper::header::ALLOW,
            hyper::header::HeaderValue::from_static("GET, HEAD"),
        );
    }
    response
}
