use super::*;

fn metrics(value: &str) -> Vec<(String, f64)> {
    let r = parse(value.as_bytes(), "m1", 9).unwrap_or_else(|e| panic!("{value:?}: {e}"));
    assert_eq!(
        (r.member.as_str(), r.received, r.source),
        ("m1", 9, Source::Orca)
    );
    assert!(r.admin.is_none() && r.health.is_none() && r.weight_pct.is_none());
    r.metrics.iter().map(|(n, v)| (n.to_owned(), v)).collect()
}

fn m(pairs: &[(&str, f64)]) -> Vec<(String, f64)> {
    pairs.iter().map(|&(n, v)| (n.to_owned(), v)).collect()
}

#[test]
fn accepted_forms() {
    let table: &[(&str, &[(&str, f64)])] = &[
        (
            "TEXT cpu_utilization=0.3, mem_utilization=0.5, rps_fractional=10, eps=0.1, named_metrics.foo=2",
            &[
                ("cpu", 0.3),
                ("mem", 0.5),
                ("rps", 10.0),
                ("eps", 0.1),
                ("foo", 2.0),
            ],
        ),
        ("TEXT cpu_utilization=0.3", &[("cpu", 0.3)]),
        (
            "  TEXT cpu_utilization = 0.3 ,named_metrics.q=1e2,  ",
            &[("cpu", 0.3), ("q", 100.0)],
        ),
        (
            "TEXT application_utilization=1.7, request_cost.db=3, utilization.gpu=0.25",
            &[
                ("application_utilization", 1.7),
                ("request_cost.db", 3.0),
                ("utilization.gpu", 0.25),
            ],
        ),
        ("TEXT cpu_utilization=1.4", &[("cpu", 1.0)]),
        ("TEXT named_metrics.delta=-2", &[("delta", -2.0)]),
        (
            "cpu_utilization:0.3, mem_utilization:0.5",
            &[("cpu", 0.3), ("mem", 0.5)],
        ),
        ("named_metrics.foo:2", &[("foo", 2.0)]),
        (
            r#"JSON {"cpu_utilization": 0.3, "named_metrics": {"foo": 2}}"#,
            &[("cpu", 0.3), ("foo", 2.0)],
        ),
        (
            r#"JSON {"cpuUtilization": 0.3, "memUtilization": 0.1, "rpsFractional": 4, "namedMetrics": {"x": 1}, "requestCost": {"db": 2}, "utilization": {"gpu": 0.5}}"#,
            &[
                ("cpu", 0.3),
                ("mem", 0.1),
                ("rps", 4.0),
                ("x", 1.0),
                ("request_cost.db", 2.0),
                ("utilization.gpu", 0.5),
            ],
        ),
    ];
    for &(value, want) in table {
        let (mut got, mut want) = (metrics(value), m(want));
        if value.starts_with("JSON") {
            // JSON objects are read in key order, not in the order sent.
            got.sort_by(|a, b| a.0.cmp(&b.0));
            want.sort_by(|a, b| a.0.cmp(&b.0));
        }
        assert_eq!(got, want, "{value:?}");
    }
}

#[test]
fn malformed_values() {
    let long = format!("TEXT named_metrics.a={}", "1".repeat(5000));
    let many: String = (0..40).map(|i| format!("named_metrics.m{i}=1,")).collect();
    let many = format!("TEXT {many}");
    let table: &[(&[u8], &str)] = &[
        (b"", "no metrics"),
        (b"TEXT ", "no metrics"),
        (b"JSON {}", "no metrics"),
        (b"garbage", "bad entry \"garbage\" (expected name:value"),
        (b"TEXT cpu_utilization", "expected name=value"),
        (b"TEXT cpu_utilization=abc", "not a number"),
        (b"TEXT cpu_utilization=", "not a number"),
        (b"TEXT cpu_utilization=NaN", "not a finite number"),
        (b"TEXT eps=inf", "not a finite number"),
        (b"TEXT cpu_utilization=-0.1", "out of range"),
        (b"TEXT mem_utilization=1.5", "out of range"),
        (b"TEXT rps_fractional=-1", "out of range"),
        (b"TEXT bogus=1", "unknown ORCA metric \"bogus\""),
        (b"TEXT named_metrics.Foo=1", "bad metric name"),
        (b"TEXT named_metrics.=1", "bad metric name"),
        (
            b"TEXT cpu_utilization=0.1, cpu_utilization=0.2",
            "duplicate metric \"cpu\"",
        ),
        (
            b"TEXT cpu_utilization=0.1, named_metrics.cpu=0.2",
            "duplicate metric \"cpu\"",
        ),
        (
            b"BIN CgkJMzMzMzMz0z8=",
            "BIN (base64 protobuf) form is not supported",
        ),
        (b"JSON {\"cpu_utilization\": ", "bad JSON"),
        (b"JSON [1]", "must be an object"),
        (b"JSON {\"cpu_utilization\": \"0.3\"}", "not a number"),
        (
            b"JSON {\"named_metrics\": 3}",
            "must be an object of numbers",
        ),
        (b"JSON {\"color\": 1}", "unknown ORCA metric"),
        (b"JSON {\"cpu_utilization\": 2e400}", "bad JSON"),
        (b"TEXT cpu_utilization=0.3\xff", "not UTF-8"),
        (long.as_bytes(), "value too long"),
        (many.as_bytes(), "too many metrics"),
    ];
    for &(value, want) in table {
        let e = parse(value, "m1", 1).expect_err(&String::from_utf8_lossy(value));
        let text = e.to_string();
        assert!(text.starts_with("ORCA header: "), "{text}");
        assert!(
            text.contains(want),
            "{:?}: {text:?} lacks {want:?}",
            String::from_utf8_lossy(value)
        );
    }
}
