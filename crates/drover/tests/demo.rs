//! `drover demo`: one command gives a balancer over three test members and an admin listener.

mod common;

use std::time::{Duration, Instant};

use common::{Drover, free_addr};
use drover_testkit::client::{DEADLINE, get};

fn member_of(reply: &drover_testkit::client::Reply) -> String {
    let name = reply
        .headers
        .get("x-member")
        .expect("X-Member header")
        .to_str()
        .expect("ascii X-Member");
    name.to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_balances_round_robin_and_lists_members() {
    let (listen, admin) = (free_addr(), free_addr());
    let mut drover = Drover::spawn(&[
        "demo",
        "--listen",
        &listen.to_string(),
        "--admin",
        &admin.to_string(),
    ]);
    drover.wait_listening(listen).await;
    drover.wait_listening(admin).await;

    let mut seen = Vec::new();
    for i in 0..6 {
        let reply = get(listen, "/").await;
        assert_eq!(reply.status, 200, "request {i}: {:?}", reply.body);
        let name = member_of(&reply);
        assert!(
            reply.text().starts_with(&name),
            "request {i}: body {:?} does not start with the member name {name}",
            reply.text()
        );
        seen.push(name);
    }
    assert_eq!(
        seen,
        ["fast", "medium", "slow", "fast", "medium", "slow"],
        "members in turn"
    );

    let reply = get(admin, "/api/v1/farms").await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(
        reply.headers.get("content-type").map(|v| v.as_bytes()),
        Some(&b"application/json"[..])
    );
    let json: serde_json::Value = serde_json::from_slice(&reply.body).expect("JSON");
    let farms = json["farms"].as_array().expect("farms array");
    assert_eq!(farms.len(), 1, "{json:#}");
    let members = farms[0]["members"].as_array().expect("members array");
    let names: Vec<&str> = members
        .iter()
        .map(|m| m["name"].as_str().expect("member name"))
        .collect();
    assert_eq!(names, ["fast", "medium", "slow"], "{json:#}");
    for m in members {
        assert_eq!(m["ready"], true, "{m:#}");
    }

    // The commands the intro prints work: "which member next" and its bare-name form.
    let reply = get(admin, "/api/v1/farms/app/pick").await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let pick: serde_json::Value = serde_json::from_slice(&reply.body).expect("pick JSON");
    assert!(
        names.contains(&pick["chosen"]["name"].as_str().unwrap_or("")),
        "{pick:#}"
    );
    assert_eq!(
        pick["candidates"].as_array().map(Vec::len),
        Some(3),
        "{pick:#}"
    );
    let reply = get(admin, "/ath/balance/?app").await;
    assert_eq!(reply.status, 200);
    assert!(
        names.contains(&reply.text().trim_end()),
        "{:?}",
        reply.text()
    );
    assert!(
        drover.stdout().contains("/ath/balance/?app"),
        "{}",
        drover.stdout()
    );

    // The counters catch up with the six requests (they settle when each response ends).
    let deadline = Instant::now() + DEADLINE;
    loop {
        let json: serde_json::Value =
            serde_json::from_slice(&get(admin, "/api/v1/farms").await.body).expect("JSON");
        let counts: Vec<u64> = json["farms"][0]["members"]
            .as_array()
            .expect("members array")
            .iter()
            .map(|m| m["requests"].as_u64().expect("requests counter"))
            .collect();
        if counts == [2, 2, 2] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "member request counters {counts:?}, expected [2, 2, 2]"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // The intro tells a newcomer where to go.
    let intro = drover.stdout();
    assert!(
        intro.contains(&format!("http://{listen}/")),
        "stdout:\n{intro}"
    );

    drover.signal("TERM");
    let status = drover
        .wait_exit(DEADLINE)
        .await
        .expect("demo exits on SIGTERM");
    assert!(status.success(), "demo exit status: {status}");
}
