//! `balancing`: the socket benchmark of load-balancing policies (see bench/balancing/README.md).
//!
//! Parses the command line, runs [`drover_bench::run::run_all`] until it ends or SIGINT/SIGTERM
//! arrives; on a signal the run is dropped, which kills (by PID) the drover processes it started.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::Parser;
use drover_bench::run::{Options, Reporting, default_drover, run_all};
use drover_bench::{parse_duration, scenario, split_top_level};

/// Socket benchmark of drover's balancing policies: sleepy members, open-loop Poisson load,
/// fresh drover processes per run, and an oracle that reads the members' true queues.
#[derive(Parser, Debug)]
#[command(name = "balancing")]
struct Cli {
    /// Scenarios, comma-separated: m, hidden, slow, stall, degrade, fail, equal5, linkerd,
    /// herding (= herding-0.1s, herding-1s, herding-5s).
    #[arg(long, default_value = "m")]
    scenario: String,
    /// Request rates (req/s), comma-separated; default: each scenario's own (m: 450,550).
    #[arg(long)]
    rate: Option<String>,
    /// Policies, comma-separated; any policy string drover accepts, plus `oracle` (straight to
    /// the member with the shortest true queue) and `oracle-wait` (shortest expected wait,
    /// (queue + 1) x mean service / workers).
    #[arg(
        long,
        default_value = "round-robin,least-conn,p2c,peak-ewma,adaptive,oracle"
    )]
    policies: String,
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    warmup: Duration,
    /// Measured window of each run.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    window: Duration,
    #[arg(long, default_value_t = 3)]
    reps: usize,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The drover binary; default $CARGO_TARGET_DIR/release/drover or target/release/drover.
    #[arg(long)]
    drover: Option<PathBuf>,
    /// drover worker threads (`[server] threads`).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// How members report load: comma-separated of orca, agent, push; or `none`.
    #[arg(long, default_value = "orca,push")]
    reports: String,
    /// Push / agent-check interval; default each scenario's (1 s; herding: 0.1 s, 1 s, 5 s).
    #[arg(long, value_parser = parse_duration)]
    report_interval: Option<Duration>,
    /// `[farm.app.reports] expect`; default 3 x the report interval, at least 3 s.
    #[arg(long, value_parser = parse_duration)]
    expect: Option<Duration>,
    /// A send later than this against its schedule is late.
    #[arg(long, default_value = "10ms", value_parser = parse_duration)]
    lag_threshold: Duration,
    /// A run with more late sends than this share (in %) is void.
    #[arg(long, default_value_t = 0.1)]
    max_late_pct: f64,
    /// Output directory (results.json, tables.md, configs and drover logs of each run);
    /// default bench/out/balancing-<unix time>.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Extra `key = value` line for `[farm.app]` (repeatable), e.g. --farm-set 'retries = 0'.
    #[arg(long = "farm-set")]
    farm_set: Vec<String>,
}

fn repo_dir() -> PathBuf {
    // crates/drover-bench -> the repository.
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| PathBuf::from("."))
}

fn options(cli: Cli) -> anyhow::Result<Options> {
    let mut scenarios = Vec::new();
    for name in split_top_level(&cli.scenario) {
        let s = scenario::by_name(&name, cli.warmup, cli.window).with_context(|| {
            format!(
                "unknown scenario {name:?}; expected one of {}",
                scenario::NAMES.join(", ")
            )
        })?;
        scenarios.extend(s);
    }
    let rates = match &cli.rate {
        None => None,
        Some(r) => Some(
            split_top_level(r)
                .iter()
                .map(|x| {
                    x.parse::<f64>()
                        .ok()
                        .filter(|v| *v > 0.0 && v.is_finite())
                        .with_context(|| format!("bad rate {x:?}: expected requests per second"))
                })
                .collect::<anyhow::Result<Vec<f64>>>()?,
        ),
    };
    let policies = split_top_level(&cli.policies);
    anyhow::ensure!(!policies.is_empty(), "no policy given");
    anyhow::ensure!(cli.reps > 0, "--reps must be at least 1");
    let mut reporting = Reporting::default();
    for w in split_top_level(&cli.reports) {
        match w.as_str() {
            "orca" => reporting.orca = true,
            "agent" => reporting.agent = true,
            "push" => reporting.push = true,
            "none" => {}
            other => {
                anyhow::bail!("unknown report way {other:?}: expected orca, agent, push or none")
            }
        }
    }
    let repo = repo_dir();
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Ok(Options {
        scenarios,
        rates,
        policies,
        warmup: cli.warmup,
        window: cli.window,
        reps: cli.reps,
        seed: cli.seed,
        drover: cli.drover.unwrap_or_else(|| default_drover(&repo)),
        threads: cli.threads,
        reporting,
        report_interval: cli.report_interval,
        expect: cli.expect,
        lag_threshold: cli.lag_threshold,
        max_late_share: cli.max_late_pct / 100.0,
        out_dir: cli
            .out
            .unwrap_or_else(|| repo.join(format!("bench/out/balancing-{stamp}"))),
        farm_extra: cli.farm_set,
        command: std::env::args().collect::<Vec<_>>().join(" "),
    })
}

async fn signalled() -> anyhow::Result<&'static str> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let opts = match options(cli) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("balancing: {e:#}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("balancing: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = rt.block_on(async {
        tokio::select! {
            r = run_all(&opts) => r.map(|_| ()),
            s = signalled() => {
                // Dropping `run_all` here drops its drover processes: each is killed by PID.
                let s = s?;
                anyhow::bail!("interrupted by {s}: the drover processes of the current run were killed; partial results in {}", opts.out_dir.display())
            }
        }
    });
    // Reap what the kills left: give the runtime a moment to wait for the children.
    rt.shutdown_timeout(Duration::from_secs(2));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("balancing: {e:#}");
            ExitCode::FAILURE
        }
    }
}
