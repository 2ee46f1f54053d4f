//! The operator's writes on members: `POST /api/v1/farms/{farm}/members/{member}/{action}`
//! (`enable`, `disable`, `drain`, `undrain`) and `PATCH /api/v1/farms/{farm}/members/{member}`
//! (`{"weight": N}`).
//!
//! Each answers the member's view (as in `GET /api/v1/farms/{farm}`) on success, and a 4xx with a
//! JSON `{"error": "..."}` that says what was wrong otherwise: unknown farm or member (404), unknown
//! action (404), malformed JSON or an unknown field (400), weight out of range (400). A flip is
//! logged once at info with who made it, and recorded as the member's last transition with the
//! reason `operator (<who>): <action>`; repeating an action changes nothing and logs nothing.
//!
//! What a write does not do yet: it is not persisted (a restart or reload returns to the config),
//! a new weight reaches `weighted`, `random` and `hash` only when the farm is rebuilt (the others
//! read it on the next pick), and routes cannot change at run time.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use drover_core::{Flag, clock};
use hyper::StatusCode;
use serde::Deserialize;

use crate::auth::Caller;
use crate::{AdminState, error, view};

/// `POST /api/v1/farms/{farm}/members/{member}/{action}`.
pub async fn action(
    State(state): State<Arc<AdminState>>,
    caller: Option<Extension<Caller>>,
    Path((farm, member, action)): Path<(String, String, String)>,
) -> Response {
    let routing = state.proxy.routing();
    let Some(f) = routing.farm(&farm) else {
        return error(StatusCode::NOT_FOUND, format!("unknown farm {farm:?}"));
    };
    let Some(index) = f.farm.members.iter().position(|m| m.name() == member) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("farm {farm:?} has no member {member:?}"),
        );
    };
    let (flag, value) = match action.as_str() {
        "enable" => (Flag::On, true),
        "disable" => (Flag::On, false),
        "drain" => (Flag::Draining, true),
        "undrain" => (Flag::Draining, false),
        _ => {
            return error(
                StatusCode::NOT_FOUND,
                format!("unknown action {action:?}; use enable, disable, drain or undrain"),
            );
        }
    };
    let who = caller.map_or_else(|| "anonymous".to_owned(), |c| c.0.0.clone());
    let m = &f.farm.members[index];
    let reason = || format!("operator ({who}): {action}");
    if let Some(t) = m.flip(flag, value, reason, clock::now()) {
        tracing::info!(farm = %farm, member = %member, "member {member} {t}");
        if flag == Flag::On
            && let Some((panic, why)) = f.farm.refresh()
        {
            tracing::warn!(farm = %farm, panic, "panic mode {}: {why}", if panic { "on" } else { "off" });
        }
    }
    json(StatusCode::OK, view::json(&view::member_view(m)))
}

/// The body of `PATCH /api/v1/farms/{farm}/members/{member}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Patch {
    weight: Option<u32>,
    route: Option<String>,
}

/// `PATCH /api/v1/farms/{farm}/members/{member}`.
pub async fn patch(
    State(state): State<Arc<AdminState>>,
    caller: Option<Extension<Caller>>,
    Path((farm, member)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let routing = state.proxy.routing();
    let Some(f) = routing.farm(&farm) else {
        return error(StatusCode::NOT_FOUND, format!("unknown farm {farm:?}"));
    };
    let Some(m) = f.farm.members.iter().find(|m| m.name() == member) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("farm {farm:?} has no member {member:?}"),
        );
    };
    let patch: Patch = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("malformed JSON ({e}); expected {{\"weight\": 1..1000}}"),
            );
        }
    };
    if patch.route.is_some() {
        return error(
            StatusCode::BAD_REQUEST,
            "a member's route cannot change at run time yet; change it in the config".to_owned(),
        );
    }
    let Some(weight) = patch.weight else {
        return error(
            StatusCode::BAD_REQUEST,
            "nothing to change; expected {\"weight\": 1..1000}".to_owned(),
        );
    };
    if !(1..=1000).contains(&weight) {
        return error(
            StatusCode::BAD_REQUEST,
            format!("weight {weight} is out of range; use 1 to 1000 (disable the member for 0)"),
        );
    }
    let old = m.state.weight();
    if old != weight {
        m.state.set_weight(weight);
        let who = caller.map_or_else(|| "anonymous".to_owned(), |c| c.0.0.clone());
        tracing::info!(farm = %farm, member = %member, old, weight, "weight of {member} set by operator ({who})");
    }
    json(StatusCode::OK, view::json(&view::member_view(m)))
}

fn json(status: StatusCode, body: Bytes) -> Response {
    (
        status,
        [(hyper::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}
