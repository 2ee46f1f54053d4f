//! The push formats: the JSON body of `POST /api/v1/reports` and the GET `/ath/update?...` query,
//! plus the HMAC signature that authenticates a push ([`verify`], [`sign`], [`ReplayGuard`]).
//!
//! Where it sits: the admin listener (later) checks the signature with [`verify`], then hands the
//! body to [`parse_json`] or the query string to [`parse_query`], checks each member exists, and
//! applies the reports. A [`Reject`] becomes a 4xx answer with its `Display` as the body.
//!
//! JSON: one report `{"member": "m1", "metrics": {"cpu": 0.42}, "state": "drain", "weight": 75,
//! "maxconn": 100, "reason": "..."}` or many `{"reports": [{...}, ...]}`. Unknown fields are
//! rejected; one bad report rejects the whole call with its index, so state is never half-applied;
//! a member may appear once per call. Every field but `member` is optional: a bare `{"member":
//! "m1"}` is a heartbeat that only proves the member's agent is alive.
//!
//! Query: `member=m1&cpu=0.42&load1=1.5&state=up&weight=75&maxconn=100&reason=disk%20full`,
//! form-encoded (`%XX` and `+`); `member`, `state`, `weight`, `maxconn` and `reason` are fields,
//! every other key is a metric.

mod signature;

pub use signature::{DEFAULT_REPLAY_CAPACITY, ReplayGuard, Signed, authenticate, sign, verify};

use super::{
    AgentState, LoadReport, MAX_WEIGHT_PCT, Metrics, Reject, RejectKind, Source, clip,
    member_problem, one_line, reason_problem,
};
use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use std::fmt;

const BODY: &str = "push body";
const QUERY: &str = "push query";
/// Largest body accepted, in bytes.
pub const MAX_BODY: usize = 1 << 20;
/// Most reports in one call.
pub const MAX_REPORTS: usize = 1000;
/// Longest query string accepted, in bytes.
pub const MAX_QUERY: usize = 8192;

/// One report as it comes on the wire.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    member: String,
    #[serde(default)]
    metrics: WireMetrics,
    state: Option<String>,
    weight: Option<u32>,
    maxconn: Option<u32>,
    reason: Option<String>,
}

/// The `metrics` object, kept in the order sent and with repeated names, so that a duplicate is
/// reported (a map would silently keep the last).
#[derive(Default)]
struct WireMetrics(Vec<(String, f64)>);

impl<'de> Deserialize<'de> for WireMetrics {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = WireMetrics;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of metric names to numbers")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<WireMetrics, A::Error> {
                let mut list = Vec::new();
                while let Some(entry) = map.next_entry::<String, f64>()? {
                    list.push(entry);
                }
                Ok(WireMetrics(list))
            }
        }
        d.deserialize_map(V)
    }
}

/// The top-level object's fields, raw and in order, repeated keys included (a map would keep the
/// last `reports` of two and silently drop the first).
struct Top<'a>(Vec<(String, &'a RawValue)>);

impl<'de: 'a, 'a> Deserialize<'de> for Top<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = Top<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top<'a>, A::Error> {
                let mut fields = Vec::new();
                while let Some(entry) = map.next_entry::<String, &'a RawValue>()? {
                    fields.push(entry);
                }
                Ok(Top(fields))
            }
        }
        d.deserialize_map(V(std::marker::PhantomData))
    }
}

/// Parses a push body: one report or `{"reports": [...]}`, received at `now`.
pub fn parse_json(body: &[u8], now: u64) -> Result<Vec<LoadReport>, Reject> {
    let malformed = |m: String| Reject::new(BODY, RejectKind::Malformed, m);
    if body.len() > MAX_BODY {
        return Err(Reject::new(
            BODY,
            RejectKind::TooLarge,
            format!("body too large ({} bytes, at most {MAX_BODY})", body.len()),
        ));
    }
    let text = std::str::from_utf8(body).map_err(|_| malformed("body is not UTF-8".into()))?;
    if text.trim().is_empty() {
        return Err(malformed(
            "empty body (expected a JSON report or {\"reports\": [...]})".into(),
        ));
    }
    let top: Top<'_> = serde_json::from_str(text)
        .map_err(|e| malformed(format!("bad JSON: {}", one_line(&e.to_string()))))?;
    let Some(batch) = top
        .0
        .iter()
        .find(|(k, _)| k == "reports")
        .map(|&(_, raw)| raw)
    else {
        let wire: Wire =
            serde_json::from_str(text).map_err(|e| malformed(one_line(&e.to_string())))?;
        return Ok(vec![
            build(wire, now).map_err(|m| Reject::new(BODY, m.0, m.1))?,
        ]);
    };
    if top.0.len() > 1 {
        let other = top
            .0
            .iter()
            .map(|(k, _)| k.as_str())
            .find(|&k| k != "reports");
        let message = match other {
            Some(other) => format!(
                "unknown field `{}` next to `reports` (a batch holds only `reports`)",
                clip(other)
            ),
            None => "duplicate field `reports`".to_owned(),
        };
        return Err(malformed(message));
    }
    let items: Vec<&RawValue> = serde_json::from_str(batch.get()).map_err(|e| {
        malformed(format!(
            "`reports` must be an array of reports: {}",
            one_line(&e.to_string())
        ))
    })?;
    if items.is_empty() {
        return Err(malformed("`reports` is empty".into()));
    }
    if items.len() > MAX_REPORTS {
        return Err(Reject::new(
            BODY,
            RejectKind::TooLarge,
            format!("too many reports ({}, at most {MAX_REPORTS})", items.len()),
        ));
    }
    let mut reports: Vec<LoadReport> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let wire: Wire = serde_json::from_str(item.get())
            .map_err(|e| malformed(format!("report {i}: {}", one_line(&e.to_string()))))?;
        let report = build(wire, now)
            .map_err(|(kind, m)| Reject::new(BODY, kind, format!("report {i}: {m}")))?;
        if let Some(j) = reports.iter().position(|r| r.member == report.member) {
            return Err(Reject::new(
                BODY,
                RejectKind::Invalid,
                format!(
                    "report {i}: member {:?} already in report {j}",
                    clip(&report.member)
                ),
            ));
        }
        reports.push(report);
    }
    Ok(reports)
}

