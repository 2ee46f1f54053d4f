//! The exposition for a small routing snapshot: exact lines for the series a scrape must carry,
//! the histogram's cumulative buckets, and families that are absent until there is something to
//! show. (The end-to-end test, crates/drover/tests/metrics.rs, parses a real scrape.)

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use drover_core::{Flag, LoadReport, Source, clock};
use drover_proxy::state::Routing;

use super::{render, render_with};
use crate::Intake;

const CONFIG: &str = r#"
[[listener]]
listen = "127.0.0.1:1"
farm = "app"

[farm.app]
policy = "round-robin"
members = [
  { name = "m1", address = "127.0.0.1:2", weight = 3 },
  { name = "m2", address = "127.0.0.1:3", route = "n2" },
]

[farm.app.sticky]
mode = "learn"
cookie = "SID"

[farm.plain]
policy = "least-conn"
members = [{ name = "p1", address = "127.0.0.1:4" }]
"#;

fn routing() -> Arc<Routing> {
    let config = drover_config::parse_str(CONFIG, Path::new("metrics-test.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    Arc::new(Routing::build(&config, 1))
}

fn intake() -> Intake {
    Intake::new(&drover_config::Reports::default())
}

fn has(text: &str, line: &str) {
    assert!(
        text.lines().any(|l| l == line),
        "no line {line:?} in:\n{text}"
    );
}

#[test]
fn series_carry_the_live_values() {
    let r = routing();
    let app = r.farm("app").unwrap();
    app.counters.requests.fetch_add(4, Relaxed);
    app.counters.attempts.fetch_add(5, Relaxed);
    app.counters.sticky_moved.fetch_add(2, Relaxed);
    let m1 = &app.farm.members[0];
    for ms in [2, 7, 30, 20_000] {
        m1.stats.start();
        m1.stats.finish(ms != 20_000, Some(ms * 1_000_000));
    }
    m1.stats.start(); // one still in flight
    m1.stats.add_bytes(10, 300);
    m1.flip(Flag::Draining, true, || "test".into(), clock::now());
    let intake = intake();
    intake.accepted.fetch_add(1, Relaxed);

    let text = render(Arc::clone(&r), &intake).unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    for line in [
        "# TYPE drover_farm_requests counter",
        r#"drover_farm_requests_total{farm="app"} 4"#,
        r#"drover_farm_attempts_total{farm="app"} 5"#,
        r#"drover_farm_requests_total{farm="plain"} 0"#,
        r#"drover_farm_info{policy="round-robin",sticky="learn",nofailover="false",farm="app"} 1"#,
        r#"drover_farm_sticky_requests_total{farm="app",outcome="moved"} 2"#,
        r#"drover_farm_sticky_requests_total{farm="app",outcome="hit"} 0"#,
        r#"drover_farm_sticky_sessions{farm="app"} 0"#,
        r#"drover_member_info{address="127.0.0.1:3",route="n2",farm="app",member="m2"} 1"#,
        r#"drover_member_requests_total{farm="app",member="m1"} 5"#,
        r#"drover_member_failures_total{farm="app",member="m1"} 1"#,
        r#"drover_member_in_flight{farm="app",member="m1"} 1"#,
        r#"drover_member_request_body_bytes_total{farm="app",member="m1"} 10"#,
        r#"drover_member_response_body_bytes_total{farm="app",member="m1"} 300"#,
        "# TYPE drover_member_latency_seconds histogram",
        "# UNIT drover_member_latency_seconds seconds",
        r#"drover_member_latency_seconds_count{farm="app",member="m1"} 4"#,
        r#"drover_member_latency_seconds_sum{farm="app",member="m1"} 20.039"#,
        r#"drover_member_latency_seconds_bucket{le="0.001",farm="app",member="m1"} 0"#,
        r#"drover_member_latency_seconds_bucket{le="0.0025",farm="app",member="m1"} 1"#,
        r#"drover_member_latency_seconds_bucket{le="0.01",farm="app",member="m1"} 2"#,
        r#"drover_member_latency_seconds_bucket{le="10.0",farm="app",member="m1"} 3"#,
        r#"drover_member_latency_seconds_bucket{le="+Inf",farm="app",member="m1"} 4"#,
        r#"drover_member_latency_seconds_count{farm="plain",member="p1"} 0"#,
        r#"drover_member_weight{farm="app",member="m1"} 3"#,
        r#"drover_member_agent_weight_ratio{farm="app",member="m1"} 1.0"#,
        r#"drover_member_flag{farm="app",member="m1",flag="draining"} 1"#,
        r#"drover_member_flag{farm="app",member="m1",flag="ready"} 1"#,
        r#"drover_member_flag{farm="app",member="m2",flag="draining"} 0"#,
        r#"drover_member_health_flips_total{farm="app",member="m1",flag="draining"} 1"#,
        r#"drover_member_health_flips_total{farm="app",member="m1",flag="up"} 0"#,
        "drover_reports_accepted_total 1",
        r#"drover_reports_rejected_total{reason="replay"} 0"#,
        r#"drover_reports_rejected_total{reason="disabled"} 0"#,
    ] {
        has(&text, line);
    }
    // Help texts are written as they are: OpenMetrics wants `"` and `\` escaped there.
    for help in text.lines().filter(|l| l.starts_with("# HELP ")) {
        assert!(!help.contains(['"', '\\']), "{help}");
    }
    // Only the sticky farm has sticky series; `expect` is unset, so no expect gauge.
    assert!(!text.contains(r#"drover_farm_sticky_learned_total{farm="plain"}"#));
    assert!(!text.contains("drover_farm_report_expect_seconds{"));
}

#[test]
fn report_series_appear_with_the_first_report() {
    let r = routing();
    let text = render(Arc::clone(&r), &intake()).unwrap();
    assert!(
        !text.contains("drover_member_report_age_seconds{"),
        "{text}"
    );
    assert!(!text.contains("drover_member_last_transition_age_seconds{"));

    let plain = &r.farm("plain").unwrap().farm;
    let now = clock::now();
    let mut report = LoadReport::new("p1", Source::Push, now);
    report.metrics.insert("cpu", 0.25).unwrap();
    report.maxconn = Some(40);
    plain.apply_report(0, &report, now);
    plain.members[0].flip(Flag::Up, false, || "check failed".into(), now);

    let text = render(r, &intake()).unwrap();
    has(
        &text,
        r#"drover_member_report_metric{farm="plain",member="p1",metric="cpu"} 0.25"#,
    );
    has(
        &text,
        r#"drover_member_report_maxconn{farm="plain",member="p1"} 40"#,
    );
    assert!(
        text.contains(
            r#"drover_member_report_age_seconds{farm="plain",member="p1",source="push"} "#
        ),
        "{text}"
    );
    assert!(
        text.contains(
            r#"drover_member_last_transition_age_seconds{farm="plain",member="p1",state="down"} "#
        ),
        "{text}"
    );
    has(
        &text,
        r#"drover_member_flag{farm="plain",member="p1",flag="up"} 0"#,
    );
}

#[test]
fn docs_list_every_metric() {
    let docs = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/metrics.md"
    ))
    .expect("docs/metrics.md");
    // A node in a cluster: the gossip's families too.
    let peers = crate::PeerCounters {
        alive: 2,
        applied: vec![("op", 1)],
        published: vec![("op", 1)],
        ..Default::default()
    };
    let text = render_with(routing(), &intake(), Some(peers)).unwrap();
    assert!(
        text.contains(r#"drover_gossip_peers{state="alive"} 2"#),
        "{text}"
    );
    let mut families = 0;
    for line in text.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let (name, kind) = line.split_once(' ').unwrap();
        // The docs name what a query uses: the sample name of counters and infos.
        let shown = match kind {
            "counter" => format!("`{name}_total`"),
            "info" => format!("`{name}_info`"),
            _ => format!("`{name}`"),
        };
        assert!(docs.contains(&shown), "docs/metrics.md lacks {shown}");
        families += 1;
    }
    assert!(families >= 30, "{families} families");
}
