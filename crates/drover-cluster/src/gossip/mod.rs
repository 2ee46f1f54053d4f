//! Peers sharing runtime state by gossip: operator changes (on/off, drain, weight), learned sticky
//! sessions and pushed load reports, so that a change made on any node is in force on all of them
//! and an agent may push its reports to any one node.
//!
//! Why chitchat (Quickwit's gossip library) and not foca: foca is SWIM membership only, and we
//! would have to build the state dissemination on top; chitchat *is* state dissemination: each node
//! owns a versioned key-value map that scuttlebutt anti-entropy copies to every peer (a node that
//! rejoins catches up by the same mechanism), with a phi-accrual failure detector, keys with a TTL
//! and deletion tombstones. What we share is exactly "each node's latest changes", so it fits.
//!
//! Where it sits: the binary starts [`Gossip::start`] when the config has `[cluster]`, beside the
//! admin listener, on the control runtime. The admin API tells it of local changes
//! ([`Gossip::operator_change`], [`Gossip::reports_received`]); the proxy's learn-mode tables note
//! their own changes in a journal it drains every gossip interval. Peers' keys arrive as chitchat
//! key-change events and are applied to the live snapshot (`drover_proxy::Proxy::routing`).
//!
//! Model (see [`keys`] for the keyspace): each node publishes only its *own* changes, under its
//! own chitchat node state, each stamped with wall-clock milliseconds (hybrid: never below a
//! stamp already seen for that key, plus one). For each key, the value with the highest
//! (stamp, node name) across every node state (dead peers' and our own earlier lives' included)
//! is the cluster's value; when a peer holds it, we apply it to the local member. A value applied
//! from a peer is never republished (no echo). Applying is idempotent, so seeing a key twice is
//! harmless. A report keeps its age: it is applied as received `now - (wall now - stamp)` ago, so
//! a stale report stays stale and the farm's freshness rule still holds.
//!
//! Concurrency: one task owns the chitchat handle and does all publishing and applying; the admin
//! handlers and the chitchat callback only send it messages on unbounded channels (they never
//! block). The peers view for the API is a snapshot refreshed every interval.
//!
//! Bounds: sticky keys carry chitchat's TTL (the farms' longest sticky `ttl`; a session still used
//! here is published again half a TTL later), at most [`Settings::max_sticky_keys`] are published
//! by one node (the oldest are deleted first), and the journal of each learn table holds at most
//! `drover_core::sticky::JOURNAL_CAP` changes a drain.
//!
//! Snapshot rebuilds (reloads, members added at run time): the peers' operator changes for a member
//! that is new here are applied, so it gets the cluster's state.
//!
//! Config keys read: `[cluster]` `node`, `nodes`, `secret`, `gossip_port`, `gossip_interval`,
//! `gossip_max_sticky_keys`, and the farms' learn-mode `ttl`. Metrics: the counters of [`View`]
//! (`drover_gossip_*` in `/metrics`, docs/metrics.md).
//!
//! Security: chitchat authenticates nothing; the cluster id (a hash of `[cluster] secret`) only
//! keeps two clusters apart. The gossip port belongs on the cluster's private network.

mod apply;
pub mod keys;

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chitchat::transport::UdpTransport;
use chitchat::{
    Chitchat, ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig, ListenerHandle,
    ProtocolVersion, spawn_chitchat,
};
use drover_core::{LoadReport, clock};
use drover_proxy::Proxy;
use serde::Serialize;
use tokio::sync::mpsc;

pub use keys::{Key, Kind, Op, OpField};

/// What the gossip needs to run; the binary builds it from `[cluster]`.
#[derive(Debug, Clone)]
pub struct Settings {
    /// This node's name (unique in the cluster).
    pub node: String,
    /// Where to bind the gossip's UDP socket, also the address peers reach us at.
    pub listen: SocketAddr,
    /// The other nodes' gossip addresses.
    pub seeds: Vec<SocketAddr>,
    /// Keeps clusters apart (not a secret: it travels in clear).
    pub cluster_id: String,
    /// How often a node gossips with a few peers.
    pub interval: Duration,
    /// Phi-accrual threshold above which a silent peer is dead.
    pub phi_threshold: f64,
    /// How long a dead peer's state is kept (its keys still count) before it is forgotten.
    pub dead_grace: Duration,
    /// Time to live of a published sticky session key (the farms' longest sticky `ttl`).
    pub sticky_ttl: Duration,
    /// Sticky session keys this node publishes, at most.
    pub max_sticky_keys: usize,
}

