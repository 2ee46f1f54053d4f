//! `farm.<name>.policy` beyond plain names: `simple(..)`, `dynamic(..)`, `lowest(..)` and
//! pipelines (a TOML array of stages); every malformed form is one error at its line, naming the
//! key, the value as written and what would be valid.

use std::path::Path;
use std::time::Duration;

use drover_config::{ConfigError, parse_str};
use drover_core::PolicyKind;
use drover_core::policy::{Score, Stage};

const HEAD: &str = "[[listener]]\nlisten = \"127.0.0.1:80\"\nfarm = \"f\"\n[farm.f]\n";
const MEMBERS: &str = "members = [{ address = \"127.0.0.1:1\" }]\n";

fn policy_of(value: &str) -> PolicyKind {
    let text = format!("{HEAD}policy = {value}\n{MEMBERS}");
    let c = parse_str(&text, Path::new("t.toml")).unwrap_or_else(|e| panic!("{value}:\n{e}"));
    c.farms[0].policy.clone()
}

/// The one error of `policy = <value>` (written on line 5).
fn error_of(value: &str) -> ConfigError {
    let text = format!("{HEAD}policy = {value}\n{MEMBERS}");
    let mut errors = parse_str(&text, Path::new("t.toml")).expect_err(value).0;
    assert_eq!(errors.len(), 1, "{value}: {errors:#?}");
    errors.remove(0)
}

fn mix(pairs: &[(&str, f64)]) -> Vec<(String, f64)> {
    pairs.iter().map(|(n, w)| (n.to_string(), *w)).collect()
}

#[test]
fn simple_dynamic_and_lowest() {
    assert_eq!(
        policy_of("\"simple(cpu)\""),
        PolicyKind::Simple {
            metric: "cpu".into()
        }
    );
    assert_eq!(
        policy_of("\"dynamic(cpu=0.5, load1=0.5)\""),
        PolicyKind::Dynamic {
            mix: mix(&[("cpu", 0.5), ("load1", 0.5)])
        }
    );
    assert_eq!(
        policy_of("\"dynamic( cpu = 2 ,db.conns=1,rif=1 )\""),
        PolicyKind::Dynamic {
            mix: mix(&[("cpu", 2.0), ("db.conns", 1.0), ("rif", 1.0)])
        }
    );
    assert_eq!(
        policy_of("\"lowest(cpu)\""),
        PolicyKind::Lowest {
            metric: "cpu".into()
        }
    );
    // Shown back in the config's own form.
    assert_eq!(
        policy_of("\"dynamic(cpu=0.5, load1=0.5)\"").to_string(),
        "dynamic(cpu=0.5, load1=0.5)"
    );
}

#[test]
fn pipelines() {
    assert_eq!(
        policy_of(r#"["fresh 20s", "sample 2", "least rif"]"#),
        PolicyKind::Pipeline(vec![
            Stage::Fresh(Duration::from_secs(20)),
            Stage::Sample(2),
            Stage::Least(Score::Rif)
        ])
    );
    let p = policy_of(
        r#"["ready", "fresh 1m30s", "random", "log-window", "least latency", "least peak-ewma",
            "least simple(load1)", "least dynamic(cpu=0.5, rif=0.5)"]"#,
    );
    assert_eq!(
        p.to_string(),
        r#"["ready", "fresh 90s", "random", "log-window", "least latency", "least peak-ewma", "least simple(load1)", "least dynamic(cpu=0.5, rif=0.5)"]"#
    );
}

