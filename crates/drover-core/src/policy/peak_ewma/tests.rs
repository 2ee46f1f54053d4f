//! Seeded tests of `peak-ewma`: time is driven with explicit `now` values, never by sleeping.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::*;
use crate::member::{PEAK_EWMA_DEFAULT_NS, PEAK_EWMA_TAU_NS};
use crate::policy::testing::{check_eligibility, members, spread};
use crate::{Flag, Rng};

const MS: u64 = 1_000_000;
const SEC: u64 = 1_000_000_000;
const TAU: u64 = PEAK_EWMA_TAU_NS as u64;
/// Virtual time zero: far above the real clock, so members' own start times (real clock) are past.
const T0: u64 = 1_000_000 * SEC;
/// A time by which the default estimate (its clock started at `T0`) has decayed to nothing, so
/// a first sample takes all the weight.
const T1: u64 = T0 + 30 * TAU;

/// Members whose default estimate's clock starts at `T0`.
fn farm(weights: &[u32]) -> Vec<Arc<Member>> {
    let ms = members(weights);
    for m in &ms {
        m.stats.start_peak_clock(T0);
    }
    ms
}

/// `n` samples of `latency` ending at `until`, one every `every`.
fn samples(m: &Member, latency: u64, n: u64, every: u64, until: u64) {
    for k in (0..n).rev() {
        m.stats.observe_rtt(latency, until - k * every);
    }
}

fn pick_at(p: &PeakEwma, ms: &[Arc<Member>], seed: u64, now: u64) -> usize {
    p.pick(ms, &mut PickContext::new(Rng::new(seed)).with_now(now))
        .unwrap()
}

/// An open-loop run on a virtual clock: a request every `gap`, to the member the policy picks,
/// in flight for that member's `service` time, its latency then fed back with `finish_at`.
/// Returns the picks per member.
fn run(ms: &[Arc<Member>], service: &[u64], gap: u64, n: usize, seed: u64) -> Vec<usize> {
    let p = PeakEwma::new();
    let mut rng = Rng::new(seed);
    let mut open: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::new();
    let mut counts = vec![0; ms.len()];
    let mut now = T0;
    for _ in 0..n {
        now += gap;
        while let Some(&Reverse((end, i))) = open.peek() {
            if end > now {
                break;
            }
            open.pop();
            ms[i].stats.finish_at(true, Some(service[i]), end);
        }
        let i = pick_at(&p, ms, rng.next_u64(), now);
        ms[i].stats.start();
        counts[i] += 1;
        open.push(Reverse((now + service[i], i)));
    }
    counts
}

#[test]
fn ten_times_slower_member_gets_a_small_share() {
    let ms = farm(&[1; 4]);
    // 5 requests per ms against 2 ms (fast) and 20 ms (slow) service: ~10 in flight in all.
    let c = run(&ms, &[20 * MS, 2 * MS, 2 * MS, 2 * MS], MS / 5, 100_000, 1);
    let slow = c[0] as f64 / 100_000.0;
    assert!(slow < 0.05, "slow member's share {slow}: {c:?}");
    for &x in &c[1..] {
        assert!((30_000..34_000).contains(&x), "{c:?}");
    }
}

#[test]
fn equal_members_spread_evenly() {
    // Idle, all at the default: every pair ties and the tie is random.
    let ms = farm(&[1; 5]);
    for c in spread(&PeakEwma::new(), &ms, 100_000, 2) {
        assert!((19_000..21_000).contains(&c), "{c}");
    }
    // Under load, with equal service times.
    let ms = farm(&[1; 5]);
    let c = run(&ms, &[5 * MS; 5], MS / 4, 100_000, 3);
    for &x in &c {
        assert!((19_000..21_000).contains(&x), "{c:?}");
    }
}

#[test]
fn a_peak_raises_the_cost_at_once_and_decays_after_tau() {
    let ms = farm(&[1, 1]);
    let p = PeakEwma::new();
    let t = T1 + 60 * SEC;
    // Both at a steady 1 ms.
    for m in &ms {
        samples(m, MS, 600, 100 * MS, t);
    }
    let base = ms[0].stats.peak_rtt_ns_at(t);
    assert!((base - MS as f64).abs() < 0.01 * MS as f64, "{base}");

    // One 100 ms answer: m0's estimate is the peak at once, and m1 wins every pick.
    ms[0].stats.observe_rtt(100 * MS, t);
    assert_eq!(ms[0].stats.peak_rtt_ns_at(t), 100e6);
    assert_eq!(PeakEwma::cost(&ms[0], t), 100e6);
    assert!((0..1_000).all(|s| pick_at(&p, &ms, s, t) == 1));

    // Fast answers again, every 100 ms: the estimate falls with time constant tau.
    samples(&ms[0], MS, 100, 100 * MS, t + TAU);
    samples(&ms[1], MS, 100, 100 * MS, t + TAU);
    let after_tau = ms[0].stats.peak_rtt_ns_at(t + TAU);
    // Still dearer than m1 with a request in flight (37 ms against 2 x 1 ms).
    ms[1].stats.start();
    assert!((0..1_000).all(|s| pick_at(&p, &ms, s, t + TAU) == 1));
    let expect = 100e6 / std::f64::consts::E + 1e6 * (1.0 - 1.0 / std::f64::consts::E);
    assert!(
        (after_tau - expect).abs() < 0.02 * expect,
        "{after_tau} vs {expect}"
    );
    let end = t + 5 * TAU;
    samples(&ms[0], MS, 400, 100 * MS, end);
    samples(&ms[1], MS, 400, 100 * MS, end);
    let back = ms[0].stats.peak_rtt_ns_at(end);
    assert!(back < 1.7 * MS as f64, "{back}");
    // Back near 1 ms after a few tau: the peak no longer outweighs one request in flight.
    assert!((0..1_000).all(|s| pick_at(&p, &ms, s, end) == 0));
}

