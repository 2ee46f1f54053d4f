//! Upgrades: WebSocket and any other `Connection: upgrade` protocol, passed through.
//!
//! The handler sends the upgrade request to the member on a dedicated (never pooled) connection.
//! When the member answers `101 Switching Protocols`, [`switch`] returns that answer to the client
//! and spawns a tunnel that, once hyper has handed over both raw connections, copies bytes both
//! ways until either side closes. Anything but a 101 is an ordinary response.

use drover_core::Member;
use http::{Response, header};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use std::sync::Arc;

use crate::body::{Exchange, ProxyBody};

/// Answers the client's upgrade with the member's 101 and splices the two connections.
pub fn switch(
    mut member_res: Response<Incoming>,
    client: OnUpgrade,
    exchange: Exchange,
) -> Response<ProxyBody> {
    let member_io = hyper::upgrade::on(&mut member_res);
    let member: Arc<Member> = Arc::clone(&exchange.upstream().member);
    // The request succeeded; the tunnel's lifetime is not request latency.
    exchange.succeed();
    tokio::spawn(async move {
        let (client, upstream) = match tokio::try_join!(client, member_io) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(member = member.name(), error = %e, "upgrade handover failed");
                return;
            }
        };
        let (mut a, mut b) = (TokioIo::new(client), TokioIo::new(upstream));
        match tokio::io::copy_bidirectional(&mut a, &mut b).await {
            Ok((to_member, to_client)) => member.stats.add_bytes(to_member, to_client),
            Err(e) => {
                tracing::debug!(member = member.name(), error = %e, "upgraded connection ended")
            }
        }
    });
    let (mut parts, _) = member_res.into_parts();
    // Keep the protocol switch; only the hop-by-hop headers that are not part of it go.
    for name in ["keep-alive", "proxy-connection", "transfer-encoding"] {
        parts.headers.remove(name);
    }
    parts.headers.insert(
        header::CONNECTION,
        http::HeaderValue::from_static("upgrade"),
    );
    Response::from_parts(parts, ProxyBody::empty())
}
