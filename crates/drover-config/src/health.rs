//! `[farm.<name>.check]` and a member's `check = { ... }` / `check = false`: how drover probes
//! its members (passive ejection, the other way to find a member down, is in `passive.rs`).
//!
//! Called by `farm.rs` while it walks a farm. A check is read in two steps, so that a member can
//! override single keys of its farm's check: [`CheckKeys`] holds the keys as written (with where
//! they were written), then [`resolve`] lays a member's keys over the farm's, fills in defaults
//! and checks the rules that tie keys together (`timeout` at most `interval`, HTTP keys only on
//! an HTTP check). A rule broken by keys inherited from the farm is reported once, at the farm.

use std::time::Duration;

use regex::Regex;

use crate::farm::is_token;
use crate::listener::regex_reason;
use crate::model::{BodyRegex, Check, CheckKind, HttpCheck};
use crate::retry::merge_ranges;
use crate::units::{did_you_mean, format_duration as show};
use crate::walk::{Ctx, Table, Value};

const CHECK_KEYS: &[&str] = &[
    "type",
    "port",
    "interval",
    "down_interval",
    "jitter",
    "timeout",
    "rise",
    "fall",
    "method",
    "path",
    "host",
    "expect_status",
    "expect_body",
    "expect_body_regex",
    "max_body",
    "reuse_connection",
];
const TYPES: &[&str] = &["http", "tcp"];
const STATUS_FORMS: &str = "a status (200), a range (\"200-399\"), a class (\"2xx\") or an array \
                            of them, with statuses from 100 to 599";
/// More body than this is not worth reading for a health check.
const MAX_BODY: u64 = 16 << 20;

/// Where a key was written, for errors found after merging.
struct Spot {
    key: String,
    at: usize,
    written: Option<String>,
}

/// A valid value of a check key and where it was written.
struct Set<T> {
    value: T,
    spot: Spot,
}

#[derive(Clone, Copy, PartialEq)]
enum Type {
    Http,
    Tcp,
}

/// The keys of one check table as written: the farm's, or a member's overrides. A key that is
/// absent, or present but invalid (already reported), is `None`.
#[derive(Default)]
pub(crate) struct CheckKeys {
    kind: Option<Set<Type>>,
    port: Option<Set<u16>>,
    interval: Option<Set<Duration>>,
    down_interval: Option<Set<Duration>>,
    jitter: Option<Set<f64>>,
    timeout: Option<Set<Duration>>,
    rise: Option<Set<u32>>,
    fall: Option<Set<u32>>,
    method: Option<Set<String>>,
    path: Option<Set<String>>,
    host: Option<Set<String>>,
    expect_status: Option<Set<Vec<(u16, u16)>>>,
    expect_body: Option<Set<String>>,
    expect_body_regex: Option<Set<BodyRegex>>,
    max_body: Option<Set<usize>>,
    reuse_connection: Option<Set<bool>>,
}

impl CheckKeys {
    /// The HTTP-only keys that were written here.
    fn http_spots(&self) -> impl Iterator<Item = &Spot> {
        [
            self.method.as_ref().map(|s| &s.spot),
            self.path.as_ref().map(|s| &s.spot),
            self.host.as_ref().map(|s| &s.spot),
            self.expect_status.as_ref().map(|s| &s.spot),
            self.expect_body.as_ref().map(|s| &s.spot),
            self.expect_body_regex.as_ref().map(|s| &s.spot),
            self.max_body.as_ref().map(|s| &s.spot),
            self.reuse_connection.as_ref().map(|s| &s.spot),
        ]
        .into_iter()
        .flatten()
    }
}

/// `[farm.<name>.check]`: its keys (for the members to override) and the check they make.
pub(crate) fn farm_check(ctx: &mut Ctx<'_>, t: &Table<'_, '_>) -> Option<(CheckKeys, Check)> {
    let c = t.table(ctx, "check", Some(CHECK_KEYS))?;
    let keys = keys(ctx, &c);
    let check = resolve(ctx, None, &keys);
    Some((keys, check))
}

