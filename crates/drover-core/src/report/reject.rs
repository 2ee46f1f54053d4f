//! [`Reject`]: why a report was refused, in one line a log or a 4xx body can carry.

use std::fmt;

/// What kind of problem a reject is, so the caller can pick an HTTP status and a counter label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectKind {
    /// Not the format at all, or a field of the wrong type (400).
    Malformed,
    /// Well-formed, but a value is out of its range or not allowed (400).
    Invalid,
    /// Over a size bound (413).
    TooLarge,
    /// Missing or wrong signature (401).
    Unauthorized,
    /// Signed, but the timestamp is outside the window (401).
    Stale,
    /// Signed and fresh, but seen before (401).
    Replay,
}

impl RejectKind {
    /// A short label for metrics (`reason="..."`).
    pub fn as_str(self) -> &'static str {
        match self {
            RejectKind::Malformed => "malformed",
            RejectKind::Invalid => "invalid",
            RejectKind::TooLarge => "too_large",
            RejectKind::Unauthorized => "unauthorized",
            RejectKind::Stale => "stale",
            RejectKind::Replay => "replay",
        }
    }
}

/// A refused report: which format (`context`), what kind of problem, and what exactly.
///
/// `Display` gives e.g. `agent-check reply: unknown word "raedy" (expected ...)`. The message
/// quotes at most a clipped piece of the input, so it stays one short line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    pub context: &'static str,
    pub kind: RejectKind,
    pub message: String,
}

impl Reject {
    pub fn new(context: &'static str, kind: RejectKind, message: impl Into<String>) -> Self {
        Reject {
            context,
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for Reject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.context, self.message)
    }
}

impl std::error::Error for Reject {}

impl Reject {
    /// A metric refused by [`super::Metrics::insert`], in `context`.
    pub fn metric(context: &'static str, e: super::MetricError) -> Self {
        use super::MetricError as E;
        let kind = match e {
            E::OutOfRange { .. } => RejectKind::Invalid,
            E::TooMany => RejectKind::TooLarge,
            E::BadName(_) | E::NotFinite(_) | E::Duplicate(_) => RejectKind::Malformed,
        };
        Reject::new(context, kind, e.to_string())
    }
}
