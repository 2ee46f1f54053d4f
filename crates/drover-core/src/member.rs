//! Members: one application server each — its identity, its state flags and its counters.
//!
//! Who writes what (see DESIGN.md, "Member state"): the operator writes on/off and draining, health
//! checks write up/down, report freshness writes in/out; the proxy writes the counters around every
//! request, including the Peak-EWMA latency estimate that the `peak-ewma` policy reads (see
//! [`crate::policy::PeakEwma`] for the rule and its concurrency). All of it is atomics, so the
//! request path reads state without a lock; a flag setter returns whether it changed anything, so
//! the caller can log and count each flip exactly once; [`Member::flip`] does that and also records
//! the flip with its reason in the member's [`Health`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering::Relaxed};

use crate::health::{Health, Transition};
use crate::latency::{LatencyHistogram, LatencySnapshot};
use crate::reported::Reported;

/// What a member is, as configured: the part that does not change while it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSpec {
    pub name: String,
    pub addr: SocketAddr,
    /// Relative share of capacity, at least 1.
    pub weight: u32,
    /// Sticky route id (`JSESSIONID=abc.<route>`), as in mod_proxy_balancer.
    pub route: Option<String>,
    /// The operator's on/off flag at start.
    pub enabled: bool,
}

/// One of the member's independent flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Flag {
    /// on/off: written by the operator. Off = never chosen.
    On = 1,
    /// up/down: written by health checks. Down = not chosen.
    Up = 2,
    /// in/out: written by report freshness. Out = not chosen.
    In = 4,
    /// Draining: no new sessions; existing sticky users are still served.
    Draining = 8,
    /// Ejected by passive checks (failures in live traffic) until a backoff ends. Kept apart from
    /// up/down so an active check that passes cannot end an ejection early, and the reverse.
    Ejected = 16,
}

impl Flag {
    pub const COUNT: usize = 5;
    pub const ALL: [Flag; Flag::COUNT] =
        [Flag::On, Flag::Up, Flag::In, Flag::Draining, Flag::Ejected];

    /// Position in [`Flag::ALL`].
    pub fn index(self) -> usize {
        (self as u8).trailing_zeros() as usize
    }

    /// The flag's name in the API: `on`, `up`, `in`, `draining`, `ejected`.
    pub fn name(self) -> &'static str {
        match self {
            Flag::On => "on",
            Flag::Up => "up",
            Flag::In => "in",
            Flag::Draining => "draining",
            Flag::Ejected => "ejected",
        }
    }
}

const READY: u8 = Flag::On as u8 | Flag::Up as u8 | Flag::In as u8;
/// Bits that must be clear for a member to take new sessions.
const BLOCKING: u8 = Flag::Draining as u8 | Flag::Ejected as u8;
/// In panic mode health is ignored: on and in are enough.
const PANIC_READY: u8 = Flag::On as u8 | Flag::In as u8;

/// The flags and the live weight of a member.
///
/// The weight has two parts: `weight` (configured, or set by the operator; at least 1) and the
/// agent's percentage of it (`75%`; 100 until an agent reports). Their product, in hundredths of
/// a weight unit, is kept ready in `live` so a pick reads one atomic. `weight()` is what the
/// policies built once from the member set read (`weighted`, `random`, `hash`: the agent's
/// percentage does not reach them until the farm is rebuilt); `live_weight_x100()` is what the
/// live ones read (`least-conn`, `p2c`, `peak-ewma`).
#[derive(Debug)]
pub struct MemberState {
    flags: AtomicU8,
    weight: AtomicU32,
    pct: AtomicU32,
    live: AtomicU32,
}

impl MemberState {
    pub fn new(enabled: bool, weight: u32) -> Self {
        let on = if enabled { Flag::On as u8 } else { 0 };
        let weight = weight.max(1);
        MemberState {
            flags: AtomicU8::new(on | Flag::Up as u8 | Flag::In as u8),
            weight: AtomicU32::new(weight),
            pct: AtomicU32::new(100),
            live: AtomicU32::new(weight.saturating_mul(100)),
        }
    }

    #[inline]
    pub fn get(&self, flag: Flag) -> bool {
        self.flags.load(Relaxed) & flag as u8 != 0
    }

    /// Sets or clears `flag`; returns true when this call changed it (so the flip is logged once).
    pub fn set(&self, flag: Flag, value: bool) -> bool {
        let bit = flag as u8;
        let old = if value {
            self.flags.fetch_or(bit, Relaxed)
        } else {
            self.flags.fetch_and(!bit, Relaxed)
        };
        (old & bit != 0) != value
    }

