//! `[farm.<name>]`: a farm's policy, members, upstream limits and timeouts, and outage answer;
//! the health keys (`check`, `agent`, `passive`, slow start, quiescent, panic threshold) and the
//! retry keys are read here too, through `health.rs`, `agent.rs`, `passive.rs` and `retry.rs`.
//!
//! Member addresses given as host names are resolved here, once, with the system resolver.

use std::net::SocketAddr;
use std::time::Duration;

use drover_core::policy::MAX_TRIES;
use drover_core::{HashKey, MemberSpec, PolicyKind};

use crate::agent::{self, AgentKeys};
use crate::health::{self, CheckKeys};
use crate::model::{AgentCheck, Check, Farm, Outage, Page, Timeouts};
use crate::parse::{location, page};
use crate::units;
use crate::walk::{Ctx, Table, Value};
use crate::{passive, retry};

const FARM_KEYS: &[&str] = &[
    "policy",
    "hash_key",
    "hash_bound",
    "members",
    "max_connections",
    "pool_idle_timeout",
    "max_idle_per_member",
    "connect_timeout",
    "first_byte_timeout",
    "idle_timeout",
    "total_timeout",
    "retries",
    "retry_on",
    "retry_budget",
    "retry_budget_floor",
    "preserve_host",
    "rewrite_location",
    "outage",
    "check",
    "agent",
    "passive",
    "slow_start",
    "quiescent",
    "panic_threshold",
    "reports",
    "sticky",
];
const MEMBER_KEYS: &[&str] = &[
    "name", "address", "weight", "route", "redirect", "enabled", "check", "agent",
];
const OUTAGE_KEYS: &[&str] = &["page", "redirect", "sorry"];

const DEFAULT_POOL_IDLE: Duration = Duration::from_secs(60);
const DEFAULT_MAX_IDLE_PER_MEMBER: usize = 64;
const DEFAULT_RETRIES: u32 = 3;
const DEFAULT_HASH_BOUND: f64 = 1.25;
/// Most members one request may try after the first (drover-core caps tries per request).
const MAX_RETRIES: i64 = MAX_TRIES as i64 - 1;

/// Every `[farm.<name>]` that is a table, in file order, and the names of all farms defined
/// (including those too broken to build, so that references to them are not reported twice).
/// `pushes`: signed pushes can arrive (`[reports] secret` and `[admin]` are both there), which
/// `[farm.<name>.reports] expect` may rely on.
pub(crate) fn farms(
    ctx: &mut Ctx<'_>,
    root: &Table<'_, '_>,
    pushes: bool,
) -> (Vec<Farm>, Vec<String>) {
    let mut farms = Vec::new();
    let mut names = Vec::new();
    let Some(table) = root.table(ctx, "farm", None) else {
        return (farms, names);
    };
    for (name, at, v) in table.entries() {
        names.push(name.to_owned());
        let key = table.child(name);
        let valid_name = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid_name {
            ctx.error(
                at,
                &key,
                None,
                "invalid farm name; use letters, digits, '-' and '_' (it appears in URLs and \
                 metrics)",
            );
        }
        if !v.get_ref().is_table() {
            let message = "each farm is a table, [farm.<name>] with members = [...]; did you mean \
                           to put this key inside one?";
            ctx.bad(&key, v, message);
            continue;
        }
        if let Some(t) = Table::open(ctx, key, v, Some(FARM_KEYS)) {
            farms.push(farm(ctx, name, &t, pushes));
        }
    }
    (farms, names)
}

