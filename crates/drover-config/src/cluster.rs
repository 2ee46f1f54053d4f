//! `[cluster]` and `[[cluster.nodes]]`: this node's name, its peers, the VIPs they share and how
//! (see [`crate::model::ClusterConfig`]). Walked by `parse.rs` after the other tables; nothing
//! here depends on them.
//!
//! Rules checked here, each reported at its key: `node` names one of `nodes`; node names and
//! addresses are unique; every VIP is an address with a prefix (`"10.0.0.100/24"`), not a node's
//! address and not given twice; `advert_interval` is 10ms to 40s in whole centiseconds (VRRP
//! version 3 counts in centiseconds); `interface` is required once there are VIPs.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::model::{Cidr, ClusterConfig, ClusterMode, ClusterNode, ReadyRequires};
use crate::units::{self, format_duration as show};
use crate::walk::{Ctx, Table};

const CLUSTER_KEYS: &[&str] = &[
    "node",
    "nodes",
    "secret",
    "secret_file",
    "interface",
    "mode",
    "preempt",
    "advert_interval",
    "vips",
    "gossip_port",
    "gossip_interval",
    "gossip_max_sticky_keys",
    "ready_requires",
    "keepalived",
    "run_dir",
];
const NODE_KEYS: &[&str] = &["name", "address"];
const NODES_EXAMPLE: &str =
    "[[cluster.nodes]] tables, each with name = \"n1\" and address = \"10.0.0.1\"";
const VIP_FORMS: &str = "an address with its prefix length, e.g. \"10.0.0.100/24\" or \
                         \"fd00::100/64\"";

/// `[cluster]`, or `None` when absent or too broken to use (every problem reported).
pub(crate) fn cluster(ctx: &mut Ctx<'_>, root: &Table<'_, '_>) -> Option<ClusterConfig> {
    let t = root.table(ctx, "cluster", Some(CLUSTER_KEYS))?;
    let mut valid = true;
    let nodes = nodes(ctx, &t, &mut valid);
    let node = match (
        t.str(ctx, "node", "this node's name, one of nodes"),
        t.get("node"),
    ) {
        (Some(name), Some(v)) => {
            if !nodes.iter().any(|n| n.name == name) {
                let known: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
                let mut message = "unknown node; it must be the name of one of nodes".to_owned();
                if let Some(close) = units::did_you_mean(name, known.iter().copied()) {
                    message.push_str(&format!(" (did you mean {close}?)"));
                }
                if !known.is_empty() {
                    message.push_str(&format!(": {}", known.join(", ")));
                }
                ctx.bad(&t.child("node"), v, message);
                valid = false;
            }
            name.to_owned()
        }
        (None, Some(_)) => {
            valid = false;
            String::new()
        }
        (_, None) => {
            t.missing(
                ctx,
                "node",
                "this node's name, one of nodes, e.g. node = \"n1\"",
            );
            valid = false;
            String::new()
        }
    };
    let secret = crate::reports::secret(
        ctx,
        &t,
        "secret",
        "secret_file",
        "shared by every node of the cluster",
    );
    if secret.is_none() && !t.has("secret") && !t.has("secret_file") {
        t.missing(
            ctx,
            "secret",
            "every node shares it (at least 16 bytes), e.g. secret_file = \"/etc/drover/cluster.key\"",
        );
    }
    let mode = mode(ctx, &t);
    let preempt = t.bool(ctx, "preempt").unwrap_or(true);
    let advert_interval = advert_interval(ctx, &t);
    let vips = vips(ctx, &t, &nodes, &mut valid);
    let interface = match (
        t.str(ctx, "interface", "a network interface name, e.g. \"eth0\""),
        t.get("interface"),
    ) {
        (Some(name), Some(v)) => {
            // Linux: at most 15 bytes, no '/', no whitespace, not "." or "..".
            let ok = !name.is_empty()
                && name.len() <= 15
                && name != "."
                && name != ".."
                && !name
                    .chars()
                    .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control());
            if !ok {
                ctx.bad(
                    &t.child("interface"),
                    v,
                    "not an interface name; expected 1 to 15 characters without '/', ':' or spaces, \
                     e.g. \"eth0\"",
                );
            }
            Some(name.to_owned())
        }
        _ => None,
    };
    if interface.is_none() && !t.has("interface") && !vips.is_empty() {
        t.missing(
            ctx,
            "interface",
            "the network interface the VIPs are added to, e.g. interface = \"eth0\"",
        );
    }
    let gossip_port = t
        .int(ctx, "gossip_port", 1..=65535)
        .map_or(ClusterConfig::DEFAULT_GOSSIP_PORT, |p| p as u16);
    let gossip_interval = gossip_interval(ctx, &t);
    let gossip_max_sticky_keys = t
        .int(ctx, "gossip_max_sticky_keys", 1..=10_000_000)
        .map_or(ClusterConfig::DEFAULT_GOSSIP_MAX_STICKY_KEYS, |n| {
            n as usize
        });
    let ready_requires = ready_requires(ctx, &t);
    let keepalived = t
        .str(
            ctx,
            "keepalived",
            "the keepalived binary, a path or a name found in PATH",
        )
        .map_or_else(|| PathBuf::from("keepalived"), PathBuf::from);
    let run_dir = t
        .str(
            ctx,
            "run_dir",
            "a directory drover may write keepalived's files to",
        )
        .map_or_else(|| PathBuf::from("/run/drover").join(&node), PathBuf::from);
    (valid && secret.is_some()).then(|| ClusterConfig {
        node,
        nodes,
        secret: secret.unwrap_or_else(|| crate::model::Secret::new("")),
        interface,
        mode,
        preempt,
        advert_interval,
        vips,
        gossip_port,
        gossip_interval,
        gossip_max_sticky_keys,
        ready_requires,
        keepalived,
        run_dir,
    })
}

