//! drover-admin: the control plane's admin listener, separate from the traffic listeners
//! (default `127.0.0.1:9090`).
//!
//! Where it sits: the binary starts [`serve`] with the running [`drover_proxy::Proxy`] when the
//! config has `[admin]`. Everything here reads and writes the proxy's live snapshot
//! (`Proxy::routing`): member flags and weights are atomics in `drover-core`, so a write is seen by
//! the next pick without a lock or a rebuild.
//!
//! Routes (axum):
//! - open: `GET /healthz`, and the dashboard's static files `GET /`, `GET /dashboard/app.js`,
//!   `GET /dashboard/style.css` ([`dashboard`]; its data and writes go through the API below);
//! - signed with the `[reports]` secret (their own authentication, [`intake`]):
//!   `POST /api/v1/reports`, `GET /ath/update`;
//! - behind [`auth`] (reads may be opened by `open_reads`; writes always need credentials):
//!   `GET /metrics` (OpenMetrics text, [`metrics`]), `GET /api/v1/farms`,
//!   `GET /api/v1/farms/{farm}` ([`view`]), "which member?"
//!   (`GET /api/v1/farms/{farm}/pick`, `GET /ath/balance/?farm`, [`pick`]), and the operator's
//!   writes `POST /api/v1/farms/{farm}/members/{member}/{enable|disable|drain|undrain}` and
//!   `PATCH /api/v1/farms/{farm}/members/{member}` ([`members`]), members added and removed at
//!   run time (`POST /api/v1/farms/{farm}/members`, `DELETE .../members/{member}`) and
//!   `POST /api/v1/reload` ([`control`]), `GET /api/v1/cluster` and
//!   `POST /api/v1/cluster/maintenance` ([`cluster`]). Anything else is a 404, after the credentials check.
//!   A cross-site write (foreign `Origin`, or `Sec-Fetch-Site` `cross-site`/`same-site`) is
//!   refused with 403 before that ([`auth::cross_site`]).
//!
//! Connections: HTTP/1.1 with hyper; a request head (and a push body) must arrive within 10 s.
//! Request bodies are limited to 64 KiB (pushes: `drover_core::report::push::MAX_BODY`).
//!
//! Config keys read: `[admin]` (`listen`, `token`, `token_file`, `users_file`, `open_reads`) and
//! `[reports]`. Metrics: the push counters (`reports` in `GET /api/v1/farms`,
//! `drover_reports_*` in `/metrics`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, RawQuery, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use bytes::Bytes;
use drover_proxy::Proxy;
use hyper::{StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

pub mod auth;
pub mod cluster;
pub mod control;
pub mod dashboard;
pub mod intake;
pub mod members;
pub mod metrics;
pub mod pick;
pub mod view;

use arc_swap::ArcSwap;
pub use auth::Auth;
pub use cluster::Cluster;
pub use control::{Control, ControlError, NewMember, Reloaded};
pub use intake::Intake;

/// What every admin request shares.
pub struct AdminState {
    pub proxy: Arc<Proxy>,
    pub intake: Intake,
    /// Swapped whole when a reload changes `[admin]`'s credentials.
    pub auth: ArcSwap<Auth>,
    pub control: Arc<dyn Control>,
    /// The cluster's peers, when the node is in one (`[cluster]`): told of operator changes and
    /// pushed reports, and shown at `GET /api/v1/cluster/peers`.
    pub peers: std::sync::OnceLock<Arc<dyn Peers>>,
    /// The cluster, when the config has `[cluster]` (set once, after start).
    pub cluster: std::sync::OnceLock<Arc<dyn Cluster>>,
}

/// An operator's change to a member, for the peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorChange {
    On(bool),
    Drain(bool),
    Weight(u32),
}

/// What the admin API needs of a cluster's gossip (drover-cluster; the binary wires it).
pub trait Peers: Send + Sync {
    /// The operator changed a member on this node (already applied here).
    fn operator_change(&self, farm: &str, member: &str, change: OperatorChange);
    /// Load reports pushed to this node (already applied here).
    fn reports_received(&self, reports: &[drover_core::LoadReport]);
    /// `GET /api/v1/cluster/peers`.
    fn view(&self) -> serde_json::Value;
    /// For `/metrics`.
    fn counters(&self) -> PeerCounters;
}

/// The gossip's counters for `/metrics` (`drover_gossip_*`, docs/metrics.md).
#[derive(Debug, Clone, Default)]
pub struct PeerCounters {
    /// Other nodes (older lives of this one included) alive and dead.
    pub alive: u64,
    pub dead: u64,
    /// By kind: `op`, `sticky`, `report`.
    pub applied: Vec<(&'static str, u64)>,
    pub published: Vec<(&'static str, u64)>,
    pub ignored: u64,
}

impl AdminState {
    pub fn new(
        proxy: Arc<Proxy>,
        admin: &drover_config::Admin,
        reports: &drover_config::Reports,
        control: Arc<dyn Control>,
    ) -> Self {
        AdminState {
            proxy,
            intake: Intake::new(reports),
            auth: ArcSwap::from_pointee(Auth::new(admin)),
            control,
            peers: std::sync::OnceLock::new(),
            cluster: std::sync::OnceLock::new(),
        }
    }

    /// Takes the credentials of a reloaded `[admin]` table.
    pub fn set_credentials(&self, admin: &drover_config::Admin) {
        self.auth.store(Arc::new(Auth::new(admin)));
    }
}

/// How long a request head, and a push body, may take to arrive.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request body of the API's own writes.
const MAX_BODY: usize = 64 * 1024;

/// The admin API's routes over `state`.
pub fn router(state: Arc<AdminState>) -> Router {
    let guarded = Router::new()
        .route("/metrics", get(metrics::handler))
        .route("/api/v1/farms", get(farms))
        .route("/api/v1/farms/{farm}", get(farm))
        .route("/api/v1/farms/{farm}/pick", get(pick_route))
        .route("/ath/balance", get(balance))
        .route("/ath/balance/", get(balance))
        .route(
            "/api/v1/farms/{farm}/members/{member}/{action}",
            post(members::action),
        )
        .route(
            "/api/v1/farms/{farm}/members/{member}",
            patch(members::patch),
        )
        .route(
            "/api/v1/farms/{farm}/members/{member}",
            delete(control::remove),
        )
        .route("/api/v1/farms/{farm}/members", post(control::add))
        .route("/api/v1/reload", post(control::reload))
        .route("/api/v1/cluster/peers", get(cluster_peers))
        .route("/api/v1/cluster", get(cluster::status))
        .route("/api/v1/cluster/maintenance", post(cluster::maintenance))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            auth::require,
        ));
    Router::new()
        .route("/healthz", get(|| async { text(StatusCode::OK, "ok\n") }))
        .route("/", get(dashboard::index))
        .route("/dashboard/app.js", get(dashboard::app_js))
        .route("/dashboard/style.css", get(dashboard::style_css))
        .route("/api/v1/reports", post(push))
        .route("/ath/update", get(update))
        .route("/ath/update/", get(update))
        .merge(guarded)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(state)
}

