//! Sleepy members: test members that emulate service time by *sleeping* in `c` virtual workers
//! behind a FIFO queue, for the balancing benchmark (`bench/balancing`, crate `drover-bench`).
//!
//! Where it sits: on the upstream side, like [`TestMember`](crate::TestMember), but built to be
//! measured rather than broken. Sleeping instead of burning CPU lets five members with 4-8 workers
//! each share a 2-core machine with drover and the load generator without fighting over the cores,
//! so what a policy is judged on is queueing, not CPU contention.
//!
//! A request: parse `X-Drover-Seed: <u64>` (none: draw one from the member's own seeded stream);
//! if the seed says fail ([`SleepyConfig::fail_rate`]), answer `503` at once; otherwise enter the
//! queue, wait for a free worker slot (tokio's semaphore is FIFO), then sleep the job's service
//! time: lognormal base from the seed ([`service::draw`]) x speed factor x degradation at the
//! number of busy workers when it starts; a slow [`Episode`] replaces it with a fixed time; a
//! [`Stall`] stretches it. The job runs in its own task, so a client that gives up does not free
//! the worker early (a real server would finish the work too). The answer: `200`, body
//! `"<name>\n"`, `X-Member`, `X-Drover-Service: <microseconds spent in service>`, and when ORCA is
//! on, `endpoint-load-metrics: TEXT cpu_utilization=<u>, named_metrics.queue=<q>`.
//!
//! Hidden load ([`Hidden`]): an in-process Poisson stream into the same queue, on and off with a
//! period, seen by nobody but the member's own counters.
//!
//! Shared state: the member's true queue length (waiting + in service, hidden jobs included) is an
//! `Arc<AtomicU32>` ([`SleepyMember::queue`]): the benchmark's oracle reads it directly, the
//! "shared memory" of BALANCING.md. Utilisation is busy workers / `c`, sampled every 10 ms and
//! averaged over the last second.
//!
//! Load reports, each optional: ORCA header (above); an HAProxy agent-check port answering
//! `up NN%` with NN = round(100 x (1 - utilisation)) clamped to 1..=100
//! ([`SleepyConfig::agent`]); pushes every interval to each target's
//! `POST /api/v1/reports` with `{"member": name, "metrics": {"cpu": u, "queue": q}}`, signed with
//! `drover_core::report::push::sign` over a millisecond timestamp ([`Push`]).
//!
//! Concurrency: tokio tasks on the caller's runtime (accept loop, one per connection, one per job,
//! the utilisation sampler, hidden load, agent port, pusher). Counters are relaxed atomics. Dropping
//! the [`SleepyMember`] (or [`SleepyMember::stop`]) ends every task but jobs already in service,
//! which finish their sleep and go.

pub mod report;
mod server;
pub mod service;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};
use std::time::Duration;

pub use service::{Episode, Stall, splitmix};

use server::State;

/// Request header carrying the job's seed.
pub const X_DROVER_SEED: &str = "x-drover-seed";
/// Response header: microseconds the job spent in service (after waiting for a worker).
pub const X_DROVER_SERVICE: &str = "x-drover-service";

/// Hidden load: a Poisson stream of `rate` jobs/s into the member's own queue, `on` for a while
/// then `off` for a while, starting "on" when the member starts. `off = 0`: always on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Hidden {
    pub rate: f64,
    pub on: Duration,
    pub off: Duration,
}

/// Pushed load reports: every `interval`, to each target admin listener.
#[derive(Clone, Debug, PartialEq)]
pub struct Push {
    pub targets: Vec<SocketAddr>,
    pub secret: Vec<u8>,
    pub interval: Duration,
}

/// Configuration of one [`SleepyMember`]; build with [`SleepyConfig::new`] and the builder methods.
#[derive(Clone, Debug)]
pub struct SleepyConfig {
    pub(crate) name: String,
    pub(crate) workers: u32,
    pub(crate) mean: Duration,
    pub(crate) cv: f64,
    pub(crate) speed: f64,
    pub(crate) stall: Option<Stall>,
    pub(crate) degrade: (f64, f64),
    pub(crate) fail_rate: f64,
    pub(crate) episodes: Vec<Episode>,
    pub(crate) hidden: Option<Hidden>,
    pub(crate) orca: bool,
    pub(crate) agent: bool,
    pub(crate) push: Option<Push>,
    pub(crate) seed: u64,
}

