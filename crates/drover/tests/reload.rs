//! Reloads and run-time membership on the real binary, over real sockets: SIGHUP and
//! `POST /api/v1/reload` under 64 connections of load lose no request and keep the operator's
//! changes; a bad file changes nothing and says why; the state file brings an operator's
//! "disabled" back after a restart; members are added, removed and re-routed at run time.

mod common;

use std::net::SocketAddr;

use common::{Drover, Load, call, free_addr, temp_path};
use drover_testkit::client::{DEADLINE, connect, eventually, get_request, try_send};
use drover_testkit::{MemberConfig, TestMember};
use http::Method;
use serde_json::Value;

const TOKEN: &str = "reload-test-token-0123456789abcdef";

fn bearer() -> Vec<(&'static str, String)> {
    vec![("authorization", format!("Bearer {TOKEN}"))]
}

/// A config with farm `app` over `members` (name, address, extra keys), the admin listener and
/// a state file.
fn config(
    listen: SocketAddr,
    admin: SocketAddr,
    state: &std::path::Path,
    members: &[(&str, SocketAddr, &str)],
) -> String {
    let list: Vec<String> = members
        .iter()
        .map(|(n, a, extra)| format!("{{ name = \"{n}\", address = \"{a}\"{extra} }}"))
        .collect();
    format!(
        "[server]\nthreads = 1\nstate_file = {state:?}\n\
         [admin]\nlisten = \"{admin}\"\ntoken = \"{TOKEN}\"\nopen_reads = true\n\
         [[listener]]\nlisten = \"{listen}\"\nfarm = \"app\"\n\
         [farm.app]\npolicy = \"round-robin\"\nmembers = [{}]\n",
        list.join(", "),
        state = state.display().to_string(),
    )
}

/// Test members named `names`, started on loopback ports.
async fn members(names: &[&str]) -> Vec<TestMember> {
    let mut ms = Vec::new();
    for name in names {
        ms.push(TestMember::start(MemberConfig::new(*name)).await.unwrap());
    }
    ms
}

