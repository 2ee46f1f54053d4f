//! Broken health, ejection and retry keys: each problem is one error on its line, naming the key
//! and the value as written, and saying what would be valid.

use std::path::Path;

use drover_config::{ConfigError, parse_str};

/// Lines 1 to 5; the farm's body starts on line 6.
const HEAD: &str = "[[listener]]\nlisten = \"127.0.0.1:80\"\nfarm = \"f\"\n[farm.f]\nmembers = [{ address = \"127.0.0.1:9001\" }]\n";

fn errors_of(text: &str) -> Vec<ConfigError> {
    parse_str(text, Path::new("t.toml"))
        .expect_err("should not validate")
        .0
}

/// Lines 1 to 7: a farm with one member; the member to test follows, from line 8.
const MEMBERS: &str = "[[listener]]\nlisten = \"127.0.0.1:80\"\nfarm = \"f\"\n[farm.f]\n[[farm.f.members]]\naddress = \"127.0.0.1:9001\"\n[[farm.f.members]]\n";

/// The one error of `HEAD` + `body`.
fn one_error(body: &str) -> ConfigError {
    one_error_of(&format!("{HEAD}{body}"))
}

fn one_error_of(text: &str) -> ConfigError {
    let mut errors = errors_of(text);
    assert_eq!(errors.len(), 1, "{text}\n{errors:#?}");
    errors.remove(0)
}

/// `HEAD` + `body` gives exactly one error, shown as `t.toml:<line>: <key> = <value>: ...` (or
/// without ` = <value>` when `value` is empty), whose message contains `says`.
#[track_caller]
fn fails(body: &str, line: usize, key: &str, value: &str, says: &str) {
    shown_as(&one_error(body), line, key, value, says);
}

/// As [`fails`], for `MEMBERS` + `member` (the second member's keys, then more tables).
#[track_caller]
fn member_fails(member: &str, line: usize, key: &str, value: &str, says: &str) {
    let e = one_error_of(&format!("{MEMBERS}{member}"));
    shown_as(&e, line, key, value, says);
}

#[track_caller]
fn shown_as(e: &ConfigError, line: usize, key: &str, value: &str, says: &str) {
    let shown = e.to_string();
    let prefix = if value.is_empty() {
        format!("t.toml:{line}: {key}: ")
    } else {
        format!("t.toml:{line}: {key} = {value}: ")
    };
    assert!(
        shown.starts_with(&prefix),
        "expected {prefix:?}...\n got {shown}"
    );
    assert!(shown.contains(says), "expected {says:?} in\n{shown}");
    assert!(!shown.contains('\n'), "{shown}");
}

#[test]
fn bad_percentages() {
    fails(
        "retry_budget = \"20\"\n",
        6,
        "farm.f.retry_budget",
        "\"20\"",
        "invalid percentage: missing '%'; expected a percentage like \"20%\"",
    );
    fails(
        "panic_threshold = \"150%\"\n",
        6,
        "farm.f.panic_threshold",
        "\"150%\"",
        "out of range; expected a percentage from 0% to 100%",
    );
    fails(
        "panic_threshold = 0.5\n",
        6,
        "farm.f.panic_threshold",
        "0.5",
        "expected a percentage from 0% to 100%, e.g. \"20%\", found a float",
    );
    fails(
        "[farm.f.check]\njitter = \"60%\"\n",
        7,
        "farm.f.check.jitter",
        "\"60%\"",
        "expected a percentage from 0% to 50%",
    );
    fails(
        "[farm.f.passive]\nmax_ejected = \"-1%\"\n",
        7,
        "farm.f.passive.max_ejected",
        "\"-1%\"",
        "bad number \"-1\"",
    );
}

#[test]
fn unknown_retry_on_words() {
    fails(
        "retry_on = [\"connect\", \"conect\"]\n",
        6,
        "farm.f.retry_on[1]",
        "\"conect\"",
        "unknown failure; expected connect, reset, timeout, 5xx or a status from 500 to 599 \
         such as \"503\" (did you mean \"connect\"?)",
    );
    fails(
        "retry_on = [\"404\"]\n",
        6,
        "farm.f.retry_on[0]",
        "\"404\"",
        "only server errors (500 to 599) can be retried",
    );
    fails(
        "retry_on = \"5xx\"\n",
        6,
        "farm.f.retry_on",
        "\"5xx\"",
        "expected an array of failures such as [\"connect\", \"reset\", \"timeout\", \"503\"]",
    );
    fails(
        "[farm.f.passive]\ncount = [\"4xx\"]\n",
        7,
        "farm.f.passive.count[0]",
        "\"4xx\"",
        "unknown failure",
    );
    fails(
        "[farm.f.passive]\ncount = []\n",
        7,
        "farm.f.passive.count",
        "[]",
        "an empty list counts no failure",
    );
    fails(
        "retry_budget_floor = -1\n",
        6,
        "farm.f.retry_budget_floor",
        "-1",
        "out of range",
    );
}

