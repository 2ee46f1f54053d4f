//! What an access-log line holds and how it is written: the request head captured when the
//! request arrives ([`Entry`]), what the handler learned on the way ([`Trace`]), the response body
//! that writes the line when it ends ([`ClientBody`]), and the two formats.
//!
//! Formatting writes straight into the worker's buffer: numbers and times by hand, no `format!`,
//! no allocation. The time text is cached per thread and re-formatted when the second changes.
//! Times are UTC (`+0000` in combined, `Z` in JSON), so lines from nodes in different zones sort
//! together.
//!
//! Escaping: combined escapes `"`, `\`, control and non-ASCII bytes as `\xHH`, as nginx does;
//! JSON escapes `"` and `\` with a backslash and any other byte outside printable ASCII as
//! `\u00HH`, so every line is valid JSON whatever bytes a client sent.

use std::cell::RefCell;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use drover_config::LogFormat;
use http::{HeaderValue, Method, Uri, Version};
use http_body::{Body, Frame, SizeHint};

use crate::body::{BoxError, ProxyBody};
use crate::state::Routing;

/// How a sticky farm placed the request.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum Sticky {
    /// No session, or the farm is not sticky.
    #[default]
    None,
    /// Served by the member its session names.
    Hit,
    /// Its session named a member that could not serve; another did.
    Moved,
    /// Its member could not serve and `nofailover` is on: 503.
    Refused,
}

impl Sticky {
    fn name(self) -> Option<&'static str> {
        match self {
            Sticky::None => None,
            Sticky::Hit => Some("hit"),
            Sticky::Moved => Some("moved"),
            Sticky::Refused => Some("refused"),
        }
    }
}

/// What the handler learned while answering: filled on every request (a few stores), read only
/// when the listener logs.
#[derive(Debug, Default, Clone, Copy)]
pub struct Trace {
    /// Position of the matched route in the listener's routes (its `farm` catch-all last).
    pub route: Option<usize>,
    /// Index into `Routing::farms`.
    pub farm: Option<usize>,
    /// Index of the member that answered, in its farm.
    pub member: Option<usize>,
    /// Attempts at members (a retry is every attempt after the first).
    pub tries: u32,
    pub sticky: Sticky,
}

/// A request head as the access log needs it, captured before the request is forwarded (the
/// clones share the request's bytes: no copy).
pub struct Entry {
    routing: Arc<Routing>,
    listener: usize,
    worker: usize,
    client: HeaderValue,
    start: Instant,
    method: Method,
    uri: Uri,
    version: Version,
    referer: Option<HeaderValue>,
    user_agent: Option<HeaderValue>,
    status: u16,
    trace: Trace,
    bytes: u64,
    ended: bool,
}

impl Entry {
    /// Boxed: the handler holds it across its wait for the member, and a box keeps that state
    /// (which hyper keeps per connection) as small as without a log.
    pub fn capture<B>(
        routing: Arc<Routing>,
        listener: usize,
        worker: usize,
        client: &HeaderValue,
        req: &http::Request<B>,
    ) -> Box<Entry> {
        let h = req.headers();
        Box::new(Entry {
            routing,
            listener,
            worker,
            client: client.clone(),
            start: Instant::now(),
            method: req.method().clone(),
            uri: req.uri().clone(),
            version: req.version(),
            referer: h.get(http::header::REFERER).cloned(),
            user_agent: h.get(http::header::USER_AGENT).cloned(),
            status: 0,
            trace: Trace::default(),
            bytes: 0,
            ended: false,
        })
    }
}

/// The body of every response to a client: the [`ProxyBody`], and on a listener that logs, the
/// line to write once it ends (on drop: hyper drops a body when it has sent it whole, and when
/// the connection goes away first).
pub struct ClientBody {
    inner: ProxyBody,
    log: Option<Box<Entry>>,
}

impl ClientBody {
    /// A body on a listener without an access log.
    #[inline]
    pub fn plain(inner: ProxyBody) -> Self {
        ClientBody { inner, log: None }
    }

