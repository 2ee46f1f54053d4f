//! The request handler: one client request from route to response (steps 2–8 of the request path).
//!
//! Called by hyper for every request a listener's connection reads ([`handle`]). It matches the
//! route, picks a member with the farm's policy, lends a pooled connection, forwards, retries when
//! that is safe, runs the outage action when no member is ready, and hands back a streaming
//! response whose body settles the member's counters when it ends.
//!
//! Retry rules (a request tries at most `retries` other members, and every retry must fit the
//! farm's retry budget, so a farm-wide outage cannot multiply the load):
//! - a connect failure (refused, timed out) is always retried on another member: nothing was sent;
//! - a request hyper could not write on a pooled connection that had just closed is retried: it
//!   was never sent either;
//! - a request that was sent and failed before any response byte reached the client is retried
//!   when the farm's `retry_on` names the failure (`reset`, `timeout`, a 5xx status), its method
//!   is idempotent (GET, HEAD, OPTIONS, PUT, DELETE, TRACE) or the route says
//!   `retry_non_idempotent`, and its body (if any) was kept: a body up to
//!   [`REPLAY_LIMIT`](crate::body::REPLAY_LIMIT) is copied while it streams to the first member and
//!   sent whole to the next; a larger one is streamed without a copy and its first answer is final.
//!
//! Passive checks: every attempt's outcome is reported to the farm ([`drover_core::Farm::report`])
//! when the farm's `passive.count` names it (a success resets the member's count); an ejection it
//! causes is logged here, once, at info.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use std::sync::atomic::Ordering::Relaxed;

use drover_core::{PickContext, Rng, clock, hash::hash_key};
use http::{HeaderMap, Method, Request, Response, StatusCode, Uri, Version, header};
use http_body::Body as _;
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use tokio::time::{Instant, timeout_at};

use crate::access_log::format::Sticky;
use crate::access_log::{ClientBody, Entry, Trace};
use crate::body::{Exchange, Inner, ProxyBody, UpBody, Upload, UpstreamBody};
use crate::error::{self, Failure};
use crate::forward::{self, ClientAddr};
use crate::h1client::{self, HeadError, RawBody};
use crate::pool::{Kind, Lent, Pooled, Upstream};
use crate::route::RouteAction;
use crate::state::{FarmState, KeySource, ListenerState, OutageAction, Routing};
use crate::sticky::{Outcome, Session, Verdict};
use crate::upgrade;

/// What every request on one client connection shares.
pub struct ConnCtx {
    pub routing: Arc<ArcSwap<Routing>>,
    pub worker: usize,
    pub listener: usize,
    pub client: ClientAddr,
    pub activity: crate::idle::Activity,
    /// Set when this process is handing its listeners over (binary upgrade) or stopping: every
    /// further response says `Connection: close`, so keep-alive clients move to a fresh
    /// connection (to the new process) between requests instead of being cut.
    pub closing: std::sync::atomic::AtomicBool,
}

/// hyper's service function: never fails; every problem becomes an HTTP answer. On a listener
/// with an access log, the request head is captured first and the answer's body writes the line
/// when it ends (see [`crate::access_log`]).
pub async fn handle(
    ctx: Arc<ConnCtx>,
    req: Request<Incoming>,
) -> Result<Response<ClientBody>, Infallible> {
    let _running = ctx.activity.request();
    let routing = ctx.routing.load_full();
    let entry = match routing.listeners.get(ctx.listener) {
        Some(l) if l.access_log.is_some() => Some(Entry::capture(
            Arc::clone(&routing),
            ctx.listener,
            ctx.worker,
            &ctx.client.xff,
            &req,
        )),
        _ => None,
    };
    let mut trace = Trace::default();
    let mut res = answer(&ctx, &routing, req, &mut trace).await;
    // Read after the answer is ready: a request that was running when the hand-over began still
    // closes its connection. hyper honours the header and closes after this response. A 101
    // keeps its `Connection: upgrade`: the tunnel is cut after the grace period instead.
    if ctx.closing.load(Relaxed) && res.status() != StatusCode::SWITCHING_PROTOCOLS {
        res.headers_mut()
            .insert(header::CONNECTION, http::HeaderValue::from_static("close"));
    }
    Ok(match entry {
        None => res.map(ClientBody::plain),
        Some(entry) => {
            let status = res.status().as_u16();
            res.map(|body| ClientBody::logged(body, entry, status, trace))
        }
    })
}

