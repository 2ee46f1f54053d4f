//! Health checks restarted over a rebuilt farm (every reload does it) go on counting: a member
//! failing its checks goes down even when the checks restart after every single check.

use std::sync::Arc;
use std::time::{Duration, Instant};

use drover_config::{Check, CheckKind};
use drover_core::{Farm, Flag, MemberSpec, PolicyKind};
use drover_health::{FarmChecks, HealthService};

/// Polls `cond` every 2 ms for up to 5 s.
fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn failures_in_a_row_are_counted_across_restarts_of_the_checks() {
    // Nothing listens on port 1: every TCP check fails at once.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = dead.local_addr().unwrap();
    drop(dead);
    let first = Farm::new(
        "app",
        PolicyKind::RoundRobin,
        vec![MemberSpec {
            name: "m0".into(),
            addr,
            weight: 1,
            route: None,
            enabled: true,
        }],
    );
    let member = Arc::clone(&first.members[0]);
    let check = Check {
        kind: CheckKind::Tcp,
        interval: Duration::from_millis(100),
        down_interval: Duration::from_millis(100),
        timeout: Duration::from_millis(100),
        jitter: 0.0,
        fall: 3,
        ..Check::default()
    };
    let mut farm = Arc::new(first);
    for restart in 0..3 {
        assert!(
            member.state.get(Flag::Up),
            "down after only {restart} checks"
        );
        let before = member.health.probes.last();
        let service = HealthService::start(vec![FarmChecks {
            farm: Arc::clone(&farm),
            checks: vec![Some(check.clone())],
            agents: Vec::new(),
        }])
        .unwrap();
        eventually("one more check", || member.health.probes.last() != before);
        service.stop();
        // What a reload does: a new farm over the same member, checks started anew over it.
        farm = Arc::new(
            Farm::with_members("app", PolicyKind::RoundRobin, vec![Arc::clone(&member)])
                .carrying(&farm),
        );
    }
    assert!(!member.state.get(Flag::Up), "three failures in a row");
    let t = member.health.last_transition().unwrap();
    assert!(t.reason.starts_with("3 checks failed in a row"), "{t}");
}
