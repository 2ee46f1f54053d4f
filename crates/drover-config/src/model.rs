//! The validated configuration: what the rest of drover reads. Every value here has been checked
//! and defaulted by the parser (`parse.rs`); nothing downstream re-validates. The health-check,
//! ejection and retry types are in `model/health.rs`, re-exported here.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use drover_core::{MemberSpec, PolicyKind};
use regex::Regex;

mod cluster;
mod health;
pub use cluster::*;
pub use health::*;

/// A whole drover config file.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from (for messages and reload).
    pub path: PathBuf,
    pub server: Server,
    /// `[admin]`; absent = no admin listener.
    pub admin: Option<Admin>,
    /// `[[listener]]`, in file order.
    pub listeners: Vec<Listener>,
    /// `[farm.<name>]`, in file order.
    pub farms: Vec<Farm>,
    /// `[reports]`: how pushed load reports are authenticated.
    pub reports: Reports,
    /// `[cluster]`: the peers and the VIPs they share; absent = a lone node.
    pub cluster: Option<ClusterConfig>,
}

/// `[reports]`: the shared secret that signs pushed load reports (`POST /api/v1/reports`,
/// `GET /ath/update`), and the replay window. Without a secret, pushes are refused (403).
#[derive(Debug, Clone, PartialEq)]
pub struct Reports {
    /// `secret` or `secret_file` (its content, trimmed): the HMAC-SHA256 key, at least 16 bytes.
    /// Default none: pushes are refused.
    pub secret: Option<Secret>,
    /// `window`: a push whose timestamp is further than this from drover's clock is stale, and a
    /// signed push is accepted once within it. Default 30s.
    pub window: Duration,
}

impl Default for Reports {
    fn default() -> Self {
        Reports {
            secret: None,
            window: crate::reports::DEFAULT_WINDOW,
        }
    }
}

/// A secret that never shows in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// `[farm.<name>.reports]`: how the farm takes its members' load reports.
#[derive(Debug, Clone, PartialEq)]
pub struct FarmReports {
    /// `expect`: a member that sends no good report (push, agent-check or ORCA) for longer than
    /// this is flagged out, and comes in again with its next good report (mod_athena's "expect
    /// update"). Members get this long from the start before the first one is due. Default none:
    /// reports never go stale.
    pub expect: Option<Duration>,
    /// `orca`: read the ORCA `endpoint-load-metrics` header on members' responses as a load
    /// report. The header is stripped before the response reaches the client either way.
    /// Default true.
    pub orca: bool,
    /// `orca_request`: ask members for the header by sending `endpoint-load-metrics-format: text`
    /// on every request. Default false.
    pub orca_request: bool,
}

impl Default for FarmReports {
    fn default() -> Self {
        FarmReports {
            expect: None,
            orca: true,
            orca_request: false,
        }
    }
}

impl Config {
    pub fn farm(&self, name: &str) -> Option<&Farm> {
        self.farms.iter().find(|f| f.name == name)
    }
}

/// `[server]`: process-wide settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Server {
    /// `threads`: worker threads; 0 = one per CPU. The CLI's `--threads` overrides it. Default 0.
    pub threads: usize,
    /// `grace`: how long in-flight requests may run after SIGTERM/SIGINT. Default 30s.
    pub grace: Duration,
    /// `state_file`: where the operator's run-time changes (on/off, drain, weight, route) are
    /// kept, written after each change and read at start, so they survive a restart. Default
    /// none (they last until the process exits).
    pub state_file: Option<std::path::PathBuf>,
    /// `upgrade_socket`: a unix socket path this process listens on for a new drover process
    /// (`drover serve --upgrade-from PATH`) to take over its listening sockets (binary upgrade,
    /// docs/upgrade.md). Default none: only SIGUSR2 upgrades, through a private socket it
    /// creates for the occasion.
    pub upgrade_socket: Option<std::path::PathBuf>,
}

