//! In-band load reports: the ORCA `endpoint-load-metrics` header on members' responses.
//!
//! Where it sits: step 7 of the request path. [`crate::forward::Scan`] notes the header in the
//! pass it already makes over a response's header names, so a response without it costs nothing
//! more; with it, the handler calls [`take`], which strips the header (it is the member's business
//! with drover, never the client's) and, when the farm reads ORCA (`[farm.X.reports] orca`,
//! default on), parses it with `drover_core::report::orca::parse` and applies the report to the
//! member with `Farm::apply_report` (weight, freshness, the policy's capacity). A bad header is
//! counted on the member (`report_rejects`) and logged with its reason, at most once a second per
//! member, and changes nothing. `orca_request` makes the handler ask for the header on each
//! request with `endpoint-load-metrics-format: text`.
//!
//! Concurrency: `apply_report` stores the last report under the member's mutex; ORCA reports come
//! once per response that carries one, so a member that sends it on every response pays one
//! short lock per response.

use drover_core::clock;
use drover_core::report::orca;
use http::{HeaderMap, HeaderName, HeaderValue};

use std::sync::Arc;

use crate::pool::Upstream;
use crate::state::FarmState;

/// The response header members report load in.
pub const HEADER: HeaderName = HeaderName::from_static("endpoint-load-metrics");
/// The request header that asks for it, and the format asked.
pub const FORMAT: HeaderName = HeaderName::from_static("endpoint-load-metrics-format");
pub const TEXT: HeaderValue = HeaderValue::from_static("text");

/// Strips the ORCA header from a response of `up` and applies it as a load report when the farm
/// reads ORCA and `up` is one of its members (a sorry member is not).
#[cold]
pub fn take(farm: &FarmState, up: &Upstream, headers: &mut HeaderMap) {
    let Some(value) = headers.remove(HEADER) else {
        return;
    };
    if !farm.orca {
        return;
    }
    // The member's place in this snapshot's farm (a pool kept over a rebuild may have moved; a
    // sorry member has none).
    let Some(index) = farm
        .farm
        .members
        .iter()
        .position(|m| Arc::ptr_eq(m, &up.member))
    else {
        return;
    };
    let now = clock::now();
    let member = &farm.farm.members[index];
    match orca::parse(value.as_bytes(), member.name(), now) {
        Ok(report) => {
            farm.counters
                .orca_reports
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            for t in farm.farm.apply_report(index, &report, now) {
                tracing::info!(farm = %farm.farm.name, member = member.name(), "member {} {t}", member.name());
            }
        }
        Err(reject) => {
            member.reported.count_reject();
            farm.counters
                .orca_rejects
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if let Some(held) = up.warn.allow() {
                tracing::warn!(farm = %farm.farm.name, member = member.name(), held_back = held, "load report rejected: {reject}");
            }
        }
    }
}
