//! Connection reuse (HTTP/1.1 keep-alive) between runs of an HTTP probe, against a scripted
//! keep-alive member on 127.0.0.1:0 that counts the connections it accepts.
//!
//! The member answers its n-th request (counted over all connections) with the n-th [`Reply`] of
//! its script (the last one repeats), and keeps every connection open unless a reply says
//! otherwise. Tests wait for the member with deadline polling, never with fixed sleeps.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use drover_health::probe::{
    DRAIN_SLACK, HEAD_LIMIT, HttpProbe, Probe, ProbeFailure, ProbeKind, ProbeState,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the member does with one request.
#[derive(Clone)]
enum Reply {
    /// Writes these bytes; the connection stays open.
    Send(Vec<u8>),
    /// Writes these bytes, then closes.
    SendAndClose(Vec<u8>),
    /// Never answers; the connection stays open.
    Silent,
    /// Closes without answering (FIN).
    Hangup,
    /// Closes without answering, with a reset.
    Reset,
}

/// How [`Member::close_idle`] closes the connections the member holds.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Close {
    /// FIN, as a server's keep-alive timeout does.
    Fin,
    /// A reset.
    Reset,
    /// `408 Request Timeout` with `Connection: close`, then FIN (Node.js, some Go servers).
    RequestTimeout,
    /// FIN, and the member stops listening (a restart that has not come back yet).
    Down,
}

struct Shared {
    script: Vec<Reply>,
    accepts: AtomicUsize,
    /// Every request head received, in order.
    requests: Mutex<Vec<String>>,
    /// Connections closed on [`Member::close_idle`].
    closed: AtomicUsize,
    listening: AtomicBool,
}

struct Member {
    addr: SocketAddr,
    shared: Arc<Shared>,
    close: watch::Sender<Option<Close>>,
}

impl Member {
    async fn start(script: Vec<Reply>) -> Member {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            script,
            accepts: AtomicUsize::new(0),
            requests: Mutex::new(Vec::new()),
            closed: AtomicUsize::new(0),
            listening: AtomicBool::new(true),
        });
        let (close, _) = watch::channel(None);
        let (s, mut closing) = (Arc::clone(&shared), close.subscribe());
        let on_close = close.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { return };
                        s.accepts.fetch_add(1, Ordering::SeqCst);
                        tokio::spawn(serve(stream, Arc::clone(&s), on_close.subscribe()));
                    }
                    _ = closing.changed() => {
                        if *closing.borrow() == Some(Close::Down) {
                            drop(listener);
                            s.listening.store(false, Ordering::SeqCst);
                            return;
                        }
                    }
                }
            }
        });
        Member {
            addr,
            shared,
            close,
        }
    }

    fn accepts(&self) -> usize {
        self.shared.accepts.load(Ordering::SeqCst)
    }

    fn requests(&self) -> Vec<String> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Closes the `open` idle connections the member holds, as `how` says, and returns once
    /// they are closed (and, for [`Close::Down`], the listener too).
    async fn close_idle(&self, how: Close, open: usize) {
        let before = self.shared.closed.load(Ordering::SeqCst);
        self.close.send_replace(Some(how));
        let shared = Arc::clone(&self.shared);
        eventually(move || {
            shared.closed.load(Ordering::SeqCst) >= before + open
                && (how != Close::Down || !shared.listening.load(Ordering::SeqCst))
        })
        .await;
        self.close.send_replace(None);
    }
}

/// Polls `done` until it holds; panics after 5 s.
async fn eventually(done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < deadline, "not done within 5 s");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn serve(
    mut stream: TcpStream,
    shared: Arc<Shared>,
    mut closing: watch::Receiver<Option<Close>>,
) {
    let mut pending = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        // Serve every complete request head received so far.
        while let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            let head: Vec<u8> = pending.drain(..end + 4).collect();
            let reply = {
                let mut requests = shared.requests.lock().unwrap();
                requests.push(String::from_utf8_lossy(&head).into_owned());
                let n = requests.len() - 1;
                shared.script[n.min(shared.script.len() - 1)].clone()
            };
            match reply {
                Reply::Send(bytes) => {
                    if stream.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
                Reply::SendAndClose(bytes) => {
                    let _ = stream.write_all(&bytes).await;
                    return;
                }
                Reply::Silent => {}
                Reply::Hangup => return,
                Reply::Reset => {
                    let _ = stream.set_zero_linger();
                    return;
                }
            }
        }
        tokio::select! {
            read = stream.read(&mut chunk) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => pending.extend_from_slice(&chunk[..n]),
            },
            _ = closing.changed() => {
                let how = *closing.borrow();
                let Some(how) = how else { continue };
                match how {
                    Close::Fin | Close::Down => {}
                    Close::Reset => {
                        let _ = stream.set_zero_linger();
                    }
                    Close::RequestTimeout => {
                        let timeout = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\
                                        Content-Length: 0\r\n\r\n";
                        let _ = stream.write_all(timeout).await;
                    }
                }
                drop(stream);
                shared.closed.fetch_add(1, Ordering::SeqCst);
                return;
            }
        }
    }
}

