//! Seeded tests of the `hash` policy: stability, spread, minimal remapping and bounded load.

use super::*;
use crate::hash::mix;
use crate::policy::testing::{check_eligibility, members, spread};
use crate::{Flag, Rng};

fn pick(p: &ConsistentHash, ms: &[Arc<Member>], key: u64) -> usize {
    p.pick(ms, &mut PickContext::new(Rng::new(key)).with_key(Some(key)))
        .expect("an eligible member")
}

/// Members of each of `n` random keys (seeded).
fn counts(p: &ConsistentHash, ms: &[Arc<Member>], n: usize, seed: u64) -> Vec<usize> {
    let mut rng = Rng::new(seed);
    let mut c = vec![0; ms.len()];
    for _ in 0..n {
        c[pick(p, ms, rng.next_u64())] += 1;
    }
    c
}

fn assert_within(counts: &[usize], expected: &[f64], tolerance: f64) {
    for (&c, &e) in counts.iter().zip(expected) {
        assert!(
            (c as f64 - e).abs() / e < tolerance,
            "{counts:?} vs {expected:?}"
        );
    }
}

#[test]
fn same_key_same_member() {
    let ms = members(&[1; 5]);
    let p = ConsistentHash::new(&ms, 0.0);
    for k in 0..1_000u64 {
        let key = mix(k);
        let first = pick(&p, &ms, key);
        assert_eq!(pick(&p, &ms, key), first);
        // Another ring built from the same members (another node, another process) agrees.
        assert_eq!(pick(&ConsistentHash::new(&ms, 0.0), &ms, key), first);
    }
}

#[test]
fn ring_ignores_member_order() {
    let ms = members(&[1, 2, 1, 3]);
    let reversed: Vec<_> = ms.iter().rev().cloned().collect();
    let (a, b) = (
        ConsistentHash::new(&ms, 0.0),
        ConsistentHash::new(&reversed, 0.0),
    );
    for k in 0..10_000u64 {
        let key = mix(k);
        assert_eq!(
            ms[pick(&a, &ms, key)].name(),
            reversed[pick(&b, &reversed, key)].name()
        );
    }
}

#[test]
fn spread_of_random_keys() {
    let ms = members(&[1; 5]);
    let p = ConsistentHash::new(&ms, 0.0);
    assert_eq!(p.len(), 5 * 160);
    assert_within(&counts(&p, &ms, 100_000, 1), &[20_000.0; 5], 0.15);
}

#[test]
fn spread_follows_weight() {
    let ms = members(&[1, 2, 1]);
    let p = ConsistentHash::new(&ms, 0.0);
    assert_eq!(p.len(), 4 * 160);
    assert_within(
        &counts(&p, &ms, 100_000, 2),
        &[25_000.0, 50_000.0, 25_000.0],
        0.15,
    );
    // Same weights times 100: the same ring, not a 100-times bigger one.
    let ms = members(&[100, 200, 100]);
    assert_eq!(ConsistentHash::new(&ms, 0.0).len(), 4 * 160);
    // Extreme weights are capped.
    let ms = members(&[1, 1_000]);
    assert_eq!(
        ConsistentHash::new(&ms, 0.0).len() as u64,
        160 + MAX_POINTS_PER_MEMBER
    );
}

#[test]
fn without_key_spreads_evenly() {
    let ms = members(&[1; 4]);
    let p = ConsistentHash::new(&ms, 0.0);
    assert_within(&spread(&p, &ms, 100_000, 3), &[25_000.0; 4], 0.15);
}

