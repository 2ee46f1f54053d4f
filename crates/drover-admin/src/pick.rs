//! "Which member?": `GET /api/v1/farms/{farm}/pick` (the member a request would get now, and why)
//! and mod_athena's `GET /ath/balance/?{farm}` (the bare member name, for clients that connect to
//! the member themselves).
//!
//! Both make a real pick through the farm's policy, as a request would (so a round-robin cursor
//! moves, as mod_athena's did). Neither starts a request on the member: its in-flight count is
//! untouched. Answers: 404 for an unknown farm, 503 when no member is ready.

use drover_core::{PickContext, Rng, clock};
use drover_proxy::state::Routing;
use hyper::StatusCode;

type Answer = axum::response::Response;

fn rng() -> Rng {
    Rng::new(clock::now() ^ 0x9e37_79b9_7f4a_7c15)
}

/// `GET /ath/balance/?app`: the query is the farm's name (mod_athena's form); `farm=app` works too.
pub fn balance(routing: &Routing, query: &str) -> Answer {
    let name = query.strip_prefix("farm=").unwrap_or(query);
    let Some(f) = routing.farm(name) else {
        return crate::text(
            StatusCode::NOT_FOUND,
            format!("unknown farm {name:?}; ask /ath/balance/?<farm>\n"),
        );
    };
    let mut ctx = PickContext::new(rng());
    match f.farm.pick(&mut ctx) {
        Some((_, m)) => crate::text(StatusCode::OK, format!("{}\n", m.name())),
        None => crate::text(
            StatusCode::SERVICE_UNAVAILABLE,
            "no member is ready\n".to_owned(),
        ),
    }
}

/// `GET /api/v1/farms/{farm}/pick`: the chosen member and the policy's reasons
/// (`drover_core::policy::Explanation`: candidates with their scores, removed members with the
/// stage and why, notes), as JSON.
pub fn pick(routing: &Routing, farm: &str) -> Answer {
    let Some(f) = routing.farm(farm) else {
        return crate::error(StatusCode::NOT_FOUND, format!("unknown farm {farm:?}"));
    };
    let mut ctx = PickContext::new(rng());
    let explanation = f.farm.explain(&mut ctx);
    let status = if explanation.chosen.is_some() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = crate::view::json(&explanation);
    axum::response::IntoResponse::into_response((
        status,
        [(hyper::header::CONTENT_TYPE, "application/json")],
        body,
    ))
}