#[test]
fn timeout_longer_than_interval() {
    fails(
        "[farm.f.check]\ntimeout = \"3s\"\n",
        7,
        "farm.f.check.timeout",
        "\"3s\"",
        "longer than interval (2s, the default); a check must end before the next one is due",
    );
    fails(
        "[farm.f.check]\ninterval = \"500ms\"\n",
        7,
        "farm.f.check.interval",
        "\"500ms\"",
        "shorter than timeout (1s, the default)",
    );
    fails(
        "[farm.f.check]\ninterval = \"10s\"\ndown_interval = \"500ms\"\n",
        8,
        "farm.f.check.down_interval",
        "\"500ms\"",
        "make down_interval at least 1s",
    );
    // A member's override clashing with the farm's value: reported at the member's key.
    member_fails(
        "address = \"127.0.0.1:9002\"\ncheck = { timeout = \"5s\" }\n[farm.f.check]\ninterval = \"4s\"\n",
        9,
        "farm.f.members[1].check.timeout",
        "\"5s\"",
        "longer than interval (4s, from farm.f.check.interval)",
    );
    // A member inheriting the farm's clash: one error, at the farm.
    member_fails(
        "address = \"127.0.0.1:9002\"\ncheck = { path = \"/x\" }\n[farm.f.check]\ntimeout = \"5s\"\n",
        11,
        "farm.f.check.timeout",
        "\"5s\"",
        "longer than interval",
    );
}

#[test]
fn http_keys_on_a_tcp_check() {
    fails(
        "[farm.f.check]\ntype = \"tcp\"\npath = \"/health\"\n",
        8,
        "farm.f.check.path",
        "\"/health\"",
        "only for type = \"http\"; this check is type = \"tcp\"",
    );
    member_fails(
        "address = \"127.0.0.1:9002\"\ncheck = { expect_status = 204 }\n[farm.f.check]\ntype = \"tcp\"\n",
        9,
        "farm.f.members[1].check.expect_status",
        "204",
        "only for type = \"http\"; this check is type = \"tcp\" (from farm.f.check.type)",
    );
    fails(
        "[farm.f.check]\ntype = \"tcp\"\nreuse_connection = false\n",
        8,
        "farm.f.check.reuse_connection",
        "false",
        "only for type = \"http\"; this check is type = \"tcp\"",
    );
    member_fails(
        "address = \"127.0.0.1:9002\"\ncheck = { reuse_connection = true }\n[farm.f.check]\ntype = \"tcp\"\n",
        9,
        "farm.f.members[1].check.reuse_connection",
        "true",
        "only for type = \"http\"; this check is type = \"tcp\" (from farm.f.check.type)",
    );
    fails(
        "[farm.f.check]\nreuse_connection = \"yes\"\n",
        7,
        "farm.f.check.reuse_connection",
        "\"yes\"",
        "expected true or false, found a string",
    );
    fails(
        "[farm.f.check]\ntype = \"htp\"\n",
        7,
        "farm.f.check.type",
        "\"htp\"",
        "unknown check type; expected \"http\" or \"tcp\" (did you mean \"http\"?)",
    );
}

#[test]
fn rise_fall_and_counts_are_at_least_one() {
    fails(
        "[farm.f.check]\nrise = 0\n",
        7,
        "farm.f.check.rise",
        "0",
        "out of range; expected an integer from 1 to 1000",
    );
    fails(
        "[farm.f.check]\nfall = 0\n",
        7,
        "farm.f.check.fall",
        "0",
        "expected an integer from 1 to 1000",
    );
    fails(
        "[farm.f.check]\ninterval = \"0s\"\n",
        7,
        "farm.f.check.interval",
        "\"0s\"",
        "must be more than 0s",
    );
    fails(
        "[farm.f.passive]\noutlier_min_requests = 0\n",
        7,
        "farm.f.passive.outlier_min_requests",
        "0",
        "expected an integer from 1 to",
    );
    fails(
        "[farm.f.passive]\noutlier_factor = 0.5\n",
        7,
        "farm.f.passive.outlier_factor",
        "0.5",
        "must be 0 (off) or more than 1",
    );
}

#[test]
fn bad_expected_statuses() {
    fails(
        "[farm.f.check]\nexpect_status = \"600\"\n",
        7,
        "farm.f.check.expect_status",
        "\"600\"",
        "status out of range; expected a status (200), a range (\"200-399\"), a class (\"2xx\") \
         or an array of them, with statuses from 100 to 599",
    );
    fails(
        "[farm.f.check]\nexpect_status = [200, 600]\n",
        7,
        "farm.f.check.expect_status[1]",
        "600",
        "status out of range",
    );
    fails(
        "[farm.f.check]\nexpect_status = \"399-200\"\n",
        7,
        "farm.f.check.expect_status",
        "\"399-200\"",
        "backwards range; write the lower status first",
    );
    fails(
        "[farm.f.check]\nexpect_status = \"ok\"\n",
        7,
        "farm.f.check.expect_status",
        "\"ok\"",
        "expected a status (200)",
    );
    fails(
        "[farm.f.check]\nexpect_status = []\n",
        7,
        "farm.f.check.expect_status",
        "[]",
        "an empty list passes nothing",
    );
}

