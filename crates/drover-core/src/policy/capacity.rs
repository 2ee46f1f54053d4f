//! Capacity from reported load: the rule `simple`, `dynamic` and the pipeline orderings
//! `least simple(..)` / `least dynamic(..)` share.
//!
//! Where it sits: [`crate::Farm::apply_report`] calls the policy's `on_report` for every good load
//! report (push, agent-check, ORCA); [`LoadAware::on_report`] turns the report's metrics into a
//! load score and stores it in this policy's own atomics, with the report's time. Picks read those
//! atomics and never the report. Config: `policy = "simple(<metric>)"`,
//! `"dynamic(<metric>=<weight>, ...)"`, or a pipeline's `least simple(..)` / `least dynamic(..)`.
//!
//! The rule (DESIGN.md, "Load reports and policies"): **reported metrics set capacity; the
//! balancer's own in-flight count decides each request; two random candidates break ties across
//! nodes.** Choosing "the member with the lowest reported number" herds every request onto that
//! member until the next report (see `lowest`, kept for comparison only).
//!
//! - *Load score* in `0..=1`, per report: utilisations (`cpu`, `mem`, `application_utilization`,
//!   `utilization.*`) as reported (clamped to `0..=1`); every other metric (`load1`, `queue`,
//!   `rps`, custom ones) normalised as `x / (1 + x)` (0 -> 0, 1 -> 0.5, 9 -> 0.9; a negative value
//!   counts as 0). That rule needs no other member's report, so one report never moves another
//!   member's capacity; a member whose natural scale is far from 1 should scale its metric in its
//!   agent (e.g. report `load1 / cores`).
//! - *Mix* (`dynamic`): weights are normalised to sum 1; the score is the weighted sum. The
//!   pseudo-metric **`rif` means the balancer's own in-flight count**, never a reported one: it is
//!   always fresh, and it already decides every pick, so its weight is the share of the decision
//!   the reported metrics may *not* take. With `dynamic(cpu=0.5, rif=0.5)` a member at cpu = 1 has
//!   half the capacity of an idle one; with `dynamic(cpu=1)` a tenth at cpu = 0.9. Terms a report
//!   lacks are skipped and the present ones scaled up to the reported share; a report with none of
//!   them (an agent-check `75%` line) leaves the capacity and its time as they were.
//! - *Capacity* = live weight x max(1 - load, [`MIN_FACTOR`]). The floor keeps a member reporting
//!   100% in the rotation at a twentieth of its share, so it is still seen recovering.
//! - *Staleness*: a load older than `stale_after` ([`STALE_AFTER`], 10 s: about three times a
//!   typical 2-3 s report interval) is ignored: the capacity falls back to the plain live weight, as
//!   for a member that never reported. A silent member then competes on in-flight alone instead of
//!   keeping a load that may be long gone (health and in/out handle members that really died).
//! - *Pick*: P2C over eligible members (the candidates of `p2c`), minimising
//!   `(in_flight + 1) / capacity`; an exact tie is broken at random.
//!
//! Concurrency: one [`Slot`] per member (load as f64 bits, report time), built with the policy;
//! written with plain stores by whoever applies a report, read with plain loads by picks. A pick
//! may pair a new load with the previous time (or the reverse) while a report is being stored:
//! either is a value one of the two reports gave, and the next pick sees both. No lock, no
//! allocation, no shared write per pick.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use super::p2c::candidate;
use super::{Candidate, Explanation, PickContext};
use crate::Member;
use crate::report::{LoadReport, Metrics, bounds};

/// Reported load older than this is ignored (capacity = plain weight).
pub const STALE_AFTER: Duration = Duration::from_secs(10);
/// Capacity never drops below this share of the member's weight.
pub const MIN_FACTOR: f64 = 0.05;

