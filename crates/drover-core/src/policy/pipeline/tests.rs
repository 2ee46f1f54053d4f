use std::time::Duration;

use super::*;
use crate::policy::testing::{check_eligibility, members, spread};
use crate::report::Source;
use crate::{Flag, Rng};

const S: u64 = 1_000_000_000;
/// A time well after the reports below, on the clock scale.
const NOW: u64 = 10_000 * S;

fn report(member: &str, at: u64, pairs: &[(&str, f64)]) -> LoadReport {
    let mut r = LoadReport::new(member, Source::Push, at);
    for (n, v) in pairs {
        r.metrics.insert(n, *v).unwrap();
    }
    r
}

/// Marks member `i` as having reported at `at` (as `Farm::apply_report` does) and tells `p`.
fn reported(p: &dyn Policy, ms: &[Arc<Member>], i: usize, at: u64, pairs: &[(&str, f64)]) {
    let r = report(ms[i].name(), at, pairs);
    let mut last = ms[i].reported.lock_last();
    ms[i].reported.store(&mut last, &r);
    p.on_report(ms, i, &r);
}

fn ctx(seed: u64) -> PickContext {
    PickContext::new(Rng::new(seed)).with_now(NOW)
}

#[test]
fn eligibility() {
    let stage_lists = [
        vec![
            Stage::Fresh(Duration::from_secs(20)),
            Stage::Sample(2),
            Stage::Least(Score::Rif),
        ],
        vec![
            Stage::Ready,
            Stage::LogWindow,
            Stage::Least(Score::PeakEwma),
        ],
        vec![Stage::Random],
        vec![Stage::Least(Score::Latency), Stage::Sample(3)],
        vec![Stage::Least(Score::Simple("cpu".into()))],
        vec![Stage::Fresh(Duration::from_secs(1))],
    ];
    for stages in stage_lists {
        check_eligibility(|ms| Box::new(Pipeline::new(ms, &stages)));
    }
}

#[test]
fn stage_names_show_as_configured() {
    let stages = [
        Stage::Ready,
        Stage::Fresh(Duration::from_secs(20)),
        Stage::Fresh(Duration::from_millis(1500)),
        Stage::Sample(2),
        Stage::LogWindow,
        Stage::Random,
        Stage::Least(Score::Dynamic(vec![
            ("cpu".into(), 0.5),
            ("rif".into(), 0.5),
        ])),
        Stage::Least(Score::Simple("load1".into())),
    ];
    let names: Vec<String> = stages.iter().map(Stage::to_string).collect();
    assert_eq!(
        names,
        [
            "ready",
            "fresh 20s",
            "fresh 1500ms",
            "sample 2",
            "log-window",
            "random",
            "least dynamic(cpu=0.5, rif=0.5)",
            "least simple(load1)"
        ]
    );
}

#[test]
fn fresh_removes_a_silent_member_and_says_so() {
    let ms = members(&[1, 1, 1]);
    let p = Pipeline::new(
        &ms,
        &[
            Stage::Fresh(Duration::from_secs(20)),
            Stage::Least(Score::Rif),
        ],
    );
    reported(&p, &ms, 0, NOW - 5 * S, &[("cpu", 0.5)]);
    reported(&p, &ms, 1, NOW - 60 * S, &[("cpu", 0.5)]);
    // m2 never reported. Only m0 is fresh: every pick is m0, however loaded.
    (0..10).for_each(|_| ms[0].stats.start());
    for seed in 0..100 {
        assert_eq!(p.pick(&ms, &mut ctx(seed)), Some(0));
    }
    let e = p.explain(&ms, &mut ctx(1));
    assert_eq!(e.chosen.as_ref().map(|c| c.name.as_str()), Some("m0"));
    let removed: Vec<(&str, &str, &str)> = e
        .removed
        .iter()
        .map(|r| (r.name.as_str(), r.stage.as_str(), r.why.as_str()))
        .collect();
    assert_eq!(
        removed,
        [
            ("m1", "fresh 20s", "last load report 60.0s ago"),
            ("m2", "fresh 20s", "never reported")
        ]
    );
    assert_eq!(e.candidates.len(), 1);
    assert_eq!(e.candidates[0].score, Some(10.0));
    assert_eq!(e.candidates[0].report_age_s, Some(5.0));
}

