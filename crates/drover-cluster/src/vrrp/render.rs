//! keepalived.conf from the [`Plan`] and this node's `[cluster]` settings: pure text, written by
//! the supervisor before each start of keepalived.
//!
//! What it asks of keepalived (2.x) and why:
//! - `vrrp_version 3` and `advert_int` in centiseconds: sub-second adverts (version 2 counts
//!   whole seconds);
//! - `unicast_src_ip` + `unicast_peer` (and `check_unicast_src`): works where multicast does
//!   not, and only the listed peers are heard (version 3 has no authentication field);
//! - every instance starts `BACKUP`; `nopreempt` when `preempt = false` (keepalived honours it
//!   only in state BACKUP);
//! - `track_file drover_ready` with weight 0 (drover creates the file; keepalived must not
//!   overwrite it): drover writes `0` there while this node is ready
//!   and not in maintenance, `1` otherwise, and a non-zero value puts every instance in FAULT, so
//!   its VIPs go (and a master that leaves sends a priority-0 advert: the backup takes over at
//!   once instead of waiting three adverts);
//! - `max_auto_priority`: keepalived's VRRP process runs at real-time priority, so a busy machine
//!   does not delay its adverts into a false takeover;
//! - `notify_fifo`: keepalived writes each instance's state changes there; the supervisor reads
//!   them for the API;
//! - gratuitous ARP / unsolicited neighbour adverts: a burst on becoming master, a second one a
//!   second later (`vrrp_garp_master_delay 1`, instead of 5) and a refresh every minute, for
//!   switches and neighbours that missed the first;
//! - one address family per instance (keepalived requires it; the plan makes them so): an
//!   instance of the nodes' family sends its adverts unicast; one of the other family (IPv6 VIPs
//!   on an IPv4 cluster network) sends them by multicast from the interface's link-local
//!   address (VRRP's ff02::12), since keepalived's unicast peers must be of the instance's
//!   family.

use std::fmt::Write;
use std::path::Path;

use drover_config::ClusterConfig;

use super::plan::Plan;

/// The name of the track file in keepalived's config.
pub const TRACK: &str = "drover_ready";

/// Where the run files live inside `run_dir`.
pub struct Files<'a> {
    pub track: &'a Path,
    pub fifo: &'a Path,
}

/// keepalived.conf for this node (`c.node`). `None` when the node is not in `c.nodes` or has no
/// interface (both refused by the config parser).
pub fn render(c: &ClusterConfig, plan: &Plan, files: &Files<'_>) -> Option<String> {
    let me = c.nodes.iter().position(|n| n.name == c.node)?;
    let this = &c.nodes[me];
    let interface = c.interface.as_deref()?;
    let centis = (c.advert_interval.as_millis() / 10).max(1);
    let advert = format!("{}.{:02}", centis / 100, centis % 100);
    let mut out = String::new();
    // `write!` to a String cannot fail: the results are ignored below for that reason.
    let _ = writeln!(
        out,
        "# Written by drover from its [cluster] table, for node {:?}.\n\
         # Do not edit: drover writes it again each time it starts keepalived.\n",
        quote_free(&c.node)
    );
    let _ = writeln!(
        out,
        "global_defs {{\n    router_id drover_{node}\n    vrrp_version 3\n    \
         vrrp_garp_master_delay 1\n    vrrp_garp_master_repeat 3\n    \
         vrrp_garp_master_refresh 60\n    vrrp_garp_interval 0.001\n    vrrp_gna_interval 0.001\n    \
         max_auto_priority\n    script_user root\n    enable_script_security\n    notify_fifo {fifo}\n}}\n",
        node = c.node,
        fifo = files.fifo.display(),
    );
    let _ = writeln!(
        out,
        "track_file {TRACK} {{\n    file {track}\n    weight 0\n}}\n",
        track = files.track.display(),
    );
    for inst in &plan.instances {
        let _ = writeln!(out, "vrrp_instance {} {{", inst.name);
        let _ = writeln!(out, "    state BACKUP");
        let _ = writeln!(out, "    interface {interface}");
        let _ = writeln!(out, "    virtual_router_id {}", inst.vrid);
        let _ = writeln!(out, "    priority {}", inst.priorities[me]);
        let _ = writeln!(out, "    advert_int {advert}");
        if !c.preempt {
            let _ = writeln!(out, "    nopreempt");
        }
        // One family per instance (the plan makes them so). Adverts go unicast when it is the
        // family of the nodes' addresses, else multicast from link-local addresses.
        let v4 = inst.vips.first().is_none_or(|v| v.addr.is_ipv4());
        if v4 == this.address.is_ipv4() {
            let _ = writeln!(out, "    unicast_src_ip {}", this.address);
            let _ = writeln!(out, "    unicast_peer {{");
            for peer in c.peers().filter(|p| p.address.is_ipv4() == v4) {
                let _ = writeln!(out, "        {}", peer.address);
            }
            let _ = writeln!(out, "    }}");
            let _ = writeln!(out, "    check_unicast_src");
        }
        let _ = writeln!(out, "    virtual_ipaddress {{");
        for v in &inst.vips {
            let _ = writeln!(out, "        {}/{} dev {interface}", v.addr, v.prefix);
        }
        let _ = writeln!(out, "    }}");
        let _ = writeln!(out, "    track_file {{\n        {TRACK}\n    }}");
        let _ = writeln!(out, "}}\n");
    }
    Some(out)
}

