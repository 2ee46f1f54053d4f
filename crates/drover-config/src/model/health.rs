//! The validated health model of a farm: active checks ([`Check`]), agent checks
//! ([`AgentCheck`]), passive ejection ([`Passive`]) and the retry rules ([`RetryOn`],
//! [`RetryBudget`]). Parsed in `health.rs`, `agent.rs`, `passive.rs` and `retry.rs`; read by
//! drover-health (checks, agent checks, ejection) and drover-proxy (retries).

use std::time::Duration;

use regex::Regex;

/// `retry_on`: the failures after which a request is tried on another member (at most `retries`
/// times, within the `retry_budget`). A request that was never sent (connect failure) is always
/// retried, whatever the method; the others only for idempotent methods unless the route says
/// `retry_non_idempotent = true`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryOn {
    /// `"reset"`: the member closed or reset the connection before a response head.
    pub reset: bool,
    /// `"timeout"`: no response head within `first_byte_timeout`.
    pub timeout: bool,
    /// `"503"`, `"5xx"`, ...: a response with one of these statuses is discarded and the request
    /// retried. Inclusive ranges within 500 to 599, sorted, not overlapping.
    pub statuses: Vec<(u16, u16)>,
}

impl RetryOn {
    /// The words `retry_on` accepts besides a status (500 to 599), for messages.
    pub const WORDS: &'static [&'static str] = &["connect", "reset", "timeout", "5xx"];

    /// Whether a response with `status` is discarded and retried.
    pub fn status(&self, status: u16) -> bool {
        in_ranges(&self.statuses, status)
    }
}

impl Default for RetryOn {
    /// `["connect", "reset", "timeout"]`.
    fn default() -> Self {
        RetryOn {
            reset: true,
            timeout: true,
            statuses: Vec::new(),
        }
    }
}

/// Bounds the retries of a whole farm, so that a farm-wide outage cannot multiply the load: over
/// the last 10 s, retries may be at most `ratio` x requests, plus `floor_per_sec` per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryBudget {
    /// `retry_budget`: `"20%"` = 0.2; 0.0 to 1.0. Default 0.2.
    pub ratio: f64,
    /// `retry_budget_floor`: retries per second always allowed on top of the ratio. Default 10.
    pub floor_per_sec: u32,
}

impl Default for RetryBudget {
    fn default() -> Self {
        RetryBudget {
            ratio: 0.2,
            floor_per_sec: 10,
        }
    }
}

/// An active health check: `[farm.<name>.check]`, or a member's `check = { ... }` merged over it.
/// A member goes down after `fall` failed checks in a row and up after `rise` passed ones.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    /// `type`: "http" (the default) or "tcp", with the HTTP request and expectations.
    pub kind: CheckKind,
    /// `port`: check this port on the member's host instead of the member's port. Default none.
    pub port: Option<u16>,
    /// `interval`: time between checks while the member is up. Default 2s, more than 0.
    pub interval: Duration,
    /// `down_interval`: time between checks while the member is down. Default `interval`.
    pub down_interval: Duration,
    /// `jitter`: each wait is `interval` ± `jitter` x `interval`, so checks of many members
    /// spread out. `"10%"` = 0.1; 0.0 to 0.5. Default 0.1.
    pub jitter: f64,
    /// `timeout`: a check that has not passed after this long failed. Default 1s; at most
    /// `interval` and `down_interval`.
    pub timeout: Duration,
    /// `rise`: passed checks in a row that bring a down member up. Default 2, at least 1.
    pub rise: u32,
    /// `fall`: failed checks in a row that take an up member down. Default 3, at least 1.
    pub fall: u32,
}

impl Check {
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(2);
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
    pub const DEFAULT_JITTER: f64 = 0.1;
    pub const DEFAULT_RISE: u32 = 2;
    pub const DEFAULT_FALL: u32 = 3;
}

