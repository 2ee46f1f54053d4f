//! Pipelines: a chain of stages that filter, sample and order a farm's members, mod_backhand
//! style; the last stage's first candidate wins. A pipeline is itself a [`Policy`].
//!
//! Where it sits: config `policy = ["fresh 20s", "sample 2", "least rif"]` (a TOML array; see
//! docs/balancing-policies.md for every stage); [`crate::Farm::pick`] runs [`Pipeline::pick`] for
//! every request, [`crate::Farm::explain`] runs [`Pipeline::explain`], which records which stage
//! removed which member.
//!
//! Stages ([`Stage`]), applied in order to a list of candidate indices:
//! - filters: `ready` (members a pick may take: on, up, in, not draining, not ejected, not already
//!   tried; always applied first, naming it is allowed), `fresh <age>` (members whose last good
//!   load report, [`crate::Reported::received`], is at most `age` old; a member that never
//!   reported is not fresh; if that would remove every candidate it removes none, so a farm whose
//!   agents all stop still serves);
//! - samplers: `sample <k>` (k distinct candidates at random, in random order), `log-window`
//!   (mod_backhand's byLogWindow: ceil(log2 n) consecutive candidates from a random starting
//!   point, wrapping), `random` (one at random);
//! - orderings: `least <score>` (sorted by score, lowest first): `rif` (the balancer's in-flight /
//!   live weight), `latency` (the latency EWMA, 0 before the first answer), `peak-ewma` (tower's
//!   cost, as the `peak-ewma` policy), `simple(m)` and `dynamic(...)` (`(in_flight + 1) /
//!   capacity`, capacity learned from reports as in [`super::capacity`]). An exact tie in the last
//!   stage goes to a random one of the tied candidates.
//!
//! Hot path: the candidates live in a **thread-local scratch buffer** (`Vec<u32>`) reused across
//! picks: it grows to the largest farm a thread has picked for and is never freed, so a pick takes
//! no lock and allocates nothing after a thread's first pick for its largest farm. A pick
//! normally lists the eligible members (O(n) atomic loads); a pipeline whose first sampler is a
//! `sample <k>` with k <= 8 after filters only (`["fresh 20s", "sample 2", "least rif"]`) first
//! draws its k candidates directly, by rejection as `p2c` does (O(k)), and lists only when those
//! draws come up short, which keeps every filter exact. A final `least` finds the minimum
//! without sorting; an ordering followed by other stages reads each candidate's score once into a
//! second thread-local buffer and sorts that snapshot (no allocation after the first; a live
//! comparison would not be a total order while counts move). The load-aware scores keep their capacities
//! in the pipeline's own atomics, written by [`Policy::on_report`], never read from a report.

use std::cell::RefCell;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::capacity::{LoadAware, SCORE_RULE, STALE_AFTER};
use super::explain::{Candidate, Chosen, Explanation, Removed, not_eligible};
use super::{PeakEwma, PickContext, Policy};
use crate::Member;
use crate::report::LoadReport;

/// What a `least` stage orders by (lower first).
#[derive(Debug, Clone, PartialEq)]
pub enum Score {
    /// In-flight / live weight.
    Rif,
    /// Latency EWMA (ns).
    Latency,
    /// Peak-EWMA cost (ns), as the `peak-ewma` policy.
    PeakEwma,
    /// `(in_flight + 1) / capacity` from one reported metric.
    Simple(String),
    /// `(in_flight + 1) / capacity` from a weighted mix.
    Dynamic(Vec<(String, f64)>),
}

/// One stage of a pipeline, as configured.
#[derive(Debug, Clone, PartialEq)]
pub enum Stage {
    Ready,
    Fresh(Duration),
    Sample(usize),
    LogWindow,
    Random,
    Least(Score),
}

