//! The dashboard at `/` of the admin listener: mod_proxy_balancer's balancer-manager page, live.
//!
//! Where it sits: three static files, compiled into the binary (`include_str!`, no build step,
//! no dependency): `GET /` (the page shell), `GET /dashboard/app.js` and
//! `GET /dashboard/style.css`. They are open, like `/healthz`: the page holds no data. Its script
//! then calls the JSON API like any client: `GET /api/v1/farms` about once a second (rps and live
//! percentiles are computed in the browser from counter deltas) and the member writes
//! (`enable`, `disable`, `drain`, `undrain`, `PATCH` weight), with the admin token it asks for
//! and keeps in `sessionStorage`, sent as `Authorization: Bearer`. So the data and every change
//! go through [`crate::auth`] like any other call; the cross-site refusal there is the page's
//! CSRF defence.
//!
//! Every answer carries a strict Content-Security-Policy (only same-origin scripts, styles and
//! fetches; no inline script or style; no framing, `X-Frame-Options: DENY` too for old
//! browsers), `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer` and
//! `Cache-Control: no-cache` (an upgraded binary's page is fetched again, revalidated cheaply).
//!
//! No state, no config keys, no metrics of its own.

use axum::response::{IntoResponse, Response};
use hyper::{StatusCode, header};

const INDEX: &str = include_str!("../assets/index.html");
const APP_JS: &str = include_str!("../assets/app.js");
const STYLE_CSS: &str = include_str!("../assets/style.css");

/// Same-origin everything, nothing inline, no framing, no plugins, no `<base>` games.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// `GET /`: the page shell.
pub async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX)
}

/// `GET /dashboard/app.js`.
pub async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

/// `GET /dashboard/style.css`.
pub async fn style_css() -> Response {
    asset("text/css; charset=utf-8", STYLE_CSS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_only_its_own_files_and_nothing_inline() {
        assert!(INDEX.contains(r#"src="/dashboard/app.js""#));
        assert!(INDEX.contains(r#"href="/dashboard/style.css""#));
        // CSP would block these anyway; keep the page honest about it.
        let lower = INDEX.to_lowercase();
        assert!(!lower.contains("<script>"), "inline script");
        assert!(!lower.contains("<style"), "inline style");
        assert!(!lower.contains(" style="), "inline style attribute");
        for (at, _) in lower.match_indices(" on") {
            let name: String = lower[at + 3..]
                .chars()
                .take_while(char::is_ascii_alphabetic)
                .collect();
            assert!(
                !lower[at + 3 + name.len()..].starts_with('='),
                "inline event handler on{name}"
            );
        }
        for js in [
            "eval(",
            "new Function",
            "innerHTML",
            ".setAttribute('style'",
        ] {
            assert!(!APP_JS.contains(js), "app.js uses {js}");
        }
    }
}
