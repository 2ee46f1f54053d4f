//! Request limits and malformed input: answered, never dropped.

use crate::common::*;

fn config(m: &TestMember) -> String {
    format!(
        "[[listener]]\nlisten = \"127.0.0.1:0\"\nfarm = \"app\"\nmax_header_bytes = \"8KiB\"\nmax_headers = 20\nmax_uri_bytes = \"1KiB\"\n[farm.app]\n{}",
        members_toml("app", &[m], |_| String::new())
    )
}

#[tokio::test]
async fn oversize_headers_get_431() {
    let m = TestMember::start(MemberConfig::new("m")).await.unwrap();
    let proxy = drover(&config(&m));
    let big = "x".repeat(20 * 1024);
    let (head, _) = raw_exchange(
        proxy.addr(),
        &format!("GET / HTTP/1.1\r\nHost: a\r\nX-Big: {big}\r\n\r\n"),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 431"), "{head}");
    let many: String = (0..40).map(|i| format!("X-H{i}: v\r\n")).collect();
    let (head, _) = raw_exchange(
        proxy.addr(),
        &format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n"),
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 431"), "too many headers: {head}");
    assert_eq!(m.requests(), 0);
}

#[tokio::test]
async fn long_uri_gets_414() {
    let m = TestMember::start(MemberConfig::new("m")).await.unwrap();
    let proxy = drover(&config(&m));
    let path = format!("/{}", "a".repeat(2000));
    let r = get(proxy.addr(), &path).await;
    assert_eq!(r.status, 414);
    assert_eq!(m.requests(), 0);
    assert_eq!(get(proxy.addr(), "/").await.status, 200, "still serving");
}

#[tokio::test]
async fn garbage_gets_400() {
    let m = TestMember::start(MemberConfig::new("m")).await.unwrap();
    let proxy = drover(&config(&m));
    let (head, _) = raw_exchange(proxy.addr(), "THIS IS NOT HTTP\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    assert_eq!(get(proxy.addr(), "/").await.status, 200, "still serving");
}
