//! One collection: the member's own load (cpu, load average, memory, TCP connections, processes),
//! the custom metrics and the health script, made into a [`LoadReport`] that is valid by
//! construction (every metric goes through `Metrics::insert`).
//!
//! Where it sits: [`crate::Agent`] calls [`Collector::collect`] every interval on its collector
//! task; the report is rendered once ([`crate::wire`]) and shared with the pushers and the ports.
//!
//! Built-in metrics ([`BUILTIN`]): `cpu` (utilisation over the time since the previous
//! collection, 0..=1, from `sysinfo`), `load1`, `load5`, `load15`, `mem` (used / total, 0..=1),
//! `tcp` (established TCP connections, IPv4 and IPv6, from `/proc/net/tcp{,6}`) and `procs`
//! (processes: the numeric entries of `/proc`); `cpu` and `mem` are rounded to 4 decimals. One
//! that cannot be read on this system is left out.
//!
//! Custom metrics and the health script run concurrently, each bounded by the timeout, so a
//! collection takes at most about one timeout whatever their number. A custom metric that fails
//! (command fails or times out, output not one number, value out of range) is left out of that
//! report, never sent as garbage; its failure is logged at warn when it starts or changes, and
//! its recovery at info, so a broken metric does not log every interval.
//!
//! Commands run in their own process group, which is killed whole on timeout (a shell's children
//! included); at most [`MAX_OUTPUT`] bytes of their output are read.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use drover_core::report::{AgentState, LoadReport, Metrics, Source};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::task::JoinSet;

use crate::cli::{Config, MetricSource, MetricSpec};

/// The names of the built-in metrics; custom metrics may not reuse them.
pub const BUILTIN: [&str; 7] = ["cpu", "load1", "load5", "load15", "mem", "tcp", "procs"];
/// Most bytes read from a command's stdout or stderr, or from a metric file.
pub const MAX_OUTPUT: u64 = 64 * 1024;
/// Longest health-script reason, in bytes (drover accepts 256).
pub const MAX_REASON: usize = 200;

/// Collects reports for one member; keeps the CPU counters between collections and what each
/// custom metric last logged.
pub struct Collector {
    member: String,
    sys: Option<sysinfo::System>,
    metrics: Vec<MetricSpec>,
    /// Per custom metric, the last failure logged (None while it works).
    failing: Vec<Option<String>>,
    health_script: Option<PathBuf>,
    timeout: Duration,
}

impl Collector {
    /// A collector for `config`; takes the first CPU sample, so wait at least
    /// [`sysinfo::MINIMUM_CPU_UPDATE_INTERVAL`] before the first [`Collector::collect`].
    pub fn new(config: &Config) -> Collector {
        let sys = match sysinfo::System::new() {
            Ok(mut sys) => {
                sys.refresh_cpu_usage();
                Some(sys)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read system statistics; cpu and mem left out");
                None
            }
        };
        Collector {
            member: config.member.clone(),
            sys,
            failing: vec![None; config.metrics.len()],
            metrics: config.metrics.clone(),
            health_script: config.health_script.clone(),
            timeout: config.timeout,
        }
    }

    /// One report: system metrics, custom metrics, health. `received` is left 0 (the node sets it).
    pub async fn collect(&mut self) -> LoadReport {
        let mut jobs = JoinSet::new();
        for (i, spec) in self.metrics.iter().enumerate() {
            let (source, timeout) = (spec.source.clone(), self.timeout);
            jobs.spawn(async move { (i, custom(&source, timeout).await) });
        }
        let health = self.health_script.clone().map(|script| {
            let timeout = self.timeout;
            tokio::spawn(async move { health(&script, timeout).await })
        });
        // /proc reads are blocking and /proc/net/tcp can be megabytes on a busy member.
        let sys = self.sys.take();
        let (system, sys) = match tokio::task::spawn_blocking(move || system_metrics(sys)).await {
            Ok(out) => out,
            Err(e) => {
                tracing::warn!(error = %e, "system metrics task failed");
                (Vec::new(), None)
            }
        };
        self.sys = sys;

        let mut report = LoadReport::new(self.member.clone(), Source::Push, 0);
        for (name, value) in system {
            insert(&mut report.metrics, name, value);
        }
        let mut custom_values = vec![None; self.metrics.len()];
        while let Some(done) = jobs.join_next().await {
            if let Ok((i, result)) = done {
                custom_values[i] = Some(result);
            }
        }
        for (i, result) in custom_values.into_iter().enumerate() {
            let name = &self.metrics[i].name;
            let result = result
                .unwrap_or_else(|| Err("metric task failed".into()))
                .and_then(|v| check(name, v));
            match result {
                Ok(value) => {
                    insert(&mut report.metrics, name, value);
                    if self.failing[i].take().is_some() {
                        tracing::info!(metric = %name, value, "custom metric works again");
                    }
                }
                Err(why) => {
                    if self.failing[i].as_deref() != Some(why.as_str()) {
                        tracing::warn!(metric = %name, reason = %why, "custom metric left out of the report");
                        self.failing[i] = Some(why);
                    } else {
                        tracing::debug!(metric = %name, reason = %why, "custom metric still failing");
                    }
                }
            }
        }
        let down = match health {
            Some(task) => task
                .await
                .unwrap_or_else(|_| Err("health script task failed".into()))
                .err(),
            None => None,
        };
        match down {
            None => report.set_state(AgentState::Up),
            Some(reason) => {
                report.set_state(AgentState::Down);
                report.reason = Some(reason);
            }
        }
        report
    }
}

