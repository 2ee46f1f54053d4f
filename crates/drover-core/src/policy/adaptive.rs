//! `adaptive`: drover's default and best rule: the eligible member with the least expected wait,
//! `(in-flight + 1) x latency estimate / weight`, where the estimate also rises while a busy member
//! stops answering (a stall detector).
//!
//! Where it sits: [`crate::Farm::pick`] calls [`Adaptive::pick`] for every request; the inputs are
//! the member's own counters, written by the proxy around each request
//! ([`MemberStats::start`](crate::MemberStats::start) and
//! [`finish_at`](crate::MemberStats::finish_at)), and its live weight, which an agent's `NN%`
//! scales through [`crate::Farm::apply_report`]. Config: `policy = "adaptive"` (the default); no
//! keys of its own. Metrics: none of its own (in-flight, latency EWMA and weight are in the admin
//! API).
//!
//! # The rule
//!
//! For each candidate member `i` (all eligible members when the farm has at most
//! [`SCAN_MAX`] = 16; otherwise [`SAMPLE`] = 3 distinct eligible members drawn at random):
//!
//! ```text
//! n     = in-flight requests this balancer has at i
//! L     = i's latency EWMA (time to response head, weight 0.1 per sample); 30 ms before any;
//!         after 1 s without a new sample (or timeout) it fades, x exp(-(age - 1 s) / 10 s)
//! quiet = now - time of i's last successful response
//! est   = max(L, quiet x n)      if n > 0 and i has ever answered, else L
//! cost  = (n + 1) x est / live weight
//! ```
//!
//! and the cheapest wins, an exact tie broken at random. What each part is for, with the
//! simulator figures that kept it (`drover-sim`, scenario M, 1 s timeout, timeouts sampled as
//! drover-proxy does, seeds 1-3, 300 s; docs/balancing.md has the tables):
//!
//! - **`(n + 1) x L`** (Peak-EWMA's cost, without its 10 s peak memory): local in-flight and
//!   local latency decide each request. `L` is the plain per-sample EWMA (about the last ten
//!   answers), which tracks a member's current speed within tens of milliseconds, where
//!   Peak-EWMA's peak-then-10 s-decay holds one slow answer for seconds. p99 at 550 req/s, stall
//!   detector on: 166 ms with `L`, 177 ms with the decayed Peak-EWMA estimate in its place;
//!   least-conn (in effect `L` = 1, no detector) 194 ms.
//! - **The stall detector, `quiet x n`**: with `n` requests in flight a member should answer about
//!   every `L / n`; once it has been silent for longer, the estimate grows with the silence. This
//!   catches B4's 300 ms freezes within a few tens of milliseconds, and Linkerd's member stuck at
//!   2 s within one normal latency, long before any latency sample can (a stuck request has no
//!   sample until it ends). Only a *successful* answer counts as progress
//!   ([`MemberStats::last_ok_at`](crate::MemberStats::last_ok_at)), so a member that only times
//!   out or fails stays expensive: errors count as load. Scenario M at 550 req/s: p99 185 -> 166
//!   ms. Linkerd replica: 0.08% timeouts; 0.19% when any answer, failures included, counted as
//!   progress; 0.16% when a pick of an idle member also restarted the clock (a write per pick).
//!   A member with nothing in flight has nothing to be late with, so the detector is off there; a
//!   member that never answered has no baseline, so it is off there too. After an idle spell, the
//!   first request to a member makes it look stalled until it answers (silence counts from the
//!   last success, not from when it became busy): that spreads the next picks, which costs
//!   nothing at low load, and restarting the clock when a member becomes busy was measured worse
//!   (above: 0.16% against 0.08% timeouts in the Linkerd replica).
//! - **The fade**: `L` moves only with answers, so a member avoided after a bad spell would keep
//!   its bad estimate and, at low load, never be picked to show that it recovered. After a second
//!   without a sample its estimate fades with Peak-EWMA's 10 s time constant, so it is tried
//!   again. Under load every member gets samples all the time, so the fade never starts, and the
//!   `exp` runs only past that second.
//! - **Full scan for small farms, 3 random candidates beyond**: a scan of 16 members is a few
//!   dozen atomic loads, and at this size it beats sampling (550 req/s: p99 166 ms scanning, 178
//!   with 3 candidates, 204 with 2). Beyond 16 members the pick stays O(1); 3 candidates beat 2
//!   (100 equal M/M/1 members at load 0.9: mean sojourn 2.19 against 2.82 service times). Random
//!   candidates and random tie-breaking keep several balancers from moving in step.
//! - **Weight** divides the cost, so the configured weight and an agent's `NN%` set capacity,
//!   and the agent's `drain` / `down` set eligibility (through the farm's flags): reported
//!   metrics reach the pick as capacity and health, never as the instantaneous signal.
//!
//! What was tried and dropped, because it lost in the simulator (docs/balancing.md, "What was
//! tried and dropped"):
//! - reported `cpu` as a capacity multiplier (relative headroom, damped, expired after 3 report
//!   intervals): p99 at 550 req/s 184-220 ms against 166 ms without, at 0.1 / 1 / 5 s reports and
//!   with ORCA per-response reports. A member the balancer avoids reports low cpu *because* it is
//!   avoided, and is then sent more (B3, three times slower, rose from 5% to 7-8% of the traffic);
//! - a saturation-only rule (cpu >= 0.9 or 0.95 halves capacity): 2-5% worse;
//! - reported `rif` minus local in-flight as extra load: 3-15% worse with one or two balancers,
//!   within 3% with ten (equal M/M/1 members).
//!
//! Hidden load (B1), the case reports were meant for, is already seen by `L`, since this
//! balancer's own requests queue behind it; so `on_report` is not overridden. Also dropped:
//! `(n + 1)^1.5` or `^2` (better p50, worse p99) and `L^1.25..2`. Not tried, for lack of time:
//! Prequal's hot/cold rule.
//!
//! Concurrency: the pick only reads atomics (flags, weight, in-flight, latency EWMA, last
//! success); no lock, no allocation, no shared write, so worker threads never bounce a cache
//! line through it. Counts move while a pick reads them; as with least-conn, two concurrent picks
//! may both take the same cheapest member (harmless). Time comes from [`PickContext::now`].

