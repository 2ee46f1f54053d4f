//! drover's own HTTP/1.1 client for member connections, used for requests without a body.
//!
//! Who calls it: the handler, for every request whose body is empty and that is not an upgrade
//! (most traffic: GET, HEAD, DELETE, bodiless POST). Requests with a body and upgrades still go
//! through hyper's client; [`crate::pool`] keeps the two kinds of connection apart.
//!
//! Why it exists: hyper's client drives each member connection from a task of its own and passes
//! every request, response head and body chunk across channels between that task and the
//! request's. Here the request's own task does the whole exchange on the socket: it writes the
//! request head in one `send`, reads and parses the response head (httparse, as hyper does),
//! and the response body ([`RawBody`]) reads the rest from the same socket, handing the connection
//! back to the pool when the body has ended. That saves a task wake-up and a channel hand-off per
//! step, and the read buffer is the connection's own, reused from one response to the next (the
//! head is copied out of it, small body chunks leave it before the next read).
//!
//! What it accepts from members, as hyper's client does: status line and up to
//! [`MAX_HEADERS`] headers within [`MAX_HEAD`] bytes; 1xx answers other than 101 are skipped;
//! bodies framed by `Transfer-Encoding: chunked` (trailers are read and dropped), by
//! `Content-Length` (several must agree), or by the connection closing; none for HEAD, 204 and 304.
//! A connection is kept only if the response was HTTP/1.1 without `Connection: close` (or HTTP/1.0
//! with `keep-alive`), its framing was not close-delimited, and nothing followed the body.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::{Buf, Bytes, BytesMut};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version, header};
use http_body::SizeHint;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::batch::{Outbox, Peer};
use crate::pool::Release;

/// Most headers in a member's response head (hyper's default).
pub const MAX_HEADERS: usize = 100;
/// Largest response head, and longest chunk-size or trailer line (hyper's client read limit).
pub const MAX_HEAD: usize = 8192 + 4096 * 100;
/// What one read asks the socket for.
const READ_SIZE: usize = 8192;

/// A connection to a member used by this client: the socket, its read buffer (bytes read past
/// the end of what was parsed so far), the buffer the request head is written from, and the
/// connection's slot in the member's connection count (released when this is dropped).
pub struct RawConn {
    stream: TcpStream,
    buf: BytesMut,
    out: Vec<u8>,
    /// The request head waits here until the end of the worker's round (batch.rs).
    outbox: Arc<Outbox>,
    _release: Release,
}

impl Drop for RawConn {
    fn drop(&mut self) {
        self.outbox.close();
    }
}

impl RawConn {
    /// Boxed: it moves between the pool and a response body, so moves stay pointer-sized.
    pub(crate) fn new(stream: TcpStream, release: Release) -> Box<Self> {
        let outbox = Outbox::new(stream.as_raw_fd(), Peer::Member);
        Box::new(RawConn {
            stream,
            buf: BytesMut::with_capacity(READ_SIZE),
            out: Vec::new(),
            outbox,
            _release: release,
        })
    }

    /// Moves the connection onto the calling thread's event loop. A socket is registered with
    /// the runtime of the worker that opened it, and its readiness comes from that worker's
    /// loop; a worker that takes another's idle connection (at the member's limit) re-registers
    /// it, or the connection would fail once that other worker has drained and stopped.
    pub fn rehome(&mut self) -> io::Result<()> {
        // A second descriptor of the same socket (non-blocking, as the flag belongs to the
        // socket) is registered here; dropping the old stream takes the first off its loop.
        let fd = self.stream.as_fd().try_clone_to_owned()?;
        self.stream = TcpStream::from_std(std::net::TcpStream::from(fd))?;
        self.outbox.set_fd(self.stream.as_raw_fd());
        Ok(())
    }

