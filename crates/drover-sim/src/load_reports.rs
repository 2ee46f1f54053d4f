//! Load reports in the simulator: members telling the balancers how busy they are, late.
//!
//! Where it sits: [`crate::sim::run`] schedules, per member, a measurement every
//! [`Reports::interval`] (jittered); each measurement is delivered to every balancer after
//! [`Reports::delay`] (jittered per balancer) through the real `Farm::apply_report`, so a policy's
//! `on_report` hook runs exactly as it does behind drover's push intake. With [`Reports::orca`],
//! every answered request also carries a report (ORCA's `endpoint-load-metrics` header) to the
//! balancer that sent it, at once.
//!
//! What a report says (the metrics a `drover agent` pushes): `cpu`, the member's busy fraction of
//! its workers over the interval since its last report (hidden load included: that is the point;
//! a frozen worker holding a job counts as busy); `queue`, jobs waiting for a worker at the
//! instant of the measurement; `rif`, jobs in the member (waiting or in service), from every
//! balancer and the hidden load; `rps`, completions per second over the interval (hidden load
//! included). An ORCA report carries the busy fraction smoothed over about 1 s
//! ([`crate::member::UTIL_TAU`]) at the completion, and the same `queue` and `rif`.
//!
//! Invariant: every draw comes from the run's seed (stream 4), so reports keep a run
//! deterministic.

use drover_core::Rng;

use crate::dist::unit_open;

/// How members report load to the balancers. `Default`: no reports at all.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Reports {
    /// Time between two measurements of one member, ns (0: no pushed reports).
    pub interval: u64,
    /// Time from a measurement to its arrival at a balancer, ns.
    pub delay: u64,
    /// Each interval and each delivery delay is scaled by a uniform factor in `1 +- jitter`.
    pub jitter: f64,
    /// Every answered request carries the member's smoothed utilisation to its balancer.
    pub orca: bool,
}

/// The numbers one report carries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub cpu: f64,
    pub queue: u32,
    pub rif: u32,
    /// Completions per second over the interval, hidden load included (0 in ORCA reports: not
    /// modelled there).
    pub rps: f64,
}

impl Reports {
    /// Push reports every `interval_ms`, delivered `delay_ms` later, with 10% jitter.
    pub fn push(interval_ms: u64, delay_ms: u64) -> Self {
        Reports {
            interval: interval_ms * 1_000_000,
            delay: delay_ms * 1_000_000,
            jitter: 0.1,
            orca: false,
        }
    }

    /// `base` ns scaled by a uniform factor in `1 +- jitter`.
    pub(crate) fn jittered(&self, base: u64, rng: &mut Rng) -> u64 {
        let j = self.jitter.clamp(0.0, 1.0);
        let f = 1.0 + j * (2.0 * unit_open(rng) - 1.0);
        (base as f64 * f).round() as u64
    }
}
