//! Runtime state: the immutable snapshot every request reads — listeners' route tables and limits,
//! and farms (the core farm, its upstream pools and its settings).
//!
//! Built from a validated config ([`Routing::build`]) and shared behind `ArcSwap`, so a reload
//! swaps it whole; a request holds one `Arc<Routing>` for its whole life, so it never sees half of
//! an old config and half of a new one.
//!
//! A reload, a member added or removed at run time and a route changed by the operator all build a
//! new snapshot with [`Routing::rebuild`], which carries the runtime state over: a member whose
//! farm, name and address are unchanged is the same `Arc<Member>` (flags, operator's weight and
//! route, counters, latency, last load report, which the new policy learns again, health), keeps
//! its connection pool wherever its place in the farm is (a pool whose settings changed is
//! replaced, and the old one retired: its idle connections close), and a farm keeps its counters,
//! its retry budget, its report grace and outlier window, and its learned sticky sessions. Where the new config changes one of a member's own values (weight, `enabled`,
//! `route`) the config wins; where it does not, the operator's value stays.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use bytes::Bytes;
use drover_config::{
    AccessLog, Config, FailureKinds, Farm as FarmConfig, Listener, LogFormat, Outage, RetryOn,
    Timeouts,
};
use drover_core::outlier::OutlierRules;
use drover_core::{Farm, HashKey, HealthRules, Member, MemberSpec, PassiveRules, RetryBudget};
use http::{HeaderName, HeaderValue, StatusCode};

use crate::access_log::LogFile;
use crate::forward::ForwardSettings;
use crate::pool::{PoolSettings, Upstream};
use crate::route::RouteTable;

/// The whole data-plane snapshot.
#[derive(Debug)]
pub struct Routing {
    pub listeners: Vec<ListenerState>,
    pub farms: Vec<FarmState>,
    /// Access logs that could not be opened (path: error); those listeners log nothing.
    pub log_errors: Vec<String>,
}

#[derive(Debug)]
pub struct ListenerState {
    pub name: String,
    pub routes: RouteTable,
    pub max_uri_bytes: usize,
    pub forwarding: ForwardSettings,
    pub trusted: Vec<drover_config::Cidr>,
    /// The listener's access log, if it has one.
    pub access_log: Option<ListenerLog>,
}

/// A listener's access log: the open log (shared by listeners naming the same path, and kept by
/// a rebuild while the path is unchanged) and this listener's line format.
#[derive(Debug)]
pub struct ListenerLog {
    pub file: Arc<LogFile>,
    pub format: LogFormat,
}

/// What a farm answers when no member is ready, prepared for the request path.
#[derive(Debug)]
pub enum OutageAction {
    Page {
        status: StatusCode,
        body: Bytes,
        content_type: HeaderValue,
    },
    Redirect(HeaderValue),
    Sorry(Arc<Upstream>),
}

/// Where the `hash` policy's key comes from, with header names parsed once.
#[derive(Debug)]
pub enum KeySource {
    Source,
    Header(HeaderName),
    Cookie(String),
}

#[derive(Debug)]
pub struct FarmState {
    /// Shared with the health checks, which write the members' health.
    pub farm: Arc<Farm>,
    /// Parallel to `farm.members`.
    pub upstreams: Vec<Arc<Upstream>>,
    pub timeouts: Timeouts,
    /// Most other members one request may try after a failure `retry_on` allows.
    pub retries: u32,
    pub retry_on: RetryOn,
    /// Kept over a rebuild while its rules are unchanged.
    pub budget: Arc<RetryBudget>,
    /// Which failures count against a member (passive checks).
    pub count: FailureKinds,
    /// Keep a down member's pooled connections (true) or close them (false).
    pub quiescent: bool,
    pub counters: Arc<FarmCounters>,
    pub preserve_host: bool,
    pub rewrite_location: bool,
    pub outage: OutageAction,
    pub key: Option<KeySource>,
    /// Rate limit for this farm's outage warnings.
    pub warn: crate::loglimit::LogLimit,
    /// Read members' ORCA `endpoint-load-metrics` headers as load reports.
    pub orca: bool,
    /// Ask members for them (`endpoint-load-metrics-format: text` on each request).
    pub orca_request: bool,
    /// Sticky sessions, when the farm has them.
    pub sticky: Option<crate::sticky::StickyState>,
    /// The members as the config gave them when this snapshot was built (parallel to
    /// `farm.members`): a rebuild compares the next config against these to tell the config's
    /// changes from the operator's.
    pub specs: Vec<MemberSpec>,
}

