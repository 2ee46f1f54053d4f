//! `drover-sim`: the simulator's command line.
//!
//! - `drover-sim theory [--jobs N] [--long-jobs N] [--seed S]`: runs the theory checks and prints
//!   them as a markdown table (check, expected, measured, error %);
//! - `drover-sim run --policy p2c --members 100 --load 0.9 --jobs 1000000 --seed 1`: one run over
//!   equal members, its statistics as markdown;
//! - `drover-sim compare --members 100 --load 0.9`: the same run under every policy, one table;
//! - `drover-sim scenario m --rate 450`: BALANCING.md's mixed scenario M under every policy;
//! - `drover-sim sweep --members 10,100,1000,5000 --loads 0.5,0.9 --balancers 1,10`: a grid.
//!
//! Where it sits: a thin shell over the `drover_sim` library; `anyhow` for errors, as only binaries
//! use it. Progress goes to stderr so stdout can be pasted into docs as it is.

use anyhow::{Context, bail};
use clap::{Parser, Subcommand, ValueEnum};
use drover_core::PolicyKind;
use drover_sim::scenario;
use drover_sim::theory::{self, Sizes};
use drover_sim::{Config, MemberModel, Report, Service, run};

/// One table cell: the value, or over several runs "median (min-max)".
fn cell(values: &[f64], digits: usize) -> String {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => String::new(),
        1 => format!("{:.digits$}", v[0]),
        n => {
            let median = if n % 2 == 1 {
                v[n / 2]
            } else {
                (v[n / 2 - 1] + v[n / 2]) / 2.0
            };
            format!(
                "{median:.digits$} ({:.digits$}-{:.digits$})",
                v[0],
                v[n - 1]
            )
        }
    }
}

#[derive(Parser)]
#[command(
    name = "drover-sim",
    about = "Discrete-event simulator over drover-core's policies"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Policy {
    Random,
    RoundRobin,
    LeastConn,
    P2c,
    PeakEwma,
    Weighted,
    Adaptive,
    /// drover-core's `lowest(cpu)` (for comparison only: it herds).
    #[value(name = "lowest")]
    LowestCpuCore,
    /// drover-core's `simple(cpu)`: reported cpu sets capacity, P2C on in-flight decides.
    #[value(name = "simple")]
    SimpleCpu,
    /// drover-core's `dynamic(cpu=0.5, rif=0.5)`: cpu may halve a member's capacity at most.
    #[value(name = "dynamic-half")]
    DynamicHalf,
    /// drover-core's `dynamic(cpu=1)`: capacity = weight x max(1 - cpu, 0.05).
    #[value(name = "dynamic")]
    DynamicCpu,
    /// Not a drover policy: the member whose last report showed the lowest cpu (the naive rule
    /// that herds; needs reports).
    LowestCpu,
    /// Not a drover policy: smooth weighted round robin on reported rps / cpu (ORCA-style, as
    /// gRPC's weighted_round_robin; needs pushed reports).
    CpuWrr,
    /// Not a drover policy: reads every member's true queue (the reference to compare against).
    Oracle,
}

impl Policy {
    fn kind(self) -> PolicyKind {
        match self {
            Policy::Random => PolicyKind::Random,
            Policy::RoundRobin => PolicyKind::RoundRobin,
            Policy::LeastConn => PolicyKind::LeastConn,
            Policy::P2c => PolicyKind::P2c,
            Policy::PeakEwma => PolicyKind::PeakEwma,
            Policy::Weighted => PolicyKind::Weighted,
            Policy::Adaptive => PolicyKind::Adaptive,
            Policy::LowestCpuCore => PolicyKind::Lowest {
                metric: "cpu".into(),
            },
            Policy::SimpleCpu => PolicyKind::Simple {
                metric: "cpu".into(),
            },
            Policy::DynamicHalf => PolicyKind::Dynamic {
                mix: vec![("cpu".into(), 0.5), ("rif".into(), 0.5)],
            },
            Policy::DynamicCpu => PolicyKind::Dynamic {
                mix: vec![("cpu".into(), 1.0)],
            },
            // The simulator's references ignore the farm's policy; least-conn keeps its counters.
            Policy::LowestCpu | Policy::CpuWrr => PolicyKind::LeastConn,
            // The simulator's oracle ignores the farm's policy; least-conn keeps its counters.
            Policy::Oracle => PolicyKind::LeastConn,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Policy::Oracle => "oracle",
            Policy::LowestCpu => "lowest-cpu (naive)",
            Policy::CpuWrr => "cpu-wrr (ORCA-style)",
            Policy::LowestCpuCore => "lowest(cpu)",
            Policy::SimpleCpu => "simple(cpu)",
            Policy::DynamicHalf => "dynamic(cpu=0.5, rif=0.5)",
            Policy::DynamicCpu => "dynamic(cpu=1)",
            _ => self.kind().name(),
        }
    }

