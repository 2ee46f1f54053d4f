//! `drover cluster peers`: `GET /api/v1/cluster/peers` as a table, one line per node the gossip
//! knows, then what this node applied from its peers and published of its own.

use std::fmt::Write;

use serde::Deserialize;

use super::render::{Table, age};

#[derive(Deserialize)]
pub struct Peers {
    node: String,
    gossip: String,
    peers: Vec<Peer>,
    applied: Keys,
    published: Keys,
    ignored: u64,
}

#[derive(Deserialize)]
struct Peer {
    name: String,
    address: String,
    generation: u64,
    #[serde(rename = "self")]
    myself: bool,
    alive: bool,
    last_heartbeat_ms: Option<u64>,
    keys: Keys,
}

#[derive(Deserialize)]
struct Keys {
    op: u64,
    sticky: u64,
    report: u64,
}

impl Keys {
    fn show(&self) -> String {
        format!(
            "op {}, sticky {}, report {}",
            self.op, self.sticky, self.report
        )
    }
}

pub fn render(p: &Peers) -> String {
    let mut out = format!("node {} (gossip {})\n", p.node, p.gossip);
    let mut t = Table::new(&[
        "PEER",
        "ADDRESS",
        "STATE",
        "HEARTBEAT>",
        "OP>",
        "STICKY>",
        "REPORT>",
        "GENERATION>",
    ]);
    for peer in &p.peers {
        let state = match (peer.myself, peer.alive) {
            (true, _) => "self",
            (false, true) => "alive",
            (false, false) => "dead",
        };
        t.row(vec![
            peer.name.clone(),
            peer.address.clone(),
            state.to_owned(),
            peer.last_heartbeat_ms.map_or_else(
                || "-".to_owned(),
                |ms| format!("{} ago", age(ms as f64 / 1e3)),
            ),
            peer.keys.op.to_string(),
            peer.keys.sticky.to_string(),
            peer.keys.report.to_string(),
            peer.generation.to_string(),
        ]);
    }
    out.push_str(&t.render());
    let _ = writeln!(out, "applied from peers: {}", p.applied.show());
    let _ = writeln!(out, "published:          {}", p.published.show());
    if p.ignored > 0 {
        let _ = writeln!(out, "ignored (unknown farm or member here): {}", p.ignored);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_of_peers() {
        let json = r#"{"node":"n1","gossip":"10.0.0.1:7946","interval_ms":100,"ignored":0,
            "applied":{"op":3,"sticky":0,"report":1},"published":{"op":1,"sticky":2,"report":0},
            "peers":[
              {"name":"n1","address":"10.0.0.1:7946","generation":17,"self":true,"alive":true,
               "heartbeat":40,"last_heartbeat_ms":0,"keys":{"op":1,"sticky":2,"report":0}},
              {"name":"n2","address":"10.0.0.2:7946","generation":18,"self":false,"alive":false,
               "heartbeat":9,"last_heartbeat_ms":null,"keys":{"op":3,"sticky":0,"report":1}}]}"#;
        let text = render(&serde_json::from_str(json).unwrap());
        assert!(
            text.starts_with("node n1 (gossip 10.0.0.1:7946)\n"),
            "{text}"
        );
        let n2 = text.lines().find(|l| l.starts_with("n2")).unwrap();
        assert!(n2.contains("dead") && n2.contains(" - "), "{n2}");
        assert!(
            text.contains("applied from peers: op 3, sticky 0, report 1"),
            "{text}"
        );
    }
}
