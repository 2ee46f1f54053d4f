//! The harness: for each scenario, rate and repetition, every policy once in a shuffled order;
//! each run with fresh members and fresh drover processes; tables and raw JSON at the end of each
//! scenario/rate (and the JSON after every run, so an interrupted bench keeps what it measured).
//!
//! A run: start the scenario's sleepy members (ORCA header, agent port, pushes as asked; pushes
//! go to the admin listener of every drover of the run); unless the policy is `oracle`, write one
//! config per balancer and start `drover serve` for each; send the load ([`generator::run`]);
//! stop the drovers by PID; drop the members. The seed of a repetition (arrivals, jobs) depends on
//! the scenario, rate and repetition only, so every policy of a repetition faces the same load.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use drover_testkit::SleepyMember;
use drover_testkit::sleepy::{Push, splitmix};
use serde::Serialize;

use crate::drover::{self, ConfigMember, ConfigSpec, DroverProcess, ReportKeys};
use crate::generator::{self, Load, OracleMember, Route};
use crate::scenario::Scenario;
use crate::stats::{self, RunResult};

/// The policy names that bypass drover: shortest true queue, and shortest expected wait.
pub const ORACLE: &str = "oracle";
pub const ORACLE_WAIT: &str = "oracle-wait";

fn is_oracle(policy: &str) -> bool {
    policy == ORACLE || policy == ORACLE_WAIT
}
/// The shared secret of pushes (a bench secret, on 127.0.0.1 only).
const SECRET: &str = "drover-bench-balancing-secret-0001";

/// Which ways the members report load.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Reporting {
    pub orca: bool,
    pub agent: bool,
    pub push: bool,
}

/// The harness options (the command line, parsed).
#[derive(Clone, Debug)]
pub struct Options {
    pub scenarios: Vec<Scenario>,
    pub rates: Option<Vec<f64>>,
    pub policies: Vec<String>,
    pub warmup: Duration,
    pub window: Duration,
    pub reps: usize,
    pub seed: u64,
    pub drover: PathBuf,
    pub threads: usize,
    pub reporting: Reporting,
    /// Overrides each scenario's report interval.
    pub report_interval: Option<Duration>,
    /// `[farm.app.reports] expect`; default 3 x the report interval, at least 3 s.
    pub expect: Option<Duration>,
    pub lag_threshold: Duration,
    pub max_late_share: f64,
    pub out_dir: PathBuf,
    pub farm_extra: Vec<String>,
    /// The command line, for the record.
    pub command: String,
}

#[derive(Serialize)]
struct Record<'a> {
    command: &'a str,
    warmup_s: f64,
    window_s: f64,
    reps: usize,
    seed: u64,
    reporting: Reporting,
    notes: &'a [String],
    runs: &'a [RunResult],
}

