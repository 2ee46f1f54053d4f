//! The simulation loop: Poisson arrivals, K balancers running drover-core's real policies, and
//! simulated members, on the virtual clock of [`crate::event`].
//!
//! Where it sits: [`run`] is the crate's entry point; the CLI and the theory checks build a
//! [`Config`] and read the [`Report`] it returns.
//!
//! How a job flows: an arrival is handed to one of the K balancers at random (so each balancer
//! sees an independent Poisson stream of rate lambda / K). The balancer is a `drover_core::Farm`
//! over its *own* `Arc<Member>`s, one per simulated member; it calls `Farm::pick`, then
//! `member.stats.start()` on the member it chose. When the job completes, the same balancer's
//! member gets `stats.finish_at(true, Some(latency_ns), now)`. So each balancer sees the in-flight
//! counts and latencies of the requests *it* sent, as a proxy node does, and the pick is the
//! proxy's code, not a model of it. Time reaches the policies as virtual time (`PickContext::with_now`,
//! `finish_at`), so time-aware ones (peak-ewma's decay) run on the simulated clock; `Farm::pick`
//! reads the real clock only for slow start, which stays off.
//!
//! Measurement: the first `warmup` jobs fill the queues and are not counted. Sojourn (arrival to
//! completion) goes into an HdrHistogram (3 significant digits) and exact sums for the mean, kept per
//! batch of consecutive arrivals for a batch-means confidence interval; the
//! time-average of the number of jobs at each member (for the queue-length tail) runs from the
//! first measured arrival to the last arrival. The run ends when every job has completed.
//!
//! Concurrency: single-threaded and deterministic: the same `Config` gives the same `Report`.

use drover_core::report::Source;
use drover_core::{PolicyKind, Rng};
use hdrhistogram::Histogram;

use crate::balancer::{Balancer, oracle};
use crate::dist::{exponential, split};
use crate::event::EventQueue;
use crate::load_reports::{Reports, Sample};
use crate::member::{HIDDEN, Job, MemberModel, NS, Station};
use crate::report::Report;

/// Batches of consecutive measured arrivals for the confidence interval of the mean.
pub const BATCHES: usize = 20;

/// Longest sojourn the histogram tells apart, ns (10^6 s).
const MAX_SOJOURN: u64 = 1_000_000_000_000_000;

/// One simulation run.
#[derive(Debug, Clone)]
pub struct Config {
    pub policy: PolicyKind,
    /// Ignore `policy` and place each job with the oracle: the member with the least true jobs in
    /// system (hidden load and other balancers' jobs included) per unit of capacity. The
    /// reference BALANCING.md measures policies against (full knowledge, though not provably
    /// optimal: it ignores how long jobs in service have run); it is not drover-core code.
    pub oracle: bool,
    pub members: Vec<MemberModel>,
    /// Independent balancers splitting the arrivals evenly at random (at least 1).
    pub balancers: usize,
    /// Arrival rate, jobs per second of virtual time.
    pub rate: f64,
    /// Measured jobs.
    pub jobs: u64,
    /// Jobs before the measured ones, not counted.
    pub warmup: u64,
    pub seed: u64,
    /// Client timeout, ns (0 = none). A job not answered by then ends for its balancer as the
    /// proxy ends an exchange dropped before the response head, a failure with no latency sample
    /// (`finish_at(false, None, _)`), and for the statistics as an error with sojourn = the
    /// timeout; the member, which cannot know, still works on it.
    pub timeout: u64,
    /// A timed-out request feeds the timeout to the balancer as a latency sample, as tower's
    /// Peak-EWMA does (its handle records the time to its drop), and as drover-proxy does for a
    /// first-byte timeout; false is the proxy before it did (the figures in docs/simulator.md).
    pub sample_timeouts: bool,
    /// Load reports from the members to every balancer (default: none). See [`crate::Reports`].
    pub reports: Reports,
    /// Ignore `policy` and place each job on the member whose last report to this balancer
    /// showed the lowest `cpu`: the naive rule that herds (DESIGN.md), a reference like the
    /// oracle, not drover-core code. Needs `reports`.
    pub lowest_cpu: bool,
    /// Ignore `policy` and place each job by smooth weighted round robin with ORCA's weights
    /// (gRPC's and Envoy's client-side WRR): weight = reported rps / reported cpu, a member
    /// without a usable report at the mean weight. A sim-side reference; no blackout period.
    /// Needs pushed `reports`.
    pub cpu_wrr: bool,
}

