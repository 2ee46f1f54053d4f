//! `[farm.<name>.sticky]` and the member key `redirect`: defaults per mode, values, and errors
//! that name the line, the key and the fix, without echoing insert keys.

use std::path::Path;
use std::time::Duration;

use drover_config::{RouteCookie, StickyMode, parse_str};

const HEAD: &str = "[[listener]]\nlisten = \"127.0.0.1:0\"\nfarm = \"app\"\n\n[farm.app]\n";
const ROUTED: &str = "members = [\n  { name = \"a\", address = \"127.0.0.1:9001\", route = \"n1\" },\n  \
    { name = \"b\", address = \"127.0.0.1:9002\", route = \"n2\" },\n]\n";

fn parse(members: &str, sticky: &str) -> Result<drover_config::Config, String> {
    let text = format!("{HEAD}{members}\n[farm.app.sticky]\n{sticky}");
    parse_str(&text, Path::new("t.toml")).map_err(|e| e.to_string())
}

#[test]
fn route_mode_defaults() {
    let c = parse(ROUTED, "mode = \"route\"\ncookie = \"JSESSIONID\"\n").unwrap();
    let s = c.farms[0].sticky.as_ref().unwrap();
    assert_eq!(s.mode, StickyMode::Route);
    assert_eq!(s.cookie.as_deref(), Some("JSESSIONID"));
    assert_eq!(s.path_param, None);
    assert_eq!(s.separator, b'.');
    assert!(!s.nofailover);
    assert_eq!(s.moved_header.as_deref(), Some("X-Drover-Sticky-Moved"));
    assert_eq!(s.set_cookie, RouteCookie::Moved);
    assert_eq!(s.redirects, vec![None, None]);
}

#[test]
fn insert_and_learn_values() {
    let c = parse(
        ROUTED,
        "mode = \"insert\"\nkeys = [\"0123456789abcdef\", \"fedcba9876543210\"]\n\
         max_age = \"1h\"\nsecure = true\nsame_site = \"none\"\ndomain = \"example.com\"\n\
         http_only = false\nmoved_header = \"\"\n",
    )
    .unwrap();
    let s = c.farms[0].sticky.as_ref().unwrap();
    assert_eq!(
        s.cookie.as_deref(),
        Some("DROVERID"),
        "insert's default name"
    );
    assert_eq!(s.insert.keys[1].expose(), b"fedcba9876543210");
    assert_eq!(s.insert.max_age, Some(Duration::from_secs(3600)));
    assert_eq!(s.insert.same_site.as_deref(), Some("None"));
    assert_eq!(s.insert.domain.as_deref(), Some("example.com"));
    assert!(s.insert.secure && !s.insert.http_only);
    assert_eq!(s.moved_header, None);
    assert!(
        !format!("{s:?}").contains("0123456789abcdef"),
        "keys stay out of Debug"
    );

    let c = parse(
        ROUTED,
        "mode = \"learn\"\ncookie = \"PHPSESSID\"\nttl = \"5m\"\nmax_sessions = 1000\n",
    )
    .unwrap();
    let s = c.farms[0].sticky.as_ref().unwrap();
    assert_eq!((s.ttl, s.max_sessions), (Duration::from_secs(300), 1000));
}

