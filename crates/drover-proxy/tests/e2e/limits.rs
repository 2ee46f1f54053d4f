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

fn idle_config(m: &TestMember) -> String {
    format!(
        "[[listener]]\nlisten = \"127.0.0.1:0\"\nfarm = \"app\"\nidle_timeout = \"300ms\"\n[farm.app]\n{}",
        members_toml("app", &[m], |_| String::new())
    )
}

/// Reads until the server closes the connection; returns how long that took.
async fn closed_after(stream: &mut tokio::net::TcpStream) -> std::time::Duration {
    use tokio::io::AsyncReadExt;
    let t = std::time::Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(DEADLINE, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return t.elapsed(),
            Ok(Ok(_)) => continue,
            Err(_) => panic!("drover did not close the connection within {DEADLINE:?}"),
        }
    }
}

#[tokio::test]
async fn idle_keep_alive_connections_are_closed() {
    use tokio::io::AsyncWriteExt;
    let m = TestMember::start(MemberConfig::new("m")).await.unwrap();
    let proxy = drover(&idle_config(&m));
    let mut s = tokio::net::TcpStream::connect(proxy.addr()).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let took = closed_after(&mut s).await;
    assert!(
        took >= std::time::Duration::from_millis(300),
        "closed after {took:?}"
    );
    assert_eq!(m.requests(), 1);
}

#[tokio::test]
async fn a_request_head_trickled_byte_by_byte_is_cut_off() {
    use tokio::io::AsyncWriteExt;
    let m = TestMember::start(MemberConfig::new("m")).await.unwrap();
    let proxy = drover(&idle_config(&m));
    let mut s = tokio::net::TcpStream::connect(proxy.addr()).await.unwrap();
    let trickle = async {
        // Bounded: 200 bytes at 20 ms each is 4 s, far past the 300 ms limit.
        for b in b"GET / HTTP/1.1\r\nX-Slow: "
            .iter()
            .chain([b'a'; 176].iter())
        {
            if s.write_all(&[*b]).await.is_err() {
                return true;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        false
    };
    assert!(
        tokio::time::timeout(DEADLINE, trickle).await.unwrap(),
        "drover kept reading a head that never ends"
    );
    assert_eq!(m.requests(), 0);
}

#[tokio::test]
async fn a_slow_member_is_not_an_idle_client() {
    let m = TestMember::start(MemberConfig::new("m")).await.unwrap();
    let proxy = drover(&idle_config(&m));
    let r = get(proxy.addr(), "/slow?ms=900").await;
    assert_eq!(
        r.status,
        200,
        "a request waiting on its member is not idle: {}",
        r.text()
    );
}

#[tokio::test]
async fn host_must_be_single_valid_and_present_in_http_1_1() {
    let m = TestMember::start(MemberConfig::new("m")).await.unwrap();
    let proxy = drover(&config(&m));
    for (what, request) in [
        (
            "two Host headers",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        ),
        ("no Host", "GET / HTTP/1.1\r\n\r\n"),
        (
            "a Host with a list in it",
            "GET / HTTP/1.1\r\nHost: x, for=10.0.0.1\r\n\r\n",
        ),
    ] {
        let (head, _) = raw_exchange(proxy.addr(), request).await;
        assert!(head.starts_with("HTTP/1.1 400"), "{what}: {head}");
    }
    assert_eq!(m.requests(), 0);
    let (head, body) = raw_exchange(proxy.addr(), "GET /echo HTTP/1.0\r\n\r\n").await;
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "HTTP/1.0 needs no Host: {head}"
    );
    assert!(
        body.contains(&format!("host: {}", m.addr())),
        "the member still gets a Host: {body}"
    );
    let (head, body) = raw_exchange(
        proxy.addr(),
        "GET http://shop.example.com/echo HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        body.contains("host: shop.example.com"),
        "absolute-form: the target's authority is the Host: {body}"
    );
}

/// The listening sockets of this process bound to `addr` (drover runs in the test's process):
/// each one's `TCP_DEFER_ACCEPT` value.
fn defer_accept_of(addr: std::net::SocketAddr) -> Vec<libc::c_int> {
    use std::os::fd::AsRawFd;
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc/self/fd").unwrap().flatten() {
        let Ok(fd) = entry.file_name().to_string_lossy().parse::<libc::c_int>() else {
            continue;
        };
        // SAFETY: borrowed for the duration of this loop body only; the fd may be any kind,
        // socket2 reports an error for what is not a socket.
        let sock = std::mem::ManuallyDrop::new(unsafe {
            <socket2::Socket as std::os::fd::FromRawFd>::from_raw_fd(fd)
        });
        let listening = sock.is_listener().unwrap_or(false);
        let local = sock.local_addr().ok().and_then(|a| a.as_socket());
        if !listening || local != Some(addr) {
            continue;
        }
        let mut value: libc::c_int = -1;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: a listening socket, a c_int and its size.
        let r = unsafe {
            libc::getsockopt(
                sock.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_DEFER_ACCEPT,
                std::ptr::from_mut(&mut value).cast(),
                &mut len,
            )
        };
        assert_eq!(r, 0, "getsockopt: {}", std::io::Error::last_os_error());
        found.push(value);
    }
    found
}

#[tokio::test]
async fn listening_sockets_defer_accept_unless_turned_off() {
    let m = TestMember::start(MemberConfig::new("m")).await.unwrap();
    let on = drover(&config(&m));
    let defers = defer_accept_of(on.addr());
    assert!(
        !defers.is_empty(),
        "no listening socket found for {}",
        on.addr()
    );
    assert!(defers.iter().all(|&v| v > 0), "default on: {defers:?}");
    // A client that connects first and speaks later is served.
    let (head, _) = raw_exchange(
        on.addr(),
        "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");

    let off =
        drover(&config(&m).replace("farm = \"app\"\n", "farm = \"app\"\ndefer_accept = false\n"));
    let defers = defer_accept_of(off.addr());
    assert!(
        !defers.is_empty(),
        "no listening socket found for {}",
        off.addr()
    );
    assert!(defers.iter().all(|&v| v == 0), "turned off: {defers:?}");
}

#[tokio::test]
async fn a_silent_client_is_still_closed_with_defer_accept() {
    // The kernel holds a client that sends nothing for about a second, then hands it over
    // anyway; the idle timeout closes it from there. It does not sit in the kernel for ever.
    let m = TestMember::start(MemberConfig::new("m")).await.unwrap();
    let proxy = drover(&idle_config(&m));
    let mut silent = tokio::net::TcpStream::connect(proxy.addr()).await.unwrap();
    let took = closed_after(&mut silent).await;
    assert!(
        took >= std::time::Duration::from_millis(300),
        "closed after {took:?}"
    );
    assert_eq!(m.requests(), 0);
}
