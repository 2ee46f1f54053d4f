//! The ORCA `endpoint-load-metrics` response header: load a member reports on each response.
//!
//! Where it sits: the proxy (later) finds the header on a member's response, strips it before the
//! response reaches the client, and hands its value to [`parse`]. Forms, following Envoy's
//! `source/common/orca/orca_parser.cc` and the ORCA design (xds `OrcaLoadReport`):
//! - `TEXT cpu_utilization=0.3, mem_utilization=0.5, rps_fractional=10, named_metrics.foo=2`;
//! - `JSON {"cpu_utilization": 0.3, "named_metrics": {"foo": 2}}` (proto3 JSON: the lowerCamelCase
//!   spellings such as `cpuUtilization` are accepted too);
//! - the older bare form without a prefix, `cpu_utilization:0.3, named_metrics.foo:2`;
//! - `BIN <base64 protobuf>` is rejected with a reason saying to send TEXT or JSON (decoding
//!   protobuf would add a dependency for a form no member needs: every ORCA library writes TEXT).
//!
//! Names map onto drover's model: `cpu_utilization` -> `cpu`, `mem_utilization` -> `mem`,
//! `rps_fractional` (and the deprecated integer `rps`) -> `rps`, `eps` -> `eps`,
//! `named_metrics.X` -> `X`; `application_utilization`, `request_cost.X` and `utilization.X` keep
//! their names. Other names are rejected, as Envoy does. ORCA allows a `cpu_utilization` above 1
//! ("beyond the member's soft limit"): it maps to a `cpu` of 1, the top of drover's range, rather
//! than rejecting a busy member's every report; a negative value is still a reject.

use super::{LoadReport, Metrics, Reject, RejectKind, Source, clip, one_line};
use serde_json::Value;

const CONTEXT: &str = "ORCA header";
/// Longest header value accepted, in bytes.
pub const MAX_VALUE: usize = 4096;

fn reject(kind: RejectKind, message: impl Into<String>) -> Reject {
    Reject::new(CONTEXT, kind, message)
}

/// Parses the value of an `endpoint-load-metrics` header from `member`, received at `now`.
pub fn parse(value: &[u8], member: &str, now: u64) -> Result<LoadReport, Reject> {
    if value.len() > MAX_VALUE {
        return Err(reject(
            RejectKind::TooLarge,
            format!(
                "value too long ({} bytes, at most {MAX_VALUE})",
                value.len()
            ),
        ));
    }
    let text = std::str::from_utf8(value)
        .map_err(|_| reject(RejectKind::Malformed, "value is not UTF-8"))?
        .trim_matches([' ', '\t']);
    let mut report = LoadReport::new(member, Source::Orca, now);
    if let Some(rest) = form(text, "TEXT") {
        pairs(rest, '=', &mut report.metrics)?;
    } else if let Some(rest) = form(text, "JSON") {
        json(rest, &mut report.metrics)?;
    } else if form(text, "BIN").is_some() {
        return Err(reject(
            RejectKind::Malformed,
            "BIN (base64 protobuf) form is not supported; send TEXT or JSON",
        ));
    } else {
        pairs(text, ':', &mut report.metrics)?;
    }
    if report.metrics.is_empty() {
        return Err(reject(
            RejectKind::Malformed,
            "no metrics (expected TEXT name=value, ... or JSON {...})",
        ));
    }
    Ok(report)
}

/// What follows the format `tag` (and a blank), when `text` starts with it.
fn form<'a>(text: &'a str, tag: &str) -> Option<&'a str> {
    let rest = text.strip_prefix(tag)?;
    if rest.is_empty() {
        Some(rest)
    } else {
        rest.strip_prefix([' ', '\t'])
    }
}

/// `name<sep>value, ...`: the TEXT form (`=`) or the older bare form (`:`).
fn pairs(text: &str, sep: char, metrics: &mut Metrics) -> Result<(), Reject> {
    for entry in text.split(',').map(|e| e.trim_matches([' ', '\t'])) {
        if entry.is_empty() {
            continue;
        }
        let Some((name, value)) = entry.split_once(sep) else {
            let hint = if sep == '=' {
                "name=value"
            } else {
                "name:value, or a TEXT or JSON prefix"
            };
            return Err(reject(
                RejectKind::Malformed,
                format!("bad entry {:?} (expected {hint})", clip(entry)),
            ));
        };
        let (name, value) = (
            name.trim_matches([' ', '\t']),
            value.trim_matches([' ', '\t']),
        );
        let number: f64 = value.parse().map_err(|_| {
            reject(
                RejectKind::Malformed,
                format!(
                    "value of {:?} is not a number: {:?}",
                    clip(name),
                    clip(value)
                ),
            )
        })?;
        add(metrics, name, number)?;
    }
    Ok(())
}

/// Adds one ORCA metric under its drover name.
fn add(metrics: &mut Metrics, orca_name: &str, value: f64) -> Result<(), Reject> {
    let (name, value) = match orca_name {
        // ORCA: "may be larger than 1.0 when the usage exceeds the reporter's soft limits".
        "cpu_utilization" | "cpuUtilization" => ("cpu", if value > 1.0 { 1.0 } else { value }),
        "mem_utilization" | "memUtilization" => ("mem", value),
        "rps_fractional" | "rpsFractional" | "rps" => ("rps", value),
        "eps" => ("eps", value),
        "application_utilization" | "applicationUtilization" => ("application_utilization", value),
        _ => {
            if let Some(named) = orca_name.strip_prefix("named_metrics.") {
                (named, value)
            } else if orca_name.starts_with("request_cost.")
                || orca_name.starts_with("utilization.")
            {
                (orca_name, value)
            } else {
                return Err(reject(
                    RejectKind::Malformed,
                    format!(
                        "unknown ORCA metric {:?} (expected cpu_utilization, mem_utilization, \
                         application_utilization, rps_fractional, eps, named_metrics.X, \
                         request_cost.X, utilization.X)",
                        clip(orca_name)
                    ),
                ));
            }
        }
    };
    metrics
        .insert(name, value)
        .map_err(|e| Reject::metric(CONTEXT, e))
}

/// The JSON form: an `OrcaLoadReport` in proto3 JSON.
fn json(text: &str, metrics: &mut Metrics) -> Result<(), Reject> {
    let value: Value = serde_json::from_str(text).map_err(|e| {
        reject(
            RejectKind::Malformed,
            format!("bad JSON: {}", one_line(&e.to_string())),
        )
    })?;
    let Value::Object(fields) = value else {
        return Err(reject(RejectKind::Malformed, "JSON form must be an object"));
    };
    for (key, value) in &fields {
        let prefix = match key.as_str() {
            "named_metrics" | "namedMetrics" => Some("named_metrics."),
            "request_cost" | "requestCost" => Some("request_cost."),
            "utilization" => Some("utilization."),
            _ => None,
        };
        match prefix {
            Some(prefix) => {
                let Value::Object(map) = value else {
                    return Err(reject(
                        RejectKind::Malformed,
                        format!("{key:?} must be an object of numbers"),
                    ));
                };
                for (name, value) in map {
                    add(metrics, &format!("{prefix}{name}"), number(name, value)?)?;
                }
            }
            None => add(metrics, key, number(key, value)?)?,
        }
    }
    Ok(())
}

fn number(name: &str, value: &Value) -> Result<f64, Reject> {
    value.as_f64().ok_or_else(|| {
        reject(
            RejectKind::Malformed,
            format!("value of {:?} is not a number", clip(name)),
        )
    })
}

#[cfg(test)]
mod tests;
