use super::*;
use crate::report::AgentState::*;

#[test]
fn json_accepted() {
    let one = br#"{"member": "m1", "metrics": {"cpu": 0.42, "load1": 1.5}, "state": "drain", "weight": 75, "reason": "deploy"}"#;
    let r = parse_json(one, 5).unwrap();
    assert_eq!(r.len(), 1);
    let r = &r[0];
    assert_eq!(
        (r.member.as_str(), r.received, r.source),
        ("m1", 5, Source::Push)
    );
    let metrics: Vec<_> = r.metrics.iter().collect();
    assert_eq!(metrics, [("cpu", 0.42), ("load1", 1.5)]);
    assert_eq!(
        (r.admin, r.health, r.weight_pct, r.reason.as_deref()),
        (Some(Drain), None, Some(75), Some("deploy"))
    );

    let many = br#"{"reports": [
        {"member": "m1", "metrics": {"zeta": 1, "cpu": 0.1}},
        {"member": "m2", "state": "DOWN", "maxconn": 10},
        {"member": "10.0.0.3:8080"}
    ]}"#;
    let r = parse_json(many, 5).unwrap();
    assert_eq!(r.len(), 3);
    assert_eq!(
        r[0].metrics.iter().collect::<Vec<_>>(),
        [("zeta", 1.0), ("cpu", 0.1)],
        "order sent"
    );
    assert_eq!((r[1].health, r[1].maxconn), (Some(Down), Some(10)));
    assert!(r[2].is_empty(), "a heartbeat");
}

