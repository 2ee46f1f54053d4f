//! One drover process per run: its config file, its start, the wait until it answers, and its
//! end, by PID.
//!
//! [`config_toml`] writes a config with one listener and one farm `app` over the run's members
//! (by name, so pushed reports and `X-Member` agree), the admin listener (pushes go there), and
//! when asked `[reports] secret` and `[farm.app.reports] expect`, and per-member agent ports.
//! [`DroverProcess::start`] runs `<bin> serve --config <file>` with stdout and stderr to a log
//! file, then polls until the listener accepts a connection (failing at once if the process
//! exits). The child is spawned with `kill_on_drop`, so an error, a panic unwinding or Ctrl-C
//! handled by the caller kills exactly this process (SIGKILL to its PID); the normal end is
//! [`DroverProcess::stop`], which kills and reaps it.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::process::{Child, Command};

/// A member as the config names it.
#[derive(Clone, Debug)]
pub struct ConfigMember {
    pub name: String,
    pub addr: SocketAddr,
    /// Its agent-check port, when agent reports are on.
    pub agent_port: Option<u16>,
}

/// Report-related config; every part optional, so a drover without these keys still runs.
#[derive(Clone, Debug, Default)]
pub struct ReportKeys {
    /// `[reports] secret`.
    pub secret: Option<String>,
    /// `[farm.app.reports] expect`.
    pub expect: Option<Duration>,
    /// Agent-check interval (`agent = { port, interval }`).
    pub agent_interval: Option<Duration>,
}

/// Everything a config needs but the addresses.
#[derive(Clone, Debug)]
pub struct ConfigSpec<'a> {
    pub policy: &'a str,
    pub threads: usize,
    pub members: &'a [ConfigMember],
    pub reports: &'a ReportKeys,
    /// Extra `key = value` lines for `[farm.app]`, as given with `--farm-set`.
    pub farm_extra: &'a [String],
}

fn quoted(s: &str) -> String {
    // A JSON string is a valid TOML basic string (same escapes for what can occur here).
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

fn dur(d: Duration) -> String {
    format!("\"{}ms\"", d.as_millis().max(1))
}

/// The config file of one drover process.
pub fn config_toml(spec: &ConfigSpec<'_>, listen: SocketAddr, admin: SocketAddr) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "# Written by drover-bench (bench/balancing) for one run."
    );
    let _ = writeln!(t, "[server]\nthreads = {}\n", spec.threads);
    let _ = writeln!(t, "[admin]\nlisten = \"{admin}\"\nopen_reads = true\n");
    if let Some(secret) = &spec.reports.secret {
        let _ = writeln!(t, "[reports]\nsecret = {}\n", quoted(secret));
    }
    let _ = writeln!(t, "[[listener]]\nlisten = \"{listen}\"\nfarm = \"app\"\n");
    let policy = spec.policy.trim();
    // A pipeline (`["fresh 20s", ...]`) or table goes in as written; a name is quoted.
    let policy = if policy.starts_with('[') || policy.starts_with('{') {
        policy.to_owned()
    } else {
        quoted(policy)
    };
    let _ = writeln!(t, "[farm.app]\npolicy = {policy}");
    for line in spec.farm_extra {
        let _ = writeln!(t, "{line}");
    }
    let _ = writeln!(t);
    if let Some(expect) = spec.reports.expect {
        let _ = writeln!(t, "[farm.app.reports]\nexpect = {}\n", dur(expect));
    }
    for m in spec.members {
        let _ = writeln!(
            t,
            "[[farm.app.members]]\nname = {}\naddress = \"{}\"",
            quoted(&m.name),
            m.addr
        );
        if let Some(port) = m.agent_port {
            match spec.reports.agent_interval {
                Some(i) => {
                    let _ = writeln!(
                        t,
                        "agent = {{ port = {port}, interval = {}, timeout = {} }}",
                        dur(i),
                        dur(i.min(Duration::from_secs(1)))
                    );
                }
                None => {
                    let _ = writeln!(t, "agent = {{ port = {port} }}");
                }
            }
        }
        let _ = writeln!(t);
    }
    t
}

