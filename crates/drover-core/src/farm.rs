//! A farm: a named, immutable snapshot of members and the policy built over them, plus the health
//! rules every pick and every health write of the farm follows.
//!
//! The proxy holds farms behind `ArcSwap`; a change of membership or weights builds a new `Farm`
//! (members are `Arc`s, so their flags and counters carry over) and swaps it in atomically.
//!
//! Health, the farm's part (see DESIGN.md "Member state" and docs/configuration.md):
//! - **panic mode**: when fewer than `panic_threshold` of the members that are on are healthy, a
//!   pick ignores health and spreads over every member that is on ([`Farm::refresh`] decides, after
//!   every health flip);
//! - **slow start**: a member that became healthy less than `slow_start` ago keeps each pick that
//!   lands on it only with probability `elapsed / slow_start` (at least 1/20); otherwise the pick
//!   goes to another eligible member at random. Its share of new requests ramps linearly,
//!   whatever the policy;
//! - **passive ejection**: [`Farm::report`] counts failures in a row; at the threshold the member is
//!   ejected for a backoff that doubles with each ejection in a row, never more than
//!   `max_ejected` of the farm at once; [`Farm::return_ejected`] ends ejections whose time is up.
//!
//! - **agent reports**: [`Farm::apply_report`] applies an agent's words (HAProxy agent-check
//!   semantics) to a member's weight, draining and up/down, through holds kept in the member's
//!   [`crate::Reported`].
//!
//! Every write returns the [`Transition`]s it caused, for the caller to log once.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::clock;
use crate::health::{Transition, show};
use crate::member::{Flag, Member, MemberSpec};
use crate::outlier::OutlierRules;
use crate::policy::{Chosen, Explanation, PickContext, Policy, PolicyKind};

/// The health rules of a farm (from its config; all off by default).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HealthRules {
    /// Ramp window of a member that becomes healthy again; zero = off.
    pub slow_start: Duration,
    /// Share (0..=1) of healthy members below which the farm panics; 0 = never.
    pub panic_threshold: f64,
    pub passive: PassiveRules,
    /// Report freshness: a member with no good load report for longer than this is flagged out
    /// ([`Farm::sweep_fresh`]) and comes in with its next good report; zero = off.
    pub expect: Duration,
}

/// Passive checks: ejection on failures seen in live traffic.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PassiveRules {
    /// Failures in a row that eject a member; 0 = passive ejection off.
    pub consecutive_failures: u32,
    /// First ejection; doubled for every further ejection in a row.
    pub ejection_time: Duration,
    pub max_ejection_time: Duration,
    /// Most of the farm (0..=1) that may be ejected at once.
    pub max_ejected: f64,
    /// The error-rate rule, judged every `outlier_interval` by the health supervisor.
    pub outlier: OutlierRules,
    pub outlier_interval: Duration,
}

/// Slow start never sends a ramping member less than this share of its turns.
const RAMP_FLOOR: f64 = 0.05;

#[derive(Debug)]
pub struct Farm {
    pub name: String,
    pub kind: PolicyKind,
    pub members: Vec<Arc<Member>>,
    pub rules: HealthRules,
    policy: Box<dyn Policy>,
    /// When the farm was built, on the [`clock`] scale: members get `expect` from here before
    /// their first report is due.
    started: u64,
    /// The last freshness sweep found every member silent (see [`Farm::sweep_fresh`]).
    all_silent: AtomicBool,
    panic: AtomicBool,
    /// Serialises the farm's health decisions that read the whole farm (the ejection cap, panic
    /// mode): they run on flips only, never on a request that succeeds.
    health_lock: Mutex<()>,
    /// The outlier rule's window (see [`Farm::outlier_deltas`]); carried over a rebuild.
    outlier: Mutex<OutlierWindow>,
}

/// Where the outlier rule's current window started: each member's requests and failures then,
/// and when the window is due to be judged (clock scale; 0 = one interval after the farm started).
#[derive(Debug, Clone, Default)]
struct OutlierWindow {
    due: u64,
    marks: Vec<(Arc<Member>, u64, u64)>,
}

