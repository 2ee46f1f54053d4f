//! The `drover agent` command line ([`Args`]) and its checked form ([`Config`]).
//!
//! Every problem of the command line is found here, before anything runs: a bad metric name, a
//! custom metric that shadows a built-in one, a push without a secret, nothing to do. The secret
//! comes from `--secret-file` (content trimmed) or the `DROVER_AGENT_SECRET` environment variable,
//! never from the command line (it would show in `ps`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use drover_core::report::{MAX_METRICS, Metrics};

use crate::AgentError;
use crate::collect::BUILTIN;
use crate::push::Target;

/// Environment variable read for the push secret when `--secret-file` is not given.
pub const SECRET_ENV: &str = "DROVER_AGENT_SECRET";
/// Shortest push secret, in bytes: what drover accepts for `[reports] secret`.
pub const MIN_SECRET: usize = 16;

/// `drover agent`: collect this member's load, push it to drover nodes, serve it for pulls.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "drover agent")]
pub struct Args {
    /// This member's name in drover's config.
    #[arg(long)]
    pub member: String,
    /// Collect (and push) every DURATION, e.g. "500ms", "2s".
    #[arg(long, default_value = "2s", value_parser = duration)]
    pub interval: Duration,
    /// A custom metric: NAME=cmd:COMMAND (run by `sh -c`, stdout is one number) or NAME=file:PATH
    /// (the file holds one number). Repeatable.
    #[arg(long = "metric", value_name = "NAME=cmd:COMMAND|NAME=file:PATH", value_parser = MetricSpec::parse)]
    pub metrics: Vec<MetricSpec>,
    /// An executable run every interval: exit 0 means up; anything else, or no exit within
    /// --timeout, reports `down` with the script's first output line as the reason.
    #[arg(long)]
    pub health_script: Option<PathBuf>,
    /// Time allowed to each custom metric command or file and to the health script.
    #[arg(long, default_value = "1s", value_parser = duration)]
    pub timeout: Duration,
    /// A drover node to push to, e.g. http://10.0.0.1:9090 (its admin listener). Repeatable.
    #[arg(long = "push", value_name = "URL")]
    pub push: Vec<String>,
    /// Time allowed to one push (connect, send, answer).
    #[arg(long, default_value = "2s", value_parser = duration)]
    pub push_timeout: Duration,
    /// File holding the shared push secret (trimmed); else $DROVER_AGENT_SECRET.
    #[arg(long)]
    pub secret_file: Option<PathBuf>,
    /// Serve the state as an HAProxy agent-check port on ADDR, e.g. 0.0.0.0:9777.
    #[arg(long, value_name = "ADDR")]
    pub agent_check: Option<SocketAddr>,
    /// Serve the JSON report over HTTP on ADDR (GET / or /report).
    #[arg(long, value_name = "ADDR")]
    pub http: Option<SocketAddr>,
    /// Collect once, print the JSON report to stdout and exit (no push, no ports).
    #[arg(long)]
    pub once: bool,
}

fn duration(text: &str) -> Result<Duration, String> {
    drover_config::units::parse_duration(text).map_err(|e| e.to_string())
}

/// Where a custom metric's number comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricSource {
    /// A command line run by `sh -c`; its stdout is the number.
    Command(String),
    /// A file whose content is the number.
    File(PathBuf),
}

/// One `--metric NAME=cmd:COMMAND` or `--metric NAME=file:PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricSpec {
    pub name: String,
    pub source: MetricSource,
}

impl MetricSpec {
    /// Parses `NAME=cmd:COMMAND` or `NAME=file:PATH`; the name must be a valid metric name.
    pub fn parse(text: &str) -> Result<MetricSpec, String> {
        const FORMS: &str = "expected NAME=cmd:COMMAND or NAME=file:PATH";
        let Some((name, source)) = text.split_once('=') else {
            return Err(format!("{text:?}: {FORMS}"));
        };
        let source = if let Some(cmd) = source.strip_prefix("cmd:") {
            if cmd.trim().is_empty() {
                return Err(format!("{text:?}: empty command; {FORMS}"));
            }
            MetricSource::Command(cmd.to_owned())
        } else if let Some(path) = source.strip_prefix("file:") {
            if path.is_empty() {
                return Err(format!("{text:?}: empty path; {FORMS}"));
            }
            MetricSource::File(PathBuf::from(path))
        } else {
            return Err(format!("{text:?}: unknown source; {FORMS}"));
        };
        // The same check every report goes through, on a value that is in range for any name, so
        // only the name can fail here.
        Metrics::default()
            .insert(name, 0.0)
            .map_err(|e| format!("{text:?}: {e}"))?;
        Ok(MetricSpec {
            name: name.to_owned(),
            source,
        })
    }
}