fn nodes(ctx: &mut Ctx<'_>, t: &Table<'_, '_>, valid: &mut bool) -> Vec<ClusterNode> {
    let Some(v) = t.get("nodes") else {
        t.missing(
            ctx,
            "nodes",
            &format!("every node of the cluster: {NODES_EXAMPLE}"),
        );
        *valid = false;
        return Vec::new();
    };
    let key = t.child("nodes");
    let Some(items) = ctx.expect_array(
        &key,
        v,
        &format!("an array of node tables: {NODES_EXAMPLE}"),
    ) else {
        *valid = false;
        return Vec::new();
    };
    if items.is_empty() || items.len() > ClusterConfig::MAX_NODES {
        ctx.bad(
            &key,
            v,
            format!(
                "{} nodes; expected 1 to {} (this one included): {NODES_EXAMPLE}",
                items.len(),
                ClusterConfig::MAX_NODES
            ),
        );
        *valid = false;
    }
    let mut nodes: Vec<ClusterNode> = Vec::new();
    // (index, line) of each node pushed, for "already" messages.
    let mut lines: Vec<(usize, usize)> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let Some(n) = Table::open(ctx, format!("{key}[{index}]"), item, Some(NODE_KEYS)) else {
            *valid = false;
            continue;
        };
        let line = ctx.line(n.at());
        let name = match (
            n.str(ctx, "name", "a node name, e.g. \"n1\""),
            n.get("name"),
        ) {
            (Some(name), Some(v)) => {
                if !valid_node_name(name) {
                    ctx.bad(
                        &n.child("name"),
                        v,
                        "not a node name; expected letters, digits, '-', '_' or '.', at most 64",
                    );
                    None
                } else if let Some(i) = nodes.iter().position(|o| o.name == name) {
                    let (first, first_line) = lines[i];
                    ctx.bad(
                        &n.child("name"),
                        v,
                        format!("duplicate node name; {key}[{first}] (line {first_line}) is already {name:?}; each node needs its own name"),
                    );
                    None
                } else {
                    Some(name.to_owned())
                }
            }
            (_, None) => {
                n.missing(ctx, "name", "the node's name, e.g. name = \"n1\"");
                None
            }
            _ => None,
        };
        let address = match (
            n.str(ctx, "address", "the node's IP address, e.g. \"10.0.0.1\""),
            n.get("address"),
        ) {
            (Some(text), Some(v)) => match text.trim().parse::<IpAddr>() {
                Ok(ip) if ip.is_unspecified() || ip.is_multicast() => {
                    ctx.bad(
                        &n.child("address"),
                        v,
                        "the node's own unicast address is needed (its peers send to it), not a \
                         wildcard or multicast address",
                    );
                    None
                }
                Ok(ip) => {
                    if let Some(i) = nodes.iter().position(|o| o.address == ip) {
                        let (first, first_line) = lines[i];
                        ctx.bad(
                            &n.child("address"),
                            v,
                            format!("duplicate node address; {key}[{first}] (line {first_line}) already has {ip}; each node needs its own address"),
                        );
                        None
                    } else {
                        Some(ip)
                    }
                }
                Err(_) => {
                    ctx.bad(
                        &n.child("address"),
                        v,
                        "not an IP address; expected the node's address without a port or prefix, \
                         e.g. \"10.0.0.1\" or \"fd00::1\"",
                    );
                    None
                }
            },
            (_, None) => {
                n.missing(
                    ctx,
                    "address",
                    "the node's IP address on the cluster network, e.g. address = \"10.0.0.1\"",
                );
                None
            }
            _ => None,
        };
        match (name, address) {
            (Some(name), Some(address)) => {
                nodes.push(ClusterNode { name, address });
                lines.push((index, line));
            }
            _ => *valid = false,
        }
    }
    nodes
}

/// Node names show up in keepalived's config, file names and the API.
fn valid_node_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

fn mode(ctx: &mut Ctx<'_>, t: &Table<'_, '_>) -> ClusterMode {
    const WHAT: &str = "\"pair\" (active/passive) or \"pool\" (VIPs spread over the nodes)";
    match (t.str(ctx, "mode", WHAT), t.get("mode")) {
        (Some("pair"), _) => ClusterMode::Pair,
        (Some("pool"), _) => ClusterMode::Pool,
        (Some(_), Some(v)) => {
            ctx.bad(
                &t.child("mode"),
                v,
                format!("unknown mode; expected {WHAT}"),
            );
            ClusterMode::Pool
        }
        _ => ClusterMode::Pool,
    }
}

