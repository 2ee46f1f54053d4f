//! `farm.<name>.policy`: a policy name (`"p2c"`), a policy with arguments (`"simple(cpu)"`,
//! `"dynamic(cpu=0.5, load1=0.5)"`, `"lowest(cpu)"`), or a TOML array of pipeline stages
//! (`["fresh 20s", "sample 2", "least rif"]`), into a [`PolicyKind`].
//!
//! Where it sits: `farm.rs` calls [`policy`] for each farm (and reads `hash_key` / `hash_bound`
//! itself for `"hash"`). Every malformed form is recorded at the value (for an array, at the
//! element, key `farm.<name>.policy[i]`) with what would be valid, and a typo gets a "did you
//! mean"; the walk goes on. The stages and scores are described in docs/balancing-policies.md.

use drover_core::PolicyKind;
use drover_core::policy::pipeline::{SCORE_FORMS, STAGE_FORMS};
use drover_core::policy::{Score, Stage};
use drover_core::report::MAX_NAME_LEN;
use toml::de::DeValue;

use crate::units::{self, did_you_mean};
use crate::walk::{Ctx, Table, Value};

/// Every form the key takes, for messages.
fn all_forms() -> String {
    let mut forms: Vec<&str> = PolicyKind::NAMES.to_vec();
    forms.extend(PolicyKind::FORMS);
    format!("{}, or an array of pipeline stages", forms.join(", "))
}

/// The farm's policy and the name it goes by in messages about other keys (`"hash"`).
pub(crate) fn policy(ctx: &mut Ctx<'_>, t: &Table<'_, '_>) -> Option<PolicyKind> {
    let key = t.child("policy");
    let v = t.get("policy")?;
    match v.get_ref() {
        DeValue::String(s) => named(ctx, &key, v, s),
        DeValue::Array(items) => pipeline(ctx, &key, v, items),
        _ => {
            let what = format!("a policy: {}", all_forms());
            ctx.expect_str(&key, v, &what);
            None
        }
    }
}

/// A policy written as a string. `None` after an error (the farm falls back to round-robin).
fn named(ctx: &mut Ctx<'_>, key: &str, v: &Value<'_>, text: &str) -> Option<PolicyKind> {
    let kind = match text {
        "round-robin" => PolicyKind::RoundRobin,
        "weighted" => PolicyKind::Weighted,
        "least-conn" => PolicyKind::LeastConn,
        "random" => PolicyKind::Random,
        "p2c" => PolicyKind::P2c,
        "peak-ewma" => PolicyKind::PeakEwma,
        "adaptive" => PolicyKind::Adaptive,
        // Completed by farm.rs with hash_key and hash_bound.
        "hash" => PolicyKind::Hash {
            key: drover_core::HashKey::Source,
            bound: 0.0,
        },
        _ => {
            let result = match call(text) {
                Some(("simple", arg)) => {
                    one_metric(arg, "simple").map(|metric| PolicyKind::Simple { metric })
                }
                Some(("lowest", arg)) => {
                    metric(arg, "lowest").map(|metric| PolicyKind::Lowest { metric })
                }
                Some(("dynamic", arg)) => mix(arg).map(|mix| PolicyKind::Dynamic { mix }),
                _ => Err(unknown(text)),
            };
            return match result {
                Ok(kind) => Some(kind),
                Err(message) => {
                    ctx.bad(key, v, message);
                    None
                }
            };
        }
    };
    Some(kind)
}

/// `name(args)` split in two, trimmed; `None` when the text is not of that shape.
fn call(text: &str) -> Option<(&str, &str)> {
    let (name, rest) = text.split_once('(')?;
    let args = rest.trim_end().strip_suffix(')')?;
    Some((name.trim(), args.trim()))
}

fn unknown(text: &str) -> String {
    let mut message = format!("unknown policy; expected one of {}", all_forms());
    // "simpel(cpu)": compare the name before the parenthesis; "simple" alone: say what it needs.
    let head = text.split('(').next().unwrap_or(text).trim();
    let call_names = ["simple", "dynamic", "lowest"];
    if let Some(i) = call_names.iter().position(|n| *n == head) {
        return format!(
            "{head} needs its arguments: {} (e.g. {})",
            PolicyKind::FORMS[i],
            ["simple(cpu)", "dynamic(cpu=0.5, load1=0.5)", "lowest(cpu)"][i]
        );
    }
    let names = PolicyKind::NAMES.iter().copied().chain(call_names);
    if let Some(close) = did_you_mean(head, names) {
        let form = match call_names.iter().position(|n| *n == close) {
            Some(i) => PolicyKind::FORMS[i],
            None => close,
        };
        message.push_str(&format!(" (did you mean \"{form}\"?)"));
    }
    message
}

/// A reported metric's name: what load reports accept.
fn metric(text: &str, of: &str) -> Result<String, String> {
    let ok = (1..=MAX_NAME_LEN).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.');
    if ok {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "bad metric name {text:?} in {of}(...): a metric is 1 to {MAX_NAME_LEN} of lower-case \
             a-z, 0-9, '_' and '.', e.g. cpu, mem, load1, queue"
        ))
    }
}

/// The one metric of `simple(..)`; `rif` there would only be p2c under another name.
fn one_metric(text: &str, of: &str) -> Result<String, String> {
    let m = metric(text, of)?;
    if m == "rif" {
        return Err(format!(
            "{of}(rif) would be p2c: rif is the balancer's own in-flight count, not a reported \
             metric; use policy = \"p2c\", or name a reported metric, e.g. {of}(cpu)"
        ));
    }
    Ok(m)
}