/// Steps 2-8 for one request.
async fn answer(
    ctx: &ConnCtx,
    routing: &Routing,
    req: Request<Incoming>,
    trace: &mut Trace,
) -> Response<ProxyBody> {
    let Some(listener) = routing.listeners.get(ctx.listener) else {
        return error::text(
            StatusCode::SERVICE_UNAVAILABLE,
            "503 Service Unavailable: listener is being reconfigured\n",
        );
    };
    if uri_len(req.uri()) > listener.max_uri_bytes {
        tracing::info!(client = %ctx.client.ip, len = uri_len(req.uri()), "request target too long: 414");
        return error::text(StatusCode::URI_TOO_LONG, "414 URI Too Long\n");
    }
    // RFC 9112 §3.2: one valid Host, required in HTTP/1.1; an absolute-form target's authority
    // overrides it. Anything else is answered 400: members behind drover must not be able to
    // read a different host than the one drover routed on.
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let host_header = hosts.next();
    if hosts.next().is_some() {
        return bad_request(ctx, "more than one Host header");
    }
    let host = match req.uri().authority() {
        Some(a) => Some(a.as_str().as_bytes()),
        None => host_header.map(|h| h.as_bytes()),
    };
    match host {
        None if req.version() == Version::HTTP_11 => {
            return bad_request(ctx, "HTTP/1.1 request without Host");
        }
        Some(h) if !forward::valid_host(h) => return bad_request(ctx, "invalid Host"),
        _ => {}
    }
    let found = listener.routes.find_at(host, req.uri().path());
    trace.route = found.map(|(i, _)| i);
    match found.map(|(_, action)| action) {
        None => error::text(
            StatusCode::NOT_FOUND,
            "404 Not Found: no route for this request\n",
        ),
        Some(RouteAction::Exclude) => error::text(StatusCode::NOT_FOUND, "404 Not Found\n"),
        Some(RouteAction::Redirect { location, status }) => {
            let mut res = Response::new(ProxyBody::empty());
            *res.status_mut() = *status;
            res.headers_mut().insert(header::LOCATION, location.clone());
            res
        }
        Some(RouteAction::Respond {
            status,
            body,
            content_type,
        }) => error::page(*status, body.clone(), content_type.clone()),
        // Boxed: hyper keeps one slot the size of this future per connection for its whole life,
        // idle keep-alive ones included. Unboxed, the proxying state machine (~3.5 KiB) would
        // sit in every idle connection; boxed, it costs one allocation per proxied request.
        Some(RouteAction::Farm {
            farm: index,
            retry_non_idempotent,
        }) => {
            let host = host_header.cloned();
            let farm = &routing.farms[*index];
            trace.farm = Some(*index);
            Box::pin(proxy(
                ctx,
                listener,
                farm,
                req,
                host,
                *retry_non_idempotent,
                trace,
            ))
            .await
        }
    }
}

fn bad_request(ctx: &ConnCtx, why: &'static str) -> Response<ProxyBody> {
    tracing::info!(client = %ctx.client.ip, why, "bad request: 400");
    let mut res = error::text(StatusCode::BAD_REQUEST, "400 Bad Request\n");
    // What else this client sends on the connection cannot be trusted either.
    res.headers_mut()
        .insert(header::CONNECTION, http::HeaderValue::from_static("close"));
    res
}

fn uri_len(uri: &Uri) -> usize {
    uri.scheme_str().map_or(0, |s| s.len() + 3)
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.path_and_query().map_or(1, |pq| pq.as_str().len())
}

fn idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

thread_local! {
    static RNG: std::cell::Cell<u64> = std::cell::Cell::new(seed());
}

fn seed() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::thread::current().id())
}

/// A fresh per-request random state from the worker's generator.
fn rng() -> Rng {
    RNG.with(|c| {
        let mut r = Rng::new(c.get());
        let s = r.next_u64();
        c.set(s);
        Rng::new(s)
    })
}

/// The head of a request that may be sent again (idempotent, or its route allows it); its body,
/// if any, is kept by the [`Upload`] of the first attempt.
struct Template {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
}

impl Template {
    fn request(&self, body: UpBody) -> Request<UpBody> {
        let mut req = Request::new(body);
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri.clone();
        *req.headers_mut() = self.headers.clone();
        req
    }
}