/// A metric's value as a load in `0..=1` (see the module doc for the rule).
pub fn normalise(name: &str, value: f64) -> f64 {
    let utilisation = matches!(bounds(name), Some((_, hi, _)) if hi == 1.0)
        || name == "application_utilization"
        || name.starts_with("utilization.");
    if !value.is_finite() || value <= 0.0 {
        0.0
    } else if utilisation {
        value.min(1.0)
    } else {
        value / (1.0 + value)
    }
}

/// How one report's metrics make one load score: reported terms with their normalised weights,
/// and the share left to the local in-flight count (`rif`).
#[derive(Debug, Clone, PartialEq)]
pub struct Mix {
    terms: Vec<(String, f64)>,
    local: f64,
}

impl Mix {
    /// From `(metric, weight)` pairs as configured. Weights that are not finite and positive are
    /// ignored; with none left the mix is all `rif` (reports never change capacity).
    pub fn new(mix: &[(String, f64)]) -> Mix {
        let usable = || mix.iter().filter(|(_, w)| w.is_finite() && *w > 0.0);
        let total: f64 = usable().map(|(_, w)| w).sum();
        let mut out = Mix {
            terms: Vec::new(),
            local: 0.0,
        };
        if total <= 0.0 {
            out.local = 1.0;
            return out;
        }
        for (name, w) in usable() {
            if name == "rif" {
                out.local += w / total;
            } else {
                out.terms.push((name.clone(), w / total));
            }
        }
        out
    }

    /// The load score in `0..=1` the metrics give, or `None` when they hold none of the terms.
    pub fn load(&self, metrics: &Metrics) -> Option<f64> {
        let (mut sum, mut share) = (0.0, 0.0);
        for (name, w) in &self.terms {
            if let Some(v) = metrics.get(name) {
                sum += w * normalise(name, v);
                share += w;
            }
        }
        (share > 0.0).then(|| (sum / share * (1.0 - self.local)).clamp(0.0, 1.0))
    }
}

/// One member's reported load: f64 bits, and the report's time (0 = never).
#[derive(Debug, Default)]
struct Slot {
    load: AtomicU64,
    at: AtomicU64,
}

/// Per-member capacities learned from reports.
#[derive(Debug)]
pub struct Capacity {
    slots: Box<[Slot]>,
    stale_after: u64,
}

impl Capacity {
    pub fn new(members: usize, stale_after: Duration) -> Self {
        Capacity {
            slots: (0..members).map(|_| Slot::default()).collect(),
            stale_after: crate::clock::span(stale_after),
        }
    }

    pub fn store(&self, index: usize, load: f64, at: u64) {
        if let Some(s) = self.slots.get(index) {
            s.load.store(load.to_bits(), Relaxed);
            s.at.store(at.max(1), Relaxed);
        }
    }

    /// The member's load score if it is fresh at `now`.
    #[inline]
    pub fn fresh_load(&self, index: usize, now: u64) -> Option<f64> {
        let s = self.slots.get(index)?;
        let at = s.at.load(Relaxed);
        (at != 0 && now.saturating_sub(at) <= self.stale_after)
            .then(|| f64::from_bits(s.load.load(Relaxed)))
    }

    /// Live weight x max(1 - load, [`MIN_FACTOR`]), or the live weight without a fresh load.
    #[inline]
    pub fn capacity(&self, member: &Member, index: usize, now: u64) -> f64 {
        let weight = f64::from(member.state.live_weight_x100()) / 100.0;
        match self.fresh_load(index, now) {
            Some(load) => weight * (1.0 - load).max(MIN_FACTOR),
            None => weight,
        }
    }

    /// `(in_flight + 1) / capacity`: lower wins.
    #[inline]
    pub fn score(&self, member: &Member, index: usize, now: u64) -> f64 {
        f64::from(member.stats.in_flight().saturating_add(1)) / self.capacity(member, index, now)
    }

    /// Fills a candidate's capacity and load for an explanation.
    pub(crate) fn describe(&self, c: &mut Candidate, member: &Member, now: u64) {
        c.capacity = Some(self.capacity(member, c.index, now));
        c.load = self.fresh_load(c.index, now);
    }
}

