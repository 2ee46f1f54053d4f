use std::path::Path;

use drover_proxy::{Options, Proxy};

pub use drover_testkit::client::*;
pub use drover_testkit::{Latency, MemberConfig, TestMember, X_MEMBER};

/// Starts drover in-process (one worker thread) on a config text; fails the test on a bad config.
pub fn drover(toml: &str) -> Proxy {
    drover_threads(toml, 1)
}

pub fn drover_threads(toml: &str, threads: usize) -> Proxy {
    let config = drover_config::parse_str(toml, Path::new("test.toml"))
        .unwrap_or_else(|e| panic!("test config is invalid:\n{e}\n{toml}"));
    Proxy::start(
        &config,
        Options {
            threads: Some(threads),
            ..Options::default()
        },
    )
    .expect("proxy starts")
}

/// `[[farm.<farm>.members]]` tables for these members, with extra keys per member.
pub fn members_toml(
    farm: &str,
    members: &[&TestMember],
    extra: impl Fn(usize) -> String,
) -> String {
    members
        .iter()
        .enumerate()
        .map(|(i, m)| {
            format!(
                "[[farm.{farm}.members]]\nname = \"{}\"\naddress = \"{}\"\n{}\n",
                m.name(),
                m.addr(),
                extra(i)
            )
        })
        .collect()
}

/// A listener on 127.0.0.1:0 sending everything to farm `app` with `policy`, over `members`.
pub fn simple_config(policy: &str, members: &[&TestMember]) -> String {
    format!(
        "[[listener]]\nlisten = \"127.0.0.1:0\"\nfarm = \"app\"\n\n[farm.app]\npolicy = \"{policy}\"\n{}",
        members_toml("app", members, |_| String::new())
    )
}

pub async fn start(names: &[&str]) -> Vec<TestMember> {
    let mut out = Vec::new();
    for n in names {
        out.push(
            TestMember::start(MemberConfig::new(*n))
                .await
                .expect("member starts"),
        );
    }
    out
}

/// The member that answered.
pub fn member_of(reply: &Reply) -> String {
    reply
        .headers
        .get(&X_MEMBER)
        .map(|v| v.to_str().expect("ascii").to_owned())
        .unwrap_or_else(|| panic!("no X-Member in a {} reply: {}", reply.status, reply.text()))
}

/// Sends `n` sequential GETs of `path` on one keep-alive connection, counting answers per member.
pub async fn tally(
    addr: std::net::SocketAddr,
    path: &str,
    n: usize,
) -> std::collections::BTreeMap<String, usize> {
    let mut conn = connect(addr).await;
    let mut counts = std::collections::BTreeMap::new();
    for _ in 0..n {
        let r = send(&mut conn, get_request(addr, path)).await;
        assert_eq!(r.status, 200, "{}", r.text());
        *counts.entry(member_of(&r)).or_insert(0) += 1;
    }
    counts
}
