//! End-to-end tests of the data plane: a real drover proxy (its own worker threads and sockets)
//! in front of real test members, all on 127.0.0.1 ports chosen by the kernel, spoken to over
//! HTTP. Waits are deadline polls; load loops are bounded in count.

mod batch;
mod common;
mod failures;
mod forwarding;
mod limits;
mod policies;
mod retries;
mod routes;
mod upgrade;
mod wire;
