use std::time::Duration;

use super::*;
use crate::policy::testing::members;
use crate::rng::Rng;

const S: u64 = 1_000_000_000;

fn farm(n: usize, rules: HealthRules) -> Farm {
    Farm::with_members("app", PolicyKind::RoundRobin, members(&vec![1; n])).with_rules(rules)
}

fn passive(consecutive: u32, max_ejected: f64) -> HealthRules {
    HealthRules {
        passive: PassiveRules {
            consecutive_failures: consecutive,
            ejection_time: Duration::from_secs(10),
            max_ejection_time: Duration::from_secs(40),
            max_ejected,
            ..PassiveRules::default()
        },
        ..HealthRules::default()
    }
}

fn counts(farm: &Farm, n: usize, seed: u64) -> Vec<usize> {
    let mut c = vec![0; farm.members.len()];
    let mut rng = Rng::new(seed);
    for _ in 0..n {
        let mut ctx = PickContext::new(Rng::new(rng.next_u64()));
        match farm.pick(&mut ctx) {
            Some((i, _)) => c[i] += 1,
            None => panic!("no member"),
        }
    }
    c
}

#[test]
fn consecutive_failures_eject_with_doubling_backoff() {
    let f = farm(3, passive(3, 0.5));
    let t0 = 100 * S;
    assert!(f.report(0, Some("503"), t0).is_none());
    assert!(f.report(0, Some("503"), t0).is_none());
    assert!(
        f.report(0, None, t0).is_none(),
        "a success resets the count"
    );
    assert!(f.report(0, Some("503"), t0).is_none());
    assert!(f.report(0, Some("503"), t0).is_none());
    let t = f
        .report(0, Some("status 503"), t0)
        .expect("third failure in a row ejects");
    assert_eq!(t.flag, Flag::Ejected);
    assert_eq!(
        t.reason,
        "3 failed requests in a row, the last: status 503 (ejected for 10s)"
    );
    assert!(!f.members[0].state.is_ready());
    assert_eq!(f.next_return(), Some(t0 + 10 * S));
    assert!(f.return_ejected(t0 + 9 * S).is_empty());
    let back = f.return_ejected(t0 + 10 * S);
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].0, 0);
    assert_eq!(back[0].1.to_string(), "returned: ejection of 10s is over");
    assert!(f.members[0].state.is_ready());

    // Failing again right away: the backoff doubles, up to the maximum.
    let mut now = t0 + 10 * S;
    for want in [20, 40, 40] {
        for _ in 0..3 {
            f.report(0, Some("reset"), now);
        }
        assert_eq!(f.next_return(), Some(now + want * S), "{want}s");
        now += want * S;
        assert_eq!(f.return_ejected(now).len(), 1);
    }
    // Healthy for longer than the last ejection: the next one starts from the base again.
    now += 41 * S;
    for _ in 0..3 {
        f.report(0, Some("reset"), now);
    }
    assert_eq!(f.next_return(), Some(now + 10 * S));
    assert_eq!(f.members[0].health.flips(Flag::Ejected), 9);
}

#[test]
fn passive_ejection_off_and_capped() {
    let f = farm(2, passive(0, 0.5));
    for _ in 0..100 {
        assert!(f.report(0, Some("503"), S).is_none(), "threshold 0 = off");
    }
    let f = farm(4, passive(1, 0.5));
    assert!(f.report(0, Some("x"), S).is_some());
    assert!(f.report(1, Some("x"), S).is_some());
    assert!(
        f.report(2, Some("x"), S).is_none(),
        "never more than half of the farm"
    );
    assert!(f.members[2].state.is_ready());
    let f = farm(2, passive(1, 0.1));
    assert!(
        f.report(0, Some("x"), S).is_some(),
        "a small share still allows one"
    );
    assert!(f.report(1, Some("x"), S).is_none());
}