fn farm(ctx: &mut Ctx<'_>, name: &str, t: &Table<'_, '_>, pushes: bool) -> Farm {
    let defaults = Timeouts::default();
    let total = t.duration(ctx, "total_timeout").filter(|d| !d.is_zero());
    let farm_check = health::farm_check(ctx, t);
    let farm_agent = agent::farm_agent(ctx, t);
    let (members, member_checks, member_agents, redirects) =
        members(ctx, t, farm_check.as_ref(), farm_agent.as_ref());
    let sticky = crate::sticky::sticky(ctx, t, &members, redirects);
    let agents = member_agents.iter().any(Option::is_some);
    Farm {
        name: name.to_owned(),
        policy: policy(ctx, t),
        members,
        max_connections: t
            .int(ctx, "max_connections", 0..=i64::from(u32::MAX))
            .map_or(0, |n| n as u32),
        pool_idle_timeout: t
            .positive_duration(ctx, "pool_idle_timeout")
            .unwrap_or(DEFAULT_POOL_IDLE),
        max_idle_per_member: t
            .int(ctx, "max_idle_per_member", 0..=100_000)
            .map_or(DEFAULT_MAX_IDLE_PER_MEMBER, |n| n as usize),
        timeouts: Timeouts {
            connect: t
                .positive_duration(ctx, "connect_timeout")
                .unwrap_or(defaults.connect),
            first_byte: t
                .positive_duration(ctx, "first_byte_timeout")
                .unwrap_or(defaults.first_byte),
            idle: t
                .positive_duration(ctx, "idle_timeout")
                .unwrap_or(defaults.idle),
            total,
        },
        retries: t
            .int(ctx, "retries", 0..=MAX_RETRIES)
            .map_or(DEFAULT_RETRIES, |n| n as u32),
        retry_on: retry::retry_on(ctx, t),
        retry_budget: retry::retry_budget(ctx, t),
        check: farm_check.map(|(_, check)| check),
        member_checks,
        agent: farm_agent.and_then(|(_, agent)| agent),
        member_agents,
        passive: passive::passive(ctx, t),
        slow_start: t.duration(ctx, "slow_start").filter(|d| !d.is_zero()),
        quiescent: t.bool(ctx, "quiescent").unwrap_or(false),
        panic_threshold: t.percent(ctx, "panic_threshold", 0.0..=1.0).unwrap_or(0.0),
        preserve_host: t.bool(ctx, "preserve_host").unwrap_or(true),
        rewrite_location: t.bool(ctx, "rewrite_location").unwrap_or(true),
        reports: crate::reports::farm_reports(ctx, t, pushes || agents),
        outage: outage(ctx, t),
        sticky,
    }
}

/// The farm's policy (see `policy.rs`; `adaptive`, the default, when absent or wrong); `hash`
/// reads its keys.
fn policy(ctx: &mut Ctx<'_>, t: &Table<'_, '_>) -> PolicyKind {
    let kind = crate::policy::policy(ctx, t);
    if matches!(kind, Some(PolicyKind::Hash { .. })) {
        return hash(ctx, t);
    }
    // After a bad policy value, name it as written: the hash keys may be right and it wrong.
    let name = match (&kind, t.get("policy")) {
        (Some(kind @ PolicyKind::Pipeline(_)), _) => kind.to_string(),
        (Some(kind), _) => format!("\"{kind}\""),
        (None, Some(v)) => ctx.written(v).unwrap_or_default(),
        (None, None) => "\"adaptive\" (the default)".to_owned(),
    };
    for key in ["hash_key", "hash_bound"] {
        if let Some(at) = t.key_at(key) {
            let message = format!("only applies to policy = \"hash\" (this farm's is {name})");
            ctx.error(at, &t.child(key), None, message);
        }
    }
    kind.unwrap_or(PolicyKind::Adaptive)
}

fn hash(ctx: &mut Ctx<'_>, t: &Table<'_, '_>) -> PolicyKind {
    const KEY_FORMS: &str = "\"source\" (client IP), \"header:<Name>\" or \"cookie:<name>\"";
    let key = match t.get("hash_key") {
        None => {
            // Reported at `policy = "hash"`, the line that asks for it.
            let at = t.key_at("policy").unwrap_or(t.at());
            let message = format!("missing; policy = \"hash\" needs the key to hash: {KEY_FORMS}");
            ctx.error(at, &t.child("hash_key"), None, message);
            HashKey::Source
        }
        Some(v) => hash_key(ctx, &t.child("hash_key"), v, KEY_FORMS).unwrap_or(HashKey::Source),
    };
    let what = "a number: 0 (no bound) or at least 1, e.g. 1.25";
    let bound = match (t.float(ctx, "hash_bound", what), t.get("hash_bound")) {
        (Some(b), _) if b == 0.0 || b >= 1.0 => b,
        (Some(_), Some(v)) => {
            let message = "must be 0 (no bound) or at least 1: no member takes more than \
                           hash_bound times the average load";
            ctx.bad(&t.child("hash_bound"), v, message);
            DEFAULT_HASH_BOUND
        }
        _ => DEFAULT_HASH_BOUND,
    };
    PolicyKind::Hash { key, bound }
}

fn hash_key(ctx: &mut Ctx<'_>, key: &str, v: &Value<'_>, forms: &str) -> Option<HashKey> {
    let text = ctx.expect_str(key, v, forms)?;
    if text == "source" {
        return Some(HashKey::Source);
    }
    let parsed = match text.split_once(':') {
        // Header names are case-insensitive: stored lower-case, as HTTP/2 sends them.
        Some(("header", name)) if is_token(name) => {
            Some(HashKey::Header(name.to_ascii_lowercase()))
        }
        Some(("cookie", name)) if is_token(name) => Some(HashKey::Cookie(name.to_owned())),
        Some(("header" | "cookie", _)) => {
            let message = "invalid name after ':'; header and cookie names are letters, digits \
                           and !#$%&'*+-.^_`|~ (no spaces, no ':')";
            ctx.bad(key, v, message);
            return None;
        }
        _ => None,
    };
    if parsed.is_none() {
        ctx.bad(key, v, format!("expected {forms}"));
    }
    parsed
}

