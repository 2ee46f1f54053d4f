//! Malformed requests through the real binary: each gets its proper status (431, 414, 400), a log
//! line on stderr, and drover keeps serving normal requests afterwards.

mod common;

use common::{Drover, free_addr, one_member_config, raw_exchange, status_of};
use drover_testkit::client::get;
use drover_testkit::{MemberConfig, TestMember};

/// A drover with `max_header_bytes = "8KiB"` and `max_uri_bytes = "1KiB"` in front of one member.
async fn start() -> (TestMember, Drover, std::net::SocketAddr) {
    let member = TestMember::start(MemberConfig::new("m1"))
        .await
        .expect("member");
    let addr = free_addr();
    let mut drover = Drover::serve(&one_member_config(
        addr,
        "1s",
        member.addr(),
        "max_header_bytes = \"8KiB\"\nmax_uri_bytes = \"1KiB\"",
    ));
    drover.wait_listening(addr).await;
    (member, drover, addr)
}

/// drover's stderr is a file here: its log lines must be plain text, without colour escapes.
fn assert_plain(line: &str) {
    assert!(
        !line.contains('\x1b'),
        "ANSI escape codes in a log written to a file: {line:?}"
    );
}

/// A normal request still works, and reaches the member.
async fn still_serves(addr: std::net::SocketAddr, member: &TestMember, before: u64) {
    let reply = get(addr, "/").await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.text(), "m1\n");
    assert_eq!(
        member.requests(),
        before + 1,
        "only the normal request reached the member"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_header_gets_431() {
    let (member, drover, addr) = start().await;
    let since = drover.log_len();
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {addr}\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20 * 1024)
    );
    let response = raw_exchange(addr, request.as_bytes()).await;
    assert_eq!(status_of(&response), Some(431), "response: {response:?}");
    let line = drover
        .wait_for_log(since, &["malformed request", "127.0.0.1", "too large"])
        .await;
    println!("431 logged as: {line}");
    assert_plain(&line);
    still_serves(addr, &member, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_uri_gets_414() {
    let (member, drover, addr) = start().await;
    let since = drover.log_len();
    // 2 KiB of path: over max_uri_bytes (1KiB), well under max_header_bytes (8KiB).
    let request = format!(
        "GET /{} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n",
        "p".repeat(2 * 1024)
    );
    let response = raw_exchange(addr, request.as_bytes()).await;
    assert_eq!(status_of(&response), Some(414), "response: {response:?}");
    let line = drover.wait_for_log(since, &["414", "127.0.0.1"]).await;
    println!("414 logged as: {line}");
    assert_plain(&line);
    still_serves(addr, &member, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_request_line_gets_400() {
    let (member, drover, addr) = start().await;
    let since = drover.log_len();
    let response = raw_exchange(addr, b"this is not http\r\n\r\n").await;
    assert_eq!(status_of(&response), Some(400), "response: {response:?}");
    let line = drover
        .wait_for_log(since, &["malformed request", "127.0.0.1"])
        .await;
    println!("400 logged as: {line}");
    assert_plain(&line);
    still_serves(addr, &member, 0).await;
}
