//! `[[listener]]` and its `[[listener.route]]`s: addresses to accept clients on, request limits,
//! forwarding-header trust, and the ordered rules that send each request somewhere.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use regex::Regex;

use crate::model::{
    AccessLog, Action, Forwarding, Limits, Listener, LogFormat, LogPath, Page, PathMatch, Route,
};
use crate::parse::{Bind, location, page};
use crate::units::{self, did_you_mean};
use crate::walk::{Ctx, Table};

const LISTENER_KEYS: &[&str] = &[
    "name",
    "listen",
    "farm",
    "route",
    "idle_timeout",
    "defer_accept",
    "max_header_bytes",
    "max_headers",
    "max_uri_bytes",
    "trusted_proxies",
    "forwarded_headers",
    "access_log",
];
const ACCESS_LOG_KEYS: &[&str] = &["path", "format"];
const ROUTE_KEYS: &[&str] = &[
    "host",
    "path",
    "regex",
    "farm",
    "exclude",
    "redirect",
    "status",
    "respond",
    "retry_non_idempotent",
];
const ACTIONS: &[&str] = &["farm", "exclude", "redirect", "respond"];

const DEFAULT_IDLE: Duration = Duration::from_secs(60);
/// hyper refuses a read buffer smaller than this.
const MIN_HEADER_BYTES: u64 = 8 * 1024;
const MAX_HEADER_BYTES: u64 = 16 << 20;
/// The `http` crate refuses longer request targets.
const MAX_URI_BYTES: u64 = 65_534;

/// Every `[[listener]]`, and every address they bind (for the cross-checks).
pub(crate) fn listeners(
    ctx: &mut Ctx<'_>,
    root: &Table<'_, '_>,
    farms: &[String],
) -> (Vec<Listener>, Vec<Bind>) {
    let mut listeners: Vec<Listener> = Vec::new();
    let mut binds = Vec::new();
    let Some(v) = root.get("listener") else {
        ctx.file_error(
            "listener",
            "missing; at least one [[listener]] is needed, e.g. [[listener]] listen = \
             \"0.0.0.0:8080\" farm = \"app\"",
        );
        return (listeners, binds);
    };
    let what = "an array of tables: write each as [[listener]]";
    let Some(items) = ctx.expect_array("listener", v, what) else {
        return (listeners, binds);
    };
    if items.is_empty() {
        ctx.bad("listener", v, "at least one [[listener]] is needed");
    }
    // (position in the file, line) of each listener in `listeners`.
    let mut placed: Vec<(usize, usize)> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let key = format!("listener[{index}]");
        let Some(t) = Table::open(ctx, key, item, Some(LISTENER_KEYS)) else {
            continue;
        };
        let l = listener(ctx, &t, index, farms, &mut binds);
        if let Some(first) = listeners.iter().position(|o| o.name == l.name) {
            let (first_index, first_line) = placed[first];
            let message = format!(
                "duplicate listener name; listener[{first_index}] (line {first_line}) already has it"
            );
            match t.get("name") {
                Some(v) => ctx.bad(&t.child("name"), v, message),
                None => ctx.error(t.at(), &t.child("name"), None, message),
            }
        }
        placed.push((index, ctx.line(t.at())));
        listeners.push(l);
    }
    (listeners, binds)
}

