//! `GET /metrics` in the real binary over real sockets: requests through drover show up in the
//! scrape, which a Prometheus text-format parser (`prometheus-parse`) reads back; an operator's
//! flip shows in the flag gauges and flip counters; and the page is behind the admin credentials
//! unless `open_reads` is on.
//!
//! The parser predates OpenMetrics' `_total` suffix on counter samples, so it reads counters as
//! untyped samples (the `# TYPE` line names the family, the sample the family plus `_total`);
//! values and labels are what is checked here, the types by the unit tests in drover-admin.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use common::call;
use drover_testkit::client::{self, DEADLINE, Reply};
use http::Method;
use prometheus_parse::{Sample, Scrape, Value};

const TOKEN: &str = "metrics-test-token-0123456789abcdef";
const MEMBERS: [&str; 2] = ["a1", "a2"];
/// Requests sent through drover; round-robin gives each member half.
const SENT: u64 = 10;

type Setup = common::AppSetup;

async fn setup(admin_keys: &str) -> Setup {
    common::serve_app(&MEMBERS, &format!("token = \"{TOKEN}\"\n{admin_keys}")).await
}

fn bearer() -> Vec<(&'static str, String)> {
    vec![("authorization", format!("Bearer {TOKEN}"))]
}

async fn get_metrics(admin: SocketAddr, auth: &[(&str, String)]) -> Reply {
    call(admin, Method::GET, "/metrics", b"", auth).await
}

fn parse(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("a Prometheus text page")
}

/// The scalar value of a counter, gauge or untyped sample.
fn scalar(s: &Sample) -> f64 {
    match s.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
        ref other => panic!("{}: not a scalar: {other:?}", s.metric),
    }
}

/// The samples named `metric` whose labels include every pair of `labels`.
fn find<'a>(scrape: &'a Scrape, metric: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
        .collect()
}

/// The one sample named `metric` with `labels`, as a number.
fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    match find(scrape, metric, labels).as_slice() {
        [s] => scalar(s),
        found => panic!(
            "{metric}{labels:?}: {} samples, expected 1: {found:?}",
            found.len()
        ),
    }
}

