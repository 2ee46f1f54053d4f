//! Shared helpers of the end-to-end tests that run the real `drover` binary as a child process.
//!
//! [`Drover`] spawns the binary with `DROVER_LOG=info`, its stdout and stderr going to temporary
//! files (so tests can poll the log), and kills it (SIGKILL, by PID, through `Child::kill`) when
//! dropped, removing its files. When a test panics, the guard prints the child's log first, so a
//! failure shows what drover said.
//!
//! Every wait is deadline polling (`drover_testkit::client::DEADLINE` unless said otherwise);
//! nothing sleeps a fixed time hoping for an outcome.

#![allow(dead_code)] // each test binary uses its own subset of these helpers

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use drover_testkit::client::{Body, DEADLINE, eventually, get_request, try_send};
use hyper::client::conn::http1::SendRequest;

/// How often the helpers poll.
const POLL: Duration = Duration::from_millis(5);

/// A path in the system temp dir unique to this process, call and `tag`.
pub fn temp_path(tag: &str) -> PathBuf {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("drover-e2e-{}-{n}-{tag}", std::process::id()))
}

/// A loopback address whose port was free a moment ago (bound on port 0, then released).
pub fn free_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr")
}

/// The repository root (for `examples/`).
/// A one-worker drover on `listen` in front of one member named `m1`, with `grace` and extra
/// keys for the listener table (e.g. `max_uri_bytes = "1KiB"`).
pub fn one_member_config(
    listen: SocketAddr,
    grace: &str,
    member: SocketAddr,
    listener_keys: &str,
) -> String {
    format!(
        r#"
[server]
threads = 1
grace = "{grace}"

[[listener]]
listen = "{listen}"
farm = "app"
{listener_keys}

[farm.app]
policy = "round-robin"

[[farm.app.members]]
name = "m1"
address = "{member}"
"#
    )
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A running (or finished) `drover` child process. Dropping it kills the process.
pub struct Drover {
    child: Child,
    pub pid: u32,
    stdout: PathBuf,
    stderr: PathBuf,
    config: Option<PathBuf>,
    status: Option<ExitStatus>,
}

impl Drover {
    /// `drover <args>`, with `DROVER_LOG=info`, stdout and stderr captured in temp files.
    pub fn spawn(args: &[&str]) -> Drover {
        Drover::spawn_with(args, None, &[])
    }

    /// Writes `config` to a temp file and runs `drover serve --config <file>`. Does not wait for
    /// the listeners: see [`Drover::wait_listening`].
    pub fn serve(config: &str) -> Drover {
        Drover::serve_env(config, &[])
    }

    /// [`Drover::serve`] with extra environment variables.
    pub fn serve_env(config: &str, env: &[(&str, &str)]) -> Drover {
        let path = temp_path("config.toml");
        std::fs::write(&path, config).expect("write config");
        let path_str = path.to_str().expect("utf-8 temp path").to_owned();
        Drover::spawn_with(&["serve", "--config", &path_str], Some(path), env)
    }

    fn spawn_with(args: &[&str], config: Option<PathBuf>, env: &[(&str, &str)]) -> Drover {
        let stdout = temp_path("stdout.log");
        let stderr = temp_path("stderr.log");
        let out = std::fs::File::create(&stdout).expect("create stdout file");
        let err = std::fs::File::create(&stderr).expect("create stderr file");
        let child = Command::new(env!("CARGO_BIN_EXE_drover"))
            .args(args)
            .env("DROVER_LOG", "info")
            .env_remove("RUST_LOG")
            .env_remove("NOTIFY_SOCKET")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("spawn drover");
        let pid = child.id();
        Drover {
            child,
            pid,
            stdout,
            stderr,
            config,
            status: None,
        }
    }

    /// The config file written by [`Drover::serve`].
    pub fn config_path(&self) -> Option<&Path> {
        self.config.as_deref()
    }

    /// What drover has written to stderr so far (its log).
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.stderr).unwrap_or_default()).into_owned()
    }

    /// What drover has written to stdout so far.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.stdout).unwrap_or_default()).into_owned()
    }

    /// Bytes of log written so far: pass it to [`Drover::wait_for_log`] to look only at what
    /// comes after.
    pub fn log_len(&self) -> usize {
        std::fs::metadata(&self.stderr).map_or(0, |m| m.len() as usize)
    }

    /// Polls the log written after byte `since` until a line contains every one of `needles`
    /// (case-insensitive); returns that line. Fails the test after `DEADLINE`.
    pub async fn wait_for_log(&self, since: usize, needles: &[&str]) -> String {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let log = self.stderr();
            let fresh = log.get(since..).unwrap_or("");
            if let Some(line) = fresh.lines().find(|line| {
                let line = line.to_lowercase();
                needles.iter().all(|n| line.contains(&n.to_lowercase()))
            }) {
                return line.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "no log line containing {needles:?} within {DEADLINE:?}; log since then:\n{fresh}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Polls until `addr` accepts TCP connections. Fails at once if drover exits, and after
    /// `DEADLINE`.
    pub async fn wait_listening(&mut self, addr: SocketAddr) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return;
            }
            if let Some(status) = self.try_status() {
                panic!(
                    "drover exited ({status}) before listening on {addr}; stderr:\n{}",
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "drover not listening on {addr} within {DEADLINE:?}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Sends `signal` (e.g. "TERM") to the process with `kill -<signal> <pid>`.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid.to_string())
            .status()
            .expect("run kill");
        assert!(
            status.success(),
            "kill -{signal} {} failed: {status}",
            self.pid
        );
    }

    /// The exit status, if the process has exited (never blocks).
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().expect("try_wait");
        }
        self.status
    }

    /// Polls until the process exits, at most `within`; `None` if it is still running.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(s) = self.try_status() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Like [`Drover::wait_exit`], for tests without a runtime.
    pub fn wait_exit_blocking(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(s) = self.try_status() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(POLL);
        }
    }

    /// A `kB` field of `/proc/<pid>/status`, e.g. `VmRSS` or `VmHWM` (peak RSS), in bytes.
    pub fn proc_status_bytes(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .expect("read /proc/<pid>/status (is drover still running?)");
        let line = status
            .lines()
            .find(|l| l.split(':').next() == Some(field))
            .unwrap_or_else(|| panic!("no {field} in /proc/{}/status", self.pid));
        let kb: u64 = line
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("cannot parse {line:?}"));
        kb * 1024
    }

    /// Current resident set size.
    pub fn vm_rss(&self) -> u64 {
        self.proc_status_bytes("VmRSS")
    }

    /// Peak resident set size since the process started.
    pub fn vm_hwm(&self) -> u64 {
        self.proc_status_bytes("VmHWM")
    }
}

