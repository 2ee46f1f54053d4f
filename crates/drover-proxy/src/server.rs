//! Listeners and workers: sockets, threads, accept loops, connection lifetimes, graceful shutdown.
//!
//! [`Proxy::start`] binds every listener address once per worker with `SO_REUSEPORT` (so the
//! kernel spreads new connections over workers and no accept lock is shared), then starts `threads`
//! OS threads, each running a current-thread tokio runtime that accepts on its own sockets and
//! serves each connection with hyper's HTTP/1.1 server. A worker's tasks never leave its thread.
//!
//! Shutdown ([`Proxy::shutdown`]): every worker closes its listening sockets at once (new
//! connections are refused), asks each connection to finish its in-flight request and close
//! (idle keep-alive connections close immediately; a connection accepted just before that has
//! its first request served, with `Connection: close`, rather than being reset), and waits for
//! them up to the grace period; whatever is still running after that is dropped.
//!
//! Binary upgrade ([`Proxy::listening_sockets`], [`Options::inherited`], [`Proxy::hand_over`]):
//! the old process gives copies of its listening sockets to the new one, which serves on them
//! (binding only the addresses it was not given); then the old one stops accepting without
//! closing the sockets for good (the new process holds them, so nothing queued is lost), answers
//! every further response with `Connection: close`, closes connections that stay quiet for
//! [`DRAIN_QUIET`], and waits for the rest up to the grace period (docs/upgrade.md).
//!
//! Config keys read: `server.threads`, `server.grace`, `listener.*` limits and `idle_timeout`.

use std::future::Future;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use arc_swap::ArcSwap;
use drover_config::Config;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use socket2::{Domain, Socket, Type};
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::{Notify, watch};

use crate::access_log::ClientBody;
use crate::error::ServeError;
use crate::forward::ClientAddr;
use crate::handler::{self, ConnCtx};
use crate::idle::{self, Activity, CountedIo};
use crate::lazy::LazyStream;
use crate::state::Routing;

/// How many headers hyper's HTTP/1 parser keeps on the stack (its default `max_headers`).
const HYPER_STACK_HEADERS: usize = 100;

/// How long a connection must stay quiet, once its process is handing over or stopping, before
/// it is closed: long enough that a client in the middle of sending its next request gets it
/// answered (with `Connection: close`) rather than cut.
pub const DRAIN_QUIET: Duration = Duration::from_secs(1);

/// Run-time options not in the config file.
#[derive(Debug, Default)]
pub struct Options {
    /// Worker threads; overrides `server.threads`. `None`: the config's, where 0 = one per CPU.
    pub threads: Option<usize>,
    /// Listening sockets taken over from an old drover (binary upgrade). Each serves the
    /// configured listener address it is bound to, instead of a new socket; one that no
    /// listener names any more is closed.
    pub inherited: Vec<std::net::TcpListener>,
}

/// What the workers are asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Running,
    /// SIGTERM: close the listening sockets, finish in-flight requests.
    Shutdown,
    /// Another process serves the listening sockets now: stop accepting, drain gently.
    HandOver,
}

/// A running data plane.
pub struct Proxy {
    routing: Arc<ArcSwap<Routing>>,
    addrs: Vec<Vec<SocketAddr>>,
    /// A copy of every worker's listening socket, for [`Proxy::listening_sockets`]; emptied when
    /// the proxy stops or hands over, so that stopping closes the sockets for real.
    sockets: Mutex<Vec<(SocketAddr, OwnedFd)>>,
    shutdown: watch::Sender<Stop>,
    workers: Vec<JoinHandle<()>>,
    threads: usize,
    stopped: watch::Receiver<usize>,
}

/// Per-listener connection settings, built once.
#[derive(Clone)]
struct ListenerConf {
    index: usize,
    http: http1::Builder,
    trusted: Vec<drover_config::Cidr>,
    idle_timeout: Duration,
}

impl Proxy {
    /// Binds every listener and starts the workers. Returns once all sockets are listening.
    pub fn start(config: &Config, options: Options) -> Result<Proxy, ServeError> {
        Proxy::start_prepared(config, options, |routing, _| routing)
    }

