//! A running test member: its listener, accept loop and connection tasks, and the
//! [`TestMember`] handle that observes and ends them.
//!
//! `start_on` binds (with `SO_REUSEADDR`, so a killed member's port can be bound again at once)
//! and spawns the accept loop on the runtime of the caller, current-thread or multi-thread. Each
//! accepted connection becomes one task serving HTTP/1.1 with keep-alive and upgrades through
//! `routes::handle`; a WebSocket upgrade becomes one more task (`ws.rs`).
//!
//! Lifecycle: one `watch` channel carries the member's [`Mode`] to every task.
//! - `Draining` (`stop`): the accept loop ends, closing the listener; each connection finishes
//!   the request in flight and closes; hung requests are abandoned (the connection closes
//!   unanswered, as a stuck worker would when its process is stopped); WebSockets get a Close.
//! - `Killed` (`kill`, or dropping the handle): every task drops its socket at once, in-flight
//!   requests included, like a crashed process.
//!
//! Every task holds a clone of [`Ctx`], which owns the sending half of an mpsc channel; the
//! handle's receiver sees `None` once the last task (and so the listener and the last socket) is
//! gone. That is how `kill` and `stop` know the member is really down before they return.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};

use crate::behaviour::Behaviour;
use crate::config::{Latency, MemberConfig};
use crate::routes;

/// Where a member is in its life; ordered, so "at least draining" is a comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Mode {
    Serving,
    Draining,
    Killed,
}

/// What every task of one member shares. Holding a clone keeps the member "not yet down".
pub(crate) struct Ctx {
    pub(crate) behaviour: Arc<Behaviour>,
    pub(crate) mode: watch::Receiver<Mode>,
    _alive: mpsc::Sender<()>,
}

/// Resolves once the member's mode is at least `at_least`, or its handle is gone (treated as
/// killed: nobody can observe or stop the member any more).
pub(crate) fn reached(ctx: &Ctx, at_least: Mode) -> impl Future<Output = ()> + Send + 'static {
    let mut rx = ctx.mode.clone();
    async move {
        let _ = rx.wait_for(|m| *m >= at_least).await;
    }
}

/// Listener backlog: large enough that a benchmark's connection burst is not refused.
const BACKLOG: u32 = 1024;

/// An in-process HTTP/1.1 member for tests, `drover demo` and benchmarks.
///
/// Dropping the handle kills the member (without waiting); call [`TestMember::kill`] or
/// [`TestMember::stop`] to wait until it is down.
#[derive(Debug)]
pub struct TestMember {
    addr: SocketAddr,
    behaviour: Arc<Behaviour>,
    mode: watch::Sender<Mode>,
    alive: mpsc::Receiver<()>,
}

