//! The plan: which VRRP instances the cluster runs, which VIPs each carries, and every node's
//! priority in each — pure, the same on every node (they all read the same `[cluster]` table), so
//! the nodes agree on who should be master without talking about it.
//!
//! Pool mode: one instance per VIP. VIP `i` belongs to node `i mod N` (its owner: highest
//! priority), so each node is master of an even share. The order in which the others take it
//! over is rotated with `i div N`, so a dead node's VIPs are spread over the survivors instead of
//! all landing on its neighbour (with 3 nodes and 6 VIPs, node 0's VIPs 0 and 3 go to nodes 1
//! and 2). Pair mode: one instance per address family carrying every VIP of that family, the
//! nodes in file order (the first is the active node).
//!
//! Virtual router ids: the VIP's index plus a base derived from the cluster secret, so two drover
//! clusters on one LAN most likely do not collide, and the ids never change while the VIP list
//! keeps its order. Priorities: 250 for the owner, then down in even steps (at least 1, never
//! below 1; 255 is reserved by VRRP for the address owner).

use std::net::IpAddr;

use drover_config::{Cidr, ClusterConfig, ClusterMode};

/// Highest priority given (255 is the VRRP "address owner", which drover never is).
pub const TOP_PRIORITY: u8 = 250;

/// One VRRP instance (one virtual router).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// keepalived's instance name: `drover_<vrid>`; also the key of its state in the API.
    pub name: String,
    /// The virtual router id, 1..=255.
    pub vrid: u8,
    /// The VIPs it carries.
    pub vips: Vec<Cidr>,
    /// Each node's priority, in the order of `[cluster] nodes`.
    pub priorities: Vec<u8>,
}

impl Instance {
    /// The node index that holds it while every node is ready.
    pub fn owner(&self) -> usize {
        (0..self.priorities.len())
            .max_by_key(|&i| self.priorities[i])
            .unwrap_or(0)
    }

    /// Node indexes in takeover order: owner first.
    pub fn takeover_order(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.priorities.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(self.priorities[i]));
        order
    }
}

/// Every instance of the cluster, in VIP order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub instances: Vec<Instance>,
}

impl Plan {
    pub fn new(c: &ClusterConfig) -> Plan {
        let n = c.nodes.len().max(1);
        let base = vrid_base(c.secret.expose());
        let vrid = |i: usize| ((base as usize + i) % 255 + 1) as u8;
        let instances = match c.mode {
            ClusterMode::Pool => c
                .vips
                .iter()
                .enumerate()
                .map(|(i, vip)| Instance {
                    name: format!("drover_{}", vrid(i)),
                    vrid: vrid(i),
                    vips: vec![*vip],
                    priorities: pool_priorities(i, n),
                })
                .collect(),
            ClusterMode::Pair => {
                let mut out = Vec::new();
                for v6 in [false, true] {
                    let vips: Vec<Cidr> = c
                        .vips
                        .iter()
                        .filter(|v| v.addr.is_ipv6() == v6)
                        .copied()
                        .collect();
                    if vips.is_empty() {
                        continue;
                    }
                    let id = vrid(out.len());
                    out.push(Instance {
                        name: format!("drover_{id}"),
                        vrid: id,
                        vips,
                        priorities: (0..n).map(|rank| priority(rank, n)).collect(),
                    });
                }
                out
            }
        };
        Plan { instances }
    }

    /// The VIPs node `node` (an index into `nodes`) holds while every node is ready.
    pub fn share(&self, node: usize) -> Vec<Cidr> {
        self.instances
            .iter()
            .filter(|i| i.owner() == node)
            .flat_map(|i| i.vips.iter().copied())
            .collect()
    }

    /// The instance carrying `vip`.
    pub fn instance_of(&self, vip: IpAddr) -> Option<&Instance> {
        self.instances
            .iter()
            .find(|i| i.vips.iter().any(|v| v.addr == vip))
    }
}

/// Priority of the node ranked `rank` (0 = owner) among `n`.
fn priority(rank: usize, n: usize) -> u8 {
    let step = (usize::from(TOP_PRIORITY) - 1) / n.max(1);
    let step = step.clamp(1, 50);
    (usize::from(TOP_PRIORITY).saturating_sub(rank * step)).max(1) as u8
}

/// Priorities of every node for pool VIP `i` among `n` nodes.
fn pool_priorities(i: usize, n: usize) -> Vec<u8> {
    let owner = i % n;
    // The others, in ring order after the owner, rotated by the round so takeovers spread.
    let mut others: Vec<usize> = (1..n).map(|s| (owner + s) % n).collect();
    if !others.is_empty() {
        let round = (i / n) % others.len();
        others.rotate_left(round);
    }
    let mut priorities = vec![0u8; n];
    priorities[owner] = priority(0, n);
    for (rank, &node) in others.iter().enumerate() {
        priorities[node] = priority(rank + 1, n);
    }
    priorities
}

