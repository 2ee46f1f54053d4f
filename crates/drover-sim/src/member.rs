//! Simulated members: c-server FIFO queues with a service-time distribution, a speed, and the
//! pathologies of BALANCING.md that change *when* work gets done.
//!
//! Where it sits: [`crate::sim`] hands each dispatched job to a [`Station`] (the running state of
//! one member, built from its [`MemberModel`]); the station starts it on a free virtual worker or
//! queues it, and tells the simulator when it will finish. The balancers never see a station: they
//! see only their own `drover_core::Member` counters, exactly as the proxy does.
//!
//! Key types: [`MemberModel`] (what a member is: workers, service time, speed, weight, and the
//! optional [`Stall`] and [`Penalty`]), [`Station`] (workers busy, the FIFO queue, counters).
//!
//! Model: a job's service time is drawn when it starts, divided by the speed, multiplied by the
//! concurrency penalty for the number of jobs then in service, and then stretched by any stall it
//! runs into (a stall freezes every worker: work done during it is zero). Hidden load (traffic sent
//! to a member behind the balancers' backs) is a [`Hidden`] Poisson stream of jobs that queue with
//! the balancers' jobs but that no balancer counts; the simulator drives it.

use std::collections::VecDeque;

use drover_core::Rng;

use crate::dist::Service;

/// Nanoseconds per second of virtual time.
pub const NS: f64 = 1e9;

/// A member freezes for `length` every `every` (both in ns), the first freeze starting at `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stall {
    pub every: u64,
    pub length: u64,
    pub offset: u64,
}

impl Stall {
    /// When `work` ns of work started at `start` are done, skipping the frozen windows.
    pub fn finish(&self, start: u64, work: u64) -> u64 {
        if self.length == 0 || self.every == 0 {
            return start + work;
        }
        if self.length >= self.every {
            return u64::MAX; // frozen for good
        }
        let (mut t, mut left) = (start, work);
        loop {
            let phase = (t + self.every - self.offset % self.every) % self.every;
            if phase < self.length {
                t += self.length - phase; // inside a freeze: wait for its end
                continue;
            }
            let run = self.every - phase; // until the next freeze starts
            if left <= run {
                return t + left;
            }
            left -= run;
            t += run;
        }
    }
}

/// Hidden load: Poisson arrivals at `rate` jobs per second straight to the member, during `on`
/// ns out of every `on + off` (`off` = 0: always on), starting with an on period.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hidden {
    pub rate: f64,
    pub on: u64,
    pub off: u64,
}

impl Hidden {
    /// The next hidden arrival after `now`: an exponential gap of "on" time, skipping off periods
    /// (Poisson arrivals are memoryless, so the gap may straddle an off period).
    pub fn next(&self, now: u64, rng: &mut Rng) -> u64 {
        let gap = (crate::dist::exponential(rng, self.rate) * NS).round() as u64;
        let off = Stall {
            every: self.on + self.off,
            length: self.off,
            offset: self.on,
        };
        off.finish(now, gap.max(1))
    }
}

/// Service slows as concurrency rises: S(n) = S x (1 + linear (n-1) + quadratic n (n-1)), n the
/// jobs in service when this one starts (itself included). BALANCING.md's B5 is (0.1, 0.05).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Penalty {
    pub linear: f64,
    pub quadratic: f64,
}

impl Penalty {
    pub fn factor(&self, n: u32) -> f64 {
        let n = f64::from(n);
        1.0 + self.linear * (n - 1.0) + self.quadratic * n * (n - 1.0)
    }
}

/// What a simulated member is.
#[derive(Debug, Clone, PartialEq)]
pub struct MemberModel {
    /// Virtual workers (the c of M/M/c); at least 1.
    pub workers: u32,
    pub service: Service,
    /// Work per second relative to nominal: 3 times slower is `1.0 / 3.0`.
    pub speed: f64,
    /// The weight the balancers' `MemberSpec` gets.
    pub weight: u32,
    pub stall: Option<Stall>,
    pub penalty: Option<Penalty>,
    pub hidden: Option<Hidden>,
    /// A time-limited change of service (Linkerd's member stuck at 2 s for 30 s).
    pub episode: Option<Episode>,
}

/// Jobs that start in `from..until` (ns of virtual time) take their service time from `service`
/// instead of the member's usual distribution (still divided by the speed).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Episode {
    pub from: u64,
    pub until: u64,
    pub service: Service,
}

impl MemberModel {
    /// One worker, exponential service with mean `1 / mu`: an M/M/1 queue under Poisson arrivals.
    pub fn exponential(mu: f64) -> Self {
        MemberModel {
            workers: 1,
            service: Service::Exponential { mean: 1.0 / mu },
            speed: 1.0,
            weight: 1,
            stall: None,
            penalty: None,
            hidden: None,
            episode: None,
        }
    }