    /// A body whose line is written when it ends.
    pub fn logged(inner: ProxyBody, mut entry: Box<Entry>, status: u16, trace: Trace) -> Self {
        entry.status = status;
        entry.trace = trace;
        ClientBody {
            inner,
            log: Some(entry),
        }
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = BoxError;

    #[inline]
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        if let Some(log) = this.log.as_mut() {
            match &frame {
                Some(Ok(f)) => log.bytes += f.data_ref().map_or(0, |d| d.len() as u64),
                None => log.ended = true,
                Some(Err(_)) => {}
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ClientBody {
    fn drop(&mut self) {
        let Some(entry) = self.log.take() else {
            return;
        };
        let trace = entry.trace;
        let Some(listener) = entry.routing.listeners.get(entry.listener) else {
            return;
        };
        let Some(target) = &listener.access_log else {
            return;
        };
        let farm = trace.farm.and_then(|f| entry.routing.farms.get(f));
        // The member whose body this is (the sorry member too); else the one the handler named
        // (a 101, whose body is empty).
        let (member, upstream_ns) = match &self.inner {
            ProxyBody::Upstream(u) => (
                Some(u.exchange().upstream().member.name()),
                u.exchange().latency_ns(),
            ),
            ProxyBody::Full(_) => (
                farm.zip(trace.member)
                    .and_then(|(f, i)| f.farm.members.get(i))
                    .map(|m| m.name()),
                None,
            ),
        };
        let line = Line {
            client: entry.client.as_bytes(),
            request: Some((&entry.method, &entry.uri, entry.version)),
            status: entry.status,
            bytes: entry.bytes,
            referer: entry.referer.as_ref().map(HeaderValue::as_bytes),
            user_agent: entry.user_agent.as_ref().map(HeaderValue::as_bytes),
            listener: &listener.name,
            route: trace.route,
            farm: farm.map(|f| f.farm.name.as_str()),
            member,
            retries: trace.tries.saturating_sub(1),
            sticky: trace.sticky,
            upstream_ns,
            total_ns: Some(entry.start.elapsed().as_nanos() as u64),
            completed: entry.ended || self.inner.is_end_stream(),
        };
        target.file.write(entry.worker, target.format, &line);
    }
}

/// Everything one line shows, borrowed.
pub struct Line<'a> {
    pub client: &'a [u8],
    /// Method, target, version; `None` when hyper refused the head before it was parsed.
    pub request: Option<(&'a Method, &'a Uri, Version)>,
    pub status: u16,
    pub bytes: u64,
    pub referer: Option<&'a [u8]>,
    pub user_agent: Option<&'a [u8]>,
    pub listener: &'a str,
    pub route: Option<usize>,
    pub farm: Option<&'a str>,
    pub member: Option<&'a str>,
    pub retries: u32,
    pub sticky: Sticky,
    pub upstream_ns: Option<u64>,
    pub total_ns: Option<u64>,
    pub completed: bool,
}

/// Appends `line` to `buf` as `format`, with its newline.
pub fn line(buf: &mut Vec<u8>, format: LogFormat, line: &Line<'_>) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    match format {
        LogFormat::Combined => combined(buf, line, now.as_secs()),
        LogFormat::Json => json(buf, line, now.as_secs(), now.subsec_millis()),
    }
}

fn version(v: Version) -> &'static [u8] {
    match v {
        Version::HTTP_09 => b"HTTP/0.9",
        Version::HTTP_10 => b"HTTP/1.0",
        Version::HTTP_2 => b"HTTP/2.0",
        Version::HTTP_3 => b"HTTP/3.0",
        _ => b"HTTP/1.1",
    }
}

/// The request target as the client sent it (absolute form kept).
fn target(uri: &Uri, out: &mut dyn FnMut(&[u8])) {
    if let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) {
        out(scheme.as_bytes());
        out(b"://");
        out(authority.as_str().as_bytes());
    }
    match uri.path_and_query() {
        Some(pq) => out(pq.as_str().as_bytes()),
        // The authority form of CONNECT has no path.
        None if uri.authority().is_some() && uri.scheme().is_none() => {
            out(uri.authority().map_or(b"", |a| a.as_str().as_bytes()))
        }
        None => out(b"/"),
    }
}

/// `GET /path HTTP/1.1`, each part escaped with `escape`.
fn request_line(
    buf: &mut Vec<u8>,
    method: &Method,
    uri: &Uri,
    v: Version,
    escape: fn(&mut Vec<u8>, &[u8]),
) {
    escape(buf, method.as_str().as_bytes());
    buf.push(b' ');
    target(uri, &mut |b| escape(buf, b));
    buf.push(b' ');
    buf.extend_from_slice(version(v));
}

/// `$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent
/// "$http_referer" "$http_user_agent"`.
fn combined(buf: &mut Vec<u8>, l: &Line<'_>, secs: u64) {
    escape_combined(buf, l.client);
    buf.extend_from_slice(b" - - [");
    with_time(secs, |t| buf.extend_from_slice(&t.combined));
    buf.extend_from_slice(b"] \"");
    match l.request {
        Some((method, uri, v)) => request_line(buf, method, uri, v, escape_combined),
        None => buf.push(b'-'),
    }
    buf.extend_from_slice(b"\" ");
    push_u64(buf, l.status.into());
    buf.push(b' ');
    push_u64(buf, l.bytes);
    buf.extend_from_slice(b" \"");
    escape_combined(buf, l.referer.unwrap_or(b"-"));
    buf.extend_from_slice(b"\" \"");
    escape_combined(buf, l.user_agent.unwrap_or(b"-"));
    buf.extend_from_slice(b"\"\n");
}