/// The shared body of `simple` and `dynamic`: a mix, the capacities it learned, P2C on them.
#[derive(Debug)]
pub struct LoadAware {
    pub(crate) mix: Mix,
    pub(crate) cap: Capacity,
}

/// What an explanation says the score is.
pub const SCORE_RULE: &str =
    "(in-flight + 1) / capacity, capacity = weight x max(1 - reported load, 0.05); lower wins";

impl LoadAware {
    pub fn new(members: &[Arc<Member>], mix: &[(String, f64)], stale_after: Duration) -> Self {
        LoadAware {
            mix: Mix::new(mix),
            cap: Capacity::new(members.len(), stale_after),
        }
    }

    pub fn on_report(&self, index: usize, report: &LoadReport) {
        if let Some(load) = self.mix.load(&report.metrics) {
            self.cap.store(index, load, report.received);
        }
    }

    #[inline]
    pub fn pick(&self, members: &[Arc<Member>], ctx: &mut PickContext) -> Option<usize> {
        if members.is_empty() {
            return None;
        }
        let a = candidate(members, ctx, None)?;
        let Some(b) = candidate(members, ctx, Some(a)) else {
            return Some(a);
        };
        let now = ctx.now();
        let sa = self.cap.score(&members[a], a, now);
        let sb = self.cap.score(&members[b], b, now);
        Some(if sa < sb {
            a
        } else if sb < sa || ctx.rng.next_u64() & 1 == 1 {
            b
        } else {
            a
        })
    }

    pub fn score(&self, members: &[Arc<Member>], index: usize, now: u64) -> Option<f64> {
        Some(self.cap.score(&members[index], index, now))
    }

    /// Adds capacity and load to a generic explanation's candidates.
    pub fn annotate(&self, members: &[Arc<Member>], e: &mut Explanation, now: u64) {
        for c in &mut e.candidates {
            self.cap.describe(c, &members[c.index], now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(pairs: &[(&str, f64)]) -> Metrics {
        let mut m = Metrics::default();
        for (n, v) in pairs {
            m.insert(n, *v).unwrap();
        }
        m
    }

    #[test]
    fn normalisation() {
        assert_eq!(normalise("cpu", 0.3), 0.3);
        assert_eq!(normalise("mem", 1.0), 1.0);
        assert_eq!(normalise("utilization.gpu", 0.25), 0.25);
        assert_eq!(normalise("load1", 1.0), 0.5);
        assert_eq!(normalise("queue", 9.0), 0.9);
        assert_eq!(normalise("db.conns", -3.0), 0.0);
    }

    #[test]
    fn mixes_normalise_weights_and_keep_rif_local() {
        let mix = |pairs: &[(&str, f64)]| {
            Mix::new(
                &pairs
                    .iter()
                    .map(|(n, w)| (n.to_string(), *w))
                    .collect::<Vec<_>>(),
            )
        };
        let m = mix(&[("cpu", 2.0), ("load1", 2.0)]);
        let l = m.load(&metrics(&[("cpu", 0.4), ("load1", 1.0)])).unwrap();
        assert!((l - 0.45).abs() < 1e-12, "{l}");
        // A missing term: the present one takes the whole reported share.
        let l = m.load(&metrics(&[("cpu", 0.4)])).unwrap();
        assert!((l - 0.4).abs() < 1e-12, "{l}");
        assert_eq!(m.load(&metrics(&[("mem", 0.4)])), None);
        // rif is local: cpu may take at most half of the capacity away.
        let m = mix(&[("cpu", 0.5), ("rif", 0.5)]);
        assert_eq!(m.load(&metrics(&[("cpu", 1.0), ("rif", 50.0)])), Some(0.5));
        assert_eq!(mix(&[("rif", 1.0)]).load(&metrics(&[("rif", 9.0)])), None);
        assert_eq!(mix(&[("cpu", 0.0)]).load(&metrics(&[("cpu", 0.5)])), None);
    }
}
