//! The retry budget of a farm: retries may be at most a share of the farm's recent requests, plus a
//! small floor per second, so a farm-wide outage cannot multiply the load on the members.
//!
//! Where it sits: the proxy deposits one request per client request sent to the farm and asks to
//! withdraw one retry before each retry; a refused retry answers the client with the failure it
//! has. The window is the last [`WINDOW_SECS`] seconds, kept in one slot per second.
//!
//! Concurrency: slots are atomics shared by every worker thread, no lock. A slot is reused when a
//! new second reaches it; a count racing with that reset may be lost, which only makes the budget
//! off by one request for one second.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Length of the window the budget looks at, in seconds.
pub const WINDOW_SECS: u64 = 10;

#[derive(Debug, Default)]
#[repr(align(64))]
struct Slot {
    /// The second this slot counts (clock seconds + 1; 0 = never used).
    sec: AtomicU64,
    requests: AtomicU64,
    retries: AtomicU64,
}

#[derive(Debug)]
pub struct RetryBudget {
    ratio: f64,
    floor_per_sec: u32,
    slots: [Slot; WINDOW_SECS as usize],
}

impl RetryBudget {
    /// Retries at most `ratio` (0..=1) of the requests in the window, plus `floor_per_sec` a
    /// second.
    pub fn new(ratio: f64, floor_per_sec: u32) -> Self {
        RetryBudget {
            ratio: ratio.clamp(0.0, 1.0),
            floor_per_sec,
            slots: Default::default(),
        }
    }

    /// Whether this budget was made by `RetryBudget::new(ratio, floor_per_sec)`: a rebuild keeps
    /// a budget (and what it has spent) whose rules did not change.
    pub fn has_rules(&self, ratio: f64, floor_per_sec: u32) -> bool {
        self.ratio == ratio.clamp(0.0, 1.0) && self.floor_per_sec == floor_per_sec
    }

    fn slot(&self, now: u64) -> &Slot {
        let sec = now / 1_000_000_000 + 1;
        let slot = &self.slots[(sec % WINDOW_SECS) as usize];
        let seen = slot.sec.load(Relaxed);
        if seen != sec
            && slot
                .sec
                .compare_exchange(seen, sec, Relaxed, Relaxed)
                .is_ok()
        {
            slot.requests.store(0, Relaxed);
            slot.retries.store(0, Relaxed);
        }
        slot
    }

    /// One client request went to the farm (`now` on the [`crate::clock`] scale).
    #[inline]
    pub fn deposit(&self, now: u64) {
        self.slot(now).requests.fetch_add(1, Relaxed);
    }

    /// Asks for one retry; true (and counted) when the budget allows it.
    pub fn withdraw(&self, now: u64) -> bool {
        let current = self.slot(now);
        let (requests, retries) = self.totals(now);
        let allowed =
            self.ratio * requests as f64 + f64::from(self.floor_per_sec) * WINDOW_SECS as f64;
        if (retries as f64) < allowed {
            current.retries.fetch_add(1, Relaxed);
            true
        } else {
            false
        }
    }

    /// Requests and retries counted in the window ending at `now`.
    pub fn totals(&self, now: u64) -> (u64, u64) {
        let sec = now / 1_000_000_000 + 1;
        self.slots
            .iter()
            .filter(|s| {
                let at = s.sec.load(Relaxed);
                at != 0 && at <= sec && sec - at < WINDOW_SECS
            })
            .fold((0, 0), |(q, r), s| {
                (q + s.requests.load(Relaxed), r + s.retries.load(Relaxed))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn retries_are_a_share_of_requests_plus_a_floor() {
        let b = RetryBudget::new(0.2, 1);
        let t = 50 * S;
        for _ in 0..100 {
            b.deposit(t);
        }
        let granted = (0..1000).filter(|_| b.withdraw(t)).count();
        assert_eq!(granted, 20 + 10, "20% of 100 requests + 1/s over 10 s");
        assert_eq!(b.totals(t), (100, 30));
    }

    #[test]
    fn old_seconds_leave_the_window() {
        let b = RetryBudget::new(0.5, 0);
        for _ in 0..10 {
            b.deposit(S);
        }
        assert_eq!((0..10).filter(|_| b.withdraw(S)).count(), 5);
        assert!(!b.withdraw(5 * S), "still in the window");
        assert_eq!(b.totals(11 * S), (0, 0), "ten seconds on: forgotten");
        assert!(!b.withdraw(11 * S), "no requests, no floor: no retries");
        b.deposit(11 * S);
        b.deposit(11 * S);
        assert!(b.withdraw(12 * S));
        assert!(!b.withdraw(12 * S));
    }

    #[test]
    fn floor_allows_retries_without_traffic() {
        let b = RetryBudget::new(0.0, 2);
        assert_eq!((0..100).filter(|_| b.withdraw(3 * S)).count(), 20);
    }
}
