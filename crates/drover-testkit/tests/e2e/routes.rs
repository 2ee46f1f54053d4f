use std::convert::Infallible;
use std::time::{Duration, Instant};

use bytes::Bytes;
use drover_testkit::{DOWNLOAD_PATTERN, Latency, MemberConfig, TestMember};
use futures_util::stream;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;

use crate::common::{connect, get, get_request, raw_exchange, send};

#[tokio::test]
async fn default_answer_names_the_member_with_configured_headers_and_cookies() {
    let cfg = MemberConfig::new("m1")
        .set_cookie("JSESSIONID=abc.m1; Path=/")
        .set_cookie("BALANCEID=balancer.m1")
        .header("X-Load", "cpu=0.5");
    let m = TestMember::start(cfg).await.unwrap();
    assert_eq!(m.name(), "m1");
    let r = get(m.addr(), "/any/path?x=1").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["x-member"], "m1");
    assert_eq!(r.headers["x-load"], "cpu=0.5");
    let cookies: Vec<_> = r.headers.get_all("set-cookie").iter().collect();
    assert_eq!(
        cookies,
        ["JSESSIONID=abc.m1; Path=/", "BALANCEID=balancer.m1"]
    );
    assert_eq!(r.text(), "m1\n");
    assert_eq!(m.requests(), 1);
}

#[tokio::test]
async fn configured_status_and_status_changed_at_run_time() {
    let m = TestMember::start(MemberConfig::new("s").status(503))
        .await
        .unwrap();
    let r = get(m.addr(), "/").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.text(), "s\n");
    m.set_status(201);
    assert_eq!(get(m.addr(), "/").await.status, StatusCode::CREATED);
}

#[tokio::test]
async fn echo_lists_the_request_line_and_headers_as_received() {
    let m = TestMember::start(MemberConfig::new("e")).await.unwrap();
    let (head, body) = raw_exchange(
        m.addr(),
        "GET /echo?q=1 HTTP/1.1\r\nHost: app.example\r\nX-Forwarded-For: 10.0.0.1, 10.0.0.2\r\n\
         Forwarded: for=10.0.0.1;proto=http\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("\r\nx-member: e"),
        "{head}"
    );
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(
        lines,
        [
            "e",
            "GET /echo?q=1 HTTP/1.1",
            "host: app.example",
            "x-forwarded-for: 10.0.0.1, 10.0.0.2",
            "forwarded: for=10.0.0.1;proto=http",
            "connection: close",
        ]
    );
}

#[tokio::test]
async fn echo_answers_any_method() {
    let m = TestMember::start(MemberConfig::new("e")).await.unwrap();
    let mut c = connect(m.addr()).await;
    let req = Request::delete("/echo")
        .header("host", "h")
        .body(Full::new(Bytes::from_static(b"ignored")).boxed())
        .unwrap();
    let r = send(&mut c, req).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.text().starts_with("e\nDELETE /echo HTTP/1.1\n"),
        "{}",
        r.text()
    );
}

#[tokio::test]
async fn upload_counts_a_streamed_body_without_keeping_it() {
    let m = TestMember::start(MemberConfig::new("u")).await.unwrap();
    let mut c = connect(m.addr()).await;
    // Chunked: 48 chunks of 64 KiB, never one buffer on either side.
    let chunks = (0..48).map(|_| Ok::<_, Infallible>(Frame::data(Bytes::from(vec![7u8; 65536]))));
    let req = Request::post("/upload")
        .header("host", "h")
        .body(StreamBody::new(stream::iter(chunks)).boxed())
        .unwrap();
    let r = send(&mut c, req).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text(), format!("u {}\n", 48 * 65536));
    // With Content-Length, by PUT, on the same connection.
    let req = Request::put("/upload")
        .header("host", "h")
        .body(Full::new(Bytes::from_static(b"12345")).boxed())
        .unwrap();
    assert_eq!(send(&mut c, req).await.text(), "u 5\n");
    assert_eq!(m.connections(), 1);
}

#[tokio::test]
async fn upload_refuses_get() {
    let m = TestMember::start(MemberConfig::new("u")).await.unwrap();
    let r = get(m.addr(), "/upload").await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.headers["allow"], "POST, PUT");
    assert!(r.text().starts_with("u "));
}