impl Default for Server {
    /// The values used when `[server]` or one of its keys is absent.
    fn default() -> Self {
        Server {
            threads: 0,
            grace: Duration::from_secs(30),
            state_file: None,
            upgrade_socket: None,
        }
    }
}

/// `[admin]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Admin {
    /// `listen`: default 127.0.0.1:9090.
    pub listen: SocketAddr,
    /// `token` / `token_file`: the bearer token (`Authorization: Bearer <token>`) that opens
    /// every API call. Default none.
    pub token: Option<Secret>,
    /// `users_file`: basic-auth users, one `name:<bcrypt hash>` per line (htpasswd -B format).
    /// Default none.
    pub users: Vec<AdminUser>,
    /// `open_reads`: GET and HEAD need no credentials (writes always do). Default false.
    pub open_reads: bool,
}

/// One basic-auth user of the admin API.
#[derive(Clone, PartialEq, Eq)]
pub struct AdminUser {
    pub name: String,
    /// bcrypt hash (`$2a$`, `$2b$` or `$2y$`).
    pub hash: String,
}

impl std::fmt::Debug for AdminUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminUser")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Default for Admin {
    /// `listen = "127.0.0.1:9090"`, used when `[admin]` exists without `listen`.
    fn default() -> Self {
        Admin {
            listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            token: None,
            users: Vec::new(),
            open_reads: false,
        }
    }
}

/// `[[listener]]`: addresses drover accepts clients on, and the routes that apply to them.
#[derive(Debug, Clone)]
pub struct Listener {
    /// `name`: default `listener<N>` (1-based position in the file).
    pub name: String,
    /// `listen`: one address or a list ("127.0.0.1:8080", "[::1]:8080"). Required.
    pub listen: Vec<SocketAddr>,
    /// `[[listener.route]]` in file order, then the listener's `farm` key as a catch-all route.
    pub routes: Vec<Route>,
    pub limits: Limits,
    /// `idle_timeout`: a client connection with no request running or started and nothing
    /// written to it for this long is closed (see `drover-proxy/src/idle.rs`). Default 60s.
    pub idle_timeout: Duration,
    /// `defer_accept`: the kernel hands a connection over only once its first bytes arrived
    /// (Linux `TCP_DEFER_ACCEPT`, nginx's `deferred`, HAProxy's `defer-accept`); a client that
    /// sends nothing is handed over after about a second anyway. Default true.
    pub defer_accept: bool,
    /// `trusted_proxies`: CIDRs whose `X-Forwarded-*`/`Forwarded` headers are kept and appended
    /// to; from anyone else they are removed and replaced. Default: none trusted.
    pub trusted_proxies: Vec<Cidr>,
    /// `forwarded_headers`: which forwarding headers to add: "x-forwarded", "forwarded", "both"
    /// or "none". Default "x-forwarded".
    pub forwarding: Forwarding,
    /// `access_log = { path, format }`: one line per request answered on this listener. Default:
    /// none (no access log).
    pub access_log: Option<AccessLog>,
}

/// A listener's `access_log`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessLog {
    /// `path`: a file, appended to (created if missing), or `"-"` / `"stdout"` for stdout.
    pub path: LogPath,
    /// `format`: `"combined"` (nginx/Apache combined, the default) or `"json"`.
    pub format: LogFormat,
}

/// Where an access log goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LogPath {
    Stdout,
    File(PathBuf),
}

impl std::fmt::Display for LogPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LogPath::Stdout => f.write_str("stdout"),
            LogPath::File(p) => write!(f, "{}", p.display()),
        }
    }
}

/// The line format of an access log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// `$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent
    /// "$http_referer" "$http_user_agent"`, as nginx and Apache write it.
    #[default]
    Combined,
    /// One JSON object a line, with the combined fields and drover's own (farm, member, times).
    Json,
}

impl LogFormat {
    pub const NAMES: &'static [&'static str] = &["combined", "json"];

    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "combined" => Some(LogFormat::Combined),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }
}

