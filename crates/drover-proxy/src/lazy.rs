//! Client sockets registered with the event loop only once they would block.
//!
//! A tokio `TcpStream` is added to epoll when it is created and removed when it is dropped: two
//! `epoll_ctl` calls per connection. A client that sends its request with the connect and closes
//! after the answer (`Connection: close`, one request per connection) never has to wait on its
//! socket: the request is there when the connection is accepted, the answer fits the socket
//! buffer (the listener's `defer_accept`, on by default, has the kernel wait for the request before
//! it hands the connection over, so the first read finds it). HAProxy serves such a connection
//! without touching epoll; so does drover now. A
//! [`LazyStream`] reads and writes the plain socket until a call would block, and only then
//! registers it with tokio (edge-triggered epoll reports readiness that arrived in between at
//! registration, so nothing is missed). Keep-alive connections register at their first wait, as
//! before; what they save is nothing, what they cost is nothing either.
//!
//! Who uses it: the accept loop in [`crate::server`] accepts with `accept4(SOCK_NONBLOCK)` on the
//! listening socket (watched with tokio's `AsyncFd`) and hands each connection over as one.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream as StdStream};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Most bytes one read before registration asks for (the first request head of a connection).
const FIRST_READ: usize = 4096;

/// A client connection, plain until it first would block, then a registered tokio stream.
pub enum LazyStream {
    Plain(Option<StdStream>),
    Registered(TcpStream),
}

impl LazyStream {
    /// `stream` must be in non-blocking mode.
    pub fn new(stream: StdStream) -> Self {
        LazyStream::Plain(Some(stream))
    }

    /// The registered stream, registering it now if needed.
    fn register(&mut self) -> io::Result<&mut TcpStream> {
        if let LazyStream::Plain(plain) = self {
            let std = plain
                .take()
                .ok_or_else(|| io::Error::other("socket lost during registration"))?;
            *self = LazyStream::Registered(TcpStream::from_std(std)?);
        }
        match self {
            LazyStream::Registered(t) => Ok(t),
            LazyStream::Plain(_) => unreachable!("registered just above"),
        }
    }

    /// The socket's descriptor.
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        use std::os::fd::AsRawFd;
        match self {
            LazyStream::Plain(Some(s)) => s.as_raw_fd(),
            LazyStream::Registered(t) => t.as_raw_fd(),
            LazyStream::Plain(None) => -1,
        }
    }

    fn plain(&self) -> Option<&StdStream> {
        match self {
            LazyStream::Plain(Some(s)) => Some(s),
            _ => None,
        }
    }
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

impl AsyncRead for LazyStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(mut plain) = this.plain() {
            let want = buf.remaining().min(FIRST_READ);
            match plain.read(buf.initialize_unfilled_to(want)) {
                Ok(n) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Err(e) if would_block(&e) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        match this.register() {
            Ok(t) => Pin::new(t).poll_read(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for LazyStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(mut plain) = this.plain() {
            match plain.write(buf) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if would_block(&e) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        match this.register() {
            Ok(t) => Pin::new(t).poll_write(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            LazyStream::Registered(t) => Pin::new(t).poll_flush(cx),
            LazyStream::Plain(_) => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            LazyStream::Registered(t) => Pin::new(t).poll_shutdown(cx),
            LazyStream::Plain(Some(s)) => Poll::Ready(s.shutdown(Shutdown::Write)),
            LazyStream::Plain(None) => Poll::Ready(Ok(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A connected pair: the lazy server side and a registered client side.
    async fn pair() -> (LazyStream, TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let client = TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().unwrap();
        server.set_nonblocking(true).unwrap();
        (LazyStream::new(server), client)
    }

    #[tokio::test]
    async fn data_already_there_is_served_without_registering() {
        let (mut server, mut client) = pair().await;
        // On loopback the bytes are in the server's socket when the write returns.
        client.write_all(b"ping").await.unwrap();
        let mut got = [0u8; 4];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ping");
        server.write_all(b"pong").await.unwrap();
        assert!(
            matches!(server, LazyStream::Plain(Some(_))),
            "registered too early"
        );
        server.shutdown().await.unwrap();
        let mut back = Vec::new();
        client.read_to_end(&mut back).await.unwrap();
        assert_eq!(back, b"pong");
    }

    #[tokio::test]
    async fn a_read_that_would_block_registers_and_wakes_when_data_comes() {
        let (mut server, mut client) = pair().await;
        let mut got = [0u8; 5];
        let mut buf = ReadBuf::new(&mut got);
        let first =
            std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut server).poll_read(cx, &mut buf)))
                .await;
        assert!(first.is_pending(), "nothing was sent yet");
        assert!(matches!(server, LazyStream::Registered(_)));
        client.write_all(b"later").await.unwrap();
        let mut got = [0u8; 5];
        server.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"later");
    }
}
