//! Report freshness: a farm that `expect`s load reports every D has its silent members flagged out.
//!
//! Where it sits: [`crate::HealthService`] runs one [`sweep`] task per farm whose `expect` is set.
//! It calls [`Farm::sweep_fresh`] on a short tick (a quarter of `expect`, between 50 ms and 1 s),
//! so a member goes out at most that late after its report became overdue; the next good report,
//! applied by any intake path, brings it back in (`Farm::apply_report`). Logs each flip once.
//! When every member is silent, no one is flagged out (the report path is what broke) and a
//! warning says so once.

use std::sync::Arc;
use std::time::Duration;

use drover_core::{Farm, clock};

/// The tick of a farm's sweep: a quarter of `expect`, between 50 ms and 1 s.
pub(crate) fn tick(expect: Duration) -> Duration {
    (expect / 4).clamp(Duration::from_millis(50), Duration::from_secs(1))
}

/// Sweeps `farm` forever (until the service stops and drops the task).
pub(crate) async fn sweep(farm: Arc<Farm>) {
    let mut every = tokio::time::interval(tick(farm.rules.expect));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut silent = false;
    loop {
        every.tick().await;
        for (index, t) in farm.sweep_fresh(clock::now()) {
            crate::schedule::log(&farm, index, &t);
        }
        // Said once when it starts and once when it ends, not every tick.
        match (silent, farm.all_silent()) {
            (false, true) => tracing::warn!(
                farm = %farm.name,
                "no member has sent a load report for longer than expect; keeping them in (is \
                 the report path broken: agents, secret, clocks, admin listener?)"
            ),
            (true, false) => tracing::info!(farm = %farm.name, "load reports arrive again"),
            _ => {}
        }
        silent = farm.all_silent();
    }
}
