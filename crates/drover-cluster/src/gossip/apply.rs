//! Applying a peer's value to the live snapshot: an operator change to a member's flag or weight,
//! a learned sticky session to the farm's learn table, a pushed report through
//! `Farm::apply_report`. Each is idempotent (applying the same value twice changes nothing the
//! second time) and touches only atomics and the learn table's shard locks, like the admin API's
//! own writes.

use drover_core::{Flag, LoadReport};
use drover_proxy::state::Routing;

use super::keys::{self, OpField};

/// A peer's operator change: `Some(true)` when it changed the member, `Some(false)` when it was
/// already so, `None` when the farm, member or value is unknown here.
pub(super) fn op(
    routing: &Routing,
    farm: &str,
    member: &str,
    field: OpField,
    v: &str,
    from: &str,
    now: u64,
) -> Option<bool> {
    let f = routing.farm(farm)?;
    let m = f.farm.member(member)?;
    let (value, _) = keys::parse_stamped(v)?;
    let value: u32 = value.parse().ok()?;
    match field {
        OpField::On | OpField::Drain => {
            let (flag, word) = match (field, value != 0) {
                (OpField::On, true) => (Flag::On, "enable"),
                (OpField::On, false) => (Flag::On, "disable"),
                (_, true) => (Flag::Draining, "drain"),
                (_, false) => (Flag::Draining, "undrain"),
            };
            let t = m.flip(flag, value != 0, || format!("peer {from}: {word}"), now)?;
            tracing::info!(farm, member, peer = from, "member {member} {t}");
            if flag == Flag::On
                && let Some((panic, why)) = f.farm.refresh()
            {
                tracing::warn!(
                    farm,
                    panic,
                    "panic mode {}: {why}",
                    if panic { "on" } else { "off" }
                );
            }
            Some(true)
        }
        OpField::Weight => {
            if !(1..=1000).contains(&value) {
                return None;
            }
            let old = m.state.weight();
            if old == value {
                return Some(false);
            }
            m.state.set_weight(value);
            tracing::info!(
                farm,
                member,
                old,
                weight = value,
                peer = from,
                "weight of {member} set by peer {from}"
            );
            Some(true)
        }
    }
}

/// A peer's sticky session (learned at `learned` on our clock) or its end; false when the farm has
/// no learn table here, the member is unknown, or the entry already expired.
pub(super) fn sticky(
    routing: &Routing,
    farm: &str,
    key: u64,
    v: &str,
    learned: u64,
    now: u64,
) -> bool {
    let Some(f) = routing.farm(farm) else {
        return false;
    };
    let Some(table) = f.sticky.as_ref().and_then(|s| s.table.as_ref()) else {
        return false;
    };
    let Some((member, _)) = keys::parse_stamped(v) else {
        return false;
    };
    if member == "-" {
        table.forget_quietly(key);
        return true;
    }
    let Some(i) = f.farm.members.iter().position(|m| m.name() == member) else {
        return false;
    };
    if now.saturating_sub(learned) >= table.ttl() {
        return false;
    }
    table.adopt(key, i, learned);
    true
}