#[test]
fn removing_a_member_only_remaps_its_keys() {
    let ms = members(&[1, 1, 2, 1, 1]);
    let before = ConsistentHash::new(&ms, 0.0);
    let gone = ms[2].name().to_owned();
    let rest: Vec<_> = ms.iter().filter(|m| m.name() != gone).cloned().collect();
    let after = ConsistentHash::new(&rest, 0.0);
    let mut rng = Rng::new(4);
    let (mut moved, mut moved_to) = (0, vec![0; rest.len()]);
    for _ in 0..100_000 {
        let key = rng.next_u64();
        let old = ms[pick(&before, &ms, key)].name();
        let new = pick(&after, &rest, key);
        if old == gone {
            moved += 1;
            moved_to[new] += 1;
        } else {
            assert_eq!(
                rest[new].name(),
                old,
                "key {key:#x} moved off a member that stayed"
            );
        }
    }
    // The removed member held about a third of the keys; they spread over all the others.
    assert!((28_000..38_000).contains(&moved), "{moved}");
    assert!(moved_to.iter().all(|&c| c > moved / 10), "{moved_to:?}");
}

#[test]
fn ineligible_owner_sends_its_keys_clockwise_and_back() {
    let ms = members(&[1; 4]);
    let p = ConsistentHash::new(&ms, 0.0);
    let keys: Vec<u64> = (0..2_000).map(mix).collect();
    let owners: Vec<usize> = keys.iter().map(|&k| pick(&p, &ms, k)).collect();
    ms[1].state.set(Flag::Up, false);
    for (&k, &o) in keys.iter().zip(&owners) {
        let now = pick(&p, &ms, k);
        assert_ne!(now, 1);
        if o != 1 {
            assert_eq!(now, o, "only member 1's keys move");
        }
    }
    ms[1].state.set(Flag::Up, true);
    for (&k, &o) in keys.iter().zip(&owners) {
        assert_eq!(pick(&p, &ms, k), o, "keys return when the member is back");
    }
}

#[test]
fn bounded_load_caps_a_hot_key() {
    let ms = members(&[1; 4]);
    let hot = 0x5eed;
    // Unbounded: every request for the hot key piles onto one member.
    let p = ConsistentHash::new(&ms, 0.0);
    let home = pick(&p, &ms, hot);
    for _ in 0..1_000 {
        ms[pick(&p, &ms, hot)].stats.start();
    }
    assert_eq!(ms[home].stats.in_flight(), 1_000);
    for _ in 0..1_000 {
        ms[home].stats.finish(true, None);
    }

    // Bounded at 1.25: the home member stays under ceil(1.25 * (total + 1) / 4) at every step and
    // the overflow goes to the others.
    let p = ConsistentHash::new(&ms, 1.25);
    assert_eq!(
        pick(&p, &ms, hot),
        home,
        "an idle farm keeps the key at home"
    );
    for t in 0..1_000u64 {
        let i = pick(&p, &ms, hot);
        ms[i].stats.start();
        let cap = (1.25 * (t + 2) as f64 / 4.0).ceil() as u32;
        assert!(
            ms[i].stats.in_flight() <= cap,
            "step {t}: {} > {cap}",
            ms[i].stats.in_flight()
        );
    }
    let load: Vec<u32> = ms.iter().map(|m| m.stats.in_flight()).collect();
    assert!((300..=313).contains(&load[home]), "{load:?}");
    assert!(load.iter().all(|&l| l <= 313), "{load:?}");
    assert!(
        load.iter().filter(|&&l| l > 0).count() >= 4,
        "overflow reaches the ring's next members: {load:?}"
    );

    // Once the load drains, the key goes home again.
    for (m, &l) in ms.iter().zip(&load) {
        (0..l).for_each(|_| m.stats.finish(true, None));
    }
    assert_eq!(pick(&p, &ms, hot), home);
}

#[test]
fn bound_below_one_is_raised_to_one() {
    let ms = members(&[1; 3]);
    let p = ConsistentHash::new(&ms, 0.1);
    // With c = 0.1 no member would ever be under the cap; with c = 1 each takes its even share.
    for _ in 0..300 {
        ms[pick(&p, &ms, 42)].stats.start();
    }
    let load: Vec<u32> = ms.iter().map(|m| m.stats.in_flight()).collect();
    assert_eq!(load, vec![100; 3]);
}

#[test]
fn eligibility() {
    check_eligibility(|ms| Box::new(ConsistentHash::new(ms, 0.0)));
    check_eligibility(|ms| Box::new(ConsistentHash::new(ms, 1.25)));
}
