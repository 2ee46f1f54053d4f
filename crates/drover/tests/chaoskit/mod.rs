//! Helpers of the chaos tests: member processes, a steady bounded load, and the admin API's view
//! of the farm.
//!
//! Member processes are this very test binary run again with `DROVER_CHAOS_MEMBER` set: the
//! `member_process` entry in `chaos.rs` then serves a [`TestMember`] until it is killed, so a test
//! can SIGKILL a real process (its sockets die with it, as with a crashed server) or SIGSTOP it (a
//! hung server: the kernel still accepts connections, nothing answers).

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use drover_testkit::X_MEMBER;
use drover_testkit::client::{connect, get, get_request, try_send};
use serde_json::Value;

pub const MEMBER_ENV: &str = "DROVER_CHAOS_MEMBER";

/// A test member in a process of its own.
pub struct MemberProcess {
    child: Child,
    pub name: String,
    pub addr: SocketAddr,
}

impl MemberProcess {
    /// Starts member `name` on `addr` (port 0: any) and waits until it listens.
    pub fn spawn(name: &str, addr: SocketAddr) -> MemberProcess {
        let mut child = Command::new(std::env::current_exe().expect("test binary path"))
            .args([
                "member_process",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(MEMBER_ENV, format!("{name} {addr}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn member process");
        let out = child.stdout.take().expect("member stdout");
        let mut lines = BufReader::new(out).lines();
        let addr = loop {
            let line = lines
                .next()
                .expect("member process printed its address")
                .expect("read member stdout");
            // libtest prints "test member_process ... " on the same line first.
            const MARK: &str = "member listening on ";
            if let Some(at) = line.find(MARK) {
                break line[at + MARK.len()..]
                    .trim()
                    .parse()
                    .expect("member address");
            }
        };
        // Keep draining its stdout so it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        MemberProcess {
            child,
            name: name.to_owned(),
            addr,
        }
    }

    /// Sends `signal` ("KILL", "STOP", "CONT") to the member process, by PID.
    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -{signal} {}", self.child.id());
    }

    /// SIGKILL, and reap the process.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for MemberProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One request of the load: when it ended (since the load started), how it ended, who answered.
#[derive(Debug, Clone)]
pub struct Sample {
    pub at: Duration,
    pub latency: Duration,
    /// HTTP status, or 0 for a transport error.
    pub status: u16,
    pub member: Option<String>,
    pub body: String,
}

/// A steady, bounded load: `clients` keep-alive connections, each sending one GET after another
/// with `pause` between them, until stopped (at most `MAX_PER_CLIENT` requests each).
pub struct Load {
    stop: Arc<AtomicBool>,
    pub started: Instant,
    tasks: Vec<tokio::task::JoinHandle<Vec<Sample>>>,
}

const MAX_PER_CLIENT: usize = 20_000;

impl Load {
    pub fn start(addr: SocketAddr, clients: usize, pause: Duration) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let tasks = (0..clients)
            .map(|_| {
                let stop = Arc::clone(&stop);
                tokio::spawn(async move {
                    let mut samples = Vec::new();
                    let mut sender = connect(addr).await;
                    while !stop.load(Ordering::Relaxed) && samples.len() < MAX_PER_CLIENT {
                        let t0 = Instant::now();
                        let sample = match try_send(&mut sender, get_request(addr, "/")).await {
                            Ok(reply) => Sample {
                                at: started.elapsed(),
                                latency: t0.elapsed(),
                                status: reply.status.as_u16(),
                                member: reply
                                    .headers
                                    .get(X_MEMBER)
                                    .and_then(|v| v.to_str().ok())
                                    .map(str::to_owned),
                                body: String::from_utf8_lossy(&reply.body).into_owned(),
                            },
                            Err(_) => {
                                sender = connect(addr).await;
                                Sample {
                                    at: started.elapsed(),
                                    latency: t0.elapsed(),
                                    status: 0,
                                    member: None,
                                    body: String::new(),
                                }
                            }
                        };
                        samples.push(sample);
                        tokio::time::sleep(pause).await;
                    }
                    samples
                })
            })
            .collect();
        Load {
            stop,
            started,
            tasks,
        }
    }

    /// Time since the load started.
    pub fn now(&self) -> Duration {
        self.started.elapsed()
    }

    /// Stops the clients and returns every sample, in time order.
    pub async fn stop(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for t in self.tasks {
            all.extend(t.await.expect("load client"));
        }
        all.sort_by_key(|s| s.at);
        all
    }
}

/// Samples that were not a 200.
pub fn failed(samples: &[Sample]) -> Vec<&Sample> {
    samples.iter().filter(|s| s.status != 200).collect()
}

/// `member`'s share of the samples that ended in `[from, to)`.
pub fn share(samples: &[Sample], member: &str, from: Duration, to: Duration) -> (f64, usize) {
    let window: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at >= from && s.at < to)
        .collect();
    let mine = window
        .iter()
        .filter(|s| s.member.as_deref() == Some(member))
        .count();
    (mine as f64 / window.len().max(1) as f64, window.len())
}

/// The admin API's view of farm `farm`.
pub async fn farm_view(admin: SocketAddr, farm: &str) -> Value {
    let reply = get(admin, "/api/v1/farms").await;
    let all: Value = serde_json::from_slice(&reply.body).expect("farms JSON");
    all["farms"]
        .as_array()
        .expect("farms array")
        .iter()
        .find(|f| f["name"] == farm)
        .cloned()
        .expect("the farm")
}

/// Member `name` in a farm view.
pub fn member<'a>(farm: &'a Value, name: &str) -> &'a Value {
    farm["members"]
        .as_array()
        .expect("members array")
        .iter()
        .find(|m| m["name"] == name)
        .expect("the member")
}

/// Polls the admin API until `cond` holds on member `name` (bounded by `within`); returns the
/// member's view then, and when (on `clock`) the condition was first seen.
pub async fn wait_member(
    admin: SocketAddr,
    farm: &str,
    name: &str,
    within: Duration,
    what: &str,
    cond: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let view = farm_view(admin, farm).await;
        let m = member(&view, name).clone();
        if cond(&m) {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {name}: {what}; last view: {m}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// How long ago member `m`'s last flip happened.
pub fn flip_age(m: &Value) -> Duration {
    Duration::from_secs_f64(
        m["last_transition"]["age_s"]
            .as_f64()
            .expect("a last transition"),
    )
}

/// One row of the reliability table, printed so `--nocapture` runs can be pasted into
/// docs/reliability.md.
pub fn report(scenario: &str, detect: &str, errors: &str, attempts: f64, note: &str) {
    println!("| {scenario} | {detect} | {errors} | {attempts:.3} | {note} |");
}

/// Attempts per request from two farm views.
pub fn attempts_per_request(before: &Value, after: &Value) -> (f64, u64, u64) {
    let d = |k: &str| after[k].as_u64().unwrap_or(0) - before[k].as_u64().unwrap_or(0);
    let (requests, attempts) = (d("requests"), d("attempts"));
    (attempts as f64 / requests.max(1) as f64, requests, attempts)
}
