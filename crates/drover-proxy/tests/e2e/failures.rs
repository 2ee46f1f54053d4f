//! Members that die, refuse, hang or are all unavailable.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::*;

#[tokio::test]
async fn a_member_killed_mid_test_costs_no_client_an_error() {
    let mut ms = start(&["a", "b", "c"]).await;
    let proxy = drover(&simple_config(
        "round-robin",
        &ms.iter().collect::<Vec<_>>(),
    ));
    let addr = proxy.addr();
    let done = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let done = Arc::clone(&done);
            tokio::spawn(async move {
                let mut conn = connect(addr).await;
                let mut errors = Vec::new();
                for _ in 0..150 {
                    match try_send(&mut conn, get_request(addr, "/")).await {
                        Ok(r) if r.status == 200 => {}
                        Ok(r) => errors.push(format!("{} {}", r.status, r.text())),
                        Err(e) => errors.push(e.to_string()),
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
                errors
            })
        })
        .collect();
    let watched = Arc::clone(&done);
    eventually("a third of the load has run", move || {
        watched.load(Ordering::Relaxed) >= 200
    })
    .await;
    let done_at_kill = done.load(Ordering::Relaxed);
    let victim = ms.remove(1);
    let victim_requests_at_kill = victim.requests();
    victim.kill().await;
    let mut errors = Vec::new();
    for c in clients {
        errors.extend(c.await.unwrap());
    }
    assert!(
        errors.is_empty(),
        "clients saw errors after the kill: {errors:?}"
    );
    assert!(done_at_kill < 600, "the kill happened mid-test");
    assert!(victim_requests_at_kill > 0);
    // The survivors took the rest.
    assert_eq!(
        ms[0].requests() + ms[1].requests() + victim_requests_at_kill,
        600,
        "every request answered once... or retried"
    );
}

#[tokio::test]
async fn connect_refused_is_retried_on_another_member() {
    let live = TestMember::start(MemberConfig::new("live")).await.unwrap();
    let dead = TestMember::start(MemberConfig::new("dead")).await.unwrap();
    let dead_addr = dead.addr();
    dead.kill().await;
    assert_refused(dead_addr).await;
    let toml = format!(
        "[[listener]]\nlisten = \"127.0.0.1:0\"\nfarm = \"app\"\n[farm.app]\n\
         [[farm.app.members]]\nname = \"dead\"\naddress = \"{dead_addr}\"\n\
         [[farm.app.members]]\nname = \"live\"\naddress = \"{}\"\n",
        live.addr()
    );
    let proxy = drover(&toml);
    let got = tally(proxy.addr(), "/", 20).await;
    assert_eq!(got.get("live"), Some(&20), "{got:?}");
    let routing = proxy.routing();
    let dead_member = routing.farm("app").unwrap().farm.member("dead").unwrap();
    assert!(
        dead_member.stats.requests() == 0,
        "a refused connect never counts as a sent request"
    );
}

/// Every member refusing the connection means the farm cannot serve: its outage action answers
/// (like HAProxy, which answers 503 when no server could take the connection), not a 502.
#[tokio::test]
async fn every_member_refusing_runs_the_outage_action() {
    let dead = TestMember::start(MemberConfig::new("dead")).await.unwrap();
    let addr = dead.addr();
    dead.kill().await;
    let toml = format!(
        "[[listener]]\nlisten = \"127.0.0.1:0\"\nfarm = \"app\"\n[farm.app]\n[[farm.app.members]]\naddress = \"{addr}\"\n"
    );
    let proxy = drover(&toml);
    let r = get(proxy.addr(), "/").await;
    assert_eq!(r.status, 503);
    assert!(r.text().contains("no server is available"), "{}", r.text());
}

