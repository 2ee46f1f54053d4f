//! The simulator against queueing theory, at sizes a debug build runs in a few seconds. The full
//! table (more jobs, load 0.99) is `drover-sim theory` in release; see docs/simulator.md.

use drover_core::PolicyKind;
use drover_sim::theory::{mm1_mean, supermarket_tail};
use drover_sim::{Config, MemberModel, Service, SimError, run};

#[test]
fn random_routing_to_one_mm1_matches_1_over_mu_minus_lambda() {
    let r = run(&Config::mm1(PolicyKind::Random, 1, 0.5, 200_000, 1)).unwrap();
    let expected = mm1_mean(0.5);
    let err = (r.mean - expected).abs() / expected;
    assert!(err < 0.05, "mean {} vs {expected}", r.mean);
    // Sojourn is exponential with rate mu - lambda = 0.5: median 2 ln 2.
    assert!(
        (r.p50 / (2.0 * 2f64.ln()) - 1.0).abs() < 0.05,
        "p50 {}",
        r.p50
    );
    assert!((r.tail(1) - 0.5).abs() < 0.02, "busy share {}", r.tail(1));
}

#[test]
fn p2c_beats_random_at_load_0_9_on_20_members() {
    let random = run(&Config::mm1(PolicyKind::Random, 20, 0.9, 100_000, 2)).unwrap();
    let p2c = run(&Config::mm1(PolicyKind::P2c, 20, 0.9, 100_000, 2)).unwrap();
    assert!(
        p2c.mean * 2.5 < random.mean,
        "p2c {} vs random {}",
        p2c.mean,
        random.mean
    );
    assert!(p2c.p99 * 2.5 < random.p99);
    assert!(p2c.max_queue < random.max_queue);
    // The supermarket tail holds roughly even at N = 20 for small k.
    assert!((p2c.tail(2) / supermarket_tail(0.9, 2, 2) - 1.0).abs() < 0.05);
}

#[test]
fn least_conn_and_round_robin_sit_between() {
    let rr = run(&Config::mm1(PolicyKind::RoundRobin, 20, 0.9, 50_000, 3)).unwrap();
    let lc = run(&Config::mm1(PolicyKind::LeastConn, 20, 0.9, 50_000, 3)).unwrap();
    let p2c = run(&Config::mm1(PolicyKind::P2c, 20, 0.9, 50_000, 3)).unwrap();
    assert!(lc.mean < p2c.mean, "least-conn sees every queue");
    assert!(rr.mean < mm1_mean(0.9), "round robin smooths arrivals");
    for r in [&rr, &lc, &p2c] {
        let (lo, hi) = r.share_range();
        assert!(lo > 0.04 && hi < 0.06, "{}: shares {lo}..{hi}", r.policy);
    }
}

#[test]
fn same_seed_same_numbers() {
    let mut c = Config::mm1(PolicyKind::P2c, 10, 0.8, 30_000, 7);
    c.balancers = 3;
    c.members[3] = MemberModel {
        workers: 4,
        service: Service::LogNormal { mean: 4.0, cv: 1.5 },
        ..c.members[3].clone()
    };
    let a = run(&c).unwrap();
    let b = run(&c).unwrap();
    assert_eq!(a, b);
    c.seed = 8;
    assert_ne!(
        run(&c).unwrap().mean,
        a.mean,
        "another seed, another history"
    );
}

#[test]
fn bad_configs_are_refused() {
    let mut c = Config::mm1(PolicyKind::Random, 2, 0.5, 10, 1);
    c.rate = 0.0;
    assert_eq!(run(&c), Err(SimError::BadRate(0.0)));
    c.members.clear();
    assert_eq!(run(&c), Err(SimError::NoMembers));
}
