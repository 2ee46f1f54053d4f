//! Forwarding headers, hop-by-hop removal and Location rewriting.

use http::Request;
use http_body_util::{BodyExt, Empty};

use crate::common::*;

fn echo_line<'a>(body: &'a str, name: &str) -> Option<&'a str> {
    body.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(": ")))
}

async fn echo(addr: std::net::SocketAddr, headers: &[(&str, &str)]) -> String {
    let mut req = Request::get("/echo").header("host", "shop.example.com");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = send(
        &mut connect(addr).await,
        req.body(Empty::new().boxed()).unwrap(),
    )
    .await;
    assert_eq!(r.status, 200);
    r.text().to_owned()
}

#[tokio::test]
async fn forwarding_headers_trusted_and_untrusted() {
    let m = TestMember::start(MemberConfig::new("m")).await.unwrap();
    let toml = format!(
        r#"
[[listener]]
name = "public"
listen = "127.0.0.1:0"
farm = "app"
forwarded_headers = "both"

[[listener]]
name = "behind-cdn"
listen = "127.0.0.1:0"
farm = "app"
forwarded_headers = "both"
trusted_proxies = ["127.0.0.0/8"]

[farm.app]
{}"#,
        members_toml("app", &[&m], |_| String::new())
    );
    let proxy = drover(&toml);
    let public = proxy.listener_addrs()[0][0];
    let trusted = proxy.listener_addrs()[1][0];
    let spoof = [
        ("x-forwarded-for", "6.6.6.6"),
        ("forwarded", "for=6.6.6.6"),
        ("x-forwarded-proto", "https"),
        ("connection", "keep-alive, x-hop"),
        ("x-hop", "secret"),
        ("keep-alive", "timeout=5"),
    ];

    let body = echo(public, &spoof).await;
    assert_eq!(
        echo_line(&body, "x-forwarded-for"),
        Some("127.0.0.1"),
        "{body}"
    );
    assert_eq!(
        echo_line(&body, "x-forwarded-proto"),
        Some("http"),
        "{body}"
    );
    assert_eq!(
        echo_line(&body, "x-forwarded-host"),
        Some("shop.example.com"),
        "{body}"
    );
    assert_eq!(
        echo_line(&body, "forwarded"),
        Some("for=127.0.0.1;proto=http;host=shop.example.com"),
        "{body}"
    );
    assert_eq!(
        echo_line(&body, "host"),
        Some("shop.example.com"),
        "Host is preserved: {body}"
    );
    for hop in ["x-hop", "keep-alive", "connection"] {
        assert_eq!(
            echo_line(&body, hop),
            None,
            "{hop} must not be forwarded: {body}"
        );
    }

    let body = echo(trusted, &spoof).await;
    assert_eq!(
        echo_line(&body, "x-forwarded-for"),
        Some("6.6.6.6, 127.0.0.1"),
        "{body}"
    );
    assert_eq!(
        echo_line(&body, "x-forwarded-proto"),
        Some("https"),
        "a trusted proxy's proto stands: {body}"
    );
    assert_eq!(
        echo_line(&body, "forwarded"),
        Some("for=6.6.6.6, for=127.0.0.1;proto=http;host=shop.example.com"),
        "{body}"
    );
}

#[tokio::test]
async fn location_naming_the_member_is_rewritten() {
    let m = TestMember::start(MemberConfig::new("m")).await.unwrap();
    let proxy = drover(&simple_config("round-robin", &[&m]));
    let req = Request::get("/redirect?to=/cart/checkout")
        .header("host", "shop.example.com")
        .body(Empty::new().boxed())
        .unwrap();
    let r = send(&mut connect(proxy.addr()).await, req).await;
    assert_eq!(r.status, 302);
    assert_eq!(
        r.headers["location"],
        "http://shop.example.com/cart/checkout"
    );
    assert_eq!(
        r.headers["content-location"],
        "http://shop.example.com/cart/checkout"
    );

    let toml = format!(
        "[[listener]]\nlisten = \"127.0.0.1:0\"\nfarm = \"app\"\n[farm.app]\nrewrite_location = false\n{}",
        members_toml("app", &[&m], |_| String::new())
    );
    let plain = drover(&toml);
    let req = Request::get("/redirect?to=/x")
        .header("host", "shop.example.com")
        .body(Empty::new().boxed())
        .unwrap();
    let r = send(&mut connect(plain.addr()).await, req).await;
    assert_eq!(
        r.headers["location"],
        format!("http://{}/x", m.addr()).as_str()
    );
}

#[tokio::test]
async fn host_can_be_the_members_address() {
    let m = TestMember::start(MemberConfig::new("m")).await.unwrap();
    let toml = format!(
        "[[listener]]\nlisten = \"127.0.0.1:0\"\nfarm = \"app\"\n[farm.app]\npreserve_host = false\n{}",
        members_toml("app", &[&m], |_| String::new())
    );
    let proxy = drover(&toml);
    let body = echo(proxy.addr(), &[]).await;
    assert_eq!(
        echo_line(&body, "host"),
        Some(m.addr().to_string().as_str()),
        "{body}"
    );
    assert_eq!(
        echo_line(&body, "x-forwarded-host"),
        Some("shop.example.com"),
        "{body}"
    );
}
