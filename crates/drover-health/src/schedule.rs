//! The health service: one task per checked member running its [`Probe`] on a rise/fall
//! schedule, and one supervisor per farm that ends passive ejections and applies the outlier rule.
//!
//! Where it sits: the binary starts it next to the proxy with the farms the proxy serves (the same
//! `Arc<Farm>`s, so a verdict is seen by the very next pick). It runs on a thread of its own with
//! a current-thread tokio runtime, so checks never take time from the proxy's workers, and writes
//! only health: the up/down flag (active checks) and the end of ejections (supervisor) — never the
//! operator's on/off.
//!
//! Rules (HAProxy's and ldirectord's): a member starts up; `fall` failed checks in a row take it
//! down, `rise` passed checks in a row bring it back; while down it is checked every
//! `down_interval`. Every wait is `interval` ± `jitter` and the first check of each member comes
//! at a random point of its first interval, so 1,000 members do not probe in lockstep; start times
//! are then rounded up to a 25 ms grid (an eighth of the interval if that is less), so the checks
//! due in one step share one wake-up of the thread. A member killed between two checks is
//! therefore down within `fall` x `interval` x (1 + `jitter`) + one step, plus one `timeout` when
//! its checks hang rather than fail at once.
//!
//! Each member's task owns a [`ProbeState`]: the probe's read buffer and, for an HTTP check with
//! `reuse_connection` (the default), the connection kept from the last check. Checking over a kept
//! connection spares a TCP handshake and close per check, which is most of what a check costs
//! (1,000 members every second: 5.2-5.6% of a core with a fresh connection per check, 2.0-2.5%
//! with reuse; bench/health-checks). The probe replaces a connection that went stale between
//! checks within the same check, so reuse never turns a live member's check into a failure; a
//! member that is down fails on the fresh connect, as without reuse. A member's task is the
//! connection's only user, so it needs no lock, and it is closed when the task ends (service
//! stopped).
//!
//! Members with an agent (`[farm.<name>.agent]`) also get an agent-check task, on the same
//! schedule and grid; see [`crate::agent`].
//!
//! Every flip is logged once at info (`member app/m1 down: 3 checks failed, the last: status 500,
//! expected 200-399`) and recorded in the member's [`drover_core::Health`] for the API.
//!
//! Config keys read: `[farm.<name>.check]` and the members' `check` overrides (through
//! `drover_config::Farm::member_checks`); `[farm.<name>.passive]` via the farm's
//! [`drover_core::HealthRules`].

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use drover_config::{AgentCheck, Check, CheckKind};
use drover_core::outlier::outliers;
use drover_core::{Farm, Rng, Transition, clock};
use tokio::sync::watch;
use tokio::time::{Instant, sleep_until};

use crate::probe::{HttpProbe, Probe, ProbeKind, ProbeState};

/// How often a farm's supervisor looks for ejections that are over.
const RETURN_TICK: Duration = Duration::from_millis(100);

/// Checks start on a grid of this step (or an eighth of the interval, if smaller): the checks due
/// in one step run on one wake-up of the health thread instead of one each. A thousand members
/// checked every second then cost 40 wake-ups a second, not thousands of context switches.
pub(crate) const SLOT: Duration = Duration::from_millis(25);

/// One farm, as the health service sees it.
#[derive(Debug, Clone)]
pub struct FarmChecks {
    pub farm: Arc<Farm>,
    /// One entry per member of `farm`, in order: its resolved check, or `None` (not checked).
    pub checks: Vec<Option<Check>>,
    /// One entry per member of `farm`, in order: its agent check, or `None` (no agent). May be
    /// empty when no member has one.
    pub agents: Vec<Option<AgentCheck>>,
}

