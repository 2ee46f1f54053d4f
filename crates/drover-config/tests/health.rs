//! Valid health, ejection and retry keys: each lands in the model, absent ones take their
//! documented defaults, and a member's `check` is merged over its farm's.

use std::path::Path;
use std::time::Duration;

use drover_config::{
    Check, CheckKind, Config, FailureKinds, Farm, HttpCheck, Passive, RetryBudget, RetryOn,
    parse_str,
};

fn parse(text: &str) -> Config {
    parse_str(text, Path::new("test.toml")).unwrap_or_else(|e| panic!("\n{e}"))
}

/// The only farm of a config whose `[farm.f]` body is `farm` (members included).
fn farm(farm: &str) -> Farm {
    let text = format!("[[listener]]\nlisten = \"127.0.0.1:80\"\nfarm = \"f\"\n[farm.f]\n{farm}");
    parse(&text).farms.remove(0)
}

const ONE: &str = "members = [{ address = \"127.0.0.1:9001\" }]\n";

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn http(check: &Check) -> &HttpCheck {
    match &check.kind {
        CheckKind::Http(http) => http,
        CheckKind::Tcp => panic!("expected an http check: {check:?}"),
    }
}

#[test]
fn absent_keys_take_their_defaults() {
    let c = parse(&format!(
        "[[listener]]\nlisten = \"127.0.0.1:80\"\nfarm = \"f\"\n[[listener.route]]\npath = \"/a\"\nfarm = \"f\"\n[farm.f]\n{ONE}"
    ));
    let f = &c.farms[0];
    assert_eq!(f.retries, 3);
    assert_eq!(
        f.retry_on,
        RetryOn {
            reset: true,
            timeout: true,
            statuses: vec![]
        }
    );
    assert_eq!(
        f.retry_budget,
        RetryBudget {
            ratio: 0.2,
            floor_per_sec: 10
        }
    );
    assert_eq!(f.check, None, "no [farm.f.check], no active checks");
    assert_eq!(f.member_checks, vec![None]);
    assert_eq!(
        f.passive,
        Passive {
            consecutive_failures: 5,
            count: FailureKinds {
                connect: true,
                reset: true,
                timeout: true,
                statuses: vec![(500, 599)]
            },
            ejection_time: secs(10),
            max_ejection_time: secs(300),
            max_ejected: 0.5,
            outlier_factor: 0.0,
            outlier_interval: secs(10),
            outlier_min_requests: 20,
            outlier_min_error_rate: 0.1,
        }
    );
    assert_eq!(f.passive, Passive::default());
    assert_eq!(f.slow_start, None);
    assert!(!f.quiescent);
    assert_eq!(f.panic_threshold, 0.0);
    let routes = &c.listeners[0].routes;
    assert!(routes.iter().all(|r| !r.retry_non_idempotent));
}

#[test]
fn an_empty_check_table_is_the_default_http_check() {
    let f = farm(&format!("{ONE}[farm.f.check]\n"));
    let expected = Check {
        kind: CheckKind::Http(HttpCheck {
            method: "GET".into(),
            path: "/".into(),
            host: None,
            expect_status: vec![(200, 399)],
            expect_body: None,
            expect_body_regex: None,
            max_body: 64 * 1024,
            reuse_connection: true,
        }),
        port: None,
        interval: secs(2),
        down_interval: secs(2),
        jitter: 0.1,
        timeout: secs(1),
        rise: 2,
        fall: 3,
    };
    assert_eq!(f.check.as_ref(), Some(&expected));
    assert_eq!(Check::default(), expected);
    assert_eq!(f.member_checks, vec![Some(expected)]);
}

#[test]
fn every_check_key() {
    let f = farm(&format!(
        r#"{ONE}
[farm.f.check]
type = "http"
port = 8081
interval = "5s"
down_interval = "30s"
jitter = "12.5%"
timeout = "5s"
rise = 4
fall = 1
method = "OPTIONS"
path = "/status?full=1"
host = "app.example.com:8080"
expect_status = [204, "200-202", "3xx"]
expect_body = "\"up\""
expect_body_regex = "version=[0-9]+"
max_body = 1024
reuse_connection = false
"#
    ));
    let check = f.check.as_ref().unwrap();
    assert_eq!(check.port, Some(8081));
    assert_eq!(
        (check.interval, check.down_interval, check.timeout),
        (secs(5), secs(30), secs(5)),
        "a timeout equal to the interval is allowed"
    );
    assert_eq!((check.jitter, check.rise, check.fall), (0.125, 4, 1));
    let h = http(check);
    assert_eq!(h.method, "OPTIONS");
    assert_eq!(h.path, "/status?full=1");
    assert_eq!(h.host.as_deref(), Some("app.example.com:8080"));
    assert_eq!(
        h.expect_status,
        vec![(200, 202), (204, 204), (300, 399)],
        "sorted and merged"
    );
    assert!(h.status_passes(204) && h.status_passes(301) && !h.status_passes(203));
    assert_eq!(h.expect_body.as_deref(), Some("\"up\""));
    let re = h.expect_body_regex.as_ref().unwrap();
    assert!(re.is_match("version=42") && !re.is_match("version=x"));
    assert_eq!(h.max_body, 1024);
    assert!(!h.reuse_connection);
}

