//! Probes against real sockets: tiny members on 127.0.0.1:0 written here, one behaviour each.
//! These members answer one request per connection and close, so most probes here run without
//! connection reuse (`Connection: close`, as before reuse existed); `tests/reuse.rs` covers
//! keep-alive members and what a probe keeps between runs.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use drover_health::probe::{HttpProbe, Probe, ProbeFailure, ProbeKind, ProbeState, Success};
use regex::Regex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What a test member does with each connection.
#[derive(Clone)]
enum Member {
    /// Reads the request head, writes each piece (flushed separately), then closes.
    Answer(Vec<Vec<u8>>),
    /// Accepts and never answers (the connection stays open).
    Silent,
    /// Accepts and closes at once, without reading.
    Hangup,
}

async fn start(member: Member) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            match &member {
                Member::Answer(pieces) => {
                    tokio::spawn(answer(stream, pieces.clone()));
                }
                Member::Silent => held.push(stream),
                Member::Hangup => drop(stream),
            }
        }
    });
    addr
}

async fn answer(mut stream: TcpStream, pieces: Vec<Vec<u8>>) {
    let mut request = Vec::new();
    let mut chunk = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&chunk[..n]),
        }
    }
    assert!(request.starts_with(b"GET /health HTTP/1.1\r\nHost: member\r\n"));
    for piece in pieces {
        if stream.write_all(&piece).await.is_err() || stream.flush().await.is_err() {
            return;
        }
        tokio::task::yield_now().await;
    }
    let _ = stream.shutdown().await;
}

fn answering(pieces: &[&[u8]]) -> Member {
    Member::Answer(pieces.iter().map(|p| p.to_vec()).collect())
}

/// An HTTP probe of `GET /health` without connection reuse.
fn http(addr: SocketAddr, body: Option<&str>, regex: Option<&str>, max_body: usize) -> Probe {
    Probe {
        addr,
        timeout: Duration::from_secs(5),
        kind: ProbeKind::Http(HttpProbe::new(
            "GET",
            "/health",
            "member",
            vec![(200, 399)],
            body.map(str::to_owned),
            regex.map(|r| Regex::new(r).unwrap()),
            max_body,
            false,
        )),
    }
}

async fn run(probe: &Probe) -> Result<Success, ProbeFailure> {
    probe.run(&mut ProbeState::default()).await
}

async fn run_on(
    member: Member,
    body: Option<&str>,
    max_body: usize,
) -> Result<Success, ProbeFailure> {
    let addr = start(member).await;
    run(&http(addr, body, None, max_body)).await
}

const OK_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 19\r\n\r\n";
const OK_BODY: &[u8] = b"<h1>Test Page</h1>\n";

#[tokio::test]
async fn tcp_connect_passes() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let probe = Probe {
        addr: listener.local_addr().unwrap(),
        timeout: Duration::from_secs(5),
        kind: ProbeKind::Tcp,
    };
    let ok = run(&probe).await.unwrap();
    assert_eq!(ok.status, None);
    // The probe connected for real: the listener has a connection to accept.
    let (_stream, _) = listener.accept().await.unwrap();
}

#[tokio::test]
async fn tcp_refused_is_a_connect_failure() {
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    // The listener is dropped: nothing listens on that port now.
    let probe = Probe {
        addr,
        timeout: Duration::from_secs(5),
        kind: ProbeKind::Tcp,
    };
    let err = run(&probe).await.unwrap_err();
    assert!(matches!(err, ProbeFailure::Connect(_)), "{err:?}");
    assert!(err.to_string().starts_with("connect failed: "), "{err}");
    // The same for an HTTP probe.
    let err = run(&http(addr, None, None, 0)).await.unwrap_err();
    assert!(matches!(err, ProbeFailure::Connect(_)), "{err:?}");
}

#[tokio::test]
async fn http_200_passes_with_its_status() {
    let ok = run_on(answering(&[OK_HEAD, OK_BODY]), None, 0)
        .await
        .unwrap();
    assert_eq!(ok.status, Some(200));
    assert!(ok.latency < Duration::from_secs(5));
}

