//! Sleepy members over real sockets: queueing, seeds, stalls, episodes, the true queue counter,
//! failures, hidden load, and the three ways of reporting load, parsed by drover-core's parsers.
//! Timing checks are lower bounds only (a sleep is never shorter than asked), so a loaded machine
//! cannot make them fail.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::time::{Duration, Instant};

use bytes::Bytes;
use drover_core::report::push::{ReplayGuard, parse_json, verify};
use drover_core::report::{agent_check, orca};
use drover_testkit::sleepy::{Push, X_DROVER_SERVICE};
use drover_testkit::{SleepyConfig, SleepyMember};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

use crate::common::*;

const MS: Duration = Duration::from_millis(1);

async fn get_seeded(addr: SocketAddr, seed: Option<u64>) -> Reply {
    let mut sender = connect(addr).await;
    let mut req = Request::get("/").header("host", addr.to_string());
    if let Some(s) = seed {
        req = req.header("x-drover-seed", s.to_string());
    }
    send(&mut sender, req.body(Empty::new().boxed()).unwrap()).await
}

fn service_of(r: &Reply) -> Duration {
    let us: u64 = r.headers[X_DROVER_SERVICE]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    Duration::from_micros(us)
}

#[tokio::test]
async fn with_one_worker_the_second_request_waits() {
    let m = SleepyMember::start(SleepyConfig::new("q").workers(1).service(300 * MS, 0.0))
        .await
        .unwrap();
    let addr = m.addr();
    let t0 = Instant::now();
    let a = tokio::spawn(async move { (get_seeded(addr, Some(1)).await, Instant::now()) });
    let b = tokio::spawn(async move { (get_seeded(addr, Some(2)).await, Instant::now()) });
    eventually("both queued, one in service", || {
        m.queue_len() == 2 && m.busy() == 1
    })
    .await;
    let (ra, ta) = a.await.unwrap();
    let (rb, tb) = b.await.unwrap();
    assert_eq!(ra.status, StatusCode::OK);
    assert_eq!(ra.headers["x-member"], "q");
    assert_eq!(service_of(&ra), 300 * MS);
    assert_eq!(service_of(&rb), 300 * MS);
    let last = ta.max(tb) - t0;
    assert!(
        last >= 600 * MS,
        "the second waited for the first: {last:?}"
    );
    eventually("queue empty", || m.queue_len() == 0 && m.busy() == 0).await;
    assert_eq!(m.served(), 2);
}

