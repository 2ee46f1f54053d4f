//! Selection cost: one `Farm::pick` per iteration, per policy, at 5, 100 and 1000 members.
//!
//! Run: `cargo bench -p drover-core --bench policies -- --warm-up-time 1 --measurement-time 3`
//! (figures in docs/performance.md, "Selection cost"). Every member is ready, weights vary, some
//! requests are in flight, every member has a fresh load report (cpu, load1), and the pick's time
//! is given in the context as the proxy gives it, so no policy pays for a clock read the proxy
//! would not make.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use drover_core::policy::{Score, Stage};
use drover_core::{
    Farm, HashKey, LoadReport, MemberSpec, PickContext, PolicyKind, Rng, Source, clock,
};

fn kinds() -> Vec<(&'static str, PolicyKind)> {
    let mix = vec![("cpu".to_owned(), 0.5), ("load1".to_owned(), 0.5)];
    vec![
        ("round-robin", PolicyKind::RoundRobin),
        ("weighted", PolicyKind::Weighted),
        ("least-conn", PolicyKind::LeastConn),
        ("random", PolicyKind::Random),
        ("p2c", PolicyKind::P2c),
        ("peak-ewma", PolicyKind::PeakEwma),
        (
            "hash",
            PolicyKind::Hash {
                key: HashKey::Source,
                bound: 1.25,
            },
        ),
        ("adaptive", PolicyKind::Adaptive),
        (
            "simple(cpu)",
            PolicyKind::Simple {
                metric: "cpu".into(),
            },
        ),
        (
            "dynamic(cpu,load1)",
            PolicyKind::Dynamic { mix: mix.clone() },
        ),
        (
            "lowest(cpu)",
            PolicyKind::Lowest {
                metric: "cpu".into(),
            },
        ),
        (
            "pipeline[fresh,sample 2,least dynamic]",
            PolicyKind::Pipeline(vec![
                Stage::Fresh(Duration::from_secs(20)),
                Stage::Sample(2),
                Stage::Least(Score::Dynamic(mix)),
            ]),
        ),
    ]
}

fn farm(kind: PolicyKind, n: usize, now: u64) -> Farm {
    let specs = (0..n)
        .map(|i| MemberSpec {
            name: format!("m{i}"),
            addr: format!("127.0.0.1:{}", 10_000 + i)
                .parse()
                .expect("an address"),
            weight: 1 + (i % 3) as u32,
            route: None,
            enabled: true,
        })
        .collect();
    let farm = Farm::new("bench", kind, specs);
    for (i, m) in farm.members.iter().enumerate() {
        (0..i % 4).for_each(|_| m.stats.start());
        let mut r = LoadReport::new(m.name(), Source::Push, now);
        r.metrics
            .insert("cpu", (i % 10) as f64 / 10.0)
            .expect("valid");
        r.metrics.insert("load1", (i % 7) as f64).expect("valid");
        farm.apply_report(i, &r, now);
    }
    farm
}

fn picks(c: &mut Criterion) {
    let now = clock::now();
    let mut group = c.benchmark_group("pick");
    for n in [5usize, 100, 1000] {
        for (name, kind) in kinds() {
            let farm = farm(kind, n, now);
            let mut seed = 0u64;
            group.bench_with_input(BenchmarkId::new(name, n), &farm, |b, farm| {
                b.iter(|| {
                    seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
                    let mut ctx = PickContext::new(Rng::new(seed))
                        .with_key(Some(seed))
                        .with_now(now);
                    black_box(farm.pick(&mut ctx).map(|(i, _)| i))
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, picks);
criterion_main!(benches);
