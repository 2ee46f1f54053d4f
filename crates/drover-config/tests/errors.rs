//! A deliberately broken config (tests/broken.toml) yields exactly one error per problem, each
//! on the right line with the right dotted key, and the whole report reads one error per line.

use std::path::{Path, PathBuf};

use drover_config::{ConfigError, load, parse_str};

fn broken() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/broken.toml")
}

fn errors_of(text: &str) -> Vec<ConfigError> {
    parse_str(text, Path::new("t.toml"))
        .expect_err("should not validate")
        .0
}

#[test]
fn broken_config_reports_every_problem_once_on_its_line() {
    let errors = load(&broken()).expect_err("broken.toml must not validate");
    let got: Vec<(usize, &str)> = errors.iter().map(|e| (e.line, e.key.as_str())).collect();
    let expected = vec![
        (5, "server.grace"),
        (10, "listener[0].idel_timeout"),
        (11, "listener[0].max_header_bytes"),
        (15, "listener[0].route[0].farm"),
        (20, "listener[0].route[1]"),
        (23, "listener[0].route[2].regex"),
        (28, "listener[1].listen[1]"),
        (32, "farm.app.policy"),
        (33, "farm.app.connect_timeout"),
        (36, "farm.app.members[1].address"),
        (37, "farm.app.members[2].weight"),
        (41, "farm.static.hash_key"),
    ];
    assert_eq!(got, expected, "\n{errors}");
}

#[test]
fn broken_config_messages_say_what_would_be_valid() {
    let errors = load(&broken()).unwrap_err();
    let text = errors.to_string();
    let file = broken().display().to_string();
    let line = |n: usize| {
        let prefix = format!("{file}:{n}: ");
        text.lines()
            .find(|l| l.starts_with(&prefix))
            .unwrap_or_else(|| panic!("no error on line {n}:\n{text}"))
            .strip_prefix(&prefix)
            .unwrap()
            .to_owned()
    };
    assert_eq!(text.lines().count(), errors.len(), "one error per line");

    assert!(
        line(5).starts_with(
            "server.grace = \"30 seconds\": invalid duration: unknown unit \"seconds\""
        )
    );
    assert!(line(5).contains("\"1m30s\""), "{}", line(5));
    assert!(line(10).starts_with(
        "listener[0].idel_timeout: unknown key (did you mean idle_timeout?); valid keys here: name, listen,"
    ));
    assert!(
        line(11).contains("expected a size from 8KiB to 16MiB"),
        "{}",
        line(11)
    );
    assert_eq!(
        line(15),
        "listener[0].route[0].farm = \"statc\": unknown farm (did you mean \"static\"?); \
         defined farms: app, static"
    );
    assert_eq!(
        line(20),
        "listener[0].route[1]: a route takes exactly one action (farm, exclude, redirect or \
         respond); found farm and redirect"
    );
    assert!(
        line(23).contains("invalid regex: unclosed group"),
        "{}",
        line(23)
    );
    assert!(line(28).contains("already bound by listener \"web\" (listener[0].listen, line 9)"));
    assert_eq!(
        line(32),
        "farm.app.policy = \"round-robbin\": unknown policy; expected one of round-robin, \
         weighted, least-conn, random, p2c, peak-ewma, hash, adaptive, simple(<metric>), \
         dynamic(<metric>=<weight>, ...), lowest(<metric>), or an array of pipeline stages \
         (did you mean \"round-robin\"?)"
    );
    assert!(line(33).contains("missing unit after 3"), "{}", line(33));
    assert!(line(36).starts_with("farm.app.members[1].address = \"127.0.0.1:99999\": invalid member address: port must be 1 to 65535"));
    assert!(line(37).ends_with("= 0: out of range; expected an integer from 1 to 1000"));
    assert!(line(41).contains("\"header:<Name>\""), "{}", line(41));

    let e = &errors.0[0];
    assert_eq!((e.line, e.column), (5, 9), "column points at the value");
    assert_eq!(e.value.as_deref(), Some("\"30 seconds\""));
}

#[test]
fn unreadable_file_is_one_error_without_line() {
    let errors = load(Path::new("/nonexistent/drover.toml")).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors.0[0].line, 0);
    assert!(
        errors
            .to_string()
            .starts_with("/nonexistent/drover.toml: cannot read the config file:")
    );
}

#[test]
fn syntax_errors_have_lines_and_stop_validation() {
    let errors = errors_of("[server]\nthreads = 1\ngrace = 30s\n");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].line, 3);
    assert!(
        errors[0]
            .to_string()
            .starts_with("t.toml:3: TOML syntax error:")
    );
    let errors = errors_of("[server]\n[server]\n");
    assert_eq!(errors[0].line, 2);
}

#[test]
fn missing_listener_and_empty_file() {
    let errors = errors_of("");
    assert_eq!(errors.len(), 1);
    assert_eq!((errors[0].line, errors[0].key.as_str()), (0, "listener"));
}

/// A minimal valid prefix to which one broken part is added.
const BASE: &str = "[farm.app]\nmembers = [{ address = \"127.0.0.1:9001\" }]\n";

