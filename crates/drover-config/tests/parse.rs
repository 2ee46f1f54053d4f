//! Valid configs: every key lands in the model, and absent keys take their documented defaults.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use drover_config::{
    Action, Admin, Cidr, Config, Forwarding, Limits, Outage, Page, PathMatch, Server, Timeouts,
    parse_str,
};
use drover_core::{HashKey, MemberSpec, PolicyKind};

fn parse(text: &str) -> Config {
    parse_str(text, Path::new("test.toml")).unwrap_or_else(|e| panic!("\n{e}"))
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

const FULL: &str = r#"
[server]
threads = 4
grace = "10s"
state_file = "/var/lib/drover/state.json"
upgrade_socket = "/run/drover/upgrade.sock"

[admin]
listen = "127.0.0.1:9191"

[[listener]]
name = "web"
listen = ["0.0.0.0:8080", "[::1]:8080"]
farm = "app"
idle_timeout = "1m30s"
max_header_bytes = "32KiB"
max_headers = 200
max_uri_bytes = 4096
trusted_proxies = ["10.0.0.0/8", "::1", "192.0.2.7"]
forwarded_headers = "both"

[[listener.route]]
host = "Static.Example.com"
path = "/assets/"
farm = "static"

[[listener.route]]
path = "/admin"
exclude = true

[[listener.route]]
regex = "^/old/(.*)$"
redirect = "https://example.com/new/"
status = 301

[[listener.route]]
host = "*.example.org"
path = "/health"
respond = { status = 200, body = "ok\n" }

[[listener]]
listen = "127.0.0.1:8443"
farm = "static"

[farm.app]
policy = "hash"
hash_key = "header:X-User-Id"
hash_bound = 2
max_connections = 100
pool_idle_timeout = "30s"
max_idle_per_member = 8
connect_timeout = "500ms"
first_byte_timeout = "20s"
idle_timeout = "45s"
total_timeout = "5m"
retries = 2
preserve_host = false
rewrite_location = false

[[farm.app.members]]
name = "a"
address = "127.0.0.1:9001"
weight = 3
route = "node1"

[[farm.app.members]]
address = "127.0.0.1:9002"
enabled = false

[farm.app.outage]
page = { status = 502, body = "<h1>back soon</h1>", content_type = "text/html" }

[farm.static]
policy = "least-conn"
members = [{ address = "localhost:9101" }]
total_timeout = "0s"

[farm.static.outage]
redirect = "https://status.example.com/"
"#;

#[test]
fn full_config_round_trips_to_the_model() {
    let c = parse(FULL);
    assert_eq!(c.path, Path::new("test.toml"));
    assert_eq!(
        c.server,
        Server {
            threads: 4,
            grace: secs(10),
            state_file: Some("/var/lib/drover/state.json".into()),
            upgrade_socket: Some("/run/drover/upgrade.sock".into()),
        }
    );
    assert_eq!(
        c.admin,
        Some(Admin {
            listen: addr("127.0.0.1:9191"),
            ..Admin::default()
        })
    );

    assert_eq!(c.listeners.len(), 2);
    let web = &c.listeners[0];
    assert_eq!(web.name, "web");
    assert_eq!(web.listen, vec![addr("0.0.0.0:8080"), addr("[::1]:8080")]);
    assert_eq!(web.idle_timeout, secs(90));
    assert_eq!(
        web.limits,
        Limits {
            max_header_bytes: 32 * 1024,
            max_headers: 200,
            max_uri_bytes: 4096
        }
    );
    let cidrs: Vec<Cidr> = ["10.0.0.0/8", "::1/128", "192.0.2.7/32"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(web.trusted_proxies, cidrs);
    assert_eq!(
        web.forwarding,
        Forwarding {
            x_forwarded: true,
            forwarded: true
        }
    );

    let r = &web.routes;
    assert_eq!(
        r.len(),
        5,
        "four routes then the listener's farm as catch-all"
    );
    assert_eq!(r[0].host.as_deref(), Some("static.example.com"));
    assert!(matches!(&r[0].path, PathMatch::Prefix(p) if p == "/assets/"));
    assert_eq!(r[0].action, Action::Farm("static".into()));
    assert_eq!(r[1].action, Action::Exclude);
    assert!(matches!(&r[2].path, PathMatch::Regex(re) if re.is_match("/old/x")));
    assert_eq!(
        r[2].action,
        Action::Redirect {
            location: "https://example.com/new/".into(),
            status: 301
        }
    );
    assert_eq!(r[3].host.as_deref(), Some("*.example.org"));
    assert_eq!(
        r[3].action,
        Action::Respond(Page {
            status: 200,
            body: "ok\n".into(),
            content_type: Page::DEFAULT_CONTENT_TYPE.into()
        })
    );
    assert!(r[4].host.is_none() && matches!(r[4].path, PathMatch::Any));
    assert_eq!(r[4].action, Action::Farm("app".into()));
    assert_eq!(
        c.listeners[1].name, "listener2",
        "default name is 1-based position"
    );

    let names: Vec<&str> = c.farms.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["app", "static"], "file order");
    let app = c.farm("app").unwrap();
    assert_eq!(
        app.policy,
        PolicyKind::Hash {
            key: HashKey::Header("x-user-id".into()),
            bound: 2.0
        }
    );
    assert_eq!(
        app.members,
        vec![
            MemberSpec {
                name: "a".into(),
                addr: addr("127.0.0.1:9001"),
                weight: 3,
                route: Some("node1".into()),
                enabled: true,
            },
            MemberSpec {
                name: "127.0.0.1:9002".into(),
                addr: addr("127.0.0.1:9002"),
                weight: 1,
                route: None,
                enabled: false,
            },
        ]
    );
    assert_eq!(app.max_connections, 100);
    assert_eq!(app.pool_idle_timeout, secs(30));
    assert_eq!(app.max_idle_per_member, 8);
    assert_eq!(
        app.timeouts,
        Timeouts {
            connect: Duration::from_millis(500),
            first_byte: secs(20),
            idle: secs(45),
            total: Some(secs(300)),
        }
    );
    assert_eq!(app.retries, 2);
    assert!(!app.preserve_host && !app.rewrite_location);
    assert_eq!(
        app.outage,
        Outage::Page(Page {
            status: 502,
            body: "<h1>back soon</h1>".into(),
            content_type: "text/html".into()
        })
    );

    let st = c.farm("static").unwrap();
    assert_eq!(st.policy, PolicyKind::LeastConn);
    assert!(
        st.members[0].addr.ip().is_loopback(),
        "host names are resolved"
    );
    assert_eq!(st.members[0].name, "localhost:9101");
    assert_eq!(st.timeouts.total, None, "0s = no limit");
    assert_eq!(
        st.outage,
        Outage::Redirect("https://status.example.com/".into())
    );
}

#[test]
fn absent_keys_take_their_defaults() {
    let c = parse(
        r#"
[[listener]]
listen = "127.0.0.1:8080"
farm = "app"

[farm.app]
members = [{ address = "127.0.0.1:9001" }]
"#,
    );
    assert_eq!(
        c.server,
        Server {
            threads: 0,
            grace: secs(30),
            state_file: None,
            upgrade_socket: None,
        }
    );
    assert_eq!(c.admin, None, "no [admin], no admin listener");
    let l = &c.listeners[0];
    assert_eq!(l.name, "listener1");
    assert_eq!(l.idle_timeout, secs(60));
    assert_eq!(
        l.limits,
        Limits {
            max_header_bytes: 16 * 1024,
            max_headers: 100,
            max_uri_bytes: 8 * 1024
        }
    );
    assert!(l.trusted_proxies.is_empty());
    assert_eq!(
        l.forwarding,
        Forwarding {
            x_forwarded: true,
            forwarded: false
        }
    );

    let f = &c.farms[0];
    assert_eq!(f.policy, PolicyKind::Adaptive);
    let m = &f.members[0];
    assert_eq!(
        (m.name.as_str(), m.weight, m.route.as_ref(), m.enabled),
        ("127.0.0.1:9001", 1, None, true)
    );
    assert_eq!(f.max_connections, 0);
    assert_eq!(f.pool_idle_timeout, secs(60));
    assert_eq!(f.max_idle_per_member, 64);
    assert_eq!(
        f.timeouts,
        Timeouts {
            connect: secs(3),
            first_byte: secs(60),
            idle: secs(60),
            total: None
        }
    );
    assert_eq!(f.retries, 3);
    assert!(f.preserve_host && f.rewrite_location);
    assert_eq!(f.outage, Outage::Page(Page::unavailable()));
    assert_eq!(Outage::default(), Outage::Page(Page::unavailable()));
}

#[test]
fn admin_table_alone_listens_on_9090() {
    let c = parse(
        "[admin]\n[[listener]]\nlisten = \"127.0.0.1:80\"\n[[listener.route]]\nrespond = { status = 204 }\n",
    );
    assert_eq!(
        c.admin,
        Some(Admin {
            listen: addr("127.0.0.1:9090"),
            ..Admin::default()
        })
    );
    let Action::Respond(page) = &c.listeners[0].routes[0].action else {
        panic!("respond route")
    };
    assert_eq!((page.status, page.body.as_str()), (204, ""));
}

#[test]
fn every_policy_name_parses() {
    for name in PolicyKind::NAMES {
        let hash_key = if *name == "hash" {
            "hash_key = \"source\"\n"
        } else {
            ""
        };
        let c = parse(&format!(
            "[[listener]]\nlisten = \"127.0.0.1:80\"\nfarm = \"f\"\n[farm.f]\npolicy = \"{name}\"\n{hash_key}members = [{{ address = \"127.0.0.1:1\" }}]\n"
        ));
        assert_eq!(c.farms[0].policy.name(), *name);
    }
}

#[test]
fn hash_keys_and_bounds() {
    let farm = |key: &str, bound: &str| {
        let c = parse(&format!(
            "[[listener]]\nlisten = \"127.0.0.1:80\"\nfarm = \"f\"\n[farm.f]\npolicy = \"hash\"\nhash_key = \"{key}\"\n{bound}members = [{{ address = \"127.0.0.1:1\" }}]\n"
        ));
        c.farms[0].policy.clone()
    };
    assert_eq!(
        farm("source", ""),
        PolicyKind::Hash {
            key: HashKey::Source,
            bound: 1.25
        }
    );
    assert_eq!(
        farm("cookie:JSESSIONID", "hash_bound = 0\n"),
        PolicyKind::Hash {
            key: HashKey::Cookie("JSESSIONID".into()),
            bound: 0.0
        }
    );
    assert_eq!(
        farm("header:X-Tenant", "hash_bound = 1.5\n"),
        PolicyKind::Hash {
            key: HashKey::Header("x-tenant".into()),
            bound: 1.5
        }
    );
}

#[test]
fn outage_sorry_and_ports_zero() {
    let c = parse(
        r#"
[admin]
listen = "127.0.0.1:0"
[[listener]]
listen = ["127.0.0.1:0", "127.0.0.1:0"]
farm = "f"
[farm.f]
members = [{ address = "[::1]:9001" }]
[farm.f.outage]
sorry = "127.0.0.1:9999"
"#,
    );
    assert_eq!(c.farms[0].outage, Outage::Sorry(addr("127.0.0.1:9999")));
    assert_eq!(c.farms[0].members[0].addr, addr("[::1]:9001"));
    assert_eq!(c.listeners[0].listen.len(), 2, "port 0 never collides");
}

#[test]
fn sizes_accept_bare_integers() {
    let c = parse(
        "[[listener]]\nlisten = \"127.0.0.1:80\"\nfarm = \"f\"\nmax_header_bytes = 65536\nmax_uri_bytes = \"2KB\"\n[farm.f]\nmembers = [{ address = \"127.0.0.1:1\" }]\n",
    );
    assert_eq!(c.listeners[0].limits.max_header_bytes, 65536);
    assert_eq!(c.listeners[0].limits.max_uri_bytes, 2000);
}
