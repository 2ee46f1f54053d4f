//! The running process's control: reloads (SIGHUP or `POST /api/v1/reload`), members added and
//! removed at run time, routes changed by the operator, the health checks that follow each new
//! snapshot, and the state file.
//!
//! Every change goes the same way, one at a time (a mutex): make the new config (the file read
//! again, or the config in force with one member added, removed or re-routed), build a new
//! snapshot with `Routing::rebuild` (kept members keep their runtime state), swap it in, restart
//! the health checks over the new farms, save the state file. Nothing is swapped until the new
//! config has been validated whole, so a bad file changes nothing and its errors are answered.
//!
//! The config in force is the file as last loaded plus the run-time membership changes; a reload
//! makes the file authoritative for membership again (members added at run time and not in the
//! file go, members removed at run time and still in the file come back), like HAProxy's dynamic
//! servers. Flags, weights and routes set by the operator survive a reload unless the file changes
//! that member's own value (see `drover_proxy::state`).
//!
//! What a reload cannot apply, because it lives in the sockets or threads made at start, is
//! reported and logged, not silently dropped: changed `listen` addresses refuse the reload (use a
//! binary upgrade), and `[server]` threads/grace, listeners' header limits, idle timeouts and
//! trusted proxies, the admin `listen` and `[reports]` are listed under `not_applied`.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use anyhow::Context;
use drover_admin::{AdminState, Control, ControlError, NewMember, Reloaded};
use drover_config::Config;
use drover_core::MemberSpec;
use drover_health::HealthService;
use drover_proxy::{Proxy, Routing};
use hyper::StatusCode;

use crate::statefile;

pub struct Process {
    /// The config file; `None` for the demo, which has none.
    path: Option<PathBuf>,
    proxy: Arc<Proxy>,
    /// `[server] state_file`, fixed at start (a reload cannot move it: see `not_applied`).
    state_path: Option<PathBuf>,
    inner: Mutex<Inner>,
    /// One state file write at a time (changes come from the API's blocking tasks, reloads and
    /// shutdown at once).
    saving: Mutex<()>,
    admin: OnceLock<Weak<AdminState>>,
}

struct Inner {
    config: Config,
    health: Option<HealthService>,
}

impl Process {
    /// Takes charge of a started proxy: starts the health checks.
    pub fn start(path: Option<PathBuf>, config: Config, proxy: Arc<Proxy>) -> anyhow::Result<Self> {
        let health = start_health(&config, &proxy)?;
        Ok(Process {
            path,
            proxy,
            state_path: config.server.state_file.clone(),
            inner: Mutex::new(Inner {
                config,
                health: Some(health),
            }),
            saving: Mutex::new(()),
            admin: OnceLock::new(),
        })
    }

    /// The admin listener whose credentials a reload updates.
    pub fn attach_admin(&self, admin: &Arc<AdminState>) {
        let _ = self.admin.set(Arc::downgrade(admin));
    }

    pub fn config(&self) -> Config {
        self.lock().config.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Builds and swaps in the snapshot for `config`, restarts the health checks, saves the state.
    fn apply(&self, inner: &mut Inner, config: Config) -> Result<(), ControlError> {
        let routing = Routing::rebuild(&config, self.proxy.threads(), Some(&self.proxy.routing()));
        self.proxy.swap(routing);
        inner.config = config;
        self.save();
        // The checks follow the new farms. The new ones start before the old ones stop, so the
        // members are never unwatched; the checks' counts (passes and failures in a row) live on
        // the members and carry on. If the new ones cannot start, the old ones keep watching the
        // members they share with the new config.
        match start_health(&inner.config, &self.proxy) {
            Ok(h) => {
                if let Some(old) = inner.health.replace(h) {
                    old.stop();
                }
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "health checks did not restart; the previous ones go on");
                Err(ControlError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!(
                        "the change is in force, but the health checks did not restart (the \
                         previous ones go on, over the members the change kept): {e:#}"
                    ),
                ))
            }
        }
    }

    /// Writes the state file, when there is one.
    pub fn save(&self) {
        let Some(path) = &self.state_path else {
            return;
        };
        let _one = self.saving.lock().unwrap_or_else(|e| e.into_inner());
        // Read under the lock: the last writer writes the latest state.
        if let Err(e) = statefile::save(path, &self.proxy.routing()) {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the state file");
        }
    }
}

