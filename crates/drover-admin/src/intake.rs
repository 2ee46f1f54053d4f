//! Pushed load reports: `POST /api/v1/reports` (JSON, one or many members) and the mod_athena-style
//! `GET /ath/update?member=m1&cpu=0.42&...`, both signed with the `[reports]` secret.
//!
//! Where it sits: the admin listener routes both here. Order of checks, each answered with a 4xx
//! and its reason in the body, and none changing any state: push configured at all (403 without a
//! secret), body size (413), signature, freshness and replay (401,
//! `drover_core::report::push::verify`: HMAC-SHA256 over `timestamp + "\n" + body`, or over the
//! query string for the GET form), format (400, `parse_json` / `parse_query`), and every member
//! named exists in some farm (404). Only then is each report applied, to every farm that has a
//! member of that name (a host in several farms reports once), through `Farm::apply_report`.
//!
//! Counters: accepted reports and rejected calls by reason, shown in `GET /api/v1/farms` under
//! `reports` and in `/metrics` as `drover_reports_accepted_total` and
//! `drover_reports_rejected_total{reason}`. Each reject is also logged at warn, one line with the peer address and the reason.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use drover_config::{Reports, Secret};
use drover_core::report::push::{self, DEFAULT_REPLAY_CAPACITY, ReplayGuard};
use drover_core::{LoadReport, RejectKind, clock};
use drover_proxy::loglimit::LogLimit;
use drover_proxy::state::Routing;
use hyper::{HeaderMap, StatusCode};

/// The push intake's settings and counters.
#[derive(Debug)]
pub struct Intake {
    secret: Option<Secret>,
    window: Duration,
    guard: ReplayGuard,
    pub accepted: AtomicU64,
    /// Rejected calls, by [`RejectKind`] (in `REJECT_KINDS` order), then unknown member, then
    /// push disabled.
    rejected: [AtomicU64; 8],
    warn: LogLimit,
}

const REJECT_KINDS: [RejectKind; 6] = [
    RejectKind::Malformed,
    RejectKind::Invalid,
    RejectKind::TooLarge,
    RejectKind::Unauthorized,
    RejectKind::Stale,
    RejectKind::Replay,
];
const UNKNOWN_MEMBER: usize = 6;
const DISABLED: usize = 7;

/// An answer to a push: status and a one-line body.
pub struct Answer {
    pub status: StatusCode,
    pub body: String,
    /// The reports applied (none when refused), for the peers.
    pub applied: Vec<LoadReport>,
}

impl Intake {
    pub fn new(cfg: &Reports) -> Self {
        Intake {
            secret: cfg.secret.clone(),
            window: cfg.window,
            guard: ReplayGuard::new(DEFAULT_REPLAY_CAPACITY),
            accepted: AtomicU64::new(0),
            rejected: Default::default(),
            warn: LogLimit::default(),
        }
    }

    /// Rejected calls by reason label, for the API.
    pub fn rejected(&self) -> serde_json::Map<String, serde_json::Value> {
        self.rejected_by_reason()
            .map(|(l, n)| (l.to_owned(), n.into()))
            .collect()
    }

    /// Rejected calls by reason label (`malformed`, ..., `unknown_member`, `disabled`), every
    /// reason listed, for `/metrics`.
    pub fn rejected_by_reason(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        let labels = REJECT_KINDS
            .iter()
            .map(|k| k.as_str())
            .chain(["unknown_member", "disabled"]);
        labels.zip(self.rejected.iter().map(|n| n.load(Relaxed)))
    }

    /// `POST /api/v1/reports` with `body` (already read, at most `push::MAX_BODY` + 1 bytes).
    pub fn post(
        &self,
        routing: &Routing,
        headers: &HeaderMap,
        body: &Bytes,
        peer: SocketAddr,
    ) -> Answer {
        if body.len() > push::MAX_BODY {
            return self.too_large(peer);
        }
        self.take(routing, headers, body, peer, |now| {
            push::parse_json(body, now)
        })
    }

    /// What can be refused from the head alone, before a body is read: push switched off, or no
    /// signature headers at all. Anything else waits for the body (the signature covers it).
    pub fn gate(&self, headers: &HeaderMap, peer: SocketAddr) -> Option<Answer> {
        if self.secret.is_none() {
            return Some(self.disabled(peer));
        }
        let missing = ["X-Drover-Timestamp", "X-Drover-Signature"]
            .into_iter()
            .find(|h| !headers.contains_key(*h))?;
        let why = format!("signature: missing {missing} header (see docs/reports.md, Signatures)");
        Some(self.refuse(3, StatusCode::UNAUTHORIZED, why, peer))
    }

