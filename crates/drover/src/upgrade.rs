//! Binary upgrade: a new drover process takes over the listening sockets of the old one.
//!
//! Where it sits: `drover serve` calls it. The old process listens on a unix socket (`[server]
//! upgrade_socket`, or a private one made for a SIGUSR2, see [`Listening`]); a new process
//! started with `--upgrade-from PATH` connects ([`receive`]) and is given copies of every
//! listening socket (`SCM_RIGHTS`), the admin listener's included, each named by its address
//! so the new process serves it on the listener of its own config with that address. Once the
//! new process serves, it says so ([`Given::taken_over`]); the old one then stops accepting
//! ([`drover_proxy::Proxy::hand_over`]), removes its unix socket, answers "released" and drains.
//! Nothing is closed in between: the kernel's queue of each listening socket is shared by both
//! processes, so no connection is refused.
//!
//! The wire: a `SOCK_SEQPACKET` unix socket (message boundaries kept, so each JSON message and
//! the descriptors sent with it arrive together):
//!
//! 1. old -> new: `{"pid":..,"sockets":[{"kind":"listener"|"admin","addr":".."}, ..],"more":b}`
//!    with one descriptor per entry (at most [`FDS_PER_MESSAGE`] a message; `more` = another
//!    message follows);
//! 2. new -> old: `{"taken_over":true,"pid":..}` once it serves;
//! 3. old -> new: `{"released":true}` once it no longer accepts and its unix socket is gone.
//!
//! If the new process fails before step 2 (bad config, crash), the connection closes (or the
//! old one gives up after [`TAKE_OVER_TIMEOUT`]) and the old process keeps serving. Only the
//! old process's own user or root may connect (the socket is mode 0600, and the peer's
//! credentials are checked).
//!
//! Concurrency: the old side runs one blocking thread, `drover-upgrade`, handling one upgrade
//! attempt at a time; it tells the main loop through a [`tokio::sync::Notify`].
//!
//! Config keys read: `server.upgrade_socket`.

use std::io::{IoSlice, IoSliceMut};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use nix::sys::socket::{
    self, AddressFamily, Backlog, ControlMessage, ControlMessageOwned, MsgFlags, SockFlag,
    SockType, UnixAddr, sockopt,
};
use nix::sys::time::{TimeVal, TimeValLike};
use serde::{Deserialize, Serialize};

/// Descriptors per message: the kernel takes at most 253 (`SCM_MAX_FD`) in one.
const FDS_PER_MESSAGE: usize = 200;
/// How long the old process waits for the new one to say it serves.
const TAKE_OVER_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the new process waits for the old one to let go.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest message: 200 entries of ~60 bytes.
const MAX_MESSAGE: usize = 64 * 1024;

#[derive(Serialize, Deserialize)]
struct Offer {
    pid: u32,
    sockets: Vec<Entry>,
    more: bool,
}

#[derive(Serialize, Deserialize, Clone)]
struct Entry {
    kind: Kind,
    addr: SocketAddr,
}

#[derive(Serialize, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Listener,
    Admin,
}

#[derive(Serialize, Deserialize)]
struct TakenOver {
    taken_over: bool,
    pid: u32,
}

#[derive(Serialize, Deserialize)]
struct Released {
    released: bool,
}

// ---------------------------------------------------------------------------------------------
// The new process.

/// The sockets an old process gave, and the connection to tell it we serve.
pub(crate) struct Given {
    pub(crate) listeners: Vec<std::net::TcpListener>,
    pub(crate) admin: Option<std::net::TcpListener>,
    old_pid: u32,
    conn: OwnedFd,
}

