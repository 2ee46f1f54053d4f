//! The cluster routes: `GET /api/v1/cluster` (this node, the nodes, the VIPs, which ones this
//! node holds, keepalived's state) and `POST /api/v1/cluster/maintenance` (`{"on": true}`: this
//! node gives up its VIPs; `false`: it may hold them again). The binary implements [`Cluster`]
//! over drover-cluster when the config has `[cluster]`; without it both answer 404.

use std::sync::Arc;

use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use bytes::Bytes;
use hyper::StatusCode;
use serde::Deserialize;

use crate::auth::Caller;
use crate::control::{blocking, who};
use crate::{AdminState, error, view};

/// What the admin API asks of the cluster.
pub trait Cluster: Send + Sync {
    /// The cluster as this node sees it, as JSON. May block a few milliseconds (it reads the
    /// interface's addresses): called off the async threads.
    fn status(&self) -> serde_json::Value;
    /// Turns maintenance on or off (`who` for the log line); answers the status after.
    fn set_maintenance(&self, on: bool, who: &str) -> serde_json::Value;
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Maintenance {
    on: bool,
}

fn cluster_of(state: &AdminState) -> Option<Arc<dyn Cluster>> {
    state.cluster.get().cloned()
}

fn no_cluster() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "this node is not in a cluster: its config has no [cluster] table".to_owned(),
    )
}

/// `GET /api/v1/cluster`.
pub async fn status(State(state): State<Arc<AdminState>>) -> Response {
    let Some(cluster) = cluster_of(&state) else {
        return no_cluster();
    };
    match blocking(move || Ok(cluster.status())).await {
        Ok(v) => crate::json_response(StatusCode::OK, view::json(&v)),
        Err(e) => error(e.status, e.message),
    }
}

/// `POST /api/v1/cluster/maintenance`.
pub async fn maintenance(
    State(state): State<Arc<AdminState>>,
    caller: Option<Extension<Caller>>,
    body: Bytes,
) -> Response {
    // The body first: a bad one is a 400 whether or not this node is in a cluster.
    let m: Maintenance = match serde_json::from_slice(&body) {
        Ok(m) => m,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("malformed JSON ({e}); expected {{\"on\": true}} or {{\"on\": false}}"),
            );
        }
    };
    let Some(cluster) = cluster_of(&state) else {
        return no_cluster();
    };
    let who = who(&caller);
    match blocking(move || Ok(cluster.set_maintenance(m.on, &who))).await {
        Ok(v) => crate::json_response(StatusCode::OK, view::json(&v)),
        Err(e) => error(e.status, e.message),
    }
}