const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nOK";

fn ok() -> Reply {
    Reply::Send(OK.to_vec())
}

fn send(bytes: &[u8]) -> Reply {
    Reply::Send(bytes.to_vec())
}

/// `GET /health` expecting 200-399, and `expect_body` if given, within `max_body`.
fn probe(addr: SocketAddr, reuse: bool, body: Option<&str>, max_body: usize) -> Probe {
    Probe {
        addr,
        timeout: Duration::from_secs(5),
        kind: ProbeKind::Http(HttpProbe::new(
            "GET",
            "/health",
            "member",
            vec![(200, 399)],
            body.map(str::to_owned),
            None,
            max_body,
            reuse,
        )),
    }
}

fn keep_alive(addr: SocketAddr) -> Probe {
    probe(addr, true, None, 1024)
}

#[tokio::test]
async fn two_checks_share_one_connection() {
    let m = Member::start(vec![ok()]).await;
    let p = keep_alive(m.addr);
    let mut state = ProbeState::default();
    for _ in 0..3 {
        assert_eq!(p.run(&mut state).await.unwrap().status, Some(200));
        assert!(state.is_connected());
    }
    assert_eq!(m.accepts(), 1);
    let requests = m.requests();
    assert_eq!(requests.len(), 3);
    assert!(
        requests
            .iter()
            .all(|r| !r.to_ascii_lowercase().contains("connection:")),
        "{requests:?}"
    );
}

#[tokio::test]
async fn without_reuse_each_check_opens_a_connection() {
    // The member would keep the connection; the probe asks it not to, and closes it anyway.
    let m = Member::start(vec![ok()]).await;
    let p = probe(m.addr, false, None, 1024);
    let mut state = ProbeState::default();
    for _ in 0..2 {
        assert!(p.run(&mut state).await.is_ok());
        assert!(!state.is_connected());
    }
    assert_eq!(m.accepts(), 2);
    assert!(
        m.requests()
            .iter()
            .all(|r| r.contains("\r\nConnection: close\r\n"))
    );
}

#[tokio::test]
async fn a_connection_the_member_closed_while_idle_is_replaced_within_the_check() {
    for how in [Close::Fin, Close::Reset, Close::RequestTimeout] {
        let m = Member::start(vec![ok()]).await;
        let p = keep_alive(m.addr);
        let mut state = ProbeState::default();
        assert!(p.run(&mut state).await.is_ok());
        m.close_idle(how, 1).await;
        let second = p.run(&mut state).await;
        assert_eq!(second.unwrap().status, Some(200), "{how:?}");
        assert_eq!(m.accepts(), 2, "{how:?}");
        assert!(state.is_connected(), "{how:?}");
        // The replacement is kept in turn.
        assert!(p.run(&mut state).await.is_ok());
        assert_eq!(m.accepts(), 2, "{how:?}");
    }
}

#[tokio::test]
async fn a_connection_closed_after_the_request_is_replaced_once() {
    // Request 1 finds the kept connection dead only once written (the member closes on reading
    // it, or answers 408 and closes): replaced. Request 2, on the fresh connection, gets the same:
    // that one counts.
    let timeout_408 = Reply::SendAndClose(
        b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n".to_vec(),
    );
    for close in [Reply::Hangup, Reply::Reset, timeout_408] {
        let m = Member::start(vec![ok(), close.clone(), close, ok()]).await;
        let p = keep_alive(m.addr);
        let mut state = ProbeState::default();
        assert!(p.run(&mut state).await.is_ok());
        let err = p.run(&mut state).await.unwrap_err();
        assert!(
            matches!(
                err,
                ProbeFailure::Closed | ProbeFailure::Status { got: 408, .. }
            ),
            "{err:?}"
        );
        assert_eq!(m.accepts(), 2, "one reconnect, not more");
        assert_eq!(m.requests().len(), 3);
        assert!(!state.is_connected());
        assert!(p.run(&mut state).await.is_ok());
        assert_eq!(m.accepts(), 3);
        assert!(state.is_connected());
    }
}

