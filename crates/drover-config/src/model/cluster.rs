//! The validated `[cluster]` table: this node, its peers, the VIPs they share and how. Parsed in
//! `cluster.rs`; read by drover-cluster (the keepalived plan and supervisor, and the gossip of
//! runtime state) and by the binary, which starts them.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::model::{Cidr, Secret};

/// `[cluster]`: several drover nodes that share VIPs (through keepalived) and runtime state
/// (gossip). Absent = a lone node.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterConfig {
    /// `node`: this node's name, one of [`ClusterConfig::nodes`].
    pub node: String,
    /// `nodes`: every node of the cluster, this one included, in file order.
    pub nodes: Vec<ClusterNode>,
    /// `secret` or `secret_file`: shared by every node; the gossip's cluster id is a hash of it (VRRP
    /// version 3 carries no authentication: keepalived listens only to the unicast peers).
    pub secret: Secret,
    /// `interface`: the network interface the VIPs are added to. Required when there are VIPs.
    pub interface: Option<String>,
    /// `mode`: how the VIPs are spread. Default [`ClusterMode::Pool`].
    pub mode: ClusterMode,
    /// `preempt`: a node that comes back takes its VIPs back. Default true.
    pub preempt: bool,
    /// `advert_interval`: VRRP advertisement interval, 10ms to 40s in 10 ms steps. Default 1s.
    /// A dead master is noticed after about 3 of them.
    pub advert_interval: Duration,
    /// `vips`: the virtual addresses, with their prefix length (`"10.0.0.100/24"`), IPv4 and
    /// IPv6 mixed as needed. Default none (state sharing only).
    pub vips: Vec<Cidr>,
    /// `gossip_port`: the UDP port of the gossip on each node's address. Default 7946.
    pub gossip_port: u16,
    /// `gossip_interval`: how often a node gossips with a few peers, 10ms to 10s. Default 100ms.
    /// The failure detector expects a heartbeat about this often.
    pub gossip_interval: Duration,
    /// `gossip_max_sticky_keys`: learned sticky sessions one node publishes at most (the oldest
    /// go first). Default 100000.
    pub gossip_max_sticky_keys: usize,
    /// `ready_requires`: what "this node is ready" means for keepalived. Default
    /// [`ReadyRequires::ReadyMember`].
    pub ready_requires: ReadyRequires,
    /// `keepalived`: the keepalived binary (a path, or a name looked up in `PATH`). Default
    /// `"keepalived"`.
    pub keepalived: PathBuf,
    /// `run_dir`: where drover writes keepalived's config, pid files and the readiness file.
    /// Default `/run/drover/<node>`.
    pub run_dir: PathBuf,
}

impl ClusterConfig {
    pub const DEFAULT_ADVERT_INTERVAL: Duration = Duration::from_secs(1);
    pub const MIN_ADVERT_INTERVAL: Duration = Duration::from_millis(10);
    pub const MAX_ADVERT_INTERVAL: Duration = Duration::from_secs(40);
    pub const DEFAULT_GOSSIP_PORT: u16 = 7946;
    pub const DEFAULT_GOSSIP_INTERVAL: Duration = Duration::from_millis(100);
    pub const DEFAULT_GOSSIP_MAX_STICKY_KEYS: usize = 100_000;
    /// Most nodes: VRRP priorities are 1..=254 and each node needs its own step.
    pub const MAX_NODES: usize = 32;
    /// Most VIPs: one VRRP instance (and virtual router id, 1..=255) each.
    pub const MAX_VIPS: usize = 255;

    /// This node's entry in [`ClusterConfig::nodes`] (validated to exist).
    pub fn this_node(&self) -> Option<&ClusterNode> {
        self.nodes.iter().find(|n| n.name == self.node)
    }

    /// The other nodes, in file order.
    pub fn peers(&self) -> impl Iterator<Item = &ClusterNode> {
        self.nodes.iter().filter(|n| n.name != self.node)
    }
}

/// `[[cluster.nodes]]`: one node of the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNode {
    /// `name`: unique in the cluster.
    pub name: String,
    /// `address`: the node's own address on the cluster network: VRRP's unicast source and peer
    /// address, and where its gossip listens (with `gossip_port`).
    pub address: IpAddr,
}

/// `mode`: how VIPs are held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterMode {
    /// `"pair"`: active/passive. Every VIP on the first node of `nodes` while it is ready, then
    /// on the next (Heartbeat style); one VRRP instance per address family.
    Pair,
    /// `"pool"`: VIPs spread evenly over the ready nodes, each node master of its share, the
    /// survivors taking over a dead node's share (Wackamole style); one VRRP instance per VIP.
    Pool,
}

impl ClusterMode {
    pub fn as_str(self) -> &'static str {
        match self {
            ClusterMode::Pair => "pair",
            ClusterMode::Pool => "pool",
        }
    }
}

/// `ready_requires`: when drover tells keepalived this node may hold VIPs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadyRequires {
    /// `"listeners"`: every listener is bound.
    Listeners,
    /// `"ready-member"`: every listener is bound and every farm a listener sends to has at least
    /// one ready member.
    ReadyMember,
}

impl ReadyRequires {
    pub fn as_str(self) -> &'static str {
        match self {
            ReadyRequires::Listeners => "listeners",
            ReadyRequires::ReadyMember => "ready-member",
        }
    }
}