    /// [`Proxy::start`], with `prepare` given the first snapshot (and the worker count) before any
    /// socket is bound, so state restored from disk is in force for the first request.
    pub fn start_prepared(
        config: &Config,
        options: Options,
        prepare: impl FnOnce(Routing, usize) -> Routing,
    ) -> Result<Proxy, ServeError> {
        let threads = match options.threads.unwrap_or(config.server.threads) {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let routing = prepare(Routing::build(config, threads), threads);
        if !routing.log_errors.is_empty() {
            return Err(ServeError::AccessLog(routing.log_errors.join("; ")));
        }
        let routing = Arc::new(ArcSwap::from_pointee(routing));

        let mut inherited = Inherited::new(options.inherited);
        // sockets[worker] = [(listener conf, socket)]
        let mut sockets: Vec<Vec<(usize, std::net::TcpListener)>> =
            (0..threads).map(|_| Vec::new()).collect();
        let mut addrs = Vec::new();
        for (li, listener) in config.listeners.iter().enumerate() {
            let mut bound = Vec::new();
            for addr in &listener.listen {
                let bind_err = |source| ServeError::Bind {
                    addr: *addr,
                    source,
                };
                // Taken over sockets first, spread over the workers: every one of them must be
                // accepted from, or what the kernel queues on it would wait forever. Workers
                // left without one bind their own (they join the same SO_REUSEPORT group).
                let given = inherited.take(*addr);
                let given_count = given.len();
                for (i, socket) in given.into_iter().enumerate() {
                    socket.set_nonblocking(true).map_err(bind_err)?;
                    defer_accept(&socket, listener.defer_accept).map_err(bind_err)?;
                    sockets[i % threads].push((li, socket));
                }
                let mut actual = *addr;
                for worker in sockets.iter_mut().skip(given_count) {
                    let socket = bind(actual).map_err(bind_err)?;
                    defer_accept(&socket, listener.defer_accept).map_err(bind_err)?;
                    // Port 0: every worker binds the port the first one was given.
                    actual = socket.local_addr().map_err(bind_err)?;
                    worker.push((li, socket));
                }
                if given_count > 0 {
                    tracing::info!(%addr, sockets = given_count, "listening on taken over sockets");
                }
                bound.push(actual);
            }
            addrs.push(bound);
        }
        inherited.close_unused();
        let mut copies = Vec::new();
        for worker in &sockets {
            for (_, socket) in worker {
                let addr = socket.local_addr().map_err(|source| ServeError::Bind {
                    addr: SocketAddr::from(([0, 0, 0, 0], 0)),
                    source,
                })?;
                let fd = std::os::fd::AsFd::as_fd(socket)
                    .try_clone_to_owned()
                    .map_err(|source| ServeError::Bind { addr, source })?;
                copies.push((addr, fd));
            }
        }

        let confs: Vec<ListenerConf> = config
            .listeners
            .iter()
            .enumerate()
            .map(|(index, l)| {
                let mut http = http1::Builder::new();
                // No hyper timer: the client idle timeout is per connection (idle.rs), not a
                // timer armed for every request head.
                // `half_close`: hyper does not read the client socket while a request is being
                // answered just to see whether the client left (HAProxy's default, without
                // `option abortonclose`, is the same: the member's answer is waited for). That
                // read is a wasted `recvfrom` per request on a connection not yet registered with
                // epoll (lazy.rs), and would register it. A client that went is noticed when its
                // answer is written, and its connection closed then.
                http.writev(false)
                    .half_close(true)
                    .keep_alive(true)
                    .max_header_size(l.limits.max_header_bytes)
                    .max_buf_size(l.limits.max_header_bytes.max(8192) + 64 * 1024);
                // hyper parses up to 100 headers into a stack array; any other limit moves that
                // array to the heap, one allocation per request (hyper's docs: ~5% slower).
                if l.limits.max_headers != HYPER_STACK_HEADERS {
                    http.max_headers(l.limits.max_headers);
                }
                ListenerConf {
                    index,
                    http,
                    trusted: l.trusted_proxies.clone(),
                    idle_timeout: l.idle_timeout,
                }
            })
            .collect();

        let (shutdown, _) = watch::channel(Stop::Running);
        let (stopped_tx, stopped) = watch::channel(0usize);
        let stopped_tx = Arc::new(stopped_tx);
        let grace = config.server.grace;
        let mut workers = Vec::with_capacity(threads);
        for (worker, socks) in sockets.into_iter().enumerate() {
            let routing = Arc::clone(&routing);
            let confs = confs.clone();
            let shutdown_rx = shutdown.subscribe();
            let stopped_tx = Arc::clone(&stopped_tx);
            let handle = std::thread::Builder::new()
                .name(format!("drover-worker-{worker}"))
                .spawn(move || {
                    match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt.block_on(run_worker(
                            worker,
                            socks,
                            confs,
                            routing,
                            shutdown_rx,
                            grace,
                        )),
                        Err(e) => {
                            tracing::error!(worker, error = %e, "cannot start worker runtime")
                        }
                    }
                    stopped_tx.send_modify(|n| *n += 1);
                })
                .map_err(ServeError::Thread)?;
            workers.push(handle);
        }
        tracing::info!(threads, listeners = ?addrs, "drover is serving");
        Ok(Proxy {
            routing,
            addrs,
            sockets: Mutex::new(copies),
            shutdown,
            workers,
            threads,
            stopped,
        })
    }

