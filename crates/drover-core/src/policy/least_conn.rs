//! `least-conn`: the eligible member with the fewest in-flight requests relative to its weight.
//!
//! Algorithm: a first pass over the members finds the least loaded eligible one, comparing
//! `in_flight / weight` with [`less_loaded`] (cross-multiplied, no division), and counts how many
//! eligible members tie with it. A second pass takes the `k`-th of those tied members, where `k`
//! comes from a counter that rotates on every pick (an `AtomicUsize`). So members with equal load
//! take exact turns instead of the lowest index taking every tie: on an idle farm, or when requests
//! finish faster than they arrive, least-conn degrades to round robin rather than to "always
//! member 0". (Merely rotating where a single scan starts is not enough: a tied member that
//! follows a run of loaded or ineligible members would win every scan starting in that run.)
//!
//! Complexity: two passes of O(n) atomic loads per pick; no lock, no allocation. For very large
//! farms prefer `p2c`, which samples two members instead of scanning all.
//!
//! Both in-flight counts and weights are read live, so a weight change applies to the next pick.
//! Counts are read without a snapshot: concurrent picks may see the same minimum and both choose
//! it, the usual (and harmless) race of least-connections balancers; if the counts move between
//! the two passes, the pick keeps the minimum found by the first.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use super::{PickContext, Policy, less_loaded};
use crate::Member;

#[derive(Debug, Default)]
pub struct LeastConn {
    /// Rotates over the picks: which of the tied least-loaded members the next pick takes.
    next: AtomicUsize,
}

impl LeastConn {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Policy for LeastConn {
    fn name(&self) -> &'static str {
        "least-conn"
    }

    fn score(&self, members: &[Arc<Member>], index: usize, _now: u64) -> Option<f64> {
        Some(super::load_of(&members[index]))
    }

    fn score_rule(&self) -> Option<&'static str> {
        Some("in-flight / weight; lower wins")
    }

    fn pick(&self, members: &[Arc<Member>], ctx: &mut PickContext) -> Option<usize> {
        let n = members.len();
        if n == 0 {
            return None;
        }
        // Pass 1: the least loaded eligible member (first in index order) and how many tie it.
        let mut best: Option<usize> = None;
        let mut ties = 0usize;
        for i in 0..n {
            if !ctx.eligible(members, i) {
                continue;
            }
            match best {
                Some(b) if less_loaded(members, b, i) => {}
                Some(b) if !less_loaded(members, i, b) => ties += 1,
                _ => (best, ties) = (Some(i), 1),
            }
        }
        let first = best?;
        if ties == 1 {
            return Some(first);
        }
        // Pass 2: the k-th tied member, k rotating over the picks.
        let k = self.next.fetch_add(1, Relaxed) % ties;
        (first..n)
            .filter(|&i| ctx.eligible(members, i) && !less_loaded(members, first, i))
            .nth(k)
            .or(Some(first))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Rng;
    use crate::policy::testing::{check_eligibility, members, spread};

    fn pick(p: &LeastConn, ms: &[Arc<Member>]) -> usize {
        p.pick(ms, &mut PickContext::new(Rng::new(0))).unwrap()
    }

    #[test]
    fn picks_fewest_in_flight() {
        let ms = members(&[1, 1, 1, 1]);
        let p = LeastConn::new();
        for (i, n) in [3, 1, 4, 2].into_iter().enumerate() {
            (0..n).for_each(|_| ms[i].stats.start());
        }
        for _ in 0..8 {
            assert_eq!(pick(&p, &ms), 1);
        }
        ms[1].stats.start();
        ms[1].stats.start(); // m1 now 3: m3 (2) is the least loaded
        assert_eq!(pick(&p, &ms), 3);
        ms[0].stats.finish(true, None);
        ms[0].stats.finish(true, None);
        ms[0].stats.finish(true, None); // m0 back to 0
        assert_eq!(pick(&p, &ms), 0);
    }

    #[test]
    fn load_is_relative_to_weight() {
        let ms = members(&[4, 1]);
        let p = LeastConn::new();
        // m0 has 3 in flight for weight 4 (0.75), m1 has 1 for weight 1 (1.0).
        (0..3).for_each(|_| ms[0].stats.start());
        ms[1].stats.start();
        assert_eq!(pick(&p, &ms), 0);
        // Driving picks as requests that never finish fills members in proportion to weight.
        let ms = members(&[3, 1, 2]);
        let p = LeastConn::new();
        for _ in 0..600 {
            ms[pick(&p, &ms)].stats.start();
        }
        let in_flight: Vec<u32> = ms.iter().map(|m| m.stats.in_flight()).collect();
        assert_eq!(in_flight, vec![300, 100, 200]);
    }

    #[test]
    fn ties_rotate_instead_of_favouring_the_first() {
        let ms = members(&[1, 1, 1, 1]);
        assert_eq!(spread(&LeastConn::new(), &ms, 4_000, 1), vec![1_000; 4]);
        // Two members tied at the minimum share the picks evenly; the loaded ones get none.
        (0..5).for_each(|_| ms[2].stats.start());
        (0..5).for_each(|_| ms[3].stats.start());
        assert_eq!(
            spread(&LeastConn::new(), &ms, 4_000, 1),
            vec![2_000, 2_000, 0, 0]
        );
    }

    #[test]
    fn eligibility() {
        check_eligibility(|_| Box::new(LeastConn::new()));
    }
}
