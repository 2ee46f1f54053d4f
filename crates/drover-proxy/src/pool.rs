//! Upstream pools: keep-alive connections to each member, lent to one request at a time.
//!
//! Who calls it: the handler asks [`Upstream::acquire`] for a connection to the member the policy
//! chose; the response body hands the connection back with [`Upstream::checkin`] when the response
//! has ended cleanly.
//!
//! Two kinds of connection: [`RawConn`] for requests without a body, driven by drover's own
//! client ([`crate::h1client`]) inside the request's task, and hyper's `SendRequest` (with its
//! connection task) for requests with a body. Each kind has its own idle lists; both count
//! against the member's `max_connections`.
//!
//! Model: one idle list per worker thread per member and kind (LIFO, so the warmest connection
//! is reused first and surplus ones age out). A worker only touches its own list, so its mutex is never
//! contended on the request path; other workers' lists are only looked at by a request that is
//! waiting for the member's connection limit. Idle connections older than `pool_idle_timeout` are
//! closed, lazily on checkout and by [`Upstream::reap`] from each worker's sweeper.
//!
//! Limits: `max_connections` caps open connections per member (busy + idle, all workers); a request
//! that finds the member at its cap waits (up to `connect_timeout`) for one to be returned. At most
//! [`MAX_CONNECTING`] connects to one member are in progress at once, so a burst of requests to a
//! cold or dead member does not turn into a storm of connects: the others wait for those to finish.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::Relaxed, Ordering::SeqCst, fence};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use drover_core::Member;
use http::HeaderValue;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::Notify;
use tokio::time::{Instant, timeout_at};

use crate::body::UpBody;
use crate::error::Failure;
use crate::h1client::RawConn;
use crate::loglimit::LogLimit;

/// Most connects in progress to one member at once (all workers).
pub const MAX_CONNECTING: u32 = 16;

/// Pool settings of one farm.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PoolSettings {
    pub max_connections: u32,
    pub max_idle: usize,
    pub idle_timeout: Duration,
    pub connect_timeout: Duration,
}

struct Idle<C> {
    conn: C,
    since: Instant,
}

/// One worker's idle connections to one member.
#[derive(Default)]
struct Lists {
    hyper: Vec<Idle<SendRequest<UpBody>>>,
    raw: Vec<Idle<Box<RawConn>>>,
}

impl Lists {
    fn len(&self) -> usize {
        self.hyper.len() + self.raw.len()
    }
}

/// Which client a request goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// drover's own, for requests without a body ([`crate::h1client`]).
    Raw,
    /// hyper's, for requests with a body.
    Hyper,
}

/// A member connection of either kind.
pub enum Pooled {
    Raw(Box<RawConn>),
    Hyper(SendRequest<UpBody>),
}

/// Frees a raw connection's slot in its member's connection count when the connection is
/// dropped (closed), and wakes a request waiting for that slot. (hyper's connections do the
/// same from their connection task.)
pub struct Release {
    member: Arc<Member>,
    slots: Arc<Slots>,
}

impl Drop for Release {
    fn drop(&mut self) {
        self.member.stats.close_connection();
        self.slots.wake();
    }
}

/// A member as the data plane sees it: the core member plus its connection pools.
pub struct Upstream {
    pub member: Arc<Member>,
    /// `ip:port` of the member, used as `Host` when the client's is not preserved.
    pub authority: HeaderValue,
    /// `http://ip:port`, the prefix a member's self-referencing `Location` starts with.
    pub origin: Box<str>,
    pub(crate) settings: PoolSettings,
    idle: Box<[Mutex<Lists>]>,
    connecting: AtomicU32,
    /// Shared with the pools this member had before and will have after a rebuild: the member's
    /// connection cap counts all of them, so a request waiting in one must wake when another
    /// frees a connection.
    slots: Arc<Slots>,
    /// Replaced by a rebuild: idle connections were closed and returned ones are not kept.
    retired: AtomicBool,
    /// Rate limit for this member's warnings.
    pub warn: LogLimit,
}

/// Requests waiting for a member's connection cap, and their wake-up.
#[derive(Default)]
struct Slots {
    waiting: AtomicU32,
    freed: Notify,
}

impl Slots {
    fn wake(&self) {
        fence(SeqCst);
        if self.waiting.load(Relaxed) > 0 {
            self.freed.notify_waiters();
        }
    }
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("member", &self.member.name())
            .finish()
    }
}

/// A connection lent to one request.
pub struct Lent {
    pub conn: Pooled,
    /// It served requests before: a failure on it may be a race with the member closing it idle.
    pub reused: bool,
}

