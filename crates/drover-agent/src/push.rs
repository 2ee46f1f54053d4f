//! Pushing reports to drover nodes: `POST {URL}/api/v1/reports`, signed, one task per node.
//!
//! Where it sits: [`crate::Agent`] starts one [`run`] task per `--push URL`; each reads the latest
//! [`Snapshot`] from the collector's watch channel, so a slow or dead node never delays the
//! collector or another node.
//!
//! Schedule per node: wait the interval (or the backoff), +-10% jitter so that many agents started
//! together do not push in step, then push the newest snapshot not pushed yet (waiting for the
//! next collection if there is none). A failure (connect error, timeout, non-2xx answer) doubles the wait, from
//! the interval up to [`MAX_BACKOFF`]; a success brings it back to the interval. The first failure
//! is logged at warn, the recovery at info; the tries in between only at debug.
//!
//! Signing: `X-Drover-Timestamp: <unix seconds, with milliseconds>` (e.g. `1700000000.125`) and `X-Drover-Signature:
//! drover_core::report::push::sign(secret, timestamp, body)`. The fraction is signed too: two
//! collections can render the same body (a busy member at cpu 1.0 with a steady load), and with
//! whole seconds two such pushes in one second would be one message, the second refused by the
//! node's replay guard. Transport: HTTP/1.1 with hyper, a
//! new connection per push (one push every few seconds does not need a pool, and a new connection
//! cannot be a half-dead one). `https` is not supported: run the agent next to a TLS proxy or on
//! a trusted network; the signature authenticates the report either way, but does not hide it.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::wire::Snapshot;

/// Longest wait between two tries to a failing node.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The path pushed to, below the node's URL.
pub const PATH: &str = "/api/v1/reports";

/// A node to push to, from `http://host[:port][/prefix]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The URL as given, for logs.
    pub url: String,
    /// Host for the TCP connect (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    /// `host[:port]` for the `Host` header.
    pub authority: String,
    /// The full path pushed to: the URL's path without its trailing `/`, then [`PATH`].
    pub path: String,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target, String> {
        let bad = |why: &str| format!("--push {url:?}: {why} (expected http://host[:port])");
        let uri: hyper::Uri = url.parse().map_err(|_| bad("not a URL"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => return Err(bad("https is not supported")),
            _ => return Err(bad("scheme must be http")),
        }
        if uri.query().is_some() {
            return Err(bad("no query string allowed"));
        }
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        let host = authority.host();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() {
            return Err(bad("no host"));
        }
        if authority.as_str().contains('@') {
            return Err(bad("no user info allowed"));
        }
        Ok(Target {
            url: url.to_owned(),
            host: host.to_owned(),
            port: authority.port_u16().unwrap_or(80),
            authority: authority.as_str().to_owned(),
            path: format!("{}{PATH}", uri.path().trim_end_matches('/')),
        })
    }
}

/// Why one push failed.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    #[error("HTTP error: {0}")]
    Http(#[from] hyper::Error),
    #[error("bad request: {0}")]
    Request(#[from] hyper::http::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("answered {status}: {body}")]
    Status { status: u16, body: String },
}

/// The `X-Drover-Timestamp` of a push sent now: unix seconds with milliseconds.
pub fn timestamp_now() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:03}", now.as_secs(), now.subsec_millis())
}

/// Sends `body` to `target` once, signed with `secret`, within `timeout`.
pub async fn push_once(
    target: &Target,
    body: &str,
    secret: &[u8],
    timeout: Duration,
) -> Result<(), PushError> {
    tokio::time::timeout(timeout, send(target, body, secret))
        .await
        .map_err(|_| PushError::Timeout(timeout))?
}

async fn send(target: &Target, body: &str, secret: &[u8]) -> Result<(), PushError> {
    let stream = TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(PushError::Connect)?;
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let conn = tokio::spawn(async move {
        let _ = conn.await;
    });
    let ts = timestamp_now();
    let signature = drover_core::report::push::sign(secret, &ts, body.as_bytes());
    let request = Request::post(target.path.as_str())
        .header(hyper::header::HOST, target.authority.as_str())
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::CONNECTION, "close")
        .header("x-drover-timestamp", ts)
        .header("x-drover-signature", signature)
        .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))?;
    let result = async {
        let response = sender.send_request(request).await?;
        let status = response.status();
        let answer = response.into_body().collect().await?.to_bytes();
        if status.is_success() {
            Ok(())
        } else {
            let text = String::from_utf8_lossy(&answer[..answer.len().min(200)]);
            Err(PushError::Status {
                status: status.as_u16(),
                body: text.split_whitespace().collect::<Vec<_>>().join(" "),
            })
        }
    }
    .await;
    conn.abort();
    result
}