#[tokio::test]
async fn a_hanging_member_is_a_504_after_first_byte_timeout() {
    let m = TestMember::start(MemberConfig::new("stuck").hang(true))
        .await
        .unwrap();
    let toml = format!(
        "[[listener]]\nlisten = \"127.0.0.1:0\"\nfarm = \"app\"\n[farm.app]\nfirst_byte_timeout = \"300ms\"\n{}",
        members_toml("app", &[&m], |_| String::new())
    );
    let proxy = drover(&toml);
    let t = Instant::now();
    let r = get(proxy.addr(), "/").await;
    assert_eq!(r.status, 504, "{}", r.text());
    assert!(r.text().contains("did not answer in time"));
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert_eq!(
        m.requests(),
        1,
        "a timeout is not retried: the member may still be working"
    );
}

fn outage_config(member: &TestMember, outage: &str) -> String {
    format!(
        "[[listener]]\nlisten = \"127.0.0.1:0\"\nfarm = \"app\"\n[farm.app]\n{}\n[farm.app.outage]\n{outage}\n",
        members_toml("app", &[member], |_| "enabled = false".into())
    )
}

#[tokio::test]
async fn outage_page() {
    let m = TestMember::start(MemberConfig::new("off")).await.unwrap();
    let proxy = drover(&outage_config(
        &m,
        "page = { status = 503, body = \"back soon\", content_type = \"text/html\" }",
    ));
    let r = get(proxy.addr(), "/").await;
    assert_eq!(r.status, 503);
    assert_eq!(r.text(), "back soon");
    assert_eq!(r.headers["content-type"], "text/html");
    assert_eq!(m.requests(), 0, "a disabled member is never chosen");
}

#[tokio::test]
async fn outage_redirect() {
    let m = TestMember::start(MemberConfig::new("off")).await.unwrap();
    let proxy = drover(&outage_config(
        &m,
        "redirect = \"https://status.example.com/\"",
    ));
    let r = get(proxy.addr(), "/").await;
    assert_eq!(r.status, 302);
    assert_eq!(r.headers["location"], "https://status.example.com/");
}

#[tokio::test]
async fn outage_sorry_member() {
    let m = TestMember::start(MemberConfig::new("off")).await.unwrap();
    let sorry = TestMember::start(MemberConfig::new("sorry")).await.unwrap();
    let proxy = drover(&outage_config(&m, &format!("sorry = \"{}\"", sorry.addr())));
    let r = get(proxy.addr(), "/echo").await;
    assert_eq!(r.status, 200);
    assert_eq!(member_of(&r), "sorry");
    assert!(
        r.text().contains("x-forwarded-for: 127.0.0.1"),
        "the sorry member gets forwarded requests: {}",
        r.text()
    );
    assert_eq!(m.requests(), 0);
}

#[tokio::test]
async fn max_connections_caps_member_connections() {
    let m = TestMember::start(
        MemberConfig::new("m").latency(Latency::Fixed(Duration::from_millis(20))),
    )
    .await
    .unwrap();
    let toml = format!(
        "[[listener]]\nlisten = \"127.0.0.1:0\"\nfarm = \"app\"\n[farm.app]\nmax_connections = 2\n{}",
        members_toml("app", &[&m], |_| String::new())
    );
    let proxy = drover(&toml);
    let addr = proxy.addr();
    let clients: Vec<_> = (0..8)
        .map(|_| {
            tokio::spawn(async move {
                let mut conn = connect(addr).await;
                for _ in 0..5 {
                    let r = send(&mut conn, get_request(addr, "/")).await;
                    assert_eq!(r.status, 200, "{}", r.text());
                }
            })
        })
        .collect();
    for c in clients {
        c.await.unwrap();
    }
    assert_eq!(m.requests(), 40);
    assert!(
        m.connections() <= 2,
        "member saw {} connections with max_connections = 2",
        m.connections()
    );
}

