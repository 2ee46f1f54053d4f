//! `[admin]`'s credentials: token (inline or file), users file (bcrypt lines), open_reads; errors
//! that name the line and the key and never echo a token or a hash.

use std::path::Path;

use drover_config::parse_str;

const LISTENER: &str = "[[listener]]\nlisten = \"127.0.0.1:0\"\nfarm = \"app\"\n\
    [farm.app]\nmembers = [{ address = \"127.0.0.1:9001\" }]\n";

fn parse(admin: &str) -> Result<drover_config::Config, String> {
    let text = format!("[admin]\n{admin}\n{LISTENER}");
    parse_str(&text, Path::new("t.toml")).map_err(|e| e.to_string())
}

fn temp(tag: &str, text: &str) -> String {
    let p = std::env::temp_dir().join(format!("drover-admin-{}-{tag}", std::process::id()));
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn defaults_are_closed() {
    let a = parse("").unwrap().admin.unwrap();
    assert!(a.token.is_none() && a.users.is_empty() && !a.open_reads);
}

#[test]
fn token_users_and_open_reads_are_read() {
    let hash = "$2y$05$abcdefghijklmnopqrstuuJ1rT0H2G3Y0Yx0Jb1m5y5Q6fK3Y9QyW";
    assert_eq!(hash.len(), 60);
    let users = temp("users", &format!("# ops\nalice:{hash}\n\nbob:{hash}\n"));
    let a = parse(&format!(
        "token = \"0123456789abcdef0123\"\nusers_file = {users:?}\nopen_reads = true"
    ))
    .unwrap()
    .admin
    .unwrap();
    assert_eq!(a.token.unwrap().expose(), b"0123456789abcdef0123");
    let names: Vec<&str> = a.users.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(names, ["alice", "bob"]);
    assert!(a.open_reads);
    assert!(
        !format!("{:?}", a.users).contains(hash),
        "hashes stay out of Debug"
    );
    let file = temp("token", "  fedcba9876543210fedcba\n");
    let a = parse(&format!("token_file = {file:?}"))
        .unwrap()
        .admin
        .unwrap();
    assert_eq!(a.token.unwrap().expose(), b"fedcba9876543210fedcba");
    std::fs::remove_file(users).unwrap();
    std::fs::remove_file(file).unwrap();
}

#[test]
fn bad_credentials_config_names_line_and_key_and_hides_secrets() {
    let e = parse("token = \"short-tok\"").unwrap_err();
    assert!(
        e.contains("t.toml:2") && e.contains("admin.token") && e.contains("too short"),
        "{e}"
    );
    assert!(!e.contains("short-tok"), "{e}");
    let e = parse("token = \"0123456789abcdef0\"\ntoken_file = \"/x\"").unwrap_err();
    assert!(e.contains("give either token or token_file"), "{e}");
    let users = temp("bad-users", "alice:not-a-hash\nbob\n:$2y$05$x\n");
    let e = parse(&format!("users_file = {users:?}")).unwrap_err();
    assert!(e.contains("admin.users_file"), "{e}");
    assert!(e.contains(":1: not a bcrypt hash"), "{e}");
    assert!(e.contains(":2: expected name:<bcrypt hash>"), "{e}");
    assert!(e.contains(":3: the user name is empty"), "{e}");
    assert!(!e.contains("not-a-hash"), "{e}");
    std::fs::remove_file(users).unwrap();
    let e = parse("users_file = \"/nonexistent/drover-users\"").unwrap_err();
    assert!(e.contains("cannot read the users file"), "{e}");
    let e = parse("open_reads = \"yes\"").unwrap_err();
    assert!(e.contains("admin.open_reads"), "{e}");
}
