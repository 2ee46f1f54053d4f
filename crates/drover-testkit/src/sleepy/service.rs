//! The service-time model of a sleepy member, as pure functions of a seed and a clock offset:
//! what one job costs and when it finishes. No I/O and no shared state, so every rule is tested
//! here exactly, without sockets or timers.
//!
//! - [`draw`]: a job's base service time, lognormal with a mean and a coefficient of variation,
//!   from a 64-bit seed. The same seed gives the same job on every member and for every policy; a
//!   member then multiplies by its speed factor ([`SleepyConfig::speed`](super::SleepyConfig)).
//! - [`degrade_factor`]: `1 + a(n-1) + b n(n-1)` for `n` busy workers.
//! - [`Stall::finish`]: when a job that needs `work` of service, starting at `t0`, is done if every
//!   worker freezes for `length` every `period` (work does not progress during a freeze).
//! - [`Episode`]: a window during which every job started costs a fixed time instead.

use std::time::Duration;

const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

/// splitmix64's output function: a well-mixed 64-bit value from any input.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The `i`-th value of the splitmix64 stream started at `seed`.
pub fn splitmix(seed: u64, i: u64) -> u64 {
    mix(seed.wrapping_add(GOLDEN_GAMMA.wrapping_mul(i.wrapping_add(1))))
}

/// Uniform in `(0, 1)`: 53 bits, never exactly 0 (a logarithm is taken of it).
pub(crate) fn unit(x: u64) -> f64 {
    ((x >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
}

/// A job's base service time from its seed: lognormal with this `mean` and coefficient of
/// variation `cv` (`cv = 0`: always `mean`). Box-Muller over two splitmix64 draws of the seed.
pub fn draw(seed: u64, mean: Duration, cv: f64) -> Duration {
    if cv.is_nan() || cv <= 0.0 || mean.is_zero() {
        return mean;
    }
    let sigma2 = (1.0 + cv * cv).ln();
    let sigma = sigma2.sqrt();
    let mu = mean.as_secs_f64().ln() - sigma2 / 2.0;
    let (u1, u2) = (unit(splitmix(seed, 0)), unit(splitmix(seed, 1)));
    let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    // At most an hour: a draw 20 sigma out must not overflow `Duration`.
    Duration::from_secs_f64((mu + sigma * z).exp().min(3600.0))
}

/// Whether a job with this seed fails, for a failure share `rate`. Uses a draw of the seed that
/// [`draw`] does not use, so failing and service time are independent.
pub fn fails(seed: u64, rate: f64) -> bool {
    rate > 0.0 && unit(splitmix(seed, 2)) < rate
}

/// Service-time multiplier for `n` busy workers (this job included): `1 + a(n-1) + b n(n-1)`.
pub fn degrade_factor(n: u32, a: f64, b: f64) -> f64 {
    let n = f64::from(n.max(1));
    (1.0 + a * (n - 1.0) + b * n * (n - 1.0)).max(0.0)
}

/// Every worker freezes for `length` at each multiple of `period` (from the member's start): the
/// first freeze is `[period, period + length)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stall {
    pub period: Duration,
    pub length: Duration,
}

impl Stall {
    /// True when `t` (time since the member started) falls in a freeze.
    pub fn frozen(&self, t: Duration) -> bool {
        let (p, l) = (self.period.as_nanos(), self.length.as_nanos());
        if p == 0 || l == 0 {
            return false;
        }
        let t = t.as_nanos();
        t >= p && t % p < l
    }

    /// When a job needing `work` of service, starting at `t0`, is done: work progresses only
    /// outside freezes, so a job in service during a freeze is stretched by it.
    pub fn finish(&self, t0: Duration, work: Duration) -> Duration {
        let (p, l) = (self.period.as_nanos(), self.length.as_nanos());
        if p == 0 || l == 0 {
            return t0 + work;
        }
        if l >= p {
            // Frozen for ever once the first freeze starts.
            return if t0.as_nanos() + work.as_nanos() <= p {
                t0 + work
            } else {
                Duration::MAX
            };
        }
        let mut t = t0.as_nanos();
        let mut left = work.as_nanos();
        loop {
            if t >= p && t % p < l {
                t = (t / p) * p + l; // to the end of this freeze
            }
            let next = (t / p + 1) * p; // the next freeze starts here
            if left <= next - t {
                return nanos(t + left);
            }
            left -= next - t;
            t = next;
        }
    }
}

fn nanos(n: u128) -> Duration {
    Duration::new((n / 1_000_000_000) as u64, (n % 1_000_000_000) as u32)
}

/// From `start` (since the member started) for `length`, every job that starts service costs
/// `service` (not scaled by speed or degradation): a member stuck in a slow episode.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Episode {
    pub start: Duration,
    pub length: Duration,
    pub service: Duration,
}