/// The running health service; stops when dropped or [`stop`](HealthService::stop)ped.
pub struct HealthService {
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl HealthService {
    /// Starts checking. Does nothing (no thread) when no farm has a check or passive rules.
    pub fn start(farms: Vec<FarmChecks>) -> io::Result<HealthService> {
        let (stop, stopped) = watch::channel(false);
        let busy = farms.iter().any(|f| {
            f.checks.iter().any(Option::is_some)
                || f.agents.iter().any(Option::is_some)
                || supervised(&f.farm)
                || !f.farm.rules.expect.is_zero()
        });
        let thread = if busy {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            Some(
                std::thread::Builder::new()
                    .name("drover-health".into())
                    .spawn(move || rt.block_on(run(farms, stopped)))?,
            )
        } else {
            None
        };
        Ok(HealthService { stop, thread })
    }

    /// Stops every check and waits for the thread to end.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let _ = self.stop.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for HealthService {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn supervised(farm: &Farm) -> bool {
    let p = &farm.rules.passive;
    p.consecutive_failures > 0 || p.outlier.factor > 0.0
}

async fn run(farms: Vec<FarmChecks>, mut stopped: watch::Receiver<bool>) {
    let mut tasks = tokio::task::JoinSet::new();
    let mut seed = Rng::new(clock::now());
    let grid = Instant::now();
    for f in farms {
        for (index, check) in f.checks.iter().enumerate() {
            let (Some(check), Some(member)) = (check, f.farm.members.get(index)) else {
                continue;
            };
            let probe = probe(check, member.addr());
            let rng = Rng::new(seed.next_u64());
            tasks.spawn(check_member(
                Arc::clone(&f.farm),
                index,
                check.clone(),
                probe,
                rng,
                grid,
            ));
        }
        for (index, agent) in f.agents.iter().enumerate() {
            let Some(agent) = agent.clone().filter(|_| index < f.farm.members.len()) else {
                continue;
            };
            let rng = Rng::new(seed.next_u64());
            tasks.spawn(crate::agent::agent_member(
                Arc::clone(&f.farm),
                index,
                agent,
                rng,
                grid,
            ));
        }
        if supervised(&f.farm) {
            tasks.spawn(supervise(Arc::clone(&f.farm)));
        }
        if !f.farm.rules.expect.is_zero() {
            tasks.spawn(crate::fresh::sweep(Arc::clone(&f.farm)));
        }
    }
    let _ = stopped.wait_for(|&s| s).await;
    tasks.shutdown().await;
}

/// The probe a check describes, aimed at a member.
pub fn probe(check: &Check, member: SocketAddr) -> Probe {
    let addr = SocketAddr::new(member.ip(), check.port.unwrap_or(member.port()));
    let kind = match &check.kind {
        CheckKind::Tcp => ProbeKind::Tcp,
        CheckKind::Http(h) => {
            let host = h.host.clone().unwrap_or_else(|| addr.to_string());
            ProbeKind::Http(HttpProbe::new(
                &h.method,
                &h.path,
                &host,
                h.expect_status.clone(),
                h.expect_body.clone(),
                h.expect_body_regex.as_ref().map(|r| r.0.clone()),
                h.max_body,
                h.reuse_connection,
            ))
        }
    };
    Probe {
        addr,
        timeout: check.timeout,
        kind,
    }
}

/// `base` ± `jitter` x `base`, drawn from `rng`.
pub(crate) fn jittered(base: Duration, jitter: f64, rng: &mut Rng) -> Duration {
    let unit = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64; // [0, 1)
    base.mul_f64((1.0 + jitter * (2.0 * unit - 1.0)).max(0.0))
}

/// `at`, moved up to the next point of the grid that starts at `grid` with step `step`.
pub(crate) fn on_grid(at: Instant, grid: Instant, step: Duration) -> Instant {
    let step_ns = step.as_nanos().max(1);
    let since = at.saturating_duration_since(grid).as_nanos();
    let slots = since.div_ceil(step_ns);
    grid + Duration::from_nanos(u64::try_from(slots * step_ns).unwrap_or(u64::MAX))
}

async fn check_member(
    farm: Arc<Farm>,
    index: usize,
    check: Check,
    probe: Probe,
    mut rng: Rng,
    grid: Instant,
) {
    let member = &farm.members[index];
    let streak = &member.health.probes;
    let mut state = ProbeState::default();
    let step = SLOT.min(check.interval.min(check.down_interval) / 8);
    // The schedule runs on nominal times; only the wake-ups are rounded to the grid, so rounding
    // never stretches the interval.
    let mut due = match streak.last() {
        // Checked before this restart (a reload): the next check is one interval after the last.
        Some(last) => {
            let base = if member.state.get(drover_core::Flag::Up) {
                check.interval
            } else {
                check.down_interval
            };
            let since = Duration::from_nanos(clock::now().saturating_sub(last));
            Instant::now() + base.saturating_sub(since)
        }
        // Spread the members' first checks over one interval.
        None => {
            let unit = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            Instant::now() + check.interval.mul_f64(unit)
        }
    };
    sleep_until(on_grid(due, grid, step)).await;
    loop {
        let result = probe.run(&mut state).await;
        let up = member.state.get(drover_core::Flag::Up);
        let flip = match result {
            Ok(_) => {
                let passed = streak.pass(clock::now());
                (!up && passed >= check.rise).then(|| {
                    farm.set_up(
                        index,
                        true,
                        || format!("{passed} checks passed in a row"),
                        clock::now(),
                    )
                })
            }
            Err(e) => {
                let failed = streak.fail(clock::now());
                (up && failed >= check.fall).then(|| {
                    farm.set_up(
                        index,
                        false,
                        || format!("{failed} checks failed in a row, the last: {e}"),
                        clock::now(),
                    )
                })
            }
        };
        if let Some(Some(t)) = flip {
            log(&farm, index, &t);
        }
        let base = if member.state.get(drover_core::Flag::Up) {
            check.interval
        } else {
            check.down_interval
        };
        due += jittered(base, check.jitter, &mut rng);
        // After a long stall (a probe slower than the interval), start afresh from now.
        let now = Instant::now();
        if due < now {
            due = now;
        }
        sleep_until(on_grid(due, grid, step)).await;
    }
}

/// Ends ejections whose time is up and, every `outlier_interval`, ejects members whose error rate
/// is far above the rest of the farm's.
async fn supervise(farm: Arc<Farm>) {
    let rules = farm.rules.passive.clone();
    let mut tick = tokio::time::interval(RETURN_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for (index, t) in farm.return_ejected(clock::now()) {
            log(&farm, index, &t);
        }
        if rules.outlier.factor <= 0.0 {
            continue;
        }
        // The window lives in the farm, so a reload (which restarts this task over the new farm)
        // neither loses nor postpones it.
        let Some(deltas) = farm.outlier_deltas(clock::now(), rules.outlier_interval) else {
            continue;
        };
        for o in outliers(&deltas, &rules.outlier) {
            let interval = rules.outlier_interval;
            if let Some(t) = farm.eject(o.index, clock::now(), || {
                format!(
                    "error rate {:.0}% over {:?}, the rest of the farm {:.0}%",
                    o.rate * 100.0,
                    interval,
                    o.others * 100.0
                )
            }) {
                log(&farm, o.index, &t);
            }
        }
    }
}

pub(crate) fn log(farm: &Farm, index: usize, t: &Transition) {
    let member = farm.members[index].name();
    tracing::info!(farm = %farm.name, member, "member {member} {t}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_bounds() {
        let mut rng = Rng::new(3);
        let base = Duration::from_secs(1);
        let (mut lo, mut hi) = (base, base);
        for _ in 0..10_000 {
            let d = jittered(base, 0.1, &mut rng);
            lo = lo.min(d);
            hi = hi.max(d);
        }
        assert!(lo >= Duration::from_millis(900) && lo < Duration::from_millis(910));
        assert!(hi <= Duration::from_millis(1100) && hi > Duration::from_millis(1090));
        assert_eq!(jittered(base, 0.0, &mut rng), base);
    }

    #[test]
    fn grid_rounds_up_to_the_next_step() {
        let grid = Instant::now();
        let ms = Duration::from_millis;
        assert_eq!(on_grid(grid + ms(1), grid, ms(25)), grid + ms(25));
        assert_eq!(on_grid(grid + ms(25), grid, ms(25)), grid + ms(25));
        assert_eq!(on_grid(grid + ms(26), grid, ms(25)), grid + ms(50));
        assert_eq!(on_grid(grid, grid, ms(25)), grid);
    }
}
