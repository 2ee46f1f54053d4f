//! The HTTP probe: send one pre-rendered HTTP/1.1 request, read the response head, check the
//! status and, only if asked, read and match the body; with `reuse_connection`, read the rest of
//! the response and keep the connection for the next check.
//!
//! Reading works in the caller's buffer: the head is parsed with `httparse` (re-parsed from the
//! start when more bytes arrive, which costs nothing next to a read for heads this small); interim
//! `1xx` heads are dropped from the front of the buffer; the body, when needed, follows the head in
//! the same buffer (a chunked body is decoded in place, see [`super::chunked`]).
//!
//! Connections: without reuse the request says `Connection: close` and each run opens and drops
//! one connection. With reuse (Envoy's `reuse_connection`, on by default in the config) the
//! request carries no `Connection` header, so HTTP/1.1 keeps the connection open, and a run that
//! ends cleanly leaves it in the caller's [`ProbeState`] for the next run. The verdict is decided
//! exactly as without reuse (at the head, or on the matched part of the body); only then is the
//! rest of the response read and discarded, within the same deadline, so the next request starts
//! on a clean stream. The connection is kept only when all of this holds:
//! - the response is HTTP/1.1 without `Connection: close` (HTTP/1.0 only with `keep-alive`), is
//!   not `101`, and its body is delimited by `Content-Length` or chunked (or absent), not by close;
//! - it was read to its exact end (trailers included) within the deadline, the whole response
//!   (interim heads and framing included) took at most `HEAD_LIMIT + max_body + DRAIN_SLACK`
//!   bytes, and nothing followed it;
//! - the check passed, or failed on its status or body only: a transport failure (connect, I/O,
//!   timeout, a malformed response) drops it, since the stream's state is then unknown.
//!
//! A status or body failure keeps the connection, as Envoy does: the exchange was clean, and a
//! fresh connection would ask the same process the same question.
//!
//! A kept connection may have gone stale while idle (the member's keep-alive timeout, a restart).
//! That is not the member failing its check, so the run tries once more on a fresh connection,
//! within the same deadline, when the kept one: is found closed (or carrying unsolicited bytes)
//! before the request is written; or is closed or reset before the first byte of an answer; or
//! answers `408 Request Timeout` (what some servers send before closing an idle connection; Go's
//! HTTP client retries on it too). Only the fresh connection's outcome counts, so a member that
//! restarted fails only if it refuses the new connection.
//!
//! Limits: a response head (each one, interim heads included) may be at most [`HEAD_LIMIT`]
//! bytes; for the verdict at most `HEAD_LIMIT + max_body` bytes are read, framing included. The
//! body is collected until it ends, `max_body` bytes of it are in, or that read budget is spent
//! (possible only with heavy chunk framing), and the expectations are matched on what was
//! collected. When the probe stops before the member's answer is fully read, dropping the socket
//! with unread bytes makes the kernel reset the connection; that is the cheap way out and the
//! member's problem is only a log line.
//!
//! The regex runs on the body bytes (`regex::bytes::Regex`, rebuilt from the given `Regex`'s
//! pattern), so a body that is not UTF-8, or is cut by `max_body` in the middle of a character,
//! needs no conversion; Unicode classes still match UTF-8 text.

use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::ops::Range;
use std::time::Duration;

use bytes::{BufMut, Bytes};
use memchr::memmem;
use regex::Regex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};

use super::chunked::Chunked;
use super::{ProbeFailure, ProbeState};

