//! How a test member behaves: the builder tests fill in before `TestMember::start`.
//!
//! Key types: [`MemberConfig`] (name, latency, status, failure share, hang, cookies, extra
//! headers, seed) and [`Latency`] (the delay added before every answer). Nothing here does I/O;
//! `behaviour.rs` turns a config into the run-time state a member reads on each request, and
//! validates it there, so a bad value is reported by `start` as `io::ErrorKind::InvalidInput`.

use std::time::Duration;

/// Delay a member waits before answering each request (after the request head arrived).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Latency {
    /// Answer at once.
    #[default]
    None,
    /// Always wait this long.
    Fixed(Duration),
    /// Wait a duration drawn uniformly from `[low, high)` (the bounds may be given either way).
    Uniform(Duration, Duration),
    /// Wait a duration drawn from an exponential distribution with this mean, capped at ten
    /// times the mean so one unlucky draw cannot stall a test.
    Exponential {
        /// Mean delay.
        mean: Duration,
    },
}

impl Latency {
    /// The delay for one request, given `u` drawn uniformly from `[0, 1)`.
    pub(crate) fn sample(self, u: f64) -> Duration {
        // Clamp so a caller's out-of-range draw can never make `mul_f64` panic.
        let u = if u.is_finite() {
            u.clamp(0.0, 1.0)
        } else {
            0.0
        };
        match self {
            Latency::None => Duration::ZERO,
            Latency::Fixed(d) => d,
            Latency::Uniform(a, b) => {
                let (low, high) = if a <= b { (a, b) } else { (b, a) };
                low + (high - low).mul_f64(u)
            }
            Latency::Exponential { mean } => {
                // Inverse CDF: -ln(1 - u) is in [0, +inf) because 1 - u is in (0, 1].
                let factor = (-(1.0 - u).ln()).min(10.0);
                mean.mul_f64(factor.max(0.0))
            }
        }
    }
}

/// Configuration of one [`TestMember`](crate::TestMember); build it with [`MemberConfig::new`]
/// and the builder methods.
///
/// `hang`, `latency` and `fail_ratio` are the member's health and apply to every route; `status`
/// is the status of the default route (and of `/slow`); cookies and extra headers are sent on
/// every HTTP answer (not on the WebSocket `101`).
#[derive(Clone, Debug)]
pub struct MemberConfig {
    pub(crate) name: String,
    pub(crate) latency: Latency,
    pub(crate) status: u16,
    pub(crate) fail_ratio: f64,
    pub(crate) hang: bool,
    pub(crate) set_cookies: Vec<String>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) seed: Option<u64>,
    pub(crate) session_cookie: Option<String>,
}

impl MemberConfig {
    /// A healthy member called `name`: no latency, `200`, no failures, no cookies.
    pub fn new(name: impl Into<String>) -> Self {
        MemberConfig {
            name: name.into(),
            latency: Latency::None,
            status: 200,
            fail_ratio: 0.0,
            hang: false,
            set_cookies: Vec::new(),
            headers: Vec::new(),
            seed: None,
            session_cookie: None,
        }
    }

    /// The member's name: sent as `X-Member` and at the start of every body.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Delay before every answer.
    pub fn latency(mut self, latency: Latency) -> Self {
        self.latency = latency;
        self
    }

    /// Status of the default route (200..=999; `start` rejects anything else).
    pub fn status(mut self, status: u16) -> Self {
        self.status = status;
        self
    }

    /// Share of requests (0.0..=1.0) answered `500` instead, on every route.
    pub fn fail_ratio(mut self, ratio: f64) -> Self {
        self.fail_ratio = ratio;
        self
    }

    /// Read each request but never answer it (the connection stays open).
    pub fn hang(mut self, hang: bool) -> Self {
        self.hang = hang;
        self
    }

    /// Add a `Set-Cookie` line, e.g. `"JSESSIONID=abc.m1; Path=/"`.
    pub fn set_cookie(mut self, value: impl Into<String>) -> Self {
        self.set_cookies.push(value.into());
        self
    }

    /// Act like an application with sessions: a request without cookie `name` starts a session,
    /// answered with `Set-Cookie: <name>=<member>-<n>; Path=/` (n counts this member's sessions);
    /// a request that has the cookie gets no new one.
    pub fn session_cookie(mut self, name: impl Into<String>) -> Self {
        self.session_cookie = Some(name.into());
        self
    }

    /// Add a response header. The first header of a name replaces any default the member sets
    /// (such as `Content-Type`); later ones of the same name are added beside it.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Seed of the member's random draws (latency, failures). Defaults to a hash of the name,
    /// so runs are reproducible and members with different names draw differently.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn none_and_fixed_ignore_the_draw() {
        assert_eq!(Latency::None.sample(0.7), Duration::ZERO);
        assert_eq!(Latency::Fixed(5 * MS).sample(0.0), 5 * MS);
        assert_eq!(Latency::Fixed(5 * MS).sample(0.99), 5 * MS);
    }

    #[test]
    fn uniform_stays_within_bounds_given_either_way() {
        for l in [
            Latency::Uniform(10 * MS, 20 * MS),
            Latency::Uniform(20 * MS, 10 * MS),
        ] {
            assert_eq!(l.sample(0.0), 10 * MS);
            assert_eq!(l.sample(0.5), 15 * MS);
            assert!(l.sample(0.999_999) < 20 * MS);
        }
    }

    #[test]
    fn exponential_is_capped_at_ten_means() {
        let l = Latency::Exponential { mean: 10 * MS };
        assert_eq!(l.sample(0.0), Duration::ZERO);
        assert_eq!(l.sample(1.0 - f64::EPSILON), 100 * MS);
        assert_eq!(l.sample(1.0), 100 * MS);
    }

    #[test]
    fn exponential_mean_is_close_to_configured() {
        let l = Latency::Exponential { mean: 10 * MS };
        let n = 10_000;
        // Midpoint draws over [0, 1) approximate the expectation deterministically.
        let total: Duration = (0..n).map(|i| l.sample((i as f64 + 0.5) / n as f64)).sum();
        let mean = total.as_secs_f64() / n as f64;
        // The cap at 10x trims the tail by e^-10 of the mean: negligible.
        assert!((mean - 0.010).abs() < 0.0005, "mean {mean}");
    }

    #[test]
    fn out_of_range_draws_do_not_panic() {
        let l = Latency::Uniform(MS, 2 * MS);
        assert_eq!(l.sample(f64::NAN), MS);
        assert_eq!(l.sample(-3.0), MS);
        assert_eq!(l.sample(7.0), 2 * MS);
    }
}
