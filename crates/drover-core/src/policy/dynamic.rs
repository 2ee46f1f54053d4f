//! `dynamic(<metric>=<weight>, ...)`: mod_athena's normalised, weighted mix of metrics, built on
//! drover's rule: the mix sets each member's capacity, the balancer's own in-flight count decides
//! each request.
//!
//! Where it sits: config `policy = "dynamic(cpu=0.5, load1=0.5)"`; [`crate::Farm::apply_report`]
//! feeds every good report to [`Policy::on_report`], which stores the member's load score (the
//! weighted mix of its normalised metrics, weights normalised to sum 1) in this policy's atomics;
//! [`crate::Farm::pick`] runs P2C on `(in_flight + 1) / (weight x max(1 - load, 0.05))`.
//!
//! `rif` in the mix is the balancer's own in-flight count (local, always fresh), not a reported
//! metric: its weight is the share of the decision the reported metrics may not take, so
//! `dynamic(cpu=0.5, rif=0.5)` lets cpu halve a member's capacity at most. The normalisation,
//! missing terms, staleness (a report older than 10 s falls back to the plain weight) and the
//! concurrency model are those of [`super::capacity`]. No lock, no allocation per pick.

use std::sync::Arc;
use std::time::Duration;

use super::capacity::{LoadAware, SCORE_RULE, STALE_AFTER};
use super::{Explanation, PickContext, Policy, explain};
use crate::Member;
use crate::report::LoadReport;

#[derive(Debug)]
pub struct Dynamic {
    inner: LoadAware,
}

impl Dynamic {
    pub fn new(members: &[Arc<Member>], mix: &[(String, f64)]) -> Self {
        Self::with_stale_after(members, mix, STALE_AFTER)
    }

    pub fn with_stale_after(
        members: &[Arc<Member>],
        mix: &[(String, f64)],
        stale_after: Duration,
    ) -> Self {
        Dynamic {
            inner: LoadAware::new(members, mix, stale_after),
        }
    }
}

impl Policy for Dynamic {
    fn name(&self) -> &'static str {
        "dynamic"
    }

    #[inline]
    fn pick(&self, members: &[Arc<Member>], ctx: &mut PickContext) -> Option<usize> {
        self.inner.pick(members, ctx)
    }

    fn on_report(&self, _members: &[Arc<Member>], index: usize, report: &LoadReport) {
        self.inner.on_report(index, report);
    }

    fn score(&self, members: &[Arc<Member>], index: usize, now: u64) -> Option<f64> {
        self.inner.score(members, index, now)
    }

    fn score_rule(&self) -> Option<&'static str> {
        Some(SCORE_RULE)
    }

    fn explain(&self, members: &[Arc<Member>], ctx: &mut PickContext) -> Explanation {
        let now = ctx.now();
        let mut e = explain::generic(self, members, ctx);
        self.inner.annotate(members, &mut e, now);
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::testing::{check_eligibility, members, spread};
    use crate::report::Source;

    const S: u64 = 1_000_000_000;
    const NOW: u64 = 10_000 * S;

    fn shares(p: &dyn Policy, ms: &[Arc<Member>], n: usize, open: usize) -> Vec<usize> {
        crate::policy::testing::shares(p, ms, n, open, NOW)
    }

    fn mix(pairs: &[(&str, f64)]) -> Vec<(String, f64)> {
        pairs.iter().map(|(n, w)| (n.to_string(), *w)).collect()
    }

    fn report(p: &Dynamic, ms: &[Arc<Member>], i: usize, pairs: &[(&str, f64)]) {
        let mut r = LoadReport::new(ms[i].name(), Source::Push, NOW - S);
        for (n, v) in pairs {
            r.metrics.insert(n, *v).unwrap();
        }
        p.on_report(ms, i, &r);
    }

    #[test]
    fn eligibility() {
        check_eligibility(|ms| Box::new(Dynamic::new(ms, &mix(&[("cpu", 0.5), ("load1", 0.5)]))));
    }

    #[test]
    fn equal_reports_spread_evenly() {
        let ms = members(&[1; 4]);
        let p = Dynamic::new(&ms, &mix(&[("cpu", 1.0), ("load1", 3.0)]));
        (0..4).for_each(|i| report(&p, &ms, i, &[("cpu", 0.3), ("load1", 2.0)]));
        for c in spread(&p, &ms, 40_000, 1) {
            assert!((9_500..10_500).contains(&c), "{c}");
        }
    }

    #[test]
    fn busy_member_gets_less_and_rif_caps_the_effect() {
        let ms = members(&[1, 1]);
        let p = Dynamic::new(&ms, &mix(&[("cpu", 0.5), ("load1", 0.5)]));
        report(&p, &ms, 0, &[("cpu", 0.9), ("load1", 9.0)]);
        report(&p, &ms, 1, &[("cpu", 0.1), ("load1", 0.1)]);
        let c = shares(&p, &ms, 40_000, 20);
        assert!(c[0] > 1_000 && c[1] > 4 * c[0], "{c:?}");
        // Half the decision left to in-flight: cpu = 0.9 only takes 45% of the capacity away.
        let ms = members(&[1, 1]);
        let p = Dynamic::new(&ms, &mix(&[("cpu", 0.5), ("rif", 0.5)]));
        report(&p, &ms, 0, &[("cpu", 0.9)]);
        report(&p, &ms, 1, &[("cpu", 0.1)]);
        let c = shares(&p, &ms, 40_000, 20);
        let ratio = c[1] as f64 / c[0] as f64;
        assert!((1.3..2.3).contains(&ratio), "{c:?}");
    }
}
