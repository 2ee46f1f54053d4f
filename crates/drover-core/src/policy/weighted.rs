//! `weighted`: smooth weighted round robin (nginx's algorithm), made lock-free.
//!
//! nginx keeps a `current` score per member under a lock: every pick adds each member's weight to
//! its score, takes the member with the highest score and subtracts the total weight from it. That
//! interleaves the members as evenly as their weights allow (weights 5,1,1 give `a a b a c a a`,
//! never `a a a a a b c`), so a heavy member never receives a burst.
//!
//! Here the same sequence is computed once, when the farm snapshot is built: the weights are
//! divided by their gcd, so the period is the sum of the reduced weights; if that would exceed
//! [`MAX_PERIOD`] entries the weights are scaled down proportionally, each kept at least 1. A pick
//! then only advances an `AtomicUsize` cursor over the sequence: no lock, no allocation, O(1) while
//! the chosen member is eligible.
//!
//! When the member in the cursor's slot is not eligible (down, off, draining, already tried), the
//! pick walks on along the sequence to the next eligible slot (at most one period) and moves the
//! cursor past the slots it skipped, so the skipped members' turns are *dropped* rather than all
//! handed to the member that follows them: the remaining members keep exactly their relative
//! weights. Should no slot be eligible, [`scan_from`] settles it (it also returns `None` for an
//! all-ineligible farm).
//!
//! Invariants: the sequence holds every member at least once and only valid indices; the cursor
//! only grows (wrapping at `usize::MAX`, a one-off glitch in order every 2^64 picks). Concurrent
//! picks share the cursor, so each takes a distinct slot; under contention the skip-ahead may drop
//! an extra slot, which only perturbs the order, never eligibility.
//!
//! Weights are read from [`MemberState::weight`](crate::MemberState::weight) when the policy is
//! built: a weight change takes effect when the owner rebuilds the farm snapshot.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use super::{PickContext, Policy, scan_from};
use crate::Member;

/// Longest smooth sequence kept per farm (entries of 4 bytes: 16 KiB at most, plus one entry per
/// member beyond it when a huge farm forces every weight to 1).
pub const MAX_PERIOD: usize = 4096;

#[derive(Debug)]
pub struct Weighted {
    /// Member indices in smooth-WRR order, one period long.
    seq: Box<[u32]>,
    cursor: AtomicUsize,
}

impl Weighted {
    pub fn new(members: &[Arc<Member>]) -> Self {
        let weights: Vec<u64> = members
            .iter()
            .map(|m| u64::from(m.state.weight()))
            .collect();
        Weighted {
            seq: smooth_sequence(&reduce(weights)).into_boxed_slice(),
            cursor: AtomicUsize::new(0),
        }
    }

    /// The precomputed sequence of member indices (one period).
    pub fn sequence(&self) -> &[u32] {
        &self.seq
    }
}

