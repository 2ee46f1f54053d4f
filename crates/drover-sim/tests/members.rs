//! Member features and balancer setups beyond the theory checks: hidden load, several balancers,
//! peak-ewma on the virtual clock, scenario M. Debug-build sized (well under a second each).

use drover_core::PolicyKind;
use drover_sim::scenario;
use drover_sim::theory::mm1_mean;
use drover_sim::{Config, Hidden, MemberModel, run};

#[test]
fn hidden_load_adds_to_a_members_queue_as_theory_says() {
    // Two M/M/1 members, 0.4 each from the balancer, and 0.4 more straight to member 0: the
    // balancer's jobs see M/M/1 at 0.8 on member 0 and at 0.4 on member 1, half each.
    let mut c = Config::mm1(PolicyKind::Random, 2, 0.4, 200_000, 4);
    c.members[0].hidden = Some(Hidden {
        rate: 0.4,
        on: 1_000_000_000,
        off: 0,
    });
    let r = run(&c).unwrap();
    let expected = 0.5 * mm1_mean(0.8) + 0.5 * mm1_mean(0.4);
    assert!(
        (r.mean / expected - 1.0).abs() < 0.05,
        "{} vs {expected}",
        r.mean
    );
    // The time-average busy fraction counts hidden jobs too: (0.8 + 0.4) / 2.
    assert!((r.tail(1) - 0.6).abs() < 0.02, "{}", r.tail(1));
    // A load-aware policy sees the hidden load only through its own in-flight counts, and still
    // sends member 0 less.
    c.policy = PolicyKind::LeastConn;
    let lc = run(&c).unwrap();
    assert!(lc.share[0] < 0.45, "{:?}", lc.share);
}

#[test]
fn least_conn_loses_its_lead_as_balancers_multiply() {
    let mut c = Config::mm1(PolicyKind::LeastConn, 20, 0.9, 50_000, 5);
    let one = run(&c).unwrap();
    c.balancers = 10;
    let ten = run(&c).unwrap();
    assert!(ten.mean > 1.5 * one.mean, "{} vs {}", ten.mean, one.mean);
    assert_eq!(ten.balancers, 10);
}

#[test]
fn peak_ewma_avoids_a_slow_member_on_the_virtual_clock() {
    // Five members serving in 20 ms, one of them ten times slower; lightly loaded, so in-flight
    // counts are mostly 0 and only the latency estimate tells the slow one apart.
    let fast = MemberModel::exponential(50.0);
    let mut members = vec![fast.clone(); 5];
    members[0].speed = 0.1;
    let mut c = Config {
        policy: PolicyKind::P2c,
        oracle: false,
        members,
        balancers: 1,
        rate: 40.0,
        jobs: 20_000,
        warmup: 2_000,
        seed: 6,
        timeout: 0,
        sample_timeouts: false,
        reports: Default::default(),
        lowest_cpu: false,
        cpu_wrr: false,
    };
    let p2c = run(&c).unwrap();
    c.policy = PolicyKind::PeakEwma;
    let ewma = run(&c).unwrap();
    assert!(
        ewma.share[0] < 0.5 * p2c.share[0],
        "peak-ewma {:?} vs p2c {:?}",
        ewma.share,
        p2c.share
    );
    assert!(ewma.mean < p2c.mean);
}

#[test]
fn scenario_m_separates_blind_and_load_aware_policies() {
    // B3 (67 req/s) gets a fifth of 450 req/s from round robin: its queue grows without bound.
    let rr = run(&scenario::m(PolicyKind::RoundRobin, 450.0, 60.0, 1)).unwrap();
    let lc = run(&scenario::m(PolicyKind::LeastConn, 450.0, 60.0, 1)).unwrap();
    assert!(
        rr.p99 > 10.0 * lc.p99,
        "rr {} vs least-conn {}",
        rr.p99,
        lc.p99
    );
    assert!(lc.share[2] < 0.15, "B3 gets less: {:?}", lc.share);
    assert!(lc.over_1s < 0.001);
}

#[test]
fn the_oracle_sees_every_balancers_jobs() {
    let mut c = Config::mm1(PolicyKind::LeastConn, 20, 0.9, 50_000, 5);
    c.balancers = 10;
    let lc = run(&c).unwrap();
    c.oracle = true;
    let oracle = run(&c).unwrap();
    assert_eq!(oracle.policy, "oracle");
    // Join-the-shortest-queue on true lengths: close to M/M/20 (1.2 service times at 0.9).
    assert!(
        oracle.mean < 1.5 && oracle.mean * 1.5 < lc.mean,
        "{} vs {}",
        oracle.mean,
        lc.mean
    );
}

#[test]
fn linkerd_replica_orders_round_robin_least_conn_peak_ewma() {
    // Linkerd's 2016 experiment found about 95% / 99% / 99.9% success; the order must hold when a
    // timed-out request feeds its wait to the latency estimate, as tower's Peak-EWMA does.
    let errors = |policy| {
        let mut c = scenario::linkerd(policy, 300.0, 60.0, 1);
        c.sample_timeouts = true;
        run(&c).unwrap().errors
    };
    let (rr, lc, ewma) = (
        errors(PolicyKind::RoundRobin),
        errors(PolicyKind::LeastConn),
        errors(PolicyKind::PeakEwma),
    );
    assert!(rr > 0.04 && rr < 0.05, "round robin {rr}");
    assert!(
        lc < rr / 3.0 && ewma < lc,
        "least-conn {lc}, peak-ewma {ewma}"
    );
}