fn one_error(extra: &str) -> ConfigError {
    let text = format!("{BASE}{extra}");
    let mut errors = errors_of(&text);
    assert_eq!(errors.len(), 1, "{text}\n{errors:#?}");
    errors.remove(0)
}

#[test]
fn listener_problems() {
    let e = one_error("[[listener]]\nlisten = \"127.0.0.1:80\"\n");
    assert_eq!(
        (e.line, e.key.as_str()),
        (3, "listener[0]"),
        "no farm and no route"
    );
    let e = one_error("[[listener]]\nlisten = \"127.0.0.1:80\"\nroute = []\n");
    assert_eq!(
        (e.line, e.key.as_str()),
        (3, "listener[0]"),
        "an empty route list"
    );
    let e = one_error("[[listener]]\nlisten = \"127.0.0.1:80\"\nroute = 1\n");
    assert_eq!((e.line, e.key.as_str()), (5, "listener[0].route"), "{e}");
    let e = one_error("[[listener]]\nfarm = \"app\"\n");
    assert_eq!((e.line, e.key.as_str()), (3, "listener[0].listen"));
    let e = one_error("[[listener]]\nlisten = \"localhost:80\"\nfarm = \"app\"\n");
    assert_eq!(e.key, "listener[0].listen");
    let e = one_error("[listener]\nlisten = \"127.0.0.1:80\"\nfarm = \"app\"\n");
    assert!(e.message.contains("[[listener]]"), "{e}");
    let e = one_error(
        "[[listener]]\nlisten = \"127.0.0.1:80\"\nfarm = \"app\"\nforwarded_headers = \"x_forwarded\"\n",
    );
    assert!(e.message.contains("(did you mean \"x-forwarded\"?)"), "{e}");
    let e = one_error(
        "[[listener]]\nlisten = \"127.0.0.1:80\"\nfarm = \"app\"\ntrusted_proxies = [\"10.0.0.0/8\", \"10.0.0.0/40\"]\n",
    );
    assert_eq!(e.key, "listener[0].trusted_proxies[1]");
    let e = one_error("[[listener]]\nlisten = \"127.0.0.1:80\"\nfarm = \"app\"\nmax_headers = 0\n");
    assert_eq!(e.key, "listener[0].max_headers");
    let e = one_error(
        "[[listener]]\nlisten = \"127.0.0.1:80\"\nfarm = \"app\"\n[[listener]]\nlisten = \"127.0.0.1:81\"\nfarm = \"app\"\nname = \"listener1\"\n",
    );
    assert_eq!((e.line, e.key.as_str()), (9, "listener[1].name"), "{e}");
    let e = one_error("[admin]\n[[listener]]\nlisten = \"0.0.0.0:9090\"\nfarm = \"app\"\n");
    assert_eq!(
        (e.line, e.key.as_str()),
        (3, "admin.listen"),
        "default admin address clashes: {e}"
    );
}

#[test]
fn route_problems() {
    let listener = "[[listener]]\nlisten = \"127.0.0.1:80\"\n[[listener.route]]\n";
    let cases = [
        ("path = \"/a\"\n", "listener[0].route[0]", 5),
        (
            "path = \"a\"\nfarm = \"app\"\n",
            "listener[0].route[0].path",
            6,
        ),
        (
            "path = \"/a\"\nregex = \"^/b\"\nfarm = \"app\"\n",
            "listener[0].route[0].regex",
            7,
        ),
        (
            "host = \"example.com:80\"\nfarm = \"app\"\n",
            "listener[0].route[0].host",
            6,
        ),
        (
            "redirect = \"https://x/\"\nstatus = 200\n",
            "listener[0].route[0].status",
            7,
        ),
        (
            "redirect = \"not a url\"\n",
            "listener[0].route[0].redirect",
            6,
        ),
        (
            "farm = \"app\"\nstatus = 301\n",
            "listener[0].route[0].status",
            7,
        ),
        (
            "respond = { status = 700 }\n",
            "listener[0].route[0].respond.status",
            6,
        ),
        (
            "respond = { status = 200, bodi = \"x\" }\n",
            "listener[0].route[0].respond.bodi",
            6,
        ),
        ("exclude = false\n", "listener[0].route[0]", 5),
        ("exclude = \"yes\"\n", "listener[0].route[0].exclude", 6),
    ];
    for (route, key, line) in cases {
        let e = one_error(&format!("{listener}{route}"));
        assert_eq!((e.key.as_str(), e.line), (key, line), "{route}: {e}");
    }
}