#[tokio::test]
async fn a_member_that_went_down_fails_on_the_fresh_connect() {
    let m = Member::start(vec![ok()]).await;
    let p = keep_alive(m.addr);
    let mut state = ProbeState::default();
    assert!(p.run(&mut state).await.is_ok());
    m.close_idle(Close::Down, 1).await;
    let err = p.run(&mut state).await.unwrap_err();
    assert!(matches!(err, ProbeFailure::Connect(_)), "{err:?}");
    assert!(!state.is_connected());
}

#[tokio::test]
async fn connection_close_from_the_member_is_honoured() {
    // The member says close but leaves the connection open: the probe must not reuse it.
    let m = Member::start(vec![send(
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nOK",
    )])
    .await;
    let p = keep_alive(m.addr);
    let mut state = ProbeState::default();
    for _ in 0..2 {
        assert!(p.run(&mut state).await.is_ok());
        assert!(!state.is_connected());
    }
    assert_eq!(m.accepts(), 2);
}

#[tokio::test]
async fn a_member_closing_after_its_answer_is_replaced_on_the_next_check() {
    // Says nothing, closes after answering (a server with keep-alive off that omits the header):
    // the next check finds the connection closed and reconnects without failing.
    let m = Member::start(vec![Reply::SendAndClose(OK.to_vec())]).await;
    let p = keep_alive(m.addr);
    let mut state = ProbeState::default();
    for n in 1..=3 {
        assert!(p.run(&mut state).await.is_ok(), "check {n}");
    }
    assert_eq!(m.accepts(), 3);
}

#[tokio::test]
async fn http_1_0_is_reused_only_with_keep_alive() {
    let m = Member::start(vec![send(
        b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nOK",
    )])
    .await;
    let p = keep_alive(m.addr);
    let mut state = ProbeState::default();
    assert!(p.run(&mut state).await.is_ok());
    assert!(!state.is_connected());

    let m = Member::start(vec![send(
        b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nOK",
    )])
    .await;
    let p = keep_alive(m.addr);
    assert!(p.run(&mut state).await.is_ok());
    assert!(p.run(&mut state).await.is_ok());
    assert_eq!(m.accepts(), 1);
}

#[tokio::test]
async fn a_chunked_body_is_read_to_its_end_then_reused() {
    let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                    9\r\n<h1>Test \r\n4;x=y\r\nPage\r\n6\r\n</h1>\n\r\n0\r\nX-Trailer: 1\r\n\r\n";
    // Without a body expectation (skipped whole), with one matched in full, and with one
    // matched on the first 9 bytes only (the rest skipped).
    for (body, max_body) in [
        (None, 1024),
        (Some("Test Page"), 1024),
        (Some("<h1>Test"), 9),
    ] {
        let m = Member::start(vec![send(chunked)]).await;
        let p = probe(m.addr, true, body, max_body);
        let mut state = ProbeState::default();
        for _ in 0..3 {
            assert!(p.run(&mut state).await.is_ok(), "{body:?}");
            assert!(state.is_connected(), "{body:?}");
        }
        assert_eq!(m.accepts(), 1, "{body:?}");
    }
}

#[tokio::test]
async fn a_body_longer_than_the_drain_limit_is_not_reused() {
    // The whole response may take HEAD_LIMIT + max_body + DRAIN_SLACK bytes to be kept.
    let max_body = 1024;
    let limit = HEAD_LIMIT + max_body + DRAIN_SLACK;
    for (extra, kept) in [(0, true), (1, false)] {
        let head = |len: usize| format!("HTTP/1.1 200 OK\r\nContent-Length: {len:06}\r\n\r\n");
        let len = limit - head(0).len() + extra;
        let mut response = head(len).into_bytes();
        response.resize(response.len() + len, b'.');
        let m = Member::start(vec![Reply::Send(response)]).await;
        let p = probe(m.addr, true, None, max_body);
        let mut state = ProbeState::default();
        for _ in 0..2 {
            assert!(p.run(&mut state).await.is_ok(), "+{extra}");
            assert_eq!(state.is_connected(), kept, "+{extra}");
        }
        assert_eq!(m.accepts(), if kept { 1 } else { 2 }, "+{extra}");
    }
}