/// What member `m` is checked with: its `check` over the farm's (`farm`), `None` for
/// `check = false` or when neither has a check.
pub(crate) fn member_check(
    ctx: &mut Ctx<'_>,
    m: &Table<'_, '_>,
    farm: Option<&(CheckKeys, Check)>,
) -> Option<Check> {
    let Some(v) = m.get("check") else {
        return farm.map(|(_, check)| check.clone());
    };
    let key = m.child("check");
    let own = match v.get_ref() {
        toml::de::DeValue::Boolean(false) => return None,
        // `check = true`: checked like the farm's members (or with the defaults), as `{}`.
        toml::de::DeValue::Boolean(true) => CheckKeys::default(),
        toml::de::DeValue::Table(_) => {
            let t = Table::open(ctx, key, v, Some(CHECK_KEYS))?;
            keys(ctx, &t)
        }
        _ => {
            let message = "expected false (this member is not checked) or a table of check keys \
                           that override the farm's, e.g. check = { path = \"/other\", port = \
                           8081 }";
            ctx.bad(&key, v, message);
            return None;
        }
    };
    Some(resolve(ctx, farm.map(|(keys, _)| keys), &own))
}

/// Every key of one check table, each validated on its own.
fn keys(ctx: &mut Ctx<'_>, c: &Table<'_, '_>) -> CheckKeys {
    let kind = check_type(ctx, c);
    let port = c.int(ctx, "port", 1..=65535).map(|p| p as u16);
    let interval = c.positive_duration(ctx, "interval");
    let down_interval = c.positive_duration(ctx, "down_interval");
    let jitter = c.percent(ctx, "jitter", 0.0..=0.5);
    let timeout = c.positive_duration(ctx, "timeout");
    let rise = c.int(ctx, "rise", 1..=1000).map(|n| n as u32);
    let fall = c.int(ctx, "fall", 1..=1000).map(|n| n as u32);
    let method = method(ctx, c);
    let path = path(ctx, c);
    let host = host(ctx, c);
    let expect_status = c.get("expect_status").and_then(|v| {
        let ranges = statuses(ctx, &c.child("expect_status"), v)?;
        Some(merge_ranges(ranges))
    });
    let expect_body = c
        .str(ctx, "expect_body", "a string the body must contain")
        .and_then(|text| {
            if text.is_empty()
                && let Some(v) = c.get("expect_body")
            {
                let message = "must not be empty (every body contains \"\"); leave it out to \
                               accept any body";
                ctx.bad(&c.child("expect_body"), v, message);
                return None;
            }
            Some(text.to_owned())
        });
    let expect_body_regex = body_regex(ctx, c);
    let max_body = c.size(ctx, "max_body", 1..=MAX_BODY).map(|n| n as usize);
    let reuse_connection = c.bool(ctx, "reuse_connection");
    CheckKeys {
        kind: set(ctx, c, "type", kind),
        port: set(ctx, c, "port", port),
        interval: set(ctx, c, "interval", interval),
        down_interval: set(ctx, c, "down_interval", down_interval),
        jitter: set(ctx, c, "jitter", jitter),
        timeout: set(ctx, c, "timeout", timeout),
        rise: set(ctx, c, "rise", rise),
        fall: set(ctx, c, "fall", fall),
        method: set(ctx, c, "method", method),
        path: set(ctx, c, "path", path),
        host: set(ctx, c, "host", host),
        expect_status: set(ctx, c, "expect_status", expect_status),
        expect_body: set(ctx, c, "expect_body", expect_body),
        expect_body_regex: set(ctx, c, "expect_body_regex", expect_body_regex),
        max_body: set(ctx, c, "max_body", max_body),
        reuse_connection: set(ctx, c, "reuse_connection", reuse_connection),
    }
}

/// `value`, read from `c.name`, with where it was written.
fn set<T>(ctx: &Ctx<'_>, c: &Table<'_, '_>, name: &str, value: Option<T>) -> Option<Set<T>> {
    let v = c.get(name)?;
    Some(Set {
        value: value?,
        spot: Spot {
            key: c.child(name),
            at: v.span().start,
            written: ctx.written(v),
        },
    })
}

