//! End-to-end tests of the test member over real sockets on 127.0.0.1.
//!
//! `common` holds a tiny hyper client, a raw-TCP exchange and deadline polling; `routes` checks
//! every route and the configured behaviours, `lifecycle` keep-alive, hang, kill and stop, `ws`
//! the WebSocket echo. No test sleeps for a fixed time: waits poll a condition until a deadline.

mod common;
mod lifecycle;
mod routes;
mod sleepy;
mod ws;