impl Farm {
    /// Builds a farm from fresh members.
    pub fn new(name: impl Into<String>, kind: PolicyKind, specs: Vec<MemberSpec>) -> Self {
        let members = specs
            .into_iter()
            .map(|s| Arc::new(Member::new(s)))
            .collect();
        Self::with_members(name, kind, members)
    }

    /// Builds a farm over existing members (keeping their runtime state).
    pub fn with_members(
        name: impl Into<String>,
        kind: PolicyKind,
        members: Vec<Arc<Member>>,
    ) -> Self {
        let policy = kind.build(&members);
        // Members kept from an earlier farm bring their last load report: the new policy learns
        // it now instead of starting blind until the next one arrives.
        for (i, m) in members.iter().enumerate() {
            if let Some(report) = m.reported.last() {
                policy.on_report(&members, i, &report);
            }
        }
        Farm {
            name: name.into(),
            kind,
            members,
            rules: HealthRules::default(),
            policy,
            started: clock::now(),
            all_silent: AtomicBool::new(false),
            panic: AtomicBool::new(false),
            health_lock: Mutex::new(()),
            outlier: Mutex::default(),
        }
    }

    /// Takes over the farm-wide state of `old`, the farm this one replaces in a rebuild: when it
    /// started (the grace before members' first reports are due) and the outlier rule's window,
    /// so a reload neither restarts the grace nor postpones the next judgement.
    pub fn carrying(self, old: &Farm) -> Self {
        let window = old
            .outlier
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        *self.outlier.lock().unwrap_or_else(|p| p.into_inner()) = window;
        Farm {
            started: old.started,
            ..self
        }
    }

    /// The outlier rule's window, judged every `interval`: `None` until it is due; then each
    /// member's (requests, failures) since the window started (a member added since counts from
    /// zero), and a new window starts. For the health supervisor.
    pub fn outlier_deltas(&self, now: u64, interval: Duration) -> Option<Vec<(u64, u64)>> {
        let mut w = self.outlier.lock().unwrap_or_else(|p| p.into_inner());
        let due = if w.due == 0 {
            self.started.saturating_add(clock::span(interval))
        } else {
            w.due
        };
        if now < due {
            w.due = due;
            return None;
        }
        let deltas = self
            .members
            .iter()
            .map(|m| {
                let (r0, f0) = w
                    .marks
                    .iter()
                    .find(|(was, _, _)| Arc::ptr_eq(was, m))
                    .map_or((0, 0), |&(_, r, f)| (r, f));
                (
                    m.stats.requests().saturating_sub(r0),
                    m.stats.failures().saturating_sub(f0),
                )
            })
            .collect();
        w.marks = self
            .members
            .iter()
            .map(|m| (Arc::clone(m), m.stats.requests(), m.stats.failures()))
            .collect();
        w.due = now.saturating_add(clock::span(interval));
        Some(deltas)
    }

    /// Sets the farm's health rules.
    pub fn with_rules(mut self, rules: HealthRules) -> Self {
        self.rules = rules;
        self.refresh();
        self
    }

    /// Picks a member for a request. No lock, no allocation.
    #[inline]
    pub fn pick(&self, ctx: &mut PickContext) -> Option<(usize, &Arc<Member>)> {
        ctx.panic = self.panic.load(Relaxed);
        let mut i = self.policy.pick(&self.members, ctx)?;
        if !self.rules.slow_start.is_zero() && self.members[i].health.up_since().is_some() {
            i = self.ramp(i, ctx);
        }
        Some((i, &self.members[i]))
    }