    /// On, up, in and not ejected: may serve requests (sticky users of a draining member included).
    #[inline]
    pub fn is_ready(&self) -> bool {
        self.flags.load(Relaxed) & (READY | Flag::Ejected as u8) == READY
    }

    /// Healthy: up (active checks) and not ejected (passive checks).
    #[inline]
    pub fn is_up(&self) -> bool {
        self.flags.load(Relaxed) & (Flag::Up as u8 | Flag::Ejected as u8) == Flag::Up as u8
    }

    /// Ready and not draining: may be given new sessions by a policy.
    #[inline]
    pub fn accepts_new(&self) -> bool {
        self.flags.load(Relaxed) & (READY | BLOCKING) == READY
    }

    /// What [`accepts_new`](Self::accepts_new) becomes while the farm is in panic mode: health
    /// (up/down, ejected) is ignored; the operator's on/off, in/out and draining still hold.
    #[inline]
    pub fn accepts_new_in_panic(&self) -> bool {
        self.flags.load(Relaxed) & (PANIC_READY | Flag::Draining as u8) == PANIC_READY
    }

    /// May keep serving the clients stuck to it: ready, draining or not. In panic mode (`panic`)
    /// health is ignored as it is for new picks: on and in are enough.
    #[inline]
    pub fn serves_sticky(&self, panic: bool) -> bool {
        if panic {
            self.flags.load(Relaxed) & PANIC_READY == PANIC_READY
        } else {
            self.is_ready()
        }
    }

    #[inline]
    pub fn weight(&self) -> u32 {
        self.weight.load(Relaxed)
    }

    pub fn set_weight(&self, weight: u32) {
        self.weight.store(weight.max(1), Relaxed);
        self.update_live();
    }

    /// The agent's share of the weight, in percent (100 until an agent reports).
    pub fn weight_pct(&self) -> u32 {
        self.pct.load(Relaxed)
    }

    /// Sets the agent's share of the weight, in percent; returns true when it changed.
    pub fn set_weight_pct(&self, pct: u32) -> bool {
        let changed = self.pct.swap(pct, Relaxed) != pct;
        self.update_live();
        changed
    }

    /// `weight` x `weight_pct`: the live weight in hundredths of a weight unit, at least 1 (a 0%
    /// member is kept from new traffic by draining, not by its weight; see `Farm::apply_report`).
    #[inline]
    pub fn live_weight_x100(&self) -> u32 {
        self.live.load(Relaxed)
    }

    fn update_live(&self) {
        let live = self
            .weight
            .load(Relaxed)
            .saturating_mul(self.pct.load(Relaxed));
        self.live.store(live.max(1), Relaxed);
    }
}

/// Per-member counters, written around every request. Aligned to a cache line so two members'
/// counters never share one between worker threads.
#[derive(Debug, Default)]
#[repr(align(64))]
pub struct MemberStats {
    in_flight: AtomicU32,
    requests: AtomicU64,
    failures: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    /// Latency EWMA in nanoseconds, stored as f64 bits.
    latency_ewma: AtomicU64,
    /// Open upstream connections (pooled or busy), for the per-member connection limit.
    connections: AtomicU32,
    /// Peak-EWMA round-trip estimate in nanoseconds, as f64 bits; 0 = no sample yet (the estimate
    /// is then [`PEAK_EWMA_DEFAULT_NS`]). See [`crate::policy::PeakEwma`].
    peak_rtt: AtomicU64,
    /// When `peak_rtt` was last updated, on the [`crate::clock`] scale; 0 = never (no decay).
    peak_at: AtomicU64,
    /// When the last successful response head arrived, on the [`crate::clock`] scale; 0 = never.
    /// `adaptive`'s stall detector reads it (a failure or a timeout is not a sign of progress).
    last_ok: AtomicU64,
    /// Time to the response head, in fixed buckets (the `drover_member_latency_seconds`
    /// histogram); written with the EWMA, read only by the admin API.
    latency: LatencyHistogram,
}

/// Weight of the newest sample in the latency EWMA.
const EWMA_ALPHA: f64 = 0.1;

/// Peak-EWMA decay time constant (tau): 10 s, as in Finagle and linkerd.
pub const PEAK_EWMA_TAU_NS: f64 = 10e9;
/// Peak-EWMA estimate before the first sample: 30 ms, as in linkerd.
pub const PEAK_EWMA_DEFAULT_NS: f64 = 30e6;

