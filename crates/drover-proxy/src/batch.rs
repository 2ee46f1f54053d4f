//! Small writes sent together, once per round of the worker's event loop.
//!
//! A connection's task used to write its response (or its request to a member) the moment it had
//! it, in the middle of the loop's round: the reader on the other end (the client, the member)
//! was woken once per write, and on a machine where it shares CPUs with drover it took the CPU
//! from drover's worker as often. HAProxy's run queue does a round's reads, then its processing,
//! then its sends, so its writes come in bursts and wake each reader once per burst. Here a
//! small write (at most [`MAX_DEFER`] bytes, at most [`MAX_PENDING`] waiting per socket) is
//! copied into the socket's [`Outbox`] and the write reported done; the worker's [`flusher`]
//! task, woken by the round's first deferred write and queued behind the tasks already runnable,
//! sends every waiting outbox in one go. Measured (interleaved A/B, wrk -c64 keep-alive): 7-8%
//! less CPU per request, and a p99 that went from above HAProxy's to at or below it (see
//! docs/performance.md).
//!
//! What cannot be sent at once stays in the outbox, and its connection's task (woken by the
//! flusher) writes it itself, registered for writability, before anything else it writes; a send
//! that fails is reported to that task by its next read or write. The flusher never touches a
//! socket whose owner has dropped it ([`Outbox::close`] runs before the socket is closed).
//!
//! Who uses it: [`crate::idle::CountedIo`] (client sockets) and [`crate::h1client::RawConn`]
//! (member connections, the request head).

use std::cell::RefCell;
use std::io;
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex};
use std::task::Waker;

use tokio::sync::Notify;

/// Largest single write that is deferred.
pub const MAX_DEFER: usize = 16 * 1024;
/// Most bytes waiting in one outbox; past it, writes go straight to the socket.
pub const MAX_PENDING: usize = 64 * 1024;

thread_local! {
    /// Outboxes with something to send this round, on this worker: requests to members first
    /// (index 0: the members start on them while the clients' answers go out), then clients.
    static QUEUE: RefCell<[Vec<Arc<Outbox>>; 2]> = const { RefCell::new([Vec::new(), Vec::new()]) };
    /// This worker's flusher, once it runs.
    static FLUSHER: RefCell<Option<Arc<Notify>>> = const { RefCell::new(None) };
}

/// One socket's waiting bytes.
#[derive(Debug)]
pub struct Outbox {
    state: Mutex<State>,
    /// Which queue: 0 for member connections, 1 for clients.
    queue: usize,
}

/// Whose socket an outbox writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    Member,
    Client,
}

#[derive(Debug)]
struct State {
    buf: Vec<u8>,
    fd: RawFd,
    /// In this worker's queue.
    queued: bool,
    /// The flusher could not send all of `buf`: the owner writes it.
    blocked: bool,
    /// A send failed; reported to the owner once.
    failed: Option<io::Error>,
    /// The socket's owner has dropped it: never use `fd` again.
    closed: bool,
    /// The owner's task, woken when the flusher blocks or fails.
    waker: Option<Waker>,
}