impl Upstream {
    pub fn new(member: Arc<Member>, settings: PoolSettings, workers: usize) -> Self {
        let addr = member.addr();
        let authority = HeaderValue::from_str(&addr.to_string())
            .expect("a socket address is a valid header value");
        Upstream {
            origin: format!("http://{addr}").into(),
            member,
            authority,
            settings,
            idle: (0..workers.max(1))
                .map(|_| Mutex::new(Lists::default()))
                .collect(),
            connecting: AtomicU32::new(0),
            slots: Arc::default(),
            retired: AtomicBool::new(false),
            warn: LogLimit::default(),
        }
    }

    /// A new pool for the same member with other settings, to replace this one in a rebuild: the
    /// two share the member's connection cap and its waiting requests.
    pub fn successor(&self, settings: PoolSettings, workers: usize) -> Self {
        let mut next = Upstream::new(Arc::clone(&self.member), settings, workers);
        next.slots = Arc::clone(&self.slots);
        next
    }

    /// Takes this pool out of service after a rebuild replaced it (or its member went): closes its
    /// idle connections now; connections lent out close when their requests end instead of coming
    /// back. Without this the idle ones would hold their sockets, and slots of the member's
    /// `max_connections`, for as long as the process lives.
    pub fn retire(&self) {
        self.retired.store(true, Relaxed);
        for list in self.idle.iter() {
            // Dropped outside the lock: closing wakes the connection tasks.
            let closed = std::mem::take(&mut *list.lock().unwrap_or_else(|p| p.into_inner()));
            drop(closed);
        }
        self.wake();
    }

    /// Whether [`retire`](Upstream::retire) was called.
    pub fn is_retired(&self) -> bool {
        self.retired.load(Relaxed)
    }

    pub fn addr(&self) -> SocketAddr {
        self.member.addr()
    }

    /// A connection to this member: a pooled idle one if any, else a new one. `now` is the
    /// caller's clock reading (one per request is enough).
    pub async fn acquire(
        self: &Arc<Self>,
        worker: usize,
        now: Instant,
        kind: Kind,
    ) -> Result<Lent, Failure> {
        if let Some(conn) = self.take_idle(worker, now, kind) {
            return Ok(Lent { conn, reused: true });
        }
        let deadline = now + self.settings.connect_timeout;
        // Slow path. Counted as waiting throughout, so a connection returned at any moment from
        // here on wakes this request (no lost wakeup between a failed check and the wait).
        self.slots.waiting.fetch_add(1, Relaxed);
        // Pairs with the fence in `wake`: either this request sees the freed slot or connection,
        // or the freeing side sees `waiting` and notifies (needed on weakly ordered CPUs).
        fence(SeqCst);
        let _waiting = Waiting(&self.slots.waiting);
        loop {
            let freed = self.slots.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if let Some(conn) = self.take_idle(worker, Instant::now(), kind) {
                return Ok(Lent { conn, reused: true });
            }
            if let Some(slot) = self.reserve() {
                return self.connect(slot, deadline, kind).await.map(|conn| Lent {
                    conn,
                    reused: false,
                });
            }
            // At the member's limit: an idle connection of another worker beats waiting, and
            // one of the other kind is closed to make room for a new one of this kind.
            if let Some(conn) = self.take_idle_any(worker, Instant::now(), kind) {
                return Ok(Lent { conn, reused: true });
            }
            if self.close_other_kind(kind) {
                continue;
            }
            if timeout_at(deadline, freed).await.is_err() {
                return Err(
                    if self.settings.max_connections > 0
                        && self.member.stats.connections() >= self.settings.max_connections
                    {
                        Failure::Saturated
                    } else {
                        Failure::Connect
                    },
                );
            }
        }
    }

    /// Returns a connection whose response ended cleanly; `since` starts its idle time.
    pub fn checkin(&self, worker: usize, conn: Pooled, since: Instant) {
        {
            let mut idle = self.lock(worker);
            // Read under the lock `retire` empties the list with, so a connection is either
            // refused here or cleared there, never left behind in a retired pool.
            if idle.len() >= self.settings.max_idle || self.retired.load(Relaxed) {
                drop(idle);
                return; // dropped: closes, and frees its slot
            }
            match conn {
                Pooled::Hyper(conn) if !conn.is_closed() => idle.hyper.push(Idle { conn, since }),
                Pooled::Raw(conn) => idle.raw.push(Idle { conn, since }),
                Pooled::Hyper(_) => return,
            }
        }
        self.wake();
    }