const MIX_FORM: &str = "dynamic(<metric>=<weight>, ...), e.g. dynamic(cpu=0.5, load1=0.5)";

/// `cpu=0.5, load1=0.5`: metrics with positive weights, each once, at least one reported metric.
fn mix(text: &str) -> Result<Vec<(String, f64)>, String> {
    let mut out: Vec<(String, f64)> = Vec::new();
    for term in text.split(',') {
        let term = term.trim();
        let Some((name, weight)) = term.split_once('=') else {
            return Err(format!(
                "expected <metric>=<weight> at {term:?}; {MIX_FORM}"
            ));
        };
        let name = metric(name.trim(), "dynamic")?;
        let weight = match weight.trim().parse::<f64>() {
            Ok(w) if w.is_finite() && w > 0.0 => w,
            _ => {
                return Err(format!(
                    "weight of {name} must be a number above 0, found {:?}; {MIX_FORM}",
                    weight.trim()
                ));
            }
        };
        if out.iter().any(|(n, _)| *n == name) {
            return Err(format!("{name} is named twice; {MIX_FORM}"));
        }
        out.push((name, weight));
    }
    if out.iter().all(|(n, _)| n == "rif") {
        return Err(format!(
            "needs a reported metric besides rif (rif alone would be p2c); {MIX_FORM}"
        ));
    }
    Ok(out)
}

/// A TOML array of stages.
fn pipeline(
    ctx: &mut Ctx<'_>,
    key: &str,
    v: &Value<'_>,
    items: &[Value<'_>],
) -> Option<PolicyKind> {
    let forms = STAGE_FORMS.join(", ");
    if items.is_empty() {
        let message = format!("an empty pipeline; name its stages, one of {forms}");
        ctx.bad(key, v, message);
        return None;
    }
    let mut stages = Vec::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let item_key = format!("{key}[{i}]");
        let what = format!("a pipeline stage: one of {forms}");
        let Some(text) = ctx.expect_str(&item_key, item, &what) else {
            ok = false;
            continue;
        };
        match stage(text) {
            Ok(s) => stages.push(s),
            Err(message) => {
                ctx.bad(&item_key, item, message);
                ok = false;
            }
        }
    }
    if !ok {
        return None;
    }
    if matches!(stages.last(), Some(Stage::Ready | Stage::Fresh(_))) {
        let message = "a pipeline must end with a sampler or an ordering (sample <k>, log-window, \
                       random or least <score>): after filters alone the first member would take \
                       every request";
        ctx.bad(key, v, message);
        return None;
    }
    Some(PolicyKind::Pipeline(stages))
}

/// One stage, or what is wrong with it.
fn stage(text: &str) -> Result<Stage, String> {
    let text = text.trim();
    let (name, arg) = match text.split_once(char::is_whitespace) {
        Some((n, a)) => (n, a.trim()),
        None => (text, ""),
    };
    let forms = STAGE_FORMS.join(", ");
    let no_arg = |s: Stage| {
        if arg.is_empty() {
            Ok(s)
        } else {
            Err(format!("{name} takes no argument; stages are {forms}"))
        }
    };
    match name {
        "ready" => no_arg(Stage::Ready),
        "log-window" => no_arg(Stage::LogWindow),
        "random" => no_arg(Stage::Random),
        "fresh" => match units::parse_duration(arg) {
            Ok(d) if !d.is_zero() => Ok(Stage::Fresh(d)),
            Ok(_) => Err("fresh needs an age above 0s, e.g. \"fresh 20s\"".to_owned()),
            Err(e) => Err(format!(
                "fresh needs an age, e.g. \"fresh 20s\": invalid duration: {e}"
            )),
        },
        "sample" => match arg.parse::<usize>() {
            Ok(k) if (1..=1_000).contains(&k) => Ok(Stage::Sample(k)),
            _ => Err(format!(
                "sample needs a count from 1 to 1000, e.g. \"sample 2\", found {arg:?}"
            )),
        },
        "least" => score(arg).map(Stage::Least),
        "sticky" => Err(
            "stickiness is not a stage: sticky sessions are honoured before any \
                         policy runs; remove this stage"
                .to_owned(),
        ),
        _ => {
            let mut message = format!("unknown stage; expected one of {forms}");
            let names = ["ready", "fresh", "sample", "log-window", "random", "least"];
            if let Some(close) = did_you_mean(name, names) {
                let i = names.iter().position(|n| *n == close).unwrap_or(0);
                message.push_str(&format!(" (did you mean \"{}\"?)", STAGE_FORMS[i]));
            }
            Err(message)
        }
    }
}

/// What `least` orders by.
fn score(text: &str) -> Result<Score, String> {
    let forms = SCORE_FORMS.join(", ");
    match text {
        "rif" => return Ok(Score::Rif),
        "latency" => return Ok(Score::Latency),
        "peak-ewma" => return Ok(Score::PeakEwma),
        _ => {}
    }
    match call(text) {
        Some(("simple", arg)) => one_metric(arg, "simple").map(Score::Simple),
        Some(("dynamic", arg)) => mix(arg).map(Score::Dynamic),
        _ => {
            let mut message = format!("least needs a score: one of {forms}");
            let head = text.split('(').next().unwrap_or(text).trim();
            let names = ["rif", "latency", "peak-ewma", "simple", "dynamic"];
            if text.is_empty() {
                message.push_str(", e.g. \"least rif\"");
            } else if let Some(close) = did_you_mean(head, names) {
                let i = names.iter().position(|n| *n == close).unwrap_or(0);
                message.push_str(&format!(" (did you mean \"{}\"?)", SCORE_FORMS[i]));
            }
            Err(message)
        }
    }
}