/// `exp(-elapsed / tau)`: the weight the old estimate keeps after `elapsed` nanoseconds.
#[inline]
fn peak_decay(elapsed_ns: u64) -> f64 {
    (-(elapsed_ns as f64) / PEAK_EWMA_TAU_NS).exp()
}

impl MemberStats {
    #[inline]
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Relaxed)
    }
    pub fn requests(&self) -> u64 {
        self.requests.load(Relaxed)
    }
    pub fn failures(&self) -> u64 {
        self.failures.load(Relaxed)
    }
    pub fn bytes_in(&self) -> u64 {
        self.bytes_in.load(Relaxed)
    }
    pub fn bytes_out(&self) -> u64 {
        self.bytes_out.load(Relaxed)
    }
    pub fn connections(&self) -> u32 {
        self.connections.load(Relaxed)
    }
    /// Latency EWMA in nanoseconds (0 before the first response).
    pub fn latency_ewma_ns(&self) -> f64 {
        f64::from_bits(self.latency_ewma.load(Relaxed))
    }

    /// The latency histogram's buckets and sum, for a scrape.
    pub fn latency_histogram(&self) -> LatencySnapshot {
        self.latency.snapshot()
    }

    /// When the last successful response with a latency arrived (0: never), on the
    /// [`crate::clock`] scale.
    #[inline]
    pub fn last_ok_at(&self) -> u64 {
        self.last_ok.load(Relaxed)
    }

    /// The stored Peak-EWMA estimate (ns) and when it was last updated (0: never), without the
    /// decay since then; [`peak_rtt_ns_at`](Self::peak_rtt_ns_at) is what a pick uses.
    pub fn peak_rtt_raw(&self) -> (f64, u64) {
        let rtt = f64::from_bits(self.peak_rtt.load(Relaxed));
        let rtt = if rtt > 0.0 { rtt } else { PEAK_EWMA_DEFAULT_NS };
        (rtt, self.peak_at.load(Relaxed))
    }

    /// The Peak-EWMA estimate (ns) as seen at `now`: the stored one, decayed towards 0 by the time
    /// since its last update (as tower's `load()` does). Reads only: a pick never writes it.
    #[inline]
    pub fn peak_rtt_ns_at(&self, now: u64) -> f64 {
        let (rtt, at) = self.peak_rtt_raw();
        if at == 0 {
            return rtt;
        }
        rtt * peak_decay(now.saturating_sub(at))
    }

    /// The Peak-EWMA cost at `now`: `estimate * (in-flight + 1)`, in nanoseconds (not weighted).
    #[inline]
    pub fn peak_ewma_cost_at(&self, now: u64) -> f64 {
        self.peak_rtt_ns_at(now) * f64::from(self.in_flight().saturating_add(1))
    }

    /// Starts the clock of the default estimate at `now`, as tower does when it wraps a service:
    /// without a sample the default then decays, so a member never sampled (next to members much
    /// faster than the default) is tried again after a while. Does nothing once a sample is in.
    pub fn start_peak_clock(&self, now: u64) {
        if self.peak_rtt.load(Relaxed) == 0 {
            self.peak_at.store(now, Relaxed);
        }
    }

    /// Folds one response time into the Peak-EWMA estimate at `now`: a sample above the estimate
    /// replaces it (the peak); one below moves it there with weight `1 - exp(-elapsed / tau)`,
    /// `elapsed` being the time since the last update.
    ///
    /// Two loads, two stores, no CAS: two workers updating at once may lose one sample or pair one
    /// worker's estimate with the other's time; both are values a sample could have produced, and
    /// the next sample (or a peak) corrects them.
    #[inline]
    pub fn observe_rtt(&self, latency_ns: u64, now: u64) {
        let (old, at) = self.peak_rtt_raw();
        let rtt = latency_ns as f64;
        let new = if rtt >= old {
            rtt
        } else {
            let keep = if at == 0 {
                0.0
            } else {
                peak_decay(now.saturating_sub(at))
            };
            old * keep + rtt * (1.0 - keep)
        };
        // 0 is "no sample": a 0 ns sample is stored as the smallest positive value.
        self.peak_rtt
            .store(new.max(f64::MIN_POSITIVE).to_bits(), Relaxed);
        self.peak_at.store(now.max(1), Relaxed);
    }

    /// A request was sent to this member.
    #[inline]
    pub fn start(&self) {
        self.in_flight.fetch_add(1, Relaxed);
        self.requests.fetch_add(1, Relaxed);
    }

    /// The request ended (response fully sent, or failed). `latency_ns` is time to the response head;
    /// with one, the sample goes into the latency EWMA, the Peak-EWMA and the histogram.
    /// With a latency, reads [`clock::now`](crate::clock::now) for the Peak-EWMA update; see
    /// [`finish_at`](Self::finish_at) to pass the time.
    #[inline]
    pub fn finish(&self, ok: bool, latency_ns: Option<u64>) {
        let now = if latency_ns.is_some() {
            crate::clock::now()
        } else {
            0
        };
        self.finish_at(ok, latency_ns, now);
    }

    /// [`finish`](Self::finish) at `now` (on the [`crate::clock`] scale; unused without a latency).
    #[inline]
    pub fn finish_at(&self, ok: bool, latency_ns: Option<u64>, now: u64) {
        self.in_flight.fetch_sub(1, Relaxed);
        if !ok {
            self.failures.fetch_add(1, Relaxed);
        }
        if let Some(ns) = latency_ns {
            // A lost update under contention only drops one sample from an average: no CAS loop.
            let old = self.latency_ewma_ns();
            let new = if old == 0.0 {
                ns as f64
            } else {
                old + EWMA_ALPHA * (ns as f64 - old)
            };
            self.latency_ewma.store(new.to_bits(), Relaxed);
            self.latency.record(ns);
            self.observe_rtt(ns, now);
            if ok {
                self.last_ok.store(now.max(1), Relaxed);
            }
        }
    }

    #[inline]
    pub fn add_bytes(&self, inbound: u64, outbound: u64) {
        if inbound > 0 {
            self.bytes_in.fetch_add(inbound, Relaxed);
        }
        if outbound > 0 {
            self.bytes_out.fetch_add(outbound, Relaxed);
        }
    }

    /// Reserves one connection slot if fewer than `max` are open (`max == 0`: unlimited).
    #[inline]
    pub fn try_open_connection(&self, max: u32) -> bool {
        if max == 0 {
            self.connections.fetch_add(1, Relaxed);
            return true;
        }
        self.connections
            .fetch_update(Relaxed, Relaxed, |c| (c < max).then_some(c + 1))
            .is_ok()
    }

    #[inline]
    pub fn close_connection(&self) {
        self.connections.fetch_sub(1, Relaxed);
    }
}

