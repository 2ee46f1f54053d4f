//! `GET /metrics`: every farm, member and push-intake counter in the OpenMetrics text format
//! (which Prometheus scrapes natively), encoded by `prometheus-client`.
//!
//! Where it sits: the admin router sends `/metrics` here, behind the auth middleware (reads may be
//! opened by `[admin] open_reads`). The JSON view (`view.rs`) and this module read the same live
//! atomics; docs/metrics.md lists both side by side.
//!
//! How: nothing is registered ahead of time. Each scrape builds a fresh `Registry` holding one
//! [`Collector`] over the current routing snapshot, which walks farms and members once per family
//! and encodes every value as it reads it (`encode_descriptor`, then one `encode_family` per
//! series). So a reload's new farms and members appear on the next scrape with no bookkeeping,
//! the request path pays nothing, and a scrape costs time linear in farms x members. The crate
//! does the format: `# TYPE`/`# UNIT`/`# HELP` lines, the `_total`/`_bucket`/`_sum`/`_count`
//! suffixes, label-value escaping (farm and member names come from the config, report metric
//! names from agents) and the closing `# EOF`.
//!
//! Metric names are all defined here, each with the `drover_` prefix written out so a grep for a
//! name lands on its definition. Families with labels: `farm`, `member`, and per family `flag`,
//! `state`, `outcome`, `source`, `metric` or `reason`. Strings that are not label-shaped (a flip's
//! or a report's free-text reason) stay in the JSON API only.

use std::fmt;
use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use drover_core::latency::{LATENCY_BOUNDS_NS, LATENCY_BUCKETS};
use drover_core::{Flag, LoadReport, Member, Source, clock};
use drover_proxy::state::{FarmState, Routing};
use hyper::{StatusCode, header};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeGaugeValue, EncodeLabelSet, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::{AdminState, Intake};

/// What `prometheus_client::encoding::text::encode` produces.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `GET /metrics`.
pub async fn handler(State(state): State<Arc<AdminState>>) -> Response {
    let peers = state.peers.get().map(|p| p.counters());
    match render_with(state.proxy.routing(), &state.intake, peers) {
        Ok(body) => (StatusCode::OK, [(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response(),
        // Writing to a String cannot fail; the crate's own checks (e.g. a histogram without
        // buckets) could, and none of ours trips them. Say so rather than send half a page.
        Err(fmt::Error) => crate::text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "metrics: encoding failed\n",
        ),
    }
}

/// The whole exposition for `routing` and `intake`, `# EOF` included.
pub fn render(routing: Arc<Routing>, intake: &Intake) -> Result<String, fmt::Error> {
    render_with(routing, intake, None)
}

/// [`render`], with the gossip's counters when the node is in a cluster.
pub fn render_with(
    routing: Arc<Routing>,
    intake: &Intake,
    peers: Option<crate::PeerCounters>,
) -> Result<String, fmt::Error> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape {
        routing,
        accepted: intake.accepted.load(std::sync::atomic::Ordering::Relaxed),
        rejected: intake.rejected_by_reason().collect(),
        peers,
    }));
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry)?;
    Ok(out)
}

/// One scrape's sources: the routing snapshot (its atomics are read while encoding) and the push
/// intake's counters (copied: the intake is not shared behind an `Arc`).
#[derive(Debug)]
struct Scrape {
    routing: Arc<Routing>,
    accepted: u64,
    rejected: Vec<(&'static str, u64)>,
    peers: Option<crate::PeerCounters>,
}

type Labels<'a> = [(&'static str, &'a str); 2];

fn farm_labels(f: &FarmState) -> [(&'static str, &str); 1] {
    [("farm", f.farm.name.as_str())]
}

/// A series without labels.
const NO_LABELS: [(&str, &str); 0] = [];

/// Writes one family: its descriptor, then one series per row of (labels, what `write` encodes).
fn family<L: EncodeLabelSet, R>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    kind: MetricType,
    rows: impl IntoIterator<Item = (L, R)>,
    mut write: impl FnMut(R, &mut MetricEncoder) -> fmt::Result,
) -> fmt::Result {
    let mut m = enc.encode_descriptor(name, help, unit, kind)?;
    for (labels, row) in rows {
        write(row, &mut m.encode_family(&labels)?)?;
    }
    Ok(())
}

fn counter<L: EncodeLabelSet>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    rows: impl IntoIterator<Item = (L, u64)>,
) -> fmt::Result {
    family(enc, name, help, unit, MetricType::Counter, rows, |v, m| {
        m.encode_counter::<NoLabelSet, _, u64>(&v, None)
    })
}

fn gauge<L: EncodeLabelSet, V: EncodeGaugeValue>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    rows: impl IntoIterator<Item = (L, V)>,
) -> fmt::Result {
    family(enc, name, help, unit, MetricType::Gauge, rows, |v, m| {
        m.encode_gauge(&v)
    })
}

