//! drover-proxy: the data plane — listeners, routes, upstream pools, forwarding, retries, outage.
//!
//! Where it sits: the binary builds a [`Proxy`] from a validated `drover_config::Config`; the proxy
//! owns its worker threads and answers clients until [`Proxy::shutdown`]. It calls `drover-core`
//! to pick a member for each request and writes the member counters there; it never parses config
//! or decides health itself.
//!
//! The request path (DESIGN.md, "The request path"), file by file:
//! 1. [`server`]: worker threads, one current-thread tokio runtime each; every worker binds every
//!    listener address with `SO_REUSEPORT` and serves HTTP/1.1 connections with hyper; [`idle`]
//!    closes client connections that have gone quiet.
//! 2. [`route`]: the listener's route table (host, path prefix, regex) yields a farm or a direct
//!    answer (exclusion, redirect, fixed page).
//! 3. [`sticky`]: the session a request carries (route, insert or learn mode) names a member; if
//!    it can serve, it gets the request, else `nofailover` answers 503 or the policy picks and the
//!    client is moved (and re-stuck on the way back, step 8).
//! 4. [`handler`]: the farm's policy picks over the farm snapshot ([`state`]); no lock, no
//!    allocation.
//! 5. [`forward`] rewrites headers (hop-by-hop removed, `X-Forwarded-*` / `Forwarded`, `Location`),
//!    and [`pool`] lends a keep-alive connection to the member.
//! 6. [`handler`]: a connect failure is retried on another member; a bodiless idempotent request
//!    whose reused connection died before answering is retried once.
//! 7. [`handler`]: no ready member → the farm's outage action (page, redirect, sorry member).
//! 8. [`body`] streams the response back, returns the connection to the pool at end of body and
//!    settles the member counters; [`upgrade`] splices WebSocket and other upgraded connections.
//!
//! Small writes to clients and members (answers, request heads) are sent together once per round
//! of the worker's loop, by [`batch`].
//!
//! Warnings about members and farms go through [`loglimit`]: at most one a second per subject.
//!
//! Concurrency model: a worker's tasks never leave its thread, so each worker has its own idle
//! connection lists (an uncontended mutex each) and its own random state. Everything shared between
//! workers is immutable (the [`state::Routing`] snapshot, swapped whole with `ArcSwap`) or atomic
//! (member flags and counters).
//!
//! Config keys read: `[server]`, `[[listener]]` and its routes, `[farm.*]` (see
//! `docs/configuration.md`). Metrics: member counters in `drover-core` (in-flight, requests,
//! failures, bytes, latency EWMA, open connections).

pub mod access_log;
pub mod batch;
pub mod body;
pub mod error;
pub mod forward;
pub mod h1client;
pub mod handler;
pub mod idle;
pub mod lazy;
pub mod loglimit;
pub mod orca;
pub mod pool;
pub mod route;
pub mod server;
pub mod state;
pub mod sticky;
pub mod upgrade;

pub use error::ServeError;
pub use server::{Options, Proxy};
pub use state::Routing;
