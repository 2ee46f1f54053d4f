//! drover-health: active probes (http, tcp), the scheduler that runs them, and the supervisor of
//! passive ejections; together they write member health.
//!
//! Where it sits: the binary builds one [`FarmChecks`] per farm from `drover_config::Config` and
//! the proxy's `Arc<Farm>`s and starts the [`HealthService`], which runs [`probe::Probe::run`]
//! every interval and flips the member's up/down flag in `drover-core` after `rise` successes or
//! `fall` failures in a row, and ends passive ejections when their time is up. The proxy reads
//! those flags and reports failures of live traffic (`Farm::report`); it never probes.
//!
//! Modules:
//! - [`schedule`]: the service: a thread with its own runtime, one task per checked member, one
//!   supervisor per farm with passive rules (ends ejections, applies the outlier rule);
//! - [`agent`]: the HAProxy agent-check client, one task per member with an agent, applying its
//!   replies (`75%`, `drain`, `down # why`) through `drover_core::Farm::apply_report`;
//! - [`probe`]: one check of one member (TCP connect, or an HTTP/1.1 request with status and body
//!   expectations), bounded by a timeout. It depends on neither `drover-config` nor `drover-core`:
//!   it takes an address, a timeout and a pre-rendered request, and answers success or a failure
//!   whose `Display` is a log line.
//!
//! Concurrency model: a probe is immutable and shared; each run uses a socket and a read buffer
//! owned by the calling task, so runs for different members never contend.
//!
//! Config keys read: none directly (`drover-config` turns `[farm.<name>.check]` into a
//! [`probe::Probe`] via [`schedule::probe`], and `[farm.<name>.agent]` into the
//! `drover_config::AgentCheck`s of [`FarmChecks::agents`]). Metrics: every flip is counted in the member's
//! `drover_core::Health`, and agent rejects and failures in its `drover_core::Reported` (the
//! metrics issue exports them).
#![forbid(unsafe_code)]

pub mod agent;
mod fresh;
pub mod probe;
pub mod schedule;

pub use schedule::{FarmChecks, HealthService};