impl TestMember {
    /// Start a member on `127.0.0.1` with a port chosen by the system.
    pub async fn start(cfg: MemberConfig) -> io::Result<TestMember> {
        TestMember::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), cfg).await
    }

    /// Start a member on `addr` (port 0 picks one). The port may be one a killed or stopped
    /// member just used. Fails with `InvalidInput` when the config is invalid.
    pub async fn start_on(addr: SocketAddr, cfg: MemberConfig) -> io::Result<TestMember> {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        let listener = socket.listen(BACKLOG)?;
        let addr = listener.local_addr()?;
        let behaviour = Arc::new(Behaviour::new(cfg, addr)?);
        let (mode, mode_rx) = watch::channel(Mode::Serving);
        let (alive_tx, alive) = mpsc::channel(1);
        let ctx = Arc::new(Ctx {
            behaviour: Arc::clone(&behaviour),
            mode: mode_rx,
            _alive: alive_tx,
        });
        tracing::debug!(member = behaviour.name(), %addr, "test member listening");
        tokio::spawn(accept_loop(listener, ctx));
        Ok(TestMember {
            addr,
            behaviour,
            mode,
            alive,
        })
    }

    /// The address the member listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr><path>`; `path` should start with `/`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The member's name (its `X-Member` header).
    pub fn name(&self) -> &str {
        self.behaviour.name()
    }

    /// Requests received, counted when the request head arrives (hung ones included).
    pub fn requests(&self) -> u64 {
        self.behaviour.requests.load(Relaxed)
    }

    /// TCP connections accepted.
    pub fn connections(&self) -> u64 {
        self.behaviour.connections.load(Relaxed)
    }

    /// TCP connections open now (accepted and not yet closed by either side).
    pub fn open_connections(&self) -> u64 {
        self.behaviour.open.load(Relaxed)
    }

    /// Hang (or stop hanging) on requests that arrive from now on. Requests already hung stay
    /// unanswered.
    pub fn set_hang(&self, hang: bool) {
        self.behaviour.set_hang(hang);
    }

    /// Status of the default route from now on; a code outside 200..=999 is answered `500`.
    pub fn set_status(&self, status: u16) {
        self.behaviour.set_status(status);
    }

    /// Body of the default route from now on (instead of `"<name>\n"`).
    pub fn set_body(&self, body: impl Into<bytes::Bytes>) {
        self.behaviour.set_body(body.into());
    }

    /// Share of requests answered `500` from now on (clamped to 0.0..=1.0; NaN means 0).
    pub fn set_fail_ratio(&self, ratio: f64) {
        self.behaviour.set_fail_ratio(ratio);
    }

    /// Delay before answers from now on.
    pub fn set_latency(&self, latency: Latency) {
        self.behaviour.set_latency(latency);
    }

    /// Crash the member: close the listener and drop every open connection at once, in-flight
    /// requests and WebSockets included. Returns once the port refuses connections and every
    /// socket is closed.
    pub async fn kill(mut self) {
        self.shut(Mode::Killed).await;
    }

    /// Stop gracefully: close the listener, finish the requests in flight (hung ones are
    /// abandoned), close idle keep-alive connections, send Close on WebSockets. Returns once
    /// every socket is closed.
    pub async fn stop(mut self) {
        self.shut(Mode::Draining).await;
    }

    async fn shut(&mut self, mode: Mode) {
        tracing::debug!(member = self.name(), ?mode, "test member shutting down");
        self.mode.send_replace(mode);
        // Nobody sends on this channel: `recv` yields `None` when the last task has dropped
        // its sender, that is when the listener and every connection are closed.
        while self.alive.recv().await.is_some() {}
    }
}

/// Start `n` members; `cfg` builds the config of member `i` (0-based). Stops at the first
/// failure, killing the members already started (by dropping them).
pub async fn start_members(
    n: usize,
    mut cfg: impl FnMut(usize) -> MemberConfig,
) -> io::Result<Vec<TestMember>> {
    let mut members = Vec::with_capacity(n);
    for i in 0..n {
        members.push(TestMember::start(cfg(i)).await?);
    }
    Ok(members)
}

async fn accept_loop(listener: TcpListener, ctx: Arc<Ctx>) {
    loop {
        let accepted = tokio::select! {
            biased;
            () = reached(&ctx, Mode::Draining) => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                ctx.behaviour.connections.fetch_add(1, Relaxed);
                ctx.behaviour.open.fetch_add(1, Relaxed);
                tracing::trace!(member = ctx.behaviour.name(), %peer, "accepted");
                let ctx = Arc::clone(&ctx);
                tokio::spawn(async move {
                    serve_connection(stream, Arc::clone(&ctx)).await;
                    ctx.behaviour.open.fetch_sub(1, Relaxed);
                });
            }
            Err(e) => {
                // Out of file descriptors and the like: back off briefly instead of spinning.
                tracing::warn!(member = ctx.behaviour.name(), error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    // Close the listener before `ctx` goes: dropping the last `ctx` tells `kill` the member is
    // down, so the port must already refuse connections by then (parameters would otherwise
    // drop in reverse order, `ctx` first).
    drop(listener);
    tracing::debug!(member = ctx.behaviour.name(), "listener closed");
}

async fn serve_connection(stream: TcpStream, ctx: Arc<Ctx>) {
    // Small answers go out at once instead of waiting for Nagle.
    let _ = stream.set_nodelay(true);
    let killed = reached(&ctx, Mode::Killed);
    let draining = reached(&ctx, Mode::Draining);
    let svc_ctx = Arc::clone(&ctx);
    let service = service_fn(move |req| routes::handle(Arc::clone(&svc_ctx), req));
    let serve = async move {
        let conn = http1::Builder::new()
            .keep_alive(true)
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        tokio::pin!(conn);
        let result = tokio::select! {
            result = conn.as_mut() => result,
            () = draining => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Err(e) = result {
            tracing::debug!(error = %e, "connection ended with an error");
        }
    };
    // `select!` drops `serve`, and with it the socket, before `ctx` is dropped below.
    tokio::select! {
        biased;
        () = killed => {}
        () = serve => {}
    }
    drop(ctx);
}