#[test]
fn fresh_removes_no_one_rather_than_everyone() {
    let ms = members(&[1, 1, 1]);
    let p = Pipeline::new(
        &ms,
        &[
            Stage::Fresh(Duration::from_secs(20)),
            Stage::Least(Score::Rif),
        ],
    );
    ms[0].stats.start();
    ms[2].stats.start();
    for seed in 0..50 {
        assert_eq!(p.pick(&ms, &mut ctx(seed)), Some(1));
    }
    let e = p.explain(&ms, &mut ctx(1));
    assert!(e.removed.is_empty(), "{e:?}");
    assert_eq!(e.candidates.len(), 3);
    assert!(
        e.notes[0].contains("fresh 20s") && e.notes[0].contains("removed none"),
        "{e:?}"
    );
}

#[test]
fn explanation_names_the_stage_and_the_flags() {
    let ms = members(&[1, 1, 1, 1, 1, 1]);
    ms[0].state.set(Flag::On, false);
    ms[1].state.set(Flag::Up, false);
    ms[2].state.set(Flag::Draining, true);
    let p = Pipeline::new(&ms, &[Stage::Sample(2), Stage::Least(Score::Rif)]);
    let mut c = ctx(7);
    c.exclude(5);
    let e = p.explain(&ms, &mut c);
    let by_stage = |stage: &str| -> Vec<String> {
        e.removed
            .iter()
            .filter(|r| r.stage == stage)
            .map(|r| format!("{} {}", r.name, r.why))
            .collect()
    };
    assert_eq!(
        by_stage("ready"),
        [
            "m0 off (operator)",
            "m1 down (health checks)",
            "m2 draining",
            "m5 already tried for this request"
        ]
    );
    // m3 and m4 are left; sample 2 keeps both.
    assert!(by_stage("sample 2").is_empty());
    assert_eq!(e.candidates.len(), 2);
    assert_eq!(e.policy, r#"["sample 2", "least rif"]"#);
    let e = Pipeline::new(&ms, &[Stage::Random]).explain(&ms, &mut ctx(3));
    assert_eq!(
        by_stage_of(&e, "random").len(),
        2,
        "m3, m4, m5 left; one drawn: {e:?}"
    );
    assert_eq!(e.candidates.len(), 1);
    assert_eq!(e.chosen.as_ref().unwrap().index, e.candidates[0].index);
}

fn by_stage_of<'a>(e: &'a Explanation, stage: &str) -> Vec<&'a Removed> {
    e.removed.iter().filter(|r| r.stage == stage).collect()
}

#[test]
fn samplers_keep_what_they_say() {
    let ms = members(&[1; 16]);
    let p = Pipeline::new(&ms, &[Stage::LogWindow]);
    let e = p.explain(&ms, &mut ctx(1));
    assert_eq!(e.candidates.len(), 4, "ceil(log2 16)");
    assert_eq!(by_stage_of(&e, "log-window").len(), 12);
    // The window is consecutive (wrapping) from a random start.
    let first = e.candidates[0].index;
    for (k, c) in e.candidates.iter().enumerate() {
        assert_eq!(c.index, (first + k) % 16);
    }
    let e = Pipeline::new(&ms, &[Stage::Sample(3)]).explain(&ms, &mut ctx(2));
    let mut picked: Vec<usize> = e.candidates.iter().map(|c| c.index).collect();
    picked.sort_unstable();
    picked.dedup();
    assert_eq!(picked.len(), 3, "distinct");
    // Every member gets its turn as the window's and the sample's first.
    for stages in [
        vec![Stage::LogWindow],
        vec![Stage::Sample(2)],
        vec![Stage::Random],
    ] {
        let c = spread(&Pipeline::new(&ms, &stages), &ms, 16_000, 3);
        assert!(
            c.iter().all(|&n| (800..1_200).contains(&n)),
            "{stages:?} {c:?}"
        );
    }
}