#[test]
fn without_samples_the_estimate_decays_towards_zero() {
    // As tower's `default_decay` and `compound_decay`: the default (and any estimate) decays at
    // pick time, so an avoided member is tried again.
    let ms = farm(&[1]);
    let s = &ms[0].stats;
    assert_eq!(s.peak_rtt_ns_at(T0), PEAK_EWMA_DEFAULT_NS);
    let later = s.peak_rtt_ns_at(T0 + TAU);
    assert!((later - PEAK_EWMA_DEFAULT_NS / std::f64::consts::E).abs() < 1.0);
    s.observe_rtt(400 * MS, T0 + TAU);
    assert_eq!(s.peak_rtt_ns_at(T0 + TAU), 400e6);
    assert!(s.peak_rtt_ns_at(T0 + 11 * TAU) < 0.1 * MS as f64);
    // Reading never writes: the stored estimate is still the peak.
    assert_eq!(s.peak_rtt_raw(), (400e6, T0 + TAU));
    // A sample below a long-decayed estimate takes almost all the weight.
    s.observe_rtt(2 * MS, T0 + 11 * TAU);
    assert!((s.peak_rtt_ns_at(T0 + 11 * TAU) - 2e6).abs() < 0.01 * 2e6);
}

#[test]
fn pending_requests_raise_the_cost() {
    let ms = farm(&[1; 4]);
    let t = T1;
    for m in &ms {
        m.stats.observe_rtt(10 * MS, t);
    }
    let close = |a: f64, b: f64| (a - b).abs() < 1e-6 * b;
    assert!(close(PeakEwma::cost(&ms[0], t), 10e6));
    (0..3).for_each(|_| ms[0].stats.start());
    assert!(close(PeakEwma::cost(&ms[0], t), 40e6));
    let p = PeakEwma::new();
    let c: Vec<usize> = (0..30_000).map(|s| pick_at(&p, &ms, s, t)).collect();
    // m0's rival is always an idle member of equal estimate: m0 is never picked.
    assert!(c.iter().all(|&i| i != 0));
    // Five times faster, m0 outweighs its 3 pending requests (2 ms x 4 < 10 ms x 1) and wins
    // every pair it is in.
    let now = t + 10 * TAU;
    ms[0].stats.observe_rtt(2 * MS, now);
    for m in &ms[1..] {
        m.stats.observe_rtt(10 * MS, now);
    }
    let c0 = PeakEwma::cost(&ms[0], now);
    assert!((c0 - 8e6).abs() < 0.01 * 8e6, "{c0}");
    let c = (0..30_000)
        .filter(|&s| pick_at(&p, &ms, s, now) == 0)
        .count();
    // P(m0 is one of the two distinct candidates of 4) = 1/2.
    assert!((14_000..16_000).contains(&c), "{c}");
}

#[test]
fn weight_divides_the_cost() {
    let ms = farm(&[1, 2]);
    let t = T1;
    for m in &ms {
        m.stats.observe_rtt(10 * MS, t);
    }
    ms[1].stats.start();
    // m1: 10 ms x 2 / 2 = m0's 10 ms x 1 / 1: a tie; one more request tips it.
    assert_eq!(PeakEwma::cost(&ms[1], t), PeakEwma::cost(&ms[0], t));
    ms[1].stats.start();
    let p = PeakEwma::new();
    assert!((0..1_000).all(|s| pick_at(&p, &ms, s, t) == 0));
}

#[test]
fn one_or_two_eligible() {
    let ms = farm(&[1, 1, 1]);
    ms[0].state.set(Flag::Up, false);
    ms[1].state.set(Flag::On, false);
    assert_eq!(spread(&PeakEwma::new(), &ms, 100, 3), vec![0, 0, 100]);
}

#[test]
fn eligibility() {
    check_eligibility(|_| Box::new(PeakEwma::new()));
}
