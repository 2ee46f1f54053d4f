//! One monotonic time scale for the whole process, in nanoseconds, so times can live in atomics.
//!
//! Member health keeps instants (ejected until, up since) in `AtomicU64`s; they are nanoseconds
//! since a process-wide epoch fixed at the first call. Callers that hold an `Instant` (the proxy,
//! tokio's clock via `into_std`) convert it with [`nanos`]; pure code takes `now` as a parameter so
//! tests can run on any clock. Reading the clock is not I/O: this keeps drover-core pure.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

static EPOCH: OnceLock<Instant> = OnceLock::new();

fn epoch() -> Instant {
    *EPOCH.get_or_init(Instant::now)
}

/// Where the scale starts: an hour after 0, so that "a while ago" (up to an hour before the epoch)
/// is still a valid time, and 0 stays free to mean "never".
const ORIGIN: u64 = 3_600 * 1_000_000_000;

/// `at` on the process time scale. Instants more than an hour before the epoch map to 1.
pub fn nanos(at: Instant) -> u64 {
    let e = epoch();
    if at >= e {
        let ns = u64::try_from((at - e).as_nanos()).unwrap_or(u64::MAX - ORIGIN);
        ORIGIN + ns.min(u64::MAX - ORIGIN)
    } else {
        let before = u64::try_from((e - at).as_nanos()).unwrap_or(u64::MAX);
        ORIGIN.saturating_sub(before).max(1)
    }
}

/// Now, on the process time scale.
pub fn now() -> u64 {
    epoch();
    nanos(Instant::now())
}

/// A duration in the same unit, saturating.
pub fn span(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_and_never_zero() {
        let a = now();
        let b = nanos(Instant::now() + Duration::from_millis(5));
        assert!(a >= ORIGIN && b >= a + 5_000_000);
        assert_eq!(nanos(epoch() - Duration::from_secs(7_200)), 1);
        assert_eq!(span(Duration::from_secs(2)), 2_000_000_000);
    }
}
