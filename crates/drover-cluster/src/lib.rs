//! drover-cluster: a cluster of balancers (DESIGN.md, "Cluster").
//!
//! - [`gossip`]: peers share runtime state (operator changes, learned sticky sessions, pushed
//!   load reports) by gossip (chitchat), last writer wins.

pub mod gossip;
