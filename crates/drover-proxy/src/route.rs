//! Routes: which farm (or which direct answer) a request gets, by host and path.
//!
//! Built once per config into a [`RouteTable`] per listener; matched in order, first match wins.
//! Matching borrows from the request and allocates nothing: hosts are compared case-insensitively
//! without the port, path prefixes on segment boundaries (`/api` matches `/api` and `/api/x`, not
//! `/apix`), regexes against the path alone.

use std::borrow::Cow;

use bytes::Bytes;
use drover_config::{Action, PathMatch, Route};
use http::{HeaderValue, StatusCode};
use regex::Regex;

/// What a matched route does, resolved against the farm list.
#[derive(Debug, Clone)]
pub enum RouteAction {
    /// Index into `Routing::farms`; whether requests with non-idempotent methods may be retried
    /// after they were sent (the route's `retry_non_idempotent`).
    Farm {
        farm: usize,
        retry_non_idempotent: bool,
    },
    /// Not proxied (Apache's `ProxyPass /x !`): 404.
    Exclude,
    Redirect {
        location: HeaderValue,
        status: StatusCode,
    },
    Respond {
        status: StatusCode,
        body: Bytes,
        content_type: HeaderValue,
    },
}

#[derive(Debug, Clone)]
enum HostRule {
    Any,
    Exact(String),
    /// `*.example.com`: stored as `.example.com`.
    Suffix(String),
}

#[derive(Debug, Clone)]
enum PathRule {
    Any,
    Prefix(String),
    Regex(Regex),
}

#[derive(Debug, Clone)]
struct CompiledRoute {
    /// Position in the listener's config routes (the `farm` catch-all last).
    index: usize,
    host: HostRule,
    path: PathRule,
    action: RouteAction,
}

/// A listener's routes, in order.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Vec<CompiledRoute>,
}

impl RouteTable {
    /// Compiles config routes; `farm_index` maps a farm name to its index (config validation has
    /// already checked that every name exists).
    pub fn build(routes: &[Route], farm_index: impl Fn(&str) -> Option<usize>) -> Self {
        let routes = routes
            .iter()
            .enumerate()
            .filter_map(|(index, r)| {
                let action = match &r.action {
                    Action::Farm(name) => RouteAction::Farm {
                        farm: farm_index(name)?,
                        retry_non_idempotent: r.retry_non_idempotent,
                    },
                    Action::Exclude => RouteAction::Exclude,
                    Action::Redirect { location, status } => RouteAction::Redirect {
                        location: HeaderValue::from_str(location).ok()?,
                        status: StatusCode::from_u16(*status).ok()?,
                    },
                    Action::Respond(page) => RouteAction::Respond {
                        status: StatusCode::from_u16(page.status).ok()?,
                        body: Bytes::from(page.body.clone()),
                        content_type: HeaderValue::from_str(&page.content_type).ok()?,
                    },
                };
                let host = match r.host.as_deref() {
                    None => HostRule::Any,
                    Some(h) => match h.strip_prefix('*') {
                        Some(suffix) => HostRule::Suffix(suffix.to_ascii_lowercase()),
                        None => HostRule::Exact(h.to_ascii_lowercase()),
                    },
                };
                let path = match &r.path {
                    PathMatch::Any => PathRule::Any,
                    PathMatch::Prefix(p) => PathRule::Prefix(p.trim_end_matches('/').to_string()),
                    PathMatch::Regex(re) => PathRule::Regex(re.clone()),
                };
                Some(CompiledRoute {
                    index,
                    host,
                    path,
                    action,
                })
            })
            .collect();
        RouteTable { routes }
    }

    /// The action of the first route matching `host` (as sent, port allowed) and `path`. The path
    /// is matched normalised ([`normalize`]), so `/app//static`, `/app/./static` or
    /// `/app/%73tatic` cannot slip past a rule for `/app/static`.
    pub fn find(&self, host: Option<&[u8]>, path: &str) -> Option<&RouteAction> {
        self.find_at(host, path).map(|(_, action)| action)
    }

    /// [`RouteTable::find`], with the route's position in the listener's config routes.
    pub fn find_at(&self, host: Option<&[u8]>, path: &str) -> Option<(usize, &RouteAction)> {
        let host = host.map(strip_port);
        let path = normalize(path);
        let path = path.as_ref();
        self.routes
            .iter()
            .find(|r| host_matches(&r.host, host) && path_matches(&r.path, path))
            .map(|r| (r.index, &r.action))
    }
}