#[test]
fn sample_two_least_rif_is_p2c() {
    let ms = members(&[1; 4]);
    (0..10).for_each(|_| ms[0].stats.start());
    let p = Pipeline::new(&ms, &[Stage::Sample(2), Stage::Least(Score::Rif)]);
    let c = spread(&p, &ms, 30_000, 2);
    assert_eq!(c[0], 0, "{c:?}");
    for &x in &c[1..] {
        assert!((9_400..10_600).contains(&x), "{c:?}");
    }
}

#[test]
fn least_dynamic_reads_reports_as_capacity() {
    let ms = members(&[1, 1]);
    let mix = vec![("cpu".to_owned(), 1.0)];
    let p = Pipeline::new(&ms, &[Stage::Least(Score::Dynamic(mix))]);
    reported(&p, &ms, 0, NOW - S, &[("cpu", 0.9)]);
    reported(&p, &ms, 1, NOW - S, &[("cpu", 0.1)]);
    // Capacities 0.1 and 0.9: m1 takes requests until (n + 1) / 0.9 > 1 / 0.1, about 8 of them.
    let mut to_m1 = 0;
    for seed in 0..20 {
        let i = p.pick(&ms, &mut ctx(seed)).unwrap();
        ms[i].stats.start();
        to_m1 += usize::from(i == 1);
    }
    assert!((15..=19).contains(&to_m1), "{to_m1}");
    let e = p.explain(&ms, &mut ctx(1));
    let c = &e.candidates[0];
    assert!(c.capacity.is_some() && c.load.is_some(), "{e:?}");
}

#[test]
fn no_member_no_pick() {
    let p = Pipeline::new(&[], &[Stage::Sample(2)]);
    assert_eq!(p.pick(&[], &mut ctx(1)), None);
    assert_eq!(p.explain(&[], &mut ctx(1)).chosen, None);
}

#[test]
fn direct_sampling_keeps_the_filters_exact() {
    // 100 members, 3 of them fresh: direct draws rarely find two fresh ones, and the listed
    // fallback keeps the result exact.
    let ms = members(&[1; 100]);
    let stages = [
        Stage::Fresh(Duration::from_secs(20)),
        Stage::Sample(2),
        Stage::Least(Score::Rif),
    ];
    let p = Pipeline::new(&ms, &stages);
    assert_eq!(p.fast_sample, Some(1));
    for i in [7, 50, 93] {
        reported(&p, &ms, i, NOW - S, &[("cpu", 0.1)]);
    }
    let c = spread(&p, &ms, 3_000, 1);
    let fresh: usize = [7, 50, 93].iter().map(|&i| c[i]).sum();
    assert_eq!(fresh, 3_000, "{c:?}");
    assert!([7, 50, 93].iter().all(|&i| c[i] > 800), "{c:?}");
    // Every member fresh: the direct draw is taken and spreads evenly; an ineligible or loaded
    // member is never the winner.
    for i in 0..100 {
        reported(&p, &ms, i, NOW - S, &[("cpu", 0.1)]);
    }
    ms[3].state.set(Flag::Up, false);
    (0..5).for_each(|_| ms[4].stats.start());
    let c = spread(&p, &ms, 99_000, 2);
    assert_eq!((c[3], c[4]), (0, 0), "{c:?}");
    let others = c.iter().enumerate().filter(|&(i, _)| i != 3 && i != 4);
    assert!(
        others.clone().all(|(_, &n)| (850..1_200).contains(&n)),
        "{c:?}"
    );
    // Every report stale: fresh removes no one, on the fast path's fallback too.
    let p = Pipeline::new(&ms, &stages);
    let c = spread(&p, &ms, 9_800, 3);
    assert_eq!(c.iter().filter(|&&n| n > 0).count(), 98, "{c:?}");
}