    /// The addresses each listener is bound to (port 0 resolved), in config order.
    pub fn listener_addrs(&self) -> &[Vec<SocketAddr>] {
        &self.addrs
    }

    /// The first address of the first listener.
    pub fn addr(&self) -> SocketAddr {
        self.addrs[0][0]
    }

    /// The live data-plane snapshot (farms, members, counters) for the admin API.
    pub fn routing(&self) -> Arc<Routing> {
        self.routing.load_full()
    }

    /// How many worker threads serve (what [`Routing::rebuild`] needs).
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Swaps in a new snapshot (a reload). Requests already running finish on the snapshot they
    /// started with; the next request of every connection, idle keep-alive ones included, reads
    /// the new one. Listening sockets are not touched.
    pub fn swap(&self, routing: Routing) {
        self.routing.store(Arc::new(routing));
    }

    /// Reopens every access log (log rotation: SIGUSR1). Returns at once; each log's writer
    /// thread reopens its file before writing anything else.
    pub fn reopen_logs(&self) {
        for log in self.routing().access_logs() {
            log.reopen();
        }
    }

    /// Writes every access-log line buffered so far, waiting up to `within` per log (at exit).
    pub fn flush_logs(&self, within: Duration) {
        for log in self.routing().access_logs() {
            log.flush(within);
        }
    }

    /// Starts a graceful shutdown: stop accepting, let in-flight requests finish within the grace
    /// period. Returns at once; see [`Proxy::stopped`] and [`Proxy::join`]. During a hand-over,
    /// it ends the gentle drain: idle connections close at once.
    pub fn shutdown(&self) {
        self.forget_sockets();
        self.shutdown.send_if_modified(|s| {
            let changed = *s != Stop::Shutdown;
            *s = Stop::Shutdown;
            changed
        });
    }

    /// A copy of every listening socket (one per worker and address) with its address, for a new
    /// process to take over (binary upgrade). Empty once the proxy stops or hands over.
    pub fn listening_sockets(&self) -> std::io::Result<Vec<(SocketAddr, OwnedFd)>> {
        let held = self.sockets.lock().unwrap_or_else(|p| p.into_inner());
        held.iter()
            .map(|(addr, fd)| Ok((*addr, fd.try_clone()?)))
            .collect()
    }