    /// Jobs per second this member completes at best, for the balancers' traffic: with a penalty,
    /// the best concurrency n <= workers (n / S(n)); less the time frozen by stalls. Hidden load is
    /// not subtracted (it is the part of the capacity the balancers cannot see).
    pub fn capacity(&self) -> f64 {
        let per_job = self.service.mean() / self.speed;
        let busy = match self.penalty {
            None => f64::from(self.workers.max(1)) / per_job,
            Some(p) => (1..=self.workers.max(1))
                .map(|n| f64::from(n) / (per_job * p.factor(n)))
                .fold(0.0, f64::max),
        };
        let frozen = match self.stall {
            Some(s) if s.every > 0 => (s.length as f64 / s.every as f64).min(1.0),
            _ => 0.0,
        };
        busy * (1.0 - frozen)
    }
}

/// [`Job::balancer`] of a hidden-load job: no balancer sent it.
pub const HIDDEN: u32 = u32::MAX;

/// A job as a station sees it.
#[derive(Debug, Clone, Copy)]
pub struct Job {
    /// Arrival at the balancer, ns.
    pub arrived: u64,
    /// Which balancer sent it (its counters are the ones to update on completion), or
    /// [`HIDDEN`] for hidden load.
    pub balancer: u32,
    /// Seed of the job's own random draws (its service time).
    pub seed: u64,
    /// Counted in the statistics (false during warm-up).
    pub measured: bool,
    /// Which batch of consecutive arrivals it belongs to, for the batch-means error of the mean.
    pub batch: u16,
    /// Arrival number (its bit in the simulator's timeout bookkeeping).
    pub id: u64,
}

/// The running state of one member.
#[derive(Debug)]
pub struct Station {
    pub model: MemberModel,
    /// `model.capacity()`, kept for the oracle's per-pick comparisons.
    pub capacity: f64,
    busy: u32,
    queue: VecDeque<Job>,
    /// Most jobs ever in the system at once (in service + waiting), warm-up included.
    pub max_len: u32,
    /// Measured jobs sent here.
    pub served: u64,
    /// When the current number in system began (for time averages).
    since: u64,
    /// Worker-nanoseconds busy up to `since` (a frozen worker counts as busy: it holds a job).
    busy_ns: u128,
    /// Where the last [`utilisation_since_mark`](Self::utilisation_since_mark) window ended:
    /// time, busy worker-ns and completions then.
    mark: (u64, u128, u64),
    /// Jobs completed, hidden load included.
    done: u64,
    /// Completions per second over the last window (what an agent reports as `rps`).
    pub last_rps: f64,
    /// Busy fraction averaged with time constant [`UTIL_TAU`], up to `since` (ORCA-style reports).
    util_ewma: f64,
}

/// Time constant of a station's smoothed utilisation (what an ORCA-style response reports), ns.
pub const UTIL_TAU: f64 = 1e9;

impl Station {
    pub fn new(model: MemberModel) -> Self {
        Station {
            capacity: model.capacity(),
            model,
            busy: 0,
            queue: VecDeque::new(),
            max_len: 0,
            served: 0,
            since: 0,
            busy_ns: 0,
            mark: (0, 0, 0),
            done: 0,
            last_rps: 0.0,
            util_ewma: 0.0,
        }
    }