impl Drop for Drover {
    fn drop(&mut self) {
        if self.try_status().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "--- drover (pid {}) stdout ---\n{}\n--- drover stderr ---\n{}\n--- end ---",
                self.pid,
                self.stdout(),
                self.stderr()
            );
        }
        let _ = std::fs::remove_file(&self.stdout);
        let _ = std::fs::remove_file(&self.stderr);
        if let Some(config) = &self.config {
            let _ = std::fs::remove_file(config);
        }
    }
}

/// Writes `request` as is on a fresh connection and reads until drover closes it, tolerating a
/// reset after the answer (a server that answers an oversized head and closes with unread input
/// makes the kernel send RST). Returns everything read, as (lossy) text.
pub async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    // The server may answer and close before reading everything: a failed write is not an error
    // here, the answer is what counts.
    let _ = stream.write_all(request).await;
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => panic!(
                "connection not closed within {DEADLINE:?}; read so far: {:?}",
                String::from_utf8_lossy(&out)
            ),
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The status code of a raw HTTP/1.1 response (`HTTP/1.1 431 ...`).
pub fn status_of(response: &str) -> Option<u16> {
    let line = response.lines().next()?;
    let mut parts = line.split_whitespace();
    parts.next().filter(|v| v.starts_with("HTTP/"))?;
    parts.next()?.parse().ok()
}

/// Sends `method path` to the admin listener with `body` and the given headers.
pub async fn call(
    admin: SocketAddr,
    method: http::Method,
    path: &str,
    body: &[u8],
    headers: &[(&str, String)],
) -> drover_testkit::client::Reply {
    use http_body_util::BodyExt;
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", admin.to_string());
    for (k, v) in headers {
        req = req.header(*k, v.as_str());
    }
    let body = http_body_util::Full::new(bytes::Bytes::copy_from_slice(body))
        .map_err(|e| match e {})
        .boxed();
    let mut conn = drover_testkit::client::connect(admin).await;
    drover_testkit::client::send(&mut conn, req.body(body).unwrap()).await
}

/// The push headers that sign `body` with `secret`, timestamped now (with a fraction, as agents
/// pushing more than once a second must).
pub fn signed(secret: &str, body: &[u8]) -> Vec<(&'static str, String)> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let ts = format!("{}.{:09}", now.as_secs(), now.subsec_nanos());
    let sig = drover_core::report::push::sign(secret.as_bytes(), &ts, body);
    vec![("x-drover-timestamp", ts), ("x-drover-signature", sig)]
}

/// Pushes a JSON load report signed with `secret` to `POST /api/v1/reports`.
pub async fn push_report(
    admin: SocketAddr,
    secret: &str,
    body: &serde_json::Value,
) -> drover_testkit::client::Reply {
    let body = serde_json::to_vec(body).unwrap();
    call(
        admin,
        http::Method::POST,
        "/api/v1/reports",
        &body,
        &signed(secret, &body),
    )
    .await
}