/// Connects to the old process at `path` and receives its listening sockets.
pub(crate) fn receive(path: &Path) -> anyhow::Result<Given> {
    let conn = socket::socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .context("cannot create a unix socket")?;
    let addr =
        UnixAddr::new(path).with_context(|| format!("bad socket path {}", path.display()))?;
    socket::connect(conn.as_raw_fd(), &addr).with_context(|| {
        format!(
            "cannot reach the old drover at {} (is it running, with this upgrade_socket?)",
            path.display()
        )
    })?;
    set_timeout(&conn, RELEASE_TIMEOUT)?;
    let mut given = Given {
        listeners: Vec::new(),
        admin: None,
        old_pid: 0,
        conn,
    };
    loop {
        let (bytes, fds) = recv(&given.conn)?;
        // Own the descriptors before anything can fail, so none leaks.
        let fds: Vec<OwnedFd> = fds
            .into_iter()
            // SAFETY: the kernel just installed these descriptors in this process for us
            // (SCM_RIGHTS); nothing else owns them.
            .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
            .collect();
        if bytes.is_empty() {
            bail!("the old drover closed the connection before giving its sockets");
        }
        let offer: Offer = serde_json::from_slice(&bytes)
            .context("the old drover sent a message not understood")?;
        if offer.sockets.len() != fds.len() {
            bail!(
                "the old drover named {} sockets but sent {}",
                offer.sockets.len(),
                fds.len()
            );
        }
        given.old_pid = offer.pid;
        for (entry, fd) in offer.sockets.into_iter().zip(fds) {
            let listener = std::net::TcpListener::from(fd);
            match entry.kind {
                Kind::Listener => given.listeners.push(listener),
                Kind::Admin => given.admin = Some(listener),
            }
        }
        if !offer.more {
            break;
        }
    }
    tracing::info!(
        old_pid = given.old_pid,
        sockets = given.listeners.len(),
        admin = given.admin.is_some(),
        "received the listening sockets of the old drover"
    );
    Ok(given)
}

/// Tells the old process that this one serves, and waits for it to let go.
pub(crate) struct Handshake {
    old_pid: u32,
    conn: OwnedFd,
}

impl Given {
    /// Splits off the part that finishes the handshake, once the sockets are in use.
    pub(crate) fn split(
        self,
    ) -> (
        Vec<std::net::TcpListener>,
        Option<std::net::TcpListener>,
        Handshake,
    ) {
        (
            self.listeners,
            self.admin,
            Handshake {
                old_pid: self.old_pid,
                conn: self.conn,
            },
        )
    }
}

