//! drover: the one binary — `serve`, `check`, `demo`, `agent`, `ctl`.
//!
//! Where it sits: on top of everything. It parses the command line, loads and validates the config
//! with `drover-config`, starts the data plane (`drover-proxy`) and the admin listener
//! (`drover-admin`), and turns SIGTERM/SIGINT into a graceful shutdown. `demo` starts three
//! `drover-testkit` members first, so a newcomer sees drover balance with one command. `ctl` is a
//! client of a running drover's admin API (see [`ctl`]).
//!
//! Config keys read: all of them, through `drover-config`. Only this crate uses `anyhow`.

mod cluster;
mod control;
mod ctl;
mod demo;
mod peers;
mod statefile;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use drover_proxy::{Options, Proxy};

#[cfg(not(feature = "system-alloc"))]
mod alloc;

// mimalloc: 10-15% less CPU per request than glibc malloc in bench/peers (docs/performance.md).
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static GLOBAL: alloc::Mimalloc = alloc::Mimalloc;

#[derive(Parser)]
#[command(
    name = "drover",
    version,
    about = "A load-aware, highly available HTTP load balancer"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the balancer.
    Serve {
        #[arg(long, short)]
        config: PathBuf,
        /// Worker threads (overrides `server.threads`; 0 = one per CPU).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Validate a config file: prints `ok`, or every error with file:line, and exits non-zero.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Run a complete demo: three test members, a listener on 127.0.0.1:8080, admin on 127.0.0.1:9090.
    Demo {
        /// Listener address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Admin address.
        #[arg(long, default_value = "127.0.0.1:9090")]
        admin: std::net::SocketAddr,
    },
    /// Run on a member: measure its load, push signed reports to drover nodes, serve an
    /// agent-check port (see docs/agent.md).
    Agent(drover_agent::Args),
    /// Call a running drover's admin API: list, show, enable, disable, drain, undrain, weight,
    /// pick (see docs/admin.md).
    Ctl(ctl::Args),
    /// This node's cluster through its admin API: `status` (who holds which VIP) and
    /// `maintenance on|off` (see docs/cluster.md).
    Cluster(ctl::ClusterArgs),
}

fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check { config } => return check(&config),
        Command::Ctl(args) => return ctl::run(args),
        Command::Cluster(args) => return ctl::run_cluster(args),
        Command::Serve { config, threads } => serve(&config, threads),
        Command::Demo { listen, admin } => demo::run(listen, admin),
        Command::Agent(args) => drover_agent::run(args).map_err(anyhow::Error::from),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("drover: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("DROVER_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // Colours only on a terminal: a log file or journald would get raw escape codes. On a
    // terminal, tracing-subscriber's default applies (colours unless NO_COLOR is set).
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        builder.init();
    } else {
        builder.with_ansi(false).init();
    }
}

fn check(path: &std::path::Path) -> ExitCode {
    match drover_config::load(path) {
        Ok(_) => {
            println!("ok");
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprint!("{errors}");
            if !errors.to_string().ends_with('\n') {
                eprintln!();
            }
            ExitCode::FAILURE
        }
    }
}

/// Raises the open-files soft limit to the hard limit: every client and member connection is a
/// file descriptor, and the usual soft limit of 1024 is far below what a balancer holds.
fn raise_fd_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => tracing::debug!(limit = n, "open files limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open files limit"),
    }
}

fn serve(path: &std::path::Path, threads: Option<usize>) -> anyhow::Result<()> {
    let config = drover_config::load(path).map_err(|e| anyhow::anyhow!("invalid config:\n{e}"))?;
    raise_fd_limit();
    let proxy = Proxy::start_prepared(&config, Options { threads }, |routing, threads| {
        control::restore(&config, routing, threads)
    })
    .context("cannot start the proxy")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the control runtime")?;
    rt.block_on(serve_until_signal(Some(path.to_path_buf()), config, proxy))
}

