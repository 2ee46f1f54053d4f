//! The one response body type of a test member: a whole buffer, or a generated stream.
//!
//! `/download?bytes=N` streams N bytes of a fixed pattern in chunks of at most 64 KiB, each a
//! zero-copy slice of one static buffer, so a multi-gigabyte download costs no memory and hyper
//! pulls chunks only as fast as the client reads (backpressure). The byte at offset `i` of any
//! download is `DOWNLOAD_PATTERN[i % 64]`, so tests can check content as well as length.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

/// The 64 bytes repeated by `/download`: the byte at offset `i` is `DOWNLOAD_PATTERN[i % 64]`.
pub const DOWNLOAD_PATTERN: &[u8; 64] =
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-\n";

/// Largest chunk of a download; a multiple of the pattern length so every chunk starts in phase.
pub(crate) const CHUNK_LEN: usize = 64 * 1024;

static CHUNK: [u8; CHUNK_LEN] = build_chunk();

const fn build_chunk() -> [u8; CHUNK_LEN] {
    let mut chunk = [0u8; CHUNK_LEN];
    let mut i = 0;
    while i < CHUNK_LEN {
        chunk[i] = DOWNLOAD_PATTERN[i % DOWNLOAD_PATTERN.len()];
        i += 1;
    }
    chunk
}

/// Response body of every member answer.
#[derive(Debug)]
pub(crate) enum MemberBody {
    /// A buffer sent as one frame (`None` once sent, or for an empty body).
    Full(Option<Bytes>),
    /// `remaining` more bytes of the download pattern.
    Pattern { remaining: u64 },
    /// `remaining` bytes of the pattern, then nothing, ever (`/stall`).
    Stalled { remaining: u64 },
}

impl MemberBody {
    pub(crate) fn full(bytes: Bytes) -> MemberBody {
        MemberBody::Full(Some(bytes).filter(|b| !b.is_empty()))
    }

    pub(crate) fn empty() -> MemberBody {
        MemberBody::Full(None)
    }

    pub(crate) fn pattern(len: u64) -> MemberBody {
        MemberBody::Pattern { remaining: len }
    }

    pub(crate) fn stalled(len: u64) -> MemberBody {
        MemberBody::Stalled { remaining: len }
    }
}

impl Body for MemberBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let frame = match self.get_mut() {
            MemberBody::Full(bytes) => bytes.take(),
            MemberBody::Stalled { remaining: 0 } => return Poll::Pending,
            MemberBody::Pattern { remaining } | MemberBody::Stalled { remaining } => {
                if *remaining == 0 {
                    None
                } else {
                    // min() with CHUNK_LEN makes the cast lossless.
                    let n = (*remaining).min(CHUNK_LEN as u64) as usize;
                    *remaining -= n as u64;
                    Some(Bytes::from_static(&CHUNK[..n]))
                }
            }
        };
        Poll::Ready(frame.map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        match self {
            MemberBody::Full(bytes) => bytes.is_none(),
            MemberBody::Pattern { remaining } => *remaining == 0,
            MemberBody::Stalled { .. } => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            MemberBody::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            MemberBody::Pattern { remaining } => SizeHint::with_exact(*remaining),
            MemberBody::Stalled { remaining } => SizeHint::with_exact(*remaining + 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn pattern_streams_in_bounded_chunks() {
        let len = 3 * CHUNK_LEN as u64 + 5;
        let mut body = MemberBody::pattern(len);
        assert_eq!(body.size_hint().exact(), Some(len));
        let mut sizes = Vec::new();
        let mut offset = 0usize;
        while let Some(frame) = body.frame().await {
            let data = frame.unwrap().into_data().unwrap();
            for (i, b) in data.iter().enumerate() {
                assert_eq!(*b, DOWNLOAD_PATTERN[(offset + i) % 64]);
            }
            offset += data.len();
            sizes.push(data.len());
        }
        assert_eq!(sizes, [CHUNK_LEN, CHUNK_LEN, CHUNK_LEN, 5]);
        assert!(body.is_end_stream());
    }

    #[tokio::test]
    async fn full_and_empty() {
        let mut body = MemberBody::full(Bytes::from_static(b"m1\n"));
        assert_eq!(body.size_hint().exact(), Some(3));
        assert_eq!(
            body.frame().await.unwrap().unwrap().into_data().unwrap(),
            "m1\n"
        );
        assert!(body.frame().await.is_none());
        let body = MemberBody::empty();
        assert!(body.is_end_stream());
        assert_eq!(body.size_hint().exact(), Some(0));
        assert_eq!(MemberBody::pattern(0).size_hint().exact(), Some(0));
    }
}
