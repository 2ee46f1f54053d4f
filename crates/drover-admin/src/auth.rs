//! Who may call the admin API: a bearer token (`[admin] token`), basic auth against bcrypt hashes
//! (`[admin] users_file`), and reads opened by config (`open_reads`).
//!
//! Every write (any method but GET and HEAD) needs credentials; reads do too unless `open_reads`.
//! The check runs before routing looks at anything (an unauthenticated write to a member that does
//! not exist is a 401, not a 404), answers 401 with `WWW-Authenticate`, and logs one line with the
//! peer, method, path and why (at most one a second, with a count of those held back). Secrets,
//! passwords and hashes appear in no log line and no answer. Exempt: `/healthz` (for whatever
//! watches the balancer) and the signed load-report intake (`POST /api/v1/reports`,
//! `GET /ath/update`), which has its own HMAC authentication.
//!
//! Costs: a token is compared in constant time (`subtle`); a basic-auth password is checked with
//! bcrypt on a blocking thread (tens of milliseconds at cost 10-12, by design).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use drover_config::{AdminUser, Secret};
use drover_proxy::loglimit::LogLimit;
use hyper::{HeaderMap, Method, StatusCode, header};
use subtle::ConstantTimeEq;

use crate::AdminState;

/// The admin listener's credentials and read policy.
#[derive(Debug)]
pub struct Auth {
    token: Option<Secret>,
    users: Arc<Vec<AdminUser>>,
    open_reads: bool,
    warn: LogLimit,
}

/// Who a request authenticated as, for log lines of what it changed.
#[derive(Debug, Clone)]
pub struct Caller(pub String);

impl Auth {
    pub fn new(cfg: &drover_config::Admin) -> Self {
        Auth {
            token: cfg.token.clone(),
            users: Arc::new(cfg.users.clone()),
            open_reads: cfg.open_reads,
            warn: LogLimit::default(),
        }
    }

    /// Anybody may call the API without credentials? (Reads only: writes never.)
    fn open(&self, method: &Method) -> bool {
        self.open_reads && matches!(*method, Method::GET | Method::HEAD)
    }

    /// The caller's name (`token` or the basic-auth user), or why not.
    async fn check(&self, headers: &HeaderMap) -> Result<String, &'static str> {
        if self.token.is_none() && self.users.is_empty() {
            return Err("no credentials are configured: set [admin] token or users_file");
        }
        let value = headers
            .get(header::AUTHORIZATION)
            .ok_or("no Authorization header")?
            .to_str()
            .map_err(|_| "unreadable Authorization header")?;
        let (scheme, rest) = value
            .split_once(' ')
            .ok_or("malformed Authorization header")?;
        if scheme.eq_ignore_ascii_case("bearer") {
            let token = self
                .token
                .as_ref()
                .ok_or("bearer tokens are not configured")?;
            let given = rest.trim().as_bytes();
            return if bool::from(given.ct_eq(token.expose())) {
                Ok("token".to_owned())
            } else {
                Err("wrong token")
            };
        }
        if !scheme.eq_ignore_ascii_case("basic") {
            return Err("unknown Authorization scheme (use Bearer or Basic)");
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .map_err(|_| "malformed basic credentials")?;
        let decoded = String::from_utf8(decoded).map_err(|_| "malformed basic credentials")?;
        let (name, password) = decoded
            .split_once(':')
            .ok_or("malformed basic credentials")?;
        let (name, password) = (name.to_owned(), password.to_owned());
        let users = Arc::clone(&self.users);
        // bcrypt is slow on purpose: off the runtime's thread.
        let ok = tokio::task::spawn_blocking(move || {
            let user = users.iter().find(|u| u.name == name);
            // Verify an unknown user against a real user's hash (same cost) and discard the
            // result, so timing does not tell which names exist.
            let hash = match (user, users.first()) {
                (Some(u), _) | (None, Some(u)) => u.hash.as_str(),
                (None, None) => dummy_hash(),
            };
            let ok = bcrypt::verify(&password, hash).unwrap_or(false);
            (ok && user.is_some()).then_some(name)
        })
        .await
        .map_err(|_| "credential check failed")?;
        ok.ok_or("wrong user or password")
    }
}

/// A bcrypt hash checked for an unknown user when the file has none (basic auth with only a
/// token configured).
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| bcrypt::hash("no such user", 5).unwrap_or_default())
}

/// The middleware: 401 unless the request may pass; see the module docs.
pub async fn require(
    State(state): State<Arc<AdminState>>,
    mut req: Request,
    next: Next,
) -> Response {
    // The credentials in force: a reload may have changed them.
    let auth = state.auth.load_full();
    if auth.open(req.method()) {
        return next.run(req).await;
    }
    match auth.check(req.headers()).await {
        Ok(who) => {
            req.extensions_mut().insert(Caller(who));
            next.run(req).await
        }
        Err(why) => {
            let peer = req
                .extensions()
                .get::<SocketAddr>()
                .map_or_else(|| "?".to_owned(), ToString::to_string);
            if let Some(held) = auth.warn.allow() {
                tracing::warn!(%peer, method = %req.method(), path = req.uri().path(), why, held_back = held, "admin: 401");
            }
            let mut res = (
                StatusCode::UNAUTHORIZED,
                format!("401 Unauthorized: {why}\n"),
            )
                .into_response();
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"drover\", Basic realm=\"drover\""),
            );
            res
        }
    }
}