#[test]
fn panic_mode_spreads_over_every_member_that_is_on() {
    let rules = HealthRules {
        panic_threshold: 0.5,
        ..HealthRules::default()
    };
    let f = farm(5, rules);
    assert!(!f.in_panic());
    f.members[4].state.set(Flag::On, false);
    assert!(f.set_up(0, false, || "check failed".into(), S).is_some());
    assert!(!f.in_panic(), "3 of 4 on members healthy");
    assert_eq!(counts(&f, 300, 1), vec![0, 100, 100, 100, 0]);
    f.set_up(1, false, || "check failed".into(), S);
    assert!(!f.in_panic(), "2 of 4: not below 50%");
    f.set_up(2, false, || "check failed".into(), S);
    assert!(f.in_panic(), "1 of 4 healthy");
    assert_eq!(
        counts(&f, 400, 1),
        vec![100, 100, 100, 100, 0],
        "health ignored, off still holds"
    );
    for i in 0..3 {
        f.set_up(i, true, || "check passed".into(), S);
    }
    assert!(!f.in_panic());
}

#[test]
fn without_panic_threshold_everything_down_means_no_member() {
    let f = farm(2, HealthRules::default());
    f.set_up(0, false, || "x".into(), S);
    f.set_up(1, false, || "x".into(), S);
    assert!(!f.in_panic());
    assert!(f.pick(&mut PickContext::new(Rng::new(1))).is_none());
}

#[test]
fn slow_start_ramps_the_share_of_a_returning_member() {
    let rules = HealthRules {
        slow_start: Duration::from_secs(100),
        ..HealthRules::default()
    };
    let f = farm(2, rules);
    f.set_up(1, false, || "x".into(), S);
    // Back up a quarter of the way into the window: ~25% of its turns, ~12.5% of all picks.
    let now = clock::now();
    f.members[1].flip(Flag::Up, true, || "check passed".into(), now - 25 * S);
    let c = counts(&f, 10_000, 7);
    let share = c[1] as f64 / 10_000.0;
    assert!((0.10..0.15).contains(&share), "{c:?}");
    // Just back: the floor (5% of its turns).
    f.members[1].health.up_since.store(now, Relaxed);
    let c = counts(&f, 10_000, 8);
    assert!((0.015..0.04).contains(&(c[1] as f64 / 10_000.0)), "{c:?}");
    // Window over: full share, and the member leaves the slow path.
    f.members[1].health.up_since.store(now - 101 * S, Relaxed);
    assert_eq!(counts(&f, 1_000, 9), vec![500, 500]);
    assert_eq!(f.members[1].health.up_since(), None);
}

#[test]
fn slow_start_never_refuses_the_only_member() {
    let rules = HealthRules {
        slow_start: Duration::from_secs(100),
        ..HealthRules::default()
    };
    let f = farm(1, rules);
    f.members[0].health.up_since.store(clock::now(), Relaxed);
    assert_eq!(counts(&f, 100, 1), vec![100]);
}

