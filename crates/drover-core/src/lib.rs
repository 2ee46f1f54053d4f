//! drover-core: the pure model of a load balancer — farms, members, member flags, counters and
//! the policies that pick a member.
//!
//! Where it sits: everything above it (the proxy, later the simulator and the admin API) reads and
//! writes member state through this crate, and every request's choice of member is made by a
//! [`Policy`] from here. It does no I/O, spawns nothing and knows nothing of tokio, so the proxy,
//! the simulator and the tests all run exactly the same selection code.
//!
//! Key types: [`Member`] (identity + atomic [`MemberState`] flags + atomic [`MemberStats`]),
//! [`Farm`] (an immutable snapshot of members plus a built [`Policy`]), [`PickContext`] (the
//! per-request inputs to a pick: hash key, random state, members already tried), [`Reported`]
//! (what a member's agent said, applied by [`Farm::apply_report`]).
//!
//! Concurrency model: a [`Farm`] is immutable once built and shared behind an `Arc` (the proxy
//! swaps whole snapshots with `ArcSwap`); member flags and counters are atomics read and written
//! without locks. Picking a member takes no lock and allocates nothing.
//!
//! Config keys read: none directly; `drover-config` turns `farm.<name>.policy` and the member tables
//! into [`PolicyKind`] and [`MemberSpec`]. Metrics: the counters in [`MemberStats`] are the raw
//! material of the per-member metrics the admin API exposes.
#![forbid(unsafe_code)]

pub mod clock;
pub mod farm;
pub mod hash;
pub mod health;
pub mod latency;
pub mod member;
pub mod outlier;
pub mod policy;
pub mod report;
pub mod reported;
pub mod retry;
pub mod rng;
pub mod sticky;

pub use farm::{Farm, HealthRules, PassiveRules};
pub use health::{Health, ProbeStreak, Transition};
pub use latency::{LatencyHistogram, LatencySnapshot};
pub use member::{Flag, Member, MemberSpec, MemberState, MemberStats};
pub use policy::{HashKey, PickContext, Policy, PolicyKind};
pub use report::{AgentState, LoadReport, Metrics, Reject, RejectKind, Source};
pub use reported::Reported;
pub use retry::RetryBudget;
pub use rng::Rng;
