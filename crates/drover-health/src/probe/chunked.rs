//! A decoder for `Transfer-Encoding: chunked` bodies, in place in the read buffer.
//!
//! The HTTP probe reads the raw body into its buffer after the head; this decoder walks the raw
//! bytes and moves each chunk's data down over the framing already consumed, so the decoded body
//! ends up contiguous at the start of the body without a second buffer. The decoded end never
//! passes the raw position (`out <= pos`), which is what makes moving in place safe.
//!
//! The same decoder also skips a body without moving it ([`Chunked::skip`]): a probe that keeps its
//! connection reads the rest of the message after the part it matched, trailers included, so the
//! next request starts on a clean stream. Matching needs only the body ([`Chunked::body_done`]);
//! reuse needs the whole message ([`Chunked::is_done`]). Trailer fields are skipped, never read.
//! Size lines accept chunk extensions (ignored) and a bare LF as line end, as most agents do.

/// Longest chunk-size line (size, extensions, line end) accepted.
const MAX_SIZE_LINE: usize = 1024;
/// Longest trailer field line accepted.
const MAX_TRAILER_LINE: usize = 8 * 1024;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Expecting a chunk-size line.
    #[default]
    Size,
    /// Inside a chunk's data, this many bytes left.
    Data(u64),
    /// After a chunk's data, expecting its CRLF.
    DataEnd,
    /// The last (zero-size) chunk was seen: trailer fields until an empty line.
    Trailers,
    /// The empty line after the trailers: the message is complete.
    Done,
}

/// The decoding state between reads.
#[derive(Debug, Default)]
pub(super) struct Chunked {
    state: State,
}

/// Where [`Chunked::walk`] puts chunk data.
enum Sink<'a> {
    /// Moved down to `buf[*out..]`, up to `out_limit`.
    Move {
        out: &'a mut usize,
        out_limit: usize,
    },
    /// Dropped.
    Skip,
}

impl Chunked {
    /// True once the last chunk was seen: the body is complete (trailers may follow).
    pub(super) fn body_done(&self) -> bool {
        matches!(self.state, State::Trailers | State::Done)
    }

    /// True once the whole message was read, trailers and the final empty line included.
    pub(super) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes the raw bytes `buf[*pos..]`, moving chunk data to `buf[*out..]` and advancing both
    /// (requires `*out <= *pos`). Returns when more input is needed, at the end of the message,
    /// or when `*out` reaches `out_limit`. Incomplete lines are left at `*pos` for the next call.
    pub(super) fn decode(
        &mut self,
        buf: &mut [u8],
        pos: &mut usize,
        out: &mut usize,
        out_limit: usize,
    ) -> Result<(), &'static str> {
        debug_assert!(*out <= *pos && *pos <= buf.len());
        self.walk(buf, pos, Sink::Move { out, out_limit })
    }

    /// Like [`decode`](Self::decode), but drops the chunk data instead of moving it: returns when
    /// more input is needed or at the end of the message.
    pub(super) fn skip(&mut self, buf: &mut [u8], pos: &mut usize) -> Result<(), &'static str> {
        debug_assert!(*pos <= buf.len());
        self.walk(buf, pos, Sink::Skip)
    }

    fn walk(
        &mut self,
        buf: &mut [u8],
        pos: &mut usize,
        mut sink: Sink<'_>,
    ) -> Result<(), &'static str> {
        let end = buf.len();
        loop {
            match self.state {
                State::Done => return Ok(()),
                State::Trailers => {
                    let rest = &buf[*pos..end];
                    let Some(lf) = memchr::memchr(b'\n', rest) else {
                        if rest.len() > MAX_TRAILER_LINE {
                            return Err("trailer line too long");
                        }
                        return Ok(());
                    };
                    if lf > MAX_TRAILER_LINE {
                        return Err("trailer line too long");
                    }
                    // An empty line (CRLF or a bare LF) ends the message; any other is a field.
                    if rest[..lf]
                        .strip_suffix(b"\r")
                        .unwrap_or(&rest[..lf])
                        .is_empty()
                    {
                        self.state = State::Done;
                    }
                    *pos += lf + 1;
                }
                State::Size => {
                    let rest = &buf[*pos..end];
                    let Some(lf) = memchr::memchr(b'\n', rest) else {
                        if rest.len() > MAX_SIZE_LINE {
                            return Err("chunk size line too long");
                        }
                        return Ok(());
                    };
                    if lf > MAX_SIZE_LINE {
                        return Err("chunk size line too long");
                    }
                    let size = parse_size(&rest[..lf])?;
                    *pos += lf + 1;
                    self.state = if size == 0 {
                        State::Trailers
                    } else {
                        State::Data(size)
                    };
                }
                State::Data(left) => {
                    let available = end - *pos;
                    let room = match &sink {
                        Sink::Move { out, out_limit } => out_limit.saturating_sub(**out),
                        Sink::Skip => usize::MAX,
                    };
                    if available == 0 || room == 0 {
                        return Ok(());
                    }
                    // `left` may exceed usize on 32-bit targets; the minimum fits.
                    let n = usize::try_from(left)
                        .unwrap_or(usize::MAX)
                        .min(available)
                        .min(room);
                    if let Sink::Move { out, .. } = &mut sink {
                        buf.copy_within(*pos..*pos + n, **out);
                        **out += n;
                    }
                    *pos += n;
                    let left = left - n as u64;
                    self.state = if left == 0 {
                        State::DataEnd
                    } else {
                        State::Data(left)
                    };
                }
                State::DataEnd => match &buf[*pos..end] {
                    [] | [b'\r'] => return Ok(()),
                    [b'\r', b'\n', ..] => {
                        *pos += 2;
                        self.state = State::Size;
                    }
                    [b'\n', ..] => {
                        *pos += 1;
                        self.state = State::Size;
                    }
                    _ => return Err("chunk data not followed by CRLF"),
                },
            }
        }
    }
}