#[test]
fn bad_request_parts() {
    fails(
        "[farm.f.check]\nexpect_body_regex = \"(up\"\n",
        7,
        "farm.f.check.expect_body_regex",
        "\"(up\"",
        "invalid regex: unclosed group",
    );
    fails(
        "[farm.f.check]\nmethod = \"GE T\"\n",
        7,
        "farm.f.check.method",
        "\"GE T\"",
        "expected an HTTP method such as \"GET\"",
    );
    fails(
        "[farm.f.check]\npath = \"healthz\"\n",
        7,
        "farm.f.check.path",
        "\"healthz\"",
        "expected a request target starting with '/'",
    );
    fails(
        "[farm.f.check]\nhost = \"http://app/\"\n",
        7,
        "farm.f.check.host",
        "\"http://app/\"",
        "expected a Host header value",
    );
    fails(
        "[farm.f.check]\nport = 0\n",
        7,
        "farm.f.check.port",
        "0",
        "expected an integer from 1 to 65535",
    );
    fails(
        "[farm.f.check]\nexpect_body = \"\"\n",
        7,
        "farm.f.check.expect_body",
        "\"\"",
        "must not be empty",
    );
}

#[test]
fn retry_non_idempotent_needs_a_farm_route() {
    let routes =
        "[[listener.route]]\npath = \"/old\"\nredirect = \"/new\"\nretry_non_idempotent = true\n";
    let e = one_error(routes);
    assert_eq!(
        e.to_string(),
        "t.toml:9: listener[0].route[0].retry_non_idempotent = true: only for a route that \
         proxies to a farm (farm = \"<name>\"); this route's action is redirect"
    );
}

#[test]
fn unknown_keys_say_did_you_mean() {
    fails(
        "[farm.f.check]\npth = \"/x\"\n",
        7,
        "farm.f.check.pth",
        "",
        "unknown key (did you mean path?); valid keys here: type, port, interval, \
         down_interval, jitter, timeout, rise, fall, method, path, host, expect_status, \
         expect_body, expect_body_regex, max_body, reuse_connection",
    );
    member_fails(
        "address = \"127.0.0.1:9002\"\ncheck = { intervall = \"1s\" }\n",
        9,
        "farm.f.members[1].check.intervall",
        "",
        "unknown key (did you mean interval?)",
    );
    fails(
        "[farm.f.passive]\nejection = \"1s\"\n",
        7,
        "farm.f.passive.ejection",
        "",
        "unknown key",
    );
    fails(
        "retry_budjet = \"20%\"\n",
        6,
        "farm.f.retry_budjet",
        "",
        "unknown key (did you mean retry_budget?)",
    );
}

#[test]
fn member_check_values() {
    member_fails(
        "address = \"127.0.0.1:9002\"\ncheck = \"yes\"\n",
        9,
        "farm.f.members[1].check",
        "\"yes\"",
        "expected false (this member is not checked) or a table of check keys",
    );
}

#[test]
fn ejection_times() {
    fails(
        "[farm.f.passive]\nejection_time = \"30s\"\nmax_ejection_time = \"10s\"\n",
        8,
        "farm.f.passive.max_ejection_time",
        "\"10s\"",
        "shorter than ejection_time (30s); ejections start at ejection_time and double up to \
         max_ejection_time",
    );
    fails(
        "[farm.f.passive]\nejection_time = \"10m\"\n",
        7,
        "farm.f.passive.ejection_time",
        "\"10m\"",
        "longer than max_ejection_time (5m, the default)",
    );
}

/// All problems of one file are reported, in file order.
#[test]
fn every_problem_at_once() {
    let text = format!(
        "{HEAD}retry_on = [\"sometimes\"]\nslow_start = \"soon\"\n[farm.f.check]\nrise = 0\nfall = 0\n[farm.f.passive]\nmax_ejected = \"200%\"\n"
    );
    let got: Vec<(usize, String)> = errors_of(&text)
        .into_iter()
        .map(|e| (e.line, e.key))
        .collect();
    let expected = [
        (6, "farm.f.retry_on[0]"),
        (7, "farm.f.slow_start"),
        (9, "farm.f.check.rise"),
        (10, "farm.f.check.fall"),
        (12, "farm.f.passive.max_ejected"),
    ]
    .map(|(l, k)| (l, k.to_owned()));
    assert_eq!(got, expected);
}
