//! The state file (`[server] state_file`): the operator's run-time changes to members, kept on
//! disk so they survive a restart.
//!
//! Written whole after every change, one write at a time (to a new temporary file beside it,
//! synced, then renamed over it and the directory synced, so a crash at any moment leaves the
//! previous version or the new one), and at shutdown; read once at start. A state file drover
//! cannot write stops it at start with the reason. Per member it keeps what the
//! operator can change (on/off, draining, weight, route) beside the values the config had when it
//! was written: at start, a value the config has changed since wins over the saved one, exactly as
//! on a reload; a value the config left alone takes the saved one. Members are matched by farm,
//! name and address; saved members the config no longer has are ignored. Health, ejections and
//! load reports are not kept: they are measured again.
//!
//! A missing file is a first start. An unreadable or malformed one is logged and ignored: the
//! config alone is a safe way to start.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use drover_core::{Flag, Member, MemberSpec, clock};
use drover_proxy::Routing;
use serde::{Deserialize, Serialize};

const VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
struct StateFile {
    version: u32,
    farms: BTreeMap<String, BTreeMap<String, SavedMember>>,
}

#[derive(Debug, Serialize, Deserialize)]
struct SavedMember {
    address: String,
    on: bool,
    draining: bool,
    weight: u32,
    route: Option<String>,
    /// The config's values when this was written.
    config: SavedConfig,
}

#[derive(Debug, Serialize, Deserialize)]
struct SavedConfig {
    enabled: bool,
    weight: u32,
    route: Option<String>,
}

/// Writes the operator-changeable state of every member of `routing` to `path`.
pub fn save(path: &Path, routing: &Routing) -> std::io::Result<()> {
    let mut farms = BTreeMap::new();
    for f in &routing.farms {
        let members = f
            .farm
            .members
            .iter()
            .zip(&f.specs)
            .map(|(m, spec)| (m.name().to_owned(), saved(m, spec)))
            .collect();
        farms.insert(f.farm.name.clone(), members);
    }
    let state = StateFile {
        version: VERSION,
        farms,
    };
    let text = serde_json::to_vec_pretty(&state).map_err(std::io::Error::other)?;
    write_atomically(path, &text)
}

/// Writes `bytes` to a new file beside `path` and renames it over `path`, with both synced to
/// disk: a crash at any moment leaves the old file or the new one, whole. The temporary file is
/// created new (never through an existing file or symlink) and readable by its owner only. The
/// caller serialises writers ([`crate::control::Process::save`]).
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = tmp_path(path);
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    // The rename is durable once the directory is.
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)?.sync_all()
}

/// Whether the state file can be written: at start, so a state file that would silently not
/// keep the operator's changes stops drover with the reason instead. Writes nothing over `path`.
pub fn check_writable(path: &Path) -> std::io::Result<()> {
    let tmp = tmp_path(path);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)?;
    std::fs::remove_file(&tmp)
}

/// `<path>.<pid>.<n>.tmp`: unique to this process and write.
fn tmp_path(path: &Path) -> PathBuf {
    static WRITES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = WRITES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.{n}.tmp", std::process::id()));
    path.with_file_name(name)
}

fn saved(m: &Member, spec: &MemberSpec) -> SavedMember {
    SavedMember {
        address: m.addr().to_string(),
        on: m.state.get(Flag::On),
        // The operator's drain only: an agent's or a report's is the member's to repeat, and
        // saved here it would outlive the agent's next "ready" across a restart.
        draining: m.state.get(Flag::Draining) && !m.reported.holds_drain(),
        weight: m.state.weight(),
        route: m.route().map(|r| r.to_string()),
        config: SavedConfig {
            enabled: spec.enabled,
            weight: spec.weight,
            route: spec.route.clone(),
        },
    }
}

/// What [`restore`] did.
#[derive(Debug, Default)]
pub struct Restored {
    /// Members that took at least one saved value.
    pub members: usize,
    /// A route changed: the farms' route maps must be rebuilt.
    pub routes: bool,
}

/// Applies the saved state in `path` to `routing`'s members. Never fails: a missing file is a first
/// start; a bad one is logged and ignored.
pub fn restore(path: &Path, routing: &Routing) -> Restored {
    let mut done = Restored::default();
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::info!(path = %path.display(), "no state file yet; starting from the config");
            return done;
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the state file; starting from the config");
            return done;
        }
    };
    let state: StateFile = match serde_json::from_slice(&text) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "the state file is malformed; starting from the config");
            return done;
        }
    };
    if state.version != VERSION {
        tracing::warn!(path = %path.display(), version = state.version, "the state file has an unknown version; starting from the config");
        return done;
    }
    let now = clock::now();
    for f in &routing.farms {
        let Some(saved) = state.farms.get(&f.farm.name) else {
            continue;
        };
        for (m, spec) in f.farm.members.iter().zip(&f.specs) {
            let Some(s) = saved.get(m.name()) else {
                continue;
            };
            if s.address != m.addr().to_string() {
                continue;
            }
            let mut took = false;
            if s.config.enabled == spec.enabled && s.on != m.state.get(Flag::On) {
                let reason =
                    || format!("state file: {}", if s.on { "enabled" } else { "disabled" });
                if let Some(t) = m.flip(Flag::On, s.on, reason, now) {
                    tracing::info!(farm = %f.farm.name, member = %m.name(), "member {} {t}", m.name());
                }
                took = true;
            }
            if s.draining && !m.state.get(Flag::Draining) {
                if let Some(t) = m.flip(Flag::Draining, true, || "state file: drain".into(), now) {
                    tracing::info!(farm = %f.farm.name, member = %m.name(), "member {} {t}", m.name());
                }
                took = true;
            }
            if s.config.weight == spec.weight
                && s.weight != m.state.weight()
                && (1..=1000).contains(&s.weight)
            {
                m.state.set_weight(s.weight);
                took = true;
            }
            let live = m.route().map(|r| r.to_string());
            if s.config.route == spec.route
                && s.route != live
                && s.route.as_deref().is_none_or(drover_config::valid_route_id)
            {
                m.set_route(s.route.as_deref());
                done.routes = true;
                took = true;
            }
            done.members += usize::from(took);
        }
        f.farm.refresh();
    }
    tracing::info!(path = %path.display(), members = done.members, "state file restored");
    done
}
