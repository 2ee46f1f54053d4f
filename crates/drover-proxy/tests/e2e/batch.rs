//! Writes deferred to the end of the worker's round (batch.rs): what the flusher cannot send
//! because the client is slow still arrives, whole and in order.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

/// Each answer's status and Content-Length, in order, and whether each body was complete.
fn answers(mut bytes: &[u8]) -> Vec<(u16, usize)> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let end = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a whole head")
            + 4;
        let head = std::str::from_utf8(&bytes[..end])
            .unwrap()
            .to_ascii_lowercase();
        let status: u16 = head[9..12].parse().unwrap();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .expect("a Content-Length")
            .trim()
            .parse()
            .unwrap();
        assert!(bytes.len() >= end + len, "answer {} cut short", out.len());
        out.push((status, len));
        bytes = &bytes[end + len..];
    }
    out
}

#[tokio::test]
async fn pipelined_answers_to_a_slow_reader_all_arrive_in_order() {
    let m = TestMember::start(MemberConfig::new("m")).await.unwrap();
    let proxy = drover(&simple_config("round-robin", &[&m]));
    // A 4 KiB receive window: drover's socket buffer fills long before 100 answers of ~256 KiB
    // are out, so the deferred writes meet a socket that takes no more.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut s = socket.connect(proxy.addr()).await.unwrap();
    const N: usize = 100;
    const BASE: usize = 256 * 1024;
    let mut requests = String::new();
    for i in 0..N {
        let close = if i == N - 1 {
            "Connection: close\r\n"
        } else {
            ""
        };
        requests.push_str(&format!(
            "GET /download?bytes={} HTTP/1.1\r\nHost: a\r\n{close}\r\n",
            BASE + i
        ));
    }
    s.write_all(requests.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(4 * DEADLINE, s.read_to_end(&mut got))
        .await
        .expect("all answers within the deadline")
        .unwrap();
    let answers = answers(&got);
    assert_eq!(answers.len(), N);
    for (i, (status, len)) in answers.into_iter().enumerate() {
        assert_eq!((status, len), (200, BASE + i), "answer {i}");
    }
    assert_eq!(m.requests(), N as u64);
}

#[tokio::test]
async fn many_small_answers_on_many_connections_all_arrive() {
    // Small answers are the ones deferred: 64 connections at once, 20 requests each, every
    // answer whole and from the member.
    let m = TestMember::start(MemberConfig::new("m")).await.unwrap();
    let proxy = drover(&simple_config("round-robin", &[&m]));
    let mut clients = Vec::new();
    for _ in 0..64 {
        let addr = proxy.addr();
        clients.push(tokio::spawn(async move {
            let mut sender = connect(addr).await;
            for _ in 0..20 {
                let r = send(&mut sender, get_request(addr, "/")).await;
                assert_eq!(r.status, 200);
                assert_eq!(member_of(&r), "m");
            }
        }));
    }
    for c in clients {
        c.await.unwrap();
    }
    assert_eq!(m.requests(), 64 * 20);
}
