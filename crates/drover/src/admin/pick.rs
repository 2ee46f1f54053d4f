//! "Which member?": `GET /api/v1/farms/{farm}/pick` (the member a request would get now, and why)
//! and mod_athena's `GET /ath/balance/?{farm}` (the bare member name, for clients that connect to
//! the member themselves).
//!
//! Both make a real pick through the farm's policy, as a request would (so a round-robin cursor
//! moves, as mod_athena's did). Neither starts a request on the member: its in-flight count is
//! untouched. Answers: 404 for an unknown farm, 503 when no member is ready.

use bytes::Bytes;
use drover_core::{Flag, PickContext, Rng, clock};
use drover_proxy::state::Routing;
use hyper::StatusCode;

type Answer = (StatusCode, &'static str, Bytes);

fn rng() -> Rng {
    Rng::new(clock::now() ^ 0x9e37_79b9_7f4a_7c15)
}

/// `GET /ath/balance/?app`: the query is the farm's name (mod_athena's form); `farm=app` works too.
pub fn balance(routing: &Routing, query: &str) -> Answer {
    let name = query.strip_prefix("farm=").unwrap_or(query);
    let Some(f) = routing.farm(name) else {
        return super::text(
            StatusCode::NOT_FOUND,
            format!("unknown farm {name:?}; ask /ath/balance/?<farm>\n"),
        );
    };
    let mut ctx = PickContext::new(rng());
    match f.farm.pick(&mut ctx) {
        Some((_, m)) => super::text(StatusCode::OK, format!("{}\n", m.name())),
        None => super::text(
            StatusCode::SERVICE_UNAVAILABLE,
            "no member is ready\n".to_owned(),
        ),
    }
}

/// `GET /api/v1/farms/{farm}/pick`: the chosen member and the policy's reasons, as JSON.
pub fn pick(routing: &Routing, farm: &str) -> Answer {
    let Some(f) = routing.farm(farm) else {
        return super::text(StatusCode::NOT_FOUND, format!("unknown farm {farm:?}\n"));
    };
    let now = clock::now();
    let mut ctx = PickContext::new(rng());
    let chosen = f.farm.pick(&mut ctx).map(|(_, m)| m.name().to_owned());
    let mut candidates = Vec::new();
    let mut removed = Vec::new();
    for m in &f.farm.members {
        let s = &m.state;
        let why = if !s.get(Flag::On) {
            Some("off (operator)")
        } else if !s.get(Flag::Up) {
            Some("down (health checks)")
        } else if s.get(Flag::Ejected) {
            Some("ejected (passive checks)")
        } else if !s.get(Flag::In) {
            Some("out (no fresh load report)")
        } else if s.get(Flag::Draining) {
            Some("draining")
        } else {
            None
        };
        let received = m.reported.received();
        let view = serde_json::json!({
            "member": m.name(),
            "in_flight": m.stats.in_flight(),
            "weight": s.weight(),
            "weight_pct": s.weight_pct(),
            "latency_ewma_ms": m.stats.latency_ewma_ns() / 1e6,
            "report_age_s": (received != 0).then(|| now.saturating_sub(received) as f64 / 1e9),
        });
        match why {
            Some(why) => removed
                .push(serde_json::json!({ "member": m.name(), "stage": "ready", "why": why })),
            None => candidates.push(view),
        }
    }
    let status = if chosen.is_some() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut body = serde_json::to_vec_pretty(&serde_json::json!({
        "farm": f.farm.name,
        "policy": f.farm.kind.name(),
        "panic": f.farm.in_panic(),
        "chosen": chosen,
        "candidates": candidates,
        "removed": removed,
    }))
    .unwrap_or_default();
    body.push(b'\n');
    (status, "application/json", Bytes::from(body))
}
