//! Peers sharing runtime state by gossip (issue 7, acceptance 2), with three real `drover serve`
//! processes on loopback: nodes n1, n2, n3 gossip on 127.0.0.11, .12 and .13 (one UDP port,
//! as `[cluster] gossip_port` is one port for every node), each with its own listener and admin
//! listener on 127.0.0.1, all in front of the same two test members.
//!
//! - an operator's `disable` on one node is seen by the others (the time is measured and printed;
//!   the median of several runs is in docs/cluster.md, "State sharing");
//! - a load report pushed to one node steers traffic on all of them;
//! - a session learned on one node is honoured by another after the first is SIGKILLed, also
//!   past its ttl while the first kept using it;
//! - a node killed and restarted catches up on a change made while it was down, and a member
//!   added later gets the operator changes made for it elsewhere.
//!
//! Every wait is deadline polling; the bounds (5 s) are far above the sub-second propagation, so
//! they only catch a change that never arrives.

mod chaoskit;
mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use chaoskit::{farm_view, member};
use common::{Drover, call, free_addr, push_report, temp_path};
use drover_testkit::client::{self, Body};
use drover_testkit::{MemberConfig, TestMember};
use hyper::client::conn::http1::SendRequest;
use serde_json::{Value, json};

const TOKEN: &str = "gossip-test-token-0123456789abcdef";
const REPORTS: &str = "gossip-test-report-secret-0123456789";
const SECRET: &str = "gossip-test-cluster-secret-0123456789";
/// How long a change may take to reach a peer before the test fails (propagation is ~0.1-0.3 s).
const WITHIN: Duration = Duration::from_secs(5);

/// A UDP port free on all three node addresses a moment ago.
fn gossip_port() -> u16 {
    for _ in 0..50 {
        let first = UdpSocket::bind("127.0.0.11:0").expect("bind 127.0.0.11:0");
        let port = first.local_addr().expect("local addr").port();
        let others: Vec<_> = [12, 13]
            .iter()
            .map(|i| UdpSocket::bind(format!("127.0.0.{i}:{port}")))
            .collect();
        if others.iter().all(Result::is_ok) {
            return port;
        }
    }
    panic!("no UDP port free on 127.0.0.11-13");
}

struct Node {
    name: String,
    config: String,
    listen: SocketAddr,
    admin: SocketAddr,
    drover: Option<Drover>,
}

impl Node {
    async fn start(&mut self) {
        let mut d = Drover::serve(&self.config);
        d.wait_listening(self.admin).await;
        d.wait_listening(self.listen).await;
        self.drover = Some(d);
    }

    /// SIGKILL (by PID, through `Child::kill`, when the guard drops).
    fn kill(&mut self) {
        self.drover = None;
    }
}

struct Cluster {
    nodes: Vec<Node>,
    /// Held so the members serve for the whole test.
    _members: Vec<TestMember>,
}

async fn cluster() -> Cluster {
    cluster_with_ttl("60s").await
}

/// Three nodes whose learn tables keep a session `ttl` after its last use.
async fn cluster_with_ttl(ttl: &str) -> Cluster {
    let mut members = Vec::new();
    for name in ["m1", "m2"] {
        members.push(
            TestMember::start(MemberConfig::new(name).session_cookie("PHPSESSID"))
                .await
                .expect("test member"),
        );
    }
    let port = gossip_port();
    let mut nodes = Vec::new();
    for i in 1..=3 {
        let (listen, admin) = (free_addr(), free_addr());
        // Where keepalived's files would go (none is started: no VIPs), apart from a real node's.
        let run_dir = temp_path(&format!("run-n{i}"));
        let config = format!(
            r#"
[server]
threads = 1

[admin]
listen = "{admin}"
token = "{TOKEN}"
open_reads = true

[reports]
secret = "{REPORTS}"

[[listener]]
listen = "{listen}"
farm = "app"

[farm.app]
policy = "round-robin"
members = [{{ name = "m1", address = "{m1}" }}, {{ name = "m2", address = "{m2}" }}]

[farm.app.sticky]
mode = "learn"
cookie = "PHPSESSID"
ttl = "{ttl}"

[cluster]
node = "n{i}"
secret = "{SECRET}"
gossip_port = {port}
run_dir = {run_dir:?}

[[cluster.nodes]]
name = "n1"
address = "127.0.0.11"
[[cluster.nodes]]
name = "n2"
address = "127.0.0.12"
[[cluster.nodes]]
name = "n3"
address = "127.0.0.13"
"#,
            m1 = members[0].addr(),
            m2 = members[1].addr(),
        );
        nodes.push(Node {
            name: format!("n{i}"),
            config,
            listen,
            admin,
            drover: None,
        });
    }
    for n in &mut nodes {
        n.start().await;
    }
    let c = Cluster {
        nodes,
        _members: members,
    };
    // Every node sees the two others alive before a test starts.
    for n in &c.nodes {
        wait_for(
            WITHIN,
            &format!("{} to see its two peers alive", n.name),
            || async {
                let v = peers(n.admin).await;
                let alive = v["peers"].as_array().map_or(0, |p| {
                    p.iter()
                        .filter(|p| p["alive"] == true && p["self"] == false)
                        .count()
                });
                (alive == 2).then_some(())
            },
        )
        .await;
    }
    c
}