/// What one attempt at one member came to.
enum Attempt {
    Done(Response<ProxyBody>),
    /// Failed without sending: the request comes back for another member.
    NotSent(Failure, Request<UpBody>),
    /// Failed after sending.
    Sent(Failure),
}

/// What the answer's headers need from the request: the Host the client asked for (`Location`
/// rewriting).
#[derive(Clone, Copy)]
struct Back<'a> {
    client_host: Option<&'a http::HeaderValue>,
}

struct Deadlines {
    first_byte: Duration,
    total: Option<Instant>,
    idle: Duration,
}

async fn proxy(
    ctx: &ConnCtx,
    listener: &ListenerState,
    farm: &FarmState,
    mut req: Request<Incoming>,
    host_header: Option<http::HeaderValue>,
    retry_non_idempotent: bool,
    trace: &mut Trace,
) -> Response<ProxyBody> {
    let deadlines = Deadlines {
        first_byte: farm.timeouts.first_byte,
        total: farm.timeouts.total.map(|t| Instant::now() + t),
        idle: farm.timeouts.idle,
    };
    let scan = forward::Scan::of(req.headers());
    let upgrade = scan.wants_upgrade(req.headers());
    let mut client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let key = farm
        .key
        .as_ref()
        .and_then(|k| request_key(k, &ctx.client, req.headers()));

    let (mut parts, body) = req.into_parts();
    // The Host `handle` already looked up, unless an absolute-form target's authority replaces it.
    let mut client_host = host_header;
    if let Some(authority) = parts.uri.authority()
        && let Ok(host) = http::HeaderValue::from_str(authority.as_str())
    {
        parts.headers.insert(header::HOST, host.clone());
        client_host = Some(host);
    }
    forward::request_headers(
        &mut parts.headers,
        &scan,
        client_host.as_ref(),
        &ctx.client,
        listener.forwarding,
        upgrade,
    );
    if !farm.preserve_host {
        parts.headers.remove(header::HOST);
    }
    if parts.uri.scheme().is_some() {
        parts.uri = origin_form(&parts.uri);
    }
    parts.version = Version::HTTP_11;
    // One clock reading for the budget, the session table and the pick (time-aware policies).
    let now = clock::now();
    // Step 3: stickiness first.
    let (session, verdict) = match &farm.sticky {
        Some(s) => {
            s.strip(&mut parts.headers);
            let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
            s.resolve(&farm.farm, target.as_bytes(), &parts.headers, now)
        }
        None => (Session::default(), Verdict::Pick),
    };
    let mut first = match verdict {
        Verdict::Stick(i) => Some(i),
        Verdict::Refuse => {
            farm.counters.requests.fetch_add(1, Relaxed);
            trace.sticky = Sticky::Refused;
            return sticky_refused(farm, &session);
        }
        Verdict::Pick => None,
    };
    // `nofailover`: a stuck client is served by its member or not at all.
    let pinned = first.is_some() && farm.sticky.as_ref().is_some_and(|s| s.nofailover);
    let bodiless = body.is_end_stream();
    let replayable = !upgrade && (retry_non_idempotent || idempotent(&parts.method));
    let template = replayable.then(|| Template {
        method: parts.method.clone(),
        uri: parts.uri.clone(),
        headers: parts.headers.clone(),
    });
    let mut client_body = (!bodiless).then_some(body);
    let mut pending = Some(parts);
    // The first attempt's upload, keeping a copy of a small body for a resend.
    let mut kept: Option<Arc<Upload>> = None;
    let resend_body = |kept: &Option<Arc<Upload>>| -> Option<UpBody> {
        if bodiless {
            return Some(UpBody::Empty);
        }
        Some(UpBody::Replay(Some(kept.as_ref()?.replay()?)))
    };
    let can_resend = |kept: &Option<Arc<Upload>>| {
        template.is_some() && (bodiless || kept.as_ref().is_some_and(|u| u.can_replay()))
    };

    farm.budget.deposit(now);
    farm.counters.requests.fetch_add(1, Relaxed);
    let mut pick = PickContext::new(rng()).with_key(key).with_now(now);
    let mut last_failure: Option<Failure> = None;
    // A 5xx answer discarded for a retry: what the client gets if no other member does better.
    let mut held: Option<(Response<ProxyBody>, usize)> = None;
    // Every attempt so far failed to reach its member (never sent): if that is how the request
    // ends, the farm cannot serve, and its outage action answers.
    let mut unreachable = true;
    let mut tries = 0u32;
    loop {
        let next = match first.take() {
            Some(i) => Some((i, &farm.farm.members[i])),
            // `nofailover`: no other member, and no pick to move a policy's state for nothing.
            None if pinned => None,
            None => farm.farm.pick(&mut pick),
        };
        let Some((index, member)) = next else {
            break;
        };
        if tries > 0 {
            // A retry: within the farm's count and its budget (asked only once a member is
            // there to retry on, so a farm with nobody left spends nothing).
            if tries > farm.retries {
                break;
            }
            let now = clock::now();
            pick = pick.with_now(now);
            if !farm.budget.withdraw(now) {
                farm.counters.budget_refused.fetch_add(1, Relaxed);
                if let Some(n) = farm.warn.allow() {
                    tracing::warn!(farm = %farm.farm.name, held_back = n, "retry budget spent: answering without a retry");
                }
                break;
            }
            farm.counters.retries.fetch_add(1, Relaxed);
        }
        tries += 1;
        trace.tries = tries;
        trace.member = Some(index);
        pick.exclude(index);
        let up = &farm.upstreams[index];
        let mut req = match pending.take() {
            Some(parts) => {
                let body = match client_body.take() {
                    None => UpBody::Empty,
                    Some(inner) if template.is_some() => {
                        let body = UpBody::client_replayable(inner, Arc::clone(member));
                        kept = body.upload();
                        body
                    }
                    Some(inner) => UpBody::client(inner, Arc::clone(member)),
                };
                Request::from_parts(parts, body)
            }
            None => match (&template, resend_body(&kept)) {
                (Some(t), Some(body)) => t.request(body),
                _ => break,
            },
        };
        if !farm.preserve_host || !req.headers().contains_key(header::HOST) {
            req.headers_mut().insert(header::HOST, up.authority.clone());
        }
        if farm.orca_request {
            req.headers_mut()
                .insert(crate::orca::FORMAT, crate::orca::TEXT);
        }
        if let Some(s) = &farm.sticky {
            s.mark_moved(req.headers_mut(), &session, index);
        }
        // The client's upload on this attempt: while it is unfinished, a failure may be the
        // client's (gone, or stalling), not the member's.
        let upload = req.body().upload();
        farm.counters.attempts.fetch_add(1, Relaxed);
        let outcome = attempt(
            ctx,
            farm,
            up,
            req,
            &mut client_upgrade,
            &deadlines,
            Back {
                client_host: client_host.as_ref(),
            },
        )
        .await;
        match outcome {
            Attempt::Done(mut res) => {
                let status = res.status().as_u16();
                if !res.status().is_server_error() {
                    farm.farm.report(index, None, 0);
                    restick(farm, &session, &mut res, index, trace);
                    return res;
                }
                unreachable = false;
                if farm.count.status(status) {
                    report(farm, index, res.status().as_str());
                }
                if !(farm.retry_on.status(status) && can_resend(&kept)) {
                    restick(farm, &session, &mut res, index, trace);
                    return res;
                }
                tracing::debug!(
                    member = member.name(),
                    status,
                    "server error; trying another member"
                );
                held = Some((res, index));
            }
            Attempt::NotSent(f, req) => {
                tracing::debug!(member = member.name(), failure = ?f, "not sent; trying another member");
                if f == Failure::Connect && farm.count.connect {
                    report(farm, index, "connect failed");
                }
                if f != Failure::Connect {
                    unreachable = false;
                }
                // Not sent, so a streamed body is untouched: it goes to the next member. A body
                // replayed from the kept copy is rebuilt from it next time (`pending` stays empty).
                let (parts, body) = req.into_parts();
                if !matches!(body, UpBody::Replay(_)) {
                    pending = Some(parts);
                    client_body = body.into_client();
                }
                last_failure = Some(f);
            }
            Attempt::Sent(f) => {
                unreachable = false;
                let member_fault = upload.as_ref().is_none_or(|u| u.done());
                let (counted, allowed, what) = match f {
                    Failure::Upstream => (farm.count.reset, farm.retry_on.reset, "reset"),
                    Failure::FirstByteTimeout => {
                        (farm.count.timeout, farm.retry_on.timeout, "timeout")
                    }
                    // Out of time for the whole request: nothing left to retry with.
                    Failure::TotalTimeout => (farm.count.timeout, false, "timeout"),
                    Failure::Connect | Failure::Saturated => (false, false, "failure"),
                };
                if !member_fault {
                    // The client's body broke off or stalled: nothing to hold against the member,
                    // and nothing whole to send to another.
                    tracing::debug!(member = member.name(), failure = ?f, "request body did not arrive whole");
                    return answer_held(farm, &session, held, trace, || f.response());
                }
                if counted {
                    report(farm, index, what);
                }
                let retry = allowed && can_resend(&kept);
                if let Some(held) = up.warn.allow() {
                    tracing::warn!(member = member.name(), failure = ?f, retry, held_back = held, "member failed the request");
                }
                if !retry {
                    return answer_held(farm, &session, held, trace, || f.response());
                }
                last_failure = Some(f);
            }
        }
    }
    if held.is_some() {
        return answer_held(farm, &session, held, trace, || Failure::Upstream.response());
    }
    if pinned && unreachable {
        trace.sticky = Sticky::Refused;
        return sticky_refused(farm, &session);
    }
    // No member ready, or every one tried refused the connection: the outage action.
    trace.member = None;
    if unreachable && matches!(last_failure, None | Some(Failure::Connect)) {
        return outage(
            ctx,
            farm,
            pending,
            client_body,
            template.as_ref().zip(resend_body(&kept)),
            client_host.as_ref(),
            &deadlines,
        )
        .await;
    }
    last_failure.unwrap_or(Failure::Upstream).response()
}