impl Settings {
    pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(100);
    pub const DEFAULT_PHI: f64 = 8.0;
    pub const DEFAULT_DEAD_GRACE: Duration = Duration::from_secs(3_600);
    pub const DEFAULT_MAX_STICKY_KEYS: usize = 100_000;

    /// Defaults for everything but the node, addresses and cluster id.
    pub fn new(node: &str, listen: SocketAddr, seeds: Vec<SocketAddr>, cluster_id: &str) -> Self {
        Settings {
            node: node.to_owned(),
            listen,
            seeds,
            cluster_id: cluster_id.to_owned(),
            interval: Self::DEFAULT_INTERVAL,
            phi_threshold: Self::DEFAULT_PHI,
            dead_grace: Self::DEFAULT_DEAD_GRACE,
            sticky_ttl: Duration::from_secs(1_800),
            max_sticky_keys: Self::DEFAULT_MAX_STICKY_KEYS,
        }
    }
}

impl Settings {
    /// The gossip's settings for this node of `cluster`, with `config`'s farms for the sticky
    /// sessions' time to live.
    pub fn from_config(config: &drover_config::Config) -> Option<Settings> {
        let cluster = config.cluster.as_ref()?;
        let me = cluster.this_node()?;
        let at = |ip| SocketAddr::new(ip, cluster.gossip_port);
        let mut s = Settings::new(
            &cluster.node,
            at(me.address),
            cluster.peers().map(|n| at(n.address)).collect(),
            &cluster_id(cluster.secret.expose()),
        );
        s.interval = cluster.gossip_interval;
        s.max_sticky_keys = cluster.gossip_max_sticky_keys;
        if let Some(ttl) = config
            .farms
            .iter()
            .filter_map(|f| f.sticky.as_ref())
            .filter(|s| s.mode == drover_config::StickyMode::Learn)
            .map(|s| s.ttl)
            .max()
        {
            s.sticky_ttl = ttl;
        }
        Some(s)
    }
}

/// The cluster id chitchat sends in clear: derived from the shared secret (so two clusters on one
/// network stay apart), never the secret itself.
pub fn cluster_id(secret: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"drover gossip cluster id\n");
    h.update(secret);
    let d = h.finalize();
    let hex: String = d[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("drover-{hex}")
}

/// Why the gossip did not start.
#[derive(Debug, thiserror::Error)]
pub enum GossipError {
    #[error("cannot start the gossip on udp {addr}: {why}")]
    Start { addr: SocketAddr, why: String },
}

/// One peer (or this node) as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct PeerView {
    pub name: String,
    pub address: SocketAddr,
    /// Chitchat's generation: the node's start time; a restarted node is a new generation.
    pub generation: u64,
    /// This node itself.
    #[serde(rename = "self")]
    pub myself: bool,
    pub alive: bool,
    pub heartbeat: u64,
    /// Milliseconds since its heartbeat last moved, as seen here (`null`: not seen moving yet).
    pub last_heartbeat_ms: Option<u64>,
    /// Keys it publishes, by kind.
    pub keys: KeyCounts,
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct KeyCounts {
    pub op: u64,
    pub sticky: u64,
    pub report: u64,
}

/// The API's view of the gossip: `GET /api/v1/cluster/peers`.
#[derive(Debug, Clone, Serialize)]
pub struct View {
    pub node: String,
    pub gossip: SocketAddr,
    pub interval_ms: u64,
    pub peers: Vec<PeerView>,
    /// Peers' values applied here, and this node's changes published, by kind.
    pub applied: KeyCounts,
    pub published: KeyCounts,
    /// Peers' values that named a farm or member this node does not have, or did not parse.
    pub ignored: u64,
}

/// Counters and the last view, shared by the task and the API.
#[derive(Debug, Default)]
struct Shared {
    applied: [AtomicU64; 3],
    published: [AtomicU64; 3],
    ignored: AtomicU64,
    peers: Mutex<Vec<PeerView>>,
}

