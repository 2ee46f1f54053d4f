//! The gossip keyspace: what each node publishes under its own chitchat node state, and how a key
//! and its value are written and read. Pure: no I/O, no clock.
//!
//! | key | value | what |
//! |---|---|---|
//! | `op/{farm}/{member}/on` | `1 {t}` / `0 {t}` | operator's enable / disable |
//! | `op/{farm}/{member}/drain` | `1 {t}` / `0 {t}` | operator's drain / undrain |
//! | `op/{farm}/{member}/weight` | `{weight} {t}` | operator's weight |
//! | `s/{farm}/{key:016x}` | `{member} {t}` / `- {t}` | a learned sticky session (or its end), with a TTL |
//! | `r/{member}` | `{t} {json}` | the last load report pushed to this node for that member |
//!
//! `{t}` is the change's stamp: wall-clock milliseconds (hybrid: never lower than a stamp already
//! seen for the key, plus one), so the latest change wins across nodes; equal stamps are ordered by
//! node name. Member names hold no `/` or space (drover-config refuses them), so the member and
//! what follows split cleanly; a farm name is whatever precedes them.

use drover_core::report::{AgentState, LoadReport, Metrics, Source};
use serde::{Deserialize, Serialize};

/// A field of a member the operator changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpField {
    On,
    Drain,
    Weight,
}

impl OpField {
    fn as_str(self) -> &'static str {
        match self {
            OpField::On => "on",
            OpField::Drain => "drain",
            OpField::Weight => "weight",
        }
    }
}

/// An operator's change: the field and its new value (a weight, or 1/0 for a flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Op {
    pub field: OpField,
    pub value: u32,
}

impl Op {
    pub fn on(on: bool) -> Op {
        Op {
            field: OpField::On,
            value: u32::from(on),
        }
    }
    pub fn drain(drain: bool) -> Op {
        Op {
            field: OpField::Drain,
            value: u32::from(drain),
        }
    }
    pub fn weight(weight: u32) -> Op {
        Op {
            field: OpField::Weight,
            value: weight,
        }
    }
}

/// A parsed key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    Op {
        farm: String,
        member: String,
        field: OpField,
    },
    Sticky {
        farm: String,
        key: u64,
    },
    Report {
        member: String,
    },
}

/// Which kind of key, for counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Op,
    Sticky,
    Report,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Op, Kind::Sticky, Kind::Report];
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Op => "op",
            Kind::Sticky => "sticky",
            Kind::Report => "report",
        }
    }
    pub fn index(self) -> usize {
        self as usize
    }
}

impl Key {
    pub fn kind(&self) -> Kind {
        match self {
            Key::Op { .. } => Kind::Op,
            Key::Sticky { .. } => Kind::Sticky,
            Key::Report { .. } => Kind::Report,
        }
    }

    pub fn parse(s: &str) -> Option<Key> {
        if let Some(rest) = s.strip_prefix("op/") {
            let mut it = rest.rsplitn(3, '/');
            let field = match it.next()? {
                "on" => OpField::On,
                "drain" => OpField::Drain,
                "weight" => OpField::Weight,
                _ => return None,
            };
            let member = it.next()?;
            let farm = it.next()?;
            return (!member.is_empty() && !farm.is_empty()).then(|| Key::Op {
                farm: farm.to_owned(),
                member: member.to_owned(),
                field,
            });
        }
        if let Some(rest) = s.strip_prefix("s/") {
            let (farm, hex) = rest.rsplit_once('/')?;
            if hex.len() != 16 || farm.is_empty() {
                return None;
            }
            let key = u64::from_str_radix(hex, 16).ok()?;
            return Some(Key::Sticky {
                farm: farm.to_owned(),
                key,
            });
        }
        let member = s.strip_prefix("r/")?;
        (!member.is_empty() && !member.contains('/')).then(|| Key::Report {
            member: member.to_owned(),
        })
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Key::Op {
                farm,
                member,
                field,
            } => write!(f, "op/{farm}/{member}/{}", field.as_str()),
            Key::Sticky { farm, key } => write!(f, "s/{farm}/{key:016x}"),
            Key::Report { member } => write!(f, "r/{member}"),
        }
    }
}

/// `{value} {t}`: an op's value or a sticky entry's member (`-` = forgotten), and its stamp.
pub fn stamped(value: &str, t: u64) -> String {
    format!("{value} {t}")
}

/// The stamp and the value of an op or sticky value; `None` when malformed.
pub fn parse_stamped(v: &str) -> Option<(&str, u64)> {
    let (value, t) = v.rsplit_once(' ')?;
    Some((value, t.parse().ok()?))
}

/// The stamp of any value, whatever its key (reports put it first).
pub fn stamp_of(key: &Key, v: &str) -> Option<u64> {
    match key {
        Key::Report { .. } => v.split_once(' ')?.0.parse().ok(),
        _ => parse_stamped(v).map(|(_, t)| t),
    }
}