/// Step 8 for the answer the client gets from member `index` (never for one discarded for a
/// retry): the sticky counters, and the client re-stuck where needed.
#[inline]
fn restick(
    farm: &FarmState,
    session: &Session,
    res: &mut Response<ProxyBody>,
    index: usize,
    trace: &mut Trace,
) {
    let Some(s) = &farm.sticky else {
        return;
    };
    match session.placed(index) {
        Some(true) => {
            trace.sticky = Sticky::Hit;
            farm.counters.sticky_hits.fetch_add(1, Relaxed);
        }
        Some(false) => {
            trace.sticky = Sticky::Moved;
            farm.counters.sticky_moved.fetch_add(1, Relaxed);
        }
        None => {}
    };
    match s.answer(res.headers_mut(), session, index, session.at) {
        Outcome::Nothing => {}
        Outcome::CookieSet => {
            farm.counters.sticky_cookies_set.fetch_add(1, Relaxed);
        }
        Outcome::Learned => {
            farm.counters.sticky_learned.fetch_add(1, Relaxed);
        }
    }
}

/// The 5xx kept back for a retry that did not do better, re-stuck as any answer; or `otherwise`.
fn answer_held(
    farm: &FarmState,
    session: &Session,
    held: Option<(Response<ProxyBody>, usize)>,
    trace: &mut Trace,
    otherwise: impl FnOnce() -> Response<ProxyBody>,
) -> Response<ProxyBody> {
    match held {
        Some((mut res, index)) => {
            trace.member = Some(index);
            restick(farm, session, &mut res, index, trace);
            res
        }
        None => otherwise(),
    }
}