/// A key's value for a check: this table's (`own`), else the farm's (`base`), else none.
struct Picked<'k, T> {
    set: &'k Set<T>,
    own: bool,
}

// Not derived: a derive would ask for `T: Copy`, and only the reference is copied.
impl<T> Clone for Picked<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Picked<'_, T> {}

fn pick<'k, T>(
    own: &'k CheckKeys,
    base: Option<&'k CheckKeys>,
    field: impl Fn(&'k CheckKeys) -> &'k Option<Set<T>>,
) -> Option<Picked<'k, T>> {
    if let Some(set) = field(own) {
        return Some(Picked { set, own: true });
    }
    field(base?).as_ref().map(|set| Picked { set, own: false })
}

/// `own` over `base` over the defaults, and the rules that tie keys together.
fn resolve(ctx: &mut Ctx<'_>, base: Option<&CheckKeys>, own: &CheckKeys) -> Check {
    let interval = pick(own, base, |k| &k.interval);
    let down_interval = pick(own, base, |k| &k.down_interval);
    let timeout = pick(own, base, |k| &k.timeout);
    let interval_v = interval.map_or(Check::DEFAULT_INTERVAL, |p| p.set.value);
    let timeout_v = timeout.map_or(Check::DEFAULT_TIMEOUT, |p| p.set.value);
    let down_v = down_interval.map_or(interval_v, |p| p.set.value);
    let at_timeout = within(ctx, timeout, timeout_v, interval, interval_v, "interval");
    if down_interval.is_some() && !at_timeout {
        within(
            ctx,
            timeout,
            timeout_v,
            down_interval,
            down_v,
            "down_interval",
        );
    }

    let kind = pick(own, base, |k| &k.kind);
    let kind = match kind {
        Some(Picked { set, own: here }) if set.value == Type::Tcp => {
            let from = if here {
                String::new()
            } else {
                format!(" (from {})", set.spot.key)
            };
            for spot in own.http_spots() {
                let message =
                    format!("only for type = \"http\"; this check is type = \"tcp\"{from}");
                ctx.error(spot.at, &spot.key, spot.written.clone(), message);
            }
            CheckKind::Tcp
        }
        _ => {
            let d = HttpCheck::default();
            let text = |p: Option<Picked<'_, String>>| p.map(|p| p.set.value.clone());
            CheckKind::Http(HttpCheck {
                method: text(pick(own, base, |k| &k.method)).unwrap_or(d.method),
                path: text(pick(own, base, |k| &k.path)).unwrap_or(d.path),
                host: text(pick(own, base, |k| &k.host)),
                expect_status: pick(own, base, |k| &k.expect_status)
                    .map_or(d.expect_status, |p| p.set.value.clone()),
                expect_body: text(pick(own, base, |k| &k.expect_body)),
                expect_body_regex: pick(own, base, |k| &k.expect_body_regex)
                    .map(|p| p.set.value.clone()),
                max_body: pick(own, base, |k| &k.max_body).map_or(d.max_body, |p| p.set.value),
                reuse_connection: pick(own, base, |k| &k.reuse_connection)
                    .map_or(d.reuse_connection, |p| p.set.value),
            })
        }
    };
    Check {
        kind,
        port: pick(own, base, |k| &k.port).map(|p| p.set.value),
        interval: interval_v,
        down_interval: down_v,
        jitter: pick(own, base, |k| &k.jitter).map_or(Check::DEFAULT_JITTER, |p| p.set.value),
        timeout: timeout_v,
        rise: pick(own, base, |k| &k.rise).map_or(Check::DEFAULT_RISE, |p| p.set.value),
        fall: pick(own, base, |k| &k.fall).map_or(Check::DEFAULT_FALL, |p| p.set.value),
    }
}

