//! The admin API's authentication and the operator's writes, in the real binary over real
//! sockets: reads closed unless `open_reads`, every write behind a bearer token or basic auth
//! (bcrypt users file), 401 (with a log line, and before any lookup) for missing or wrong
//! credentials, enable / disable / drain / undrain and weight changes that traffic follows, and
//! 4xx with a reason for bad input, 403 for cross-site writes (CSRF) even with valid credentials.
//! Secrets never appear in answers or logs.

mod chaoskit;
mod common;

use std::net::SocketAddr;

use base64::Engine;
use common::{call, temp_path};
use drover_testkit::client::{self, Reply};
use http::Method;
use serde_json::Value;

const TOKEN: &str = "admin-test-token-0123456789abcdef";

type Setup = common::AppSetup;

async fn setup(admin_keys: &str) -> Setup {
    common::serve_app(&["a1", "a2", "a3"], admin_keys).await
}

fn bearer(token: &str) -> Vec<(&'static str, String)> {
    vec![("authorization", format!("Bearer {token}"))]
}

fn basic(user: &str, password: &str) -> Vec<(&'static str, String)> {
    let creds = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    vec![("authorization", format!("Basic {creds}"))]
}

async fn write(s: &Setup, path: &str, auth: &[(&str, String)]) -> Reply {
    call(s.admin, Method::POST, path, b"", auth).await
}

async fn patch(s: &Setup, path: &str, body: &str, auth: &[(&str, String)]) -> Reply {
    call(s.admin, Method::PATCH, path, body.as_bytes(), auth).await
}

fn json(r: &Reply) -> Value {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("{e}: {}", r.text()))
}

