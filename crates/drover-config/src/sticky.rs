//! `[farm.<name>.sticky]`: sticky sessions (route, insert and learn modes) and the member key
//! `redirect` (Apache's route redirect), which `farm.rs` reads with the other member keys.
//!
//! Keys that belong to another mode are errors, not silently ignored: `keys` in route mode means
//! the operator thinks drover signs something it does not. Keys are never echoed in messages.

use std::time::Duration;

use drover_core::MemberSpec;

use crate::model::{InsertCookie, RouteCookie, Secret, Sticky, StickyMode};
use crate::walk::{Ctx, Table, Value};

const STICKY_KEYS: &[&str] = &[
    "mode",
    "cookie",
    "path_param",
    "separator",
    "nofailover",
    "moved_header",
    "set_cookie",
    "keys",
    "key_file",
    "path",
    "domain",
    "http_only",
    "secure",
    "same_site",
    "max_age",
    "ttl",
    "max_sessions",
];
/// Which keys apply only to which modes (the others apply to all).
const ONLY: &[(&str, &[StickyMode])] = &[
    ("path_param", &[StickyMode::Route, StickyMode::Learn]),
    ("separator", &[StickyMode::Route]),
    ("set_cookie", &[StickyMode::Route]),
    ("keys", &[StickyMode::Insert]),
    ("key_file", &[StickyMode::Insert]),
    ("path", &[StickyMode::Insert]),
    ("domain", &[StickyMode::Insert]),
    ("http_only", &[StickyMode::Insert]),
    ("secure", &[StickyMode::Insert]),
    ("same_site", &[StickyMode::Insert]),
    ("max_age", &[StickyMode::Insert]),
    ("ttl", &[StickyMode::Learn]),
    ("max_sessions", &[StickyMode::Learn]),
];
/// Shortest accepted insert key, in bytes.
pub const MIN_KEY: usize = 16;
pub const DEFAULT_INSERT_COOKIE: &str = "DROVERID";
pub const DEFAULT_MOVED_HEADER: &str = "X-Drover-Sticky-Moved";
pub const DEFAULT_TTL: Duration = Duration::from_secs(30 * 60);
pub const DEFAULT_MAX_SESSIONS: usize = 100_000;
const MAX_MAX_SESSIONS: i64 = 100_000_000;