#[test]
fn reuse_connection_defaults_to_on_and_members_override_it() {
    let f = farm(&format!("{ONE}[farm.f.check]\npath = \"/health\"\n"));
    assert!(
        http(f.check.as_ref().unwrap()).reuse_connection,
        "Envoy's default"
    );

    let f = farm(
        "members = [\n\
         { address = \"127.0.0.1:9001\" },\n\
         { address = \"127.0.0.1:9002\", check = { reuse_connection = true } },\n\
         { address = \"127.0.0.1:9003\", check = { path = \"/other\" } },\n\
         ]\n[farm.f.check]\nreuse_connection = false\n",
    );
    let reuse: Vec<bool> = f
        .member_checks
        .iter()
        .map(|c| http(c.as_ref().unwrap()).reuse_connection)
        .collect();
    assert_eq!(reuse, [false, true, false]);

    // A member's override without a farm check: the defaults, and its key.
    let f = farm(
        "members = [{ address = \"127.0.0.1:9001\", check = { reuse_connection = false } }]\n",
    );
    assert!(!http(f.member_checks[0].as_ref().unwrap()).reuse_connection);
    assert_eq!(f.check, None);
}

#[test]
fn expect_status_forms() {
    let status = |value: &str| {
        let f = farm(&format!("{ONE}[farm.f.check]\nexpect_status = {value}\n"));
        http(f.check.as_ref().unwrap()).expect_status.clone()
    };
    assert_eq!(status("200"), [(200, 200)]);
    assert_eq!(status("\"204\""), [(204, 204)]);
    assert_eq!(status("\"200-399\""), [(200, 399)]);
    assert_eq!(status("\"2xx\""), [(200, 299)]);
    assert_eq!(status("[\"2xx\", 301, \"300-302\"]"), [(200, 302)]);
    assert_eq!(status("[\"1xx\", \"5xx\"]"), [(100, 199), (500, 599)]);
}

#[test]
fn tcp_check() {
    let f = farm(&format!(
        "{ONE}[farm.f.check]\ntype = \"tcp\"\nport = 6379\ninterval = \"1s\"\n"
    ));
    let check = f.check.unwrap();
    assert_eq!(check.kind, CheckKind::Tcp);
    assert_eq!((check.port, check.interval), (Some(6379), secs(1)));
    assert_eq!(
        check.down_interval,
        secs(1),
        "down_interval follows interval"
    );
}

#[test]
fn member_checks_merge_over_the_farm_check() {
    let f = farm(
        r#"
[[farm.f.members]]
address = "127.0.0.1:9001"

[[farm.f.members]]
address = "127.0.0.1:9002"
check = { path = "/b", port = 9102, interval = "1s", expect_body = "ok" }

[[farm.f.members]]
address = "127.0.0.1:9003"
check = false

[[farm.f.members]]
address = "127.0.0.1:9004"
check = true

[[farm.f.members]]
address = "127.0.0.1:9005"
check = { type = "tcp" }

[farm.f.check]
path = "/a"
host = "app"
interval = "5s"
timeout = "500ms"
rise = 5
"#,
    );
    let farm_check = f.check.clone().unwrap();
    assert_eq!(f.member_checks.len(), 5, "one per member");
    assert_eq!(f.member_checks[0].as_ref(), Some(&farm_check));

    let m = f.member_checks[1].as_ref().unwrap();
    assert_eq!(
        (m.port, m.interval, m.down_interval),
        (Some(9102), secs(1), secs(1))
    );
    assert_eq!(
        (m.timeout, m.rise, m.fall),
        (ms(500), 5, 3),
        "the rest is the farm's"
    );
    let h = http(m);
    assert_eq!((h.path.as_str(), h.host.as_deref()), ("/b", Some("app")));
    assert_eq!(h.expect_body.as_deref(), Some("ok"));

    assert_eq!(f.member_checks[2], None, "check = false");
    assert_eq!(
        f.member_checks[3].as_ref(),
        Some(&farm_check),
        "check = true"
    );

    let tcp = f.member_checks[4].as_ref().unwrap();
    assert_eq!(tcp.kind, CheckKind::Tcp, "the farm's http keys are dropped");
    assert_eq!((tcp.interval, tcp.rise), (secs(5), 5));
}

#[test]
fn a_member_check_without_a_farm_check_starts_from_the_defaults() {
    let f = farm(
        "members = [{ address = \"127.0.0.1:1\" }, { address = \"127.0.0.1:2\", check = { path = \"/h\" } }, { address = \"127.0.0.1:3\", check = true }]\n",
    );
    assert_eq!(f.check, None);
    assert_eq!(
        f.member_checks[0], None,
        "neither farm nor member has a check"
    );
    let m = f.member_checks[1].as_ref().unwrap();
    assert_eq!(http(m).path, "/h");
    assert_eq!(
        Check {
            kind: CheckKind::Http(HttpCheck::default()),
            ..m.clone()
        },
        Check::default()
    );
    assert_eq!(f.member_checks[2], Some(Check::default()));
}