/// `nofailover`: the member holding the client's session cannot serve it, and the client may not
/// be moved: 503, as Apache answers.
#[cold]
fn sticky_refused(farm: &FarmState, session: &Session) -> Response<ProxyBody> {
    farm.counters.sticky_refused.fetch_add(1, Relaxed);
    if let Some(held) = farm.warn.allow() {
        let member = session.holder.map_or("?", |h| farm.farm.members[h].name());
        tracing::info!(farm = %farm.farm.name, member, held_back = held, "sticky member cannot serve and nofailover is on: 503");
    }
    error::text(
        StatusCode::SERVICE_UNAVAILABLE,
        "503 Service Unavailable: the server holding this session is unavailable\n",
    )
}

/// Passive checks: one failure of member `index`, counted; an ejection it causes is logged once.
#[cold]
fn report(farm: &FarmState, index: usize, what: &str) {
    if let Some(t) = farm.farm.report(index, Some(what), clock::now()) {
        let member = farm.farm.members[index].name();
        tracing::info!(farm = %farm.farm.name, member, "member {member} {t}");
    }
}

async fn attempt(
    ctx: &ConnCtx,
    farm: &FarmState,
    up: &Arc<Upstream>,
    req: Request<UpBody>,
    client_upgrade: &mut Option<OnUpgrade>,
    deadlines: &Deadlines,
    back: Back<'_>,
) -> Attempt {
    // The one clock reading before sending: pool ageing, the time the request went out.
    let sent = Instant::now();
    let bodiless = matches!(req.body(), UpBody::Empty);
    if h1client::suits(req.method(), bodiless, client_upgrade.is_some()) {
        return attempt_raw(ctx, farm, up, req, sent, deadlines, back).await;
    }
    let lent = if client_upgrade.is_some() {
        up.connect_upgradable().await.map(|conn| Lent {
            conn: Pooled::Hyper(conn),
            reused: false,
        })
    } else {
        up.acquire(ctx.worker, sent, Kind::Hyper).await
    };
    let (mut conn, reused) = match lent {
        Ok(Lent {
            conn: Pooled::Hyper(conn),
            reused,
        }) => (conn, reused),
        Ok(Lent {
            conn: Pooled::Raw(_),
            ..
        }) => unreachable!("the pool lends the kind asked for"),
        Err(f) => return Attempt::NotSent(f, req),
    };
    let ready_by = sent + deadlines.first_byte;
    if !matches!(timeout_at(ready_by, conn.ready()).await, Ok(Ok(()))) {
        if client_upgrade.is_some() {
            return Attempt::NotSent(Failure::Connect, req);
        }
        // The pooled connection closed while idle; one fresh try on the same member.
        conn = match up.acquire(ctx.worker, Instant::now(), Kind::Hyper).await {
            Ok(Lent {
                conn: Pooled::Hyper(conn),
                ..
            }) => conn,
            Ok(_) => unreachable!("the pool lends the kind asked for"),
            Err(f) => return Attempt::NotSent(f, req),
        };
        if !matches!(timeout_at(ready_by, conn.ready()).await, Ok(Ok(()))) {
            return Attempt::NotSent(Failure::Connect, req);
        }
    }
    let upload = req.body().upload();
    let mut exchange = Exchange::start(Arc::clone(up), ctx.worker).with_upload(upload.clone());
    let (limit, on_timeout) = first_limit(sent, deadlines);
    let response = conn.try_send_request(req);
    tokio::pin!(response);
    let mut limit = limit;
    let mut progress = upload.as_ref().map(|u| (u.sent(), u.done()));
    let res = loop {
        match timeout_at(limit, response.as_mut()).await {
            Err(_) => {
                // The member owes no answer before it has the whole body: while the upload keeps
                // moving, or if it finished since the timer was set, the wait starts again.
                let now = upload.as_ref().map(|u| (u.sent(), u.done()));
                let moving = match (progress, now) {
                    (Some((sent0, done0)), Some((sent1, done1))) => {
                        !done0 && (sent1 > sent0 || done1)
                    }
                    _ => false,
                };
                let before_total = deadlines.total.is_none_or(|t| Instant::now() < t);
                if moving && before_total {
                    progress = now;
                    limit = Instant::now() + deadlines.first_byte;
                    if let Some(t) = deadlines.total {
                        limit = limit.min(t);
                    }
                    continue;
                }
                break Err(());
            }
            Ok(r) => break Ok(r),
        }
    };
    let res = match res {
        Ok(Ok(res)) => res,
        Ok(Err(mut e)) => {
            return match e.take_message() {
                Some(req) => Attempt::NotSent(Failure::Connect, req),
                None => {
                    tracing::debug!(member = up.member.name(), error = %e.error(), reused, "member failed before answering");
                    Attempt::Sent(Failure::Upstream)
                }
            };
        }
        Err(()) => return timed_out(up, sent, deadlines, on_timeout),
    };
    if res.status() == StatusCode::SWITCHING_PROTOCOLS
        && let Some(client_io) = client_upgrade.take()
    {
        exchange.headers_received(sent, None);
        return Attempt::Done(upgrade::switch(res, client_io, exchange));
    }
    // A dedicated upgrade connection that was not switched is not pooled: it was never counted.
    let keep = client_upgrade.is_none().then_some(Pooled::Hyper(conn));
    exchange.headers_received(sent, keep);
    let (parts, body) = res.into_parts();
    Attempt::Done(answer_from(
        farm,
        up,
        parts,
        Inner::Hyper(body),
        exchange,
        deadlines,
        back,
    ))
}

