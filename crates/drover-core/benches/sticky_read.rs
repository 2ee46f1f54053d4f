//! The sticky read path's cost per request, without sockets: finding the session in a realistic
//! `Cookie` header and naming its member, per mode.
//!
//! Run: `cargo bench -p drover-core --bench sticky_read -- --warm-up-time 1 --measurement-time 3`
//! (figures in docs/performance.md, "Sticky sessions"). The header is what a browser sends to a
//! shop: six cookies, about 300 bytes, the session cookie last (the slowest place for it).

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use drover_core::sticky::{
    CookieSigner, RouteMap, SessionTable, cookie_value, path_param, route_of, session_key,
};

const COOKIES: &str = "_ga=GA1.2.1234567890.1700000000; _gid=GA1.2.987654321.1700000000; \
    consent=necessary%2Canalytics; theme=dark; cart=7f3a9c2e4b5d6a7f8e9d0c1b2a3f4e5d; ";

fn bench(c: &mut Criterion) {
    let routes = RouteMap::new([Some("node1"), Some("node2"), Some("node3")]);
    let route_header = format!("{COOKIES}JSESSIONID=0123456789ABCDEF0123456789ABCDEF.node2");
    c.bench_function("sticky/route (cookie)", |b| {
        b.iter(|| {
            let v = cookie_value(black_box(route_header.as_bytes()), b"JSESSIONID");
            black_box(
                v.and_then(|v| route_of(v, b'.'))
                    .and_then(|r| routes.get(r)),
            )
        })
    });
    let target = "/shop/cart;jsessionid=0123456789ABCDEF0123456789ABCDEF.node2?item=42";
    c.bench_function("sticky/route (path parameter)", |b| {
        b.iter(|| {
            let v = path_param(black_box(target.as_bytes()), b"jsessionid");
            black_box(
                v.and_then(|v| route_of(v, b'.'))
                    .and_then(|r| routes.get(r)),
            )
        })
    });

    let signer = CookieSigner::new(
        "shop",
        &["shop1", "shop2", "shop3"],
        &["new-key-0123456789abcdef", "old-key-0123456789abcdef"],
    );
    let insert_header = format!("{COOKIES}DROVERID={}", signer.value(1));
    c.bench_function("sticky/insert", |b| {
        b.iter(|| {
            let v = cookie_value(black_box(insert_header.as_bytes()), b"DROVERID");
            black_box(v.and_then(|v| signer.member(v)))
        })
    });

    let table = SessionTable::new(100_000, Duration::from_secs(1800));
    for i in 0..100_000u64 {
        table.learn(
            session_key(format!("{i:026}").as_bytes()),
            (i % 3) as usize,
            1,
        );
    }
    let learn_header = format!("{COOKIES}PHPSESSID={:026}", 4_242);
    c.bench_function("sticky/learn (100k sessions)", |b| {
        b.iter(|| {
            let v = cookie_value(black_box(learn_header.as_bytes()), b"PHPSESSID");
            black_box(v.and_then(|v| table.get(session_key(v), 2)))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