/// Request limits of a listener.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// `max_header_bytes`: the whole request head; larger gets 431. Default 16KiB, at least 8KiB.
    pub max_header_bytes: usize,
    /// `max_headers`: header count; more gets 431. Default 100.
    pub max_headers: usize,
    /// `max_uri_bytes`: longer request targets get 414. Default 8KiB.
    pub max_uri_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_header_bytes: 16 * 1024,
            max_headers: 100,
            max_uri_bytes: 8 * 1024,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forwarding {
    pub x_forwarded: bool,
    pub forwarded: bool,
}

impl Forwarding {
    /// The accepted values of `forwarded_headers`, for messages.
    pub const NAMES: &'static [&'static str] = &["x-forwarded", "forwarded", "both", "none"];

    /// The setting named by a `forwarded_headers` value.
    pub fn from_name(name: &str) -> Option<Self> {
        let (x_forwarded, forwarded) = match name {
            "x-forwarded" => (true, false),
            "forwarded" => (false, true),
            "both" => (true, true),
            "none" => (false, false),
            _ => return None,
        };
        Some(Forwarding {
            x_forwarded,
            forwarded,
        })
    }
}

impl Default for Forwarding {
    /// "x-forwarded".
    fn default() -> Self {
        Forwarding {
            x_forwarded: true,
            forwarded: false,
        }
    }
}

/// An IP network, `10.0.0.0/8` or a bare address (= /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            _ => ip,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for Cidr {
    type Err = crate::units::UnitError;

    /// `"10.0.0.0/8"`, `"fd00::/8"` or a bare address; see [`crate::units::parse_cidr`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        crate::units::parse_cidr(s)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// `[[listener.route]]`: a rule matched in order; the first match wins.
#[derive(Debug, Clone)]
pub struct Route {
    /// `host`: exact host (port ignored, case-insensitive) or `*.example.com`. Default: any.
    pub host: Option<String>,
    /// `path` (a prefix) or `regex` (matched against the path); at most one. Default: any.
    pub path: PathMatch,
    pub action: Action,
    /// `retry_non_idempotent`: requests with non-idempotent methods (POST, PATCH, ...) sent
    /// through this route may be retried after they were sent, when the farm's `retry_on` allows.
    /// Only with `farm`; the listener's `farm` shorthand gets false. Default false.
    pub retry_non_idempotent: bool,
}

#[derive(Debug, Clone)]
pub enum PathMatch {
    Any,
    Prefix(String),
    Regex(Regex),
}

/// What a route does with a request: exactly one of the route's `farm`, `exclude`, `redirect`,
/// `respond` keys.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// `farm = "app"`: proxy to that farm.
    Farm(String),
    /// `exclude = true`: not proxied (Apache's `ProxyPass /x !`); answered 404.
    Exclude,
    /// `redirect = "https://..."`, with `status` (301, 302, 303, 307, 308; default 302).
    Redirect { location: String, status: u16 },
    /// `respond = { status = 200, body = "...", content_type = "text/plain" }`.
    Respond(Page),
}

/// A fixed answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub status: u16,
    pub body: String,
    /// Default "text/plain; charset=utf-8".
    pub content_type: String,
}

impl Page {
    /// `content_type` when a page does not set it.
    pub const DEFAULT_CONTENT_TYPE: &'static str = "text/plain; charset=utf-8";

    /// The default outage page: 503 with a short plain-text body.
    pub fn unavailable() -> Page {
        Page {
            status: 503,
            body: "503 Service Unavailable: no server is available to answer this request.\n"
                .to_owned(),
            content_type: Page::DEFAULT_CONTENT_TYPE.to_owned(),
        }
    }
}