/// Which members answer `n` requests.
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_are_closed_by_default_and_writes_always_need_credentials() {
    let s = setup(&format!("token = \"{TOKEN}\"")).await;
    let r = call(s.admin, Method::GET, "/api/v1/farms", b"", &[]).await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(
        r.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("Bearer")
    );
    let r = call(s.admin, Method::GET, "/api/v1/farms", b"", &bearer(TOKEN)).await;
    assert_eq!(r.status, 200);
    // Open to everyone: the health check and the signed intake (which answers on its own terms).
    assert_eq!(
        call(s.admin, Method::GET, "/healthz", b"", &[])
            .await
            .status,
        200
    );
    assert_eq!(
        call(s.admin, Method::POST, "/api/v1/reports", b"{}", &[])
            .await
            .status,
        403,
        "no [reports] secret: pushes are off, whatever the token"
    );
    // A write to a member that does not exist: 401 first, not 404.
    let r = write(&s, "/api/v1/farms/app/members/nobody/disable", &[]).await;
    assert_eq!(r.status, 401, "{}", r.text());
    let r = write(
        &s,
        "/api/v1/farms/nofarm/members/nobody/disable",
        &bearer("wrong-token"),
    )
    .await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(r.text().contains("wrong token"), "{}", r.text());
    let r = call(s.admin, Method::GET, "/no/such/page", b"", &[]).await;
    assert_eq!(r.status, 401, "unknown paths are behind the check too");
    let log = s.drover.stderr();
    assert!(
        log.contains("admin: 401"),
        "a log line for the refusal:\n{log}"
    );
    assert!(
        !log.contains(TOKEN) && !log.contains("wrong-token"),
        "no secret in the log:\n{log}"
    );
    // With the token, the lookup happens: 404 with a reason.
    let r = write(
        &s,
        "/api/v1/farms/app/members/nobody/disable",
        &bearer(TOKEN),
    )
    .await;
    assert_eq!(r.status, 404);
    assert!(
        json(&r)["error"]
            .as_str()
            .unwrap()
            .contains("no member \"nobody\"")
    );
    let r = write(&s, "/api/v1/farms/app/members/a1/explode", &bearer(TOKEN)).await;
    assert_eq!(r.status, 404);
    assert!(
        json(&r)["error"]
            .as_str()
            .unwrap()
            .contains("use enable, disable, drain or undrain")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_configured_credentials_no_write_is_possible() {
    let s = setup("open_reads = true").await;
    let r = call(s.admin, Method::GET, "/api/v1/farms", b"", &[]).await;
    assert_eq!(r.status, 200, "open_reads");
    let r = write(&s, "/api/v1/farms/app/members/a1/disable", &bearer(TOKEN)).await;
    assert_eq!(r.status, 401);
    assert!(
        r.text().contains("no credentials are configured"),
        "{}",
        r.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_drain_and_weight_steer_traffic() {
    let s = setup(&format!("token = \"{TOKEN}\"\nopen_reads = true")).await;
    let all = spread(s.listen, 9).await;
    assert_eq!(all.iter().filter(|m| *m == "a1").count(), 3);

    let r = write(&s, "/api/v1/farms/app/members/a1/disable", &bearer(TOKEN)).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let view = json(&r);
    assert_eq!(
        (view["name"].as_str(), view["on"].as_bool()),
        (Some("a1"), Some(false))
    );
    assert_eq!(
        view["last_transition"]["reason"],
        "operator (token): disable"
    );
    let seen = spread(s.listen, 12).await;
    assert!(
        !seen.contains(&"a1".to_owned()),
        "a disabled member gets no traffic: {seen:?}"
    );
    assert!(
        s.drover.stderr().contains("operator (token): disable"),
        "the flip is logged with who made it"
    );

    let r = write(&s, "/api/v1/farms/app/members/a1/enable", &bearer(TOKEN)).await;
    assert_eq!(json(&r)["on"], true);
    let r = write(&s, "/api/v1/farms/app/members/a2/drain", &bearer(TOKEN)).await;
    assert_eq!(json(&r)["draining"], true);
    let seen = spread(s.listen, 12).await;
    assert!(
        seen.contains(&"a1".to_owned()) && !seen.contains(&"a2".to_owned()),
        "{seen:?}"
    );
    let r = write(&s, "/api/v1/farms/app/members/a2/undrain", &bearer(TOKEN)).await;
    assert_eq!(json(&r)["draining"], false);

    // Weight: bad input gets a reason, good input is applied.
    for (body, status, why) in [
        ("{\"weight\": 0}", 400, "out of range"),
        ("{\"weight\": 1001}", 400, "out of range"),
        ("{\"weight\": ", 400, "malformed JSON"),
        ("{\"wieght\": 3}", 400, "unknown field"),
        ("{}", 400, "nothing to change"),
        ("{\"route\": \"n 1\"}", 400, "invalid route id"),
    ] {
        let r = patch(&s, "/api/v1/farms/app/members/a3", body, &bearer(TOKEN)).await;
        assert_eq!(r.status, status, "{body}: {}", r.text());
        assert!(
            json(&r)["error"].as_str().unwrap().contains(why),
            "{body}: {}",
            r.text()
        );
    }
    let r = patch(
        &s,
        "/api/v1/farms/app/members/zz",
        "{\"weight\": 3}",
        &bearer(TOKEN),
    )
    .await;
    assert_eq!(r.status, 404);
    let r = patch(&s, "/api/v1/farms/app/members/a3", "{\"weight\": 3}", &[]).await;
    assert_eq!(r.status, 401, "a PATCH is a write");
    let r = patch(
        &s,
        "/api/v1/farms/app/members/a3",
        "{\"weight\": 7}",
        &bearer(TOKEN),
    )
    .await;
    assert_eq!(
        (r.status.as_u16(), json(&r)["weight"].as_u64()),
        (200, Some(7))
    );
    let farm = chaoskit::farm_view(s.admin, "app").await;
    assert_eq!(chaoskit::member(&farm, "a3")["weight"], 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_checks_bcrypt_users() {
    let file = temp_path("users");
    let hash = bcrypt::hash("s3cret-pass", 5).unwrap();
    std::fs::write(&file, format!("# operators\nalice:{hash}\n")).unwrap();
    let s = setup(&format!("users_file = {:?}", file.display().to_string())).await;
    let r = write(
        &s,
        "/api/v1/farms/app/members/a1/drain",
        &basic("alice", "s3cret-pass"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        json(&r)["last_transition"]["reason"],
        "operator (alice): drain"
    );
    let r = write(
        &s,
        "/api/v1/farms/app/members/a1/drain",
        &basic("alice", "wrong"),
    )
    .await;
    assert_eq!(r.status, 401);
    let r = write(
        &s,
        "/api/v1/farms/app/members/a1/drain",
        &basic("mallory", "s3cret-pass"),
    )
    .await;
    assert_eq!(r.status, 401);
    let r = call(
        s.admin,
        Method::GET,
        "/api/v1/farms",
        b"",
        &basic("alice", "s3cret-pass"),
    )
    .await;
    assert_eq!(r.status, 200);
    let log = s.drover.stderr();
    assert!(
        !log.contains("s3cret-pass") && !log.contains(&hash),
        "{log}"
    );
    std::fs::remove_file(&file).unwrap();
}

/// Cross-site writes are refused (403) even with valid credentials; same-origin writes and
/// clients that send no Origin (curl, `drover ctl`) pass. Over real sockets, no browser needed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_site_writes_are_refused_with_valid_credentials() {
    let s = setup(&format!("token = \"{TOKEN}\"")).await;
    let bearer = ("authorization", format!("Bearer {TOKEN}"));
    let here = format!("http://{}", s.admin);
    let path = "/api/v1/farms/app/members/a1/drain";
    let since = s.drover.log_len();
    for (what, extra) in [
        (
            "foreign Origin",
            vec![("origin", "http://evil.example".to_owned())],
        ),
        (
            "Origin of another port",
            vec![("origin", format!("http://127.0.0.1:{}", s.listen.port()))],
        ),
        ("null Origin", vec![("origin", "null".to_owned())]),
        (
            "Sec-Fetch-Site cross-site",
            vec![("sec-fetch-site", "cross-site".to_owned())],
        ),
        (
            "Sec-Fetch-Site same-site",
            vec![
                ("origin", here.clone()),
                ("sec-fetch-site", "same-site".to_owned()),
            ],
        ),
    ] {
        let mut headers = vec![bearer.clone()];
        headers.extend(extra);
        let r = call(s.admin, Method::POST, path, b"", &headers).await;
        assert_eq!(r.status, 403, "{what}: {}", r.text());
        let r = call(
            s.admin,
            Method::PATCH,
            "/api/v1/farms/app/members/a1",
            br#"{"weight": 5}"#,
            &headers,
        )
        .await;
        assert_eq!(r.status, 403, "{what} (PATCH): {}", r.text());
    }
    s.drover
        .wait_for_log(since, &["admin: 403", "origin does not match host"])
        .await;
    // Nothing changed.
    let r = call(
        s.admin,
        Method::GET,
        "/api/v1/farms/app",
        b"",
        std::slice::from_ref(&bearer),
    )
    .await;
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["members"][0]["draining"], false, "{v:#}");
    assert_eq!(v["members"][0]["weight"], 1, "{v:#}");

    // Reads from anywhere are not refused (the browser keeps a foreign page from reading them).
    let r = call(
        s.admin,
        Method::GET,
        "/api/v1/farms",
        b"",
        &[bearer.clone(), ("origin", "http://evil.example".to_owned())],
    )
    .await;
    assert_eq!(r.status, 200);

    // Same origin (what the dashboard sends) and no Origin at all (curl, ctl) pass.
    let same = [
        bearer.clone(),
        ("origin", here.clone()),
        ("sec-fetch-site", "same-origin".to_owned()),
    ];
    let r = call(s.admin, Method::POST, path, b"", &same).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = call(
        s.admin,
        Method::POST,
        "/api/v1/farms/app/members/a1/undrain",
        b"",
        std::slice::from_ref(&bearer),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
}
