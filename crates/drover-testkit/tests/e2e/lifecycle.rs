use std::io::ErrorKind;
use std::time::Duration;

use drover_testkit::{MemberConfig, TestMember, start_members};
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

use crate::common::{DEADLINE, assert_refused, connect, eventually, get, get_request, send};

#[tokio::test]
async fn keep_alive_reuses_one_connection() {
    let m = TestMember::start(MemberConfig::new("k")).await.unwrap();
    let mut c = connect(m.addr()).await;
    for _ in 0..10 {
        let r = send(&mut c, get_request(m.addr(), "/")).await;
        assert_eq!(r.status, StatusCode::OK);
    }
    assert_eq!(m.requests(), 10);
    assert_eq!(m.connections(), 1);
    get(m.addr(), "/").await;
    assert_eq!(m.connections(), 2);
}

#[tokio::test]
async fn kill_refuses_connects_and_breaks_requests_in_flight() {
    let m = TestMember::start(MemberConfig::new("k")).await.unwrap();
    let addr = m.addr();
    let mut slow = connect(addr).await;
    let in_flight = tokio::spawn(slow.send_request(get_request(addr, "/slow?ms=60000")));
    // An idle keep-alive connection must be dropped too.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .unwrap();
    eventually("both requests arrive", || m.requests() == 2).await;
    let mut head = [0u8; 12];
    idle.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");

    timeout(DEADLINE, m.kill()).await.expect("kill returns");
    assert_refused(addr).await;
    let res = timeout(DEADLINE, in_flight)
        .await
        .expect("in-flight request ends")
        .unwrap();
    assert!(res.is_err(), "the in-flight request was answered: {res:?}");
    let mut rest = Vec::new();
    let read = timeout(DEADLINE, idle.read_to_end(&mut rest))
        .await
        .expect("idle closed");
    // The closed socket reads as EOF or as a reset, depending on what was unread.
    if let Err(e) = read {
        assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}");
    }
}

#[tokio::test]
async fn a_killed_members_port_can_be_bound_again() {
    let m = TestMember::start(MemberConfig::new("first")).await.unwrap();
    let addr = m.addr();
    get(addr, "/").await;
    m.kill().await;
    let again = TestMember::start_on(addr, MemberConfig::new("second"))
        .await
        .unwrap();
    assert_eq!(again.addr(), addr);
    let r = get(addr, "/").await;
    assert_eq!(r.headers["x-member"], "second");
    again.stop().await;
    let third = TestMember::start_on(addr, MemberConfig::new("third"))
        .await
        .unwrap();
    assert_eq!(get(addr, "/").await.text(), "third\n");
    drop(third);
}

#[tokio::test]
async fn stop_finishes_requests_in_flight_then_refuses() {
    let m = TestMember::start(MemberConfig::new("g")).await.unwrap();
    let addr = m.addr();
    let mut c = connect(addr).await;
    let in_flight = tokio::spawn(c.send_request(get_request(addr, "/slow?ms=200")));
    eventually("the request arrives", || m.requests() == 1).await;
    timeout(DEADLINE, m.stop()).await.expect("stop returns");
    assert_refused(addr).await;
    let res = in_flight
        .await
        .unwrap()
        .expect("the in-flight request was answered");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-member"], "g");
}

#[tokio::test]
async fn hang_reads_the_request_but_never_answers() {
    let m = TestMember::start(MemberConfig::new("h").hang(true))
        .await
        .unwrap();
    let mut s = TcpStream::connect(m.addr()).await.unwrap();
    s.write_all(b"POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc")
        .await
        .unwrap();
    eventually("the hung request arrives", || m.requests() == 1).await;
    let mut buf = [0u8; 64];
    // Neither an answer nor a close: the read is still pending when the bound expires.
    assert!(
        timeout(Duration::from_millis(300), s.read(&mut buf))
            .await
            .is_err()
    );

    // Later requests are answered once the member stops hanging; the hung one stays hung.
    m.set_hang(false);
    assert_eq!(get(m.addr(), "/").await.status, StatusCode::OK);
    assert!(
        timeout(Duration::from_millis(50), s.read(&mut buf))
            .await
            .is_err()
    );
    m.set_hang(true);
    assert!(
        timeout(Duration::from_millis(300), get(m.addr(), "/"))
            .await
            .is_err()
    );
}

#[tokio::test]
async fn stop_abandons_hung_requests() {
    let m = TestMember::start(MemberConfig::new("h").hang(true))
        .await
        .unwrap();
    let mut s = TcpStream::connect(m.addr()).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
        .await
        .unwrap();
    eventually("the hung request arrives", || m.requests() == 1).await;
    timeout(DEADLINE, m.stop())
        .await
        .expect("stop returns despite the hung request");
    let mut rest = Vec::new();
    let n = timeout(DEADLINE, s.read_to_end(&mut rest))
        .await
        .expect("closed")
        .unwrap_or(0);
    assert_eq!(
        n,
        0,
        "a hung request got an answer: {:?}",
        String::from_utf8_lossy(&rest)
    );
}

#[tokio::test]
async fn dropping_the_handle_kills_the_member() {
    let m = TestMember::start(MemberConfig::new("d")).await.unwrap();
    let addr = m.addr();
    get(addr, "/").await;
    drop(m);
    let mut refused = false;
    eventually("the port refuses connections", || {
        // Polled from a sync closure: use a std connect, which is quick on loopback.
        refused = std::net::TcpStream::connect(addr)
            .is_err_and(|e| e.kind() == ErrorKind::ConnectionRefused);
        refused
    })
    .await;
    assert!(refused);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_on_a_multi_thread_runtime() {
    let members = start_members(3, |i| MemberConfig::new(format!("mt{i}")))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for m in &members {
        let addr = m.addr();
        tasks.push(tokio::spawn(async move {
            let mut c = connect(addr).await;
            for _ in 0..20 {
                assert_eq!(
                    send(&mut c, get_request(addr, "/")).await.status,
                    StatusCode::OK
                );
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for (i, m) in members.into_iter().enumerate() {
        assert_eq!(m.name(), format!("mt{i}"));
        assert_eq!(m.requests(), 20);
        assert_eq!(m.connections(), 1);
        let addr = m.addr();
        m.kill().await;
        assert_refused(addr).await;
    }
}

#[test]
fn starts_from_a_runtime_built_by_hand() {
    // As `drover demo` does: a multi-thread runtime owned by the caller, fixed addresses.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let m = TestMember::start_on(addr, MemberConfig::new("demo"))
            .await
            .unwrap();
        assert_eq!(m.addr(), addr);
        assert_eq!(get(addr, "/").await.text(), "demo\n");
        m.stop().await;
    });
}

#[tokio::test]
async fn an_invalid_config_is_refused() {
    for cfg in [
        MemberConfig::new("x").status(42),
        MemberConfig::new("x").fail_ratio(-0.1),
        MemberConfig::new("x").header("x y", "1"),
    ] {
        let err = TestMember::start(cfg).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    }
}
