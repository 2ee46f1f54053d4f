//! Retries after a request was sent: which failures, which methods, which bodies, and the budget.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};

use crate::common::*;

/// Two members `a` (first in round robin) and `b`; `a` hangs when `hang`.
async fn pair(hang: bool) -> (TestMember, TestMember) {
    let a = TestMember::start(MemberConfig::new("a").hang(hang))
        .await
        .unwrap();
    let b = TestMember::start(MemberConfig::new("b")).await.unwrap();
    (a, b)
}

fn config(a: &TestMember, b: &TestMember, farm_keys: &str, route_keys: &str) -> String {
    format!(
        "[[listener]]\nlisten = \"127.0.0.1:0\"\n[[listener.route]]\nfarm = \"app\"\n{route_keys}\n\n\
         [farm.app]\npolicy = \"round-robin\"\nfirst_byte_timeout = \"300ms\"\n{farm_keys}\n{}",
        members_toml("app", &[a, b], |_| String::new())
    )
}

async fn send_body(addr: std::net::SocketAddr, method: &str, path: &str, body: Vec<u8>) -> Reply {
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string())
        .body(Full::new(Bytes::from(body)).boxed())
        .unwrap();
    send(&mut connect(addr).await, req).await
}

#[tokio::test]
async fn a_put_with_a_small_body_is_replayed_on_another_member_after_a_timeout() {
    let (a, b) = pair(true).await;
    let proxy = drover(&config(&a, &b, "", ""));
    let r = send_body(proxy.addr(), "PUT", "/upload", vec![7; 1000]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "b 1000\n", "b received the whole body again");
    assert_eq!(a.requests(), 1, "a had it first and hung");
}

#[tokio::test]
async fn a_body_over_the_replay_limit_is_not_resent() {
    let (a, b) = pair(true).await;
    let proxy = drover(&config(&a, &b, "", ""));
    let r = send_body(proxy.addr(), "PUT", "/upload", vec![7; 100 * 1024]).await;
    assert_eq!(r.status, 504, "{}", r.text());
    assert_eq!(b.requests(), 0);
}

#[tokio::test]
async fn a_post_is_retried_only_where_the_route_allows_it() {
    let (a, b) = pair(true).await;
    let proxy = drover(&config(&a, &b, "", ""));
    let r = send_body(proxy.addr(), "POST", "/upload", vec![1; 10]).await;
    assert_eq!(r.status, 504, "POST is not idempotent: {}", r.text());
    assert_eq!(b.requests(), 0);

    let proxy = drover(&config(&a, &b, "", "retry_non_idempotent = true"));
    let r = send_body(proxy.addr(), "POST", "/upload", vec![1; 10]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "b 10\n");
}

#[tokio::test]
async fn a_5xx_is_retried_only_when_retry_on_names_it() {
    let (a, b) = pair(false).await;
    a.set_status(503);
    let proxy = drover(&config(&a, &b, "", ""));
    let r = get(proxy.addr(), "/").await;
    assert_eq!(
        (r.status.as_u16(), r.text()),
        (503, "a\n"),
        "not retried by default"
    );

    let proxy = drover(&config(&a, &b, "retry_on = [\"5xx\"]", ""));
    let r = get(proxy.addr(), "/").await;
    assert_eq!(
        (r.status.as_u16(), r.text()),
        (200, "b\n"),
        "503 retried on b"
    );
}

#[tokio::test]
async fn when_every_retry_fails_the_client_gets_the_last_members_answer() {
    let (a, b) = pair(false).await;
    a.set_status(503);
    b.set_status(502);
    let proxy = drover(&config(&a, &b, "retry_on = [\"5xx\"]", ""));
    let r = get(proxy.addr(), "/").await;
    assert_eq!((r.status.as_u16(), r.text()), (502, "b\n"));
}

