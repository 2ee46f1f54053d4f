//! Load-report intake in the real binary: signed pushes (JSON and the `/ath/update` GET form),
//! ORCA headers on member responses, the table of bad reports (each answered with its reason and
//! changing nothing), report freshness (`expect`), and "which member?" (`pick`, `/ath/balance`).

mod chaoskit;
mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chaoskit::{farm_view, member, wait_member};
use common::{Drover, call, free_addr};
use drover_core::report::push::sign;
use drover_testkit::client::{self, Reply};
use drover_testkit::{MemberConfig, TestMember};
use http::Method;
use serde_json::{Value, json};

const SECRET: &str = "test-secret-0123456789";

fn unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

struct Setup {
    drover: Drover,
    listen: SocketAddr,
    admin: SocketAddr,
    _members: Vec<TestMember>,
}

/// A drover with farm `app` over the given members, `[reports]` signed with [`SECRET`], and
/// `extra` appended to the farm's table.
async fn setup(members: Vec<MemberConfig>, farm_extra: &str) -> Setup {
    setup_with("\"round-robin\"", members, farm_extra).await
}

/// [`setup`] with the farm's `policy` value as written in TOML.
async fn setup_with(policy: &str, members: Vec<MemberConfig>, farm_extra: &str) -> Setup {
    let (listen, admin) = (free_addr(), free_addr());
    let mut started = Vec::new();
    let mut list = String::new();
    for m in members {
        let name = m.name().to_owned();
        let tm = TestMember::start(m).await.expect("member");
        list.push_str(&format!(
            "{{ name = \"{name}\", address = \"{}\" }}, ",
            tm.addr()
        ));
        started.push(tm);
    }
    let config = format!(
        r#"
[server]
threads = 1

[admin]
listen = "{admin}"
open_reads = true

[reports]
secret = "{SECRET}"

[[listener]]
listen = "{listen}"
farm = "app"

[farm.app]
policy = {policy}
members = [{list}]
{farm_extra}
"#
    );
    let mut drover = Drover::serve(&config);
    drover.wait_listening(admin).await;
    drover.wait_listening(listen).await;
    Setup {
        drover,
        listen,
        admin,
        _members: started,
    }
}

fn signed(body: &[u8]) -> Vec<(&'static str, String)> {
    common::signed(SECRET, body)
}

async fn push(admin: SocketAddr, body: &Value) -> Reply {
    common::push_report(admin, SECRET, body).await
}

