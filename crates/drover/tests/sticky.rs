//! Sticky sessions in the real binary, over real sockets: the classic mod_proxy_balancer setup of
//! `examples/sticky-balanceid.toml` (members that set `BALANCEID=balancer.httpN` themselves), URL
//! path parameters against cookies, insert mode's signed cookie (tampering, key rotation, not
//! re-sent), learn mode (sessions learned from `Set-Cookie`, moved on failure, expired), and a
//! draining member keeping its sticky clients.
//!
//! Each client keeps its own cookie jar ([`Client`]) on its own keep-alive connection, as a
//! browser would.

mod chaoskit;
mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use chaoskit::farm_view;
use common::{Drover, free_addr, push_report, repo_root};
use drover_testkit::client::{self, Body, DEADLINE, Reply};
use drover_testkit::{MemberConfig, TestMember};
use hyper::client::conn::http1::SendRequest;
use serde_json::json;

const SECRET: &str = "sticky-test-secret-0123456789";

/// A browser-like client: one keep-alive connection and a cookie jar.
struct Client {
    addr: SocketAddr,
    conn: SendRequest<Body>,
    jar: Vec<(String, String)>,
}

impl Client {
    async fn new(addr: SocketAddr) -> Client {
        Client {
            addr,
            conn: client::connect(addr).await,
            jar: Vec::new(),
        }
    }

    fn cookie(&self, name: &str) -> Option<&str> {
        self.jar
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn set(&mut self, name: &str, value: &str) {
        self.jar.retain(|(n, _)| n != name);
        self.jar.push((name.to_owned(), value.to_owned()));
    }

    /// GET `path` with the jar's cookies; keeps the cookies the answer sets.
    async fn get(&mut self, path: &str) -> Reply {
        let mut req = client::get_request(self.addr, path);
        if !self.jar.is_empty() {
            let cookies: Vec<String> = self.jar.iter().map(|(n, v)| format!("{n}={v}")).collect();
            req.headers_mut()
                .insert("cookie", cookies.join("; ").parse().unwrap());
        }
        let reply = match client::try_send(&mut self.conn, req).await {
            Ok(r) => r,
            Err(_) => {
                // drover closed the connection (e.g. after a 503): reconnect, as a browser does.
                self.conn = client::connect(self.addr).await;
                let mut req = client::get_request(self.addr, path);
                let cookies: Vec<String> =
                    self.jar.iter().map(|(n, v)| format!("{n}={v}")).collect();
                if !cookies.is_empty() {
                    req.headers_mut()
                        .insert("cookie", cookies.join("; ").parse().unwrap());
                }
                client::send(&mut self.conn, req).await
            }
        };
        for (name, value) in set_cookies(&reply) {
            if value.is_empty() {
                self.jar.retain(|(n, _)| *n != name);
            } else {
                self.set(&name, &value);
            }
        }
        reply
    }
}

/// The (name, value) pairs of a reply's `Set-Cookie` headers.
fn set_cookies(reply: &Reply) -> Vec<(String, String)> {
    reply
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|h| {
            let first = h.to_str().ok()?.split(';').next()?;
            let (n, v) = first.split_once('=')?;
            Some((n.trim().to_owned(), v.trim().to_owned()))
        })
        .collect()
}