fn json(buf: &mut Vec<u8>, l: &Line<'_>, secs: u64, millis: u32) {
    buf.extend_from_slice(b"{\"time\":\"");
    with_time(secs, |t| buf.extend_from_slice(&t.iso));
    buf.push(b'.');
    push_padded(buf, millis.into(), 3);
    buf.extend_from_slice(b"Z\",\"remote_addr\":");
    json_str(buf, Some(l.client));
    buf.extend_from_slice(b",\"remote_user\":null,\"request\":");
    match l.request {
        Some((method, uri, v)) => {
            buf.push(b'"');
            request_line(buf, method, uri, v, escape_json);
            buf.extend_from_slice(b"\",\"method\":");
            json_str(buf, Some(method.as_str().as_bytes()));
            buf.extend_from_slice(b",\"uri\":\"");
            target(uri, &mut |b| escape_json(buf, b));
            buf.extend_from_slice(b"\",\"protocol\":\"");
            buf.extend_from_slice(version(v));
            buf.push(b'"');
        }
        None => buf.extend_from_slice(b"null,\"method\":null,\"uri\":null,\"protocol\":null"),
    }
    buf.extend_from_slice(b",\"status\":");
    push_u64(buf, l.status.into());
    buf.extend_from_slice(b",\"body_bytes_sent\":");
    push_u64(buf, l.bytes);
    buf.extend_from_slice(b",\"http_referer\":");
    json_str(buf, l.referer);
    buf.extend_from_slice(b",\"http_user_agent\":");
    json_str(buf, l.user_agent);
    buf.extend_from_slice(b",\"request_time\":");
    seconds(buf, l.total_ns);
    buf.extend_from_slice(b",\"upstream_time\":");
    seconds(buf, l.upstream_ns);
    buf.extend_from_slice(b",\"listener\":");
    json_str(buf, Some(l.listener.as_bytes()));
    buf.extend_from_slice(b",\"route\":");
    match l.route {
        Some(r) => push_u64(buf, r as u64),
        None => buf.extend_from_slice(b"null"),
    }
    buf.extend_from_slice(b",\"farm\":");
    json_str(buf, l.farm.map(str::as_bytes));
    buf.extend_from_slice(b",\"member\":");
    json_str(buf, l.member.map(str::as_bytes));
    buf.extend_from_slice(b",\"retries\":");
    push_u64(buf, l.retries.into());
    buf.extend_from_slice(b",\"sticky\":");
    json_str(buf, l.sticky.name().map(str::as_bytes));
    buf.extend_from_slice(b",\"completed\":");
    buf.extend_from_slice(if l.completed { b"true" } else { b"false" });
    buf.extend_from_slice(b"}\n");
}

/// Nanoseconds as seconds with millisecond precision (`0.012`), as nginx's `$request_time`.
fn seconds(buf: &mut Vec<u8>, ns: Option<u64>) {
    let Some(ns) = ns else {
        buf.extend_from_slice(b"null");
        return;
    };
    let ms = ns / 1_000_000;
    push_u64(buf, ms / 1000);
    buf.push(b'.');
    push_padded(buf, ms % 1000, 3);
}

fn json_str(buf: &mut Vec<u8>, s: Option<&[u8]>) {
    match s {
        Some(s) => {
            buf.push(b'"');
            escape_json(buf, s);
            buf.push(b'"');
        }
        None => buf.extend_from_slice(b"null"),
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

fn escape_combined(buf: &mut Vec<u8>, s: &[u8]) {
    if !s.iter().any(|&b| needs_escape(b)) {
        buf.extend_from_slice(s);
        return;
    }
    for &b in s {
        if needs_escape(b) {
            buf.extend_from_slice(&[b'\\', b'x', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
        } else {
            buf.push(b);
        }
    }
}

#[inline]
fn needs_escape(b: u8) -> bool {
    !(0x20..0x7f).contains(&b) || b == b'"' || b == b'\\'
}

fn escape_json(buf: &mut Vec<u8>, s: &[u8]) {
    if !s.iter().any(|&b| needs_escape(b)) {
        buf.extend_from_slice(s);
        return;
    }
    for &b in s {
        match b {
            b'"' | b'\\' => buf.extend_from_slice(&[b'\\', b]),
            _ if needs_escape(b) => buf.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 15) as usize],
            ]),
            _ => buf.push(b),
        }
    }
}

fn push_u64(buf: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[i..]);
}

/// `n` with leading zeros to `width` digits (`n` has at most `width` digits).
fn push_padded(buf: &mut Vec<u8>, n: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut n = n;
    for i in (20 - width..20).rev() {
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
    }
    buf.extend_from_slice(&digits[20 - width..]);
}