/// The path as a member that normalises it would see it (RFC 3986 §6.2.2): percent-encoded
/// unreserved characters decoded, empty segments collapsed, `.` and `..` segments resolved.
/// Borrowed, with no work beyond one scan, for the usual path that needs none of it.
pub fn normalize(path: &str) -> Cow<'_, str> {
    let b = path.as_bytes();
    let needs = b.contains(&b'%') || b.windows(2).any(|w| w == b"//" || w == b"/.");
    if !needs {
        return Cow::Borrowed(path);
    }
    // Decode %XX only where it names an unreserved character; anything else stays encoded.
    let mut decoded = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            let c = h * 16 + l;
            if c.is_ascii_alphanumeric() || b"-._~".contains(&c) {
                decoded.push(c);
                i += 3;
                continue;
            }
        }
        decoded.push(b[i]);
        i += 1;
    }
    let mut out: Vec<&[u8]> = Vec::new();
    for seg in decoded.split(|&c| c == b'/') {
        match seg {
            b"" | b"." => {}
            b".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut norm = String::with_capacity(decoded.len());
    for seg in &out {
        norm.push('/');
        norm.push_str(&String::from_utf8_lossy(seg));
    }
    let trailing = decoded.ends_with(b"/") || decoded.ends_with(b"/.") || decoded.ends_with(b"/..");
    if norm.is_empty() || trailing {
        norm.push('/');
    }
    Cow::Owned(norm)
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

fn strip_port(host: &[u8]) -> &[u8] {
    if host.first() == Some(&b'[') {
        // [v6]:port
        return host
            .iter()
            .position(|&b| b == b']')
            .map_or(host, |i| &host[..=i]);
    }
    host.iter()
        .rposition(|&b| b == b':')
        .map_or(host, |i| &host[..i])
}

fn host_matches(rule: &HostRule, host: Option<&[u8]>) -> bool {
    match (rule, host) {
        (HostRule::Any, _) => true,
        (_, None) => false,
        (HostRule::Exact(h), Some(got)) => got.eq_ignore_ascii_case(h.as_bytes()),
        (HostRule::Suffix(s), Some(got)) => {
            got.len() > s.len() && got[got.len() - s.len()..].eq_ignore_ascii_case(s.as_bytes())
        }
    }
}

fn path_matches(rule: &PathRule, path: &str) -> bool {
    match rule {
        PathRule::Any => true,
        PathRule::Prefix(p) => {
            p.is_empty()
                || (path.starts_with(p.as_str())
                    && matches!(path.as_bytes().get(p.len()), None | Some(b'/')))
        }
        PathRule::Regex(re) => re.is_match(path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(host: Option<&str>, path: PathMatch, action: Action) -> Route {
        Route {
            host: host.map(String::from),
            path,
            action,
            retry_non_idempotent: false,
        }
    }

    #[test]
    fn first_match_wins_with_host_prefix_regex_and_exclusion() {
        let routes = vec![
            route(
                None,
                PathMatch::Prefix("/app/static".into()),
                Action::Exclude,
            ),
            route(
                Some("*.example.com"),
                PathMatch::Prefix("/app".into()),
                Action::Farm("b".into()),
            ),
            route(
                None,
                PathMatch::Regex(Regex::new(r"\.png$").unwrap()),
                Action::Farm("img".into()),
            ),
            route(
                None,
                PathMatch::Prefix("/app/".into()),
                Action::Farm("a".into()),
            ),
        ];
        let names = ["a", "b", "img"];
        let t = RouteTable::build(&routes, |n| names.iter().position(|x| *x == n));
        let farm = |host: Option<&str>, path| match t.find(host.map(str::as_bytes), path) {
            Some(RouteAction::Farm { farm, .. }) => Some(names[*farm]),
            Some(RouteAction::Exclude) => Some("!"),
            _ => None,
        };
        assert_eq!(farm(Some("www.Example.com:8080"), "/app/x"), Some("b"));
        assert_eq!(
            farm(Some("example.com"), "/app/x"),
            Some("a"),
            "*.example.com needs a subdomain"
        );
        assert_eq!(farm(None, "/app/static/x.png"), Some("!"));
        assert_eq!(farm(None, "/app"), Some("a"));
        assert_eq!(
            farm(None, "/application"),
            None,
            "prefixes match whole segments"
        );
        assert_eq!(farm(None, "/logo.png"), Some("img"));
    }

    #[test]
    fn paths_are_matched_normalised() {
        assert!(matches!(normalize("/app/static/x.css"), Cow::Borrowed(_)));
        for p in [
            "/app//static/x",
            "/app/./static/x",
            "/app/%73tatic/x",
            "/app/x/../static/x",
            "//app/static/x",
        ] {
            assert_eq!(normalize(p), "/app/static/x", "{p}");
        }
        assert_eq!(
            normalize("/a/%2F/b"),
            "/a/%2F/b",
            "an encoded slash is not a separator"
        );
        assert_eq!(normalize("/../.."), "/");
        assert_eq!(normalize("/a/b/"), "/a/b/");
        assert_eq!(normalize("/a/%"), "/a/%");
        let routes = vec![route(
            None,
            PathMatch::Prefix("/app/static".into()),
            Action::Exclude,
        )];
        let t = RouteTable::build(&routes, |_| None);
        assert!(matches!(
            t.find(None, "/app/%73tatic/secret"),
            Some(RouteAction::Exclude)
        ));
        assert!(matches!(
            t.find(None, "/app//static/secret"),
            Some(RouteAction::Exclude)
        ));
    }

    #[test]
    fn ports_are_stripped_from_hosts() {
        assert_eq!(strip_port(b"example.com:80"), b"example.com");
        assert_eq!(strip_port(b"[::1]:8080"), b"[::1]");
        assert_eq!(strip_port(b"example.com"), b"example.com");
    }
}