fn counts(a: &[AtomicU64; 3]) -> KeyCounts {
    KeyCounts {
        op: a[0].load(Relaxed),
        sticky: a[1].load(Relaxed),
        report: a[2].load(Relaxed),
    }
}

/// A local change for the task to publish.
enum Local {
    Op {
        farm: String,
        member: String,
        op: Op,
    },
    Reports {
        reports: Vec<LoadReport>,
        wall_ms: u64,
    },
}

/// The running gossip; dropping it stops nothing (the task lives as long as the runtime).
pub struct Gossip {
    tx: mpsc::UnboundedSender<Local>,
    shared: Arc<Shared>,
    settings: Settings,
}

/// Wall-clock milliseconds since the epoch.
pub fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Gossip {
    /// Binds the gossip socket and starts the task; `saved` is called after peers' operator
    /// changes were applied (the binary writes the state file).
    pub async fn start(
        settings: Settings,
        proxy: Arc<Proxy>,
        saved: Arc<dyn Fn() + Send + Sync>,
    ) -> Result<Gossip, GossipError> {
        let generation = wall_ms();
        let id = ChitchatId::new(settings.node.as_str(), generation, settings.listen);
        let config = ChitchatConfig {
            chitchat_id: id.clone(),
            cluster_id: settings.cluster_id.clone(),
            gossip_interval: settings.interval,
            listen_addr: settings.listen,
            seed_nodes: settings.seeds.iter().map(|s| s.to_string()).collect(),
            failure_detector_config: FailureDetectorConfig {
                phi_threshold: settings.phi_threshold,
                sampling_window_size: 1_000,
                // A heartbeat comes every interval; a gap over 10 intervals says nothing about
                // the next one (the peer was away) and is not sampled.
                max_interval: settings.interval * 10,
                initial_interval: settings.interval,
                dead_node_grace_period: settings.dead_grace,
            },
            marked_for_deletion_grace_period: settings.sticky_ttl,
            catchup_callback: None,
            extra_liveness_predicate: None,
            protocol_version: ProtocolVersion::V0,
        };
        let handle = spawn_chitchat(config, Vec::new(), &UdpTransport)
            .await
            .map_err(|e| GossipError::Start {
                addr: settings.listen,
                why: format!("{e:#}"),
            })?;
        let (ev_tx, ev_rx) = mpsc::unbounded_channel::<(ChitchatId, String)>();
        let subscription = {
            let chitchat = handle.chitchat();
            let guard = chitchat.lock().await;
            let me = id.clone();
            guard.subscribe_event("", move |e| {
                if *e.node != me {
                    let _ = ev_tx.send((e.node.clone(), e.key.to_owned()));
                }
            })
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared::default());
        let task = Task {
            handle,
            _subscription: subscription,
            me: id,
            proxy,
            saved,
            shared: Arc::clone(&shared),
            settings: settings.clone(),
            sticky_published: VecDeque::new(),
            heartbeats: HashMap::new(),
            key_counts: HashMap::new(),
            ticks: 0,
            last_routing: std::sync::Weak::new(),
            last_members: HashSet::new(),
        };
        tokio::spawn(task.run(rx, ev_rx));
        tracing::info!(node = %settings.node, gossip = %settings.listen, seeds = ?settings.seeds, "gossip started");
        Ok(Gossip {
            tx,
            shared,
            settings,
        })
    }

    /// The operator changed `member` of `farm` on this node: publish it.
    pub fn operator_change(&self, farm: &str, member: &str, op: Op) {
        let _ = self.tx.send(Local::Op {
            farm: farm.to_owned(),
            member: member.to_owned(),
            op,
        });
    }

    /// Load reports were pushed to this node and applied: publish them with their receipt time.
    pub fn reports_received(&self, reports: &[LoadReport]) {
        let _ = self.tx.send(Local::Reports {
            reports: reports.to_vec(),
            wall_ms: wall_ms(),
        });
    }

    pub fn view(&self) -> View {
        View {
            node: self.settings.node.clone(),
            gossip: self.settings.listen,
            interval_ms: u64::try_from(self.settings.interval.as_millis()).unwrap_or(u64::MAX),
            peers: self
                .shared
                .peers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            applied: counts(&self.shared.applied),
            published: counts(&self.shared.published),
            ignored: self.shared.ignored.load(Relaxed),
        }
    }
}

