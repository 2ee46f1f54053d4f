//! Policies: how a farm picks a member for a request.
//!
//! Contract (in the spirit of pingora's `BackendSelection`): a policy is **built** once from a
//! farm's member list (that is where any allocation happens: a weighted sequence, a hash ring) and
//! then **picks** for every request with no lock and no allocation, reading member flags and
//! counters through atomics. The farm snapshot is immutable; when members or weights change, the
//! owner builds a new [`crate::Farm`] and swaps it in.
//!
//! A pick considers only members that [`MemberState::accepts_new`](crate::MemberState::accepts_new)
//! (or, while the farm is in panic mode, [`accepts_new_in_panic`](crate::MemberState::accepts_new_in_panic))
//! and that the [`PickContext`] has not excluded (members already tried for this request). It
//! returns `None` only when no member is eligible; the caller then runs the farm's outage action.
//!
//! Pipelines of stages (filter / sample / order, mod_backhand style) are in [`pipeline`]; a
//! pipeline is itself a `Policy`. Policies that read load reports (`simple`, `dynamic`, a
//! pipeline's load-aware `least`) keep what they learned in their own atomics, written by
//! [`Policy::on_report`] and never read from the report on the request path (see [`capacity`]).
//!
//! "Which member?": [`Policy::explain`] makes a real pick and says why ([`Explanation`]); the
//! default lists the eligible members with [`Policy::score`]. It is the admin path and allocates.

use std::fmt::{self, Debug};
use std::sync::Arc;

use crate::Member;
use crate::report::LoadReport;
use crate::rng::Rng;

mod adaptive;
pub mod capacity;
mod dynamic;
pub mod explain;
mod hash_ring;
mod least_conn;
mod lowest;
mod p2c;
mod peak_ewma;
pub mod pipeline;
mod random;
mod round_robin;
mod simple;
mod weighted;

pub use adaptive::Adaptive;
pub use dynamic::Dynamic;
pub use explain::{Candidate, Chosen, Explanation, Removed};
pub use hash_ring::ConsistentHash;
pub use least_conn::LeastConn;
pub use lowest::Lowest;
pub use p2c::P2c;
pub use peak_ewma::PeakEwma;
pub use pipeline::{Pipeline, Score, Stage};
pub use random::Random;
pub use round_robin::RoundRobin;
pub use simple::Simple;
pub use weighted::Weighted;

/// Where the `hash` policy takes its key from. Extracting the key is the proxy's job; the policy
/// receives its 64-bit hash in [`PickContext::key`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    /// The client's IP address (source affinity).
    Source,
    /// The value of a request header.
    Header(String),
    /// The value of a request cookie.
    Cookie(String),
}

/// The policies a farm can name in its config.
#[derive(Debug, Clone, PartialEq)]
pub enum PolicyKind {
    RoundRobin,
    /// Smooth weighted round robin (nginx's algorithm).
    Weighted,
    /// Fewest in-flight requests relative to weight.
    LeastConn,
    /// Uniform random, weighted.
    Random,
    /// Power of two choices: the less loaded (in-flight / weight) of two random members.
    P2c,
    /// Power of two choices on Peak-EWMA cost: latency estimate (peak, decaying over 10 s) x
    /// (in-flight + 1) / weight, as tower and Finagle define it.
    PeakEwma,
    /// Consistent hashing on a key, with bounded load: no member takes more than `bound` times the
    /// average in-flight load (`bound` <= 0 disables the bound).
    Hash {
        key: HashKey,
        bound: f64,
    },
    /// drover's best rule (see `policy/adaptive.rs` and docs/balancing.md).
    Adaptive,
    /// One reported metric sets capacity; P2C on `(in_flight + 1) / capacity` (see
    /// `policy/capacity.rs`).
    Simple {
        metric: String,
    },
    /// A weighted mix of reported metrics sets capacity (weights normalised to sum 1; `rif` is
    /// the local in-flight count); P2C on `(in_flight + 1) / capacity`.
    Dynamic {
        mix: Vec<(String, f64)>,
    },
    /// The lowest reported value of a metric, no sampling. For comparison only: it herds.
    Lowest {
        metric: String,
    },
    /// Stages applied in order; the last stage's first candidate wins.
    Pipeline(Vec<Stage>),
}