impl Outbox {
    pub fn new(fd: RawFd, peer: Peer) -> Arc<Outbox> {
        Arc::new(Outbox {
            queue: match peer {
                Peer::Member => 0,
                Peer::Client => 1,
            },
            state: Mutex::new(State {
                buf: Vec::new(),
                fd,
                queued: false,
                blocked: false,
                failed: None,
                closed: false,
                waker: None,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes `data` to be sent at the end of the round. False: write it yourself, after what
    /// waits ([`Outbox::drain`]): too large, too much waiting, the flusher blocked or failed, or
    /// no flusher on this thread.
    pub fn defer(self: &Arc<Self>, data: &[u8], waker: &Waker) -> bool {
        if data.len() > MAX_DEFER {
            return false;
        }
        let mut st = self.lock();
        if st.blocked
            || st.failed.is_some()
            || st.closed
            || st.buf.len() + data.len() > MAX_PENDING
            || !FLUSHER.with(|f| f.borrow().is_some())
        {
            return false;
        }
        st.buf.extend_from_slice(data);
        if !st.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            st.waker = Some(waker.clone());
        }
        if !st.queued {
            st.queued = true;
            drop(st);
            let first = QUEUE.with(|q| {
                let mut q = q.borrow_mut();
                let first = q[0].is_empty() && q[1].is_empty();
                q[self.queue].push(Arc::clone(self));
                first
            });
            if first {
                FLUSHER.with(|f| {
                    if let Some(n) = &*f.borrow() {
                        n.notify_one();
                    }
                });
            }
        }
        true
    }

    /// Whether the owner has to write waiting bytes itself, or learn of a failed send.
    pub fn needs_owner(&self) -> bool {
        let st = self.lock();
        st.blocked || st.failed.is_some()
    }

    /// Writes what waits with `write` (the owner's registered socket), until it is all out,
    /// `write` returns `Pending` (then `Pending`), or it fails. Also reports a failed send.
    pub fn drain(
        &self,
        mut write: impl FnMut(&[u8]) -> std::task::Poll<io::Result<usize>>,
    ) -> std::task::Poll<io::Result<()>> {
        use std::task::Poll;
        let mut st = self.lock();
        if let Some(e) = st.failed.take() {
            st.buf.clear();
            return Poll::Ready(Err(e));
        }
        while !st.buf.is_empty() {
            match write(&st.buf) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    st.buf.drain(..n);
                }
                Poll::Ready(Err(e)) => {
                    st.buf.clear();
                    return Poll::Ready(Err(e));
                }
                Poll::Pending => {
                    st.blocked = true;
                    return Poll::Pending;
                }
            }
        }
        st.blocked = false;
        Poll::Ready(Ok(()))
    }

    /// The socket got a new descriptor (a member connection moved to another worker).
    pub fn set_fd(&self, fd: RawFd) {
        self.lock().fd = fd;
    }

    /// The owner drops the socket: what still waits is sent if the socket takes it now, and the
    /// descriptor is never used again.
    pub fn close(&self) {
        let mut st = self.lock();
        if !st.buf.is_empty() && st.failed.is_none() {
            let _ = send(st.fd, &st.buf);
        }
        st.buf = Vec::new();
        st.closed = true;
        st.waker = None;
    }

    /// Sends what waits; on a short send, leaves the rest to the owner.
    fn flush(&self) {
        let mut st = self.lock();
        st.queued = false;
        if st.closed || st.blocked || st.buf.is_empty() {
            return;
        }
        match send(st.fd, &st.buf) {
            Ok(n) if n == st.buf.len() => {
                st.buf.clear();
                // Responses are small; a buffer grown by a burst is not kept for the idle time.
                if st.buf.capacity() > MAX_DEFER {
                    st.buf = Vec::new();
                }
                return;
            }
            Ok(n) => {
                st.buf.drain(..n);
                st.blocked = true;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => st.blocked = true,
            Err(e) => {
                st.buf.clear();
                st.failed = Some(e);
            }
        }
        if let Some(w) = st.waker.take() {
            w.wake();
        }
    }
}

/// One non-blocking `send` (no SIGPIPE).
fn send(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    loop {
        // SAFETY: `fd` is an open socket (the owner marks the outbox closed before closing it),
        // and `buf` is valid for its length.
        let r = unsafe {
            libc::send(
                fd,
                buf.as_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if r >= 0 {
            return Ok(r as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// The worker's flusher: runs for the worker's life. Until it runs, writes are not deferred.
pub async fn flusher() {
    let notify = Arc::new(Notify::new());
    FLUSHER.with(|f| *f.borrow_mut() = Some(Arc::clone(&notify)));
    let _gone = Gone;
    loop {
        notify.notified().await;
        flush_all();
    }
}

/// Sends every waiting outbox of this worker.
fn flush_all() {
    let queues = QUEUE.with(|q| std::mem::take(&mut *q.borrow_mut()));
    for outbox in queues.iter().flatten() {
        outbox.flush();
    }
}

/// When the flusher ends (its worker stops), writes are no longer deferred and what waits is
/// sent.
struct Gone;

impl Drop for Gone {
    fn drop(&mut self) {
        let _ = FLUSHER.try_with(|f| *f.borrow_mut() = None);
        if let Ok(queues) = QUEUE.try_with(|q| std::mem::take(&mut *q.borrow_mut())) {
            for outbox in queues.iter().flatten() {
                outbox.flush();
            }
        }
    }
}