async fn peers(admin: SocketAddr) -> Value {
    let r = client::get(admin, "/api/v1/cluster/peers").await;
    assert_eq!(r.status, 200, "{}", r.text());
    serde_json::from_slice(&r.body).expect("peers JSON")
}

/// Polls `probe` until it gives a value, at most `within`; panics with `what` otherwise.
async fn wait_for<T, F, Fut>(within: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "waited {within:?} for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn write(admin: SocketAddr, path: &str) {
    let r = call(
        admin,
        http::Method::POST,
        path,
        b"",
        &[("authorization", format!("Bearer {TOKEN}"))],
    )
    .await;
    assert_eq!(r.status, 200, "{path}: {}", r.text());
}

/// Adds member `name` at `address` to farm app through `admin`.
async fn add_member(admin: SocketAddr, name: &str, address: SocketAddr) {
    let body = json!({"name": name, "address": address.to_string()}).to_string();
    let r = call(
        admin,
        http::Method::POST,
        "/api/v1/farms/app/members",
        body.as_bytes(),
        &[("authorization", format!("Bearer {TOKEN}"))],
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
}

async fn member_field(admin: SocketAddr, name: &str, field: &str) -> Value {
    member(&farm_view(admin, "app").await, name)[field].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disable_on_one_node_reaches_the_others_within_a_second() {
    let c = cluster().await;
    let mut times = Vec::new();
    for round in 0..6 {
        // Alternate the node the operator talks to, and disable / enable.
        let from = &c.nodes[round % 3];
        let (action, on) = if round % 2 == 0 {
            ("disable", false)
        } else {
            ("enable", true)
        };
        let t0 = Instant::now();
        write(
            from.admin,
            &format!("/api/v1/farms/app/members/m1/{action}"),
        )
        .await;
        for n in c.nodes.iter().filter(|n| n.name != from.name) {
            wait_for(
                WITHIN,
                &format!("{action} from {} on {}", from.name, n.name),
                || async { (member_field(n.admin, "m1", "on").await == on).then_some(()) },
            )
            .await;
        }
        let took = t0.elapsed();
        println!(
            "round {round}: {action} on {} seen by both peers in {took:?}",
            from.name
        );
        times.push(took);
        // The change came from a peer: each node says so in the member's last transition.
        let other = &c.nodes[(round + 1) % 3];
        let last = member_field(other.admin, "m1", "last_transition").await;
        assert!(
            last["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with(&format!("peer {}: {action}", from.name))),
            "{last}"
        );
    }
    times.sort();
    println!(
        "operator change seen by every peer: median {:?}, max {:?} ({} runs)",
        times[times.len() / 2],
        times[times.len() - 1],
        times.len()
    );
    // Peers' view: each node lists the three and counts what it applied and published. (Alive
    // or dead is the failure detector's call: on a starved machine a live peer can look dead for
    // a moment, so the state is only checked to be one of the two.)
    let v = peers(c.nodes[0].admin).await;
    let list = v["peers"].as_array().expect("peers");
    assert_eq!(list.len(), 3, "{v}");
    assert!(list.iter().all(|p| p["alive"].is_boolean()), "{v}");
    assert!(v["applied"]["op"].as_u64().unwrap() >= 4, "{v}");
    assert!(v["published"]["op"].as_u64().unwrap() >= 2, "{v}");
    // The same from the command line.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_drover"))
        .args(["cluster", "peers", "--admin", &c.nodes[0].admin.to_string()])
        .output()
        .expect("run drover cluster peers");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (name, states) in [
        ("n1", &["self"][..]),
        ("n2", &["alive", "dead"]),
        ("n3", &["alive", "dead"]),
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with(name) && states.iter().any(|s| l.contains(s))),
            "{name} {states:?}:\n{text}"
        );
    }
    let metrics = client::get(c.nodes[0].admin, "/metrics").await;
    let text = metrics.text();
    let gauge = |state: &str| -> u64 {
        let prefix = format!("drover_gossip_peers{{state=\"{state}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix)?.parse().ok())
            .unwrap_or_else(|| panic!("no {prefix}in:\n{text}"))
    };
    assert_eq!(gauge("alive") + gauge("dead"), 2, "{text}");
    assert!(
        text.contains("drover_gossip_applied_total{kind=\"op\"}"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_pushed_to_one_node_steers_traffic_on_all() {
    let c = cluster().await;
    let r = push_report(
        c.nodes[0].admin,
        REPORTS,
        &json!({"member": "m1", "state": "down", "reason": "disk full"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    for n in &c.nodes[1..] {
        wait_for(WITHIN, &format!("{} to take m1 down", n.name), || async {
            (member_field(n.admin, "m1", "up").await == false).then_some(())
        })
        .await;
        // Real traffic through that node's listener: m1 gets none of it.
        let mut conn = client::connect(n.listen).await;
        for _ in 0..10 {
            let reply = client::send(&mut conn, client::get_request(n.listen, "/")).await;
            assert_eq!(reply.status, 200);
            assert_eq!(
                reply.headers.get("x-member").and_then(|v| v.to_str().ok()),
                Some("m2"),
                "{} sent a request to m1, which a report pushed to n1 took down",
                n.name
            );
        }
    }
    // And back: the agent says up on another node; all follow.
    let r = push_report(
        c.nodes[2].admin,
        REPORTS,
        &json!({"member": "m1", "state": "up"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    for n in &c.nodes[..2] {
        wait_for(WITHIN, &format!("{} to bring m1 up", n.name), || async {
            (member_field(n.admin, "m1", "up").await == true).then_some(())
        })
        .await;
    }
}

/// One browser: a keep-alive connection and its session cookie.
/// A request without a session through `at`: the session cookie the member set (`NAME=value`)
/// and the member that set it.
async fn new_session(conn: &mut SendRequest<Body>, at: SocketAddr) -> (String, String) {
    let r = get_with(conn, at, None).await;
    let home = r.headers["x-member"].to_str().unwrap().to_owned();
    let cookie = r.headers["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    (cookie, home)
}

async fn get_with(
    conn: &mut SendRequest<Body>,
    at: SocketAddr,
    cookie: Option<&str>,
) -> client::Reply {
    let mut req = client::get_request(at, "/");
    if let Some(c) = cookie {
        req.headers_mut().insert("cookie", c.parse().unwrap());
    }
    client::send(conn, req).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learned_session_survives_its_nodes_death() {
    let mut c = cluster().await;
    let (a, b) = (c.nodes[0].listen, c.nodes[1].listen);
    // Eight sessions made through n1, each learned by n1 from the member's Set-Cookie.
    let mut sessions = Vec::new();
    for _ in 0..8 {
        let mut conn = client::connect(a).await;
        let (cookie, home) = new_session(&mut conn, a).await;
        sessions.push((cookie, home));
    }
    wait_for(WITHIN, "n2 to hold the 8 sessions", || async {
        let v = farm_view(c.nodes[1].admin, "app").await;
        (v["sticky"]["sessions"].as_u64() == Some(8)).then_some(())
    })
    .await;
    c.nodes[0].kill();
    let killed = Instant::now();
    // Round robin alone would alternate members for each client's five requests in a row.
    let mut conn = client::connect(b).await;
    for (cookie, home) in &sessions {
        for _ in 0..5 {
            let r = get_with(&mut conn, b, Some(cookie)).await;
            assert_eq!(r.status, 200);
            assert_eq!(
                r.headers["x-member"].to_str().unwrap(),
                home,
                "n2 must send session {cookie} to {home}, where n1 (now dead) learned it"
            );
        }
    }
    // The failure detector marks n1 dead; its keys still count.
    let n2 = c.nodes[1].admin;
    wait_for(Duration::from_secs(15), "n2 to mark n1 dead", || async {
        let v = peers(n2).await;
        let n1 = v["peers"]
            .as_array()?
            .iter()
            .find(|p| p["name"] == "n1")?
            .clone();
        (n1["alive"] == false && n1["keys"]["sticky"].as_u64() == Some(8)).then_some(())
    })
    .await;
    println!(
        "n2 marked the SIGKILLed n1 dead after {:?}",
        killed.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_catches_up_on_what_changed_while_it_was_down() {
    let mut c = cluster().await;
    c.nodes[2].kill();
    write(c.nodes[0].admin, "/api/v1/farms/app/members/m2/drain").await;
    let r = call(
        c.nodes[1].admin,
        http::Method::PATCH,
        "/api/v1/farms/app/members/m1",
        br#"{"weight": 7}"#,
        &[("authorization", format!("Bearer {TOKEN}"))],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = push_report(
        c.nodes[0].admin,
        REPORTS,
        &json!({"member": "m1", "metrics": {"cpu": 0.25}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let pushed = Instant::now();
    c.nodes[2].start().await;
    let n3 = c.nodes[2].admin;
    wait_for(WITHIN, "the restarted n3 to catch up", || async {
        let v = farm_view(n3, "app").await;
        (member(&v, "m2")["draining"] == true && member(&v, "m1")["weight"] == 7).then_some(())
    })
    .await;
    // The report pushed to n1 before n3 started reaches n3 with its own age, not as fresh news.
    let report = wait_for(WITHIN, "n3 to get the report pushed to n1", || async {
        let m = member_field(n3, "m1", "reported").await;
        (m["metrics"]["cpu"] == 0.25).then_some(m)
    })
    .await;
    let age = Duration::from_secs_f64(report["age_s"].as_f64().unwrap());
    let since = pushed.elapsed();
    println!("report pushed {since:?} ago; its age on the restarted n3: {age:?}");
    assert!(
        age + Duration::from_millis(30) >= since.saturating_sub(Duration::from_millis(30)),
        "the report is {since:?} old but n3 says {age:?}"
    );
    // It lists the two others (its view is refreshed every gossip interval).
    wait_for(WITHIN, "n3 to list n1 and n2", || async {
        let v = peers(n3).await;
        let names: Vec<String> = v["peers"]
            .as_array()?
            .iter()
            .filter_map(|p| p["name"].as_str().map(str::to_owned))
            .collect();
        (names.iter().any(|n| n == "n1") && names.iter().any(|n| n == "n2")).then_some(())
    })
    .await;

    // A member the operator disabled on n2 before n1 had it: n1 applies the cluster's state when
    // it gets the member (its snapshot is rebuilt), not only on the next change.
    // An address no other member has (a farm refuses a second member at the same address); it
    // is disabled before it would get traffic.
    let addr = free_addr();
    add_member(c.nodes[1].admin, "m3", addr).await;
    write(c.nodes[1].admin, "/api/v1/farms/app/members/m3/disable").await;
    wait_for(WITHIN, "n1 to have n2's op key for m3", || async {
        let v = peers(c.nodes[0].admin).await;
        let n2 = v["peers"]
            .as_array()?
            .iter()
            .find(|p| p["name"] == "n2")?
            .clone();
        (n2["keys"]["op"].as_u64()? >= 2).then_some(())
    })
    .await;
    add_member(c.nodes[0].admin, "m3", addr).await;
    wait_for(
        WITHIN,
        "n1 to disable its new m3 as n2's operator did",
        || async { (member_field(c.nodes[0].admin, "m3", "on").await == false).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_in_use_stays_shared_past_its_ttl() {
    // ttl 2 s: the peers' copy would expire 2 s after the session was learned, but n1 keeps
    // using it for 3 s and publishes it again from its last use.
    let mut c = cluster_with_ttl("2s").await;
    let (a, b) = (c.nodes[0].listen, c.nodes[1].listen);
    let mut conn = client::connect(a).await;
    let (cookie, home) = new_session(&mut conn, a).await;
    let until = Instant::now() + Duration::from_millis(3_000);
    let mut pace = tokio::time::interval(Duration::from_millis(100));
    while Instant::now() < until {
        pace.tick().await;
        let r = get_with(&mut conn, a, Some(&cookie)).await;
        assert_eq!(r.headers["x-member"].to_str().unwrap(), home);
    }
    c.nodes[0].kill();
    let mut conn = client::connect(b).await;
    for _ in 0..5 {
        let r = get_with(&mut conn, b, Some(&cookie)).await;
        assert_eq!(
            r.headers["x-member"].to_str().unwrap(),
            home,
            "n2 forgot a session n1 kept using past its 2 s ttl"
        );
    }
}
