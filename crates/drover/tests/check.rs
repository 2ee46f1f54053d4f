//! `drover check --config FILE`: `ok` and exit 0 for the example configs; for a broken file, a
//! non-zero exit and exactly one line per problem, `FILE:LINE: KEY ...`, in file order.

mod common;

use std::path::Path;

use common::{Drover, repo_root, temp_path};
use drover_testkit::client::DEADLINE;

struct Checked {
    success: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn check(path: &Path) -> Checked {
    let path = path.to_str().expect("utf-8 path");
    let mut drover = Drover::spawn(&["check", "--config", path]);
    let status = drover.wait_exit_blocking(DEADLINE).unwrap_or_else(|| {
        panic!("`drover check --config {path}` still running after {DEADLINE:?}")
    });
    Checked {
        success: status.success(),
        code: status.code(),
        stdout: drover.stdout(),
        stderr: drover.stderr(),
    }
}

fn assert_example_ok(name: &str) {
    let path = repo_root().join("examples").join(name);
    assert!(path.exists(), "{} does not exist", path.display());
    let out = check(&path);
    assert!(
        out.success,
        "drover check {name}: exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.code, out.stdout, out.stderr
    );
    assert_eq!(
        out.stdout, "ok\n",
        "drover check {name} stdout (stderr:\n{})",
        out.stderr
    );
}

#[test]
fn quickstart_example_is_ok() {
    assert_example_ok("quickstart.toml");
}

#[test]
fn peers_example_is_ok() {
    assert_example_ok("peers.toml");
}

/// One mistake per marked line. A marker `# error: KEY [| VALUE [| HINT]]` says which key the
/// error on that line must name, the value it must show as written, and a word of the fix.
const BROKEN: &str = r#"# drover check test: five mistakes, one per marked line.
[server]
threads = 1
grace = "5 parsecs"                  # error: server.grace | "5 parsecs"

[[listener]]
listen = "127.0.0.1:18080"
idel_timeout = "30s"                 # error: listener[0].idel_timeout | | idle_timeout
farm = "app"

[[listener.route]]
path = "/api"
farm = "nowhere"                     # error: listener[0].route[0].farm | "nowhere"

[farm.app]
policy = "round-robbin"              # error: farm.app.policy | "round-robbin" | round-robin
members = [
    { address = "127.0.0.1:9001" },
    { address = "127.0.0.1" },       # error: farm.app.members[1].address | "127.0.0.1"
]
"#;

struct Expected<'a> {
    line: usize,
    key: &'a str,
    value: Option<&'a str>,
    hint: Option<&'a str>,
}

fn expected_errors(text: &str) -> Vec<Expected<'_>> {
    text.lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let marker = line.split_once("# error: ")?.1;
            let mut parts = marker.split('|').map(str::trim);
            let key = parts.next().filter(|k| !k.is_empty())?;
            let value = parts.next().filter(|v| !v.is_empty());
            let hint = parts.next().filter(|h| !h.is_empty());
            Some(Expected {
                line: i + 1,
                key,
                value,
                hint,
            })
        })
        .collect()
}

#[test]
fn broken_config_reports_one_line_per_error_with_file_line_and_key() {
    let path = temp_path("broken.toml");
    std::fs::write(&path, BROKEN).expect("write config");
    let out = check(&path);
    let _ = std::fs::remove_file(&path);
    let file = path.to_str().expect("utf-8 path");

    let expected = expected_errors(BROKEN);
    assert_eq!(expected.len(), 5, "the test's own markers");
    assert!(
        !out.success,
        "drover check accepted a broken config; stdout:\n{}",
        out.stdout
    );
    assert!(
        !out.stdout.lines().any(|l| l.trim() == "ok"),
        "drover check printed ok for a broken config"
    );
    // Errors go to stderr; nothing else may be printed there, so a script can count them.
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(
        lines.len(),
        expected.len(),
        "one line per error expected, got:\n{}",
        out.stderr
    );
    for (got, want) in lines.iter().zip(&expected) {
        let prefix = format!("{file}:{}: {}", want.line, want.key);
        assert!(
            got.starts_with(&prefix),
            "expected a line starting with {prefix:?}, got {got:?}\nall:\n{}",
            out.stderr
        );
        let rest = &got[prefix.len()..];
        assert!(
            rest.starts_with(": ") || rest.starts_with(" = "),
            "key {} not followed by ': ' or ' = ' in {got:?}",
            want.key
        );
        if let Some(value) = want.value {
            assert!(
                rest.starts_with(&format!(" = {value}: ")),
                "error for {} should show the value {value} as written: {got:?}",
                want.key
            );
        }
        if let Some(hint) = want.hint {
            assert!(
                got.contains(hint),
                "error for {} should mention {hint:?}: {got:?}",
                want.key
            );
        }
    }
}

#[test]
fn missing_file_is_one_error() {
    let path = temp_path("does-not-exist.toml");
    let out = check(&path);
    assert!(!out.success, "drover check accepted a missing file");
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(lines.len(), 1, "stderr:\n{}", out.stderr);
    assert!(
        lines[0].starts_with(&format!("{}: ", path.display())),
        "the error names the file: {:?}",
        lines[0]
    );
}