    /// Sets `config` to run under this policy.
    fn apply(self, config: &mut Config) {
        config.policy = self.kind();
        config.oracle = matches!(self, Policy::Oracle);
        config.lowest_cpu = matches!(self, Policy::LowestCpu);
        config.cpu_wrr = matches!(self, Policy::CpuWrr);
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum Named {
    M,
    Equal,
    Linkerd,
    /// B1 (hidden load) alone among four normal members.
    B1,
    /// B3 (three times slower) alone among four normal members.
    B3,
    /// B4 (300 ms freezes every 5 s) alone among four normal members.
    B4,
    /// B5 (concurrency penalty) alone among four normal members.
    B5,
}

#[derive(Clone, Copy, ValueEnum)]
enum Dist {
    Exp,
    Lognormal,
    Det,
}

#[derive(Subcommand)]
enum Command {
    /// Reproduce queueing theory (M/M/1, supermarket model, E_N/M/1, M/M/N bound).
    Theory {
        /// Measured jobs per run at load <= 0.9.
        #[arg(long, default_value_t = 2_000_000)]
        jobs: u64,
        /// Measured jobs per run at load 0.99 (0 skips them).
        #[arg(long, default_value_t = 20_000_000)]
        long_jobs: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// One run over equal members.
    Run {
        #[arg(long, value_enum, default_value_t = Policy::P2c)]
        policy: Policy,
        #[command(flatten)]
        setup: Setup,
    },
    /// A named scenario of BALANCING.md under every policy: `m` (mixed), `equal` (five equal
    /// members) or `linkerd` (the Linkerd replica, with a 1 s timeout).
    Scenario {
        #[arg(value_enum)]
        name: Named,
        /// Arrival rate, requests per second (default: 450; linkerd: 1000).
        #[arg(long)]
        rate: Option<f64>,
        /// Measured seconds of virtual time after a 10 s warm-up (default: 600; linkerd: 60).
        #[arg(long)]
        seconds: Option<f64>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Independent balancers splitting the arrivals.
        #[arg(long, default_value_t = 1)]
        balancers: usize,
        /// Client timeout in ms (default: none; linkerd: 1000).
        #[arg(long)]
        timeout_ms: Option<u64>,
        /// A timed-out request feeds the timeout as a latency sample (tower's Peak-EWMA), instead
        /// of none (drover-proxy now samples first-byte timeouts: pass this to mirror it).
        #[arg(long)]
        sample_timeouts: bool,
        /// Runs per policy, seeds `seed..seed + seeds`: cells show median (min-max).
        #[arg(long, default_value_t = 1)]
        seeds: u64,
        #[arg(
            long,
            value_enum,
            value_delimiter = ',',
            default_value = "round-robin,least-conn,p2c,peak-ewma,lowest-cpu,adaptive,oracle"
        )]
        policies: Vec<Policy>,
        #[command(flatten)]
        reports: ReportArgs,
    },
    /// A grid of runs over equal M/M/1 members (mu = 1): members x loads x balancers x policies.
    Sweep {
        /// Member counts, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "10,100,1000,5000")]
        members: Vec<usize>,
        /// Loads, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "0.5,0.8,0.9,0.95")]
        loads: Vec<f64>,
        /// Balancer counts, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1")]
        balancers: Vec<usize>,
        #[arg(
            long,
            value_enum,
            value_delimiter = ',',
            default_value = "p2c,peak-ewma,least-conn,oracle"
        )]
        policies: Vec<Policy>,
        /// Measured jobs per member (at least --min-jobs in all).
        #[arg(long, default_value_t = 500)]
        jobs_per_member: u64,
        #[arg(long, default_value_t = 1_000_000)]
        min_jobs: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// The same run (same jobs, same seed) under every policy, as one markdown table.
    Compare {
        #[command(flatten)]
        setup: Setup,
    },
}

/// Load reports from the members (default: none).
#[derive(clap::Args, Clone, Copy)]
struct ReportArgs {
    /// Each member pushes a report (cpu over the interval, queue, rif) to every balancer this
    /// often, ms (0: no pushed reports).
    #[arg(long, default_value_t = 0)]
    report_interval_ms: u64,
    /// Time from a member's measurement to its arrival at a balancer, ms.
    #[arg(long, default_value_t = 10)]
    report_delay_ms: u64,
    /// Intervals and delays are scaled by a uniform factor in 1 +- this.
    #[arg(long, default_value_t = 0.1)]
    report_jitter: f64,
    /// Every response also carries the member's utilisation (1 s average), as ORCA headers do.
    #[arg(long)]
    orca: bool,
}