    /// Whether the member closed this idle connection (or sent something nobody asked for).
    /// Costs no system call unless the socket became readable since the last response.
    /// A connection whose last request did not all go out (the member answered before it had
    /// it) counts as closed too: what is left of that request must not precede the next one.
    pub fn is_closed(&self) -> bool {
        if self.outbox.needs_owner() {
            return true;
        }
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match self.stream.poll_read_ready(&mut cx) {
            Poll::Pending => false,
            Poll::Ready(Err(_)) => true,
            Poll::Ready(Ok(())) => {
                let mut probe = [0u8; 1];
                // WouldBlock: a stale readiness, now cleared; anything else ends the connection.
                !matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
        }
    }

    /// Writes the request head. An error means the member did not get a whole request: for a
    /// request without a body, nothing was acted on.
    ///
    /// Deferred to the end of the worker's round when it can be (batch.rs): then a send that
    /// fails is reported by [`RawConn::read_head`], as [`HeadError::NotSent`].
    pub async fn send(&mut self, head: &http::request::Parts) -> io::Result<()> {
        self.out.clear();
        encode(head, &mut self.out);
        let deferred =
            std::future::poll_fn(|cx| Poll::Ready(self.outbox.defer(&self.out, cx.waker()))).await;
        if deferred {
            return Ok(());
        }
        std::future::poll_fn(|cx| self.poll_drain(cx)).await?;
        self.stream.write_all(&self.out).await
    }

    /// Writes what the flusher left of the request (or reports a send that failed).
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let stream = &mut self.stream;
        self.outbox
            .drain(|buf| Pin::new(&mut *stream).poll_write(cx, buf))
    }

    /// Reads the response head to the request just sent (`head`: it was a HEAD request).
    pub async fn read_head(&mut self, head: bool) -> Result<Head, HeadError> {
        let mut received = !self.buf.is_empty();
        loop {
            if !self.buf.is_empty() {
                match parse(&mut self.buf, head)? {
                    Parsed::Head(h) => return Ok(h),
                    Parsed::Informational => continue,
                    Parsed::Partial if self.buf.len() >= MAX_HEAD => {
                        return Err(HeadError::Invalid("response head too large"));
                    }
                    Parsed::Partial => {}
                }
            }
            let filled = std::future::poll_fn(|cx| {
                // The request, if the flusher could not send all of it, goes out first.
                if self.outbox.needs_owner()
                    && let Poll::Ready(Err(e)) = self.poll_drain(cx)
                {
                    return Poll::Ready(Err(Err(e)));
                }
                self.poll_fill(cx).map_err(Ok)
            })
            .await;
            // Err(Err(_)): the request did not go out; Err(Ok(_)): reading the answer failed.
            let filled = match filled {
                Ok(n) => Ok(n),
                Err(Err(e)) => return Err(HeadError::NotSent(e)),
                Err(Ok(e)) => Err(e),
            };
            match filled {
                Ok(0) if !received => return Err(HeadError::Unanswered(None)),
                Ok(0) => return Err(HeadError::Closed),
                Ok(_) => received = true,
                Err(e) if !received && e.kind() == io::ErrorKind::ConnectionReset => {
                    return Err(HeadError::Unanswered(Some(e)));
                }
                Err(e) => return Err(HeadError::Io(e)),
            }
        }
    }

    /// Reads what the socket has into the buffer; `Ok(0)`: the member closed the connection.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        if self.buf.capacity() - self.buf.len() < READ_SIZE / 4 {
            // Reclaims the buffer in place when nothing read earlier still shares it.
            self.buf.reserve(READ_SIZE);
        }
        tokio_util::io::poll_read_buf(Pin::new(&mut self.stream), cx, &mut self.buf)
    }
}

/// Why no response head was read.
#[derive(Debug)]
pub enum HeadError {
    /// The member closed (or reset) the connection without sending a byte: on a pooled
    /// connection, most likely its keep-alive timeout closing it as the request went out.
    Unanswered(Option<io::Error>),
    /// The request (deferred by [`RawConn::send`]) could not be sent: the member got none of it
    /// or part of it, and acted on nothing.
    NotSent(io::Error),
    /// The member closed the connection in the middle of a head.
    Closed,
    Io(io::Error),
    /// Not HTTP/1.x as a member may send it.
    Invalid(&'static str),
}

impl std::fmt::Display for HeadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HeadError::Unanswered(None) => f.write_str("connection closed before any answer"),
            HeadError::Unanswered(Some(e)) => write!(f, "connection reset before any answer: {e}"),
            HeadError::NotSent(e) => write!(f, "request not sent: {e}"),
            HeadError::Closed => f.write_str("connection closed in the middle of a response head"),
            HeadError::Io(e) => write!(f, "{e}"),
            HeadError::Invalid(why) => f.write_str(why),
        }
    }
}