/// The current second's time, formatted both ways.
struct TimeText {
    secs: u64,
    /// `05/Dec/2026:05:08:58 +0000`
    combined: [u8; 26],
    /// `2026-12-05T05:08:58`
    iso: [u8; 19],
}

thread_local! {
    static TIME: RefCell<TimeText> = const {
        RefCell::new(TimeText { secs: u64::MAX, combined: [0; 26], iso: [0; 19] })
    };
}

fn with_time(secs: u64, f: impl FnOnce(&TimeText)) {
    TIME.with(|t| {
        let mut t = t.borrow_mut();
        if t.secs != secs {
            *t = time_text(secs);
        }
        f(&t);
    });
}

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

fn time_text(secs: u64) -> TimeText {
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let s = secs % 86_400;
    let (hh, mm, ss) = (s / 3600, s / 60 % 60, s % 60);
    let mut c = Vec::with_capacity(26);
    push_padded(&mut c, d.into(), 2);
    c.push(b'/');
    c.extend_from_slice(MONTHS[(m - 1) as usize]);
    c.push(b'/');
    push_padded(&mut c, y as u64, 4);
    for (sep, v) in [(b':', hh), (b':', mm), (b':', ss)] {
        c.push(sep);
        push_padded(&mut c, v, 2);
    }
    c.extend_from_slice(b" +0000");
    let mut i = Vec::with_capacity(19);
    push_padded(&mut i, y as u64, 4);
    for (sep, v) in [(b'-', m.into()), (b'-', d.into())] {
        i.push(sep);
        push_padded(&mut i, v, 2);
    }
    i.push(b'T');
    push_padded(&mut i, hh, 2);
    for v in [mm, ss] {
        i.push(b':');
        push_padded(&mut i, v, 2);
    }
    let mut t = TimeText {
        secs,
        combined: [0; 26],
        iso: [0; 19],
    };
    t.combined.copy_from_slice(&c);
    t.iso.copy_from_slice(&i);
    t
}

/// (year, month 1-12, day 1-31) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        // 2000-02-29 and 2026-12-05
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_792), (2026, 12, 5));
        let t = time_text(1_796_447_338);
        assert_eq!(&t.combined, b"05/Dec/2026:05:08:58 +0000");
        assert_eq!(&t.iso, b"2026-12-05T05:08:58");
    }

    fn sample<'a>(uri: &'a Uri, method: &'a Method) -> Line<'a> {
        Line {
            client: b"127.0.0.1",
            request: Some((method, uri, Version::HTTP_11)),
            status: 200,
            bytes: 1234,
            referer: Some(b"http://a/\"x\""),
            user_agent: None,
            listener: "web",
            route: Some(1),
            farm: Some("app"),
            member: Some("m1"),
            retries: 0,
            sticky: Sticky::Hit,
            upstream_ns: Some(1_500_000),
            total_ns: Some(12_345_678_901),
            completed: true,
        }
    }

    #[test]
    fn combined_line() {
        let uri: Uri = "/a?b=c".parse().unwrap();
        let mut buf = Vec::new();
        combined(&mut buf, &sample(&uri, &Method::GET), 1_796_447_338);
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "127.0.0.1 - - [05/Dec/2026:05:08:58 +0000] \"GET /a?b=c HTTP/1.1\" 200 1234 \
             \"http://a/\\x22x\\x22\" \"-\"\n"
        );
    }

    #[test]
    fn json_line_escapes_and_times() {
        let uri: Uri = "http://h.example/x".parse().unwrap();
        let mut buf = Vec::new();
        let mut l = sample(&uri, &Method::POST);
        l.user_agent = Some(b"caf\xe9\x01");
        json(&mut buf, &l, 1_796_447_338, 7);
        let text = String::from_utf8(buf).unwrap();
        assert!(text.starts_with(
            "{\"time\":\"2026-12-05T05:08:58.007Z\",\"remote_addr\":\"127.0.0.1\",\
             \"remote_user\":null,\"request\":\"POST http://h.example/x HTTP/1.1\""
        ));
        assert!(
            text.contains("\"http_user_agent\":\"caf\\u00E9\\u0001\""),
            "{text}"
        );
        assert!(text.contains("\"request_time\":12.345,\"upstream_time\":0.001,"));
        assert!(text.contains("\"sticky\":\"hit\",\"completed\":true}\n"));
    }

    #[test]
    fn numbers() {
        let mut b = Vec::new();
        push_u64(&mut b, 0);
        b.push(b' ');
        push_u64(&mut b, u64::MAX);
        b.push(b' ');
        push_padded(&mut b, 7, 3);
        assert_eq!(b, b"0 18446744073709551615 007");
    }
}