    /// Closes this worker's idle connections that have been idle too long or were closed by the
    /// member; all of them when `all` (a down member in a farm that is not quiescent).
    pub fn reap(&self, worker: usize, all: bool) {
        let now = Instant::now();
        let ttl = self.settings.idle_timeout;
        let mut idle = self.lock(worker);
        if all {
            // Dropped outside the lock: a raw connection's release takes no lock, but hyper's
            // connection tasks are woken.
            let closed = std::mem::take(&mut *idle);
            drop(idle);
            drop(closed);
        } else {
            idle.hyper
                .retain(|i| !i.conn.is_closed() && now.duration_since(i.since) < ttl);
            idle.raw
                .retain(|i| !i.conn.is_closed() && now.duration_since(i.since) < ttl);
        }
    }

    fn lock(&self, worker: usize) -> std::sync::MutexGuard<'_, Lists> {
        // A panic while holding this lock can only come from Vec::push's allocation failing, which
        // aborts; a poisoned list is still a valid list.
        self.idle[worker % self.idle.len()]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn take_idle(&self, worker: usize, now: Instant, kind: Kind) -> Option<Pooled> {
        let ttl = self.settings.idle_timeout;
        let mut idle = self.lock(worker);
        match kind {
            Kind::Raw => {
                while let Some(i) = idle.raw.pop() {
                    if now.duration_since(i.since) < ttl && !i.conn.is_closed() {
                        return Some(Pooled::Raw(i.conn));
                    }
                }
            }
            Kind::Hyper => {
                while let Some(i) = idle.hyper.pop() {
                    // Not `is_ready()`: the connection task may not yet have seen the end of the
                    // last response; the handler awaits `ready()` before sending.
                    if !i.conn.is_closed() && now.duration_since(i.since) < ttl {
                        return Some(Pooled::Hyper(i.conn));
                    }
                }
            }
        }
        None
    }

    /// Own list first, then the other workers' (only on the slow path, at the member's limit).
    /// A raw connection of another worker moves to this worker's event loop; one that cannot
    /// (that worker's loop has stopped) is closed, which frees its slot.
    fn take_idle_any(&self, worker: usize, now: Instant, kind: Kind) -> Option<Pooled> {
        let n = self.idle.len();
        (0..n).find_map(|k| {
            let from = (worker + k) % n;
            match self.take_idle(from, now, kind)? {
                Pooled::Raw(mut conn) if from != worker % n => {
                    conn.rehome().ok().map(|()| Pooled::Raw(conn))
                }
                conn => Some(conn),
            }
        })
    }

    /// At the member's limit with no idle connection of `kind`: closes one idle connection of
    /// the other kind (any worker's), so the waiting request can open its own. `true` if a slot
    /// is free now (a raw connection was closed); a closed hyper connection frees its slot when
    /// its task sees the close, and wakes the waiting request then.
    fn close_other_kind(&self, kind: Kind) -> bool {
        let closed = self.idle.iter().find_map(|list| {
            let mut list = list.lock().unwrap_or_else(|p| p.into_inner());
            match kind {
                Kind::Raw => list.hyper.pop().map(|i| Pooled::Hyper(i.conn)),
                Kind::Hyper => list.raw.pop().map(|i| Pooled::Raw(i.conn)),
            }
        });
        let freed_now = matches!(closed, Some(Pooled::Raw(_)));
        drop(closed);
        freed_now
    }

    fn reserve(&self) -> Option<ConnectSlot<'_>> {
        let stats = &self.member.stats;
        if !stats.try_open_connection(self.settings.max_connections) {
            return None;
        }
        if self.connecting.fetch_add(1, Relaxed) >= MAX_CONNECTING {
            self.connecting.fetch_sub(1, Relaxed);
            stats.close_connection();
            return None;
        }
        Some(ConnectSlot {
            up: self,
            armed: true,
        })
    }

    fn wake(&self) {
        self.slots.wake();
    }

    async fn connect(
        self: &Arc<Self>,
        mut slot: ConnectSlot<'_>,
        deadline: Instant,
        kind: Kind,
    ) -> Result<Pooled, Failure> {
        let addr = self.addr();
        let stream = match timeout_at(deadline, connect_tcp(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                if let Some(held) = self.warn.allow() {
                    tracing::warn!(member = self.member.name(), %addr, error = %e, held_back = held, "connect failed");
                }
                return Err(Failure::Connect);
            }
            Err(_) => {
                if let Some(held) = self.warn.allow() {
                    tracing::warn!(member = self.member.name(), %addr, held_back = held, "connect timed out");
                }
                return Err(Failure::Connect);
            }
        };
        if kind == Kind::Raw {
            // From here the connection owns the slot: its release frees it when it is dropped.
            slot.armed = false;
            drop(slot);
            let release = Release {
                member: Arc::clone(&self.member),
                slots: Arc::clone(&self.slots),
            };
            return Ok(Pooled::Raw(RawConn::new(stream, release)));
        }
        let (conn, driver) = match http1::Builder::new()
            .writev(false)
            .handshake::<_, UpBody>(TokioIo::new(stream))
            .await
        {
            Ok(pair) => pair,
            Err(e) => {
                if let Some(held) = self.warn.allow() {
                    tracing::warn!(member = self.member.name(), error = %e, held_back = held, "handshake failed");
                }
                return Err(Failure::Connect);
            }
        };
        // From here the connection task owns the slot: it releases it when the connection closes.
        slot.armed = false;
        drop(slot);
        let up = Arc::clone(self);
        tokio::spawn(async move {
            if let Err(e) = driver.await {
                tracing::debug!(member = up.member.name(), error = %e, "member connection ended");
            }
            up.member.stats.close_connection();
            up.wake();
        });
        Ok(Pooled::Hyper(conn))
    }

    /// A dedicated connection for an upgrade (WebSocket): never pooled, handed to the tunnel.
    pub async fn connect_upgradable(self: &Arc<Self>) -> Result<SendRequest<UpBody>, Failure> {
        let deadline = Instant::now() + self.settings.connect_timeout;
        let stream = match timeout_at(deadline, connect_tcp(self.addr())).await {
            Ok(Ok(s)) => s,
            _ => return Err(Failure::Connect),
        };
        let (conn, driver) = http1::Builder::new()
            .handshake::<_, UpBody>(TokioIo::new(stream))
            .await
            .map_err(|_| Failure::Connect)?;
        tokio::spawn(async move {
            let _ = driver.with_upgrades().await;
        });
        Ok(conn)
    }
}

