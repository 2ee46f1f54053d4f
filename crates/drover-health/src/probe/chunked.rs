//! A decoder for `Transfer-Encoding: chunked` bodies, in place in the read buffer.
//!
//! The HTTP probe reads the raw body into its buffer after the head; this decoder walks the raw
//! bytes and moves each chunk's data down over the framing already consumed, so the decoded body
//! ends up contiguous at the start of the body without a second buffer. The decoded end never
//! passes the raw position (`out <= pos`), which is what makes moving in place safe.
//!
//! Trailers are never read: the probe stops at the last chunk (or earlier, at its body limit).
//! Size lines accept chunk extensions (ignored) and a bare LF as line end, as most agents do.

/// Longest chunk-size line (size, extensions, line end) accepted.
const MAX_SIZE_LINE: usize = 1024;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Expecting a chunk-size line.
    #[default]
    Size,
    /// Inside a chunk's data, this many bytes left.
    Data(u64),
    /// After a chunk's data, expecting its CRLF.
    DataEnd,
    /// The last (zero-size) chunk was seen.
    Done,
}

/// The decoding state between reads.
#[derive(Debug, Default)]
pub(super) struct Chunked {
    state: State,
}

impl Chunked {
    /// True once the last chunk was seen.
    pub(super) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes the raw bytes `buf[*pos..]`, moving chunk data to `buf[*out..]` and advancing both
    /// (requires `*out <= *pos`). Returns when more input is needed, at the last chunk, or when
    /// `*out` reaches `out_limit`. Incomplete size lines are left at `*pos` for the next call.
    pub(super) fn decode(
        &mut self,
        buf: &mut [u8],
        pos: &mut usize,
        out: &mut usize,
        out_limit: usize,
    ) -> Result<(), &'static str> {
        debug_assert!(*out <= *pos && *pos <= buf.len());
        let end = buf.len();
        loop {
            match self.state {
                State::Done => return Ok(()),
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
                        State::Done
                    } else {
                        State::Data(size)
                    };
                }
                State::Data(left) => {
                    let available = end - *pos;
                    let room = out_limit.saturating_sub(*out);
                    if available == 0 || room == 0 {
                        return Ok(());
                    }
                    // `left` may exceed usize on 32-bit targets; the minimum fits.
                    let n = usize::try_from(left)
                        .unwrap_or(usize::MAX)
                        .min(available)
                        .min(room);
                    buf.copy_within(*pos..*pos + n, *out);
                    *pos += n;
                    *out += n;
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
            if dec.is_done() || out >= start + limit {
                break;
            }
        }
        assert_eq!(&buf[..start], b"HEAD");
        Ok((buf[start..out].to_vec(), dec.is_done()))
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