/// Polls `/metrics` until every member's latency histogram has counted its share of `SENT`
/// (a member's counters are final once drover has finished streaming the response, which may be
/// a moment after the client read it), and returns that scrape and its raw text.
async fn settled(admin: SocketAddr) -> (Scrape, String) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let r = get_metrics(admin, &[]).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let text = r.text().to_owned();
        let scrape = parse(&text);
        let counted: f64 = find(&scrape, "drover_member_latency_seconds_count", &[])
            .iter()
            .map(|s| scalar(s))
            .sum();
        if counted == SENT as f64 {
            return (scrape, text);
        }
        assert!(
            Instant::now() < deadline,
            "latency samples: {counted}, expected {SENT}, within {DEADLINE:?}:\n{text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_counts_the_requests_sent() {
    let s = setup("open_reads = true").await;
    let mut conn = client::connect(s.listen).await;
    for _ in 0..SENT {
        let r = client::send(&mut conn, client::get_request(s.listen, "/")).await;
        assert_eq!(r.status, 200);
    }

    let r = get_metrics(s.admin, &[]).await;
    assert_eq!(r.status, 200, "open_reads: no credentials needed");
    assert_eq!(
        r.headers["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert_eq!(r.text().lines().last(), Some("# EOF"), "{}", r.text());

    let (scrape, text) = settled(s.admin).await;
    let app = [("farm", "app")];
    assert_eq!(
        value(&scrape, "drover_farm_requests_total", &app),
        SENT as f64
    );
    assert_eq!(
        value(&scrape, "drover_farm_attempts_total", &app),
        SENT as f64
    );
    assert_eq!(value(&scrape, "drover_farm_retries_total", &app), 0.0);
    assert_eq!(
        value(&scrape, "drover_farm_info", &app),
        1.0,
        "the farm's info series"
    );
    assert_eq!(
        find(&scrape, "drover_farm_info", &[("policy", "round-robin")]).len(),
        1
    );

    for (name, member) in MEMBERS.iter().zip(&s.members) {
        let m = [("farm", "app"), ("member", *name)];
        let share = (SENT / 2) as f64;
        assert_eq!(value(&scrape, "drover_member_requests_total", &m), share);
        assert_eq!(member.requests(), SENT / 2, "the member saw as many");
        assert_eq!(value(&scrape, "drover_member_failures_total", &m), 0.0);
        assert_eq!(value(&scrape, "drover_member_in_flight", &m), 0.0);
        assert!(value(&scrape, "drover_member_response_body_bytes_total", &m) > 0.0);
        assert!(value(&scrape, "drover_member_latency_ewma_seconds", &m) > 0.0);
        assert_eq!(value(&scrape, "drover_member_weight", &m), 1.0);
        let addr = member.addr().to_string();
        assert_eq!(
            find(&scrape, "drover_member_info", &[m[1], ("address", &addr)]).len(),
            1,
            "{name}'s address"
        );

        // The histogram: cumulative buckets ending in +Inf = count, and a plausible sum.
        let [h] = find(&scrape, "drover_member_latency_seconds", &m)[..] else {
            panic!("one latency histogram for {name}:\n{text}");
        };
        let Value::Histogram(buckets) = &h.value else {
            panic!("{name}: not a histogram: {h:?}");
        };
        assert_eq!(buckets.len(), 14, "13 bounds and +Inf");
        assert!(buckets.windows(2).all(|w| w[0].less_than < w[1].less_than));
        assert!(buckets.windows(2).all(|w| w[0].count <= w[1].count));
        let last = buckets.last().unwrap();
        assert_eq!((last.less_than, last.count), (f64::INFINITY, share));
        assert_eq!(
            value(&scrape, "drover_member_latency_seconds_count", &m),
            share
        );
        let sum = value(&scrape, "drover_member_latency_seconds_sum", &m);
        assert!(sum > 0.0 && sum < share * 10.0, "{name}: sum {sum}");

        for (flag, want) in [
            ("on", 1.0),
            ("up", 1.0),
            ("in", 1.0),
            ("draining", 0.0),
            ("ejected", 0.0),
            ("ready", 1.0),
        ] {
            let l = [m[0], m[1], ("flag", flag)];
            assert_eq!(
                value(&scrape, "drover_member_flag", &l),
                want,
                "{name} {flag}"
            );
        }
        for flag in ["on", "up", "in", "draining", "ejected"] {
            let l = [m[0], m[1], ("flag", flag)];
            assert_eq!(value(&scrape, "drover_member_health_flips_total", &l), 0.0);
        }
        assert!(
            find(&scrape, "drover_member_report_age_seconds", &m).is_empty(),
            "no report yet: no age"
        );
    }

    assert_eq!(value(&scrape, "drover_reports_accepted_total", &[]), 0.0);
    let reasons: Vec<&str> = find(&scrape, "drover_reports_rejected_total", &[])
        .iter()
        .filter_map(|s| s.labels.get("reason"))
        .collect();
    assert_eq!(
        reasons.len(),
        8,
        "every reject reason has a series: {reasons:?}"
    );
    assert!(reasons.contains(&"unauthorized") && reasons.contains(&"disabled"));

    // Every family has its HELP line.
    for family in [
        "drover_farm_requests",
        "drover_member_requests",
        "drover_member_latency_seconds",
        "drover_member_flag",
        "drover_reports_rejected",
    ] {
        assert!(scrape.docs.contains_key(family), "no HELP for {family}");
    }
    drop(s.drover);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_flip_shows_in_the_flags_and_flip_counters() {
    let s = setup("open_reads = true").await;
    let r = call(
        s.admin,
        Method::POST,
        "/api/v1/farms/app/members/a2/disable",
        b"",
        &bearer(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let scrape = parse(get_metrics(s.admin, &[]).await.text());
    let flags: HashMap<&str, f64> = find(
        &scrape,
        "drover_member_flag",
        &[("farm", "app"), ("member", "a2")],
    )
    .iter()
    .map(|s| (s.labels.get("flag").unwrap(), scalar(s)))
    .collect();
    assert_eq!((flags["on"], flags["ready"], flags["up"]), (0.0, 0.0, 1.0));
    let on = [("farm", "app"), ("member", "a2"), ("flag", "on")];
    assert_eq!(value(&scrape, "drover_member_health_flips_total", &on), 1.0);
    let on_a1 = [("farm", "app"), ("member", "a1"), ("flag", "on")];
    assert_eq!(value(&scrape, "drover_member_flag", &on_a1), 1.0);
    let off = [("farm", "app"), ("member", "a2"), ("state", "off")];
    assert_eq!(
        find(&scrape, "drover_member_last_transition_age_seconds", &off).len(),
        1,
        "the latest flip, with what it became"
    );
    drop(s.drover);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_credentials_unless_reads_are_open() {
    let s = setup("").await;
    let r = get_metrics(s.admin, &[]).await;
    assert_eq!(r.status, 401, "{}", r.text());
    let r = get_metrics(s.admin, &bearer()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        !parse(r.text()).samples.is_empty(),
        "with the token, the page"
    );
    drop(s.drover);
}