#[test]
fn farm_problems() {
    let listener = "[[listener]]\nlisten = \"127.0.0.1:80\"\nfarm = \"f\"\n[farm.f]\n";
    let m = "members = [{ address = \"127.0.0.1:9001\" }]\n";
    let cases = [
        (String::new(), "farm.f.members", 4),
        ("members = []\n".to_owned(), "farm.f.members", 5),
        (format!("{m}hash_key = \"source\"\n"), "farm.f.hash_key", 6),
        (format!("{m}policy = \"hash\"\nhash_key = \"header:X Y\"\n"), "farm.f.hash_key", 7),
        (format!("{m}policy = \"hash\"\nhash_key = \"source\"\nhash_bound = 0.5\n"), "farm.f.hash_bound", 8),
        (format!("{m}retries = 8\n"), "farm.f.retries", 6),
        (format!("{m}connect_timeout = \"0s\"\n"), "farm.f.connect_timeout", 6),
        (format!("{m}preserve_host = \"yes\"\n"), "farm.f.preserve_host", 6),
        (format!("{m}[farm.f.outage]\n"), "farm.f.outage", 6),
        (format!("{m}[farm.f.outage]\nredirect = \"/x\"\nsorry = \"127.0.0.1:1\"\n"), "farm.f.outage", 8),
        (format!("{m}[farm.f.outage]\nsorry = \"127.0.0.1\"\n"), "farm.f.outage.sorry", 7),
        (
            "members = [{ address = \"127.0.0.1:1\" }, { address = \"127.0.0.1:1\" }]\n".to_owned(),
            "farm.f.members[1].address",
            5,
        ),
        (
            "members = [{ address = \"127.0.0.1:1\", name = \"a\" }, { address = \"127.0.0.1:2\", name = \"a\" }]\n".to_owned(),
            "farm.f.members[1].name",
            5,
        ),
        (
            "[[farm.f.members]]\naddress = \"127.0.0.1:1\"\nroute = \"n1\"\n[[farm.f.members]]\naddress = \"127.0.0.1:2\"\nroute = \"n1\"\n".to_owned(),
            "farm.f.members[1].route",
            10,
        ),
        ("[[farm.f.members]]\naddres = \"127.0.0.1:1\"\n".to_owned(), "farm.f.members[0].addres", 6),
        ("members = [{ address = \"127.0.0.1:1\", route = \"a.b\" }]\n".to_owned(), "farm.f.members[0].route", 5),
    ];
    for (farm, key, line) in cases {
        let text = format!("{listener}{farm}");
        let mut errors = errors_of(&text);
        // A missing address also makes the member unusable: only the first error matters here.
        if key.ends_with("addres") {
            errors.retain(|e| e.key.ends_with("addres"));
        }
        assert_eq!(errors.len(), 1, "{farm}\n{errors:#?}");
        let e = &errors[0];
        assert_eq!((e.key.as_str(), e.line), (key, line), "{farm}: {e}");
    }
}

#[test]
fn policy_typo_suggests_peak_ewma() {
    let e = one_error(
        "[[listener]]\nlisten = \"127.0.0.1:80\"\nfarm = \"app\"\n[farm.f]\npolicy = \"peak_ewma\"\nmembers = [{ address = \"127.0.0.1:1\" }]\n",
    );
    assert_eq!(e.key, "farm.f.policy");
    assert!(
        e.to_string().ends_with("(did you mean \"peak-ewma\"?)"),
        "{e}"
    );
}

#[test]
fn farm_keys_outside_a_named_farm() {
    let e = one_error(
        "[[listener]]\nlisten = \"127.0.0.1:80\"\nfarm = \"app\"\n[farm]\npolicy = \"random\"\n",
    );
    assert_eq!((e.line, e.key.as_str()), (7, "farm.policy"));
    assert!(e.message.contains("[farm.<name>]"), "{e}");
}

/// Every truncation of a real config (what an editor saves mid-change) is reported without a
/// panic, and every error points inside the file.
#[test]
fn truncated_files_never_panic_and_point_inside_the_file() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let files = [
        broken(),
        examples.join("quickstart.toml"),
        examples.join("health.toml"),
    ];
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let lines = text.lines().count();
        for end in (0..text.len()).filter(|&i| text.is_char_boundary(i)) {
            let Err(errors) = parse_str(&text[..end], &file) else {
                continue;
            };
            assert!(!errors.is_empty());
            for e in &errors {
                assert!(e.line <= lines, "{e} (cut at {end})");
                assert!(
                    !e.message.is_empty() && !e.to_string().contains('\n'),
                    "{e}"
                );
            }
        }
    }
}

#[test]
fn upgrade_socket_must_be_an_absolute_short_path() {
    let member = "[[listener]]\nlisten = \"127.0.0.1:8080\"\nfarm = \"a\"\n[farm.a]\nmembers = [{ address = \"127.0.0.1:9001\" }]\n";
    let relative = errors_of(&format!(
        "[server]\nupgrade_socket = \"run/up.sock\"\n{member}"
    ));
    assert_eq!(relative.len(), 1, "{relative:?}");
    let text = relative[0].to_string();
    assert_eq!(relative[0].line, 2);
    assert_eq!(relative[0].key, "server.upgrade_socket");
    assert!(text.contains("\"run/up.sock\""), "{text}");
    assert!(text.contains("absolute path"), "{text}");

    let long = format!("/{}", "x".repeat(120));
    let too_long = errors_of(&format!("[server]\nupgrade_socket = \"{long}\"\n{member}"));
    assert_eq!(too_long.len(), 1, "{too_long:?}");
    let text = too_long[0].to_string();
    assert!(
        text.contains("at most 107 bytes, this one has 121"),
        "{text}"
    );
}