/// Serves the admin API on `listener` until the task is dropped.
pub async fn serve(listener: TcpListener, state: Arc<AdminState>) {
    let app = router(state);
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        // The peer, for log lines (the auth middleware and the intake read it).
        let app = app.clone().layer(axum::Extension(peer));
        tokio::spawn(async move {
            let svc = hyper_util::service::TowerToHyperService::new(app);
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(BODY_TIMEOUT)
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// An intake answer: the accepted line is JSON, every refusal a line of text. Applied reports
/// go to the peers too.
fn intake_reply(state: &AdminState, a: intake::Answer) -> Response {
    if !a.applied.is_empty()
        && let Some(p) = state.peers.get()
    {
        p.reports_received(&a.applied);
    }
    if a.status == StatusCode::OK {
        (
            a.status,
            [(header::CONTENT_TYPE, "application/json")],
            a.body,
        )
            .into_response()
    } else {
        text(a.status, a.body)
    }
}

pub(crate) fn json_response(status: StatusCode, body: Bytes) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

pub(crate) fn text(status: StatusCode, body: impl Into<Bytes>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body.into(),
    )
        .into_response()
}

/// A 4xx with `{"error": why}`.
pub(crate) fn error(status: StatusCode, why: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        view::json(&serde_json::json!({ "error": why })),
    )
        .into_response()
}

async fn not_found() -> Response {
    text(StatusCode::NOT_FOUND, "not found\n")
}

async fn farms(State(state): State<Arc<AdminState>>) -> Response {
    let body = view::farms_json(&state.proxy.routing(), &state.intake);
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

async fn farm(State(state): State<Arc<AdminState>>, Path(name): Path<String>) -> Response {
    let routing = state.proxy.routing();
    match routing.farm(&name) {
        Some(f) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            view::json(&view::farm_view(f)),
        )
            .into_response(),
        None => error(StatusCode::NOT_FOUND, format!("unknown farm {name:?}")),
    }
}

/// `GET /api/v1/cluster/peers`: 404 when this node is in no cluster.
async fn cluster_peers(State(state): State<Arc<AdminState>>) -> Response {
    match state.peers.get() {
        Some(p) => json_response(StatusCode::OK, view::json(&p.view())),
        None => error(
            StatusCode::NOT_FOUND,
            "this node is in no cluster (no [cluster] table in its config)".to_owned(),
        ),
    }
}

async fn pick_route(State(state): State<Arc<AdminState>>, Path(name): Path<String>) -> Response {
    pick::pick(&state.proxy.routing(), &name)
}

async fn balance(State(state): State<Arc<AdminState>>, RawQuery(q): RawQuery) -> Response {
    pick::balance(&state.proxy.routing(), q.as_deref().unwrap_or(""))
}

fn peer_of(req: &Request) -> SocketAddr {
    req.extensions()
        .get::<SocketAddr>()
        .copied()
        .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)))
}

async fn update(State(state): State<Arc<AdminState>>, req: Request) -> Response {
    let peer = peer_of(&req);
    let query = req.uri().query().unwrap_or("");
    let a = state
        .intake
        .get(&state.proxy.routing(), req.headers(), query, peer);
    intake_reply(&state, a)
}

async fn push(State(state): State<Arc<AdminState>>, req: Request) -> Response {
    use http_body_util::BodyExt;
    let peer = peer_of(&req);
    if let Some(a) = state.intake.gate(req.headers(), peer) {
        return intake_reply(&state, a);
    }
    let (parts, body) = req.into_parts();
    // One byte over the limit is enough to answer 413 without reading the rest; a body that
    // trickles is cut off after BODY_TIMEOUT.
    let limited = http_body_util::Limited::new(body, drover_core::report::push::MAX_BODY + 1);
    match tokio::time::timeout(BODY_TIMEOUT, limited.collect()).await {
        Ok(Ok(b)) => {
            let a = state
                .intake
                .post(&state.proxy.routing(), &parts.headers, &b.to_bytes(), peer);
            intake_reply(&state, a)
        }
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            let a = state.intake.too_large(peer);
            intake_reply(&state, a)
        }
        Ok(Err(_)) => text(StatusCode::BAD_REQUEST, "push body: the upload broke off\n"),
        Err(_) => text(
            StatusCode::REQUEST_TIMEOUT,
            "push body: not received within 10s\n",
        ),
    }
}
