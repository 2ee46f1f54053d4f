//! `peak-ewma`: power of two choices on Peak-EWMA cost, as Finagle, linkerd and tower define it:
//! draw two distinct eligible members at random and take the cheaper, cost being the member's
//! round-trip estimate x (in-flight + 1), divided by its weight; an exact tie is broken at random.
//!
//! Where it sits: [`crate::Farm::pick`] calls [`PeakEwma::pick`] for every request; the samples
//! come from the proxy through [`MemberStats::finish`](crate::MemberStats::finish) (time to the
//! response head), which folds them into the member's estimate with
//! [`MemberStats::observe_rtt`](crate::MemberStats::observe_rtt). Config: `policy = "peak-ewma"`;
//! no metric of its own (the admin API shows the plain latency EWMA and in-flight counts).
//!
//! The estimate (per member, in [`MemberStats`](crate::MemberStats)): 30 ms before any sample
//! ([`PEAK_EWMA_DEFAULT_NS`]); a sample above it replaces it at once (the peak: one slow answer
//! makes the member expensive immediately); a sample below moves it there with weight
//! `1 - exp(-elapsed / tau)`, tau = 10 s ([`PEAK_EWMA_TAU_NS`]), `elapsed` being the time since
//! the last update. At pick time the estimate is also decayed towards 0 by the time since its last
//! update, so a member that stopped answering fast (or was avoided after a peak) looks cheaper
//! again after a few tau and is tried again, while its in-flight count keeps a stuck member
//! expensive.
//!
//! What mirrors tower (`tower::load::PeakEwma`, `src/load/peak_ewma.rs`): the peak rule, the
//! `exp(-elapsed / tau)` weight, the decay towards 0 at load time whether or not requests are
//! pending (`load()` calls `update_estimate()` unconditionally), `cost = estimate * (pending + 1)`,
//! and a default estimate whose clock starts when the member is created (tower's
//! `RttEstimate::new` takes `Instant::now()`; here [`Member::new`](crate::Member::new) calls
//! `start_peak_clock`), so a member never sampled decays from 30 ms too and is not starved next to
//! much faster ones. What differs, and why:
//! - *Picks do not write.* tower's `load()` stores the decayed estimate and resets the update time
//!   under a `Mutex`; here the estimate is shared by every worker thread, and a write per pick
//!   would bounce its cache line between cores (and need a lock to keep estimate and time
//!   together). So the pick computes the decayed value and discards it. Consequence: a sample
//!   below the estimate is weighted by the time since the last *sample*, not since the last pick.
//!   In tower a member picked often thus drifts towards 0 between samples and is pulled back up
//!   only by samples above it (close to "the recent peak"); here it is a time-weighted EWMA with
//!   peaks, which is what Finagle's description says it is.
//! - *No lock, no CAS.* The estimate and its time are two atomics, updated with plain loads and
//!   stores: two workers finishing at once may lose one sample, or pair one's estimate with the
//!   other's time. Either is a value a sample could have produced; the next sample fixes it.
//! - *Pending* is the proxy's in-flight count (requests started and not finished: the response
//!   body may still be streaming), where tower counts live handles (until the response head, with
//!   `CompleteOnResponse`). The sample itself is the time to the response head, as in tower.
//! - *Weight* divides the cost (as `p2c` divides in-flight), so a member of weight 2 takes twice
//!   the load at equal cost; tower has no weights.
//! - *Time* comes from [`PickContext::now`]: the proxy passes the time it already read for the
//!   request (a clock reading costs more than the rest of the pick), a simulator its own time,
//!   otherwise the clock is read. A sample's time is the response head's arrival, passed by the
//!   proxy to [`MemberStats::finish_at`](crate::MemberStats::finish_at) (tower: when the handle
//!   drops, the same moment with `CompleteOnResponse`).
//!
//! Candidates are sampled exactly as in `p2c` (its `candidate`: uniform draws, then a scan), so
//! eligibility and the O(1) common case are the same. No lock, no allocation, no shared write.
//!
//! [`PEAK_EWMA_DEFAULT_NS`]: crate::member::PEAK_EWMA_DEFAULT_NS
//! [`PEAK_EWMA_TAU_NS`]: crate::member::PEAK_EWMA_TAU_NS

use std::sync::Arc;

use super::p2c::candidate;
use super::{PickContext, Policy};
use crate::Member;

#[derive(Debug, Default)]
pub struct PeakEwma;

impl PeakEwma {
    pub fn new() -> Self {
        PeakEwma
    }

    /// A member's cost at `now`: Peak-EWMA estimate x (in-flight + 1) / weight, in nanoseconds.
    #[inline]
    pub fn cost(member: &Member, now: u64) -> f64 {
        // Live weight (with the agent's percentage) in weight units; at least 0.01.
        let weight = f64::from(member.state.live_weight_x100()) / 100.0;
        member.stats.peak_ewma_cost_at(now) / weight
    }
}

impl Policy for PeakEwma {
    fn name(&self) -> &'static str {
        "peak-ewma"
    }

    fn score(&self, members: &[Arc<Member>], index: usize, now: u64) -> Option<f64> {
        Some(PeakEwma::cost(&members[index], now))
    }

    fn score_rule(&self) -> Option<&'static str> {
        Some(
            "Peak-EWMA cost in ns: estimate x (in-flight + 1) / weight; lower wins (of two random candidates)",
        )
    }

    fn pick(&self, members: &[Arc<Member>], ctx: &mut PickContext) -> Option<usize> {
        if members.is_empty() {
            return None;
        }
        let a = candidate(members, ctx, None)?;
        let Some(b) = candidate(members, ctx, Some(a)) else {
            return Some(a);
        };
        let now = ctx.now();
        let (ca, cb) = (
            PeakEwma::cost(&members[a], now),
            PeakEwma::cost(&members[b], now),
        );
        Some(if ca < cb {
            a
        } else if cb < ca || ctx.rng.next_u64() & 1 == 1 {
            b
        } else {
            a
        })
    }
}

#[cfg(test)]
mod tests;