#[tokio::test]
async fn same_seed_same_service_time_on_any_member_scaled_by_speed() {
    let a = SleepyMember::start(SleepyConfig::new("a").service(5 * MS, 1.0))
        .await
        .unwrap();
    let b = SleepyMember::start(SleepyConfig::new("b").service(5 * MS, 1.0))
        .await
        .unwrap();
    let slow = SleepyMember::start(SleepyConfig::new("s").service(5 * MS, 1.0).speed(3.0))
        .await
        .unwrap();
    for seed in [1u64, 77, 123_456_789] {
        let ra = service_of(&get_seeded(a.addr(), Some(seed)).await);
        let rb = service_of(&get_seeded(b.addr(), Some(seed)).await);
        let rs = service_of(&get_seeded(slow.addr(), Some(seed)).await);
        assert_eq!(ra, rb, "seed {seed}");
        let ratio = rs.as_secs_f64() / ra.as_secs_f64();
        assert!((ratio - 3.0).abs() < 0.01, "seed {seed}: {ra:?} vs {rs:?}");
    }
    let r1 = service_of(&get_seeded(a.addr(), Some(1)).await);
    let r2 = service_of(&get_seeded(a.addr(), Some(2)).await);
    assert_ne!(r1, r2);
    // No header: the member draws a seed of its own.
    assert_eq!(get_seeded(a.addr(), None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_stall_stretches_the_job_in_service() {
    // Freezes of 500 ms every 600 ms (the first at 600 ms): no free stretch is longer than
    // 600 ms, so a 700 ms job sits through at least one freeze.
    let cfg = SleepyConfig::new("st")
        .workers(1)
        .service(700 * MS, 0.0)
        .stall(600 * MS, 500 * MS);
    let m = SleepyMember::start(cfg).await.unwrap();
    let t0 = Instant::now();
    let r = get_seeded(m.addr(), Some(5)).await;
    assert!(service_of(&r) >= 1200 * MS, "{:?}", service_of(&r));
    assert!(t0.elapsed() >= 1200 * MS);
}

#[tokio::test]
async fn an_episode_replaces_the_service_time() {
    let cfg = SleepyConfig::new("ep").service(MS, 0.0).episode(
        Duration::ZERO,
        Duration::from_secs(60),
        50 * MS,
    );
    let m = SleepyMember::start(cfg).await.unwrap();
    assert_eq!(service_of(&get_seeded(m.addr(), Some(1)).await), 50 * MS);
}

#[tokio::test]
async fn degradation_grows_with_busy_workers() {
    let cfg = SleepyConfig::new("dg")
        .workers(8)
        .service(200 * MS, 0.0)
        .degrade(0.1, 0.05);
    let m = SleepyMember::start(cfg).await.unwrap();
    let addr = m.addr();
    let tasks: Vec<_> = (0..8)
        .map(|i| tokio::spawn(async move { service_of(&get_seeded(addr, Some(i)).await) }))
        .collect();
    let mut longest = Duration::ZERO;
    for t in tasks {
        longest = longest.max(t.await.unwrap());
    }
    // The last of 8 concurrent jobs starts with at least 2 busy: factor >= 1.2.
    assert!(longest >= 240 * MS, "{longest:?}");
}

#[tokio::test]
async fn the_shared_counter_is_the_true_queue() {
    let m = SleepyMember::start(SleepyConfig::new("tq").workers(2).service(400 * MS, 0.0))
        .await
        .unwrap();
    let queue = m.queue();
    let addr = m.addr();
    let tasks: Vec<_> = (0..5)
        .map(|i| tokio::spawn(async move { get_seeded(addr, Some(i)).await }))
        .collect();
    eventually("five in the queue, two in service", || {
        queue.load(Relaxed) == 5 && m.busy() == 2
    })
    .await;
    for t in tasks {
        assert_eq!(t.await.unwrap().status, StatusCode::OK);
    }
    eventually("queue drained", || queue.load(Relaxed) == 0).await;
}

#[tokio::test]
async fn failures_answer_503_at_once() {
    let m = SleepyMember::start(SleepyConfig::new("f").fail_rate(1.0))
        .await
        .unwrap();
    let r = get_seeded(m.addr(), Some(3)).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(m.failed(), 1);
    assert_eq!(m.served(), 0);
}

#[tokio::test]
async fn hidden_load_enters_the_queue() {
    let cfg = SleepyConfig::new("h")
        .workers(1)
        .service(50 * MS, 0.0)
        .hidden(200.0, Duration::from_secs(60), Duration::ZERO);
    let m = SleepyMember::start(cfg).await.unwrap();
    let queue = m.queue();
    eventually("hidden jobs queue up", || queue.load(Relaxed) >= 3).await;
    eventually("hidden jobs are served", || m.hidden_served() >= 2).await;
    assert_eq!(m.served(), 0, "hidden jobs are not counted as requests");
    eventually("utilisation seen", || m.utilization() > 0.5).await;
}

#[tokio::test]
async fn orca_header_parses_with_drovers_parser() {
    let m = SleepyMember::start(SleepyConfig::new("o").service(MS, 0.0).orca(true))
        .await
        .unwrap();
    let r = get_seeded(m.addr(), Some(1)).await;
    let value = r.headers["endpoint-load-metrics"].as_bytes();
    let report = orca::parse(value, "o", 0).unwrap();
    let cpu = report.metrics.get("cpu").unwrap();
    assert!((0.0..=1.0).contains(&cpu));
    assert_eq!(report.metrics.get("queue"), Some(0.0));
}

#[tokio::test]
async fn agent_check_line_parses_with_drovers_parser() {
    let m = SleepyMember::start(SleepyConfig::new("ag").agent(true))
        .await
        .unwrap();
    let mut s = TcpStream::connect(m.agent_addr().unwrap()).await.unwrap();
    let mut line = String::new();
    tokio::time::timeout(DEADLINE, s.read_to_string(&mut line))
        .await
        .unwrap()
        .unwrap();
    let report = agent_check::parse(&line, "ag", 0).unwrap();
    assert_eq!(report.weight_pct, Some(100), "idle member: {line:?}");
    assert!(report.health.is_some());
}

#[tokio::test]
async fn pushes_are_signed_and_parse_with_drovers_parser() {
    let secret = b"0123456789abcdef0123".to_vec();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = listener.local_addr().unwrap();
    let good = Arc::new(AtomicU64::new(0));
    let bad = Arc::new(AtomicUsize::new(0));
    // Pushes 20 ms apart with the same load: distinct messages thanks to the millisecond
    // timestamp, so drover's replay guard accepts each.
    let guard = Arc::new(ReplayGuard::default());
    {
        let (good, bad, secret) = (Arc::clone(&good), Arc::clone(&bad), secret.clone());
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let (good, bad, secret, guard) = (
                    Arc::clone(&good),
                    Arc::clone(&bad),
                    secret.clone(),
                    Arc::clone(&guard),
                );
                let svc = service_fn(move |req: Request<Incoming>| {
                    let (good, bad, secret, guard) = (
                        Arc::clone(&good),
                        Arc::clone(&bad),
                        secret.clone(),
                        Arc::clone(&guard),
                    );
                    async move {
                        assert_eq!(req.uri().path(), "/api/v1/reports");
                        let h = req.headers().clone();
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let ts = h["x-drover-timestamp"].to_str().unwrap();
                        let sig = h["x-drover-signature"].to_str().unwrap();
                        let now = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .unwrap()
                            .as_secs();
                        let ok = verify(&secret, ts, sig, &body, now, 30 * 1000 * MS, &guard)
                            .is_ok()
                            && parse_json(&body, 0).is_ok_and(|r| {
                                r[0].member == "p" && r[0].metrics.get("cpu").is_some()
                            });
                        if ok {
                            good.fetch_add(1, Relaxed);
                        } else {
                            bad.fetch_add(1, Relaxed);
                        }
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from("ok"))))
                    }
                });
                tokio::spawn(http1::Builder::new().serve_connection(TokioIo::new(stream), svc));
            }
        });
    }
    let push = Push {
        targets: vec![admin],
        secret,
        interval: 20 * MS,
    };
    let m = SleepyMember::start(SleepyConfig::new("p").push(push))
        .await
        .unwrap();
    eventually("three good pushes", || good.load(Relaxed) >= 3).await;
    assert_eq!(
        bad.load(Relaxed),
        0,
        "every push is well signed and well formed"
    );
    eventually("the member counts them", || m.pushes_ok() >= 3).await;
    assert_eq!(m.pushes_failed(), 0, "{:?}", m.last_push_error());
}

#[tokio::test]
async fn the_probe_knows_the_episode_in_force_and_the_queue() {
    let cfg = SleepyConfig::new("pr")
        .workers(1)
        .service(20 * MS, 0.0)
        .episode(Duration::ZERO, Duration::from_secs(60), 300 * MS);
    let m = SleepyMember::start(cfg).await.unwrap();
    let probe = m.probe();
    assert!((probe.expected_response() - 0.3).abs() < 1e-9);
    let addr = m.addr();
    let job = tokio::spawn(async move { get_seeded(addr, Some(1)).await });
    eventually("one job in the queue", || probe.queue_len() == 1).await;
    // The only worker is busy: wait for it (300 ms), then 300 ms of service.
    assert!((probe.expected_response() - 0.6).abs() < 1e-9);
    assert_eq!(job.await.unwrap().status, StatusCode::OK);
    let plain = SleepyMember::start(SleepyConfig::new("pl").service(20 * MS, 0.0))
        .await
        .unwrap();
    assert!((plain.probe().expected_response() - 0.02).abs() < 1e-9);
}