impl Handshake {
    /// Says "taken over" and waits for "released" (the old process no longer accepts and its
    /// unix socket is gone, so ours may take its path).
    pub(crate) fn taken_over(self) -> anyhow::Result<()> {
        let msg = serde_json::to_vec(&TakenOver {
            taken_over: true,
            pid: std::process::id(),
        })?;
        send(&self.conn, &msg, &[]).context("cannot tell the old drover we serve")?;
        let (bytes, _) = recv(&self.conn)?;
        match serde_json::from_slice::<Released>(&bytes) {
            Ok(Released { released: true }) => {
                tracing::info!(
                    old_pid = self.old_pid,
                    "the old drover let go; it drains and exits"
                );
                Ok(())
            }
            _ => bail!(
                "the old drover (pid {}) did not confirm it let go",
                self.old_pid
            ),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The old process.

/// The old side: a unix socket a new process connects to, served by the `drover-upgrade`
/// thread until one new process has taken over.
pub(crate) struct Listening {
    path: PathBuf,
    /// Set by the thread once a new process has taken over; the main loop waits on it.
    pub(crate) handed_over: Arc<tokio::sync::Notify>,
    done: Arc<std::sync::atomic::AtomicBool>,
}

/// What the old process gives away.
pub(crate) trait Sockets: Send + Sync + 'static {
    /// Copies of the data plane's listening sockets.
    fn listeners(&self) -> std::io::Result<Vec<(SocketAddr, OwnedFd)>>;
    /// A copy of the admin listener's socket, if there is one.
    fn admin(&self) -> std::io::Result<Option<(SocketAddr, OwnedFd)>>;
    /// Stop accepting: the new process serves now.
    fn hand_over(&self);
}

impl Listening {
    /// Starts the thread that serves the unix socket `fd`, bound at `path` by [`bind_unix`].
    pub(crate) fn start(
        path: &Path,
        fd: OwnedFd,
        sockets: Arc<dyn Sockets>,
    ) -> anyhow::Result<Listening> {
        let handed_over = Arc::new(tokio::sync::Notify::new());
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (notify, finished, owned_path) = (
            Arc::clone(&handed_over),
            Arc::clone(&done),
            path.to_path_buf(),
        );
        std::thread::Builder::new()
            .name("drover-upgrade".into())
            .spawn(move || serve(fd, &owned_path, &*sockets, &notify, &finished))
            .context("cannot start the upgrade thread")?;
        tracing::info!(path = %path.display(), "upgrade socket listening");
        Ok(Listening {
            path: path.to_path_buf(),
            handed_over,
            done,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the socket file at exit, unless a hand-over already did (the new process may
    /// have bound the same path since).
    pub(crate) fn remove(&self) {
        if !self.done.load(std::sync::atomic::Ordering::Acquire) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Binds a listening `SOCK_SEQPACKET` unix socket at `path`, mode 0600. A socket file nobody
/// answers on is stale (a drover that was killed) and is replaced.
pub(crate) fn bind_unix(path: &Path) -> anyhow::Result<OwnedFd> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the directory {}", dir.display()))?;
    }
    let addr =
        UnixAddr::new(path).with_context(|| format!("bad socket path {}", path.display()))?;
    if path.exists() {
        let probe = socket::socket(
            AddressFamily::Unix,
            SockType::SeqPacket,
            SockFlag::SOCK_CLOEXEC,
            None,
        )?;
        if socket::connect(probe.as_raw_fd(), &addr).is_ok() {
            bail!(
                "another drover listens on the upgrade socket {0}; to take over from it, start \
                 with --upgrade-from {0} (or send it SIGUSR2); otherwise stop it first",
                path.display()
            );
        }
        std::fs::remove_file(path)
            .with_context(|| format!("cannot remove the stale socket {}", path.display()))?;
    }
    let fd = socket::socket(
        AddressFamily::Unix,
        SockType::SeqPacket,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .context("cannot create a unix socket")?;
    socket::bind(fd.as_raw_fd(), &addr)
        .with_context(|| format!("cannot bind the upgrade socket {}", path.display()))?;
    // Whoever connects is given the listening sockets: only our own user (and root).
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("cannot restrict {}", path.display()))?;
    socket::listen(&fd, Backlog::new(4).unwrap_or(Backlog::MAXCONN))
        .with_context(|| format!("cannot listen on {}", path.display()))?;
    Ok(fd)
}

/// The `drover-upgrade` thread: one attempt at a time until one succeeds.
fn serve(
    listener: OwnedFd,
    path: &Path,
    sockets: &dyn Sockets,
    handed_over: &tokio::sync::Notify,
    done: &std::sync::atomic::AtomicBool,
) {
    loop {
        let conn = match socket::accept(&listener) {
            Ok(c) => c,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                tracing::error!(error = %e, "upgrade socket: accept failed; no more upgrades");
                return;
            }
        };
        match attempt(&conn, sockets) {
            Ok(new_pid) => {
                // The new process serves on copies of our sockets: stop accepting, make room
                // for its own upgrade socket, then tell it so.
                sockets.hand_over();
                done.store(true, std::sync::atomic::Ordering::Release);
                drop(listener);
                let _ = std::fs::remove_file(path);
                handed_over.notify_one();
                tracing::info!(
                    new_pid,
                    "taken over by the new drover; no longer accepting, draining"
                );
                if let Ok(msg) = serde_json::to_vec(&Released { released: true })
                    && let Err(e) = send(&conn, &msg, &[])
                {
                    tracing::warn!(new_pid, error = %e, "cannot confirm the hand-over");
                }
                return;
            }
            Err(e) => {
                tracing::error!("binary upgrade failed, this drover keeps serving: {e:#}");
            }
        }
    }
}

/// Gives the sockets to the process on `conn`; returns its pid once it says it serves.
fn attempt(conn: &OwnedFd, sockets: &dyn Sockets) -> anyhow::Result<u32> {
    let peer = socket::getsockopt(conn, sockopt::PeerCredentials)
        .context("cannot read the credentials of the new process")?;
    let me = nix::unistd::geteuid().as_raw();
    if peer.uid() != me && peer.uid() != 0 {
        bail!(
            "refused: process {} of user {} asked for the listening sockets (only user {me} or \
             root may)",
            peer.pid(),
            peer.uid()
        );
    }
    tracing::info!(
        new_pid = peer.pid(),
        "a new drover asks for the listening sockets"
    );
    let mut all: Vec<(Entry, OwnedFd)> = sockets
        .listeners()
        .context("cannot copy the listening sockets")?
        .into_iter()
        .map(|(addr, fd)| {
            (
                Entry {
                    kind: Kind::Listener,
                    addr,
                },
                fd,
            )
        })
        .collect();
    if let Some((addr, fd)) = sockets.admin().context("cannot copy the admin socket")? {
        all.push((
            Entry {
                kind: Kind::Admin,
                addr,
            },
            fd,
        ));
    }
    if all.is_empty() {
        bail!("nothing to give: this drover is already stopping");
    }
    let chunks: Vec<&[(Entry, OwnedFd)]> = all.chunks(FDS_PER_MESSAGE).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let offer = Offer {
            pid: std::process::id(),
            sockets: chunk.iter().map(|(e, _)| e.clone()).collect(),
            more: i + 1 < chunks.len(),
        };
        let fds: Vec<i32> = chunk.iter().map(|(_, fd)| fd.as_raw_fd()).collect();
        send(conn, &serde_json::to_vec(&offer)?, &fds).context("cannot send the sockets")?;
    }
    drop(all);
    set_timeout(conn, TAKE_OVER_TIMEOUT)?;
    let (bytes, _) = recv(conn).with_context(|| {
        format!(
            "the new drover (pid {}) did not say it serves within {}s",
            peer.pid(),
            TAKE_OVER_TIMEOUT.as_secs()
        )
    })?;
    if bytes.is_empty() {
        bail!(
            "the new drover (pid {}) went away before serving (see its log above)",
            peer.pid()
        );
    }
    match serde_json::from_slice::<TakenOver>(&bytes) {
        Ok(TakenOver {
            taken_over: true,
            pid,
        }) => Ok(pid),
        _ => bail!(
            "the new drover (pid {}) sent a message not understood",
            peer.pid()
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// The wire.

fn set_timeout(fd: &OwnedFd, timeout: Duration) -> anyhow::Result<()> {
    let tv = TimeVal::milliseconds(i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX));
    socket::setsockopt(fd, sockopt::ReceiveTimeout, &tv).context("cannot set a timeout")?;
    socket::setsockopt(fd, sockopt::SendTimeout, &tv).context("cannot set a timeout")?;
    Ok(())
}

fn send(fd: &OwnedFd, bytes: &[u8], fds: &[i32]) -> anyhow::Result<()> {
    let iov = [IoSlice::new(bytes)];
    let rights = [ControlMessage::ScmRights(fds)];
    let cmsgs: &[ControlMessage] = if fds.is_empty() { &[] } else { &rights };
    socket::sendmsg::<UnixAddr>(fd.as_raw_fd(), &iov, cmsgs, MsgFlags::empty(), None)?;
    Ok(())
}

/// One message and the descriptors that came with it (empty bytes: the peer closed).
fn recv(fd: &OwnedFd) -> anyhow::Result<(Vec<u8>, Vec<i32>)> {
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut space = nix::cmsg_space!([i32; FDS_PER_MESSAGE]);
    let (len, fds) = loop {
        let mut iov = [IoSliceMut::new(&mut buf)];
        match socket::recvmsg::<UnixAddr>(
            fd.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(msg) => {
                let mut fds = Vec::new();
                for cmsg in msg.cmsgs()? {
                    if let ControlMessageOwned::ScmRights(got) = cmsg {
                        fds.extend(got);
                    }
                }
                break (msg.bytes, fds);
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(nix::errno::Errno::EAGAIN) => bail!("timed out"),
            Err(e) => return Err(e.into()),
        }
    };
    buf.truncate(len);
    Ok((buf, fds))
}