/// `[farm.<name>]`.
#[derive(Debug, Clone)]
pub struct Farm {
    pub name: String,
    /// `policy` (+ `hash_key`, `hash_bound` for "hash"). Default adaptive.
    pub policy: PolicyKind,
    /// `members` (array of tables). At least one.
    pub members: Vec<MemberSpec>,
    /// `max_connections`: per member, open upstream connections (0 = unlimited). Default 0.
    pub max_connections: u32,
    /// `pool_idle_timeout`: idle pooled upstream connections are closed after this. Default 60s.
    pub pool_idle_timeout: Duration,
    /// `max_idle_per_member`: idle connections kept per member per worker thread. Default 64.
    pub max_idle_per_member: usize,
    pub timeouts: Timeouts,
    /// `retries`: how many other members one request may try after a failure that `retry_on`
    /// allows. Default 3.
    pub retries: u32,
    /// `retry_on`: which failures are retried on another member. Default connect, reset, timeout.
    pub retry_on: RetryOn,
    /// `retry_budget`, `retry_budget_floor`: how many retries the farm may make in all.
    pub retry_budget: RetryBudget,
    /// `[farm.<name>.check]`: the farm's active health check; `None` = no active checks. Members
    /// may override it: what each member is checked with is in `member_checks`.
    pub check: Option<Check>,
    /// One per member, in the order of `members`: the farm's `check` merged with the member's own
    /// `check = { ... }` overrides. `None` when neither the farm nor the member has a check, or
    /// the member says `check = false`.
    pub member_checks: Vec<Option<Check>>,
    /// `[farm.<name>.agent]`: the farm's HAProxy-style agent check; `None` = none.
    pub agent: Option<AgentCheck>,
    /// One per member, in the order of `members`: the farm's `agent` merged with the member's
    /// own `agent = { ... }`. `None` when neither has one, or the member says `agent = false`.
    pub member_agents: Vec<Option<AgentCheck>>,
    /// `[farm.<name>.passive]`: ejection of members on the failures of real requests.
    pub passive: Passive,
    /// `slow_start`: a member that comes back up ramps its share of new requests linearly from
    /// about 0 to full over this window. `"0s"` or absent = `None` (off). Default off.
    pub slow_start: Option<Duration>,
    /// `quiescent`: false = a member that goes down has its idle pooled connections closed;
    /// true = it stays in the table at weight 0, keeping its pooled connections and its sticky
    /// sessions. Default false.
    pub quiescent: bool,
    /// `panic_threshold`: when fewer than this share (0.0 to 1.0) of the farm's enabled members
    /// are up, up/down is ignored and requests spread over every enabled member. `"50%"` = 0.5.
    /// Default 0.0 (off).
    pub panic_threshold: f64,
    /// `preserve_host`: pass the client's Host header (true) or use the member's address. Default true.
    pub preserve_host: bool,
    /// `rewrite_location`: rewrite `Location`/`Content-Location` naming a member's own address to the
    /// client-facing host (Apache's `ProxyPassReverse`). Default true.
    pub rewrite_location: bool,
    /// `[farm.<name>.reports]`: freshness of load reports and ORCA headers.
    pub reports: FarmReports,
    /// `[farm.<name>.outage]`: what to answer when no member is ready. Default a 503 page.
    pub outage: Outage,
    /// `[farm.<name>.sticky]`: sticky sessions; `None` = none (every request is picked anew).
    pub sticky: Option<Sticky>,
}