    fn disabled(&self, peer: SocketAddr) -> Answer {
        let why = "push intake is off: set [reports] secret (or secret_file) in the config \
                   and sign pushes with it";
        self.refuse(DISABLED, StatusCode::FORBIDDEN, why.to_owned(), peer)
    }

    /// A push body over `push::MAX_BODY` (answered without reading the rest).
    pub fn too_large(&self, peer: SocketAddr) -> Answer {
        let why = format!("push body: too large (at most {} bytes)", push::MAX_BODY);
        self.refuse(2, StatusCode::PAYLOAD_TOO_LARGE, why, peer)
    }

    /// `GET /ath/update?<query>`.
    pub fn get(
        &self,
        routing: &Routing,
        headers: &HeaderMap,
        query: &str,
        peer: SocketAddr,
    ) -> Answer {
        if query.len() > push::MAX_QUERY {
            let why = format!("push query: too long (at most {} bytes)", push::MAX_QUERY);
            return self.refuse(2, StatusCode::URI_TOO_LONG, why, peer);
        }
        let signed = Bytes::copy_from_slice(query.as_bytes());
        self.take(routing, headers, &signed, peer, |now| {
            push::parse_query(query, now).map(|r| vec![r])
        })
    }

    fn take(
        &self,
        routing: &Routing,
        headers: &HeaderMap,
        signed: &[u8],
        peer: SocketAddr,
        parse: impl FnOnce(u64) -> Result<Vec<LoadReport>, drover_core::Reject>,
    ) -> Answer {
        let Some(secret) = &self.secret else {
            return self.disabled(peer);
        };
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
        };
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        // Signature first (unsigned junk costs no parsing); the replay guard last, once the
        // content is known good, so a rejected call leaves no trace in it.
        let authentic = match push::authenticate(
            secret.expose(),
            header("x-drover-timestamp"),
            header("x-drover-signature"),
            signed,
            unix,
            self.window,
        ) {
            Ok(a) => a,
            Err(r) => return self.reject(&r, peer),
        };
        let now = clock::now();
        let reports = match parse(now) {
            Ok(r) => r,
            Err(r) => return self.reject(&r, peer),
        };
        // Every member must exist before anything is applied: a call is all or nothing.
        for (i, r) in reports.iter().enumerate() {
            let known = routing
                .farms
                .iter()
                .any(|f| f.farm.members.iter().any(|m| m.name() == r.member));
            if !known {
                let why = format!(
                    "push: report {i}: unknown member {:?} (no farm has a member of that name)",
                    r.member
                );
                return self.refuse(UNKNOWN_MEMBER, StatusCode::NOT_FOUND, why, peer);
            }
        }
        if let Err(r) = self.guard.accept(authentic) {
            return self.reject(&r, peer);
        }
        let mut applied = 0;
        for r in &reports {
            for f in &routing.farms {
                let farm = &f.farm;
                for (index, m) in farm.members.iter().enumerate() {
                    if m.name() != r.member {
                        continue;
                    }
                    applied += 1;
                    for t in farm.apply_report(index, r, now) {
                        tracing::info!(farm = %farm.name, member = m.name(), "member {} {t}", m.name());
                    }
                }
            }
        }
        self.accepted.fetch_add(reports.len() as u64, Relaxed);
        Answer {
            status: StatusCode::OK,
            body: format!("{{\"accepted\":{},\"applied\":{applied}}}\n", reports.len()),
            applied: reports,
        }
    }

    fn reject(&self, r: &drover_core::Reject, peer: SocketAddr) -> Answer {
        let slot = REJECT_KINDS.iter().position(|k| *k == r.kind).unwrap_or(0);
        let status = match r.kind {
            RejectKind::Malformed | RejectKind::Invalid => StatusCode::BAD_REQUEST,
            RejectKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            RejectKind::Unauthorized | RejectKind::Stale | RejectKind::Replay => {
                StatusCode::UNAUTHORIZED
            }
        };
        self.refuse(slot, status, r.to_string(), peer)
    }

    fn refuse(&self, slot: usize, status: StatusCode, why: String, peer: SocketAddr) -> Answer {
        self.rejected[slot].fetch_add(1, Relaxed);
        // Counted exactly, logged at most once a second: anyone who can reach the admin
        // listener can send junk.
        if let Some(held) = self.warn.allow() {
            tracing::warn!(%peer, status = status.as_u16(), held_back = held, "load report rejected: {why}");
        }
        Answer {
            status,
            body: format!("{why}\n"),
            applied: Vec::new(),
        }
    }
}