/// The first snapshot with the state file (if any) restored over it: for `Proxy::start_prepared`,
/// so a member the operator disabled before a restart gets no request after it.
pub fn restore(config: &Config, routing: Routing, threads: usize) -> Routing {
    let Some(file) = &config.server.state_file else {
        return routing;
    };
    if statefile::restore(file, &routing).routes {
        // Route maps are built with the farm.
        Routing::rebuild(config, threads, Some(&routing))
    } else {
        routing
    }
}

/// Starts the active checks and the ejection supervisors over the farms the proxy serves (the same
/// `Arc<Farm>`s, so a verdict is seen by the next pick). Stops when the returned service is dropped.
pub fn start_health(config: &Config, proxy: &Proxy) -> anyhow::Result<HealthService> {
    let routing = proxy.routing();
    let farms = config
        .farms
        .iter()
        .filter_map(|f| {
            let state = routing.farm(&f.name)?;
            Some(drover_health::FarmChecks {
                farm: Arc::clone(&state.farm),
                checks: f.member_checks.clone(),
                agents: f.member_agents.clone(),
            })
        })
        .collect();
    HealthService::start(farms).context("cannot start the health checks")
}

fn refuse(status: StatusCode, message: impl Into<String>) -> ControlError {
    ControlError::new(status, message)
}

/// Why a reload cannot apply `new` over `old` (listening sockets are kept), or what it leaves out.
fn compare(old: &Config, new: &Config) -> Result<Vec<String>, ControlError> {
    let mut not_applied = Vec::new();
    let names =
        |c: &Config| -> Vec<String> { c.listeners.iter().map(|l| l.name.clone()).collect() };
    if names(old) != names(new) {
        return Err(refuse(
            StatusCode::CONFLICT,
            format!(
                "the listeners changed ({:?} -> {:?}); a reload keeps the listening sockets, so \
                 adding or removing a listener needs a binary upgrade, which starts a new \
                 process on the new file without refusing a connection: `kill -USR2 <drover \
                 pid>` (docs/upgrade.md); the old config stays",
                names(old),
                names(new)
            ),
        ));
    }
    for (a, b) in old.listeners.iter().zip(&new.listeners) {
        if a.listen != b.listen {
            return Err(refuse(
                StatusCode::CONFLICT,
                format!(
                    "listener {:?}: listen changed ({:?} -> {:?}); a reload keeps the listening \
                     sockets, so this needs a binary upgrade, which starts a new process on the \
                     new file without refusing a connection: `kill -USR2 <drover pid>` \
                     (docs/upgrade.md); the old config stays",
                    a.name, a.listen, b.listen
                ),
            ));
        }
        if (a.limits.max_header_bytes, a.limits.max_headers)
            != (b.limits.max_header_bytes, b.limits.max_headers)
        {
            not_applied.push(format!(
                "listener {:?}: max_header_bytes, max_headers (need a restart; max_uri_bytes is applied)",
                a.name
            ));
        }
        if a.idle_timeout != b.idle_timeout {
            not_applied.push(format!(
                "listener {:?}: idle_timeout (needs a restart)",
                a.name
            ));
        }
        if a.defer_accept != b.defer_accept {
            not_applied.push(format!(
                "listener {:?}: defer_accept (a setting of the listening socket: needs a binary \
                 upgrade, kill -USR2, docs/upgrade.md)",
                a.name
            ));
        }
        if a.trusted_proxies != b.trusted_proxies {
            not_applied.push(format!(
                "listener {:?}: trusted_proxies (needs a restart)",
                a.name
            ));
        }
    }
    if old.server != new.server {
        not_applied.push(
            "[server] threads, grace, state_file, upgrade_socket (need a binary upgrade: \
             kill -USR2, docs/upgrade.md)"
                .to_owned(),
        );
    }
    if old.admin.as_ref().map(|a| a.listen) != new.admin.as_ref().map(|a| a.listen) {
        not_applied.push("[admin] listen, or adding/removing [admin] (needs a restart)".to_owned());
    }
    if old.reports != new.reports {
        not_applied.push("[reports] (needs a restart)".to_owned());
    }
    Ok(not_applied)
}

/// (farm, member name, address) of every member, for what a reload kept, added and removed.
fn identities(c: &Config) -> Vec<(String, String, std::net::SocketAddr)> {
    c.farms
        .iter()
        .flat_map(|f| {
            f.members
                .iter()
                .map(|m| (f.name.clone(), m.name.clone(), m.addr))
        })
        .collect()
}

