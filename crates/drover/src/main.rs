//! drover: the one binary — `serve`, `check`, `demo`, `agent`, `ctl`.
//!
//! Where it sits: on top of everything. It parses the command line, loads and validates the config
//! with `drover-config`, starts the data plane (`drover-proxy`) and the admin listener
//! (`drover-admin`), and turns SIGTERM/SIGINT into a graceful shutdown, SIGHUP into a reload and
//! SIGUSR2 into a binary upgrade ([`upgrade`], docs/upgrade.md). `demo` starts three
//! `drover-testkit` members first, so a newcomer sees drover balance with one command. `ctl` is a
//! client of a running drover's admin API (see [`ctl`]).
//!
//! Config keys read: all of them, through `drover-config`. Only this crate uses `anyhow`.

mod cluster;
mod control;
mod ctl;
mod demo;
mod peers;
mod sdnotify;
mod statefile;
mod upgrade;

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
        /// Binary upgrade: take the listening sockets over from the drover whose
        /// `upgrade_socket` is PATH; it then stops accepting, drains and exits (docs/upgrade.md).
        #[arg(long, value_name = "PATH")]
        upgrade_from: Option<PathBuf>,
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
        Command::Serve {
            config,
            threads,
            upgrade_from,
        } => serve(&config, threads, upgrade_from.as_deref()),
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