/// A drover (one worker) with an admin listener, in front of farm `app`: round robin over test
/// members named `names`, started here. `admin_keys` go into `[admin]` (token, open_reads, ...).
pub struct AppSetup {
    pub drover: Drover,
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    pub members: Vec<drover_testkit::TestMember>,
}

pub async fn serve_app(names: &[&str], admin_keys: &str) -> AppSetup {
    let mut members = Vec::new();
    let mut list = String::new();
    for name in names {
        let m = drover_testkit::TestMember::start(drover_testkit::MemberConfig::new(*name))
            .await
            .expect("test member");
        list.push_str(&format!(
            "{{ name = \"{name}\", address = \"{}\" }}, ",
            m.addr()
        ));
        members.push(m);
    }
    let (listen, admin) = (free_addr(), free_addr());
    let config = format!(
        "[server]\nthreads = 1\n[admin]\nlisten = \"{admin}\"\n{admin_keys}\n\
         [[listener]]\nlisten = \"{listen}\"\nfarm = \"app\"\n\
         [farm.app]\npolicy = \"round-robin\"\nmembers = [{list}]\n"
    );
    let mut drover = Drover::serve(&config);
    drover.wait_listening(admin).await;
    drover.wait_listening(listen).await;
    AppSetup {
        drover,
        listen,
        admin,
        members,
    }
}

/// A connection, or the reason none could be made (a refused connect is what must never happen).
async fn open(addr: SocketAddr) -> Result<SendRequest<Body>, String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// What a [`Load`] counted.
pub struct LoadTotals {
    pub ok: u64,
    /// Transport errors and answers other than 200.
    pub failed: u64,
    /// Connections that could not be made.
    pub refused: u64,
    /// Connections ended by a `Connection: close` answer (and made again).
    pub reconnects: u64,
    /// The first few failures, for the assertion message.
    pub errors: Vec<String>,
}

/// `clients` keep-alive clients sending GETs (at most `per_client` each) until stopped, behaving
/// as a correct HTTP/1.1 client does: a response saying `Connection: close` ends the connection,
/// and the next request goes on a new one. Counts answers, failed requests (a transport error
/// or any status but 200) and refused connections.
pub struct Load {
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    refused: Arc<AtomicU64>,
    reconnects: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Vec<String>>>,
}

impl Load {
    pub async fn start(addr: SocketAddr, clients: usize, per_client: usize) -> Load {
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let refused = Arc::new(AtomicU64::new(0));
        let reconnects = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let (ok, failed, refused, reconnects, stop) = (
                ok.clone(),
                failed.clone(),
                refused.clone(),
                reconnects.clone(),
                stop.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let mut errors = Vec::new();
                let mut sender: Option<SendRequest<Body>> = None;
                for _ in 0..per_client {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let s = match sender.as_mut() {
                        Some(s) => s,
                        None => match open(addr).await {
                            Ok(s) => sender.insert(s),
                            Err(e) => {
                                refused.fetch_add(1, Ordering::Relaxed);
                                errors.push(e);
                                continue;
                            }
                        },
                    };
                    match try_send(s, get_request(addr, "/")).await {
                        Ok(r) if r.status == 200 => {
                            ok.fetch_add(1, Ordering::Relaxed);
                            if r.headers.get("connection").is_some_and(|v| v == "close") {
                                reconnects.fetch_add(1, Ordering::Relaxed);
                                sender = None;
                            }
                        }
                        Ok(r) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            errors.push(format!("{}: {}", r.status, r.text()));
                            if r.headers.get("connection").is_some_and(|v| v == "close") {
                                sender = None;
                            }
                        }
                        Err(e) => {
                            failed.fetch_add(1, Ordering::Relaxed);
                            errors.push(e.to_string());
                            sender = None;
                        }
                    }
                }
                errors
            }));
        }
        Load {
            ok,
            failed,
            refused,
            reconnects,
            stop,
            tasks,
        }
    }

    /// Waits until `n` more requests have been answered.
    pub async fn advance(&self, n: u64) {
        let target = self.ok.load(Ordering::Relaxed) + n;
        let ok = self.ok.clone();
        eventually("the load advances", || ok.load(Ordering::Relaxed) >= target).await;
    }

    /// Stops the clients; returns what they counted.
    pub async fn finish(self) -> LoadTotals {
        self.stop.store(true, Ordering::Relaxed);
        let mut errors = Vec::new();
        for t in self.tasks {
            errors.extend(tokio::time::timeout(DEADLINE, t).await.unwrap().unwrap());
        }
        errors.truncate(5);
        LoadTotals {
            ok: self.ok.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            errors,
        }
    }
}