/// `[farm.<name>.sticky]`: how a client stays on the member that holds its session. See
/// docs/sticky.md.
#[derive(Debug, Clone, PartialEq)]
pub struct Sticky {
    /// `mode`: route (mod_proxy_balancer), insert (drover's own signed cookie) or learn (the
    /// application's session cookie, learned from members' `Set-Cookie`). Required.
    pub mode: StickyMode,
    /// `cookie`: route and learn: the application's session cookie (`BALANCEID`, `JSESSIONID`,
    /// `PHPSESSID`); insert: drover's cookie, default `DROVERID`. Route mode needs `cookie` or
    /// `path_param`; learn mode needs `cookie`.
    pub cookie: Option<String>,
    /// `path_param`: route and learn: a URL parameter (`jsessionid` for `;jsessionid=abc.node1`
    /// or `?jsessionid=`) read before the cookie, as Apache does. Default none.
    pub path_param: Option<String>,
    /// `separator`: route mode: one character; the route is the part of the session value after
    /// the first one. Default `"."`.
    pub separator: u8,
    /// `nofailover`: when the client's member cannot serve, answer 503 instead of moving the
    /// client to another member (Apache's `nofailover=On`). Default false.
    pub nofailover: bool,
    /// `moved_header`: request header that tells the member a client was moved to it, with the
    /// name of the member the session was on. `""` = not sent. Default `X-Drover-Sticky-Moved`.
    pub moved_header: Option<String>,
    /// `set_cookie`: route mode: when drover itself sets `cookie` (to `.<route>`, with Path=/) if
    /// the member's answer does not: never, moved (a client moved to another member), or new
    /// (also a client without a route: Apache's `ROUTEID` recipe). Default moved.
    pub set_cookie: RouteCookie,
    /// The insert-mode cookie's attributes and keys.
    pub insert: InsertCookie,
    /// `ttl`: learn mode: an entry unused this long is dropped. Default 30m.
    pub ttl: Duration,
    /// `max_sessions`: learn mode: most entries in the table; the least recently used goes.
    /// Default 100000.
    pub max_sessions: usize,
    /// Apache's `redirect`, one per member in the order of `members` (member key `redirect`): the
    /// route of the member that takes this member's sticky clients while it cannot serve them.
    pub redirects: Vec<Option<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StickyMode {
    Route,
    Insert,
    Learn,
}

impl StickyMode {
    pub fn name(self) -> &'static str {
        match self {
            StickyMode::Route => "route",
            StickyMode::Insert => "insert",
            StickyMode::Learn => "learn",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteCookie {
    Never,
    Moved,
    New,
}

/// Insert mode: drover's own cookie.
#[derive(Debug, Clone, PartialEq)]
pub struct InsertCookie {
    /// `keys` (or `key_file`, one key per line): HMAC keys, at least 16 bytes each; the first
    /// signs, all are accepted (rotation). Required in insert mode.
    pub keys: Vec<Secret>,
    /// `path`. Default `/`.
    pub path: String,
    /// `domain`. Default none (the host the client asked for).
    pub domain: Option<String>,
    /// `http_only`. Default true.
    pub http_only: bool,
    /// `secure`. Default false.
    pub secure: bool,
    /// `same_site`: `lax`, `strict`, `none` or `""` (not sent). Default lax.
    pub same_site: Option<String>,
    /// `max_age`: absent = a session cookie, gone when the browser closes. Default absent.
    pub max_age: Option<Duration>,
}

impl Default for InsertCookie {
    fn default() -> Self {
        InsertCookie {
            keys: Vec::new(),
            path: "/".to_owned(),
            domain: None,
            http_only: true,
            secure: false,
            same_site: Some("Lax".to_owned()),
            max_age: None,
        }
    }
}

/// Upstream timeouts of a farm; answered 504 (or 502 for connect) when exceeded before the response
/// head; a body stalled past `idle` or running past `total` is cut off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// `connect_timeout`: default 3s.
    pub connect: Duration,
    /// `first_byte_timeout`: from request sent to response head. Default 60s.
    pub first_byte: Duration,
    /// `idle_timeout`: longest silence while streaming the response body. Default 60s.
    pub idle: Duration,
    /// `total_timeout`: the whole exchange; `0s` = no limit. Default 0s.
    pub total: Option<Duration>,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(3),
            first_byte: Duration::from_secs(60),
            idle: Duration::from_secs(60),
            total: None,
        }
    }
}

/// What a farm answers when no member is ready.
#[derive(Debug, Clone, PartialEq)]
pub enum Outage {
    /// `page = { status, body, content_type }` (status default 503).
    Page(Page),
    /// `redirect = "https://status.example.com/"` (302).
    Redirect(String),
    /// `sorry = "127.0.0.1:9999"`: proxy to this server instead.
    Sorry(SocketAddr),
}

impl Default for Outage {
    /// A 503 page, used when a farm has no `[farm.<name>.outage]`.
    fn default() -> Self {
        Outage::Page(Page::unavailable())
    }
}