/// The stage names accepted in config, with their argument forms, for error messages.
pub const STAGE_FORMS: &[&str] = &[
    "ready",
    "fresh <age>",
    "sample <k>",
    "log-window",
    "random",
    "least <score>",
];
/// The scores `least` accepts, for error messages.
pub const SCORE_FORMS: &[&str] = &[
    "rif",
    "latency",
    "peak-ewma",
    "simple(<metric>)",
    "dynamic(<metric>=<weight>, ...)",
];

/// `20s`, `1500ms`: the config's way of writing a duration.
pub(crate) fn show_duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d.subsec_nanos().is_multiple_of(1_000_000) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}us", d.as_micros())
    }
}

/// `cpu=0.5, rif=0.5`.
pub(crate) fn show_mix(mix: &[(String, f64)]) -> String {
    let terms: Vec<String> = mix.iter().map(|(n, w)| format!("{n}={w}")).collect();
    terms.join(", ")
}

impl fmt::Display for Score {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Score::Rif => f.write_str("rif"),
            Score::Latency => f.write_str("latency"),
            Score::PeakEwma => f.write_str("peak-ewma"),
            Score::Simple(m) => write!(f, "simple({m})"),
            Score::Dynamic(mix) => write!(f, "dynamic({})", show_mix(mix)),
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stage::Ready => f.write_str("ready"),
            Stage::Fresh(d) => write!(f, "fresh {}", show_duration(*d)),
            Stage::Sample(k) => write!(f, "sample {k}"),
            Stage::LogWindow => f.write_str("log-window"),
            Stage::Random => f.write_str("random"),
            Stage::Least(s) => write!(f, "least {s}"),
        }
    }
}

/// A score ready to compute.
#[derive(Debug)]
enum Scorer {
    Rif,
    Latency,
    PeakEwma,
    Load(LoadAware),
}

impl Scorer {
    #[inline]
    fn score(&self, members: &[Arc<Member>], i: usize, now: u64) -> f64 {
        let m = &members[i];
        match self {
            Scorer::Rif => {
                f64::from(m.stats.in_flight()) * 100.0 / f64::from(m.state.live_weight_x100())
            }
            Scorer::Latency => m.stats.latency_ewma_ns(),
            Scorer::PeakEwma => PeakEwma::cost(m, now),
            Scorer::Load(l) => l.cap.score(m, i, now),
        }
    }

    fn rule(&self) -> &'static str {
        match self {
            Scorer::Rif => "in-flight / weight; lower wins",
            Scorer::Latency => "latency EWMA in ns (0 before the first answer); lower wins",
            Scorer::PeakEwma => "Peak-EWMA cost in ns: estimate x (in-flight + 1) / weight",
            Scorer::Load(_) => SCORE_RULE,
        }
    }
}

/// A stage ready to run.
#[derive(Debug)]
enum Step {
    Ready,
    Fresh(u64),
    Sample(usize),
    LogWindow,
    Random,
    Least(Scorer),
}

#[derive(Debug)]
pub struct Pipeline {
    steps: Vec<Step>,
    /// Each step as configured, for explanations.
    names: Vec<String>,
    /// The index of a `sample <k>` (k <= [`FAST_SAMPLE`]) preceded by filters only: such a
    /// pipeline draws its sample directly instead of listing every member (see [`Pipeline::run`]).
    fast_sample: Option<usize>,
}

/// Largest `k` of a directly drawn sample.
const FAST_SAMPLE: usize = 8;
/// Uniform draws per sampled candidate before the direct draw gives up.
const FAST_DRAWS: usize = 4;

thread_local! {
    /// The candidates of the pick running on this thread (see the module doc).
    static SCRATCH: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
    /// Scores of the candidates an ordering that is not the last stage sorts, read once.
    static SCORES: RefCell<Vec<(f64, u32)>> = const { RefCell::new(Vec::new()) };
}

/// What [`Pipeline::explain`] records while a pick runs.
struct Trace {
    removed: Vec<Removed>,
    notes: Vec<String>,
}