#[tokio::test]
async fn a_response_body_that_stalls_is_cut_off_after_idle_timeout() {
    let m = TestMember::start(MemberConfig::new("m")).await.unwrap();
    let toml = format!(
        "[[listener]]\nlisten = \"127.0.0.1:0\"\nfarm = \"app\"\n[farm.app]\nidle_timeout = \"300ms\"\n{}",
        members_toml("app", &[&m], |_| String::new())
    );
    let proxy = drover(&toml);
    let t = Instant::now();
    let mut conn = connect(proxy.addr()).await;
    let cut = tokio::time::timeout(
        DEADLINE,
        try_send(&mut conn, get_request(proxy.addr(), "/stall?bytes=1000")),
    )
    .await;
    let err = cut.expect("drover cuts a stalled body off well before the test deadline");
    assert!(
        err.is_err(),
        "the client must see the body end early, not a complete response"
    );
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "cut off after {:?}",
        t.elapsed()
    );
    let routing = proxy.routing();
    let member = &routing.farm("app").unwrap().farm.members[0];
    eventually("the cut-off exchange counts as a failure", || {
        member.stats.failures() == 1
    })
    .await;
    assert_eq!(get(proxy.addr(), "/").await.status, 200, "still serving");
}

#[tokio::test]
async fn total_timeout_bounds_the_whole_exchange() {
    let m = TestMember::start(MemberConfig::new("m")).await.unwrap();
    let toml = format!(
        "[[listener]]\nlisten = \"127.0.0.1:0\"\nfarm = \"app\"\n[farm.app]\ntotal_timeout = \"400ms\"\n{}",
        members_toml("app", &[&m], |_| String::new())
    );
    let proxy = drover(&toml);
    let r = get(proxy.addr(), "/slow?ms=3000").await;
    assert_eq!(r.status, 504);
    assert!(r.text().contains("ran out of time"), "{}", r.text());
    let mut conn = connect(proxy.addr()).await;
    let cut = tokio::time::timeout(
        DEADLINE,
        try_send(&mut conn, get_request(proxy.addr(), "/stall?bytes=10")),
    )
    .await;
    assert!(cut.expect("cut off in time").is_err());
}

#[tokio::test]
async fn a_slow_upload_is_not_a_first_byte_timeout_and_an_early_answer_does_not_poison_the_pool() {
    use bytes::Bytes;
    use futures_util::StreamExt;
    use http_body_util::{BodyExt, StreamBody};
    let m = TestMember::start(MemberConfig::new("m")).await.unwrap();
    let toml = format!(
        "[[listener]]\nlisten = \"127.0.0.1:0\"\nfarm = \"app\"\n[farm.app]\nfirst_byte_timeout = \"300ms\"\n{}",
        members_toml("app", &[&m], |_| String::new())
    );
    let proxy = drover(&toml);
    // 12 chunks, 60 ms apart: the upload alone lasts ~720 ms, more than twice first_byte_timeout.
    let chunks = futures_util::stream::iter(0..12).then(|_| async {
        tokio::time::sleep(Duration::from_millis(60)).await;
        Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from(vec![b'x'; 1000])))
    });
    let req = http::Request::post("/upload")
        .header("host", "a")
        .body(BodyExt::boxed(StreamBody::new(chunks)))
        .unwrap();
    let r = send(&mut connect(proxy.addr()).await, req).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "m 12000\n", "the member got the whole body");

    // A member that answers a POST at once (/status/413) without reading its body: the next
    // request must not be sent on that connection while hyper is still writing the upload.
    let big = futures_util::stream::iter(0..20).then(|_| async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from(vec![b'y'; 1000])))
    });
    let req = http::Request::post("/status/413")
        .header("host", "a")
        .body(BodyExt::boxed(StreamBody::new(big)))
        .unwrap();
    let mut c = connect(proxy.addr()).await;
    let early = tokio::spawn(async move { try_send(&mut c, req).await.map(|r| r.status) });
    eventually("the member answered the POST", || m.requests() >= 2).await;
    let t = Instant::now();
    let r = get(proxy.addr(), "/").await;
    assert_eq!(r.status, 200);
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "a GET waited {:?} behind an upload",
        t.elapsed()
    );
    let _ = early.await;
}