/// An HTTP token (RFC 9110 `tchar`s): what a header or cookie name may be made of.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Where a member value was first seen, for duplicate checks.
struct Seen {
    index: usize,
    name: String,
    addr: Option<SocketAddr>,
    route: Option<String>,
    line: usize,
}

/// What `members` holds, each in member order: the members, what each is checked with, each
/// one's agent check, and each one's sticky `redirect` route.
type Members = (
    Vec<MemberSpec>,
    Vec<Option<Check>>,
    Vec<Option<AgentCheck>>,
    Vec<Option<String>>,
);

/// The members, what each is checked with, each one's agent check and redirect (same order).
fn members(
    ctx: &mut Ctx<'_>,
    t: &Table<'_, '_>,
    farm_check: Option<&(CheckKeys, Check)>,
    farm_agent: Option<&(AgentKeys, Option<AgentCheck>)>,
) -> Members {
    const EXAMPLE: &str = "members = [{ address = \"10.0.0.5:8080\" }]";
    let Some(v) = t.get("members") else {
        t.missing(
            ctx,
            "members",
            &format!("a farm needs at least one member: {EXAMPLE}"),
        );
        return Default::default();
    };
    let key = t.child("members");
    let what = format!("an array of member tables: {EXAMPLE} or [[{key}]]");
    let Some(items) = ctx.expect_array(&key, v, &what) else {
        return Default::default();
    };
    if items.is_empty() {
        ctx.bad(
            &key,
            v,
            format!("a farm needs at least one member: {EXAMPLE}"),
        );
    }
    let mut specs = Vec::new();
    let mut checks = Vec::new();
    let mut agents = Vec::new();
    let mut redirects = Vec::new();
    let mut seen: Vec<Seen> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let Some(m) = Table::open(ctx, format!("{key}[{index}]"), item, Some(MEMBER_KEYS)) else {
            continue;
        };
        let line = ctx.line(m.at());
        let address = m.str(
            ctx,
            "address",
            &format!("a string: {}", units::MEMBER_FORMS),
        );
        if address.is_none() && !m.has("address") {
            m.missing(
                ctx,
                "address",
                &format!("where the member listens: {}", units::MEMBER_FORMS),
            );
        }
        let addr = match (address, m.get("address")) {
            (Some(text), Some(v)) => match units::resolve(text) {
                Ok(addr) => Some(addr),
                Err(e) => {
                    ctx.bad(
                        &m.child("address"),
                        v,
                        format!("invalid member address: {e}"),
                    );
                    None
                }
            },
            _ => None,
        };
        if let (Some(addr), Some(v)) = (addr, m.get("address"))
            && let Some(first) = seen.iter().find(|s| s.addr == Some(addr))
        {
            let message = format!(
                "duplicate member address; {key}[{}] (line {}) already is {addr}",
                first.index, first.line
            );
            ctx.bad(&m.child("address"), v, message);
        }
        let name = member_name(ctx, &m, address);
        let same_name = seen.iter().find(|s| s.name == name);
        // A defaulted name repeats a duplicate address: that problem is already reported.
        let reported = !m.has("name") && same_name.is_some_and(|s| s.addr == addr);
        if let (Some(first), false) = (same_name, reported) {
            let message = format!(
                "duplicate member name; {key}[{}] (line {}) already has it",
                first.index, first.line
            );
            match m.get("name") {
                Some(v) => ctx.bad(&m.child("name"), v, message),
                None => ctx.error(
                    m.at(),
                    &m.child("name"),
                    Some(format!("\"{name}\"")),
                    message,
                ),
            }
        }
        let route = member_route(ctx, &m);
        if let (Some(route), Some(v)) = (&route, m.get("route"))
            && let Some(first) = seen.iter().find(|s| s.route.as_ref() == Some(route))
        {
            let message = format!(
                "duplicate route id; {key}[{}] (line {}) already has it, so a sticky session \
                 could not tell the two apart",
                first.index, first.line
            );
            ctx.bad(&m.child("route"), v, message);
        }
        seen.push(Seen {
            index,
            name: name.clone(),
            addr,
            route: route.clone(),
            line,
        });
        specs.push(MemberSpec {
            name,
            // Only reached with errors recorded when the address is missing or invalid.
            addr: addr.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0))),
            weight: m.int(ctx, "weight", 1..=1000).map_or(1, |w| w as u32),
            route,
            enabled: m.bool(ctx, "enabled").unwrap_or(true),
        });
        checks.push(health::member_check(ctx, &m, farm_check));
        agents.push(agent::member_agent(ctx, &m, farm_agent));
        redirects.push(m.get("redirect").and_then(|v| {
            let r = route_id(ctx, &m.child("redirect"), v)?;
            Some((r, m.child("redirect"), v.span().start))
        }));
    }
    let routes: Vec<Option<String>> = specs.iter().map(|s| s.route.clone()).collect();
    crate::sticky::check_redirects(ctx, &redirects, &routes);
    let redirects = redirects.into_iter().map(|r| r.map(|r| r.0)).collect();
    (specs, checks, agents, redirects)
}