#[test]
fn redirect_names_another_members_route() {
    let members = "members = [\n  { name = \"a\", address = \"127.0.0.1:9001\", route = \"n1\", redirect = \"n2\" },\n  \
        { name = \"b\", address = \"127.0.0.1:9002\", route = \"n2\" },\n]\n";
    let c = parse(members, "mode = \"route\"\ncookie = \"BALANCEID\"\n").unwrap();
    assert_eq!(
        c.farms[0].sticky.as_ref().unwrap().redirects,
        vec![Some("n2".to_owned()), None]
    );
    let bad = members.replace("redirect = \"n2\"", "redirect = \"n9\"");
    let e = parse(&bad, "mode = \"route\"\ncookie = \"BALANCEID\"\n").unwrap_err();
    assert!(e.contains("t.toml:7") && e.contains("redirect"), "{e}");
    assert!(
        e.contains("no member of this farm has route \"n9\"; routes here: n1, n2"),
        "{e}"
    );
    let own = members.replace("redirect = \"n2\"", "redirect = \"n1\"");
    let e = parse(&own, "mode = \"route\"\ncookie = \"BALANCEID\"\n").unwrap_err();
    assert!(e.contains("cannot redirect its sessions to itself"), "{e}");
    // Without stickiness, redirect means nothing.
    let text = format!("{HEAD}{members}");
    let e = parse_str(&text, Path::new("t.toml"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("only applies to sticky sessions"), "{e}");
}

#[test]
fn errors_name_line_key_and_fix() {
    let cases: &[(&str, &str, &str)] = &[
        ("", "farm.app.sticky.mode", "missing; one of \"route\""),
        (
            "mode = \"cookie\"",
            "farm.app.sticky.mode",
            "expected \"route\"",
        ),
        (
            "mode = \"route\"",
            "farm.app.sticky.cookie",
            "route mode needs cookie",
        ),
        (
            "mode = \"learn\"",
            "farm.app.sticky.cookie",
            "e.g. cookie = \"PHPSESSID\"",
        ),
        (
            "mode = \"insert\"",
            "farm.app.sticky.keys",
            "missing; insert mode signs",
        ),
        (
            "mode = \"route\"\ncookie = \"A\"\nkeys = [\"0123456789abcdef\"]",
            "farm.app.sticky.keys",
            "only applies to mode = \"insert\" (this one is \"route\")",
        ),
        (
            "mode = \"insert\"\nttl = \"1m\"\nkeys = [\"0123456789abcdef\"]",
            "farm.app.sticky.ttl",
            "only applies to mode = \"learn\"",
        ),
        (
            "mode = \"route\"\ncookie = \"A B\"",
            "farm.app.sticky.cookie",
            "invalid name",
        ),
        (
            "mode = \"route\"\ncookie = \"A\"\nseparator = \"ab\"",
            "farm.app.sticky.separator",
            "one ASCII punctuation character",
        ),
        (
            "mode = \"route\"\ncookie = \"A\"\nseparator = \"-\"",
            "farm.app.sticky.separator",
            "not '-' or '_' (route ids hold them)",
        ),
        (
            "mode = \"route\"\ncookie = \"A\"\nset_cookie = \"always\"",
            "farm.app.sticky.set_cookie",
            "\"never\", \"moved\" or \"new\"",
        ),
        (
            "mode = \"insert\"\nkeys = [\"0123456789abcdef\"]\nsame_site = \"none\"",
            "farm.app.sticky.same_site",
            "secure = true",
        ),
        (
            "mode = \"learn\"\ncookie = \"S\"\nmax_sessions = 0",
            "farm.app.sticky.max_sessions",
            "",
        ),
        (
            "mode = \"route\"\ncookie = \"A\"\nstick = 1",
            "farm.app.sticky.stick",
            "unknown",
        ),
    ];
    for (sticky, key, fix) in cases {
        let e = parse(ROUTED, &format!("{sticky}\n")).unwrap_err();
        assert!(
            e.contains("t.toml:") && e.contains(key) && e.contains(fix),
            "{sticky}:\n{e}"
        );
    }
}

#[test]
fn route_mode_without_routes_is_refused() {
    let members = "members = [{ name = \"a\", address = \"127.0.0.1:9001\" }]\n";
    let e = parse(members, "mode = \"route\"\ncookie = \"JSESSIONID\"\n").unwrap_err();
    assert!(e.contains("no member has a route"), "{e}");
}

#[test]
fn insert_keys_are_never_echoed() {
    let e = parse(ROUTED, "mode = \"insert\"\nkeys = [\"short-key-42\"]\n").unwrap_err();
    assert!(e.contains("key 1 is too short (12 bytes)"), "{e}");
    assert!(!e.contains("short-key-42"), "{e}");
    let e = parse(
        ROUTED,
        "mode = \"insert\"\nkeys = \"a-single-key-0123456789\"\n",
    )
    .unwrap_err();
    assert!(e.contains("expected an array of strings"), "{e}");
    assert!(!e.contains("a-single-key"), "{e}");
}