/// Most bytes a response head may take (status line, headers, blank line).
pub const HEAD_LIMIT: usize = 16 * 1024;
/// Most headers in one response head; more is a protocol failure.
const MAX_HEADERS: usize = 100;
/// Most bytes asked of the socket in one read.
const READ_CHUNK: usize = 16 * 1024;
/// How much the buffer grows at a time: a typical answer fits in the first 2 KiB, so a member's
/// buffer stays that small unless the member sends more.
const GROW: usize = 2 * 1024;
/// The statuses accepted when no range is given.
const DEFAULT_STATUS: (u16, u16) = (200, 399);
/// With reuse, how many raw bytes beyond the verdict's budget (`HEAD_LIMIT + max_body`) may be
/// read and discarded to reach the end of a response; a longer response closes the connection
/// instead: one fresh connection costs less than reading an unbounded body every check.
pub const DRAIN_SLACK: usize = 64 * 1024;

/// An HTTP/1.1 check: the request, rendered once, and what the answer must look like.
#[derive(Debug, Clone)]
pub struct HttpProbe {
    /// `{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: drover-health\r\n`
    /// `Connection: close\r\nAccept: */*\r\n\r\n`, without the `Connection` line with reuse.
    request: Bytes,
    /// Keep the connection for the next run when the response allows it.
    reuse: bool,
    /// A `HEAD` request: the answer has no body whatever its headers say.
    head_request: bool,
    /// Inclusive ranges of accepted final statuses.
    expect_status: Vec<(u16, u16)>,
    /// `expect_status` as written in a failure: `200-399`, `200-299, 304`.
    expect_status_text: String,
    /// A substring the body must contain (boxed, like the pattern: a `Finder` is large and most
    /// probes have neither, which keeps `ProbeKind` small).
    expect_body: Option<Box<Substring>>,
    /// A pattern the body must match.
    expect_body_regex: Option<Box<BodyRegex>>,
    /// Bytes of (decoded) body read for matching.
    max_body: usize,
}

#[derive(Debug, Clone)]
struct Substring {
    text: String,
    finder: memmem::Finder<'static>,
}

#[derive(Debug, Clone)]
struct BodyRegex {
    text: Regex,
    /// The same pattern for bytes; `None` only if it fails to build, which happens only when the
    /// caller raised the size limits of `text` (the default limits are the same for both). Then
    /// `text` is run on a lossy UTF-8 view of the body.
    bytes: Option<regex::bytes::Regex>,
}

impl BodyRegex {
    fn is_match(&self, body: &[u8]) -> bool {
        match &self.bytes {
            Some(re) => re.is_match(body),
            None => self.text.is_match(&String::from_utf8_lossy(body)),
        }
    }
}