impl Control for Process {
    fn reload(&self, who: &str) -> Result<Reloaded, ControlError> {
        let Some(path) = &self.path else {
            return Err(refuse(
                StatusCode::CONFLICT,
                "this drover was started without a config file (the demo); there is nothing to reload",
            ));
        };
        // The file is read under the lock: of two reloads at once, the later one reads the file
        // last and its config is the one left in force.
        let mut inner = self.lock();
        let new = drover_config::load(path).map_err(|e| {
            tracing::warn!(path = %path.display(), "reload refused, the old config stays:\n{e}");
            refuse(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("{} is invalid; the old config stays:\n{e}", path.display()),
            )
        })?;
        let not_applied = compare(&inner.config, &new).inspect_err(|e| {
            tracing::warn!(path = %path.display(), "reload refused: {}", e.message);
        })?;
        let (before, after) = (identities(&inner.config), identities(&new));
        let show = |(f, m, _): &(String, String, std::net::SocketAddr)| format!("{f}/{m}");
        let done = Reloaded {
            path: path.display().to_string(),
            farms: new.farms.len(),
            members: after.len(),
            kept: after.iter().filter(|i| before.contains(i)).count(),
            added: after
                .iter()
                .filter(|i| !before.contains(i))
                .map(show)
                .collect(),
            removed: before
                .iter()
                .filter(|i| !after.contains(i))
                .map(show)
                .collect(),
            not_applied,
        };
        let admin = new.admin.clone();
        let applied = self.apply(&mut inner, new);
        // The new config is in force even if its health checks did not start: so are its
        // credentials.
        if let (Some(a), Some(state)) = (admin, self.admin.get().and_then(Weak::upgrade)) {
            state.set_credentials(&a);
        }
        applied?;
        tracing::info!(
            by = who,
            path = %path.display(),
            farms = done.farms,
            members = done.members,
            kept = done.kept,
            added = ?done.added,
            removed = ?done.removed,
            "config reloaded"
        );
        for line in &done.not_applied {
            tracing::warn!("reload: not applied: {line}");
        }
        Ok(done)
    }