/// FNV-1a of a string, to derive seeds from names.
fn hash(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `policies` in a seeded random order (Fisher-Yates).
pub fn shuffled(policies: &[String], seed: u64) -> Vec<String> {
    let mut v = policies.to_vec();
    for i in (1..v.len()).rev() {
        let j = (splitmix(seed, i as u64) % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
    v
}

/// Runs everything; prints a table per scenario/rate on stdout and progress on stderr.
pub async fn run_all(opts: &Options) -> anyhow::Result<Vec<RunResult>> {
    std::fs::create_dir_all(opts.out_dir.join("runs"))
        .with_context(|| format!("cannot create {}", opts.out_dir.display()))?;
    let mut notes = Vec::new();
    let mut reporting = opts.reporting;
    let needs_drover = opts.policies.iter().any(|p| !is_oracle(p));
    let mut report_keys_ok = false;
    if needs_drover {
        anyhow::ensure!(
            opts.drover.is_file(),
            "no drover binary at {} (build it with `cargo build --release -p drover`, or pass \
             --drover PATH)",
            opts.drover.display()
        );
        check_policies(opts).await?;
        report_keys_ok = probe_report_keys(opts).await?;
        if !report_keys_ok && reporting.push {
            let n = "this drover refuses [reports] / [farm.app.reports]: pushes are off, report \
                     keys left out of the configs"
                .to_owned();
            eprintln!("note: {n}");
            notes.push(n);
            reporting.push = false;
        }
    }
    let mut results: Vec<RunResult> = Vec::new();
    let mut tables = String::new();
    for sc in &opts.scenarios {
        let rates = opts
            .rates
            .clone()
            .unwrap_or_else(|| sc.default_rates.clone());
        for &rate in &rates {
            for rep in 0..opts.reps {
                let rep_seed = splitmix(
                    opts.seed ^ hash(&sc.name),
                    (rate.to_bits() ^ (rep as u64)).wrapping_add(rep as u64),
                );
                let order = shuffled(&opts.policies, rep_seed);
                for (k, policy) in order.iter().enumerate() {
                    let mut r = run_one(
                        opts,
                        sc,
                        rate,
                        rep,
                        policy,
                        rep_seed,
                        reporting,
                        report_keys_ok,
                    )
                    .await
                    .unwrap_or_else(|e| {
                        // One failed run (a drover that did not start, ...) is recorded as void
                        // and the bench goes on: hours of other runs are not thrown away.
                        RunResult {
                            scenario: sc.name.clone(),
                            rate,
                            rep,
                            policy: policy.clone(),
                            void: true,
                            void_reason: Some(format!("run failed: {e:#}")),
                            ..RunResult::default()
                        }
                    });
                    r.order = k;
                    eprintln!(
                        "[{} @{rate} rep {}/{} #{k}] {policy}: p50 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms, errors {:.3}%, lag p99 {:.1} ms{}{}",
                        sc.name,
                        rep + 1,
                        opts.reps,
                        r.p50_ms,
                        r.p99_ms,
                        r.p999_ms,
                        100.0 * r.error_rate(),
                        r.lag_p99_ms,
                        if r.void { " VOID: " } else { "" },
                        r.void_reason.clone().unwrap_or_default(),
                    );
                    for n in &r.notes {
                        eprintln!("    note: {n}");
                    }
                    results.push(r);
                    write_json(opts, &notes, &results)?;
                }
            }
            let t = scenario_table(opts, sc, rate, &results);
            print!("{t}");
            tables.push_str(&t);
            std::fs::write(opts.out_dir.join("tables.md"), &tables)?;
        }
    }
    eprintln!(
        "raw results: {}, tables: {}",
        opts.out_dir.join("results.json").display(),
        opts.out_dir.join("tables.md").display()
    );
    Ok(results)
}

fn scenario_table(opts: &Options, sc: &Scenario, rate: f64, results: &[RunResult]) -> String {
    let runs: Vec<&RunResult> = results
        .iter()
        .filter(|r| r.scenario == sc.name && r.rate == rate)
        .collect();
    let members: Vec<String> = sc.members.iter().map(|m| m.name().to_owned()).collect();
    let mut t = String::new();
    let _ = writeln!(
        t,
        "\n### {} @ {rate} req/s: {} x {} s measured (warm-up {} s), {} members, {} balancer{}\n",
        sc.name,
        opts.reps,
        opts.window.as_secs_f64(),
        opts.warmup.as_secs_f64(),
        members.len(),
        sc.balancers,
        if sc.balancers == 1 { "" } else { "s" },
    );
    t.push_str(&stats::table(&runs, &members, &opts.policies));
    let void: Vec<&&RunResult> = runs.iter().filter(|r| r.void).collect();
    for r in void {
        let _ = writeln!(
            t,
            "\nvoid: {} rep {}: {}",
            r.policy,
            r.rep + 1,
            r.void_reason.clone().unwrap_or_default()
        );
    }
    t
}

fn write_json(opts: &Options, notes: &[String], runs: &[RunResult]) -> anyhow::Result<()> {
    let rec = Record {
        command: &opts.command,
        warmup_s: opts.warmup.as_secs_f64(),
        window_s: opts.window.as_secs_f64(),
        reps: opts.reps,
        seed: opts.seed,
        reporting: opts.reporting,
        notes,
        runs,
    };
    let path = opts.out_dir.join("results.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&rec)?)
        .with_context(|| format!("cannot write {}", path.display()))
}

fn expect_for(opts: &Options, interval: Duration) -> Duration {
    opts.expect
        .unwrap_or_else(|| (interval * 3).max(Duration::from_secs(3)))
}

/// Fails before the first run if drover refuses any policy string (`drover check` on a sample
/// config per policy), naming every refused one with drover's reason.
async fn check_policies(opts: &Options) -> anyhow::Result<()> {
    let members = [ConfigMember {
        name: "probe".into(),
        addr: "127.0.0.1:9".parse()?,
        agent_port: None,
    }];
    let mut refused = Vec::new();
    for (i, policy) in opts.policies.iter().filter(|p| !is_oracle(p)).enumerate() {
        let spec = ConfigSpec {
            policy,
            threads: 1,
            members: &members,
            reports: &ReportKeys::default(),
            farm_extra: &opts.farm_extra,
        };
        let path = opts.out_dir.join(format!("probe-policy-{i}.toml"));
        std::fs::write(
            &path,
            drover::config_toml(&spec, "127.0.0.1:1".parse()?, "127.0.0.1:2".parse()?),
        )?;
        if let Err(e) = drover::check(&opts.drover, &path).await? {
            refused.push(format!("{policy}: {e}"));
        }
    }
    anyhow::ensure!(
        refused.is_empty(),
        "drover ({}) refuses these policies (or --farm-set lines):\n{}",
        opts.drover.display(),
        refused.join("\n")
    );
    Ok(())
}

/// Whether this drover accepts the report keys (`drover check` on a sample config).
async fn probe_report_keys(opts: &Options) -> anyhow::Result<bool> {
    let members = [ConfigMember {
        name: "probe".into(),
        addr: "127.0.0.1:9".parse()?,
        agent_port: None,
    }];
    let keys = ReportKeys {
        secret: Some(SECRET.into()),
        expect: Some(Duration::from_secs(3)),
        agent_interval: None,
    };
    let spec = ConfigSpec {
        policy: "round-robin",
        threads: 1,
        members: &members,
        reports: &keys,
        farm_extra: &[],
    };
    let path = opts.out_dir.join("probe-reports.toml");
    std::fs::write(
        &path,
        drover::config_toml(&spec, "127.0.0.1:1".parse()?, "127.0.0.1:2".parse()?),
    )?;
    Ok(drover::check(&opts.drover, &path).await?.is_ok())
}

#[allow(clippy::too_many_arguments)]
async fn run_one(
    opts: &Options,
    sc: &Scenario,
    rate: f64,
    rep: usize,
    policy: &str,
    seed: u64,
    reporting: Reporting,
    report_keys_ok: bool,
) -> anyhow::Result<RunResult> {
    let oracle = is_oracle(policy);
    let interval = opts.report_interval.unwrap_or(sc.report_interval);
    // Ports first: the members push to the admin listeners before drover is up (refused pushes
    // during start-up are expected and not reported).
    let mut ports = Vec::new();
    if !oracle {
        for _ in 0..sc.balancers {
            ports.push((drover::free_port()?, drover::free_port()?));
        }
    }
    let admins: Vec<std::net::SocketAddr> = ports
        .iter()
        .map(|&(_, a)| std::net::SocketAddr::from(([127, 0, 0, 1], a)))
        .collect();
    let mut members = Vec::new();
    for cfg in &sc.members {
        let mut cfg = cfg
            .clone()
            .orca(reporting.orca)
            .agent(reporting.agent && !oracle);
        if reporting.push && !oracle {
            cfg = cfg.push(Push {
                targets: admins.clone(),
                secret: SECRET.as_bytes().to_vec(),
                interval,
            });
        }
        members.push(SleepyMember::start(cfg).await?);
    }
    let config_members: Vec<ConfigMember> = members
        .iter()
        .map(|m| ConfigMember {
            name: m.name().to_owned(),
            addr: m.addr(),
            agent_port: m.agent_addr().map(|a| a.port()),
        })
        .collect();
    let keys = ReportKeys {
        secret: (report_keys_ok && reporting.push).then(|| SECRET.to_owned()),
        expect: (report_keys_ok && (reporting.push || reporting.agent))
            .then(|| expect_for(opts, interval)),
        agent_interval: reporting
            .agent
            .then_some(interval.max(Duration::from_millis(100))),
    };
    let mut procs: Vec<DroverProcess> = Vec::new();
    let tag = format!(
        "{}-{}-rep{}-{}",
        sc.name,
        rate,
        rep + 1,
        policy.replace(|c: char| !c.is_ascii_alphanumeric() && c != '-', "_")
    );
    for (b, &(listen, admin)) in ports.iter().enumerate() {
        let spec = ConfigSpec {
            policy,
            threads: opts.threads,
            members: &config_members,
            reports: &keys,
            farm_extra: &opts.farm_extra,
        };
        let listen = std::net::SocketAddr::from(([127, 0, 0, 1], listen));
        let admin = std::net::SocketAddr::from(([127, 0, 0, 1], admin));
        let dir = opts.out_dir.join("runs");
        let config = dir.join(format!("{tag}-drover{b}.toml"));
        std::fs::write(&config, drover::config_toml(&spec, listen, admin))?;
        let log = dir.join(format!("{tag}-drover{b}.log"));
        procs.push(
            DroverProcess::start(
                &opts.drover,
                &config,
                listen,
                admin,
                &log,
                Duration::from_secs(15),
            )
            .await?,
        );
    }
    let route = if oracle {
        Route::Oracle {
            members: members
                .iter()
                .map(|m| OracleMember {
                    addr: m.addr(),
                    queue: m.queue(),
                    probe: m.probe(),
                })
                .collect(),
            by_wait: policy == ORACLE_WAIT,
        }
    } else {
        Route::Proxies(procs.iter().map(|p| p.listen).collect())
    };
    let pushes_before: Vec<(u64, u64)> = members
        .iter()
        .map(|m| (m.pushes_ok(), m.pushes_failed()))
        .collect();
    let load = Load {
        rate,
        warmup: opts.warmup,
        window: opts.window,
        seed,
        timeout: sc.timeout,
        lag_threshold: opts.lag_threshold,
        max_late_share: opts.max_late_share,
    };
    let mut r = generator::run(&route, &load).await?;
    r.scenario = sc.name.clone();
    r.rep = rep;
    r.policy = policy.to_owned();
    for (m, (ok0, failed0)) in members.iter().zip(pushes_before) {
        let failed = m.pushes_failed() - failed0;
        if failed > 0 {
            r.notes.push(format!(
                "{}: {failed} pushes failed ({} accepted); last: {}",
                m.name(),
                m.pushes_ok() - ok0,
                m.last_push_error().unwrap_or_default()
            ));
        }
    }
    for p in &mut procs {
        if p.exited() {
            r.notes.push(format!(
                "drover pid {} exited during the run; log {}:\n{}",
                p.pid,
                p.log.display(),
                drover::tail(&p.log, 10)
            ));
            r.void = true;
            r.void_reason = Some("a drover process exited during the run".into());
        }
        p.stop().await;
    }
    drop(members);
    Ok(r)
}

/// The default drover binary: `$CARGO_TARGET_DIR/release/drover`, else `target/release/drover`
/// under the repository.
pub fn default_drover(repo: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => PathBuf::from(dir).join("release/drover"),
        None => repo.join("target/release/drover"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shuffle_is_a_seeded_permutation() {
        let p: Vec<String> = ["a", "b", "c", "d", "e"].map(String::from).to_vec();
        let x = shuffled(&p, 1);
        assert_eq!(x, shuffled(&p, 1));
        let mut s = x.clone();
        s.sort();
        assert_eq!(s, p);
        assert!((0..20).any(|seed| shuffled(&p, seed) != x));
    }
}