/// The wait after `failures` failures in a row: the interval doubled per failure, at most
/// [`MAX_BACKOFF`] (or the interval, if that is longer), before jitter.
pub fn backoff(interval: Duration, failures: u32) -> Duration {
    let doubled = interval.saturating_mul(1u32 << failures.min(16));
    doubled.min(MAX_BACKOFF.max(interval))
}

/// A small xorshift generator for jitter; no need for a cryptographic source here.
pub(crate) struct Jitter(u64);

impl Jitter {
    pub(crate) fn new(salt: u64) -> Jitter {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Jitter(
            (nanos ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(std::process::id())) | 1,
        )
    }

    /// `d` times a factor drawn uniformly from `0.9..1.1`.
    pub(crate) fn apply(&mut self, d: Duration) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let unit = (self.0 >> 11) as f64 / (1u64 << 53) as f64;
        d.mul_f64(0.9 + 0.2 * unit)
    }
}

/// Pushes to `target` until `snapshots` closes; see the module docs for the schedule.
pub async fn run(
    target: Target,
    secret: Arc<[u8]>,
    interval: Duration,
    timeout: Duration,
    mut snapshots: watch::Receiver<Arc<Snapshot>>,
    salt: u64,
) {
    let mut jitter = Jitter::new(salt);
    let mut failures: u32 = 0;
    let mut last_pushed = 0;
    loop {
        let snapshot = {
            let current = Arc::clone(&snapshots.borrow_and_update());
            if current.seq > last_pushed {
                current
            } else {
                if snapshots.changed().await.is_err() {
                    return;
                }
                Arc::clone(&snapshots.borrow_and_update())
            }
        };
        match push_once(&target, &snapshot.json, &secret, timeout).await {
            Ok(()) => {
                if failures > 0 {
                    tracing::info!(node = %target.url, failures, "push recovered");
                }
                failures = 0;
                last_pushed = snapshot.seq;
                tracing::debug!(node = %target.url, seq = snapshot.seq, "pushed");
            }
            Err(e) => {
                if failures == 0 {
                    tracing::warn!(
                        node = %target.url, error = %e,
                        "push failed; backing off (up to {MAX_BACKOFF:?}), logged again on recovery"
                    );
                } else {
                    tracing::debug!(node = %target.url, error = %e, failures, "push failed again");
                }
                failures = failures.saturating_add(1);
            }
        }
        tokio::time::sleep(jitter.apply(backoff(interval, failures))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t = Target::parse("http://127.0.0.1:9090").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("127.0.0.1", 9090));
        assert_eq!(t.path, "/api/v1/reports");
        assert_eq!(t.authority, "127.0.0.1:9090");
        let t = Target::parse("http://[::1]:9090/drover/").unwrap();
        assert_eq!(
            (t.host.as_str(), t.path.as_str()),
            ("::1", "/drover/api/v1/reports")
        );
        assert_eq!(Target::parse("http://lb").unwrap().port, 80);
        for bad in [
            "https://lb:9090",
            "lb:9090",
            "ftp://lb",
            "http://lb/?x=1",
            "http://u@lb",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn timestamps_carry_milliseconds_and_verify() {
        let ts = timestamp_now();
        let (secs, millis) = ts.split_once('.').unwrap();
        assert!(secs.len() >= 10 && millis.len() == 3, "{ts}");
        let sig = drover_core::report::push::sign(b"s", &ts, b"{}");
        let guard = drover_core::report::push::ReplayGuard::default();
        let now = secs.parse().unwrap();
        drover_core::report::push::verify(
            b"s",
            &ts,
            &sig,
            b"{}",
            now,
            Duration::from_secs(30),
            &guard,
        )
        .unwrap();
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let i = Duration::from_secs(2);
        let waits: Vec<u64> = (0..8).map(|f| backoff(i, f).as_secs()).collect();
        assert_eq!(waits, [2, 4, 8, 16, 30, 30, 30, 30]);
        assert_eq!(backoff(Duration::from_secs(60), 3), Duration::from_secs(60));
        assert_eq!(backoff(i, u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn jitter_stays_within_ten_percent() {
        let mut j = Jitter::new(1);
        let d = Duration::from_millis(1000);
        let draws: Vec<Duration> = (0..1000).map(|_| j.apply(d)).collect();
        assert!(draws.iter().all(|x| (900..1100).contains(&x.as_millis())));
        assert!(draws.iter().any(|x| x.as_millis() < 950));
        assert!(draws.iter().any(|x| x.as_millis() > 1050));
    }
}