    fn add_member(&self, farm: &str, member: NewMember, who: &str) -> Result<(), ControlError> {
        if !drover_config::valid_member_name(&member.name) {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                format!(
                    "invalid member name {:?}; it must not be empty or contain spaces, '/' or \
                     control characters",
                    member.name
                ),
            ));
        }
        if !(1..=1000).contains(&member.weight) {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                format!("weight {} is out of range; use 1 to 1000", member.weight),
            ));
        }
        if member.address.port() == 0 || member.address.ip().is_unspecified() {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                format!(
                    "address {} is not one a member can have (port 0 or 0.0.0.0)",
                    member.address
                ),
            ));
        }
        let mut inner = self.lock();
        let routing = self.proxy.routing();
        let Some(f) = routing.farm(farm) else {
            return Err(refuse(
                StatusCode::NOT_FOUND,
                format!("unknown farm {farm:?}"),
            ));
        };
        if f.farm.member(&member.name).is_some() {
            return Err(refuse(
                StatusCode::CONFLICT,
                format!("farm {farm:?} already has a member {:?}", member.name),
            ));
        }
        if let Some(other) = f.farm.members.iter().find(|m| m.addr() == member.address) {
            return Err(refuse(
                StatusCode::CONFLICT,
                format!(
                    "member {:?} of farm {farm:?} already has address {}",
                    other.name(),
                    member.address
                ),
            ));
        }
        if let Some(route) = &member.route {
            check_route(f, route, None)?;
        }
        let mut config = inner.config.clone();
        let Some(fc) = config.farms.iter_mut().find(|c| c.name == farm) else {
            return Err(refuse(
                StatusCode::NOT_FOUND,
                format!("unknown farm {farm:?}"),
            ));
        };
        fc.members.push(MemberSpec {
            name: member.name.clone(),
            addr: member.address,
            weight: member.weight,
            route: member.route.clone(),
            enabled: member.enabled,
        });
        // A new member is checked the way the farm checks its members by default.
        fc.member_checks.push(fc.check.clone());
        fc.member_agents.push(fc.agent.clone());
        if let Some(s) = &mut fc.sticky {
            s.redirects.push(None);
        }
        self.apply(&mut inner, config)?;
        // A member added at run time ramps up like one that comes back up (the farm's
        // `slow_start`), instead of taking a full share of a busy farm's traffic at once.
        if let Some(m) = self
            .proxy
            .routing()
            .farm(farm)
            .and_then(|f| f.farm.member(&member.name))
        {
            m.start_ramp(drover_core::clock::now());
        }
        tracing::info!(by = who, farm, member = %member.name, address = %member.address, "member added");
        Ok(())
    }

    fn remove_member(&self, farm: &str, member: &str, who: &str) -> Result<(), ControlError> {
        let mut inner = self.lock();
        let mut config = inner.config.clone();
        let Some(fc) = config.farms.iter_mut().find(|c| c.name == farm) else {
            return Err(refuse(
                StatusCode::NOT_FOUND,
                format!("unknown farm {farm:?}"),
            ));
        };
        let Some(i) = fc.members.iter().position(|m| m.name == member) else {
            return Err(refuse(
                StatusCode::NOT_FOUND,
                format!("farm {farm:?} has no member {member:?}"),
            ));
        };
        if let Some(route) = &fc.members[i].route {
            redirected_to(fc, route, "remove it")?;
        }
        if fc.members.len() == 1 {
            return Err(refuse(
                StatusCode::CONFLICT,
                format!(
                    "{member:?} is the last member of farm {farm:?}; a farm keeps at least one (disable it instead)"
                ),
            ));
        }
        fc.members.remove(i);
        fc.member_checks.remove(i);
        fc.member_agents.remove(i);
        if let Some(s) = &mut fc.sticky
            && i < s.redirects.len()
        {
            s.redirects.remove(i);
        }
        self.apply(&mut inner, config)?;
        tracing::info!(
            by = who,
            farm,
            member,
            "member removed; its requests in flight finish"
        );
        Ok(())
    }

    fn set_route(
        &self,
        farm: &str,
        member: &str,
        route: Option<String>,
        who: &str,
    ) -> Result<(), ControlError> {
        if let Some(r) = &route
            && !drover_config::valid_route_id(r)
        {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                format!("invalid route id {r:?}; use letters, digits, '-' and '_'"),
            ));
        }
        let mut inner = self.lock();
        let routing = self.proxy.routing();
        let Some(f) = routing.farm(farm) else {
            return Err(refuse(
                StatusCode::NOT_FOUND,
                format!("unknown farm {farm:?}"),
            ));
        };
        let Some(m) = f.farm.member(member) else {
            return Err(refuse(
                StatusCode::NOT_FOUND,
                format!("farm {farm:?} has no member {member:?}"),
            ));
        };
        if let Some(r) = &route {
            check_route(f, r, Some(member))?;
        }
        if m.route().as_deref() == route.as_deref() {
            return Ok(());
        }
        if let (Some(old), Some(fc)) = (
            m.route(),
            inner.config.farms.iter().find(|c| c.name == farm),
        ) {
            redirected_to(fc, &old, "change its route")?;
        }
        m.set_route(route.as_deref());
        let config = inner.config.clone();
        self.apply(&mut inner, config)?;
        tracing::info!(by = who, farm, member, route = ?route, "route of {member} set by operator");
        Ok(())
    }

    fn changed(&self) {
        self.save();
    }
}

/// A route another member of the farm already has would make sessions ambiguous.
fn check_route(
    f: &drover_proxy::state::FarmState,
    route: &str,
    except: Option<&str>,
) -> Result<(), ControlError> {
    if !drover_config::valid_route_id(route) {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            format!("invalid route id {route:?}; use letters, digits, '-' and '_'"),
        ));
    }
    match f
        .farm
        .members
        .iter()
        .find(|m| Some(m.name()) != except && m.route().as_deref() == Some(route))
    {
        Some(other) => Err(refuse(
            StatusCode::CONFLICT,
            format!("member {:?} already has route {route:?}", other.name()),
        )),
        None => Ok(()),
    }
}

/// Refuses to take route `route` away while another member's `redirect` names it: the redirect
/// would silently stop working, or go to whichever member takes the route next.
fn redirected_to(fc: &drover_config::Farm, route: &str, action: &str) -> Result<(), ControlError> {
    let Some(sticky) = &fc.sticky else {
        return Ok(());
    };
    match sticky
        .redirects
        .iter()
        .zip(&fc.members)
        .find(|(r, _)| r.as_deref() == Some(route))
    {
        Some((_, by)) => Err(refuse(
            StatusCode::CONFLICT,
            format!(
                "member {:?} has redirect = {route:?}; change its redirect in the config and \
                 reload before you {action}",
                by.name
            ),
        )),
        None => Ok(()),
    }
}
