//! The hot-path promise of every policy: `Farm::pick` allocates nothing.
//!
//! A counting global allocator wraps the system one; counting is switched on per thread, so the
//! test harness (or another test thread) allocating at the same time cannot spoil the count.
//! This file is its own crate, so `drover-core`'s `forbid(unsafe_code)` does not apply to it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use drover_core::hash::hash_key;
use std::time::Duration;

use drover_core::policy::{Score, Stage};
use drover_core::{
    Farm, Flag, HashKey, LoadReport, MemberSpec, PickContext, PolicyKind, Rng, Source, clock,
};

struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    // `const` init: no lazy initialisation, and so no allocation, inside the allocator.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    // `try_with`: the flag may already be gone while a thread is being torn down.
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Relaxed);
    }
}

// SAFETY: every call is forwarded unchanged to `System`, which upholds the `GlobalAlloc`
// contract; the counting only touches an atomic and a thread-local `Cell`, neither of which
// allocates.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's guarantees are passed on unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's guarantees are passed on unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: the caller's guarantees are passed on unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's guarantees are passed on unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Allocations made by `f` on this thread.
fn allocations_in(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.load(Relaxed);
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.load(Relaxed) - before
}

fn specs(n: u32) -> Vec<MemberSpec> {
    (0..n)
        .map(|i| MemberSpec {
            name: format!("m{i}"),
            addr: format!("127.0.0.1:{}", 9001 + i).parse().unwrap(),
            weight: 1 + i % 3,
            route: None,
            enabled: true,
        })
        .collect()
}

const PICKS: u64 = 10_000;

#[test]
fn picking_never_allocates() {
    let kinds = [
        PolicyKind::RoundRobin,
        PolicyKind::Weighted,
        PolicyKind::LeastConn,
        PolicyKind::Random,
        PolicyKind::P2c,
        PolicyKind::PeakEwma,
        PolicyKind::Hash {
            key: HashKey::Source,
            bound: 0.0,
        },
        PolicyKind::Hash {
            key: HashKey::Source,
            bound: 1.25,
        },
        PolicyKind::Simple {
            metric: "cpu".into(),
        },
        PolicyKind::Dynamic {
            mix: vec![
                ("cpu".into(), 0.5),
                ("load1".into(), 0.3),
                ("rif".into(), 0.2),
            ],
        },
        PolicyKind::Lowest {
            metric: "cpu".into(),
        },
        PolicyKind::Pipeline(vec![
            Stage::Fresh(Duration::from_secs(20)),
            Stage::Sample(2),
            Stage::Least(Score::Dynamic(vec![
                ("cpu".into(), 0.5),
                ("rif".into(), 0.5),
            ])),
        ]),
        PolicyKind::Pipeline(vec![
            Stage::LogWindow,
            Stage::Least(Score::Rif),
            Stage::Random,
        ]),
        // An ordering that is not last sorts every candidate (a snapshot of their scores).
        PolicyKind::Pipeline(vec![Stage::Least(Score::Rif), Stage::Random]),
        PolicyKind::Adaptive,
    ];
    // The counter must see allocations at all, or a zero below would prove nothing.
    assert!(allocations_in(|| drop(std::hint::black_box(vec![1u8; 16]))) > 0);

    // 8 members: the scanning paths; 40: adaptive's sampling and a sort of 40 candidates.
    for (kind, size) in kinds.iter().flat_map(|k| [(k, 8), (k, 40)]) {
        let farm = Farm::new("f", kind.clone(), specs(size));
        // Exercise the fallback paths too: some members not eligible, some already tried.
        farm.members[1].state.set(Flag::Up, false);
        farm.members[4].state.set(Flag::Draining, true);
        // Reports reach the load-aware policies' own atomics (off the request path).
        let now = clock::now();
        for i in 0..farm.members.len() {
            let mut r = LoadReport::new(format!("m{i}"), Source::Push, now);
            r.metrics.insert("cpu", 0.1 * (i % 10) as f64).unwrap();
            r.metrics.insert("load1", i as f64).unwrap();
            farm.apply_report(i, &r, now);
        }
        // Pipelines keep their candidates in a thread-local buffer that grows on a thread's
        // first pick and is reused after: warm it up before counting.
        farm.pick(&mut PickContext::new(Rng::new(0)));
        let mut picked = 0u64;
        let allocated = allocations_in(|| {
            for n in 0..PICKS {
                let key = (n % 3 != 0).then(|| hash_key(&n.to_le_bytes()));
                let mut ctx = PickContext::new(Rng::new(n)).with_key(key);
                if n % 5 == 0 {
                    ctx.exclude((n % 8) as usize);
                }
                if let Some((i, member)) = farm.pick(&mut ctx) {
                    // Keep some requests in flight so load-aware policies compare real loads.
                    if n % 2 == 0 {
                        member.stats.start();
                    }
                    // And feed latencies back, so `peak-ewma` compares real estimates (and the
                    // latency histogram is recorded under the count too).
                    if n % 4 == 1 {
                        member.stats.start();
                        member.stats.finish(true, Some(1_000 * (i as u64 + 1)));
                    }
                    picked += i as u64 + 1;
                }
            }
        });
        assert_eq!(
            allocated,
            0,
            "{}: {allocated} allocations in {PICKS} picks",
            kind.name()
        );
        assert!(picked >= PICKS, "{}: picks happened", kind.name());
        let sampled: u64 = farm
            .members
            .iter()
            .map(|m| m.stats.latency_histogram().count())
            .sum();
        assert!(
            sampled > 0,
            "{}: the latency histogram was fed",
            kind.name()
        );
    }
}