impl HttpProbe {
    /// Renders the request once. `method`, `path` and `host` go into the request as given: the
    /// caller (drover-config) has checked they hold no spaces or control characters. An empty
    /// `expect_status` means `200-399`; each pair is an inclusive range (`(200, 200)` = just 200).
    /// `max_body` bounds the body read for `expect_body` / `expect_body_regex`; without either,
    /// the body is read only to reuse the connection. `reuse_connection`: keep the connection
    /// from one run to the next (HTTP/1.1 keep-alive) instead of sending `Connection: close`.
    // One argument per key of the config's check table; a builder would have to render the
    // request again for `reuse_connection`.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        method: &str,
        path: &str,
        host: &str,
        expect_status: Vec<(u16, u16)>,
        expect_body: Option<String>,
        expect_body_regex: Option<Regex>,
        max_body: usize,
        reuse_connection: bool,
    ) -> Self {
        debug_assert!(
            [method, path, host]
                .iter()
                .all(|s| !s.bytes().any(|b| b.is_ascii_control() || b == b' ')),
            "method, path and host must be validated by the caller"
        );
        let connection = if reuse_connection {
            ""
        } else {
            "Connection: close\r\n"
        };
        let request = Bytes::from(format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: drover-health\r\n\
             {connection}Accept: */*\r\n\r\n"
        ));
        let expect_status = if expect_status.is_empty() {
            vec![DEFAULT_STATUS]
        } else {
            expect_status
        };
        let expect_status_text = status_text(&expect_status);
        HttpProbe {
            request,
            reuse: reuse_connection,
            head_request: method.eq_ignore_ascii_case("HEAD"),
            expect_status,
            expect_status_text,
            expect_body: expect_body.map(|text| {
                Box::new(Substring {
                    finder: memmem::Finder::new(text.as_bytes()).into_owned(),
                    text,
                })
            }),
            expect_body_regex: expect_body_regex.map(|text| {
                Box::new(BodyRegex {
                    bytes: regex::bytes::Regex::new(text.as_str()).ok(),
                    text,
                })
            }),
            max_body,
        }
    }

    fn wants_body(&self) -> bool {
        self.expect_body.is_some() || self.expect_body_regex.is_some()
    }

    /// One check: on the connection kept in `state` if there is one (and reuse is on), else on a
    /// new one; the final status on success. Whatever happens, `state` keeps a connection
    /// afterwards only if this run ended it cleanly (see the module doc).
    pub(super) async fn run(
        &self,
        addr: SocketAddr,
        timeout: Duration,
        state: &mut ProbeState,
    ) -> Result<u16, ProbeFailure> {
        let deadline = Instant::now() + timeout;
        let ProbeState { buf, conn } = state;
        // Taken out: any early return below drops it.
        let kept = conn
            .take()
            .filter(|stream| self.reuse && idle_and_open(stream));
        let exchange = async {
            if let Some(mut stream) = kept {
                match self.exchange(&mut stream, buf).await {
                    // Stale: closed before any byte of an answer, or told so with a 408. Try once
                    // on a fresh connection.
                    Err(ProbeFailure::Closed) if buf.is_empty() => {}
                    Ok(answer) if answer.status == 408 => {}
                    other => return other.map(|answer| (stream, answer)),
                }
            }
            let mut stream = TcpStream::connect(addr)
                .await
                .map_err(ProbeFailure::Connect)?;
            stream.set_nodelay(true).map_err(ProbeFailure::Io)?;
            let answer = self.exchange(&mut stream, buf).await?;
            Ok((stream, answer))
        };
        let (mut stream, mut answer) = match timeout_at(deadline, exchange).await {
            Ok(result) => result?,
            Err(_elapsed) => return Err(ProbeFailure::Timeout(timeout)),
        };
        let verdict = std::mem::replace(&mut answer.verdict, Ok(answer.status));
        if self.reuse
            && answer.persistent
            && let Ok(Ok(true)) = timeout_at(deadline, finish(&mut stream, buf, answer)).await
        {
            *conn = Some(stream);
        }
        verdict
    }

    /// Writes the request and reads the answer as far as the verdict needs. Transport and
    /// protocol failures are errors; a status or body failure is an answer with that verdict, so
    /// that the connection can still be kept.
    async fn exchange(
        &self,
        stream: &mut TcpStream,
        buf: &mut Vec<u8>,
    ) -> Result<Answer, ProbeFailure> {
        // Cleared first: an empty buffer after a failure means no byte of an answer came.
        buf.clear();
        stream
            .write_all(&self.request)
            .await
            .map_err(closed_or_io)?;
        // Bytes we may still read for the verdict, framing and interim heads included.
        let mut budget = HEAD_LIMIT.saturating_add(self.max_body);
        let head = loop {
            let head = read_head(stream, buf, &mut budget, self.head_request).await?;
            if !head.interim {
                break head;
            }
            buf.drain(..head.len);
        };
        let mut answer = Answer {
            status: head.status,
            verdict: Ok(head.status),
            persistent: head.persistent && head.framing != Framing::Close,
            head_len: head.len,
            framing: head.framing,
            chunked: None,
            budget,
        };
        if !self
            .expect_status
            .iter()
            .any(|&(lo, hi)| (lo..=hi).contains(&head.status))
        {
            answer.verdict = Err(ProbeFailure::Status {
                got: head.status,
                expected: self.expect_status_text.clone(),
            });
            return Ok(answer);
        }
        if self.wants_body() {
            let (body, chunked) = read_body(
                stream,
                buf,
                head.len,
                head.framing,
                self.max_body,
                &mut budget,
            )
            .await?;
            answer.verdict = self.check_body(&buf[body]).map(|()| head.status);
            answer.chunked = chunked;
            answer.budget = budget;
        }
        Ok(answer)
    }

    fn check_body(&self, body: &[u8]) -> Result<(), ProbeFailure> {
        if let Some(s) = &self.expect_body
            && s.finder.find(body).is_none()
        {
            return Err(ProbeFailure::Body {
                wanted: format!("contain {:?}", s.text),
            });
        }
        if let Some(re) = &self.expect_body_regex
            && !re.is_match(body)
        {
            return Err(ProbeFailure::Body {
                wanted: format!("match /{}/", re.text.as_str()),
            });
        }
        Ok(())
    }
}

/// A response read as far as the verdict needed, and what it takes to read the rest.
struct Answer {
    status: u16,
    /// The final status, or the status or body failure.
    verdict: Result<u16, ProbeFailure>,
    /// Whether the response lets the connection carry another request once it is read to its
    /// end (version, `Connection`, framing; see [`Head::persistent`]).
    persistent: bool,
    /// Where the body starts in the buffer.
    head_len: usize,
    framing: Framing,
    /// For a chunked body the verdict read: the decoder and the raw position it stopped at.
    chunked: Option<(Chunked, usize)>,
    /// What was left of the verdict's read budget.
    budget: usize,
}

/// How the body of a final response is delimited (RFC 9112, section 6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body: an answer to HEAD, 1xx, 204, 304.
    Empty,
    Length(u64),
    Chunked,
    /// Until the member closes the connection.
    Close,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Head {
    /// Bytes of the head, blank line included.
    len: usize,
    status: u16,
    /// A 1xx other than 101: another head follows.
    interim: bool,
    framing: Framing,
    /// The connection persists after this response (RFC 9112, section 9.3): HTTP/1.1 without
    /// `Connection: close`, or HTTP/1.0 with `Connection: keep-alive`; never after a 101.
    persistent: bool,
}

/// Reads until `buf` starts with a complete response head.
async fn read_head(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    budget: &mut usize,
    head_request: bool,
) -> Result<Head, ProbeFailure> {
    loop {
        if let Some(head) = parse_head(buf, head_request)? {
            return Ok(head);
        }
        if buf.len() >= HEAD_LIMIT {
            return Err(ProbeFailure::Protocol(format!(
                "response head over {HEAD_LIMIT} bytes"
            )));
        }
        let room = (HEAD_LIMIT - buf.len()).min(*budget);
        if room == 0 {
            return Err(ProbeFailure::Protocol(format!(
                "interim (1xx) responses over {} bytes",
                HEAD_LIMIT
            )));
        }
        let n = read_some(stream, buf, room).await.map_err(closed_or_io)?;
        if n == 0 {
            return Err(ProbeFailure::Closed);
        }
        *budget -= n;
    }
}

/// Parses the head at the start of `bytes`: `None` if it is not complete yet.
fn parse_head(bytes: &[u8], head_request: bool) -> Result<Option<Head>, ProbeFailure> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(ProbeFailure::Protocol(e.to_string())),
    };
    let Some(status) = response.code else {
        return Err(ProbeFailure::Protocol("no status code".into()));
    };
    let interim = (100..200).contains(&status) && status != 101;
    let (mut close, mut keep_alive) = (false, false);
    for header in response.headers.iter() {
        if header.name.eq_ignore_ascii_case("connection") {
            for option in header.value.split(|&b| b == b',') {
                let option = option.trim_ascii();
                close |= option.eq_ignore_ascii_case(b"close");
                keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
            }
        }
    }
    let persistent = status != 101
        && !close
        && match response.version {
            Some(1) => true,
            Some(0) => keep_alive,
            _ => false,
        };
    if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(Some(Head {
            len,
            status,
            interim,
            framing: Framing::Empty,
            persistent,
        }));
    }
    // Some(true): the last transfer coding is chunked; Some(false): another coding, so the body
    // runs until close.
    let mut chunked = None;
    let mut length: Option<u64> = None;
    for header in response.headers.iter() {
        if header.name.eq_ignore_ascii_case("transfer-encoding") {
            let last = header.value.rsplit(|&b| b == b',').next().unwrap_or(b"");
            chunked = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if header.name.eq_ignore_ascii_case("content-length") {
            // A list of identical values ("5, 5") is accepted, as RFC 9110 allows.
            for item in header.value.split(|&b| b == b',') {
                let value = parse_length(item.trim_ascii()).ok_or_else(|| {
                    ProbeFailure::Protocol(format!(
                        "bad Content-Length {:?}",
                        String::from_utf8_lossy(header.value)
                    ))
                })?;
                if length.is_some_and(|l| l != value) {
                    return Err(ProbeFailure::Protocol(
                        "conflicting Content-Length headers".into(),
                    ));
                }
                length = Some(value);
            }
        }
    }
    let framing = match (chunked, length) {
        (Some(true), _) => Framing::Chunked,
        (Some(false), _) => Framing::Close,
        (None, Some(n)) => Framing::Length(n),
        (None, None) => Framing::Close,
    };
    Ok(Some(Head {
        len,
        status,
        interim,
        framing,
        persistent,
    }))
}

fn parse_length(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        if d.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        } else {
            None
        }
    })
}

/// Reads the body that starts at `buf[start..]` (bytes already there included) as far as needed
/// for matching; returns where the collected (decoded) body sits in `buf`, and for a chunked body
/// the decoder and the raw position it stopped at (for [`finish`]).
async fn read_body(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    start: usize,
    framing: Framing,
    max_body: usize,
    budget: &mut usize,
) -> Result<(Range<usize>, Option<(Chunked, usize)>), ProbeFailure> {
    match framing {
        Framing::Empty => Ok((start..start, None)),
        Framing::Length(total) => {
            let want = usize::try_from(total).unwrap_or(usize::MAX).min(max_body);
            while buf.len() - start < want && *budget > 0 {
                let room = (want - (buf.len() - start)).min(*budget);
                let n = read_some(stream, buf, room)
                    .await
                    .map_err(ProbeFailure::Io)?;
                if n == 0 {
                    return Err(ProbeFailure::Protocol(format!(
                        "connection closed after {} of {total} body bytes",
                        buf.len() - start
                    )));
                }
                *budget -= n;
            }
            Ok((start..buf.len().min(start.saturating_add(want)), None))
        }
        Framing::Close => {
            while buf.len() - start < max_body && *budget > 0 {
                let room = (max_body - (buf.len() - start)).min(*budget);
                let n = read_some(stream, buf, room)
                    .await
                    .map_err(ProbeFailure::Io)?;
                if n == 0 {
                    break;
                }
                *budget -= n;
            }
            Ok((start..buf.len().min(start.saturating_add(max_body)), None))
        }
        Framing::Chunked => {
            let mut decoder = Chunked::default();
            let (mut pos, mut out) = (start, start);
            let limit = start.saturating_add(max_body);
            loop {
                decoder
                    .decode(buf, &mut pos, &mut out, limit)
                    .map_err(|e| ProbeFailure::Protocol(e.to_string()))?;
                if decoder.body_done() || out >= limit || *budget == 0 {
                    break;
                }
                let n = read_some(stream, buf, *budget)
                    .await
                    .map_err(ProbeFailure::Io)?;
                if n == 0 {
                    return Err(ProbeFailure::Protocol(
                        "connection closed inside a chunked body".into(),
                    ));
                }
                *budget -= n;
            }
            Ok((start..out, Some((decoder, pos))))
        }
    }
}

/// Reads the rest of the response after the verdict and discards it, so that the connection is
/// left at the start of the next response. True when the response ended within the read budget
/// plus [`DRAIN_SLACK`] and nothing followed it; false when the connection cannot carry another
/// request (the member closed it, the body is too long, the framing is broken, ...).
async fn finish(stream: &mut TcpStream, buf: &mut Vec<u8>, answer: Answer) -> io::Result<bool> {
    let mut budget = answer.budget.saturating_add(DRAIN_SLACK);
    let start = answer.head_len;
    match answer.framing {
        Framing::Close => Ok(false),
        Framing::Empty => Ok(buf.len() == start),
        Framing::Length(total) => {
            // Body bytes already in the buffer (the head read may have read some, or all).
            let have = (buf.len() - start) as u64;
            let Some(mut left) = total.checked_sub(have) else {
                return Ok(false); // more than the response: the member is out of step
            };
            if left > budget as u64 {
                return Ok(false);
            }
            while left > 0 {
                // Discarded as they come, so the buffer does not grow.
                buf.truncate(start);
                let room = usize::try_from(left).unwrap_or(usize::MAX);
                let n = read_some(stream, buf, room).await?;
                if n == 0 {
                    return Ok(false);
                }
                left -= n as u64;
            }
            Ok(true)
        }
        Framing::Chunked => {
            // Without a decoder, no body was read for the verdict: it starts after the head.
            let (mut decoder, mut pos) = answer.chunked.unwrap_or((Chunked::default(), start));
            loop {
                if decoder.skip(buf, &mut pos).is_err() {
                    return Ok(false);
                }
                if decoder.is_done() {
                    return Ok(pos == buf.len());
                }
                // Keep only what is not parsed yet (a partial size or trailer line).
                buf.drain(start..pos);
                pos = start;
                if budget == 0 {
                    return Ok(false);
                }
                let n = read_some(stream, buf, budget).await?;
                if n == 0 {
                    return Ok(false);
                }
                budget -= n;
            }
        }
    }
}

/// Whether a kept connection still looks usable: nothing to read on it, not even an end of
/// stream. Costs no system call when tokio already knows the socket is not readable. A
/// connection the member closed since (FIN or reset), or on which it sent something unasked
/// (a `408` before closing), is dropped before a request is written into it. A close that
/// races this test is caught by [`HttpProbe::run`] instead.
fn idle_and_open(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(stream.try_read(&mut byte), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

/// One read of at most `room` (> 0) bytes appended to `buf`; 0 means end of stream.
async fn read_some(stream: &mut TcpStream, buf: &mut Vec<u8>, room: usize) -> io::Result<usize> {
    let want = room.min(READ_CHUNK);
    buf.reserve(want.min(GROW));
    // The read fills at most the spare capacity, and at most `want` bytes of it.
    stream.read_buf(&mut (&mut *buf).limit(want)).await
}

/// Before the head is complete, a reset is the member closing on us as much as a FIN is.
fn closed_or_io(e: io::Error) -> ProbeFailure {
    match e.kind() {
        io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::UnexpectedEof => ProbeFailure::Closed,
        _ => ProbeFailure::Io(e),
    }
}

fn status_text(ranges: &[(u16, u16)]) -> String {
    let mut text = String::new();
    for (i, &(lo, hi)) in ranges.iter().enumerate() {
        if i > 0 {
            text.push_str(", ");
        }
        // Writing to a String cannot fail.
        let _ = if lo == hi {
            write!(text, "{lo}")
        } else {
            write!(text, "{lo}-{hi}")
        };
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(bytes: &[u8]) -> Head {
        match parse_head(bytes, false) {
            Ok(Some(h)) => h,
            other => panic!("not a complete head: {other:?}"),
        }
    }

    #[test]
    fn request_is_rendered_once_as_documented() {
        let p = HttpProbe::new(
            "GET",
            "/health",
            "app.example",
            vec![],
            None,
            None,
            0,
            false,
        );
        assert_eq!(
            &p.request[..],
            b"GET /health HTTP/1.1\r\nHost: app.example\r\nUser-Agent: drover-health\r\n\
              Connection: close\r\nAccept: */*\r\n\r\n"
        );
        assert_eq!(p.expect_status, vec![(200, 399)]);
        assert!(!p.wants_body());
        // With reuse, HTTP/1.1's default: the connection stays open.
        let p = HttpProbe::new("GET", "/health", "app.example", vec![], None, None, 0, true);
        assert_eq!(
            &p.request[..],
            b"GET /health HTTP/1.1\r\nHost: app.example\r\nUser-Agent: drover-health\r\n\
              Accept: */*\r\n\r\n"
        );
        assert!(HttpProbe::new("head", "/", "h", vec![], None, None, 0, true).head_request);
        assert!(std::mem::size_of::<HttpProbe>() <= 128);
    }

    #[test]
    fn status_ranges_read_as_written() {
        assert_eq!(status_text(&[(200, 399)]), "200-399");
        assert_eq!(status_text(&[(200, 299), (304, 304)]), "200-299, 304");
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let h = head(b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\nbody");
        assert_eq!((h.len, h.status, h.framing), (39, 200, Framing::Length(12)));
        let h = head(
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        );
        assert_eq!(h.framing, Framing::Chunked);
        let h = head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n");
        assert_eq!(h.framing, Framing::Close);
        let h = head(b"HTTP/1.0 200 OK\r\n\r\n");
        assert_eq!(h.framing, Framing::Close);
        let h = head(b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(h.framing, Framing::Empty);
        let h = head(b"HTTP/1.1 100 Continue\r\n\r\n");
        assert!(h.interim);
        let h = head(b"HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n");
        assert_eq!(h.framing, Framing::Length(5));
        match parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true) {
            Ok(Some(h)) => assert_eq!(h.framing, Framing::Empty),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn persistence_follows_rfc_9112() {
        let persistent = |bytes: &[u8]| head(bytes).persistent;
        assert!(persistent(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
        assert!(persistent(
            b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"
        ));
        assert!(!persistent(
            b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
        ));
        assert!(!persistent(
            b"HTTP/1.1 200 OK\r\nconnection: Upgrade, CLOSE\r\nContent-Length: 0\r\n\r\n"
        ));
        assert!(!persistent(
            b"HTTP/1.1 200 OK\r\nConnection: x\r\nConnection: close\r\n\r\n"
        ));
        assert!(!persistent(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"));
        assert!(persistent(
            b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n"
        ));
        assert!(!persistent(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n"
        ));
        assert!(persistent(b"HTTP/1.1 204 No Content\r\n\r\n"));
    }

    #[test]
    fn bad_heads_are_protocol_failures() {
        for bad in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            b"SSH-2.0-OpenSSH_9.2\r\n\r\n",
        ] {
            assert!(
                matches!(parse_head(bad, false), Err(ProbeFailure::Protocol(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(matches!(
            parse_head(b"HTTP/1.1 200 OK\r\nX", false),
            Ok(None)
        ));
    }

    #[test]
    fn body_expectations() {
        let re = Regex::new(r"ok\d+").unwrap();
        let p = HttpProbe::new(
            "GET",
            "/",
            "h",
            vec![],
            Some("Test Page".into()),
            Some(re),
            64,
            true,
        );
        assert!(p.check_body(b"<h1>Test Page</h1> ok42").is_ok());
        let e = p.check_body(b"<h1>Test Page</h1> ok").unwrap_err();
        assert_eq!(e.to_string(), r"body does not match /ok\d+/");
        let e = p.check_body(b"ok1").unwrap_err();
        assert_eq!(e.to_string(), r#"body does not contain "Test Page""#);
        // Bytes that are not UTF-8 do not stop a match.
        assert!(p.check_body(b"\xff\xfeTest Page ok7\xc3").is_ok());
    }
}