#[tokio::test]
async fn a_failed_status_or_body_keeps_the_connection() {
    // A clean answer that fails the check: the connection is as good as any (Envoy keeps it too).
    let m = Member::start(vec![
        send(b"HTTP/1.1 503 Busy\r\nContent-Length: 11\r\n\r\nbusy, sorry"),
        send(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nnot yet"),
        send(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nOK!!"),
    ])
    .await;
    let p = probe(m.addr, true, Some("OK"), 1024);
    let mut state = ProbeState::default();
    let err = p.run(&mut state).await.unwrap_err();
    assert!(
        matches!(err, ProbeFailure::Status { got: 503, .. }),
        "{err:?}"
    );
    assert!(state.is_connected());
    let err = p.run(&mut state).await.unwrap_err();
    assert!(matches!(err, ProbeFailure::Body { .. }), "{err:?}");
    assert!(state.is_connected());
    assert!(p.run(&mut state).await.is_ok());
    assert_eq!(m.accepts(), 1);
}

#[tokio::test]
async fn a_timeout_drops_the_connection() {
    let m = Member::start(vec![ok(), Reply::Silent, ok()]).await;
    let mut p = keep_alive(m.addr);
    p.timeout = Duration::from_millis(300);
    let mut state = ProbeState::default();
    assert!(p.run(&mut state).await.is_ok());
    let err = p.run(&mut state).await.unwrap_err();
    assert!(matches!(err, ProbeFailure::Timeout(_)), "{err:?}");
    assert!(!state.is_connected());
    assert!(p.run(&mut state).await.is_ok());
    assert_eq!(m.accepts(), 2);
}

#[tokio::test]
async fn a_protocol_failure_drops_the_connection() {
    let m = Member::start(vec![ok(), send(b"SSH-2.0-OpenSSH_9.2\r\n\r\n"), ok()]).await;
    let p = keep_alive(m.addr);
    let mut state = ProbeState::default();
    assert!(p.run(&mut state).await.is_ok());
    let err = p.run(&mut state).await.unwrap_err();
    assert!(matches!(err, ProbeFailure::Protocol(_)), "{err:?}");
    assert!(!state.is_connected());
    assert!(p.run(&mut state).await.is_ok());
    assert_eq!(m.accepts(), 2);
}

#[tokio::test]
async fn bytes_after_the_response_drop_the_connection() {
    // The member sent more than one response: the stream is out of step, so it is not reused.
    let mut twice = OK.to_vec();
    twice.extend_from_slice(OK);
    let m = Member::start(vec![Reply::Send(twice)]).await;
    let p = keep_alive(m.addr);
    let mut state = ProbeState::default();
    assert!(p.run(&mut state).await.is_ok());
    assert!(!state.is_connected());
}

#[tokio::test]
async fn an_answer_without_a_body_is_reused() {
    let m = Member::start(vec![send(b"HTTP/1.1 204 No Content\r\n\r\n")]).await;
    let p = keep_alive(m.addr);
    let mut state = ProbeState::default();
    for _ in 0..2 {
        assert_eq!(p.run(&mut state).await.unwrap().status, Some(204));
    }
    assert_eq!(m.accepts(), 1);
}

#[tokio::test]
async fn a_close_delimited_body_is_not_reused() {
    let m = Member::start(vec![Reply::SendAndClose(
        b"HTTP/1.1 200 OK\r\n\r\nOK, until close".to_vec(),
    )])
    .await;
    let p = probe(m.addr, true, Some("OK"), 1024);
    let mut state = ProbeState::default();
    assert!(p.run(&mut state).await.is_ok());
    assert!(!state.is_connected());
}

#[tokio::test]
async fn a_tcp_probe_keeps_nothing() {
    let m = Member::start(vec![ok()]).await;
    let p = Probe {
        addr: m.addr,
        timeout: Duration::from_secs(5),
        kind: ProbeKind::Tcp,
    };
    let mut state = ProbeState::default();
    for _ in 0..2 {
        assert!(p.run(&mut state).await.is_ok());
        assert!(!state.is_connected());
    }
    eventually(|| m.accepts() == 2).await;
}
