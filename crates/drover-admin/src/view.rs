//! What `GET /api/v1/farms` and `GET /api/v1/farms/{farm}` show: every farm and member with
//! flags, weight, counters and health (the last flip with its reason, flips per flag, panic mode,
//! the farm's requests against its attempts at members), each member's last load report, its
//! agent's weight percentage, rejects and failures, latency (EWMA, p50/p99 since start and the
//! histogram's buckets, so the dashboard can compute live percentiles) and the farm's
//! sticky-session outcomes.
//! docs/metrics.md lists every field.

use std::sync::atomic::Ordering::Relaxed;

use bytes::Bytes;
use drover_core::latency::{LATENCY_BOUNDS_NS, LATENCY_BUCKETS};
use drover_core::{Flag, Member, Source, clock};
use drover_proxy::state::{FarmState, Routing};
use serde::Serialize;

use crate::intake::Intake;

#[derive(Serialize)]
pub(crate) struct FarmView<'a> {
    name: &'a str,
    policy: &'static str,
    /// Health is being ignored: too few members are up (`panic_threshold`).
    panic: bool,
    /// Client requests sent to the farm.
    requests: u64,
    /// Attempts at members, failed connects included (attempts / requests >= 1).
    attempts: u64,
    /// Retries made.
    retries: u64,
    /// Retries refused because the retry budget was spent.
    budget_refused: u64,
    /// ORCA headers applied as load reports, and rejected.
    orca_reports: u64,
    orca_rejects: u64,
    /// `[farm.X.reports] expect` in seconds: members silent longer are out; `null` = never.
    expect_s: Option<f64>,
    /// Sticky sessions; `null` when the farm has none.
    sticky: Option<StickyView>,
    members: Vec<MemberView<'a>>,
}

/// A farm's sticky-session outcomes since start.
#[derive(Serialize)]
struct StickyView {
    /// `route`, `insert` or `learn`.
    mode: &'static str,
    nofailover: bool,
    /// Requests answered by the member their session names (or its redirect).
    hits: u64,
    /// Requests whose session named a member, answered by another (the client was moved).
    moved: u64,
    /// Requests answered 503 under `nofailover`.
    refused: u64,
    /// Cookies drover set (insert mode, route mode's re-stick).
    cookies_set: u64,
    /// Learn mode: sessions learned or moved, the table's entries and its cap.
    learned: u64,
    sessions: Option<usize>,
    max_sessions: Option<usize>,
}

#[derive(Serialize)]
struct TransitionView {
    /// `up`, `down`, `ejected`, `returned`, ...
    state: &'static str,
    reason: String,
    /// Seconds since the flip.
    age_s: f64,
}

#[derive(Serialize)]
pub(crate) struct MemberView<'a> {
    name: &'a str,
    address: String,
    weight: u32,
    route: Option<String>,
    on: bool,
    /// Healthy: passes its active checks and is not ejected.
    up: bool,
    /// Ejected by passive checks.
    ejected: bool,
    #[serde(rename = "in")]
    is_in: bool,
    draining: bool,
    ready: bool,
    /// The member's latest flip.
    last_transition: Option<TransitionView>,
    /// Flips per flag since start.
    flips: serde_json::Map<String, serde_json::Value>,
    in_flight: u32,
    requests: u64,
    failures: u64,
    bytes_in: u64,
    bytes_out: u64,
    latency_ewma_ms: f64,
    /// Median and 99th percentile of the time to the response head since start, estimated from
    /// the latency histogram (`null` before the first response).
    latency_p50_ms: Option<f64>,
    latency_p99_ms: Option<f64>,
    /// The histogram's per-bucket (not cumulative) counts, bounds in `latency_bounds_ms` of
    /// `GET /api/v1/farms` and a last `+Inf` bucket: the dashboard takes deltas for live
    /// percentiles.
    latency_buckets: [u64; LATENCY_BUCKETS],
    connections: u32,
    /// The agent's share of `weight`, in percent (100 until an agent reports).
    weight_pct: u32,
    /// The member's last load report (push, agent-check reply or ORCA header), if any.
    reported: Option<ReportView>,
    /// Agent replies rejected as malformed (none changed anything).
    report_rejects: u64,
    /// Reads of the member's agent that failed (no connection, timeout, no line).
    agent_failures: u64,
    /// The last read of the member's agent failed.
    agent_failing: bool,
}

#[derive(Serialize)]
struct ReportView {
    /// `agent-check`, `push` or `orca`.
    source: &'static str,
    weight_pct: Option<u32>,
    /// The admin and health words, e.g. `["drain", "up"]`.
    states: Vec<&'static str>,
    maxconn: Option<u32>,
    reason: Option<String>,
    metrics: serde_json::Map<String, serde_json::Value>,
    /// Seconds since the report was received.
    age_s: f64,
}

