//! A member's latency histogram: fixed buckets of atomic counters, for the
//! `drover_member_latency_seconds` histogram of `GET /metrics`.
//!
//! Where it sits: every [`MemberStats`](crate::MemberStats) carries one; the proxy records into it
//! through [`MemberStats::finish_at`](crate::MemberStats::finish_at) once per request that got a
//! response head (the same sample the latency EWMA and Peak-EWMA take: time to the response head),
//! and the admin API reads it on each scrape.
//!
//! Concurrency and cost: recording is two relaxed `fetch_add`s (the bucket and the sum) after a
//! search of a 13-entry constant table; no lock, no allocation. The count is not kept apart: it is
//! the sum of the buckets, so a scrape always sees a count equal to its `+Inf` bucket. A scrape
//! reads the buckets one by one while requests go on, so the sum may be a few samples ahead of or
//! behind the buckets, as with any lock-free histogram (Prometheus' own clients included).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

const MS: u64 = 1_000_000;

/// Upper bounds of the finite buckets, in nanoseconds (the last bucket, `+Inf`, has none).
pub const LATENCY_BOUNDS_NS: [u64; 13] = [
    MS,
    2_500_000,
    5 * MS,
    10 * MS,
    25 * MS,
    50 * MS,
    100 * MS,
    250 * MS,
    500 * MS,
    1_000 * MS,
    2_500 * MS,
    5_000 * MS,
    10_000 * MS,
];

/// Buckets, `+Inf` included.
pub const LATENCY_BUCKETS: usize = LATENCY_BOUNDS_NS.len() + 1;

/// Fixed-bucket latency histogram. Bucket `i` counts samples in `(bound[i-1], bound[i]]`, as
/// Prometheus' `le` does (a sample equal to a bound falls in that bound's bucket).
#[derive(Debug, Default)]
pub struct LatencyHistogram {
    buckets: [AtomicU64; LATENCY_BUCKETS],
    /// Sum of the samples in nanoseconds (wraps after 584 years of summed latency).
    sum_ns: AtomicU64,
}

/// What a scrape reads: per-bucket (not cumulative) counts and the sum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatencySnapshot {
    pub buckets: [u64; LATENCY_BUCKETS],
    pub sum_ns: u64,
}

impl LatencySnapshot {
    /// Samples taken: the sum of the buckets.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// The `q` quantile (0 to 1) in nanoseconds, estimated as Prometheus' `histogram_quantile`
    /// does: linearly within the bucket that holds it (the first bucket starts at 0). A quantile
    /// that falls in `+Inf` answers the last finite bound (10 s): the buckets know no more.
    /// `None` without samples. The admin API's `latency_p50_ms` / `latency_p99_ms`; the dashboard
    /// does the same over bucket deltas in `app.js`.
    pub fn quantile_ns(&self, q: f64) -> Option<f64> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * count as f64;
        let last = LATENCY_BOUNDS_NS[LATENCY_BOUNDS_NS.len() - 1] as f64;
        let mut seen = 0u64;
        for (i, &n) in self.buckets.iter().enumerate() {
            if n == 0 {
                continue;
            }
            let before = seen as f64;
            seen += n;
            if seen as f64 >= rank {
                let Some(&hi) = LATENCY_BOUNDS_NS.get(i) else {
                    return Some(last);
                };
                let lo = if i == 0 { 0 } else { LATENCY_BOUNDS_NS[i - 1] };
                let (lo, hi) = (lo as f64, hi as f64);
                return Some(lo + (hi - lo) * ((rank - before) / n as f64));
            }
        }
        Some(last)
    }
}

impl LatencyHistogram {
    /// Records one sample of `ns` nanoseconds.
    #[inline]
    pub fn record(&self, ns: u64) {
        let i = LATENCY_BOUNDS_NS.partition_point(|&b| b < ns);
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_ns.fetch_add(ns, Relaxed);
    }

    pub fn snapshot(&self) -> LatencySnapshot {
        LatencySnapshot {
            buckets: std::array::from_fn(|i| self.buckets[i].load(Relaxed)),
            sum_ns: self.sum_ns.load(Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_fall_in_the_bucket_of_the_first_bound_at_or_above_them() {
        let h = LatencyHistogram::default();
        for ns in [
            0,
            MS,
            MS + 1,
            2_500_000,
            7 * MS,
            10_000 * MS,
            10_000 * MS + 1,
            u64::MAX / 2,
        ] {
            h.record(ns);
        }
        let s = h.snapshot();
        assert_eq!(s.buckets[0], 2, "0 and exactly 1 ms: le=0.001");
        assert_eq!(
            s.buckets[1], 2,
            "just over 1 ms and exactly 2.5 ms: le=0.0025"
        );
        assert_eq!(s.buckets[3], 1, "7 ms: le=0.01");
        assert_eq!(s.buckets[12], 1, "exactly 10 s: le=10");
        assert_eq!(s.buckets[13], 2, "over 10 s: +Inf");
        assert_eq!(s.count(), 8);
        assert_eq!(
            s.sum_ns,
            MS + MS + 1 + 2_500_000 + 7 * MS + 2 * 10_000 * MS + 1 + u64::MAX / 2
        );
    }

    #[test]
    fn quantiles_interpolate_within_the_bucket_that_holds_them() {
        let h = LatencyHistogram::default();
        assert_eq!(
            h.snapshot().quantile_ns(0.5),
            None,
            "no samples, no quantile"
        );
        // 100 samples: 50 in (5, 10] ms, 49 in (10, 25] ms, 1 over 10 s.
        for _ in 0..50 {
            h.record(7 * MS);
        }
        for _ in 0..49 {
            h.record(20 * MS);
        }
        h.record(20_000 * MS);
        let s = h.snapshot();
        assert_eq!(
            s.quantile_ns(0.5),
            Some(10.0 * MS as f64),
            "the 50th sample ends (5, 10]"
        );
        let p25 = s.quantile_ns(0.25).unwrap();
        assert!(
            (p25 - 7.5 * MS as f64).abs() < 1.0,
            "halfway into (5, 10]: {p25}"
        );
        assert_eq!(s.quantile_ns(0.99), Some(25.0 * MS as f64));
        assert_eq!(
            s.quantile_ns(1.0),
            Some(10_000.0 * MS as f64),
            "+Inf: the last bound"
        );
    }

    #[test]
    fn bounds_increase() {
        assert!(LATENCY_BOUNDS_NS.windows(2).all(|w| w[0] < w[1]));
    }
}
