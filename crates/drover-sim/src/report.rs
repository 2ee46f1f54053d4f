//! The result of one run: sojourn-time statistics, per-member shares, queue lengths.
//!
//! Where it sits: built by [`crate::sim::run`] at the end of a run; printed by the CLI and read by
//! the theory checks. Times are in seconds of virtual time.
//!
//! Key type: [`Report`]. Percentiles come from an HdrHistogram with 3 significant digits (0.1%
//! resolution); the mean is exact. `queue_tail[k]` is the time-average fraction of members with at
//! least `k` jobs in the system (waiting or in service), the s_k of the supermarket model.

use std::fmt;

use hdrhistogram::Histogram;

use crate::member::{NS, Station};
use crate::sim::{BATCHES, Config, Sums};

/// Student's t for a two-sided 95% interval with `BATCHES - 1` = 19 degrees of freedom.
const T95: f64 = 2.093;

#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub policy: String,
    pub members: usize,
    pub balancers: usize,
    pub load: f64,
    pub jobs: u64,
    /// Sojourn time (arrival to completion), seconds.
    pub mean: f64,
    /// Half-width of a 95% confidence interval of the mean, by batch means (20 batches of
    /// consecutive arrivals; too narrow when a batch is shorter than the queues' memory).
    pub mean_ci: f64,
    pub p50: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    /// Share of measured jobs given up on by the client timeout (0 without one).
    pub errors: f64,
    /// Share of measured jobs slower than 1 s (what a 1 s timeout would turn into errors).
    pub over_1s: f64,
    /// Share of the measured jobs each member served.
    pub share: Vec<f64>,
    /// Most jobs in the system at one member, at any time of the run.
    pub max_queue: u32,
    /// `queue_tail[k]`: time-average fraction of members with at least `k` jobs.
    pub queue_tail: Vec<f64>,
    /// Virtual seconds simulated, and events processed.
    pub duration: f64,
    pub events: u64,
}

impl Report {
    pub(crate) fn new(
        config: &Config,
        hist: &Histogram<u64>,
        sums: &Sums,
        stations: &[Station],
        occupancy: &[u128],
        window: (u64, u64),
        (end, events, errors): (u64, u64, u64),
    ) -> Self {
        let secs = |ns: u64| ns as f64 / NS;
        let q = |p: f64| secs(hist.value_at_quantile(p));
        let served: u64 = stations.iter().map(|s| s.served).sum();
        let share = stations
            .iter()
            .map(|s| s.served as f64 / served.max(1) as f64)
            .collect();
        let span = (window.1 - window.0) as f64 * stations.len() as f64;
        let mut queue_tail: Vec<f64> = occupancy
            .iter()
            .rev()
            .scan(0u128, |acc, &x| {
                *acc += x;
                Some(*acc as f64 / span.max(1.0))
            })
            .collect();
        queue_tail.reverse();
        Report {
            policy: if config.oracle {
                "oracle".to_string()
            } else {
                config.policy.name().to_string()
            },
            members: stations.len(),
            balancers: config.balancers.max(1),
            load: config.load(),
            jobs: hist.len(),
            mean: sums.ns.iter().sum::<u128>() as f64 / NS / hist.len().max(1) as f64,
            mean_ci: batch_ci(sums),
            p50: q(0.5),
            p99: q(0.99),
            p999: q(0.999),
            max: secs(hist.max()),
            errors: errors as f64 / hist.len().max(1) as f64,
            over_1s: hist.count_between((NS * 1.001) as u64, u64::MAX) as f64
                / hist.len().max(1) as f64,
            share,
            max_queue: stations.iter().map(|s| s.max_len).max().unwrap_or(0),
            queue_tail,
            duration: secs(end),
            events,
        }
    }

    /// Time-average fraction of members with at least `k` jobs (0 past the longest queue seen).
    pub fn tail(&self, k: usize) -> f64 {
        self.queue_tail.get(k).copied().unwrap_or(0.0)
    }

    /// Smallest and largest member share.
    pub fn share_range(&self) -> (f64, f64) {
        let min = self.share.iter().copied().fold(f64::INFINITY, f64::min);
        let max = self.share.iter().copied().fold(0.0, f64::max);
        (min, max)
    }
}

/// Batch-means 95% half-width of the mean, seconds.
fn batch_ci(sums: &Sums) -> f64 {
    let means: Vec<f64> = (0..BATCHES)
        .filter(|&b| sums.count[b] > 0)
        .map(|b| sums.ns[b] as f64 / NS / sums.count[b] as f64)
        .collect();
    if means.len() < BATCHES {
        return f64::NAN;
    }
    let n = means.len() as f64;
    let m = means.iter().sum::<f64>() / n;
    let var = means.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
    T95 * (var / n).sqrt()
}

impl fmt::Display for Report {
    /// A markdown summary: one table of the sojourn statistics, then shares and queue tail.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "policy {} | {} members | {} balancer(s) | load {:.3} | {} jobs | {:.0} s virtual | {} events\n",
            self.policy,
            self.members,
            self.balancers,
            self.load,
            self.jobs,
            self.duration,
            self.events
        )?;
        writeln!(f, "| mean | 95% CI | p50 | p99 | p99.9 | max | max queue |")?;
        writeln!(f, "|---|---|---|---|---|---|---|")?;
        writeln!(
            f,
            "| {:.4} | +-{:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {} |\n",
            self.mean, self.mean_ci, self.p50, self.p99, self.p999, self.max, self.max_queue
        )?;
        let (lo, hi) = self.share_range();
        let even = 1.0 / self.members as f64;
        writeln!(
            f,
            "member share: min {:.4}, max {:.4} (even: {even:.4})",
            lo, hi
        )?;
        if self.members <= 10 {
            let shares: Vec<String> = self.share.iter().map(|s| format!("{s:.4}")).collect();
            writeln!(f, "shares: {}", shares.join(" "))?;
        }
        write!(f, "P(Q >= k), k = 1..:")?;
        for k in 1..self.queue_tail.len().min(9) {
            write!(f, " {:.3e}", self.tail(k))?;
        }
        writeln!(f)
    }
}
