//! The admin dashboard (`/` of the admin listener) in a real headless Chromium, driven over
//! WebDriver (chromedriver, through `fantoccini`), against the real binary over real sockets: a
//! farm of three test members behind drover with closed reads and a token, bounded traffic through
//! the traffic listener. The page asks for the token, shows every member's row with live numbers,
//! and its "Disable" button takes a member out: its rps reaches 0 in the page while the others
//! keep serving, and the API's request counters agree. Its Drain, Undrain, weight and Enable
//! controls reach the API too. The page's security headers (CSP, framing) are checked here as
//! well; the refusal of cross-site writes is in tests/admin.rs.
//!
//! Needs `/usr/bin/chromedriver` and `/usr/bin/chromium` (Debian's `chromium-driver` and
//! `chromium`; `.ci/run` installs them; `DROVER_CHROMEDRIVER` / `DROVER_CHROMIUM` point elsewhere).
//! Without chromedriver the test prints why and passes, except under CI (env `CI` set), where it
//! fails: CI must really run it.
//!
//! Screenshots: `dashboard-1-traffic.png` and `dashboard-2-disabled.png` go to
//! `$DROVER_SCREENSHOTS` when set, else `<cargo target dir>/dashboard-screenshots/`
//! (e.g. `target/dashboard-screenshots/`).
//!
//! chromedriver runs as a child process in its own process group, on a free 127.0.0.1 port; a
//! guard kills that group (chromedriver and the browser it started) by the child's PID when the
//! test ends, panics included, and removes the browser's temporary profile.

mod common;

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{call, free_addr, temp_path};
use drover_testkit::client;
use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt;
use http::Method;
use serde_json::{Value, json};

const TOKEN: &str = "dashboard-test-token-0123456789abcdef";
const SECRET: &str = "dashboard-test-push-secret-0123456789";
/// Browser waits: the page's rates are over a 5 s window, polled every second.
const WAIT: Duration = Duration::from_secs(40);
const POLL: Duration = Duration::from_millis(100);

/// chromedriver as a child process; dropping it kills its process group and removes the profile.
struct Driver {
    child: Child,
    port: u16,
    profile: PathBuf,
}