    /// Slow start: keeps `i` with probability elapsed / window, otherwise picks another member
    /// (if there is one). The slow path of [`Farm::pick`], taken only while a ramp may be running.
    #[cold]
    fn ramp(&self, i: usize, ctx: &mut PickContext) -> usize {
        let health = &self.members[i].health;
        let Some(since) = health.up_since() else {
            return i;
        };
        let window = clock::span(self.rules.slow_start);
        let elapsed = clock::now().saturating_sub(since);
        if elapsed >= window {
            // Ramp over: back to the fast path for this member.
            let _ = health.up_since.compare_exchange(since, 0, Relaxed, Relaxed);
            return i;
        }
        let share = (elapsed as f64 / window as f64).max(RAMP_FLOOR);
        let draw = (ctx.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        if draw < share {
            return i;
        }
        // The turn goes to another eligible member chosen at random, not through the policy
        // again: a second pick would move the policy's own state (a round-robin cursor) and skew
        // the shares it hands out.
        let mut other = ctx.clone();
        if !other.exclude(i) {
            return i;
        }
        let start = ctx.rng.below(self.members.len());
        crate::policy::scan_from(&self.members, &other, start).unwrap_or(i)
    }

    /// May member `index` serve a client stuck to it (sticky session)? Draining members may;
    /// health is ignored in panic mode, as for picks.
    #[inline]
    pub fn serves_sticky(&self, index: usize) -> bool {
        self.members
            .get(index)
            .is_some_and(|m| m.state.serves_sticky(self.panic.load(Relaxed)))
    }

    pub fn policy(&self) -> &dyn Policy {
        &*self.policy
    }

    /// "Which member?": a real pick (a round-robin cursor moves; no request is started), with
    /// the candidates, their scores and which stage removed which member (see
    /// [`crate::policy::explain`]). Slow start applies as in [`Farm::pick`], and says so when it
    /// gives the turn to another member. The admin path: it allocates.
    pub fn explain(&self, ctx: &mut PickContext) -> Explanation {
        ctx.panic = self.panic.load(Relaxed);
        let mut e = self.policy.explain(&self.members, ctx);
        e.farm = self.name.clone();
        e.policy = self.kind.to_string();
        e.panic = ctx.panic;
        if ctx.panic {
            e.notes
                .push("panic mode: too few members are healthy; health is ignored".to_owned());
        }
        if let Some(chosen) = e.chosen.clone()
            && !self.rules.slow_start.is_zero()
            && self.members[chosen.index].health.up_since().is_some()
        {
            let i = self.ramp(chosen.index, ctx);
            if i != chosen.index {
                e.notes.push(format!(
                    "slow start: {} is ramping up, so this turn went to {}",
                    chosen.name,
                    self.members[i].name()
                ));
                e.chosen = Some(Chosen {
                    index: i,
                    name: self.members[i].name().to_owned(),
                });
            }
        }
        e
    }

    pub fn member(&self, name: &str) -> Option<&Arc<Member>> {
        self.members.iter().find(|m| m.name() == name)
    }

    /// Is the farm in panic mode (health ignored)?
    pub fn in_panic(&self) -> bool {
        self.panic.load(Relaxed)
    }

    /// Members that are on, and how many of them are healthy.
    pub fn health_counts(&self) -> (usize, usize) {
        let on = self.members.iter().filter(|m| m.state.get(Flag::On));
        on.fold((0, 0), |(n, up), m| {
            (n + 1, up + usize::from(m.state.is_up()))
        })
    }

    /// Recomputes panic mode after a health flip. Returns the new mode when it changed, with a
    /// reason for the log line.
    pub fn refresh(&self) -> Option<(bool, String)> {
        let _serial = self.lock_health();
        self.refresh_locked()
    }

    fn lock_health(&self) -> MutexGuard<'_, ()> {
        self.health_lock.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counting and storing under the health lock: two refreshes racing cannot leave the mode of
    /// the older count behind.
    fn refresh_locked(&self) -> Option<(bool, String)> {
        let threshold = self.rules.panic_threshold;
        let (on, up) = self.health_counts();
        let panic = threshold > 0.0 && on > 0 && (up as f64) < threshold * on as f64;
        (self.panic.swap(panic, Relaxed) != panic).then(|| {
            let pct = threshold * 100.0;
            (
                panic,
                format!("{up} of {on} members healthy, panic threshold {pct}%"),
            )
        })
    }

    /// An active check's verdict on member `index`: writes up/down (never on/off). A passing
    /// check does not bring up a member its agent holds down (`down # why`): the agent knows
    /// something the check cannot see, and says `up` when it is over.
    pub fn set_up(
        &self,
        index: usize,
        up: bool,
        reason: impl FnOnce() -> String,
        now: u64,
    ) -> Option<Transition> {
        if up && self.members[index].reported.holds_down() {
            return None;
        }
        let t = self.members[index].flip(Flag::Up, up, reason, now)?;
        self.refresh();
        Some(t)
    }

    /// Applies an agent's report to member `index`, with HAProxy's agent-check semantics where
    /// drover has the same state, and returns the flips it caused (for the caller to log once).
    /// The report is kept as the member's last ([`crate::Reported::last`]) whatever it changed.
    ///
    /// - `NN%`: the live weight becomes NN% of the member's weight (`MemberState::weight_pct`);
    ///   `least-conn`, `p2c` and `peak-ewma` read it on the next pick, `weighted`, `random` and
    ///   `hash` only when the farm is rebuilt. `0%` keeps the member from new sessions
    ///   (draining, reason `agent: weight 0%`), as HAProxy shows a 0-weight server as DRAIN; a
    ///   later non-zero weight ends that.
    /// - `drain`: draining on; `ready`: the agent's `drain`, `maint` end (draining off unless 0%
    ///   still holds). `maint` is draining too, reason `agent: maint`: drover's on/off belongs to
    ///   the operator alone, and down/up to health, which `ready` (an admin word) must not have to
    ///   undo. Unlike HAProxy's MAINT, sticky users of the member are still served.
    /// - `down`, `stopped`, `fail`: up/down to down, reason `agent: down # <reason>`; checks cannot
    ///   bring the member up while the agent holds it down. `up`: ends the hold, and brings the
    ///   member up if it was the agent that took it down (a member down by its checks stays
    ///   down until they pass).
    /// - `maxconn:N`: kept in the report, not applied yet.
    ///
    /// Flags flip only when the agent's own view changes (see [`crate::reported`]), so an agent
    /// repeating `drain` does not undo an operator's undrain every interval.
    pub fn apply_report(
        &self,
        index: usize,
        report: &crate::report::LoadReport,
        now: u64,
    ) -> Vec<Transition> {
        use crate::report::AgentState;
        use crate::reported::{
            HOLD_DOWN, HOLD_DRAIN, HOLD_MAINT, HOLD_ZERO, HOLDS_DRAIN, TOOK_DOWN,
        };
        let member = &self.members[index];
        let reported = &member.reported;
        let mut last = reported.lock_last();
        let old = reported.holds.load(Relaxed);
        let mut new = old;
        match report.admin {
            Some(AgentState::Drain) => new = (new | HOLD_DRAIN) & !HOLD_MAINT,
            Some(AgentState::Maint) => new = (new | HOLD_MAINT) & !HOLD_DRAIN,
            Some(AgentState::Ready) => new &= !(HOLD_DRAIN | HOLD_MAINT),
            _ => {}
        }
        match report.weight_pct {
            Some(0) => new |= HOLD_ZERO,
            Some(_) => new &= !HOLD_ZERO,
            None => {}
        }
        match report.health {
            Some(AgentState::Down | AgentState::Stopped | AgentState::Fail) => new |= HOLD_DOWN,
            Some(AgentState::Up) => new &= !HOLD_DOWN,
            _ => {}
        }
        if let Some(pct) = report.weight_pct {
            member.state.set_weight_pct(pct);
        }
        let why = |words: String| match &report.reason {
            Some(r) => format!("agent: {words} # {r}"),
            None => format!("agent: {words}"),
        };
        let mut out = Vec::new();
        let (was_drain, drain) = (old & HOLDS_DRAIN != 0, new & HOLDS_DRAIN != 0);
        if was_drain != drain {
            let words = if new & HOLD_MAINT != 0 {
                "maint".to_owned()
            } else if new & HOLD_DRAIN != 0 {
                "drain".to_owned()
            } else if new & HOLD_ZERO != 0 {
                "weight 0%".to_owned()
            } else {
                let ready = report.admin == Some(AgentState::Ready);
                match (ready, report.weight_pct) {
                    (true, Some(pct)) => format!("ready, weight {pct}%"),
                    (true, None) => "ready".to_owned(),
                    (false, _) => format!("weight {}%", member.state.weight_pct()),
                }
            };
            out.extend(member.flip(Flag::Draining, drain, || why(words), now));
        }
        let (was_down, down) = (old & HOLD_DOWN != 0, new & HOLD_DOWN != 0);
        if !was_down && down {
            let word = report.health.map_or("down", AgentState::as_str);
            if let Some(t) = member.flip(Flag::Up, false, || why(word.to_owned()), now) {
                new |= TOOK_DOWN;
                out.push(t);
            }
        } else if was_down && !down {
            if old & TOOK_DOWN != 0 {
                out.extend(member.flip(Flag::Up, true, || why("up".to_owned()), now));
            }
            new &= !TOOK_DOWN;
        }
        reported.holds.store(new, Relaxed);
        reported.store(&mut last, report);
        if !self.rules.expect.is_zero() && !member.state.get(Flag::In) {
            let source = source_name(report.source);
            out.extend(member.flip(
                Flag::In,
                true,
                || format!("{source} load report received"),
                now,
            ));
        }
        drop(last);
        self.policy.on_report(&self.members, index, report);
        if out.iter().any(|t| t.flag == Flag::Up) {
            self.refresh();
        }
        out
    }

    /// Report freshness: flags out every member whose last good report (or the farm's start,
    /// before its first) is older than `expect` at `now`. Run by a timer a few times per
    /// `expect`; [`Farm::apply_report`] brings a member in again. No-op when `expect` is off.
    /// Returns each flip with the member's index.
    ///
    /// When no member at all has reported within `expect`, no one is flagged out: the report path
    /// is broken (a rotated secret, a clock off by more than the window, a dead admin listener),
    /// not every member, and flagging all out would black the farm out. [`Farm::all_silent`]
    /// says so, for the caller to warn. Each member's check and flip hold its report lock, so a
    /// report that lands during the sweep is never overtaken by it.
    pub fn sweep_fresh(&self, now: u64) -> Vec<(usize, Transition)> {
        let mut out = Vec::new();
        if self.rules.expect.is_zero() {
            return out;
        }
        let expect = clock::span(self.rules.expect);
        let silent_for = |m: &Member| now.saturating_sub(m.reported.received().max(self.started));
        let any_fresh = self.members.iter().any(|m| silent_for(m) <= expect);
        self.all_silent
            .store(!any_fresh && !self.members.is_empty(), Relaxed);
        if !any_fresh {
            return out;
        }
        for (index, m) in self.members.iter().enumerate() {
            let _last = m.reported.lock_last();
            let silent = silent_for(m);
            if silent > expect && m.state.get(Flag::In) {
                let why = || {
                    let what = if m.reported.received() == 0 {
                        "no load report yet"
                    } else {
                        "no load report"
                    };
                    format!(
                        "{what} for {:.1}s (expect one every {})",
                        silent as f64 / 1e9,
                        show_duration(self.rules.expect)
                    )
                };
                out.extend(m.flip(Flag::In, false, why, now).map(|t| (index, t)));
            }
        }
        out
    }

    /// The last [`Farm::sweep_fresh`] found no member with a fresh report (and flagged no one out).
    pub fn all_silent(&self) -> bool {
        self.all_silent.load(Relaxed)
    }

    /// Passive checks: the outcome of one request to member `index`. `failure` is `None` for a
    /// success, or what went wrong when the failure counts (the caller applies the farm's `count`
    /// rule). Returns the ejection this caused, if any.
    #[inline]
    pub fn report(&self, index: usize, failure: Option<&str>, now: u64) -> Option<Transition> {
        let health = &self.members[index].health;
        let Some(what) = failure else {
            // A load before the store keeps the cache line shared while all is well.
            if health.consecutive_failures.load(Relaxed) != 0 {
                health.consecutive_failures.store(0, Relaxed);
            }
            return None;
        };
        let threshold = self.rules.passive.consecutive_failures;
        let n = health.consecutive_failures.fetch_add(1, Relaxed) + 1;
        if threshold == 0 || n < threshold {
            return None;
        }
        self.eject(index, now, || {
            format!("{n} failed requests in a row, the last: {what}")
        })
    }

    /// Ejects member `index` for its next backoff, unless it is already ejected or the farm's
    /// `max_ejected` share is reached.
    pub fn eject(
        &self,
        index: usize,
        now: u64,
        reason: impl FnOnce() -> String,
    ) -> Option<Transition> {
        let member = &self.members[index];
        let health = &member.health;
        // Under the lock, two threads reaching the threshold together (for this member or two
        // others) cannot both pass the cap, nor double this member's backoff.
        let _serial = self.lock_health();
        if member.state.get(Flag::Ejected) || !self.may_eject() {
            return None;
        }
        let rules = &self.rules.passive;
        // A member that stayed back for longer than its last ejection starts its backoff afresh.
        let returned = health.returned_at.load(Relaxed);
        let last = health.last_ejection.load(Relaxed);
        if returned != 0 && now.saturating_sub(returned) > last {
            health.ejections.store(0, Relaxed);
        }
        let k = health.ejections.fetch_add(1, Relaxed).min(32);
        let time = rules
            .ejection_time
            .saturating_mul(1u32 << k.min(31))
            .min(rules.max_ejection_time.max(rules.ejection_time));
        health.last_ejection.store(clock::span(time), Relaxed);
        health
            .ejected_until
            .store(now.saturating_add(clock::span(time)).max(1), Relaxed);
        health.consecutive_failures.store(0, Relaxed);
        // `None`: another thread ejected it first and did the bookkeeping.
        let t = member.flip(
            Flag::Ejected,
            true,
            || format!("{} (ejected for {})", reason(), show(time)),
            now,
        )?;
        self.refresh_locked();
        Some(t)
    }

    fn may_eject(&self) -> bool {
        let n = self.members.len();
        let share = self.rules.passive.max_ejected;
        let mut max = (share * n as f64).floor() as usize;
        if share > 0.0 && n >= 2 {
            max = max.max(1);
        }
        let ejected = self
            .members
            .iter()
            .filter(|m| m.state.get(Flag::Ejected))
            .count();
        ejected < max
    }

    /// Ends the ejections whose time is up at `now`. Returns the flips with the members' indices,
    /// for the caller to log.
    pub fn return_ejected(&self, now: u64) -> Vec<(usize, Transition)> {
        let mut back = Vec::new();
        for (index, member) in self.members.iter().enumerate() {
            let health = &member.health;
            let until = health.ejected_until.load(Relaxed);
            if until == 0 || now < until {
                continue;
            }
            if health
                .ejected_until
                .compare_exchange(until, 0, Relaxed, Relaxed)
                .is_err()
            {
                continue;
            }
            health.returned_at.store(now.max(1), Relaxed);
            let time = Duration::from_nanos(health.last_ejection.load(Relaxed));
            if let Some(t) = member.flip(
                Flag::Ejected,
                false,
                || format!("ejection of {} is over", show(time)),
                now,
            ) {
                back.push((index, t));
            }
        }
        if !back.is_empty() {
            self.refresh();
        }
        back
    }

    /// The earliest end of a running ejection, if any (for a supervisor's next wake-up).
    pub fn next_return(&self) -> Option<u64> {
        self.members
            .iter()
            .filter_map(|m| m.health.ejected_until())
            .min()
    }
}

#[cfg(test)]
mod tests;

/// How an intake path is named in logs and the API.
pub fn source_name(source: crate::report::Source) -> &'static str {
    match source {
        crate::report::Source::Push => "push",
        crate::report::Source::AgentCheck => "agent-check",
        crate::report::Source::Orca => "orca",
    }
}

fn show_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}