/// A sticky session key this node published, and when.
struct Published {
    farm: String,
    key: u64,
    raw: String,
    at: Instant,
}

struct Task {
    handle: ChitchatHandle,
    _subscription: ListenerHandle,
    me: ChitchatId,
    proxy: Arc<Proxy>,
    saved: Arc<dyn Fn() + Send + Sync>,
    shared: Arc<Shared>,
    settings: Settings,
    /// Sticky keys this node published, oldest first, with when.
    sticky_published: VecDeque<Published>,
    /// Per node: its last heartbeat and when it moved.
    heartbeats: HashMap<ChitchatId, (u64, Instant)>,
    /// Per node: its keys by kind, counted every [`COUNT_EVERY`] ticks (a walk of every key).
    key_counts: HashMap<ChitchatId, KeyCounts>,
    ticks: u64,
    /// The snapshot of the last resync (a `Weak` keeps its address from being reused).
    last_routing: std::sync::Weak<drover_proxy::state::Routing>,
    /// (farm, member) of that snapshot.
    last_members: HashSet<(String, String)>,
}

/// Key counts for the view are refreshed every this many gossip intervals: counting walks every
/// key of every node, too much to do each interval with many sticky sessions.
const COUNT_EVERY: u64 = 10;

/// The cluster's value of `key`: the highest (stamp, node) across every node state, with the
/// node that holds it.
fn winner<'a>(
    chitchat: &'a Chitchat,
    key: &Key,
    raw: &str,
) -> Option<(&'a ChitchatId, &'a str, u64)> {
    let mut best: Option<(&ChitchatId, &str, u64)> = None;
    for (id, state) in chitchat.node_states() {
        let Some(v) = state.get(raw) else { continue };
        let Some(t) = keys::stamp_of(key, v) else {
            continue;
        };
        let better = match best {
            None => true,
            Some((bid, _, bt)) => (t, &*id.node_id) > (bt, &*bid.node_id),
        };
        if better {
            best = Some((id, v, t));
        }
    }
    best
}

/// The highest stamp any node holds for `raw`.
fn highest_stamp(chitchat: &Chitchat, key: &Key, raw: &str) -> u64 {
    winner(chitchat, key, raw).map_or(0, |(_, _, t)| t)
}

