//! The agent over real sockets and real processes: its agent-check port read by a raw TCP client,
//! its HTTP report, signed pushes to a hyper server in the test (checked with drover-core's own
//! `verify` and `parse_json`), backoff and recovery against a node answering 500, a hanging node
//! that delays no other, a failing health script, and custom metrics that fail.
//!
//! Waits are deadline-bounded (a channel receive under a timeout); nothing sleeps hoping for an
//! outcome. Timing assertions are lower bounds only (a timer never fires early), plus orderings.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use drover_agent::{Agent, Config, MetricSource, MetricSpec, push::Target};
use drover_core::report::push::{ReplayGuard, parse_json, verify};
use drover_core::report::{AgentState, agent_check};
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode, body::Incoming};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

const SECRET: &[u8] = b"test-secret";
const DEADLINE: Duration = Duration::from_secs(20);

fn temp_path(tag: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("drover-agent-{}-{n}-{tag}", std::process::id()))
}

/// Writes an executable script. A child shell writes it, not this process: if this process held
/// the file open for writing while another test forked, the fork could inherit that descriptor
/// and the script's exec would fail with "Text file busy".
fn script(tag: &str, body: &str) -> PathBuf {
    let path = temp_path(tag);
    let status = std::process::Command::new("sh")
        .args(["-c", "printf '%s' \"$1\" > \"$0\" && chmod 755 \"$0\""])
        .arg(&path)
        .arg(format!("#!/bin/sh\n{body}\n"))
        .status()
        .unwrap();
    assert!(status.success());
    path
}

fn cmd(name: &str, command: &str) -> MetricSpec {
    MetricSpec {
        name: name.into(),
        source: MetricSource::Command(command.into()),
    }
}

/// One push as the test node saw it.
struct Seen {
    at: Instant,
    path: String,
    timestamp: String,
    signature: String,
    body: Bytes,
}

/// A drover node stand-in: records every request and answers `status(n)` to the n-th (from 0).
async fn node(
    status: impl Fn(usize) -> StatusCode + Send + Sync + 'static,
) -> (SocketAddr, mpsc::UnboundedReceiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let status = Arc::new(status);
    let count = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (tx, status, count) = (tx.clone(), Arc::clone(&status), Arc::clone(&count));
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let (tx, status, count) = (tx.clone(), Arc::clone(&status), Arc::clone(&count));
                    async move {
                        let at = Instant::now();
                        let header = |n: &str| {
                            req.headers()
                                .get(n)
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_owned()
                        };
                        let (timestamp, signature) =
                            (header("x-drover-timestamp"), header("x-drover-signature"));
                        let path = req.uri().path().to_owned();
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let n = count.fetch_add(1, Ordering::SeqCst);
                        let _ = tx.send(Seen {
                            at,
                            path,
                            timestamp,
                            signature,
                            body,
                        });
                        let mut res = Response::new(Full::new(Bytes::from_static(b"ok\n")));
                        *res.status_mut() = status(n);
                        Ok::<_, Infallible>(res)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, rx)
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    tokio::time::timeout(DEADLINE, rx.recv())
        .await
        .expect("no push within the deadline")
        .expect("node stopped")
}

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn pushing(addrs: &[SocketAddr], interval: Duration) -> Config {
    let mut config = Config::new("m1");
    config.interval = interval;
    config.secret = SECRET.to_vec();
    config.push = addrs
        .iter()
        .map(|a| Target::parse(&format!("http://{a}")).unwrap())
        .collect();
    config
}

/// Reads everything the agent-check port sends, after sending `send` (if any).
async fn read_agent(addr: SocketAddr, send: Option<&[u8]>) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    if let Some(send) = send {
        stream.write_all(send).await.unwrap();
    }
    let mut out = Vec::new();
    tokio::time::timeout(DEADLINE, stream.read_to_end(&mut out))
        .await
        .expect("the agent-check port did not close")
        .unwrap();
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn agent_check_port_answers_one_line_a_raw_client_can_parse() {
    let mut config = Config::new("m1");
    config.agent_check = Some("127.0.0.1:0".parse().unwrap());
    let agent = Agent::start(config).await.unwrap();
    let addr = agent.agent_check_addr.unwrap();

    // Sends nothing: the reply must not wait for the client.
    let line = read_agent(addr, None).await;
    assert_eq!(line.matches('\n').count(), 1, "{line:?}");
    assert!(line.ends_with('\n') && line.starts_with("up "), "{line:?}");
    let report = agent_check::parse(&line, "m1", 0).unwrap();
    assert_eq!(report.health, Some(AgentState::Up));
    let weight = report.weight_pct.unwrap();
    assert!((1..=100).contains(&weight), "{line:?}");
    let cpu: f64 = report
        .reason
        .as_deref()
        .and_then(|r| r.strip_prefix("cpu "))
        .unwrap()
        .parse()
        .unwrap();
    assert!((0.0..=1.0).contains(&cpu), "{line:?}");
    assert_eq!(line, agent.snapshot().line);

    // HAProxy's agent-send line: read and ignored; the same reply comes, no reset.
    let line = read_agent(addr, Some(b"hello from haproxy\n")).await;
    assert!(agent_check::parse(&line, "m1", 0).is_ok(), "{line:?}");
}

