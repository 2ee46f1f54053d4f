//! A farm's retry keys, `retry_on`, `retry_budget` and `retry_budget_floor`, and the failure
//! lists they share with `[farm.<name>.passive]`'s `count`: words (`connect`, `reset`,
//! `timeout`, `5xx`) and statuses from 500 to 599.
//!
//! Called by `farm.rs` (retry keys) and `health.rs` (`passive.count`); the result is read by
//! drover-proxy, which decides per attempt whether a failure may be retried.

use crate::model::{FailureKinds, RetryBudget, RetryOn};
use crate::units::did_you_mean;
use crate::walk::{Ctx, Table, Value};

/// `retry_budget_floor` at most: far above any sane value, low enough to catch a typo.
const MAX_BUDGET_FLOOR: i64 = 1_000_000;

/// `retry_on`, defaulting to `["connect", "reset", "timeout"]`; an empty list is connect only.
pub(crate) fn retry_on(ctx: &mut Ctx<'_>, t: &Table<'_, '_>) -> RetryOn {
    const EXAMPLE: &str = "[\"connect\", \"reset\", \"timeout\", \"503\"]";
    let Some(kinds) = failures(ctx, t, "retry_on", EXAMPLE, "retried") else {
        return RetryOn::default();
    };
    // `connect` is always on: a request that was never sent is safe to send elsewhere.
    RetryOn {
        reset: kinds.reset,
        timeout: kinds.timeout,
        statuses: kinds.statuses,
    }
}

/// `retry_budget` and `retry_budget_floor`.
pub(crate) fn retry_budget(ctx: &mut Ctx<'_>, t: &Table<'_, '_>) -> RetryBudget {
    let defaults = RetryBudget::default();
    RetryBudget {
        ratio: t
            .percent(ctx, "retry_budget", 0.0..=1.0)
            .unwrap_or(defaults.ratio),
        floor_per_sec: t
            .int(ctx, "retry_budget_floor", 0..=MAX_BUDGET_FLOOR)
            .map_or(defaults.floor_per_sec, |n| n as u32),
    }
}

/// The failure list `t.name` (an array of words and 5xx statuses), `None` when absent or not an
/// array. `done` says what happens to the listed failures, for messages ("retried", "counted").
pub(crate) fn failures(
    ctx: &mut Ctx<'_>,
    t: &Table<'_, '_>,
    name: &str,
    example: &str,
    done: &str,
) -> Option<FailureKinds> {
    let what = format!("an array of failures such as {example}");
    let items = t.array(ctx, name, &what)?;
    let mut kinds = FailureKinds {
        connect: false,
        reset: false,
        timeout: false,
        statuses: Vec::new(),
    };
    for (i, item) in items.iter().enumerate() {
        let key = format!("{}[{i}]", t.child(name));
        match failure(ctx, &key, item, done) {
            Some(Failure::Connect) => kinds.connect = true,
            Some(Failure::Reset) => kinds.reset = true,
            Some(Failure::Timeout) => kinds.timeout = true,
            Some(Failure::Statuses(lo, hi)) => kinds.statuses.push((lo, hi)),
            None => {}
        }
    }
    kinds.statuses = merge_ranges(kinds.statuses);
    Some(kinds)
}

enum Failure {
    Connect,
    Reset,
    Timeout,
    Statuses(u16, u16),
}

/// One word of a failure list: `"connect"`, `"reset"`, `"timeout"`, `"5xx"`, or a status from
/// 500 to 599 as a string or an integer.
fn failure(ctx: &mut Ctx<'_>, key: &str, v: &Value<'_>, done: &str) -> Option<Failure> {
    let forms = format!(
        "{} or a status from 500 to 599 such as \"503\"",
        RetryOn::WORDS.join(", ")
    );
    let status = match v.get_ref() {
        toml::de::DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix()).ok(),
        _ => {
            let word = ctx.expect_str(key, v, &format!("a string: {forms}"))?;
            match word {
                "connect" => return Some(Failure::Connect),
                "reset" => return Some(Failure::Reset),
                "timeout" => return Some(Failure::Timeout),
                "5xx" => return Some(Failure::Statuses(500, 599)),
                _ if word.len() == 3 && word.bytes().all(|b| b.is_ascii_digit()) => {
                    word.parse::<i64>().ok()
                }
                _ => {
                    let mut message = format!("unknown failure; expected {forms}");
                    if let Some(close) = did_you_mean(word, RetryOn::WORDS.iter().copied()) {
                        message.push_str(&format!(" (did you mean \"{close}\"?)"));
                    }
                    ctx.bad(key, v, message);
                    return None;
                }
            }
        }
    };
    match status {
        Some(s @ 500..=599) => Some(Failure::Statuses(s as u16, s as u16)),
        _ => {
            let message = format!(
                "only server errors (500 to 599) can be {done}: any other status is an answer \
                 another member would give too; expected {forms}"
            );
            ctx.bad(key, v, message);
            None
        }
    }
}

/// Inclusive ranges sorted, with overlapping and adjacent ones joined: `[(503, 503), (500,
/// 599)]` becomes `[(500, 599)]`, so that equal sets compare equal.
pub(crate) fn merge_ranges(mut ranges: Vec<(u16, u16)>) -> Vec<(u16, u16)> {
    ranges.sort_unstable();
    let mut merged: Vec<(u16, u16)> = Vec::with_capacity(ranges.len());
    for (lo, hi) in ranges {
        match merged.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => merged.push((lo, hi)),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_merge() {
        assert_eq!(merge_ranges(vec![(503, 503), (500, 599)]), [(500, 599)]);
        assert_eq!(
            merge_ranges(vec![(504, 504), (502, 503)]),
            [(502, 504)],
            "adjacent ranges join"
        );
        assert_eq!(
            merge_ranges(vec![(300, 399), (200, 204)]),
            [(200, 204), (300, 399)]
        );
        assert!(merge_ranges(Vec::new()).is_empty());
    }
}