#[tokio::test]
async fn status_outside_the_ranges_fails_with_both() {
    let member = answering(&[b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"]);
    let err = run_on(member, None, 0).await.unwrap_err();
    assert!(
        matches!(err, ProbeFailure::Status { got: 500, .. }),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "status 500, expected 200-399");

    let addr = start(answering(&[
        b"HTTP/1.1 302 Found\r\nContent-Length: 0\r\n\r\n",
    ]))
    .await;
    let probe = Probe {
        addr,
        timeout: Duration::from_secs(5),
        kind: ProbeKind::Http(HttpProbe::new(
            "GET",
            "/health",
            "member",
            vec![(200, 299), (304, 304)],
            None,
            None,
            0,
            false,
        )),
    };
    let err = run(&probe).await.unwrap_err();
    assert_eq!(err.to_string(), "status 302, expected 200-299, 304");
}

#[tokio::test]
async fn body_substring_with_content_length() {
    let member = answering(&[OK_HEAD, OK_BODY]);
    let ok = run_on(member.clone(), Some("Test Page"), 1024)
        .await
        .unwrap();
    assert_eq!(ok.status, Some(200));

    let err = run_on(member, Some("Welcome"), 1024).await.unwrap_err();
    assert!(matches!(err, ProbeFailure::Body { .. }), "{err:?}");
    assert_eq!(err.to_string(), r#"body does not contain "Welcome""#);
}

#[tokio::test]
async fn body_regex() {
    let addr = start(answering(&[
        b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nstatus ok",
    ]))
    .await;
    assert!(
        run(&http(addr, None, Some(r"^status (ok|degraded)$"), 64))
            .await
            .is_ok()
    );
    let err = run(&http(addr, None, Some(r"ok\d+"), 64))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), r"body does not match /ok\d+/");
}

#[tokio::test]
async fn chunked_body_with_the_text_split_across_chunks() {
    let member = answering(&[
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"9\r\n<h1>Test \r\n",
        b"4;x=y\r\nPage\r\n",
        b"6\r\n</h1>\n\r\n0\r\n\r\n",
    ]);
    assert!(
        run_on(member.clone(), Some("Test Page"), 1024)
            .await
            .is_ok()
    );
    // Within max_body of decoded bytes, even though the raw framing is longer.
    assert!(run_on(member.clone(), Some("Test Page"), 13).await.is_ok());
    let err = run_on(member, Some("Test Page"), 12).await.unwrap_err();
    assert!(matches!(err, ProbeFailure::Body { .. }), "{err:?}");
}

#[tokio::test]
async fn body_read_until_close() {
    let member = answering(&[b"HTTP/1.0 200 OK\r\n\r\n", b"<h1>Test ", b"Page</h1>\n"]);
    assert!(
        run_on(member.clone(), Some("Test Page"), 1024)
            .await
            .is_ok()
    );
    let err = run_on(member, Some("Welcome"), 1024).await.unwrap_err();
    assert!(matches!(err, ProbeFailure::Body { .. }), "{err:?}");
}

#[tokio::test]
async fn only_max_body_bytes_are_matched() {
    // "Test Page" sits at bytes 4000..4009 of a 5000-byte body.
    let mut body = vec![b'.'; 5000];
    body[4000..4009].copy_from_slice(b"Test Page");
    let head = b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n".to_vec();
    let member = Member::Answer(vec![head, body.clone()]);
    assert!(
        run_on(member.clone(), Some("Test Page"), 4009)
            .await
            .is_ok()
    );
    let err = run_on(member, Some("Test Page"), 4008).await.unwrap_err();
    assert!(matches!(err, ProbeFailure::Body { .. }), "{err:?}");

    // The same body until close.
    let member = Member::Answer(vec![b"HTTP/1.1 200 OK\r\n\r\n".to_vec(), body]);
    assert!(
        run_on(member.clone(), Some("Test Page"), 4009)
            .await
            .is_ok()
    );
    assert!(run_on(member, Some("Test Page"), 4000).await.is_err());
}

#[tokio::test]
async fn without_a_body_expectation_the_body_is_not_read() {
    // The member promises 100000 bytes and sends none: the probe must not wait for them.
    let member = Member::Answer(vec![
        b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n".to_vec(),
        Vec::new(),
    ]);
    let addr = start(member).await;
    let mut probe = http(addr, None, None, 1024);
    probe.timeout = Duration::from_millis(500);
    assert_eq!(run(&probe).await.unwrap().status, Some(200));
    // With reuse, the body would be read to keep the connection, but it is longer than a kept
    // connection is worth: not waited for either.
    probe.kind = ProbeKind::Http(HttpProbe::new(
        "GET",
        "/health",
        "member",
        vec![],
        None,
        None,
        1024,
        true,
    ));
    let mut state = ProbeState::default();
    assert_eq!(probe.run(&mut state).await.unwrap().status, Some(200));
    assert!(!state.is_connected());
}

#[tokio::test]
async fn a_body_cut_short_fails() {
    let member = answering(&[b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nTest Page"]);
    let err = run_on(member, Some("Test Page"), 1024).await.unwrap_err();
    assert!(matches!(err, ProbeFailure::Protocol(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "bad response: connection closed after 9 of 100 body bytes"
    );
}

#[tokio::test]
async fn a_silent_member_times_out_within_the_bound() {
    let addr = start(Member::Silent).await;
    let mut probe = http(addr, None, None, 0);
    probe.timeout = Duration::from_millis(300);
    let started = Instant::now();
    let err = run(&probe).await.unwrap_err();
    let took = started.elapsed();
    assert!(matches!(err, ProbeFailure::Timeout(_)), "{err:?}");
    assert_eq!(err.to_string(), "no answer within 300ms");
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
}

#[tokio::test]
async fn a_member_that_hangs_up_is_closed() {
    let addr = start(Member::Hangup).await;
    let err = run(&http(addr, None, None, 0)).await.unwrap_err();
    assert!(matches!(err, ProbeFailure::Closed), "{err:?}");
    assert_eq!(err.to_string(), "connection closed before a response head");
    // Half a head, then close.
    let err = run_on(answering(&[b"HTTP/1.1 200 OK\r\nContent-"]), None, 0)
        .await
        .unwrap_err();
    assert!(matches!(err, ProbeFailure::Closed), "{err:?}");
}

#[tokio::test]
async fn interim_100_continue_is_skipped() {
    let member = answering(&[
        b"HTTP/1.1 100 Continue\r\n\r\n",
        b"HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 19\r\n\r\n",
        OK_BODY,
    ]);
    let ok = run_on(member, Some("Test Page"), 1024).await.unwrap();
    assert_eq!(ok.status, Some(200));
}

#[tokio::test]
async fn garbage_is_a_protocol_failure() {
    let member = answering(&[b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n"]);
    let err = run_on(member, None, 0).await.unwrap_err();
    assert!(matches!(err, ProbeFailure::Protocol(_)), "{err:?}");
    assert!(err.to_string().starts_with("bad response: "), "{err}");
}

#[tokio::test]
async fn a_head_over_16_kib_is_a_protocol_failure() {
    let mut head = b"HTTP/1.1 200 OK\r\n".to_vec();
    for i in 0..20 {
        head.extend_from_slice(format!("X-Filler-{i:02}: {}\r\n", "a".repeat(900)).as_bytes());
    }
    head.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    assert!(head.len() > 16 * 1024);
    let err = run_on(Member::Answer(vec![head]), None, 0)
        .await
        .unwrap_err();
    assert!(matches!(err, ProbeFailure::Protocol(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "bad response: response head over 16384 bytes"
    );
}

#[tokio::test]
async fn one_buffer_serves_many_runs() {
    let ok_addr = start(answering(&[OK_HEAD, OK_BODY])).await;
    let bad_addr = start(answering(&[
        b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n",
    ]))
    .await;
    let ok = http(ok_addr, Some("Test Page"), None, 1024);
    let bad = http(bad_addr, Some("Test Page"), None, 1024);
    let mut state = ProbeState::default();
    for _ in 0..20 {
        assert!(ok.run(&mut state).await.is_ok());
        assert!(bad.run(&mut state).await.is_err());
    }
    // A small answer keeps the buffer small.
    let capacity = state.buffer_capacity();
    assert!(capacity <= 4096, "{capacity}");
}

/// (utime, stime) of the calling thread, from /proc (USER_HZ is 100 on Linux).
fn thread_cpu() -> (Duration, Duration) {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let ticks: Vec<u64> = rest
        .split(' ')
        .skip(11)
        .take(2)
        .map(|f| f.parse().unwrap())
        .collect();
    (
        Duration::from_millis(ticks[0] * 10),
        Duration::from_millis(ticks[1] * 10),
    )
}

/// The cost of one HTTP probe (connect, request, head, 2-byte body matched), sequentially against
/// a member running on its own thread. Not a test: run it by hand, in release:
/// `cargo test --release -p drover-health --test probe -- --ignored --nocapture probe_cost`
#[test]
#[ignore]
fn probe_cost() {
    const RUNS: u32 = 10_000;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let addr = start(answering(&[
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK",
            ]))
            .await;
            tx.send(addr).unwrap();
            std::future::pending::<()>().await;
        });
    });
    let addr = rx.recv().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let probe = http(addr, Some("OK"), None, 1024);
    rt.block_on(async {
        let mut state = ProbeState::default();
        for _ in 0..100 {
            probe.run(&mut state).await.unwrap();
        }
        let (wall, (user0, sys0)) = (Instant::now(), thread_cpu());
        for _ in 0..RUNS {
            probe.run(&mut state).await.unwrap();
        }
        let (wall, (user1, sys1)) = (wall.elapsed(), thread_cpu());
        let per_probe = |d: Duration| d.as_secs_f64() * 1e6 / f64::from(RUNS);
        println!(
            "{RUNS} sequential HTTP probes: {:.1} us/probe wall; CPU of the probing thread \
             {:.1} us/probe ({:.1} user + {:.1} system)",
            per_probe(wall),
            per_probe(user1 - user0 + sys1 - sys0),
            per_probe(user1 - user0),
            per_probe(sys1 - sys0),
        );
    });
}
