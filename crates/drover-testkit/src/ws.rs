//! `/ws`: a WebSocket endpoint that sends back every text and binary message exactly.
//!
//! `accept` checks the upgrade request and answers `101` with `Sec-WebSocket-Accept`; a task
//! spawned on the caller's runtime then waits for hyper to hand over the connection and runs
//! the echo over `tokio_tungstenite`. The task holds the member's `Ctx`, so `kill` drops the
//! socket at once and `stop` sends a Close frame first. Pings are answered by tungstenite.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use http::header::{
    CONNECTION, HeaderValue, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION,
    UPGRADE,
};
use http::{HeaderMap, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

use crate::behaviour::X_MEMBER;
use crate::body::MemberBody;
use crate::member::{Ctx, Mode, reached};

/// Whether header `name` lists `token` (comma-separated, case-insensitive).
fn has_token(headers: &HeaderMap, name: http::header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

pub(crate) fn accept(ctx: &Arc<Ctx>, mut req: Request<Incoming>) -> Response<MemberBody> {
    let b = &ctx.behaviour;
    let headers = req.headers();
    let upgrade = req.method() == http::Method::GET
        && has_token(headers, UPGRADE, "websocket")
        && has_token(headers, CONNECTION, "upgrade")
        && headers
            .get(SEC_WEBSOCKET_VERSION)
            .is_some_and(|v| v == "13");
    let key = match headers.get(SEC_WEBSOCKET_KEY) {
        Some(key) if upgrade => derive_accept_key(key.as_bytes()),
        _ => {
            let mut res = b.text(
                StatusCode::BAD_REQUEST,
                "/ws needs a WebSocket upgrade (version 13)",
            );
            res.headers_mut()
                .insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
            return res;
        }
    };
    // The base64 accept key is always a valid header value.
    let Ok(accept_key) = HeaderValue::from_str(&key) else {
        return b.text(StatusCode::INTERNAL_SERVER_ERROR, "bad accept key");
    };

    let on_upgrade = hyper::upgrade::on(&mut req);
    let task_ctx = Arc::clone(ctx);
    tokio::spawn(async move {
        let killed = reached(&task_ctx, Mode::Killed);
        let run = async {
            match on_upgrade.await {
                Ok(upgraded) => echo(&task_ctx, upgraded).await,
                Err(e) => tracing::debug!(error = %e, "websocket upgrade failed"),
            }
        };
        // `select!` drops `run`, and with it the socket, before `task_ctx` is dropped below.
        tokio::select! {
            biased;
            () = killed => {}
            () = run => {}
        }
        drop(task_ctx);
    });

    let mut res = Response::new(MemberBody::empty());
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = res.headers_mut();
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(SEC_WEBSOCKET_ACCEPT, accept_key);
    h.insert(X_MEMBER, b.x_member());
    res
}

async fn echo(ctx: &Ctx, upgraded: Upgraded) {
    let mut ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
    let draining = reached(ctx, Mode::Draining);
    tokio::pin!(draining);
    loop {
        tokio::select! {
            msg = ws.next() => match msg {
                Some(Ok(msg)) if msg.is_text() || msg.is_binary() => {
                    if let Err(e) = ws.send(msg).await {
                        tracing::debug!(error = %e, "websocket send failed");
                        return;
                    }
                }
                // Ping, pong and close are answered by tungstenite on the next read.
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    tracing::debug!(error = %e, "websocket read failed");
                    return;
                }
                None => return,
            },
            () = &mut draining => {
                let _ = ws.close(None).await;
                return;
            }
        }
    }
}