impl PolicyKind {
    /// The name used in config files and the API.
    pub fn name(&self) -> &'static str {
        match self {
            PolicyKind::RoundRobin => "round-robin",
            PolicyKind::Weighted => "weighted",
            PolicyKind::LeastConn => "least-conn",
            PolicyKind::Random => "random",
            PolicyKind::P2c => "p2c",
            PolicyKind::PeakEwma => "peak-ewma",
            PolicyKind::Hash { .. } => "hash",
            PolicyKind::Adaptive => "adaptive",
            PolicyKind::Simple { .. } => "simple",
            PolicyKind::Dynamic { .. } => "dynamic",
            PolicyKind::Lowest { .. } => "lowest",
            PolicyKind::Pipeline(_) => "pipeline",
        }
    }

    /// Every policy name accepted in config, for error messages.
    pub const NAMES: &'static [&'static str] = &[
        "round-robin",
        "weighted",
        "least-conn",
        "random",
        "p2c",
        "peak-ewma",
        "hash",
        "adaptive",
    ];

    /// The policies written with arguments, for error messages (a TOML array of stages is a
    /// pipeline; see [`pipeline::STAGE_FORMS`]).
    pub const FORMS: &'static [&'static str] = &[
        "simple(<metric>)",
        "dynamic(<metric>=<weight>, ...)",
        "lowest(<metric>)",
    ];

    /// Builds the policy for this member list.
    pub fn build(&self, members: &[Arc<Member>]) -> Box<dyn Policy> {
        match self {
            PolicyKind::RoundRobin => Box::new(RoundRobin::new()),
            PolicyKind::Weighted => Box::new(Weighted::new(members)),
            PolicyKind::LeastConn => Box::new(LeastConn::new()),
            PolicyKind::Random => Box::new(Random::new(members)),
            PolicyKind::P2c => Box::new(P2c::new()),
            PolicyKind::PeakEwma => Box::new(PeakEwma::new()),
            PolicyKind::Hash { bound, .. } => Box::new(ConsistentHash::new(members, *bound)),
            PolicyKind::Adaptive => Box::new(Adaptive::new(members)),
            PolicyKind::Simple { metric } => Box::new(Simple::new(members, metric)),
            PolicyKind::Dynamic { mix } => Box::new(Dynamic::new(members, mix)),
            PolicyKind::Lowest { metric } => Box::new(Lowest::new(members, metric)),
            PolicyKind::Pipeline(stages) => Box::new(Pipeline::new(members, stages)),
        }
    }
}

/// The policy as written in config: `p2c`, `simple(cpu)`, `dynamic(cpu=0.5, load1=0.5)`,
/// `["fresh 20s", "sample 2", "least rif"]`.
impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyKind::Simple { metric } => write!(f, "simple({metric})"),
            PolicyKind::Dynamic { mix } => write!(f, "dynamic({})", pipeline::show_mix(mix)),
            PolicyKind::Lowest { metric } => write!(f, "lowest({metric})"),
            PolicyKind::Pipeline(stages) => {
                let names: Vec<String> = stages.iter().map(Stage::to_string).collect();
                write!(f, "{names:?}")
            }
            other => f.write_str(other.name()),
        }
    }
}

/// Most members one request may try (first attempt plus retries).
pub const MAX_TRIES: usize = 8;

/// Per-request inputs to a pick. Lives on the stack; never allocates.
#[derive(Debug, Clone)]
pub struct PickContext {
    /// Hash of the request's key for the `hash` policy (`None`: key absent; the policy falls back
    /// to an even spread).
    pub key: Option<u64>,
    pub rng: Rng,
    /// The farm is in panic mode: member health is ignored (set by [`crate::Farm::pick`]).
    pub panic: bool,
    /// The time of the pick on the [`crate::clock`] scale, for time-aware policies (`peak-ewma`);
    /// 0 = not given: [`PickContext::now`] reads the clock (at each pick, since a retry's pick
    /// comes later than the first one).
    now: u64,
    tried: [u32; MAX_TRIES],
    tried_len: u8,
}

impl PickContext {
    pub fn new(rng: Rng) -> Self {
        PickContext {
            key: None,
            rng,
            panic: false,
            now: 0,
            tried: [0; MAX_TRIES],
            tried_len: 0,
        }
    }

    pub fn with_key(mut self, key: Option<u64>) -> Self {
        self.key = key;
        self
    }

    /// Sets the time of the pick (a simulator's or a test's clock); otherwise the first
    /// [`now`](Self::now) reads [`crate::clock::now`].
    pub fn with_now(mut self, now: u64) -> Self {
        self.now = now;
        self
    }

    /// The time of the pick: the one given, or else the clock's.
    #[inline]
    pub fn now(&self) -> u64 {
        if self.now == 0 {
            crate::clock::now()
        } else {
            self.now
        }
    }

    /// Marks member `index` as tried, so later picks for this request skip it.
    /// Returns false when the context is full ([`MAX_TRIES`]).
    pub fn exclude(&mut self, index: usize) -> bool {
        if usize::from(self.tried_len) == MAX_TRIES {
            return false;
        }
        self.tried[usize::from(self.tried_len)] = index as u32;
        self.tried_len += 1;
        true
    }