fn listener(
    ctx: &mut Ctx<'_>,
    t: &Table<'_, '_>,
    index: usize,
    farms: &[String],
    binds: &mut Vec<Bind>,
) -> Listener {
    let name = match t.str(ctx, "name", "a string") {
        Some(n) if !n.trim().is_empty() => n.to_owned(),
        Some(_) => {
            if let Some(v) = t.get("name") {
                ctx.bad(&t.child("name"), v, "must not be empty");
            }
            String::new()
        }
        None => format!("listener{}", index + 1),
    };
    let listen = listen(ctx, t, &name, binds);

    let mut routes = Vec::new();
    let items = t.array(
        ctx,
        "route",
        "an array of tables: write each as [[listener.route]]",
    );
    // A `route` that is not an array was reported already: no second error for it below.
    let has_routes = items.map_or(t.has("route"), |items| !items.is_empty());
    if let Some(items) = items {
        for (i, item) in items.iter().enumerate() {
            let key = format!("{}[{i}]", t.child("route"));
            if let Some(r) = Table::open(ctx, key, item, Some(ROUTE_KEYS)) {
                routes.push(route(ctx, &r, farms));
            }
        }
    }
    match t.get("farm") {
        Some(v) => {
            if let Some(farm) = farm_ref(ctx, &t.child("farm"), v, farms) {
                routes.push(Route {
                    host: None,
                    path: PathMatch::Any,
                    action: Action::Farm(farm),
                    retry_non_idempotent: false,
                });
            }
        }
        None if !has_routes => {
            let message = "a listener needs somewhere to send requests: farm = \"<name>\" or at \
                           least one [[listener.route]]";
            ctx.error(t.at(), t.key(), None, message);
        }
        None => {}
    }

    let defaults = Limits::default();
    let limits = Limits {
        max_header_bytes: t
            .size(ctx, "max_header_bytes", MIN_HEADER_BYTES..=MAX_HEADER_BYTES)
            .map_or(defaults.max_header_bytes, |n| n as usize),
        max_headers: t
            .int(ctx, "max_headers", 1..=1000)
            .map_or(defaults.max_headers, |n| n as usize),
        max_uri_bytes: t
            .size(ctx, "max_uri_bytes", 1..=MAX_URI_BYTES)
            .map_or(defaults.max_uri_bytes, |n| n as usize),
    };

    let mut trusted_proxies = Vec::new();
    let what = "an array of networks, e.g. [\"10.0.0.0/8\", \"::1\"]";
    if let Some(items) = t.array(ctx, "trusted_proxies", what) {
        for (i, item) in items.iter().enumerate() {
            let key = format!("{}[{i}]", t.child("trusted_proxies"));
            let Some(text) = ctx.expect_str(&key, item, "a network such as \"10.0.0.0/8\"") else {
                continue;
            };
            match units::parse_cidr(text) {
                Ok(cidr) => trusted_proxies.push(cidr),
                Err(e) => ctx.bad(&key, item, format!("invalid network: {e}")),
            }
        }
    }

    let names = Forwarding::NAMES.join(", ");
    let forwarding = match (
        t.str(ctx, "forwarded_headers", &format!("one of {names}")),
        t.get("forwarded_headers"),
    ) {
        (Some(text), Some(v)) => Forwarding::from_name(text).unwrap_or_else(|| {
            let mut message = format!("expected one of {names}");
            if let Some(close) = did_you_mean(text, Forwarding::NAMES.iter().copied()) {
                message.push_str(&format!(" (did you mean \"{close}\"?)"));
            }
            ctx.bad(&t.child("forwarded_headers"), v, message);
            Forwarding::default()
        }),
        _ => Forwarding::default(),
    };

    Listener {
        name,
        listen,
        routes,
        limits,
        idle_timeout: t
            .positive_duration(ctx, "idle_timeout")
            .unwrap_or(DEFAULT_IDLE),
        defer_accept: t.bool(ctx, "defer_accept").unwrap_or(true),
        trusted_proxies,
        forwarding,
        access_log: access_log(ctx, t),
    }
}

/// `access_log = { path = "...", format = "combined" | "json" }`.
fn access_log(ctx: &mut Ctx<'_>, t: &Table<'_, '_>) -> Option<AccessLog> {
    let log = t.table(ctx, "access_log", Some(ACCESS_LOG_KEYS))?;
    let names = LogFormat::NAMES.join("\" or \"");
    // A bad format is reported and the path still checked: every problem at once.
    let format = match (
        log.str(ctx, "format", &format!("\"{names}\"")),
        log.get("format"),
    ) {
        (Some(text), Some(v)) => LogFormat::from_name(text).unwrap_or_else(|| {
            let mut message = String::from("expected \"combined\" or \"json\"");
            if let Some(close) = did_you_mean(text, LogFormat::NAMES.iter().copied()) {
                message.push_str(&format!(" (did you mean \"{close}\"?)"));
            }
            ctx.bad(&log.child("format"), v, message);
            LogFormat::default()
        }),
        _ => LogFormat::default(),
    };
    let what = "a file path, or \"-\" for stdout";
    let Some(v) = log.get("path") else {
        log.missing(
            ctx,
            "path",
            "where to write the log: path = \"/var/log/drover/access.log\", or \"-\" for stdout",
        );
        return None;
    };
    let text = ctx.expect_str(&log.child("path"), v, what)?;
    let path = match text {
        "-" | "stdout" => LogPath::Stdout,
        "" => {
            ctx.bad(
                &log.child("path"),
                v,
                format!("must not be empty; expected {what}"),
            );
            return None;
        }
        p => {
            let path = std::path::PathBuf::from(p);
            // The directory must be there: drover creates the file, not the directories.
            let dir = path
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            if !dir.is_dir() {
                let message = format!(
                    "directory {} does not exist; create it, or log elsewhere (\"-\" for stdout)",
                    dir.display()
                );
                ctx.bad(&log.child("path"), v, message);
                return None;
            }
            if path.is_dir() {
                let message = "is a directory; name a file in it, e.g. \"access.log\"";
                ctx.bad(&log.child("path"), v, message);
                return None;
            }
            LogPath::File(path)
        }
    };
    Some(AccessLog { path, format })
}