/// 0..=254 from the secret (FNV-1a): the first virtual router id is this plus one.
fn vrid_base(secret: &[u8]) -> u8 {
    let mut h: u32 = 0x811c_9dc5;
    for &b in secret {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    (h % 255) as u8
}

/// A `[cluster]` for tests: nodes `n1..=nodes` at 10.77.0.i, interface eth0, adverts of 100 ms.
#[cfg(test)]
pub(crate) fn fixture(
    node: &str,
    mode: ClusterMode,
    preempt: bool,
    nodes: usize,
    vips: &[&str],
) -> ClusterConfig {
    ClusterConfig {
        node: node.into(),
        nodes: (1..=nodes)
            .map(|i| drover_config::ClusterNode {
                name: format!("n{i}"),
                address: format!("10.77.0.{i}").parse().unwrap(),
            })
            .collect(),
        secret: drover_config::Secret::new("0123456789abcdef"),
        interface: Some("eth0".into()),
        mode,
        preempt,
        advert_interval: std::time::Duration::from_millis(100),
        vips: vips
            .iter()
            .map(|v| drover_config::units::parse_cidr(v).unwrap())
            .collect(),
        gossip_port: 7946,
        gossip_interval: ClusterConfig::DEFAULT_GOSSIP_INTERVAL,
        gossip_max_sticky_keys: ClusterConfig::DEFAULT_GOSSIP_MAX_STICKY_KEYS,
        ready_requires: drover_config::ReadyRequires::Listeners,
        keepalived: "keepalived".into(),
        run_dir: format!("/run/drover/{node}").into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_config::Secret;

    fn config(mode: ClusterMode, nodes: usize, vips: &[&str]) -> ClusterConfig {
        fixture("n1", mode, true, nodes, vips)
    }

    fn vips(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("10.0.1.{}/24", i + 1)).collect()
    }

    #[test]
    fn pool_spreads_vips_evenly() {
        for nodes in 1..=5 {
            for count in 0..=12 {
                let v = vips(count);
                let v: Vec<&str> = v.iter().map(String::as_str).collect();
                let plan = Plan::new(&config(ClusterMode::Pool, nodes, &v));
                assert_eq!(plan.instances.len(), count);
                let shares: Vec<usize> = (0..nodes).map(|n| plan.share(n).len()).collect();
                let (lo, hi) = (shares.iter().min().unwrap(), shares.iter().max().unwrap());
                assert!(hi - lo <= 1, "{nodes} nodes, {count} VIPs: {shares:?}");
                assert_eq!(shares.iter().sum::<usize>(), count);
                for i in &plan.instances {
                    let mut p = i.priorities.clone();
                    p.sort_unstable();
                    p.dedup();
                    assert_eq!(p.len(), nodes, "priorities must differ: {:?}", i.priorities);
                    assert!(
                        i.priorities
                            .iter()
                            .all(|&p| (1..=TOP_PRIORITY).contains(&p))
                    );
                }
            }
        }
    }

    #[test]
    fn a_dead_nodes_share_spreads_over_the_survivors() {
        let v = vips(6);
        let v: Vec<&str> = v.iter().map(String::as_str).collect();
        let plan = Plan::new(&config(ClusterMode::Pool, 3, &v));
        // Node 0 owns VIPs 0 and 3; they go to different survivors.
        let heirs: Vec<usize> = plan
            .instances
            .iter()
            .filter(|i| i.owner() == 0)
            .map(|i| i.takeover_order()[1])
            .collect();
        assert_eq!(heirs.len(), 2);
        assert_ne!(heirs[0], heirs[1], "{heirs:?}");
    }

    #[test]
    fn virtual_router_ids_are_distinct_stable_and_in_range() {
        let v = vips(255);
        let v: Vec<&str> = v.iter().map(String::as_str).collect();
        let c = config(ClusterMode::Pool, 3, &v);
        let a = Plan::new(&c);
        let mut ids: Vec<u8> = a.instances.iter().map(|i| i.vrid).collect();
        assert!(ids.iter().all(|&id| id >= 1));
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 255);
        assert_eq!(a, Plan::new(&c));
        let mut other = c.clone();
        other.secret = Secret::new("another-cluster-secret");
        assert_ne!(a.instances[0].vrid, Plan::new(&other).instances[0].vrid);
    }

    #[test]
    fn pair_is_one_instance_per_family_led_by_the_first_node() {
        let plan = Plan::new(&config(
            ClusterMode::Pair,
            2,
            &["10.0.1.1/24", "fd00::1/64", "10.0.1.2/24"],
        ));
        assert_eq!(plan.instances.len(), 2);
        assert_eq!(plan.instances[0].vips.len(), 2);
        assert!(plan.instances[0].vips.iter().all(|v| v.addr.is_ipv4()));
        assert_eq!(plan.instances[1].vips.len(), 1);
        assert!(plan.instances.iter().all(|i| i.owner() == 0));
        assert_eq!(plan.share(0).len(), 3);
        assert!(plan.share(1).is_empty());
        assert_ne!(plan.instances[0].vrid, plan.instances[1].vrid);
    }
}