    pub fn tries(&self) -> usize {
        usize::from(self.tried_len)
    }

    #[inline]
    pub fn is_excluded(&self, index: usize) -> bool {
        self.tried[..usize::from(self.tried_len)].contains(&(index as u32))
    }

    /// May member `index` be chosen: accepts new sessions and not yet tried.
    #[inline]
    pub fn eligible(&self, members: &[Arc<Member>], index: usize) -> bool {
        let state = &members[index].state;
        let accepts = if self.panic {
            state.accepts_new_in_panic()
        } else {
            state.accepts_new()
        };
        accepts && !self.is_excluded(index)
    }
}

/// A built selection rule over one farm's members.
pub trait Policy: Send + Sync + Debug {
    /// The config name of this policy.
    fn name(&self) -> &'static str;

    /// The index in `members` of the member to use, or `None` when none is eligible.
    /// `members` is the same slice the policy was built from.
    fn pick(&self, members: &[Arc<Member>], ctx: &mut PickContext) -> Option<usize>;

    /// A good load report about member `index` was applied (any source: push, agent-check, ORCA).
    /// Policies that turn reported metrics into capacity update their own atomics here; the
    /// report is never read on the request path. Called off the request path for push and
    /// agent-check, on it (once per response that carries one) for ORCA, so keep it cheap.
    fn on_report(&self, members: &[Arc<Member>], index: usize, report: &LoadReport) {
        let _ = (members, index, report);
    }

    /// This policy's score for member `index` at `now`, for explanations (lower wins), where it
    /// has one: `least-conn` and `p2c` in-flight / weight, `peak-ewma` its cost, `simple` and
    /// `dynamic` `(in_flight + 1) / capacity`. Not used by picks.
    fn score(&self, members: &[Arc<Member>], index: usize, now: u64) -> Option<f64> {
        let _ = (members, index, now);
        None
    }

    /// What [`score`](Self::score) is, in words, when the policy has one.
    fn score_rule(&self) -> Option<&'static str> {
        None
    }

    /// Makes a real pick and says why: the candidates with their scores and the members left
    /// out. The default ([`explain::generic`]) lists eligible members with in-flight, weight and
    /// [`score`](Self::score). The admin path: allocation is fine here.
    fn explain(&self, members: &[Arc<Member>], ctx: &mut PickContext) -> Explanation {
        explain::generic(self, members, ctx)
    }
}

/// `in_flight / live weight`: the load `least-conn` and `p2c` compare, as a number.
pub(crate) fn load_of(member: &Member) -> f64 {
    f64::from(member.stats.in_flight()) * 100.0 / f64::from(member.state.live_weight_x100())
}

/// First eligible member scanning from `start`, wrapping around. The fallback of every policy
/// whose preferred candidate is not eligible.
#[inline]
pub(crate) fn scan_from(members: &[Arc<Member>], ctx: &PickContext, start: usize) -> Option<usize> {
    let n = members.len();
    (0..n)
        .map(|i| (start + i) % n)
        .find(|&i| ctx.eligible(members, i))
}

/// `a` is less loaded than `b`: in-flight / weight, compared by cross-multiplying (no division).
#[inline]
pub(crate) fn less_loaded(members: &[Arc<Member>], a: usize, b: usize) -> bool {
    let (ma, mb) = (&members[a], &members[b]);
    let la = u64::from(ma.stats.in_flight()) * u64::from(mb.state.live_weight_x100());
    let lb = u64::from(mb.stats.in_flight()) * u64::from(ma.state.live_weight_x100());
    la < lb
}

#[cfg(test)]
pub(crate) mod testing {
    //! Helpers shared by the policies' seeded spread tests.
    use super::*;
    use crate::{Flag, MemberSpec};

