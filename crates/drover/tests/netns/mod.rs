//! A network lab for the cluster tests: network namespaces named `drover-<pid>-<name>` (this
//! test process's pid, so parallel runs never collide), a bridge in its own namespace
//! (`drover-<pid>-br`), one veth pair per node namespace, addresses in 10.77.0.0/24 that exist
//! (and fd77::/64) only inside those namespaces. Nothing is added to the root namespace.
//!
//! [`Lab`] is a guard: dropping it (a panic included) kills every process it started (by PID,
//! `Child::kill`), deletes its namespaces and its files. [`Lab::new`] answers `None`, after
//! printing why, where namespaces cannot be made (not root, no `ip`, no keepalived); under CI
//! (`CI` set) it panics instead, so CI never skips silently.
//!
//! Threads enter a namespace with `setns(2)` ([`Lab::enter`]): the network namespace is per
//! thread, so a client thread of this test process can sit in the client namespace and the
//! admin calls reach each node's 127.0.0.1.

#![allow(dead_code)] // each test binary uses its own subset of these helpers

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The lab's subnet: node `i` (1-based) is 10.77.0.i, the client 10.77.0.200.
pub const SUBNET: &str = "10.77.0";
/// The lab's IPv6 subnet (/64): node `i` is fd77::i, the client fd77::200.
pub const SUBNET6: &str = "fd77";

pub struct Lab {
    /// `drover-<pid>`.
    pub prefix: String,
    /// Namespaces made, to delete.
    namespaces: Vec<String>,
    /// Processes started: (label, child, log file).
    children: Vec<(String, Option<Child>, PathBuf)>,
    pub dir: PathBuf,
}

fn skip_or_panic(why: &str) -> Option<Lab> {
    if std::env::var_os("CI").is_some() {
        panic!("the cluster lab cannot run under CI: {why}");
    }
    eprintln!("SKIPPED: {why} (the cluster tests need root, iproute2 and keepalived)");
    None
}

/// Runs `ip args...`, panicking with its stderr on failure.
pub fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Lab {
    /// A bridge and `nodes` node namespaces plus a client namespace, wired and addressed.
    pub fn new(nodes: usize) -> Option<Lab> {
        if Command::new("ip").arg("-V").output().is_err() {
            return skip_or_panic("no `ip` command (apt-get install iproute2)");
        }
        if Command::new("keepalived")
            .arg("--version")
            .output()
            .is_err()
        {
            return skip_or_panic("no keepalived (apt-get install keepalived)");
        }
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let prefix = format!("drover-{}-{n}", std::process::id());
        let dir = std::env::temp_dir().join(&prefix);
        let mut lab = Lab {
            prefix,
            namespaces: Vec::new(),
            children: Vec::new(),
            dir,
        };
        let br = lab.ns("br");
        let made = Command::new("ip").args(["netns", "add", &br]).output();
        match made {
            Ok(o) if o.status.success() => lab.namespaces.push(br.clone()),
            Ok(o) => {
                let why = format!(
                    "cannot create a network namespace: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                return skip_or_panic(&why);
            }
            Err(e) => return skip_or_panic(&format!("cannot run ip: {e}")),
        }
        std::fs::create_dir_all(&lab.dir).expect("lab dir");
        ip(&["-n", &br, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &br, "link", "set", "br0", "up"]);
        let names: Vec<String> = (1..=nodes)
            .map(|i| format!("n{i}"))
            .chain(["c".to_owned()])
            .collect();
        for (i, name) in names.iter().enumerate() {
            let ns = lab.ns(name);
            ip(&["netns", "add", &ns]);
            lab.namespaces.push(ns.clone());
            let host = if name == "c" { 200 } else { i + 1 };
            // The bridge-side end is named after the node; the node's end is its eth0.
            ip(&[
                "-n", &br, "link", "add", name, "type", "veth", "peer", "name", "eth0", "netns",
                &ns,
            ]);
            ip(&["-n", &br, "link", "set", name, "master", "br0"]);
            ip(&["-n", &br, "link", "set", name, "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{SUBNET}.{host}/24"),
                "dev",
                "eth0",
            ]);
            let v6 = format!("{SUBNET6}::{host}/64");
            ip(&["-n", &ns, "addr", "add", &v6, "dev", "eth0", "nodad"]);
            // A listener may bind an IPv6 VIP this node does not hold (yet).
            let out = Command::new("ip")
                .args(["netns", "exec", &ns, "sh", "-c"])
                .arg("echo 1 > /proc/sys/net/ipv6/ip_nonlocal_bind")
                .output()
                .expect("run ip netns exec");
            assert!(out.status.success(), "ip_nonlocal_bind in {ns}: {out:?}");
        }
        Some(lab)
    }

    /// The namespace of lab name `name` (`"n1"`, `"c"`, `"br"`).
    pub fn ns(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    /// Starts `program args` inside namespace `name`, its output to a log file; answers its
    /// index for [`Lab::kill`] / [`Lab::log`].
    pub fn spawn(
        &mut self,
        name: &str,
        label: &str,
        program: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> usize {
        let log = self
            .dir
            .join(format!("{label}.{}.log", self.children.len()));
        let out = File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns(name)])
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        for (k, v) in env {
            cmd.env(k, v);
        }
        // `ip netns exec` execs the program: the child's PID is the program's.
        let child = cmd.spawn().expect("spawn in the namespace");
        self.children.push((label.to_owned(), Some(child), log));
        self.children.len() - 1
    }

    /// SIGKILL (by PID, through `Child::kill`), then reaps it.
    pub fn kill(&mut self, index: usize) {
        if let Some(mut c) = self.children[index].1.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM (by PID) and waits up to `within` for it to exit; SIGKILL after.
    pub fn terminate(&mut self, index: usize, within: std::time::Duration) {
        if let Some(mut c) = self.children[index].1.take() {
            // SAFETY: kill(2) on our own child, not reaped yet (we hold it), so its PID is live.
            unsafe {
                libc::kill(c.id() as libc::pid_t, libc::SIGTERM);
            }
            let deadline = std::time::Instant::now() + within;
            while std::time::Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log(&self, index: usize) -> String {
        std::fs::read_to_string(&self.children[index].2).unwrap_or_default()
    }

    /// Runs `f` on a thread inside namespace `name` (setns), and answers what it returns.
    pub fn enter<T: Send + 'static>(
        &self,
        name: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> T {
        let path = format!("/run/netns/{}", self.ns(name));
        std::thread::spawn(move || {
            enter_thread(&path);
            f()
        })
        .join()
        .expect("thread in the namespace")
    }

    /// Like [`Lab::enter`], without waiting.
    pub fn enter_spawn<T: Send + 'static>(
        &self,
        name: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let path = format!("/run/netns/{}", self.ns(name));
        std::thread::spawn(move || {
            enter_thread(&path);
            f()
        })
    }
}

/// Moves the calling thread into the network namespace at `path`.
fn enter_thread(path: &str) {
    let f = File::open(path).unwrap_or_else(|e| panic!("open {path}: {e}"));
    // SAFETY: a valid open namespace fd; setns changes only this thread's network namespace.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(r, 0, "setns {path}: {}", std::io::Error::last_os_error());
}

impl Drop for Lab {
    fn drop(&mut self) {
        let panicking = std::thread::panicking();
        for (label, child, log) in &mut self.children {
            if let Some(c) = child {
                let _ = c.kill();
                let _ = c.wait();
            }
            if panicking {
                let text = std::fs::read_to_string(&*log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                eprintln!("--- {label} (last lines) ---");
                for l in tail.iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
        // Deleting the namespaces takes the veths and the bridge with them.
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