fn agent(farm: &Farm, line: &str, now: u64) -> Vec<String> {
    let report = crate::report::agent_check::parse(line, "m", now).expect(line);
    farm.apply_report(0, &report, now)
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn agent_words_set_weight_drain_and_health() {
    let farm = farm(2, HealthRules::default());
    let m = &farm.members[0];
    assert_eq!(m.state.live_weight_x100(), 100);
    assert!(agent(&farm, "75%", 1).is_empty(), "a weight is not a flip");
    assert_eq!((m.state.weight_pct(), m.state.live_weight_x100()), (75, 75));
    assert_eq!(m.state.weight(), 1, "the configured weight stays");
    assert_eq!(agent(&farm, "drain", 2), ["draining: agent: drain"]);
    assert!(
        agent(&farm, "drain", 3).is_empty(),
        "repeated words flip nothing"
    );
    assert!(m.state.is_ready() && !m.state.accepts_new());
    assert_eq!(agent(&farm, "ready", 4), ["not draining: agent: ready"]);
    assert_eq!(
        agent(&farm, "down # disk full", 5),
        ["down: agent: down # disk full"]
    );
    assert!(!m.state.is_up());
    assert!(
        farm.set_up(0, true, || "checks pass".into(), 6).is_none(),
        "checks cannot undo the agent's down"
    );
    assert_eq!(agent(&farm, "up 100%", 7), ["up: agent: up"]);
    assert!(m.state.is_up() && m.state.accepts_new());
    assert_eq!(m.state.live_weight_x100(), 100);
    let last = m.reported.last().expect("kept");
    assert_eq!((last.received, last.weight_pct), (7, Some(100)));
}

#[test]
fn zero_weight_and_maint_drain_until_the_agent_says_otherwise() {
    let farm = farm(2, HealthRules::default());
    let m = &farm.members[0];
    assert_eq!(agent(&farm, "0%", 1), ["draining: agent: weight 0%"]);
    assert_eq!(agent(&farm, "50%", 2), ["not draining: agent: weight 50%"]);
    assert_eq!(
        agent(&farm, "maint # upgrade", 3),
        ["draining: agent: maint # upgrade"]
    );
    assert!(
        m.state.get(Flag::On),
        "the operator's on/off is never touched"
    );
    assert!(agent(&farm, "0%", 4).is_empty(), "still held by maint");
    assert!(agent(&farm, "ready", 5).is_empty(), "still held by 0%");
    assert_eq!(
        agent(&farm, "ready 10%", 6),
        ["not draining: agent: ready, weight 10%"]
    );
}

#[test]
fn agent_up_leaves_a_member_down_by_its_checks_down() {
    let farm = farm(2, HealthRules::default());
    let m = &farm.members[0];
    farm.set_up(0, false, || "3 checks failed".into(), 1)
        .unwrap();
    assert!(agent(&farm, "fail", 2).is_empty(), "already down");
    assert!(agent(&farm, "up", 3).is_empty());
    assert!(
        !m.state.is_up(),
        "the checks took it down: they bring it up"
    );
    assert!(
        farm.set_up(0, true, || "2 checks passed".into(), 4)
            .is_some()
    );
}

#[test]
fn an_operator_undrain_is_not_undone_by_a_repeated_drain() {
    let farm = farm(1, HealthRules::default());
    let m = &farm.members[0];
    agent(&farm, "drain", 1);
    m.flip(Flag::Draining, false, || "operator".into(), 2)
        .unwrap();
    assert!(agent(&farm, "drain", 3).is_empty());
    assert!(m.state.accepts_new());
}

#[test]
fn a_silent_member_goes_out_after_expect_and_comes_in_with_its_next_report() {
    use crate::report::{LoadReport, Source};
    let rules = HealthRules {
        expect: Duration::from_secs(3),
        ..HealthRules::default()
    };
    let farm = farm(2, rules);
    let t0 = farm.started;
    // Members get `expect` from the farm's start before their first report is due.
    assert!(farm.sweep_fresh(t0 + 2 * S).is_empty());
    let mut report = LoadReport::new("m0", Source::Push, t0 + 2 * S);
    report.metrics.insert("cpu", 0.5).unwrap();
    assert!(
        farm.apply_report(0, &report, t0 + 2 * S).is_empty(),
        "m0 was in"
    );

    let out = farm.sweep_fresh(t0 + 4 * S);
    assert_eq!(out.len(), 1, "only m1 never reported: {out:?}");
    let (index, t) = &out[0];
    assert_eq!((*index, t.flag, t.value), (1, Flag::In, false));
    assert!(t.reason.contains("no load report yet"), "{t}");
    assert!(!farm.members[1].state.is_ready());
    assert!(farm.members[0].state.is_ready());
    // Picks avoid the member that is out.
    assert_eq!(counts(&farm, 50, 1), vec![50, 0]);

    // m0 reported at +2 s and is silent after +5 s; but then no member at all is fresh: that is
    // a broken report path, not two dead members, and the farm is not blacked out.
    assert!(farm.sweep_fresh(t0 + 5 * S + 1).is_empty());
    assert!(farm.all_silent());
    assert!(farm.members[0].state.is_ready());

    // The next good report, of any source, brings a member in.
    let report = LoadReport::new("m1", Source::Orca, t0 + 6 * S);
    let out = farm.apply_report(1, &report, t0 + 6 * S);
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].flag, out[0].value), (Flag::In, true));
    assert_eq!(out[0].reason, "orca load report received");
    // With m1 fresh again, the silent m0 goes out; sweeping again changes nothing more.
    let out = farm.sweep_fresh(t0 + 6 * S + S / 2);
    assert!(!farm.all_silent());
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0, 0);
    assert!(
        out[0].1.reason.contains("no load report for 4.5s"),
        "{}",
        out[0].1
    );
    assert!(farm.sweep_fresh(t0 + 7 * S).is_empty());
    assert_eq!(counts(&farm, 50, 1), vec![0, 50]);
}

#[test]
fn without_expect_reports_never_go_stale() {
    let farm = farm(2, HealthRules::default());
    assert!(farm.sweep_fresh(farm.started + 3600 * S).is_empty());
    assert!(farm.members.iter().all(|m| m.state.is_ready()));
}
