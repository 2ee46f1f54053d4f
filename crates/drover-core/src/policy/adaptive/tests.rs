//! Seeded tests of `adaptive`: time is driven with explicit `now` values, never by sleeping.

use super::*;
use crate::policy::testing::{check_eligibility, members, spread};
use crate::report::{LoadReport, Source};
use crate::{Farm, MemberSpec, PolicyKind, Rng};

const MS: u64 = 1_000_000;
/// Virtual time zero, far from 0 (which means "never" for `last_ok_at`).
const T0: u64 = 1_000_000 * MS;

fn pick_at(ms: &[Arc<Member>], seed: u64, now: u64) -> usize {
    Adaptive::new(ms)
        .pick(ms, &mut PickContext::new(Rng::new(seed)).with_now(now))
        .unwrap()
}

/// Every member answered `samples` requests of `latency`, the last one at `at`, and then has
/// `in_flight` requests open.
fn warm(m: &Member, latency: u64, samples: u64, at: u64, in_flight: u32) {
    for _ in 0..samples {
        m.stats.start();
        m.stats.finish_at(true, Some(latency), at);
    }
    (0..in_flight).for_each(|_| m.stats.start());
}

#[test]
fn eligibility() {
    check_eligibility(|ms| Box::new(Adaptive::new(ms)));
}

#[test]
fn even_spread_over_equal_idle_members() {
    let ms = members(&[1; 5]);
    for c in spread(&Adaptive::new(&ms), &ms, 100_000, 1) {
        assert!((19_000..21_000).contains(&c), "{c}");
    }
    // The same beyond SCAN_MAX, where candidates are sampled.
    let ms = members(&[1; 40]);
    for c in spread(&Adaptive::new(&ms), &ms, 100_000, 2) {
        assert!((2_200..2_800).contains(&c), "{c}");
    }
}

#[test]
fn even_spread_with_requests_in_flight() {
    // Picks as requests that stay open, the oldest finishing (20 ms, 1 ms apart) once 20 are
    // open: equal members end with equal shares.
    let ms = members(&[1; 4]);
    let p = Adaptive::new(&ms);
    let mut rng = Rng::new(3);
    let mut open = std::collections::VecDeque::new();
    let mut counts = [0usize; 4];
    for t in 0..40_000u64 {
        let now = T0 + t * MS;
        let ctx = &mut PickContext::new(Rng::new(rng.next_u64())).with_now(now);
        let i = p.pick(&ms, ctx).unwrap();
        ms[i].stats.start();
        counts[i] += 1;
        open.push_back(i);
        if open.len() > 20 {
            let j = open.pop_front().unwrap();
            ms[j].stats.finish_at(true, Some(20 * MS), now);
        }
    }
    for c in counts {
        assert!((9_500..10_500).contains(&c), "{counts:?}");
    }
}

#[test]
fn a_stalled_member_is_avoided() {
    // Equal latency and equal in-flight counts, but m0 has not answered for 200 ms (ten of its
    // usual latencies) while the others answered just now.
    let ms = members(&[1; 4]);
    let now = T0 + 200 * MS;
    warm(&ms[0], 20 * MS, 10, T0, 2);
    for m in &ms[1..] {
        warm(m, 20 * MS, 10, now, 2);
    }
    for seed in 0..200 {
        assert_ne!(pick_at(&ms, seed, now), 0, "seed {seed}");
    }
    // Even against members with far more in flight: quiet x n = 400 ms against 20 ms.
    (0..10).for_each(|_| ms[1].stats.start());
    for seed in 0..200 {
        assert_ne!(pick_at(&ms, seed, now), 0, "seed {seed}");
    }
    // Silent for less than a completion gap (20 ms / 2 in flight): not a stall. m0 ties with
    // m2 and m3 and takes about a third of the picks.
    let soon = T0 + 5 * MS;
    for m in &ms[1..] {
        m.stats.finish_at(true, Some(20 * MS), soon);
        m.stats.start();
    }
    let c = (0..300)
        .filter(|&seed| pick_at(&ms, seed, soon) == 0)
        .count();
    assert!((70..130).contains(&c), "{c}");
}