#[tokio::test]
async fn http_pull_answers_the_push_body() {
    let mut config = Config::new("m1");
    config.http = Some("127.0.0.1:0".parse().unwrap());
    config.metrics = vec![cmd("x", "echo 7")];
    let agent = Agent::start(config).await.unwrap();
    let addr = agent.http_addr.unwrap();
    for path in ["/", "/report"] {
        let response = read_agent(
            addr,
            Some(format!("GET {path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").as_bytes()),
        )
        .await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        let body = response.split("\r\n\r\n").nth(1).unwrap();
        let report = parse_json(body.as_bytes(), 0).unwrap().remove(0);
        assert_eq!(report.member, "m1");
        assert_eq!(report.metrics.get("x"), Some(7.0));
    }
    let response = read_agent(
        addr,
        Some(b"GET /nope HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"),
    )
    .await;
    assert!(response.starts_with("HTTP/1.1 404"), "{response}");
}

#[tokio::test]
async fn pushes_are_signed_and_parse_on_the_node() {
    let (addr, mut rx) = node(|_| StatusCode::NO_CONTENT).await;
    let mut config = pushing(&[addr], Duration::from_millis(100));
    config.metrics = vec![cmd("x", "echo 7")];
    let _agent = Agent::start(config).await.unwrap();
    let guard = ReplayGuard::default();
    for _ in 0..3 {
        let seen = next(&mut rx).await;
        assert_eq!(seen.path, "/api/v1/reports");
        verify(
            SECRET,
            &seen.timestamp,
            &seen.signature,
            &seen.body,
            now_unix(),
            Duration::from_secs(30),
            &guard,
        )
        .unwrap_or_else(|e| panic!("{e}: {:?}", seen.body));
        let report = parse_json(&seen.body, 0).unwrap().remove(0);
        assert_eq!(report.member, "m1");
        assert_eq!(report.health, Some(AgentState::Up));
        assert_eq!(report.metrics.get("x"), Some(7.0));
        let cpu = report.metrics.get("cpu").unwrap();
        assert!((0.0..=1.0).contains(&cpu));
        for name in ["load1", "load5", "load15", "mem", "tcp", "procs"] {
            assert!(report.metrics.get(name).is_some(), "{name} missing");
        }
        // A wrong secret does not verify.
        assert!(
            verify(
                b"other",
                &seen.timestamp,
                &seen.signature,
                &seen.body,
                now_unix(),
                Duration::from_secs(30),
                &ReplayGuard::default(),
            )
            .is_err()
        );
    }
}

#[tokio::test]
async fn a_failing_node_gets_backoff_then_the_interval_again() {
    let interval = Duration::from_millis(100);
    // 500 to the first three pushes, then 200.
    let (addr, mut rx) = node(|n| {
        if n < 3 {
            StatusCode::INTERNAL_SERVER_ERROR
        } else {
            StatusCode::OK
        }
    })
    .await;
    let _agent = Agent::start(pushing(&[addr], interval)).await.unwrap();
    let mut at = Vec::new();
    for _ in 0..6 {
        at.push(next(&mut rx).await.at);
    }
    let gaps: Vec<Duration> = at.windows(2).map(|w| w[1] - w[0]).collect();
    // After failures 1, 2, 3: at least 2x, 4x, 8x the interval, less 10% jitter.
    for (i, want) in [180, 360, 720].into_iter().enumerate() {
        assert!(
            gaps[i] >= Duration::from_millis(want),
            "gap {i} = {:?}, want >= {want}ms ({gaps:?})",
            gaps[i]
        );
    }
    // Each backoff longer than the one before, and after the first success (push 4) the pace is
    // back to about the interval: shorter than the last backoff.
    assert!(gaps[0] < gaps[1] && gaps[1] < gaps[2], "{gaps:?}");
    assert!(gaps[3] < gaps[2] && gaps[4] < gaps[2], "{gaps:?}");
}

