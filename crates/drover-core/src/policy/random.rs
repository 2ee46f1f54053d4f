//! `random`: each pick draws a member at random, with probability proportional to its weight.
//!
//! Algorithm: at build time, a table of cumulative weights (`cumulative[i]` = sum of the weights of
//! members `0..=i`). A pick draws `r` in `0..total` from the context's [`Rng`](crate::Rng) and
//! binary-searches the first entry greater than `r`: O(log n), no lock, no allocation, no shared
//! write at all (the only policy with no shared cache line to contend on).
//!
//! When the drawn member is not eligible the pick redraws, up to [`DRAWS`] draws in all; after that
//! (most of the farm is down, or the request has tried most members) it makes one weighted draw
//! restricted to the eligible members, in two O(n) passes over the table. That keeps the spread
//! exactly proportional to weight among the members left, where scanning from a random start would
//! over-serve the member that follows a dead one. It returns `None` only when nothing is eligible.
//!
//! Weights are read from [`MemberState::weight`](crate::MemberState::weight) when the policy is
//! built: a weight change takes effect when the owner rebuilds the farm snapshot.

use std::sync::Arc;

use super::{PickContext, Policy};
use crate::{Member, Rng};

/// How many plain weighted draws a pick makes before restricting the draw to eligible members.
pub const DRAWS: usize = 4;

#[derive(Debug)]
pub struct Random {
    /// `cumulative[i]`: total weight of members `0..=i`; strictly increasing (weights are >= 1).
    cumulative: Box<[u64]>,
}

impl Random {
    pub fn new(members: &[Arc<Member>]) -> Self {
        let cumulative = members
            .iter()
            .scan(0u64, |sum, m| {
                *sum += u64::from(m.state.weight().max(1));
                Some(*sum)
            })
            .collect();
        Random { cumulative }
    }

    /// The weight member `i` had when the policy was built.
    #[inline]
    fn weight(&self, i: usize) -> u64 {
        self.cumulative[i] - if i == 0 { 0 } else { self.cumulative[i - 1] }
    }
}

/// A value in `0..n` (`n` > 0), by multiply-shift like [`Rng::below`] but over `u64`.
#[inline]
fn below(rng: &mut Rng, n: u64) -> u64 {
    ((u128::from(rng.next_u64()) * u128::from(n)) >> 64) as u64
}

impl Policy for Random {
    fn name(&self) -> &'static str {
        "random"
    }

    fn pick(&self, members: &[Arc<Member>], ctx: &mut PickContext) -> Option<usize> {
        let n = self.cumulative.len().min(members.len());
        let total = *self.cumulative.last()?;
        for _ in 0..DRAWS {
            let r = below(&mut ctx.rng, total);
            let i = self.cumulative.partition_point(|&c| c <= r);
            if i < n && ctx.eligible(members, i) {
                return Some(i);
            }
        }
        // Weighted draw among the eligible members only.
        let eligible_total: u64 = (0..n)
            .filter(|&i| ctx.eligible(members, i))
            .map(|i| self.weight(i))
            .sum();
        if eligible_total == 0 {
            return None;
        }
        let mut r = below(&mut ctx.rng, eligible_total);
        let mut last = None;
        for i in (0..n).filter(|&i| ctx.eligible(members, i)) {
            let w = self.weight(i);
            if r < w {
                return Some(i);
            }
            r -= w;
            last = Some(i);
        }
        // Only reached if a member stopped being eligible between the two passes.
        last
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Flag;
    use crate::policy::testing::{check_eligibility, members, spread};

    fn assert_shares(counts: &[usize], weights: &[u32], tolerance: f64) {
        let n: usize = counts.iter().sum();
        let total: u32 = weights.iter().sum();
        for (c, &w) in counts.iter().zip(weights) {
            let expected = n as f64 * f64::from(w) / f64::from(total);
            let err = (*c as f64 - expected).abs() / expected;
            assert!(err < tolerance, "{counts:?} vs weights {weights:?}");
        }
    }

    #[test]
    fn spread_follows_weights() {
        let ms = members(&[1, 1, 1, 1]);
        assert_shares(
            &spread(&Random::new(&ms), &ms, 100_000, 1),
            &[1, 1, 1, 1],
            0.03,
        );
        let ms = members(&[5, 1, 3, 1]);
        let counts = spread(&Random::new(&ms), &ms, 100_000, 2);
        assert_shares(&counts, &[5, 1, 3, 1], 0.03);
    }

    #[test]
    fn ineligible_members_share_falls_on_the_rest_by_weight() {
        // With the heaviest members down most draws miss, so the restricted draw does most of the
        // work; it must still respect 1:3 between the two left.
        let ms = members(&[10, 1, 10, 3, 10]);
        let p = Random::new(&ms);
        for i in [0, 2, 4] {
            ms[i].state.set(Flag::Up, false);
        }
        let counts = spread(&p, &ms, 100_000, 3);
        assert_eq!(counts[0] + counts[2] + counts[4], 0);
        assert_shares(&[counts[1], counts[3]], &[1, 3], 0.03);
    }

    #[test]
    fn weight_changes_apply_on_rebuild() {
        let ms = members(&[1, 1]);
        let before = Random::new(&ms);
        ms[0].state.set_weight(3);
        assert_shares(&spread(&before, &ms, 40_000, 4), &[1, 1], 0.03);
        assert_shares(&spread(&Random::new(&ms), &ms, 40_000, 4), &[3, 1], 0.03);
    }

    #[test]
    fn eligibility() {
        check_eligibility(|ms| Box::new(Random::new(ms)));
    }
}
