//! What the request path pays in `MemberStats` per request: one `start` and one `finish_at` with a
//! latency (the EWMA, the Peak-EWMA and the latency histogram), on one thread.
//!
//! Run: `cargo bench -p drover-core --bench member_stats -- --warm-up-time 1 --measurement-time 3`
//! (figure in docs/performance.md, "Per-request counters").

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use drover_core::MemberStats;

fn finish(c: &mut Criterion) {
    let s = MemberStats::default();
    // Latencies spread over the histogram's buckets, so its bucket search is not always one path.
    let samples: Vec<u64> = (0..64u64).map(|i| 400_000 + i * i * 1_000_000).collect();
    let mut i = 0usize;
    let mut now = 1_000_000_000u64;
    c.bench_function("start+finish_at", |b| {
        b.iter(|| {
            i = (i + 1) & 63;
            now += 1_000;
            s.start();
            s.finish_at(true, Some(black_box(samples[i])), now);
        })
    });
    black_box(&s);
}

criterion_group!(benches, finish);
criterion_main!(benches);
