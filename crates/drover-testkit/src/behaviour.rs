//! The run-time state of one test member, shared by its accept loop, every connection task and
//! the [`TestMember`](crate::TestMember) handle.
//!
//! Built once from a [`MemberConfig`] (validated here, header values parsed here so a request
//! never parses them), then read by `routes::handle` on every request. Everything a test may
//! change while the member runs (status, hang, failure share) is an atomic; latency sits behind
//! an `RwLock` that is only written by `set_latency`, so a request takes an uncontended read lock.
//! Counters (`requests`, `connections`) are relaxed atomics: tests read them after polling.
//!
//! Random draws use splitmix64 over one atomic counter: each draw is a single `fetch_add`, so
//! concurrent requests never lock or lose a draw, and a seed gives a reproducible sequence for
//! sequential requests.

use std::io;
use std::net::SocketAddr;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderName, HeaderValue, SET_COOKIE};
use http::{Response, StatusCode};

use crate::body::MemberBody;
use crate::config::{Latency, MemberConfig};

/// Response header naming the member that answered.
pub const X_MEMBER: HeaderName = HeaderName::from_static("x-member");

const TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// A configured response header; `replace` is true for the first header of its name, so it
/// overrides the member's own default instead of sitting beside it.
#[derive(Debug)]
struct ExtraHeader {
    name: HeaderName,
    value: HeaderValue,
    replace: bool,
}

#[derive(Debug)]
pub(crate) struct Behaviour {
    name: String,
    addr: SocketAddr,
    /// The default route's body: `"<name>\n"` unless a test set another; shared by every default
    /// answer without copying (a read lock per request, written only by `set_body`).
    name_body: RwLock<Bytes>,
    x_member: HeaderValue,
    extra: Vec<ExtraHeader>,
    status: AtomicU16,
    hang: AtomicBool,
    fail_ratio_bits: AtomicU64,
    latency: RwLock<Latency>,
    rng: AtomicU64,
    pub(crate) requests: AtomicU64,
    pub(crate) connections: AtomicU64,
    /// Connections open now.
    pub(crate) open: AtomicU64,
    /// See `MemberConfig::session_cookie`.
    pub(crate) session_cookie: Option<String>,
    pub(crate) sessions: AtomicU64,
}

fn invalid(name: &str, what: String) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("test member {name:?}: {what}"),
    )
}

