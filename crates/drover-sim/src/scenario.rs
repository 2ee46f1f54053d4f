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

use drover_core::PolicyKind;

use crate::dist::Service;
use crate::member::{Hidden, MemberModel, Penalty, Stall};
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
}
