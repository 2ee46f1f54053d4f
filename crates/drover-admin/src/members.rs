//! The operator's writes on members: `POST /api/v1/farms/{farm}/members/{member}/{action}`
//! (`enable`, `disable`, `drain`, `undrain`) and `PATCH /api/v1/farms/{farm}/members/{member}`
//! (`{"weight": N}`, `{"route": "r1"}`, both; `"route": ""` takes the route away).
//!
//! Each answers the member's view (as in `GET /api/v1/farms/{farm}`) on success, and a 4xx with a
//! JSON `{"error": "..."}` that says what was wrong otherwise: unknown farm or member (404), unknown
//! action (404), malformed JSON or an unknown field (400), weight out of range (400). A flip is
//! logged once at info with who made it, and recorded as the member's last transition with the
//! reason `operator (<who>): <action>`; repeating an action changes nothing and logs nothing.
//!
//! Every change is kept in the state file when `[server] state_file` is set (see
//! [`crate::control::Control::changed`]), and survives reloads that do not change the member's own
//! value in the config. A route change rebuilds the farm (its route map is built with it); a flag
//! or weight is an atomic, seen by the next pick. What a write does not do yet: a new weight
//! reaches `weighted`, `random` and `hash` only when the farm is rebuilt (the others read it on the
//! next pick).

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, State};
use axum::response::Response;
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
    let who = crate::control::who(&caller);
    let m = &f.farm.members[index];
    let reason = || format!("operator ({who}): {action}");
    if let Some(t) = m.flip(flag, value, reason, clock::now()) {
        tracing::info!(farm = %farm, member = %member, "member {member} {t}");
        if flag == Flag::On
            && let Some((panic, why)) = f.farm.refresh()
        {
            tracing::warn!(farm = %farm, panic, "panic mode {}: {why}", if panic { "on" } else { "off" });
        }
        crate::control::changed(&state.control).await;
    }
    // Published even when nothing flipped here: the operator means it for the whole cluster.
    if let Some(p) = state.peers.get() {
        let change = match flag {
            Flag::On => crate::OperatorChange::On(value),
            _ => crate::OperatorChange::Drain(value),
        };
        p.operator_change(&farm, &member, change);
    }
    crate::json_response(StatusCode::OK, view::json(&view::member_view(m)))
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
                format!(
                    "malformed JSON ({e}); expected {{\"weight\": 1..1000}} and/or {{\"route\": \"id\"}}"
                ),
            );
        }
    };
    if patch.weight.is_none() && patch.route.is_none() {
        return error(
            StatusCode::BAD_REQUEST,
            "nothing to change; expected {\"weight\": 1..1000} and/or {\"route\": \"id\"}"
                .to_owned(),
        );
    }
    if let Some(weight) = patch.weight
        && !(1..=1000).contains(&weight)
    {
        return error(
            StatusCode::BAD_REQUEST,
            format!("weight {weight} is out of range; use 1 to 1000 (disable the member for 0)"),
        );
    }
    let who = crate::control::who(&caller);
    // The weight first: a route change rebuilds the farm, and the rebuilt policy then starts
    // from the new weight.
    if let Some(weight) = patch.weight {
        let old = m.state.weight();
        if old != weight {
            m.state.set_weight(weight);
            tracing::info!(farm = %farm, member = %member, old, weight, "weight of {member} set by operator ({who})");
            crate::control::changed(&state.control).await;
        }
        if let Some(p) = state.peers.get() {
            p.operator_change(&farm, &member, crate::OperatorChange::Weight(weight));
        }
    }
    if let Some(route) = patch.route {
        let route = (!route.is_empty()).then_some(route);
        let (control, f, m, w) = (
            Arc::clone(&state.control),
            farm.clone(),
            member.clone(),
            who.clone(),
        );
        if let Err(e) = crate::control::blocking(move || control.set_route(&f, &m, route, &w)).await
        {
            let set = if patch.weight.is_some() {
                " (the weight was set)"
            } else {
                ""
            };
            return error(e.status, format!("{}{set}", e.message));
        }
    }
    crate::json_response(StatusCode::OK, view::json(&view::member_view(m)))
}