/// Reports a `timeout` longer than `limit` (`interval` or `down_interval`, named `limit_name`):
/// at `timeout` when this table set it, else at the limit when this table set that; a clash
/// of inherited keys was reported at the farm. Whether it reported at `timeout`.
fn within(
    ctx: &mut Ctx<'_>,
    timeout: Option<Picked<'_, Duration>>,
    timeout_v: Duration,
    limit: Option<Picked<'_, Duration>>,
    limit_v: Duration,
    limit_name: &str,
) -> bool {
    if timeout_v <= limit_v {
        return false;
    }
    let origin = |p: &Option<Picked<'_, Duration>>| match p {
        None => ", the default".to_owned(),
        Some(Picked { own: true, .. }) => String::new(),
        Some(Picked { set, own: false }) => format!(", from {}", set.spot.key),
    };
    const WHY: &str = "a check must end before the next one is due";
    let (timeout_v, limit_v) = (show(timeout_v), show(limit_v));
    match (&timeout, &limit) {
        (Some(Picked { set, own: true }), _) => {
            let message = format!(
                "longer than {limit_name} ({limit_v}{}); {WHY}: make timeout at most \
                 {limit_v}, or {limit_name} longer",
                origin(&limit)
            );
            ctx.error(
                set.spot.at,
                &set.spot.key,
                set.spot.written.clone(),
                message,
            );
            true
        }
        (_, Some(Picked { set, own: true })) => {
            let message = format!(
                "shorter than timeout ({timeout_v}{}); {WHY}: make {limit_name} at least \
                 {timeout_v}, or timeout shorter",
                origin(&timeout)
            );
            ctx.error(
                set.spot.at,
                &set.spot.key,
                set.spot.written.clone(),
                message,
            );
            false
        }
        _ => false,
    }
}

fn check_type(ctx: &mut Ctx<'_>, c: &Table<'_, '_>) -> Option<Type> {
    let text = c.str(ctx, "type", "\"http\" or \"tcp\"")?;
    match text {
        "http" => Some(Type::Http),
        "tcp" => Some(Type::Tcp),
        _ => {
            let mut message = String::from("unknown check type; expected \"http\" or \"tcp\"");
            if let Some(close) = did_you_mean(text, TYPES.iter().copied()) {
                message.push_str(&format!(" (did you mean \"{close}\"?)"));
            }
            if let Some(v) = c.get("type") {
                ctx.bad(&c.child("type"), v, message);
            }
            None
        }
    }
}

fn method(ctx: &mut Ctx<'_>, c: &Table<'_, '_>) -> Option<String> {
    let text = c.str(ctx, "method", "an HTTP method such as \"GET\"")?;
    if !is_token(text) {
        if let Some(v) = c.get("method") {
            let message = "expected an HTTP method such as \"GET\", \"HEAD\" or \"OPTIONS\": \
                           letters, digits and !#$%&'*+-.^_`|~, sent as written (methods are \
                           case-sensitive)";
            ctx.bad(&c.child("method"), v, message);
        }
        return None;
    }
    Some(text.to_owned())
}

fn path(ctx: &mut Ctx<'_>, c: &Table<'_, '_>) -> Option<String> {
    let text = c.str(ctx, "path", "a path such as \"/healthz\"")?;
    if !(text.starts_with('/') && text.chars().all(|ch| ch.is_ascii_graphic())) {
        if let Some(v) = c.get("path") {
            let message = "expected a request target starting with '/', e.g. \"/healthz\" or \
                           \"/status?full=1\", without spaces or non-ASCII characters \
                           (percent-encode them)";
            ctx.bad(&c.child("path"), v, message);
        }
        return None;
    }
    Some(text.to_owned())
}

fn host(ctx: &mut Ctx<'_>, c: &Table<'_, '_>) -> Option<String> {
    let text = c.str(ctx, "host", "a host name such as \"app.example.com\"")?;
    let valid = !text.is_empty()
        && text
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || "-._:[]".contains(ch));
    if !valid {
        if let Some(v) = c.get("host") {
            let message = "expected a Host header value: a host name or address with an optional \
                           port, e.g. \"app.example.com\" or \"10.0.0.5:8080\"";
            ctx.bad(&c.child("host"), v, message);
        }
        return None;
    }
    Some(text.to_owned())
}

