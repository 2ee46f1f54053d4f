//! The parser's entry points and top level: read the file, parse TOML keeping spans, walk
//! `[server]`, `[admin]`, `[farm.*]` and `[[listener]]` (in `farm.rs` and `listener.rs`), then
//! the checks that span tables (every address bound once). Also the value kinds shared by several
//! tables: pages and redirect locations.

use std::net::SocketAddr;
use std::path::Path;

use toml::de::DeTable;

use crate::error::{ConfigError, ConfigErrors};
use crate::model::{Admin, Config, Page, Server};
use crate::units;
use crate::walk::{Ctx, Table};
use crate::{farm, listener};

const TOP_KEYS: &[&str] = &["server", "admin", "listener", "farm", "reports", "cluster"];
const SERVER_KEYS: &[&str] = &["threads", "grace", "state_file", "upgrade_socket"];
const ADMIN_KEYS: &[&str] = &["listen", "token", "token_file", "users_file", "open_reads"];
const PAGE_KEYS: &[&str] = &["status", "body", "content_type"];

/// Reads and validates the config file at `path`.
///
/// On failure, every problem found is returned (an unreadable file is one problem).
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_str(&text, path),
        Err(e) => Err(ConfigError::file(path, format!("cannot read the config file: {e}")).into()),
    }
}

/// Validates `text`, a config file's contents; `path` is used in messages and kept in
/// [`Config::path`]. Member host names are resolved here.
pub fn parse_str(text: &str, path: &Path) -> Result<Config, ConfigErrors> {
    let mut ctx = Ctx::new(text, path);
    let (doc, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        // The tree after a syntax error is a guess: checking it would report phantom problems.
        for e in syntax {
            let at = e.span().map_or(0, |s| s.start);
            ctx.error(at, "", None, format!("TOML syntax error: {}", e.message()));
        }
        return Err(ctx.into_errors());
    }
    let root = Table::new(&mut ctx, String::new(), 0, doc.get_ref(), Some(TOP_KEYS));
    let server = server(&mut ctx, &root);
    let (admin, admin_bind) = admin(&mut ctx, &root);
    let reports = crate::reports::reports(&mut ctx, &root);
    let pushes = reports.secret.is_some() && admin.is_some();
    if reports.secret.is_some() && admin.is_none() {
        let at = root.key_at("reports").unwrap_or(0);
        let message = "pushed reports arrive on the admin listener, and there is none: add an \
                       [admin] table (listen = \"127.0.0.1:9090\" by default)";
        ctx.error(at, "reports.secret", None, message);
    }
    let (farms, farm_names) = farm::farms(&mut ctx, &root, pushes);
    let (listeners, mut binds) = listener::listeners(&mut ctx, &root, &farm_names);
    binds.extend(admin_bind);
    check_binds(&mut ctx, &binds);
    let cluster = crate::cluster::cluster(&mut ctx, &root);
    ctx.finish(Config {
        path: path.to_path_buf(),
        server,
        admin,
        listeners,
        farms,
        reports,
        cluster,
    })
}

fn server(ctx: &mut Ctx<'_>, root: &Table<'_, '_>) -> Server {
    let defaults = Server::default();
    let Some(t) = root.table(ctx, "server", Some(SERVER_KEYS)) else {
        return defaults;
    };
    Server {
        threads: t
            .int(ctx, "threads", 0..=4096)
            .map_or(defaults.threads, |n| n as usize),
        grace: t.duration(ctx, "grace").unwrap_or(defaults.grace),
        state_file: t
            .str(ctx, "state_file", "a path to a file drover may write")
            .map(std::path::PathBuf::from),
        upgrade_socket: upgrade_socket(ctx, &t),
    }
}

/// The longest unix socket path the kernel takes (`sun_path` is 108 bytes with its NUL).
const MAX_UNIX_PATH: usize = 107;