impl Pipeline {
    pub fn new(members: &[Arc<Member>], stages: &[Stage]) -> Self {
        Self::with_stale_after(members, stages, STALE_AFTER)
    }

    /// With the staleness horizon of the load-aware scores (see [`super::capacity`]).
    pub fn with_stale_after(
        members: &[Arc<Member>],
        stages: &[Stage],
        stale_after: Duration,
    ) -> Self {
        let step = |s: &Stage| match s {
            Stage::Ready => Step::Ready,
            Stage::Fresh(d) => Step::Fresh(crate::clock::span(*d)),
            Stage::Sample(k) => Step::Sample((*k).max(1)),
            Stage::LogWindow => Step::LogWindow,
            Stage::Random => Step::Random,
            Stage::Least(score) => Step::Least(match score {
                Score::Rif => Scorer::Rif,
                Score::Latency => Scorer::Latency,
                Score::PeakEwma => Scorer::PeakEwma,
                Score::Simple(m) => {
                    Scorer::Load(LoadAware::new(members, &[(m.clone(), 1.0)], stale_after))
                }
                Score::Dynamic(mix) => Scorer::Load(LoadAware::new(members, mix, stale_after)),
            }),
        };
        Pipeline {
            steps: stages.iter().map(step).collect(),
            names: stages.iter().map(Stage::to_string).collect(),
            fast_sample: stages
                .iter()
                .position(|s| !matches!(s, Stage::Ready | Stage::Fresh(_)))
                .filter(|&i| matches!(stages[i], Stage::Sample(k) if k <= FAST_SAMPLE)),
        }
    }

    /// Runs the stages over `cands`; the first candidate left wins.
    fn run(
        &self,
        members: &[Arc<Member>],
        ctx: &mut PickContext,
        cands: &mut Vec<u32>,
        mut trace: Option<&mut Trace>,
    ) -> Option<usize> {
        let mut now = 0;
        let mut from = 0;
        if trace.is_none()
            && let Some(at) = self.fast_sample
            && let Some(drawn) = self.draw(members, ctx, at, &mut now)
        {
            cands.clear();
            cands.extend(drawn.iter().flatten());
            from = at + 1;
        } else {
            cands.clear();
            self.list(members, ctx, cands, trace.as_deref_mut());
        }
        self.stages_from(members, ctx, cands, trace, from, now)
    }

    /// Fast path of a pipeline whose first sampler is a small `sample <k>` after filters only:
    /// `k` distinct members drawn uniformly among those every earlier filter keeps, by rejection
    /// (as `p2c` draws its candidates), so a pick costs O(k) instead of O(n). `None` when the
    /// draws did not find `k` such members (few eligible or fresh ones, or a `fresh` filter that
    /// would keep no one): the caller then lists every member, which is exact in every case.
    fn draw(
        &self,
        members: &[Arc<Member>],
        ctx: &mut PickContext,
        at: usize,
        now: &mut u64,
    ) -> Option<[Option<u32>; FAST_SAMPLE]> {
        let Step::Sample(k) = self.steps[at] else {
            return None;
        };
        let n = members.len();
        if n <= k {
            return None;
        }
        if self.steps[..at].iter().any(|s| matches!(s, Step::Fresh(_))) {
            *now = ctx.now();
        }
        let mut out = [None; FAST_SAMPLE];
        let mut len = 0;
        for _ in 0..k * FAST_DRAWS {
            let i = ctx.rng.below(n);
            if out[..len].contains(&Some(i as u32)) || !ctx.eligible(members, i) {
                continue;
            }
            let kept = self.steps[..at].iter().all(|s| match s {
                Step::Fresh(age) => {
                    let at = members[i].reported.received();
                    at != 0 && now.saturating_sub(at) <= *age
                }
                _ => true,
            });
            if kept {
                out[len] = Some(i as u32);
                len += 1;
                if len == k {
                    return Some(out);
                }
            }
        }
        None
    }

