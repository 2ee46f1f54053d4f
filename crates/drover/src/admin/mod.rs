//! The admin listener: `GET /api/v1/farms` (every farm and member with flags,
//! weight, counters and health: the last flip with its reason, flips per flag, panic mode, the
//! farm's requests against its attempts at members; the last load report of each member, its
//! agent's weight percentage, rejects and failures), `GET /healthz`, the load-report intake
//! (`POST /api/v1/reports`, `GET /ath/update`, in [`intake`]) and "which member?"
//! (`GET /api/v1/farms/{farm}/pick`, `GET /ath/balance/?farm`, in [`pick`]). The control-plane issue grows this into the
//! `drover-admin` crate (writes with auth, dashboard, /metrics).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use bytes::Bytes;
use drover_core::{Flag, Member, Source, clock};
use drover_proxy::Proxy;
use http_body_util::BodyExt;
use http_body_util::Full;
use hyper::{
    Request, Response, StatusCode, body::Incoming, header, server::conn::http1, service::service_fn,
};

mod intake;
mod pick;

use hyper_util::rt::TokioIo;
pub use intake::Intake;
use serde::Serialize;
use tokio::net::TcpListener;

#[derive(Serialize)]
struct FarmView<'a> {
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
struct MemberView<'a> {
    name: &'a str,
    address: String,
    weight: u32,
    route: Option<&'a str>,
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

pub async fn serve(listener: TcpListener, proxy: Arc<Proxy>, intake: Arc<Intake>) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let proxy = Arc::clone(&proxy);
        let intake = Arc::clone(&intake);
        tokio::spawn(async move {
            let svc =
                service_fn(move |req| answer(Arc::clone(&proxy), Arc::clone(&intake), peer, req));
            let _ = http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(BODY_TIMEOUT)
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// How long a request head, and a push body, may take to arrive.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// The farm of `/api/v1/farms/{farm}/pick`: a non-empty name without `/`.
fn pick_farm(path: &str) -> Option<&str> {
    let farm = path.strip_prefix("/api/v1/farms/")?.strip_suffix("/pick")?;
    (!farm.is_empty() && !farm.contains('/')).then_some(farm)
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> (StatusCode, &'static str, Bytes) {
    (status, "text/plain; charset=utf-8", body.into())
}

async fn answer(
    proxy: Arc<Proxy>,
    intake: Arc<Intake>,
    peer: std::net::SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let (status, ctype, body) = match (req.method().as_str(), path.as_str()) {
        ("GET", "/healthz") => text(StatusCode::OK, Bytes::from_static(b"ok\n")),
        ("GET", "/api/v1/farms") => (
            StatusCode::OK,
            "application/json",
            farms_json(&proxy, &intake),
        ),
        ("POST", "/api/v1/reports") => match intake.gate(req.headers(), peer) {
            Some(a) => text(a.status, a.body),
            None => {
                let (parts, body) = req.into_parts();
                // One byte over the limit is enough to answer 413 without reading the rest; a
                // body that trickles is cut off after BODY_TIMEOUT.
                let limited =
                    http_body_util::Limited::new(body, drover_core::report::push::MAX_BODY + 1);
                match tokio::time::timeout(BODY_TIMEOUT, limited.collect()).await {
                    Ok(Ok(b)) => {
                        let a = intake.post(&proxy.routing(), &parts.headers, &b.to_bytes(), peer);
                        text(a.status, a.body)
                    }
                    Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
                        let a = intake.too_large(peer);
                        text(a.status, a.body)
                    }
                    Ok(Err(_)) => {
                        text(StatusCode::BAD_REQUEST, "push body: the upload broke off\n")
                    }
                    Err(_) => text(
                        StatusCode::REQUEST_TIMEOUT,
                        "push body: not received within 10s\n",
                    ),
                }
            }
        },
        ("GET", "/ath/update" | "/ath/update/") => {
            let a = intake.get(&proxy.routing(), req.headers(), &query, peer);
            text(a.status, a.body)
        }
        ("GET", "/ath/balance" | "/ath/balance/") => pick::balance(&proxy.routing(), &query),
        ("GET", p) if pick_farm(p).is_some() => {
            pick::pick(&proxy.routing(), pick_farm(p).unwrap_or_default())
        }
        ("GET", _) => text(StatusCode::NOT_FOUND, Bytes::from_static(b"not found\n")),
        _ => text(
            StatusCode::METHOD_NOT_ALLOWED,
            Bytes::from_static(b"method not allowed\n"),
        ),
    };
    let mut res = Response::new(Full::new(body));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(ctype),
    );
    Ok(res)
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

fn farms_json(proxy: &Proxy, intake: &Intake) -> Bytes {
    let routing = proxy.routing();
    let farms: Vec<FarmView<'_>> = routing
        .farms
        .iter()
        .map(|f| FarmView {
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
            members: f
                .farm
                .members
                .iter()
                .map(|m| MemberView {
                    name: m.name(),
                    address: m.addr().to_string(),
                    weight: m.state.weight(),
                    route: m.spec.route.as_deref(),
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
                    connections: m.stats.connections(),
                    weight_pct: m.state.weight_pct(),
                    reported: reported(m),
                    report_rejects: m.reported.rejects(),
                    agent_failures: m.reported.failures(),
                    agent_failing: m.reported.is_failing(),
                })
                .collect(),
        })
        .collect();
    let reports = serde_json::json!({
        "accepted": intake.accepted.load(Relaxed),
        "rejected": intake.rejected(),
    });
    let mut out =
        serde_json::to_vec_pretty(&serde_json::json!({ "farms": farms, "reports": reports }))
            .unwrap_or_default();
    out.push(b'\n');
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::pick_farm;

    #[test]
    fn pick_paths_name_one_farm_and_never_overlap() {
        assert_eq!(pick_farm("/api/v1/farms/app/pick"), Some("app"));
        // The prefix and the suffix share the '/': this once sliced out of bounds.
        assert_eq!(pick_farm("/api/v1/farms/pick"), None);
        assert_eq!(pick_farm("/api/v1/farms//pick"), None);
        assert_eq!(pick_farm("/api/v1/farms/a/b/pick"), None);
        assert_eq!(pick_farm("/api/v1/farms/app"), None);
    }
}
