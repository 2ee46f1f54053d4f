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

use drover_core::{Farm, MemberSpec, PickContext, PolicyKind, Rng};

use crate::member::{MemberModel, Station};

/// One balancer: a farm over its own view of the members, and its random stream.
pub(crate) struct Balancer {
    farm: Farm,
    rng: Rng,
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
        }
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
    /// failure, with the wait as a latency sample when `sample` (tower's `Handle` records the
    /// time to its drop) or none (drover-proxy today: an `Exchange` dropped before the response
    /// head has no latency).
    pub(crate) fn give_up(&self, member: usize, waited: u64, sample: bool, now: u64) {
        self.farm.members[member]
            .stats
            .finish_at(false, sample.then_some(waited), core_time(now));
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
