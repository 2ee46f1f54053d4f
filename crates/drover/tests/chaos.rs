//! Chaos: members die, hang, lie and fail while a steady bounded load runs through the real
//! drover binary, over real sockets. Each test prints one row of the table in
//! docs/reliability.md (time to detect, client-visible errors, upstream attempts per request):
//!
//! ```sh
//! cargo test -p drover --test chaos -- --nocapture --test-threads=1 2>/dev/null | grep '^| '
//! ```
//!
//! Checks run every 200 ms with a 150 ms timeout, `fall = 2`, `rise = 2`, no jitter, so "marked
//! down within fall x interval + one timeout" means within 550 ms; the tests allow 300 ms more
//! for scheduling on a loaded 2-core machine and for the admin API poll.

mod chaoskit;
mod common;

use std::net::SocketAddr;
use std::time::Duration;

use chaoskit::{
    Load, MEMBER_ENV, MemberProcess, Sample, attempts_per_request, failed, farm_view, flip_age,
    member, report, share, wait_member,
};
use common::{Drover, free_addr};
use drover_testkit::{MemberConfig, TestMember};

const INTERVAL_MS: u64 = 200;
const TIMEOUT_MS: u64 = 150;
const FALL: u64 = 2;
/// fall x interval + one timeout.
const DETECT_BOUND: Duration = Duration::from_millis(FALL * INTERVAL_MS + TIMEOUT_MS);
const SLACK: Duration = Duration::from_millis(300);
const CLIENTS: usize = 4;
const PAUSE: Duration = Duration::from_millis(2);

/// Not a test: the entry point of the member processes the tests start (this binary run again
/// with `DROVER_CHAOS_MEMBER="<name> <addr>"`). Without the variable it returns at once.
#[test]
fn member_process() {
    let Ok(spec) = std::env::var(MEMBER_ENV) else {
        return;
    };
    let (name, addr) = spec.split_once(' ').expect("name and address");
    let addr: SocketAddr = addr.parse().expect("member address");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let m = TestMember::start_on(addr, MemberConfig::new(name))
            .await
            .expect("member");
        m.set_body(format!("{name} OK\n"));
        println!("member listening on {}", m.addr());
        std::future::pending::<()>().await;
    });
}

/// drover on `listen` with admin on `admin`, one farm "app" over `members`, HTTP checks of `/`
/// expecting "OK", and `extra` keys for the farm table.
fn config(
    listen: SocketAddr,
    admin: SocketAddr,
    members: &[(&str, SocketAddr)],
    extra: &str,
) -> String {
    let members: String = members
        .iter()
        .map(|(n, a)| format!("    {{ name = \"{n}\", address = \"{a}\" }},\n"))
        .collect();
    format!(
        r#"
[server]
threads = 1

[admin]
listen = "{admin}"
open_reads = true

[[listener]]
listen = "{listen}"
farm = "app"

[farm.app]
policy = "round-robin"
first_byte_timeout = "500ms"
retries = 2
members = [
{members}]
{extra}

[farm.app.check]
type = "http"
path = "/"
expect_body = "OK"
interval = "{INTERVAL_MS}ms"
timeout = "{TIMEOUT_MS}ms"
fall = {FALL}
rise = 2
jitter = "0%"
"#
    )
}

/// Passive ejection off: these scenarios measure the active checks alone.
const NO_PASSIVE: &str = "\n[farm.app.passive]\nconsecutive_failures = 0\n";

struct Setup {
    /// Kept for its lifetime: dropping it kills drover.
    _drover: Drover,
    listen: SocketAddr,
    admin: SocketAddr,
}

async fn start(members: &[(&str, SocketAddr)], extra: &str) -> Setup {
    let (listen, admin) = (free_addr(), free_addr());
    let mut drover = Drover::serve(&config(listen, admin, members, extra));
    drover.wait_listening(listen).await;
    drover.wait_listening(admin).await;
    Setup {
        _drover: drover,
        listen,
        admin,
    }
}