/// `upgrade_socket`: a unix socket path, absolute (a relative one would depend on the directory
/// drover was started in, which a re-executed drover may not share) and short enough to bind.
fn upgrade_socket(ctx: &mut Ctx<'_>, t: &Table<'_, '_>) -> Option<std::path::PathBuf> {
    let text = t.str(ctx, "upgrade_socket", "a unix socket path")?;
    let v = t.get("upgrade_socket")?;
    let key = t.child("upgrade_socket");
    if !text.starts_with('/') {
        ctx.bad(
            &key,
            v,
            "must be an absolute path, e.g. \"/run/drover/upgrade.sock\"",
        );
        return None;
    }
    if text.len() > MAX_UNIX_PATH {
        ctx.bad(
            &key,
            v,
            format!(
                "a unix socket path is at most {MAX_UNIX_PATH} bytes, this one has {}; choose a \
                 shorter one, e.g. \"/run/drover/upgrade.sock\"",
                text.len()
            ),
        );
        return None;
    }
    Some(std::path::PathBuf::from(text))
}

fn admin(ctx: &mut Ctx<'_>, root: &Table<'_, '_>) -> (Option<Admin>, Option<Bind>) {
    let Some(t) = root.table(ctx, "admin", Some(ADMIN_KEYS)) else {
        return (None, None);
    };
    let mut admin = Admin::default();
    let mut bind = None;
    if let (Some(text), Some(v)) = (t.str(ctx, "listen", units::LISTEN_FORMS), t.get("listen")) {
        match units::parse_listen(text) {
            Ok(addr) => {
                admin.listen = addr;
                bind = Some(Bind {
                    addr,
                    key: t.child("listen"),
                    at: v.span().start,
                    written: ctx.written(v),
                    owner: "[admin]".into(),
                });
            }
            Err(e) => ctx.bad(
                &t.child("listen"),
                v,
                format!("invalid listen address: {e}"),
            ),
        }
    } else if !t.has("listen") {
        // The default address can collide with a listener too.
        bind = Some(Bind {
            addr: admin.listen,
            key: t.child("listen"),
            at: t.at(),
            written: Some(format!("\"{}\" (the default)", admin.listen)),
            owner: "[admin]".into(),
        });
    }
    admin.token = crate::reports::secret(ctx, &t, "token", "token_file", "for API calls");
    admin.users = users(ctx, &t);
    admin.open_reads = t.bool(ctx, "open_reads").unwrap_or(false);
    (Some(admin), bind)
}

/// `users_file`: `name:<bcrypt hash>` lines (`htpasswd -nbB name password`); `#` comments and
/// blank lines skipped. Errors name the file's line; hashes never appear in messages.
fn users(ctx: &mut Ctx<'_>, t: &Table<'_, '_>) -> Vec<crate::model::AdminUser> {
    let Some(v) = t.get("users_file") else {
        return Vec::new();
    };
    let key = t.child("users_file");
    let Some(path) = ctx.expect_str(&key, v, "a path to an htpasswd file (bcrypt)") else {
        return Vec::new();
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => {
            ctx.bad(&key, v, format!("cannot read the users file: {e}"));
            return Vec::new();
        }
    };
    let mut users: Vec<crate::model::AdminUser> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let problem = match line.split_once(':') {
            None => Some("expected name:<bcrypt hash>, as `htpasswd -nbB name password` prints"),
            Some(("", _)) => Some("the user name is empty"),
            Some((name, _)) if users.iter().any(|u| u.name == name) => {
                Some("this user is already in the file")
            }
            Some((_, hash))
                if !(hash.starts_with("$2a$")
                    || hash.starts_with("$2b$")
                    || hash.starts_with("$2y$"))
                    || hash.len() != 60 =>
            {
                Some(
                    "not a bcrypt hash ($2y$..., 60 characters); create it with `htpasswd -nbB name password`",
                )
            }
            Some((name, hash)) => {
                users.push(crate::model::AdminUser {
                    name: name.to_owned(),
                    hash: hash.to_owned(),
                });
                None
            }
        };
        if let Some(problem) = problem {
            ctx.bad(&key, v, format!("{path}:{}: {problem}", n + 1));
        }
    }
    if users.is_empty() {
        ctx.bad(&key, v, format!("{path}: no users in the file"));
    }
    users
}