/// A member of a farm: spec, flags, counters and health bookkeeping.
#[derive(Debug)]
pub struct Member {
    pub spec: MemberSpec,
    pub state: MemberState,
    pub stats: MemberStats,
    pub health: Health,
    /// What the member's agent reported, and the agent's own health.
    pub reported: Reported,
    /// The sticky route id in force: the config's, or one the operator set at run time. Read
    /// when a farm is built (its route map) and by the API, never per request.
    route: std::sync::Mutex<Option<Arc<str>>>,
}

impl Member {
    pub fn new(spec: MemberSpec) -> Self {
        let state = MemberState::new(spec.enabled, spec.weight);
        let stats = MemberStats::default();
        stats.start_peak_clock(crate::clock::now());
        let route = std::sync::Mutex::new(spec.route.as_deref().map(Arc::from));
        Member {
            route,
            spec,
            state,
            stats,
            health: Health::default(),
            reported: Reported::default(),
        }
    }

    /// Sets `flag` to `value` for `reason`. When that changes the flag, the flip is counted,
    /// remembered as the member's last transition and returned, for the caller to log once; a
    /// member that becomes healthy again (up, or back from an ejection) starts its slow start.
    /// `reason` is only built when the flag flips. `now` is on the [`crate::clock`] scale.
    pub fn flip(
        &self,
        flag: Flag,
        value: bool,
        reason: impl FnOnce() -> String,
        now: u64,
    ) -> Option<Transition> {
        // Flag and record change under the record's lock, so whoever sees the flag flipped and
        // then asks for the last transition gets this one, not the one before.
        let mut last = self.health.lock_last();
        if !self.state.set(flag, value) {
            return None;
        }
        let healed = matches!((flag, value), (Flag::Up, true) | (Flag::Ejected, false));
        if healed && self.state.is_up() {
            self.health.up_since.store(now.max(1), Relaxed);
        }
        let t = Transition {
            flag,
            value,
            reason: reason(),
            at: now,
        };
        self.health.count(flag);
        *last = Some(t.clone());
        Some(t)
    }

