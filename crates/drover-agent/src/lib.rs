//! drover-agent: `drover agent`, run on a member: measures the member's load, pushes signed
//! reports to drover nodes, and serves the same state as an HAProxy agent-check port and over HTTP.
//!
//! Where it sits: outside the request path, on the members. The `drover` binary parses
//! `drover agent ...` into [`Args`] and calls [`run`]. Every interval the collector task
//! ([`collect::Collector`]) builds a `drover_core::report::LoadReport` (valid by construction:
//! every metric goes through `Metrics::insert`), renders it once ([`wire::Snapshot`]: the JSON
//! body and the agent-check line) and publishes it on a `tokio::sync::watch` channel. The readers
//! of that channel: one [`push::run`] task per `--push` node (`POST /api/v1/reports` on drover's
//! admin listener, signed with `drover_core::report::push::sign`), [`serve::agent_check`] (one line
//! per connection, parsed on the node by `drover_core::report::agent_check::parse`) and
//! [`serve::http`] (`GET /` answers the JSON body, for pull).
//!
//! Key types: [`Args`] / [`Config`] (the command line, checked), [`Agent`] (the running agent,
//! its bound addresses and tasks), [`wire::Snapshot`].
//!
//! Concurrency model: one current-thread tokio runtime. The collector is the only writer of the
//! watch channel; pushers and ports take an `Arc` of the newest snapshot and never wait on each
//! other, so a slow node delays nobody. System counters are read on the blocking pool, commands
//! run as child processes, each bounded by a timeout.
//!
//! Config keys read: none (command-line flags only; see `docs/agent.md`). Metrics emitted: none;
//! it logs with `tracing`: state flips (up/down) at info, the first failure of a push node or a
//! custom metric at warn and its recovery at info.
#![forbid(unsafe_code)]

mod cli;
pub mod collect;
pub mod push;
pub mod serve;
pub mod wire;

pub use cli::{Args, Config, MIN_SECRET, MetricSource, MetricSpec, SECRET_ENV};

use std::net::SocketAddr;
use std::sync::Arc;

use drover_core::report::AgentState;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::collect::Collector;
use crate::wire::Snapshot;

/// Why the agent could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A bad command line; one problem per line.
    #[error("{0}")]
    Usage(String),
    #[error("cannot listen on {what} {addr}: {source}")]
    Listen {
        what: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{0}: {1}")]
    Io(&'static str, std::io::Error),
}

/// Runs `drover agent` with `args` until SIGTERM or SIGINT (or, with `--once`, prints one report).
pub fn run(args: Args) -> Result<(), AgentError> {
    let config = Config::from_args(args)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| AgentError::Io("cannot start the runtime", e))?;
    rt.block_on(async {
        if config.once {
            let snapshot = run_once(&config).await;
            println!("{}", snapshot.json);
            return Ok(());
        }
        let agent = Agent::start(config).await?;
        wait_for_signal().await?;
        tracing::info!("agent stopping");
        drop(agent);
        Ok(())
    })
}

/// One collection (after the CPU sampling delay), for `--once`.
pub async fn run_once(config: &Config) -> Snapshot {
    first_collection(&mut Collector::new(config)).await
}

/// The first report of a new collector: waits for the CPU counters to move first, so `cpu`
/// covers at least `sysinfo::MINIMUM_CPU_UPDATE_INTERVAL`.
async fn first_collection(collector: &mut Collector) -> Snapshot {
    tokio::time::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL).await;
    Snapshot::new(collector.collect().await, 1)
}

/// A running agent: its tasks stop when it is dropped.
pub struct Agent {
    /// Where the agent-check port listens, if asked for.
    pub agent_check_addr: Option<SocketAddr>,
    /// Where the HTTP report listens, if asked for.
    pub http_addr: Option<SocketAddr>,
    snapshots: watch::Receiver<Arc<Snapshot>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Agent {
    /// Collects a first report, binds the ports and starts the collector and the pushers.
    pub async fn start(config: Config) -> Result<Agent, AgentError> {
        let problems = config.problems();
        if !problems.is_empty() {
            return Err(AgentError::Usage(problems.join("\n")));
        }
        // Bind first: a taken port should fail at once, not after the first collection.
        let agent_check = bind(config.agent_check, "agent-check address").await?;
        let http = bind(config.http, "http address").await?;
        let mut collector = Collector::new(&config);
        let first = first_collection(&mut collector).await;
        log_state(None, &first);
        let (tx, rx) = watch::channel(Arc::new(first));
        let mut tasks = Vec::new();
        let mut agent = Agent {
            agent_check_addr: None,
            http_addr: None,
            snapshots: rx.clone(),
            tasks: Vec::new(),
        };
        if let Some(listener) = agent_check {
            agent.agent_check_addr = listener.local_addr().ok();
            tasks.push(tokio::spawn(serve::agent_check(listener, rx.clone())));
        }
        if let Some(listener) = http {
            agent.http_addr = listener.local_addr().ok();
            tasks.push(tokio::spawn(serve::http(listener, rx.clone())));
        }
        let secret: Arc<[u8]> = Arc::from(config.secret.as_slice());
        for (i, target) in config.push.iter().enumerate() {
            tasks.push(tokio::spawn(push::run(
                target.clone(),
                Arc::clone(&secret),
                config.interval,
                config.push_timeout,
                rx.clone(),
                i as u64,
            )));
        }
        let interval = config.interval;
        tasks.push(tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            let mut seq = 1;
            loop {
                ticks.tick().await;
                seq += 1;
                let snapshot = Snapshot::new(collector.collect().await, seq);
                log_state(Some(&tx.borrow()), &snapshot);
                tx.send_replace(Arc::new(snapshot));
            }
        }));
        tracing::info!(
            member = %config.member,
            interval = ?config.interval,
            push = ?config.push.iter().map(|t| t.url.as_str()).collect::<Vec<_>>(),
            agent_check = ?agent.agent_check_addr,
            http = ?agent.http_addr,
            "agent started"
        );
        agent.tasks = tasks;
        Ok(agent)
    }

    /// The newest snapshot.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.snapshots.borrow())
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Logs a flip of the member's own state (and the first state), once.
fn log_state(before: Option<&Snapshot>, now: &Snapshot) {
    let health = |s: &Snapshot| s.report.health.unwrap_or(AgentState::Up);
    if before.is_some_and(|b| health(b) == health(now)) {
        return;
    }
    match &now.report.reason {
        Some(reason) if health(now) != AgentState::Up => {
            tracing::info!(member = %now.report.member, %reason, "member reports down")
        }
        _ => tracing::info!(member = %now.report.member, "member reports up"),
    }
}

async fn bind(
    addr: Option<SocketAddr>,
    what: &'static str,
) -> Result<Option<TcpListener>, AgentError> {
    let Some(addr) = addr else { return Ok(None) };
    TcpListener::bind(addr)
        .await
        .map(Some)
        .map_err(|source| AgentError::Listen { what, addr, source })
}

async fn wait_for_signal() -> Result<(), AgentError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| AgentError::Io("cannot watch SIGTERM", e))?;
    let mut int =
        signal(SignalKind::interrupt()).map_err(|e| AgentError::Io("cannot watch SIGINT", e))?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
