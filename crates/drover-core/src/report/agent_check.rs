//! HAProxy's agent-check reply: one line of words, in any order, from a member's agent port.
//!
//! Where it sits: the agent-check client loop (later, in the health crate) connects to the agent
//! port, optionally sends a line, reads one reply line and hands it to [`parse`]; the report it
//! gets changes the member's admin state, health, weight and maxconn.
//!
//! The grammar follows HAProxy (`tcpcheck_agent_expect_reply` and the `agent-check` section of its
//! configuration manual), so existing agents work unchanged:
//! - the reply ends at the first `\r` or `\n`; anything after it is not part of the reply;
//! - words are separated by spaces, tabs or commas, and are case-insensitive;
//! - `NN%`: weight as a percentage of the configured weight (HAProxy saturates at 25600%;
//!   drover rejects more than that, and a fraction such as `75.5%`, which HAProxy ignores
//!   with a warning);
//! - `ready`, `drain`, `maint`: admin words; `up`, `down`, `stopped`, `fail`: health words. The two
//!   kinds are independent (`drain up` sets both); within a kind, as in HAProxy, the last word wins
//!   (`up down` is `down`). Repeated weights or maxconns: the last wins too;
//! - `maxconn:N`: a connection limit, 0 meaning none;
//! - `#` starts a free-text reason that runs to the end of the line (leading blanks skipped).
//!
//! Where drover is stricter than HAProxy, and why: HAProxy applies the words it knows and logs the
//! first one it does not; drover rejects the whole line (a typo such as `raedy` must not half-apply
//! a reply), rejects an empty reply or one with only a reason (it would change nothing and hides a
//! broken agent), and bounds the line to [`MAX_LINE`] bytes and the reason to
//! [`super::MAX_REASON_LEN`].

use super::{AgentState, LoadReport, MAX_WEIGHT_PCT, Reject, RejectKind, Source, clip};

const CONTEXT: &str = "agent-check reply";
/// Longest reply line accepted, in bytes.
pub const MAX_LINE: usize = 1024;
const EXPECTED: &str =
    "expected NN%, ready, drain, maint, up, down, stopped, fail, maxconn:N, # reason";

fn reject(kind: RejectKind, message: impl Into<String>) -> Reject {
    Reject::new(CONTEXT, kind, message)
}

/// Parses one agent-check reply line for `member`, received at `now` (clock scale).
pub fn parse(line: &str, member: &str, now: u64) -> Result<LoadReport, Reject> {
    let line = match line.find(['\r', '\n']) {
        Some(end) => &line[..end],
        None => line,
    };
    if line.len() > MAX_LINE {
        return Err(reject(
            RejectKind::TooLarge,
            format!("line too long ({} bytes, at most {MAX_LINE})", line.len()),
        ));
    }
    let (words, reason) = match line.split_once('#') {
        Some((words, reason)) => (
            words,
            Some(reason.trim_start_matches([' ', '\t']).trim_end()),
        ),
        None => (line, None),
    };
    let mut report = LoadReport::new(member, Source::AgentCheck, now);
    for word in words.split([' ', '\t', ',']).filter(|w| !w.is_empty()) {
        apply_word(&mut report, word)?;
    }
    if report.is_empty() {
        let what = if reason.is_none() {
            "empty reply"
        } else {
            "no word before the reason"
        };
        return Err(reject(
            RejectKind::Malformed,
            format!("{what} ({EXPECTED})"),
        ));
    }
    if let Some(reason) = reason.filter(|r| !r.is_empty()) {
        if let Some(problem) = super::reason_problem(reason) {
            return Err(reject(RejectKind::Invalid, problem));
        }
        report.reason = Some(reason.to_owned());
    }
    Ok(report)
}

fn apply_word(report: &mut LoadReport, word: &str) -> Result<(), Reject> {
    if let Some(state) = AgentState::parse(word) {
        report.set_state(state);
    } else if let Some(pct) = word.strip_suffix('%') {
        report.weight_pct = Some(weight(pct, word)?);
    } else if let Some(n) = word
        .get(..8)
        .filter(|p| p.eq_ignore_ascii_case("maxconn:"))
        .and_then(|_| word.get(8..))
        .filter(|n| !n.is_empty())
    {
        let value = digits(n).ok_or_else(|| {
            reject(
                RejectKind::Malformed,
                format!(
                    "bad maxconn {:?} (expected maxconn:N, N a whole number)",
                    clip(word)
                ),
            )
        })?;
        report.maxconn = Some(u32::try_from(value).map_err(|_| {
            reject(
                RejectKind::Invalid,
                format!("maxconn {} is out of range (at most {})", clip(n), u32::MAX),
            )
        })?);
    } else {
        return Err(reject(
            RejectKind::Malformed,
            format!("unknown word {:?} ({EXPECTED})", clip(word)),
        ));
    }
    Ok(())
}

fn weight(pct: &str, word: &str) -> Result<u32, Reject> {
    let value = digits(pct).ok_or_else(|| {
        reject(
            RejectKind::Malformed,
            format!(
                "bad weight {:?} (expected NN%, NN a whole number)",
                clip(word)
            ),
        )
    })?;
    if value > u64::from(MAX_WEIGHT_PCT) {
        return Err(reject(
            RejectKind::Invalid,
            format!(
                "weight {}% is out of range (0% to {MAX_WEIGHT_PCT}%)",
                clip(pct)
            ),
        ));
    }
    // Bounded by MAX_WEIGHT_PCT just above, so it fits.
    Ok(value as u32)
}

/// `s` as a whole number (saturating at `u64::MAX`) when it is ASCII digits only, else `None`.
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0u64, |n, b| {
        n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

#[cfg(test)]
mod tests;