    /// Lists the eligible members into `cands` (the `ready` stage, always first).
    fn list(
        &self,
        members: &[Arc<Member>],
        ctx: &PickContext,
        cands: &mut Vec<u32>,
        mut trace: Option<&mut Trace>,
    ) {
        for i in 0..members.len() {
            if ctx.eligible(members, i) {
                cands.push(i as u32);
            } else if let Some(t) = trace.as_deref_mut()
                && let Some(why) = not_eligible(members, ctx, i)
            {
                t.removed.push(Removed::new(members, i, "ready", why));
            }
        }
    }

    /// Runs the stages from `from` on over `cands`; the first candidate left wins. `now` is 0
    /// until a stage needs the clock (then read once).
    fn stages_from(
        &self,
        members: &[Arc<Member>],
        ctx: &mut PickContext,
        cands: &mut Vec<u32>,
        mut trace: Option<&mut Trace>,
        from: usize,
        mut now: u64,
    ) -> Option<usize> {
        if cands.is_empty() {
            return None;
        }
        let last = self.steps.len().saturating_sub(1);
        for (s, step) in self.steps.iter().enumerate().skip(from) {
            if now == 0 && matches!(step, Step::Fresh(_) | Step::Least(_)) {
                now = ctx.now();
            }
            let before = trace.is_some().then(|| cands.clone());
            match step {
                Step::Ready => {}
                Step::Fresh(age) => {
                    let fresh = |i: &u32| {
                        let at = members[*i as usize].reported.received();
                        at != 0 && now.saturating_sub(at) <= *age
                    };
                    if cands.iter().any(fresh) {
                        cands.retain(fresh);
                    } else if let Some(t) = trace.as_deref_mut() {
                        t.notes.push(format!(
                            "{}: no candidate reported within {}, so it removed none",
                            self.names[s],
                            show_duration(Duration::from_nanos(*age))
                        ));
                    }
                }
                Step::Sample(k) => {
                    let n = cands.len();
                    if n > *k {
                        for j in 0..*k {
                            let r = j + ctx.rng.below(n - j);
                            cands.swap(j, r);
                        }
                        cands.truncate(*k);
                    }
                }
                Step::LogWindow => {
                    let n = cands.len();
                    // ceil(log2 n), at least 1.
                    let w = (usize::BITS - (n - 1).leading_zeros()).max(1) as usize;
                    if w < n {
                        let r = ctx.rng.below(n);
                        cands.rotate_left(r);
                        cands.truncate(w);
                    }
                }
                Step::Random => {
                    let r = ctx.rng.below(cands.len());
                    cands.swap(0, r);
                    cands.truncate(1);
                }
                Step::Least(scorer) => {
                    if s == last && trace.is_none() {
                        return Some(least(members, ctx, cands, scorer, now));
                    }
                    // Scores are read once and sorted as a snapshot: compared live, counts that
                    // move during the sort make the order inconsistent, and std's sort may panic
                    // on that (an abort in release).
                    SCORES.with(|scores| {
                        let Ok(mut scores) = scores.try_borrow_mut() else {
                            return;
                        };
                        scores.clear();
                        scores.extend(
                            cands
                                .iter()
                                .map(|&i| (scorer.score(members, i as usize, now), i)),
                        );
                        scores.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
                        cands.clear();
                        cands.extend(scores.iter().map(|&(_, i)| i));
                    });
                }
            }
            if let (Some(t), Some(before)) = (trace.as_deref_mut(), before) {
                let why = match step {
                    Step::Fresh(_) => "no load report within the age",
                    Step::Sample(_) => "not sampled",
                    Step::LogWindow => "outside the window",
                    Step::Random => "not drawn",
                    _ => "removed",
                };
                let mut kept = vec![false; members.len()];
                for &i in cands.iter() {
                    kept[i as usize] = true;
                }
                for &i in before.iter().filter(|&&i| !kept[i as usize]) {
                    let i = i as usize;
                    let why = match (step, members[i].reported.received()) {
                        (Step::Fresh(_), 0) => "never reported".to_owned(),
                        (Step::Fresh(_), at) => format!(
                            "last load report {:.1}s ago",
                            now.saturating_sub(at) as f64 / 1e9
                        ),
                        _ => why.to_owned(),
                    };
                    t.removed
                        .push(Removed::new(members, i, &self.names[s], why));
                }
            }
        }
        cands.first().map(|&i| i as usize)
    }

