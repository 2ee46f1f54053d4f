//! Load reports: the one model every intake path produces, and the parsers of the three wire
//! formats (HAProxy agent-check replies, ORCA `endpoint-load-metrics` headers, pushed JSON or
//! query strings) that turn bytes from a member into a [`LoadReport`] or a [`Reject`].
//!
//! Where it sits: the admin listener (push), the agent-check client loop (pull) and the proxy
//! (ORCA headers on responses) hand the raw bytes they received to [`agent_check::parse`],
//! [`orca::parse`], [`push::parse_json`] or [`push::parse_query`], and apply the report they get
//! back to the member's state; a [`Reject`] is answered (4xx with its `Display` as the body) or
//! logged, and changes nothing. Those callers come later (issue 4); this module is pure: no I/O, no
//! clock reads (`now` is a parameter on the [`crate::clock`] scale), no tokio.
//!
//! Key types: [`LoadReport`] (member, [`Metrics`], admin and health words, weight, maxconn, reason,
//! time received, [`Source`]), [`Metrics`] (a small ordered list of validated `(name, value)`),
//! [`AgentState`], [`Reject`] (what was wrong, with a [`RejectKind`] for the HTTP status), and
//! [`push::ReplayGuard`] for signed pushes.
//!
//! Invariants, whatever the format: metric names match `[a-z0-9_.]{1,64}`, values are finite, the
//! well-known bounded names are in range (a `cpu` of 1.5 is a reject, never clamped), a report
//! holds at most [`MAX_METRICS`] metrics and no name twice, `admin` only holds `ready`/`drain`/
//! `maint` and `health` only `up`/`down`/`stopped`/`fail`. A parser returns either a whole report
//! or a reject, so state is never half-applied.
//!
//! Concurrency: everything here is plain data built per call, except [`push::ReplayGuard`] (a
//! mutex around a bounded set; pushes are not on the request path). Config keys read: none.
//! Metrics: none here; callers count rejects by [`RejectKind`]. See `docs/reports.md`.

pub mod agent_check;
mod metrics;
pub mod orca;
pub mod push;
mod reject;

pub use metrics::{MAX_METRICS, MAX_NAME_LEN, MetricError, Metrics, bounds};
pub use reject::{Reject, RejectKind};

use std::fmt;

/// Longest accepted free-text reason, in bytes.
pub const MAX_REASON_LEN: usize = 256;
/// Longest accepted member name, in bytes.
pub const MAX_MEMBER_LEN: usize = 256;
/// Highest weight percentage: 256 times the configured weight, the point where HAProxy saturates.
pub const MAX_WEIGHT_PCT: u32 = 25_600;

/// Which intake path a report came in by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// `POST /api/v1/reports` or the GET `/ath/update` form.
    Push,
    /// A reply line read from the member's HAProxy-style agent-check port.
    AgentCheck,
    /// An ORCA `endpoint-load-metrics` header on a proxied response.
    Orca,
}

/// The state words of HAProxy's agent protocol. `Ready`, `Drain` and `Maint` are *admin* words
/// (what the operator or agent wants); `Up`, `Down`, `Stopped` and `Fail` are *health* words (what
/// the member says of itself). The two kinds are independent, as in HAProxy: `drain up` is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AgentState {
    Ready,
    Drain,
    Maint,
    Up,
    Down,
    Stopped,
    Fail,
}

impl AgentState {
    pub const ALL: [AgentState; 7] = [
        AgentState::Ready,
        AgentState::Drain,
        AgentState::Maint,
        AgentState::Up,
        AgentState::Down,
        AgentState::Stopped,
        AgentState::Fail,
    ];

    /// The state a word names, ASCII case-insensitively.
    pub fn parse(word: &str) -> Option<AgentState> {
        AgentState::ALL
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(word))
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AgentState::Ready => "ready",
            AgentState::Drain => "drain",
            AgentState::Maint => "maint",
            AgentState::Up => "up",
            AgentState::Down => "down",
            AgentState::Stopped => "stopped",
            AgentState::Fail => "fail",
        }
    }

    /// `ready`, `drain` and `maint` are admin words; the others are health words.
    pub fn is_admin(self) -> bool {
        matches!(
            self,
            AgentState::Ready | AgentState::Drain | AgentState::Maint
        )
    }
}