/// The checked command line: what [`crate::run`] and [`crate::Agent::start`] run.
#[derive(Debug, Clone)]
pub struct Config {
    pub member: String,
    pub interval: Duration,
    pub metrics: Vec<MetricSpec>,
    pub health_script: Option<PathBuf>,
    pub timeout: Duration,
    pub push: Vec<Target>,
    pub push_timeout: Duration,
    /// The shared secret; empty when there is nothing to push.
    pub secret: Vec<u8>,
    pub agent_check: Option<SocketAddr>,
    pub http: Option<SocketAddr>,
    pub once: bool,
}

impl Config {
    /// A config for `member` with the defaults of the command line and nothing to serve.
    pub fn new(member: impl Into<String>) -> Config {
        Config {
            member: member.into(),
            interval: Duration::from_secs(2),
            metrics: Vec::new(),
            health_script: None,
            timeout: Duration::from_secs(1),
            push: Vec::new(),
            push_timeout: Duration::from_secs(2),
            secret: Vec::new(),
            agent_check: None,
            http: None,
            once: false,
        }
    }

    /// Checks `args` and reads the secret; every problem found is reported at once.
    pub fn from_args(args: Args) -> Result<Config, AgentError> {
        let mut problems = Vec::new();
        let mut push = Vec::new();
        for url in &args.push {
            match Target::parse(url) {
                Ok(t) => push.push(t),
                Err(e) => problems.push(e),
            }
        }
        let secret = if args.push.is_empty() || args.once {
            Vec::new()
        } else {
            match read_secret(args.secret_file.as_deref()) {
                Ok(s) => s,
                Err(e) => {
                    problems.push(e);
                    Vec::new()
                }
            }
        };
        let config = Config {
            member: args.member,
            interval: args.interval,
            metrics: args.metrics,
            health_script: args.health_script,
            timeout: args.timeout,
            push,
            push_timeout: args.push_timeout,
            secret,
            agent_check: args.agent_check,
            http: args.http,
            once: args.once,
        };
        problems.extend(config.problems());
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(AgentError::Usage(problems.join("\n")))
        }
    }

    /// What is wrong with this config, one line each.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(p) = member_problem(&self.member) {
            problems.push(p);
        }
        if self.interval < Duration::from_millis(10) {
            problems.push(format!(
                "--interval {:?} is too short (at least 10ms)",
                self.interval
            ));
        }
        if self.timeout.is_zero() || self.push_timeout.is_zero() {
            problems.push("--timeout and --push-timeout must be above 0".into());
        }
        for (i, m) in self.metrics.iter().enumerate() {
            if BUILTIN.contains(&m.name.as_str()) {
                problems.push(format!(
                    "--metric {}: {:?} is a built-in metric (built-ins: {})",
                    m.name,
                    m.name,
                    BUILTIN.join(", ")
                ));
            } else if self.metrics[..i].iter().any(|o| o.name == m.name) {
                problems.push(format!("--metric {}: given twice", m.name));
            }
        }
        let most = MAX_METRICS - BUILTIN.len();
        if self.metrics.len() > most {
            problems.push(format!(
                "{} custom metrics; a report holds at most {MAX_METRICS} metrics, {} of them \
                 built in, so at most {most} custom ones",
                self.metrics.len(),
                BUILTIN.len()
            ));
        }
        if !self.once {
            if !self.push.is_empty() && self.secret.is_empty() {
                problems.push(format!(
                    "pushes are signed: give --secret-file PATH or set {SECRET_ENV}"
                ));
            }
            if self.push.is_empty() && self.agent_check.is_none() && self.http.is_none() {
                problems.push(
                    "nothing to do: give --push URL, --agent-check ADDR, --http ADDR or --once"
                        .into(),
                );
            }
        }
        problems
    }
}