/// [`attempt`] for a request without a body, through drover's own client ([`h1client`]): the
/// request head is written and the response head read from this task, on a pooled [`RawConn`].
async fn attempt_raw(
    ctx: &ConnCtx,
    farm: &FarmState,
    up: &Arc<Upstream>,
    req: Request<UpBody>,
    sent: Instant,
    deadlines: &Deadlines,
    back: Back<'_>,
) -> Attempt {
    let (limit, on_timeout) = first_limit(sent, deadlines);
    let (head, body) = req.into_parts();
    let head_request = head.method == Method::HEAD;
    // Started once a connection is lent: from then on the request is in flight on the member.
    let mut exchange: Option<Exchange> = None;
    let mut fresh_try = false;
    // Lending is bounded by `connect_timeout` (a failure there is retried elsewhere: nothing
    // was sent); sending and the response head by the first-byte (or total) deadline.
    let (conn, parsed) = loop {
        let (mut conn, reused) = match up.acquire(ctx.worker, sent, Kind::Raw).await {
            Ok(Lent {
                conn: Pooled::Raw(conn),
                reused,
            }) => (conn, reused),
            Ok(_) => unreachable!("the pool lends the kind asked for"),
            Err(f) => return Attempt::NotSent(f, Request::from_parts(head, body)),
        };
        exchange.get_or_insert_with(|| Exchange::start(Arc::clone(up), ctx.worker));
        // A send that fails, now or when the deferred head goes out (batch.rs), is NotSent.
        let answer = match timeout_at(limit, conn.send(&head)).await {
            Err(_) => return timed_out(up, sent, deadlines, on_timeout),
            Ok(Err(e)) => Ok(Err(HeadError::NotSent(e))),
            Ok(Ok(())) => timeout_at(limit, conn.read_head(head_request)).await,
        };
        match answer {
            Err(_) => return timed_out(up, sent, deadlines, on_timeout),
            Ok(Err(HeadError::NotSent(e))) => {
                // A pooled connection the member closed as it was lent: one fresh try on the
                // same member, as with hyper's `ready()` in `attempt`.
                if reused && !fresh_try {
                    fresh_try = true;
                    continue;
                }
                tracing::debug!(member = up.member.name(), error = %e, reused, "request not sent");
                return Attempt::NotSent(Failure::Connect, Request::from_parts(head, body));
            }
            Ok(Err(e)) => {
                // The member closed a pooled connection as the request went out (its keep-alive
                // timeout raced the reuse): nothing was answered, so a request that may be
                // repeated gets one more try on the same member, as nginx does with a cached
                // connection (on another idle connection if the pool has one, else a new one).
                if reused
                    && !fresh_try
                    && matches!(e, HeadError::Unanswered(_))
                    && head.method.is_idempotent()
                {
                    fresh_try = true;
                    continue;
                }
                tracing::debug!(member = up.member.name(), error = %e, reused, "member failed before answering");
                return Attempt::Sent(Failure::Upstream);
            }
            Ok(Ok(parsed)) => break (conn, parsed),
        }
    };
    let mut exchange = exchange.expect("a connection was lent");
    exchange.headers_received(sent, None);
    let body = RawBody::new(conn, &parsed);
    Attempt::Done(answer_from(
        farm,
        up,
        parsed.parts,
        Inner::Raw(body),
        exchange,
        deadlines,
        back,
    ))
}

