//! drover's own member client (`h1client`) against a member that writes its answers byte for
//! byte: every framing a member may use, the connections kept or closed after each, and the
//! answers that are not HTTP.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty, Full};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::*;

/// A member on 127.0.0.1:0 answering each request with the script its path names.
struct Scripted {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    /// Connections the member has closed (counted once the socket is closed).
    closed: Arc<AtomicUsize>,
}

impl Scripted {
    async fn start() -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        let (count, ended) = (Arc::clone(&accepted), Arc::clone(&closed));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let ended = Arc::clone(&ended);
                tokio::spawn(async move {
                    // `serve` owns the socket: it is closed when `serve` returns.
                    serve(stream).await;
                    ended.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        Scripted {
            addr,
            accepted,
            closed,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn closed(&self) -> usize {
        self.closed.load(Ordering::SeqCst)
    }
}

async fn serve(mut stream: TcpStream) {
    let mut buf = Vec::new();
    let mut served = 0;
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        buf.drain(..head_end);
        let mut line = head.lines().next().unwrap_or("").split(' ');
        let (method, path) = (line.next().unwrap_or(""), line.next().unwrap_or(""));
        served += 1;
        if path == "/drop-if-reused" && served > 1 {
            // The keep-alive race: the member closes a connection it kept as the next request
            // arrives, without answering.
            return;
        }
        let pieces: &[&[u8]] = match (method, path) {
            ("HEAD", "/cl") => &[b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"],
            (_, "/cl") => &[b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"],
            (_, "/split") => &[
                b"HTTP/1.1 200 OK\r\nConte",
                b"nt-Length: 5\r\n\r\nhe",
                b"llo",
            ],
            (_, "/chunked") => &[
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
                b"6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n",
            ],
            (_, "/continue") => &[
                b"HTTP/1.1 100 Continue\r\n\r\n",
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            ],
            (_, "/nocontent") => &[b"HTTP/1.1 204 No Content\r\n\r\n"],
            (_, "/until-close") => &[b"HTTP/1.1 200 OK\r\n\r\nuntil close"],
            (_, "/conn-close") => {
                &[b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"]
            }
            (_, "/http10") => &[b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"],
            (_, "/garbage") => &[b"SPDY/9 what\r\n\r\n"],
            (_, "/silent-close") => &[],
            (_, "/drop-if-reused") => &[b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh"],
            (_, "/then-close") => &[b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"],
            _ => &[b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"],
        };
        for piece in pieces {
            if stream.write_all(piece).await.is_err() {
                return;
            }
            // Each piece in a segment of its own: the client must read across them.
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
        if path == "/then-close" {
            // Kept alive as far as the client can tell, then closed while idle.
            tokio::time::sleep(Duration::from_millis(100)).await;
            return;
        }
        if matches!(
            path,
            "/until-close" | "/conn-close" | "/http10" | "/garbage" | "/silent-close"
        ) {
            return;
        }
    }
}

fn config(member: &Scripted) -> String {
    format!(
        "[[listener]]\nlisten = \"127.0.0.1:0\"\nfarm = \"app\"\n[farm.app]\nretry_on = []\n\
         [[farm.app.members]]\nname = \"m\"\naddress = \"{}\"\n",
        member.addr
    )
}

fn request(addr: SocketAddr, method: &str, path: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string())
        .body(Empty::<Bytes>::new().boxed())
        .unwrap()
}

#[tokio::test]
async fn every_framing_is_read_whole_and_the_connection_kept_when_it_can_be() {
    let member = Scripted::start().await;
    let proxy = drover(&config(&member));
    let addr = proxy.addr();
    let mut client = connect(addr).await;

    let r = send(&mut client, request(addr, "GET", "/cl")).await;
    assert_eq!((r.status.as_u16(), r.text()), (200, "hello"));
    assert_eq!(member.accepted(), 1);

    // Each case below must leave the member connection reusable: still one connection.
    for (method, path, status, body) in [
        ("GET", "/cl", 200, "hello"),
        ("GET", "/split", 200, "hello"),
        ("GET", "/chunked", 200, "hello world"),
        ("GET", "/continue", 200, "ok"),
        ("GET", "/nocontent", 204, ""),
        ("HEAD", "/cl", 200, ""),
        ("DELETE", "/cl", 200, "hello"),
        ("GET", "/cl", 200, "hello"),
    ] {
        let r = send(&mut client, request(addr, method, path)).await;
        assert_eq!(
            (r.status.as_u16(), r.text()),
            (status, body),
            "{method} {path}"
        );
        assert_eq!(member.accepted(), 1, "{method} {path}: connection not kept");
    }

    // These end the member connection: the next request opens a new one.
    let mut expected = 1;
    for (path, body) in [
        ("/until-close", "until close"),
        ("/conn-close", "ok"),
        ("/http10", "ok"),
    ] {
        let r = send(&mut client, request(addr, "GET", path)).await;
        assert_eq!((r.status.as_u16(), r.text()), (200, body), "{path}");
        let r = send(&mut client, request(addr, "GET", "/cl")).await;
        assert_eq!(r.text(), "hello", "after {path}");
        expected += 1;
        assert_eq!(
            member.accepted(),
            expected,
            "after {path}: a new connection"
        );
    }
}

#[tokio::test]
async fn an_answer_that_is_not_http_is_a_502_and_a_silent_close_too() {
    let member = Scripted::start().await;
    let proxy = drover(&config(&member));
    let addr = proxy.addr();
    let mut client = connect(addr).await;
    for path in ["/garbage", "/silent-close"] {
        let r = send(&mut client, request(addr, "GET", path)).await;
        assert_eq!(r.status, 502, "{path}: {}", r.text());
        assert!(r.text().contains("failed before answering"), "{}", r.text());
    }
    // The client connection and the member are fine afterwards.
    let r = send(&mut client, request(addr, "GET", "/cl")).await;
    assert_eq!(r.text(), "hello");
}

#[tokio::test]
async fn a_pooled_connection_the_member_closed_while_idle_is_not_used() {
    let member = Scripted::start().await;
    let proxy = drover(&config(&member));
    let addr = proxy.addr();
    let mut client = connect(addr).await;
    for round in 1..=3 {
        // An ordinary keep-alive answer; the member closes the connection 100 ms later.
        let r = send(&mut client, request(addr, "GET", "/then-close")).await;
        assert_eq!((r.status.as_u16(), r.text()), (200, "ok"), "round {round}");
        eventually("the member to close its side", || member.closed() == round).await;
        // Retries are off (`retry_on = []`): had drover sent this on the closed connection,
        // the client would get a 502. It must see the close in the pool and connect anew.
        let r = send(&mut client, request(addr, "GET", "/cl")).await;
        assert_eq!(
            (r.status.as_u16(), r.text()),
            (200, "hello"),
            "round {round}"
        );
        assert_eq!(member.accepted(), round + 1, "round {round}");
        // That new connection is closed by the member next round.
    }
}

#[tokio::test]
async fn a_pooled_connection_closed_unanswered_is_retried_fresh_only_when_repeatable() {
    // Retries on other members are off (`retry_on = []`): what is tested is the one fresh try
    // on the same member that a reused connection closed without a byte of answer gets.
    let member = Scripted::start().await;
    let proxy = drover(&config(&member));
    let addr = proxy.addr();
    let mut client = connect(addr).await;
    let r = send(&mut client, request(addr, "GET", "/cl")).await;
    assert_eq!((r.status.as_u16(), r.text()), (200, "hello"));
    assert_eq!(member.accepted(), 1);
    // GET, HEAD and DELETE may be repeated: each is sent again on a new connection, which
    // answers.
    for (method, connections) in [("GET", 2), ("HEAD", 3), ("DELETE", 4)] {
        let r = send(&mut client, request(addr, method, "/drop-if-reused")).await;
        assert_eq!(r.status, 200, "{method}: {}", r.text());
        // One new connection per dropped request.
        assert_eq!(member.accepted(), connections, "{method}");
    }
    // A POST is not repeated, even without a body: the member may have acted on it.
    let r = send(&mut client, request(addr, "POST", "/drop-if-reused")).await;
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.text().contains("failed before answering"), "{}", r.text());
    assert_eq!(member.accepted(), 4, "not sent again");
}

#[tokio::test]
async fn requests_with_and_without_a_body_share_one_connection_slot() {
    // A body goes through hyper's client, a bodiless request through drover's own: with
    // `max_connections = 1` an idle connection of one kind is closed to make room for the other.
    let m = TestMember::start(MemberConfig::new("m")).await.unwrap();
    let toml = format!(
        "[[listener]]\nlisten = \"127.0.0.1:0\"\nfarm = \"app\"\n[farm.app]\nmax_connections = 1\n\
         connect_timeout = \"2s\"\n{}",
        members_toml("app", &[&m], |_| String::new())
    );
    let proxy = drover(&toml);
    let addr = proxy.addr();
    let mut client = connect(addr).await;
    for round in 0..3 {
        let post = Request::post("/upload")
            .header("host", addr.to_string())
            .body(Full::new(Bytes::from_static(b"some body")).boxed())
            .unwrap();
        let r = send(&mut client, post).await;
        assert_eq!(r.status, 200, "round {round}: {}", r.text());
        let r = send(&mut client, request(addr, "GET", "/")).await;
        // Had it waited for the other kind's idle connection, it would be a 503 (saturated)
        // after `connect_timeout`.
        assert_eq!(r.status, 200, "round {round}: {}", r.text());
    }
    assert!(m.connections() <= 6, "{} connections", m.connections());
    assert_eq!(m.requests(), 6);
}
