//! docs/openapi.json against the real binary over real sockets, driven by the document: every
//! operation it lists is called with valid input (its own examples, every value of an enum path
//! parameter) and must answer a status the document lists, with the documented content type,
//! required headers and a body that validates against the documented schema (JSON Schema 2020-12,
//! `jsonschema`). Then the negative cases, also derived from the document: no credentials (401
//! wherever a route is secured, and for every write), a wrong token, unknown farm, member or
//! action names (documented 404s, `{"error"}` for writes), malformed JSON, unknown fields and
//! out-of-range integers in request bodies (400), bodies over `x-max-bytes` (413), and a farm with
//! no ready member (503). Finally the document and the server are kept in step: the documented
//! (path, method) pairs must equal the routes registered in crates/drover-admin/src/lib.rs, a path
//! that is not documented is a 404 even with credentials, and a method that is not documented is
//! a 404 or 405.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use base64::Engine;
use common::{Drover, call, free_addr, signed, temp_path};
use drover_testkit::client::Reply;
use drover_testkit::{MemberConfig, TestMember};
use http::Method;
use serde_json::{Value, json};

const DOC: &str = include_str!("../../../docs/openapi.json");
/// The admin router, read as text: its `.route("...", method(...))` calls are the server's routes.
const ROUTER: &str = include_str!("../../drover-admin/src/lib.rs");

const TOKEN: &str = "openapi-test-token-0123456789abcdef";
const SECRET: &str = "openapi-test-push-secret-0123456789";
const USER: &str = "alice";
const PASSWORD: &str = "openapi-test-password";

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

// ---------------------------------------------------------------------------------------------
// Reading the document

/// Follows `$ref` (local JSON pointers only) until the value is not a reference.
fn resolve<'a>(doc: &'a Value, mut v: &'a Value) -> &'a Value {
    for _ in 0..32 {
        let Some(r) = v.get("$ref").and_then(Value::as_str) else {
            return v;
        };
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("only local $refs are supported: {r}"));
        v = doc
            .pointer(pointer)
            .unwrap_or_else(|| panic!("$ref {r} points at nothing"));
    }
    panic!("$ref chain too long at {v}");
}

/// One operation of the document.
struct Op<'a> {
    path: &'a str,
    method: Method,
    op: &'a Value,
    /// Path-item and operation parameters, resolved.
    params: Vec<&'a Value>,
}

