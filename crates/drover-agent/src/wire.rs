//! What the agent says, rendered once per collection: the JSON body (pushed, and served over HTTP)
//! and the HAProxy agent-check line (served on the agent-check port).
//!
//! JSON: `{"member": "m1", "metrics": {"cpu": 0.25, ...}, "state": "up"}`, plus `"reason"` when
//! the health script failed: exactly what `drover_core::report::push::parse_json` accepts, metrics
//! in collection order.
//!
//! Agent-check line: `up 75% # cpu 0.25` or `down 75% # <reason>`, then `\n`. The weight is
//! derived from CPU idle: `round(100 * (1 - cpu))`, clamped to `1..=100`, so that a saturated
//! member keeps a little weight (0% would make HAProxy and drover drain it, a decision that
//! belongs to the health script, not to a busy CPU) and an idle one never asks for more than its
//! configured weight. Without a `cpu` reading the weight is 100%.

use drover_core::report::{AgentState, LoadReport, Metrics};
use serde::ser::{Serialize, SerializeMap, Serializer};

/// A snapshot of the member: the report and its two renderings.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub report: LoadReport,
    /// The push / HTTP body.
    pub json: String,
    /// The agent-check reply line, `\n` included.
    pub line: String,
    /// Collection number, from 1; pushers use it to never send the same snapshot twice.
    pub seq: u64,
}

impl Snapshot {
    pub fn new(report: LoadReport, seq: u64) -> Snapshot {
        Snapshot {
            json: json_body(&report),
            line: agent_check_line(&report),
            report,
            seq,
        }
    }
}

fn is_down(report: &LoadReport) -> bool {
    report.health.is_some_and(|h| h != AgentState::Up)
}

struct OrderedMetrics<'a>(&'a Metrics);

impl Serialize for OrderedMetrics<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (name, value) in self.0.iter() {
            map.serialize_entry(name, &value)?;
        }
        map.end()
    }
}

#[derive(serde::Serialize)]
struct Body<'a> {
    member: &'a str,
    metrics: OrderedMetrics<'a>,
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
}

/// The JSON body of a push for `report`.
pub fn json_body(report: &LoadReport) -> String {
    let down = is_down(report);
    let body = Body {
        member: &report.member,
        metrics: OrderedMetrics(&report.metrics),
        state: if down { "down" } else { "up" },
        reason: report.reason.as_deref().filter(|_| down),
    };
    // Serialising strings and finite f64s (Metrics holds only finite values) cannot fail.
    serde_json::to_string(&body).unwrap_or_default()
}

/// The agent-check weight for a CPU utilisation: `round(100 * (1 - cpu))` in `1..=100`; 100
/// without a reading.
pub fn weight_pct(cpu: Option<f64>) -> u32 {
    match cpu {
        Some(cpu) if cpu.is_finite() => (100.0 * (1.0 - cpu)).round().clamp(1.0, 100.0) as u32,
        _ => 100,
    }
}

/// The agent-check reply line for `report`, `\n` included.
pub fn agent_check_line(report: &LoadReport) -> String {
    let cpu = report.metrics.get("cpu");
    let weight = weight_pct(cpu);
    if is_down(report) {
        match &report.reason {
            Some(reason) => format!("down {weight}% # {reason}\n"),
            None => format!("down {weight}%\n"),
        }
    } else {
        match cpu {
            Some(cpu) => format!("up {weight}% # cpu {cpu:.2}\n"),
            None => format!("up {weight}%\n"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_core::report::{Source, agent_check, push};

    fn report(cpu: Option<f64>, down: Option<&str>) -> LoadReport {
        let mut r = LoadReport::new("m1", Source::Push, 0);
        if let Some(cpu) = cpu {
            r.metrics.insert("cpu", cpu).unwrap();
        }
        r.metrics.insert("db.conns", 12.0).unwrap();
        r.metrics.insert("load1", 0.5).unwrap();
        match down {
            Some(why) => {
                r.set_state(AgentState::Down);
                r.reason = Some(why.into());
            }
            None => r.set_state(AgentState::Up),
        }
        r
    }

    #[test]
    fn weight_mapping() {
        assert_eq!(weight_pct(Some(0.25)), 75);
        assert_eq!(weight_pct(Some(0.0)), 100);
        assert_eq!(weight_pct(Some(1.0)), 1);
        assert_eq!(weight_pct(Some(0.996)), 1);
        assert_eq!(weight_pct(Some(0.994)), 1);
        assert_eq!(weight_pct(Some(0.985)), 2);
        assert_eq!(weight_pct(None), 100);
        assert_eq!(weight_pct(Some(f64::NAN)), 100);
    }

    #[test]
    fn json_round_trips_through_the_push_parser() {
        let up = report(Some(0.25), None);
        let body = json_body(&up);
        assert_eq!(
            body,
            r#"{"member":"m1","metrics":{"cpu":0.25,"db.conns":12.0,"load1":0.5},"state":"up"}"#
        );
        let parsed = push::parse_json(body.as_bytes(), 7).unwrap();
        assert_eq!(parsed[0].metrics, up.metrics);
        assert_eq!(parsed[0].health, Some(AgentState::Up));
        let down = report(None, Some("disk # full"));
        let parsed = push::parse_json(json_body(&down).as_bytes(), 7).unwrap();
        assert_eq!(parsed[0].health, Some(AgentState::Down));
        assert_eq!(parsed[0].reason.as_deref(), Some("disk # full"));
    }

    #[test]
    fn lines_parse_as_agent_check_replies() {
        let up = agent_check_line(&report(Some(0.25), None));
        assert_eq!(up, "up 75% # cpu 0.25\n");
        let r = agent_check::parse(&up, "m1", 0).unwrap();
        assert_eq!((r.health, r.weight_pct), (Some(AgentState::Up), Some(75)));
        let down = agent_check_line(&report(Some(1.0), Some("disk # full")));
        assert_eq!(down, "down 1% # disk # full\n");
        let r = agent_check::parse(&down, "m1", 0).unwrap();
        assert_eq!(r.health, Some(AgentState::Down));
        assert_eq!(r.reason.as_deref(), Some("disk # full"));
        assert_eq!(agent_check_line(&report(None, None)), "up 100%\n");
    }
}
