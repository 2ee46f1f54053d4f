//! The balancers of a simulation: each a `drover_core::Farm` over its own members, and the
//! oracle that is not one.
//!
//! Where it sits: [`crate::sim::run`] asks a [`Balancer`] to place each arriving job (the real
//! `Farm::pick`, then `stats.start()` on the chosen member, as the proxy does) and tells it when the
//! job ends (`stats.finish_at`, with the virtual time). The oracle reads the simulated stations'
//! true queues instead, across every balancer and hidden load: a reference, not drover code.
//!
//! Invariant: a balancer's `in_flight` for member i is exactly the jobs it sent to i that have
//! neither completed nor timed out.

use std::net::SocketAddr;

use drover_core::report::{LoadReport, Source};
use drover_core::{Farm, MemberSpec, PickContext, PolicyKind, Rng};

use crate::load_reports::Sample;
use crate::member::{MemberModel, Station};

/// One balancer: a farm over its own view of the members, and its random stream.
pub(crate) struct Balancer {
    farm: Farm,
    rng: Rng,
    /// The `cpu` of the last report from each member that reached this balancer (0 before
    /// any): what the naive "lowest reported cpu" reference reads.
    cpu_seen: Vec<f64>,
    /// ORCA-style weights (reported rps / cpu; 0 = none yet) and the smooth WRR state.
    wrr_weight: Vec<f64>,
    wrr_current: Vec<f64>,
}

impl Balancer {
    pub(crate) fn new(kind: &PolicyKind, n: usize, models: &[MemberModel], seed: u64) -> Self {
        let specs = (0..n)
            .map(|i| MemberSpec {
                name: format!("m{i}"),
                // Never dialled: the address only names the member.
                addr: SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 80)),
                weight: models[i].weight.max(1),
                route: None,
                enabled: true,
            })
            .collect();
        let farm = Farm::new("sim", kind.clone(), specs);
        for m in &farm.members {
            // Member::new started the Peak-EWMA clock on the real clock; move it to virtual zero.
            m.stats.start_peak_clock(core_time(0));
        }
        Balancer {
            farm,
            rng: Rng::new(seed),
            cpu_seen: vec![0.0; n],
            wrr_weight: vec![0.0; n],
            wrr_current: vec![0.0; n],
        }
    }

    /// A load report from member `i` reaches this balancer at `now`: applied with the real
    /// `Farm::apply_report` (so the policy's `on_report` runs), and remembered for the naive
    /// reference.
    pub(crate) fn report(&mut self, i: usize, sample: Sample, source: Source, now: u64) {
        let name = self.farm.members[i].name().to_owned();
        let mut report = LoadReport::new(name, source, core_time(now));
        // In range by construction (cpu clamped to 0..=1, counts >= 0): insert cannot refuse.
        let _ = report.metrics.insert("cpu", sample.cpu.clamp(0.0, 1.0));
        let _ = report.metrics.insert("queue", f64::from(sample.queue));
        let _ = report.metrics.insert("rif", f64::from(sample.rif));
        self.farm.apply_report(i, &report, core_time(now));
        self.cpu_seen[i] = sample.cpu;
        if sample.rps > 0.0 && sample.cpu > 0.0 {
            self.wrr_weight[i] = sample.rps / sample.cpu;
        }
    }

    /// CPU-weighted round robin, ORCA style (gRPC's `weighted_round_robin`): smooth weighted round
    /// robin over weight = rps / cpu from each member's last report, a member without one at the
    /// mean of the others (every member equal before any report). Not drover code.
    pub(crate) fn cpu_wrr(&mut self) -> usize {
        let known: Vec<f64> = self
            .wrr_weight
            .iter()
            .copied()
            .filter(|&w| w > 0.0)
            .collect();
        let mean = if known.is_empty() {
            1.0
        } else {
            known.iter().sum::<f64>() / known.len() as f64
        };
        let (mut best, mut total) = (0, 0.0);
        for i in 0..self.wrr_weight.len() {
            let w = if self.wrr_weight[i] > 0.0 {
                self.wrr_weight[i]
            } else {
                mean
            };
            self.wrr_current[i] += w;
            total += w;
            if self.wrr_current[i] > self.wrr_current[best] {
                best = i;
            }
        }
        self.wrr_current[best] -= total;
        self.dispatch_to(best);
        best
    }

    /// The naive reference: the member with the lowest `cpu` in the last report this balancer
    /// got from it, ties at random (every member ties before the first report). Not drover
    /// code: the rule DESIGN.md warns herds.
    pub(crate) fn lowest_cpu(&mut self) -> usize {
        let (mut best, mut best_cpu, mut ties) = (0, f64::INFINITY, 0);
        for (i, &cpu) in self.cpu_seen.iter().enumerate() {
            if cpu < best_cpu {
                (best, best_cpu, ties) = (i, cpu, 1);
            } else if cpu == best_cpu {
                ties += 1;
                if self.rng.below(ties) == 0 {
                    best = i;
                }
            }
        }
        self.dispatch_to(best);
        best
    }

    /// Counts a request placed by the oracle as in flight at member `i`.
    pub(crate) fn dispatch_to(&self, i: usize) {
        self.farm.members[i].stats.start();
    }

    /// Picks a member at virtual time `now` and counts the request as in flight there, as the
    /// proxy does.
    pub(crate) fn dispatch(&mut self, now: u64) -> Option<usize> {
        let mut ctx = PickContext::new(self.rng.clone()).with_now(core_time(now));
        let (i, member) = self.farm.pick(&mut ctx)?;
        member.stats.start();
        self.rng = ctx.rng;
        Some(i)
    }

    /// The request was answered at `now`, after `latency_ns`.
    pub(crate) fn complete(&self, member: usize, latency_ns: u64, now: u64) {
        self.farm.members[member]
            .stats
            .finish_at(true, Some(latency_ns), core_time(now));
    }

    /// The client gave up on the request at `now`, after `waited` ns without an answer: a
    /// failure with no latency (`finish_at(false, None, _)`: the `Exchange` dropped before the
    /// response head), and when `sample`, the wait fed to the Peak-EWMA estimate alone
    /// (`observe_rtt`), exactly as drover-proxy does on a first-byte timeout (tower's `Handle`
    /// records the time to its drop the same way). The plain latency EWMA gets no sample.
    pub(crate) fn give_up(&self, member: usize, waited: u64, sample: bool, now: u64) {
        let stats = &self.farm.members[member].stats;
        if sample {
            stats.observe_rtt(waited, core_time(now));
        }
        stats.finish_at(false, None, core_time(now));
    }
}

/// Virtual time as drover-core sees it: shifted by one, since 0 means "not given" there.
fn core_time(now: u64) -> u64 {
    now + 1
}

/// The oracle's pick: least (jobs in system + 1) / capacity, ties at random.
pub(crate) fn oracle(stations: &[Station], rng: &mut Rng) -> usize {
    let (mut best, mut best_cost, mut ties) = (0, f64::INFINITY, 0);
    for (i, s) in stations.iter().enumerate() {
        let cost = f64::from(s.len() + 1) / s.capacity;
        if cost < best_cost {
            (best, best_cost, ties) = (i, cost, 1);
        } else if cost == best_cost {
            ties += 1;
            if rng.below(ties) == 0 {
                best = i;
            }
        }
    }
    best
}
