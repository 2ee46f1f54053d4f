//! 100 MiB through the real binary, both ways, streamed: the member receives every byte of an
//! upload, the client every byte of a download (content checked), and drover's peak RSS stays
//! far below the body size, because nothing is buffered whole.

mod common;

use std::convert::Infallible;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{Drover, free_addr, one_member_config};
use drover_testkit::client::{connect, try_send};
use drover_testkit::{DOWNLOAD_PATTERN, MemberConfig, TestMember};
use http::Request;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;

const TOTAL: u64 = 100 * 1024 * 1024;
const CHUNK: usize = 64 * 1024;
/// Peak RSS drover may reach while moving 100 MiB each way.
const MAX_HWM: u64 = 64 * 1024 * 1024;
/// Bound on one 100 MiB transfer through a debug build on a busy machine.
const TRANSFER_DEADLINE: Duration = Duration::from_secs(120);

/// `CHUNK + 64` bytes of the download pattern: any in-phase slice of a download of up to `CHUNK`
/// bytes starting at offset `o` equals `reference[o % 64..][..len]`.
fn reference() -> Vec<u8> {
    (0..CHUNK + DOWNLOAD_PATTERN.len())
        .map(|i| DOWNLOAD_PATTERN[i % DOWNLOAD_PATTERN.len()])
        .collect()
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_mib_up_and_down_in_bounded_memory() {
    let member = TestMember::start(MemberConfig::new("m1"))
        .await
        .expect("member");
    let addr = free_addr();
    let mut drover = Drover::serve(&one_member_config(addr, "1s", member.addr(), ""));
    drover.wait_listening(addr).await;
    let hwm_at_start = drover.vm_hwm();

    // Upload: 1600 chunks of 64 KiB, all slices of one static buffer, produced only as hyper
    // pulls them; the test holds one chunk, never the body.
    static UP_CHUNK: [u8; CHUNK] = [b'u'; CHUNK];
    let chunks = TOTAL / CHUNK as u64;
    let stream = futures_util::stream::iter(
        (0..chunks).map(|_| Ok::<_, Infallible>(Frame::data(Bytes::from_static(&UP_CHUNK)))),
    );
    let req = Request::post("/upload")
        .header("host", addr.to_string())
        .header("content-length", TOTAL)
        .body(StreamBody::new(stream).boxed())
        .expect("request");
    let mut sender = connect(addr).await;
    let started = Instant::now();
    let reply = tokio::time::timeout(TRANSFER_DEADLINE, try_send(&mut sender, req))
        .await
        .expect("upload finishes in time")
        .expect("upload answered");
    let up_time = started.elapsed();
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(
        reply.text(),
        format!("m1 {TOTAL}\n"),
        "bytes the member received"
    );
    let hwm_after_upload = drover.vm_hwm();

    // Download on the same connection: count and check every byte as it streams.
    let req = Request::get(format!("/download?bytes={TOTAL}"))
        .header("host", addr.to_string())
        .body(http_body_util::Empty::new().boxed())
        .expect("request");
    let reference = reference();
    let started = Instant::now();
    let (received, frames) = tokio::time::timeout(TRANSFER_DEADLINE, async {
        sender.ready().await.expect("connection ready");
        let res = sender.send_request(req).await.expect("download answered");
        assert_eq!(res.status(), 200);
        assert_eq!(
            res.headers().get("content-length").map(|v| v.as_bytes()),
            Some(TOTAL.to_string().as_bytes()),
            "drover forwards the member's Content-Length"
        );
        let mut body = res.into_body();
        let (mut received, mut frames) = (0u64, 0u64);
        while let Some(frame) = body.frame().await {
            let frame = frame.expect("download body frame");
            let Ok(data) = frame.into_data() else { continue };
            // Compare in pieces of at most CHUNK against the in-phase reference.
            for piece in data.chunks(CHUNK) {
                let phase = (received % DOWNLOAD_PATTERN.len() as u64) as usize;
                assert!(
                    piece == &reference[phase..phase + piece.len()],
                    "download content differs from the pattern in the {} bytes at offset {received}",
                    piece.len()
                );
                received += piece.len() as u64;
            }
            frames += 1;
        }
        (received, frames)
    })
    .await
    .expect("download finishes in time");
    let down_time = started.elapsed();
    assert_eq!(received, TOTAL, "download length");
    let hwm = drover.vm_hwm();
    let rss = drover.vm_rss();

    println!(
        "100 MiB upload {up_time:?} ({:.0} MiB/s), download {down_time:?} ({:.0} MiB/s, {frames} frames)",
        mib(TOTAL) / up_time.as_secs_f64(),
        mib(TOTAL) / down_time.as_secs_f64()
    );
    println!(
        "drover VmHWM: {:.1} MiB at start, {:.1} MiB after the upload, {:.1} MiB after the download \
         (VmRSS now {:.1} MiB); limit {:.0} MiB",
        mib(hwm_at_start),
        mib(hwm_after_upload),
        mib(hwm),
        mib(rss),
        mib(MAX_HWM)
    );
    assert!(
        hwm < MAX_HWM,
        "drover peak RSS {:.1} MiB >= {:.0} MiB",
        mib(hwm),
        mib(MAX_HWM)
    );
}
