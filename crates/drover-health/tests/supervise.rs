//! The ejection supervisor of a running health service: it ends ejections when their backoff is
//! over and applies the outlier rule to live counters.

use std::sync::Arc;
use std::time::{Duration, Instant};

use drover_core::outlier::OutlierRules;
use drover_core::{Farm, Flag, HealthRules, MemberSpec, PassiveRules, PolicyKind, clock};
use drover_health::{FarmChecks, HealthService};

fn farm(passive: PassiveRules) -> Arc<Farm> {
    let specs = (0..3)
        .map(|i| MemberSpec {
            name: format!("m{i}"),
            addr: format!("127.0.0.1:{}", 1 + i).parse().unwrap(),
            weight: 1,
            route: None,
            enabled: true,
        })
        .collect();
    Arc::new(
        Farm::new("app", PolicyKind::RoundRobin, specs).with_rules(HealthRules {
            passive,
            ..HealthRules::default()
        }),
    )
}

fn service(farm: &Arc<Farm>) -> HealthService {
    HealthService::start(vec![FarmChecks {
        farm: Arc::clone(farm),
        checks: vec![None; farm.members.len()],
        agents: Vec::new(),
    }])
    .expect("health service")
}

/// Polls `cond` every 5 ms for up to 5 s.
fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn an_ejected_member_returns_when_its_backoff_is_over() {
    let farm = farm(PassiveRules {
        consecutive_failures: 3,
        ejection_time: Duration::from_millis(300),
        max_ejection_time: Duration::from_secs(10),
        max_ejected: 0.5,
        ..PassiveRules::default()
    });
    let _health = service(&farm);
    let ejected_at = Instant::now();
    for _ in 0..3 {
        farm.report(1, Some("503"), clock::now());
    }
    assert!(farm.members[1].state.get(Flag::Ejected));
    eventually("m1 returns", || !farm.members[1].state.get(Flag::Ejected));
    let after = ejected_at.elapsed();
    assert!(
        after >= Duration::from_millis(300),
        "not before its time: {after:?}"
    );
    let t = farm.members[1].health.last_transition().unwrap();
    assert_eq!(t.to_string(), "returned: ejection of 300ms is over");
}

#[test]
fn a_member_failing_far_more_than_the_rest_is_ejected_as_an_outlier() {
    let farm = farm(PassiveRules {
        consecutive_failures: 0,
        max_ejected: 0.5,
        ejection_time: Duration::from_secs(30),
        max_ejection_time: Duration::from_secs(60),
        outlier: OutlierRules {
            factor: 3.0,
            min_requests: 20,
            min_error_rate: 0.1,
        },
        outlier_interval: Duration::from_millis(100),
    });
    let _health = service(&farm);
    // Live traffic: m0 fails every other request (never 3 in a row), the others 1 in 50.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut n = 0u64;
    while !farm.members[0].state.get(Flag::Ejected) {
        assert!(Instant::now() < deadline, "m0 was never ejected");
        for (i, m) in farm.members.iter().enumerate() {
            m.stats.start();
            let failed = if i == 0 {
                n.is_multiple_of(2)
            } else {
                n.is_multiple_of(50)
            };
            m.stats.finish(!failed, Some(1_000));
        }
        n += 1;
        std::thread::sleep(Duration::from_micros(200));
    }
    // m0 failed every other request; a window's edge may cut between the two halves of a pair,
    // so its measured rate is 50% give or take one request in the window (min_requests = 20).
    let t = farm.members[0].health.last_transition().unwrap();
    let rate: u32 = t
        .reason
        .strip_prefix("error rate ")
        .and_then(|r| r.split('%').next())
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("{t}"));
    assert!((45..=55).contains(&rate), "{t}");
    assert!(!farm.members[1].state.get(Flag::Ejected));
    assert!(!farm.members[2].state.get(Flag::Ejected));
}