async fn update(admin: SocketAddr, query: &str) -> Reply {
    let path = format!("/ath/update?{query}");
    call(admin, Method::GET, &path, b"", &signed(query.as_bytes())).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_in_json_and_the_get_form_are_applied() {
    let s = setup(vec![MemberConfig::new("m1"), MemberConfig::new("m2")], "").await;
    let r = push(
        s.admin,
        &json!({"reports": [
            {"member": "m1", "metrics": {"cpu": 0.4, "queue": 3}},
            {"member": "m2", "metrics": {"cpu": 0.7}, "state": "drain", "reason": "deploy"}
        ]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "{\"accepted\":2,\"applied\":2}\n");
    let view = farm_view(s.admin, "app").await;
    let m1 = member(&view, "m1");
    assert_eq!(m1["reported"]["source"], "push", "{m1}");
    assert_eq!(
        m1["reported"]["metrics"],
        json!({"cpu": 0.4, "queue": 3.0}),
        "{m1}"
    );
    let m2 = member(&view, "m2");
    assert_eq!(m2["draining"], true, "{m2}");
    assert_eq!(
        m2["last_transition"]["reason"], "agent: drain # deploy",
        "{m2}"
    );

    let r = update(s.admin, "member=m1&cpu=0.1&load1=2.5").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let view = farm_view(s.admin, "app").await;
    let m1 = member(&view, "m1");
    assert_eq!(
        m1["reported"]["metrics"],
        json!({"cpu": 0.1, "load1": 2.5}),
        "{m1}"
    );
    assert_eq!(view["name"], "app");
    let all: Value =
        serde_json::from_slice(&client::get(s.admin, "/api/v1/farms").await.body).unwrap();
    assert_eq!(all["reports"]["accepted"], 3, "{}", all["reports"]);
}

/// What a bad report may not change: every member's flags, weight and last report.
fn state(view: &Value) -> Vec<Value> {
    view["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let mut r = m["reported"].clone();
            if let Some(o) = r.as_object_mut() {
                o.remove("age_s");
            }
            json!([
                m["name"],
                m["in"],
                m["up"],
                m["draining"],
                m["weight_pct"],
                r
            ])
        })
        .collect()
}

/// One bad push: case, body, headers (empty = signed correctly), status, what the answer says.
type Case<'a> = (&'a str, Vec<u8>, Vec<(&'a str, String)>, u16, &'a str);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_pushes_are_rejected_with_their_reason_and_change_nothing() {
    let s = setup(vec![MemberConfig::new("m1"), MemberConfig::new("m2")], "").await;
    let good = json!({"member": "m1", "metrics": {"cpu": 0.3}});
    assert_eq!(push(s.admin, &good).await.status, 200);
    let before = state(&farm_view(s.admin, "app").await);

    let body = |v: Value| serde_json::to_vec(&v).unwrap();
    let ok = body(json!({"member": "m1", "metrics": {"cpu": 0.9}, "state": "down"}));
    let ts = unix().to_string();
    let wrong_key = sign(b"not-the-secret-at-all", &ts, &ok);
    let old = (unix() - 3600).to_string();
    let stale_sig = sign(SECRET.as_bytes(), &old, &ok);
    let replayed = signed(&ok);
    let big = vec![b' '; 2 << 20];
    // (case, body, headers, status, reason the body must contain)
    let cases: Vec<Case<'_>> = vec![
        ("unsigned", ok.clone(), vec![], 401, "X-Drover-Timestamp"),
        (
            "no signature",
            ok.clone(),
            vec![("x-drover-timestamp", ts.clone())],
            401,
            "X-Drover-Signature",
        ),
        (
            "wrong secret",
            ok.clone(),
            vec![
                ("x-drover-timestamp", ts.clone()),
                ("x-drover-signature", wrong_key),
            ],
            401,
            "bad signature",
        ),
        (
            "stale timestamp",
            ok.clone(),
            vec![
                ("x-drover-timestamp", old),
                ("x-drover-signature", stale_sig),
            ],
            401,
            "stale timestamp",
        ),
        (
            "not JSON",
            b"cpu=1".to_vec(),
            signed(b"cpu=1"),
            400,
            "push body",
        ),
        (
            "cpu out of range",
            body(json!({"member": "m1", "metrics": {"cpu": 1.5}})),
            vec![],
            400,
            "out of range",
        ),
        (
            "unknown field",
            body(json!({"member": "m1", "cpuu": 1})),
            vec![],
            400,
            "unknown field",
        ),
        (
            "bad state word",
            body(json!({"member": "m1", "state": "raedy"})),
            vec![],
            400,
            "raedy",
        ),
        (
            "one bad report spoils the call",
            body(json!({"reports": [
                {"member": "m2", "metrics": {"cpu": 0.1}},
                {"member": "m1", "metrics": {"cpu": -1}}
            ]})),
            vec![],
            400,
            "out of range",
        ),
        (
            "unknown member",
            body(json!({"member": "m9", "metrics": {"cpu": 0.1}})),
            vec![],
            404,
            "unknown member \"m9\"",
        ),
        ("too large", big.clone(), signed(&big), 413, "too large"),
    ];
    for (case, body, mut headers, status, reason) in cases {
        if headers.is_empty() && !case.starts_with("unsigned") {
            headers = signed(&body);
        }
        let r = call(s.admin, Method::POST, "/api/v1/reports", &body, &headers).await;
        assert_eq!(r.status, status, "{case}: {}", r.text());
        assert!(
            r.text().contains(reason),
            "{case}: {:?} lacks {reason:?}",
            r.text()
        );
        assert_eq!(
            state(&farm_view(s.admin, "app").await),
            before,
            "{case} changed state"
        );
    }
    // A replay: the first use is good (and applied), the second is refused.
    let r = call(s.admin, Method::POST, "/api/v1/reports", &ok, &replayed).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let after_first = state(&farm_view(s.admin, "app").await);
    let r = call(s.admin, Method::POST, "/api/v1/reports", &ok, &replayed).await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(r.text().contains("replay"), "{}", r.text());
    assert_eq!(state(&farm_view(s.admin, "app").await), after_first);
    // The GET form: a bad metric, and a query signed for another query.
    let r = update(s.admin, "member=m1&cpu=abc").await;
    assert_eq!(r.status, 400, "{}", r.text());
    let sig = signed(b"member=m1&cpu=0.1");
    let r = call(
        s.admin,
        Method::GET,
        "/ath/update?member=m1&cpu=0.9",
        b"",
        &sig,
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(state(&farm_view(s.admin, "app").await), after_first);

    let all: Value =
        serde_json::from_slice(&client::get(s.admin, "/api/v1/farms").await.body).unwrap();
    let rejected = &all["reports"]["rejected"];
    assert_eq!(rejected["unauthorized"], 4, "{rejected}");
    assert_eq!(rejected["stale"], 1, "{rejected}");
    assert_eq!(rejected["replay"], 1, "{rejected}");
    assert_eq!(rejected["unknown_member"], 1, "{rejected}");
    assert_eq!(rejected["too_large"], 1, "{rejected}");
    s.drover
        // The first reject is logged; the rest within the second are counted, not logged.
        .wait_for_log(
            0,
            &["load report rejected: signature: missing X-Drover-Timestamp header"],
        )
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_are_refused_without_a_secret() {
    let (listen, admin, member_addr) = (free_addr(), free_addr(), free_addr());
    let config = format!(
        "[admin]\nlisten = \"{admin}\"\nopen_reads = true\n[[listener]]\nlisten = \"{listen}\"\nfarm = \"app\"\n\
         [farm.app]\nmembers = [{{ name = \"m1\", address = \"{member_addr}\" }}]\n"
    );
    let mut drover = Drover::serve(&config);
    drover.wait_listening(admin).await;
    let r = push(admin, &json!({"member": "m1"})).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("set [reports] secret"), "{}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orca_headers_are_applied_and_never_reach_the_client() {
    let good = "TEXT cpu_utilization=0.25, named_metrics.queue=3";
    let s = setup(
        vec![
            MemberConfig::new("m1").header("endpoint-load-metrics", good),
            MemberConfig::new("m2").header("endpoint-load-metrics", "TEXT cpu_utilization=abc"),
        ],
        "[farm.app.reports]\norca_request = true\n",
    )
    .await;
    for _ in 0..4 {
        let r = client::get(s.listen, "/echo").await;
        assert_eq!(r.status, 200);
        assert!(
            r.headers.get("endpoint-load-metrics").is_none(),
            "leaked: {:?}",
            r.headers
        );
        // orca_request asks each member for the header.
        assert!(
            r.text().contains("endpoint-load-metrics-format: text"),
            "{}",
            r.text()
        );
    }
    let view = farm_view(s.admin, "app").await;
    let m1 = member(&view, "m1");
    assert_eq!(m1["reported"]["source"], "orca", "{m1}");
    assert_eq!(
        m1["reported"]["metrics"],
        json!({"cpu": 0.25, "queue": 3.0}),
        "{m1}"
    );
    let m2 = member(&view, "m2");
    assert!(m2["reported"].is_null(), "{m2}");
    assert_eq!(m2["report_rejects"], 2, "{m2}");
    assert_eq!(
        (view["orca_reports"].as_u64(), view["orca_rejects"].as_u64()),
        (Some(2), Some(2))
    );
    s.drover
        .wait_for_log(0, &["load report rejected: ORCA header"])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_member_goes_out_and_comes_back_in_with_its_next_report() {
    let s = setup(
        vec![MemberConfig::new("m1"), MemberConfig::new("m2")],
        "[farm.app.reports]\nexpect = \"1s\"\norca = false\n",
    )
    .await;
    // m1 keeps reporting; m2 never does. Bounded: at most 10 s.
    let deadline = Instant::now() + Duration::from_secs(10);
    let out = loop {
        assert_eq!(
            push(s.admin, &json!({"member": "m1", "metrics": {"cpu": 0.2}}))
                .await
                .status,
            200
        );
        let view = farm_view(s.admin, "app").await;
        let m2 = member(&view, "m2").clone();
        if m2["in"] == false {
            assert_eq!(member(&view, "m1")["in"], true, "{view}");
            break m2;
        }
        assert!(Instant::now() < deadline, "m2 never went out: {m2}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        out["last_transition"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("no load report yet for"),
        "{out}"
    );
    // Traffic avoids the member that is out.
    for _ in 0..6 {
        let r = client::get(s.listen, "/").await;
        assert_eq!(r.headers["x-member"], "m1");
    }
    let r = update(s.admin, "member=m2&cpu=0.5").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let m2 = wait_member(
        s.admin,
        "app",
        "m2",
        Duration::from_secs(5),
        "in again",
        |m| m["in"] == true,
    )
    .await;
    assert_eq!(
        m2["last_transition"]["reason"], "push load report received",
        "{m2}"
    );
    s.drover
        .wait_for_log(0, &["member m2 out: no load report yet for"])
        .await;
    s.drover
        .wait_for_log(0, &["member m2 in: push load report received"])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pick_explains_itself_and_ath_balance_names_a_member() {
    let s = setup(vec![MemberConfig::new("m1"), MemberConfig::new("m2")], "").await;
    // m2 drained by its agent: pick must say so.
    assert_eq!(
        push(s.admin, &json!({"member": "m2", "state": "drain"}))
            .await
            .status,
        200
    );
    let r = client::get(s.admin, "/api/v1/farms/app/pick").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["farm"], "app");
    assert_eq!(v["policy"], "round-robin");
    assert_eq!(v["chosen"]["name"], "m1", "{v}");
    let removed = v["removed"].as_array().unwrap();
    assert_eq!(removed.len(), 1, "{v}");
    assert_eq!(removed[0]["name"], "m2");
    assert_eq!(removed[0]["stage"], "ready");
    assert!(
        removed[0]["why"].as_str().unwrap().contains("draining"),
        "{v}"
    );
    assert_eq!(v["candidates"][0]["name"], "m1", "{v}");

    let r = client::get(s.admin, "/ath/balance/?app").await;
    assert_eq!((r.status.as_u16(), r.text()), (200, "m1\n"));
    let r = client::get(s.admin, "/ath/balance/?nope").await;
    assert_eq!(r.status, 404);
    let r = client::get(s.admin, "/api/v1/farms/nope/pick").await;
    assert_eq!(r.status, 404);
    // Paths where the prefix and the suffix overlap, or name no farm: 404, and drover lives on.
    for path in [
        "/api/v1/farms/pick",
        "/api/v1/farms//pick",
        "/api/v1/farms/a/b/pick",
    ] {
        assert_eq!(client::get(s.admin, path).await.status, 404, "{path}");
    }
    assert_eq!(client::get(s.admin, "/healthz").await.status, 200);
    // Nothing ready: 503 from both.
    assert_eq!(
        push(s.admin, &json!({"member": "m1", "state": "drain"}))
            .await
            .status,
        200
    );
    assert_eq!(client::get(s.admin, "/ath/balance/?app").await.status, 503);
    assert_eq!(
        client::get(s.admin, "/api/v1/farms/app/pick").await.status,
        503
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_pick_names_the_stage_that_removed_each_member() {
    let s = setup_with(
        r#"["fresh 20s", "least rif"]"#,
        vec![
            MemberConfig::new("m1"),
            MemberConfig::new("m2"),
            MemberConfig::new("m3"),
        ],
        "",
    )
    .await;
    // m1 and m2 report; m3 never does, so "fresh" removes it.
    let r = push(
        s.admin,
        &json!({"reports": [{"member": "m1", "metrics": {"cpu": 0.2}}, {"member": "m2"}]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = client::get(s.admin, "/api/v1/farms/app/pick").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    let removed = v["removed"].as_array().unwrap();
    assert_eq!(removed.len(), 1, "{v}");
    assert_eq!(
        (removed[0]["name"].as_str(), removed[0]["stage"].as_str()),
        (Some("m3"), Some("fresh 20s")),
        "{v}"
    );
    let chosen = v["chosen"]["name"].as_str().unwrap();
    assert!(chosen == "m1" || chosen == "m2", "{v}");
    // Traffic follows the pipeline: m3 gets nothing.
    for _ in 0..6 {
        let r = client::get(s.listen, "/").await;
        assert_ne!(r.headers["x-member"], "m3");
    }
}