fn ready_requires(ctx: &mut Ctx<'_>, t: &Table<'_, '_>) -> ReadyRequires {
    const WHAT: &str = "\"listeners\" (every listener bound) or \"ready-member\" (and every \
                        farm a listener uses has a ready member)";
    match (t.str(ctx, "ready_requires", WHAT), t.get("ready_requires")) {
        (Some("listeners"), _) => ReadyRequires::Listeners,
        (Some("ready-member"), _) => ReadyRequires::ReadyMember,
        (Some(_), Some(v)) => {
            ctx.bad(&t.child("ready_requires"), v, format!("expected {WHAT}"));
            ReadyRequires::ReadyMember
        }
        _ => ReadyRequires::ReadyMember,
    }
}

/// `gossip_interval`: how often a node gossips; the failure detector and the propagation time
/// follow it.
fn gossip_interval(ctx: &mut Ctx<'_>, t: &Table<'_, '_>) -> Duration {
    let default = ClusterConfig::DEFAULT_GOSSIP_INTERVAL;
    let (Some(d), Some(v)) = (t.duration(ctx, "gossip_interval"), t.get("gossip_interval")) else {
        return default;
    };
    let (lo, hi) = (Duration::from_millis(10), Duration::from_secs(10));
    if d < lo || d > hi {
        ctx.bad(
            &t.child("gossip_interval"),
            v,
            format!(
                "out of range; expected {} to {} (\"100ms\" spreads a change in well under a second)",
                show(lo),
                show(hi)
            ),
        );
        return default;
    }
    d
}

fn advert_interval(ctx: &mut Ctx<'_>, t: &Table<'_, '_>) -> Duration {
    let default = ClusterConfig::DEFAULT_ADVERT_INTERVAL;
    let (Some(d), Some(v)) = (t.duration(ctx, "advert_interval"), t.get("advert_interval")) else {
        return default;
    };
    let (lo, hi) = (
        ClusterConfig::MIN_ADVERT_INTERVAL,
        ClusterConfig::MAX_ADVERT_INTERVAL,
    );
    if d < lo || d > hi {
        ctx.bad(
            &t.child("advert_interval"),
            v,
            format!(
                "out of range; expected {} to {} (VRRP version 3)",
                show(lo),
                show(hi)
            ),
        );
        return default;
    }
    if d.as_nanos() % 10_000_000 != 0 {
        ctx.bad(
            &t.child("advert_interval"),
            v,
            "VRRP counts adverts in centiseconds; expected a multiple of 10ms, e.g. \"100ms\"",
        );
        return default;
    }
    d
}

fn vips(
    ctx: &mut Ctx<'_>,
    t: &Table<'_, '_>,
    nodes: &[ClusterNode],
    valid: &mut bool,
) -> Vec<Cidr> {
    let Some(v) = t.get("vips") else {
        return Vec::new();
    };
    let key = t.child("vips");
    let Some(items) = ctx.expect_array(&key, v, &format!("an array of VIPs, each {VIP_FORMS}"))
    else {
        *valid = false;
        return Vec::new();
    };
    if items.len() > ClusterConfig::MAX_VIPS {
        ctx.bad(
            &key,
            v,
            format!(
                "{} VIPs; at most {} (one VRRP virtual router each)",
                items.len(),
                ClusterConfig::MAX_VIPS
            ),
        );
        *valid = false;
    }
    let mut vips: Vec<Cidr> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let ikey = format!("{key}[{index}]");
        let Some(text) = ctx.expect_str(&ikey, item, VIP_FORMS) else {
            *valid = false;
            continue;
        };
        let problem = match text.split_once('/') {
            None => Some(format!("missing the prefix length; expected {VIP_FORMS}")),
            Some(_) => match units::parse_cidr(text) {
                Err(e) => Some(format!("invalid VIP: {e}")),
                Ok(c)
                    if c.addr.is_unspecified() || c.addr.is_multicast() || c.addr.is_loopback() =>
                {
                    Some(format!(
                        "not usable as a VIP (unspecified, multicast or loopback); expected {VIP_FORMS}"
                    ))
                }
                Ok(c) if vips.iter().any(|o| o.addr == c.addr) => {
                    Some("duplicate VIP; each address may be listed once".to_owned())
                }
                Ok(c) if nodes.iter().any(|n| n.address == c.addr) => Some(
                    "this is a node's own address; a VIP must be an address no node owns"
                        .to_owned(),
                ),
                Ok(c) => {
                    vips.push(c);
                    None
                }
            },
        };
        if let Some(message) = problem {
            ctx.bad(&ikey, item, message);
            *valid = false;
        }
    }
    vips
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names() {
        assert!(valid_node_name("n1"));
        assert!(valid_node_name("lb-a.dc1"));
        assert!(!valid_node_name(""));
        assert!(!valid_node_name(".."));
        assert!(!valid_node_name("a b"));
        assert!(!valid_node_name("a/b"));
        assert!(!valid_node_name(&"x".repeat(65)));
    }
}