impl fmt::Display for AgentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One report about one member, whatever format it came in.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadReport {
    pub member: String,
    pub metrics: Metrics,
    /// The last admin word (`ready`, `drain`, `maint`), if any.
    pub admin: Option<AgentState>,
    /// The last health word (`up`, `down`, `stopped`, `fail`), if any.
    pub health: Option<AgentState>,
    /// Weight as a percentage of the member's configured weight, `0..=MAX_WEIGHT_PCT`.
    pub weight_pct: Option<u32>,
    /// A connection limit; 0 means no limit, as in HAProxy.
    pub maxconn: Option<u32>,
    /// Free text for logs and the dashboard, at most [`MAX_REASON_LEN`] bytes, no control chars.
    pub reason: Option<String>,
    /// When the report was received, on the [`crate::clock`] scale.
    pub received: u64,
    pub source: Source,
}

impl LoadReport {
    /// An empty report for `member`; the parsers fill it in.
    pub fn new(member: impl Into<String>, source: Source, received: u64) -> Self {
        LoadReport {
            member: member.into(),
            metrics: Metrics::default(),
            admin: None,
            health: None,
            weight_pct: None,
            maxconn: None,
            reason: None,
            received,
            source,
        }
    }

    /// Puts `state` in its slot (admin or health), replacing what was there.
    pub fn set_state(&mut self, state: AgentState) {
        if state.is_admin() {
            self.admin = Some(state);
        } else {
            self.health = Some(state);
        }
    }

    /// True when the report carries nothing at all.
    pub fn is_empty(&self) -> bool {
        self.metrics.is_empty()
            && self.admin.is_none()
            && self.health.is_none()
            && self.weight_pct.is_none()
            && self.maxconn.is_none()
    }
}

/// Why a member name is refused, or `None` when it is acceptable: the rule of member names in the
/// config (not empty, no whitespace, '/' or control characters), plus a length bound.
pub(crate) fn member_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("empty member name".into());
    }
    if name.len() > MAX_MEMBER_LEN {
        return Some(format!(
            "member name too long ({} bytes, at most {MAX_MEMBER_LEN})",
            name.len()
        ));
    }
    if name
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '/')
    {
        return Some(format!(
            "bad member name {:?} (no spaces, '/' or control characters)",
            clip(name)
        ));
    }
    None
}

/// Why a reason text is refused, or `None` when it is acceptable.
pub(crate) fn reason_problem(reason: &str) -> Option<String> {
    if reason.len() > MAX_REASON_LEN {
        return Some(format!(
            "reason too long ({} bytes, at most {MAX_REASON_LEN})",
            reason.len()
        ));
    }
    if reason.chars().any(char::is_control) {
        return Some("reason contains control characters".into());
    }
    None
}

/// A message from a library (serde_json) made safe for one log line: control characters escaped
/// (a JSON key may hold a newline) and cut to at most 200 bytes (a key may be a megabyte long).
pub(crate) fn one_line(s: &str) -> String {
    const MAX: usize = 200;
    let mut out = String::new();
    for c in s.chars() {
        if out.len() >= MAX {
            out.push_str("...");
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// `s` cut to at most 40 bytes (on a char boundary) so a reject message stays one short line
/// whatever the client sent.
pub(crate) fn clip(s: &str) -> String {
    const MAX: usize = 40;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_words_are_case_insensitive_and_split_in_two_kinds() {
        assert_eq!(AgentState::parse("DRAIN"), Some(AgentState::Drain));
        assert_eq!(AgentState::parse("Up"), Some(AgentState::Up));
        assert_eq!(AgentState::parse("raedy"), None);
        let mut r = LoadReport::new("m1", Source::Push, 1);
        assert!(r.is_empty());
        r.set_state(AgentState::Drain);
        r.set_state(AgentState::Down);
        assert_eq!(
            (r.admin, r.health),
            (Some(AgentState::Drain), Some(AgentState::Down))
        );
    }

    #[test]
    fn names_and_reasons_are_checked() {
        assert!(member_problem("m1").is_none());
        assert!(member_problem("10.0.0.1:8080").is_none());
        assert!(member_problem("").is_some());
        assert!(member_problem("a b").is_some());
        assert!(member_problem("a/b").is_some());
        assert!(member_problem(&"x".repeat(300)).is_some());
        assert!(reason_problem("disk full").is_none());
        assert!(reason_problem("a\nb").is_some());
        assert_eq!(clip(&"é".repeat(30)).len(), 43);
        assert_eq!(one_line("unknown field `a\nb`"), "unknown field `a\\nb`");
        assert!(one_line(&"k".repeat(10_000)).len() <= 203);
    }
}