/// Per-farm request accounting, for the API and for measuring retries against requests.
#[derive(Debug, Default)]
pub struct FarmCounters {
    /// Client requests sent to the farm.
    pub requests: AtomicU64,
    /// Attempts at a member (connects that failed included).
    pub attempts: AtomicU64,
    /// Retries made (each one granted by the retry budget).
    pub retries: AtomicU64,
    /// Retries refused because the farm's retry budget was spent.
    pub budget_refused: AtomicU64,
    /// ORCA headers applied as load reports.
    pub orca_reports: AtomicU64,
    /// ORCA headers rejected (each logged with its reason; none changed anything).
    pub orca_rejects: AtomicU64,
    /// Sticky: requests answered by the member their session names (or its redirect).
    pub sticky_hits: AtomicU64,
    /// Sticky: requests whose session named a member, answered by another (moved).
    pub sticky_moved: AtomicU64,
    /// Sticky: requests answered 503 because their member could not serve (`nofailover`).
    pub sticky_refused: AtomicU64,
    /// Sticky: cookies drover set (insert mode; route mode's re-stick).
    pub sticky_cookies_set: AtomicU64,
    /// Sticky, learn mode: sessions learned or moved in the table.
    pub sticky_learned: AtomicU64,
}

impl Routing {
    /// Builds the snapshot for `workers` worker threads.
    pub fn build(config: &Config, workers: usize) -> Routing {
        Routing::rebuild(config, workers, None)
    }

    /// Builds the snapshot for `config`, carrying over the runtime state `old` holds (see the
    /// module docs).
    pub fn rebuild(config: &Config, workers: usize, old: Option<&Routing>) -> Routing {
        let farms: Vec<FarmState> = config
            .farms
            .iter()
            .map(|f| FarmState::build(f, workers, old.and_then(|o| o.farm(&f.name))))
            .collect();
        let index = |name: &str| config.farms.iter().position(|f| f.name == name);
        let mut logs = Logs::new(old, workers);
        let listeners = config
            .listeners
            .iter()
            .map(|l: &Listener| ListenerState {
                access_log: l.access_log.as_ref().and_then(|a| logs.get(a)),
                name: l.name.clone(),
                routes: RouteTable::build(&l.routes, index),
                max_uri_bytes: l.limits.max_uri_bytes,
                forwarding: ForwardSettings {
                    x_forwarded: l.forwarding.x_forwarded,
                    forwarded: l.forwarding.forwarded,
                },
                trusted: l.trusted_proxies.clone(),
            })
            .collect();
        let routing = Routing {
            listeners,
            farms,
            log_errors: logs.errors,
        };
        if let Some(old) = old {
            routing.retire_replaced(old);
        }
        routing
    }

    /// Retires the pools of `old` this snapshot no longer uses (members removed, or pools
    /// replaced for new settings), so their idle connections close instead of lingering.
    fn retire_replaced(&self, old: &Routing) {
        let kept: Vec<&Arc<Upstream>> = self.farms.iter().flat_map(FarmState::pools).collect();
        for up in old.farms.iter().flat_map(FarmState::pools) {
            if !kept.iter().any(|k| Arc::ptr_eq(k, up)) {
                up.retire();
            }
        }
    }

    /// Every open access log once (listeners may share one).
    pub fn access_logs(&self) -> Vec<&Arc<LogFile>> {
        let mut all: Vec<&Arc<LogFile>> = Vec::new();
        for file in self
            .listeners
            .iter()
            .filter_map(|l| Some(&l.access_log.as_ref()?.file))
        {
            if !all.iter().any(|f| Arc::ptr_eq(f, file)) {
                all.push(file);
            }
        }
        all
    }

    pub fn farm(&self, name: &str) -> Option<&FarmState> {
        self.farms.iter().find(|f| f.farm.name == name)
    }
}