/// `[farm.<name>.sticky]`, or `None` when the farm has none. `members` and `redirects` (parallel)
/// are the farm's members and their `redirect` keys.
pub(crate) fn sticky(
    ctx: &mut Ctx<'_>,
    farm: &Table<'_, '_>,
    members: &[MemberSpec],
    redirects: Vec<Option<String>>,
) -> Option<Sticky> {
    let Some(t) = farm.table(ctx, "sticky", Some(STICKY_KEYS)) else {
        if redirects.iter().any(Option::is_some)
            && let Some(at) = farm.key_at("members")
        {
            let message = "a member has `redirect`, which only applies to sticky sessions; add \
                           [farm.<name>.sticky] or remove it";
            ctx.error(at, &farm.child("members"), None, message);
        }
        return None;
    };
    const MODES: &str = "\"route\" (mod_proxy_balancer), \"insert\" (drover's own cookie) or \
                         \"learn\" (the application's session cookie)";
    let mode = match t.get("mode") {
        None => {
            t.missing(ctx, "mode", &format!("one of {MODES}"));
            return None;
        }
        Some(v) => match ctx.expect_str(&t.child("mode"), v, MODES)? {
            "route" => StickyMode::Route,
            "insert" => StickyMode::Insert,
            "learn" => StickyMode::Learn,
            _ => {
                ctx.bad(&t.child("mode"), v, format!("expected {MODES}"));
                return None;
            }
        },
    };
    for (key, modes) in ONLY {
        if let Some(at) = t.key_at(key)
            && !modes.contains(&mode)
        {
            let names: Vec<String> = modes.iter().map(|m| format!("\"{}\"", m.name())).collect();
            let message = format!(
                "only applies to mode = {} (this one is \"{}\")",
                names.join(" or "),
                mode.name()
            );
            ctx.error(at, &t.child(key), None, message);
        }
    }
    let cookie = name(ctx, &t, "cookie", "a cookie name such as \"JSESSIONID\"");
    let path_param = name(
        ctx,
        &t,
        "path_param",
        "a URL parameter name such as \"jsessionid\"",
    );
    match mode {
        StickyMode::Route if cookie.is_none() && path_param.is_none() => {
            let message = "route mode needs cookie (e.g. \"BALANCEID\") and/or path_param (e.g. \
                           \"jsessionid\"): where the session value ending in .<route> is";
            ctx.error(t.at(), &t.child("cookie"), None, message);
        }
        StickyMode::Learn if cookie.is_none() => {
            t.missing(
                ctx,
                "cookie",
                "learn mode learns the application's session cookie from members' Set-Cookie, \
                 e.g. cookie = \"PHPSESSID\"",
            );
        }
        StickyMode::Route if !members.iter().any(|m| m.route.is_some()) => {
            let message = "route mode, but no member has a route; give each member one, e.g. \
                           { address = \"10.0.0.1:8080\", route = \"node1\" }";
            ctx.error(
                t.at(),
                &t.child("mode"),
                Some("\"route\"".to_owned()),
                message,
            );
        }
        _ => {}
    }
    let separator = match t.get("separator") {
        None => b'.',
        Some(v) => match ctx.expect_str(&t.child("separator"), v, "one character such as \".\"") {
            Some(s)
                if s.len() == 1
                    && s.as_bytes()[0].is_ascii_punctuation()
                    && !b"-_;,\"=\\".contains(&s.as_bytes()[0]) =>
            {
                s.as_bytes()[0]
            }
            Some(_) => {
                ctx.bad(
                    &t.child("separator"),
                    v,
                    "must be one ASCII punctuation character that can end a cookie value before a \
                     route, such as \".\" or \"!\"; not '-' or '_' (route ids hold them), nor ';', \
                     ',', '\"', '=' or '\\' (cookie syntax)",
                );
                b'.'
            }
            None => b'.',
        },
    };
    let moved_header = match t.get("moved_header") {
        None => Some(DEFAULT_MOVED_HEADER.to_owned()),
        Some(v) => match ctx.expect_str(&t.child("moved_header"), v, "a header name, or \"\"") {
            Some("") => None,
            Some(h) if crate::farm::is_token(h) => Some(h.to_owned()),
            Some(_) => {
                ctx.bad(
                    &t.child("moved_header"),
                    v,
                    "invalid header name; letters, digits and -, or \"\" to send none",
                );
                None
            }
            None => None,
        },
    };
    let set_cookie = match t.get("set_cookie") {
        None => RouteCookie::Moved,
        Some(v) => {
            const WHAT: &str = "\"never\", \"moved\" or \"new\"";
            match ctx.expect_str(&t.child("set_cookie"), v, WHAT) {
                Some("never") => RouteCookie::Never,
                Some("moved") => RouteCookie::Moved,
                Some("new") => RouteCookie::New,
                Some(_) => {
                    ctx.bad(&t.child("set_cookie"), v, format!("expected {WHAT}"));
                    RouteCookie::Moved
                }
                None => RouteCookie::Moved,
            }
        }
    };
    let insert = if mode == StickyMode::Insert {
        insert(ctx, &t)
    } else {
        InsertCookie::default()
    };
    let cookie = match mode {
        StickyMode::Insert => cookie.or_else(|| Some(DEFAULT_INSERT_COOKIE.to_owned())),
        _ => cookie,
    };
    Some(Sticky {
        mode,
        cookie,
        path_param,
        separator,
        nofailover: t.bool(ctx, "nofailover").unwrap_or(false),
        moved_header,
        set_cookie,
        insert,
        ttl: t.positive_duration(ctx, "ttl").unwrap_or(DEFAULT_TTL),
        max_sessions: t
            .int(ctx, "max_sessions", 1..=MAX_MAX_SESSIONS)
            .map_or(DEFAULT_MAX_SESSIONS, |n| n as usize),
        redirects,
    })
}

/// A cookie or parameter name: an HTTP token.
fn name(ctx: &mut Ctx<'_>, t: &Table<'_, '_>, key: &str, what: &str) -> Option<String> {
    let v = t.get(key)?;
    let s = ctx.expect_str(&t.child(key), v, what)?;
    if !crate::farm::is_token(s) || s.contains(['=', ';']) {
        let message = format!(
            "invalid name; expected {what} (letters, digits and !#$%&'*+-.^_`|~; no spaces, '=' \
             or ';')"
        );
        ctx.bad(&t.child(key), v, message);
        return None;
    }
    Some(s.to_owned())
}

fn insert(ctx: &mut Ctx<'_>, t: &Table<'_, '_>) -> InsertCookie {
    let mut out = InsertCookie {
        keys: keys(ctx, t),
        ..InsertCookie::default()
    };
    if let Some(v) = t.get("path") {
        match ctx.expect_str(&t.child("path"), v, "a path such as \"/\"") {
            Some(p) if p.starts_with('/') && cookie_attr(p) => out.path = p.to_owned(),
            Some(_) => ctx.bad(
                &t.child("path"),
                v,
                "must start with '/' and hold no ';', spaces or control characters",
            ),
            None => {}
        }
    }
    if let Some(v) = t.get("domain") {
        match ctx.expect_str(&t.child("domain"), v, "a domain such as \"example.com\"") {
            Some(d) if !d.is_empty() && cookie_attr(d) && !d.contains(['/', ':']) => {
                out.domain = Some(d.to_owned());
            }
            Some(_) => ctx.bad(
                &t.child("domain"),
                v,
                "invalid domain; a host name such as \"example.com\" (no scheme, port or ';')",
            ),
            None => {}
        }
    }
    if let Some(b) = t.bool(ctx, "http_only") {
        out.http_only = b;
    }
    if let Some(b) = t.bool(ctx, "secure") {
        out.secure = b;
    }
    if let Some(v) = t.get("same_site") {
        const WHAT: &str = "\"lax\", \"strict\", \"none\" or \"\" (not sent)";
        match ctx.expect_str(&t.child("same_site"), v, WHAT) {
            Some("") => out.same_site = None,
            Some(s) if s.eq_ignore_ascii_case("lax") => out.same_site = Some("Lax".to_owned()),
            Some(s) if s.eq_ignore_ascii_case("strict") => {
                out.same_site = Some("Strict".to_owned());
            }
            Some(s) if s.eq_ignore_ascii_case("none") => {
                out.same_site = Some("None".to_owned());
                if !out.secure {
                    let message = "browsers drop SameSite=None cookies that are not Secure; set \
                                   secure = true (and serve HTTPS) or use \"lax\"";
                    ctx.bad(&t.child("same_site"), v, message);
                }
            }
            Some(_) => ctx.bad(&t.child("same_site"), v, format!("expected {WHAT}")),
            None => {}
        }
    }
    out.max_age = t.positive_duration(ctx, "max_age");
    out
}

