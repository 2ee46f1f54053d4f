//! Named scenarios: member sets from BALANCING.md, ready to run under any policy.
//!
//! Where it sits: the CLI's `scenario` command builds a [`Config`] here and runs it under every
//! policy; the tests use the same builders. Each scenario fixes the members; the caller gives the
//! policy, the arrival rate, the jobs and the seed.
//!
//! Scenario M (BALANCING.md, "Mixed scenario M"): five members, lognormal service with mean 20 ms
//! and CV 1, total capacity about 760 req/s:
//!
//! | id | behaviour | workers | mean service |
//! |---|---|---|---|
//! | B1 | normal, plus hidden 100 req/s sent to it directly, 30 s on / 30 s off | 4 | 20 ms |
//! | B2 | normal | 4 | 20 ms |
//! | B3 | three times slower | 4 | 60 ms |
//! | B4 | freezes 300 ms every 5 s | 4 | 20 ms |
//! | B5 | S(n) = 20 ms x (1 + 0.1(n-1) + 0.05 n(n-1)) | 8 | 20-90 ms |
//!
//! The Linkerd replica (Linkerd's 2016 Peak-EWMA experiment): 11 members with lognormal service,
//! median 167 ms and CV 0.5 (mean 187 ms; an assumption: with CV 1, 1.6% of normal answers would
//! already pass the 1 s timeout, more than the 0.1% errors Linkerd saw), 1,000 workers each (no queueing of their own: the
//! experiment's members served concurrently); member 1 answers in 2 s for 30 s, from 10 s into
//! the measured window; 1,000 req/s; a 1 s client timeout.

use drover_core::PolicyKind;

use crate::dist::Service;
use crate::member::{Episode, Hidden, MemberModel, Penalty, Stall};
use crate::sim::Config;

/// Mean service time of scenario M's members at speed 1, seconds.
const MEAN: f64 = 0.020;
/// One second, ns.
const SEC: u64 = 1_000_000_000;

/// The five members of scenario M.
pub fn m_members() -> Vec<MemberModel> {
    let normal = MemberModel {
        workers: 4,
        service: Service::LogNormal {
            mean: MEAN,
            cv: 1.0,
        },
        speed: 1.0,
        weight: 1,
        stall: None,
        penalty: None,
        hidden: None,
        episode: None,
    };
    vec![
        MemberModel {
            hidden: Some(Hidden {
                rate: 100.0,
                on: 30 * SEC,
                off: 30 * SEC,
            }),
            ..normal.clone()
        },
        normal.clone(),
        MemberModel {
            speed: 1.0 / 3.0,
            ..normal.clone()
        },
        MemberModel {
            stall: Some(Stall {
                every: 5 * SEC,
                length: 300_000_000,
                offset: 5 * SEC - 300_000_000,
            }),
            ..normal.clone()
        },
        MemberModel {
            workers: 8,
            penalty: Some(Penalty {
                linear: 0.1,
                quadratic: 0.05,
            }),
            ..normal
        },
    ]
}

/// Scenario M under `policy` at `rate` req/s: `seconds` of measured traffic after a 10 s warm-up.
pub fn m(policy: PolicyKind, rate: f64, seconds: f64, seed: u64) -> Config {
    Config {
        policy,
        oracle: false,
        members: m_members(),
        balancers: 1,
        rate,
        jobs: (rate * seconds).round() as u64,
        warmup: (rate * 10.0).round() as u64,
        seed,
        timeout: 0,
        sample_timeouts: false,
        reports: Default::default(),
        lowest_cpu: false,
        cpu_wrr: false,
    }
}

/// The Linkerd replica under `policy` at `rate` req/s (1,000 in the experiment): `seconds` of
/// measured traffic after a 10 s warm-up, the slow episode from 20 s to 50 s of virtual time.
pub fn linkerd(policy: PolicyKind, rate: f64, seconds: f64, seed: u64) -> Config {
    // Lognormal: sigma^2 = ln(1 + cv^2), mean = median x exp(sigma^2 / 2).
    let cv: f64 = 0.5;
    let mean = 0.167 * ((1.0 + cv * cv).ln() / 2.0).exp();
    let member = MemberModel {
        workers: 1_000,
        service: Service::LogNormal { mean, cv },
        ..MemberModel::exponential(1.0)
    };
    let mut members = vec![member; 11];
    members[0].episode = Some(Episode {
        from: 20 * SEC,
        until: 50 * SEC,
        service: Service::Deterministic { value: 2.0 },
    });
    Config {
        members,
        timeout: SEC,
        ..m(policy, rate, seconds, seed)
    }
}

/// One pathology alone: scenario M's member `which` (0-based: 0 = B1 hidden load, 2 = B3 slow,
/// 3 = B4 stalls, 4 = B5 concurrency penalty) among four normal members (B2), in its own slot.
pub fn alone(which: usize, policy: PolicyKind, rate: f64, seconds: f64, seed: u64) -> Config {
    let all = m_members();
    let mut members = vec![all[1].clone(); 5];
    members[which] = all[which].clone();
    Config {
        members,
        ..m(policy, rate, seconds, seed)
    }
}

/// Five equal normal members (B2 five times): no policy may lose more than 5% here.
pub fn equal(policy: PolicyKind, rate: f64, seconds: f64, seed: u64) -> Config {
    Config {
        members: vec![m_members()[1].clone(); 5],
        ..m(policy, rate, seconds, seed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_m_has_the_documented_capacity() {
        let c = m(PolicyKind::P2c, 450.0, 60.0, 1);
        let caps: Vec<f64> = c.members.iter().map(MemberModel::capacity).collect();
        assert!((caps[0] - 200.0).abs() < 1e-9, "{caps:?}");
        assert!((caps[2] - 200.0 / 3.0).abs() < 1e-9);
        assert!((caps[3] - 188.0).abs() < 1e-9, "6% frozen");
        assert!((caps[4] - 4.0 / (0.02 * 1.9)).abs() < 1e-9, "best at n = 4");
        assert!((c.capacity() - 760.0).abs() < 1.0, "{}", c.capacity());
        assert_eq!((c.jobs, c.warmup), (27_000, 4_500));
    }

    #[test]
    fn linkerd_replica_fails_round_robin_for_a_share_of_the_episode() {
        // Round robin sends member 1 a in 11 requests; during the 30 s episode those time out:
        // 30 / 60 of the window x 1/11 = 4.5% errors (Linkerd measured about 5%).
        let r = crate::run(&linkerd(PolicyKind::RoundRobin, 200.0, 60.0, 1)).unwrap();
        assert!(
            (r.errors - 30.0 / 60.0 / 11.0).abs() < 0.005,
            "{}",
            r.errors
        );
    }
}