impl SleepyConfig {
    /// Four workers, lognormal service with mean 20 ms and CV 1, normal speed, no pathology, no
    /// reports; seed from the name.
    pub fn new(name: impl Into<String>) -> Self {
        let name = name.into();
        let seed = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        SleepyConfig {
            name,
            workers: 4,
            mean: Duration::from_millis(20),
            cv: 1.0,
            speed: 1.0,
            stall: None,
            degrade: (0.0, 0.0),
            fail_rate: 0.0,
            episodes: Vec::new(),
            hidden: None,
            orca: false,
            agent: false,
            push: None,
            seed,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The number of virtual workers `c`.
    pub fn worker_count(&self) -> u32 {
        self.workers
    }

    /// Mean service time at normal load: mean x speed factor (no degradation, stall or episode).
    pub fn mean_service(&self) -> Duration {
        self.mean.mul_f64(self.speed)
    }

    /// Expected time to answer one more job that finds `q` jobs in the member (waiting + in
    /// service), from the config alone: service S = mean x speed x degradation at
    /// n = min(q + 1, c) busy workers; if a worker is free (q < c) that is all, otherwise the job
    /// also waits for q + 1 - c departures, one every S / c. Stalls, episodes and hidden load are
    /// not foreseen. In seconds. The benchmark's `oracle-wait` picks the member minimising it.
    pub fn expected_response(&self, q: u32) -> f64 {
        let c = self.workers.max(1);
        let n = q.saturating_add(1).min(c);
        let (a, b) = self.degrade;
        let s = self.mean.as_secs_f64() * self.speed * service::degrade_factor(n, a, b);
        if q < c {
            s
        } else {
            s * (1.0 + f64::from(q + 1 - c) / f64::from(c))
        }
    }

    /// Virtual workers `c` (at least 1): jobs in service at once.
    pub fn workers(mut self, c: u32) -> Self {
        self.workers = c;
        self
    }

    /// Mean and coefficient of variation of the lognormal base service time (`cv = 0`: fixed).
    pub fn service(mut self, mean: Duration, cv: f64) -> Self {
        self.mean = mean;
        self.cv = cv;
        self
    }

    /// Service-time multiplier: 3.0 is three times slower.
    pub fn speed(mut self, factor: f64) -> Self {
        self.speed = factor;
        self
    }

    /// Every worker freezes for `length` every `period`.
    pub fn stall(mut self, period: Duration, length: Duration) -> Self {
        self.stall = Some(Stall { period, length });
        self
    }

    /// Slower as concurrency rises: `S(n) = S x (1 + a(n-1) + b n(n-1))`, n = busy workers.
    pub fn degrade(mut self, a: f64, b: f64) -> Self {
        self.degrade = (a, b);
        self
    }

    /// Share of requests (by seed) answered `503` at once, without entering the queue.
    pub fn fail_rate(mut self, rate: f64) -> Self {
        self.fail_rate = rate;
        self
    }

    /// From `start` after the member starts, for `length`, every job costs `service`.
    pub fn episode(mut self, start: Duration, length: Duration, service: Duration) -> Self {
        self.episodes.push(Episode {
            start,
            length,
            service,
        });
        self
    }

    /// Hidden Poisson load of `rate` jobs/s, on for `on` then off for `off`, repeating.
    pub fn hidden(mut self, rate: f64, on: Duration, off: Duration) -> Self {
        self.hidden = Some(Hidden { rate, on, off });
        self
    }

    /// Send the ORCA `endpoint-load-metrics` header on each answer.
    pub fn orca(mut self, on: bool) -> Self {
        self.orca = on;
        self
    }

    /// Serve an HAProxy agent-check port (on 127.0.0.1, port chosen by the system).
    pub fn agent(mut self, on: bool) -> Self {
        self.agent = on;
        self
    }

    /// Push signed load reports.
    pub fn push(mut self, push: Push) -> Self {
        self.push = Some(push);
        self
    }

    /// Seed of the member's own draws (requests without a seed header, hidden load).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    fn validate(&self) -> io::Result<()> {
        let bad = |what: String| {
            Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("sleepy member {:?}: {what}", self.name),
            ))
        };
        if self.workers == 0 {
            return bad("workers must be at least 1".into());
        }
        if !(self.cv >= 0.0 && self.cv.is_finite()) {
            return bad(format!("cv {} must be finite and >= 0", self.cv));
        }
        if !(self.speed > 0.0 && self.speed.is_finite()) {
            return bad(format!("speed {} must be finite and > 0", self.speed));
        }
        if !(0.0..=1.0).contains(&self.fail_rate) {
            return bad(format!("fail_rate {} is outside 0..=1", self.fail_rate));
        }
        let (a, b) = self.degrade;
        if !(a >= 0.0 && b >= 0.0 && a.is_finite() && b.is_finite()) {
            return bad(format!("degrade ({a}, {b}) must be finite and >= 0"));
        }
        if let Some(h) = self.hidden
            && !(h.rate >= 0.0 && h.rate.is_finite())
        {
            return bad(format!("hidden rate {} must be finite and >= 0", h.rate));
        }
        if self.push.as_ref().is_some_and(|p| p.interval.is_zero()) {
            return bad("push interval must be more than 0".into());
        }
        if http::HeaderValue::from_str(&self.name).is_err() {
            return bad("the name is not a valid header value".into());
        }
        Ok(())
    }
}

/// A cheap, cloneable view of a running member's live state, for an oracle that reads it on
/// every request (it keeps the member's state alive, not its tasks).
#[derive(Clone)]
pub struct SleepyProbe {
    state: Arc<State>,
}

impl std::fmt::Debug for SleepyProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SleepyProbe")
            .field("name", &self.state.cfg.name)
            .finish()
    }
}