impl<'a> Op<'a> {
    fn name(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    fn param(&self, name: &str) -> Option<&Value> {
        self.params.iter().copied().find(|p| {
            p["name"]
                .as_str()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        })
    }

    /// Needs admin credentials (its security, or the document's, is not empty and has no `{}`).
    fn secured(&self, doc: &Value) -> bool {
        let security = self.op.get("security").unwrap_or(&doc["security"]);
        let list = security.as_array().map(Vec::as_slice).unwrap_or_default();
        !list.is_empty()
            && !list
                .iter()
                .any(|s| s.as_object().is_some_and(|o| o.is_empty()))
    }

    /// Authenticated by a push signature instead (it takes the signature header).
    fn signed(&self) -> bool {
        self.param("X-Drover-Signature").is_some()
    }

    fn is_write(&self) -> bool {
        !matches!(self.method, Method::GET | Method::HEAD)
    }

    /// The documented response for `status`.
    fn response(&self, doc: &'a Value, status: u16) -> Option<&'a Value> {
        let r = self.op["responses"].get(status.to_string())?;
        Some(resolve(doc, r))
    }

    fn statuses(&self) -> Vec<String> {
        self.op["responses"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The `application/json` request body: (schema, example, x-max-bytes).
    fn json_body(&self, doc: &'a Value) -> Option<(&'a Value, &'a Value, Option<u64>)> {
        let body = resolve(doc, self.op.get("requestBody")?);
        let media = body["content"].get("application/json")?;
        let example = media
            .get("example")
            .unwrap_or_else(|| panic!("{}: the request body has no example", self.name()));
        Some((&media["schema"], example, body["x-max-bytes"].as_u64()))
    }
}

fn operations(doc: &Value) -> Vec<Op<'_>> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let item = resolve(doc, item);
        let shared: Vec<&Value> = item["parameters"]
            .as_array()
            .map(|ps| ps.iter().map(|p| resolve(doc, p)).collect())
            .unwrap_or_default();
        for m in METHODS {
            let Some(op) = item.get(m) else { continue };
            let mut params = shared.clone();
            for p in op["parameters"].as_array().into_iter().flatten() {
                let p = resolve(doc, p);
                params.retain(|q| q["name"] != p["name"] || q["in"] != p["in"]);
                params.push(p);
            }
            ops.push(Op {
                path,
                method: Method::from_bytes(m.to_uppercase().as_bytes()).unwrap(),
                op,
                params,
            });
        }
    }
    ops
}

/// A JSON Schema 2020-12 validator for `schema`, a schema of the document: it is validated as the
/// root of a copy that also holds the document's `components`, so `#/components/...` resolves.
fn validator(doc: &Value, schema: &Value) -> jsonschema::Validator {
    let mut root = match schema {
        Value::Object(o) => o.clone(),
        other => panic!("schema is not an object: {other}"),
    };
    root.insert("components".into(), doc["components"].clone());
    jsonschema::draft202012::new(&Value::Object(root))
        .unwrap_or_else(|e| panic!("schema {schema} does not compile: {e}"))
}

/// Every way `instance` fails `schema`, one per line (empty if it validates).
fn violations(doc: &Value, schema: &Value, instance: &Value) -> String {
    let v = validator(doc, schema);
    let mut out = String::new();
    for e in v.iter_errors(instance) {
        out.push_str(&format!("  at {:?}: {e}\n", e.instance_path().as_str()));
    }
    out
}

fn assert_valid(doc: &Value, schema: &Value, instance: &Value, what: &str) {
    let errors = violations(doc, schema, instance);
    assert!(
        errors.is_empty(),
        "{what}: does not match the documented schema {schema}:\n{errors}instance: {instance:#}"
    );
}

// ---------------------------------------------------------------------------------------------
// Calling the server

/// What credentials a call carries.
#[derive(Clone, Copy, PartialEq)]
enum Creds {
    /// The admin token, or a push signature for the signed intake.
    Valid,
    /// A user of the users file (basic auth).
    Basic,
    None,
    WrongToken,
}

/// A request built from an operation.
struct Request {
    method: Method,
    target: String,
    query: String,
    body: Vec<u8>,
}

impl Request {
    /// `op` with its examples, `values` overriding parameters by name, and `body` overriding the
    /// example body.
    fn new(
        op: &Op<'_>,
        doc: &Value,
        values: &BTreeMap<&str, Value>,
        body: Option<Vec<u8>>,
    ) -> Self {
        let mut target = op.path.to_owned();
        let mut query = Vec::new();
        for p in &op.params {
            let name = p["name"].as_str().expect("parameter name");
            let value = values
                .get(name)
                .or_else(|| p.get("example"))
                .or_else(|| resolve(doc, &p["schema"]).get("example"));
            let Some(value) = value else {
                assert!(
                    p["required"] != true || p["in"] == "header",
                    "{}: required parameter {name} has no example",
                    op.name()
                );
                continue;
            };
            match p["in"].as_str() {
                Some("path") => {
                    target = target.replace(&format!("{{{name}}}"), &plain(value));
                }
                Some("query") => match value {
                    // style form, explode (the default for query): one key per property.
                    Value::Object(o) if p["explode"] != false => {
                        query.extend(o.iter().map(|(k, v)| format!("{k}={}", plain(v))));
                    }
                    v => query.push(format!("{name}={}", plain(v))),
                },
                _ => {} // headers: the signature, computed when sent
            }
        }
        assert!(
            !target.contains('{'),
            "{}: unfilled path parameter",
            op.name()
        );
        let body = body.unwrap_or_else(|| {
            op.json_body(doc)
                .map(|(_, example, _)| serde_json::to_vec(example).unwrap())
                .unwrap_or_default()
        });
        Request {
            method: op.method.clone(),
            target,
            query: query.join("&"),
            body,
        }
    }

    async fn send(&self, op: &Op<'_>, doc: &Value, admin: SocketAddr, creds: Creds) -> Reply {
        let uri = if self.query.is_empty() {
            self.target.clone()
        } else {
            format!("{}?{}", self.target, self.query)
        };
        let mut headers = Vec::new();
        match creds {
            Creds::Valid if op.signed() => {
                // The GET form signs the query string as sent; the POST form its body.
                let payload = if self.body.is_empty() {
                    self.query.as_bytes()
                } else {
                    &self.body
                };
                headers = signed(SECRET, payload);
            }
            Creds::Valid if op.secured(doc) => headers.push(bearer(TOKEN)),
            Creds::Basic => {
                let pair =
                    base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
                headers.push(("authorization", format!("Basic {pair}")));
            }
            Creds::WrongToken => headers.push(bearer("not-the-token")),
            _ => {}
        }
        call(admin, self.method.clone(), &uri, &self.body, &headers).await
    }
}

fn bearer(token: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {token}"))
}

/// A parameter value as it goes into a URL (the examples need no escaping).
fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Checks `reply` against `op`'s documented responses: the status is listed, the required
/// headers are there, the content type is one documented, and the body validates. Returns the
/// body as JSON when it is JSON.
fn check(doc: &Value, op: &Op<'_>, what: &str, reply: &Reply) -> Option<Value> {
    let status = reply.status.as_u16();
    let text = String::from_utf8_lossy(&reply.body);
    let Some(response) = op.response(doc, status) else {
        panic!(
            "{what}: status {status} is not documented for {} (documented: {:?}); body: {text}",
            op.name(),
            op.statuses()
        );
    };
    for (name, header) in response["headers"].as_object().into_iter().flatten() {
        let header = resolve(doc, header);
        let value = reply
            .headers
            .get(name.as_str())
            .map(|v| v.to_str().unwrap());
        match value {
            Some(v) => assert_valid(
                doc,
                &header["schema"],
                &json!(v),
                &format!("{what}: header {name}"),
            ),
            None => assert!(
                header["required"] != true,
                "{what}: {status} without its required header {name}"
            ),
        }
    }
    let Some(content) = response.get("content").and_then(Value::as_object) else {
        assert!(
            reply.body.is_empty(),
            "{what}: {status} documents no body: {text}"
        );
        return None;
    };
    let media = reply
        .headers
        .get("content-type")
        .map(|v| v.to_str().unwrap())
        .unwrap_or_default();
    let media = media.split(';').next().unwrap().trim().to_ascii_lowercase();
    let Some(documented) = content.get(&media) else {
        panic!(
            "{what}: {status} answered as {media:?}; documented: {:?}; body: {text}",
            content.keys().collect::<Vec<_>>()
        );
    };
    let schema = &documented["schema"];
    if media == "application/json" || media.ends_with("+json") {
        let body: Value = serde_json::from_slice(&reply.body)
            .unwrap_or_else(|e| panic!("{what}: {status} body is not JSON ({e}): {text}"));
        assert_valid(doc, schema, &body, &format!("{what}: {status} body"));
        return Some(body);
    }
    let text = std::str::from_utf8(&reply.body)
        .unwrap_or_else(|_| panic!("{what}: {status} text body is not UTF-8"));
    assert_valid(doc, schema, &json!(text), &format!("{what}: {status} body"));
    // JSON carried in a text body: the content keywords are annotations in 2020-12, checked here.
    let schema = resolve(doc, schema);
    if schema["contentMediaType"] == "application/json" {
        let body: Value = serde_json::from_str(text)
            .unwrap_or_else(|e| panic!("{what}: {status} body is not JSON ({e}): {text}"));
        assert_valid(
            doc,
            &schema["contentSchema"],
            &body,
            &format!("{what}: {status} body (contentSchema)"),
        );
        return Some(body);
    }
    None
}

/// A JSON 4xx of a write must say why in `error`.
fn assert_error_field(what: &str, body: Option<Value>, reply: &Reply) {
    let body = body.unwrap_or_else(|| panic!("{what}: not a JSON error: {}", reply.text()));
    assert!(
        body["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{what}: no error field: {body}"
    );
}

// ---------------------------------------------------------------------------------------------
// The server

struct Setup {
    _drover: Drover,
    admin: SocketAddr,
    _members: Vec<TestMember>,
    users: std::path::PathBuf,
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.users);
        let _ = std::fs::remove_dir_all(self.users.with_extension("run"));
    }
}

/// Farm `app` (round-robin, members a1 and a2) and farm `web` (learn-mode sticky sessions,
/// `expect`, one member w1), so that the optional objects of the document (`sticky`, `expect_s`)
/// are served too; an admin token and a basic-auth user; a push secret.
async fn setup() -> Setup {
    let users = temp_path("users");
    let hash = bcrypt::hash(PASSWORD, 5).unwrap();
    std::fs::write(&users, format!("{USER}:{hash}\n")).unwrap();
    let mut members = Vec::new();
    let mut addr = BTreeMap::new();
    for name in ["a1", "a2", "w1"] {
        let m = TestMember::start(MemberConfig::new(name)).await.unwrap();
        addr.insert(name, m.addr());
        members.push(m);
    }
    let (app, web, admin) = (free_addr(), free_addr(), free_addr());
    // The gossip's UDP port: a free one, not the default (other tests may run beside this one).
    let gossip_port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .unwrap()
        .port();
    let config = format!(
        r#"
[server]
threads = 1

[admin]
listen = "{admin}"
token = "{TOKEN}"
users_file = {users:?}

[reports]
secret = "{SECRET}"

[[listener]]
listen = "{app}"
farm = "app"

[[listener]]
listen = "{web}"
farm = "web"

[farm.app]
policy = "round-robin"
members = [{{ name = "a1", address = "{a1}" }}, {{ name = "a2", address = "{a2}" }}]

[farm.web]
policy = "least-conn"
members = [{{ name = "w1", address = "{w1}" }}]

[farm.web.sticky]
mode = "learn"
cookie = "SID"

[farm.web.reports]
expect = "1h"

# A cluster without VIPs (no keepalived, no root needed): /api/v1/cluster and
# /api/v1/cluster/peers answer.
[cluster]
node = "a"
secret = "{SECRET}"
run_dir = {run_dir:?}
gossip_port = {gossip_port}
nodes = [{{ name = "a", address = "127.0.0.1" }}, {{ name = "b", address = "127.0.0.2" }}]
"#,
        run_dir = users.with_extension("run").display().to_string(),
        a1 = addr["a1"],
        a2 = addr["a2"],
        w1 = addr["w1"],
        users = users.display().to_string(),
    );
    let mut drover = Drover::serve(&config);
    drover.wait_listening(admin).await;
    drover.wait_listening(app).await;
    Setup {
        _drover: drover,
        admin,
        _members: members,
        users,
    }
}

/// Every `.route("path", method(...))` of the admin router, as (path, method).
fn router_routes() -> BTreeSet<(String, String)> {
    let mut routes = BTreeSet::new();
    let mut rest = ROUTER;
    while let Some(at) = rest.find(".route(") {
        rest = rest[at + ".route(".len()..].trim_start();
        let Some(s) = rest.strip_prefix('"') else {
            continue;
        };
        let end = s.find('"').expect("closing quote of a route");
        let path = &s[..end];
        let after = s[end + 1..]
            .trim_start()
            .trim_start_matches(',')
            .trim_start();
        let method: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        assert!(
            METHODS.contains(&method.as_str()),
            "route {path}: cannot read its method from {:?}",
            &after[..after.len().min(40)]
        );
        routes.insert((path.to_owned(), method));
        rest = &s[end..];
    }
    routes
}

// ---------------------------------------------------------------------------------------------
// The tests

#[test]
fn the_document_is_consistent() {
    let doc: Value = serde_json::from_str(DOC).expect("docs/openapi.json is JSON");
    assert_eq!(doc["openapi"], "3.1.0");
    let ops = operations(&doc);
    assert!(!ops.is_empty());
    let mut ids = BTreeSet::new();
    for op in &ops {
        let name = op.name();
        let id = op.op["operationId"].as_str();
        assert!(
            id.is_some_and(|id| ids.insert(id)),
            "{name}: missing or repeated operationId"
        );
        let statuses = op.statuses();
        assert!(
            statuses.iter().any(|s| s.starts_with('2')),
            "{name}: no success documented"
        );
        if op.secured(&doc) || op.signed() {
            assert!(
                statuses.contains(&"401".to_owned()),
                "{name}: 401 not documented"
            );
        }
        // Every documented schema compiles, and every example matches its schema.
        for status in &statuses {
            let r = resolve(&doc, &op.op["responses"][status]);
            assert!(
                r["description"].is_string(),
                "{name} {status}: no description"
            );
            for media in r["content"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(_, m)| m)
            {
                validator(&doc, &media["schema"]);
            }
        }
        for p in &op.params {
            let schema = &p["schema"];
            validator(&doc, schema);
            if let Some(example) = p.get("example") {
                assert_valid(
                    &doc,
                    schema,
                    example,
                    &format!("{name}: example of {}", p["name"]),
                );
            }
        }
        if let Some((schema, example, _)) = op.json_body(&doc) {
            assert_valid(&doc, schema, example, &format!("{name}: body example"));
        }
    }
    // Every component schema compiles on its own.
    for name in doc["components"]["schemas"].as_object().unwrap().keys() {
        validator(
            &doc,
            &json!({ "$ref": format!("#/components/schemas/{name}") }),
        );
    }
}

#[test]
fn documented_routes_are_the_routers_routes() {
    let doc: Value = serde_json::from_str(DOC).unwrap();
    let documented: BTreeSet<(String, String)> = operations(&doc)
        .iter()
        .map(|op| (op.path.to_owned(), op.method.as_str().to_lowercase()))
        .collect();
    let served = router_routes();
    assert!(
        served.len() >= 10,
        "the route scan found too little: {served:?}"
    );
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let not_served: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty() && not_served.is_empty(),
        "docs/openapi.json and crates/drover-admin/src/lib.rs disagree:\n\
         served but not documented: {undocumented:?}\ndocumented but not served: {not_served:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_answers_as_documented() {
    let doc: Value = serde_json::from_str(DOC).unwrap();
    let ops = operations(&doc);
    let s = setup().await;
    let none = BTreeMap::new();

    // State that fills the optional parts of the answers: a load report on a1 and w1 (`reported`),
    // and a flip of a1 (`last_transition`).
    let batch = json!({"reports": [
        {"member": "a1", "metrics": {"cpu": 0.3}, "state": "up", "reason": "seed"},
        {"member": "w1", "state": "ready"},
    ]});
    let r = common::push_report(s.admin, SECRET, &batch).await;
    assert_eq!(r.status, 200, "{}", r.text());
    for action in ["drain", "undrain"] {
        let path = format!("/api/v1/farms/app/members/a1/{action}");
        let r = call(s.admin, Method::POST, &path, b"", &[bearer(TOKEN)]).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }

    // Every operation with valid input, every value of an enum path parameter included: a
    // documented success, with a body that matches.
    for op in &ops {
        let enums: Vec<(&str, Vec<Value>)> = op
            .params
            .iter()
            .filter(|p| p["in"] == "path")
            .filter_map(|p| {
                let values = resolve(&doc, &p["schema"])["enum"].as_array()?.clone();
                Some((p["name"].as_str()?, values))
            })
            .collect();
        assert!(
            enums.len() <= 1,
            "{}: one enum path parameter at most",
            op.name()
        );
        let variants: Vec<BTreeMap<&str, Value>> = match enums.first() {
            Some((name, values)) => values
                .iter()
                .map(|v| BTreeMap::from([(*name, v.clone())]))
                .collect(),
            None => vec![BTreeMap::new()],
        };
        for values in &variants {
            let req = Request::new(op, &doc, values, None);
            let what = format!("{} {}?{} (valid)", req.method, req.target, req.query);
            let r = req.send(op, &doc, s.admin, Creds::Valid).await;
            check(&doc, op, &what, &r);
            // A 4xx would be the caller's fault (the router's 404 among them); a documented 5xx
            // would be the server's state, not the input's.
            assert!(
                !r.status.is_client_error(),
                "{what}: valid input must not be refused, got {}: {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            );
            // The other documented scheme: a basic-auth user is let in the same way. Adding and
            // removing a member cannot be repeated with the same answer: the second call is
            // refused for what the first did (409, 404), which is still past the credentials.
            let basic = json!({ "basic": [] });
            let schemes = op.op.get("security").unwrap_or(&doc["security"]);
            if schemes.as_array().is_some_and(|l| l.contains(&basic)) {
                let r2 = req.send(op, &doc, s.admin, Creds::Basic).await;
                check(&doc, op, &format!("{what} (basic auth)"), &r2);
                let repeatable = !["addMember", "removeMember"]
                    .contains(&op.op["operationId"].as_str().unwrap_or(""));
                if repeatable {
                    assert_eq!(r2.status, r.status, "{what} (basic auth): {}", r2.text());
                } else {
                    assert!(
                        matches!(r2.status.as_u16(), 404 | 409),
                        "{what} (basic auth): {}",
                        r2.text()
                    );
                }
            }
        }
    }

    // The optional objects were served, so their strict schemas were checked too.
    let r = call(s.admin, Method::GET, "/api/v1/farms", b"", &[bearer(TOKEN)]).await;
    let farms: Value = serde_json::from_slice(&r.body).unwrap();
    let app = &farms["farms"][0];
    let web = &farms["farms"][1];
    assert!(app["members"][0]["reported"].is_object(), "{app:#}");
    assert!(app["members"][0]["last_transition"].is_object(), "{app:#}");
    assert!(
        web["sticky"].is_object() && web["expect_s"].is_number(),
        "{web:#}"
    );

    // Without credentials: every secured route, every write and the signed intake are a 401,
    // and the 401 is documented. A wrong token is a 401 too.
    for op in &ops {
        let req = Request::new(op, &doc, &none, None);
        if op.secured(&doc) || op.signed() || op.is_write() {
            let what = format!("{} {} (no credentials)", req.method, req.target);
            let r = req.send(op, &doc, s.admin, Creds::None).await;
            assert_eq!(
                r.status,
                401,
                "{what}: {}",
                String::from_utf8_lossy(&r.body)
            );
            check(&doc, op, &what, &r);
        }
        if op.secured(&doc) {
            let what = format!("{} {} (wrong token)", req.method, req.target);
            let r = req.send(op, &doc, s.admin, Creds::WrongToken).await;
            assert_eq!(
                r.status,
                401,
                "{what}: {}",
                String::from_utf8_lossy(&r.body)
            );
            check(&doc, op, &what, &r);
        }
    }

    // Unknown names with credentials: a documented 404 from the handler (not the router's), with
    // an `error` in the answer of a write. An enum path parameter outside its enum likewise.
    for op in &ops {
        let mut cases: Vec<(&str, Value)> = Vec::new();
        for p in &op.params {
            let name = p["name"].as_str().unwrap();
            if name == "farm" || name == "member" {
                cases.push((name, json!(format!("no-such-{name}"))));
            }
            if p["in"] == "path" && resolve(&doc, &p["schema"]).get("enum").is_some() {
                cases.push((name, json!("no-such-action")));
            }
        }
        for (name, value) in cases {
            let req = Request::new(op, &doc, &BTreeMap::from([(name, value)]), None);
            let what = format!(
                "{} {}?{} (unknown {name})",
                req.method, req.target, req.query
            );
            let r = req.send(op, &doc, s.admin, Creds::Valid).await;
            assert_eq!(
                r.status,
                404,
                "{what}: {}",
                String::from_utf8_lossy(&r.body)
            );
            assert_ne!(r.body.as_ref(), b"not found\n", "{what}: the router's 404");
            let body = check(&doc, op, &what, &r);
            if op.is_write() && !op.signed() {
                assert_error_field(&what, body, &r);
            }
        }
    }

    // Bad request bodies: malformed JSON, an unknown field where the schema is closed, integers
    // just outside their documented bounds: 400 (with `error` from the API's own writes). A body
    // over the documented `x-max-bytes`: 413.
    for op in &ops {
        let Some((schema, example, max_bytes)) = op.json_body(&doc) else {
            continue;
        };
        let mut bad: Vec<(String, Vec<u8>, u16)> =
            vec![("malformed JSON".into(), b"{\"weight\": ".to_vec(), 400)];
        // The object schema the example is written for (a `oneOf` branch, if need be).
        let top = resolve(&doc, schema);
        let branches: Vec<&Value> = match top["oneOf"].as_array() {
            Some(list) => list.iter().map(|b| resolve(&doc, b)).collect(),
            None => vec![top],
        };
        let object = branches
            .into_iter()
            .find(|b| violations(&doc, b, example).is_empty())
            .expect("the example matches one branch");
        if object["additionalProperties"] == false {
            let mut body = example.clone();
            body["no_such_field"] = json!(1);
            bad.push((
                "unknown field".into(),
                serde_json::to_vec(&body).unwrap(),
                400,
            ));
        }
        for (field, prop) in object["properties"].as_object().into_iter().flatten() {
            let prop = resolve(&doc, prop);
            if prop["type"] != "integer" || example.get(field).is_none() {
                continue;
            }
            let below = prop["minimum"].as_i64().map(|m| m - 1);
            let above = prop["maximum"].as_i64().map(|m| m + 1);
            for v in [below, above].into_iter().flatten() {
                let mut body = example.clone();
                body[field] = json!(v);
                bad.push((
                    format!("{field} = {v}"),
                    serde_json::to_vec(&body).unwrap(),
                    400,
                ));
            }
        }
        if let Some(max) = max_bytes {
            bad.push((
                "a body over x-max-bytes".into(),
                vec![b' '; max as usize + 1],
                413,
            ));
        }
        for (case, body, status) in bad {
            let req = Request::new(op, &doc, &none, Some(body));
            let what = format!("{} {} ({case})", req.method, req.target);
            let r = req.send(op, &doc, s.admin, Creds::Valid).await;
            assert_eq!(
                r.status,
                status,
                "{what}: {}",
                String::from_utf8_lossy(&r.body)
            );
            let body = check(&doc, op, &what, &r);
            if status == 400 && !op.signed() {
                assert_error_field(&what, body, &r);
            }
        }
    }

    // A farm with no ready member: the reads of that farm still answer as documented, the pick
    // a documented 503.
    let off = "/api/v1/farms/web/members/w1/disable";
    assert_eq!(
        call(s.admin, Method::POST, off, b"", &[bearer(TOKEN)])
            .await
            .status,
        200
    );
    let mut unavailable = 0;
    for op in ops
        .iter()
        .filter(|op| !op.is_write() && op.param("farm").is_some())
    {
        let req = Request::new(op, &doc, &BTreeMap::from([("farm", json!("web"))]), None);
        let what = format!(
            "{} {}?{} (no member ready)",
            req.method, req.target, req.query
        );
        let r = req.send(op, &doc, s.admin, Creds::Valid).await;
        check(&doc, op, &what, &r);
        unavailable += usize::from(r.status == 503);
    }
    assert!(
        unavailable >= 1,
        "no documented read answered 503 for a farm without members"
    );
    let on = "/api/v1/farms/web/members/w1/enable";
    assert_eq!(
        call(s.admin, Method::POST, on, b"", &[bearer(TOKEN)])
            .await
            .status,
        200
    );

    // Nothing undocumented: other paths are the router's 404 even with credentials, and other
    // methods on documented paths are refused.
    // (`/` is the dashboard's page, documented.)
    for path in [
        "/index.html",
        "/dashboard",
        "/dashboard/",
        "/dashboard/app.css",
        "/api",
        "/api/v1",
        "/api/v2/farms",
        "/api/v1/farm",
        "/api/v1/farms/app/memberz",
        "/api/v1/farms/app/members/a1/drain/now",
        "/api/v1/reports/x",
    ] {
        for method in [Method::GET, Method::POST] {
            let r = call(s.admin, method.clone(), path, b"", &[bearer(TOKEN)]).await;
            assert_eq!(
                r.status,
                404,
                "{method} {path}: {}",
                String::from_utf8_lossy(&r.body)
            );
        }
    }
    let documented: BTreeSet<(String, Method)> = ops
        .iter()
        .map(|op| (op.path.to_owned(), op.method.clone()))
        .collect();
    for op in &ops {
        let req = Request::new(op, &doc, &none, None);
        for method in [
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ] {
            if documented.contains(&(op.path.to_owned(), method.clone())) {
                continue;
            }
            let r = call(s.admin, method.clone(), &req.target, b"", &[bearer(TOKEN)]).await;
            assert!(
                matches!(r.status.as_u16(), 404 | 405),
                "{method} {}: undocumented method answered {}: {}",
                req.target,
                r.status,
                String::from_utf8_lossy(&r.body)
            );
        }
    }
}
