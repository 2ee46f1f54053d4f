//! What a member's agent has told drover: the holds its words put on the member (drain, maint,
//! 0% weight, down), its last good report, and the agent's own health (rejects, failures).
//!
//! Where it sits: every [`Member`](crate::Member) carries one [`Reported`]. The writer is
//! [`Farm::apply_report`](crate::Farm::apply_report) (called by the agent-check client in
//! `drover-health`, later by the push and ORCA intakes) and the client's failure bookkeeping;
//! readers are [`Farm::set_up`](crate::Farm::set_up) (a check cannot bring up a member its agent
//! holds down) and the admin API. Nothing here is read on the request path: the agent's effect
//! on picks goes through the member's flags and live weight.
//!
//! Holds, not flags: the agent's words are remembered as holds (bits), and the member's flags
//! flip only when the agent's own view changes. So an agent that says `drain` every 2 s flips
//! `draining` once, and an operator who undrains the member is not overridden by the next
//! identical reply; the agent has to change its mind (`ready`, then `drain`) to flip it again.
//!
//! Concurrency: holds and counters are atomics; the last report sits behind a mutex that only the
//! agent's task (every interval) and the API touch.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering::Relaxed};

use crate::report::LoadReport;

/// The agent said `drain`.
pub(crate) const HOLD_DRAIN: u8 = 1;
/// The agent said `maint` (mapped to draining; see `Farm::apply_report`).
pub(crate) const HOLD_MAINT: u8 = 2;
/// The agent reported a weight of 0%.
pub(crate) const HOLD_ZERO: u8 = 4;
/// The agent said `down`, `stopped` or `fail`.
pub(crate) const HOLD_DOWN: u8 = 8;
/// The agent's `down` really flipped the member down (so its `up` may bring it back).
pub(crate) const TOOK_DOWN: u8 = 16;
/// The holds that keep a member from new sessions.
pub(crate) const HOLDS_DRAIN: u8 = HOLD_DRAIN | HOLD_MAINT | HOLD_ZERO;

/// A member's agent, as drover sees it.
#[derive(Debug, Default)]
pub struct Reported {
    pub(crate) holds: AtomicU8,
    /// When the last good report was applied, on the [`crate::clock`] scale; 0 = never.
    received: AtomicU64,
    last: Mutex<Option<LoadReport>>,
    rejects: AtomicU64,
    failures: AtomicU64,
    failing: AtomicBool,
}

impl Reported {
    /// The last report applied, if any.
    pub fn last(&self) -> Option<LoadReport> {
        self.last.lock().map(|r| r.clone()).unwrap_or(None)
    }

    /// When the last good report was applied (the report's own `received`, on the
    /// [`crate::clock`] scale); 0 when none ever was. One atomic load: policies and the
    /// freshness sweep read it.
    #[inline]
    pub fn received(&self) -> u64 {
        self.received.load(Relaxed)
    }

    /// The last report, locked: [`Farm::apply_report`](crate::Farm::apply_report) holds it for
    /// the whole read-modify-write of the holds and the flips they cause (reports now come from
    /// the proxy's workers, the admin runtime and the health thread at once), and
    /// [`Farm::sweep_fresh`](crate::Farm::sweep_fresh) for its check and flip of `in`.
    pub(crate) fn lock_last(&self) -> std::sync::MutexGuard<'_, Option<LoadReport>> {
        self.last.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores `report` as the last one, under the lock from [`Self::lock_last`].
    pub(crate) fn store(&self, last: &mut Option<LoadReport>, report: &LoadReport) {
        self.received.fetch_max(report.received, Relaxed);
        *last = Some(report.clone());
    }

    /// Whether the agent holds the member down (`down`, `stopped` or `fail` in its last word).
    pub fn holds_down(&self) -> bool {
        self.holds.load(Relaxed) & HOLD_DOWN != 0
    }

    /// Whether the agent keeps the member from new sessions (`drain`, `maint` or 0%).
    pub fn holds_drain(&self) -> bool {
        self.holds.load(Relaxed) & HOLDS_DRAIN != 0
    }

    /// Replies rejected as malformed (each logged with its reason; none changed anything).
    pub fn rejects(&self) -> u64 {
        self.rejects.load(Relaxed)
    }

    /// Counts one rejected reply.
    pub fn count_reject(&self) {
        self.rejects.fetch_add(1, Relaxed);
    }

    /// Reads of the agent that failed (no connection, timeout, no reply).
    pub fn failures(&self) -> u64 {
        self.failures.load(Relaxed)
    }

    /// Whether the last read of the agent failed.
    pub fn is_failing(&self) -> bool {
        self.failing.load(Relaxed)
    }

    /// Counts one failed read; true when the agent was fine before (log this one, not the rest).
    pub fn failed(&self) -> bool {
        self.failures.fetch_add(1, Relaxed);
        !self.failing.swap(true, Relaxed)
    }

    /// A read got a reply; true when the agent was failing before (log its recovery once).
    pub fn answered(&self) -> bool {
        self.failing.swap(false, Relaxed)
    }
}