/// `listen`: one address or an array of them; each is also recorded in `binds`.
fn listen(
    ctx: &mut Ctx<'_>,
    t: &Table<'_, '_>,
    owner: &str,
    binds: &mut Vec<Bind>,
) -> Vec<SocketAddr> {
    let what = format!("{} (or an array of them)", units::LISTEN_FORMS);
    let Some(v) = t.get("listen") else {
        t.missing(
            ctx,
            "listen",
            &format!("the address to accept clients on: {}", units::LISTEN_FORMS),
        );
        return Vec::new();
    };
    let key = t.child("listen");
    let items: Vec<(String, _)> = if v.get_ref().is_array() {
        let Some(items) = ctx.expect_array(&key, v, &what) else {
            return Vec::new();
        };
        if items.is_empty() {
            ctx.bad(
                &key,
                v,
                format!("needs at least one address: {}", units::LISTEN_FORMS),
            );
        }
        items
            .iter()
            .enumerate()
            .map(|(i, item)| (format!("{key}[{i}]"), item))
            .collect()
    } else {
        vec![(key, v)]
    };
    let mut addrs = Vec::new();
    for (key, item) in items {
        let Some(text) = ctx.expect_str(&key, item, &what) else {
            continue;
        };
        match units::parse_listen(text) {
            Ok(addr) => {
                addrs.push(addr);
                binds.push(Bind {
                    addr,
                    key,
                    at: item.span().start,
                    written: ctx.written(item),
                    owner: format!("listener \"{owner}\""),
                });
            }
            Err(e) => ctx.bad(&key, item, format!("invalid listen address: {e}")),
        }
    }
    addrs
}

fn route(ctx: &mut Ctx<'_>, r: &Table<'_, '_>, farms: &[String]) -> Route {
    let host = r
        .str(ctx, "host", "a host name such as \"example.com\"")
        .and_then(|h| {
            let checked = route_host(h);
            if checked.is_none()
                && let Some(v) = r.get("host")
            {
                let message = "expected a host name such as \"example.com\", \"*.example.com\" \
                               or an IP address, without scheme or port";
                ctx.bad(&r.child("host"), v, message);
            }
            checked
        });

    let mut path = PathMatch::Any;
    if let (Some(p), Some(v)) = (
        r.str(ctx, "path", "a path prefix such as \"/api/\""),
        r.get("path"),
    ) {
        // Request paths arrive percent-encoded: a prefix with other characters never matches.
        if p.starts_with('/') && p.chars().all(|c| c.is_ascii_graphic()) {
            path = PathMatch::Prefix(p.to_owned());
        } else {
            ctx.bad(
                &r.child("path"),
                v,
                "a path prefix starts with '/' and has no spaces or non-ASCII characters \
                 (percent-encode them), e.g. \"/api/\"",
            );
        }
    }
    if let (Some(re), Some(v)) = (
        r.str(ctx, "regex", "a regular expression string"),
        r.get("regex"),
    ) {
        match Regex::new(re) {
            Ok(re) => path = PathMatch::Regex(re),
            Err(e) => ctx.bad(
                &r.child("regex"),
                v,
                format!("invalid regex: {}", regex_reason(&e)),
            ),
        }
    }
    if let (true, Some(at)) = (r.has("path"), r.key_at("regex")) {
        let message = "a route matches path (a prefix) or regex, not both; keep one";
        ctx.error(at, &r.child("regex"), None, message);
    }

    // `exclude = false` is the same as leaving it out.
    let excluded = match r.bool(ctx, "exclude") {
        Some(false) => false,
        _ => r.has("exclude"),
    };
    let present: Vec<&str> = ACTIONS
        .iter()
        .copied()
        .filter(|&k| if k == "exclude" { excluded } else { r.has(k) })
        .collect();
    if let [_, second, ..] = present.as_slice() {
        let message = format!(
            "a route takes exactly one action (farm, exclude, redirect or respond); found {}",
            present.join(" and ")
        );
        ctx.error(r.key_at(second).unwrap_or(r.at()), r.key(), None, message);
    }
    if let Some(at) = r
        .key_at("status")
        .filter(|_| present.first() != Some(&"redirect"))
    {
        let message = "status applies to redirect only (respond = { status = ... } has its own)";
        ctx.error(at, &r.child("status"), None, message);
    }
    let retry_non_idempotent = r.bool(ctx, "retry_non_idempotent");
    if let (Some(_), Some(v), Some(action)) = (
        retry_non_idempotent,
        r.get("retry_non_idempotent"),
        present.first(),
    ) && *action != "farm"
    {
        let message = format!(
            "only for a route that proxies to a farm (farm = \"<name>\"); this route's action \
             is {action}"
        );
        ctx.bad(&r.child("retry_non_idempotent"), v, message);
    }
    let action = match present.first().copied() {
        Some("farm") => r
            .get("farm")
            .and_then(|v| farm_ref(ctx, &r.child("farm"), v, farms))
            .map_or(Action::Exclude, Action::Farm),
        Some("exclude") => Action::Exclude,
        Some("redirect") => {
            let status = match (r.int(ctx, "status", 100..=599), r.get("status")) {
                (Some(s), _) if [301, 302, 303, 307, 308].contains(&s) => s as u16,
                (Some(_), Some(v)) => {
                    ctx.bad(&r.child("status"), v, "expected 301, 302, 303, 307 or 308");
                    302
                }
                _ => 302,
            };
            let location = location(ctx, r, "redirect").unwrap_or_default();
            Action::Redirect { location, status }
        }
        Some(_) => {
            let default = Page {
                status: 200,
                body: String::new(),
                content_type: Page::DEFAULT_CONTENT_TYPE.to_owned(),
            };
            Action::Respond(page(ctx, r, "respond", default))
        }
        None => {
            let message = "a route needs an action: farm = \"<name>\", exclude = true, redirect = \
                           \"<url>\" or respond = { status, body }";
            ctx.error(r.at(), r.key(), None, message);
            Action::Exclude
        }
    };
    Route {
        host,
        path,
        action,
        retry_non_idempotent: retry_non_idempotent.unwrap_or(false),
    }
}