/// The first-byte deadline of a request sent at `sent`, and the failure it means when it passes.
fn first_limit(sent: Instant, deadlines: &Deadlines) -> (Instant, Failure) {
    let first_byte = sent + deadlines.first_byte;
    match deadlines.total {
        Some(t) if t < first_byte => (t, Failure::TotalTimeout),
        _ => (first_byte, Failure::FirstByteTimeout),
    }
}

/// No response head in time.
fn timed_out(up: &Upstream, sent: Instant, deadlines: &Deadlines, on_timeout: Failure) -> Attempt {
    let now = Instant::now();
    let on_timeout = match deadlines.total {
        Some(t) if now >= t => Failure::TotalTimeout,
        _ => on_timeout,
    };
    // The wait itself is the latency sample, as tower's Peak-EWMA takes it when a request
    // is dropped: without it a member that only times out would look as fast as ever to
    // latency-aware policies (drover-sim's Linkerd replica: 4.65% timeouts for peak-ewma
    // without the sample, 0.66% with it).
    let waited = now.saturating_duration_since(sent).as_nanos() as u64;
    up.member
        .stats
        .observe_rtt(waited, clock::nanos(now.into_std()));
    if let Some(held) = up.warn.allow() {
        tracing::warn!(member = up.member.name(), failure = ?on_timeout, held_back = held, "no response head in time");
    }
    Attempt::Sent(on_timeout)
}

