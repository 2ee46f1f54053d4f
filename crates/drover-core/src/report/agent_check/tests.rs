use super::*;
use crate::report::AgentState::*;

fn ok(line: &str) -> LoadReport {
    parse(line, "m1", 7).unwrap_or_else(|e| panic!("{line:?}: {e}"))
}

#[test]
fn real_world_lines() {
    type Row = (
        &'static str,
        Option<AgentState>,
        Option<AgentState>,
        Option<u32>,
        Option<u32>,
        Option<&'static str>,
    );
    let table: &[Row] = &[
        ("75%", None, None, Some(75), None, None),
        ("75%\n", None, None, Some(75), None, None),
        ("75%\r\n", None, None, Some(75), None, None),
        ("up 75%", None, Some(Up), Some(75), None, None),
        ("UP 99%", None, Some(Up), Some(99), None, None),
        ("drain", Some(Drain), None, None, None, None),
        ("DRAIN 99%", Some(Drain), None, Some(99), None, None),
        (
            "down # disk full",
            None,
            Some(Down),
            None,
            None,
            Some("disk full"),
        ),
        ("maint", Some(Maint), None, None, None, None),
        ("ready,50%", Some(Ready), None, Some(50), None, None),
        (
            "stopped#shutting down",
            None,
            Some(Stopped),
            None,
            None,
            Some("shutting down"),
        ),
        ("maxconn:30 80%", None, None, Some(80), Some(30), None),
        ("MaxConn:0", None, None, None, Some(0), None),
        (
            "fail\t#\tcheck script exited 2",
            None,
            Some(Fail),
            None,
            None,
            Some("check script exited 2"),
        ),
        (
            "ready up 100%",
            Some(Ready),
            Some(Up),
            Some(100),
            None,
            None,
        ),
        ("  , up ,, 0% ", None, Some(Up), Some(0), None, None),
        ("150%", None, None, Some(150), None, None),
        ("25600%", None, None, Some(25600), None, None),
        // Within a kind the last word wins, as in HAProxy; the two kinds are independent.
        ("up down", None, Some(Down), None, None, None),
        ("drain ready up", Some(Ready), Some(Up), None, None, None),
        ("50% 60%", None, None, Some(60), None, None),
        ("down #", None, Some(Down), None, None, None),
        (
            "up\nthis second line is not read",
            None,
            Some(Up),
            None,
            None,
            None,
        ),
    ];
    for &(line, admin, health, weight, maxconn, reason) in table {
        let r = ok(line);
        assert_eq!(
            (
                r.admin,
                r.health,
                r.weight_pct,
                r.maxconn,
                r.reason.as_deref()
            ),
            (admin, health, weight, maxconn, reason),
            "{line:?}"
        );
        assert_eq!(
            (r.member.as_str(), r.received, r.source),
            ("m1", 7, Source::AgentCheck)
        );
        assert!(r.metrics.is_empty());
    }
}

#[test]
fn malformed_lines() {
    let long_reason = format!("down # {}", "x".repeat(300));
    let long_line = format!("up {}", " ".repeat(2000));
    let table: &[(&str, &str)] = &[
        ("", "empty reply"),
        ("\r\n", "empty reply"),
        (" , \t", "empty reply"),
        ("# just a reason", "no word before the reason"),
        (
            "raedy",
            "unknown word \"raedy\" (expected NN%, ready, drain",
        ),
        ("up 75% garbage", "unknown word \"garbage\""),
        ("75.5%", "bad weight \"75.5%\""),
        ("-5%", "bad weight"),
        ("%", "bad weight"),
        ("abc%", "bad weight"),
        ("25601%", "out of range (0% to 25600%)"),
        ("99999999999999999999999%", "out of range"),
        ("maxconn:", "unknown word"),
        ("maxconn:x", "bad maxconn"),
        ("maxconn:-1", "bad maxconn"),
        ("maxconn:4294967296", "maxconn 4294967296 is out of range"),
        ("upp", "unknown word"),
        ("up\u{0}", "unknown word"),
        (&long_reason, "reason too long"),
        ("down # bell\u{7}", "control characters"),
        (&long_line, "line too long"),
    ];
    for &(line, want) in table {
        let e = parse(line, "m1", 7).expect_err(line);
        let text = e.to_string();
        assert!(text.starts_with("agent-check reply: "), "{text}");
        assert!(text.contains(want), "{line:?}: {text:?} lacks {want:?}");
        assert!(!text.contains('\n'), "{text:?}");
    }
}

#[test]
fn reject_kinds() {
    assert_eq!(
        parse("raedy", "m", 1).unwrap_err().kind,
        RejectKind::Malformed
    );
    assert_eq!(
        parse("300000%", "m", 1).unwrap_err().kind,
        RejectKind::Invalid
    );
}