/// A report pushed to a peer, applied to every farm that has the member (as the intake does);
/// returns how many members it was applied to. A farm that expects reports every `expect` does
/// not take one already older than that: it would bring the member back *in* on stale news (the
/// next freshness sweep would flag it out again).
pub(super) fn report(routing: &Routing, r: &LoadReport, now: u64) -> usize {
    let age = now.saturating_sub(r.received);
    let mut applied = 0;
    for f in &routing.farms {
        let farm = &f.farm;
        let expect = farm.rules.expect;
        if !expect.is_zero() && age > drover_core::clock::span(expect) {
            continue;
        }
        for (index, m) in farm.members.iter().enumerate() {
            if m.name() != r.member {
                continue;
            }
            applied += 1;
            for t in farm.apply_report(index, r, r.received) {
                tracing::info!(farm = %farm.name, member = m.name(), "member {} {t} (report pushed to a peer)", m.name());
            }
        }
    }
    applied
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use drover_core::clock;
    use drover_core::report::{AgentState, Source};

    use super::*;

    const S: u64 = 1_000_000_000;

    fn routing() -> Routing {
        routing_with("")
    }

    /// Farm app (m1, m2, learn mode) with `reports` keys in `[farm.app.reports]`.
    fn routing_with(reports: &str) -> Routing {
        let text = "[[listener]]\nlisten = \"127.0.0.1:0\"\nfarm = \"app\"\n\
            [farm.app]\npolicy = \"round-robin\"\nmembers = [\
            { name = \"m1\", address = \"127.0.0.1:9001\" }, \
            { name = \"m2\", address = \"127.0.0.1:9002\" }]\n\
            [farm.app.sticky]\nmode = \"learn\"\ncookie = \"SID\"\nttl = \"60s\"\n";
        let text = if reports.is_empty() {
            text.to_owned()
        } else {
            format!(
                "{text}[farm.app.reports]\n{reports}\n[admin]\nlisten = \"127.0.0.1:0\"\n\
                 [reports]\nsecret = \"gossip-apply-test-secret-0123\"\n"
            )
        };
        let config = drover_config::parse_str(&text, Path::new("t.toml")).unwrap();
        Routing::build(&config, 1)
    }

    #[test]
    fn operator_changes_apply_once_and_unknowns_are_refused() {
        let r = routing();
        let m1 = r.farm("app").unwrap().farm.member("m1").unwrap().clone();
        let now = clock::now();
        assert_eq!(
            op(&r, "app", "m1", OpField::On, "0 5", "n2", now),
            Some(true)
        );
        assert!(!m1.state.get(Flag::On));
        let last = m1.health.last_transition().unwrap();
        assert_eq!(last.reason, "peer n2: disable");
        assert_eq!(
            op(&r, "app", "m1", OpField::On, "0 6", "n2", now),
            None,
            "no flip the second time"
        );
        assert_eq!(
            op(&r, "app", "m1", OpField::Drain, "1 7", "n3", now),
            Some(true)
        );
        assert!(m1.state.get(Flag::Draining));
        assert_eq!(
            op(&r, "app", "m1", OpField::Weight, "9 8", "n3", now),
            Some(true)
        );
        assert_eq!(m1.state.weight(), 9);
        assert_eq!(
            op(&r, "app", "m1", OpField::Weight, "9 9", "n3", now),
            Some(false)
        );
        for (farm, member, v) in [
            ("nope", "m1", "1 1"),
            ("app", "m9", "1 1"),
            ("app", "m1", "x 1"),
            ("app", "m1", "1"),
        ] {
            assert_eq!(
                op(&r, farm, member, OpField::On, v, "n2", now),
                None,
                "{farm} {member} {v}"
            );
        }
        assert_eq!(
            op(&r, "app", "m1", OpField::Weight, "0 1", "n2", now),
            None,
            "weight 0"
        );
        assert_eq!(
            op(&r, "app", "m1", OpField::Weight, "1001 1", "n2", now),
            None
        );
    }

    #[test]
    fn sticky_sessions_are_adopted_forgotten_and_expire() {
        let r = routing();
        let f = r.farm("app").unwrap();
        let table = f.sticky.as_ref().unwrap().table.as_ref().unwrap();
        table.journal_on();
        let now = 100 * S;
        assert!(sticky(&r, "app", 42, "m2 1", now - S, now));
        assert_eq!(table.get(42, now), Some(1));
        assert!(sticky(&r, "app", 42, "- 2", now, now));
        assert_eq!(table.get(42, now), None);
        assert!(
            !sticky(&r, "app", 43, "m1 1", now - 61 * S, now),
            "learned 61 s ago with a 60 s ttl: expired"
        );
        assert!(!sticky(&r, "app", 44, "m9 1", now, now), "unknown member");
        assert!(!sticky(&r, "other", 44, "m1 1", now, now), "unknown farm");
        assert!(
            table.drain_journal().0.is_empty(),
            "a peer's sessions are not journaled (no echo)"
        );
    }

    #[test]
    fn reports_apply_with_their_own_time() {
        let r = routing();
        let now = clock::now();
        let mut rep = LoadReport::new("m2", Source::Push, now.saturating_sub(20 * S));
        rep.set_state(AgentState::Down);
        assert_eq!(report(&r, &rep, now), 1);
        let m2 = r.farm("app").unwrap().farm.member("m2").unwrap().clone();
        assert!(!m2.state.get(Flag::Up));
        assert_eq!(
            m2.reported.received(),
            now.saturating_sub(20 * S),
            "not made fresh"
        );
        let unknown = LoadReport::new("m9", Source::Push, now);
        assert_eq!(report(&r, &unknown, now), 0);
    }

    #[test]
    fn a_report_older_than_the_farms_expect_does_not_bring_a_member_in() {
        let r = routing_with("expect = \"10s\"");
        let now = clock::now();
        let stale = LoadReport::new("m1", Source::Push, now.saturating_sub(11 * S));
        assert_eq!(report(&r, &stale, now), 0, "11 s old, expected every 10 s");
        let fresh = LoadReport::new("m1", Source::Push, now.saturating_sub(2 * S));
        assert_eq!(report(&r, &fresh, now), 1);
    }
}
