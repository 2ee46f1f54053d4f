//! Report freshness: a farm that `expect`s load reports every D has its silent members flagged out.
//!
//! Where it sits: [`crate::HealthService`] runs one [`sweep`] task per farm whose `expect` is set.
//! It calls [`Farm::sweep_fresh`] on a short tick (a quarter of `expect`, between 50 ms and 1 s),
//! so a member goes out at most that late after its report became overdue; the next good report,
//! applied by any intake path, brings it back in (`Farm::apply_report`). Logs each flip once.

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
    loop {
        every.tick().await;
        for (index, t) in farm.sweep_fresh(clock::now()) {
            crate::schedule::log(&farm, index, &t);
        }
    }
}
