//! drover-cluster: several drover nodes as one balancer. Peers share runtime state by gossip
//! ([`gossip`]) and VIPs move between them through keepalived ([`vrrp`]).
//!
//! Where it sits: the binary starts it after the proxy (when the config has `[cluster]`) and
//! hands it the checks that say whether this node may hold VIPs ([`Liveness`]); the admin API
//! shows its status and turns maintenance on and off. The VIP half depends on drover-config only;
//! the gossip applies peers' changes to the live snapshot (drover-proxy's `Routing`, drover-core's
//! members and learn tables), off the request path, on the control runtime.
//!
//! Key types: [`vrrp::Vips`] (keepalived's supervisor, the readiness file, the status),
//! [`vrrp::Plan`] (who is master of which VIP, pure), [`Liveness`] (a readiness check),
//! [`gossip::Gossip`] (the state sharing: operator changes, learned sticky sessions, pushed load
//! reports; last writer wins).
//!
//! Config keys read: `[cluster]` (see `docs/configuration.md`). Processes: one keepalived per
//! node, a child of drover that dies with it. Sockets: the gossip's UDP port (`gossip_port`).

pub mod gossip;
pub mod vrrp;

/// One condition this node must meet to hold VIPs: listeners bound, a farm with a ready member,
/// (later) being a live member of the gossip. Checked a few times a second off the request path;
/// must not block.
pub trait Liveness: Send + Sync {
    /// A short name for logs and the API (`"listeners"`, `"gossip"`).
    fn name(&self) -> &str;
    /// `Err(why)` while this node must not hold VIPs.
    fn check(&self) -> Result<(), String>;
}