/// A parsed response head, and how its body is framed.
pub struct Head {
    pub parts: http::response::Parts,
    pub framing: Framing,
    /// The connection may serve another request once the body has been read.
    pub reusable: bool,
}

enum Parsed {
    Head(Head),
    /// A 1xx answer (not 101), consumed; the real answer follows.
    Informational,
    Partial,
}

/// How a response body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// This many bytes still to come.
    Length(u64),
    Chunked(Chunk),
    /// Everything until the member closes the connection.
    Close,
    /// Read to its end.
    Done,
}

/// Where the chunked decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
}

fn encode(head: &http::request::Parts, out: &mut Vec<u8>) {
    out.extend_from_slice(head.method.as_str().as_bytes());
    out.push(b' ');
    let target = head.uri.path_and_query().map_or("/", |pq| pq.as_str());
    out.extend_from_slice(if target.is_empty() { "/" } else { target }.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in &head.headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// Parses one response head from the front of `buf`, consuming it when whole.
fn parse(buf: &mut BytesMut, head_request: bool) -> Result<Parsed, HeadError> {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut res = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default()
        .parse_response_with_uninit_headers(&mut res, buf, &mut slots)
    {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(Parsed::Partial),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HeadError::Invalid("too many response headers"));
        }
        Err(_) => return Err(HeadError::Invalid("malformed response head")),
    };
    let code = res.code.unwrap_or(0);
    if (100..200).contains(&code) {
        if code == 101 {
            return Err(HeadError::Invalid(
                "101 to a request that asked for no upgrade",
            ));
        }
        buf.advance(len);
        return Ok(Parsed::Informational);
    }
    let status =
        StatusCode::from_u16(code).map_err(|_| HeadError::Invalid("invalid status code"))?;
    let http10 = res.version == Some(0);
    // The head is copied out (one small allocation) so that the read buffer is free again once
    // the body has left it; header values are slices of the copy.
    let base = buf.as_ptr() as usize;
    let raw = Bytes::copy_from_slice(&buf[..len]);
    let mut headers = HeaderMap::with_capacity(res.headers.len());
    let mut length: Option<u64> = None;
    let mut transfer_encoding = false;
    let mut chunked = false;
    let (mut close, mut keep_alive) = (false, false);
    for h in res.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| HeadError::Invalid("invalid header name"))?;
        let start = h.value.as_ptr() as usize - base;
        let value = HeaderValue::from_maybe_shared(raw.slice(start..start + h.value.len()))
            .map_err(|_| HeadError::Invalid("invalid header value"))?;
        if name == header::CONTENT_LENGTH {
            // One value, or a list of equal ones ("5, 5"), in one header or several.
            for item in h.value.split(|&b| b == b',') {
                let n = std::str::from_utf8(item.trim_ascii())
                    .ok()
                    .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|s| s.parse::<u64>().ok())
                    .ok_or(HeadError::Invalid("invalid Content-Length"))?;
                if length.is_some_and(|l| l != n) {
                    return Err(HeadError::Invalid("conflicting Content-Length headers"));
                }
                length = Some(n);
            }
        } else if name == header::TRANSFER_ENCODING {
            transfer_encoding = true;
            // Only the last coding says how the body ends.
            chunked = h
                .value
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if name == header::CONNECTION {
            for token in h.value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        }
        headers.append(name, value);
    }
    buf.advance(len);
    let mut reusable = !close && (!http10 || keep_alive);
    let framing =
        if head_request || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
            Framing::Length(0)
        } else if transfer_encoding {
            // With a Content-Length beside it, the message is suspect: read it, then close.
            reusable &= length.is_none();
            if chunked {
                Framing::Chunked(Chunk::Size)
            } else {
                reusable = false;
                Framing::Close
            }
        } else if let Some(n) = length {
            Framing::Length(n)
        } else {
            reusable = false;
            Framing::Close
        };
    let mut parts = http::Response::new(()).into_parts().0;
    parts.status = status;
    parts.version = if http10 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    parts.headers = headers;
    Ok(Parsed::Head(Head {
        parts,
        framing,
        reusable,
    }))
}

/// A member's response body read from its connection by [`RawConn`].
pub struct RawBody {
    conn: Option<Box<RawConn>>,
    framing: Framing,
    reusable: bool,
}