/// `name`, defaulting to the address as written.
fn member_name(ctx: &mut Ctx<'_>, m: &Table<'_, '_>, address: Option<&str>) -> String {
    let default = || address.unwrap_or_default().trim().to_owned();
    let Some(v) = m.get("name") else {
        return default();
    };
    let Some(name) = ctx.expect_str(&m.child("name"), v, "a string") else {
        return default();
    };
    if !valid_member_name(name) {
        let message = "invalid member name; it must not be empty or contain spaces, '/' or control \
                       characters (it appears in URLs and logs)";
        ctx.bad(&m.child("name"), v, message);
    }
    name.to_owned()
}

/// A member name: not empty, no whitespace, '/' or control characters (it appears in URLs and
/// logs). Also checked for members added at run time.
pub fn valid_member_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '/')
}

/// A sticky route id: letters, digits, '-' and '_' (it ends session ids like
/// `JSESSIONID=abc.node1`). Also checked for routes set at run time.
pub fn valid_route_id(route: &str) -> bool {
    !route.is_empty()
        && route
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// `route`: the sticky id, the part after the first `.` of a session id, so it has no `.`.
fn member_route(ctx: &mut Ctx<'_>, m: &Table<'_, '_>) -> Option<String> {
    let v = m.get("route")?;
    route_id(ctx, &m.child("route"), v)
}

/// A route id (a member's `route`, or the `redirect` naming one).
fn route_id(ctx: &mut Ctx<'_>, key: &str, v: &Value<'_>) -> Option<String> {
    let route = ctx.expect_str(key, v, "a string such as \"node1\"")?;
    if !valid_route_id(route) {
        let message = "invalid route id; use letters, digits, '-' and '_' (it ends session ids \
                       like JSESSIONID=abc.node1)";
        ctx.bad(key, v, message);
        return None;
    }
    Some(route.to_owned())
}

fn outage(ctx: &mut Ctx<'_>, t: &Table<'_, '_>) -> Outage {
    let Some(o) = t.table(ctx, "outage", Some(OUTAGE_KEYS)) else {
        return Outage::default();
    };
    let present: Vec<&str> = OUTAGE_KEYS.iter().copied().filter(|k| o.has(k)).collect();
    match present.as_slice() {
        [] => {
            let message = "needs one of page = { status, body, content_type }, redirect = \
                           \"https://...\" or sorry = \"host:port\"";
            ctx.error(o.at(), o.key(), None, message);
            Outage::default()
        }
        [first, rest @ ..] => {
            if let Some(second) = rest.first() {
                let message = format!(
                    "takes exactly one of page, redirect, sorry; found {}",
                    present.join(" and ")
                );
                ctx.error(o.key_at(second).unwrap_or(o.at()), o.key(), None, message);
            }
            match *first {
                "page" => Outage::Page(page(ctx, &o, "page", Page::unavailable())),
                "redirect" => Outage::Redirect(location(ctx, &o, "redirect").unwrap_or_default()),
                _ => Outage::Sorry(sorry(ctx, &o).unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)))),
            }
        }
    }
}

fn sorry(ctx: &mut Ctx<'_>, o: &Table<'_, '_>) -> Option<SocketAddr> {
    let text = o.str(ctx, "sorry", &format!("a string: {}", units::MEMBER_FORMS))?;
    match units::resolve(text) {
        Ok(addr) => Some(addr),
        Err(e) => {
            if let Some(v) = o.get("sorry") {
                ctx.bad(
                    &o.child("sorry"),
                    v,
                    format!("invalid sorry server address: {e}"),
                );
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        assert!(is_token("X-User-Id") && is_token("JSESSIONID") && is_token("a.b"));
        assert!(!is_token("") && !is_token("a b") && !is_token("a:b") && !is_token("é"));
    }

    #[test]
    fn retries_fit_the_tries_a_request_may_make() {
        assert_eq!(MAX_RETRIES, 7);
    }

    #[test]
    fn page_default_is_503() {
        assert!(matches!(
            Outage::default(),
            Outage::Page(Page { status: 503, .. })
        ));
    }
}
