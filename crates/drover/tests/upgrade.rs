//! Binary upgrade on the real binary, over real sockets: a new `drover serve --upgrade-from`
//! takes the listening sockets over from the old process while 64 keep-alive clients keep
//! sending; no request fails, no connection is refused, a slow request in flight on the old
//! process completes, and the old process exits 0 once drained. A new process with a bad config
//! leaves the old one serving; SIGUSR2 makes a drover upgrade itself, and tells systemd's notify
//! socket which process is the main one.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::{Drover, Load, LoadTotals, free_addr, temp_path};
use drover_testkit::client::{DEADLINE, eventually, get};
use drover_testkit::{MemberConfig, TestMember};

/// Old process's grace: long enough for the slow request, bounded so the test ends.
const GRACE: &str = "20s";

/// Farm `app` over `member`; `/slow` goes to farm `slow` over `slow`, so a test can tell when
/// its slow request has reached a member.
fn config(
    listen: SocketAddr,
    admin: SocketAddr,
    threads: usize,
    extra: &str,
    member: SocketAddr,
    slow: SocketAddr,
) -> String {
    format!(
        "[server]\nthreads = {threads}\ngrace = \"{GRACE}\"\n{extra}\n\
         [admin]\nlisten = \"{admin}\"\nopen_reads = true\n\
         [[listener]]\nlisten = \"{listen}\"\nfarm = \"app\"\n\
         [[listener.route]]\npath = \"/slow\"\nfarm = \"slow\"\n\
         [farm.app]\npolicy = \"round-robin\"\nmembers = [{{ name = \"m1\", address = \"{member}\" }}]\n\
         [farm.slow]\nmembers = [{{ name = \"s1\", address = \"{slow}\" }}]\n"
    )
}

fn socket_line(path: &Path) -> String {
    format!("upgrade_socket = {:?}", path.display().to_string())
}

