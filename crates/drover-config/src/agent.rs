//! `[farm.<name>.agent]` and a member's `agent = { ... }` / `agent = false`: the HAProxy-style
//! agent check, which asks an agent on each member's host for a one-line report (`75%`, `drain`,
//! `down # why`) that drover applies to the member's weight, draining and health.
//!
//! Called by `farm.rs` while it walks a farm, as `health.rs` is for `check`: the keys of the
//! farm's table and of a member's override are read on their own ([`AgentKeys`]), then
//! [`resolve`] lays the member's over the farm's, fills in defaults and checks the rules that tie
//! keys together (`port` required, `timeout` at most `interval`). A rule broken by keys inherited
//! from the farm is reported once, at the farm.

use std::time::Duration;

use crate::model::AgentCheck;
use crate::units::format_duration as show;
use crate::walk::{Ctx, Table};

const AGENT_KEYS: &[&str] = &["port", "interval", "timeout", "send"];
const PORT_NEEDED: &str = "the agent's TCP port on the member's host, e.g. port = 9777";

/// A valid value of a key and where it was written.
struct Set<T> {
    value: T,
    key: String,
    at: usize,
    written: Option<String>,
}

/// The keys of one agent table as written: the farm's, or a member's overrides. A key that is
/// absent, or present but invalid (already reported), is `None`.
#[derive(Default)]
pub(crate) struct AgentKeys {
    port: Option<Set<u16>>,
    interval: Option<Set<Duration>>,
    timeout: Option<Set<Duration>>,
    send: Option<Set<String>>,
}

/// `[farm.<name>.agent]`: its keys (for the members to override) and the agent check they make
/// (`None` when the table is absent or too broken to use).
pub(crate) fn farm_agent(
    ctx: &mut Ctx<'_>,
    t: &Table<'_, '_>,
) -> Option<(AgentKeys, Option<AgentCheck>)> {
    let a = t.table(ctx, "agent", Some(AGENT_KEYS))?;
    let keys = keys(ctx, &a);
    let agent = resolve(ctx, &a, None, &keys);
    Some((keys, agent))
}

/// What member `m`'s agent is: its `agent` over the farm's, `None` for `agent = false` or when
/// neither has one.
pub(crate) fn member_agent(
    ctx: &mut Ctx<'_>,
    m: &Table<'_, '_>,
    farm: Option<&(AgentKeys, Option<AgentCheck>)>,
) -> Option<AgentCheck> {
    let Some(v) = m.get("agent") else {
        return farm.and_then(|(_, agent)| agent.clone());
    };
    let key = m.child("agent");
    match v.get_ref() {
        toml::de::DeValue::Boolean(false) => None,
        toml::de::DeValue::Table(_) => {
            let t = Table::open(ctx, key, v, Some(AGENT_KEYS))?;
            let own = keys(ctx, &t);
            resolve(ctx, &t, farm.map(|(keys, _)| keys), &own)
        }
        _ => {
            let message = "expected false (this member has no agent) or a table of agent keys \
                           that override the farm's, e.g. agent = { port = 9777 }";
            ctx.bad(&key, v, message);
            None
        }
    }
}

fn keys(ctx: &mut Ctx<'_>, a: &Table<'_, '_>) -> AgentKeys {
    let port = a.int(ctx, "port", 1..=65535).map(|p| p as u16);
    let interval = a.positive_duration(ctx, "interval");
    let timeout = a.positive_duration(ctx, "timeout");
    let send = a
        .str(ctx, "send", "a string sent to the agent, e.g. \"ready\\n\"")
        .and_then(|text| {
            let problem = if text.is_empty() {
                Some("must not be empty; leave it out to send nothing".to_owned())
            } else if text.len() > AgentCheck::MAX_SEND {
                Some(format!(
                    "too long ({} bytes); at most {} bytes",
                    text.len(),
                    AgentCheck::MAX_SEND
                ))
            } else {
                None
            };
            if let (Some(message), Some(v)) = (problem, a.get("send")) {
                ctx.bad(&a.child("send"), v, message);
                return None;
            }
            Some(text.to_owned())
        });
    AgentKeys {
        port: set(ctx, a, "port", port),
        interval: set(ctx, a, "interval", interval),
        timeout: set(ctx, a, "timeout", timeout),
        send: set(ctx, a, "send", send),
    }
}

fn set<T>(ctx: &Ctx<'_>, a: &Table<'_, '_>, name: &str, value: Option<T>) -> Option<Set<T>> {
    let v = a.get(name)?;
    Some(Set {
        value: value?,
        key: a.child(name),
        at: v.span().start,
        written: ctx.written(v),
    })
}

/// `own` (written in `table`) over `base` (the farm's keys, for a member) over the defaults.
/// `None` when a rule is broken (reported here, or at the farm for inherited keys).
fn resolve(
    ctx: &mut Ctx<'_>,
    table: &Table<'_, '_>,
    base: Option<&AgentKeys>,
    own: &AgentKeys,
) -> Option<AgentCheck> {
    let pick = |f: fn(&AgentKeys) -> &Option<Set<_>>| -> Option<(&Set<_>, bool)> {
        f(own)
            .as_ref()
            .map(|s| (s, true))
            .or_else(|| base.and_then(|b| f(b).as_ref()).map(|s| (s, false)))
    };
    let interval = pick(|k| &k.interval);
    let timeout = pick(|k| &k.timeout);
    let interval_v = interval.map_or(AgentCheck::DEFAULT_INTERVAL, |(s, _)| s.value);
    let timeout_v = timeout.map_or(AgentCheck::DEFAULT_TIMEOUT, |(s, _)| s.value);
    let mut valid = true;
    if timeout_v > interval_v {
        valid = false;
        const WHY: &str = "a read of the agent must end before the next one is due";
        let origin = |p: Option<(&Set<Duration>, bool)>| match p {
            None => ", the default".to_owned(),
            Some((_, true)) => String::new(),
            Some((s, false)) => format!(", from {}", s.key),
        };
        let (t, i) = (show(timeout_v), show(interval_v));
        match (timeout, interval) {
            (Some((s, true)), _) => ctx.error(
                s.at,
                &s.key,
                s.written.clone(),
                format!(
                    "longer than interval ({i}{}); {WHY}: make timeout at most {i}, or \
                     interval longer",
                    origin(interval)
                ),
            ),
            (_, Some((s, true))) => ctx.error(
                s.at,
                &s.key,
                s.written.clone(),
                format!(
                    "shorter than timeout ({t}{}); {WHY}: make interval at least {t}, or \
                     timeout shorter",
                    origin(timeout)
                ),
            ),
            // Both inherited from the farm: reported there.
            _ => {}
        }
    }
    let port = match (&own.port, base) {
        (Some(p), _) => Some(p.value),
        (None, Some(b)) => b.port.as_ref().map(|p| p.value),
        (None, None) => None,
    };
    // A port missing (or invalid) at the farm is reported there, not again at each member.
    let reported = own.port.is_none() && table.has("port")
        || base.is_some_and(|b| b.port.is_none() && own.port.is_none());
    if port.is_none() && !reported {
        table.missing(ctx, "port", PORT_NEEDED);
    }
    let send = own
        .send
        .as_ref()
        .or_else(|| base.and_then(|b| b.send.as_ref()))
        .map(|s| s.value.clone());
    Some(AgentCheck {
        port: port?,
        interval: interval_v,
        timeout: timeout_v,
        send,
    })
    .filter(|_| valid)
}