fn body_regex(ctx: &mut Ctx<'_>, c: &Table<'_, '_>) -> Option<BodyRegex> {
    let text = c.str(ctx, "expect_body_regex", "a regular expression string")?;
    match Regex::new(text) {
        Ok(re) => Some(BodyRegex(re)),
        Err(e) => {
            if let Some(v) = c.get("expect_body_regex") {
                let message = format!("invalid regex: {}", regex_reason(&e));
                ctx.bad(&c.child("expect_body_regex"), v, message);
            }
            None
        }
    }
}

/// `expect_status`: one status or range, or a non-empty array of them.
fn statuses(ctx: &mut Ctx<'_>, key: &str, v: &Value<'_>) -> Option<Vec<(u16, u16)>> {
    let toml::de::DeValue::Array(items) = v.get_ref() else {
        return status(ctx, key, v).map(|r| vec![r]);
    };
    if items.is_empty() {
        ctx.bad(
            key,
            v,
            format!("an empty list passes nothing; expected {STATUS_FORMS}"),
        );
        return None;
    }
    let mut ranges = Vec::new();
    let mut valid = true;
    for (i, item) in items.iter().enumerate() {
        match status(ctx, &format!("{key}[{i}]"), item) {
            Some(r) => ranges.push(r),
            None => valid = false,
        }
    }
    valid.then_some(ranges)
}

/// One `expect_status` entry: `200`, `"200"`, `"200-399"` or `"2xx"`.
fn status(ctx: &mut Ctx<'_>, key: &str, v: &Value<'_>) -> Option<(u16, u16)> {
    let parsed = match v.get_ref() {
        toml::de::DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
            .map(|n| (n, n))
            .map_err(|_| "out of range"),
        toml::de::DeValue::String(s) => status_text(s),
        _ => {
            let found = if v.get_ref().is_array() {
                "an array inside the array".to_owned()
            } else {
                format!("a {}", v.get_ref().type_str())
            };
            ctx.bad(key, v, format!("expected {STATUS_FORMS}; found {found}"));
            return None;
        }
    };
    match parsed {
        Ok((lo, hi)) if (100..=599).contains(&lo) && (100..=599).contains(&hi) && lo <= hi => {
            Some((lo as u16, hi as u16))
        }
        Ok((lo, hi)) if lo > hi && (100..=599).contains(&hi) => {
            let message = "backwards range; write the lower status first, e.g. \"200-399\"";
            ctx.bad(key, v, message);
            None
        }
        Ok(_) | Err("out of range") => {
            ctx.bad(
                key,
                v,
                format!("status out of range; expected {STATUS_FORMS}"),
            );
            None
        }
        Err(_) => {
            ctx.bad(key, v, format!("expected {STATUS_FORMS}"));
            None
        }
    }
}

/// `"200"`, `"200-399"` or `"2xx"` as an inclusive range, unchecked.
fn status_text(text: &str) -> Result<(i64, i64), &'static str> {
    let number = |s: &str| {
        let s = s.trim();
        match s.parse::<i64>() {
            Ok(n) if s.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
            _ => Err("not a status"),
        }
    };
    let text = text.trim();
    if let Some(class) = text.strip_suffix("xx").filter(|c| c.len() == 1) {
        let class = number(class)?;
        return Ok((class * 100, class * 100 + 99));
    }
    match text.split_once('-') {
        Some((lo, hi)) => Ok((number(lo)?, number(hi)?)),
        None => number(text).map(|n| (n, n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_texts() {
        assert_eq!(status_text("200"), Ok((200, 200)));
        assert_eq!(status_text("200-399"), Ok((200, 399)));
        assert_eq!(status_text(" 204 - 206 "), Ok((204, 206)));
        assert_eq!(status_text("2xx"), Ok((200, 299)));
        assert_eq!(
            status_text("600"),
            Ok((600, 600)),
            "ranges are checked by the caller"
        );
        for bad in ["", "ok", "2XX", "20x", "-200", "200-", "+200", "1e3"] {
            assert!(status_text(bad).is_err(), "{bad}");
        }
    }
}
