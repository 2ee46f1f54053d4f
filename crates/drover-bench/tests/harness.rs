//! The harness over real sockets without drover: the oracle route against sleepy members (the
//! generator, the shared queues, the per-member share), and the configs it writes, loaded by
//! drover-config itself. Short runs; nothing here asserts a latency figure.

use std::time::Duration;

use drover_bench::drover::{ConfigMember, ConfigSpec, ReportKeys, config_toml};
use drover_bench::generator::{self, Load, OracleMember, Route};
use drover_bench::scenario;
use drover_testkit::SleepyMember;

fn load(rate: f64) -> Load {
    Load {
        rate,
        warmup: Duration::from_millis(200),
        window: Duration::from_millis(1500),
        seed: 7,
        timeout: Duration::from_secs(1),
        lag_threshold: Duration::from_millis(50),
        max_late_share: 0.5,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oracle_route_sends_to_members_and_measures() {
    let sc = &scenario::by_name("m", Duration::ZERO, Duration::from_secs(2)).unwrap()[0];
    let mut members = Vec::new();
    for cfg in &sc.members {
        members.push(SleepyMember::start(cfg.clone()).await.unwrap());
    }
    let route = Route::Oracle {
        members: members
            .iter()
            .map(|m| OracleMember {
                addr: m.addr(),
                queue: m.queue(),
                probe: m.probe(),
            })
            .collect(),
        by_wait: false,
    };
    let r = generator::run(&route, &load(200.0)).await.unwrap();
    // ~300 requests expected in 1.5 s at 200 req/s; Poisson, so a wide band.
    assert!((150..500).contains(&r.requests), "{}", r.requests);
    assert_eq!(r.ok + r.errors, r.requests, "{:?}", r.errors_by_kind);
    assert_eq!(r.errors, 0, "{:?}", r.errors_by_kind);
    assert_eq!(r.share.values().sum::<u64>(), r.requests);
    assert!(r.share.len() >= 3, "the oracle spreads: {:?}", r.share);
    assert!(r.p50_ms > 0.0 && r.p50_ms <= r.p99_ms && r.p99_ms <= r.p999_ms);
    let served: u64 = members.iter().map(|m| m.served()).sum();
    assert!(served >= r.requests, "warm-up requests are served too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_seed_same_arrivals() {
    let m = SleepyMember::start(
        drover_testkit::SleepyConfig::new("x").service(Duration::from_millis(1), 0.0),
    )
    .await
    .unwrap();
    let route = Route::Oracle {
        members: vec![OracleMember {
            addr: m.addr(),
            queue: m.queue(),
            probe: m.probe(),
        }],
        by_wait: true,
    };
    let a = generator::run(&route, &load(300.0)).await.unwrap();
    let b = generator::run(&route, &load(300.0)).await.unwrap();
    assert_eq!(a.requests, b.requests);
}

#[test]
fn written_configs_load_in_drover_config() {
    let dir = std::env::temp_dir().join(format!("drover-bench-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let members: Vec<ConfigMember> = (1..=5)
        .map(|i| ConfigMember {
            name: format!("B{i}"),
            addr: format!("127.0.0.1:{}", 9000 + i).parse().unwrap(),
            agent_port: Some(9100 + i),
        })
        .collect();
    for policy in ["round-robin", "least-conn", "p2c", "peak-ewma", "adaptive"] {
        let spec = ConfigSpec {
            policy,
            threads: 1,
            members: &members,
            reports: &ReportKeys {
                secret: None,
                expect: None,
                agent_interval: Some(Duration::from_secs(1)),
            },
            farm_extra: &[],
        };
        let text = config_toml(
            &spec,
            "127.0.0.1:18000".parse().unwrap(),
            "127.0.0.1:18001".parse().unwrap(),
        );
        let path = dir.join(format!("{policy}.toml"));
        std::fs::write(&path, &text).unwrap();
        if let Err(e) = drover_config::load(&path) {
            panic!("{policy}: {e}\n{text}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
