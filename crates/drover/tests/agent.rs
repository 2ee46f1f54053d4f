//! The agent-check client in the real binary: a farm whose member has an HAProxy-style agent (a
//! scripted TCP listener in this test answering `drain # deploy`), and the admin API showing the
//! member draining with the agent's report.

mod chaoskit;
mod common;

use std::net::SocketAddr;
use std::time::Duration;

use chaoskit::wait_member;
use common::{Drover, free_addr};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

/// Answers every connection with `line`, then closes it.
async fn scripted_agent(line: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind agent");
    let addr = listener.local_addr().expect("agent addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let _ = stream.write_all(line.as_bytes()).await;
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_saying_drain_drains_the_member_in_the_admin_api() {
    let agent = scripted_agent("drain 50% # deploy\n").await;
    let (listen, admin, member) = (free_addr(), free_addr(), free_addr());
    let config = format!(
        r#"
[server]
threads = 1

[admin]
listen = "{admin}"
open_reads = true

[[listener]]
listen = "{listen}"
farm = "app"

[farm.app]
policy = "least-conn"
members = [{{ name = "m1", address = "{member}" }}]

[farm.app.agent]
port = {port}
interval = "100ms"
timeout = "50ms"
"#,
        port = agent.port()
    );
    let mut drover = Drover::serve(&config);
    drover.wait_listening(admin).await;
    let m = wait_member(
        admin,
        "app",
        "m1",
        Duration::from_secs(5),
        "draining",
        |m| m["draining"] == true,
    )
    .await;
    assert_eq!(m["weight_pct"], 50, "{m}");
    assert_eq!(
        m["last_transition"]["reason"], "agent: drain # deploy",
        "{m}"
    );
    let r = &m["reported"];
    assert_eq!(r["source"], "agent-check", "{m}");
    assert_eq!(r["states"], serde_json::json!(["drain"]), "{m}");
    assert_eq!(r["reason"], "deploy", "{m}");
    assert_eq!(m["report_rejects"], 0, "{m}");
    drover
        .wait_for_log(0, &["member m1 draining: agent: drain # deploy"])
        .await;
}