/// FNV-1a: a stable default seed from the member's name.
fn hash_name(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn valid_final_status(code: u16) -> Option<StatusCode> {
    StatusCode::from_u16(code)
        .ok()
        .filter(|s| !s.is_informational())
}

impl Behaviour {
    pub(crate) fn new(cfg: MemberConfig, addr: SocketAddr) -> io::Result<Behaviour> {
        let name = cfg.name;
        if valid_final_status(cfg.status).is_none() {
            let msg = format!(
                "status {} is not a final HTTP status (200..=999)",
                cfg.status
            );
            return Err(invalid(&name, msg));
        }
        if !(0.0..=1.0).contains(&cfg.fail_ratio) {
            let msg = format!("fail_ratio {} is outside 0.0..=1.0", cfg.fail_ratio);
            return Err(invalid(&name, msg));
        }
        let x_member = HeaderValue::from_str(&name)
            .map_err(|_| invalid(&name, "the name is not a valid header value".into()))?;
        let cookies = cfg
            .set_cookies
            .into_iter()
            .map(|v| (SET_COOKIE.to_string(), v));
        let mut extra: Vec<ExtraHeader> = Vec::new();
        for (k, v) in cfg.headers.into_iter().chain(cookies) {
            let hname = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| invalid(&name, format!("header name {k:?} is not valid")))?;
            let value = HeaderValue::from_str(&v)
                .map_err(|_| invalid(&name, format!("header {k}: value {v:?} is not valid")))?;
            let replace = !extra.iter().any(|e| e.name == hname);
            extra.push(ExtraHeader {
                name: hname,
                value,
                replace,
            });
        }
        let seed = cfg.seed.unwrap_or_else(|| hash_name(&name));
        let session_cookie = cfg.session_cookie;
        Ok(Behaviour {
            name_body: RwLock::new(Bytes::from(format!("{name}\n"))),
            x_member,
            extra,
            addr,
            status: AtomicU16::new(cfg.status),
            hang: AtomicBool::new(cfg.hang),
            fail_ratio_bits: AtomicU64::new(cfg.fail_ratio.to_bits()),
            latency: RwLock::new(cfg.latency),
            rng: AtomicU64::new(seed),
            requests: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            open: AtomicU64::new(0),
            session_cookie,
            sessions: AtomicU64::new(0),
            name,
        })
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub(crate) fn hang(&self) -> bool {
        self.hang.load(Relaxed)
    }

    pub(crate) fn set_hang(&self, hang: bool) {
        self.hang.store(hang, Relaxed);
    }

    fn body(&self) -> Bytes {
        self.name_body
            .read()
            .map(|b| b.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    pub(crate) fn set_body(&self, body: Bytes) {
        match self.name_body.write() {
            Ok(mut b) => *b = body,
            Err(p) => *p.into_inner() = body,
        }
    }

    pub(crate) fn set_status(&self, status: u16) {
        self.status.store(status, Relaxed);
    }

    pub(crate) fn set_fail_ratio(&self, ratio: f64) {
        let ratio = if ratio.is_nan() {
            0.0
        } else {
            ratio.clamp(0.0, 1.0)
        };
        self.fail_ratio_bits.store(ratio.to_bits(), Relaxed);
    }

    pub(crate) fn set_latency(&self, latency: Latency) {
        // A poisoned lock only means a writer panicked mid-store of a `Copy` value: still whole.
        *self.latency.write().unwrap_or_else(|e| e.into_inner()) = latency;
    }

    /// Next value of the splitmix64 sequence.
    fn next_u64(&self) -> u64 {
        let mut z = self
            .rng
            .fetch_add(GOLDEN_GAMMA, Relaxed)
            .wrapping_add(GOLDEN_GAMMA);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)` with 53 bits of precision.
    fn next_f64(&self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// This request's delay; draws only when the latency is random.
    pub(crate) fn sample_latency(&self) -> Duration {
        let latency = *self.latency.read().unwrap_or_else(|e| e.into_inner());
        match latency {
            Latency::None => Duration::ZERO,
            Latency::Fixed(d) => d,
            random => random.sample(self.next_f64()),
        }
    }

    /// Whether this request is answered with an injected `500`; draws only when the share is
    /// strictly between 0 and 1.
    pub(crate) fn draw_failure(&self) -> bool {
        let ratio = f64::from_bits(self.fail_ratio_bits.load(Relaxed));
        if ratio <= 0.0 {
            false
        } else if ratio >= 1.0 {
            true
        } else {
            self.next_f64() < ratio
        }
    }

    /// Status of the default route; a code set at run time that is not a final status is
    /// answered `500` so the mistake shows instead of breaking the connection.
    pub(crate) fn default_status(&self) -> StatusCode {
        valid_final_status(self.status.load(Relaxed)).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The default answer: configured status, body `"<name>\n"`.
    pub(crate) fn default_answer(&self) -> Response<MemberBody> {
        self.respond(self.default_status(), MemberBody::full(self.body()))
    }

    /// A plain-text answer whose body is `"<name> <text>\n"`.
    pub(crate) fn text(&self, status: StatusCode, text: &str) -> Response<MemberBody> {
        let body = format!("{} {text}\n", self.name);
        self.respond(status, MemberBody::full(Bytes::from(body)))
    }

    /// An answer with `X-Member`, a text content type and the configured headers and cookies.
    pub(crate) fn respond(&self, status: StatusCode, body: MemberBody) -> Response<MemberBody> {
        let mut res = Response::new(body);
        *res.status_mut() = status;
        let headers = res.headers_mut();
        headers.insert(X_MEMBER, self.x_member.clone());
        headers.insert(CONTENT_TYPE, TEXT_PLAIN);
        for h in &self.extra {
            if h.replace {
                headers.insert(h.name.clone(), h.value.clone());
            } else {
                headers.append(h.name.clone(), h.value.clone());
            }
        }
        res
    }

    /// A new session's `Set-Cookie`, when the member has sessions and the request has none.
    pub(crate) fn new_session(&self, request: &http::HeaderMap) -> Option<HeaderValue> {
        let name = self.session_cookie.as_deref()?;
        let has = request.get_all(http::header::COOKIE).iter().any(|h| {
            h.as_bytes().split(|&b| b == b';').any(|pair| {
                let pair = pair.trim_ascii();
                pair.len() > name.len()
                    && pair.starts_with(name.as_bytes())
                    && pair[name.len()] == b'='
            })
        });
        if has {
            return None;
        }
        let n = self
            .sessions
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        HeaderValue::from_str(&format!("{name}={}-{n}; Path=/", self.name)).ok()
    }

    /// `X-Member` alone, for the WebSocket handshake answer.
    pub(crate) fn x_member(&self) -> HeaderValue {
        self.x_member.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 1))
    }

    #[test]
    fn rejects_bad_values_naming_the_member() {
        for cfg in [
            MemberConfig::new("m").status(99),
            MemberConfig::new("m").status(1000),
            MemberConfig::new("m").fail_ratio(1.5),
            MemberConfig::new("m").fail_ratio(f64::NAN),
            MemberConfig::new("m").header("bad name", "v"),
            MemberConfig::new("m").set_cookie("a=\nb"),
            MemberConfig::new("bad\nname"),
        ] {
            let err = Behaviour::new(cfg, addr()).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
            assert!(err.to_string().starts_with("test member \""), "{err}");
        }
    }

    #[test]
    fn same_seed_same_draws() {
        let a = Behaviour::new(MemberConfig::new("a").seed(7), addr()).unwrap();
        let b = Behaviour::new(MemberConfig::new("b").seed(7), addr()).unwrap();
        let c = Behaviour::new(MemberConfig::new("c").seed(8), addr()).unwrap();
        let da: Vec<u64> = (0..8).map(|_| a.next_u64()).collect();
        let db: Vec<u64> = (0..8).map(|_| b.next_u64()).collect();
        let dc: Vec<u64> = (0..8).map(|_| c.next_u64()).collect();
        assert_eq!(da, db);
        assert_ne!(da, dc);
    }

    #[test]
    fn draws_are_uniform_enough() {
        let b = Behaviour::new(MemberConfig::new("u").seed(1), addr()).unwrap();
        let mut buckets = [0u32; 10];
        for _ in 0..100_000 {
            let u = b.next_f64();
            assert!((0.0..1.0).contains(&u));
            buckets[(u * 10.0) as usize] += 1;
        }
        for n in buckets {
            assert!((9_500..10_500).contains(&n), "{buckets:?}");
        }
    }

    #[test]
    fn failure_share_follows_the_ratio() {
        let b = Behaviour::new(MemberConfig::new("f").fail_ratio(0.25).seed(3), addr()).unwrap();
        let fails = (0..10_000).filter(|_| b.draw_failure()).count();
        assert!((2_300..2_700).contains(&fails), "{fails}");
        b.set_fail_ratio(0.0);
        assert!(!(0..1000).any(|_| b.draw_failure()));
        b.set_fail_ratio(7.0);
        assert!((0..1000).all(|_| b.draw_failure()));
    }

    #[test]
    fn configured_headers_replace_defaults_then_add() {
        let cfg = MemberConfig::new("h")
            .header("Content-Type", "application/json")
            .header("X-Load", "1")
            .header("x-load", "2")
            .set_cookie("A=1.h")
            .set_cookie("B=2");
        let b = Behaviour::new(cfg, addr()).unwrap();
        let res = b.default_answer();
        let h = res.headers();
        assert_eq!(h["x-member"], "h");
        assert_eq!(h.get_all(CONTENT_TYPE).iter().count(), 1);
        assert_eq!(h[CONTENT_TYPE], "application/json");
        let loads: Vec<_> = h.get_all("x-load").iter().collect();
        assert_eq!(loads, ["1", "2"]);
        let cookies: Vec<_> = h.get_all(SET_COOKIE).iter().collect();
        assert_eq!(cookies, ["A=1.h", "B=2"]);
    }

    #[test]
    fn invalid_runtime_status_answers_500() {
        let b = Behaviour::new(MemberConfig::new("s"), addr()).unwrap();
        b.set_status(503);
        assert_eq!(b.default_status(), StatusCode::SERVICE_UNAVAILABLE);
        b.set_status(101);
        assert_eq!(b.default_status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