impl ReportArgs {
    fn reports(&self) -> drover_sim::Reports {
        drover_sim::Reports {
            interval: self.report_interval_ms * 1_000_000,
            delay: self.report_delay_ms * 1_000_000,
            jitter: self.report_jitter,
            orca: self.orca,
        }
    }

    fn describe(&self) -> String {
        let push = if self.report_interval_ms == 0 {
            "no pushed reports".to_string()
        } else {
            format!(
                "reports every {} ms, {} ms late, jitter {}",
                self.report_interval_ms, self.report_delay_ms, self.report_jitter
            )
        };
        if self.orca {
            format!("{push}, ORCA reports on every response")
        } else {
            push
        }
    }
}

/// Members, load and run size shared by `run` and `compare`.
#[derive(clap::Args)]
struct Setup {
    #[arg(long, default_value_t = 100)]
    members: usize,
    /// Offered load: arrival rate over total capacity.
    #[arg(long, default_value_t = 0.9)]
    load: f64,
    #[arg(long, default_value_t = 1_000_000)]
    jobs: u64,
    /// Warm-up jobs, not measured (default: a tenth of --jobs).
    #[arg(long)]
    warmup: Option<u64>,
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Independent balancers splitting the arrivals.
    #[arg(long, default_value_t = 1)]
    balancers: usize,
    /// Virtual workers per member.
    #[arg(long, default_value_t = 1)]
    workers: u32,
    #[arg(long, value_enum, default_value_t = Dist::Exp)]
    service: Dist,
    /// Mean service time, seconds.
    #[arg(long, default_value_t = 1.0)]
    mean: f64,
    /// Coefficient of variation of the lognormal service time.
    #[arg(long, default_value_t = 1.0)]
    cv: f64,
    #[command(flatten)]
    reports: ReportArgs,
}