    /// Starts the member's slow start at `now` (a member added at run time), when it is up; the
    /// farm's `slow_start` decides whether and how long it ramps.
    pub fn start_ramp(&self, now: u64) {
        if self.state.is_up() {
            self.health.up_since.store(now.max(1), Relaxed);
        }
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn addr(&self) -> SocketAddr {
        self.spec.addr
    }

    /// The sticky route id in force (see the `route` field).
    pub fn route(&self) -> Option<Arc<str>> {
        self.route.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Changes the route id; the farm's route map follows when the farm is rebuilt.
    pub fn set_route(&self, route: Option<&str>) {
        *self.route.lock().unwrap_or_else(|e| e.into_inner()) = route.map(Arc::from);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member() -> Member {
        Member::new(MemberSpec {
            name: "a".into(),
            addr: "127.0.0.1:1".parse().unwrap(),
            weight: 1,
            route: None,
            enabled: true,
        })
    }

    #[test]
    fn flags_are_independent_and_flips_report_once() {
        let m = member();
        assert!(m.state.is_ready() && m.state.accepts_new());
        assert!(m.state.set(Flag::Up, false));
        assert!(
            !m.state.set(Flag::Up, false),
            "second identical write is not a flip"
        );
        assert!(!m.state.is_ready());
        assert!(m.state.get(Flag::On), "health never touches on/off");
        assert!(m.state.set(Flag::Up, true));
        assert!(m.state.set(Flag::Draining, true));
        assert!(m.state.is_ready() && !m.state.accepts_new());
        assert!(m.state.set(Flag::In, false));
        assert!(!m.state.is_ready());
    }

    #[test]
    fn ejection_is_apart_from_up_down() {
        let m = member();
        let t = m
            .flip(Flag::Ejected, true, || "5 failures".into(), 10)
            .unwrap();
        assert_eq!(t.to_string(), "ejected: 5 failures");
        assert!(!m.state.is_ready() && !m.state.is_up() && !m.state.accepts_new());
        assert!(m.state.accepts_new_in_panic(), "panic ignores health");
        assert!(m.flip(Flag::Up, true, || unreachable!(), 11).is_none());
        assert!(!m.state.is_up(), "a passing check does not end an ejection");
        assert_eq!(m.health.up_since(), None);
        let t = m
            .flip(Flag::Ejected, false, || "backoff over".into(), 20)
            .unwrap();
        assert_eq!(t.state(), "returned");
        assert!(m.state.is_ready());
        assert_eq!(m.health.up_since(), Some(20), "slow start begins");
        assert_eq!(m.health.flips(Flag::Ejected), 2);
        assert_eq!(m.health.last_transition(), Some(t));
        m.state.set(Flag::Draining, true);
        assert!(
            !m.state.accepts_new_in_panic(),
            "draining still holds in panic"
        );
    }

    #[test]
    fn flag_indices_are_dense() {
        for (i, f) in Flag::ALL.iter().enumerate() {
            assert_eq!(f.index(), i);
        }
    }

    #[test]
    fn disabled_member_is_not_ready() {
        let m = Member::new(MemberSpec {
            enabled: false,
            ..member().spec
        });
        assert!(!m.state.is_ready());
    }

    #[test]
    fn last_ok_counts_only_successes_with_a_latency() {
        let s = MemberStats::default();
        assert_eq!(s.last_ok_at(), 0, "never");
        s.start();
        s.finish_at(true, Some(1_000), 50);
        s.start();
        s.finish_at(false, Some(1_000), 60);
        s.start();
        s.finish_at(true, None, 70);
        assert_eq!(s.last_ok_at(), 50);
    }

    #[test]
    fn counters_and_connection_limit() {
        let s = MemberStats::default();
        s.start();
        s.start();
        assert_eq!(s.in_flight(), 2);
        s.finish(true, Some(1_000));
        s.finish(false, Some(3_000));
        assert_eq!((s.in_flight(), s.requests(), s.failures()), (0, 2, 1));
        assert!((s.latency_ewma_ns() - 1_200.0).abs() < 1e-6);
        let h = s.latency_histogram();
        assert_eq!((h.count(), h.sum_ns, h.buckets[0]), (2, 4_000, 2));
        s.start();
        s.finish(false, None);
        assert_eq!(s.latency_histogram().count(), 2, "no latency, no sample");
        assert!(s.try_open_connection(1));
        assert!(!s.try_open_connection(1));
        s.close_connection();
        assert!(s.try_open_connection(1));
    }
}