/// Serves (and the admin listener, if any) until SIGTERM or SIGINT, then shuts down gracefully.
/// SIGHUP reloads the config file (`path`; the demo has none).
pub(crate) async fn serve_until_signal(
    path: Option<PathBuf>,
    config: drover_config::Config,
    proxy: Proxy,
) -> anyhow::Result<()> {
    let proxy = Arc::new(proxy);
    let process = Arc::new(control::Process::start(path, config, Arc::clone(&proxy))?);
    let config = process.config();
    // Keepalived is spawned from this (the main) thread: its parent-death signal follows it.
    let cluster = cluster::Running::start(&config, &proxy).context("cannot start the cluster")?;
    if let Some(admin) = &config.admin {
        let addr = admin.listen;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on admin address {addr}"))?;
        tracing::info!(%addr, open_reads = admin.open_reads, "admin listening");
        let control: Arc<dyn drover_admin::Control> = process.clone();
        let state = Arc::new(drover_admin::AdminState::new(
            Arc::clone(&proxy),
            admin,
            &config.reports,
            control,
        ));
        process.attach_admin(&state);
        if let Some(c) = &cluster {
            let _ = state
                .cluster
                .set(Arc::new(cluster::Admin(Arc::clone(&c.vips))));
        }
        if let Some(g) = start_gossip(&config, &proxy, &process).await? {
            let _ = state.peers.set(g);
        }
        tokio::spawn(drover_admin::serve(listener, state));
    } else {
        // Without an admin listener nothing local changes, but peers' changes still apply.
        start_gossip(&config, &proxy, &process).await?;
    }
    let mut signals = Signals::new()?;
    // SIGHUP reloads (and logs what it did, or why it was refused) until SIGTERM or SIGINT.
    while let Signal::Reload = signals.next().await {
        let p = Arc::clone(&process);
        let _ =
            tokio::task::spawn_blocking(move || drover_admin::Control::reload(&*p, "SIGHUP")).await;
    }
    if let Some(c) = &cluster {
        // The VIPs go to a peer before the listeners close (keepalived stops with priority-0
        // adverts), so clients move without waiting for adverts to time out.
        tracing::info!("shutting down: giving up this node's VIPs");
        c.stop().await;
    }
    tracing::info!("shutting down: no new connections; finishing in-flight requests");
    proxy.shutdown();
    // A second signal during the grace period means "now": exit without waiting.
    tokio::select! {
        _ = proxy.stopped() => tracing::info!("stopped"),
        () = signals.stop() => {
            tracing::warn!("second signal: exiting without waiting for in-flight requests");
        }
    }
    Ok(())
}

/// Starts the gossip of runtime state with the peers when the config has `[cluster]`.
async fn start_gossip(
    config: &drover_config::Config,
    proxy: &Arc<Proxy>,
    process: &Arc<control::Process>,
) -> anyhow::Result<Option<Arc<dyn drover_admin::Peers>>> {
    let Some(settings) = drover_cluster::gossip::Settings::from_config(config) else {
        return Ok(None);
    };
    let p = Arc::clone(process);
    let gossip = drover_cluster::gossip::Gossip::start(
        settings,
        Arc::clone(proxy),
        Arc::new(move || p.save()),
    )
    .await?;
    Ok(Some(Arc::new(peers::GossipPeers(gossip))))
}

enum Signal {
    Reload,
    Stop,
}

/// SIGHUP (reload), SIGTERM and SIGINT (stop), watched from start to exit.
struct Signals {
    hup: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            hup: signal(SignalKind::hangup()).context("cannot watch SIGHUP")?,
            term: signal(SignalKind::terminate()).context("cannot watch SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot watch SIGINT")?,
        })
    }

    async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.hup.recv() => Signal::Reload,
            _ = self.term.recv() => Signal::Stop,
            _ = self.int.recv() => Signal::Stop,
        }
    }

    /// The next SIGTERM or SIGINT (SIGHUPs are ignored while stopping).
    async fn stop(&mut self) {
        loop {
            if let Signal::Stop = self.next().await {
                return;
            }
        }
    }
}