#[tokio::test]
async fn a_hanging_node_delays_no_other_node() {
    // Accepts connections and never answers.
    let hang = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hang_addr = hang.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut streams = Vec::new();
        while let Ok((s, _)) = hang.accept().await {
            streams.push(s);
        }
    });
    let (good, mut rx) = node(|_| StatusCode::OK).await;
    let mut config = pushing(&[hang_addr, good], Duration::from_millis(100));
    config.push_timeout = Duration::from_secs(10);
    let _agent = Agent::start(config).await.unwrap();
    let start = Instant::now();
    for _ in 0..4 {
        next(&mut rx).await;
    }
    // Four pushes to the good node while the hanging one has not even timed out once.
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    held.abort();
}

/// Whether a live process runs `sleep <arg>` (a zombie has an empty cmdline).
fn sleeping(arg: &str) -> bool {
    let want = format!("sleep\0{arg}\0");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(Result::ok)
        .any(|e| std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == want.as_bytes()))
}

#[tokio::test]
async fn a_failing_health_script_reports_down_with_its_first_line() {
    let mut config = Config::new("m1");
    config.health_script = Some(script(
        "health-fail",
        "echo '  disk full on /var \t '; echo 'second line'; exit 2",
    ));
    let snapshot = drover_agent::run_once(&config).await;
    assert_eq!(snapshot.report.health, Some(AgentState::Down));
    assert_eq!(snapshot.report.reason.as_deref(), Some("disk full on /var"));
    let line = agent_check::parse(&snapshot.line, "m1", 0).unwrap();
    assert_eq!(line.health, Some(AgentState::Down));
    assert_eq!(line.reason.as_deref(), Some("disk full on /var"));
    let pushed = parse_json(snapshot.json.as_bytes(), 0).unwrap().remove(0);
    assert_eq!(pushed.health, Some(AgentState::Down));
    assert_eq!(pushed.reason.as_deref(), Some("disk full on /var"));

    // Silent failure: the exit status is the reason.
    config.health_script = Some(script("health-silent", "exit 3"));
    let snapshot = drover_agent::run_once(&config).await;
    assert_eq!(
        snapshot.report.reason.as_deref(),
        Some("health script exited with status 3")
    );

    // A script that hangs is down after the timeout, and its child is gone with it.
    let marker = format!(
        "{}.{}",
        4000 + std::process::id() % 1000,
        std::process::id()
    );
    config.health_script = Some(script("health-hang", &format!("sleep {marker} & wait")));
    config.timeout = Duration::from_millis(300);
    let start = Instant::now();
    let snapshot = drover_agent::run_once(&config).await;
    assert!(start.elapsed() < Duration::from_secs(5));
    assert_eq!(snapshot.report.health, Some(AgentState::Down));
    assert!(
        snapshot
            .report
            .reason
            .as_deref()
            .unwrap()
            .contains("timed out"),
        "{:?}",
        snapshot.report.reason
    );

    // The script's own child (`sleep`) was killed with its process group.
    let deadline = Instant::now() + Duration::from_secs(10);
    while sleeping(&marker) {
        assert!(
            Instant::now() < deadline,
            "the health script's sleep {marker} survived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    config.health_script = Some(script("health-ok", "echo fine"));
    let snapshot = drover_agent::run_once(&config).await;
    assert_eq!(snapshot.report.health, Some(AgentState::Up));
    assert_eq!(snapshot.report.reason, None);
}

#[tokio::test]
async fn custom_metrics_that_fail_are_left_out() {
    let file = temp_path("metric");
    std::fs::write(&file, "0.5\n").unwrap();
    let mut config = Config::new("m1");
    config.timeout = Duration::from_millis(300);
    config.metrics = vec![
        cmd("good", "echo 7"),
        cmd("junk", "echo hello"),
        cmd("two", "echo 1 2"),
        cmd("fails", "echo 5; exit 3"),
        cmd("slow", "sleep 5; echo 1"),
        cmd("rps", "echo -1"),
        MetricSpec {
            name: "queue_depth".into(),
            source: MetricSource::File(file.clone()),
        },
        MetricSpec {
            name: "missing".into(),
            source: MetricSource::File(temp_path("nonexistent")),
        },
    ];
    let start = Instant::now();
    let snapshot = drover_agent::run_once(&config).await;
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    let m = &snapshot.report.metrics;
    assert_eq!(m.get("good"), Some(7.0));
    assert_eq!(m.get("queue_depth"), Some(0.5));
    for left_out in ["junk", "two", "fails", "slow", "rps", "missing"] {
        assert_eq!(m.get(left_out), None, "{left_out}");
    }
    let pushed = parse_json(snapshot.json.as_bytes(), 0).unwrap().remove(0);
    assert_eq!(&pushed.metrics, m);
    let _ = std::fs::remove_file(file);
}
