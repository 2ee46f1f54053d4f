//! drover-sim: a discrete-event simulator that runs drover-core's *real* policy code over
//! simulated members on a virtual clock.
//!
//! Where it sits: a leaf crate over `drover-core` (see DESIGN.md "The house"). Nothing in the
//! request path calls it; it is how policies are judged at scales and loads the socket bench cannot
//! reach (thousands of members, hundreds of balancers, loads up to 0.99), and it first proves
//! itself by reproducing queueing theory ([`theory`]). The binary `drover-sim` wraps it.
//!
//! Key types: [`Config`] (members, policy, balancers, arrival rate, jobs, seed) -> [`run`] ->
//! [`Report`]; [`MemberModel`] (c workers, a [`Service`] distribution, speed, stalls, concurrency
//! penalty); [`EventQueue`] (the virtual clock).
//!
//! Invariants: a run is deterministic: the same config and seed give the same report, bit for bit
//! (time is integer nanoseconds; every random draw comes from a stream split off the seed; events
//! at the same instant keep their push order). Each balancer is a `drover_core::Farm` that sees only
//! its own in-flight counts and latencies, as a proxy node does.
//!
//! Concurrency: none inside a run (one thread). Config keys and metrics: none; see
//! `docs/simulator.md` for what it models and the theory table.
#![forbid(unsafe_code)]

mod balancer;
pub mod dist;
pub mod event;
pub mod load_reports;
pub mod member;
pub mod report;
pub mod scenario;
pub mod sim;
pub mod theory;

pub use dist::Service;
pub use event::EventQueue;
pub use load_reports::Reports;
pub use member::{Episode, Hidden, MemberModel, Penalty, Stall};
pub use report::Report;
pub use sim::{Config, SimError, run};
