//! What the admin API asks of the running process beyond the live snapshot: reload the config,
//! add and remove members, change a member's route, and keep the operator's changes in the state
//! file. The binary implements [`Control`] (it owns the config file, the health checks and the
//! state file); the routes here only parse, call and answer.
//!
//! Routes: `POST /api/v1/reload`, `POST /api/v1/farms/{farm}/members` (add),
//! `DELETE /api/v1/farms/{farm}/members/{member}` (remove). A route change arrives through
//! `PATCH /api/v1/farms/{farm}/members/{member}` ([`crate::members`]).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Extension;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hyper::StatusCode;
use serde::{Deserialize, Serialize};

use crate::auth::Caller;
use crate::{AdminState, error, view};

/// A refusal: the status to answer and the reason, for the caller.
#[derive(Debug, Clone)]
pub struct ControlError {
    pub status: StatusCode,
    pub message: String,
}

impl ControlError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ControlError {
            status,
            message: message.into(),
        }
    }
}

/// What a reload did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Reloaded {
    /// The file that was read.
    pub path: String,
    pub farms: usize,
    pub members: usize,
    /// Members that kept their runtime state, that are new, and that are gone.
    pub kept: usize,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    /// Settings the new file changes that a reload cannot apply (they need a restart or a binary
    /// upgrade), one line each.
    pub not_applied: Vec<String>,
}

/// A member to add at run time: `POST /api/v1/farms/{farm}/members`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewMember {
    pub name: String,
    pub address: SocketAddr,
    #[serde(default = "one")]
    pub weight: u32,
    #[serde(default)]
    pub route: Option<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn one() -> u32 {
    1
}
fn yes() -> bool {
    true
}

/// The process side of the admin API's writes that rebuild the snapshot.
pub trait Control: Send + Sync {
    /// Reads the config file again; validates it whole before anything changes.
    fn reload(&self, who: &str) -> Result<Reloaded, ControlError>;
    fn add_member(&self, farm: &str, member: NewMember, who: &str) -> Result<(), ControlError>;
    fn remove_member(&self, farm: &str, member: &str, who: &str) -> Result<(), ControlError>;
    /// `route = None` takes the member's route away.
    fn set_route(
        &self,
        farm: &str,
        member: &str,
        route: Option<String>,
        who: &str,
    ) -> Result<(), ControlError>;
    /// The operator changed a flag or a weight in place: keep it (state file).
    fn changed(&self);
}

pub(crate) fn who(caller: &Option<Extension<Caller>>) -> String {
    caller
        .as_ref()
        .map_or_else(|| "anonymous".to_owned(), |c| c.0.0.clone())
}

/// Runs a [`Control`] call off the async threads: it reads and writes files and waits for the
/// health thread.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ControlError> + Send + 'static,
) -> Result<T, ControlError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|_| {
        Err(ControlError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the change failed unexpectedly (see the log); read the farm back to see what is in force",
        ))
    })
}

fn refused(e: ControlError) -> Response {
    error(e.status, e.message)
}

/// `POST /api/v1/reload`.
pub async fn reload(
    State(state): State<Arc<AdminState>>,
    caller: Option<Extension<Caller>>,
) -> Response {
    let control = Arc::clone(&state.control);
    let who = who(&caller);
    match blocking(move || control.reload(&who)).await {
        Ok(done) => crate::json_response(StatusCode::OK, view::json(&done)),
        Err(e) => refused(e),
    }
}

/// `POST /api/v1/farms/{farm}/members`.
pub async fn add(
    State(state): State<Arc<AdminState>>,
    caller: Option<Extension<Caller>>,
    Path(farm): Path<String>,
    body: Bytes,
) -> Response {
    let member: NewMember = match serde_json::from_slice(&body) {
        Ok(m) => m,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "malformed JSON ({e}); expected {{\"name\": \"web4\", \"address\": \"10.0.0.4:80\", \"weight\": 1, \"route\": \"w4\"}}"
                ),
            );
        }
    };
    let name = member.name.clone();
    let (control, who, f) = (Arc::clone(&state.control), who(&caller), farm.clone());
    if let Err(e) = blocking(move || control.add_member(&f, member, &who)).await {
        return refused(e);
    }
    let routing = state.proxy.routing();
    match routing
        .farm(&farm)
        .and_then(|f| f.farm.members.iter().find(|m| m.name() == name))
    {
        Some(m) => crate::json_response(StatusCode::CREATED, view::json(&view::member_view(m))),
        None => error(
            StatusCode::CONFLICT,
            format!("member {name:?} was added, then changed again before this answer"),
        ),
    }
}

/// `DELETE /api/v1/farms/{farm}/members/{member}`.
pub async fn remove(
    State(state): State<Arc<AdminState>>,
    caller: Option<Extension<Caller>>,
    Path((farm, member)): Path<(String, String)>,
) -> Response {
    let (control, who) = (Arc::clone(&state.control), who(&caller));
    match blocking(move || control.remove_member(&farm, &member, &who)).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(e) => refused(e),
    }
}

/// Tells the control that a member's state changed (the state file is written), off the async
/// threads.
pub(crate) async fn changed(control: &Arc<dyn Control>) {
    let control = Arc::clone(control);
    let _ = blocking(move || {
        control.changed();
        Ok(())
    })
    .await;
}
