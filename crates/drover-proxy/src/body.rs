//! Bodies: the response body drover sends to clients and the request body it sends to members.
//!
//! Both stream frame by frame with backpressure from hyper: nothing is buffered whole, whatever
//! the size. The upstream response body carries the [`Exchange`] of its request: when the body
//! ends cleanly the member connection goes back to its pool; when the body is dropped (client gone,
//! timeout, member error) the connection is closed; either way the member counters are settled
//! once, in `Drop`.
//!
//! Timeouts while streaming (`idle_timeout`, `total_timeout` of the farm) are enforced here with one
//! timer that is created only if the body is not already buffered, so small responses cost no timer.

use std::error::Error as StdError;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use drover_core::{Member, clock};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use crate::h1client::RawBody;
use crate::pool::{Pooled, Upstream};

pub type BoxError = Box<dyn StdError + Send + Sync>;

/// The body of a response drover sends to a client.
pub enum ProxyBody {
    /// A body drover produced itself (error pages, redirects, fixed answers).
    Full(Option<Bytes>),
    /// A member's response, streamed.
    Upstream(UpstreamBody),
}

impl ProxyBody {
    pub fn full(bytes: Bytes) -> Self {
        ProxyBody::Full((!bytes.is_empty()).then_some(bytes))
    }

    pub fn empty() -> Self {
        ProxyBody::Full(None)
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ProxyBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ProxyBody::Upstream(u) => Pin::new(u).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Full(b) => b.is_none(),
            ProxyBody::Upstream(u) => u.inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            ProxyBody::Upstream(u) => u.inner.size_hint(),
        }
    }
}

/// One request's use of a member: its pooled connection while the response streams, and the
/// bookkeeping settled when it ends.
pub struct Exchange {
    upstream: Arc<Upstream>,
    conn: Option<Pooled>,
    worker: usize,
    /// The request body's progress, if it had one: the connection is reused only once it is done.
    upload: Option<Arc<Upload>>,
    /// When the response head arrived: the start of the connection's next idle time.
    head_at: Option<Instant>,
    latency_ns: Option<u64>,
    bytes_out: u64,
    ok: bool,
    server_error: bool,
}

impl Exchange {
    /// Starts the exchange: counts the request as in flight on the member.
    pub fn start(upstream: Arc<Upstream>, worker: usize) -> Self {
        upstream.member.stats.start();
        Exchange {
            upstream,
            conn: None,
            worker,
            upload: None,
            head_at: None,
            latency_ns: None,
            bytes_out: 0,
            ok: false,
            server_error: false,
        }
    }

    pub fn with_upload(mut self, upload: Option<Arc<Upload>>) -> Self {
        self.upload = upload;
        self
    }

    pub fn upstream(&self) -> &Arc<Upstream> {
        &self.upstream
    }

    /// From sending the request to its response head, once the head arrived.
    pub fn latency_ns(&self) -> Option<u64> {
        self.latency_ns
    }

    /// The response head arrived now, for a request sent at `sent`; keep `conn` until the body
    /// ends.
    pub fn headers_received(&mut self, sent: Instant, conn: Option<Pooled>) {
        let now = Instant::now();
        self.latency_ns = Some(now.saturating_duration_since(sent).as_nanos() as u64);
        self.head_at = Some(now);
        self.conn = conn;
    }

    /// The member answered with a server error (5xx): the exchange counts as a failure in the
    /// member's counters even if its body streams to the end.
    pub fn server_error(&mut self) {
        self.server_error = true;
    }

    /// The response ended cleanly: the connection may serve another request.
    fn complete(&mut self) {
        self.ok = !self.server_error;
        let upload_done = self.upload.as_ref().is_none_or(|u| u.done());
        if let (Some(conn), Some(since), true) = (self.conn.take(), self.head_at, upload_done) {
            self.upstream.checkin(self.worker, conn, since);
        }
    }

    /// The exchange succeeded without a body to stream (e.g. a 101 handed over to a tunnel).
    pub fn succeed(mut self) {
        self.ok = true;
        self.conn = None;
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        let stats = &self.upstream.member.stats;
        stats.add_bytes(0, self.bytes_out);
        // The sample's time is the head's arrival, already read: no second clock reading.
        let head_at = self.head_at.map_or(0, |t| clock::nanos(t.into_std()));
        stats.finish_at(self.ok, self.latency_ns, head_at);
        // A connection still held here did not finish its response: dropping it closes it.
    }
}

