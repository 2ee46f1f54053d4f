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
//! Cross-site writes (CSRF): a browser sends basic-auth credentials it has cached to any page
//! that asks, so a foreign page could make a logged-in operator's browser disable a member. Before
//! the credentials are looked at, a write is refused with 403 (and a log line, rate-limited as the
//! 401s) when its `Sec-Fetch-Site` is `cross-site` or `same-site`, or when it has an `Origin` that
//! is not the request's own `Host` ([`cross_site`]). Clients that are not browsers (curl,
//! `drover ctl`, agents) send neither header and are unaffected. The dashboard's bearer token lives
//! in `sessionStorage` and is never sent automatically: the second line of defence.
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
    /// For the 403 lines of refused cross-site writes.
    warn_cross: LogLimit,
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
            warn_cross: LogLimit::default(),
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

/// Why a write must be refused as cross-site, or `None` when it may go on (same origin, or a
/// client that is not a browser and sends neither `Sec-Fetch-Site` nor `Origin`).
pub fn cross_site(method: &Method, headers: &HeaderMap) -> Option<&'static str> {
    if matches!(*method, Method::GET | Method::HEAD) {
        return None;
    }
    if let Some(site) = headers.get("sec-fetch-site") {
        let site = site.as_bytes();
        if site.eq_ignore_ascii_case(b"cross-site") || site.eq_ignore_ascii_case(b"same-site") {
            return Some("cross-site request (Sec-Fetch-Site)");
        }
    }
    let origin = headers.get(header::ORIGIN)?;
    let Some(host) = headers.get(header::HOST).and_then(|h| h.to_str().ok()) else {
        return Some("Origin without a Host to compare it with");
    };
    let Ok(origin) = origin.to_str() else {
        return Some("unreadable Origin");
    };
    match origin_authority(origin) {
        Some((scheme, authority)) if same_authority(scheme, authority, host) => None,
        _ => Some("Origin does not match Host"),
    }
}

/// `http://host:port` as (`http`, `host:port`); `None` for `null` or anything else that is not a
/// scheme and an authority (an Origin has no path).
fn origin_authority(origin: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = origin.split_once("://")?;
    (!rest.is_empty() && !rest.contains('/')).then_some((scheme, rest))
}

/// Equal hosts and ports, the scheme's default port being the same as none (browsers leave it out
/// of `Origin`; a Host header may carry it).
fn same_authority(scheme: &str, origin: &str, host: &str) -> bool {
    let default = if scheme.eq_ignore_ascii_case("https") {
        ":443"
    } else {
        ":80"
    };
    let strip = |a: &str| -> String {
        let a = a.trim().to_ascii_lowercase();
        a.strip_suffix(default).map(str::to_owned).unwrap_or(a)
    };
    strip(origin) == strip(host)
}

/// The middleware: 403 for a cross-site write, 401 unless the request may pass; see the module
/// docs.
pub async fn require(
    State(state): State<Arc<AdminState>>,
    mut req: Request,
    next: Next,
) -> Response {
    // The credentials in force: a reload may have changed them.
    let auth = state.auth.load_full();
    if let Some(why) = cross_site(req.method(), req.headers()) {
        let peer = req
            .extensions()
            .get::<SocketAddr>()
            .map_or_else(|| "?".to_owned(), ToString::to_string);
        if let Some(held) = auth.warn_cross.allow() {
            let origin = req
                .headers()
                .get(header::ORIGIN)
                .and_then(|o| o.to_str().ok())
                .unwrap_or("-");
            tracing::warn!(%peer, method = %req.method(), path = req.uri().path(), origin, why, held_back = held, "admin: 403");
        }
        return (StatusCode::FORBIDDEN, format!("403 Forbidden: {why}\n")).into_response();
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn writes_from_another_origin_are_cross_site() {
        let post = Method::POST;
        let host = ("host", "127.0.0.1:9090");
        assert_eq!(cross_site(&post, &headers(&[host])), None, "curl, ctl");
        for same in ["http://127.0.0.1:9090", "HTTP://127.0.0.1:9090"] {
            assert_eq!(cross_site(&post, &headers(&[host, ("origin", same)])), None);
        }
        for foreign in [
            "http://evil.example",
            "http://127.0.0.1:9091",
            "http://127.0.0.1",
            "null",
            "http://127.0.0.1:9090/x",
        ] {
            assert!(
                cross_site(&post, &headers(&[host, ("origin", foreign)])).is_some(),
                "{foreign}"
            );
        }
        for site in ["cross-site", "same-site"] {
            let h = headers(&[
                host,
                ("origin", "http://127.0.0.1:9090"),
                ("sec-fetch-site", site),
            ]);
            assert!(cross_site(&Method::PATCH, &h).is_some(), "{site}");
        }
        for site in ["same-origin", "none"] {
            let h = headers(&[host, ("sec-fetch-site", site)]);
            assert_eq!(cross_site(&post, &h), None, "{site}");
        }
        assert!(
            cross_site(&post, &headers(&[("origin", "http://a")])).is_some(),
            "no Host"
        );
        // Default ports: a Host may name them, an Origin never does.
        let h = headers(&[
            ("host", "admin.example:443"),
            ("origin", "https://admin.example"),
        ]);
        assert_eq!(cross_site(&post, &h), None);
        let h = headers(&[
            ("host", "admin.example"),
            ("origin", "http://admin.example"),
        ]);
        assert_eq!(cross_site(&post, &h), None);
        let h = headers(&[
            ("host", "admin.example:80"),
            ("origin", "https://admin.example"),
        ]);
        assert!(cross_site(&post, &h).is_some());
    }

    #[test]
    fn reads_are_never_cross_site_refusals() {
        let h = headers(&[
            ("origin", "http://evil.example"),
            ("sec-fetch-site", "cross-site"),
        ]);
        assert_eq!(cross_site(&Method::GET, &h), None);
        assert_eq!(cross_site(&Method::HEAD, &h), None);
    }
}
