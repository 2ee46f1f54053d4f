//! The access log through the real binary, over real sockets: combined lines parse as nginx's
//! and carry the right status and byte count; JSON lines parse and name the farm and member;
//! answers drover gives itself (404, 400, 431) are logged; SIGUSR1 after a rename moves the log
//! to a new file without losing a line; a reload keeps logging (same path: same file; new path:
//! the new file); the lines still buffered at SIGTERM are written before exit.
//!
//! Every wait polls the log file with a deadline (the writer thread writes what workers buffered
//! every 200 ms); nothing sleeps hoping for an outcome.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Drover, free_addr, raw_exchange, status_of, temp_path};
use drover_testkit::client::{DEADLINE, connect, eventually, get, send};
use drover_testkit::{MemberConfig, TestMember};
use http_body_util::{BodyExt, Empty};

/// A one-worker drover on `listen` in front of member `m1`, `/gone` excluded (404), logging to
/// `log` in `format`.
fn config(listen: SocketAddr, member: SocketAddr, log: &Path, format: &str) -> String {
    format!(
        r#"
[server]
threads = 1
grace = "2s"

[[listener]]
name = "web"
listen = "{listen}"
farm = "app"
max_header_bytes = "8KiB"
access_log = {{ path = {log:?}, format = "{format}" }}

[[listener.route]]
path = "/gone"
exclude = true

[farm.app]
policy = "round-robin"

[[farm.app.members]]
name = "m1"
address = "{member}"
"#,
        log = log.display().to_string(),
    )
}

/// The lines of `path` (none if it does not exist yet).
fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Polls until `path` holds at least `n` lines; returns them.
async fn wait_lines(path: &Path, n: usize) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let now = lines(path);
        if now.len() >= n {
            return now;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} has {} lines, not {n}, after {DEADLINE:?}:\n{}",
            path.display(),
            now.len(),
            now.join("\n")
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Removes the test's log files when it ends, passed or not.
struct Files(Vec<PathBuf>);

impl Drop for Files {
    fn drop(&mut self) {
        for f in &self.0 {
            let _ = std::fs::remove_file(f);
        }
    }
}

async fn start(format: &str) -> (TestMember, Drover, SocketAddr, PathBuf, Files) {
    let member = TestMember::start(MemberConfig::new("m1"))
        .await
        .expect("member");
    let addr = free_addr();
    let log = temp_path("access.log");
    let files = Files(vec![log.clone()]);
    let mut drover = Drover::serve(&config(addr, member.addr(), &log, format));
    drover.wait_listening(addr).await;
    (member, drover, addr, log, files)
}

/// GET `path` with a referer and a user agent (with a quote, which combined escapes).
async fn get_with_headers(addr: SocketAddr, path: &str) -> drover_testkit::client::Reply {
    let mut conn = connect(addr).await;
    let req = http::Request::get(path)
        .header("host", addr.to_string())
        .header("referer", "http://example.test/from")
        .header("user-agent", "probe/1.0 \"quoted\"")
        .body(Empty::new().boxed())
        .unwrap();
    send(&mut conn, req).await
}

