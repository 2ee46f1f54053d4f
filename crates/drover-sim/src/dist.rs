//! Service-time distributions and the few random draws the simulator needs.
//!
//! Where it sits: a simulated member ([`crate::member`]) draws each job's service time from its
//! [`Service`] when the job starts. The draw uses the job's own seed (given at arrival), not the
//! member's, so two policies that send the same job to equally configured members give it the same
//! service time (common random numbers: comparisons between policies are less noisy).
//!
//! Key type: [`Service`], in seconds of work at speed 1. All randomness comes from
//! [`drover_core::Rng`] (wyrand), the generator the policies use, so a run is reproducible from its
//! seed alone.

use drover_core::Rng;

/// A service-time distribution, in seconds of work at speed 1.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Service {
    /// Exponential with this mean (the "M" of M/M/1).
    Exponential { mean: f64 },
    /// Lognormal with this mean and coefficient of variation (standard deviation / mean).
    LogNormal { mean: f64, cv: f64 },
    /// Always exactly this long.
    Deterministic { value: f64 },
}

impl Service {
    /// The mean service time.
    pub fn mean(&self) -> f64 {
        match *self {
            Service::Exponential { mean } | Service::LogNormal { mean, .. } => mean,
            Service::Deterministic { value } => value,
        }
    }

    /// One service time.
    pub fn sample(&self, rng: &mut Rng) -> f64 {
        match *self {
            Service::Exponential { mean } => -mean * unit_open(rng).ln(),
            Service::LogNormal { mean, cv } => {
                // ln X ~ N(m, s^2) with s^2 = ln(1 + cv^2), m = ln(mean) - s^2/2, so E[X] = mean.
                let s2 = (1.0 + cv * cv).ln();
                let m = mean.ln() - s2 / 2.0;
                (m + s2.sqrt() * normal(rng)).exp()
            }
            Service::Deterministic { value } => value,
        }
    }
}

/// Uniform in (0, 1]: never 0, so its logarithm is finite.
#[inline]
pub fn unit_open(rng: &mut Rng) -> f64 {
    ((rng.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
}

/// Exponential with rate `rate`.
#[inline]
pub fn exponential(rng: &mut Rng, rate: f64) -> f64 {
    -unit_open(rng).ln() / rate
}

/// Standard normal (Box-Muller; the second value is dropped to keep draws independent of history).
pub fn normal(rng: &mut Rng) -> f64 {
    let (u, v) = (unit_open(rng), unit_open(rng));
    (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
}

/// SplitMix64: derives independent seeds for the sub-streams of one run from its seed.
pub fn split(seed: u64, stream: u64) -> u64 {
    let mut z = seed ^ stream.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moments(s: Service, n: usize) -> (f64, f64) {
        let mut rng = Rng::new(5);
        let xs: Vec<f64> = (0..n).map(|_| s.sample(&mut rng)).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        (mean, var.sqrt() / mean)
    }

    #[test]
    fn means_and_cvs_match() {
        let (m, cv) = moments(Service::Exponential { mean: 2.0 }, 200_000);
        assert!(
            (m - 2.0).abs() < 0.02 && (cv - 1.0).abs() < 0.02,
            "{m} {cv}"
        );
        let (m, cv) = moments(
            Service::LogNormal {
                mean: 0.02,
                cv: 1.0,
            },
            200_000,
        );
        assert!(
            (m - 0.02).abs() < 0.0004 && (cv - 1.0).abs() < 0.05,
            "{m} {cv}"
        );
        let (m, cv) = moments(Service::Deterministic { value: 3.0 }, 10);
        assert_eq!((m, cv), (3.0, 0.0));
    }

    #[test]
    fn split_streams_differ() {
        assert_ne!(split(1, 0), split(1, 1));
        assert_ne!(split(1, 0), split(2, 0));
        assert_eq!(split(7, 3), split(7, 3));
    }
}
