//! drover-health: active probes (http, tcp) and, later, the scheduler and passive-ejection
//! supervisor that write member health.
//!
//! Where it sits: the binary will build one check per member from `drover_config::Config` and hand
//! it to the scheduler here, which runs [`probe::Probe::run`] every interval and flips the member's
//! health flag in `drover-core` after `rise` successes or `fall` failures in a row. The proxy only
//! reads those flags; it never probes.
//!
//! Modules:
//! - [`probe`]: one check of one member (TCP connect, or an HTTP/1.1 request with status and body
//!   expectations), bounded by a timeout. It depends on neither `drover-config` nor `drover-core`:
//!   it takes an address, a timeout and a pre-rendered request, and answers success or a failure
//!   whose `Display` is a log line.
//!
//! Concurrency model: a probe is immutable and shared; each run uses a socket and a read buffer
//! owned by the calling task, so runs for different members never contend.
//!
//! Config keys read: none directly (`drover-config` turns `[farm.<name>.check]` into a
//! [`probe::Probe`]). Metrics: none yet; the scheduler will emit them.
#![forbid(unsafe_code)]

pub mod probe;