impl RawBody {
    pub fn new(conn: Box<RawConn>, head: &Head) -> Self {
        RawBody {
            conn: Some(conn),
            framing: head.framing,
            reusable: head.reusable,
        }
    }

    /// Read to its end.
    pub fn is_end(&self) -> bool {
        matches!(self.framing, Framing::Done | Framing::Length(0))
    }

    pub fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Length(n) => SizeHint::with_exact(n),
            Framing::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }

    /// The connection, for the pool: only once the body has ended, if the member allowed it to
    /// serve again and sent nothing past the body.
    pub fn take_reusable(&mut self) -> Option<Box<RawConn>> {
        if !self.is_end() || !self.reusable {
            return None;
        }
        self.conn.take().filter(|c| c.buf.is_empty())
    }

    /// The next piece of the body; `None` at its end.
    pub fn poll_data(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Bytes>>> {
        let RawBody { conn, framing, .. } = self;
        let Some(conn) = conn.as_mut() else {
            return Poll::Ready(None);
        };
        loop {
            match framing {
                Framing::Done => return Poll::Ready(None),
                Framing::Length(0) => {
                    *framing = Framing::Done;
                    return Poll::Ready(None);
                }
                Framing::Length(rest) if !conn.buf.is_empty() => {
                    let n = (*rest).min(conn.buf.len() as u64);
                    *rest -= n;
                    return Poll::Ready(Some(Ok(conn.buf.split_to(n as usize).freeze())));
                }
                Framing::Close if !conn.buf.is_empty() => {
                    return Poll::Ready(Some(Ok(conn.buf.split().freeze())));
                }
                Framing::Chunked(state) if !conn.buf.is_empty() => {
                    match decode(state, &mut conn.buf)? {
                        Step::Data(data) => return Poll::Ready(Some(Ok(data))),
                        Step::End => {
                            *framing = Framing::Done;
                            return Poll::Ready(None);
                        }
                        Step::More => {}
                    }
                }
                _ => {}
            }
            if ready!(conn.poll_fill(cx))? == 0 {
                if *framing == Framing::Close {
                    *framing = Framing::Done;
                    return Poll::Ready(None);
                }
                return Poll::Ready(Some(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "member closed the connection before the end of the body",
                ))));
            }
        }
    }
}

enum Step {
    Data(Bytes),
    End,
    /// Needs more bytes from the socket.
    More,
}

fn invalid(why: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why)
}

/// One step of the chunked decoder over what `buf` holds.
fn decode(state: &mut Chunk, buf: &mut BytesMut) -> io::Result<Step> {
    loop {
        match *state {
            Chunk::Size => match httparse::parse_chunk_size(buf) {
                Ok(httparse::Status::Complete((used, size))) => {
                    buf.advance(used);
                    *state = if size == 0 {
                        Chunk::Trailers
                    } else {
                        Chunk::Data(size)
                    };
                }
                Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Ok(Step::More),
                _ => return Err(invalid("invalid chunk size line")),
            },
            Chunk::Data(rest) => {
                if buf.is_empty() {
                    return Ok(Step::More);
                }
                let n = rest.min(buf.len() as u64);
                *state = if n == rest {
                    Chunk::DataEnd
                } else {
                    Chunk::Data(rest - n)
                };
                return Ok(Step::Data(buf.split_to(n as usize).freeze()));
            }
            Chunk::DataEnd => {
                if buf.len() < 2 {
                    return Ok(Step::More);
                }
                if &buf[..2] != b"\r\n" {
                    return Err(invalid("chunk not followed by CRLF"));
                }
                buf.advance(2);
                *state = Chunk::Size;
            }
            Chunk::Trailers => match buf.windows(2).position(|w| w == b"\r\n") {
                Some(0) => {
                    buf.advance(2);
                    return Ok(Step::End);
                }
                // A trailer field: dropped (HTTP/1.1 clients rarely ask for them).
                Some(i) => buf.advance(i + 2),
                None if buf.len() < MAX_HEAD => return Ok(Step::More),
                None => return Err(invalid("trailer line too long")),
            },
        }
    }
}