/// Where a member's response body comes from: hyper's client, or drover's own
/// ([`crate::h1client`]), which reads it from the connection the body owns until it ends.
pub enum Inner {
    Hyper(Incoming),
    Raw(RawBody),
}

impl Inner {
    fn is_end_stream(&self) -> bool {
        match self {
            Inner::Hyper(b) => b.is_end_stream(),
            Inner::Raw(b) => b.is_end(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Inner::Hyper(b) => b.size_hint(),
            Inner::Raw(b) => b.size_hint(),
        }
    }

    fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self {
            Inner::Hyper(b) => Pin::new(b)
                .poll_frame(cx)
                .map(|f| f.map(|r| r.map_err(Into::into))),
            Inner::Raw(b) => b
                .poll_data(cx)
                .map(|d| d.map(|r| r.map(Frame::data).map_err(Into::into))),
        }
    }
}

/// A member's response body on its way to the client.
pub struct UpstreamBody {
    inner: Inner,
    exchange: Exchange,
    idle: Duration,
    deadline: Option<Instant>,
    timer: Option<Pin<Box<Sleep>>>,
}

impl UpstreamBody {
    pub fn new(
        inner: Inner,
        mut exchange: Exchange,
        idle: Duration,
        deadline: Option<Instant>,
    ) -> Self {
        let mut inner = inner;
        if inner.is_end_stream() {
            Self::settle(&mut inner, &mut exchange);
        }
        UpstreamBody {
            inner,
            exchange,
            idle,
            deadline,
            timer: None,
        }
    }

    pub fn exchange(&self) -> &Exchange {
        &self.exchange
    }

    /// The body ended cleanly: a raw connection goes back with the exchange's.
    fn settle(inner: &mut Inner, exchange: &mut Exchange) {
        if let Inner::Raw(raw) = inner
            && let Some(conn) = raw.take_reusable()
        {
            exchange.conn = Some(Pooled::Raw(conn));
        }
        exchange.complete();
    }