/// A free TCP port on 127.0.0.1 (bound, read, released; a race with another process taking it in
/// between shows up as drover failing to start, reported with its log).
pub fn free_port() -> std::io::Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// `drover check --config <file>`: `Ok(())` or drover's error text.
pub async fn check(bin: &Path, config: &Path) -> anyhow::Result<Result<(), String>> {
    let out = Command::new(bin)
        .arg("check")
        .arg("--config")
        .arg(config)
        .output()
        .await
        .with_context(|| format!("cannot run {}", bin.display()))?;
    if out.status.success() {
        Ok(Ok(()))
    } else {
        Ok(Err(String::from_utf8_lossy(&out.stderr).trim().to_owned()))
    }
}

/// A running drover process.
#[derive(Debug)]
pub struct DroverProcess {
    child: Child,
    pub pid: u32,
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    pub log: PathBuf,
}

impl DroverProcess {
    /// Starts `bin serve --config config` and waits (up to `deadline`) until `listen` accepts.
    pub async fn start(
        bin: &Path,
        config: &Path,
        listen: SocketAddr,
        admin: SocketAddr,
        log: &Path,
        deadline: Duration,
    ) -> anyhow::Result<DroverProcess> {
        let out = std::fs::File::create(log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        let err = out.try_clone()?;
        let child = Command::new(bin)
            .arg("serve")
            .arg("--config")
            .arg(config)
            .env(
                "DROVER_LOG",
                std::env::var("DROVER_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let pid = child.id().unwrap_or(0);
        let mut p = DroverProcess {
            child,
            pid,
            listen,
            admin,
            log: log.to_owned(),
        };
        let until = tokio::time::Instant::now() + deadline;
        loop {
            if let Some(status) = p.child.try_wait()? {
                bail!(
                    "drover (pid {pid}) exited before answering ({status}); its log {}:\n{}",
                    log.display(),
                    tail(log, 20)
                );
            }
            if tokio::net::TcpStream::connect(listen).await.is_ok() {
                return Ok(p);
            }
            if tokio::time::Instant::now() >= until {
                p.stop().await;
                bail!(
                    "drover (pid {pid}) did not accept on {listen} within {deadline:?}; log:\n{}",
                    tail(log, 20)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the process (SIGKILL to its PID) and reaps it.
    pub async fn stop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.start_kill();
            let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
        }
    }

    /// True if it has exited on its own.
    pub fn exited(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_some()
    }
}

/// The last `n` lines of a file, for error messages.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_names_members_and_reports() {
        let members = [
            ConfigMember {
                name: "B1".into(),
                addr: "127.0.0.1:9001".parse().unwrap(),
                agent_port: Some(9101),
            },
            ConfigMember {
                name: "B2".into(),
                addr: "127.0.0.1:9002".parse().unwrap(),
                agent_port: None,
            },
        ];
        let reports = ReportKeys {
            secret: Some("0123456789abcdef0123".into()),
            expect: Some(Duration::from_secs(3)),
            agent_interval: Some(Duration::from_millis(500)),
        };
        let spec = ConfigSpec {
            policy: "p2c",
            threads: 1,
            members: &members,
            reports: &reports,
            farm_extra: &["retries = 0".into()],
        };
        let t = config_toml(
            &spec,
            "127.0.0.1:8000".parse().unwrap(),
            "127.0.0.1:8001".parse().unwrap(),
        );
        for want in [
            "policy = \"p2c\"\nretries = 0",
            "[reports]\nsecret = \"0123456789abcdef0123\"",
            "[farm.app.reports]\nexpect = \"3000ms\"",
            "name = \"B1\"\naddress = \"127.0.0.1:9001\"\nagent = { port = 9101, interval = \"500ms\", timeout = \"500ms\" }",
            "[admin]\nlisten = \"127.0.0.1:8001\"",
        ] {
            assert!(t.contains(want), "missing {want:?} in:\n{t}");
        }
        let pipeline = ConfigSpec {
            policy: "[\"sample 2\", \"least conn\"]",
            ..spec
        };
        let t = config_toml(
            &pipeline,
            "127.0.0.1:8000".parse().unwrap(),
            "127.0.0.1:8001".parse().unwrap(),
        );
        assert!(t.contains("policy = [\"sample 2\", \"least conn\"]\n"));
    }
}
