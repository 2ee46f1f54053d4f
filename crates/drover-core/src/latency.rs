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
    fn bounds_increase() {
        assert!(LATENCY_BOUNDS_NS.windows(2).all(|w| w[0] < w[1]));
    }
}