/// The node name is validated to letters, digits, `-_.`; this keeps a comment line one line
/// even if that ever changes.
fn quote_free(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_config::ClusterMode;

    pub(super) const VIPS: &[&str] = &["10.77.0.100/24", "10.77.0.101/24", "fd77::100/64"];

    fn config(node: &str, mode: ClusterMode, preempt: bool) -> ClusterConfig {
        crate::vrrp::plan::fixture(node, mode, preempt, 3, VIPS)
    }

    fn conf(c: &ClusterConfig) -> String {
        let files = Files {
            track: Path::new("/run/drover/n2/ready"),
            fifo: Path::new("/run/drover/n2/notify.fifo"),
        };
        render(c, &Plan::new(c), &files).unwrap()
    }

    #[test]
    fn pool_instance_per_vip_with_unicast_peers_and_the_track_file() {
        let c = config("n2", ClusterMode::Pool, true);
        let text = conf(&c);
        assert_eq!(text.matches("vrrp_instance ").count(), 3);
        assert!(text.contains("vrrp_version 3"));
        assert!(text.contains("advert_int 0.10\n"));
        assert!(text.contains("unicast_src_ip 10.77.0.2\n"));
        assert!(text.contains("unicast_peer {\n        10.77.0.1\n        10.77.0.3\n    }"));
        assert!(!text.contains("nopreempt"));
        assert!(text.contains("file /run/drover/n2/ready\n"));
        assert!(text.contains("notify_fifo /run/drover/n2/notify.fifo\n"));
        // n2 is the owner of the second VIP: the top priority there.
        let plan = Plan::new(&c);
        let second = &plan.instances[1];
        assert_eq!(second.owner(), 1);
        let block = &text[text
            .find(&format!("vrrp_instance {} ", second.name))
            .unwrap()..];
        assert!(block.contains("priority 250\n"), "{block}");
        assert!(block.contains("10.77.0.101/24 dev eth0"));
        // The IPv6 VIP on an IPv4 cluster network: its own instance, multicast adverts.
        let v6 = &plan.instances[2];
        let block = &text[text.find(&format!("vrrp_instance {} ", v6.name)).unwrap()..];
        assert!(block.contains("fd77::100/64 dev eth0"), "{block}");
        assert!(!block.contains("unicast"), "{block}");
        assert_eq!(text.matches("unicast_src_ip").count(), 2);
    }

    #[test]
    fn no_preempt_and_pair_mode() {
        let text = conf(&config("n1", ClusterMode::Pair, false));
        assert_eq!(text.matches("vrrp_instance ").count(), 2);
        assert_eq!(text.matches("nopreempt").count(), 2);
        assert_eq!(text.matches("state BACKUP").count(), 2);
        assert_eq!(text.matches("priority 250").count(), 2);
    }

    #[test]
    fn a_node_outside_the_cluster_renders_nothing() {
        let c = config("n9", ClusterMode::Pool, true);
        let files = Files {
            track: Path::new("/x"),
            fifo: Path::new("/y"),
        };
        assert!(render(&c, &Plan::new(&c), &files).is_none());
    }
}

#[cfg(test)]
mod keepalived_check {
    //! The rendered file passes `keepalived --config-test` (skipped without keepalived).
    use super::*;
    use drover_config::ClusterMode;

    #[test]
    fn keepalived_accepts_the_config() {
        let Ok(out) = std::process::Command::new("keepalived")
            .arg("--version")
            .output()
        else {
            eprintln!("SKIPPED: keepalived is not installed (apt-get install keepalived)");
            return;
        };
        assert!(out.status.success() || !out.stderr.is_empty());
        // keepalived checks the interface exists, is not loopback and (for the multicast IPv6
        // instance) does multicast: IFF_MULTICAST in its flags.
        let multicast = |name: &str| {
            std::fs::read_to_string(format!("/sys/class/net/{name}/flags"))
                .ok()
                .and_then(|f| u32::from_str_radix(f.trim().trim_start_matches("0x"), 16).ok())
                .is_some_and(|f| f & 0x1000 != 0)
        };
        let Some(interface) = std::fs::read_dir("/sys/class/net")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .find(|n| n != "lo" && multicast(n))
        else {
            eprintln!("SKIPPED: no network interface but lo to render for");
            return;
        };
        let dir = std::env::temp_dir().join(format!("drover-render-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (mode, preempt) in [(ClusterMode::Pool, true), (ClusterMode::Pair, false)] {
            let mut c = crate::vrrp::plan::fixture("n1", mode, preempt, 3, super::tests::VIPS);
            c.interface = Some(interface.clone());
            c.run_dir = dir.clone();
            let track = dir.join("ready");
            let fifo = dir.join("notify.fifo");
            std::fs::write(&track, "0\n").unwrap();
            let text = render(
                &c,
                &Plan::new(&c),
                &Files {
                    track: &track,
                    fifo: &fifo,
                },
            )
            .unwrap();
            let conf = dir.join("keepalived.conf");
            std::fs::write(&conf, &text).unwrap();
            let out = std::process::Command::new("keepalived")
                .arg("--config-test")
                .arg("--use-file")
                .arg(&conf)
                .output()
                .unwrap();
            let log = String::from_utf8_lossy(&out.stderr);
            assert!(
                out.status.success(),
                "keepalived -t refused:\n{text}\n{log}"
            );
            eprintln!("{log}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
