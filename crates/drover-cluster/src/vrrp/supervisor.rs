//! keepalived as drover's child: started with the rendered config, its log lines forwarded to
//! drover's log, restarted with backoff when it dies, stopped with SIGTERM (then SIGKILL after
//! 5 s) when drover stops.
//!
//! It dies with drover: the child sets `PR_SET_PDEATHSIG` to SIGTERM before exec, so a drover
//! killed with SIGKILL still takes its keepalived down, and keepalived, stopping, gives up its
//! VIPs with a priority-0 advert (its peers take over at once). The parent-death signal follows
//! the *thread* that forked, so keepalived must be spawned from a thread that lives as long as
//! drover: the binary runs this on its control runtime, on the main thread.
//!
//! Children are reaped by tokio (`Child::wait`), not by PID 1, which in a container may never
//! reap.

use std::io;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

use super::{Vips, stopped};

const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A keepalived that ran this long before dying is restarted at the first backoff again.
const STABLE: Duration = Duration::from_secs(30);
/// How long a stopping keepalived gets before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Runs keepalived until `stop` turns true.
pub(super) async fn run(vips: Arc<Vips>, mut stop: watch::Receiver<bool>) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        if *stop.borrow_and_update() {
            return;
        }
        let started = Instant::now();
        match spawn(&vips) {
            Ok(mut child) => {
                let pid = child.id();
                vips.keepalived_started(pid);
                tracing::info!(pid, conf = %vips.files.conf.display(), "keepalived started");
                tokio::select! {
                    status = child.wait() => {
                        let why = match status {
                            Ok(s) => format!("exited: {s}"),
                            Err(e) => format!("cannot wait for it: {e}"),
                        };
                        tracing::warn!(pid, %why, "keepalived died; restarting it");
                        vips.keepalived_ended(why);
                    }
                    () = stopped(&mut stop) => {
                        terminate(&mut child).await;
                        vips.keepalived_ended("stopped by drover".to_owned());
                        return;
                    }
                }
            }
            Err(e) => {
                let why = format!("cannot start {}: {e}", vips.config.keepalived.display());
                tracing::error!(%why, "keepalived did not start; trying again");
                vips.keepalived_ended(why);
            }
        }
        if started.elapsed() >= STABLE {
            backoff = FIRST_BACKOFF;
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = stopped(&mut stop) => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

fn spawn(vips: &Vips) -> io::Result<Child> {
    vips.write_conf()?;
    let f = &vips.files;
    let mut cmd = Command::new(&vips.config.keepalived);
    cmd.arg("--dont-fork")
        .arg("--log-console")
        .arg("--log-detail")
        .arg("--no-syslog")
        .arg("--vrrp")
        .arg("--use-file")
        .arg(&f.conf)
        .arg("--pid")
        .arg(&f.pid)
        .arg("--vrrp_pid")
        .arg(&f.vrrp_pid)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let parent = std::process::id();
    // SAFETY: between fork and exec only async-signal-safe calls are allowed; prctl and getppid
    // are system calls that allocate nothing and take no lock.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(io::Error::last_os_error());
            }
            // drover died between fork and prctl: the signal will never come; do not start.
            if libc::getppid() as u32 != parent {
                return Err(io::Error::other("drover exited before keepalived started"));
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    if let Some(out) = child.stdout.take() {
        tokio::spawn(forward(out));
    }
    if let Some(err) = child.stderr.take() {
        tokio::spawn(forward(err));
    }
    Ok(child)
}

/// keepalived's console log, one drover log line per line.
async fn forward(pipe: impl tokio::io::AsyncRead + Unpin) {
    let mut lines = BufReader::new(pipe).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        tracing::info!(target: "keepalived", "{}", strip_date(line.trim_end()));
    }
}

/// keepalived's console lines start with a ctime date (`Sat Dec  5 05:22:11 2026: `); drover's
/// log has its own timestamp.
fn strip_date(line: &str) -> &str {
    match line.get(24..26) {
        Some(": ") if line.as_bytes()[3] == b' ' && line.as_bytes()[7] == b' ' => &line[26..],
        _ => line,
    }
}

/// SIGTERM (keepalived gives up its VIPs with a priority-0 advert), then SIGKILL after
/// [`STOP_GRACE`].
async fn terminate(child: &mut Child) {
    if let Some(pid) = child.id() {
        // SAFETY: kill(2) on our own child's pid, which is not reaped yet (we hold the Child
        // and have not waited on it), so the pid cannot have been reused.
        unsafe {
            libc::kill(pid as libc::pid_t, libc::SIGTERM);
        }
        if let Ok(Ok(status)) = tokio::time::timeout(STOP_GRACE, child.wait()).await {
            tracing::info!(pid, %status, "keepalived stopped");
            return;
        }
        tracing::warn!(pid, "keepalived did not stop within 5s; killing it");
    }
    let _ = child.kill().await;
}

/// Makes a FIFO at `path` (an existing one is kept).
pub(super) fn mkfifo(path: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::FileTypeExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.file_type().is_fifo() {
            return Ok(());
        }
        std::fs::remove_file(path)?;
    }
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::other("a NUL byte in the path"))?;
    // SAFETY: `c` is a valid NUL-terminated path that outlives the call.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn strip_date() {
        assert_eq!(
            super::strip_date("Sat Dec  5 05:22:11 2026: (drover_181) Entering MASTER STATE"),
            "(drover_181) Entering MASTER STATE"
        );
        assert_eq!(super::strip_date("short"), "short");
        assert_eq!(
            super::strip_date("a line of 24 or more characters: x"),
            "a line of 24 or more characters: x"
        );
    }
}