impl Config {
    /// `n` equal M/M/1 members (mu = 1) at load `rho`, one balancer, a 10% warm-up.
    pub fn mm1(policy: PolicyKind, n: usize, rho: f64, jobs: u64, seed: u64) -> Self {
        let members = vec![MemberModel::exponential(1.0); n];
        Config {
            policy,
            oracle: false,
            members,
            balancers: 1,
            rate: 0.0,
            jobs,
            warmup: jobs / 10,
            seed,
            timeout: 0,
            sample_timeouts: false,
            reports: Reports::default(),
            lowest_cpu: false,
            cpu_wrr: false,
        }
        .at_load(rho)
    }

    /// Sets the arrival rate to `rho` times the members' total capacity.
    pub fn at_load(mut self, rho: f64) -> Self {
        self.rate = rho * self.capacity();
        self
    }

    /// Jobs per second all members complete when saturated.
    pub fn capacity(&self) -> f64 {
        self.members.iter().map(MemberModel::capacity).sum()
    }

    /// Offered load: arrival rate over capacity.
    pub fn load(&self) -> f64 {
        self.rate / self.capacity()
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum SimError {
    #[error("no members: give at least one")]
    NoMembers,
    #[error("arrival rate {0} is not a positive number of jobs per second")]
    BadRate(f64),
    #[error("member {0}: speed and mean service time must be positive numbers")]
    BadMember(usize),
    #[error("no jobs to measure: --jobs must be at least 1")]
    NoJobs,
    #[error("balancer {0} found no eligible member")]
    NoPick(usize),
}

/// One bit per job: set or not.
#[derive(Debug, Default)]
struct Bits(Vec<u64>);

impl Bits {
    fn with_len(n: u64) -> Self {
        Bits(vec![0; (n / 64 + 1) as usize])
    }
    fn set(&mut self, i: u64) {
        self.0[(i / 64) as usize] |= 1 << (i % 64);
    }
    fn get(&self, i: u64) -> bool {
        self.0[(i / 64) as usize] & (1 << (i % 64)) != 0
    }
}

/// Exact sums of the measured sojourns, per batch of consecutive arrivals.
#[derive(Debug, Default)]
pub(crate) struct Sums {
    pub ns: [u128; BATCHES],
    pub count: [u64; BATCHES],
}

impl Sums {
    fn add(&mut self, batch: u16, ns: u64) {
        self.ns[usize::from(batch)] += u128::from(ns);
        self.count[usize::from(batch)] += 1;
    }
}

/// What happens at an instant of virtual time.
#[derive(Debug)]
enum Event {
    Arrival,
    /// A hidden-load job reaches this member directly.
    Hidden(u32),
    /// The client of job `id` gives up, unless it was answered.
    Timeout {
        member: u32,
        job: Job,
    },
    Done {
        member: u32,
        job: Job,
    },
    /// Member `member` measures its load for the pushed reports.
    Tick(u32),
    /// A pushed report from `member` reaches `balancer`.
    Deliver {
        member: u32,
        balancer: u32,
        sample: Sample,
    },
}

fn check(config: &Config) -> Result<(), SimError> {
    if config.members.is_empty() {
        return Err(SimError::NoMembers);
    }
    if config.jobs == 0 {
        return Err(SimError::NoJobs);
    }
    for (i, m) in config.members.iter().enumerate() {
        let mean = m.service.mean();
        if !(m.speed > 0.0 && m.speed.is_finite() && mean > 0.0 && mean.is_finite()) {
            return Err(SimError::BadMember(i));
        }
    }
    if !(config.rate > 0.0 && config.rate.is_finite()) {
        return Err(SimError::BadRate(config.rate));
    }
    Ok(())
}

/// Runs one simulation to completion.
pub fn run(config: &Config) -> Result<Report, SimError> {
    check(config)?;
    let n = config.members.len();
    let k = config.balancers.max(1);
    let mut stations: Vec<Station> = config.members.iter().cloned().map(Station::new).collect();
    let mut balancers: Vec<Balancer> = (0..k)
        .map(|b| {
            Balancer::new(
                &config.policy,
                n,
                &config.members,
                split(config.seed, 100 + b as u64),
            )
        })
        .collect();
    let mut arrivals = Rng::new(split(config.seed, 1));
    let mut events = EventQueue::new();
    let total = config.warmup + config.jobs;
    let mut arrived = 0u64;
    // 1 ns to 10^6 s: larger sojourns are clamped, which only a diverging run reaches.
    let mut hist =
        Histogram::<u64>::new_with_bounds(1, MAX_SOJOURN, 3).map_err(|_| SimError::NoJobs)?;
    let mut sums = Sums::default();
    // With a timeout: which jobs were answered, and which were given up on (one bit each).
    let (mut answered, mut expired) = if config.timeout > 0 {
        (Bits::with_len(total), Bits::with_len(total))
    } else {
        (Bits::default(), Bits::default())
    };
    let mut errors = 0u64;
    // occupancy[q]: member-nanoseconds spent with q jobs in the system, over the window.
    let mut occupancy: Vec<u128> = Vec::new();
    let mut window = (0u64, 0u64);
    let mut open = false;
    let mut now = 0u64;
    let mut count = 0u64;

    events.push(0, Event::Arrival);
    let mut hidden = Rng::new(split(config.seed, 2));
    let mut oracle_rng = Rng::new(split(config.seed, 3));
    for (i, m) in config.members.iter().enumerate() {
        if let Some(h) = m.hidden {
            events.push(h.next(0, &mut hidden), Event::Hidden(i as u32));
        }
    }
    let reports = config.reports;
    let mut report_rng = Rng::new(split(config.seed, 4));
    if reports.interval > 0 {
        // Members report out of phase: the first measurement at a random point of an interval.
        for i in 0..n {
            let first = report_rng.below(reports.interval as usize) as u64 + 1;
            events.push(first, Event::Tick(i as u32));
        }
    }
    while let Some((t, event)) = events.pop() {
        now = t;
        count += 1;
        match event {
            Event::Arrival => {
                if arrived == config.warmup {
                    // Measuring starts: restart every member's time-average clock.
                    open = true;
                    window.0 = now;
                    stations.iter_mut().for_each(|s| s.settle(now, None));
                }
                let measured = arrived >= config.warmup;
                let batch = arrived.saturating_sub(config.warmup) * BATCHES as u64 / config.jobs;
                arrived += 1;
                let b = if k == 1 { 0 } else { arrivals.below(k) };
                let job = Job {
                    arrived: now,
                    balancer: b as u32,
                    seed: arrivals.next_u64(),
                    measured,
                    batch: batch.min(BATCHES as u64 - 1) as u16,
                    id: arrived - 1,
                };
                let i = if config.oracle {
                    let i = oracle(&stations, &mut oracle_rng);
                    balancers[b].dispatch_to(i);
                    i
                } else if config.lowest_cpu {
                    balancers[b].lowest_cpu()
                } else if config.cpu_wrr {
                    balancers[b].cpu_wrr()
                } else {
                    balancers[b].dispatch(now).ok_or(SimError::NoPick(b))?
                };
                let st = &mut stations[i];
                st.settle(now, open.then_some(&mut occupancy));
                if measured {
                    st.served += 1;
                }
                if config.timeout > 0 {
                    let member = i as u32;
                    events.push(now + config.timeout, Event::Timeout { member, job });
                }
                if let Some((done, job)) = st.arrive(now, job) {
                    events.push(
                        done,
                        Event::Done {
                            member: i as u32,
                            job,
                        },
                    );
                }
                if arrived < total {
                    let gap = (exponential(&mut arrivals, config.rate) * NS).round() as u64;
                    events.push(now + gap, Event::Arrival);
                } else {
                    // The last arrival closes the time-average window.
                    window.1 = now;
                    for st in &mut stations {
                        st.settle(now, Some(&mut occupancy));
                    }
                    open = false;
                }
            }
            Event::Hidden(member) => {
                // Hidden load stops with the balancers' arrivals, so the run drains and ends.
                if arrived >= total {
                    continue;
                }
                let st = &mut stations[member as usize];
                let job = Job {
                    arrived: now,
                    balancer: HIDDEN,
                    seed: hidden.next_u64(),
                    measured: false,
                    batch: 0,
                    id: u64::MAX,
                };
                st.settle(now, open.then_some(&mut occupancy));
                if let Some((done, job)) = st.arrive(now, job) {
                    events.push(done, Event::Done { member, job });
                }
                if let Some(h) = st.model.hidden {
                    events.push(h.next(now, &mut hidden), Event::Hidden(member));
                }
            }
            Event::Timeout { member, job } => {
                if !answered.get(job.id) {
                    expired.set(job.id);
                    let b = &balancers[job.balancer as usize];
                    b.give_up(member as usize, config.timeout, config.sample_timeouts, now);
                    if job.measured {
                        hist.saturating_record(config.timeout);
                        sums.add(job.batch, config.timeout);
                        errors += 1;
                    }
                }
            }
            Event::Done { member, job } => {
                let i = member as usize;
                let sojourn = now - job.arrived;
                let gone = if job.balancer == HIDDEN {
                    true
                } else if config.timeout > 0 {
                    answered.set(job.id);
                    expired.get(job.id)
                } else {
                    false
                };
                if !gone {
                    balancers[job.balancer as usize].complete(i, sojourn, now);
                }
                if job.measured && !gone {
                    hist.saturating_record(sojourn.max(1));
                    sums.add(job.batch, sojourn);
                }
                let st = &mut stations[i];
                st.settle(now, open.then_some(&mut occupancy));
                if reports.orca && !gone && job.balancer != HIDDEN {
                    // The response carries the member's load as it finishes (this job still
                    // counted in the system, as a server writes the header before it is done).
                    let sample = Sample {
                        cpu: st.utilisation_smoothed(),
                        queue: st.waiting(),
                        rif: st.len(),
                        rps: 0.0,
                    };
                    balancers[job.balancer as usize].report(i, sample, Source::Orca, now);
                }
                if let Some((done, next)) = st.depart(now) {
                    events.push(done, Event::Done { member, job: next });
                }
            }
            Event::Tick(member) => {
                // Reports stop with the balancers' arrivals, so the run drains and ends.
                if arrived >= total {
                    continue;
                }
                let st = &mut stations[member as usize];
                let cpu = st.utilisation_since_mark(now);
                let sample = Sample {
                    cpu,
                    queue: st.waiting(),
                    rif: st.len(),
                    rps: st.last_rps,
                };
                for balancer in 0..k as u32 {
                    let at = now + reports.jittered(reports.delay, &mut report_rng);
                    events.push(
                        at,
                        Event::Deliver {
                            member,
                            balancer,
                            sample,
                        },
                    );
                }
                let next = reports.jittered(reports.interval, &mut report_rng).max(1);
                events.push(now + next, Event::Tick(member));
            }
            Event::Deliver {
                member,
                balancer,
                sample,
            } => {
                balancers[balancer as usize].report(member as usize, sample, Source::Push, now);
            }
        }
    }
    Ok(Report::new(
        config,
        &hist,
        &sums,
        &stations,
        &occupancy,
        window,
        (now, count, errors),
    ))
}