/// An address some table binds, for the "each address bound once" check.
pub(crate) struct Bind {
    pub addr: SocketAddr,
    pub key: String,
    /// Byte offset of the value (or of the table, for a default).
    pub at: usize,
    pub written: Option<String>,
    /// `listener "web"` or `[admin]`.
    pub owner: String,
}

fn check_binds(ctx: &mut Ctx<'_>, binds: &[Bind]) {
    for (i, b) in binds.iter().enumerate() {
        if let Some(first) = binds[..i].iter().find(|a| overlap(a.addr, b.addr)) {
            let message = format!(
                "{} is already bound by {} ({}, line {}); each address may be bound once",
                b.addr,
                first.owner,
                first.key,
                ctx.line(first.at)
            );
            ctx.error(b.at, &b.key, b.written.clone(), message);
        }
    }
}

/// Whether binding both would fail: the same port on the same IP, or on a wildcard address that
/// covers the other (`0.0.0.0` covers IPv4; `[::]` covers both families, being dual-stack by
/// default on Linux). Port 0 picks a free port each time, so it never collides.
fn overlap(a: SocketAddr, b: SocketAddr) -> bool {
    let covers =
        |w: SocketAddr, o: SocketAddr| w.ip().is_unspecified() && (w.is_ipv6() || o.is_ipv4());
    a.port() != 0 && a.port() == b.port() && (a.ip() == b.ip() || covers(a, b) || covers(b, a))
}

/// `name = { status, body, content_type }` in `t`; absent keys come from `default`.
pub(crate) fn page(ctx: &mut Ctx<'_>, t: &Table<'_, '_>, name: &str, default: Page) -> Page {
    let Some(p) = t.table(ctx, name, Some(PAGE_KEYS)) else {
        return default;
    };
    let content_type = match (
        p.str(ctx, "content_type", "a media type string"),
        p.get("content_type"),
    ) {
        (Some(ct), Some(v)) => {
            let valid = ct.contains('/') && ct.chars().all(|c| c.is_ascii_graphic() || c == ' ');
            if !valid {
                ctx.bad(
                    &p.child("content_type"),
                    v,
                    "expected a media type such as \"text/html; charset=utf-8\"",
                );
            }
            ct.to_owned()
        }
        _ => default.content_type,
    };
    Page {
        status: p
            .int(ctx, "status", 200..=599)
            .map_or(default.status, |s| s as u16),
        body: p
            .str(ctx, "body", "a string")
            .map_or(default.body, str::to_owned),
        content_type,
    }
}

/// A redirect target `t.name`: an absolute http(s) URL or a path, fit for a `Location` header.
pub(crate) fn location(ctx: &mut Ctx<'_>, t: &Table<'_, '_>, name: &str) -> Option<String> {
    const FORMS: &str = "an absolute URL (\"https://example.com/...\") or a path \
                         (\"/maintenance\"), without spaces or non-ASCII characters (percent-encode them)";
    let text = t.str(ctx, name, FORMS)?;
    let valid =
        (text.starts_with("http://") || text.starts_with("https://") || text.starts_with('/'))
            && text.chars().all(|c| c.is_ascii_graphic());
    if !valid {
        if let Some(v) = t.get(name) {
            ctx.bad(&t.child(name), v, format!("expected {FORMS}"));
        }
        return None;
    }
    Some(text.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn overlapping_binds() {
        assert!(overlap(sa("127.0.0.1:80"), sa("127.0.0.1:80")));
        assert!(!overlap(sa("127.0.0.1:80"), sa("127.0.0.1:81")));
        assert!(!overlap(sa("127.0.0.1:80"), sa("127.0.0.2:80")));
        assert!(overlap(sa("0.0.0.0:80"), sa("127.0.0.1:80")));
        assert!(overlap(sa("127.0.0.1:80"), sa("0.0.0.0:80")));
        assert!(!overlap(sa("0.0.0.0:80"), sa("[::1]:80")));
        assert!(overlap(sa("[::]:80"), sa("10.0.0.1:80")));
        assert!(!overlap(sa("127.0.0.1:0"), sa("127.0.0.1:0")));
    }
}
