//! `hash`: consistent hashing of a request key onto a ring of virtual nodes, with bounded load.
//!
//! The same key (client address, header or cookie value: the proxy hashes it into
//! [`PickContext::key`]) goes to the same member as long as that member is eligible, and when a
//! member joins or leaves only the keys on its arcs of the ring move. Every node of a cluster
//! builds the same ring: points are [`hash_key`] of `"<name>#<i>"`, so they depend on member names
//! and weights, never on process state or on the order of the member list.
//!
//! Ring: each member gets [`POINTS_PER_WEIGHT`] points per unit of weight relative to the farm's
//! smallest weight (160 for equal weights: ~8% standard deviation of a member's share), at most
//! [`MAX_POINTS_PER_MEMBER`] (so weight ratios above 64:1 are flattened to 64:1). The points are
//! sorted once at build time; a pick binary-searches the key (O(log points)) and walks clockwise to
//! the first member that may take the request.
//!
//! Bounded load (Mirrokni, Thorup, Zadimoghaddam, "Consistent Hashing with Bounded Loads", 2018):
//! with `bound` = c > 0, a member is passed over while its in-flight count is at least
//! `ceil(c * (total + 1) / eligible)`, where `total` is the in-flight count summed over the eligible
//! members. A hot key then overflows to the next members on the ring instead of burying its own,
//! and no member carries more than c times the average. Computing the totals is one O(n) pass of
//! atomic loads, done only when the bound is on. Values of c below 1 would leave no member under
//! the cap, so they are raised to 1.
//!
//! Fallbacks: a request without a key lands on a random point (an even, weight-proportional
//! spread, from the context's [`Rng`](crate::Rng)). The clockwise walk stops after [`WALK`]
//! points; past that (most of the farm down or full) the members are scanned in index order from
//! the key's owner, first under the bound, then ignoring it, so the pick returns `None` only when
//! no member is eligible. No lock, no allocation, no shared write.
//!
//! Weights are read from [`MemberState::weight`](crate::MemberState::weight) when the ring is
//! built: a weight change takes effect when the owner rebuilds the farm snapshot.

use std::fmt::Write;
use std::sync::Arc;

use super::{PickContext, Policy, scan_from};
use crate::Member;
use crate::hash::hash_key;

/// Ring points per unit of weight (relative to the farm's smallest weight).
pub const POINTS_PER_WEIGHT: u64 = 160;
/// Most points one member gets, whatever its weight.
pub const MAX_POINTS_PER_MEMBER: u64 = 64 * POINTS_PER_WEIGHT;
/// Most ring points a pick walks before scanning members in index order instead.
pub const WALK: usize = 128;

#[derive(Debug)]
pub struct ConsistentHash {
    /// Point positions, sorted ascending.
    points: Box<[u64]>,
    /// `owners[j]`: index of the member owning `points[j]`.
    owners: Box<[u32]>,
    /// Load bound c (>= 1), or 0 when unbounded.
    bound: f64,
}

impl ConsistentHash {
    /// Builds the ring over `members`. `bound` > 0 enables bounded load with that factor (raised to
    /// at least 1); `bound` <= 0 (or NaN) disables it.
    pub fn new(members: &[Arc<Member>], bound: f64) -> Self {
        let min_weight = members
            .iter()
            .map(|m| u64::from(m.state.weight().max(1)))
            .min()
            .unwrap_or(1);
        let mut ring: Vec<(u64, &str, u32)> = Vec::new();
        let mut label = String::new();
        for (idx, m) in members.iter().enumerate() {
            let weight = u64::from(m.state.weight().max(1));
            let n = (POINTS_PER_WEIGHT * weight / min_weight).min(MAX_POINTS_PER_MEMBER);
            for i in 0..n {
                label.clear();
                // Writing to a String cannot fail.
                let _ = write!(label, "{}#{i}", m.name());
                ring.push((hash_key(label.as_bytes()), m.name(), idx as u32));
            }
        }
        // Ties (two points at one position) are ordered by name so every node agrees.
        ring.sort_unstable();
        ConsistentHash {
            points: ring.iter().map(|p| p.0).collect(),
            owners: ring.iter().map(|p| p.2).collect(),
            bound: if bound > 0.0 { bound.max(1.0) } else { 0.0 },
        }
    }

    /// Number of points on the ring.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The in-flight cap of the bounded-load rule, or `u32::MAX` when unbounded. `None` when no
    /// member is eligible.
    fn capacity(&self, members: &[Arc<Member>], ctx: &PickContext) -> Option<u32> {
        if self.bound <= 0.0 {
            return Some(u32::MAX);
        }
        let (mut eligible, mut total) = (0u64, 0u64);
        for (i, m) in members.iter().enumerate() {
            if ctx.eligible(members, i) {
                eligible += 1;
                total += u64::from(m.stats.in_flight());
            }
        }
        if eligible == 0 {
            return None;
        }
        // Saturating float-to-int cast: a huge cap is simply no cap.
        Some((self.bound * (total + 1) as f64 / eligible as f64).ceil() as u32)
    }
}

impl Policy for ConsistentHash {
    fn name(&self) -> &'static str {
        "hash"
    }

    fn pick(&self, members: &[Arc<Member>], ctx: &mut PickContext) -> Option<usize> {
        let len = self.points.len();
        if len == 0 || members.is_empty() {
            return None;
        }
        let cap = self.capacity(members, ctx)?;
        let fits = |ctx: &PickContext, i: usize| {
            ctx.eligible(members, i) && members[i].stats.in_flight() < cap
        };
        let key = match ctx.key {
            Some(key) => key,
            None => ctx.rng.next_u64(),
        };
        // First point at or after the key, wrapping past the top of the ring.
        let start = self.points.partition_point(|&p| p < key) % len;
        for step in 0..len.min(WALK) {
            let i = self.owners[(start + step) % len] as usize;
            if fits(ctx, i) {
                return Some(i);
            }
        }
        let owner = self.owners[start] as usize;
        let n = members.len();
        if cap < u32::MAX
            && let Some(i) = (0..n).map(|k| (owner + k) % n).find(|&i| fits(ctx, i))
        {
            return Some(i);
        }
        scan_from(members, ctx, owner)
    }
}

#[cfg(test)]
mod tests;