    /// Another process now serves the listening sockets (it holds copies of them): stop accepting
    /// without refusing anyone, answer every further response with `Connection: close`, close
    /// connections that stay quiet for [`DRAIN_QUIET`], wait for the others up to the grace
    /// period. Returns at once; see [`Proxy::stopped`].
    pub fn hand_over(&self) {
        self.forget_sockets();
        self.shutdown.send_if_modified(|s| {
            let start = *s == Stop::Running;
            if start {
                *s = Stop::HandOver;
            }
            start
        });
    }

    fn forget_sockets(&self) {
        self.sockets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// Resolves when every worker has stopped. Usable from any tokio runtime.
    pub async fn stopped(&self) {
        let n = self.workers.len();
        let mut rx = self.stopped.clone();
        let _ = rx.wait_for(|&done| done >= n).await;
    }

    /// Shuts down (if not already) and joins the worker threads. Blocking.
    pub fn join(mut self) {
        self.shutdown();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Listening sockets taken over from an old process, by the address they are bound to.
struct Inherited(Vec<(SocketAddr, std::net::TcpListener)>);

impl Inherited {
    fn new(sockets: Vec<std::net::TcpListener>) -> Self {
        let mut known = Vec::with_capacity(sockets.len());
        for socket in sockets {
            match socket.local_addr() {
                Ok(addr) => known.push((addr, socket)),
                Err(e) => tracing::warn!(error = %e, "a taken over socket has no address; closed"),
            }
        }
        Inherited(known)
    }

    /// The sockets bound to `addr`, taken out.
    fn take(&mut self, addr: SocketAddr) -> Vec<std::net::TcpListener> {
        let (mine, rest) = std::mem::take(&mut self.0)
            .into_iter()
            .partition(|(a, _)| *a == addr);
        self.0 = rest;
        mine.into_iter().map(|(_, s)| s).collect()
    }

    /// Closes the sockets no listener of the new config asked for (the old process still
    /// accepts on its own copies until it hands over).
    fn close_unused(self) {
        for (addr, _) in &self.0 {
            tracing::info!(%addr, "taken over socket not in the config; closed");
        }
    }
}

fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

/// A listener's `defer_accept`: with it, the kernel queues a connection for `accept` only once
/// its first bytes have arrived (or after about a second: the value is in seconds, and Linux
/// hands the connection over at the first retransmitted SYN-ACK's ACK past it), as nginx's
/// `deferred` and HAProxy's `defer-accept` do. A connection accepted with its request already
/// there is answered without waiting on epoll: no registration, no wakeup (lazy.rs). Set on
/// taken over sockets too, so a binary upgrade applies a changed setting.
fn defer_accept(socket: &std::net::TcpListener, on: bool) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let secs: libc::c_int = on.into();
        // SAFETY: a valid socket descriptor, and a pointer to a c_int with its true size.
        let r = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_DEFER_ACCEPT,
                std::ptr::from_ref(&secs).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (socket, on);
    Ok(())
}

/// Counts a worker's open client connections, so shutdown can wait for them.
#[derive(Default)]
struct Live {
    count: AtomicUsize,
    idle: Notify,
}

struct LiveGuard(Arc<Live>);

impl Drop for LiveGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

async fn run_worker(
    worker: usize,
    sockets: Vec<(usize, std::net::TcpListener)>,
    confs: Vec<ListenerConf>,
    routing: Arc<ArcSwap<Routing>>,
    mut shutdown: watch::Receiver<Stop>,
    grace: Duration,
) {
    let live = Arc::new(Live::default());
    // Sends this worker's small writes together, once per round (batch.rs).
    tokio::spawn(crate::batch::flusher());
    let mut accepts = Vec::new();
    for (li, socket) in sockets {
        // SAFETY: the AsyncFd owns the socket: its descriptor stays open, and the same, until
        // the AsyncFd is dropped, and nothing else closes it.
        let registered =
            unsafe { AsyncFd::register_with_interest(Socket::from(socket), Interest::READABLE) };
        let listener = match registered {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(worker, error = %e, "cannot register listener");
                continue;
            }
        };
        accepts.push(tokio::spawn(accept_loop(
            worker,
            listener,
            Arc::new(confs[li].clone()),
            Arc::clone(&routing),
            shutdown.clone(),
            Arc::clone(&live),
        )));
    }
    let reaper = tokio::spawn(reap_idle(worker, Arc::clone(&routing)));
    stopping(&mut shutdown).await;
    for a in accepts {
        let _ = a.await; // each loop drops its socket on shutdown
    }
    reaper.abort();
    let drained = async {
        loop {
            let idle = live.idle.notified();
            if live.count.load(Ordering::Acquire) == 0 {
                return;
            }
            idle.await;
        }
    };
    if tokio::time::timeout(grace, drained).await.is_err() {
        tracing::warn!(
            worker,
            open = live.count.load(Ordering::Acquire),
            "grace period over; closing remaining connections"
        );
    }
}

/// Accepts one connection, non-blocking and not yet registered with the event loop (see
/// [`LazyStream`]).
async fn accept(listener: &AsyncFd<Socket>) -> std::io::Result<(std::net::TcpStream, SocketAddr)> {
    loop {
        let mut ready = listener.readable().await?;
        match ready.try_io(|l| {
            l.get_ref()
                .accept4(libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC)
        }) {
            Ok(Ok((socket, addr))) => {
                let peer = addr.as_socket().ok_or_else(|| {
                    std::io::Error::other("accepted a connection that is not TCP/IP")
                })?;
                return Ok((socket.into(), peer));
            }
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => continue,
        }
    }
}

async fn accept_loop(
    worker: usize,
    listener: AsyncFd<Socket>,
    conf: Arc<ListenerConf>,
    routing: Arc<ArcSwap<Routing>>,
    mut shutdown: watch::Receiver<Stop>,
    live: Arc<Live>,
) {
    loop {
        let accepted = tokio::select! {
            a = accept(&listener) => a,
            _ = stopping(&mut shutdown) => return,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(worker, error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        live.count.fetch_add(1, Ordering::AcqRel);
        let guard = LiveGuard(Arc::clone(&live));
        let trusted = conf.trusted.iter().any(|c| c.contains(peer.ip()));
        let ctx = Arc::new(ConnCtx {
            routing: Arc::clone(&routing),
            worker,
            listener: conf.index,
            client: ClientAddr::new(peer, trusted),
            activity: Activity::default(),
            closing: std::sync::atomic::AtomicBool::new(false),
        });
        tokio::spawn(serve(
            LazyStream::new(stream),
            peer,
            Arc::clone(&conf),
            ctx,
            shutdown.clone(),
            guard,
        ));
    }
}

/// One client connection's hyper service: the handler, its future boxed. hyper keeps the slot
/// for a request's future for the whole connection, and the handler's future is about 1.2 KiB;
/// boxed per request, an idle keep-alive connection holds a pointer instead (bench/idle-conns:
/// 1.2 KiB less per connection; one allocation per request, which mimalloc serves from the
/// thread's cache).
struct Service(Arc<ConnCtx>);

type HandlerFuture =
    Pin<Box<dyn Future<Output = Result<Response<ClientBody>, std::convert::Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for Service {
    type Response = Response<ClientBody>;
    type Error = std::convert::Infallible;
    type Future = HandlerFuture;

    fn call(&self, req: Request<Incoming>) -> HandlerFuture {
        Box::pin(handler::handle(Arc::clone(&self.0), req))
    }
}

/// Serves one client connection until it ends, its idle timeout passes, or the process stops
/// or hands over. Its task holds what it is given for its whole life (an async fn keeps its
/// arguments), so it is given the socket and shared handles, and builds hyper's connection
/// itself: built by the caller and passed in, the connection would be held twice.
async fn serve(
    stream: LazyStream,
    peer: SocketAddr,
    conf: Arc<ListenerConf>,
    watched: Arc<ConnCtx>,
    mut shutdown: watch::Receiver<Stop>,
    _live: LiveGuard,
) {
    let idle_timeout = conf.idle_timeout;
    let io = TokioIo::new(CountedIo::new(stream, Arc::clone(&watched)));
    let conn = conf
        .http
        .serve_connection(io, Service(Arc::clone(&watched)))
        .with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        mode = stopping(&mut shutdown) => {
            if mode == Stop::HandOver || !watched.activity.seen() {
                // Hand-over, or a connection accepted just before the stop whose first request
                // may be on its way: serve what comes, with `Connection: close`, and close the
                // connection once it has been quiet for DRAIN_QUIET. Closing it now would reset
                // a request the client has already sent.
                watched.closing.store(true, Ordering::Relaxed);
                tokio::select! {
                    r = conn.as_mut() => r,
                    () = idle::watch(&watched.activity, DRAIN_QUIET.min(idle_timeout)) => {
                        conn.as_mut().graceful_shutdown();
                        conn.await
                    }
                    () = shutdown_asked(&mut shutdown), if mode == Stop::HandOver => {
                        conn.as_mut().graceful_shutdown();
                        conn.await
                    }
                }
            } else {
                watched.closing.store(true, Ordering::Relaxed);
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        }
        () = idle::watch(&watched.activity, idle_timeout) => {
            tracing::debug!(client = %peer, "client idle past idle_timeout; closed");
            return;
        }
    };
    if let Err(e) = result {
        if e.is_parse() || e.is_parse_too_large() {
            // hyper has already answered 400 / 414 / 431 where it could.
            tracing::info!(client = %peer, error = %e, "malformed request");
            log_refused(&watched, &e);
        } else {
            tracing::debug!(client = %peer, error = %e, "client connection ended");
        }
    }
}

/// The access-log line of a request hyper answered itself (its head could not be parsed): the
/// status hyper sent, no request line.
#[cold]
fn log_refused(ctx: &ConnCtx, e: &hyper::Error) {
    let routing = ctx.routing.load();
    let Some(listener) = routing.listeners.get(ctx.listener) else {
        return;
    };
    let Some(target) = &listener.access_log else {
        return;
    };
    // hyper's choice (`on_error` in its h1 role): 414 for a long URI, 431 for a large head, else
    // 400.
    let status = if !e.is_parse_too_large() {
        400
    } else if e.to_string().contains("URI") {
        414
    } else {
        431
    };
    let line = crate::access_log::format::Line {
        client: ctx.client.xff.as_bytes(),
        request: None,
        status,
        bytes: 0,
        referer: None,
        user_agent: None,
        listener: &listener.name,
        route: None,
        farm: None,
        member: None,
        retries: 0,
        sticky: Default::default(),
        upstream_ns: None,
        total_ns: None,
        completed: true,
    };
    target.file.write(ctx.worker, target.format, &line);
}

/// Closes this worker's pooled member connections once idle for too long, and those of members
/// that are down in farms that are not quiescent.
async fn reap_idle(worker: usize, routing: Arc<ArcSwap<Routing>>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let routing = routing.load();
        for farm in &routing.farms {
            for up in &farm.upstreams {
                up.reap(worker, !farm.quiescent && !up.member.state.is_up());
            }
            if let crate::state::OutageAction::Sorry(up) = &farm.outage {
                up.reap(worker, false);
            }
            // Learn mode's expired sessions, once a second, by one worker.
            if worker == 0
                && let Some(table) = farm.sticky.as_ref().and_then(|s| s.table.as_ref())
            {
                table.sweep(drover_core::clock::now());
            }
        }
    }
}

/// Resolves once a shutdown proper has been asked for (or the proxy handle is gone).
async fn shutdown_asked(shutdown: &mut watch::Receiver<Stop>) {
    let _ = shutdown.wait_for(|&s| s == Stop::Shutdown).await;
}

/// Resolves once shutdown or a hand-over has been asked for (or the proxy handle is gone, which
/// counts as shutdown), with which one.
async fn stopping(shutdown: &mut watch::Receiver<Stop>) -> Stop {
    match shutdown.wait_for(|&s| s != Stop::Running).await {
        Ok(mode) => *mode,
        Err(_) => Stop::Shutdown,
    }
}