impl Setup {
    fn config(&self, policy: Policy) -> anyhow::Result<Config> {
        let load = self.load;
        if !(load > 0.0 && load < 1.0) {
            bail!("--load {load}: give a load between 0 and 1 (exclusive), e.g. 0.9");
        }
        let mean = self.mean;
        let service = match self.service {
            Dist::Exp => Service::Exponential { mean },
            Dist::Lognormal => Service::LogNormal { mean, cv: self.cv },
            Dist::Det => Service::Deterministic { value: mean },
        };
        let model = MemberModel {
            workers: self.workers.max(1),
            service,
            ..MemberModel::exponential(1.0)
        };
        let mut config = Config {
            policy: policy.kind(),
            oracle: false,
            members: vec![model; self.members],
            balancers: self.balancers,
            rate: 0.0,
            jobs: self.jobs,
            warmup: self.warmup.unwrap_or(self.jobs / 10),
            seed: self.seed,
            timeout: 0,
            sample_timeouts: false,
            reports: Default::default(),
            lowest_cpu: false,
            cpu_wrr: false,
        }
        .at_load(load);
        config.reports = self.reports.reports();
        policy.apply(&mut config);
        Ok(config)
    }
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Theory {
            jobs,
            long_jobs,
            seed,
        } => {
            let sizes = Sizes {
                jobs,
                long_jobs,
                seed,
            };
            let checks = theory::checks(sizes, |what| eprintln!("running {what} ..."))
                .context("theory run")?;
            println!("{}", theory::table(&checks));
        }
        Command::Run { policy, setup } => {
            let report = run(&setup.config(policy)?).context("simulation")?;
            print!("{report}");
        }
        Command::Scenario {
            name,
            rate: rate_arg,
            seconds: seconds_arg,
            seed,
            balancers,
            timeout_ms,
            sample_timeouts,
            seeds,
            policies,
            reports,
        } => {
            let (build, rate, seconds): (fn(_, _, _, _) -> Config, _, _) = match name {
                Named::M => (scenario::m, 450.0, 600.0),
                Named::Equal => (scenario::equal, 450.0, 600.0),
                Named::Linkerd => (scenario::linkerd, 1000.0, 60.0),
                Named::B1 => (|p, r, s, d| scenario::alone(0, p, r, s, d), 450.0, 600.0),
                Named::B3 => (|p, r, s, d| scenario::alone(2, p, r, s, d), 450.0, 600.0),
                Named::B4 => (|p, r, s, d| scenario::alone(3, p, r, s, d), 450.0, 600.0),
                Named::B5 => (|p, r, s, d| scenario::alone(4, p, r, s, d), 450.0, 600.0),
            };
            let (rate, seconds) = (rate_arg.unwrap_or(rate), seconds_arg.unwrap_or(seconds));
            let probe = build(PolicyKind::Random, rate, seconds, seed);
            println!(
                "{} req/s (load {:.2} of {:.0} req/s nominal capacity), {balancers} balancer(s), \
                 {}, {seconds} s measured, seeds {seed}..{}; times in ms\n",
                rate,
                probe.load(),
                probe.capacity(),
                reports.describe(),
                seed + seeds.max(1) - 1
            );
            let cols: Vec<String> = (1..=probe.members.len()).map(|i| format!("B{i}")).collect();
            println!(
                "| policy | mean | p50 | p99 | p99.9 | over 1 s | timed out | share {} |",
                cols.join(" / ")
            );
            println!("|---|---|---|---|---|---|---|---|");
            for policy in &policies {
                eprintln!("running {} ...", policy.name());
                let mut runs = Vec::new();
                for seed in seed..seed + seeds.max(1) {
                    let mut config = build(policy.kind(), rate, seconds, seed);
                    policy.apply(&mut config);
                    config.balancers = balancers;
                    if let Some(ms) = timeout_ms {
                        config.timeout = ms * 1_000_000;
                    }
                    config.sample_timeouts = sample_timeouts;
                    config.reports = reports.reports();
                    runs.push(run(&config).context("simulation")?);
                }
                let reports = runs;
                let col = |f: &dyn Fn(&Report) -> f64, scale: f64, digits: usize| {
                    cell(
                        &reports.iter().map(|r| f(r) * scale).collect::<Vec<_>>(),
                        digits,
                    )
                };
                let n = reports.len() as f64;
                let shares: Vec<String> = (0..probe.members.len())
                    .map(|i| format!("{:.3}", reports.iter().map(|r| r.share[i]).sum::<f64>() / n))
                    .collect();
                println!(
                    "| {} | {} | {} | {} | {} | {}% | {}% | {} |",
                    policy.name(),
                    col(&|r| r.mean, 1e3, 1),
                    col(&|r| r.p50, 1e3, 1),
                    col(&|r| r.p99, 1e3, 1),
                    col(&|r| r.p999, 1e3, 1),
                    col(&|r| r.over_1s, 100.0, 3),
                    col(&|r| r.errors, 100.0, 3),
                    shares.join(" / ")
                );
            }
        }
        Command::Sweep {
            members,
            loads,
            balancers,
            policies,
            jobs_per_member,
            min_jobs,
            seed,
        } => {
            println!(
                "| members | load | balancers | policy | jobs | mean | 95% CI | p99 | p99.9 | max queue |"
            );
            println!("|---|---|---|---|---|---|---|---|---|---|");
            for &n in &members {
                let jobs = (n as u64 * jobs_per_member).max(min_jobs);
                for &load in &loads {
                    for &k in &balancers {
                        for &policy in &policies {
                            eprintln!(
                                "running {n} members, load {load}, K {k}, {} ...",
                                policy.name()
                            );
                            let mut config = Config::mm1(policy.kind(), n, load, jobs, seed);
                            policy.apply(&mut config);
                            config.balancers = k;
                            let r = run(&config).context("simulation")?;
                            println!(
                                "| {n} | {load} | {k} | {} | {jobs} | {:.4} | +-{:.4} | {:.3} | {:.3} | {} |",
                                r.policy, r.mean, r.mean_ci, r.p99, r.p999, r.max_queue
                            );
                        }
                    }
                }
            }
        }
        Command::Compare { setup } => {
            let first = setup.config(Policy::Random)?;
            println!(
                "{} members, load {}, {} balancer(s), {} jobs, seed {}\n",
                setup.members, setup.load, first.balancers, setup.jobs, setup.seed
            );
            println!("| policy | mean | 95% CI | p50 | p99 | p99.9 | max queue | share min-max |");
            println!("|---|---|---|---|---|---|---|---|");
            let reporting = setup.reports.report_interval_ms > 0 || setup.reports.orca;
            for policy in Policy::value_variants() {
                let reads_reports = matches!(
                    policy,
                    Policy::LowestCpu
                        | Policy::CpuWrr
                        | Policy::LowestCpuCore
                        | Policy::SimpleCpu
                        | Policy::DynamicHalf
                        | Policy::DynamicCpu
                );
                if reads_reports && !reporting {
                    continue; // without reports it is random
                }
                eprintln!("running {} ...", policy.name());
                let r = run(&setup.config(*policy)?).context("simulation")?;
                let (lo, hi) = r.share_range();
                println!(
                    "| {} | {:.4} | +-{:.4} | {:.4} | {:.4} | {:.4} | {} | {:.4}-{:.4} |",
                    r.policy, r.mean, r.mean_ci, r.p50, r.p99, r.p999, r.max_queue, lo, hi
                );
            }
        }
    }
    Ok(())
}