/// A route's `host`, lower-cased: `example.com`, `*.example.com`, `192.0.2.7` or `[::1]`.
fn route_host(host: &str) -> Option<String> {
    let host = host.to_ascii_lowercase();
    if host.parse::<IpAddr>().is_ok_and(|ip| ip.is_ipv4()) {
        return Some(host);
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse::<Ipv6Addr>().is_ok().then_some(host);
    }
    let name = host.strip_prefix("*.").unwrap_or(&host);
    let valid = name.split('.').all(|label| {
        !label.is_empty()
            && label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    });
    valid.then_some(host)
}

/// A `farm = "<name>"` reference; it must name a `[farm.<name>]`.
fn farm_ref(
    ctx: &mut Ctx<'_>,
    key: &str,
    v: &crate::walk::Value<'_>,
    farms: &[String],
) -> Option<String> {
    let name = ctx.expect_str(key, v, "the name of a [farm.<name>]")?;
    if farms.iter().any(|f| f == name) {
        return Some(name.to_owned());
    }
    let mut message = String::from("unknown farm");
    if let Some(close) = did_you_mean(name, farms.iter().map(String::as_str)) {
        message.push_str(&format!(" (did you mean \"{close}\"?)"));
    }
    if farms.is_empty() {
        message.push_str(&format!(
            "; no farms are defined: add a [farm.{name}] table"
        ));
    } else {
        message.push_str(&format!("; defined farms: {}", farms.join(", ")));
    }
    ctx.bad(key, v, message);
    None
}

/// The one-line reason of a regex error (its Display spans several lines with a caret).
pub(crate) fn regex_reason(e: &regex::Error) -> String {
    let text = e.to_string();
    text.lines()
        .find_map(|l| l.trim().strip_prefix("error: "))
        .map_or_else(
            || text.split_whitespace().collect::<Vec<_>>().join(" "),
            str::to_owned,
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(route_host("Example.COM").as_deref(), Some("example.com"));
        assert_eq!(
            route_host("*.example.com").as_deref(),
            Some("*.example.com")
        );
        assert_eq!(route_host("192.0.2.7").as_deref(), Some("192.0.2.7"));
        assert_eq!(route_host("[::1]").as_deref(), Some("[::1]"));
        for bad in ["", "example.com:80", "http://x", "a..b", "*", "a b", "[zz]"] {
            assert_eq!(route_host(bad), None, "{bad}");
        }
    }

    #[test]
    #[allow(clippy::invalid_regex, reason = "the invalid regex is the point")]
    fn regex_errors_fit_one_line() {
        let e = Regex::new("(abc").unwrap_err();
        let reason = regex_reason(&e);
        assert_eq!(reason, "unclosed group");
    }
}
