//! `[cluster]`: defaults, values, and errors that name the line, the key, the value and the fix.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use drover_config::{ClusterMode, ReadyRequires, parse_str};

const FARM: &str = "[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\nfarm = \"app\"\n\n\
    [farm.app]\nmembers = [{ name = \"m1\", address = \"127.0.0.1:9001\" }]\n\n";

const NODES: &str = "[[cluster.nodes]]\nname = \"n1\"\naddress = \"10.77.0.1\"\n\
    [[cluster.nodes]]\nname = \"n2\"\naddress = \"10.77.0.2\"\n";

fn parse(cluster: &str) -> Result<drover_config::Config, String> {
    let text = format!("{FARM}{cluster}");
    parse_str(&text, Path::new("t.toml")).map_err(|e| e.to_string())
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn no_cluster_table_is_a_lone_node() {
    assert!(parse("").unwrap().cluster.is_none());
}

#[test]
fn defaults() {
    let c = parse(&format!(
        "[cluster]\nnode = \"n2\"\nsecret = \"0123456789abcdef\"\n{NODES}"
    ))
    .unwrap()
    .cluster
    .unwrap();
    assert_eq!(c.node, "n2");
    assert_eq!(c.this_node().unwrap().address, ip("10.77.0.2"));
    assert_eq!(
        c.peers().map(|n| n.name.as_str()).collect::<Vec<_>>(),
        ["n1"]
    );
    assert_eq!(c.mode, ClusterMode::Pool);
    assert!(c.preempt);
    assert_eq!(c.advert_interval, Duration::from_secs(1));
    assert!(c.vips.is_empty());
    assert_eq!(c.interface, None);
    assert_eq!(c.gossip_port, 7946);
    assert_eq!(c.gossip_interval, Duration::from_millis(100));
    assert_eq!(c.gossip_max_sticky_keys, 100_000);
    assert_eq!(c.ready_requires, ReadyRequires::ReadyMember);
    assert_eq!(c.keepalived, Path::new("keepalived"));
    assert_eq!(c.run_dir, Path::new("/run/drover/n2"));
    assert_eq!(c.secret.expose(), b"0123456789abcdef");
}

#[test]
fn values_and_mixed_families() {
    let c = parse(&format!(
        "[cluster]\nnode = \"n1\"\nsecret = \"0123456789abcdef\"\ninterface = \"eth0\"\n\
         mode = \"pair\"\npreempt = false\nadvert_interval = \"100ms\"\n\
         vips = [\"10.77.0.100/24\", \"fd77::100/64\"]\ngossip_port = 7000\n\
         ready_requires = \"listeners\"\nkeepalived = \"/usr/sbin/keepalived\"\n\
         run_dir = \"/tmp/x\"\n{NODES}"
    ))
    .unwrap()
    .cluster
    .unwrap();
    assert_eq!(c.mode, ClusterMode::Pair);
    assert!(!c.preempt);
    assert_eq!(c.advert_interval, Duration::from_millis(100));
    assert_eq!(c.vips.len(), 2);
    assert_eq!((c.vips[0].addr, c.vips[0].prefix), (ip("10.77.0.100"), 24));
    assert_eq!((c.vips[1].addr, c.vips[1].prefix), (ip("fd77::100"), 64));
    assert_eq!(c.interface.as_deref(), Some("eth0"));
    assert_eq!(c.gossip_port, 7000);
    assert_eq!(c.ready_requires, ReadyRequires::Listeners);
    assert_eq!(c.run_dir, Path::new("/tmp/x"));
}

/// Asserts that `errors` has a line `t.toml:<line>: <key...>` containing every part of `want`.
fn has(errors: &str, line: usize, want: &[&str]) {
    let prefix = format!("t.toml:{line}: ");
    assert!(
        errors
            .lines()
            .any(|l| l.starts_with(&prefix) && want.iter().all(|w| l.contains(w))),
        "no error at line {line} with {want:?} in:\n{errors}"
    );
}

#[test]
fn every_problem_is_reported_with_line_key_value_and_fix() {
    // FARM is 8 lines; the cluster table starts at line 9.
    let errors = parse(
        "[cluster]\n\
         node = \"n3\"\n\
         secret = \"0123456789abcdef\"\n\
         interface = \"eth0/1\"\n\
         mode = \"active\"\n\
         advert_interval = \"105ms\"\n\
         vips = [\"10.77.0.100\", \"10.77.0.300/24\", \"10.77.0.1/24\", \"fd77::1/64\", \"fd77::1/64\"]\n\
         ready_requires = \"always\"\n\
         [[cluster.nodes]]\nname = \"n1\"\naddress = \"10.77.0.1\"\n\
         [[cluster.nodes]]\nname = \"n1\"\naddress = \"10.77.0.1\"\n\
         [[cluster.nodes]]\nname = \"n2\"\naddress = \"10.77.0.2:80\"\n\
         [[cluster.nodes]]\nname = \"n 4\"\naddress = \"10.77.0.2\"\n",
    )
    .unwrap_err();
    has(
        &errors,
        10,
        &["cluster.node = \"n3\"", "unknown node", "did you mean n1?"],
    );
    has(
        &errors,
        12,
        &["cluster.interface = \"eth0/1\"", "e.g. \"eth0\""],
    );
    has(
        &errors,
        13,
        &["cluster.mode = \"active\"", "\"pair\"", "\"pool\""],
    );
    has(
        &errors,
        14,
        &["cluster.advert_interval = \"105ms\"", "multiple of 10ms"],
    );
    has(
        &errors,
        15,
        &["cluster.vips[0] = \"10.77.0.100\"", "prefix length"],
    );
    has(
        &errors,
        15,
        &["cluster.vips[1] = \"10.77.0.300/24\"", "invalid VIP"],
    );
    has(
        &errors,
        15,
        &["cluster.vips[2] = \"10.77.0.1/24\"", "node's own address"],
    );
    has(
        &errors,
        15,
        &["cluster.vips[4] = \"fd77::1/64\"", "duplicate VIP"],
    );
    has(
        &errors,
        16,
        &["cluster.ready_requires = \"always\"", "\"listeners\""],
    );
    has(
        &errors,
        21,
        &[
            "cluster.nodes[1].name = \"n1\"",
            "duplicate node name",
            "line 17",
        ],
    );
    has(
        &errors,
        22,
        &[
            "cluster.nodes[1].address = \"10.77.0.1\"",
            "duplicate node address",
        ],
    );
    has(
        &errors,
        25,
        &[
            "cluster.nodes[2].address = \"10.77.0.2:80\"",
            "not an IP address",
        ],
    );
    has(
        &errors,
        27,
        &["cluster.nodes[3].name = \"n 4\"", "not a node name"],
    );
    assert!(!errors.contains("cluster.vips[3]"), "{errors}");
}

#[test]
fn advert_interval_range_and_missing_keys() {
    let errors = parse(&format!(
        "[cluster]\nadvert_interval = \"5ms\"\nvips = [\"10.77.0.100/24\"]\n{NODES}"
    ))
    .unwrap_err();
    has(
        &errors,
        10,
        &["cluster.advert_interval = \"5ms\"", "10ms to 40s"],
    );
    has(&errors, 9, &["cluster.node: missing", "node = \"n1\""]);
    has(&errors, 9, &["cluster.secret: missing", "secret_file"]);
    has(
        &errors,
        9,
        &["cluster.interface: missing", "interface = \"eth0\""],
    );
    let errors = parse(
        "[cluster]\nnode = \"n1\"\nsecret = \"0123456789abcdef\"\nadvert_interval = \"41s\"\n",
    )
    .unwrap_err();
    has(&errors, 9, &["cluster.nodes: missing", "[[cluster.nodes]]"]);
    has(
        &errors,
        12,
        &["cluster.advert_interval = \"41s\"", "out of range"],
    );
}

#[test]
fn a_short_secret_is_refused_and_not_shown() {
    let errors = parse(&format!(
        "[cluster]\nnode = \"n1\"\nsecret = \"s3cret\"\n{NODES}"
    ))
    .unwrap_err();
    has(&errors, 11, &["cluster.secret = (hidden)", "16"]);
    assert!(!errors.contains("s3cret"), "{errors}");
}

#[test]
fn unknown_keys_are_errors() {
    let errors = parse(&format!(
        "[cluster]\nnode = \"n1\"\nsecret = \"0123456789abcdef\"\nprempt = true\n{NODES}"
    ))
    .unwrap_err();
    has(&errors, 12, &["cluster.prempt", "did you mean preempt?"]);
    let errors = parse(
        "[cluster]\nnode = \"n1\"\nsecret = \"0123456789abcdef\"\n\
         [[cluster.nodes]]\nname = \"n1\"\naddress = \"10.77.0.1\"\nport = 1\n",
    )
    .unwrap_err();
    has(&errors, 15, &["cluster.nodes[0].port", "unknown key"]);
}

#[test]
fn gossip_knobs() {
    let c = parse(&format!(
        "[cluster]\nnode = \"n1\"\nsecret = \"0123456789abcdef\"\ngossip_interval = \"250ms\"\n\
         gossip_max_sticky_keys = 5000\n{NODES}"
    ))
    .unwrap()
    .cluster
    .unwrap();
    assert_eq!(c.gossip_interval, Duration::from_millis(250));
    assert_eq!(c.gossip_max_sticky_keys, 5000);
    let errors = parse(&format!(
        "[cluster]\nnode = \"n1\"\nsecret = \"0123456789abcdef\"\ngossip_interval = \"5ms\"\n\
         gossip_max_sticky_keys = 0\n{NODES}"
    ))
    .unwrap_err();
    has(
        &errors,
        12,
        &["cluster.gossip_interval = \"5ms\"", "10ms to 10s"],
    );
    has(&errors, 13, &["cluster.gossip_max_sticky_keys = 0"]);
}
