//! VIPs through keepalived: drover renders keepalived's config from `[cluster]` ([`render`],
//! from the pure [`Plan`]), runs it as a supervised child that dies with drover
//! ([`supervisor`]), and tells it, through a track file, whether this node may hold VIPs: ready
//! (every [`Liveness`] check passes) and not in maintenance.
//!
//! Tasks (all on the runtime [`Vips::start`] is called on; the binary uses its control runtime
//! on the main thread, see `supervisor.rs` for why): the supervisor; the readiness loop, which
//! runs the checks every 50 ms and rewrites the track file when the answer changes (and at once
//! when maintenance changes); the reader of keepalived's notify FIFO, which keeps each instance's
//! state for the API.
//!
//! Files, in `run_dir` (created 0700): `keepalived.conf`, `ready` (the track file: `0` = may hold
//! VIPs), `notify.fifo`, `keepalived.pid`, `vrrp.pid`. One run_dir per node, so several nodes
//! (tests, namespaces) can share one machine.
//!
//! Config keys read: every `[cluster]` key but the gossip's (`gossip_*`). Logged at info: each change of
//! readiness (with the failing check), maintenance on and off (with who), keepalived's starts,
//! exits and its own log lines (target `keepalived`).

pub mod addrs;
pub mod notify;
pub mod plan;
pub mod render;
mod supervisor;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use drover_config::ClusterConfig;
use serde::Serialize;
use tokio::io::AsyncBufReadExt;
use tokio::sync::{Notify, watch};

pub use plan::{Instance, Plan};

use crate::Liveness;

/// How often the readiness checks run.
const READY_EVERY: Duration = Duration::from_millis(50);

/// Problems starting the VIP service: each names the file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum VrrpError {
    #[error(
        "cannot create the cluster run directory {path}: {source} (set [cluster] run_dir to a directory drover may write)"
    )]
    RunDir { path: PathBuf, source: io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("this node ({0:?}) is not in [cluster] nodes")]
    NotANode(String),
}

/// The files drover keeps for keepalived.
pub struct RunFiles {
    pub dir: PathBuf,
    pub conf: PathBuf,
    pub track: PathBuf,
    pub fifo: PathBuf,
    pub pid: PathBuf,
    pub vrrp_pid: PathBuf,
}

impl RunFiles {
    fn new(dir: &Path) -> Self {
        RunFiles {
            dir: dir.to_path_buf(),
            conf: dir.join("keepalived.conf"),
            track: dir.join("ready"),
            fifo: dir.join("notify.fifo"),
            pid: dir.join("keepalived.pid"),
            vrrp_pid: dir.join("vrrp.pid"),
        }
    }
}

/// This node's VIP service.
pub struct Vips {
    config: ClusterConfig,
    plan: Plan,
    /// This node's index in `config.nodes`.
    me: usize,
    files: RunFiles,
    checks: RwLock<Vec<Arc<dyn Liveness>>>,
    maintenance: AtomicBool,
    /// Wakes the readiness loop (maintenance changed).
    poke: Notify,
    state: Mutex<State>,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

#[derive(Default)]
struct State {
    /// `None` = ready; `Some(why)` = not (as last written to the track file).
    not_ready: Option<String>,
    /// Each instance's state from keepalived's notify FIFO.
    instances: BTreeMap<String, String>,
    pid: Option<u32>,
    starts: u32,
    last_exit: Option<String>,
}

impl Vips {
    /// Prepares the run directory and starts the tasks (keepalived only when there are VIPs).
    /// Call from a runtime whose thread lives as long as drover (see the module docs).
    pub fn start(
        config: &ClusterConfig,
        checks: Vec<Arc<dyn Liveness>>,
    ) -> Result<Arc<Vips>, VrrpError> {
        let me = config
            .nodes
            .iter()
            .position(|n| n.name == config.node)
            .ok_or_else(|| VrrpError::NotANode(config.node.clone()))?;
        let files = RunFiles::new(&config.run_dir);
        create_dir(&files.dir).map_err(|source| VrrpError::RunDir {
            path: files.dir.clone(),
            source,
        })?;
        write_atomic(&files.track, b"1\n").map_err(|source| VrrpError::Write {
            path: files.track.clone(),
            source,
        })?;
        supervisor::mkfifo(&files.fifo).map_err(|source| VrrpError::Write {
            path: files.fifo.clone(),
            source,
        })?;
        let (stop, stop_rx) = watch::channel(false);
        let vips = Arc::new(Vips {
            plan: Plan::new(config),
            config: config.clone(),
            me,
            files,
            checks: RwLock::new(checks),
            maintenance: AtomicBool::new(false),
            poke: Notify::new(),
            state: Mutex::new(State {
                not_ready: Some("starting".into()),
                ..State::default()
            }),
            stop,
            tasks: Mutex::new(Vec::new()),
        });
        // Without VIPs there is no keepalived to configure (the cluster shares state only).
        if !vips.plan.instances.is_empty() {
            vips.write_conf().map_err(|source| VrrpError::Write {
                path: vips.files.conf.clone(),
                source,
            })?;
        }
        let mut tasks = vec![tokio::spawn(readiness(Arc::clone(&vips), stop_rx.clone()))];
        if !vips.plan.instances.is_empty() {
            tasks.push(tokio::spawn(read_notify(
                Arc::clone(&vips),
                stop_rx.clone(),
            )));
            tasks.push(tokio::spawn(supervisor::run(Arc::clone(&vips), stop_rx)));
        }
        *vips.lock_tasks() = tasks;
        Ok(vips)
    }