/// `drover serve --config <config> --upgrade-from <socket>`.
fn upgrade_from(config: &str, socket: &Path) -> Drover {
    let path = temp_path("config.toml");
    std::fs::write(&path, config).unwrap();
    let (p, s) = (path.display().to_string(), socket.display().to_string());
    Drover::spawn(&["serve", "--config", &p, "--upgrade-from", &s])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_under_load_lose_nothing_and_the_old_process_drains_and_exits() {
    let member = TestMember::start(MemberConfig::new("m1")).await.unwrap();
    let slow_member = TestMember::start(MemberConfig::new("s1")).await.unwrap();
    let (listen, admin) = (free_addr(), free_addr());
    let socket = temp_path("upgrade.sock");
    // The old process runs two workers, the new ones one then three: every socket given must be
    // accepted from whatever the new thread count.
    let text = |threads| {
        let extra = socket_line(&socket);
        config(
            listen,
            admin,
            threads,
            &extra,
            member.addr(),
            slow_member.addr(),
        )
    };
    let mut old = Drover::serve(&text(2));
    old.wait_listening(listen).await;
    old.wait_listening(admin).await;

    let load = Load::start(listen, 64, 20_000).await;
    load.advance(300).await;

    let mut generations = Vec::new();
    for threads in [1, 3] {
        // A slow request in flight on the old process when the new one takes over.
        let before = slow_member.requests();
        let slow = tokio::spawn(async move { get(listen, "/slow?ms=1500").await });
        eventually("the slow request reaches its member", || {
            slow_member.requests() > before
        })
        .await;
        let since = old.log_len();
        let mut new = upgrade_from(&text(threads), &socket);
        old.wait_for_log(since, &["taken over by the new drover"])
            .await;
        new.wait_for_log(0, &["the old drover let go"]).await;
        let reply = tokio::time::timeout(DEADLINE, slow).await.unwrap().unwrap();
        assert_eq!(
            reply.status, 200,
            "the slow request in flight during the upgrade"
        );
        let status = old.wait_exit(DEADLINE).await.unwrap_or_else(|| {
            panic!(
                "old drover still running after the drain:\n{}",
                old.stderr()
            )
        });
        assert!(
            status.success(),
            "old drover exit: {status}\n{}",
            old.stderr()
        );
        // Same port, new process: the load goes on, and the admin listener moved too.
        load.advance(300).await;
        assert!(
            new.try_status().is_none(),
            "new drover exited:\n{}",
            new.stderr()
        );
        assert_eq!(get(admin, "/healthz").await.status, 200);
        let log = new.stderr();
        assert!(log.contains("listening on taken over sockets"), "{log}");
        generations.push(std::mem::replace(&mut old, new));
    }

    let LoadTotals {
        ok,
        failed,
        refused,
        reconnects,
        errors,
    } = load.finish().await;
    assert_eq!(failed, 0, "failed requests during the upgrades: {errors:?}");
    assert_eq!(
        refused, 0,
        "refused connections during the upgrades: {errors:?}"
    );
    assert!(ok > 600, "{ok} answered");
    // Every client moved to the new process by a Connection: close, not a cut.
    assert!(
        reconnects >= 64,
        "{reconnects} reconnects after Connection: close"
    );

    // The last process serves and stops as usual; nothing is left on the upgrade socket.
    old.signal("TERM");
    assert!(old.wait_exit(DEADLINE).await.is_some_and(|s| s.success()));
    assert!(!socket.exists(), "the upgrade socket is removed at exit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_process_that_fails_leaves_the_old_one_serving() {
    let member = TestMember::start(MemberConfig::new("m1")).await.unwrap();
    let (listen, admin) = (free_addr(), free_addr());
    let socket = temp_path("upgrade.sock");
    let good = config(
        listen,
        admin,
        1,
        &socket_line(&socket),
        member.addr(),
        member.addr(),
    );
    let mut old = Drover::serve(&good);
    old.wait_listening(listen).await;

    // A bad config: the new process says why and exits before touching the old one.
    let mut bad = upgrade_from(&good.replace("round-robin", "round-robbin"), &socket);
    let status = bad
        .wait_exit(DEADLINE)
        .await
        .expect("the bad new drover exits");
    assert!(!status.success());
    assert!(bad.stderr().contains("farm.app.policy"), "{}", bad.stderr());

    // A new process that connects, takes the sockets, and dies before taking over (its
    // listener address is taken by something else, so it cannot start).
    let blocker = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let blocked = blocker.local_addr().unwrap();
    let broken = good.replace(
        &format!("listen = \"{admin}\""),
        &format!("listen = \"{blocked}\""),
    );
    let since = old.log_len();
    let mut dies = upgrade_from(&broken, &socket);
    let status = dies
        .wait_exit(DEADLINE)
        .await
        .expect("the new drover fails");
    assert!(!status.success(), "{}", dies.stderr());
    old.wait_for_log(since, &["binary upgrade failed, this drover keeps serving"])
        .await;

    // The old one still serves, on the same sockets, and can still be upgraded.
    for _ in 0..20 {
        assert_eq!(get(listen, "/").await.status, 200);
    }
    assert!(old.try_status().is_none());
    let new = upgrade_from(&good, &socket);
    new.wait_for_log(0, &["the old drover let go"]).await;
    assert!(old.wait_exit(DEADLINE).await.is_some_and(|s| s.success()));
    assert_eq!(get(listen, "/").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigusr2_starts_a_new_process_that_takes_over() {
    let member = TestMember::start(MemberConfig::new("m1")).await.unwrap();
    let (listen, admin) = (free_addr(), free_addr());
    // No upgrade_socket: SIGUSR2 makes a private one. systemd's notify socket, played by the
    // test, hears which process is the service's main one.
    let notify_path = temp_path("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    notify.set_read_timeout(Some(DEADLINE)).unwrap();
    let heard = move || {
        tokio::task::block_in_place(|| {
            let mut buf = [0u8; 256];
            let n = notify.recv(&mut buf).expect("a message on NOTIFY_SOCKET");
            String::from_utf8_lossy(&buf[..n]).into_owned()
        })
    };
    let m = member.addr();
    let notify_str = notify_path.display().to_string();
    let mut old = Drover::serve_env(
        &config(listen, admin, 1, "", m, m),
        &[("NOTIFY_SOCKET", &notify_str)],
    );
    old.wait_listening(listen).await;
    assert_eq!(heard(), format!("MAINPID={}\nREADY=1\n", old.pid));
    let load = Load::start(listen, 8, 5_000).await;
    load.advance(100).await;

    let since = old.log_len();
    old.signal("USR2");
    // The new process logs into the same stderr (it inherits it).
    let started = old.wait_for_log(since, &["started a new drover"]).await;
    let pid: i32 = started
        .split("pid=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {started:?}"));
    let new = NewProcess(pid);
    assert_eq!(heard(), format!("MAINPID={pid}\nREADY=1\n"));
    let _ = std::fs::remove_file(&notify_path);
    old.wait_for_log(since, &["taken over by the new drover"])
        .await;
    let status = old
        .wait_exit(DEADLINE)
        .await
        .expect("old drover exits after the drain");
    assert!(status.success(), "{status}");
    load.advance(100).await;
    assert_eq!(get(admin, "/healthz").await.status, 200);
    let LoadTotals {
        failed,
        refused,
        errors,
        ..
    } = load.finish().await;
    assert_eq!((failed, refused), (0, 0), "{errors:?}");
    assert!(new.alive());
}

/// The process SIGUSR2 started (not our child): terminated by its PID when the test ends.
struct NewProcess(i32);

impl NewProcess {
    /// Running (a zombie waiting for its new parent to reap it counts as gone).
    fn alive(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.0)).is_ok_and(|stat| {
            stat.rsplit_once(") ")
                .is_some_and(|(_, rest)| !rest.starts_with('Z'))
        })
    }
}

impl Drop for NewProcess {
    fn drop(&mut self) {
        // SAFETY: a plain kill(2) of the one process this test caused to start, by its PID.
        unsafe {
            libc::kill(self.0, libc::SIGTERM);
        }
        let deadline = std::time::Instant::now() + DEADLINE;
        while self.alive() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
