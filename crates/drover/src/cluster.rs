//! `[cluster]` in the running process: starts drover-cluster's VIP service with the readiness
//! checks `ready_requires` asks for, serves it to the admin API, and stops it first on shutdown
//! (so the VIPs move to a peer before this node stops accepting).
//!
//! Checks: `listeners` passes from start (the listeners are bound before this runs) until
//! shutdown begins; `ready-member` also needs, in every farm a listener sends to, a ready member
//! (on, up, in), read from the live snapshot's atomics.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use drover_cluster::Liveness;
use drover_cluster::vrrp::Vips;
use drover_config::{Action, Config, ReadyRequires};
use drover_proxy::Proxy;

/// The listeners are up until shutdown begins.
pub struct Listeners(AtomicBool);

impl Liveness for Listeners {
    fn name(&self) -> &str {
        "listeners"
    }
    fn check(&self) -> Result<(), String> {
        if self.0.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err("shutting down".to_owned())
        }
    }
}

/// Every farm a listener sends to has a ready member.
struct ReadyMember {
    proxy: Arc<Proxy>,
    farms: Vec<String>,
}

impl Liveness for ReadyMember {
    fn name(&self) -> &str {
        "ready-member"
    }
    fn check(&self) -> Result<(), String> {
        let routing = self.proxy.routing();
        for name in &self.farms {
            let ready = routing
                .farm(name)
                .is_some_and(|f| f.farm.members.iter().any(|m| m.state.is_ready()));
            if !ready {
                return Err(format!("farm {name:?} has no ready member"));
            }
        }
        Ok(())
    }
}

/// The running cluster service and its shutdown switch.
pub struct Running {
    pub vips: Arc<Vips>,
    listeners: Arc<Listeners>,
}

impl Running {
    /// Starts the VIP service when `config` has `[cluster]`. Must run on the control runtime
    /// (main thread): keepalived's parent-death signal follows the thread that spawns it.
    pub fn start(config: &Config, proxy: &Arc<Proxy>) -> anyhow::Result<Option<Running>> {
        let Some(cluster) = &config.cluster else {
            return Ok(None);
        };
        let listeners = Arc::new(Listeners(AtomicBool::new(true)));
        let mut checks: Vec<Arc<dyn Liveness>> = vec![listeners.clone()];
        if cluster.ready_requires == ReadyRequires::ReadyMember {
            let mut farms: Vec<String> = Vec::new();
            for route in config.listeners.iter().flat_map(|l| l.routes.iter()) {
                if let Action::Farm(f) = &route.action
                    && !farms.contains(f)
                {
                    farms.push(f.clone());
                }
            }
            checks.push(Arc::new(ReadyMember {
                proxy: Arc::clone(proxy),
                farms,
            }));
        }
        let vips = Vips::start(cluster, checks)?;
        tracing::info!(
            node = %cluster.node,
            mode = cluster.mode.as_str(),
            vips = cluster.vips.len(),
            share = ?vips.plan().share(cluster.nodes.iter().position(|n| n.name == cluster.node).unwrap_or(0))
                .iter().map(|v| v.addr.to_string()).collect::<Vec<_>>(),
            "cluster started"
        );
        Ok(Some(Running { vips, listeners }))
    }

    /// Gives up the VIPs (keepalived stops, sending priority-0 adverts) before the listeners
    /// close.
    pub async fn stop(&self) {
        self.listeners.0.store(false, Ordering::SeqCst);
        self.vips.stop().await;
    }
}

/// The admin API's view of the cluster.
pub struct Admin(pub Arc<Vips>);

impl drover_admin::Cluster for Admin {
    fn status(&self) -> serde_json::Value {
        serde_json::to_value(self.0.status()).unwrap_or_default()
    }
    fn set_maintenance(&self, on: bool, who: &str) -> serde_json::Value {
        self.0.set_maintenance(on, who);
        self.status()
    }
}