#[test]
fn json_rejected() {
    let long_reason = format!(r#"{{"member": "m1", "reason": "{}"}}"#, "x".repeat(300));
    let many: String = (0..1001)
        .map(|i| format!(r#"{{"member":"m{i}"}}"#))
        .collect::<Vec<_>>()
        .join(",");
    let many = format!(r#"{{"reports": [{many}]}}"#);
    let table: &[(&[u8], &str)] = &[
        (b"", "empty body"),
        (b"   ", "empty body"),
        (b"garbage", "bad JSON"),
        (b"[1, 2]", "bad JSON"),
        (b"{\"member\": \"m1\"", "bad JSON"),
        (b"\xff", "not UTF-8"),
        (br#"{"member": "m1", "cpu": 0.5}"#, "unknown field `cpu`"),
        (br#"{"metrics": {"cpu": 0.5}}"#, "missing field `member`"),
        (
            br#"{"member": "m1", "member": "m2"}"#,
            "duplicate field `member`",
        ),
        (br#"{"member": ""}"#, "empty member name"),
        (br#"{"member": "a b"}"#, "bad member name"),
        (
            br#"{"member": "m1", "metrics": {"cpu": 1.5}}"#,
            "metric \"cpu\" = 1.5 is out of range (0..=1)",
        ),
        (
            br#"{"member": "m1", "metrics": {"cpu": -0.1}}"#,
            "out of range",
        ),
        (
            br#"{"member": "m1", "metrics": {"cpu": "0.5"}}"#,
            "invalid type: string",
        ),
        (
            br#"{"member": "m1", "metrics": {"cpu": 1e400}}"#,
            "out of range",
        ),
        (
            br#"{"member": "m1", "metrics": {"Cpu": 0.5}}"#,
            "bad metric name",
        ),
        (
            br#"{"member": "m1", "metrics": {"cpu": 0.5, "cpu": 0.6}}"#,
            "duplicate metric \"cpu\"",
        ),
        (
            br#"{"member": "m1", "metrics": [1]}"#,
            "an object of metric names to numbers",
        ),
        (
            br#"{"member": "m1", "state": "raedy"}"#,
            "unknown state \"raedy\" (expected ready, drain",
        ),
        (
            br#"{"member": "m1", "weight": 25601}"#,
            "weight 25601 is out of range",
        ),
        (br#"{"member": "m1", "weight": -1}"#, "invalid value"),
        (br#"{"member": "m1", "maxconn": 1.5}"#, "invalid type"),
        (long_reason.as_bytes(), "reason too long"),
        (br#"{"reports": []}"#, "`reports` is empty"),
        (br#"{"reports": {}}"#, "must be an array"),
        (
            br#"{"reports": [{"member": "m1"}], "reports": []}"#,
            "duplicate field `reports`",
        ),
        (
            br#"{"reports": [], "member": "m1"}"#,
            "unknown field `member` next to `reports`",
        ),
        (
            br#"{"reports": [{"member": "m1"}, {"member": "m2", "state": "up!"}]}"#,
            "report 1: unknown state",
        ),
        (
            br#"{"reports": [{"member": "m1"}, {"member": "m2", "x": 1}]}"#,
            "report 1: unknown field `x`",
        ),
        (
            br#"{"reports": [{"member": "m1"}, {"member": "m1"}]}"#,
            "report 1: member \"m1\" already in report 0",
        ),
        (
            br#"{"reports": [{"member": "m1", "metrics": {"cpu": 7}}]}"#,
            "report 0: metric \"cpu\"",
        ),
        (many.as_bytes(), "too many reports"),
        (br#"{"member": "m1", "a\nb": 1}"#, "unknown field `a\\nb`"),
    ];
    for &(body, want) in table {
        let e = parse_json(body, 1).expect_err(&String::from_utf8_lossy(body));
        let text = e.to_string();
        assert!(text.starts_with("push body: "), "{text}");
        assert!(
            text.contains(want),
            "{:?}: {text:?} lacks {want:?}",
            String::from_utf8_lossy(body)
        );
        assert!(!text.contains('\n'), "{text:?}");
    }
    let huge_key = format!(r#"{{"member": "m1", "{}": 1}}"#, "k".repeat(100_000));
    let text = parse_json(huge_key.as_bytes(), 1).unwrap_err().to_string();
    assert!(
        text.len() < 300 && text.contains("unknown field `kkkk"),
        "{text}"
    );
    let big = vec![b' '; MAX_BODY + 1];
    assert_eq!(parse_json(&big, 1).unwrap_err().kind, RejectKind::TooLarge);
}

#[test]
fn query_accepted() {
    let r = parse_query("member=m1&cpu=0.42&load1=1.5&state=up", 3).unwrap();
    assert_eq!(
        (r.member.as_str(), r.received, r.source, r.health),
        ("m1", 3, Source::Push, Some(Up))
    );
    assert_eq!(
        r.metrics.iter().collect::<Vec<_>>(),
        [("cpu", 0.42), ("load1", 1.5)]
    );
    let r = parse_query(
        "?member=10.0.0.1%3A8080&state=drain&weight=50&maxconn=7&reason=disk+full%21&&db.conns=12",
        3,
    )
    .unwrap();
    assert_eq!(r.member, "10.0.0.1:8080");
    assert_eq!(
        (r.admin, r.weight_pct, r.maxconn, r.reason.as_deref()),
        (Some(Drain), Some(50), Some(7), Some("disk full!"))
    );
    assert_eq!(r.metrics.get("db.conns"), Some(12.0));
    assert!(parse_query("member=m1", 3).unwrap().is_empty());
}

#[test]
fn query_rejected() {
    let long = format!("member=m1&x={}", "1".repeat(MAX_QUERY));
    let table: &[(&str, &str)] = &[
        ("", "missing `member`"),
        ("cpu=0.5", "missing `member`"),
        ("garbage", "bad pair \"garbage\""),
        ("member=m1&cpu", "bad pair"),
        ("member=m1&cpu=abc", "not a number"),
        ("member=m1&cpu=NaN", "not a finite number"),
        ("member=m1&rps=inf", "not a finite number"),
        ("member=m1&cpu=1.5", "out of range"),
        ("member=m1&queue=-1", "out of range"),
        ("member=m1&cpu=0.1&cpu=0.2", "duplicate metric \"cpu\""),
        ("member=m1&member=m2", "`member` given twice"),
        ("member=m1&Cpu=0.1", "bad metric name"),
        ("member=m1&state=raedy", "unknown state"),
        ("member=m1&weight=75%25", "not a whole number"),
        ("member=m1&weight=30000", "out of range"),
        ("member=m1&maxconn=-1", "not a whole number"),
        ("member=a%2Fb", "bad member name"),
        ("member=m1&reason=%0a", "control characters"),
        ("member=m%zz", "bad percent escape"),
        ("member=m%2", "bad percent escape"),
        ("member=m%+1", "bad percent escape"),
        ("member=m%ff", "does not decode to UTF-8"),
        (&long, "query too long"),
    ];
    for &(query, want) in table {
        let e = parse_query(query, 1).expect_err(query);
        let text = e.to_string();
        assert!(text.starts_with("push query: "), "{text}");
        assert!(text.contains(want), "{query:?}: {text:?} lacks {want:?}");
    }
}