/// Whether a request goes through this client: no body, no upgrade, not CONNECT.
pub fn suits(method: &Method, bodiless: bool, upgrade: bool) -> bool {
    bodiless && !upgrade && *method != Method::CONNECT
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head_of(text: &str, head_request: bool) -> Result<(Head, BytesMut), HeadError> {
        let mut buf = BytesMut::from(text.as_bytes());
        match parse(&mut buf, head_request)? {
            Parsed::Head(h) => Ok((h, buf)),
            Parsed::Informational => panic!("informational"),
            Parsed::Partial => panic!("partial"),
        }
    }

    #[test]
    fn framing_follows_the_headers() {
        let (h, rest) =
            head_of("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false).unwrap();
        assert_eq!(h.framing, Framing::Length(5));
        assert!(h.reusable);
        assert_eq!(&rest[..], b"hello");
        let (h, _) = head_of("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true).unwrap();
        assert_eq!(h.framing, Framing::Length(0), "HEAD has no body");
        let (h, _) = head_of(
            "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
            false,
        )
        .unwrap();
        assert_eq!(h.framing, Framing::Length(0));
        let (h, _) = head_of(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            false,
        )
        .unwrap();
        assert_eq!(h.framing, Framing::Chunked(Chunk::Size));
        assert!(h.reusable);
        let (h, _) = head_of(
            "HTTP/1.1 200 OK\r\nContent-Length: 7, 7\r\ncontent-length: 7\r\n\r\n",
            false,
        )
        .unwrap();
        assert_eq!(h.framing, Framing::Length(7), "equal values agree");
        let (h, _) = head_of("HTTP/1.1 200 OK\r\n\r\n", false).unwrap();
        assert_eq!(h.framing, Framing::Close);
        assert!(!h.reusable);
        let (h, _) = head_of(
            "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
            false,
        )
        .unwrap();
        assert!(!h.reusable);
        let (h, _) = head_of("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false).unwrap();
        assert!(!h.reusable);
        assert_eq!(h.parts.version, Version::HTTP_10);
        let (h, _) = head_of(
            "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 0\r\n\r\n",
            false,
        )
        .unwrap();
        assert!(h.reusable);
    }

    #[test]
    fn bad_heads_are_refused_with_a_reason() {
        for (text, why) in [
            (
                "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
                "conflicting",
            ),
            (
                "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
                "Content-Length",
            ),
            ("HTTP/1.1 101 Switching Protocols\r\n\r\n", "101"),
            ("HTTQ/1.1 200 OK\r\n\r\n", "malformed"),
        ] {
            match head_of(text, false) {
                Err(HeadError::Invalid(w)) => assert!(w.contains(why), "{text:?}: {w}"),
                Err(e) => panic!("{text:?}: {e}"),
                Ok(_) => panic!("{text:?} was accepted"),
            }
        }
    }

    #[test]
    fn informational_answers_are_skipped() {
        let mut buf =
            BytesMut::from(&b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"[..]);
        assert!(matches!(parse(&mut buf, false), Ok(Parsed::Informational)));
        assert!(matches!(parse(&mut buf, false), Ok(Parsed::Head(h)) if h.parts.status == 204));
        assert!(buf.is_empty());
    }

    #[test]
    fn chunked_bodies_decode_across_any_split() {
        let wire = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n";
        for cut in 0..wire.len() {
            let mut state = Chunk::Size;
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            let mut ended = false;
            for piece in [&wire[..cut], &wire[cut..]] {
                buf.extend_from_slice(piece);
                loop {
                    match decode(&mut state, &mut buf).unwrap() {
                        Step::Data(d) => out.extend_from_slice(&d),
                        Step::End => {
                            ended = true;
                            break;
                        }
                        Step::More => break,
                    }
                }
            }
            assert!(ended, "cut at {cut}");
            assert_eq!(out, b"hello world", "cut at {cut}");
            assert!(buf.is_empty());
        }
        let mut buf = BytesMut::from(&b"zz\r\n"[..]);
        assert!(decode(&mut Chunk::Size, &mut buf).is_err());
    }

    #[test]
    fn the_request_head_is_written_as_sent() {
        let req = http::Request::builder()
            .method("DELETE")
            .uri("/a/b?c=d")
            .header("host", "example.com")
            .header("x-one", "1")
            .body(())
            .unwrap();
        let mut out = Vec::new();
        encode(&req.into_parts().0, &mut out);
        assert_eq!(
            out,
            b"DELETE /a/b?c=d HTTP/1.1\r\nhost: example.com\r\nx-one: 1\r\n\r\n"
        );
    }
}