fn last_transition(m: &Member) -> Option<TransitionView> {
    let t = m.health.last_transition()?;
    Some(TransitionView {
        state: t.state(),
        age_s: clock::now().saturating_sub(t.at) as f64 / 1e9,
        reason: t.reason,
    })
}

fn reported(m: &Member) -> Option<ReportView> {
    let r = m.reported.last()?;
    Some(ReportView {
        source: match r.source {
            Source::AgentCheck => "agent-check",
            Source::Push => "push",
            Source::Orca => "orca",
        },
        weight_pct: r.weight_pct,
        states: r
            .admin
            .iter()
            .chain(&r.health)
            .map(|s| s.as_str())
            .collect(),
        maxconn: r.maxconn,
        metrics: r
            .metrics
            .iter()
            .map(|(k, v)| (k.to_owned(), serde_json::json!(v)))
            .collect(),
        age_s: clock::now().saturating_sub(r.received) as f64 / 1e9,
        reason: r.reason,
    })
}

/// Every farm, and the push intake's counters.
pub(crate) fn farms_json(routing: &Routing, intake: &Intake) -> Bytes {
    let farms: Vec<FarmView<'_>> = routing.farms.iter().map(farm_view).collect();
    let reports = serde_json::json!({
        "accepted": intake.accepted.load(Relaxed),
        "rejected": intake.rejected(),
    });
    let bounds: Vec<f64> = LATENCY_BOUNDS_NS.iter().map(|&b| b as f64 / 1e6).collect();
    json(&serde_json::json!({
        "farms": farms,
        "reports": reports,
        "latency_bounds_ms": bounds,
    }))
}

/// Pretty JSON and a final newline, as every API answer.
pub(crate) fn json(value: &impl Serialize) -> Bytes {
    let mut out = serde_json::to_vec_pretty(value).unwrap_or_default();
    out.push(b'\n');
    Bytes::from(out)
}

pub(crate) fn farm_view(f: &FarmState) -> FarmView<'_> {
    FarmView {
        name: &f.farm.name,
        policy: f.farm.kind.name(),
        panic: f.farm.in_panic(),
        requests: f.counters.requests.load(Relaxed),
        attempts: f.counters.attempts.load(Relaxed),
        retries: f.counters.retries.load(Relaxed),
        budget_refused: f.counters.budget_refused.load(Relaxed),
        orca_reports: f.counters.orca_reports.load(Relaxed),
        orca_rejects: f.counters.orca_rejects.load(Relaxed),
        expect_s: (!f.farm.rules.expect.is_zero()).then(|| f.farm.rules.expect.as_secs_f64()),
        sticky: f.sticky.as_ref().map(|s| StickyView {
            mode: s.mode_name(),
            nofailover: s.nofailover,
            hits: f.counters.sticky_hits.load(Relaxed),
            moved: f.counters.sticky_moved.load(Relaxed),
            refused: f.counters.sticky_refused.load(Relaxed),
            cookies_set: f.counters.sticky_cookies_set.load(Relaxed),
            learned: f.counters.sticky_learned.load(Relaxed),
            sessions: s.table.as_ref().map(|t| t.len()),
            max_sessions: s.table.as_ref().map(|t| t.capacity()),
        }),
        members: f.farm.members.iter().map(|m| member_view(m)).collect(),
    }
}

pub(crate) fn member_view(m: &Member) -> MemberView<'_> {
    let latency = m.stats.latency_histogram();
    MemberView {
        name: m.name(),
        address: m.addr().to_string(),
        weight: m.state.weight(),
        route: m.route().map(|r| r.to_string()),
        on: m.state.get(Flag::On),
        up: m.state.is_up(),
        ejected: m.state.get(Flag::Ejected),
        is_in: m.state.get(Flag::In),
        draining: m.state.get(Flag::Draining),
        ready: m.state.is_ready(),
        last_transition: last_transition(m),
        flips: Flag::ALL
            .iter()
            .map(|&f| (f.name().to_owned(), m.health.flips(f).into()))
            .collect(),
        in_flight: m.stats.in_flight(),
        requests: m.stats.requests(),
        failures: m.stats.failures(),
        bytes_in: m.stats.bytes_in(),
        bytes_out: m.stats.bytes_out(),
        latency_ewma_ms: m.stats.latency_ewma_ns() / 1e6,
        latency_p50_ms: latency.quantile_ns(0.5).map(|ns| ns / 1e6),
        latency_p99_ms: latency.quantile_ns(0.99).map(|ns| ns / 1e6),
        latency_buckets: latency.buckets,
        connections: m.stats.connections(),
        weight_pct: m.state.weight_pct(),
        reported: reported(m),
        report_rejects: m.reported.rejects(),
        agent_failures: m.reported.failures(),
        agent_failing: m.reported.is_failing(),
    }
}