impl Default for Check {
    /// What `[farm.<name>.check]` with no keys means: `GET /` every 2s, expecting 200 to 399.
    fn default() -> Self {
        Check {
            kind: CheckKind::Http(HttpCheck::default()),
            port: None,
            interval: Check::DEFAULT_INTERVAL,
            down_interval: Check::DEFAULT_INTERVAL,
            jitter: Check::DEFAULT_JITTER,
            timeout: Check::DEFAULT_TIMEOUT,
            rise: Check::DEFAULT_RISE,
            fall: Check::DEFAULT_FALL,
        }
    }
}

/// `type` of a check.
#[derive(Debug, Clone, PartialEq)]
pub enum CheckKind {
    /// `type = "tcp"`: passes when a connection opens.
    Tcp,
    /// `type = "http"`: passes when the answer to one HTTP/1.1 request meets the expectations.
    Http(HttpCheck),
}

/// The request an HTTP check sends and what the answer must be to pass.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpCheck {
    /// `method`: an HTTP token, sent as written (methods are case-sensitive). Default "GET".
    pub method: String,
    /// `path`: the request target; starts with "/", may carry a query. Default "/".
    pub path: String,
    /// `host`: the Host header. Default `None` = the member's address.
    pub host: Option<String>,
    /// `expect_status`: statuses that pass, inclusive ranges within 100 to 599, sorted, not
    /// overlapping. Default 200 to 399.
    pub expect_status: Vec<(u16, u16)>,
    /// `expect_body`: a substring the body must contain (ldirectord's `receive`). Default none.
    pub expect_body: Option<String>,
    /// `expect_body_regex`: a regex the body must match. Default none.
    pub expect_body_regex: Option<BodyRegex>,
    /// `max_body`: how many bytes of the body are read and searched. Default 64KiB.
    pub max_body: usize,
    /// `reuse_connection`: keep the connection open from one check to the next (HTTP/1.1
    /// keep-alive, Envoy's `reuse_connection`) instead of one connection per check. Default true.
    pub reuse_connection: bool,
}

impl HttpCheck {
    pub const DEFAULT_MAX_BODY: usize = 64 * 1024;

    /// Whether an answer with `status` passes (the body expectations aside).
    pub fn status_passes(&self, status: u16) -> bool {
        in_ranges(&self.expect_status, status)
    }
}

impl Default for HttpCheck {
    fn default() -> Self {
        HttpCheck {
            method: "GET".to_owned(),
            path: "/".to_owned(),
            host: None,
            expect_status: vec![(200, 399)],
            expect_body: None,
            expect_body_regex: None,
            max_body: HttpCheck::DEFAULT_MAX_BODY,
            reuse_connection: true,
        }
    }
}

/// A compiled regex compared by its source text: `regex::Regex` has no `PartialEq`, and two
/// regexes written the same are the same check.
#[derive(Debug, Clone)]
pub struct BodyRegex(pub Regex);