#[tokio::test]
async fn download_streams_the_exact_length_of_the_pattern() {
    let m = TestMember::start(MemberConfig::new("d")).await.unwrap();
    let len = 3 * 1024 * 1024 + 17;
    let mut c = connect(m.addr()).await;
    let res = c
        .send_request(get_request(m.addr(), &format!("/download?bytes={len}")))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-length"], len.to_string().as_str());
    assert_eq!(res.headers()["x-member"], "d");
    let mut body = res.into_body();
    let mut offset = 0usize;
    let mut frames = 0;
    while let Some(frame) = body.frame().await {
        let data = frame.unwrap().into_data().unwrap();
        for (i, b) in data.iter().enumerate() {
            assert_eq!(
                *b,
                DOWNLOAD_PATTERN[(offset + i) % 64],
                "byte {}",
                offset + i
            );
        }
        offset += data.len();
        frames += 1;
    }
    assert_eq!(offset, len);
    assert!(frames > 1, "a 3 MiB body arrived in {frames} frame(s)");
    assert_eq!(
        send(&mut c, get_request(m.addr(), "/download?bytes=0"))
            .await
            .body
            .len(),
        0
    );
}

#[tokio::test]
async fn download_without_a_count_is_a_bad_request() {
    let m = TestMember::start(MemberConfig::new("d")).await.unwrap();
    for path in ["/download", "/download?bytes=lots"] {
        let r = get(m.addr(), path).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}");
        assert!(r.text().starts_with("d "));
    }
}

#[tokio::test]
async fn redirect_points_at_the_member_itself() {
    let m = TestMember::start(MemberConfig::new("r")).await.unwrap();
    let r = get(m.addr(), "/redirect?to=%2Fapp%2Flogin%3Fnext%3D1").await;
    assert_eq!(r.status, StatusCode::FOUND);
    let expected = format!("http://{}/app/login?next=1", m.addr());
    assert_eq!(r.headers["location"], expected.as_str());
    assert_eq!(r.headers["content-location"], expected.as_str());
    assert!(r.text().starts_with("r "));
    let r = get(m.addr(), "/redirect?to=/plain").await;
    assert_eq!(r.headers["location"], m.url("/plain").as_str());
    let r = get(m.addr(), "/redirect").await;
    assert_eq!(r.headers["location"], m.url("/").as_str());
}

#[tokio::test]
async fn status_route_answers_the_code_asked_for() {
    let m = TestMember::start(MemberConfig::new("st")).await.unwrap();
    let mut c = connect(m.addr()).await;
    for (path, code, body) in [
        ("/status/503", 503, "st 503\n"),
        ("/status/418", 418, "st 418\n"),
        ("/status/204", 204, ""),
        ("/status/299", 299, "st 299\n"),
        ("/status/abc", 400, "st status needs a code in 200..=999\n"),
        ("/status/101", 400, "st status needs a code in 200..=999\n"),
    ] {
        let r = send(&mut c, get_request(m.addr(), path)).await;
        assert_eq!(r.status.as_u16(), code, "{path}");
        assert_eq!(r.text(), body, "{path}");
        assert_eq!(r.headers["x-member"], "st");
    }
    assert_eq!(m.connections(), 1);
}

#[tokio::test]
async fn slow_waits_at_least_the_delay_asked_for() {
    let m = TestMember::start(MemberConfig::new("sl")).await.unwrap();
    let started = Instant::now();
    let r = get(m.addr(), "/slow?ms=150").await;
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text(), "sl\n");
    assert_eq!(get(m.addr(), "/slow").await.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn latency_delays_every_answer() {
    let cfg = MemberConfig::new("l").latency(Latency::Fixed(Duration::from_millis(120)));
    let m = TestMember::start(cfg).await.unwrap();
    for path in ["/", "/echo"] {
        let started = Instant::now();
        assert_eq!(get(m.addr(), path).await.status, StatusCode::OK);
        assert!(started.elapsed() >= Duration::from_millis(120), "{path}");
    }
    m.set_latency(Latency::None);
    assert_eq!(get(m.addr(), "/").await.status, StatusCode::OK);
}

async fn statuses(m: &TestMember, n: usize) -> Vec<u16> {
    let mut c = connect(m.addr()).await;
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(
            send(&mut c, get_request(m.addr(), "/"))
                .await
                .status
                .as_u16(),
        );
    }
    out
}

#[tokio::test]
async fn fail_ratio_answers_that_share_500_and_a_seed_reproduces_it() {
    let cfg = |name: &str| MemberConfig::new(name).fail_ratio(0.3).seed(42);
    let a = TestMember::start(cfg("a")).await.unwrap();
    let b = TestMember::start(cfg("b")).await.unwrap();
    let n = 400;
    let sa = statuses(&a, n).await;
    let sb = statuses(&b, n).await;
    let fails = sa.iter().filter(|s| **s == 500).count();
    // Expected 120, standard deviation ~9: the bounds are beyond 4 sigma.
    assert!((80..=160).contains(&fails), "{fails} of {n} failed");
    assert!(sa.iter().all(|s| *s == 200 || *s == 500));
    assert_eq!(sa, sb, "same seed, same sequence");
    let r = get(a.addr(), "/").await;
    assert_eq!(r.headers["x-member"], "a");
    a.set_fail_ratio(1.0);
    let r = get(a.addr(), "/echo").await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.text(), "a injected failure\n");
}