#[test]
fn every_passive_key() {
    let f = farm(&format!(
        r#"{ONE}
[farm.f.passive]
consecutive_failures = 0
count = ["timeout", "503", 502, "5xx"]
ejection_time = "30s"
max_ejection_time = "30s"
max_ejected = "100%"
outlier_factor = 2.5
outlier_interval = "1m"
outlier_min_requests = 100
outlier_min_error_rate = "0%"
"#
    ));
    assert_eq!(
        f.passive,
        Passive {
            consecutive_failures: 0,
            count: FailureKinds {
                connect: false,
                reset: false,
                timeout: true,
                statuses: vec![(500, 599)]
            },
            ejection_time: secs(30),
            max_ejection_time: secs(30),
            max_ejected: 1.0,
            outlier_factor: 2.5,
            outlier_interval: secs(60),
            outlier_min_requests: 100,
            outlier_min_error_rate: 0.0,
        }
    );
    assert!(f.passive.count.status(599) && !f.passive.count.status(499));
    let f = farm(&format!("{ONE}[farm.f.passive]\noutlier_factor = 3\n"));
    assert_eq!(f.passive.outlier_factor, 3.0, "an integer factor");
}

#[test]
fn max_ejected_members_rounds_down_but_allows_one() {
    let share = |max_ejected| Passive {
        max_ejected,
        ..Passive::default()
    };
    assert_eq!(
        share(0.5).max_ejected_members(1),
        0,
        "never the only member"
    );
    assert_eq!(share(0.5).max_ejected_members(2), 1);
    assert_eq!(share(0.5).max_ejected_members(5), 2);
    assert_eq!(
        share(0.1).max_ejected_members(3),
        1,
        "one when the share rounds to 0"
    );
    assert_eq!(share(0.0).max_ejected_members(10), 0);
    assert_eq!(share(1.0).max_ejected_members(1), 1);
}

#[test]
fn retry_keys() {
    let f = farm(&format!(
        "{ONE}retries = 7\nretry_on = [\"connect\", \"reset\", \"502\", \"504\", \"503\"]\nretry_budget = \"12.5%\"\nretry_budget_floor = 0\n"
    ));
    assert_eq!(f.retries, 7);
    assert_eq!(
        f.retry_on,
        RetryOn {
            reset: true,
            timeout: false,
            statuses: vec![(502, 504)]
        }
    );
    assert!(f.retry_on.status(503) && !f.retry_on.status(500));
    assert_eq!(
        f.retry_budget,
        RetryBudget {
            ratio: 0.125,
            floor_per_sec: 0
        }
    );
    let f = farm(&format!("{ONE}retry_on = [\"timeout\", \"5xx\", 500]\n"));
    assert_eq!(
        f.retry_on,
        RetryOn {
            reset: false,
            timeout: true,
            statuses: vec![(500, 599)]
        }
    );
    let f = farm(&format!("{ONE}retry_on = []\n"));
    assert_eq!(
        f.retry_on,
        RetryOn {
            reset: false,
            timeout: false,
            statuses: vec![]
        },
        "an empty list is connect only"
    );
    let f = farm(&format!("{ONE}retry_budget = \"0%\"\n"));
    assert_eq!(f.retry_budget.ratio, 0.0);
}

#[test]
fn slow_start_quiescent_and_panic_threshold() {
    let f = farm(&format!(
        "{ONE}slow_start = \"1m\"\nquiescent = true\npanic_threshold = \"50%\"\n"
    ));
    assert_eq!(f.slow_start, Some(secs(60)));
    assert!(f.quiescent);
    assert_eq!(f.panic_threshold, 0.5);
    let f = farm(&format!(
        "{ONE}slow_start = \"0s\"\nquiescent = false\npanic_threshold = \"100%\"\n"
    ));
    assert_eq!(f.slow_start, None, "0s = off");
    assert!(!f.quiescent);
    assert_eq!(f.panic_threshold, 1.0);
}

#[test]
fn retry_non_idempotent_on_farm_routes() {
    let c = parse(&format!(
        "[[listener]]\nlisten = \"127.0.0.1:80\"\nfarm = \"f\"\n[[listener.route]]\npath = \"/orders\"\nfarm = \"f\"\nretry_non_idempotent = true\n[[listener.route]]\npath = \"/b\"\nfarm = \"f\"\nretry_non_idempotent = false\n[farm.f]\n{ONE}"
    ));
    let flags: Vec<bool> = c.listeners[0]
        .routes
        .iter()
        .map(|r| r.retry_non_idempotent)
        .collect();
    assert_eq!(
        flags,
        [true, false, false],
        "the listener's farm shorthand gets false"
    );
}