#[test]
fn malformed_policies_say_what_is_valid() {
    // (value, expected dotted key, a part of the message)
    let cases = [
        (
            "\"simple\"",
            "farm.f.policy",
            "simple needs its arguments: simple(<metric>) (e.g. simple(cpu))",
        ),
        (
            "\"simple()\"",
            "farm.f.policy",
            "bad metric name \"\" in simple(...)",
        ),
        ("\"simple(CPU)\"", "farm.f.policy", "lower-case"),
        ("\"simple(rif)\"", "farm.f.policy", "would be p2c"),
        (
            "\"simple(cpu\"",
            "farm.f.policy",
            "needs its arguments: simple(<metric>)",
        ),
        (
            "\"simpel(cpu)\"",
            "farm.f.policy",
            "(did you mean \"simple(<metric>)\"?)",
        ),
        ("\"lowest\"", "farm.f.policy", "lowest(<metric>)"),
        (
            "\"dynamic(cpu)\"",
            "farm.f.policy",
            "expected <metric>=<weight> at \"cpu\"",
        ),
        (
            "\"dynamic(cpu=0)\"",
            "farm.f.policy",
            "weight of cpu must be a number above 0, found \"0\"",
        ),
        (
            "\"dynamic(cpu=x)\"",
            "farm.f.policy",
            "must be a number above 0",
        ),
        (
            "\"dynamic(cpu=1, cpu=2)\"",
            "farm.f.policy",
            "cpu is named twice",
        ),
        (
            "\"dynamic(rif=1)\"",
            "farm.f.policy",
            "needs a reported metric besides rif",
        ),
        (
            "\"dynamic()\"",
            "farm.f.policy",
            "expected <metric>=<weight>",
        ),
        (
            "7",
            "farm.f.policy",
            "expected a policy: round-robin, weighted",
        ),
        ("[]", "farm.f.policy", "an empty pipeline"),
        (
            "[\"fresh 20s\"]",
            "farm.f.policy",
            "must end with a sampler or an ordering",
        ),
        (
            "[\"sample 2\", 3]",
            "farm.f.policy[1]",
            "expected a pipeline stage: one of ready, fresh <age>",
        ),
        (
            "[\"fresh\", \"random\"]",
            "farm.f.policy[0]",
            "fresh needs an age, e.g. \"fresh 20s\"",
        ),
        ("[\"fresh 0s\", \"random\"]", "farm.f.policy[0]", "above 0s"),
        (
            "[\"fresh 20 seconds\", \"random\"]",
            "farm.f.policy[0]",
            "invalid duration",
        ),
        (
            "[\"sample\"]",
            "farm.f.policy[0]",
            "sample needs a count from 1 to 1000",
        ),
        ("[\"sample 0\"]", "farm.f.policy[0]", "sample needs a count"),
        (
            "[\"random 2\"]",
            "farm.f.policy[0]",
            "random takes no argument",
        ),
        (
            "[\"smaple 2\"]",
            "farm.f.policy[0]",
            "unknown stage; expected one of ready, fresh <age>, sample <k>, log-window, random, least <score> (did you mean \"sample <k>\"?)",
        ),
        (
            "[\"least\"]",
            "farm.f.policy[0]",
            "least needs a score: one of rif, latency, peak-ewma",
        ),
        (
            "[\"least rfi\"]",
            "farm.f.policy[0]",
            "(did you mean \"rif\"?)",
        ),
        (
            "[\"least dynamc(cpu=1)\"]",
            "farm.f.policy[0]",
            "(did you mean \"dynamic(<metric>=<weight>, ...)\"?)",
        ),
        (
            "[\"least dynamic(cpu=-1)\"]",
            "farm.f.policy[0]",
            "must be a number above 0",
        ),
        (
            "[\"sticky\", \"random\"]",
            "farm.f.policy[0]",
            "stickiness is not a stage",
        ),
    ];
    for (value, key, says) in cases {
        let e = error_of(value);
        assert_eq!((e.line, e.key.as_str()), (5, key), "{value}: {e}");
        let text = e.to_string();
        assert!(text.starts_with(&format!("t.toml:5: {key}")), "{text}");
        assert!(text.contains(says), "{value}: {text}");
    }
    // The value is shown as written: the whole string, or the one stage at fault.
    assert_eq!(
        error_of("\"dynamic(cpu=0)\"").value.as_deref(),
        Some("\"dynamic(cpu=0)\"")
    );
    assert_eq!(
        error_of("[\"sample 2\", \"least rfi\"]").value.as_deref(),
        Some("\"least rfi\"")
    );
}

#[test]
fn a_stage_on_its_own_line_is_reported_there() {
    let text = format!(
        "{HEAD}policy = [\n    \"fresh 20s\",\n    \"sampel 2\",\n    \"least rif\",\n]\n{MEMBERS}"
    );
    let errors = parse_str(&text, Path::new("t.toml")).unwrap_err().0;
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(
        (errors[0].line, errors[0].key.as_str()),
        (7, "farm.f.policy[1]")
    );
}

#[test]
fn hash_keys_need_hash_even_beside_a_pipeline() {
    let text =
        format!("{HEAD}policy = [\"sample 2\", \"least rif\"]\nhash_key = \"source\"\n{MEMBERS}");
    let errors = parse_str(&text, Path::new("t.toml")).unwrap_err().0;
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].key, "farm.f.hash_key");
    assert!(
        errors[0].message.contains("[\"sample 2\", \"least rif\"]"),
        "{}",
        errors[0]
    );
}
