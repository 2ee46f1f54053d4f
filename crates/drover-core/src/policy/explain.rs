//! "Which member?": a pick that explains itself — the chosen member, the candidates with their
//! scores, and which stage removed which member.
//!
//! Where it sits: [`crate::Farm::explain`] (the admin listener's `GET /api/v1/farms/{farm}/pick`)
//! calls [`Policy::explain`]; the default ([`generic`]) lists the eligible members with their
//! in-flight count, live weight and the policy's [`Policy::score`], and the members a pick cannot
//! take with the reason (off, down, ejected, out, draining, already tried), as removed by the
//! `ready` stage. Pipelines override it to say which of their stages removed whom.
//!
//! The explanation is a real pick (a round-robin cursor moves; no request is started). This is the
//! admin path: it allocates freely. Every type is plain data (`String`s, numbers, `Vec`s) and
//! derives `serde::Serialize`, so the admin listener serves it as JSON as it is; a score that is
//! not finite serialises as `null`.

use std::sync::Arc;

use serde::Serialize;

use super::{PickContext, Policy};
use crate::{Flag, Member};

/// Why a pick chose what it chose.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Explanation {
    /// The farm's name (filled by [`crate::Farm::explain`]).
    pub farm: String,
    /// The policy as configured: `p2c`, `dynamic(cpu=0.5, rif=0.5)`, `["fresh 20s", "sample 2"]`.
    pub policy: String,
    /// The farm is in panic mode (health ignored).
    pub panic: bool,
    /// The member a request would get; `None` when no member is eligible.
    pub chosen: Option<Chosen>,
    /// What a candidate's `score` is, when the policy has one.
    pub score: Option<String>,
    /// The members the final choice was made among (for a pipeline, what its last stage kept).
    pub candidates: Vec<Candidate>,
    /// The members left out, with the stage that removed each and why.
    pub removed: Vec<Removed>,
    /// Anything else worth saying (a filter that removed no one because it would have removed
    /// everyone, slow start giving the turn to another member).
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Chosen {
    pub index: usize,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    pub index: usize,
    pub name: String,
    pub in_flight: u32,
    /// Live weight (configured weight x the agent's percentage).
    pub weight: f64,
    /// Capacity learned from reports (load-aware policies and stages).
    pub capacity: Option<f64>,
    /// The fresh reported load score in `0..=1` behind that capacity, if any.
    pub load: Option<f64>,
    /// The policy's score for this member (see [`Explanation::score`]); lower wins.
    pub score: Option<f64>,
    /// Seconds since the member's last good load report; `None` if it never reported.
    pub report_age_s: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Removed {
    pub index: usize,
    pub name: String,
    /// The stage that removed it: `ready` for members a pick may not take at all.
    pub stage: String,
    pub why: String,
}

impl Candidate {
    pub fn new(members: &[Arc<Member>], index: usize, now: u64) -> Self {
        let m = &members[index];
        let received = m.reported.received();
        Candidate {
            index,
            name: m.name().to_owned(),
            in_flight: m.stats.in_flight(),
            weight: f64::from(m.state.live_weight_x100()) / 100.0,
            capacity: None,
            load: None,
            score: None,
            report_age_s: (received != 0).then(|| now.saturating_sub(received) as f64 / 1e9),
        }
    }
}

impl Removed {
    pub fn new(members: &[Arc<Member>], index: usize, stage: &str, why: String) -> Self {
        Removed {
            index,
            name: members[index].name().to_owned(),
            stage: stage.to_owned(),
            why,
        }
    }
}

/// Why member `index` is not eligible for this pick, or `None` when it is.
pub fn not_eligible(members: &[Arc<Member>], ctx: &PickContext, index: usize) -> Option<String> {
    if ctx.eligible(members, index) {
        return None;
    }
    let s = &members[index].state;
    let why = if !s.get(Flag::On) {
        "off (operator)"
    } else if !s.get(Flag::In) {
        "out (no fresh load report)"
    } else if !ctx.panic && !s.get(Flag::Up) {
        "down (health checks)"
    } else if !ctx.panic && s.get(Flag::Ejected) {
        "ejected (passive checks)"
    } else if s.get(Flag::Draining) {
        "draining"
    } else if ctx.is_excluded(index) {
        "already tried for this request"
    } else {
        "not eligible"
    };
    Some(why.to_owned())
}

/// The explanation every policy gets unless it says more: eligible members with in-flight,
/// weight and [`Policy::score`]; the others removed by `ready`; then a real pick.
pub fn generic<P: Policy + ?Sized>(
    policy: &P,
    members: &[Arc<Member>],
    ctx: &mut PickContext,
) -> Explanation {
    let now = ctx.now();
    let mut e = Explanation {
        policy: policy.name().to_owned(),
        score: policy.score_rule().map(str::to_owned),
        ..Explanation::default()
    };
    for i in 0..members.len() {
        match not_eligible(members, ctx, i) {
            Some(why) => e.removed.push(Removed::new(members, i, "ready", why)),
            None => {
                let mut c = Candidate::new(members, i, now);
                c.score = policy.score(members, i, now);
                e.candidates.push(c);
            }
        }
    }
    e.chosen = policy.pick(members, ctx).map(|index| Chosen {
        index,
        name: members[index].name().to_owned(),
    });
    e
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::policy::{PolicyKind, Score, Stage};
    use crate::report::{LoadReport, Source};
    use crate::{Farm, Rng};

    fn farm(kind: PolicyKind) -> Farm {
        Farm::with_members("app", kind, crate::policy::testing::members(&[1, 2, 1, 1]))
    }

    #[test]
    fn generic_explanation_lists_scores_and_flags() {
        let f = farm(PolicyKind::LeastConn);
        f.members[0].state.set(Flag::Ejected, true);
        (0..3).for_each(|_| f.members[1].stats.start());
        f.members[3].stats.start();
        let e = f.explain(&mut PickContext::new(Rng::new(1)));
        assert_eq!((e.farm.as_str(), e.policy.as_str()), ("app", "least-conn"));
        assert_eq!(
            e.chosen,
            Some(Chosen {
                index: 2,
                name: "m2".into()
            })
        );
        let scores: Vec<(usize, Option<f64>)> =
            e.candidates.iter().map(|c| (c.index, c.score)).collect();
        assert_eq!(scores, [(1, Some(1.5)), (2, Some(0.0)), (3, Some(1.0))]);
        assert_eq!(e.removed.len(), 1);
        assert_eq!(
            (e.removed[0].stage.as_str(), e.removed[0].why.as_str()),
            ("ready", "ejected (passive checks)")
        );
        let e = farm(PolicyKind::RoundRobin).explain(&mut PickContext::new(Rng::new(1)));
        assert_eq!((e.score, e.candidates[0].score), (None, None));
    }

    #[test]
    fn pipeline_explanation_through_the_farm() {
        let f = farm(PolicyKind::Pipeline(vec![
            Stage::Fresh(Duration::from_secs(20)),
            Stage::Sample(2),
            Stage::Least(Score::Dynamic(vec![
                ("cpu".into(), 0.5),
                ("rif".into(), 0.5),
            ])),
        ]));
        let now = crate::clock::now();
        for i in 0..3 {
            let mut r = LoadReport::new(format!("m{i}"), Source::Push, now);
            r.metrics.insert("cpu", 0.2 * i as f64).unwrap();
            f.apply_report(i, &r, now);
        }
        let e = f.explain(&mut PickContext::new(Rng::new(4)));
        assert_eq!(
            e.policy,
            r#"["fresh 20s", "sample 2", "least dynamic(cpu=0.5, rif=0.5)"]"#
        );
        let fresh: Vec<&str> = e
            .removed
            .iter()
            .filter(|r| r.stage == "fresh 20s")
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(fresh, ["m3"], "{e:?}");
        assert_eq!(e.candidates.len(), 2);
        assert_eq!(
            e.chosen.as_ref().map(|c| c.index),
            Some(e.candidates[0].index)
        );
        assert!(e.candidates.iter().all(|c| c.capacity.is_some()), "{e:?}");
        // Plain data: it serialises as it is.
        let json = serde_json::to_string(&e).unwrap();
        assert!(json.contains(r#""stage":"sample 2""#), "{json}");
    }
}
