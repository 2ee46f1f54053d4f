//! The HTTP probe: send one pre-rendered HTTP/1.1 request, read the response head, check the
//! status and, only if asked, read and match the body.
//!
//! Reading works in the caller's buffer: the head is parsed with `httparse` (re-parsed from the
//! start when more bytes arrive, which costs nothing next to a read for heads this small); interim
//! `1xx` heads are dropped from the front of the buffer; the body, when needed, follows the head in
//! the same buffer (a chunked body is decoded in place, see [`super::chunked`]). The request says
//! `Connection: close`, so no keep-alive state is kept: each run opens and drops one connection.
//!
//! Limits: a response head (each one, interim heads included) may be at most [`HEAD_LIMIT`]
//! bytes; over one run at most `HEAD_LIMIT + max_body` bytes are read, framing included. The body
//! is collected until it ends, `max_body` bytes of it are in, or that read budget is spent
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
use std::ops::Range;

use bytes::{BufMut, Bytes};
use memchr::memmem;
use regex::Regex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::ProbeFailure;
use super::chunked::Chunked;

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

/// An HTTP/1.1 check: the request, rendered once, and what the answer must look like.
#[derive(Debug, Clone)]
pub struct HttpProbe {
    /// `{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: drover-health\r\n`
    /// `Connection: close\r\nAccept: */*\r\n\r\n`
    request: Bytes,
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
    /// the body is not read at all.
    pub fn new(
        method: &str,
        path: &str,
        host: &str,
        expect_status: Vec<(u16, u16)>,
        expect_body: Option<String>,
        expect_body_regex: Option<Regex>,
        max_body: usize,
    ) -> Self {
        debug_assert!(
            [method, path, host]
                .iter()
                .all(|s| !s.bytes().any(|b| b.is_ascii_control() || b == b' ')),
            "method, path and host must be validated by the caller"
        );
        let request = Bytes::from(format!(
            "{method} {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: drover-health\r\n\
             Connection: close\r\nAccept: */*\r\n\r\n"
        ));
        let expect_status = if expect_status.is_empty() {
            vec![DEFAULT_STATUS]
        } else {
            expect_status
        };
        let expect_status_text = status_text(&expect_status);
        HttpProbe {
            request,
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

    /// Runs the exchange on a connected stream; the final status on success.
    pub(super) async fn exchange(
        &self,
        mut stream: TcpStream,
        buf: &mut Vec<u8>,
    ) -> Result<u16, ProbeFailure> {
        stream.set_nodelay(true).map_err(ProbeFailure::Io)?;
        stream
            .write_all(&self.request)
            .await
            .map_err(closed_or_io)?;
        buf.clear();
        // Bytes we may still read in this run, framing and interim heads included.
        let mut budget = HEAD_LIMIT.saturating_add(self.max_body);
        let head = loop {
            let head = read_head(&mut stream, buf, &mut budget, self.head_request).await?;
            if !head.interim {
                break head;
            }
            buf.drain(..head.len);
        };
        if !self
            .expect_status
            .iter()
            .any(|&(lo, hi)| (lo..=hi).contains(&head.status))
        {
            return Err(ProbeFailure::Status {
                got: head.status,
                expected: self.expect_status_text.clone(),
            });
        }
        if self.wants_body() {
            let body = read_body(
                &mut stream,
                buf,
                head.len,
                head.framing,
                self.max_body,
                &mut budget,
            )
            .await?;
            self.check_body(&buf[body])?;
        }
        Ok(head.status)
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
    if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(Some(Head {
            len,
            status,
            interim,
            framing: Framing::Empty,
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
/// for matching; returns where the collected (decoded) body sits in `buf`.
async fn read_body(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    start: usize,
    framing: Framing,
    max_body: usize,
    budget: &mut usize,
) -> Result<Range<usize>, ProbeFailure> {
    match framing {
        Framing::Empty => Ok(start..start),
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
            Ok(start..buf.len().min(start.saturating_add(want)))
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
            Ok(start..buf.len().min(start.saturating_add(max_body)))
        }
        Framing::Chunked => {
            let mut decoder = Chunked::default();
            let (mut pos, mut out) = (start, start);
            let limit = start.saturating_add(max_body);
            loop {
                decoder
                    .decode(buf, &mut pos, &mut out, limit)
                    .map_err(|e| ProbeFailure::Protocol(e.to_string()))?;
                if decoder.is_done() || out >= limit || *budget == 0 {
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
            Ok(start..out)
        }
    }
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
        let p = HttpProbe::new("GET", "/health", "app.example", vec![], None, None, 0);
        assert_eq!(
            &p.request[..],
            b"GET /health HTTP/1.1\r\nHost: app.example\r\nUser-Agent: drover-health\r\n\
              Connection: close\r\nAccept: */*\r\n\r\n"
        );
        assert_eq!(p.expect_status, vec![(200, 399)]);
        assert!(!p.wants_body());
        assert!(HttpProbe::new("head", "/", "h", vec![], None, None, 0).head_request);
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
