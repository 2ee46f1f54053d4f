//! `drover cluster status` (`GET /api/v1/cluster`) and `drover cluster maintenance on|off`
//! (`POST /api/v1/cluster/maintenance`): which node holds which VIP, and moving a node's VIPs
//! away for maintenance; `drover cluster peers` (`GET /api/v1/cluster/peers`, [`super::peers`]):
//! the gossip's view. Same options and exit status as `drover ctl`.

use std::fmt::Write;
use std::process::ExitCode;

use clap::Subcommand;
use hyper::Method;
use serde_json::Value;

use super::client::Client;
use super::{ok, parse, print};

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// This node, the nodes, every VIP with its owner, this node's VRRP state for it and whether
    /// this node holds it now; readiness, maintenance and keepalived.
    Status,
    /// Maintenance on: this node gives its VIPs to its peers (and keeps serving whoever still
    /// connects). Off: it may hold VIPs again.
    Maintenance {
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
    /// The nodes as this node's gossip sees them (this one, alive, dead), their last heartbeat
    /// and the keys each shares, and what this node applied and published.
    Peers,
}

pub async fn command(
    client: &Client,
    command: ClusterCommand,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let answer = match command {
        ClusterCommand::Status => client.call(Method::GET, "/api/v1/cluster", None).await?,
        ClusterCommand::Peers => {
            let answer = ok(client
                .call(Method::GET, "/api/v1/cluster/peers", None)
                .await?)?;
            return print(json, &answer, |b| Ok(super::peers::render(&parse(b)?)));
        }
        ClusterCommand::Maintenance { state } => {
            let body = serde_json::json!({ "on": state == "on" }).to_string();
            client
                .call(Method::POST, "/api/v1/cluster/maintenance", Some(body))
                .await?
        }
    };
    let answer = ok(answer)?;
    print(json, &answer, |b| Ok(render(&parse(b)?)))
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

/// The status as a few lines and a VIP table.
pub fn render(s: &Value) -> String {
    let mut out = String::new();
    let ready = if s["ready"] == true {
        "ready".to_owned()
    } else {
        format!("not ready ({})", text(&s["not_ready"]))
    };
    let _ = writeln!(
        out,
        "node {}: {}, maintenance {}, mode {}, preempt {}, adverts every {}",
        text(&s["node"]),
        ready,
        if s["maintenance"] == true {
            "on"
        } else {
            "off"
        },
        text(&s["mode"]),
        text(&s["preempt"]),
        text(&s["advert_interval"]),
    );
    let k = &s["keepalived"];
    if k["running"] == true {
        let _ = writeln!(out, "keepalived: running, pid {}", text(&k["pid"]));
    } else {
        let _ = writeln!(
            out,
            "keepalived: not running (last exit: {})",
            text(&k["last_exit"])
        );
    }
    let nodes: Vec<String> = s["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|n| {
            let me = if n["self"] == true {
                " (this node)"
            } else {
                ""
            };
            format!("{} {}{me}", text(&n["name"]), text(&n["address"]))
        })
        .collect();
    let _ = writeln!(out, "nodes: {}", nodes.join(", "));
    if let Some(e) = s["held_error"].as_str() {
        let _ = writeln!(out, "held VIPs unknown: {e}");
    }
    let rows: Vec<[String; 5]> = s["vips"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            let held = match &v["held"] {
                Value::Bool(true) => "yes",
                Value::Bool(false) => "no",
                _ => "?",
            };
            [
                text(&v["vip"]),
                text(&v["owner"]),
                text(&v["state"]),
                text(&v["priority"]),
                held.to_owned(),
            ]
        })
        .collect();
    if rows.is_empty() {
        let _ = writeln!(out, "no VIPs");
        return out;
    }
    let head = ["VIP", "OWNER", "STATE", "PRIORITY", "HELD HERE"];
    let width: Vec<usize> = (0..head.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([head[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: [&str; 5]| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            let _ = write!(l, "{c:<w$}  ", w = width[i]);
        }
        l.trim_end().to_owned()
    };
    let _ = writeln!(out, "{}", line(head));
    for r in &rows {
        let _ = writeln!(out, "{}", line([&r[0], &r[1], &r[2], &r[3], &r[4]]));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn renders_a_status() {
        let s = serde_json::json!({
            "node": "n1", "mode": "pool", "preempt": true, "interface": "eth0",
            "advert_interval": "100ms", "ready": false, "not_ready": "maintenance",
            "maintenance": true, "held": [], "held_error": null,
            "vips": [{"vip": "10.0.0.100/24", "instance": "drover_1", "vrid": 1, "owner": "n1",
                      "priority": 250, "held": false, "state": "FAULT"}],
            "nodes": [{"name": "n1", "address": "10.0.0.1", "self": true},
                      {"name": "n2", "address": "10.0.0.2", "self": false}],
            "keepalived": {"running": true, "pid": 42, "starts": 1, "last_exit": null}
        });
        let out = super::render(&s);
        assert!(
            out.contains("node n1: not ready (maintenance), maintenance on"),
            "{out}"
        );
        assert!(out.contains("keepalived: running, pid 42"), "{out}");
        assert!(
            out.contains("n1 10.0.0.1 (this node), n2 10.0.0.2"),
            "{out}"
        );
        assert!(
            out.contains("VIP            OWNER  STATE  PRIORITY  HELD HERE"),
            "{out}"
        );
        assert!(
            out.contains("10.0.0.100/24  n1     FAULT  250       no"),
            "{out}"
        );
    }
}