    /// The scorer of the last stage, if it is an ordering.
    fn last_scorer(&self) -> Option<&Scorer> {
        match self.steps.last() {
            Some(Step::Least(s)) => Some(s),
            _ => None,
        }
    }
}

/// The candidate with the lowest score; an exact tie goes to a random one of the tied.
#[inline]
fn least(
    members: &[Arc<Member>],
    ctx: &mut PickContext,
    cands: &[u32],
    scorer: &Scorer,
    now: u64,
) -> usize {
    let mut best = cands[0] as usize;
    let mut best_score = scorer.score(members, best, now);
    let mut ties = 1u64;
    for &i in &cands[1..] {
        let i = i as usize;
        let s = scorer.score(members, i, now);
        if s < best_score {
            (best, best_score, ties) = (i, s, 1);
        } else if s == best_score {
            // Reservoir sampling over the tied: each keeps the pick with probability 1/ties.
            ties += 1;
            if ctx.rng.next_u64().is_multiple_of(ties) {
                best = i;
            }
        }
    }
    best
}

impl Policy for Pipeline {
    fn name(&self) -> &'static str {
        "pipeline"
    }

    fn pick(&self, members: &[Arc<Member>], ctx: &mut PickContext) -> Option<usize> {
        if members.is_empty() {
            return None;
        }
        SCRATCH.with(|s| match s.try_borrow_mut() {
            Ok(mut cands) => {
                // Grown once per thread to the largest farm, whichever path this pick takes.
                let n = members.len();
                if cands.capacity() < n {
                    let len = cands.len();
                    cands.reserve(n - len);
                }
                self.run(members, ctx, &mut cands, None)
            }
            // Only if a pick ran inside a pick on this thread, which nothing does.
            Err(_) => self.run(members, ctx, &mut Vec::new(), None),
        })
    }

    fn on_report(&self, _members: &[Arc<Member>], index: usize, report: &LoadReport) {
        for step in &self.steps {
            if let Step::Least(Scorer::Load(l)) = step {
                l.on_report(index, report);
            }
        }
    }

    fn score(&self, members: &[Arc<Member>], index: usize, now: u64) -> Option<f64> {
        self.last_scorer().map(|s| s.score(members, index, now))
    }

    fn score_rule(&self) -> Option<&'static str> {
        self.last_scorer().map(Scorer::rule)
    }

    fn explain(&self, members: &[Arc<Member>], ctx: &mut PickContext) -> Explanation {
        let now = ctx.now();
        let mut trace = Trace {
            removed: Vec::new(),
            notes: Vec::new(),
        };
        let mut cands = Vec::new();
        let chosen = if members.is_empty() {
            None
        } else {
            self.run(members, ctx, &mut cands, Some(&mut trace))
        };
        let scorer = self.last_scorer();
        let candidates = cands
            .iter()
            .map(|&i| {
                let i = i as usize;
                let mut c = Candidate::new(members, i, now);
                if let Some(s) = scorer {
                    c.score = Some(s.score(members, i, now));
                    if let Scorer::Load(l) = s {
                        l.cap.describe(&mut c, &members[i], now);
                    }
                }
                c
            })
            .collect();
        Explanation {
            policy: format!("{:?}", self.names),
            score: self.score_rule().map(str::to_owned),
            chosen: chosen.map(|index| Chosen {
                index,
                name: members[index].name().to_owned(),
            }),
            candidates,
            removed: trace.removed,
            notes: trace.notes,
            ..Explanation::default()
        }
    }
}

#[cfg(test)]
mod tests;