/// The checked model of one wire report, or the kind and text of its first problem.
fn build(wire: Wire, now: u64) -> Result<LoadReport, (RejectKind, String)> {
    let mut report = LoadReport::new(wire.member, Source::Push, now);
    check_member(&report.member)?;
    for (name, value) in wire.metrics.0 {
        insert(&mut report.metrics, &name, value)?;
    }
    if let Some(state) = wire.state {
        report.set_state(state_word(&state)?);
    }
    if let Some(weight) = wire.weight {
        report.weight_pct = Some(check_weight(weight)?);
    }
    report.maxconn = wire.maxconn;
    if let Some(reason) = wire.reason {
        if let Some(problem) = reason_problem(&reason) {
            return Err((RejectKind::Invalid, problem));
        }
        report.reason = Some(reason);
    }
    Ok(report)
}

fn check_member(member: &str) -> Result<(), (RejectKind, String)> {
    member_problem(member).map_or(Ok(()), |p| Err((RejectKind::Invalid, p)))
}

fn insert(metrics: &mut Metrics, name: &str, value: f64) -> Result<(), (RejectKind, String)> {
    metrics.insert(name, value).map_err(|e| {
        let r = Reject::metric(BODY, e);
        (r.kind, r.message)
    })
}

fn state_word(word: &str) -> Result<AgentState, (RejectKind, String)> {
    AgentState::parse(word).ok_or_else(|| {
        (
            RejectKind::Invalid,
            format!(
                "unknown state {:?} (expected ready, drain, maint, up, down, stopped, fail)",
                clip(word)
            ),
        )
    })
}

fn check_weight(weight: u32) -> Result<u32, (RejectKind, String)> {
    if weight > MAX_WEIGHT_PCT {
        return Err((
            RejectKind::Invalid,
            format!("weight {weight} is out of range (0 to {MAX_WEIGHT_PCT} percent)"),
        ));
    }
    Ok(weight)
}

/// Parses a GET `/ath/update` query string (with or without its leading `?`), received at `now`.
pub fn parse_query(query: &str, now: u64) -> Result<LoadReport, Reject> {
    let fail = |(kind, m): (RejectKind, String)| Reject::new(QUERY, kind, m);
    let malformed = |m: String| Reject::new(QUERY, RejectKind::Malformed, m);
    if query.len() > MAX_QUERY {
        return Err(Reject::new(
            QUERY,
            RejectKind::TooLarge,
            format!(
                "query too long ({} bytes, at most {MAX_QUERY})",
                query.len()
            ),
        ));
    }
    let query = query.strip_prefix('?').unwrap_or(query);
    let mut report = LoadReport::new(String::new(), Source::Push, now);
    let mut seen: Vec<&'static str> = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(malformed(format!(
                "bad pair {:?} (expected name=value)",
                clip(pair)
            )));
        };
        let key = decode(key).map_err(malformed)?;
        let value = decode(value).map_err(malformed)?;
        let field = match key.as_str() {
            "member" => "member",
            "state" => "state",
            "weight" => "weight",
            "maxconn" => "maxconn",
            "reason" => "reason",
            _ => {
                let number: f64 = value.parse().map_err(|_| {
                    malformed(format!(
                        "value of {:?} is not a number: {:?}",
                        clip(&key),
                        clip(&value)
                    ))
                })?;
                insert(&mut report.metrics, &key, number).map_err(fail)?;
                continue;
            }
        };
        if seen.contains(&field) {
            return Err(malformed(format!("`{field}` given twice")));
        }
        seen.push(field);
        match field {
            "member" => {
                check_member(&value).map_err(fail)?;
                report.member = value;
            }
            "state" => report.set_state(state_word(&value).map_err(fail)?),
            "weight" | "maxconn" => {
                let n: u32 = value.parse().map_err(|_| {
                    malformed(format!(
                        "`{field}` is not a whole number: {:?}",
                        clip(&value)
                    ))
                })?;
                if field == "weight" {
                    report.weight_pct = Some(check_weight(n).map_err(fail)?);
                } else {
                    report.maxconn = Some(n);
                }
            }
            _ => {
                if let Some(problem) = reason_problem(&value) {
                    return Err(Reject::new(QUERY, RejectKind::Invalid, problem));
                }
                report.reason = Some(value);
            }
        }
    }
    if report.member.is_empty() {
        return Err(malformed("missing `member`".into()));
    }
    Ok(report)
}

/// Form-decodes one key or value: `+` is a space, `%XX` a byte; the result must be UTF-8.
fn decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).and_then(|h| {
                    let h = std::str::from_utf8(h).ok()?;
                    u8::from_str_radix(h, 16)
                        .ok()
                        .filter(|_| h.bytes().all(|b| b.is_ascii_hexdigit()))
                });
                let Some(byte) = hex else {
                    return Err(format!("bad percent escape in {:?}", clip(s)));
                };
                out.push(byte);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| format!("{:?} does not decode to UTF-8", clip(s)))
}

#[cfg(test)]
mod tests;
