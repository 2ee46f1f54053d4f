//! drover-bench: the socket benchmark of BALANCING.md (`bench/balancing`), run by the
//! `balancing` binary.
//!
//! Where it sits: outside drover's request path, around it. It starts sleepy members from
//! `drover-testkit` in-process, one or two real `drover serve` processes per run (the binary under
//! test), and an open-loop generator that sends Poisson load through them, or, for the `oracle`
//! policy, straight to the member with the shortest true queue.
//!
//! Modules: [`scenario`] (the members of each scenario), [`generator`] (open-loop load,
//! latency from the scheduled send time, the oracle), [`drover`] (config file, process start and
//! stop by PID), [`run`] (repetitions, shuffled policy order, raw JSON), [`stats`] (per-run result,
//! markdown table).
//!
//! Concurrency: one tokio runtime runs the members, the generator and the request tasks; drover
//! runs in its own processes. Every drover process is spawned `kill_on_drop`, so an error or an
//! interrupted run kills exactly the processes it started.
//!
//! Config keys it writes into drover's config: `[server] threads`, `[admin] listen`, one
//! `[[listener]]`, `[farm.app] policy` and members by name, and when supported `[reports] secret`,
//! `[farm.app.reports] expect`, member `agent = { port, interval, timeout }`.

#![forbid(unsafe_code)]

pub mod drover;
pub mod generator;
pub mod run;
pub mod scenario;
pub mod stats;

use std::time::Duration;

/// Parses `"10s"`, `"500ms"`, `"1.5s"`, `"2m"`, `"100us"`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| format!("{s:?}: missing unit (us, ms, s, m)"))?;
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("{s:?}: not a number before the unit"))?;
    let secs = match unit {
        "us" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (us, ms, s, m)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

/// Splits a comma-separated list at the top level only, so a policy such as
/// `dynamic(cpu=0.5, queue=0.5)` or `["sample 2", "least conn"]` stays whole.
pub fn split_top_level(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut quoted = false;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '"' => quoted = !quoted,
            '(' | '[' | '{' if !quoted => depth += 1,
            ')' | ']' | '}' if !quoted => depth -= 1,
            ',' if depth == 0 && !quoted => {
                if !cur.trim().is_empty() {
                    out.push(cur.trim().to_owned());
                }
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_owned());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("10h").is_err());
    }

    #[test]
    fn lists_keep_nested_commas() {
        assert_eq!(
            split_top_level("p2c, dynamic(cpu=0.5, queue=0.5),[\"a, b\", \"c\"] ,oracle"),
            [
                "p2c",
                "dynamic(cpu=0.5, queue=0.5)",
                "[\"a, b\", \"c\"]",
                "oracle"
            ]
        );
    }
}