fn member_of(reply: &Reply) -> String {
    reply
        .headers
        .get("x-member")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

async fn serve(config: &str, listen: SocketAddr, admin: Option<SocketAddr>) -> Drover {
    let mut drover = Drover::serve(config);
    if let Some(admin) = admin {
        drover.wait_listening(admin).await;
    }
    drover.wait_listening(listen).await;
    drover
}

/// `examples/sticky-balanceid.toml` with its addresses moved to free ports (checked replaced).
fn balanceid_config(
    listen: SocketAddr,
    m1: SocketAddr,
    m2: SocketAddr,
    nofailover: bool,
) -> String {
    let text = std::fs::read_to_string(repo_root().join("examples/sticky-balanceid.toml"))
        .expect("examples/sticky-balanceid.toml");
    let mut out = text.clone();
    for (from, to) in [
        ("127.0.0.1:8080", listen.to_string()),
        ("127.0.0.1:9001", m1.to_string()),
        ("127.0.0.1:9002", m2.to_string()),
        ("nofailover = true", format!("nofailover = {nofailover}")),
    ] {
        assert!(out.contains(from), "the example has {from}");
        out = out.replace(from, &to);
    }
    format!("[server]\nthreads = 1\n\n{out}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn classic_balanceid_setup_sticks_and_fails_over_as_configured() {
    let app1 =
        TestMember::start(MemberConfig::new("app1").set_cookie("BALANCEID=balancer.http1; Path=/"))
            .await
            .unwrap();
    let app2 =
        TestMember::start(MemberConfig::new("app2").set_cookie("BALANCEID=balancer.http2; Path=/"))
            .await
            .unwrap();
    let (a1, a2) = (app1.addr(), app2.addr());
    let listen = free_addr();
    let drover = serve(&balanceid_config(listen, a1, a2, true), listen, None).await;

    // Two clients, each with its own jar: round robin gives them one member each, and each
    // member's own cookie keeps its client there.
    let mut alice = Client::new(listen).await;
    let mut bob = Client::new(listen).await;
    let first_a = member_of(&alice.get("/").await);
    let first_b = member_of(&bob.get("/").await);
    assert_ne!(
        first_a, first_b,
        "round robin gave the two new clients different members"
    );
    for _ in 0..100 {
        assert_eq!(member_of(&alice.get("/").await), first_a);
        assert_eq!(member_of(&bob.get("/").await), first_b);
    }
    let route = |m: &str| if m == "app1" { "http1" } else { "http2" };
    assert_eq!(
        alice.cookie("BALANCEID"),
        Some(&*format!("balancer.{}", route(&first_a)))
    );

    // Alice's member dies. With nofailover she gets 503; Bob is untouched.
    let (alices, bobs) = if first_a == "app1" {
        (app1, app2)
    } else {
        (app2, app1)
    };
    let alice_addr = alices.addr();
    alices.kill().await;
    let r = alice.get("/").await;
    assert_eq!(r.status, 503, "nofailover: {}", r.text());
    assert!(
        r.text()
            .contains("the server holding this session is unavailable")
    );
    assert_eq!(member_of(&bob.get("/").await), first_b);
    assert!(
        drover.stderr().contains("nofailover is on: 503"),
        "the refusal is logged"
    );
    drop(drover);

    // Without nofailover Alice is moved to the other member, which is told so and whose own
    // cookie re-sticks her there.
    let listen = free_addr();
    let (m1, m2) = if first_a == "app1" {
        (alice_addr, bobs.addr())
    } else {
        (bobs.addr(), alice_addr)
    };
    let _drover = serve(&balanceid_config(listen, m1, m2, false), listen, None).await;
    let mut alice2 = Client::new(listen).await;
    alice2.set("BALANCEID", &format!("balancer.{}", route(&first_a)));
    let r = alice2.get("/echo").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(member_of(&r), first_b);
    assert!(
        r.text()
            .to_ascii_lowercase()
            .contains(&format!("x-drover-sticky-moved: {first_a}")),
        "the new member is told where the client came from:\n{}",
        r.text()
    );
    assert_eq!(
        alice2.cookie("BALANCEID"),
        Some(&*format!("balancer.{}", route(&first_b)))
    );
    for _ in 0..20 {
        let r = alice2.get("/echo").await;
        assert_eq!(member_of(&r), first_b);
        assert!(
            !r.text()
                .to_ascii_lowercase()
                .contains("x-drover-sticky-moved")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_parameter_comes_before_the_cookie() {
    let mut members = Vec::new();
    let mut list = String::new();
    for n in 1..=3 {
        let m = TestMember::start(MemberConfig::new(format!("node{n}")))
            .await
            .unwrap();
        list.push_str(&format!(
            "{{ name = \"node{n}\", address = \"{}\", route = \"node{n}\" }}, ",
            m.addr()
        ));
        members.push(m);
    }
    let listen = free_addr();
    let config = format!(
        "[server]\nthreads = 1\n[[listener]]\nlisten = \"{listen}\"\nfarm = \"app\"\n\
         [farm.app]\npolicy = \"round-robin\"\nmembers = [{list}]\n\
         [farm.app.sticky]\nmode = \"route\"\ncookie = \"JSESSIONID\"\npath_param = \"jsessionid\"\n"
    );
    let _drover = serve(&config, listen, None).await;
    let mut c = Client::new(listen).await;
    for _ in 0..6 {
        assert_eq!(
            member_of(&c.get("/cart;jsessionid=abc.node1").await),
            "node1"
        );
        assert_eq!(
            member_of(&c.get("/cart?x=1&jsessionid=abc.node3").await),
            "node3"
        );
    }
    c.set("JSESSIONID", "ABC123.node2");
    for _ in 0..6 {
        assert_eq!(
            member_of(&c.get("/cart").await),
            "node2",
            "the cookie alone"
        );
        assert_eq!(
            member_of(&c.get("/cart;jsessionid=ABC123.node1").await),
            "node1",
            "path parameter and cookie disagree: the path parameter wins, as in Apache"
        );
    }
    // A route nobody has is no session: picked anew, never an error.
    c.set("JSESSIONID", "ABC123.node9");
    let seen: std::collections::HashSet<String> = futures_collect(&mut c, "/cart", 6).await;
    assert!(
        seen.len() > 1,
        "an unknown route is spread by the policy: {seen:?}"
    );
}

async fn futures_collect(
    c: &mut Client,
    path: &str,
    n: usize,
) -> std::collections::HashSet<String> {
    let mut seen = std::collections::HashSet::new();
    for _ in 0..n {
        let r = c.get(path).await;
        assert_eq!(r.status, 200);
        seen.insert(member_of(&r));
    }
    seen
}

fn insert_config(listen: SocketAddr, members: &[&TestMember], keys: &str) -> String {
    let list: String = members
        .iter()
        .map(|m| {
            format!(
                "{{ name = \"{}\", address = \"{}\" }}, ",
                m.name(),
                m.addr()
            )
        })
        .collect();
    format!(
        "[server]\nthreads = 1\n[[listener]]\nlisten = \"{listen}\"\nfarm = \"shop\"\n\
         [farm.shop]\npolicy = \"round-robin\"\nmembers = [{list}]\n\
         [farm.shop.sticky]\nmode = \"insert\"\nkeys = [{keys}]\nmax_age = \"1h\"\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_mode_signs_rotates_and_ignores_tampering() {
    let s1 = TestMember::start(MemberConfig::new("s1")).await.unwrap();
    let s2 = TestMember::start(MemberConfig::new("s2")).await.unwrap();
    let s3 = TestMember::start(MemberConfig::new("s3")).await.unwrap();
    let members = [&s1, &s2, &s3];
    const OLD: &str = "\"old-key-0123456789abcdef\"";
    const NEW: &str = "\"new-key-0123456789abcdef\"";

    let listen = free_addr();
    let drover = serve(&insert_config(listen, &members, OLD), listen, None).await;
    let mut c = Client::new(listen).await;
    let r = c.get("/").await;
    let home = member_of(&r);
    let set: Vec<String> = r
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(set.len(), 1, "{set:?}");
    let value = c
        .cookie("DROVERID")
        .expect("drover set its cookie")
        .to_owned();
    assert_eq!(value.len(), 32);
    assert!(
        !value.contains(&home),
        "the value does not show the member's name"
    );
    assert!(
        set[0].ends_with("; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax"),
        "{}",
        set[0]
    );
    for _ in 0..30 {
        let r = c.get("/").await;
        assert_eq!(member_of(&r), home);
        assert!(
            r.headers.get("set-cookie").is_none(),
            "a client holding a valid cookie is not sent it again"
        );
    }
    // Tampered: treated as no cookie (a 200 and a fresh, valid cookie), never a 5xx.
    let mut forged = value.clone().into_bytes();
    forged[7] = if forged[7] == b'a' { b'b' } else { b'a' };
    let forged = String::from_utf8(forged).unwrap();
    for bad in [
        forged.as_str(),
        "",
        "x",
        "0000000000000000000000000000000000",
        "s1",
    ] {
        c.set("DROVERID", bad);
        let r = c.get("/").await;
        assert_eq!(r.status, 200, "cookie {bad:?}");
        let fresh = c.cookie("DROVERID").unwrap().to_owned();
        assert_ne!(fresh, bad, "a new cookie replaces {bad:?}");
        assert_eq!(fresh.len(), 32);
    }
    drop(drover);

    // Rotation: the new key signs, the old one is still accepted, and a client with an old
    // cookie stays on its member and gets a new-key cookie once.
    let listen = free_addr();
    let drover = serve(
        &insert_config(listen, &members, &format!("{NEW}, {OLD}")),
        listen,
        None,
    )
    .await;
    let mut c = Client::new(listen).await;
    c.set("DROVERID", &value);
    let r = c.get("/").await;
    assert_eq!(member_of(&r), home, "an old-key cookie still sticks");
    let rotated = c.cookie("DROVERID").unwrap().to_owned();
    assert_ne!(rotated, value, "and is replaced by a new-key one");
    for _ in 0..10 {
        let r = c.get("/").await;
        assert_eq!(member_of(&r), home);
        assert!(r.headers.get("set-cookie").is_none());
    }
    drop(drover);

    // The old key dropped: an old cookie means nothing, a new one still works.
    let listen = free_addr();
    let _drover = serve(&insert_config(listen, &members, NEW), listen, None).await;
    let mut c = Client::new(listen).await;
    c.set("DROVERID", &rotated);
    assert_eq!(member_of(&c.get("/").await), home);
    c.set("DROVERID", &value);
    let r = c.get("/").await;
    assert_eq!(r.status, 200);
    assert_ne!(
        c.cookie("DROVERID").unwrap(),
        value,
        "an old-key cookie counts as none"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn learn_mode_learns_moves_and_expires_sessions() {
    let p1 = TestMember::start(MemberConfig::new("p1").session_cookie("PHPSESSID"))
        .await
        .unwrap();
    let p2 = TestMember::start(MemberConfig::new("p2").session_cookie("PHPSESSID"))
        .await
        .unwrap();
    let p3 = TestMember::start(MemberConfig::new("p3").session_cookie("PHPSESSID"))
        .await
        .unwrap();
    let (listen, admin) = (free_addr(), free_addr());
    let config = format!(
        "[server]\nthreads = 1\n[admin]\nlisten = \"{admin}\"\nopen_reads = true\n\
         [[listener]]\nlisten = \"{listen}\"\nfarm = \"php\"\n\
         [farm.php]\npolicy = \"round-robin\"\nmembers = [\
         {{ name = \"p1\", address = \"{}\" }}, {{ name = \"p2\", address = \"{}\" }}, \
         {{ name = \"p3\", address = \"{}\" }}]\n\
         [farm.php.sticky]\nmode = \"learn\"\ncookie = \"PHPSESSID\"\nttl = \"2s\"\n",
        p1.addr(),
        p2.addr(),
        p3.addr()
    );
    let _drover = serve(&config, listen, Some(admin)).await;
    let mut clients = Vec::new();
    let mut homes = Vec::new();
    for _ in 0..3 {
        let mut c = Client::new(listen).await;
        let r = c.get("/").await;
        homes.push(member_of(&r));
        assert!(
            c.cookie("PHPSESSID")
                .unwrap()
                .starts_with(&homes[homes.len() - 1])
        );
        clients.push(c);
    }
    for _ in 0..30 {
        for (c, home) in clients.iter_mut().zip(&homes) {
            let r = c.get("/").await;
            assert_eq!(
                &member_of(&r),
                home,
                "a learned session goes back to its member"
            );
        }
    }
    let view = farm_view(admin, "php").await;
    assert_eq!(view["sticky"]["sessions"], 3, "{view}");
    assert_eq!(view["sticky"]["learned"], 3, "{view}");

    // The member of client 0 dies: its session moves to another member and stays there.
    let dead = homes[0].clone();
    let mut members = vec![p1, p2, p3];
    let at = members.iter().position(|m| m.name() == dead).unwrap();
    members.remove(at).kill().await;
    let r = clients[0].get("/").await;
    let moved_to = member_of(&r);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_ne!(moved_to, dead);
    assert!(!moved_to.is_empty());
    for _ in 0..10 {
        assert_eq!(
            member_of(&clients[0].get("/").await),
            moved_to,
            "re-stuck to its new member"
        );
    }
    let view = farm_view(admin, "php").await;
    assert!(view["sticky"]["moved"].as_u64().unwrap() >= 1, "{view}");

    // Unused for the ttl (2 s), sessions are swept away.
    let deadline = Instant::now() + DEADLINE;
    loop {
        let view = farm_view(admin, "php").await;
        if view["sticky"]["sessions"] == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "sessions never expired: {view}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_member_keeps_its_sticky_clients_and_gets_no_new_ones() {
    let d1 = TestMember::start(MemberConfig::new("d1")).await.unwrap();
    let d2 = TestMember::start(MemberConfig::new("d2")).await.unwrap();
    let (listen, admin) = (free_addr(), free_addr());
    let config = format!(
        "[server]\nthreads = 1\n[admin]\nlisten = \"{admin}\"\nopen_reads = true\n[reports]\nsecret = \"{SECRET}\"\n\
         [[listener]]\nlisten = \"{listen}\"\nfarm = \"app\"\n\
         [farm.app]\npolicy = \"round-robin\"\nmembers = [\
         {{ name = \"d1\", address = \"{}\" }}, {{ name = \"d2\", address = \"{}\" }}]\n\
         [farm.app.sticky]\nmode = \"insert\"\nkeys = [\"drain-key-0123456789abcdef\"]\n",
        d1.addr(),
        d2.addr()
    );
    let _drover = serve(&config, listen, Some(admin)).await;
    let mut stuck = Vec::new();
    for _ in 0..4 {
        let mut c = Client::new(listen).await;
        let home = member_of(&c.get("/").await);
        stuck.push((c, home));
    }
    let r = push_report(admin, SECRET, &json!({"member": "d1", "state": "drain"})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    chaoskit::wait_member(admin, "app", "d1", DEADLINE, "draining", |m| {
        m["draining"] == true
    })
    .await;
    for (c, home) in stuck.iter_mut() {
        for _ in 0..5 {
            assert_eq!(
                &member_of(&c.get("/").await),
                home,
                "sticky users stay, d1's included"
            );
        }
    }
    assert!(
        stuck.iter().any(|(_, h)| h == "d1"),
        "round robin put someone on d1"
    );
    for _ in 0..10 {
        let mut c = Client::new(listen).await;
        assert_eq!(
            member_of(&c.get("/").await),
            "d2",
            "no new sessions on a draining member"
        );
    }
}