/// Un-counts a waiting request however `acquire` ends.
struct Waiting<'a>(&'a AtomicU32);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// A reserved connection slot; released if the connect fails.
struct ConnectSlot<'a> {
    up: &'a Upstream,
    armed: bool,
}

impl Drop for ConnectSlot<'_> {
    fn drop(&mut self) {
        self.up.connecting.fetch_sub(1, Relaxed);
        if self.armed {
            self.up.member.stats.close_connection();
        }
        self.up.wake();
    }
}

async fn connect_tcp(addr: SocketAddr) -> io::Result<TcpStream> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use drover_core::MemberSpec;

    use super::*;

    /// A keep-alive member on 127.0.0.1:0 answering every request `200` with no body, one
    /// thread per connection.
    fn member() -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for mut stream in listener.incoming().map_while(Result::ok) {
                std::thread::spawn(move || {
                    let mut seen = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while let Ok(n @ 1..) = stream.read(&mut chunk) {
                        seen.extend_from_slice(&chunk[..n]);
                        while let Some(i) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                            seen.drain(..i + 4);
                            let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
                            if stream.write_all(answer).is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        addr
    }

    /// One bodiless request through `worker`'s pool; whether it went on a reused connection.
    async fn round_trip(up: &Arc<Upstream>, worker: usize) -> bool {
        let lent = up.acquire(worker, Instant::now(), Kind::Raw).await.unwrap();
        let Pooled::Raw(mut conn) = lent.conn else {
            panic!("a raw connection was asked for")
        };
        let (head, ()) = http::Request::get("/").body(()).unwrap().into_parts();
        let exchange = async {
            conn.send(&head).await.unwrap();
            conn.read_head(false).await.unwrap()
        };
        // A socket left on a stopped event loop never becomes readable: bounded, not a hang.
        let answer = timeout_at(Instant::now() + Duration::from_secs(5), exchange)
            .await
            .expect("an answer within 5 s");
        assert_eq!(answer.parts.status, 200);
        up.checkin(worker, Pooled::Raw(conn), Instant::now());
        lent.reused
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn a_raw_connection_taken_from_another_worker_outlives_that_worker() {
        let spec = MemberSpec {
            name: "m".into(),
            addr: member(),
            weight: 1,
            route: None,
            enabled: true,
        };
        let settings = PoolSettings {
            max_connections: 1,
            max_idle: 8,
            idle_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
        };
        let up = Arc::new(Upstream::new(Arc::new(Member::new(spec)), settings, 2));
        let (worker0, worker1) = (runtime(), runtime());
        assert!(!worker0.block_on(round_trip(&up, 0)), "first connection");
        // At the member's limit of one connection, worker 1 takes worker 0's idle one.
        assert!(worker1.block_on(round_trip(&up, 1)), "taken from worker 0");
        // Worker 0 drains and stops (as in a hand-over); the connection, now worker 1's, must
        // still work there: it was moved onto worker 1's event loop when it was taken.
        drop(worker0);
        assert!(worker1.block_on(round_trip(&up, 1)), "kept by worker 1");
        assert_eq!(up.member.stats.connections(), 1);
    }
}