async fn farm(admin: SocketAddr) -> Value {
    let r = call(admin, Method::GET, "/api/v1/farms/app", b"", &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    serde_json::from_slice(&r.body).unwrap()
}

fn member<'a>(farm: &'a Value, name: &str) -> &'a Value {
    farm["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("no member {name} in {farm:#}"))
}

async fn delete_member(admin: SocketAddr, name: &str) -> drover_testkit::client::Reply {
    let path = format!("/api/v1/farms/app/members/{name}");
    call(admin, Method::DELETE, &path, b"", &bearer()).await
}

async fn post(admin: SocketAddr, path: &str, body: &str) -> drover_testkit::client::Reply {
    call(admin, Method::POST, path, body.as_bytes(), &bearer()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_under_load_lose_nothing_and_keep_the_operators_changes() {
    let ms = members(&["m1", "m2", "m3"]).await;
    let (listen, admin, state) = (free_addr(), free_addr(), temp_path("state.json"));
    let two = config(
        listen,
        admin,
        &state,
        &[("m1", ms[0].addr(), ""), ("m2", ms[1].addr(), "")],
    );
    let three = config(
        listen,
        admin,
        &state,
        &[
            ("m1", ms[0].addr(), ""),
            ("m2", ms[1].addr(), ""),
            ("m3", ms[2].addr(), ""),
        ],
    );
    let mut drover = Drover::serve(&two);
    drover.wait_listening(admin).await;
    drover.wait_listening(listen).await;
    let path = drover.config_path().unwrap().to_owned();

    // The operator turns m2 off and gives m1 weight 7.
    let r = post(admin, "/api/v1/farms/app/members/m2/disable", "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = call(
        admin,
        Method::PATCH,
        "/api/v1/farms/app/members/m1",
        br#"{"weight": 7}"#,
        &bearer(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());

    // An idle keep-alive connection, opened before the reloads, used again after them.
    let mut idle = connect(listen).await;
    let first = try_send(&mut idle, get_request(listen, "/")).await.unwrap();
    assert_eq!(first.status, 200);

    let load = Load::start(listen, 64, 100_000).await;
    load.advance(500).await;

    // Six reloads, alternating the file between two and three members, by SIGHUP and by API.
    let mut m1_before = 0;
    for round in 0..6 {
        let text = if round % 2 == 0 { &three } else { &two };
        std::fs::write(&path, text).unwrap();
        if round % 3 == 0 {
            let since = drover.log_len();
            drover.signal("HUP");
            drover.wait_for_log(since, &["config reloaded"]).await;
        } else {
            let r = post(admin, "/api/v1/reload", "").await;
            assert_eq!(r.status, 200, "{}", r.text());
            let done: Value = serde_json::from_slice(&r.body).unwrap();
            let (kept, members) = if round % 2 == 0 { (2, 3) } else { (2, 2) };
            assert_eq!(done["kept"], kept, "{done:#}");
            assert_eq!(done["members"], members, "{done:#}");
        }
        let f = farm(admin).await;
        assert_eq!(member(&f, "m2")["on"], false, "round {round}: {f:#}");
        assert_eq!(member(&f, "m1")["weight"], 7, "round {round}: {f:#}");
        let m1 = member(&f, "m1")["requests"].as_u64().unwrap();
        assert!(m1 >= m1_before, "round {round}: m1's counter went back");
        m1_before = m1;
        load.advance(300).await;
    }
    let common::LoadTotals {
        ok, failed, errors, ..
    } = load.finish().await;
    eprintln!("reloads under 64 connections: {ok} answered, {failed} failed");
    assert_eq!(failed, 0, "failed requests across reloads: {errors:?}");
    assert!(ok >= 2_300, "{ok}");

    let again = try_send(&mut idle, get_request(listen, "/")).await;
    assert_eq!(again.expect("the idle connection survives").status, 200);
    assert_eq!(ms[1].requests(), 0, "m2 stayed off through every reload");
    assert!(ms[2].requests() > 0, "m3 served while the file had it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_file_changes_nothing_and_says_why() {
    let m1 = TestMember::start(MemberConfig::new("m1")).await.unwrap();
    let (listen, admin, state) = (free_addr(), free_addr(), temp_path("state.json"));
    let good = config(listen, admin, &state, &[("m1", m1.addr(), "")]);
    let mut drover = Drover::serve(&good);
    drover.wait_listening(admin).await;
    drover.wait_listening(listen).await;
    let path = drover.config_path().unwrap().to_owned();

    // An unknown key and a bad weight: 422, every error with file:line and key.
    std::fs::write(
        &path,
        good.replace(
            "policy = \"round-robin\"",
            "policy = \"round-robin\"\nretrys = 2",
        )
        .replace(
            &format!("address = \"{}\"", m1.addr()),
            &format!("address = \"{}\", weight = 0", m1.addr()),
        ),
    )
    .unwrap();
    let r = post(admin, "/api/v1/reload", "").await;
    assert_eq!(r.status, 422, "{}", r.text());
    let why: Value = serde_json::from_slice(&r.body).unwrap();
    let why = why["error"].as_str().unwrap();
    let file = path.display().to_string();
    assert!(why.contains("the old config stays"), "{why}");
    assert!(
        why.contains(&format!("{file}:")) && why.contains("retrys"),
        "{why}"
    );
    assert!(why.contains("weight"), "{why}");

    // By SIGHUP: logged with the errors, and nothing changed.
    let since = drover.log_len();
    drover.signal("HUP");
    drover.wait_for_log(since, &["reload refused"]).await;
    let log = drover.stderr()[since..].to_owned();
    assert!(log.contains("retrys"), "{log}");
    assert!(!log.contains("config reloaded"), "{log}");
    let f = farm(admin).await;
    assert_eq!(member(&f, "m1")["weight"], 1, "{f:#}");

    // A listener's address cannot change by reload (the sockets stay): 409, and it still serves.
    let moved = good.replace(&listen.to_string(), &free_addr().to_string());
    std::fs::write(&path, moved).unwrap();
    let r = post(admin, "/api/v1/reload", "").await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.text().contains("listen changed"), "{}", r.text());
    assert!(
        r.text().contains("kill -USR2"),
        "points to the binary upgrade: {}",
        r.text()
    );
    let r = drover_testkit::client::get(listen, "/").await;
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_restores_the_operators_changes_from_the_state_file() {
    let ms = members(&["m1", "m2", "m3"]).await;
    let (listen, admin, state) = (free_addr(), free_addr(), temp_path("state.json"));
    let text = config(
        listen,
        admin,
        &state,
        &[
            ("m1", ms[0].addr(), ""),
            ("m2", ms[1].addr(), ""),
            ("m3", ms[2].addr(), ""),
        ],
    );
    let mut drover = Drover::serve(&text);
    drover.wait_listening(admin).await;
    let r = post(admin, "/api/v1/farms/app/members/m1/disable", "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = post(admin, "/api/v1/farms/app/members/m3/drain", "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = call(
        admin,
        Method::PATCH,
        "/api/v1/farms/app/members/m2",
        br#"{"weight": 5}"#,
        &bearer(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let saved = std::fs::read_to_string(&state).expect("the state file is written");
    assert!(saved.contains("\"m1\""), "{saved}");

    drover.signal("TERM");
    assert!(
        drover
            .wait_exit(DEADLINE)
            .await
            .is_some_and(|s| s.success())
    );

    // The same config again: m1 is still off from the very first request, m3 still draining,
    // m2 keeps weight 5.
    let mut drover = Drover::serve(&text);
    drover.wait_listening(listen).await;
    for _ in 0..20 {
        let r = drover_testkit::client::get(listen, "/").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.text(), "m2\n", "only m2 is on and not draining");
    }
    assert_eq!(ms[0].requests(), 0, "m1 got a request after the restart");
    drover.wait_listening(admin).await;
    let f = farm(admin).await;
    assert_eq!(member(&f, "m1")["on"], false, "{f:#}");
    assert_eq!(member(&f, "m3")["draining"], true, "{f:#}");
    assert_eq!(member(&f, "m2")["weight"], 5, "{f:#}");
    drover.signal("TERM");
    assert!(drover.wait_exit(DEADLINE).await.is_some());

    // A config that changes m2's weight wins over the saved one; m1's saved "off" stays (the
    // config did not change `enabled`).
    let changed = text.replace(
        &format!("address = \"{}\"", ms[1].addr()),
        &format!("address = \"{}\", weight = 9", ms[1].addr()),
    );
    let mut drover = Drover::serve(&changed);
    drover.wait_listening(admin).await;
    let f = farm(admin).await;
    assert_eq!(member(&f, "m2")["weight"], 9, "{f:#}");
    assert_eq!(member(&f, "m1")["on"], false, "{f:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_are_added_removed_and_rerouted_at_run_time() {
    let ms = members(&["m1", "m2"]).await;
    let (listen, admin, state) = (free_addr(), free_addr(), temp_path("state.json"));
    // Route-mode sticky sessions, so a route change shows on the wire.
    let text = config(
        listen,
        admin,
        &state,
        &[("m1", ms[0].addr(), ", route = \"r1\"")],
    ) + "[farm.app.sticky]\nmode = \"route\"\ncookie = \"BALANCEID\"\n";
    let mut drover = Drover::serve(&text);
    drover.wait_listening(admin).await;
    drover.wait_listening(listen).await;

    // Bad input: a 4xx with a reason, nothing added.
    for (body, status, why) in [
        (r#"{"name": "m2"}"#, 400, "missing field"),
        (
            r#"{"name": "m 2", "address": "127.0.0.1:1"}"#,
            400,
            "invalid member name",
        ),
        (r#"{"name": "m2", "address": "127.0.0.1:0"}"#, 400, "port 0"),
        (
            r#"{"name": "m1", "address": "127.0.0.1:1"}"#,
            409,
            "already has a member",
        ),
        (
            r#"{"name": "m2", "address": "127.0.0.1:1", "route": "r1"}"#,
            409,
            "already has route",
        ),
        (
            &format!(r#"{{"name": "m2", "address": "{}"}}"#, ms[0].addr()),
            409,
            "already has address",
        ),
    ] {
        let r = post(admin, "/api/v1/farms/app/members", body).await;
        assert_eq!(r.status, status, "{body}: {}", r.text());
        assert!(r.text().contains(why), "{body}: {}", r.text());
    }

    let add = format!(
        r#"{{"name": "m2", "address": "{}", "route": "r2"}}"#,
        ms[1].addr()
    );
    let r = post(admin, "/api/v1/farms/app/members", &add).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let m2_before = ms[1].requests();
    for _ in 0..4 {
        let r = drover_testkit::client::get(listen, "/").await;
        assert_eq!(r.status, 200);
    }
    assert_eq!(
        ms[1].requests() - m2_before,
        2,
        "round robin over m1 and the new m2"
    );

    // A session cookie naming r2 sticks to m2; after m2's route becomes r9, r9 does.
    let sticky = |route: &'static str| async move {
        let mut sender = connect(listen).await;
        let req = http::Request::builder()
            .uri("/")
            .header("host", listen.to_string())
            .header("cookie", format!("BALANCEID=balancer.{route}"))
            .body(http_body_util::Empty::new().map_err(|e| match e {}).boxed())
            .unwrap();
        try_send(&mut sender, req).await.unwrap().text().to_owned()
    };
    use http_body_util::BodyExt;
    assert_eq!(sticky("r2").await, "m2\n");
    let r = call(
        admin,
        Method::PATCH,
        "/api/v1/farms/app/members/m2",
        br#"{"route": "r9"}"#,
        &bearer(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("\"r9\""), "{}", r.text());
    for _ in 0..4 {
        assert_eq!(sticky("r9").await, "m2\n");
    }
    let r = call(
        admin,
        Method::PATCH,
        "/api/v1/farms/app/members/m2",
        br#"{"route": "r1"}"#,
        &bearer(),
    )
    .await;
    assert_eq!(r.status, 409, "m1 has r1: {}", r.text());

    // Remove m1: no request reaches it after; the last member cannot go.
    let r = delete_member(admin, "m1").await;
    assert_eq!(r.status, 204, "{}", r.text());
    let m1_after = ms[0].requests();
    for _ in 0..6 {
        let r = drover_testkit::client::get(listen, "/").await;
        assert_eq!(r.text(), "m2\n");
    }
    assert_eq!(ms[0].requests(), m1_after);
    let r = delete_member(admin, "m2").await;
    assert_eq!(r.status, 409, "{}", r.text());
    let r = delete_member(admin, "m1").await;
    assert_eq!(r.status, 404, "{}", r.text());

    // A reload makes the file authoritative again: m1 is back, m2 (added at run time) is gone.
    let r = post(admin, "/api/v1/reload", "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let done: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(done["added"], serde_json::json!(["app/m1"]), "{done:#}");
    assert_eq!(done["removed"], serde_json::json!(["app/m2"]), "{done:#}");
    let r = drover_testkit::client::get(listen, "/").await;
    assert_eq!(r.text(), "m1\n");
}

/// A member's connection pool follows it when its place in the farm changes, and a pool replaced
/// by new settings closes its connections: with `max_connections = 1`, a lingering old connection
/// would hold the member's only slot and every request after the change would fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pools_follow_their_members_and_replaced_pools_close() {
    let ms = members(&["m1", "m2"]).await;
    let (listen, admin, state) = (free_addr(), free_addr(), temp_path("state.json"));
    let text = config(
        listen,
        admin,
        &state,
        &[("m1", ms[0].addr(), ""), ("m2", ms[1].addr(), "")],
    )
    .replace(
        "policy = \"round-robin\"",
        "policy = \"round-robin\"\nmax_connections = 1",
    );
    let mut drover = Drover::serve(&text);
    drover.wait_listening(admin).await;
    drover.wait_listening(listen).await;
    let path = drover.config_path().unwrap().to_owned();
    let get_all = |n: usize| async move {
        for i in 0..n {
            let r = drover_testkit::client::get(listen, "/").await;
            assert_eq!(r.status, 200, "request {i}: {}", r.text());
        }
    };
    get_all(4).await;
    assert_eq!(ms[1].open_connections(), 1, "one pooled connection to m2");

    // New pool settings: new pools; the old ones close their idle connections.
    std::fs::write(
        &path,
        text.replace(
            "max_connections = 1",
            "max_connections = 1\npool_idle_timeout = \"30s\"",
        ),
    )
    .unwrap();
    let r = post(admin, "/api/v1/reload", "").await;
    assert_eq!(r.status, 200, "{}", r.text());
    get_all(6).await;
    eventually("the replaced pools' connections close", || {
        ms[0].open_connections() == 1 && ms[1].open_connections() == 1
    })
    .await;

    // m1 goes: m2 moves to the farm's first place and keeps its pool (no new connection).
    let accepted = ms[1].connections();
    let r = delete_member(admin, "m1").await;
    assert_eq!(r.status, 204, "{}", r.text());
    get_all(6).await;
    assert_eq!(
        ms[1].connections(),
        accepted,
        "m2's pooled connection was reused"
    );
    eventually("m1's pool closes with its member", || {
        ms[0].open_connections() == 0
    })
    .await;
}