    /// Adds a condition for holding VIPs (the gossip's membership, say).
    pub fn add_check(&self, check: Arc<dyn Liveness>) {
        self.checks
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .push(check);
        self.poke.notify_one();
    }

    /// Maintenance on: this node gives up its VIPs (and takes none) while it keeps serving
    /// whoever still connects to it. Off: it may hold VIPs again (and takes its own back with
    /// `preempt`). Answers the previous setting.
    pub fn set_maintenance(&self, on: bool, who: &str) -> bool {
        let was = self.maintenance.swap(on, Ordering::SeqCst);
        if was != on {
            tracing::info!(node = %self.config.node, on, by = who, "cluster maintenance");
            self.poke.notify_one();
        }
        was
    }

    pub fn maintenance(&self) -> bool {
        self.maintenance.load(Ordering::SeqCst)
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// Stops the tasks; keepalived gets SIGTERM and gives up this node's VIPs. Waits for it.
    pub async fn stop(&self) {
        let _ = self.stop.send(true);
        let tasks = std::mem::take(&mut *self.lock_tasks());
        for t in tasks {
            let _ = t.await;
        }
    }

    /// The cluster as this node sees it. Runs `ip` to read the held addresses, so it blocks a
    /// few milliseconds: call it off the async threads.
    pub fn status(&self) -> Status {
        let c = &self.config;
        let (held, held_error) = match c.interface.as_deref().map(addrs::held) {
            Some(Ok(a)) => (Some(a), None),
            Some(Err(e)) => (None, Some(e)),
            None => (Some(Vec::new()), None),
        };
        let s = self.lock_state();
        let vips = self
            .plan
            .instances
            .iter()
            .flat_map(|i| {
                i.vips.iter().map(|v| VipStatus {
                    vip: format!("{}/{}", v.addr, v.prefix),
                    instance: i.name.clone(),
                    vrid: i.vrid,
                    owner: c.nodes[i.owner()].name.clone(),
                    priority: i.priorities[self.me],
                    held: held.as_ref().map(|h| h.contains(&v.addr)),
                    state: s
                        .instances
                        .get(&i.name)
                        .cloned()
                        .unwrap_or_else(|| "UNKNOWN".to_owned()),
                })
            })
            .collect::<Vec<_>>();
        Status {
            node: c.node.clone(),
            mode: c.mode.as_str(),
            preempt: c.preempt,
            interface: c.interface.clone(),
            advert_interval: drover_config::units::format_duration(c.advert_interval),
            ready: s.not_ready.is_none(),
            not_ready: s.not_ready.clone(),
            maintenance: self.maintenance(),
            held: vips
                .iter()
                .filter(|v| v.held == Some(true))
                .map(|v| v.vip.clone())
                .collect(),
            held_error,
            vips,
            nodes: c
                .nodes
                .iter()
                .map(|n| NodeStatus {
                    name: n.name.clone(),
                    address: n.address.to_string(),
                    this: n.name == c.node,
                })
                .collect(),
            keepalived: KeepalivedStatus {
                running: s.pid.is_some(),
                pid: s.pid,
                starts: s.starts,
                last_exit: s.last_exit.clone(),
            },
        }
    }

    fn write_conf(&self) -> io::Result<()> {
        let files = render::Files {
            track: &self.files.track,
            fifo: &self.files.fifo,
        };
        let text = render::render(&self.config, &self.plan, &files)
            .ok_or_else(|| io::Error::other("no interface or this node is not in nodes"))?;
        write_atomic(&self.files.conf, text.as_bytes())
    }

    fn keepalived_started(&self, pid: Option<u32>) {
        let mut s = self.lock_state();
        s.pid = pid;
        s.starts += 1;
    }

    fn keepalived_ended(&self, why: String) {
        let mut s = self.lock_state();
        s.pid = None;
        s.last_exit = Some(why);
        s.instances.clear();
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_tasks(&self) -> std::sync::MutexGuard<'_, Vec<tokio::task::JoinHandle<()>>> {
        self.tasks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `None` when this node may hold VIPs, else why not.
    fn evaluate(&self) -> Option<String> {
        if self.maintenance() {
            return Some("maintenance".to_owned());
        }
        let checks = self.checks.read().unwrap_or_else(|e| e.into_inner());
        checks
            .iter()
            .find_map(|c| c.check().err().map(|why| format!("{}: {why}", c.name())))
    }
}

/// Runs the checks and keeps the track file in step.
async fn readiness(vips: Arc<Vips>, mut stop: watch::Receiver<bool>) {
    let mut last: Option<Option<String>> = None;
    loop {
        let now = vips.evaluate();
        let content: &[u8] = if now.is_none() { b"0\n" } else { b"1\n" };
        // Written when the answer changes, and again whenever the file says otherwise (someone
        // else wrote it, or it was removed).
        let on_disk = std::fs::read(&vips.files.track).ok();
        if last.as_ref() != Some(&now) || on_disk.as_deref() != Some(content) {
            match write_atomic(&vips.files.track, content) {
                Ok(()) => {
                    if last.as_ref() != Some(&now) {
                        match &now {
                            None => {
                                tracing::info!(node = %vips.config.node, "cluster: ready to hold VIPs")
                            }
                            Some(why) => {
                                tracing::info!(node = %vips.config.node, %why, "cluster: not holding VIPs")
                            }
                        }
                    }
                    vips.lock_state().not_ready = now.clone();
                    last = Some(now);
                }
                Err(e) => tracing::error!(
                    path = %vips.files.track.display(), error = %e,
                    "cannot write the cluster readiness file"
                ),
            }
        }
        tokio::select! {
            () = tokio::time::sleep(READY_EVERY) => {}
            () = vips.poke.notified() => {}
            () = stopped(&mut stop) => return,
        }
    }
}

/// Reads keepalived's state changes from the notify FIFO.
async fn read_notify(vips: Arc<Vips>, mut stop: watch::Receiver<bool>) {
    // Opened read-write so that the pipe never reports end of file when keepalived restarts.
    let rx = match tokio::net::unix::pipe::OpenOptions::new()
        .read_write(true)
        .open_receiver(&vips.files.fifo)
    {
        Ok(rx) => rx,
        Err(e) => {
            tracing::error!(path = %vips.files.fifo.display(), error = %e, "cannot read keepalived's notify FIFO; instance states will show UNKNOWN");
            return;
        }
    };
    let mut lines = tokio::io::BufReader::new(rx).lines();
    loop {
        tokio::select! {
            line = lines.next_line() => match line {
                Ok(Some(line)) => {
                    if let Some((instance, state)) = notify::parse(&line) {
                        tracing::info!(node = %vips.config.node, %instance, %state, "VRRP state");
                        vips.lock_state().instances.insert(instance, state);
                    }
                }
                _ => return,
            },
            () = stopped(&mut stop) => return,
        }
    }
}

/// Resolves once `stop` turns true (or its sender is gone), holding no borrow of it.
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

fn create_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Writes `path` whole: a temporary file renamed over it, so keepalived (which watches the track
/// file with inotify) never reads a half-written file.
fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// `GET /api/v1/cluster`.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub node: String,
    pub mode: &'static str,
    pub preempt: bool,
    pub interface: Option<String>,
    pub advert_interval: String,
    /// This node may hold VIPs (ready and not in maintenance).
    pub ready: bool,
    /// Why not, when not ready.
    pub not_ready: Option<String>,
    pub maintenance: bool,
    /// The VIPs on this node's interface now.
    pub held: Vec<String>,
    /// Why the held addresses could not be read (`held` is then empty).
    pub held_error: Option<String>,
    pub vips: Vec<VipStatus>,
    pub nodes: Vec<NodeStatus>,
    pub keepalived: KeepalivedStatus,
}

#[derive(Debug, Clone, Serialize)]
pub struct VipStatus {
    pub vip: String,
    /// keepalived's instance carrying it.
    pub instance: String,
    pub vrid: u8,
    /// The node that holds it while every node is ready.
    pub owner: String,
    /// This node's priority for it.
    pub priority: u8,
    /// On this node's interface now (`None`: unknown).
    pub held: Option<bool>,
    /// This node's VRRP state for it: MASTER, BACKUP, FAULT, STOP or UNKNOWN.
    pub state: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct NodeStatus {
    pub name: String,
    pub address: String,
    /// This node.
    #[serde(rename = "self")]
    pub this: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct KeepalivedStatus {
    pub running: bool,
    pub pid: Option<u32>,
    /// How many times drover started it.
    pub starts: u32,
    /// Why the last one ended.
    pub last_exit: Option<String>,
}