/// Divides the weights by their gcd and, when their sum still exceeds [`MAX_PERIOD`], scales them
/// down proportionally (each at least 1).
fn reduce(mut weights: Vec<u64>) -> Vec<u64> {
    for w in &mut weights {
        *w = (*w).max(1);
    }
    let sum: u64 = weights.iter().sum();
    if sum > MAX_PERIOD as u64 {
        for w in &mut weights {
            *w = (*w * MAX_PERIOD as u64 / sum).max(1);
        }
    }
    let g = weights.iter().copied().fold(0, gcd);
    if g > 1 {
        for w in &mut weights {
            *w /= g;
        }
    }
    weights
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// nginx's smooth weighted round robin, run for one period. On equal scores the lower index wins,
/// as in nginx (it keeps the first best peer).
fn smooth_sequence(weights: &[u64]) -> Vec<u32> {
    let total: i64 = weights.iter().map(|&w| w as i64).sum();
    let mut current = vec![0i64; weights.len()];
    let mut seq = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for (i, &w) in weights.iter().enumerate() {
            current[i] += w as i64;
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        seq.push(best as u32);
    }
    seq
}

impl Policy for Weighted {
    fn name(&self) -> &'static str {
        "weighted"
    }

    fn pick(&self, members: &[Arc<Member>], ctx: &mut PickContext) -> Option<usize> {
        let len = self.seq.len();
        if len == 0 || members.is_empty() {
            return None;
        }
        let pos = self.cursor.fetch_add(1, Relaxed) % len;
        for skipped in 0..len {
            let i = self.seq[(pos + skipped) % len] as usize;
            if ctx.eligible(members, i) {
                if skipped > 0 {
                    // Drop the ineligible slots we walked over, so their turns do not all fall to
                    // this member: the eligible members keep their relative weights.
                    self.cursor.fetch_add(skipped, Relaxed);
                }
                return Some(i);
            }
        }
        scan_from(members, ctx, self.seq[pos] as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Flag;
    use crate::policy::testing::{check_eligibility, members, spread};

    fn names(seq: &[u32]) -> String {
        seq.iter().map(|&i| (b'a' + i as u8) as char).collect()
    }

    #[test]
    fn sequence_is_nginx_smooth_order() {
        let ms = members(&[5, 1, 1]);
        let p = Weighted::new(&ms);
        assert_eq!(names(p.sequence()), "aabacaa");
        let first: Vec<u32> = (0..7)
            .map(|_| {
                p.pick(&ms, &mut PickContext::new(crate::Rng::new(0)))
                    .unwrap() as u32
            })
            .collect();
        assert_eq!(names(&first), "aabacaa");
    }

    #[test]
    fn exact_ratio_over_whole_periods() {
        let ms = members(&[5, 1, 1]);
        assert_eq!(
            spread(&Weighted::new(&ms), &ms, 7 * 100, 1),
            vec![500, 100, 100]
        );
        let ms = members(&[3, 2, 1, 4]);
        assert_eq!(
            spread(&Weighted::new(&ms), &ms, 10 * 50, 1),
            vec![150, 100, 50, 200]
        );
    }

    #[test]
    fn smooth_every_prefix_stays_within_one_pick_of_its_share() {
        // After any t picks each member has its exact share t * w / total, give or take less than
        // one pick: no bursts. A grouped order (`aaaaabc`) has `a` 1.43 picks ahead after 5.
        for weights in [&[5, 1, 1][..], &[3, 2, 1, 4], &[10, 3, 7, 1]] {
            let ms = members(weights);
            let seq = Weighted::new(&ms).sequence().to_vec();
            let total: u32 = weights.iter().sum();
            let mut count = vec![0u32; weights.len()];
            for (t, &i) in seq.iter().enumerate() {
                count[i as usize] += 1;
                for (c, &w) in count.iter().zip(weights) {
                    let share = f64::from((t as u32 + 1) * w) / f64::from(total);
                    let dev = (f64::from(*c) - share).abs();
                    assert!(dev < 1.0, "{weights:?} after {}: {count:?}", t + 1);
                }
            }
        }
    }

    #[test]
    fn gcd_is_divided_out() {
        let ms = members(&[10, 20, 30]);
        assert_eq!(Weighted::new(&ms).sequence().len(), 6);
    }

    #[test]
    fn long_period_is_scaled_down_keeping_every_member() {
        let ms = members(&[10_000, 1, 3_331]);
        let p = Weighted::new(&ms);
        let seq = p.sequence();
        assert!(seq.len() <= MAX_PERIOD, "{}", seq.len());
        let count = |m| seq.iter().filter(|&&i| i == m).count();
        assert_eq!(count(1), 1, "the lightest member keeps at least one slot");
        let ratio = count(0) as f64 / count(2) as f64;
        assert!((ratio - 10_000.0 / 3_331.0).abs() < 0.01, "{ratio}");
    }

    #[test]
    fn ineligible_member_turns_are_dropped_not_shifted() {
        // With `a` down, b and c keep their 1:1 ratio; naive skipping to the next slot would hand
        // most of a's turns to whichever member follows it in the sequence.
        let ms = members(&[5, 1, 1]);
        let p = Weighted::new(&ms);
        ms[0].state.set(Flag::Up, false);
        assert_eq!(spread(&p, &ms, 1_000, 1), vec![0, 500, 500]);
        let ms = members(&[2, 3, 5]);
        let p = Weighted::new(&ms);
        ms[2].state.set(Flag::Draining, true);
        assert_eq!(spread(&p, &ms, 500, 1), vec![200, 300, 0]);
    }

    #[test]
    fn eligibility() {
        check_eligibility(|ms| Box::new(Weighted::new(ms)));
    }
}