fn bit(b: bool) -> u32 {
    u32::from(b)
}

fn source_name(s: Source) -> &'static str {
    match s {
        Source::AgentCheck => "agent-check",
        Source::Push => "push",
        Source::Orca => "orca",
    }
}

fn age_s(since: u64, now: u64) -> f64 {
    now.saturating_sub(since) as f64 / 1e9
}

impl Collector for Scrape {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        self.farms(&mut enc)?;
        self.members(&mut enc)?;
        self.intake(&mut enc)?;
        self.gossip(&mut enc)
    }
}

impl Scrape {
    fn farm_rows<'s>(
        &'s self,
        value: impl Fn(&'s FarmState) -> u64 + 's,
    ) -> impl Iterator<Item = ([(&'static str, &'s str); 1], u64)> + 's {
        self.routing
            .farms
            .iter()
            .map(move |f| (farm_labels(f), value(f)))
    }

    /// Every member of every farm, with its `farm` and `member` labels.
    fn each_member(&self) -> impl Iterator<Item = (Labels<'_>, &Member)> + '_ {
        self.routing.farms.iter().flat_map(|f| {
            f.farm.members.iter().map(move |m| {
                let labels = [("farm", f.farm.name.as_str()), ("member", m.name())];
                (labels, m.as_ref())
            })
        })
    }

    fn member_rows<'s, V>(
        &'s self,
        value: impl Fn(&'s Member) -> V + 's,
    ) -> impl Iterator<Item = (Labels<'s>, V)> + 's {
        self.each_member().map(move |(l, m)| (l, value(m)))
    }

    fn farms(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        use std::sync::atomic::Ordering::Relaxed;
        let farms = &self.routing.farms;
        family(
            enc,
            "drover_farm",
            "A farm: its policy and sticky mode (none, route, insert, learn)",
            None,
            MetricType::Info,
            farms.iter().map(|f| (farm_labels(f), f)),
            |f, m| {
                let sticky = f.sticky.as_ref();
                let nofailover = sticky.is_some_and(|s| s.nofailover);
                m.encode_info(&[
                    ("policy", f.farm.kind.name()),
                    ("sticky", sticky.map_or("none", |s| s.mode_name())),
                    ("nofailover", if nofailover { "true" } else { "false" }),
                ])
            },
        )?;
        counter(
            enc,
            "drover_farm_requests",
            "Client requests sent to the farm",
            None,
            self.farm_rows(|f| f.counters.requests.load(Relaxed)),
        )?;
        counter(
            enc,
            "drover_farm_attempts",
            "Attempts at members, failed connects included (attempts / requests is the cost of retries)",
            None,
            self.farm_rows(|f| f.counters.attempts.load(Relaxed)),
        )?;
        counter(
            enc,
            "drover_farm_retries",
            "Retries made, each granted by the retry budget",
            None,
            self.farm_rows(|f| f.counters.retries.load(Relaxed)),
        )?;
        counter(
            enc,
            "drover_farm_retry_budget_refused",
            "Retries refused because the farm's retry budget was spent",
            None,
            self.farm_rows(|f| f.counters.budget_refused.load(Relaxed)),
        )?;
        counter(
            enc,
            "drover_farm_orca_reports",
            "ORCA endpoint-load-metrics headers applied as load reports",
            None,
            self.farm_rows(|f| f.counters.orca_reports.load(Relaxed)),
        )?;
        counter(
            enc,
            "drover_farm_orca_rejects",
            "ORCA headers rejected (none changed anything)",
            None,
            self.farm_rows(|f| f.counters.orca_rejects.load(Relaxed)),
        )?;
        gauge(
            enc,
            "drover_farm_panic",
            "1 while too few members are healthy (panic_threshold) and health is ignored",
            None,
            farms
                .iter()
                .map(|f| (farm_labels(f), bit(f.farm.in_panic()))),
        )?;
        let seconds = Unit::Seconds;
        gauge(
            enc,
            "drover_farm_report_expect",
            "[farm.X.reports] expect: members whose reports are older are out (absent: never)",
            Some(&seconds),
            farms
                .iter()
                .filter(|f| !f.farm.rules.expect.is_zero())
                .map(|f| (farm_labels(f), f.farm.rules.expect.as_secs_f64())),
        )?;

        // Sticky farms only.
        let sticky = || farms.iter().filter(|f| f.sticky.is_some());
        counter(
            enc,
            "drover_farm_sticky_requests",
            "Requests whose session named a member, by outcome: hit (served by it or its redirect), moved (served by another), refused (503 under nofailover)",
            None,
            sticky().flat_map(|f| {
                let c = &f.counters;
                [
                    ("hit", &c.sticky_hits),
                    ("moved", &c.sticky_moved),
                    ("refused", &c.sticky_refused),
                ]
                .map(|(o, n)| ([farm_labels(f)[0], ("outcome", o)], n.load(Relaxed)))
            }),
        )?;
        counter(
            enc,
            "drover_farm_sticky_cookies_set",
            "Sticky cookies drover set (insert mode, and route mode's re-stick of a moved client)",
            None,
            sticky().map(|f| (farm_labels(f), f.counters.sticky_cookies_set.load(Relaxed))),
        )?;
        counter(
            enc,
            "drover_farm_sticky_learned",
            "Learn mode: sessions learned or moved in the table",
            None,
            sticky().map(|f| (farm_labels(f), f.counters.sticky_learned.load(Relaxed))),
        )?;
        let tables = || {
            sticky().filter_map(|f| {
                let t = f.sticky.as_ref()?.table.as_ref()?;
                Some((farm_labels(f), t))
            })
        };
        gauge(
            enc,
            "drover_farm_sticky_sessions",
            "Learn mode: entries in the session table (expired ones not yet swept included)",
            None,
            tables().map(|(l, t)| (l, t.len() as u64)),
        )?;
        gauge(
            enc,
            "drover_farm_sticky_sessions_max",
            "Learn mode: the session table's capacity",
            None,
            tables().map(|(l, t)| (l, t.capacity() as u64)),
        )
    }

    fn members(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        let (seconds, bytes) = (Unit::Seconds, Unit::Bytes);
        let now = clock::now();
        family(
            enc,
            "drover_member",
            "A member: its address and sticky route (empty: none)",
            None,
            MetricType::Info,
            self.each_member(),
            |m, e| {
                let addr = m.addr().to_string();
                let route = m.route();
                e.encode_info(&[
                    ("address", addr.as_str()),
                    ("route", route.as_deref().unwrap_or("")),
                ])
            },
        )?;
        counter(
            enc,
            "drover_member_requests",
            "Requests sent to the member (a refused connect is not a request)",
            None,
            self.member_rows(|m| m.stats.requests()),
        )?;
        counter(
            enc,
            "drover_member_failures",
            "Requests that did not complete cleanly (timeout, broken connection, body cut off) or were answered with a 5xx",
            None,
            self.member_rows(|m| m.stats.failures()),
        )?;
        gauge(
            enc,
            "drover_member_in_flight",
            "Requests sent to the member whose response has not finished streaming",
            None,
            self.member_rows(|m| m.stats.in_flight()),
        )?;
        gauge(
            enc,
            "drover_member_connections",
            "Open connections to the member, busy and idle, all workers",
            None,
            self.member_rows(|m| m.stats.connections()),
        )?;
        counter(
            enc,
            "drover_member_request_body",
            "Request body bytes sent to the member",
            Some(&bytes),
            self.member_rows(|m| m.stats.bytes_in()),
        )?;
        counter(
            enc,
            "drover_member_response_body",
            "Response body bytes received from the member and sent on",
            Some(&bytes),
            self.member_rows(|m| m.stats.bytes_out()),
        )?;
        gauge(
            enc,
            "drover_member_latency_ewma",
            "Exponentially weighted mean time to the response head (alpha 0.1; 0 before the first response)",
            Some(&seconds),
            self.member_rows(|m| m.stats.latency_ewma_ns() / 1e9),
        )?;
        family(
            enc,
            "drover_member_latency",
            "Time to the response head of every response received, 5xx included (no sample without a head)",
            Some(&seconds),
            MetricType::Histogram,
            self.each_member(),
            |m, e| {
                let h = m.stats.latency_histogram();
                // Per-bucket counts: the encoder makes them cumulative.
                let buckets: [(f64, u64); LATENCY_BUCKETS] = std::array::from_fn(|i| {
                    let le = LATENCY_BOUNDS_NS
                        .get(i)
                        .map_or(f64::INFINITY, |&ns| ns as f64 / 1e9);
                    (le, h.buckets[i])
                });
                e.encode_histogram::<NoLabelSet>(h.sum_ns as f64 / 1e9, h.count(), &buckets, None)
            },
        )?;
        gauge(
            enc,
            "drover_member_weight",
            "The member's weight (configured, or set by the operator)",
            None,
            self.member_rows(|m| m.state.weight()),
        )?;
        gauge(
            enc,
            "drover_member_agent_weight_ratio",
            "The agent's share of the weight (1 until an agent reports; least-conn, p2c and peak-ewma use weight x this)",
            None,
            self.member_rows(|m| f64::from(m.state.weight_pct()) / 100.0),
        )?;
        gauge(
            enc,
            "drover_member_flag",
            "Member state flags, 0 or 1: on, up (passes its checks, not ejected), in, draining, ejected, ready (on, up and in)",
            None,
            self.each_member().flat_map(|([farm, member], m)| {
                let s = &m.state;
                [
                    ("on", s.get(Flag::On)),
                    ("up", s.is_up()),
                    ("in", s.get(Flag::In)),
                    ("draining", s.get(Flag::Draining)),
                    ("ejected", s.get(Flag::Ejected)),
                    ("ready", s.is_ready()),
                ]
                .map(|(flag, v)| ([farm, member, ("flag", flag)], bit(v)))
            }),
        )?;
        counter(
            enc,
            "drover_member_health_flips",
            "Flips of each member flag since start",
            None,
            self.each_member().flat_map(|([farm, member], m)| {
                Flag::ALL.map(|f| ([farm, member, ("flag", f.name())], m.health.flips(f)))
            }),
        )?;
        gauge(
            enc,
            "drover_member_last_transition_age",
            "Seconds since the member's latest flip, labelled with what it became (up, down, ejected, returned, ...); absent before the first",
            Some(&seconds),
            self.each_member().filter_map(|([farm, member], m)| {
                let t = m.health.last_transition()?;
                Some(([farm, member, ("state", t.state())], age_s(t.at, now)))
            }),
        )?;

        // The last load report, read once per member (it is cloned out of its lock).
        let reports: Vec<(Labels<'_>, LoadReport)> = self
            .each_member()
            .filter_map(|(l, m)| Some((l, m.reported.last()?)))
            .collect();
        gauge(
            enc,
            "drover_member_report_age",
            "Seconds since the member's last load report was received, labelled with its source (push, agent-check, orca); absent before the first",
            Some(&seconds),
            reports.iter().map(|([farm, member], r)| {
                let source = ("source", source_name(r.source));
                ([*farm, *member, source], age_s(r.received, now))
            }),
        )?;
        gauge(
            enc,
            "drover_member_report_maxconn",
            "The connection limit in the member's last load report (0: none); absent when it gave none",
            None,
            reports.iter().filter_map(|(l, r)| Some((*l, r.maxconn?))),
        )?;
        gauge(
            enc,
            "drover_member_report_metric",
            "Each metric of the member's last load report (cpu, load1, rif, ...), as reported",
            None,
            reports.iter().flat_map(|([farm, member], r)| {
                r.metrics
                    .iter()
                    .map(move |(k, v)| ([*farm, *member, ("metric", k)], v))
            }),
        )?;
        counter(
            enc,
            "drover_member_report_rejects",
            "Agent replies and ORCA headers from this member rejected (none changed anything)",
            None,
            self.member_rows(|m| m.reported.rejects()),
        )?;
        counter(
            enc,
            "drover_member_agent_failures",
            "Reads of the member's agent that failed (no connection, timeout, closed without a line)",
            None,
            self.member_rows(|m| m.reported.failures()),
        )?;
        gauge(
            enc,
            "drover_member_agent_failing",
            "1 when the last read of the member's agent failed",
            None,
            self.member_rows(|m| bit(m.reported.is_failing())),
        )
    }

    /// Only when the node is in a cluster.
    fn gossip(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        let Some(p) = &self.peers else {
            return Ok(());
        };
        gauge(
            enc,
            "drover_gossip_peers",
            "Other nodes the gossip knows, by state (alive, dead)",
            None,
            [
                ([("state", "alive")], p.alive),
                ([("state", "dead")], p.dead),
            ],
        )?;
        counter(
            enc,
            "drover_gossip_applied",
            "Peers' values applied here, by kind (op, sticky, report)",
            None,
            p.applied.iter().map(|&(kind, n)| ([("kind", kind)], n)),
        )?;
        counter(
            enc,
            "drover_gossip_published",
            "This node's own changes published to the peers, by kind (op, sticky, report)",
            None,
            p.published.iter().map(|&(kind, n)| ([("kind", kind)], n)),
        )?;
        counter(
            enc,
            "drover_gossip_ignored",
            "Peers' values not applied: a farm or member this node does not have, or malformed",
            None,
            [(NO_LABELS, p.ignored)],
        )
    }

    fn intake(&self, enc: &mut DescriptorEncoder) -> fmt::Result {
        counter(
            enc,
            "drover_reports_accepted",
            "Pushed load reports applied",
            None,
            [(NO_LABELS, self.accepted)],
        )?;
        counter(
            enc,
            "drover_reports_rejected",
            "Push calls refused, by reason",
            None,
            self.rejected
                .iter()
                .map(|&(reason, n)| ([("reason", reason)], n)),
        )?;
        counter(
            enc,
            "drover_access_log_dropped_lines",
            "Access-log lines dropped because a log's writer could not keep up (or write)",
            None,
            [(NO_LABELS, drover_proxy::access_log::dropped_lines())],
        )
    }
}

#[cfg(test)]
mod tests;
