//! Member health bookkeeping: flips with their reasons, passive-ejection counters, slow start.
//!
//! Where it sits: every [`Member`](crate::Member) carries one [`Health`]. Writers are the active
//! checks and the ejection supervisor (`drover-health`), the proxy (passive failure counting, via
//! [`Farm::report`](crate::Farm::report)) and later the operator and agents; readers are the
//! policies (slow start, through [`Farm::pick`](crate::Farm::pick)) and the admin API.
//!
//! Every flag write goes through [`Member::flip`](crate::Member::flip): when the flag really
//! changes, the flip is counted per flag and kept as the member's last [`Transition`] (with its
//! reason and time), and returned so the caller logs it exactly once. Nothing here logs: drover-core
//! does no I/O.
//!
//! Concurrency: counters and instants are atomics (instants on the [`crate::clock`] scale, 0 =
//! never); the last transition sits behind a mutex that only flips (rare) and the API touch, never
//! a request.

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::member::Flag;

/// One flag change of one member, with why it happened.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub flag: Flag,
    /// The flag's new value.
    pub value: bool,
    pub reason: String,
    /// When, on the [`crate::clock`] scale.
    pub at: u64,
}

impl Transition {
    /// The state the member entered, in the words of the API and the logs: `up`, `down`,
    /// `ejected`, `returned`, `on`, `off`, `in`, `out`, `draining`, `not draining`.
    pub fn state(&self) -> &'static str {
        match (self.flag, self.value) {
            (Flag::Up, true) => "up",
            (Flag::Up, false) => "down",
            (Flag::Ejected, true) => "ejected",
            (Flag::Ejected, false) => "returned",
            (Flag::On, true) => "on",
            (Flag::On, false) => "off",
            (Flag::In, true) => "in",
            (Flag::In, false) => "out",
            (Flag::Draining, true) => "draining",
            (Flag::Draining, false) => "not draining",
        }
    }
}

impl fmt::Display for Transition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.state(), self.reason)
    }
}

/// Health bookkeeping of one member.
#[derive(Debug, Default)]
pub struct Health {
    /// Failed requests in a row (passive checks); reset by a success.
    pub(crate) consecutive_failures: AtomicU32,
    /// Ejections in a row without a healthy spell between them: the backoff exponent.
    pub(crate) ejections: AtomicU32,
    /// End of the current ejection; 0 when not ejected.
    pub(crate) ejected_until: AtomicU64,
    /// Length of the last ejection, in nanoseconds.
    pub(crate) last_ejection: AtomicU64,
    /// When the member last returned from an ejection; 0 = never.
    pub(crate) returned_at: AtomicU64,
    /// When the member last became usable again (up, or back from an ejection): the start of its
    /// slow start. 0 once the ramp is over (or never started).
    pub(crate) up_since: AtomicU64,
    /// Flips counted per flag, indexed by [`Flag::index`].
    flips: [AtomicU64; Flag::COUNT],
    last: Mutex<Option<Transition>>,
    /// The active check's results in a row.
    pub probes: ProbeStreak,
}

/// The active check's passes or failures in a row and when it last ran, kept on the member (not
/// in the check's task) so the count goes on when the checks restart over a reloaded config: a
/// member failing its checks reaches `fall` even if reloads come faster than `fall` checks.
#[derive(Debug, Default)]
pub struct ProbeStreak {
    passed: AtomicU32,
    failed: AtomicU32,
    last: AtomicU64,
}

impl ProbeStreak {
    /// A check passed at `now`; returns the passes in a row.
    pub fn pass(&self, now: u64) -> u32 {
        self.failed.store(0, Relaxed);
        self.last.store(now, Relaxed);
        self.passed.fetch_add(1, Relaxed).saturating_add(1)
    }

    /// A check failed at `now`; returns the failures in a row.
    pub fn fail(&self, now: u64) -> u32 {
        self.passed.store(0, Relaxed);
        self.last.store(now, Relaxed);
        self.failed.fetch_add(1, Relaxed).saturating_add(1)
    }

    /// When a check last ran (clock scale), if one ever did.
    pub fn last(&self) -> Option<u64> {
        Some(self.last.load(Relaxed)).filter(|&t| t != 0)
    }
}

impl Health {
    /// How many times `flag` has flipped (both ways) since start.
    pub fn flips(&self, flag: Flag) -> u64 {
        self.flips[flag.index()].load(Relaxed)
    }

    /// The member's most recent flip, if any.
    pub fn last_transition(&self) -> Option<Transition> {
        self.last.lock().map(|t| t.clone()).unwrap_or(None)
    }

    /// Failed requests in a row, as counted by the passive checks.
    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures.load(Relaxed)
    }

    /// End of the current ejection (clock scale), if ejected.
    pub fn ejected_until(&self) -> Option<u64> {
        Some(self.ejected_until.load(Relaxed)).filter(|&t| t != 0)
    }

    /// Start of the current slow start (clock scale), if one may be running.
    pub fn up_since(&self) -> Option<u64> {
        Some(self.up_since.load(Relaxed)).filter(|&t| t != 0)
    }

    pub(crate) fn count(&self, flag: Flag) {
        self.flips[flag.index()].fetch_add(1, Relaxed);
    }

    /// The last transition, locked (a poisoned lock still holds a valid record).
    pub(crate) fn lock_last(&self) -> std::sync::MutexGuard<'_, Option<Transition>> {
        self.last.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A human duration for reasons: `10s`, `1.5s`, `250ms`.
pub fn show(d: Duration) -> String {
    if d.as_millis() < 1000 {
        format!("{}ms", d.as_millis())
    } else if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(show(Duration::from_millis(250)), "250ms");
        assert_eq!(show(Duration::from_secs(10)), "10s");
        assert_eq!(show(Duration::from_millis(1500)), "1.5s");
    }
}