/// The access logs of a snapshot being built: one per path, the old snapshot's kept.
struct Logs<'a> {
    old: Vec<&'a Arc<LogFile>>,
    open: Vec<Arc<LogFile>>,
    workers: usize,
    errors: Vec<String>,
}

impl<'a> Logs<'a> {
    fn new(old: Option<&'a Routing>, workers: usize) -> Self {
        Logs {
            old: old.map(Routing::access_logs).unwrap_or_default(),
            open: Vec::new(),
            workers,
            errors: Vec::new(),
        }
    }

    fn get(&mut self, cfg: &AccessLog) -> Option<ListenerLog> {
        let same = |f: &&Arc<LogFile>| *f.path() == cfg.path;
        let file = match self
            .open
            .iter()
            .find(same)
            .or_else(|| self.old.iter().copied().find(same))
        {
            Some(f) => Arc::clone(f),
            None => match LogFile::open(&cfg.path, self.workers) {
                Ok(f) => f,
                Err(e) => {
                    tracing::error!(path = %cfg.path, error = %e, "cannot open the access log");
                    self.errors.push(format!("access log {}: {e}", cfg.path));
                    return None;
                }
            },
        };
        if !self.open.iter().any(|f| Arc::ptr_eq(f, &file)) {
            self.open.push(Arc::clone(&file));
        }
        Some(ListenerLog {
            file,
            format: cfg.format,
        })
    }
}