    fn next_deadline(&self) -> Instant {
        let idle = Instant::now() + self.idle;
        self.deadline.map_or(idle, |d| d.min(idle))
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.exchange.bytes_out += data.len() as u64;
                }
                if this.timer.is_some() {
                    let at = this.next_deadline();
                    if let Some(t) = this.timer.as_mut() {
                        t.as_mut().reset(at);
                    }
                }
                if this.inner.is_end_stream() {
                    Self::settle(&mut this.inner, &mut this.exchange);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => {
                Self::settle(&mut this.inner, &mut this.exchange);
                Poll::Ready(None)
            }
            Poll::Pending => {
                if this.timer.is_none() {
                    this.timer = Some(Box::pin(tokio::time::sleep_until(this.next_deadline())));
                }
                let timer = this.timer.as_mut().map(|t| t.as_mut().poll(cx));
                ready!(timer.unwrap_or(Poll::Pending));
                if let Some(held) = this.exchange.upstream.warn.allow() {
                    tracing::warn!(
                        member = this.exchange.upstream.member.name(),
                        held_back = held,
                        "response body stalled past idle_timeout or ran past total_timeout; cut off"
                    );
                }
                Poll::Ready(Some(Err("member response body timed out".into())))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Request bodies up to this size are kept while they stream to a member, so an idempotent
/// request (or one whose route allows it) can be sent again to another member after a failure.
/// Larger bodies are streamed without a copy and their requests are not replayed once sent.
pub const REPLAY_LIMIT: u64 = 64 * 1024;

/// The body of a request drover sends to a member.
pub enum UpBody {
    /// No body (GET and friends): cheap to recreate, so such requests can be retried.
    Empty,
    /// The client's body, streamed; its bytes are counted into the member's `bytes_in`.
    Client(Incoming, ByteCount),
    /// A copy of a client body already sent once, sent again to another member.
    Replay(Option<Bytes>),
}

impl UpBody {
    pub fn client(inner: Incoming, member: Arc<Member>) -> Self {
        UpBody::Client(
            inner,
            ByteCount {
                member,
                bytes: 0,
                upload: Arc::default(),
                keep: false,
            },
        )
    }

    /// The client's body, streamed, keeping a copy of it (up to [`REPLAY_LIMIT`]) for a retry.
    pub fn client_replayable(inner: Incoming, member: Arc<Member>) -> Self {
        let fits = inner.size_hint().lower() <= REPLAY_LIMIT;
        let upload = Upload {
            replay: Mutex::new(fits.then(Vec::new)),
            ..Upload::default()
        };
        UpBody::Client(
            inner,
            ByteCount {
                member,
                bytes: 0,
                upload: Arc::new(upload),
                keep: fits,
            },
        )
    }

    /// How the upload of this body is going (`None` without a streamed body).
    pub fn upload(&self) -> Option<Arc<Upload>> {
        match self {
            UpBody::Empty | UpBody::Replay(_) => None,
            UpBody::Client(_, count) => Some(Arc::clone(&count.upload)),
        }
    }

    /// The client's body back, from a request that was not sent.
    pub fn into_client(self) -> Option<Incoming> {
        match self {
            UpBody::Empty | UpBody::Replay(_) => None,
            UpBody::Client(inner, _) => Some(inner),
        }
    }
}

/// Bytes of a request body sent to a member, added to its counters when the body is dropped.
pub struct ByteCount {
    member: Arc<Member>,
    bytes: u64,
    upload: Arc<Upload>,
    /// Still copying the body into `upload.replay`.
    keep: bool,
}

/// Progress of a request body on its way to a member, seen from the handler while hyper sends it:
/// the first-byte timeout waits for an upload that is still moving, and a connection whose
/// request body was not sent to the end is never reused (the member may have answered early,
/// e.g. 413, while hyper is still writing the body).
#[derive(Debug, Default)]
pub struct Upload {
    sent: AtomicU64,
    done: AtomicBool,
    /// The body's chunks so far, when it is kept for a replay and still within the limit.
    replay: Mutex<Option<Vec<Bytes>>>,
}

impl Upload {
    pub fn sent(&self) -> u64 {
        self.sent.load(Relaxed)
    }

    pub fn done(&self) -> bool {
        self.done.load(Relaxed)
    }

    /// The body was kept whole: a retry can send it again.
    pub fn can_replay(&self) -> bool {
        self.done() && self.replay.lock().is_ok_and(|k| k.is_some())
    }

    /// The whole body, if it was kept and has been read to its end: what a retry sends.
    pub fn replay(&self) -> Option<Bytes> {
        if !self.done() {
            return None;
        }
        let kept = self.replay.lock().ok()?;
        let chunks = kept.as_ref()?;
        Some(match chunks.as_slice() {
            [] => Bytes::new(),
            [one] => one.clone(),
            many => {
                let mut all = BytesMut::with_capacity(many.iter().map(Bytes::len).sum());
                many.iter().for_each(|c| all.extend_from_slice(c));
                all.freeze()
            }
        })
    }

    fn keep(&self, chunk: &Bytes, total: u64) -> bool {
        let Ok(mut kept) = self.replay.lock() else {
            return false;
        };
        match kept.as_mut() {
            Some(chunks) if total <= REPLAY_LIMIT => {
                chunks.push(chunk.clone());
                true
            }
            _ => {
                *kept = None;
                false
            }
        }
    }

    /// The body had trailers or failed: it cannot be replayed.
    fn forget(&self) {
        if let Ok(mut kept) = self.replay.lock() {
            *kept = None;
        }
    }
}

impl Drop for ByteCount {
    fn drop(&mut self) {
        self.member.stats.add_bytes(self.bytes, 0);
    }
}

impl Body for UpBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            UpBody::Empty => Poll::Ready(None),
            UpBody::Replay(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            UpBody::Client(inner, count) => {
                let frame = ready!(Pin::new(&mut *inner).poll_frame(cx));
                match &frame {
                    Some(Ok(f)) => {
                        if let Some(d) = f.data_ref() {
                            count.bytes += d.len() as u64;
                            count.upload.sent.store(count.bytes, Relaxed);
                            if count.keep {
                                count.keep = count.upload.keep(d, count.bytes);
                            }
                        } else if count.keep {
                            count.keep = false;
                            count.upload.forget();
                        }
                        if inner.is_end_stream() {
                            count.upload.done.store(true, Relaxed);
                        }
                    }
                    None => count.upload.done.store(true, Relaxed),
                    Some(Err(_)) => count.upload.forget(),
                }
                Poll::Ready(frame)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpBody::Empty => true,
            UpBody::Replay(b) => b.is_none(),
            UpBody::Client(inner, _) => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpBody::Empty => SizeHint::with_exact(0),
            UpBody::Replay(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            UpBody::Client(inner, _) => inner.size_hint(),
        }
    }
}
