//! Active probes: one check of one member, over TCP or HTTP/1.1.
//!
//! Where it sits: the health scheduler (a later module of this crate) gives each member a task that
//! calls [`Probe::run`] every interval with the task's own read buffer, and turns the results into
//! rise/fall flips of the member's health. This module knows nothing of config or of `drover-core`:
//! it gets a socket address, a timeout and a [`ProbeKind`], and answers a [`Success`] (latency, HTTP
//! status) or a [`ProbeFailure`] whose `Display` reads as a log line
//! (`status 500, expected 200-399`).
//!
//! Key types: [`Probe`] (address + timeout + kind), [`HttpProbe`] (the request rendered once, and
//! the status/body expectations), [`Success`], [`ProbeFailure`].
//!
//! Invariants:
//! - one run is bounded by [`Probe::timeout`] as a whole (connect, write and reads under one
//!   `tokio::time::timeout`);
//! - one run reads at most [`HEAD_LIMIT`] + `max_body` bytes from the member, whatever it sends;
//! - the body is read only when a body expectation exists; otherwise the probe ends at the head;
//! - per run, the probe itself allocates nothing once the caller's buffer has grown to its working
//!   size (the socket does, in tokio; failures allocate their message).
//!
//! Concurrency model: a [`Probe`] is immutable, `Send + Sync`, and `run` takes `&self`, so one
//! probe may be shared; each concurrent run needs its own buffer.
//!
//! Config keys: none read here; `drover-config` turns `[farm.<name>.check]` (`type`, `path`,
//! `expect_status`, `expect_body`, `expect_body_regex`, `timeout`, ...) into a [`Probe`].
//! Metrics: none emitted here; the scheduler records results and latencies.

mod chunked;
mod http;
mod tcp;

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

pub use http::{HEAD_LIMIT, HttpProbe};

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

/// A passed check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Success {
    /// From the start of the connect to the end of what the probe needed to read.
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
    /// Runs the check once. `buf` is a read buffer owned by the caller's task and reused from one
    /// run to the next (it is cleared first; its contents afterwards are unspecified).
    pub async fn run(&self, buf: &mut Vec<u8>) -> Result<Success, ProbeFailure> {
        let start = Instant::now();
        let status = match tokio::time::timeout(self.timeout, self.attempt(buf)).await {
            Ok(result) => result?,
            Err(_elapsed) => return Err(ProbeFailure::Timeout(self.timeout)),
        };
        Ok(Success {
            latency: start.elapsed(),
            status,
        })
    }

    async fn attempt(&self, buf: &mut Vec<u8>) -> Result<Option<u16>, ProbeFailure> {
        let stream = TcpStream::connect(self.addr)
            .await
            .map_err(ProbeFailure::Connect)?;
        match &self.kind {
            ProbeKind::Tcp => {
                tcp::finish(stream);
                Ok(None)
            }
            ProbeKind::Http(http) => http.exchange(stream, buf).await.map(Some),
        }
    }
}
