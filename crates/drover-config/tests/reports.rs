//! `[reports]` and `[farm.<name>.reports]`: defaults, values, and errors that name the line and
//! the key but never echo a secret.

use std::path::Path;
use std::time::Duration;

use drover_config::parse_str;

const FARM: &str = "[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\nfarm = \"app\"\n\n\
    [farm.app]\nmembers = [{ name = \"m1\", address = \"127.0.0.1:9001\" }]\n";

fn parse(extra: &str) -> Result<drover_config::Config, String> {
    let text = format!("{FARM}{extra}");
    parse_str(&text, Path::new("t.toml")).map_err(|e| e.to_string())
}

#[test]
fn defaults_refuse_pushes_and_never_expire_reports() {
    let c = parse("").unwrap();
    assert!(c.reports.secret.is_none());
    assert_eq!(c.reports.window, Duration::from_secs(30));
    let r = &c.farms[0].reports;
    assert_eq!((r.expect, r.orca, r.orca_request), (None, true, false));
}

#[test]
fn values_are_read() {
    let c = parse(
        "[farm.app.reports]\nexpect = \"3s\"\norca = false\norca_request = true\n\n\
         [reports]\nsecret = \"0123456789abcdef0123\"\nwindow = \"10s\"\n[admin]\n",
    )
    .unwrap();
    assert_eq!(
        c.reports.secret.as_ref().unwrap().expose(),
        b"0123456789abcdef0123"
    );
    assert_eq!(format!("{:?}", c.reports.secret), "Some(Secret(..))");
    assert_eq!(c.reports.window, Duration::from_secs(10));
    let r = &c.farms[0].reports;
    assert_eq!(
        (r.expect, r.orca, r.orca_request),
        (Some(Duration::from_secs(3)), false, true)
    );
}

#[test]
fn secret_file_is_read_and_trimmed() {
    let dir = std::env::temp_dir().join(format!("drover-secret-{}", std::process::id()));
    std::fs::write(&dir, "s3cret-s3cret-s3cret\n").unwrap();
    let c = parse(&format!(
        "[admin]\n[reports]\nsecret_file = {:?}\n",
        dir.display().to_string()
    ))
    .unwrap();
    std::fs::remove_file(&dir).unwrap();
    assert_eq!(c.reports.secret.unwrap().expose(), b"s3cret-s3cret-s3cret");
}

#[test]
fn bad_values_name_line_and_key_and_hide_the_secret() {
    let e = parse("[reports]\nsecret = \"hunter2\"\n").unwrap_err();
    assert!(e.contains("t.toml:9: reports.secret"), "{e}");
    assert!(e.contains("too short (7 bytes)"), "{e}");
    assert!(!e.contains("hunter2"), "the secret leaked: {e}");

    let e = parse("[reports]\nsecret = \"0123456789abcdef\"\nsecret_file = \"/x\"\n").unwrap_err();
    assert!(
        e.contains("reports.secret_file") && e.contains("not both"),
        "{e}"
    );

    let e = parse("[reports]\nsecret_file = \"/nonexistent/drover\"\n").unwrap_err();
    assert!(e.contains("cannot read the secret file"), "{e}");

    let e = parse("[farm.app.reports]\nexpect = \"0s\"\nexpcet = 1\n").unwrap_err();
    assert!(
        e.contains("farm.app.reports.expect = \"0s\": must be more than 0s"),
        "{e}"
    );
    assert!(
        e.contains("farm.app.reports.expcet: unknown key (did you mean expect?)"),
        "{e}"
    );

    let e = parse("[reports]\nwindow = \"soon\"\n").unwrap_err();
    assert!(
        e.contains("reports.window = \"soon\": invalid duration"),
        "{e}"
    );
}

#[test]
fn expect_needs_a_source_that_does_not_depend_on_traffic() {
    // ORCA alone: a member that is out gets no responses, so it could never come back in.
    let e = parse("[farm.app.reports]\nexpect = \"3s\"\n").unwrap_err();
    assert!(
        e.contains("t.toml:9: farm.app.reports.expect = \"3s\": nothing would report steadily"),
        "{e}"
    );
    // Signed pushes are a steady source...
    let c = parse(
        "[admin]\n[reports]\nsecret = \"0123456789abcdef\"\n[farm.app.reports]\nexpect = \"3s\"\n",
    );
    assert_eq!(
        c.unwrap().farms[0].reports.expect,
        Some(Duration::from_secs(3))
    );
    // ...and so is an agent.
    let c = parse("[farm.app.agent]\nport = 9777\n[farm.app.reports]\nexpect = \"3s\"\n");
    assert_eq!(
        c.unwrap().farms[0].reports.expect,
        Some(Duration::from_secs(3))
    );
}

#[test]
fn a_secret_needs_the_admin_listener_and_a_mistyped_one_is_not_echoed() {
    let e = parse("[reports]\nsecret = \"0123456789abcdef\"\n").unwrap_err();
    assert!(
        e.contains("reports.secret: pushed reports arrive on the admin listener"),
        "{e}"
    );
    let e = parse("[admin]\n[reports]\nsecret = 1234567890123456789\n").unwrap_err();
    assert!(
        e.contains("reports.secret = (hidden): expected a string"),
        "{e}"
    );
    assert!(!e.contains("1234567890123456789"), "the secret leaked: {e}");
}