    pub fn members(weights: &[u32]) -> Vec<Arc<Member>> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                Arc::new(Member::new(MemberSpec {
                    name: format!("m{i}"),
                    addr: format!("127.0.0.1:{}", 9001 + i).parse().unwrap(),
                    weight: w,
                    route: None,
                    enabled: true,
                }))
            })
            .collect()
    }

    /// The eligibility contract every policy must keep: an empty farm, and members that are down,
    /// off, out, draining or already tried, are never picked; `None` exactly when nothing is
    /// eligible. Picks run with and without a hash key, and the one eligible member is made the
    /// most loaded, so a load-aware policy cannot prefer an idle ineligible one.
    pub fn check_eligibility(build: impl Fn(&[Arc<Member>]) -> Box<dyn Policy>) {
        let pick = |p: &dyn Policy, ms: &[Arc<Member>], seed: u64, tried: &[usize]| {
            let key = (seed & 1 == 0).then(|| crate::hash::mix(seed));
            let mut ctx = PickContext::new(Rng::new(seed)).with_key(key);
            for &i in tried {
                assert!(ctx.exclude(i));
            }
            p.pick(ms, &mut ctx)
        };
        assert_eq!(pick(&*build(&[]), &[], 1, &[]), None, "empty farm");

        let ms = members(&[3, 1, 2, 1, 1]);
        let p = build(&ms);
        let name = p.name();
        for seed in 0..100 {
            assert!(pick(&*p, &ms, seed, &[]).is_some(), "{name}: all ready");
        }
        (0..5).for_each(|_| ms[4].stats.start());
        ms[0].state.set(Flag::Up, false);
        ms[1].state.set(Flag::On, false);
        ms[2].state.set(Flag::Draining, true);
        ms[3].state.set(Flag::In, false);
        for seed in 0..100 {
            assert_eq!(
                pick(&*p, &ms, seed, &[]),
                Some(4),
                "{name}: only m4 is eligible"
            );
            assert_eq!(pick(&*p, &ms, seed, &[4]), None, "{name}: m4 already tried");
        }
        ms[2].state.set(Flag::Draining, false);
        for seed in 0..100 {
            assert_eq!(
                pick(&*p, &ms, seed, &[4]),
                Some(2),
                "{name}: m4 tried, m2 back"
            );
            assert_eq!(pick(&*p, &ms, seed, &[2, 4]), None, "{name}: both tried");
        }
        for (flag, m) in [(Flag::Up, 0), (Flag::On, 1), (Flag::In, 3)] {
            ms[m].state.set(flag, true);
        }
        for seed in 0..100 {
            assert_eq!(
                pick(&*p, &ms, seed, &[0, 1, 2, 3]),
                Some(4),
                "{name}: others tried"
            );
            let i = pick(&*p, &ms, seed, &[4]).unwrap();
            assert!(i < 4, "{name}");
        }
    }

    /// Picks as requests that stay in flight (the oldest finishing once `open` are in flight),
    /// at time `now`, counting picks per member: a member's real share under a load-aware policy.
    pub fn shares(
        policy: &dyn Policy,
        members: &[Arc<Member>],
        n: usize,
        open: usize,
        now: u64,
    ) -> Vec<usize> {
        let mut rng = Rng::new(5);
        let mut queue = std::collections::VecDeque::new();
        let mut counts = vec![0; members.len()];
        for _ in 0..n {
            let mut ctx = PickContext::new(Rng::new(rng.next_u64())).with_now(now);
            let i = policy.pick(members, &mut ctx).expect("an eligible member");
            members[i].stats.start();
            counts[i] += 1;
            queue.push_back(i);
            if queue.len() > open {
                let done = queue.pop_front().expect("not empty");
                members[done].stats.finish(true, None);
            }
        }
        counts
    }

    /// Picks `n` times with a fresh context each time (seeded), counting picks per member.
    pub fn spread(policy: &dyn Policy, members: &[Arc<Member>], n: usize, seed: u64) -> Vec<usize> {
        let mut counts = vec![0; members.len()];
        let mut rng = Rng::new(seed);
        for _ in 0..n {
            let mut ctx = PickContext::new(Rng::new(rng.next_u64()));
            let i = policy.pick(members, &mut ctx).expect("an eligible member");
            counts[i] += 1;
        }
        counts
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{check_eligibility, members};
    use super::*;

    fn kinds() -> Vec<PolicyKind> {
        vec![
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
            PolicyKind::Adaptive,
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
                Stage::Fresh(std::time::Duration::from_secs(20)),
                Stage::Sample(2),
                Stage::Least(Score::Dynamic(vec![
                    ("cpu".into(), 0.5),
                    ("rif".into(), 0.5),
                ])),
            ]),
            PolicyKind::Pipeline(vec![Stage::LogWindow, Stage::Least(Score::Rif)]),
            PolicyKind::Pipeline(vec![Stage::Ready, Stage::Random]),
        ]
    }

    #[test]
    fn every_policy_keeps_the_eligibility_contract() {
        for kind in kinds() {
            check_eligibility(|ms| kind.build(ms));
        }
    }

    #[test]
    fn built_policy_names_match_config_names() {
        for kind in kinds() {
            assert_eq!(kind.build(&members(&[1])).name(), kind.name());
            let listed = PolicyKind::NAMES.contains(&kind.name())
                || PolicyKind::FORMS.iter().any(|f| f.starts_with(kind.name()))
                || matches!(kind, PolicyKind::Pipeline(_));
            assert!(listed, "{kind}");
        }
    }
}
