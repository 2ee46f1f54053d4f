//! Active probes: one check of one member, over TCP or HTTP/1.1.
//!
//! Where it sits: the health scheduler ([`crate::schedule`]) gives each member a task that calls
//! [`Probe::run`] every interval with the task's own [`ProbeState`] (read buffer, kept
//! connection), and turns the results into rise/fall flips of the member's health. This module
//! knows nothing of config or of `drover-core`: it gets a socket address, a timeout and a
//! [`ProbeKind`], and answers a [`Success`] (latency, HTTP status) or a [`ProbeFailure`] whose
//! `Display` reads as a log line (`status 500, expected 200-399`).
//!
//! Key types: [`Probe`] (address + timeout + kind), [`HttpProbe`] (the request rendered once, and
//! the status/body expectations), [`ProbeState`] (what one member's runs carry from one to the
//! next), [`Success`], [`ProbeFailure`].
//!
//! Connection reuse: an HTTP probe built with `reuse_connection` keeps its connection in the
//! [`ProbeState`] between runs (HTTP/1.1 keep-alive, as Envoy's `reuse_connection`). A TCP
//! handshake and close per check is most of a check's cost (on loopback, 1,000 members checked
//! every second spent 5.2-5.6% of a core, mostly in the kernel's connect and close paths), and a
//! kept connection saves both (2.0-2.5%). The verdict does not depend on it: a kept connection
//! that went stale while idle is replaced within the same run, and the verdict is taken before
//! the rest of the response is read to keep the stream clean. The cost of reuse: a check over a
//! kept connection does not exercise the member's accept path, and each checked member holds one
//! idle connection. The rules for keeping a connection are in the doc of `probe/http.rs`.
//!
//! Invariants:
//! - one run is bounded by [`Probe::timeout`] as a whole (connect, write, reads, a reconnect after
//!   a stale kept connection, and the reading of the rest of a response, all before one deadline);
//! - for its verdict a run reads at most [`HEAD_LIMIT`] + `max_body` bytes from a connection,
//!   whatever the member sends; to keep the connection, at most [`DRAIN_SLACK`] more;
//! - without reuse, the body is read only when a body expectation exists; otherwise the probe
//!   ends at the head;
//! - a connection is in [`ProbeState`] after a run only if that run read its response to the exact
//!   end and the response allowed it to persist; any transport failure or timeout drops it;
//! - a TCP probe never keeps a connection;
//! - per run, the probe itself allocates nothing once the caller's buffer has grown to its working
//!   size (the socket does, in tokio; failures allocate their message).
//!
//! Concurrency model: a [`Probe`] is immutable, `Send + Sync`, and `run` takes `&self`, so one
//! probe may be shared; each concurrent run needs its own [`ProbeState`], and a state belongs to
//! one member (a kept connection goes to that member's address).
//!
//! Config keys: none read here; `drover-config` turns `[farm.<name>.check]` (`type`, `path`,
//! `expect_status`, `expect_body`, `expect_body_regex`, `timeout`, `reuse_connection`, ...) into
//! a [`Probe`].
//! Metrics: none emitted here; the scheduler records results and latencies.

mod chunked;
mod http;
mod tcp;

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

pub use http::{DRAIN_SLACK, HEAD_LIMIT, HttpProbe};

/// One check of one member: where, how long at most, and what kind.
#[derive(Debug, Clone)]
pub struct Probe {
    /// The member's address (or its dedicated check address).
    pub addr: SocketAddr,
    /// Bound on the whole run: connect, write the request, read the answer.
    pub timeout: Duration,
    /// TCP connect only, or an HTTP request.
    pub kind: ProbeKind,
}

/// What a probe does once connected.
#[derive(Debug, Clone)]
pub enum ProbeKind {
    /// Success = the connection is accepted; it is closed at once.
    Tcp,
    /// Send a request, check the status and optionally the body.
    Http(HttpProbe),
}

/// What one member's runs carry from one to the next: the read buffer (so a run allocates
/// nothing once it has grown) and, with connection reuse, the connection the last run left
/// clean. Owned by the member's task; start with `ProbeState::default()`.
#[derive(Debug, Default)]
pub struct ProbeState {
    buf: Vec<u8>,
    conn: Option<TcpStream>,
}

impl ProbeState {
    /// Whether a connection is kept for the next run.
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// The capacity of the read buffer, which stays at the size of the answers read.
    pub fn buffer_capacity(&self) -> usize {
        self.buf.capacity()
    }
}

/// A passed check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Success {
    /// From the start of the run to its end: the connect (if any), the exchange, and with
    /// connection reuse the reading of the rest of the response.
    pub latency: Duration,
    /// The final HTTP status (`None` for a TCP probe).
    pub status: Option<u16>,
}

/// Why a check failed. `Display` is meant for a log line about the member.
#[derive(Debug, thiserror::Error)]
pub enum ProbeFailure {
    /// The TCP connection could not be opened (refused, unreachable, ...).
    #[error("connect failed: {0}")]
    Connect(io::Error),
    /// The whole probe did not finish within its timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The member closed (or reset) the connection before a full response head arrived.
    #[error("connection closed before a response head")]
    Closed,
    /// The member's answer is not valid HTTP/1.x (or exceeds a limit, like a 16 KiB head).
    #[error("bad response: {0}")]
    Protocol(String),
    /// The final status is outside the expected ranges.
    #[error("status {got}, expected {expected}")]
    Status {
        /// The status the member answered.
        got: u16,
        /// The accepted ranges, as `200-399` or `200-299, 304`.
        expected: String,
    },
    /// The body did not meet an expectation. `wanted` is the phrase that completes "body does
    /// not ...": `contain "Test Page"` or `match /ok\d+/`.
    #[error("body does not {wanted}")]
    Body {
        /// What the body should have done.
        wanted: String,
    },
    /// An I/O error after the connection was established (other than a close before the head).
    #[error("connection error: {0}")]
    Io(io::Error),
}

impl Probe {
    /// Runs the check once, with `state` carried over from this member's previous run (its
    /// buffer's contents are unspecified between runs; its connection is used only by an HTTP
    /// probe with reuse, and kept only as the module doc says).
    pub async fn run(&self, state: &mut ProbeState) -> Result<Success, ProbeFailure> {
        let start = Instant::now();
        let status = match &self.kind {
            ProbeKind::Tcp => {
                state.conn = None;
                let connect = tokio::time::timeout(self.timeout, TcpStream::connect(self.addr));
                match connect.await {
                    Ok(stream) => tcp::finish(stream.map_err(ProbeFailure::Connect)?),
                    Err(_elapsed) => return Err(ProbeFailure::Timeout(self.timeout)),
                }
                None
            }
            ProbeKind::Http(http) => Some(http.run(self.addr, self.timeout, state).await?),
        };
        Ok(Success {
            latency: start.elapsed(),
            status,
        })
    }
}
