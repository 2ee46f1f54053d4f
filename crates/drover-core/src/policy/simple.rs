//! `simple(<metric>)`: mod_athena's one-metric policy, built on drover's rule: the member's
//! reported metric sets its capacity, the balancer's own in-flight count decides each request.
//!
//! Where it sits: config `policy = "simple(cpu)"`; [`crate::Farm::apply_report`] feeds every good
//! report to [`Policy::on_report`], which stores the member's load score (the metric, normalised to
//! `0..=1`) in this policy's atomics; [`crate::Farm::pick`] runs P2C on
//! `(in_flight + 1) / (weight x max(1 - load, 0.05))`. The rule, the normalisation, staleness
//! (a report older than 10 s falls back to the plain weight) and the concurrency model are those
//! of [`super::capacity`]; `simple(m)` is exactly `dynamic(m=1)`.
//!
//! Why not "the member with the lowest metric": reports are seconds old, and every request in
//! between would go to the same member (see `lowest`, which does that, for comparison). No lock,
//! no allocation per pick.

use std::sync::Arc;
use std::time::Duration;

use super::capacity::{LoadAware, SCORE_RULE, STALE_AFTER};
use super::{Explanation, PickContext, Policy, explain};
use crate::Member;
use crate::report::LoadReport;

#[derive(Debug)]
pub struct Simple {
    inner: LoadAware,
}

impl Simple {
    pub fn new(members: &[Arc<Member>], metric: &str) -> Self {
        Self::with_stale_after(members, metric, STALE_AFTER)
    }

    pub fn with_stale_after(members: &[Arc<Member>], metric: &str, stale_after: Duration) -> Self {
        Simple {
            inner: LoadAware::new(members, &[(metric.to_owned(), 1.0)], stale_after),
        }
    }
}

impl Policy for Simple {
    fn name(&self) -> &'static str {
        "simple"
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

    fn shares(p: &dyn Policy, ms: &[Arc<Member>], n: usize, open: usize) -> Vec<usize> {
        crate::policy::testing::shares(p, ms, n, open, NOW)
    }

    const S: u64 = 1_000_000_000;
    const NOW: u64 = 10_000 * S;

    fn cpu(p: &Simple, ms: &[Arc<Member>], i: usize, value: f64, at: u64) {
        let mut r = LoadReport::new(ms[i].name(), Source::Push, at);
        r.metrics.insert("cpu", value).unwrap();
        p.on_report(ms, i, &r);
    }

    #[test]
    fn eligibility() {
        check_eligibility(|ms| Box::new(Simple::new(ms, "cpu")));
    }

    #[test]
    fn equal_reports_spread_evenly() {
        let ms = members(&[1; 5]);
        let p = Simple::new(&ms, "cpu");
        (0..5).for_each(|i| cpu(&p, &ms, i, 0.4, NOW - S));
        for c in spread(&p, &ms, 100_000, 1) {
            assert!((19_000..21_000).contains(&c), "{c}");
        }
        for c in shares(&p, &ms, 50_000, 40) {
            assert!((9_500..10_500).contains(&c), "{c}");
        }
    }

    #[test]
    fn busy_member_gets_clearly_less_but_not_nothing() {
        let ms = members(&[1, 1]);
        let p = Simple::new(&ms, "cpu");
        cpu(&p, &ms, 0, 0.9, NOW - S);
        cpu(&p, &ms, 1, 0.1, NOW - S);
        let c = shares(&p, &ms, 40_000, 20);
        // Capacities 0.1 and 0.9: in-flight settles near 1:9.
        assert!(c[0] > 1_000 && c[0] < 8_000, "{c:?}");
        assert!(c[1] > 4 * c[0], "{c:?}");
    }

    #[test]
    fn stale_report_falls_back_to_weight() {
        let ms = members(&[1, 1]);
        let p = Simple::new(&ms, "cpu");
        cpu(&p, &ms, 0, 0.95, NOW - 11 * S);
        cpu(&p, &ms, 1, 0.05, NOW - 11 * S);
        let c = shares(&p, &ms, 20_000, 20);
        for x in c.iter() {
            assert!((9_300..10_700).contains(x), "{c:?}");
        }
        let cap = |p: &Simple, i: usize| p.inner.cap.capacity(&ms[i], i, NOW);
        assert_eq!((cap(&p, 0), cap(&p, 1)), (1.0, 1.0));
        // With a longer horizon the same reports count: m0 is at a twentieth of its weight.
        let p = Simple::with_stale_after(&ms, "cpu", Duration::from_secs(30));
        cpu(&p, &ms, 0, 0.95, NOW - 11 * S);
        cpu(&p, &ms, 1, 0.05, NOW - 11 * S);
        assert!((cap(&p, 0) - 0.05).abs() < 1e-9 && (cap(&p, 1) - 0.95).abs() < 1e-9);
    }

    #[test]
    fn a_report_without_the_metric_changes_nothing() {
        let ms = members(&[1, 1]);
        let p = Simple::new(&ms, "cpu");
        cpu(&p, &ms, 0, 0.9, NOW - S);
        let before = p.score(&ms, 0, NOW);
        let mut r = LoadReport::new("m0", Source::AgentCheck, NOW);
        r.weight_pct = Some(50);
        p.on_report(&ms, 0, &r);
        assert_eq!(p.score(&ms, 0, NOW), before);
    }
}