/// Step 8's headers for a member's answer, and its body set streaming.
fn answer_from(
    farm: &FarmState,
    up: &Arc<Upstream>,
    mut parts: http::response::Parts,
    body: Inner,
    mut exchange: Exchange,
    deadlines: &Deadlines,
    back: Back<'_>,
) -> Response<ProxyBody> {
    if parts.status.is_server_error() {
        exchange.server_error();
    }
    // The member's HTTP version is its connection's business: the client is answered in
    // HTTP/1.1 (hyper answers an HTTP/1.0 client in its own version), and its connection stays
    // open where an HTTP/1.0 answer would have closed it.
    parts.version = Version::HTTP_11;
    let scan = forward::Scan::of(&parts.headers);
    forward::strip_hop_by_hop(&mut parts.headers, &scan);
    if scan.has_orca() {
        crate::orca::take(farm, up, &mut parts.headers);
    }
    if farm.rewrite_location && scan.has_location() {
        forward::rewrite_location(&mut parts.headers, &up.origin, back.client_host);
    }
    let body = UpstreamBody::new(body, exchange, deadlines.idle, deadlines.total);
    Response::from_parts(parts, ProxyBody::Upstream(body))
}

async fn outage(
    ctx: &ConnCtx,
    farm: &FarmState,
    parts: Option<http::request::Parts>,
    client_body: Option<Incoming>,
    resend: Option<(&Template, UpBody)>,
    client_host: Option<&http::HeaderValue>,
    deadlines: &Deadlines,
) -> Response<ProxyBody> {
    if let Some(held) = farm.warn.allow() {
        tracing::warn!(farm = %farm.farm.name, held_back = held, "no member is ready: outage action");
    }
    match &farm.outage {
        OutageAction::Page {
            status,
            body,
            content_type,
        } => error::page(*status, body.clone(), content_type.clone()),
        OutageAction::Redirect(url) => {
            let mut res = Response::new(ProxyBody::empty());
            *res.status_mut() = StatusCode::FOUND;
            res.headers_mut().insert(header::LOCATION, url.clone());
            res
        }
        OutageAction::Sorry(up) => {
            let req = match (parts, resend) {
                (Some(mut parts), _) => {
                    if !parts.headers.contains_key(header::HOST) {
                        parts.headers.insert(header::HOST, up.authority.clone());
                    }
                    let body = match client_body {
                        None => UpBody::Empty,
                        Some(inner) => UpBody::client(inner, Arc::clone(&up.member)),
                    };
                    Request::from_parts(parts, body)
                }
                (None, Some((t, body))) => t.request(body),
                (None, None) => return Failure::Connect.response(),
            };
            let back = Back { client_host };
            match attempt(ctx, farm, up, req, &mut None, deadlines, back).await {
                Attempt::Done(res) => res,
                Attempt::NotSent(f, _) | Attempt::Sent(f) => f.response(),
            }
        }
    }
}

/// The absolute-form target of a proxy-style request, reduced to origin-form (`/path?query`).
fn origin_form(uri: &Uri) -> Uri {
    uri.path_and_query()
        .map(|pq| Uri::from(pq.clone()))
        .unwrap_or_else(|| Uri::from_static("/"))
}

/// The `hash` policy's key for this request, or `None` when the request does not carry it.
fn request_key(source: &KeySource, client: &ClientAddr, headers: &HeaderMap) -> Option<u64> {
    match source {
        KeySource::Source => Some(match client.ip {
            std::net::IpAddr::V4(v4) => hash_key(&v4.octets()),
            std::net::IpAddr::V6(v6) => hash_key(&v6.octets()),
        }),
        KeySource::Header(name) => headers.get(name).map(|v| hash_key(v.as_bytes())),
        KeySource::Cookie(name) => headers
            .get_all(header::COOKIE)
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b';'))
            .find_map(|pair| {
                let pair = pair.trim_ascii();
                let (k, v) = pair.split_at(pair.iter().position(|&b| b == b'=')?);
                (k == name.as_bytes()).then(|| hash_key(&v[1..]))
            }),
    }
}
