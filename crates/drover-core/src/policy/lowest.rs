//! `lowest(<metric>)`: the member with the lowest reported value of one metric, no sampling, ties
//! to the lowest index. **For comparison only; it herds.**
//!
//! This is the naive reading of mod_athena's `simple`: between two reports nothing the rule reads
//! changes, so every request (from every balancer node) goes to the same member until the next
//! report, which then usually names another member for everyone. BALANCING.md measured it: p99
//! of 5 s with 1 s reports, 23 s with 5 s reports, where least-conn had 0.17 s. It exists so the
//! benchmark and the simulator can show that; use `simple(<metric>)` instead, which reads the
//! same metric as capacity and decides on in-flight counts.
//!
//! Where it sits: config `policy = "lowest(cpu)"`; [`Policy::on_report`] stores the raw reported
//! value (f64 bits, one atomic per member); a member that never reported the metric counts as
//! +infinity (after every member that did). Reports never go stale here: that is the point.
//! The pick scans every member: O(n) atomic loads, no lock, no allocation.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::{PickContext, Policy};
use crate::Member;
use crate::report::LoadReport;

#[derive(Debug)]
pub struct Lowest {
    metric: String,
    values: Box<[AtomicU64]>,
}

impl Lowest {
    pub fn new(members: &[Arc<Member>], metric: &str) -> Self {
        Lowest {
            metric: metric.to_owned(),
            values: (0..members.len())
                .map(|_| AtomicU64::new(f64::INFINITY.to_bits()))
                .collect(),
        }
    }

    #[inline]
    fn value(&self, index: usize) -> f64 {
        self.values
            .get(index)
            .map_or(f64::INFINITY, |v| f64::from_bits(v.load(Relaxed)))
    }
}

impl Policy for Lowest {
    fn name(&self) -> &'static str {
        "lowest"
    }

    fn pick(&self, members: &[Arc<Member>], ctx: &mut PickContext) -> Option<usize> {
        let mut best: Option<(usize, f64)> = None;
        for i in 0..members.len() {
            if !ctx.eligible(members, i) {
                continue;
            }
            let v = self.value(i);
            if best.is_none_or(|(_, b)| v < b) {
                best = Some((i, v));
            }
        }
        best.map(|(i, _)| i)
    }

    fn on_report(&self, _members: &[Arc<Member>], index: usize, report: &LoadReport) {
        if let (Some(v), Some(slot)) = (report.metrics.get(&self.metric), self.values.get(index)) {
            slot.store(v.to_bits(), Relaxed);
        }
    }

    fn score(&self, _members: &[Arc<Member>], index: usize, _now: u64) -> Option<f64> {
        Some(self.value(index))
    }

    fn score_rule(&self) -> Option<&'static str> {
        Some("the last reported value of the metric (never reported: infinite); lower wins")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::testing::{check_eligibility, members, spread};
    use crate::report::Source;
    use crate::{PickContext, Rng};

    fn cpu(p: &Lowest, ms: &[Arc<Member>], i: usize, value: f64) {
        let mut r = LoadReport::new(ms[i].name(), Source::Push, 1);
        r.metrics.insert("cpu", value).unwrap();
        p.on_report(ms, i, &r);
    }

    #[test]
    fn eligibility() {
        check_eligibility(|ms| Box::new(Lowest::new(ms, "cpu")));
    }

    /// The documented property, and the reason `lowest` is for comparison only: between two
    /// reports every request goes to the same member, however many are already in flight there.
    #[test]
    fn herds_between_reports() {
        let ms = members(&[1; 5]);
        let p = Lowest::new(&ms, "cpu");
        for (i, v) in [0.5, 0.3, 0.2, 0.6, 0.4].into_iter().enumerate() {
            cpu(&p, &ms, i, v);
        }
        for seed in 0..1_000 {
            let i = p.pick(&ms, &mut PickContext::new(Rng::new(seed))).unwrap();
            ms[i].stats.start();
        }
        assert_eq!(ms[2].stats.in_flight(), 1_000);
        // The next report moves the whole herd.
        cpu(&p, &ms, 0, 0.1);
        assert_eq!(spread(&p, &ms, 100, 1), vec![100, 0, 0, 0, 0]);
        // Ties go to the lowest index; a member that never reported comes last.
        let ms = members(&[1; 3]);
        let p = Lowest::new(&ms, "cpu");
        cpu(&p, &ms, 2, 0.9);
        assert_eq!(spread(&p, &ms, 10, 1), vec![0, 0, 10]);
    }
}