fn cookie_attr(s: &str) -> bool {
    !s.bytes()
        .any(|b| b == b';' || b == b',' || b.is_ascii_whitespace() || b.is_ascii_control())
}

/// `keys = ["...", "..."]` or `key_file`: at least one, each at least [`MIN_KEY`] bytes.
fn keys(ctx: &mut Ctx<'_>, t: &Table<'_, '_>) -> Vec<Secret> {
    let inline = t.get("keys");
    let file = t.get("key_file");
    const HOW: &str = "e.g. keys = [\"<output of `openssl rand -hex 32`>\"], or key_file = a \
                       file with one key per line; the first key signs, the others are still \
                       accepted (rotation)";
    let (found, v, key): (Vec<String>, &Value<'_>, String) = match (inline, file) {
        (Some(_), Some(v)) => {
            ctx.bad(
                &t.child("key_file"),
                v,
                "give either keys or key_file, not both",
            );
            return Vec::new();
        }
        (None, None) => {
            t.missing(ctx, "keys", &format!("insert mode signs its cookie; {HOW}"));
            return Vec::new();
        }
        (Some(v), None) => {
            let key = t.child("keys");
            let toml::de::DeValue::Array(items) = v.get_ref() else {
                // Whatever was written stays out of the message: it may be a key.
                let message = format!("expected an array of strings; {HOW}");
                ctx.error(v.span().start, &key, Some("(hidden)".to_owned()), message);
                return Vec::new();
            };
            let mut found = Vec::new();
            for item in items {
                match item.get_ref() {
                    toml::de::DeValue::String(s) => found.push(s.to_string()),
                    _ => {
                        let message = format!("each key is a string; {HOW}");
                        ctx.error(
                            item.span().start,
                            &key,
                            Some("(hidden)".to_owned()),
                            message,
                        );
                        return Vec::new();
                    }
                }
            }
            (found, v, key)
        }
        (None, Some(v)) => {
            let key = t.child("key_file");
            let Some(path) = ctx.expect_str(&key, v, "a path to a file of keys, one per line")
            else {
                return Vec::new();
            };
            match std::fs::read_to_string(path) {
                Ok(text) => (
                    text.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(str::to_owned)
                        .collect(),
                    v,
                    key,
                ),
                Err(e) => {
                    ctx.bad(&key, v, format!("cannot read the key file: {e}"));
                    return Vec::new();
                }
            }
        }
    };
    if found.is_empty() {
        ctx.error(
            v.span().start,
            &key,
            Some("(hidden)".to_owned()),
            format!("no key given; {HOW}"),
        );
        return Vec::new();
    }
    if let Some((i, k)) = found.iter().enumerate().find(|(_, k)| k.len() < MIN_KEY) {
        ctx.error(
            v.span().start,
            &key,
            Some("(hidden)".to_owned()),
            format!(
                "key {} is too short ({} bytes); use at least {MIN_KEY} random bytes, e.g. the \
                 output of `openssl rand -hex 32`",
                i + 1,
                k.len()
            ),
        );
        return Vec::new();
    }
    found.into_iter().map(Secret::new).collect()
}

/// A member's `redirect`: the route of another member of the farm. `routes` are the routes of all
/// members (farm order); called once all members are read.
pub(crate) fn check_redirects(
    ctx: &mut Ctx<'_>,
    found: &[Option<(String, String, usize)>],
    routes: &[Option<String>],
) {
    for (i, r) in found.iter().enumerate() {
        let Some((target, key, at)) = r else { continue };
        let message = if routes.get(i).and_then(Option::as_ref) == Some(target) {
            "a member cannot redirect its sessions to itself".to_owned()
        } else if !routes.iter().any(|r| r.as_ref() == Some(target)) {
            let known: Vec<&str> = routes.iter().flatten().map(String::as_str).collect();
            format!(
                "no member of this farm has route \"{target}\"; routes here: {}",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            )
        } else {
            continue;
        };
        ctx.error(*at, key, Some(format!("\"{target}\"")), message);
    }
}
