//! Every example config in the repository's `examples/` validates, and the ones the docs and the
//! benchmark rely on say what they are said to say.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use drover_config::{Action, AgentCheck, Check, CheckKind, Config, HttpCheck, RetryOn, load};
use drover_core::PolicyKind;

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn example(name: &str) -> Config {
    let path = examples_dir().join(name);
    load(&path).unwrap_or_else(|e| panic!("{}:\n{e}", path.display()))
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn every_example_validates() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(examples_dir())
        .expect("examples/ exists")
        .map(|entry| entry.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "found {files:?}");
    let failures: Vec<String> = files
        .iter()
        .filter_map(|f| load(f).err().map(|e| e.to_string()))
        .collect();
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn quickstart_is_three_members_round_robin_with_admin() {
    let config = example("quickstart.toml");
    assert_eq!(config.listeners.len(), 1);
    let listener = &config.listeners[0];
    assert_eq!(listener.listen, vec![addr("127.0.0.1:8080")]);
    assert_eq!(listener.routes.len(), 1);
    assert_eq!(listener.routes[0].action, Action::Farm("app".into()));
    assert!(listener.access_log.is_some(), "quickstart logs to stdout");
    let farm = config.farm("app").expect("farm app");
    assert_eq!(farm.policy, PolicyKind::RoundRobin);
    let members: Vec<SocketAddr> = farm.members.iter().map(|m| m.addr).collect();
    assert_eq!(
        members,
        ["127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"].map(addr)
    );
    assert_eq!(
        config.admin.expect("[admin]").listen,
        addr("127.0.0.1:9090")
    );
}

#[test]
fn peers_is_the_one_thread_benchmark_config() {
    let config = example("peers.toml");
    assert_eq!(config.server.threads, 1);
    assert_eq!(config.listeners.len(), 1);
    assert_eq!(config.listeners[0].listen, vec![addr("127.0.0.1:8085")]);
    let farm = config.farm("app").expect("farm app");
    assert_eq!(farm.policy, PolicyKind::RoundRobin);
    assert_eq!(farm.members.len(), 3);
    assert!(config.admin.is_none());
    let check = farm.check.as_ref().expect("checked every 1s, like HAProxy");
    assert_eq!(check.interval, Duration::from_secs(1));
    assert!(matches!(&check.kind, CheckKind::Http(http) if http.path == "/"));
    assert_eq!(farm.member_checks, vec![Some(check.clone()); 3]);
    assert_eq!(farm.retry_on, RetryOn::default(), "connect, reset, timeout");
}

#[test]
fn health_shows_every_check_option() {
    let config = example("health.toml");
    let app = config.farm("app").expect("farm app");
    let check = app.check.as_ref().expect("[farm.app.check]");
    let http = HttpCheck {
        method: "GET".into(),
        path: "/healthz".into(),
        host: Some("app.internal".into()),
        expect_status: vec![(200, 299), (304, 304)],
        expect_body: Some("ok".into()),
        expect_body_regex: None,
        max_body: 16 * 1024,
        reuse_connection: true,
    };
    let CheckKind::Http(got) = &check.kind else {
        panic!("an http check: {check:?}");
    };
    assert_eq!(
        got.expect_body_regex.as_ref().map(|re| re.as_str()),
        Some("db=(up|degraded)")
    );
    assert!(got.expect_body_regex.as_ref().unwrap().is_match("ok db=up"));
    assert_eq!(
        HttpCheck {
            expect_body_regex: None,
            ..got.clone()
        },
        http
    );
    assert_eq!(
        (
            check.port,
            check.interval,
            check.down_interval,
            check.jitter
        ),
        (None, Duration::from_secs(3), Duration::from_secs(10), 0.2)
    );
    assert_eq!(
        (check.timeout, check.rise, check.fall),
        (Duration::from_millis(500), 3, 2)
    );

    let overridden = app.member_checks[1].as_ref().expect("member 2 is checked");
    assert_eq!(overridden.port, Some(9102));
    assert!(
        matches!(&overridden.kind, CheckKind::Http(h) if h.path == "/status" && h.host == got.host)
    );
    assert_eq!(app.member_checks[0].as_ref(), Some(check));
    assert_eq!(app.member_checks[2], None, "check = false");

    let agent = AgentCheck {
        port: 9777,
        interval: Duration::from_secs(2),
        timeout: Duration::from_secs(1),
        send: Some("ready\n".into()),
    };
    assert_eq!(app.agent.as_ref(), Some(&agent));
    assert_eq!(
        app.member_agents,
        vec![Some(agent); 3],
        "every member asks its agent"
    );

    assert_eq!(app.retries, 2);
    assert_eq!(
        app.retry_on,
        RetryOn {
            reset: true,
            timeout: true,
            statuses: vec![(503, 503)]
        }
    );
    assert_eq!(app.slow_start, Some(Duration::from_secs(30)));
    assert!(app.quiescent);
    assert_eq!(app.panic_threshold, 0.5);
    assert_eq!(app.passive.consecutive_failures, 5);
    assert_eq!(app.passive.count.statuses, vec![(502, 504)]);
    assert_eq!(app.passive.max_ejection_time, Duration::from_secs(120));
    assert_eq!(app.passive.outlier_factor, 3.0);
    let orders = &config.listeners[0].routes[1];
    assert!(orders.retry_non_idempotent && orders.action == Action::Farm("app".into()));

    let cache = config.farm("cache").expect("farm cache");
    let tcp = cache.check.as_ref().expect("[farm.cache.check]");
    assert_eq!(tcp.kind, CheckKind::Tcp);
    assert_eq!(
        (tcp.interval, tcp.timeout, tcp.rise, tcp.fall),
        (Duration::from_secs(1), Duration::from_millis(250), 1, 2)
    );
    assert_eq!(tcp.jitter, Check::default().jitter);
}

#[test]
fn reports_example_takes_signed_pushes_and_expects_reports() {
    let c = example("reports.toml");
    assert!(c.admin.is_some());
    assert_eq!(
        c.reports.secret.as_ref().map(|s| s.expose().len()),
        Some(32)
    );
    assert_eq!(c.reports.window, Duration::from_secs(30));
    let app = c.farm("app").expect("farm app");
    assert_eq!(app.policy, PolicyKind::Adaptive);
    assert_eq!(app.reports.expect, Some(Duration::from_secs(5)));
    assert!(app.reports.orca && app.reports.orca_request);
    let batch = c.farm("batch").expect("farm batch");
    assert!(matches!(batch.policy, PolicyKind::Pipeline(ref s) if s.len() == 3));
}

#[test]
fn sticky_balanceid_is_the_classic_route_setup() {
    use drover_config::StickyMode;
    let config = example("sticky-balanceid.toml");
    assert_eq!(config.listeners[0].listen, vec![addr("127.0.0.1:8080")]);
    let farm = config.farm("app").expect("farm app");
    let members: Vec<(SocketAddr, Option<&str>)> = farm
        .members
        .iter()
        .map(|m| (m.addr, m.route.as_deref()))
        .collect();
    assert_eq!(
        members,
        [
            (addr("127.0.0.1:9001"), Some("http1")),
            (addr("127.0.0.1:9002"), Some("http2"))
        ]
    );
    let sticky = farm.sticky.as_ref().expect("[farm.app.sticky]");
    assert_eq!(sticky.mode, StickyMode::Route);
    assert_eq!(sticky.cookie.as_deref(), Some("BALANCEID"));
    assert!(sticky.nofailover);
}

#[test]
fn sticky_shows_insert_and_learn() {
    use drover_config::StickyMode;
    let config = example("sticky.toml");
    let shop = config.farm("shop").unwrap().sticky.as_ref().unwrap();
    assert_eq!(shop.mode, StickyMode::Insert);
    assert_eq!(shop.insert.keys.len(), 2);
    assert_eq!(shop.insert.max_age, Some(Duration::from_secs(8 * 3600)));
    let php = config.farm("php").unwrap().sticky.as_ref().unwrap();
    assert_eq!(php.mode, StickyMode::Learn);
    assert_eq!(php.redirects, vec![None, Some("p1".to_owned())]);
}

#[test]
fn cluster_examples_say_what_docs_cluster_md_says() {
    use drover_config::ClusterMode;
    let pair = example("cluster-pair.toml").cluster.expect("[cluster]");
    assert_eq!((pair.mode, pair.preempt), (ClusterMode::Pair, false));
    assert_eq!(pair.nodes.len(), 2);
    assert_eq!(pair.vips.len(), 1);
    assert_eq!(pair.advert_interval, Duration::from_millis(100));
    let pool = example("cluster-pool.toml").cluster.expect("[cluster]");
    assert_eq!((pool.mode, pool.preempt), (ClusterMode::Pool, true));
    assert_eq!(pool.nodes.len(), 3);
    assert_eq!(pool.vips.len(), 4);
    assert!(pool.vips.iter().any(|v| v.addr.is_ipv6()));
}