/// Checks `value` against drover's rules for `name`, so a failing custom metric is reported with
/// its reason and left out (instead of being dropped silently by `insert`).
fn check(name: &str, value: f64) -> Result<f64, String> {
    Metrics::default()
        .insert(name, value)
        .map(|()| value)
        .map_err(|e| e.to_string())
}

fn insert(metrics: &mut Metrics, name: &str, value: f64) {
    if let Err(e) = metrics.insert(name, value) {
        tracing::warn!(metric = name, value, error = %e, "metric left out of the report");
    }
}

/// The built-in metrics that could be read, and the `System` back for the next CPU delta.
fn system_metrics(
    mut sys: Option<sysinfo::System>,
) -> (Vec<(&'static str, f64)>, Option<sysinfo::System>) {
    let mut out = Vec::with_capacity(BUILTIN.len());
    if let Some(sys) = sys.as_mut() {
        sys.refresh_cpu_usage();
        let cpu = f64::from(sys.global_cpu_usage()) / 100.0;
        if cpu.is_finite() {
            // sysinfo's ratio of two counter deltas can stray a hair outside 0..=100.
            out.push(("cpu", round4(cpu.clamp(0.0, 1.0))));
        }
    }
    if let Ok(load) = sysinfo::System::load_average() {
        out.push(("load1", load.one));
        out.push(("load5", load.five));
        out.push(("load15", load.fifteen));
    }
    if let Some(sys) = sys.as_mut() {
        sys.refresh_memory();
        let total = sys.total_memory();
        if total > 0 {
            let used = sys.used_memory() as f64 / total as f64;
            out.push(("mem", round4(used.clamp(0.0, 1.0))));
        }
    }
    if let Some(n) = tcp_established() {
        out.push(("tcp", n as f64));
    }
    if let Some(n) = process_count() {
        out.push(("procs", n as f64));
    }
    (out, sys)
}

/// `x` to 4 decimals: more digits of a utilisation are noise, and a short decimal reads back
/// exactly from the JSON body.
fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// Established TCP connections (state `01`) in `/proc/net/tcp` and `/proc/net/tcp6`, or `None`
/// when neither can be read (not Linux).
pub fn tcp_established() -> Option<u64> {
    let mut any = false;
    let mut n = 0;
    for path in ["/proc/net/tcp", "/proc/net/tcp6"] {
        if let Ok(text) = std::fs::read_to_string(path) {
            any = true;
            n += count_established(&text);
        }
    }
    any.then_some(n)
}

/// Counts the rows of a `/proc/net/tcp` table whose `st` column (the 4th) is `01`, ESTABLISHED.
pub fn count_established(table: &str) -> u64 {
    table
        .lines()
        .skip(1)
        .filter(|line| line.split_whitespace().nth(3) == Some("01"))
        .count() as u64
}

/// Processes: the numeric entries of `/proc` (threads are not counted), `None` off Linux.
fn process_count() -> Option<u64> {
    let dir = std::fs::read_dir("/proc").ok()?;
    Some(
        dir.filter_map(Result::ok)
            .filter(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
            })
            .count() as u64,
    )
}

/// One custom metric's value, or why there is none.
async fn custom(source: &MetricSource, timeout: Duration) -> Result<f64, String> {
    let text = match source {
        MetricSource::Command(cmd) => {
            let out = run(Path::new("sh"), &["-c", cmd], timeout).await?;
            if !out.success {
                return Err(format!(
                    "command {}: {}",
                    out.status,
                    first_line(&out.stderr).unwrap_or_default()
                ));
            }
            String::from_utf8_lossy(&out.stdout).into_owned()
        }
        MetricSource::File(path) => {
            let read = async {
                let file = tokio::fs::File::open(path).await?;
                let mut buf = Vec::new();
                file.take(MAX_OUTPUT).read_to_end(&mut buf).await?;
                Ok::<_, std::io::Error>(buf)
            };
            let bytes = tokio::time::timeout(timeout, read)
                .await
                .map_err(|_| format!("reading {} timed out after {timeout:?}", path.display()))?
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            String::from_utf8_lossy(&bytes).into_owned()
        }
    };
    parse_number(&text)
}