/// The secret from `path` (trimmed) or from [`SECRET_ENV`].
fn read_secret(path: Option<&std::path::Path>) -> Result<Vec<u8>, String> {
    let text = match path {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("--secret-file {}: {e}", path.display()))?,
        None => std::env::var(SECRET_ENV).map_err(|_| {
            format!("pushes are signed: give --secret-file PATH or set {SECRET_ENV}")
        })?,
    };
    let secret = text.trim();
    // drover refuses a `[reports] secret` shorter than this; fail here rather than on every push.
    if secret.len() < MIN_SECRET {
        return Err(format!(
            "the push secret is {} bytes; drover requires at least {MIN_SECRET} (e.g. `openssl rand -hex 32`)",
            secret.len()
        ));
    }
    Ok(secret.as_bytes().to_vec())
}

/// The rule drover applies to member names in its config and in pushes (not empty, at most 256
/// bytes, no whitespace, '/' or control characters), checked here so a typo fails at start, not
/// as a 400 on every push.
fn member_problem(name: &str) -> Option<String> {
    if name.is_empty() || name.len() > drover_core::report::MAX_MEMBER_LEN {
        return Some(format!(
            "--member {name:?}: expected 1 to {} bytes",
            drover_core::report::MAX_MEMBER_LEN
        ));
    }
    if name
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '/')
    {
        return Some(format!(
            "--member {name:?}: no spaces, '/' or control characters"
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn parse(args: &[&str]) -> Result<Config, String> {
        let mut argv = vec!["drover-agent"];
        argv.extend_from_slice(args);
        let args = Args::try_parse_from(argv).map_err(|e| e.to_string())?;
        Config::from_args(args).map_err(|e| e.to_string())
    }

    #[test]
    fn metric_specs() {
        assert_eq!(
            MetricSpec::parse("db.conns=cmd:echo 7"),
            Ok(MetricSpec {
                name: "db.conns".into(),
                source: MetricSource::Command("echo 7".into())
            })
        );
        assert_eq!(
            MetricSpec::parse("q=file:/run/q").unwrap().source,
            MetricSource::File("/run/q".into())
        );
        for bad in [
            "x",
            "x=echo 7",
            "X=cmd:echo",
            "a-b=file:/x",
            "x=cmd:  ",
            "x=file:",
        ] {
            assert!(MetricSpec::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn defaults_and_problems() {
        let c = parse(&["--member", "m1", "--once"]).unwrap();
        assert_eq!(c.interval, Duration::from_secs(2));
        assert_eq!(c.timeout, Duration::from_secs(1));
        let c = parse(&[
            "--member",
            "m1",
            "--interval",
            "500ms",
            "--http",
            "127.0.0.1:0",
        ])
        .unwrap();
        assert_eq!(c.interval, Duration::from_millis(500));
        let e = parse(&["--member", "m1"]).unwrap_err();
        assert!(e.contains("nothing to do"), "{e}");
        let e = parse(&["--member", "a b", "--once", "--metric", "cpu=cmd:echo 1"]).unwrap_err();
        assert!(e.contains("no spaces") && e.contains("built-in"), "{e}");
        let e = parse(&[
            "--member", "m1", "--metric", "x=cmd:a", "--metric", "x=cmd:b", "--once",
        ])
        .unwrap_err();
        assert!(e.contains("given twice"), "{e}");
        let e = parse(&[
            "--member",
            "m1",
            "--push",
            "https://n1:9090",
            "--secret-file",
            "/nonexistent",
        ])
        .unwrap_err();
        assert!(e.contains("https") && e.contains("/nonexistent"), "{e}");
        assert!(parse(&["--member", "m1", "--interval", "2 s", "--once"]).is_err());
        let short = std::env::temp_dir().join(format!("drover-agent-short-{}", std::process::id()));
        std::fs::write(&short, "tooshort\n").unwrap();
        let e = parse(&[
            "--member",
            "m1",
            "--push",
            "http://n1:9090",
            "--secret-file",
            short.to_str().unwrap(),
        ])
        .unwrap_err();
        assert!(e.contains("at least 16"), "{e}");
        let long = short.with_extension("long");
        std::fs::write(&long, " 0123456789abcdef0123\n").unwrap();
        let c = parse(&[
            "--member",
            "m1",
            "--push",
            "http://n1:9090",
            "--secret-file",
            long.to_str().unwrap(),
        ])
        .unwrap();
        assert_eq!(c.secret, b"0123456789abcdef0123");
        let _ = (std::fs::remove_file(short), std::fs::remove_file(long));
    }
}
