//! At most one warning per second per subject (a member, a farm): a dead member under load must
//! not turn into a log line per request. The next line that gets through says how many were held
//! back.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

#[derive(Debug, Default)]
pub struct LogLimit {
    /// Milliseconds since process start of the last line let through (0 = never).
    last: AtomicU64,
    suppressed: AtomicU64,
}

fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

impl LogLimit {
    /// `Some(held back since the last line)` when a line may be written now, else `None`.
    pub fn allow(&self) -> Option<u64> {
        self.allow_at(now_ms())
    }

    fn allow_at(&self, now: u64) -> Option<u64> {
        let last = self.last.load(Relaxed);
        if last != 0 && now < last + 1_000 {
            self.suppressed.fetch_add(1, Relaxed);
            return None;
        }
        if self
            .last
            .compare_exchange(last, now, Relaxed, Relaxed)
            .is_err()
        {
            self.suppressed.fetch_add(1, Relaxed);
            return None;
        }
        Some(self.suppressed.swap(0, Relaxed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_second_and_the_rest_counted() {
        let l = LogLimit::default();
        assert_eq!(l.allow_at(5), Some(0));
        assert_eq!(l.allow_at(6), None);
        assert_eq!(l.allow_at(1_004), None);
        assert_eq!(l.allow_at(1_005), Some(2));
        assert_eq!(l.allow_at(1_006), None);
    }
}
