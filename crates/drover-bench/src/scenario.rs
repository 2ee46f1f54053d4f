//! The scenarios of BALANCING.md as sleepy-member configs: who the members are, how many
//! balancers split the load, and the default rates.
//!
//! | name | members | default rates |
//! |---|---|---|
//! | `m` | B1 hidden 100 rps 30 s on / 30 s off, B2 normal, B3 3x slower, B4 freezes 300 ms every 5 s, B5 c=8 with S(n) = S(1 + 0.1(n-1) + 0.05 n(n-1)) | 450, 550 |
//! | `hidden`, `slow`, `stall`, `degrade`, `fail` | one pathology alone on B1 (as in `m`; `fail`: half its requests answered 503 at once), B2-B5 normal | 600 |
//! | `equal5` | five normal members | 600 |
//! | `linkerd` | 11 members, c=32, lognormal median 167 ms (CV 0.3); L1 at 2 s for 30 s, centred in the measured window | 1000 |
//! | `herding` | `m`'s members behind two drover processes, reports pushed to both every 0.1 s, 1 s, 5 s (three scenarios: `herding-0.1s`, `herding-1s`, `herding-5s`) | 550 |
//!
//! "Normal" is c=4 workers, lognormal service with mean 20 ms and CV 1 (200 rps of capacity).

use std::time::Duration;

use drover_testkit::SleepyConfig;

/// One scenario, ready to run at any rate.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: String,
    pub members: Vec<SleepyConfig>,
    /// Drover processes splitting the load (the herding test uses 2).
    pub balancers: usize,
    /// Push interval of the members' reports (and the agent-check interval).
    pub report_interval: Duration,
    pub default_rates: Vec<f64>,
    /// A success is an answer under this (also the client timeout).
    pub timeout: Duration,
}

/// Every scenario name `--scenario` accepts (`herding` expands to its three intervals).
pub const NAMES: &[&str] = &[
    "m", "hidden", "slow", "stall", "degrade", "fail", "equal5", "linkerd", "herding",
];

const MS: Duration = Duration::from_millis(1);
const S: Duration = Duration::from_secs(1);

fn normal(name: &str) -> SleepyConfig {
    SleepyConfig::new(name).workers(4).service(20 * MS, 1.0)
}

fn hidden(name: &str) -> SleepyConfig {
    normal(name).hidden(100.0, 30 * S, 30 * S)
}
fn slow(name: &str) -> SleepyConfig {
    normal(name).speed(3.0)
}
fn stall(name: &str) -> SleepyConfig {
    normal(name).stall(5 * S, 300 * MS)
}
fn degrade(name: &str) -> SleepyConfig {
    normal(name).workers(8).degrade(0.1, 0.05)
}
fn fail(name: &str) -> SleepyConfig {
    normal(name).fail_rate(0.5)
}

fn mixed() -> Vec<SleepyConfig> {
    vec![
        hidden("B1"),
        normal("B2"),
        slow("B3"),
        stall("B4"),
        degrade("B5"),
    ]
}

/// B1 with one pathology, then four normal members.
fn alone(sick: fn(&str) -> SleepyConfig) -> Vec<SleepyConfig> {
    let mut v = vec![sick("B1")];
    v.extend(["B2", "B3", "B4", "B5"].map(normal));
    v
}

fn single(name: &str, members: Vec<SleepyConfig>, rates: &[f64]) -> Scenario {
    Scenario {
        name: name.into(),
        members,
        balancers: 1,
        report_interval: S,
        default_rates: rates.to_vec(),
        timeout: S,
    }
}

/// The scenarios named `name`; `warmup` and `window` place the Linkerd replica's episode.
pub fn by_name(name: &str, warmup: Duration, window: Duration) -> Option<Vec<Scenario>> {
    let one = |s| Some(vec![s]);
    match name {
        "m" => one(single("m", mixed(), &[450.0, 550.0])),
        "hidden" => one(single("hidden", alone(hidden), &[600.0])),
        "slow" => one(single("slow", alone(slow), &[600.0])),
        "stall" => one(single("stall", alone(stall), &[600.0])),
        "degrade" => one(single("degrade", alone(degrade), &[600.0])),
        "fail" => one(single("fail", alone(fail), &[600.0])),
        "equal5" => one(single(
            "equal5",
            ["B1", "B2", "B3", "B4", "B5"].map(normal).to_vec(),
            &[600.0],
        )),
        "linkerd" => one(single("linkerd", linkerd(warmup, window), &[1000.0])),
        "herding" => Some(
            [(100 * MS, "0.1s"), (S, "1s"), (5 * S, "5s")]
                .into_iter()
                .map(|(interval, label)| Scenario {
                    name: format!("herding-{label}"),
                    members: mixed(),
                    balancers: 2,
                    report_interval: interval,
                    default_rates: vec![550.0],
                    timeout: S,
                })
                .collect(),
        ),
        _ => None,
    }
}

/// Linkerd's 2016 experiment: 11 members, median 167 ms, one stuck at 2 s for 30 s (centred in
/// the measured window; the whole window when it is shorter than 30 s).
fn linkerd(warmup: Duration, window: Duration) -> Vec<SleepyConfig> {
    let median = 0.167f64;
    let cv = 0.3f64;
    // Lognormal: mean = median x exp(sigma^2 / 2), sigma^2 = ln(1 + cv^2).
    let mean = Duration::from_secs_f64(median * ((1.0 + cv * cv).ln() / 2.0).exp());
    let length = window.min(30 * S);
    let start = warmup + (window - length) / 2;
    (1..=11)
        .map(|i| {
            let m = SleepyConfig::new(format!("L{i}"))
                .workers(32)
                .service(mean, cv);
            if i == 1 {
                m.episode(start, length, 2 * S)
            } else {
                m
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_resolves() {
        for name in NAMES {
            let s = by_name(name, 10 * S, 60 * S).unwrap();
            assert!(!s.is_empty());
            for sc in &s {
                assert!(!sc.members.is_empty() && !sc.default_rates.is_empty());
            }
        }
        assert!(by_name("nope", S, S).is_none());
        let h = by_name("herding", S, S).unwrap();
        let names: Vec<_> = h.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["herding-0.1s", "herding-1s", "herding-5s"]);
        assert!(h.iter().all(|s| s.balancers == 2));
    }

    #[test]
    fn pathologies_alone_keep_member_names() {
        let s = by_name("slow", S, S).unwrap();
        let names: Vec<_> = s[0].members.iter().map(|m| m.name().to_owned()).collect();
        assert_eq!(names, ["B1", "B2", "B3", "B4", "B5"]);
    }
}