/// The size of a chunk-size line (without its LF): hex digits, then optional whitespace and
/// `;extensions`, then an optional CR.
fn parse_size(line: &[u8]) -> Result<u64, &'static str> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let digits = match memchr::memchr(b';', line) {
        Some(semi) => &line[..semi],
        None => line,
    };
    let digits = digits.trim_ascii();
    if digits.is_empty() || digits.len() > 16 {
        return Err("bad chunk size");
    }
    let mut size = 0u64;
    for &d in digits {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            b'A'..=b'F' => d - b'A' + 10,
            _ => return Err("bad chunk size"),
        };
        size = (size << 4) | u64::from(v);
    }
    Ok(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `raw` in pieces of `step` bytes, as reads would append them; returns the decoded
    /// body and whether the last chunk was seen.
    fn decode_in_steps(
        raw: &[u8],
        step: usize,
        limit: usize,
    ) -> Result<(Vec<u8>, bool), &'static str> {
        let mut buf = b"HEAD".to_vec();
        let start = buf.len();
        let (mut pos, mut out) = (start, start);
        let mut dec = Chunked::default();
        for piece in raw.chunks(step.max(1)) {
            buf.extend_from_slice(piece);
            dec.decode(&mut buf, &mut pos, &mut out, start + limit)?;
            if dec.body_done() || out >= start + limit {
                break;
            }
        }
        assert_eq!(&buf[..start], b"HEAD");
        Ok((buf[start..out].to_vec(), dec.body_done()))
    }

    /// Skips `raw` fed in pieces of `step` bytes, after decoding its first `decoded` bytes of
    /// body; returns how many raw bytes were left after the end of the message, or `None` if the
    /// message did not end.
    fn skip_in_steps(
        raw: &[u8],
        step: usize,
        decoded: usize,
    ) -> Result<Option<usize>, &'static str> {
        let mut buf = Vec::new();
        let (mut pos, mut out) = (0, 0);
        let mut dec = Chunked::default();
        for piece in raw.chunks(step.max(1)) {
            buf.extend_from_slice(piece);
            if out < decoded {
                dec.decode(&mut buf, &mut pos, &mut out, decoded)?;
                if out < decoded && !dec.body_done() {
                    continue;
                }
            }
            dec.skip(&mut buf, &mut pos)?;
            if dec.is_done() {
                return Ok(Some(buf.len() - pos + (raw.len() - buf.len())));
            }
        }
        Ok(None)
    }

    #[test]
    fn decodes_at_every_split() {
        let raw =
            b"4\r\nWiki\r\n5;ext=1\r\npedia\r\nE \r\n in\r\n\r\nchunks.\r\n0\r\nTrailer: x\r\n\r\n";
        for step in 1..=raw.len() {
            let (body, done) = decode_in_steps(raw, step, 1000).unwrap();
            assert_eq!(body, b"Wikipedia in\r\n\r\nchunks.", "step {step}");
            assert!(done);
        }
    }

    #[test]
    fn stops_at_the_limit() {
        let raw = b"a\r\n0123456789\r\n0\r\n\r\n";
        for step in 1..=raw.len() {
            let (body, done) = decode_in_steps(raw, step, 4).unwrap();
            assert_eq!(body, b"0123", "step {step}");
            assert!(!done);
        }
    }

    #[test]
    fn accepts_bare_lf_and_upper_hex() {
        let (body, done) = decode_in_steps(b"A\n0123456789\n0\n", 100, 100).unwrap();
        assert_eq!(body, b"0123456789");
        assert!(done);
    }

    #[test]
    fn the_message_ends_after_the_trailers() {
        let raw = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nTrailer: x\r\nOther: y\r\n\r\nNEXT";
        for step in 1..=raw.len() {
            for decoded in [0, 3, 9, 100] {
                assert_eq!(
                    skip_in_steps(raw, step, decoded),
                    Ok(Some(4)),
                    "step {step}, decoded {decoded}"
                );
            }
        }
        // Without trailers, and with bare LFs.
        assert_eq!(skip_in_steps(b"3\nabc\n0\n\n", 100, 0), Ok(Some(0)));
        assert_eq!(skip_in_steps(b"0\r\n\r\n", 1, 0), Ok(Some(0)));
        // The last chunk without the empty line after it: the message is not over.
        assert_eq!(skip_in_steps(b"3\r\nabc\r\n0\r\n", 1, 0), Ok(None));
        assert_eq!(skip_in_steps(b"3\r\nabc\r\n0\r\nX: y\r\n", 1, 0), Ok(None));
        let long = [&b"0\r\n"[..], &vec![b'x'; MAX_TRAILER_LINE + 2]].concat();
        assert!(skip_in_steps(&long, 100, 0).is_err());
    }

    #[test]
    fn rejects_bad_framing() {
        for bad in [
            &b"x\r\n"[..],
            b"\r\n",
            b"12345678901234567\r\n",
            b"3\r\nabcX",
            b"-1\r\n",
        ] {
            assert!(decode_in_steps(bad, 100, 100).is_err(), "{bad:?}");
        }
        let long = vec![b'0'; MAX_SIZE_LINE + 2];
        assert!(decode_in_steps(&long, 100, 100).is_err());
    }

    #[test]
    fn incomplete_input_waits() {
        let (body, done) = decode_in_steps(b"5\r\nab", 100, 100).unwrap();
        assert_eq!(body, b"ab");
        assert!(!done);
    }
}