fn serve(
    path: &std::path::Path,
    threads: Option<usize>,
    upgrade_from: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let config = drover_config::load(path).map_err(|e| anyhow::anyhow!("invalid config:\n{e}"))?;
    raise_fd_limit();
    if let Some(state) = &config.server.state_file {
        statefile::check_writable(state).with_context(|| {
            format!(
                "[server] state_file = {:?} cannot be written, so the operator's changes would \
                 not survive a restart; fix its directory's permissions or change the key",
                state.display()
            )
        })?;
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the control runtime")?;
    // Watched before the first socket opens: a SIGHUP or SIGTERM that comes while drover starts
    // is acted on once it serves, instead of killing it (the default action).
    let signals = {
        let _rt = rt.enter();
        Signals::new()?
    };
    let mut takeover = Takeover {
        reexec: true,
        signals: Some(signals),
        ..Takeover::default()
    };
    let mut inherited = Vec::new();
    match upgrade_from {
        Some(from) => {
            let (listeners, admin, handshake) = upgrade::receive(from)?.split();
            inherited = listeners;
            takeover.admin = admin;
            takeover.handshake = Some(handshake);
        }
        // Before the listeners: a live drover on the same upgrade socket is one on the same
        // ports too (SO_REUSEPORT would let both serve, unnoticed).
        None => {
            if let Some(socket) = &config.server.upgrade_socket {
                takeover.bound = Some((socket.clone(), upgrade::bind_unix(socket)?));
            }
        }
    }
    let options = Options { threads, inherited };
    let proxy = Proxy::start_prepared(&config, options, |routing, threads| {
        control::restore(&config, routing, threads)
    })
    .context("cannot start the proxy")?;
    rt.block_on(serve_until_signal(
        Some(path.to_path_buf()),
        config,
        proxy,
        takeover,
    ))
}

/// The binary upgrade's part in [`serve_until_signal`].
#[derive(Default)]
pub(crate) struct Takeover {
    /// The admin socket an old drover gave (used if the config's admin address is the same).
    admin: Option<std::net::TcpListener>,
    /// Set when this process takes over from an old one: tell it once we serve.
    handshake: Option<upgrade::Handshake>,
    /// Our own upgrade socket, bound before the listeners (a fresh start).
    bound: Option<(PathBuf, std::os::fd::OwnedFd)>,
    /// Whether SIGUSR2 may start a new process of this binary (not for the demo).
    reexec: bool,
    /// The signals, watched since before the proxy started (made here when absent: the demo).
    signals: Option<Signals>,
}

/// What an old drover gives a new one: its proxy's listening sockets and the admin socket.
struct Held {
    proxy: Arc<Proxy>,
    admin: Option<(std::net::SocketAddr, std::os::fd::OwnedFd)>,
}

impl upgrade::Sockets for Held {
    fn listeners(&self) -> std::io::Result<Vec<(std::net::SocketAddr, std::os::fd::OwnedFd)>> {
        self.proxy.listening_sockets()
    }

    fn admin(&self) -> std::io::Result<Option<(std::net::SocketAddr, std::os::fd::OwnedFd)>> {
        self.admin
            .as_ref()
            .map(|(addr, fd)| Ok((*addr, fd.try_clone()?)))
            .transpose()
    }

    fn hand_over(&self) {
        self.proxy.hand_over();
    }
}

/// Where SIGUSR2 puts its upgrade socket when `[server] upgrade_socket` is not set: a path only
/// this process uses.
fn private_upgrade_socket() -> PathBuf {
    let dir = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    dir.join(format!("drover-upgrade-{}.sock", std::process::id()))
}

/// SIGUSR2: starts this binary again (the file it was started from, so a binary replaced on
/// disk is the one that starts) with the same arguments and `--upgrade-from socket`. The old
/// process keeps serving whatever happens to the new one; a thread logs how it ended if it ends.
fn start_new_process(exe: &std::path::Path, socket: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt;
    let mut argv = std::env::args_os();
    let argv0 = argv.next().unwrap_or_else(|| exe.as_os_str().to_owned());
    let mut args = Vec::new();
    let mut skip_value = false;
    for arg in argv {
        if skip_value {
            skip_value = false;
            continue;
        }
        if arg == "--upgrade-from" {
            skip_value = true;
            continue;
        }
        if arg.to_string_lossy().starts_with("--upgrade-from=") {
            continue;
        }
        args.push(arg);
    }
    let mut child = std::process::Command::new(exe)
        .arg0(argv0)
        .args(args)
        .arg("--upgrade-from")
        .arg(socket)
        .spawn()
        .with_context(|| format!("cannot start {}", exe.display()))?;
    let pid = child.id();
    tracing::info!(pid, exe = %exe.display(), "SIGUSR2: started a new drover to take over");
    std::thread::Builder::new()
        .name("drover-upgrade-child".into())
        .spawn(move || match child.wait() {
            Ok(status) if status.success() => {
                tracing::info!(pid, "the new drover exited (0)");
            }
            Ok(status) => tracing::error!(
                pid,
                %status,
                "the new drover exited; unless it had taken over, this one keeps serving"
            ),
            Err(e) => tracing::warn!(pid, error = %e, "cannot wait for the new drover"),
        })
        .context("cannot start a thread")?;
    Ok(())
}

/// Serves (and the admin listener, if any) until SIGTERM or SIGINT, then shuts down gracefully.
/// SIGHUP reloads the config file (`path`; the demo has none). SIGUSR2, or a new process on the
/// upgrade socket, hands the listening sockets over; this one then drains and returns.
pub(crate) async fn serve_until_signal(
    path: Option<PathBuf>,
    config: drover_config::Config,
    proxy: Proxy,
    mut takeover: Takeover,
) -> anyhow::Result<()> {
    let proxy = Arc::new(proxy);
    let process = Arc::new(control::Process::start(path, config, Arc::clone(&proxy))?);
    let config = process.config();
    let mut admin_task = None;
    let mut admin_socket = None;
    // Keepalived is spawned from this (the main) thread: its parent-death signal follows it.
    let cluster = cluster::Running::start(&config, &proxy).context("cannot start the cluster")?;
    if let Some(admin) = &config.admin {
        let addr = admin.listen;
        let given = takeover
            .admin
            .take()
            .filter(|l| l.local_addr().is_ok_and(|a| a == addr));
        let listener = match given {
            Some(l) => {
                l.set_nonblocking(true)?;
                tokio::net::TcpListener::from_std(l)
                    .with_context(|| format!("cannot use the admin socket taken over ({addr})"))?
            }
            None => tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on admin address {addr}"))?,
        };
        admin_socket = Some((
            addr,
            std::os::fd::AsFd::as_fd(&listener).try_clone_to_owned()?,
        ));
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
        admin_task = Some(tokio::spawn(drover_admin::serve(listener, state)));
    } else {
        // Without an admin listener nothing local changes, but peers' changes still apply.
        start_gossip(&config, &proxy, &process).await?;
    }
    let mut signals = match takeover.signals.take() {
        Some(s) => s,
        None => Signals::new()?,
    };
    let held: Arc<dyn upgrade::Sockets> = Arc::new(Held {
        proxy: Arc::clone(&proxy),
        admin: admin_socket,
    });
    // Taking over from an old drover: we serve now; it may let go.
    if let Some(handshake) = takeover.handshake.take() {
        match tokio::task::spawn_blocking(move || handshake.taken_over()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("{e:#}"),
            Err(e) => tracing::warn!(error = %e, "upgrade handshake failed"),
        }
        if let Some(socket) = &config.server.upgrade_socket {
            match upgrade::bind_unix(socket) {
                Ok(fd) => takeover.bound = Some((socket.clone(), fd)),
                Err(e) => tracing::error!("no binary upgrade through {}: {e:#}", socket.display()),
            }
        }
    }
    // systemd (Type=notify, NotifyAccess=all): after a hand-over, this process is the unit's
    // main process now.
    sdnotify::notify(&format!("MAINPID={}\nREADY=1\n", std::process::id()));
    let mut listening = match takeover.bound.take() {
        Some((socket, fd)) => Some(upgrade::Listening::start(&socket, fd, Arc::clone(&held))?),
        None => None,
    };
    // The file this process was started from (read now: /proc/self/exe names a deleted file
    // once the binary is replaced on disk, and SIGUSR2 must start the new one).
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("/proc/self/exe"));
    // SIGHUP reloads (and logs what it did, or why it was refused) until SIGTERM or SIGINT, or a
    // hand-over.
    let handed_over = loop {
        let notify = listening.as_ref().map(|l| Arc::clone(&l.handed_over));
        let handed = async {
            match notify {
                Some(n) => n.notified().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = handed => break true,
            signal = signals.next() => match signal {
                Signal::Stop => break false,
                Signal::Reload => {
                    let p = Arc::clone(&process);
                    let _ = tokio::task::spawn_blocking(move || {
                        drover_admin::Control::reload(&*p, "SIGHUP")
                    })
                    .await;
                }
                Signal::Reopen => proxy.reopen_logs(),
                Signal::Upgrade if !takeover.reexec => {
                    tracing::warn!("SIGUSR2: this drover cannot upgrade itself (the demo)");
                }
                Signal::Upgrade => {
                    if listening.is_none() {
                        let socket = private_upgrade_socket();
                        match upgrade::bind_unix(&socket).and_then(|fd| {
                            upgrade::Listening::start(&socket, fd, Arc::clone(&held))
                        }) {
                            Ok(l) => listening = Some(l),
                            Err(e) => {
                                tracing::error!("SIGUSR2: no binary upgrade: {e:#}");
                                continue;
                            }
                        }
                    }
                    if let Some(l) = &listening
                        && let Err(e) = start_new_process(&exe, l.path())
                    {
                        tracing::error!("SIGUSR2: no binary upgrade, this drover keeps serving: {e:#}");
                    }
                }
            },
        }
    };
    if let Some(c) = &cluster {
        // The VIPs go to a peer before the listeners close (keepalived stops with priority-0
        // adverts), so clients move without waiting for adverts to time out.
        tracing::info!("giving up this node's VIPs");
        c.stop().await;
    }
    if handed_over {
        tracing::info!("handed over: no new connections here; finishing in-flight requests");
        if let Some(task) = admin_task {
            task.abort();
        }
        proxy.hand_over();
    } else {
        tracing::info!("shutting down: no new connections; finishing in-flight requests");
        if let Some(l) = &listening {
            l.remove();
        }
        proxy.shutdown();
        // Not after a hand-over: the new process owns the state file from then on.
        process.save();
    }
    // A second signal during the grace period means "now": exit without waiting.
    tokio::select! {
        _ = proxy.stopped() => tracing::info!("stopped"),
        () = signals.stop() => {
            tracing::warn!("second signal: exiting without waiting for in-flight requests");
        }
    }
    // The access-log lines still buffered (the requests that just finished) go out before exit.
    let p = Arc::clone(&proxy);
    let _ = tokio::task::spawn_blocking(move || p.flush_logs(LOG_FLUSH)).await;
    Ok(())
}

/// How long exit waits for each access log's last lines to be written.
const LOG_FLUSH: std::time::Duration = std::time::Duration::from_secs(5);

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
    Reopen,
    Stop,
    Upgrade,
}

/// SIGHUP (reload), SIGUSR1 (reopen the access logs), SIGUSR2 (binary upgrade), SIGTERM and
/// SIGINT (stop), watched from start to exit.
struct Signals {
    hup: tokio::signal::unix::Signal,
    usr1: tokio::signal::unix::Signal,
    usr2: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            hup: signal(SignalKind::hangup()).context("cannot watch SIGHUP")?,
            usr1: signal(SignalKind::user_defined1()).context("cannot watch SIGUSR1")?,
            usr2: signal(SignalKind::user_defined2()).context("cannot watch SIGUSR2")?,
            term: signal(SignalKind::terminate()).context("cannot watch SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot watch SIGINT")?,
        })
    }

    async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.hup.recv() => Signal::Reload,
            _ = self.usr1.recv() => Signal::Reopen,
            _ = self.usr2.recv() => Signal::Upgrade,
            _ = self.term.recv() => Signal::Stop,
            _ = self.int.recv() => Signal::Stop,
        }
    }

    /// The next SIGTERM or SIGINT (SIGHUPs and SIGUSR1s are ignored while stopping).
    async fn stop(&mut self) {
        loop {
            if let Signal::Stop = self.next().await {
                return;
            }
        }
    }
}
