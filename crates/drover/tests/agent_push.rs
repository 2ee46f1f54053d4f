//! A real `drover agent` process pushing to a real `drover serve`: the member's report (its
//! custom metric, cpu and state) shows in `GET /api/v1/farms`; when its health script starts
//! failing the member is reported down with the script's output as the reason, and comes back up
//! when it passes again. The agent's own agent-check port is read by a raw TCP client on the way.

mod chaoskit;
mod common;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use chaoskit::wait_member;
use common::{Drover, free_addr, temp_path};
use drover_core::report::{AgentState, agent_check};
use drover_testkit::{MemberConfig, TestMember};
use tokio::io::AsyncReadExt;

const SECRET: &str = "agent-e2e-secret-0123456789";

async fn read_agent_check(addr: SocketAddr) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect agent-check");
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_string(&mut out))
        .await
        .expect("agent-check port did not close")
        .expect("read agent-check");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_agent_pushes_to_a_real_drover() {
    let member = TestMember::start(MemberConfig::new("m1"))
        .await
        .expect("member");
    let (listen, admin) = (free_addr(), free_addr());
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
policy = "least-conn"
members = [{{ name = "m1", address = "{}" }}]
"#,
        member.addr()
    );
    let mut drover = Drover::serve(&config);
    drover.wait_listening(admin).await;

    let secret_file = temp_path("agent-secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let flag = temp_path("maintenance-flag");
    let script = temp_path("health.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nif [ -e '{}' ]; then echo 'maintenance window'; exit 1; fi\necho ok\n",
            flag.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let agent_check = free_addr();
    let mut agent = Drover::spawn(&[
        "agent",
        "--member",
        "m1",
        "--interval",
        "200ms",
        "--push",
        &format!("http://{admin}"),
        "--secret-file",
        secret_file.to_str().unwrap(),
        "--metric",
        "db.conns=cmd:echo 12",
        "--health-script",
        script.to_str().unwrap(),
        "--agent-check",
        &agent_check.to_string(),
    ]);
    agent.wait_listening(agent_check).await;

    let within = Duration::from_secs(15);
    let m = wait_member(admin, "app", "m1", within, "a pushed report", |m| {
        m["reported"]["source"] == "push"
    })
    .await;
    let r = &m["reported"];
    assert_eq!(r["metrics"]["db.conns"], 12.0, "{m}");
    let cpu = r["metrics"]["cpu"].as_f64().expect("cpu");
    assert!((0.0..=1.0).contains(&cpu), "{m}");
    assert_eq!(r["states"], serde_json::json!(["up"]), "{m}");
    assert_eq!(m["up"], true, "{m}");

    let line = read_agent_check(agent_check).await;
    let report = agent_check::parse(&line, "m1", 0).expect("agent-check line");
    assert_eq!(report.health, Some(AgentState::Up), "{line:?}");

    // The health script fails: down, with its output as the reason, on drover and on the port.
    std::fs::write(&flag, "").unwrap();
    let m = wait_member(admin, "app", "m1", within, "reported down", |m| {
        m["reported"]["states"] == serde_json::json!(["down"])
    })
    .await;
    assert_eq!(m["reported"]["reason"], "maintenance window", "{m}");
    let line = read_agent_check(agent_check).await;
    assert!(line.starts_with("down "), "{line:?}");
    assert!(line.ends_with("# maintenance window\n"), "{line:?}");
    wait_member(admin, "app", "m1", within, "held down", |m| {
        m["up"] == false
    })
    .await;

    // And passes again.
    std::fs::remove_file(&flag).unwrap();
    wait_member(admin, "app", "m1", within, "back up", |m| {
        m["reported"]["states"] == serde_json::json!(["up"]) && m["up"] == true
    })
    .await;
    assert!(
        !agent.stderr().contains("push failed"),
        "agent log:\n{}",
        agent.stderr()
    );
    let _ = std::fs::remove_file(secret_file);
    let _ = std::fs::remove_file(script);
}
