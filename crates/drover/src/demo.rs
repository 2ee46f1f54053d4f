//! `drover demo`: a complete balancer with one command and no files.
//!
//! Starts three in-process test members of different speeds on loopback ports chosen by the
//! kernel, writes a config for them (the same TOML a user would write, validated by the same
//! parser), starts the proxy on it, the health checks (an HTTP check of each member every second)
//! and the admin listener, and prints what to try.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use drover_proxy::{Options, Proxy};
use drover_testkit::{Latency, MemberConfig, TestMember};

/// The demo's members: name and latency.
const MEMBERS: [(&str, Duration); 3] = [
    ("fast", Duration::from_millis(1)),
    ("medium", Duration::from_millis(10)),
    ("slow", Duration::from_millis(50)),
];

pub fn run(listen: SocketAddr, admin: SocketAddr) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("cannot start the demo runtime")?;
    rt.block_on(async move {
        let mut members = Vec::new();
        for (name, latency) in MEMBERS {
            let m = TestMember::start(MemberConfig::new(name).latency(Latency::Fixed(latency)))
                .await
                .with_context(|| format!("cannot start demo member {name}"))?;
            members.push(m);
        }
        let token = demo_token();
        let toml = config_text(listen, admin, &token, &members);
        let config = drover_config::parse_str(&toml, Path::new("<demo>"))
            .map_err(|e| anyhow::anyhow!("demo config is invalid (a bug):\n{e}"))?;
        let proxy = Proxy::start(&config, Options {
                threads: Some(1),
                ..Options::default()
            })
            .with_context(|| format!("cannot start the demo listener on {listen} (is something else using it? try --listen)"))?;
        print_intro(proxy.addr(), admin, &token, &members);
        crate::serve_until_signal(None, config, proxy, crate::Takeover::default()).await
    })
}

/// A write token for this demo run: random, printed with the intro.
fn demo_token() -> String {
    use std::hash::{BuildHasher, RandomState};
    let a = RandomState::new().hash_one(std::process::id());
    let b = RandomState::new().hash_one(a);
    format!("demo-{a:016x}{b:016x}")
}

fn config_text(
    listen: SocketAddr,
    admin: SocketAddr,
    token: &str,
    members: &[TestMember],
) -> String {
    let mut toml = format!(
        "[admin]\nlisten = \"{admin}\"\nopen_reads = true\ntoken = \"{token}\"\n\n[[listener]]\nname = \"demo\"\nlisten = \"{listen}\"\nfarm = \"app\"\n\n\
         [farm.app]\npolicy = \"round-robin\"\n\n[farm.app.check]\npath = \"/\"\ninterval = \"1s\"\n\n"
    );
    for m in members {
        toml.push_str(&format!(
            "[[farm.app.members]]\nname = \"{}\"\naddress = \"{}\"\n",
            m.name(),
            m.addr()
        ));
    }
    toml
}

fn print_intro(listen: SocketAddr, admin: SocketAddr, token: &str, members: &[TestMember]) {
    println!(
        "drover demo: a listener on http://{listen}/ balancing round robin over three test members:"
    );
    for (m, (_, latency)) in members.iter().zip(MEMBERS) {
        println!(
            "  {:<7} http://{}/  (answers in ~{} ms)",
            m.name(),
            m.addr(),
            latency.as_millis()
        );
    }
    println!();
    println!("Try:");
    println!(
        "  curl -s http://{listen}/              # run it a few times: fast, medium, slow, fast, ..."
    );
    println!(
        "  curl -s http://{listen}/echo          # what the member received (X-Forwarded-For, ...)"
    );
    println!("  curl -s http://{admin}/api/v1/farms   # members, flags and counters");
    println!("  curl -s http://{admin}/api/v1/farms/app/pick   # which member next, and why");
    println!("  curl -s http://{admin}/ath/balance/?app         # just its name");
    println!(
        "  curl -s -X POST -H 'Authorization: Bearer {token}' http://{admin}/api/v1/farms/app/members/{}/disable   # take a member out",
        members.first().map_or("fast", |m| m.name())
    );
    println!(
        "Or open the dashboard, http://{admin}/ (live table; its buttons ask for the token {token})."
    );
    println!("Stop with Ctrl-C (in-flight requests finish first).");
}
