//! The reject reasons quoted in docs/reports.md, exactly: they reach logs and 4xx bodies, so a
//! change to one is a change to a documented interface.

use drover_core::report::{agent_check, orca, push};
use std::time::Duration;

fn e<T: std::fmt::Debug>(r: Result<T, drover_core::Reject>) -> String {
    r.unwrap_err().to_string()
}

#[test]
fn documented_reasons() {
    let cases = [
        (
            e(agent_check::parse("raedy", "m1", 1)),
            "agent-check reply: unknown word \"raedy\" (expected NN%, ready, drain, maint, up, down, stopped, fail, maxconn:N, # reason)",
        ),
        (
            e(agent_check::parse("25601%", "m1", 1)),
            "agent-check reply: weight 25601% is out of range (0% to 25600%)",
        ),
        (
            e(orca::parse(b"BIN CgkJ", "m1", 1)),
            "ORCA header: BIN (base64 protobuf) form is not supported; send TEXT or JSON",
        ),
        (
            e(orca::parse(
                b"TEXT cpu_utilization=0.1, named_metrics.cpu=0.2",
                "m1",
                1,
            )),
            "ORCA header: duplicate metric \"cpu\"",
        ),
        (
            e(push::parse_json(
                br#"{"member": "m1", "metrics": {"cpu": 1.5}}"#,
                1,
            )),
            "push body: metric \"cpu\" = 1.5 is out of range (0..=1)",
        ),
        (
            e(push::parse_json(br#"{"member": "m1", "cpu": 1}"#, 1)),
            "push body: unknown field `cpu`, expected one of `member`, `metrics`, `state`, `weight`, `maxconn`, `reason` at line 1 column 22",
        ),
        (
            e(push::parse_json(
                br#"{"reports": [{"member": "m1"}, {"member": "m2", "state": "up!"}]}"#,
                1,
            )),
            "push body: report 1: unknown state \"up!\" (expected ready, drain, maint, up, down, stopped, fail)",
        ),
        (
            e(push::parse_query("member=m1&cpu=abc", 1)),
            "push query: value of \"cpu\" is not a number: \"abc\"",
        ),
    ];
    for (got, want) in cases {
        assert_eq!(got, want);
    }
    let guard = push::ReplayGuard::default();
    let window = Duration::from_secs(300);
    let now = 1_763_790_000;
    let stale = push::verify(
        b"s3cret",
        "1763789000",
        "sha256=00",
        b"",
        now,
        window,
        &guard,
    );
    assert_eq!(
        stale.unwrap_err().to_string(),
        "signature: stale timestamp 1763789000: 1000s from now, outside the 300s window"
    );
    let sig = push::sign(b"s3cret", "1763790000", b"{}");
    push::verify(b"s3cret", "1763790000", &sig, b"{}", now, window, &guard).unwrap();
    let replay = push::verify(b"s3cret", "1763790000", &sig, b"{}", now, window, &guard);
    assert_eq!(
        replay.unwrap_err().to_string(),
        "signature: replay: this signed push was already accepted"
    );
}

#[test]
fn the_documented_openssl_recipe_signs_the_same() {
    // docs/reports.md: printf '%s\n%s' "$ts" "$body" | openssl dgst -sha256 -hmac s3cret
    // gives this for ts=1763790000 and body={"member":"m1","metrics":{"cpu":0.42}}.
    let sig = push::sign(
        b"s3cret",
        "1763790000",
        br#"{"member":"m1","metrics":{"cpu":0.42}}"#,
    );
    assert_eq!(sig, format!("sha256={}", OPENSSL));
}

const OPENSSL: &str = "e4d6bef6f77d23cc3469d7c8a843a5cc57261f81538f39af0a046a3d563119b5";
