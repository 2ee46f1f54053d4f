//! `drover ctl` end to end: the real `drover serve` with an `[admin]` token (or users file) in
//! front of three test members, and `drover ctl` run as a child process against its admin
//! listener. Checks the tables (`list`, `show`, `pick`), that the writes change what traffic does
//! (requests through the listener, `x-member` header), that `--json` is the API's JSON, and the
//! failures: 401 with the API's reason and never the secret, an unknown member or farm with the
//! API's reason, an unreachable admin address named; each exits 1.

mod common;

use std::net::SocketAddr;
use std::process::Command;

use common::{free_addr, temp_path};
use drover_testkit::client;
use serde_json::Value;

const TOKEN: &str = "ctl-test-token-0123456789abcdef";

type Setup = common::AppSetup;

async fn setup(admin_keys: &str) -> Setup {
    common::serve_app(&["a1", "a2", "a3"], admin_keys).await
}

async fn setup_with_token() -> Setup {
    setup(&format!("token = \"{TOKEN}\"")).await
}

/// What one `drover ctl` run did.
struct Ctl {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Ctl {
    /// Asserts exit status 0 and returns stdout.
    fn ok(&self) -> &str {
        assert_eq!(
            self.code,
            Some(0),
            "drover ctl failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        &self.stdout
    }

    /// Asserts exit status 1 and returns stderr.
    fn failed(&self) -> &str {
        assert_eq!(
            self.code,
            Some(1),
            "drover ctl should fail\nstdout:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
        &self.stderr
    }

    fn json(&self) -> Value {
        serde_json::from_str(self.ok()).unwrap_or_else(|e| panic!("{e}: {}", self.stdout))
    }
}

/// `drover ctl <args>` with only `env` from the `DROVER_*` variables, run off the runtime's
/// threads (the test members live on them). ctl's own timeout (5s) bounds the wait.
async fn run_ctl(args: &[&str], env: &[(&str, &str)]) -> Ctl {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_drover"));
    cmd.arg("ctl")
        .args(args)
        .env_remove("DROVER_ADMIN")
        .env_remove("DROVER_TOKEN")
        .env_remove("DROVER_USER");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .expect("run drover ctl");
    Ctl {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `drover ctl --admin <admin> <args>`, the token from `DROVER_TOKEN`.
async fn ctl(s: &Setup, args: &[&str]) -> Ctl {
    let admin = s.admin.to_string();
    let mut all = vec!["--admin", admin.as_str()];
    all.extend_from_slice(args);
    run_ctl(&all, &[("DROVER_TOKEN", TOKEN)]).await
}

/// The table row (split on whitespace) whose first column, or second under `FARM`, is `member`.
fn row(table: &str, member: &str) -> Vec<String> {
    table
        .lines()
        .map(|l| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .find(|cols| {
            cols.first().map(String::as_str) == Some(member)
                || (cols.first().map(String::as_str) == Some("app")
                    && cols.get(1).map(String::as_str) == Some(member))
        })
        .unwrap_or_else(|| panic!("no row for {member} in:\n{table}"))
}

/// Which members answer `n` requests sent through the listener.
async fn spread(listen: SocketAddr, n: usize) -> Vec<String> {
    let mut conn = client::connect(listen).await;
    let mut seen = Vec::new();
    for _ in 0..n {
        let r = client::send(&mut conn, client::get_request(listen, "/")).await;
        assert_eq!(r.status, 200);
        seen.push(r.headers["x-member"].to_str().unwrap().to_owned());
    }
    seen
}

fn member<'a>(farm: &'a Value, name: &str) -> &'a Value {
    farm["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("no member {name} in {farm}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_shows_every_member_and_disable_takes_one_out_of_traffic() {
    let s = setup_with_token().await;
    let out = ctl(&s, &["list"]).await;
    let table = out.ok();
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "FARM",
            "MEMBER",
            "ADDRESS",
            "STATE",
            "WEIGHT",
            "IN-FLIGHT",
            "REQUESTS",
            "FAILURES",
            "LATENCY"
        ]
    );
    for m in &s.members {
        let cols = row(table, m.name());
        assert_eq!(cols[2], m.addr().to_string(), "{table}");
        assert_eq!(cols[3], "ready", "{table}");
        assert_eq!(cols[4], "1", "{table}");
    }

    let out = ctl(&s, &["disable", "app", "a2"]).await;
    assert_eq!(out.ok(), "app/a2: off, weight 1\n");
    let out = ctl(&s, &["list"]).await;
    let table = out.ok();
    assert_eq!(row(table, "a2")[3], "off", "{table}");
    assert_eq!(row(table, "a1")[3], "ready", "{table}");
    assert_eq!(row(table, "a3")[3], "ready", "{table}");
    let seen = spread(s.listen, 12).await;
    assert!(!seen.iter().any(|m| m == "a2"), "a2 is off: {seen:?}");
    assert!(seen.iter().any(|m| m == "a1") && seen.iter().any(|m| m == "a3"));
    // The traffic shows in the table (a request is counted as it ends: poll).
    let deadline = tokio::time::Instant::now() + client::DEADLINE;
    loop {
        let out = ctl(&s, &["list"]).await;
        let table = out.ok();
        let served: u64 = ["a1", "a3"]
            .iter()
            .map(|m| row(table, m)[6].parse::<u64>().unwrap())
            .sum();
        assert_eq!(row(table, "a2")[6], "0", "{table}");
        if served == 12 {
            assert!(row(table, "a1")[8].ends_with("ms"), "{table}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "12 requests in the table:\n{table}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    let out = ctl(&s, &["enable", "app", "a2"]).await;
    assert_eq!(out.ok(), "app/a2: ready, weight 1\n");
    let seen = spread(s.listen, 12).await;
    assert!(seen.iter().any(|m| m == "a2"), "a2 is back: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weight_drain_show_and_json() {
    let s = setup_with_token().await;
    let out = ctl(&s, &["weight", "app", "a1", "7"]).await;
    assert_eq!(out.ok(), "app/a1: ready, weight 7\n");
    let out = ctl(&s, &["drain", "app", "a3"]).await;
    assert_eq!(out.ok(), "app/a3: draining, weight 1\n");

    let out = ctl(&s, &["show", "app"]).await;
    let text = out.ok();
    assert!(
        text.starts_with("farm app: policy round-robin, 0 requests"),
        "{text}"
    );
    assert_eq!(row(text, "a1")[3], "7", "{text}");
    assert_eq!(row(text, "a3")[2], "draining", "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("a3") && l.contains("operator (token): drain")),
        "the last change with its reason:\n{text}"
    );
    assert!(
        !text.contains("sticky"),
        "no sticky line without sticky:\n{text}"
    );

    // --json, before or after the command: the API's JSON as it is.
    let farm = ctl(&s, &["--json", "show", "app"]).await.json();
    assert_eq!(member(&farm, "a1")["weight"], 7);
    assert_eq!(member(&farm, "a3")["draining"], true);
    let all = ctl(&s, &["list", "--json"]).await.json();
    assert_eq!(all["farms"][0]["members"].as_array().unwrap().len(), 3);
    assert!(all["reports"].is_object(), "{all}");
    let written = ctl(&s, &["undrain", "app", "a3", "--json"]).await.json();
    assert_eq!(written["name"], "a3");
    assert_eq!(written["draining"], false);

    // The API refuses a weight out of range; ctl says why.
    let out = ctl(&s, &["weight", "app", "a1", "0"]).await;
    let err = out.failed();
    assert!(
        err.starts_with("drover ctl: weight 0 is out of range; use 1 to 1000"),
        "{err}"
    );
    assert!(err.contains("400 Bad Request"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pick_names_the_chosen_member_and_the_candidates() {
    let s = setup_with_token().await;
    ctl(&s, &["disable", "app", "a3"]).await.ok();
    let out = ctl(&s, &["pick", "app"]).await;
    let text = out.ok();
    let first = text.lines().next().unwrap();
    let chosen = first
        .strip_prefix("farm app (round-robin): ")
        .unwrap_or_else(|| panic!("{text}"));
    assert!(chosen == "a1" || chosen == "a2", "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with(&format!("*  {chosen} "))),
        "the chosen member is marked:\n{text}"
    );
    assert!(text.contains("CANDIDATE"), "{text}");
    for m in ["a1", "a2"] {
        assert!(
            text.lines()
                .any(|l| l.trim_start_matches('*').trim_start().starts_with(m)),
            "{m} is a candidate:\n{text}"
        );
    }
    let removed = row(text, "a3");
    assert_eq!(removed[1..], ["ready", "off", "(operator)"], "{text}");

    let pick = ctl(&s, &["--json", "pick", "app"]).await.json();
    let chosen = pick["chosen"]["name"].as_str().unwrap();
    assert!(chosen == "a1" || chosen == "a2", "{pick}");
    let mut names: Vec<&str> = pick["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["a1", "a2"]);
    assert_eq!(pick["removed"][0]["name"], "a3");

    // Nobody ready: the explanation is printed, and the command fails.
    ctl(&s, &["disable", "app", "a1"]).await.ok();
    ctl(&s, &["disable", "app", "a2"]).await.ok();
    let out = ctl(&s, &["pick", "app"]).await;
    let err = out.failed();
    assert_eq!(err, "drover ctl: no member of farm app is ready\n");
    assert!(
        out.stdout
            .starts_with("farm app (round-robin): no member is ready"),
        "{}",
        out.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_or_missing_credentials_exit_1_without_echoing_the_secret() {
    let s = setup_with_token().await;
    let admin = s.admin.to_string();
    let admin = admin.as_str();
    let wrong = "wrong-secret-9876543210";
    for args in [
        vec!["--admin", admin, "--token", wrong, "list"],
        vec!["--admin", admin, "--token", wrong, "disable", "app", "a1"],
    ] {
        let out = run_ctl(&args, &[]).await;
        assert_eq!(
            out.failed(),
            "drover ctl: 401 Unauthorized: wrong token (give --token or --token-file)\n"
        );
        assert!(
            !out.stdout.contains(wrong) && !out.stderr.contains(wrong),
            "the token is never printed"
        );
    }
    // A wrong DROVER_TOKEN: the same, and the token is not printed either.
    let out = run_ctl(&["--admin", admin, "list"], &[("DROVER_TOKEN", wrong)]).await;
    assert!(out.failed().contains("wrong token"), "{}", out.stderr);
    assert!(!out.stderr.contains(wrong));
    let out = run_ctl(&["--admin", admin, "list"], &[]).await;
    assert_eq!(
        out.failed(),
        "drover ctl: 401 Unauthorized: no Authorization header (give --token or --token-file)\n"
    );

    // The right token, from a flag and from a file (whose newline does not count).
    let out = run_ctl(&["--admin", admin, "--token", TOKEN, "list"], &[]).await;
    assert!(out.ok().contains("a1"));
    let file = temp_path("token");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    let path = file.to_str().unwrap();
    let out = run_ctl(&["--admin", admin, "--token-file", path, "list"], &[]).await;
    assert!(out.ok().contains("a1"));
    let _ = std::fs::remove_file(&file);
    // The address from DROVER_ADMIN.
    let out = run_ctl(
        &["list"],
        &[("DROVER_ADMIN", admin), ("DROVER_TOKEN", TOKEN)],
    )
    .await;
    assert!(out.ok().contains("a1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_with_user() {
    let file = temp_path("users");
    let hash = bcrypt::hash("s3cret-pass", 5).unwrap();
    std::fs::write(&file, format!("alice:{hash}\n")).unwrap();
    let s = setup(&format!("users_file = {:?}", file.display().to_string())).await;
    let admin = s.admin.to_string();
    let admin = admin.as_str();
    let out = run_ctl(
        &[
            "--admin",
            admin,
            "--user",
            "alice:s3cret-pass",
            "drain",
            "app",
            "a1",
        ],
        &[],
    )
    .await;
    assert_eq!(out.ok(), "app/a1: draining, weight 1\n");
    let out = run_ctl(
        &["--admin", admin, "show", "app"],
        &[("DROVER_USER", "alice:s3cret-pass")],
    )
    .await;
    assert!(
        out.ok().contains("operator (alice): drain"),
        "{}",
        out.stdout
    );
    let out = run_ctl(
        &["--admin", admin, "--user", "alice:bad-pass-123", "list"],
        &[],
    )
    .await;
    assert!(
        out.failed()
            .starts_with("drover ctl: 401 Unauthorized: wrong user or password"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("bad-pass-123"));
    let _ = std::fs::remove_file(&file);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_names_and_unreachable_admin_exit_1_with_the_reason() {
    let s = setup_with_token().await;
    let out = ctl(&s, &["disable", "app", "nobody"]).await;
    assert_eq!(
        out.failed(),
        "drover ctl: farm \"app\" has no member \"nobody\" (404 Not Found)\n"
    );
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    let out = ctl(&s, &["weight", "nofarm", "a1", "2"]).await;
    assert!(
        out.failed().contains("unknown farm \"nofarm\""),
        "{}",
        out.stderr
    );
    let out = ctl(&s, &["show", "nofarm"]).await;
    assert!(
        out.failed().contains("unknown farm \"nofarm\""),
        "{}",
        out.stderr
    );
    let out = ctl(&s, &["pick", "nofarm"]).await;
    assert!(
        out.failed().contains("unknown farm \"nofarm\""),
        "{}",
        out.stderr
    );
    // Nothing listens there: the message names the address.
    let nowhere = free_addr().to_string();
    let out = run_ctl(&["--admin", &nowhere, "list"], &[("DROVER_TOKEN", TOKEN)]).await;
    let err = out.failed();
    assert!(
        err.starts_with(&format!(
            "drover ctl: cannot connect to the admin API at http://{nowhere}: "
        )),
        "{err}"
    );
    assert!(!err.contains(TOKEN));
}