#[tokio::test]
async fn a_spent_retry_budget_answers_without_a_retry() {
    let (a, b) = pair(true).await;
    let keys = "retry_budget = \"0%\"\nretry_budget_floor = 0";
    let proxy = drover(&config(&a, &b, keys, ""));
    let r = get(proxy.addr(), "/").await;
    assert_eq!(r.status, 504, "no budget, no retry: {}", r.text());
    assert_eq!(b.requests(), 0);
    let farm = proxy.routing();
    let farm = farm.farm("app").unwrap();
    assert_eq!(
        farm.counters
            .budget_refused
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[tokio::test]
async fn consecutive_failures_eject_a_member() {
    let (a, b) = pair(false).await;
    a.set_status(500);
    let keys = "[farm.app.passive]\nconsecutive_failures = 3\nejection_time = \"300ms\"";
    let proxy = drover(&config(&a, &b, keys, ""));
    let addr = proxy.addr();
    let mut conn = connect(addr).await;
    for _ in 0..6 {
        send(&mut conn, get_request(addr, "/")).await;
    }
    let routing = proxy.routing();
    let member = routing.farm("app").unwrap().farm.member("a").unwrap();
    assert!(!member.state.is_up(), "3 failures in a row eject a");
    let seen = a.requests();
    for _ in 0..10 {
        let r = send(&mut conn, get_request(addr, "/")).await;
        assert_eq!(r.text(), "b\n", "ejected: no traffic to a");
    }
    assert_eq!(a.requests(), seen);
    let t = member.health.last_transition().unwrap();
    assert!(
        t.reason
            .starts_with("3 failed requests in a row, the last: 500"),
        "{t}"
    );
}

/// A member that goes down loses its pooled connections, unless its farm is quiescent. Two farms
/// in one proxy: `q` (quiescent, member a) is swept before `n` (not, member b) in each pass of
/// the pool sweeper, so once b's connection is closed, a pass has also seen a down.
#[tokio::test]
async fn a_down_members_pooled_connections_close_unless_quiescent() {
    let (a, b) = pair(false).await;
    let toml = format!(
        "[[listener]]\nlisten = \"127.0.0.1:0\"\n\
         [[listener.route]]\npath = \"/q/\"\nfarm = \"q\"\n\
         [[listener.route]]\npath = \"/n/\"\nfarm = \"n\"\n\n\
         [farm.q]\nquiescent = true\n{}\n[farm.n]\nquiescent = false\n{}",
        members_toml("q", &[&a], |_| String::new()),
        members_toml("n", &[&b], |_| String::new()),
    );
    let proxy = drover(&toml);
    assert_eq!(get(proxy.addr(), "/q/").await.text(), "a\n");
    assert_eq!(get(proxy.addr(), "/n/").await.text(), "b\n");
    eventually("both connections are pooled", || {
        a.open_connections() == 1 && b.open_connections() == 1
    })
    .await;
    let routing = proxy.routing();
    assert_eq!(
        routing.farms[0].farm.name, "q",
        "q is swept first in each pass"
    );
    for farm in ["q", "n"] {
        let farm = &routing.farm(farm).unwrap().farm;
        farm.set_up(0, false, || "test".into(), drover_core::clock::now());
    }
    eventually("the sweeper closes b's pooled connection", || {
        b.open_connections() == 0
    })
    .await;
    assert_eq!(a.open_connections(), 1, "quiescent: a's connection is kept");
}

/// A first-byte timeout is a latency sample of the timeout's length for the member (as tower's
/// Peak-EWMA counts a dropped request), so latency-aware policies see a member that only times out.
#[tokio::test]
async fn a_timeout_is_a_latency_sample() {
    let (a, b) = pair(true).await;
    let proxy = drover(&config(&a, &b, "", ""));
    let r = get(proxy.addr(), "/").await;
    assert_eq!(r.text(), "b\n", "retried after a's timeout");
    let routing = proxy.routing();
    let a_stats = &routing.farm("app").unwrap().farm.member("a").unwrap().stats;
    let (rtt_ns, _) = a_stats.peak_rtt_raw();
    assert!(
        rtt_ns >= 300e6,
        "a's estimate took the 300 ms wait: {rtt_ns} ns"
    );
}

/// A replayed body survives a next member that refuses the connection: `a` hangs (timeout, so
/// the PUT is retried from its kept copy), `b` is dead (the retry is not sent), `c` gets the whole
/// body.
#[tokio::test]
async fn a_replayed_body_survives_a_member_that_refuses() {
    let a = TestMember::start(MemberConfig::new("a").hang(true))
        .await
        .unwrap();
    let b = TestMember::start(MemberConfig::new("b")).await.unwrap();
    let c = TestMember::start(MemberConfig::new("c")).await.unwrap();
    let toml = format!(
        "[[listener]]\nlisten = \"127.0.0.1:0\"\nfarm = \"app\"\n\n\
         [farm.app]\npolicy = \"round-robin\"\nfirst_byte_timeout = \"300ms\"\n{}",
        members_toml("app", &[&a, &b, &c], |_| String::new())
    );
    b.kill().await;
    let proxy = drover(&toml);
    let r = send_body(proxy.addr(), "PUT", "/upload", vec![7; 1000]).await;
    assert_eq!(r.text(), "c 1000\n", "c received the whole body");
}

/// Every member refusing is an outage even when there are more members than retries.
#[tokio::test]
async fn members_refusing_past_the_retry_count_run_the_outage_action() {
    let mut dead = Vec::new();
    for name in ["a", "b", "c"] {
        dead.push(TestMember::start(MemberConfig::new(name)).await.unwrap());
    }
    let toml = format!(
        "[[listener]]\nlisten = \"127.0.0.1:0\"\nfarm = \"app\"\n\n\
         [farm.app]\nretries = 1\n{}",
        members_toml("app", &dead.iter().collect::<Vec<_>>(), |_| String::new())
    );
    for m in dead {
        m.kill().await;
    }
    let proxy = drover(&toml);
    let r = get(proxy.addr(), "/").await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("no server is available"), "{}", r.text());
}