impl Task {
    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Local>,
        mut events: mpsc::UnboundedReceiver<(ChitchatId, String)>,
    ) {
        let mut tick = tokio::time::interval(self.settings.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                Some(first) = rx.recv() => {
                    let mut batch = vec![first];
                    while let Ok(l) = rx.try_recv() {
                        batch.push(l);
                    }
                    self.publish(batch).await;
                }
                Some(first) = events.recv() => {
                    let mut keys = BTreeSet::new();
                    keys.insert(first.1);
                    while let Ok((_, k)) = events.try_recv() {
                        keys.insert(k);
                    }
                    self.apply(keys, true).await;
                }
                _ = tick.tick() => {
                    self.publish_sticky().await;
                    self.resync_if_rebuilt().await;
                    self.refresh_view().await;
                }
            }
        }
    }

    async fn publish(&mut self, batch: Vec<Local>) {
        let chitchat = self.handle.chitchat();
        let mut c = chitchat.lock().await;
        for l in batch {
            match l {
                Local::Op { farm, member, op } => {
                    let key = Key::Op {
                        farm,
                        member,
                        field: op.field,
                    };
                    let raw = key.to_string();
                    let t = wall_ms().max(highest_stamp(&c, &key, &raw) + 1);
                    c.self_node_state()
                        .set(raw, keys::stamped(&op.value.to_string(), t));
                    self.shared.published[Kind::Op.index()].fetch_add(1, Relaxed);
                }
                Local::Reports { reports, wall_ms } => {
                    for r in reports {
                        let raw = Key::Report {
                            member: r.member.clone(),
                        }
                        .to_string();
                        c.self_node_state()
                            .set(raw, keys::report_value(&r, wall_ms));
                        self.shared.published[Kind::Report.index()].fetch_add(1, Relaxed);
                    }
                }
            }
        }
    }

    /// Drains the learn tables' journals (and turns journaling on for new tables) and publishes
    /// each change, with a TTL.
    async fn publish_sticky(&mut self) {
        let routing = self.proxy.routing();
        let now = clock::now();
        let wall = wall_ms();
        let mut out = Vec::new();
        for f in &routing.farms {
            let Some(table) = f.sticky.as_ref().and_then(|s| s.table.as_ref()) else {
                continue;
            };
            table.journal_on();
            for ch in table.drain_journal().0 {
                let member = match ch.member {
                    Some(i) => match f.farm.members.get(i) {
                        Some(m) => m.name().to_owned(),
                        None => continue,
                    },
                    None => "-".to_owned(),
                };
                let age_ms = now.saturating_sub(ch.at) / 1_000_000;
                let key = Key::Sticky {
                    farm: f.farm.name.clone(),
                    key: ch.key,
                };
                out.push((key, member, wall.saturating_sub(age_ms)));
            }
        }
        // Sessions published half a ttl ago: still used here since, they are published again
        // (from their last use), so the peers keep them as long as this node does; unused, they
        // are left to expire.
        let half = self.settings.sticky_ttl / 2;
        while let Some(p) = self.sticky_published.front() {
            if p.at.elapsed() < half {
                break;
            }
            let Some(p) = self.sticky_published.pop_front() else {
                break;
            };
            let Some(f) = routing.farm(&p.farm) else {
                continue;
            };
            let Some(table) = f.sticky.as_ref().and_then(|s| s.table.as_ref()) else {
                continue;
            };
            if let Some((i, seen)) = table.peek(p.key, now)
                && seen > clock::nanos(p.at)
                && let Some(m) = f.farm.members.get(i)
            {
                let age_ms = now.saturating_sub(seen) / 1_000_000;
                let key = Key::Sticky {
                    farm: p.farm,
                    key: p.key,
                };
                out.push((key, m.name().to_owned(), wall.saturating_sub(age_ms)));
            }
        }
        if out.is_empty() {
            return;
        }
        let chitchat = self.handle.chitchat();
        let mut c = chitchat.lock().await;
        for (key, member, t) in out {
            let raw = key.to_string();
            let t = t.max(highest_stamp(&c, &key, &raw) + 1);
            c.self_node_state()
                .set_with_ttl(raw.clone(), keys::stamped(&member, t));
            if let Key::Sticky { farm, key } = key {
                self.sticky_published.push_back(Published {
                    farm,
                    key,
                    raw,
                    at: Instant::now(),
                });
            }
            self.shared.published[Kind::Sticky.index()].fetch_add(1, Relaxed);
        }
        while self.sticky_published.len() > self.settings.max_sticky_keys {
            if let Some(p) = self.sticky_published.pop_front()
                && c.self_node_state().get(&p.raw).is_some()
            {
                c.self_node_state().delete(&p.raw);
            }
        }
    }

    /// When the snapshot was rebuilt (a reload, a member added at run time), applies every peer's
    /// operator change for the members that are new here: they get the cluster's state (their
    /// keys' events came before they existed). Members that were already here keep what they have:
    /// a reload that changes a member's own value in the file wins, as on a lone node. Reports and
    /// sessions are not replayed: a report applied again would look like news, and learn tables
    /// keep their entries across rebuilds.
    async fn resync_if_rebuilt(&mut self) {
        let routing = self.proxy.routing();
        if std::ptr::eq(self.last_routing.as_ptr(), Arc::as_ptr(&routing)) {
            return;
        }
        self.last_routing = Arc::downgrade(&routing);
        let members: HashSet<(String, String)> = routing
            .farms
            .iter()
            .flat_map(|f| {
                f.farm
                    .members
                    .iter()
                    .map(|m| (f.farm.name.clone(), m.name().to_owned()))
            })
            .collect();
        let before = std::mem::replace(&mut self.last_members, members);
        let raws: BTreeSet<String> = {
            let chitchat = self.handle.chitchat();
            let c = chitchat.lock().await;
            c.node_states()
                .values()
                .flat_map(|s| s.key_values().map(|(k, _)| k))
                .filter(|k| match Key::parse(k) {
                    Some(Key::Op { farm, member, .. }) => {
                        let id = (farm, member);
                        self.last_members.contains(&id) && !before.contains(&id)
                    }
                    _ => false,
                })
                .map(str::to_owned)
                .collect()
        };
        if !raws.is_empty() {
            self.apply(raws, false).await;
        }
    }

    /// Applies the cluster's value of each key that changed at a peer, when a peer holds it.
    /// `count`: in the applied / ignored counters (not for a resync, which repeats).
    async fn apply(&mut self, raws: BTreeSet<String>, count: bool) {
        let mut todo = Vec::new();
        {
            let chitchat = self.handle.chitchat();
            let c = chitchat.lock().await;
            for raw in raws {
                let Some(key) = Key::parse(&raw) else {
                    self.shared.ignored.fetch_add(1, Relaxed);
                    continue;
                };
                if let Some((id, v, t)) = winner(&c, &key, &raw)
                    && *id != self.me
                {
                    todo.push((key, v.to_owned(), t, id.node_id.to_string()));
                }
            }
        }
        let routing = self.proxy.routing();
        let (now, wall) = (clock::now(), wall_ms());
        // A stamp from the future (clock skew) counts as now.
        let at = |t: u64| now.saturating_sub(wall.saturating_sub(t).saturating_mul(1_000_000));
        let mut save = false;
        for (key, v, t, from) in todo {
            let kind = key.kind();
            let done = match key {
                Key::Op {
                    farm,
                    member,
                    field,
                } => {
                    let changed = apply::op(&routing, &farm, &member, field, &v, &from, now);
                    save |= changed == Some(true);
                    changed.is_some()
                }
                Key::Sticky { farm, key } => apply::sticky(&routing, &farm, key, &v, at(t), now),
                Key::Report { member } => match keys::parse_report(&member, &v, at) {
                    Some((r, _)) => apply::report(&routing, &r, now) > 0,
                    None => false,
                },
            };
            if !count {
                continue;
            }
            if done {
                self.shared.applied[kind.index()].fetch_add(1, Relaxed);
            } else {
                self.shared.ignored.fetch_add(1, Relaxed);
            }
        }
        if save {
            (self.saved)();
        }
    }

    async fn refresh_view(&mut self) {
        self.ticks += 1;
        let chitchat = self.handle.chitchat();
        let c = chitchat.lock().await;
        let live: BTreeSet<&ChitchatId> = c.live_nodes().collect();
        let now = Instant::now();
        let mut peers = Vec::new();
        for (id, state) in c.node_states() {
            let hb = u64::from(state.heartbeat());
            let seen = self.heartbeats.entry(id.clone()).or_insert((hb, now));
            if seen.0 != hb {
                *seen = (hb, now);
            }
            let stale = self.ticks.is_multiple_of(COUNT_EVERY) || !self.key_counts.contains_key(id);
            let keys = if stale {
                let mut keys = KeyCounts::default();
                for (k, _) in state.key_values() {
                    match k.as_bytes().first() {
                        Some(b'o') => keys.op += 1,
                        Some(b's') => keys.sticky += 1,
                        Some(b'r') => keys.report += 1,
                        _ => {}
                    }
                }
                self.key_counts.insert(id.clone(), keys);
                keys
            } else {
                self.key_counts.get(id).copied().unwrap_or_default()
            };
            let myself = *id == self.me;
            peers.push(PeerView {
                name: id.node_id.to_string(),
                address: id.gossip_advertise_addr,
                generation: id.generation_id,
                myself,
                alive: myself || live.contains(id),
                heartbeat: hb,
                last_heartbeat_ms: (seen.0 == hb && hb > 0).then(|| {
                    u64::try_from(now.duration_since(seen.1).as_millis()).unwrap_or(u64::MAX)
                }),
                keys,
            });
        }
        if self.ticks.is_multiple_of(COUNT_EVERY) {
            // Forget what we kept of nodes chitchat itself forgot.
            let known: BTreeSet<&ChitchatId> = c.node_states().keys().collect();
            self.heartbeats.retain(|id, _| known.contains(id));
            self.key_counts.retain(|id, _| known.contains(id));
        }
        drop(c);
        *self.shared.peers.lock().unwrap_or_else(|p| p.into_inner()) = peers;
    }
}