impl Driver {
    fn start(exe: &Path) -> Driver {
        let port = free_addr().port();
        let profile = temp_path("chromium-profile");
        std::fs::create_dir_all(&profile).expect("create the browser profile dir");
        let child = Command::new(exe)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own group, so the guard can end chromedriver and the browser it started.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", exe.display()));
        Driver {
            child,
            port,
            profile,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Polls chromedriver's `/status` until it is ready.
    async fn wait_ready(&mut self) {
        let addr: SocketAddr = ([127, 0, 0, 1], self.port).into();
        let deadline = Instant::now() + WAIT;
        loop {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                let mut c = client::connect(addr).await;
                if let Ok(r) = client::try_send(&mut c, client::get_request(addr, "/status")).await
                {
                    let v: Value = serde_json::from_slice(&r.body).unwrap_or_default();
                    if v["value"]["ready"] == true {
                        return;
                    }
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("chromedriver exited ({status}) before it was ready");
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver not ready within {WAIT:?}"
            );
            tokio::time::sleep(POLL).await;
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The group's id is our child's PID (`process_group(0)`): this ends chromedriver and any
        // browser it left behind. Not with the kill(1) command: procps-ng 4.0.2 (Debian 12) reads
        // `kill -KILL -14567` as group 1, i.e. kill(-1, SIGKILL), every process of the machine.
        if let Ok(group) = libc::pid_t::try_from(self.child.id())
            && group > 1
        {
            // SAFETY: kill(2) takes two integers and touches no memory of ours; `-group` names
            // only the process group our child leads (it is not reaped yet, so its PID is ours).
            unsafe {
                libc::kill(-group, libc::SIGKILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Where screenshots go (see the module docs).
fn screenshot_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("DROVER_SCREENSHOTS") {
        return PathBuf::from(dir);
    }
    // <target>/debug/drover -> <target>
    let exe = Path::new(env!("CARGO_BIN_EXE_drover"));
    exe.parent()
        .and_then(Path::parent)
        .map_or_else(|| PathBuf::from("target"), Path::to_path_buf)
        .join("dashboard-screenshots")
}

async fn screenshot(browser: &Client, name: &str) {
    // The page's body, not the whole window: no empty space under the tables.
    let body = browser.find(Locator::Css("body")).await.expect("the body");
    let png = body.screenshot().await.expect("screenshot");
    let dir = screenshot_dir();
    std::fs::create_dir_all(&dir).expect("create the screenshot dir");
    let path = dir.join(name);
    std::fs::write(&path, png).expect("write the screenshot");
    eprintln!("dashboard screenshot: {}", path.display());
}

/// chromedriver's path, or `None` when the test should be skipped (outside CI).
fn chromedriver() -> Option<PathBuf> {
    let exe = std::env::var_os("DROVER_CHROMEDRIVER")
        .map_or_else(|| PathBuf::from("/usr/bin/chromedriver"), PathBuf::from);
    if exe.exists() {
        return Some(exe);
    }
    let why = format!(
        "{} is missing: install Debian's chromium and chromium-driver \
         (apt-get install -y chromium chromium-driver), or set DROVER_CHROMEDRIVER",
        exe.display()
    );
    assert!(
        std::env::var_os("CI").is_none(),
        "the dashboard browser test must run in CI: {why}"
    );
    eprintln!("SKIPPED dashboard browser test: {why}");
    None
}

/// Every member row of farm `app` as the page shows it: name -> {rps, flags, share, p50}.
async fn rows(browser: &Client) -> serde_json::Map<String, Value> {
    let v = browser
        .execute(
            r#"const out = {};
               for (const tr of document.querySelectorAll('section[data-farm="app"] tr[data-member]')) {
                 const t = (c) => tr.querySelector(c).textContent;
                 out[tr.dataset.member] = {
                   rps: t('.c-rps'), flags: t('.c-flags'), share: t('.c-share-pct'),
                   p50: t('.c-p50'), spark: tr.querySelectorAll('.spark polyline').length,
                   points: (tr.querySelector('.spark polyline')?.getAttribute('points') || '')
                     .split(' ').filter((p) => p).length,
                 };
               }
               return out;"#,
            vec![],
        )
        .await
        .expect("read the table");
    match v {
        Value::Object(m) => m,
        other => panic!("not an object: {other}"),
    }
}

fn rps(row: &Value) -> Option<f64> {
    row["rps"].as_str()?.parse().ok()
}

/// Polls the page until `ok` holds for its rows; fails with the last rows after `WAIT`.
async fn wait_rows(
    browser: &Client,
    what: &str,
    ok: impl Fn(&serde_json::Map<String, Value>) -> bool,
) -> serde_json::Map<String, Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let r = rows(browser).await;
        if ok(&r) {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {WAIT:?}; the page shows {r:#?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// The badges' text of `name`'s row (e.g. "offupin").
fn flags<'a>(rows: &'a serde_json::Map<String, Value>, name: &str) -> &'a str {
    rows.get(name)
        .and_then(|r| r["flags"].as_str())
        .unwrap_or("")
}

async fn click(browser: &Client, css: &str) {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

/// One member of farm `app`, from the API.
async fn member(admin: SocketAddr, name: &str) -> Value {
    let auth = [("authorization", format!("Bearer {TOKEN}"))];
    let r = call(admin, Method::GET, "/api/v1/farms/app", b"", &auth).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    v["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("no member {name}: {v:#}"))
        .clone()
}

/// Each member's request counter, from the API.
async fn counters(admin: SocketAddr) -> Vec<(String, u64)> {
    let auth = [("authorization", format!("Bearer {TOKEN}"))];
    let r = call(admin, Method::GET, "/api/v1/farms/app", b"", &auth).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    v["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap().to_owned(),
                m["requests"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Requests through the traffic listener, about 150 a second, until `stop` or 3 minutes.
fn traffic(listen: SocketAddr, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<u64> {
    tokio::spawn(async move {
        let end = Instant::now() + Duration::from_secs(180);
        let mut tick = tokio::time::interval(Duration::from_millis(7));
        let mut conn = client::connect(listen).await;
        let mut sent = 0;
        while !stop.load(Ordering::Relaxed) && Instant::now() < end {
            tick.tick().await;
            match client::try_send(&mut conn, client::get_request(listen, "/")).await {
                Ok(r) => assert_eq!(r.status, 200, "{}", r.text()),
                Err(_) => conn = client::connect(listen).await,
            }
            sent += 1;
        }
        sent
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_live_members_and_disable_takes_one_out() {
    let Some(driver_exe) = chromedriver() else {
        return;
    };
    let chromium = std::env::var("DROVER_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    // serve_app puts these keys in [admin]; the [reports] table after them takes the rest.
    let s = common::serve_app(
        &["a1", "a2", "a3"],
        &format!("token = \"{TOKEN}\"\n[reports]\nsecret = \"{SECRET}\""),
    )
    .await;

    // The page shell is open (reads are closed), with its security headers.
    let r = call(s.admin, Method::GET, "/", b"", &[]).await;
    assert_eq!(r.status, 200);
    let csp = r.headers["content-security-policy"].to_str().unwrap();
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(directive), "{csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(r.headers["x-frame-options"], "DENY");
    assert!(r.text().contains("/dashboard/app.js"));
    for (path, media) in [
        ("/dashboard/app.js", "text/javascript"),
        ("/dashboard/style.css", "text/css"),
    ] {
        let r = call(s.admin, Method::GET, path, b"", &[]).await;
        assert_eq!(r.status, 200, "{path}");
        assert!(
            r.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with(media),
            "{path}"
        );
    }
    // The data is not open.
    let r = call(s.admin, Method::GET, "/api/v1/farms", b"", &[]).await;
    assert_eq!(r.status, 401);

    // Load reports, so the table shows reported metrics.
    let reports = json!({"reports": [
        {"member": "a1", "metrics": {"cpu": 0.31, "threads": 12}},
        {"member": "a2", "metrics": {"cpu": 0.47, "threads": 18}},
        {"member": "a3", "metrics": {"cpu": 0.22, "threads": 9}},
    ]});
    let r = common::push_report(s.admin, SECRET, &reports).await;
    assert_eq!(r.status, 200, "{}", r.text());

    let stop = Arc::new(AtomicBool::new(false));
    let load = traffic(s.listen, Arc::clone(&stop));

    let mut driver = Driver::start(&driver_exe);
    driver.wait_ready().await;
    let profile = driver.profile.display().to_string();
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1200,620",
                format!("--user-data-dir={profile}"),
            ],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let browser = ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&driver.url())
        .await
        .expect("a WebDriver session with headless chromium");

    let outcome = async {
        browser
            .goto(&format!("http://{}/", s.admin))
            .await
            .expect("load the dashboard");
        // Reads are closed: the page asks for the token.
        browser
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css("#login:not([hidden])"))
            .await
            .expect("the token form");
        browser
            .find(Locator::Css("#token"))
            .await
            .unwrap()
            .send_keys(TOKEN)
            .await
            .unwrap();
        browser
            .find(Locator::Css("#token-save"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();

        // Every member's row, all three serving.
        let serving = |r: &serde_json::Map<String, Value>| {
            ["a1", "a2", "a3"]
                .iter()
                .all(|m| r.get(*m).and_then(rps).is_some_and(|x| x > 0.0))
        };
        let before = wait_rows(&browser, "every member serving in the page", |r| {
            serving(r) && r.values().all(|m| m["spark"] == 1)
        })
        .await;
        // A few seconds of sparkline before the change, for the screenshots.
        wait_rows(&browser, "sparklines with 20 samples", |r| {
            r.values().all(|m| m["points"].as_u64() >= Some(20))
        })
        .await;
        for m in ["a1", "a2", "a3"] {
            let flags = before[m]["flags"].as_str().unwrap();
            assert!(flags.contains("on") && flags.contains("up"), "{m}: {flags}");
        }
        screenshot(&browser, "dashboard-1-traffic.png").await;

        // Disable a2 with its button.
        browser
            .find(Locator::Css(
                r#"section[data-farm="app"] tr[data-member="a2"] button[data-action="disable"]"#,
            ))
            .await
            .expect("a2's Disable button")
            .click()
            .await
            .unwrap();
        let after = wait_rows(&browser, "a2 off, its rps at 0, the others serving", |r| {
            let a2 = &r["a2"];
            a2["flags"].as_str().is_some_and(|f| f.starts_with("off"))
                && rps(a2) == Some(0.0)
                && a2["share"] == "0%"
                && ["a1", "a3"]
                    .iter()
                    .all(|m| r.get(*m).and_then(rps).is_some_and(|x| x > 0.0))
        })
        .await;
        eprintln!("the page after disable: {after:#?}");
        // Its button now offers Enable.
        browser
            .find(Locator::Css(
                r#"tr[data-member="a2"] button[data-action="enable"]"#,
            ))
            .await
            .expect("a2's Enable button");
        // Let the sparklines show the drop for the screenshot (a few more samples), with the
        // table scrolled back to its start (clicking may have scrolled it).
        let shown = Instant::now();
        wait_rows(&browser, "a few samples after the drop", |_| {
            shown.elapsed() >= Duration::from_secs(6)
        })
        .await;
        browser
            .execute(
                "for (const w of document.querySelectorAll('.table-wrap')) w.scrollLeft = 0;",
                vec![],
            )
            .await
            .expect("scroll the table back");
        screenshot(&browser, "dashboard-2-disabled.png").await;

        // The API agrees: a2's counter stands still while the others grow.
        let first = counters(s.admin).await;
        let deadline = Instant::now() + WAIT;
        let later = loop {
            let now = counters(s.admin).await;
            let grew = now
                .iter()
                .zip(&first)
                .filter(|(n, f)| n.0 != "a2" && n.1 >= f.1 + 50)
                .count();
            if grew == 2 {
                break now;
            }
            assert!(
                Instant::now() < deadline,
                "a1 and a3 did not serve 50 more requests: {first:?} -> {now:?}"
            );
            tokio::time::sleep(POLL).await;
        };
        let a2 = |v: &[(String, u64)]| v.iter().find(|m| m.0 == "a2").unwrap().1;
        assert_eq!(
            a2(&first),
            a2(&later),
            "a2 served after it was disabled: {first:?} -> {later:?}"
        );

        // The other controls: Drain and Undrain a1, weight 3 for a3, Enable a2.
        click(
            &browser,
            r#"tr[data-member="a1"] button[data-action="drain"]"#,
        )
        .await;
        wait_rows(&browser, "a1 draining", |r| {
            flags(r, "a1").contains("draining")
        })
        .await;
        assert!(member(s.admin, "a1").await["draining"] == true);
        click(
            &browser,
            r#"tr[data-member="a1"] button[data-action="undrain"]"#,
        )
        .await;
        wait_rows(&browser, "a1 not draining", |r| {
            !flags(r, "a1").contains("draining")
        })
        .await;
        let weight = browser
            .find(Locator::Css(r#"tr[data-member="a3"] .c-weight input"#))
            .await
            .expect("a3's weight field");
        weight.clear().await.unwrap();
        weight.send_keys("3").await.unwrap();
        click(
            &browser,
            r#"tr[data-member="a3"] button[data-action="weight"]"#,
        )
        .await;
        let deadline = Instant::now() + WAIT;
        while member(s.admin, "a3").await["weight"] != 3 {
            assert!(
                Instant::now() < deadline,
                "a3's weight not set to 3 from the page"
            );
            tokio::time::sleep(POLL).await;
        }
        click(
            &browser,
            r#"tr[data-member="a2"] button[data-action="enable"]"#,
        )
        .await;
        wait_rows(&browser, "a2 on and serving again", |r| {
            flags(r, "a2").starts_with("on") && r.get("a2").and_then(rps).is_some_and(|x| x > 0.0)
        })
        .await;
    };
    // Close the session whatever happened in the page (the guard ends the processes anyway).
    let result = std::panic::AssertUnwindSafe(outcome).catch_unwind().await;
    let _ = browser.close().await;
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }

    stop.store(true, Ordering::Relaxed);
    let sent = load.await.expect("the traffic task");
    assert!(sent > 0);
    drop(driver);
}