impl SleepyProbe {
    /// The true queue length (waiting + in service, hidden jobs included).
    pub fn queue_len(&self) -> u32 {
        self.state.queue.load(Relaxed)
    }

    /// Expected time, in seconds, to answer one more job sent now: the config's model
    /// ([`SleepyConfig::expected_response`]) at the live queue, with a slow episode in force and
    /// the rest of a freeze in progress taken into account (future freezes and hidden jobs are
    /// not foreseen).
    pub fn expected_response(&self) -> f64 {
        self.state.expected_response()
    }
}

/// A running sleepy member. Dropping it stops every task (jobs in service finish their sleep).
pub struct SleepyMember {
    addr: SocketAddr,
    agent_addr: Option<SocketAddr>,
    state: Arc<State>,
    shutdown: tokio::sync::watch::Sender<bool>,
}

impl std::fmt::Debug for SleepyMember {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SleepyMember")
            .field("name", &self.name())
            .field("addr", &self.addr)
            .field("agent_addr", &self.agent_addr)
            .finish()
    }
}

impl SleepyMember {
    /// Starts the member on `127.0.0.1` (port chosen by the system), and its agent port and pusher
    /// if configured. Fails with `InvalidInput` on a bad config.
    pub async fn start(cfg: SleepyConfig) -> io::Result<SleepyMember> {
        cfg.validate()?;
        let (shutdown, rx) = tokio::sync::watch::channel(false);
        let state = Arc::new(State::new(cfg));
        let addr = server::start(Arc::clone(&state), rx.clone()).await?;
        let agent_addr = if state.cfg.agent {
            Some(report::start_agent(Arc::clone(&state), rx.clone()).await?)
        } else {
            None
        };
        server::start_background(Arc::clone(&state), rx.clone());
        if state.cfg.push.is_some() {
            tokio::spawn(report::push_loop(Arc::clone(&state), rx));
        }
        tracing::debug!(member = state.cfg.name, %addr, "sleepy member listening");
        Ok(SleepyMember {
            addr,
            agent_addr,
            state,
            shutdown,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The agent-check port's address, when [`SleepyConfig::agent`] is on.
    pub fn agent_addr(&self) -> Option<SocketAddr> {
        self.agent_addr
    }

    pub fn name(&self) -> &str {
        &self.state.cfg.name
    }

    pub fn config(&self) -> &SleepyConfig {
        &self.state.cfg
    }

    /// The true queue length (waiting + in service, hidden jobs included), shared: the oracle
    /// holds a clone and reads it on every request.
    pub fn queue(&self) -> Arc<AtomicU32> {
        Arc::clone(&self.state.queue)
    }

    pub fn queue_len(&self) -> u32 {
        self.state.queue.load(Relaxed)
    }

    /// A live view for an oracle: queue and expected response time.
    pub fn probe(&self) -> SleepyProbe {
        SleepyProbe {
            state: Arc::clone(&self.state),
        }
    }

    /// Workers busy now.
    pub fn busy(&self) -> u32 {
        self.state.busy.load(Relaxed)
    }

    /// Busy workers / `c`, averaged over the last second.
    pub fn utilization(&self) -> f64 {
        self.state.utilization()
    }

    /// Requests answered `200` (hidden jobs not included).
    pub fn served(&self) -> u64 {
        self.state.served.load(Relaxed)
    }

    /// Requests answered `503`.
    pub fn failed(&self) -> u64 {
        self.state.failed.load(Relaxed)
    }

    /// Hidden-load jobs completed.
    pub fn hidden_served(&self) -> u64 {
        self.state.hidden_served.load(Relaxed)
    }

    /// Pushes answered 2xx.
    pub fn pushes_ok(&self) -> u64 {
        self.state.pushes_ok.load(Relaxed)
    }

    /// Pushes that failed (transport error or non-2xx).
    pub fn pushes_failed(&self) -> u64 {
        self.state.pushes_failed.load(Relaxed)
    }

    /// What the last failed push got, e.g. `"404 Not Found: ..."`.
    pub fn last_push_error(&self) -> Option<String> {
        self.state.last_push_error()
    }

    /// Stops the member (same as dropping it).
    pub fn stop(self) {}
}

impl Drop for SleepyMember {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expected_response_counts_free_workers_speed_and_degradation() {
        let ms = Duration::from_millis(1);
        let normal = SleepyConfig::new("n").workers(4).service(20 * ms, 1.0);
        // A free worker: just the service time, however many are busy.
        assert!((normal.expected_response(0) - 0.020).abs() < 1e-9);
        assert!((normal.expected_response(3) - 0.020).abs() < 1e-9);
        // Full: wait for one departure (S / c) first.
        assert!((normal.expected_response(4) - 0.025).abs() < 1e-9);
        let slow = SleepyConfig::new("s").service(20 * ms, 1.0).speed(3.0);
        assert!((slow.expected_response(0) - 0.060).abs() < 1e-9);
        // B5 with 8 busy: 20 ms x 4.5.
        let b5 = SleepyConfig::new("d").workers(8).degrade(0.1, 0.05);
        assert!((b5.expected_response(7) - 0.090).abs() < 1e-9);
    }
}