impl PartialEq for BodyRegex {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl std::ops::Deref for BodyRegex {
    type Target = Regex;
    fn deref(&self) -> &Regex {
        &self.0
    }
}

/// `[farm.<name>.passive]`: members ejected (taken out for a while) on the failures of real
/// requests: after `consecutive_failures` in a row, or as error-rate outliers.
#[derive(Debug, Clone, PartialEq)]
pub struct Passive {
    /// `consecutive_failures`: failures in a row that eject a member; 0 = off. Default 5.
    pub consecutive_failures: u32,
    /// `count`: which failures count, for both rules. Default connect, reset, timeout, 5xx.
    pub count: FailureKinds,
    /// `ejection_time`: the first ejection's length; it doubles with each consecutive ejection.
    /// Default 10s.
    pub ejection_time: Duration,
    /// `max_ejection_time`: the doubling stops here; at least `ejection_time`. Default 5m.
    pub max_ejection_time: Duration,
    /// `max_ejected`: share of the farm's members that may be ejected at once, 0.0 to 1.0 (see
    /// [`Passive::max_ejected_members`]). Default 0.5.
    pub max_ejected: f64,
    /// `outlier_factor`: eject a member whose error rate over `outlier_interval` is more than
    /// this many times the farm's; 0 = off. Default 0.
    pub outlier_factor: f64,
    /// `outlier_interval`: the window error rates are measured over. Default 10s.
    pub outlier_interval: Duration,
    /// `outlier_min_requests`: members with fewer requests in the window are not judged. Default 20.
    pub outlier_min_requests: u32,
    /// `outlier_min_error_rate`: below this error rate (0.0 to 1.0) no member is an outlier.
    /// Default 0.1.
    pub outlier_min_error_rate: f64,
}

impl Passive {
    /// How many of a farm's `members` may be ejected at once: `max_ejected` x `members` rounded
    /// down, but at least one when the farm has two or more members and `max_ejected` is not 0.
    pub fn max_ejected_members(&self, members: usize) -> usize {
        // Truncation is the rounding down; the share is within 0.0..=1.0, so it fits.
        let share = (self.max_ejected * members as f64).floor() as usize;
        if members >= 2 && self.max_ejected > 0.0 {
            share.max(1)
        } else {
            share
        }
    }
}

impl Default for Passive {
    fn default() -> Self {
        Passive {
            consecutive_failures: 5,
            count: FailureKinds::default(),
            ejection_time: Duration::from_secs(10),
            max_ejection_time: Duration::from_secs(300),
            max_ejected: 0.5,
            outlier_factor: 0.0,
            outlier_interval: Duration::from_secs(10),
            outlier_min_requests: 20,
            outlier_min_error_rate: 0.1,
        }
    }
}

/// Which failures of a request count against its member (`passive.count`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureKinds {
    /// `"connect"`: the connection could not be opened.
    pub connect: bool,
    /// `"reset"`: closed or reset before a response head.
    pub reset: bool,
    /// `"timeout"`: no response head within `first_byte_timeout`.
    pub timeout: bool,
    /// `"5xx"`, `"503"`, ...: responses with these statuses. Inclusive ranges within 500 to 599,
    /// sorted, not overlapping.
    pub statuses: Vec<(u16, u16)>,
}

impl FailureKinds {
    /// Whether a response with `status` counts as a failure.
    pub fn status(&self, status: u16) -> bool {
        in_ranges(&self.statuses, status)
    }
}

impl Default for FailureKinds {
    /// `["connect", "reset", "timeout", "5xx"]`.
    fn default() -> Self {
        FailureKinds {
            connect: true,
            reset: true,
            timeout: true,
            statuses: vec![(500, 599)],
        }
    }
}

fn in_ranges(ranges: &[(u16, u16)], status: u16) -> bool {
    ranges.iter().any(|&(lo, hi)| (lo..=hi).contains(&status))
}

/// An HAProxy-style agent check: `[farm.<name>.agent]`, or a member's `agent = { ... }` merged
/// over it. Every `interval` drover connects to the agent's TCP `port` on the member's host,
/// sends `send` if set, and reads one reply line (`75%`, `drain`, `down # why`, ...) that it
/// applies to the member (see docs/reports.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentCheck {
    /// `port`: the agent's TCP port on the member's host. Required.
    pub port: u16,
    /// `interval`: time between two reads of the agent. Default 2s, more than 0.
    pub interval: Duration,
    /// `timeout`: connect, send and reply must be done within this. Default 1s; at most
    /// `interval`.
    pub timeout: Duration,
    /// `send`: a string written after connecting, before the reply is read (HAProxy's
    /// `agent-send`), e.g. `"ready\n"`. Default none.
    pub send: Option<String>,
}

impl AgentCheck {
    pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(2);
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
    /// Longest `send` string, in bytes.
    pub const MAX_SEND: usize = 1024;
}
