//! Members: one application server each — its identity, its state flags and its counters.
//!
//! Who writes what (see DESIGN.md, "Member state"): the operator writes on/off and draining, health
//! checks write up/down, report freshness writes in/out; the proxy writes the counters around every
//! request. All of it is atomics, so the request path reads state without a lock; a flag setter
//! returns whether it changed anything, so the caller can log and count each flip exactly once;
//! [`Member::flip`] does that and also records the flip with its reason in the member's [`Health`].

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering::Relaxed};

use crate::health::{Health, Transition};

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
#[derive(Debug)]
pub struct MemberState {
    flags: AtomicU8,
    weight: AtomicU32,
}

impl MemberState {
    pub fn new(enabled: bool, weight: u32) -> Self {
        let on = if enabled { Flag::On as u8 } else { 0 };
        MemberState {
            flags: AtomicU8::new(on | Flag::Up as u8 | Flag::In as u8),
            weight: AtomicU32::new(weight.max(1)),
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

    #[inline]
    pub fn weight(&self) -> u32 {
        self.weight.load(Relaxed)
    }

    pub fn set_weight(&self, weight: u32) {
        self.weight.store(weight.max(1), Relaxed);
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
}

/// Weight of the newest sample in the latency EWMA.
const EWMA_ALPHA: f64 = 0.1;

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

    /// A request was sent to this member.
    #[inline]
    pub fn start(&self) {
        self.in_flight.fetch_add(1, Relaxed);
        self.requests.fetch_add(1, Relaxed);
    }

    /// The request ended (response fully sent, or failed). `latency_ns` is time to the response head.
    #[inline]
    pub fn finish(&self, ok: bool, latency_ns: Option<u64>) {
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
}

impl Member {
    pub fn new(spec: MemberSpec) -> Self {
        let state = MemberState::new(spec.enabled, spec.weight);
        Member {
            spec,
            state,
            stats: MemberStats::default(),
            health: Health::default(),
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

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn addr(&self) -> SocketAddr {
        self.spec.addr
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
    fn counters_and_connection_limit() {
        let s = MemberStats::default();
        s.start();
        s.start();
        assert_eq!(s.in_flight(), 2);
        s.finish(true, Some(1_000));
        s.finish(false, Some(3_000));
        assert_eq!((s.in_flight(), s.requests(), s.failures()), (0, 2, 1));
        assert!((s.latency_ewma_ns() - 1_200.0).abs() < 1e-6);
        assert!(s.try_open_connection(1));
        assert!(!s.try_open_connection(1));
        s.close_connection();
        assert!(s.try_open_connection(1));
    }
}