impl FarmState {
    fn build(cfg: &FarmConfig, workers: usize, old: Option<&FarmState>) -> FarmState {
        let settings = PoolSettings {
            max_connections: cfg.max_connections,
            max_idle: cfg.max_idle_per_member,
            idle_timeout: cfg.pool_idle_timeout,
            connect_timeout: cfg.timeouts.connect,
        };
        let members = cfg
            .members
            .iter()
            .map(|spec| match old.and_then(|o| o.same_member(spec)) {
                Some((was, member)) => {
                    carry_over(&cfg.name, member, was, spec);
                    Arc::clone(member)
                }
                None => Arc::new(Member::new(spec.clone())),
            })
            .collect();
        let mut farm = Farm::with_members(cfg.name.clone(), cfg.policy.clone(), members)
            .with_rules(health_rules(cfg));
        if let Some(o) = old {
            farm = farm.carrying(&o.farm);
        }
        let farm = Arc::new(farm);
        let upstreams = farm
            .members
            .iter()
            .map(|m| {
                // A kept member keeps its pool, wherever it now is in the farm, unless the pool
                // settings changed: then its new pool shares the member's connection cap with the
                // old one, which `Routing::rebuild` retires.
                let was =
                    old.and_then(|o| o.upstreams.iter().find(|up| Arc::ptr_eq(&up.member, m)));
                match was {
                    Some(up) if up.settings == settings => Arc::clone(up),
                    Some(up) => Arc::new(up.successor(settings, workers)),
                    None => Arc::new(Upstream::new(Arc::clone(m), settings, workers)),
                }
            })
            .collect();
        let outage = match &cfg.outage {
            Outage::Page(p) => OutageAction::Page {
                status: StatusCode::from_u16(p.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
                body: Bytes::from(p.body.clone()),
                content_type: HeaderValue::from_str(&p.content_type)
                    .unwrap_or(crate::error::TEXT_PLAIN),
            },
            Outage::Redirect(url) => match HeaderValue::from_str(url) {
                Ok(v) => OutageAction::Redirect(v),
                Err(_) => OutageAction::Page {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    body: Bytes::from_static(b"503 Service Unavailable\n"),
                    content_type: crate::error::TEXT_PLAIN,
                },
            },
            Outage::Sorry(addr) => match old.map(|o| &o.outage) {
                Some(OutageAction::Sorry(up)) if up.addr() == *addr && up.settings == settings => {
                    OutageAction::Sorry(Arc::clone(up))
                }
                _ => {
                    let member = Arc::new(Member::new(MemberSpec {
                        name: format!("{}-sorry", cfg.name),
                        addr: *addr,
                        weight: 1,
                        route: None,
                        enabled: true,
                    }));
                    OutageAction::Sorry(Arc::new(Upstream::new(member, settings, workers)))
                }
            },
        };
        let key = match &cfg.policy {
            drover_core::PolicyKind::Hash { key, .. } => Some(match key {
                HashKey::Source => KeySource::Source,
                HashKey::Header(h) => match HeaderName::from_bytes(h.as_bytes()) {
                    Ok(name) => KeySource::Header(name),
                    Err(_) => KeySource::Source,
                },
                HashKey::Cookie(c) => KeySource::Cookie(c.clone()),
            }),
            _ => None,
        };
        let sticky = cfg.sticky.as_ref().map(|s| {
            let kept = old.and_then(|o| Some((o.sticky.as_ref()?, &o.farm)));
            crate::sticky::StickyState::rebuild(s, &farm, kept)
        });
        FarmState {
            farm,
            upstreams,
            timeouts: cfg.timeouts,
            retries: cfg.retries,
            retry_on: cfg.retry_on.clone(),
            budget: match old.map(|o| &o.budget) {
                Some(b) if b.has_rules(cfg.retry_budget.ratio, cfg.retry_budget.floor_per_sec) => {
                    Arc::clone(b)
                }
                _ => Arc::new(RetryBudget::new(
                    cfg.retry_budget.ratio,
                    cfg.retry_budget.floor_per_sec,
                )),
            },
            count: cfg.passive.count.clone(),
            quiescent: cfg.quiescent,
            counters: old.map_or_else(Default::default, |o| Arc::clone(&o.counters)),
            preserve_host: cfg.preserve_host,
            rewrite_location: cfg.rewrite_location,
            outage,
            key,
            warn: Default::default(),
            orca: cfg.reports.orca,
            orca_request: cfg.reports.orca_request,
            sticky,
            specs: cfg.members.clone(),
        }
    }

    /// Every pool of the farm: the members' and the sorry member's.
    fn pools(&self) -> impl Iterator<Item = &Arc<Upstream>> {
        let sorry = match &self.outage {
            OutageAction::Sorry(up) => Some(up),
            _ => None,
        };
        self.upstreams.iter().chain(sorry)
    }

    /// The member of this snapshot that `spec` names (same name and address), with the spec it
    /// was built from.
    fn same_member(&self, spec: &MemberSpec) -> Option<(&MemberSpec, &Arc<Member>)> {
        let i = self
            .farm
            .members
            .iter()
            .position(|m| m.name() == spec.name && m.addr() == spec.addr)?;
        Some((self.specs.get(i)?, &self.farm.members[i]))
    }
}

/// A kept member takes the values the config changed (`was` → `now`); values the config left
/// alone keep what the operator set at run time.
fn carry_over(farm: &str, member: &Member, was: &MemberSpec, now: &MemberSpec) {
    if was.weight != now.weight {
        member.state.set_weight(now.weight);
        tracing::info!(farm, member = %now.name, weight = now.weight, "weight of {} set by the config", now.name);
    }
    if was.route != now.route {
        member.set_route(now.route.as_deref());
    }
    if was.enabled != now.enabled {
        let reason = || format!("config: enabled = {}", now.enabled);
        if let Some(t) = member.flip(
            drover_core::Flag::On,
            now.enabled,
            reason,
            drover_core::clock::now(),
        ) {
            tracing::info!(farm, member = %now.name, "member {} {t}", now.name);
        }
    }
}

/// The farm's health rules in drover-core's terms.
pub fn health_rules(cfg: &FarmConfig) -> HealthRules {
    let p = &cfg.passive;
    HealthRules {
        slow_start: cfg.slow_start.unwrap_or_default(),
        panic_threshold: cfg.panic_threshold,
        passive: PassiveRules {
            consecutive_failures: p.consecutive_failures,
            ejection_time: p.ejection_time,
            max_ejection_time: p.max_ejection_time,
            max_ejected: p.max_ejected,
            outlier: OutlierRules {
                factor: p.outlier_factor,
                min_requests: u64::from(p.outlier_min_requests),
                min_error_rate: p.outlier_min_error_rate,
            },
            outlier_interval: p.outlier_interval,
        },
        expect: cfg.reports.expect.unwrap_or_default(),
    }
}
