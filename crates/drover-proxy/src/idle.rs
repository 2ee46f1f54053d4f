//! Client idle timeout, per connection rather than per request.
//!
//! hyper's own `header_read_timeout` arms a boxed timer for every request head it reads, which
//! the profile showed as a few percent of drover's user time. Instead, every client connection
//! counts its activity ([`Activity`]: a request head arrived, or response bytes were written), and
//! one watcher per connection ([`watch`]) wakes every quarter of `idle_timeout`. A connection is
//! closed when, for a whole `idle_timeout`, no request was running, none started and nothing was
//! written to the client. That closes idle keep-alive connections, clients that trickle a request
//! head byte by byte (slowloris: bytes arrive but no request ever starts), and clients that stop
//! reading a response. It never touches a request waiting for its member's response head (the
//! farm's `first_byte_timeout` bounds that). A response body that sends nothing for a whole
//! `idle_timeout` (a quiet event stream, a long poll) is cut off like an idle client, as HAProxy's
//! `timeout client` does: raise the listener's `idle_timeout` for such routes.
//!
//! Precision: a connection goes between `idle_timeout` and 1.25 x `idle_timeout` after it fell
//! quiet.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use crate::batch::{Outbox, Peer};
use crate::lazy::LazyStream;

/// What a connection has been doing. Written by its own worker thread only; atomics because the
/// connection's future must be `Send`.
#[derive(Debug, Default)]
pub struct Activity {
    /// Bumped when a request starts and whenever bytes are written to the client.
    events: AtomicU64,
    /// Requests whose handler is running (waiting for the member's response head).
    running: AtomicU32,
}

impl Activity {
    /// A request head arrived; the returned guard marks it running until dropped.
    #[inline]
    pub fn request(&self) -> Running<'_> {
        self.events.fetch_add(1, Relaxed);
        self.running.fetch_add(1, Relaxed);
        Running(self)
    }

    /// Whether anything happened on the connection yet (a request started, bytes written).
    pub fn seen(&self) -> bool {
        self.events.load(Relaxed) > 0
    }

    #[inline]
    fn wrote(&self) {
        self.events.fetch_add(1, Relaxed);
    }
}

/// A running request (see [`Activity::request`]).
pub struct Running<'a>(&'a Activity);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Relaxed);
    }
}

/// Resolves once the connection has been quiet for `timeout`.
pub async fn watch(activity: &Activity, timeout: Duration) {
    let period = (timeout / 4).max(Duration::from_millis(5));
    let mut seen = activity.events.load(Relaxed);
    let mut quiet_since = Instant::now();
    loop {
        tokio::time::sleep(period).await;
        let now = activity.events.load(Relaxed);
        if now != seen || activity.running.load(Relaxed) > 0 {
            seen = now;
            quiet_since = Instant::now();
        } else if quiet_since.elapsed() >= timeout {
            return;
        }
    }
}

/// The client's socket, counting writes into its connection's [`Activity`].
/// Small writes go through its [`Outbox`] (see [`crate::batch`]).
pub struct CountedIo {
    inner: LazyStream,
    conn: Arc<crate::handler::ConnCtx>,
    outbox: Arc<Outbox>,
}

impl CountedIo {
    pub fn new(inner: LazyStream, conn: Arc<crate::handler::ConnCtx>) -> Self {
        let outbox = Outbox::new(inner.raw_fd(), Peer::Client);
        CountedIo {
            inner,
            conn,
            outbox,
        }
    }

    /// Writes what the flusher left (or reports what it failed to send).
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let inner = &mut self.inner;
        self.outbox
            .drain(|buf| Pin::new(&mut *inner).poll_write(cx, buf))
    }
}

impl Drop for CountedIo {
    fn drop(&mut self) {
        self.outbox.close();
    }
}

impl AsyncRead for CountedIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        // Bytes the flusher could not send go out before the connection waits on its client
        // (which may be waiting for them); registered for writability meanwhile.
        if this.outbox.needs_owner()
            && let Poll::Ready(Err(e)) = this.poll_drain(cx)
        {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.outbox.defer(buf, cx.waker()) {
            if !buf.is_empty() {
                this.conn.activity.wrote();
            }
            return Poll::Ready(Ok(buf.len()));
        }
        std::task::ready!(this.poll_drain(cx))?;
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r
            && n > 0
        {
            this.conn.activity.wrote();
        }
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_drain(cx))?;
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = r
            && n > 0
        {
            this.conn.activity.wrote();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    /// Deferred bytes count as flushed: the flusher sends them this round. Those it could not
    /// send are written here.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.outbox.needs_owner() {
            std::task::ready!(this.poll_drain(cx))?;
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}