    /// Jobs in the system: in service plus waiting.
    pub fn len(&self) -> u32 {
        self.busy + self.queue.len() as u32
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Jobs waiting for a worker.
    pub fn waiting(&self) -> u32 {
        self.queue.len() as u32
    }

    /// The busy fraction of the workers since the last call (or the start): what a member's agent
    /// reports as `cpu` for the last interval. Starts a new window at `now`, and sets
    /// [`last_rps`](Self::last_rps) to the completions per second over the window that ended.
    pub fn utilisation_since_mark(&mut self, now: u64) -> f64 {
        let busy = self.busy_ns + u128::from(self.busy) * u128::from(now - self.since);
        let (t0, b0, d0) = self.mark;
        self.mark = (now, busy, self.done);
        let span = (now - t0) as f64 * f64::from(self.model.workers.max(1));
        if span <= 0.0 {
            return 0.0;
        }
        self.last_rps = (self.done - d0) as f64 / ((now - t0) as f64 / NS);
        ((busy - b0) as f64 / span).clamp(0.0, 1.0)
    }

    /// The busy fraction averaged over about the last [`UTIL_TAU`], as of the last
    /// [`settle`](Self::settle): what an ORCA-style response header reports.
    pub fn utilisation_smoothed(&self) -> f64 {
        self.util_ewma.clamp(0.0, 1.0)
    }

    /// Adds the time spent at the current length to `occupancy` (when `open`) and restarts the
    /// clock of the current length: call before every change of length.
    pub fn settle(&mut self, now: u64, occupancy: Option<&mut Vec<u128>>) {
        if let Some(occ) = occupancy {
            let n = self.len() as usize;
            if occ.len() <= n {
                occ.resize(n + 1, 0);
            }
            occ[n] += u128::from(now - self.since);
        }
        let dt = now - self.since;
        if dt > 0 {
            self.busy_ns += u128::from(self.busy) * u128::from(dt);
            let frac = f64::from(self.busy) / f64::from(self.model.workers.max(1));
            let keep = (-(dt as f64) / UTIL_TAU).exp();
            self.util_ewma = frac + (self.util_ewma - frac) * keep;
        }
        self.since = now;
    }

    /// A job arrives. Returns the job and its completion time if it starts at once.
    pub fn arrive(&mut self, now: u64, job: Job) -> Option<(u64, Job)> {
        let started = if self.busy < self.model.workers.max(1) {
            Some((self.start(now, &job), job))
        } else {
            self.queue.push_back(job);
            None
        };
        self.max_len = self.max_len.max(self.len());
        started
    }

    /// A job finished: frees its worker, and starts the next waiting job if any.
    pub fn depart(&mut self, now: u64) -> Option<(u64, Job)> {
        self.busy -= 1;
        self.done += 1;
        let next = self.queue.pop_front()?;
        Some((self.start(now, &next), next))
    }

    /// Puts `job` on a worker at `now`; returns when it will be done.
    fn start(&mut self, now: u64, job: &Job) -> u64 {
        self.busy += 1;
        let m = &self.model;
        let service = match m.episode {
            Some(e) if (e.from..e.until).contains(&now) => e.service,
            _ => m.service,
        };
        let mut secs = service.sample(&mut Rng::new(job.seed)) / m.speed;
        if let Some(p) = m.penalty {
            secs *= p.factor(self.busy);
        }
        let work = ((secs * NS).round() as u64).max(1);
        match m.stall {
            Some(s) => s.finish(now, work),
            None => now + work,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stalls_freeze_work() {
        let s = Stall {
            every: 100,
            length: 30,
            offset: 0,
        };
        assert_eq!(s.finish(30, 50), 80, "no stall in the way");
        assert_eq!(s.finish(10, 50), 80, "starts inside a freeze: waits to 30");
        assert_eq!(s.finish(90, 50), 170, "10 before the freeze, 40 after it");
        assert_eq!(s.finish(30, 210), 300, "70 + 70 + 70 around two freezes");
        let s = Stall { offset: 50, ..s };
        assert_eq!(s.finish(0, 60), 90, "offset moves the freeze to 50..80");
    }

    #[test]
    fn hidden_load_runs_only_while_on() {
        let h = Hidden {
            rate: 1_000.0,
            on: 1_000_000_000,
            off: 1_000_000_000,
        };
        let mut rng = Rng::new(3);
        let (mut t, mut on, mut n) = (0, 0, 0);
        while t < 100_000_000_000 {
            t = h.next(t, &mut rng);
            n += 1;
            on += u64::from((t / 1_000_000_000) % 2 == 0);
        }
        assert_eq!(on, n, "no arrival in an off second");
        assert!(
            (48_000..52_000).contains(&n),
            "{n}: 1000/s for 50 on-seconds"
        );
    }

    #[test]
    fn penalty_matches_b5() {
        let p = Penalty {
            linear: 0.1,
            quadratic: 0.05,
        };
        assert_eq!(p.factor(1), 1.0);
        assert!((p.factor(8) - 4.5).abs() < 1e-12, "20 ms -> 90 ms at 8");
    }

    #[test]
    fn fifo_with_c_workers() {
        let model = MemberModel {
            workers: 2,
            service: Service::Deterministic { value: 1e-6 },
            ..MemberModel::exponential(1.0)
        };
        let mut st = Station::new(model);
        let job = |seed| Job {
            arrived: 0,
            balancer: 0,
            seed,
            measured: true,
            batch: 0,
            id: seed,
        };
        assert_eq!(st.arrive(0, job(1)).map(|x| x.0), Some(1_000));
        assert_eq!(st.arrive(0, job(2)).map(|x| x.0), Some(1_000));
        assert!(st.arrive(0, job(3)).is_none(), "both workers busy");
        assert!(st.arrive(0, job(4)).is_none());
        assert_eq!(st.len(), 4);
        let (t, j) = st.depart(1_000).unwrap();
        assert_eq!((t, j.seed), (2_000, 3), "first in, first out");
        assert_eq!(st.max_len, 4);
    }
}
