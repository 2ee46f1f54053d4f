//! `drover agent` through the real binary: `--once` prints one report that drover's own push parser
//! accepts, and a bad command line fails with every problem named.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use drover_core::report::push::parse_json;
use drover_core::report::{AgentState, agent_check};

/// Runs `drover agent args...` to completion, killing it (by its own handle) after 30 s.
fn agent(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_drover"))
        .arg("agent")
        .args(args)
        .env_remove("DROVER_AGENT_SECRET")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn drover agent");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("drover agent {args:?} did not exit within 30 s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().expect("output")
}

#[test]
fn once_prints_a_report_the_push_parser_accepts() {
    let out = agent(&["--member", "m1", "--once", "--metric", "x=cmd:echo 7"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{:?}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let report = parse_json(stdout.trim().as_bytes(), 0)
        .unwrap_or_else(|e| panic!("{e}: {stdout}"))
        .remove(0);
    assert_eq!(report.member, "m1");
    assert_eq!(report.metrics.get("x"), Some(7.0), "{stdout}");
    let cpu = report.metrics.get("cpu").expect("cpu");
    assert!((0.0..=1.0).contains(&cpu), "{stdout}");
    assert_eq!(report.health, Some(AgentState::Up), "{stdout}");
}

#[test]
fn a_failing_health_script_makes_once_print_down() {
    let out = agent(&["--member", "m1", "--once", "--health-script", "/bin/false"]);
    assert!(out.status.success());
    let report = parse_json(&out.stdout, 0).unwrap().remove(0);
    assert_eq!(report.health, Some(AgentState::Down));
    assert_eq!(
        report.reason.as_deref(),
        Some("health script exited with status 1")
    );
    // The same words as an agent-check line parse too.
    let line = format!("down 50% # {}", report.reason.unwrap());
    assert!(agent_check::parse(&line, "m1", 0).is_ok());
}

#[test]
fn a_bad_command_line_names_every_problem() {
    let out = agent(&[
        "--member",
        "m1",
        "--metric",
        "cpu=cmd:echo 1",
        "--push",
        "http://127.0.0.1:9",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("built-in metric"), "{stderr}");
    assert!(stderr.contains("DROVER_AGENT_SECRET"), "{stderr}");
    let out = agent(&["--member", "m1", "--metric", "Bad=cmd:echo 1", "--once"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bad metric name"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn metric_commands_do_not_see_the_push_secret() {
    let out = Command::new(env!("CARGO_BIN_EXE_drover"))
        .args(["agent", "--member", "m1", "--once", "--metric"])
        .arg("leak=cmd:[ -z \"$DROVER_AGENT_SECRET\" ] && echo 0 || echo 1")
        .env("DROVER_AGENT_SECRET", "a-secret-of-some-length")
        .stdin(Stdio::null())
        .output()
        .expect("run drover agent");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = parse_json(&out.stdout, 0).unwrap().remove(0);
    assert_eq!(
        report.metrics.get("leak"),
        Some(0.0),
        "the command saw the secret"
    );
}
