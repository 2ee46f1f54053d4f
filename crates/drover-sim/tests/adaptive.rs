//! `adaptive` in the simulator: it must beat least-conn in scenario M, and load reports must not
//! make it herd. Debug-build sized (about a second each). Figures: docs/balancing.md.

use drover_core::PolicyKind;
use drover_sim::{Config, Reports, run, scenario};

/// Scenario M at `rate` with a 1 s timeout, timeouts sampled as drover-proxy does.
fn m(policy: PolicyKind, rate: f64, seconds: f64, seed: u64) -> Config {
    let mut c = scenario::m(policy, rate, seconds, seed);
    c.timeout = 1_000_000_000;
    c.sample_timeouts = true;
    c
}

#[test]
fn adaptive_beats_least_conn_p99_in_scenario_m_at_550() {
    // 5 seeds x 120 s (release build): least-conn p99 190 (188-200) ms, adaptive 164 (158-170).
    let lc = run(&m(PolicyKind::LeastConn, 550.0, 120.0, 1)).unwrap();
    let ad = run(&m(PolicyKind::Adaptive, 550.0, 120.0, 1)).unwrap();
    assert!(
        ad.p99 < 0.93 * lc.p99,
        "adaptive p99 {} vs least-conn {}",
        ad.p99,
        lc.p99
    );
    assert!(ad.p50 < 1.1 * lc.p50, "p50 {} vs {}", ad.p50, lc.p50);
    assert!(
        ad.share[2] < 0.6 * lc.share[2],
        "B3 gets less: {:?}",
        ad.share
    );
}

#[test]
fn reports_herd_the_naive_rule_and_not_adaptive() {
    // Two balancers, reports every 1 s: "lowest reported cpu" sends each balancer's traffic to
    // one member until the next report; adaptive does not read reported metrics per request.
    let run2 = |policy, lowest_cpu, interval_ms| {
        let mut c = m(policy, 450.0, 60.0, 2);
        c.balancers = 2;
        c.reports = Reports::push(interval_ms, 10);
        c.lowest_cpu = lowest_cpu;
        run(&c).unwrap()
    };
    let naive = run2(PolicyKind::LeastConn, true, 1_000);
    let fast = run2(PolicyKind::Adaptive, false, 100);
    let slow = run2(PolicyKind::Adaptive, false, 5_000);
    assert!(
        naive.p99 > 3.0 * slow.p99,
        "naive {} vs {}",
        naive.p99,
        slow.p99
    );
    assert!(
        slow.p99 < 1.2 * fast.p99,
        "p99 {} at 5 s vs {} at 0.1 s",
        slow.p99,
        fast.p99
    );
}

#[test]
fn reports_reach_the_farm() {
    // Pushed reports go through Farm::apply_report: with reports every 100 ms the naive rule
    // moves away from an even split; with no reports every member ties and it is random.
    let mut c = m(PolicyKind::LeastConn, 450.0, 30.0, 3);
    c.lowest_cpu = true;
    let blind = run(&c).unwrap();
    c.reports = Reports::push(100, 10);
    let told = run(&c).unwrap();
    assert!(blind.share[2] > 0.18, "{:?}", blind.share);
    assert!(told.share[2] < blind.share[2], "{:?}", told.share);
}

#[test]
fn cpu_weighted_round_robin_misses_hidden_load() {
    // ORCA-style weights (rps / cpu) measure a member's speed, not what is left of it: B1 keeps
    // its full share while its hidden load is on, and its queue grows. Adaptive sees the wait.
    let mut c = m(PolicyKind::LeastConn, 550.0, 90.0, 4);
    c.reports = Reports::push(1_000, 10);
    c.cpu_wrr = true;
    let wrr = run(&c).unwrap();
    c.cpu_wrr = false;
    c.policy = PolicyKind::Adaptive;
    let ad = run(&c).unwrap();
    assert!(wrr.errors > 0.01, "cpu-wrr timeouts {}", wrr.errors);
    assert!(ad.errors < 0.001, "adaptive timeouts {}", ad.errors);
    assert!(wrr.p99 > 2.0 * ad.p99, "p99 {} vs {}", wrr.p99, ad.p99);
}