impl Episode {
    pub fn covers(&self, t: Duration) -> bool {
        t >= self.start && t < self.start + self.length
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn same_seed_same_job() {
        for seed in [0, 1, 42, u64::MAX] {
            assert_eq!(draw(seed, 20 * MS, 1.0), draw(seed, 20 * MS, 1.0));
        }
        assert_ne!(draw(1, 20 * MS, 1.0), draw(2, 20 * MS, 1.0));
        assert_eq!(draw(9, 20 * MS, 0.0), 20 * MS);
    }

    #[test]
    fn lognormal_has_the_configured_mean_and_cv() {
        let n = 200_000u64;
        let xs: Vec<f64> = (0..n)
            .map(|i| draw(splitmix(7, i), 20 * MS, 1.0).as_secs_f64())
            .collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        let cv = var.sqrt() / mean;
        assert!((mean - 0.020).abs() < 0.0005, "mean {mean}");
        assert!((cv - 1.0).abs() < 0.1, "cv {cv}");
    }

    #[test]
    fn failures_follow_the_rate() {
        let n = (0..10_000).filter(|&i| fails(splitmix(3, i), 0.2)).count();
        assert!((1_800..2_200).contains(&n), "{n}");
        assert!(!(0..1000).any(|i| fails(i, 0.0)));
    }

    #[test]
    fn degradation_is_quadratic_in_busy_workers() {
        assert_eq!(degrade_factor(1, 0.1, 0.05), 1.0);
        assert!((degrade_factor(2, 0.1, 0.05) - 1.2).abs() < 1e-12);
        // B5 at 8 busy workers: 1 + 0.7 + 2.8 = 4.5 (20 ms -> 90 ms).
        assert!((degrade_factor(8, 0.1, 0.05) - 4.5).abs() < 1e-12);
        assert_eq!(degrade_factor(0, 0.1, 0.05), 1.0);
    }

    #[test]
    fn stall_stretches_jobs_in_service() {
        let s = Stall {
            period: 5000 * MS,
            length: 300 * MS,
        };
        // Before the first freeze: untouched.
        assert_eq!(s.finish(100 * MS, 20 * MS), 120 * MS);
        // Crossing the freeze at 5 s: 10 ms before, then 300 ms frozen, then 10 ms after.
        assert_eq!(s.finish(4990 * MS, 20 * MS), 5310 * MS);
        // Starting inside a freeze: waits for its end.
        assert_eq!(s.finish(5100 * MS, 20 * MS), 5320 * MS);
        // Long jobs cross several freezes.
        assert_eq!(s.finish(Duration::ZERO, 10_000 * MS), 10_600 * MS);
        assert!(s.frozen(10_100 * MS) && !s.frozen(10_300 * MS) && !s.frozen(100 * MS));
        let never = Stall {
            period: Duration::ZERO,
            length: 300 * MS,
        };
        assert_eq!(never.finish(MS, MS), 2 * MS);
    }

    #[test]
    fn episode_window_is_half_open() {
        let e = Episode {
            start: 10_000 * MS,
            length: 30_000 * MS,
            service: 2000 * MS,
        };
        assert!(!e.covers(9_999 * MS) && e.covers(10_000 * MS) && !e.covers(40_000 * MS));
    }
}
