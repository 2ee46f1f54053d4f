//! What one run measured ([`RunResult`], also the raw JSON record) and the markdown table that
//! sums up the repetitions of each policy: median of the repetitions with min-max.
//!
//! Latency is from the *scheduled* send time to the end of the response body, in an HdrHistogram
//! (microseconds, 3 significant digits). A request that failed (timeout, transport error, non-2xx)
//! is counted as an error and recorded in the histogram at the timeout (1 s): a policy cannot
//! improve its percentiles by failing requests fast.

use std::collections::BTreeMap;

use serde::Serialize;

/// One run: one policy, one repetition, one scenario at one rate.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunResult {
    pub scenario: String,
    pub rate: f64,
    pub rep: usize,
    pub policy: String,
    /// Position of this run in its repetition's (shuffled) order.
    pub order: usize,
    /// Requests scheduled in the measured window.
    pub requests: u64,
    pub ok: u64,
    pub errors: u64,
    pub errors_by_kind: BTreeMap<String, u64>,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
    /// Answers per member (by `X-Member`), measured window only.
    pub share: BTreeMap<String, u64>,
    /// How late the generator sent, against the schedule (measured window).
    pub lag_p99_ms: f64,
    pub lag_max_ms: f64,
    /// Share of sends later than the lag threshold.
    pub late_share: f64,
    pub void: bool,
    pub void_reason: Option<String>,
    /// Anything worth knowing about the run (pushes refused, a drover that logged errors...).
    pub notes: Vec<String>,
}

impl RunResult {
    pub fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.errors as f64 / self.requests as f64
        }
    }
}

/// Median, min and max of a list (the median of an even count is the mean of the middle two).
pub fn median_min_max(xs: &[f64]) -> Option<(f64, f64, f64)> {
    if xs.is_empty() {
        return None;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let med = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Some((med, v[0], v[n - 1]))
}

fn ms(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn cell(xs: &[f64], fmt: fn(f64) -> String) -> String {
    match median_min_max(xs) {
        None => "-".into(),
        Some((m, _, _)) if xs.len() == 1 => fmt(m),
        Some((m, lo, hi)) => format!("{} ({}-{})", fmt(m), fmt(lo), fmt(hi)),
    }
}

fn pct(x: f64) -> String {
    let p = 100.0 * x;
    if p == 0.0 {
        "0%".into()
    } else if p < 0.1 {
        format!("{p:.3}%")
    } else {
        format!("{p:.2}%")
    }
}

/// The table of one scenario at one rate, `members` in column order, `policies` in row order.
/// Medians are over the runs that are not void; a policy whose every run is void is summed over
/// all its runs and marked so.
pub fn table(runs: &[&RunResult], members: &[String], policies: &[String]) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "| policy | p50 ms | p99 ms | p99.9 ms | errors | share {} (%) | void |\n",
        members.join("/")
    ));
    out.push_str("|---|---|---|---|---|---|---|\n");
    for p in policies {
        let all: Vec<&RunResult> = runs.iter().copied().filter(|r| &r.policy == p).collect();
        if all.is_empty() {
            continue;
        }
        let valid: Vec<&RunResult> = all.iter().copied().filter(|r| !r.void).collect();
        let (used, mark) = if valid.is_empty() {
            (all.clone(), " (all void)")
        } else {
            (valid, "")
        };
        let col = |f: fn(&RunResult) -> f64| used.iter().map(|r| f(r)).collect::<Vec<f64>>();
        let shares: Vec<String> = members
            .iter()
            .map(|m| {
                let xs: Vec<f64> = used
                    .iter()
                    .map(|r| {
                        let total: u64 = r.share.values().sum();
                        let mine = r.share.get(m).copied().unwrap_or(0);
                        if total == 0 {
                            0.0
                        } else {
                            100.0 * mine as f64 / total as f64
                        }
                    })
                    .collect();
                median_min_max(&xs).map_or("-".into(), |(m, _, _)| format!("{m:.0}"))
            })
            .collect();
        let void = all.iter().filter(|r| r.void).count();
        out.push_str(&format!(
            "| {p}{mark} | {} | {} | {} | {} | {} | {void}/{} |\n",
            cell(&col(|r| r.p50_ms), ms),
            cell(&col(|r| r.p99_ms), ms),
            cell(&col(|r| r.p999_ms), ms),
            cell(&col(RunResult::error_rate), pct),
            shares.join("/"),
            all.len(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median_min_max(&[3.0, 1.0, 2.0]), Some((2.0, 1.0, 3.0)));
        assert_eq!(median_min_max(&[4.0, 1.0, 2.0, 3.0]), Some((2.5, 1.0, 4.0)));
        assert_eq!(median_min_max(&[]), None);
    }

    fn run(policy: &str, p99: f64, void: bool) -> RunResult {
        RunResult {
            policy: policy.into(),
            requests: 1000,
            errors: 10,
            p50_ms: 20.0,
            p99_ms: p99,
            p999_ms: 2.0 * p99,
            share: [("B1".to_owned(), 300), ("B2".to_owned(), 700)].into(),
            void,
            ..RunResult::default()
        }
    }

    #[test]
    fn table_takes_medians_of_valid_runs_and_counts_void_ones() {
        let runs = [
            run("p2c", 100.0, false),
            run("p2c", 120.0, false),
            run("p2c", 900.0, true),
            run("rr", 50.0, true),
        ];
        let refs: Vec<&RunResult> = runs.iter().collect();
        let t = table(
            &refs,
            &["B1".into(), "B2".into()],
            &["p2c".into(), "rr".into()],
        );
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            lines[0],
            "| policy | p50 ms | p99 ms | p99.9 ms | errors | share B1/B2 (%) | void |"
        );
        assert_eq!(
            lines[2],
            "| p2c | 20.0 (20.0-20.0) | 110 (100-120) | 220 (200-240) | 1.00% (1.00%-1.00%) | 30/70 | 1/3 |"
        );
        assert!(
            lines[3].starts_with("| rr (all void) | 20.0 | 50.0 |"),
            "{}",
            lines[3]
        );
        assert!(lines[3].ends_with("| 1/1 |"));
    }
}