/// The whole text (trimmed) as one finite number.
pub fn parse_number(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let shown: String = t.chars().take(40).filter(|c| !c.is_control()).collect();
    match t.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(format!("output is not one number: {shown:?}")),
    }
}

/// The health script's verdict: `Ok` for up, `Err(reason)` for down.
async fn health(script: &Path, timeout: Duration) -> Result<(), String> {
    let out = run(script, &[], timeout)
        .await
        .map_err(|e| format!("health script: {e}"))?;
    if out.success {
        return Ok(());
    }
    Err(first_line(&out.stdout)
        .or_else(|| first_line(&out.stderr))
        .unwrap_or_else(|| format!("health script {}", out.status)))
}

/// The first non-blank line of `output`: control characters removed, trimmed, cut to
/// [`MAX_REASON`] bytes on a character boundary; `None` when there is none.
pub fn first_line(output: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(output);
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    let clean: String = line.chars().filter(|c| !c.is_control()).collect();
    let clean = clean.trim();
    let mut end = clean.len().min(MAX_REASON);
    while !clean.is_char_boundary(end) {
        end -= 1;
    }
    let clean = clean[..end].trim_end();
    (!clean.is_empty()).then(|| clean.to_owned())
}

struct Output {
    success: bool,
    status: String,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// Runs `program args` with no stdin, in its own process group, for at most `timeout`.
async fn run(program: &Path, args: &[&str], timeout: Duration) -> Result<Output, String> {
    let mut child = tokio::process::Command::new(program)
        .args(args)
        // Health scripts and metric commands never need the push secret.
        .env_remove(crate::SECRET_ENV)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    let pid = child.id();
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let work = async {
        let (stdout, stderr) = tokio::join!(read_limited(stdout), read_limited(stderr));
        let status = child.wait().await;
        (status, stdout, stderr)
    };
    match tokio::time::timeout(timeout, work).await {
        Ok((Ok(status), stdout, stderr)) => Ok(Output {
            success: status.success(),
            status: match status.code() {
                Some(code) => format!("exited with status {code}"),
                None => "was killed by a signal".into(),
            },
            stdout,
            stderr,
        }),
        Ok((Err(e), ..)) => Err(format!("cannot wait for {}: {e}", program.display())),
        Err(_) => {
            if let Some(pid) = pid {
                kill_group(pid).await;
            }
            Err(format!("timed out after {timeout:?}"))
        }
    }
}

/// Kills the process group `pgid` (the command and whatever it started), with the shell's `kill`
/// so that no unsafe code is needed. The child itself is also killed and reaped on drop.
async fn kill_group(pgid: u32) {
    let _ = tokio::process::Command::new("sh")
        .env_remove(crate::SECRET_ENV)
        // No `--`: dash's `kill` takes `-KILL -PGID` but not `-KILL -- -PGID`.
        .args(["-c", "kill -KILL -\"$0\" 2>/dev/null", &pgid.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await;
}

async fn read_limited(pipe: Option<impl AsyncRead + Unpin>) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Some(pipe) = pipe {
        let _ = pipe.take(MAX_OUTPUT).read_to_end(&mut buf).await;
    }
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn established_rows_are_counted() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:2382 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:2382 0100007F:D2C4 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:D2C4 0100007F:2382 01 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 20 4 30 10 -1
   3: 0100007F:D2C6 0100007F:2382 06 00000000:00000000 03:00000000 00000000     0        0 0 3 0000000000000000
";
        assert_eq!(count_established(table), 2);
        assert_eq!(count_established(""), 0);
    }

    #[test]
    fn numbers_and_lines() {
        assert_eq!(parse_number(" 7\n"), Ok(7.0));
        assert_eq!(parse_number("0.25"), Ok(0.25));
        for junk in ["", "seven", "7 8", "NaN", "inf", "7\n8"] {
            assert!(parse_number(junk).is_err(), "{junk}");
        }
        assert_eq!(
            first_line(b"\n  disk full \x07\nmore"),
            Some("disk full".into())
        );
        assert_eq!(first_line(b"\n \n"), None);
        let long = "é".repeat(150);
        let clipped = first_line(long.as_bytes()).unwrap();
        assert!(clipped.len() <= MAX_REASON && clipped.len() >= MAX_REASON - 1);
        assert_eq!(first_line(b"a\tb\x1b[31m"), Some("ab[31m".into()));
    }
}
