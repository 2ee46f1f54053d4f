//! `[farm.<name>.passive]`: ejection of members on the failures of real requests, after
//! `consecutive_failures` in a row or as error-rate outliers.
//!
//! Called by `farm.rs`; the failure words of `count` are read by `retry.rs`, shared with
//! `retry_on`. The result is read by drover-health (ejection) and drover-proxy (what counts).

use crate::model::Passive;
use crate::retry::failures;
use crate::units::format_duration as show;
use crate::walk::{Ctx, Table};

const PASSIVE_KEYS: &[&str] = &[
    "consecutive_failures",
    "count",
    "ejection_time",
    "max_ejection_time",
    "max_ejected",
    "outlier_factor",
    "outlier_interval",
    "outlier_min_requests",
    "outlier_min_error_rate",
];

/// `[farm.<name>.passive]`, or the defaults without it.
pub(crate) fn passive(ctx: &mut Ctx<'_>, t: &Table<'_, '_>) -> Passive {
    const EXAMPLE: &str = "[\"connect\", \"reset\", \"timeout\", \"5xx\"]";
    let d = Passive::default();
    let Some(p) = t.table(ctx, "passive", Some(PASSIVE_KEYS)) else {
        return d;
    };
    let count = failures(ctx, &p, "count", EXAMPLE, "counted");
    if let (Some(c), Some(v)) = (&count, p.get("count"))
        && !(c.connect || c.reset || c.timeout || !c.statuses.is_empty())
        && matches!(v.get_ref(), toml::de::DeValue::Array(a) if a.is_empty())
    {
        let message = format!(
            "an empty list counts no failure; expected a list such as {EXAMPLE}, or turn passive \
             ejection off with consecutive_failures = 0"
        );
        ctx.bad(&p.child("count"), v, message);
    }
    let ejection_time = p.positive_duration(ctx, "ejection_time");
    let max_ejection_time = p.positive_duration(ctx, "max_ejection_time");
    let (first, most) = (
        ejection_time.unwrap_or(d.ejection_time),
        max_ejection_time.unwrap_or(d.max_ejection_time),
    );
    if first > most {
        let (first, most) = (show(first), show(most));
        let (name, message) = match max_ejection_time {
            Some(_) => (
                "max_ejection_time",
                format!(
                    "shorter than ejection_time ({first}{}); ejections start at \
                     ejection_time and double up to max_ejection_time: make it at least {first}",
                    if ejection_time.is_some() {
                        ""
                    } else {
                        ", the default"
                    }
                ),
            ),
            None => (
                "ejection_time",
                format!(
                    "longer than max_ejection_time ({most}, the default); ejections start at \
                     ejection_time and double up to max_ejection_time: set max_ejection_time \
                     at least {first}"
                ),
            ),
        };
        if let Some(v) = p.get(name) {
            ctx.bad(&p.child(name), v, message);
        }
    }
    Passive {
        consecutive_failures: p
            .int(ctx, "consecutive_failures", 0..=1_000_000)
            .map_or(d.consecutive_failures, |n| n as u32),
        count: count.unwrap_or(d.count),
        ejection_time: first,
        max_ejection_time: most,
        max_ejected: p
            .percent(ctx, "max_ejected", 0.0..=1.0)
            .unwrap_or(d.max_ejected),
        outlier_factor: outlier_factor(ctx, &p).unwrap_or(d.outlier_factor),
        outlier_interval: p
            .positive_duration(ctx, "outlier_interval")
            .unwrap_or(d.outlier_interval),
        outlier_min_requests: p
            .int(ctx, "outlier_min_requests", 1..=1_000_000)
            .map_or(d.outlier_min_requests, |n| n as u32),
        outlier_min_error_rate: p
            .percent(ctx, "outlier_min_error_rate", 0.0..=1.0)
            .unwrap_or(d.outlier_min_error_rate),
    }
}

fn outlier_factor(ctx: &mut Ctx<'_>, p: &Table<'_, '_>) -> Option<f64> {
    let f = p.float(
        ctx,
        "outlier_factor",
        "a number: 0 (off) or more than 1, e.g. 3",
    )?;
    if f == 0.0 || f > 1.0 {
        return Some(f);
    }
    if let Some(v) = p.get("outlier_factor") {
        let message = "must be 0 (off) or more than 1: a member is an outlier when its error \
                       rate is more than outlier_factor times the farm's";
        ctx.bad(&p.child("outlier_factor"), v, message);
    }
    None
}
