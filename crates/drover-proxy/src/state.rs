//! Runtime state: the immutable snapshot every request reads — listeners' route tables and limits,
//! and farms (the core farm, its upstream pools and its settings).
//!
//! Built once from a validated config ([`Routing::build`]) and shared behind `ArcSwap` so a later
//! reload can swap it whole; a request holds one `Arc<Routing>` for its whole life, so it never sees
//! half of an old config and half of a new one.

use std::sync::Arc;

use bytes::Bytes;
use drover_config::{Config, Farm as FarmConfig, Listener, Outage, Timeouts};
use drover_core::{Farm, HashKey, Member, MemberSpec};
use http::{HeaderName, HeaderValue, StatusCode};

use crate::forward::ForwardSettings;
use crate::pool::{PoolSettings, Upstream};
use crate::route::RouteTable;

/// The whole data-plane snapshot.
#[derive(Debug)]
pub struct Routing {
    pub listeners: Vec<ListenerState>,
    pub farms: Vec<FarmState>,
}

#[derive(Debug)]
pub struct ListenerState {
    pub name: String,
    pub routes: RouteTable,
    pub max_uri_bytes: usize,
    pub forwarding: ForwardSettings,
    pub trusted: Vec<drover_config::Cidr>,
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
    pub farm: Farm,
    /// Parallel to `farm.members`.
    pub upstreams: Vec<Arc<Upstream>>,
    pub timeouts: Timeouts,
    pub retries: u32,
    pub preserve_host: bool,
    pub rewrite_location: bool,
    pub outage: OutageAction,
    pub key: Option<KeySource>,
    /// Rate limit for this farm's outage warnings.
    pub warn: crate::loglimit::LogLimit,
}

impl Routing {
    /// Builds the snapshot for `workers` worker threads.
    pub fn build(config: &Config, workers: usize) -> Routing {
        let farms: Vec<FarmState> = config
            .farms
            .iter()
            .map(|f| FarmState::build(f, workers))
            .collect();
        let index = |name: &str| config.farms.iter().position(|f| f.name == name);
        let listeners = config
            .listeners
            .iter()
            .map(|l: &Listener| ListenerState {
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
        Routing { listeners, farms }
    }

    pub fn farm(&self, name: &str) -> Option<&FarmState> {
        self.farms.iter().find(|f| f.farm.name == name)
    }
}

impl FarmState {
    fn build(cfg: &FarmConfig, workers: usize) -> FarmState {
        let settings = PoolSettings {
            max_connections: cfg.max_connections,
            max_idle: cfg.max_idle_per_member,
            idle_timeout: cfg.pool_idle_timeout,
            connect_timeout: cfg.timeouts.connect,
        };
        let farm = Farm::new(cfg.name.clone(), cfg.policy.clone(), cfg.members.clone());
        let upstreams = farm
            .members
            .iter()
            .map(|m| Arc::new(Upstream::new(Arc::clone(m), settings, workers)))
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
            Outage::Sorry(addr) => {
                let member = Arc::new(Member::new(MemberSpec {
                    name: format!("{}-sorry", cfg.name),
                    addr: *addr,
                    weight: 1,
                    route: None,
                    enabled: true,
                }));
                OutageAction::Sorry(Arc::new(Upstream::new(member, settings, workers)))
            }
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
        FarmState {
            farm,
            upstreams,
            timeouts: cfg.timeouts,
            retries: cfg.retries,
            preserve_host: cfg.preserve_host,
            rewrite_location: cfg.rewrite_location,
            outage,
            key,
            warn: Default::default(),
        }
    }
}