fn processes(n: usize) -> Vec<MemberProcess> {
    (1..=n)
        .map(|i| MemberProcess::spawn(&format!("m{i}"), "127.0.0.1:0".parse().expect("addr")))
        .collect()
}

async fn in_process(n: usize) -> Vec<TestMember> {
    let mut v = Vec::new();
    for i in 1..=n {
        let name = format!("m{i}");
        let m = TestMember::start(MemberConfig::new(&name))
            .await
            .expect("member");
        m.set_body(format!("{name} OK\n"));
        v.push(m);
    }
    v
}

fn describe_failures(samples: &[Sample]) -> String {
    let bad = failed(samples);
    let first: Vec<String> = bad
        .iter()
        .take(5)
        .map(|s| format!("{} at {:?}: {}", s.status, s.at, s.body.trim()))
        .collect();
    format!("{} of {} failed: {first:?}", bad.len(), samples.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_member_costs_no_request_and_is_marked_down_in_time() {
    let mut members = processes(3);
    let names: Vec<(&str, SocketAddr)> =
        members.iter().map(|m| (m.name.as_str(), m.addr)).collect();
    let s = start(&names, NO_PASSIVE).await;
    let load = Load::start(s.listen, CLIENTS, PAUSE);
    tokio::time::sleep(Duration::from_millis(500)).await; // load reaches a steady state
    let before = farm_view(s.admin, "app").await;

    let killed_at = std::time::Instant::now();
    members[1].kill();
    let m2 = wait_member(s.admin, "app", "m2", Duration::from_secs(5), "down", |m| {
        m["up"] == false
    })
    .await;
    let detect = killed_at.elapsed().saturating_sub(flip_age(&m2));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = farm_view(s.admin, "app").await;
    let samples = load.stop().await;

    assert!(
        failed(&samples).is_empty(),
        "{}",
        describe_failures(&samples)
    );
    assert!(
        m2["last_transition"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("checks failed") && r.contains("connect failed")),
        "{m2}"
    );
    assert!(
        detect <= DETECT_BOUND + SLACK,
        "marked down {detect:?} after the kill; bound {DETECT_BOUND:?}"
    );
    let (ratio, requests, _) = attempts_per_request(&before, &after);
    report(
        "member killed (SIGKILL)",
        &format!("{} ms", detect.as_millis()),
        &format!("0 of {}", samples.len()),
        ratio,
        &format!("{requests} requests while it died; connect failures and resets retried"),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_member_is_marked_down_and_its_requests_are_retried() {
    let members = processes(3);
    let names: Vec<(&str, SocketAddr)> =
        members.iter().map(|m| (m.name.as_str(), m.addr)).collect();
    let s = start(&names, NO_PASSIVE).await;
    let load = Load::start(s.listen, CLIENTS, PAUSE);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = farm_view(s.admin, "app").await;

    let hung_at = std::time::Instant::now();
    let hung_load_at = load.now();
    members[1].signal("STOP"); // accepts (the kernel does), never answers
    let m2 = wait_member(s.admin, "app", "m2", Duration::from_secs(5), "down", |m| {
        m["up"] == false
    })
    .await;
    let detect = hung_at.elapsed().saturating_sub(flip_age(&m2));
    tokio::time::sleep(Duration::from_millis(600)).await;
    let after = farm_view(s.admin, "app").await;
    let samples = load.stop().await;
    members[1].signal("CONT");

    assert!(
        failed(&samples).is_empty(),
        "GETs sent to the hung member are retried: {}",
        describe_failures(&samples)
    );
    assert!(
        m2["last_transition"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("no answer within")),
        "{m2}"
    );
    assert!(
        detect <= DETECT_BOUND + SLACK,
        "marked down after {detect:?}"
    );
    // Only requests already sent to m2 waited for the first-byte timeout (500 ms) before their
    // retry; none waited twice, and once m2 was down nothing waited at all.
    let slow: Vec<&Sample> = samples
        .iter()
        .filter(|x| x.latency >= Duration::from_millis(450))
        .collect();
    assert!(
        !slow.is_empty(),
        "requests in flight on m2 waited for the timeout"
    );
    assert!(
        slow.iter().all(|x| x.latency < Duration::from_millis(1000)),
        "no request waited for two timeouts"
    );
    let settled = hung_load_at + detect + Duration::from_millis(600);
    assert!(
        slow.iter().all(|x| x.at < settled),
        "no slow request after m2 was marked down"
    );
    let (ratio, _, _) = attempts_per_request(&before, &after);
    report(
        "member hangs (SIGSTOP)",
        &format!("{} ms", detect.as_millis()),
        &format!(
            "0 of {}; {} waited one first-byte timeout (500 ms) and were retried",
            samples.len(),
            slow.len()
        ),
        ratio,
        "timeouts retried: GET is idempotent",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_with_the_wrong_body_is_marked_down_by_the_http_check() {
    let members = in_process(3).await;
    let names: Vec<(&str, SocketAddr)> = members.iter().map(|m| (m.name(), m.addr())).collect();
    let s = start(&names, NO_PASSIVE).await;
    let load = Load::start(s.listen, CLIENTS, PAUSE);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = farm_view(s.admin, "app").await;

    let changed_at = std::time::Instant::now();
    let changed_load_at = load.now();
    members[1].set_body("Service temporarily in maintenance\n"); // still 200
    let m2 = wait_member(s.admin, "app", "m2", Duration::from_secs(5), "down", |m| {
        m["up"] == false
    })
    .await;
    let detect = changed_at.elapsed().saturating_sub(flip_age(&m2));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = farm_view(s.admin, "app").await;
    let samples = load.stop().await;

    assert!(
        m2["last_transition"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("body does not contain \"OK\"")),
        "{m2}"
    );
    assert!(
        detect <= DETECT_BOUND + SLACK,
        "marked down after {detect:?}"
    );
    let settled = changed_load_at + detect + Duration::from_millis(50);
    let late: Vec<&Sample> = samples
        .iter()
        .filter(|x| x.at > settled && !x.body.contains("OK"))
        .collect();
    assert!(
        late.is_empty(),
        "maintenance pages after m2 was down: {}",
        late.len()
    );
    let wrong = samples.iter().filter(|x| !x.body.contains("OK")).count();
    let (ratio, _, _) = attempts_per_request(&before, &after);
    report(
        "member answers 200 with the wrong body",
        &format!("{} ms", detect.as_millis()),
        &format!(
            "0 errors of {}; {wrong} got the maintenance page before the check caught it",
            samples.len()
        ),
        ratio,
        "HTTP check `expect_body = \"OK\"`",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_answering_503_is_ejected_and_ramps_back_slowly() {
    let members = in_process(3).await;
    let names: Vec<(&str, SocketAddr)> = members.iter().map(|m| (m.name(), m.addr())).collect();
    let extra = r#"
retry_on = ["connect", "reset", "timeout", "503"]
slow_start = "2s"

[farm.app.passive]
consecutive_failures = 5
ejection_time = "1s"
max_ejection_time = "8s"
"#;
    let s = start(&names, extra).await;
    let load = Load::start(s.listen, CLIENTS, PAUSE);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = farm_view(s.admin, "app").await;

    let failing_at = std::time::Instant::now();
    members[1].set_status(503);
    let m2 = wait_member(
        s.admin,
        "app",
        "m2",
        Duration::from_secs(5),
        "ejected",
        |m| m["ejected"] == true,
    )
    .await;
    let detect = failing_at.elapsed().saturating_sub(flip_age(&m2));
    members[1].set_status(200);
    let back = wait_member(
        s.admin,
        "app",
        "m2",
        Duration::from_secs(5),
        "returned",
        |m| m["ejected"] == false,
    )
    .await;
    let returned_load_at = load.now().saturating_sub(flip_age(&back));
    // Watch the slow start (2 s) and one more second at full share.
    let end = returned_load_at + Duration::from_secs(3);
    while load.now() < end {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = farm_view(s.admin, "app").await;
    let samples = load.stop().await;

    assert!(
        m2["last_transition"]["reason"].as_str().is_some_and(|r| r
            .contains("5 failed requests in a row")
            && r.contains("ejected for 1s")),
        "{m2}"
    );
    let ejected_for =
        Duration::from_secs_f64(back["last_transition"]["age_s"].as_f64().unwrap_or(0.0));
    let _ = ejected_for;
    assert!(
        failed(&samples).is_empty(),
        "503s are retried on another member: {}",
        describe_failures(&samples)
    );
    // m2's share of requests in four half-second windows after its return: rising towards 1/3.
    let window = Duration::from_millis(500);
    let shares: Vec<(f64, usize)> = (0..4)
        .map(|k| {
            let from = returned_load_at + window * k;
            share(&samples, "m2", from, from + window)
        })
        .collect();
    let full = share(
        &samples,
        "m2",
        returned_load_at + Duration::from_secs(2),
        end,
    );
    assert!(
        shares[0].0 < 0.6 * full.0 && shares[0].0 < shares[3].0,
        "slow start: m2's share rises after its return: {shares:?}, then {full:?}"
    );
    assert!(
        (0.25..0.42).contains(&full.0),
        "after the ramp m2 has its full third: {full:?}"
    );
    let (ratio, _, _) = attempts_per_request(&before, &after);
    let pct: Vec<String> = shares
        .iter()
        .map(|(s, _)| format!("{:.0}%", s * 100.0))
        .collect();
    report(
        "member answers 503",
        &format!("{} ms (ejected after 5 in a row)", detect.as_millis()),
        &format!("0 of {} (503s retried)", samples.len()),
        ratio,
        &format!(
            "back after 1 s; share per 0.5 s during slow start {}, then {:.0}%",
            pct.join(" "),
            full.0 * 100.0
        ),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn total_outage_answers_the_outage_page_within_the_retry_budget() {
    let members = in_process(3).await;
    let names: Vec<(&str, SocketAddr)> = members.iter().map(|m| (m.name(), m.addr())).collect();
    // Slow checks, so the outage runs on live traffic for a while before they catch it.
    let extra = r#"
retry_budget = "20%"
retry_budget_floor = 1

[farm.app.outage]
page = { status = 503, body = "We will be right back\n" }

[farm.app.passive]
consecutive_failures = 0
"#;
    let s = start(&names, extra).await;
    let load = Load::start(s.listen, CLIENTS, PAUSE);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = farm_view(s.admin, "app").await;
    let outage_load_at = load.now();
    for m in members {
        m.kill().await;
    }
    for name in ["m1", "m2", "m3"] {
        wait_member(s.admin, "app", name, Duration::from_secs(5), "down", |m| {
            m["up"] == false
        })
        .await;
    }
    let detected_load_at = load.now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = farm_view(s.admin, "app").await;
    let samples = load.stop().await;

    let outage: Vec<&Sample> = samples.iter().filter(|x| x.at > outage_load_at).collect();
    assert!(outage.iter().any(|x| x.at > detected_load_at));
    let (ratio, requests, _) = attempts_per_request(&before, &after);
    let retries = after["retries"].as_u64().unwrap_or(0) - before["retries"].as_u64().unwrap_or(0);
    // The budget's window (10 s) also holds the requests before the outage.
    let window_requests = after["requests"].as_u64().unwrap_or(0);
    let allowed = 0.2 * window_requests as f64 + 10.0;
    assert!(
        (retries as f64) <= allowed + 2.0,
        "{retries} retries for {window_requests} requests: over the 20% + 1/s budget"
    );
    let page = |x: &Sample| x.status == 503 && x.body == "We will be right back\n";
    let late: Vec<&&Sample> = outage
        .iter()
        .filter(|x| x.at > detected_load_at && !page(x))
        .collect();
    assert!(
        late.is_empty(),
        "once every member is down the outage page answers: {} did not",
        late.len()
    );
    // Before the checks catch it, a request finds every member it tries refusing the connection,
    // and that is an outage too, whether it ran out of members, of retries or of budget. Only a
    // request already sent when the members died (a reset, then refusals) gets a 502.
    let bad_gateway = outage.iter().filter(|x| x.status == 502).count();
    let served = outage.iter().filter(|x| x.status == 200).count(); // in flight at the kill
    assert_eq!(
        bad_gateway + served + outage.iter().filter(|x| page(x)).count(),
        outage.len(),
        "nothing but 200 (already under way), 502 or the outage page"
    );
    let refused = after["budget_refused"].as_u64().unwrap_or(0);
    report(
        "every member down",
        &format!(
            "{} ms until checks mark all three down",
            (detected_load_at - outage_load_at).as_millis()
        ),
        &format!(
            "{bad_gateway} of {} got 502 (sent before the kill, then refused), {served} were served (under way at the kill), the rest the outage page",
            outage.len()
        ),
        ratio,
        &format!(
            "{retries} retries, {refused} refused, for {requests} requests during the outage (budget 20% + 1/s over 10 s)"
        ),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_threshold_spreads_over_every_member_when_most_fail_their_checks() {
    let members = in_process(4).await;
    let names: Vec<(&str, SocketAddr)> = members.iter().map(|m| (m.name(), m.addr())).collect();
    let extra = "panic_threshold = \"50%\"\n";
    let s = start(&names, &format!("{extra}{NO_PASSIVE}")).await;

    // Two of four fail their checks: 50% healthy is not below the threshold.
    for m in &members[..2] {
        m.set_body("maintenance\n");
    }
    for name in ["m1", "m2"] {
        wait_member(s.admin, "app", name, Duration::from_secs(5), "down", |m| {
            m["up"] == false
        })
        .await;
    }
    assert_eq!(farm_view(s.admin, "app").await["panic"], false);
    let load = Load::start(s.listen, CLIENTS, PAUSE);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let normal_until = load.now();
    // A third one: 25% healthy, below 50%: panic.
    members[2].set_body("maintenance\n");
    wait_member(s.admin, "app", "m3", Duration::from_secs(5), "down", |m| {
        m["up"] == false
    })
    .await;
    let view = farm_view(s.admin, "app").await;
    assert_eq!(view["panic"], true, "{view}");
    let panic_from = load.now();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let samples = load.stop().await;

    let before: Vec<f64> = ["m1", "m2", "m3", "m4"]
        .iter()
        .map(|m| share(&samples, m, Duration::ZERO, normal_until).0)
        .collect();
    assert!(
        before[0] == 0.0 && before[1] == 0.0,
        "down members get nothing: {before:?}"
    );
    let during: Vec<f64> = ["m1", "m2", "m3", "m4"]
        .iter()
        .map(|m| share(&samples, m, panic_from, panic_from + Duration::from_secs(1)).0)
        .collect();
    assert!(
        during.iter().all(|s| (0.15..0.35).contains(s)),
        "in panic every member that is on gets its share: {during:?}"
    );
    assert_eq!(member(&view, "m4")["up"], true);
    let pct = |v: &[f64]| {
        v.iter()
            .map(|s| format!("{:.0}%", s * 100.0))
            .collect::<Vec<_>>()
            .join("/")
    };
    report(
        "3 of 4 members fail their checks, panic_threshold 50%",
        "as for a wrong body",
        "none: panic mode spreads over all four",
        1.0,
        &format!(
            "shares m1/m2/m3/m4 before panic {}, in panic {}",
            pct(&before),
            pct(&during)
        ),
    );
}
