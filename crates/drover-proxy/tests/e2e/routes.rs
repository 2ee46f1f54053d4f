//! Routes: host, prefix, regex, exclusion, redirect and fixed answers.

use http::Request;
use http_body_util::{BodyExt, Empty};

use crate::common::*;

#[tokio::test]
async fn routes_match_in_order() {
    let ms = start(&["api", "img", "www"]).await;
    let toml = format!(
        r#"
[[listener]]
listen = "127.0.0.1:0"

[[listener.route]]
path = "/api/private"
exclude = true

[[listener.route]]
host = "api.example.com"
farm = "api"

[[listener.route]]
path = "/api"
farm = "api"

[[listener.route]]
regex = '\.(png|jpg)$'
farm = "img"

[[listener.route]]
path = "/old"
redirect = "https://example.com/new"
status = 301

[[listener.route]]
path = "/ping"
respond = {{ status = 200, body = "pong", content_type = "text/plain" }}

[[listener.route]]
farm = "www"

[farm.api]
{}
[farm.img]
{}
[farm.www]
{}
"#,
        members_toml("api", &[&ms[0]], |_| String::new()),
        members_toml("img", &[&ms[1]], |_| String::new()),
        members_toml("www", &[&ms[2]], |_| String::new()),
    );
    let proxy = drover(&toml);
    let addr = proxy.addr();
    let via = |host: &'static str, path: &'static str| async move {
        let req = Request::get(path)
            .header("host", host)
            .body(Empty::new().boxed())
            .unwrap();
        send(&mut connect(addr).await, req).await
    };
    assert_eq!(member_of(&via("x", "/api/users").await), "api");
    assert_eq!(member_of(&via("API.example.com:80", "/").await), "api");
    assert_eq!(member_of(&via("x", "/logo.png").await), "img");
    assert_eq!(
        member_of(&via("x", "/apiary").await),
        "www",
        "prefixes match whole segments"
    );
    assert_eq!(via("x", "/api/private/keys").await.status, 404);
    let r = via("x", "/old").await;
    assert_eq!(
        (r.status.as_u16(), r.headers["location"].to_str().unwrap()),
        (301, "https://example.com/new")
    );
    let r = via("x", "/ping").await;
    assert_eq!((r.status.as_u16(), r.text()), (200, "pong"));
    assert_eq!(ms[0].requests(), 2, "excluded paths never reach the farm");
}

#[tokio::test]
async fn listens_on_ipv6_loopback() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: no IPv6 loopback on this machine");
        return;
    }
    let m = TestMember::start(MemberConfig::new("m")).await.unwrap();
    let toml = format!(
        "[[listener]]\nlisten = [\"[::1]:0\", \"127.0.0.1:0\"]\nfarm = \"app\"\n[farm.app]\n{}",
        members_toml("app", &[&m], |_| String::new())
    );
    let proxy = drover(&toml);
    let addrs = proxy.listener_addrs()[0].clone();
    assert!(addrs[0].is_ipv6());
    for a in addrs {
        let r = get(a, "/echo").await;
        assert_eq!(r.status, 200);
        if a.is_ipv6() {
            assert!(r.text().contains("x-forwarded-for: ::1"), "{}", r.text());
        }
    }
}