use std::sync::Arc;

use super::{PickContext, Policy};
use crate::Member;
use crate::member::PEAK_EWMA_DEFAULT_NS;

/// Farms up to this size are scanned in full; larger ones are sampled.
pub const SCAN_MAX: usize = 16;
/// Random candidates per pick in a farm larger than [`SCAN_MAX`].
pub const SAMPLE: usize = 3;
/// Uniform draws per candidate before falling back to a scan from a random start.
const DRAWS: usize = 4;
/// A latency estimate with no new sample for longer than this (ns) starts to fade.
const FADE_AFTER: u64 = 1_000_000_000;
/// Time constant (ns) of that fade: 10 s, Peak-EWMA's decay.
const FADE_TAU: f64 = 10e9;

#[derive(Debug, Default)]
pub struct Adaptive;

impl Adaptive {
    pub fn new(members: &[Arc<Member>]) -> Self {
        let _ = members;
        Adaptive
    }

    /// Member `m`'s cost at `now`: `(in-flight + 1) x estimate / weight`, estimate in ns (see the
    /// module doc).
    #[inline]
    pub fn cost(m: &Member, now: u64) -> f64 {
        let n = m.stats.in_flight();
        let mut est = m.stats.latency_ewma_ns();
        if est <= 0.0 {
            est = PEAK_EWMA_DEFAULT_NS;
        } else {
            // An estimate with no new sample for a while fades (as tower's Peak-EWMA does), so
            // a member avoided after a bad spell is tried again and can show it recovered.
            let (_, sampled) = m.stats.peak_rtt_raw();
            let age = now.saturating_sub(sampled);
            if sampled > 0 && age > FADE_AFTER {
                est *= (-((age - FADE_AFTER) as f64) / FADE_TAU).exp();
            }
        }
        let last_ok = m.stats.last_ok_at();
        if n > 0 && last_ok > 0 {
            let quiet = now.saturating_sub(last_ok) as f64;
            est = est.max(quiet * f64::from(n));
        }
        let weight = f64::from(m.state.live_weight_x100()) / 100.0;
        f64::from(n.saturating_add(1)) * est / weight
    }
}

/// A random eligible member not in `taken`, or `None` when there is none.
fn candidate(members: &[Arc<Member>], ctx: &mut PickContext, taken: &[usize]) -> Option<usize> {
    let n = members.len();
    let ok = |ctx: &PickContext, i: usize| !taken.contains(&i) && ctx.eligible(members, i);
    for _ in 0..DRAWS {
        let i = ctx.rng.below(n);
        if ok(ctx, i) {
            return Some(i);
        }
    }
    let start = ctx.rng.below(n);
    (0..n).map(|k| (start + k) % n).find(|&i| ok(ctx, i))
}

/// The cheapest so far, and how many tie with it (for reservoir tie-breaking).
struct Best {
    index: Option<usize>,
    cost: f64,
    ties: usize,
}

impl Best {
    #[inline]
    fn offer(&mut self, i: usize, cost: f64, ctx: &mut PickContext) {
        if cost < self.cost {
            (self.index, self.cost, self.ties) = (Some(i), cost, 1);
        } else if cost == self.cost {
            self.ties += 1;
            if ctx.rng.below(self.ties) == 0 {
                self.index = Some(i);
            }
        }
    }
}

impl Policy for Adaptive {
    fn name(&self) -> &'static str {
        "adaptive"
    }

    fn score(&self, members: &[Arc<Member>], index: usize, now: u64) -> Option<f64> {
        // In milliseconds of expected wait, for people reading `pick`.
        Some(Adaptive::cost(&members[index], now) / 1e6)
    }

    fn score_rule(&self) -> Option<&'static str> {
        Some(
            "expected wait in ms: (in-flight + 1) x latency estimate / weight, the estimate raised \
             while a busy member has not answered; lower wins",
        )
    }

    fn pick(&self, members: &[Arc<Member>], ctx: &mut PickContext) -> Option<usize> {
        let n = members.len();
        if n == 0 {
            return None;
        }
        let now = ctx.now();
        let mut best = Best {
            index: None,
            cost: f64::INFINITY,
            ties: 0,
        };
        if n <= SCAN_MAX {
            for i in 0..n {
                if ctx.eligible(members, i) {
                    best.offer(i, Adaptive::cost(&members[i], now), ctx);
                }
            }
        } else {
            let mut taken = [usize::MAX; SAMPLE];
            for k in 0..SAMPLE {
                let Some(i) = candidate(members, ctx, &taken[..k]) else {
                    break;
                };
                taken[k] = i;
                best.offer(i, Adaptive::cost(&members[i], now), ctx);
            }
        }
        best.index
    }
}

#[cfg(test)]
mod tests;