/// A pushed load report as gossiped (the fields a push can carry).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireReport {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    m: Vec<(String, f64)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    admin: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    health: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    w: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    maxconn: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

/// `{t} {json}` for report `r`, received at wall-clock `t` ms.
pub fn report_value(r: &LoadReport, t: u64) -> String {
    let w = WireReport {
        m: r.metrics.iter().map(|(n, v)| (n.to_owned(), v)).collect(),
        admin: r.admin.map(|s| s.as_str().to_owned()),
        health: r.health.map(|s| s.as_str().to_owned()),
        w: r.weight_pct,
        maxconn: r.maxconn,
        reason: r.reason.clone(),
    };
    // Serializing plain strings and numbers cannot fail; an empty object is a heartbeat anyway.
    let json = serde_json::to_string(&w).unwrap_or_else(|_| "{}".to_owned());
    format!("{t} {json}")
}

/// The report in a `{t} {json}` value, for `member`, received at `received` (clock scale), and
/// its stamp. The metrics are checked again as if pushed: a bad value is refused, not applied.
pub fn parse_report(
    member: &str,
    v: &str,
    received: impl FnOnce(u64) -> u64,
) -> Option<(LoadReport, u64)> {
    let (t, json) = v.split_once(' ')?;
    let t: u64 = t.parse().ok()?;
    let w: WireReport = serde_json::from_str(json).ok()?;
    let mut r = LoadReport::new(member, Source::Push, received(t));
    let mut metrics = Metrics::default();
    for (n, x) in &w.m {
        metrics.insert(n, *x).ok()?;
    }
    r.metrics = metrics;
    r.admin = match w.admin.as_deref().map(AgentState::parse) {
        Some(Some(s)) if s.is_admin() => Some(s),
        Some(_) => return None,
        None => None,
    };
    r.health = match w.health.as_deref().map(AgentState::parse) {
        Some(Some(s)) if !s.is_admin() => Some(s),
        Some(_) => return None,
        None => None,
    };
    r.weight_pct = w.w.filter(|p| *p <= drover_core::report::MAX_WEIGHT_PCT);
    r.maxconn = w.maxconn;
    r.reason = w.reason;
    Some((r, t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let keys = [
            Key::Op {
                farm: "app".into(),
                member: "web1".into(),
                field: OpField::Weight,
            },
            Key::Op {
                farm: "a/b".into(),
                member: "m.1".into(),
                field: OpField::On,
            },
            Key::Sticky {
                farm: "app".into(),
                key: 0x00ab_cdef_0123_4567,
            },
            Key::Report {
                member: "web2".into(),
            },
        ];
        for k in keys {
            assert_eq!(Key::parse(&k.to_string()), Some(k.clone()), "{k}");
        }
        assert_eq!(
            Key::parse("op/app/web1/drain").map(|k| k.kind()),
            Some(Kind::Op)
        );
        for bad in [
            "op/app/web1/color",
            "op/web1/on",
            "s/app/123",
            "s//0000000000000001",
            "r/",
            "r/a/b",
            "x/y",
            "",
        ] {
            assert_eq!(Key::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn stamped_values() {
        assert_eq!(parse_stamped(&stamped("web1", 42)), Some(("web1", 42)));
        assert_eq!(parse_stamped("- 7"), Some(("-", 7)));
        assert_eq!(parse_stamped("web1"), None);
        assert_eq!(parse_stamped("web1 x"), None);
    }

    #[test]
    fn reports_round_trip_with_their_age() {
        let mut r = LoadReport::new("web1", Source::Push, 5);
        r.metrics.insert("cpu", 0.5).unwrap();
        r.set_state(AgentState::Drain);
        r.weight_pct = Some(50);
        r.reason = Some("busy".into());
        let v = report_value(&r, 1_000);
        let key = Key::Report {
            member: "web1".into(),
        };
        assert_eq!(stamp_of(&key, &v), Some(1_000));
        let (back, t) = parse_report("web1", &v, |t| t * 2).unwrap();
        assert_eq!(t, 1_000);
        assert_eq!(back.received, 2_000, "received comes from the stamp");
        assert_eq!(back.metrics.get("cpu"), Some(0.5));
        assert_eq!(back.admin, Some(AgentState::Drain));
        assert_eq!(back.weight_pct, Some(50));
        assert_eq!(back.reason.as_deref(), Some("busy"));
        assert!(parse_report("web1", "1 {\"m\":[[\"cpu\",7.0]]}", |t| t).is_none());
        assert!(parse_report("web1", "1 {\"admin\":\"up\"}", |t| t).is_none());
        assert!(parse_report("web1", "x {}", |t| t).is_none());
    }
}
