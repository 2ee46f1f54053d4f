//! `[farm.<name>.agent]` and the members' `agent` overrides: defaults, merging, and each broken
//! key reported once on its line with what would be valid.

use std::path::Path;
use std::time::Duration;

use drover_config::{AgentCheck, ConfigError, parse_str};

/// Lines 1 to 4; the farm's keys follow from line 5.
const HEAD: &str = "[[listener]]\nlisten = \"127.0.0.1:80\"\nfarm = \"f\"\n[farm.f]\n";

fn agents(text: &str) -> Vec<Option<AgentCheck>> {
    let config = parse_str(&format!("{HEAD}{text}"), Path::new("t.toml"))
        .unwrap_or_else(|e| panic!("{text}\n{e}"));
    config.farm("f").expect("farm f").member_agents.clone()
}

fn errors(text: &str) -> Vec<String> {
    parse_str(&format!("{HEAD}{text}"), Path::new("t.toml"))
        .expect_err("should not validate")
        .0
        .iter()
        .map(ConfigError::to_string)
        .collect()
}

#[track_caller]
fn one_error(text: &str, starts: &str, says: &str) {
    let e = errors(text);
    assert_eq!(e.len(), 1, "{e:#?}");
    assert!(
        e[0].starts_with(starts),
        "expected {starts:?}...\n got {}",
        e[0]
    );
    assert!(e[0].contains(says), "expected {says:?} in\n{}", e[0]);
}

#[test]
fn defaults_and_member_overrides() {
    let got = agents(
        "members = [\n\
         { address = \"127.0.0.1:9001\" },\n\
         { address = \"127.0.0.1:9002\", agent = { port = 9802, send = \"ready\\n\" } },\n\
         { address = \"127.0.0.1:9003\", agent = false },\n\
         ]\n\
         [farm.f.agent]\nport = 9777\ninterval = \"3s\"\n",
    );
    let farm = AgentCheck {
        port: 9777,
        interval: Duration::from_secs(3),
        timeout: AgentCheck::DEFAULT_TIMEOUT,
        send: None,
    };
    assert_eq!(got[0].as_ref(), Some(&farm));
    assert_eq!(
        got[1].as_ref(),
        Some(&AgentCheck {
            port: 9802,
            send: Some("ready\n".into()),
            ..farm.clone()
        })
    );
    assert_eq!(got[2], None, "agent = false");
}

#[test]
fn no_agent_table_means_no_agent_unless_a_member_has_one() {
    let got = agents(
        "members = [{ address = \"127.0.0.1:9001\" }, { address = \"127.0.0.1:9002\", agent = { port = 1 } }]\n",
    );
    assert_eq!(got[0], None);
    let one = got[1].as_ref().expect("member's own agent");
    assert_eq!(
        (one.port, one.interval, one.timeout),
        (1, Duration::from_secs(2), Duration::from_secs(1))
    );
}

#[test]
fn port_is_required_and_reported_once_at_the_farm() {
    one_error(
        "members = [{ address = \"127.0.0.1:9001\" }, { address = \"127.0.0.1:9002\" }]\n[farm.f.agent]\ninterval = \"5s\"\n",
        "t.toml:6: farm.f.agent.port: missing",
        "e.g. port = 9777",
    );
    one_error(
        "members = [{ address = \"127.0.0.1:9001\", agent = { send = \"x\" } }]\n",
        "t.toml:5: farm.f.members[0].agent.port: missing",
        "TCP port",
    );
    one_error(
        "members = [{ address = \"127.0.0.1:9001\" }]\n[farm.f.agent]\nport = 70000\n",
        "t.toml:7: farm.f.agent.port = 70000:",
        "65535",
    );
}

#[test]
fn timeout_must_fit_in_the_interval() {
    one_error(
        "members = [{ address = \"127.0.0.1:9001\" }]\n[farm.f.agent]\nport = 9\ninterval = \"500ms\"\n",
        "t.toml:8: farm.f.agent.interval = \"500ms\": shorter than timeout (1s, the default)",
        "make interval at least 1s",
    );
    one_error(
        "members = [{ address = \"127.0.0.1:9001\", agent = { timeout = \"3s\" } }]\n[farm.f.agent]\nport = 9\n",
        "t.toml:5: farm.f.members[0].agent.timeout = \"3s\": longer than interval (2s, the default)",
        "make timeout at most 2s",
    );
}

#[test]
fn bad_values_say_what_is_valid() {
    one_error(
        "members = [{ address = \"127.0.0.1:9001\" }]\n[farm.f.agent]\nport = 9\nsend = \"\"\n",
        "t.toml:8: farm.f.agent.send = \"\": must not be empty",
        "leave it out",
    );
    one_error(
        "members = [{ address = \"127.0.0.1:9001\" }]\n[farm.f.agent]\nport = 9\nsned = \"x\"\n",
        "t.toml:8: farm.f.agent.sned",
        "send",
    );
    one_error(
        "members = [{ address = \"127.0.0.1:9001\", agent = 9777 }]\n",
        "t.toml:5: farm.f.members[0].agent = 9777: expected false",
        "agent = { port = 9777 }",
    );
}
