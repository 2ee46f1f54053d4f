//! The admin API's view of the cluster's gossip: [`drover_admin::Peers`] over
//! [`drover_cluster::gossip::Gossip`] (neither crate depends on the other; the binary joins them).

use drover_admin::{OperatorChange, PeerCounters, Peers};
use drover_cluster::gossip::{Gossip, Op};
use drover_core::LoadReport;

pub struct GossipPeers(pub Gossip);

impl Peers for GossipPeers {
    fn operator_change(&self, farm: &str, member: &str, change: OperatorChange) {
        let op = match change {
            OperatorChange::On(on) => Op::on(on),
            OperatorChange::Drain(drain) => Op::drain(drain),
            OperatorChange::Weight(w) => Op::weight(w),
        };
        self.0.operator_change(farm, member, op);
    }

    fn reports_received(&self, reports: &[LoadReport]) {
        self.0.reports_received(reports);
    }

    fn view(&self) -> serde_json::Value {
        serde_json::to_value(self.0.view()).unwrap_or(serde_json::Value::Null)
    }

    fn counters(&self) -> PeerCounters {
        let v = self.0.view();
        let others = v.peers.iter().filter(|p| !p.myself);
        let alive = others.clone().filter(|p| p.alive).count() as u64;
        let by_kind = |k: drover_cluster::gossip::KeyCounts| {
            vec![("op", k.op), ("sticky", k.sticky), ("report", k.report)]
        };
        PeerCounters {
            alive,
            dead: others.count() as u64 - alive,
            applied: by_kind(v.applied),
            published: by_kind(v.published),
            ignored: v.ignored,
        }
    }
}
