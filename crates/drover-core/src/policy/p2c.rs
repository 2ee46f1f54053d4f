//! `p2c`: power of two choices — draw two distinct eligible members at random and take the less
//! loaded one (in-flight / weight, by [`less_loaded`]); an exact tie is broken at random.
//!
//! Why: choosing the least loaded of *all* members herds concurrent requests (and every node of a
//! cluster) onto the same member, while one random member ignores load. Two random candidates
//! already cut the maximum load exponentially (Mitzenmacher, "The Power of Two Choices in
//! Randomized Load Balancing"), and different requests compare different pairs, so they do not
//! pile onto one member. This is linkerd's and Envoy's default for the same reasons.
//!
//! Algorithm: each candidate is a uniform draw, redrawn up to [`DRAWS`] times while it is not
//! eligible (or, for the second, equal to the first); failing that, a scan from a random start
//! finds one. So the pick is O(1) while most members are eligible and O(n) at worst; with a single
//! eligible member it is that member, with none it is `None`. No lock, no allocation, no shared
//! write: randomness comes from the context's [`Rng`](crate::Rng).
//!
//! Weights and in-flight counts are read live, so a weight change applies to the next pick.
//! Candidates are drawn uniformly: weight only enters through the load comparison, so a member's
//! share follows its weight once requests are in flight, not on an idle farm.

use std::sync::Arc;

use super::{PickContext, Policy, less_loaded};
use crate::Member;

/// Uniform draws per candidate before falling back to a scan.
pub const DRAWS: usize = 4;

#[derive(Debug, Default)]
pub struct P2c;

impl P2c {
    pub fn new() -> Self {
        P2c
    }
}

/// A random eligible member other than `other`, or `None` when there is none. Shared with the
/// other two-choice policies (`peak-ewma`).
pub(crate) fn candidate(
    members: &[Arc<Member>],
    ctx: &mut PickContext,
    other: Option<usize>,
) -> Option<usize> {
    let n = members.len();
    let ok = |ctx: &PickContext, i: usize| Some(i) != other && ctx.eligible(members, i);
    for _ in 0..DRAWS {
        let i = ctx.rng.below(n);
        if ok(ctx, i) {
            return Some(i);
        }
    }
    let start = ctx.rng.below(n);
    (0..n).map(|k| (start + k) % n).find(|&i| ok(ctx, i))
}

impl Policy for P2c {
    fn name(&self) -> &'static str {
        "p2c"
    }

    fn score(&self, members: &[Arc<Member>], index: usize, _now: u64) -> Option<f64> {
        Some(super::load_of(&members[index]))
    }

    fn score_rule(&self) -> Option<&'static str> {
        Some("in-flight / weight; lower wins (of two random candidates)")
    }

    fn pick(&self, members: &[Arc<Member>], ctx: &mut PickContext) -> Option<usize> {
        if members.is_empty() {
            return None;
        }
        let a = candidate(members, ctx, None)?;
        let Some(b) = candidate(members, ctx, Some(a)) else {
            return Some(a);
        };
        Some(if less_loaded(members, a, b) {
            a
        } else if less_loaded(members, b, a) || ctx.rng.next_u64() & 1 == 1 {
            b
        } else {
            a
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::testing::{check_eligibility, members, spread};
    use crate::{Flag, Rng};

    #[test]
    fn even_spread_for_equal_members() {
        let ms = members(&[1; 5]);
        for c in spread(&P2c::new(), &ms, 100_000, 1) {
            assert!((19_000..21_000).contains(&c), "{c}");
        }
    }

    #[test]
    fn loaded_member_gets_far_less() {
        let ms = members(&[1; 4]);
        (0..10).for_each(|_| ms[0].stats.start());
        let c = spread(&P2c::new(), &ms, 30_000, 2);
        // m0 is never picked: candidates are distinct, so its rival is always an idle member.
        assert_eq!(c[0], 0, "{c:?}");
        for &x in &c[1..] {
            assert!((9_500..10_500).contains(&x), "{c:?}");
        }
    }

    #[test]
    fn requests_in_flight_follow_weight() {
        // Picks as requests that stay in flight, finishing the oldest once 60 are open: the
        // members' shares of the open requests follow their weights.
        let ms = members(&[1, 2, 3]);
        let p = P2c::new();
        let mut rng = Rng::new(3);
        let mut open = std::collections::VecDeque::new();
        let mut counts = [0usize; 3];
        for _ in 0..60_000 {
            let i = p
                .pick(&ms, &mut PickContext::new(Rng::new(rng.next_u64())))
                .unwrap();
            ms[i].stats.start();
            counts[i] += 1;
            open.push_back(i);
            if open.len() > 60 {
                ms[open.pop_front().unwrap()].stats.finish(true, None);
            }
        }
        for (c, w) in counts.iter().zip([1.0, 2.0, 3.0]) {
            let expected = 60_000.0 * w / 6.0;
            assert!((*c as f64 - expected).abs() / expected < 0.1, "{counts:?}");
        }
    }

    #[test]
    fn one_or_two_eligible() {
        let ms = members(&[1, 1, 1]);
        ms[0].state.set(Flag::Up, false);
        ms[1].state.set(Flag::On, false);
        assert_eq!(spread(&P2c::new(), &ms, 100, 3), vec![0, 0, 100]);
        ms[1].state.set(Flag::On, true);
        ms[2].stats.start();
        assert_eq!(spread(&P2c::new(), &ms, 100, 3), vec![0, 100, 0]);
    }

    #[test]
    fn eligibility() {
        check_eligibility(|_| Box::new(P2c::new()));
    }
}