#[test]
fn failures_are_no_sign_of_progress() {
    // m0 answers only with failures (e.g. timeouts sampled as latencies): its last success stays
    // old, so with requests in flight it stays expensive.
    let ms = members(&[1; 3]);
    let now = T0 + 2_000 * MS;
    warm(&ms[0], 20 * MS, 10, T0, 0);
    for m in &ms[1..] {
        warm(m, 20 * MS, 10, now, 3);
    }
    ms[0].stats.start();
    ms[0].stats.finish_at(false, Some(1_000 * MS), now);
    ms[0].stats.start();
    for seed in 0..100 {
        assert_ne!(pick_at(&ms, seed, now), 0, "seed {seed}");
    }
}

#[test]
fn slower_members_get_less_in_proportion() {
    // m0 answers in 60 ms, the others in 20 ms; with one request open everywhere m0 costs
    // 2 x 60 against 2 x 20: it is picked only once the others have 5 open.
    let ms = members(&[1; 3]);
    warm(&ms[0], 60 * MS, 50, T0, 1);
    warm(&ms[1], 20 * MS, 50, T0, 1);
    warm(&ms[2], 20 * MS, 50, T0, 1);
    assert_ne!(pick_at(&ms, 1, T0), 0);
    (0..4).for_each(|_| ms[1].stats.start());
    (0..4).for_each(|_| ms[2].stats.start());
    assert_eq!(pick_at(&ms, 1, T0), 0, "6 x 20 > 2 x 60");
}

fn farm(n: usize) -> Farm {
    let specs = (0..n)
        .map(|i| MemberSpec {
            name: format!("m{i}"),
            addr: format!("127.0.0.1:{}", 9001 + i).parse().unwrap(),
            weight: 1,
            route: None,
            enabled: true,
        })
        .collect();
    Farm::new("f", PolicyKind::Adaptive, specs)
}

/// Runs `n` requests through `farm` on a virtual clock, each open for `service` (a request every
/// ms), and returns the picks per member.
fn drive(farm: &Farm, n: u64, service: u64, seed: u64) -> Vec<usize> {
    let mut rng = Rng::new(seed);
    let mut open = std::collections::VecDeque::new();
    let mut counts = vec![0; farm.members.len()];
    for t in 0..n {
        let now = T0 + t * MS;
        while open.front().is_some_and(|&(end, _)| end <= now) {
            let (end, i): (u64, usize) = open.pop_front().unwrap();
            farm.members[i].stats.finish_at(true, Some(service), end);
        }
        let mut ctx = PickContext::new(Rng::new(rng.next_u64())).with_now(now);
        let (i, m) = farm.pick(&mut ctx).unwrap();
        m.stats.start();
        counts[i] += 1;
        open.push_back((now + service, i));
    }
    counts
}

#[test]
fn an_agents_weight_sets_capacity_less_but_not_zero() {
    // An agent says m0 is at 25% of its weight: with 40 requests open it holds about a quarter
    // of what each other member holds (0.25 / 3.25 of the picks), and still some.
    let farm = farm(4);
    let mut r = LoadReport::new("m0", Source::AgentCheck, T0);
    r.weight_pct = Some(25);
    farm.apply_report(0, &r, T0);
    let c = drive(&farm, 20_000, 40 * MS, 4);
    assert!(c[0] > 1_000 && c[0] < c[1] / 2, "{c:?}");
}

#[test]
fn reported_metrics_are_never_the_instantaneous_signal() {
    // A fresh report of m0 at 100% cpu (and of the others idle) changes no pick: reports set
    // capacity (weight) and health (flags), the balancer's own counts decide. This is what keeps
    // several balancers from herding onto the member with the lowest stale number.
    let quiet = farm(4);
    let loud = farm(4);
    for (i, cpu) in [1.0, 0.0, 0.0, 0.0].into_iter().enumerate() {
        let mut r = LoadReport::new(format!("m{i}"), Source::Push, T0);
        r.metrics.insert("cpu", cpu).unwrap();
        loud.apply_report(i, &r, T0);
    }
    assert_eq!(
        drive(&quiet, 5_000, 8 * MS, 5),
        drive(&loud, 5_000, 8 * MS, 5)
    );
}
