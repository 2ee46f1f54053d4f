//! drover-testkit: in-process HTTP members to put behind drover in tests, `drover demo` and
//! benchmarks.
//!
//! Where it sits: on the upstream side of the request path. drover's end-to-end tests start a
//! few [`TestMember`]s on `127.0.0.1:0`, point a farm at them, send requests through a real
//! drover listener and then ask the members what reached them ([`TestMember::requests`],
//! [`TestMember::connections`], the `/echo` route) or break them ([`TestMember::kill`],
//! [`TestMember::set_hang`], [`TestMember::set_status`]). [`TestMember`] uses no other drover crate.
//!
//! Key types: [`MemberConfig`] (builder: name, [`Latency`], status, failure share, hang, cookies,
//! extra headers, seed) and [`TestMember`] (the running member and its handle). Routes are listed
//! in `routes.rs`: a default answer, `/echo`, `/upload`, `/download`, `/stall`, `/redirect`,
//! `/status/<code>`, `/slow` and a WebSocket echo on `/ws`. Every answer carries
//! `X-Member: <name>` and every body starts with the name.
//!
//! Concurrency: a member is tokio tasks on the runtime that started it (one accept loop, one
//! task per connection and per WebSocket), so it works under `#[tokio::test]` and on a
//! multi-thread runtime alike. Run-time knobs and counters are atomics; random draws (latency,
//! failures) come from a seeded lock-free generator, so a seed reproduces a run. `kill` and
//! `stop` return only when the listener and every connection are closed.
//!
//! [`sleepy`] holds the members of the balancing benchmark: service time emulated by sleeping in
//! `c` virtual workers behind a FIFO queue, with slow, stalling, degrading, failing and
//! hidden-load behaviours, and load reports (ORCA header, agent-check port, signed pushes) in
//! drover-core's formats (the one drover crate this crate depends on, for those formats).
//!
//! It reads no config file and emits no metrics; it logs at debug/trace through `tracing`.

#![forbid(unsafe_code)]

mod behaviour;
mod body;
pub mod client;
mod config;
mod member;
mod routes;
pub mod sleepy;
mod ws;

pub use behaviour::X_MEMBER;
pub use body::DOWNLOAD_PATTERN;
pub use config::{Latency, MemberConfig};
pub use member::{TestMember, start_members};
pub use sleepy::{SleepyConfig, SleepyMember};