/// nginx's combined format, one capture per field.
fn combined_regex() -> regex::Regex {
    regex::Regex::new(
        r#"^(?P<addr>\S+) - (?P<user>\S+) \[(?P<time>\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4})\] "(?P<request>[^"\\]*(?:\\.[^"\\]*)*)" (?P<status>\d{3}) (?P<bytes>\d+) "(?P<referer>[^"\\]*(?:\\.[^"\\]*)*)" "(?P<ua>[^"\\]*(?:\\.[^"\\]*)*)"$"#,
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn combined_lines_parse_and_count() {
    let (member, _drover, addr, log, _files) = start("combined").await;
    let ok = get_with_headers(addr, "/hello?x=1").await;
    assert_eq!((ok.status.as_u16(), ok.text()), (200, "m1\n"));
    let gone = get(addr, "/gone/x").await;
    assert_eq!(gone.status, 404);
    // Answered by drover's handler: HTTP/1.1 without Host.
    let bad = raw_exchange(addr, b"GET /nohost HTTP/1.1\r\n\r\n").await;
    assert_eq!(status_of(&bad), Some(400), "{bad}");
    // Answered by hyper itself: a head past max_header_bytes.
    let big = format!(
        "GET /big HTTP/1.1\r\nHost: {addr}\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20 * 1024)
    );
    let big = raw_exchange(addr, big.as_bytes()).await;
    assert_eq!(status_of(&big), Some(431), "{big}");
    assert_eq!(member.requests(), 1, "only the first request was proxied");

    let got = wait_lines(&log, 4).await;
    assert_eq!(got.len(), 4, "{got:#?}");
    let re = combined_regex();
    let fields: Vec<regex::Captures<'_>> = got
        .iter()
        .map(|l| {
            re.captures(l)
                .unwrap_or_else(|| panic!("not combined: {l:?}"))
        })
        .collect();
    for c in &fields {
        assert_eq!(&c["addr"], "127.0.0.1");
        assert_eq!(&c["user"], "-");
    }
    // Lines are written as requests end; these ended one after the other.
    let ok = fields
        .iter()
        .find(|c| c["request"].contains("/hello"))
        .unwrap();
    assert_eq!(&ok["request"], "GET /hello?x=1 HTTP/1.1");
    assert_eq!(&ok["status"], "200");
    assert_eq!(&ok["bytes"], "3", "the member's body is \"m1\\n\"");
    assert_eq!(&ok["referer"], "http://example.test/from");
    assert_eq!(&ok["ua"], r#"probe/1.0 \x22quoted\x22"#);
    let gone = fields
        .iter()
        .find(|c| c["request"].contains("/gone"))
        .unwrap();
    assert_eq!(&gone["status"], "404");
    assert_eq!(&gone["bytes"], "14", "\"404 Not Found\\n\"");
    assert_eq!(&gone["ua"], "-");
    let bad = fields
        .iter()
        .find(|c| c["request"].contains("/nohost"))
        .unwrap();
    assert_eq!(&bad["status"], "400");
    let big = fields.iter().find(|c| &c["status"] == "431").unwrap();
    assert_eq!(
        &big["request"], "-",
        "hyper refused the head: no request line"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_parse_with_farm_and_member() {
    let (_member, _drover, addr, log, _files) = start("json").await;
    assert_eq!(get_with_headers(addr, "/j").await.status, 200);
    assert_eq!(get(addr, "/gone").await.status, 404);
    let got = wait_lines(&log, 2).await;
    let parsed: Vec<serde_json::Value> = got
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let ok = parsed
        .iter()
        .find(|v| v["uri"] == "/j")
        .expect("the /j line");
    assert_eq!(ok["status"], 200);
    assert_eq!(ok["body_bytes_sent"], 3);
    assert_eq!(ok["request"], "GET /j HTTP/1.1");
    assert_eq!(ok["method"], "GET");
    assert_eq!(ok["remote_addr"], "127.0.0.1");
    assert_eq!(ok["http_user_agent"], "probe/1.0 \"quoted\"");
    assert_eq!(ok["http_referer"], "http://example.test/from");
    assert_eq!(ok["listener"], "web");
    assert_eq!(ok["farm"], "app");
    assert_eq!(ok["member"], "m1");
    assert_eq!(ok["retries"], 0);
    assert_eq!(ok["completed"], true);
    assert_eq!(
        ok["route"], 1,
        "the farm catch-all comes after the one [[listener.route]]"
    );
    assert!(ok["upstream_time"].as_f64().is_some(), "{ok}");
    assert!(
        ok["request_time"].as_f64().unwrap() >= ok["upstream_time"].as_f64().unwrap(),
        "{ok}"
    );
    assert!(ok["time"].as_str().unwrap().ends_with('Z'), "{ok}");
    let gone = parsed.iter().find(|v| v["uri"] == "/gone").expect("/gone");
    assert_eq!(gone["status"], 404);
    assert_eq!(gone["route"], 0);
    assert_eq!(gone["farm"], serde_json::Value::Null);
    assert_eq!(gone["member"], serde_json::Value::Null);
    assert_eq!(gone["upstream_time"], serde_json::Value::Null);
}

/// `n` sequential GETs on one keep-alive connection, each answered 200.
async fn requests(addr: SocketAddr, n: usize, tag: &str) {
    let mut conn = connect(addr).await;
    for i in 0..n {
        let req = drover_testkit::client::get_request(addr, &format!("/{tag}/{i}"));
        assert_eq!(send(&mut conn, req).await.status, 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigusr1_reopens_after_rename_and_loses_nothing() {
    let (_member, drover, addr, log, mut files) = start("combined").await;
    let rotated = log.with_extension("log.1");
    files.0.push(rotated.clone());
    requests(addr, 50, "before").await;
    wait_lines(&log, 50).await;
    // As logrotate does: rename, then signal. Lines keep going to the renamed file until the
    // reopen (the writer holds it open); after it, to a new file at the configured path.
    std::fs::rename(&log, &rotated).unwrap();
    requests(addr, 20, "between").await;
    let since = drover.log_len();
    drover.signal("USR1");
    drover.wait_for_log(since, &["access log reopened"]).await;
    eventually("a new file at the configured path", || log.exists()).await;
    requests(addr, 30, "after").await;
    // The 20 in between went to whichever file was open when the writer wrote them.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while lines(&log).len() + lines(&rotated).len() < 100 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} + {} lines, not 100",
            lines(&rotated).len(),
            lines(&log).len()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (old, new) = (lines(&rotated), lines(&log));
    assert!(
        new.iter().all(|l| !l.contains("/before/")),
        "no line logged before the rename is in the new file"
    );
    assert_eq!(new.iter().filter(|l| l.contains("/after/")).count(), 30);
    assert!(old.iter().all(|l| !l.contains("/after/")), "{old:#?}");
    // Every request once, in one file or the other.
    assert_eq!(old.len() + new.len(), 100, "old:\n{old:#?}\nnew:\n{new:#?}");
    let mut all: Vec<&String> = old.iter().chain(&new).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_buffered_lines() {
    let (_member, mut drover, addr, log, _files) = start("json").await;
    requests(addr, 40, "x").await;
    drover.signal("TERM");
    let status = drover.wait_exit(DEADLINE).await.expect("drover exits");
    assert!(status.success(), "{status}");
    assert_eq!(lines(&log).len(), 40, "every line written before exit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_keeps_logging() {
    let (member, drover, addr, log, mut files) = start("combined").await;
    let path = drover.config_path().unwrap().to_owned();
    requests(addr, 10, "first").await;
    wait_lines(&log, 10).await;

    // Same path, the format changed: the same file goes on, now with JSON lines.
    std::fs::write(&path, config(addr, member.addr(), &log, "json")).unwrap();
    let since = drover.log_len();
    drover.signal("HUP");
    drover.wait_for_log(since, &["config reloaded"]).await;
    requests(addr, 10, "second").await;
    let got = wait_lines(&log, 20).await;
    assert_eq!(got.len(), 20, "{got:#?}");
    assert!(got[..10].iter().all(|l| l.contains("/first/")));
    for l in &got[10..] {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        assert!(v["uri"].as_str().unwrap().starts_with("/second/"), "{v}");
    }

    // A new path: it is opened, and the old file gets nothing more.
    let moved = temp_path("moved.log");
    files.0.push(moved.clone());
    std::fs::write(&path, config(addr, member.addr(), &moved, "combined")).unwrap();
    let since = drover.log_len();
    drover.signal("HUP");
    drover.wait_for_log(since, &["config reloaded"]).await;
    requests(addr, 10, "third").await;
    let third = wait_lines(&moved, 10).await;
    assert!(third.iter().all(|l| l.contains("/third/")), "{third:#?}");
    assert_eq!(lines(&log).len(), 20, "the old path is no longer written");
}
