//! Graceful shutdown of the real binary: SIGTERM stops accepting at once, lets in-flight requests
//! finish, and exits 0; the grace period bounds how long that takes when a member never answers.

mod common;

use std::time::{Duration, Instant};

use common::{Drover, free_addr, one_member_config};
use drover_testkit::client::{DEADLINE, connect, eventually, get_request, try_send};
use drover_testkit::{MemberConfig, TestMember};

fn config(listen: std::net::SocketAddr, grace: &str, member: &TestMember) -> String {
    one_member_config(listen, grace, member.addr(), "")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_requests_complete_across_sigterm() {
    let member = TestMember::start(MemberConfig::new("m1"))
        .await
        .expect("member");
    let addr = free_addr();
    let mut drover = Drover::serve(&config(addr, "10s", &member));
    drover.wait_listening(addr).await;

    // Three slow requests, each on its own client connection.
    let mut clients = Vec::new();
    for _ in 0..3 {
        let mut sender = connect(addr).await;
        clients.push(tokio::spawn(async move {
            try_send(&mut sender, get_request(addr, "/slow?ms=1500")).await
        }));
    }
    eventually("the member received the 3 slow requests", || {
        member.requests() == 3
    })
    .await;

    let signalled = Instant::now();
    drover.signal("TERM");

    // New connections are refused soon, while the slow requests are still being answered.
    let deadline = Instant::now() + DEADLINE;
    loop {
        match tokio::net::TcpStream::connect(addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
            // A connect that raced the listener's close was reset from the accept queue: the
            // listener is going; keep polling until connects are refused outright.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("unexpected connect error after SIGTERM: {e}"),
            Ok(_) => {}
        }
        assert!(
            Instant::now() < deadline,
            "drover still accepts connections {DEADLINE:?} after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let refused_after = signalled.elapsed();
    assert!(
        drover.try_status().is_none(),
        "drover had already exited when connections were first refused ({refused_after:?} after SIGTERM): \
         it did not wait for the in-flight requests"
    );
    assert!(
        clients.iter().all(|c| !c.is_finished()),
        "an in-flight request finished before new connections were refused ({refused_after:?} after SIGTERM)"
    );

    for (i, client) in clients.into_iter().enumerate() {
        let reply = tokio::time::timeout(DEADLINE, client)
            .await
            .unwrap_or_else(|_| panic!("request {i} not answered within {DEADLINE:?}"))
            .expect("client task")
            .unwrap_or_else(|e| panic!("request {i} failed across SIGTERM: {e}"));
        assert_eq!(reply.status, 200, "request {i}: {:?}", reply.body);
        assert_eq!(reply.text(), "m1\n", "request {i}");
        assert_eq!(
            reply.headers.get("x-member").map(|v| v.as_bytes()),
            Some(&b"m1"[..])
        );
    }

    let status = drover
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("drover exits within the grace period (10s) once the in-flight requests are done");
    let exited_after = signalled.elapsed();
    println!(
        "connections refused {refused_after:?} after SIGTERM; drover exited after {exited_after:?}"
    );
    assert!(
        status.success(),
        "drover exit status after SIGTERM: {status}"
    );
    assert_eq!(
        member.requests(),
        3,
        "the connect attempts after SIGTERM reached no member"
    );
    let log = drover.stderr();
    assert!(log.contains("shutting down"), "log:\n{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grace_period_bounds_shutdown_when_a_member_hangs() {
    let member = TestMember::start(MemberConfig::new("m1").hang(true))
        .await
        .expect("member");
    let addr = free_addr();
    let mut drover = Drover::serve(&config(addr, "1s", &member));
    drover.wait_listening(addr).await;

    let mut sender = connect(addr).await;
    let client = tokio::spawn(async move { try_send(&mut sender, get_request(addr, "/")).await });
    eventually("the member received the request", || member.requests() == 1).await;

    let signalled = Instant::now();
    drover.signal("TERM");
    let status = drover.wait_exit(DEADLINE).await.unwrap_or_else(|| {
        panic!("drover still running {DEADLINE:?} after SIGTERM with grace = 1s")
    });
    let exited_after = signalled.elapsed();
    println!("grace = 1s, a request hung: drover exited {exited_after:?} after SIGTERM ({status})");
    assert!(
        status.success(),
        "drover exit status after SIGTERM: {status}"
    );
    // Not before the grace period: the hung request was given its second.
    assert!(
        exited_after >= Duration::from_millis(900),
        "drover exited {exited_after:?} after SIGTERM, before the 1s grace period was over"
    );

    // The hung request gets no member answer; its connection ends with drover.
    let reply = tokio::time::timeout(DEADLINE, client)
        .await
        .expect("the client connection ends once drover has exited")
        .expect("client task");
    match reply {
        Ok(r) => assert_ne!(
            r.status, 200,
            "a hung member cannot have answered: {:?}",
            r.body
        ),
        Err(e) => println!("hung request ended with: {e}"),
    }
    let log = drover.stderr();
    assert!(log.contains("grace period over"), "log:\n{log}");
}
