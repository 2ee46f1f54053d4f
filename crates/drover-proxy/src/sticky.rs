//! Sticky sessions on the request path (DESIGN.md, "The request path", steps 3 and 8): which
//! member a request's session names, whether that member may serve it, and what goes back to the
//! client and the member when it may not.
//!
//! Per request: [`StickyState::resolve`] reads the session (URL parameter first, then cookie, as
//! Apache does; see `drover_core::sticky`) and gives a [`Verdict`]: stick to a member, refuse
//! (`nofailover`: 503), or let the policy pick. A member may serve its sticky clients while it is
//! ready, draining included; in panic mode health is ignored as for new picks. When it may not,
//! its Apache-style `redirect` member takes them if that one can; otherwise the policy picks and
//! the client is *moved*: the request carries `moved_header: <old member>`, and the answer
//! re-sticks the client (insert: a new cookie; learn: the table entry moves; route: the
//! application's cookie with the new route, when `set_cookie` says so and the member did not set
//! it itself). A value that names no member (tampered, expired, another farm's, a removed
//! member's route) is the same as no session: never an error.
//!
//! Cost: no allocation on a request that sticks; one `Set-Cookie` built per new or moved client;
//! learn mode takes one shard lock per request that carries a session and per response that sets
//! one.

use std::sync::Arc;

use drover_config::{RouteCookie, Sticky, StickyMode};
use drover_core::Farm;
use drover_core::sticky::{
    CookieSigner, RouteMap, SessionTable, cookie_value, path_param, route_of, session_key,
    set_cookie,
};
use http::{HeaderMap, HeaderName, HeaderValue, header};

/// A farm's sticky settings, built with the farm.
#[derive(Debug)]
pub struct StickyState {
    mode: StickyMode,
    cookie: Option<String>,
    path_param: Option<String>,
    separator: u8,
    pub nofailover: bool,
    moved_header: Option<HeaderName>,
    set_cookie: RouteCookie,
    routes: RouteMap,
    /// Per member: the member that takes its clients while it cannot (Apache's `redirect`).
    redirects: Vec<Option<usize>>,
    /// Per member: its name, as the moved header's value.
    names: Vec<HeaderValue>,
    signer: Option<CookieSigner>,
    /// Insert mode: `; Path=/; HttpOnly; SameSite=Lax` and the rest, after the value.
    attributes: String,
    /// Learn mode's table (shared with the sweeper and the API).
    pub table: Option<Arc<SessionTable>>,
}

/// What one request's session says, carried from the pick to the answer.
#[derive(Debug, Default)]
pub struct Session {
    /// The member the client's session names (and that exists).
    pub holder: Option<usize>,
    /// When the request was resolved, on the `drover_core::clock` scale: the answer's learn-mode
    /// writes use it, so a request reads the clock once.
    pub at: u64,
    /// Insert mode: the client's cookie is signed with the current key.
    current: bool,
    /// Learn mode: the session id's key, when the request carried one.
    key: Option<u64>,
    /// The holder's `redirect` member serves instead: the client is not re-stuck to it, so it
    /// goes back to its holder when that one can serve again (Apache's route redirect).
    via_redirect: Option<usize>,
    /// Route mode: the session value before its separator, kept only when the client may get a
    /// new route cookie (moved, or `set_cookie = "new"`).
    prefix: Option<Box<[u8]>>,
}

impl Session {
    /// For the counters, once member `index` answered: `Some(true)` when it is where the session
    /// said (its holder or the holder's redirect), `Some(false)` when the client was moved,
    /// `None` when the request had no session.
    pub fn placed(&self, index: usize) -> Option<bool> {
        let h = self.holder?;
        Some(h == index || self.via_redirect == Some(index))
    }
}

/// Where a request goes, as far as stickiness is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// To this member (the session's holder, or its redirect).
    Stick(usize),
    /// Nowhere: the holder cannot serve and `nofailover` forbids moving the client.
    Refuse,
    /// Wherever the policy says.
    Pick,
}

/// What the answer did for the client's stickiness, for the farm's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Nothing,
    /// Drover set a cookie (insert mode, or a route cookie).
    CookieSet,
    /// Learn mode: the table learned a session or moved one.
    Learned,
}

impl StickyState {
    pub fn build(cfg: &Sticky, farm: &Farm) -> StickyState {
        let live: Vec<Option<Arc<str>>> = farm.members.iter().map(|m| m.route()).collect();
        let routes = RouteMap::new(live.iter().map(|r| r.as_deref()));
        let redirects = cfg
            .redirects
            .iter()
            .map(|r| r.as_deref().and_then(|r| routes.get(r.as_bytes())))
            .collect();
        let names = farm
            .members
            .iter()
            .map(|m| HeaderValue::from_str(m.name()).unwrap_or(HeaderValue::from_static("?")))
            .collect();
        let signer = (cfg.mode == StickyMode::Insert).then(|| {
            let members: Vec<&str> = farm.members.iter().map(|m| m.name()).collect();
            let keys: Vec<&[u8]> = cfg.insert.keys.iter().map(|k| k.expose()).collect();
            CookieSigner::new(&farm.name, &members, &keys)
        });
        let table = (cfg.mode == StickyMode::Learn)
            .then(|| Arc::new(SessionTable::new(cfg.max_sessions, cfg.ttl)));
        StickyState {
            mode: cfg.mode,
            cookie: cfg.cookie.clone(),
            path_param: cfg.path_param.clone(),
            separator: cfg.separator,
            nofailover: cfg.nofailover,
            moved_header: cfg
                .moved_header
                .as_deref()
                .and_then(|h| HeaderName::from_bytes(h.as_bytes()).ok()),
            set_cookie: cfg.set_cookie,
            routes,
            redirects,
            names,
            signer,
            attributes: attributes(cfg),
            table,
        }
    }

    /// Builds the farm's sticky state for a new snapshot. Learn mode keeps the sessions `old`
    /// learned: the same table when the members are the same, in the same order, and the table's
    /// size and time to live are unchanged (so nothing learned during the swap is lost), else a
    /// copy in the same LRU order with each session moved to its member's new place (sessions of
    /// members that are gone are dropped; the coldest go first when the new table is smaller).
    pub fn rebuild(
        cfg: &Sticky,
        farm: &Farm,
        old: Option<(&StickyState, &Arc<Farm>)>,
    ) -> StickyState {
        let mut state = StickyState::build(cfg, farm);
        let (Some(new), Some((old, old_farm))) = (&state.table, old) else {
            return state;
        };
        let Some(old_table) = &old.table else {
            return state;
        };
        let same_members = old_farm.members.len() == farm.members.len()
            && old_farm
                .members
                .iter()
                .zip(&farm.members)
                .all(|(a, b)| Arc::ptr_eq(a, b));
        if same_members && old_table.capacity() == new.capacity() && old_table.ttl() == new.ttl() {
            state.table = Some(Arc::clone(old_table));
            return state;
        }
        let now = drover_core::clock::now();
        // Least recently used first, so the copy's LRU order is the old table's: when it is
        // smaller, the sessions that go are the coldest.
        let mut entries = old_table.entries(now);
        entries.sort_by_key(|&(_, _, idle)| std::cmp::Reverse(idle));
        for (key, member, idle) in entries {
            let Some(was) = old_farm.members.get(member) else {
                continue;
            };
            if let Some(i) = farm.members.iter().position(|m| Arc::ptr_eq(m, was)) {
                new.adopt(key, i, now.saturating_sub(idle));
            }
        }
        state
    }

    /// `route`, `insert` or `learn`.
    pub fn mode_name(&self) -> &'static str {
        self.mode.name()
    }

    /// The session a request carries: URL parameter first, then the cookie.
    fn value<'a>(&self, target: &'a [u8], headers: &'a HeaderMap) -> Option<&'a [u8]> {
        if let Some(p) = &self.path_param
            && let Some(v) = path_param(target, p.as_bytes())
        {
            return Some(v);
        }
        let name = self.cookie.as_deref()?.as_bytes();
        headers
            .get_all(header::COOKIE)
            .iter()
            .find_map(|h| cookie_value(h.as_bytes(), name))
    }

    /// Step 3 of the request path: the request's session and where it must go. `target` is the
    /// request's path and query; `now` on the `drover_core::clock` scale.
    pub fn resolve(
        &self,
        farm: &Farm,
        target: &[u8],
        headers: &HeaderMap,
        now: u64,
    ) -> (Session, Verdict) {
        let mut s = Session {
            at: now,
            ..Session::default()
        };
        let value = self.value(target, headers);
        match self.mode {
            StickyMode::Route => {
                s.holder = value
                    .and_then(|v| route_of(v, self.separator))
                    .and_then(|r| self.routes.get(r));
            }
            StickyMode::Insert => {
                if let Some((m, current)) = value.and_then(|v| self.signer.as_ref()?.member(v)) {
                    s.holder = Some(m);
                    s.current = current;
                }
            }
            StickyMode::Learn => {
                s.key = value.map(session_key);
                s.holder = s
                    .key
                    .and_then(|k| self.table.as_ref()?.get(k, now))
                    .filter(|&m| m < farm.members.len());
            }
        }
        let verdict = match s.holder {
            Some(h) if farm.serves_sticky(h) => Verdict::Stick(h),
            Some(h) => match self.redirects.get(h).copied().flatten() {
                Some(r) if farm.serves_sticky(r) => {
                    s.via_redirect = Some(r);
                    Verdict::Stick(r)
                }
                _ if self.nofailover => Verdict::Refuse,
                _ => Verdict::Pick,
            },
            None => Verdict::Pick,
        };
        // Route mode re-sticks a moved (or, with `set_cookie = "new"`, a new) client by setting
        // the application's cookie with the new route: keep what goes before the route.
        let may_set = match self.set_cookie {
            RouteCookie::Never => false,
            RouteCookie::Moved => s.holder.is_some(),
            RouteCookie::New => true,
        };
        if self.mode == StickyMode::Route
            && self.cookie.is_some()
            && may_set
            && verdict == Verdict::Pick
        {
            let prefix = value.map_or(&b""[..], |v| {
                let cut = v
                    .iter()
                    .position(|&b| b == self.separator)
                    .unwrap_or(v.len());
                &v[..cut]
            });
            s.prefix = Some(prefix.into());
        }
        (s, verdict)
    }

    /// Removes a client's own moved header, so none reaches any member (the outage path's sorry
    /// member included); [`mark_moved`](Self::mark_moved) sets drover's own per attempt.
    pub fn strip(&self, headers: &mut HeaderMap) {
        if let Some(name) = &self.moved_header {
            headers.remove(name);
        }
    }

    /// Tells member `index` that the client was moved to it from the session's holder, when it
    /// was: on every attempt, so a retry on a third member says so too. A client's own header of
    /// that name never reaches the member.
    pub fn mark_moved(&self, headers: &mut HeaderMap, session: &Session, index: usize) {
        let Some(name) = &self.moved_header else {
            return;
        };
        match session.holder {
            Some(h) if h != index => {
                headers.insert(name.clone(), self.names[h].clone());
            }
            _ => {
                headers.remove(name);
            }
        }
    }

    /// Step 8: re-sticks the client to member `index`, which answered, where needed.
    pub fn answer(
        &self,
        headers: &mut HeaderMap,
        session: &Session,
        index: usize,
        now: u64,
    ) -> Outcome {
        // A redirect member serves the client only while its holder cannot: no new cookie sends
        // the client there for good (learn mode still learns what that member sets itself).
        let redirected = session.via_redirect == Some(index);
        match self.mode {
            StickyMode::Insert | StickyMode::Route if redirected => Outcome::Nothing,
            StickyMode::Insert => {
                if session.holder == Some(index) && session.current {
                    return Outcome::Nothing;
                }
                let (Some(signer), Some(name)) = (&self.signer, &self.cookie) else {
                    return Outcome::Nothing;
                };
                let cookie = format!("{name}={}{}", signer.value(index), self.attributes);
                match HeaderValue::from_str(&cookie) {
                    Ok(v) => {
                        headers.append(header::SET_COOKIE, v);
                        Outcome::CookieSet
                    }
                    Err(_) => Outcome::Nothing,
                }
            }
            StickyMode::Learn => self.learn(headers, session, index, now),
            StickyMode::Route => {
                let (Some(prefix), Some(name), Some(route)) =
                    (&session.prefix, &self.cookie, self.routes.route(index))
                else {
                    return Outcome::Nothing;
                };
                if session.holder == Some(index) || sets(headers, name.as_bytes()) {
                    return Outcome::Nothing;
                }
                let mut v = Vec::with_capacity(name.len() + prefix.len() + route.len() + 10);
                v.extend_from_slice(name.as_bytes());
                v.push(b'=');
                v.extend_from_slice(prefix);
                v.push(self.separator);
                v.extend_from_slice(route);
                // A session cookie: never readable by scripts, whatever the application set.
                v.extend_from_slice(b"; Path=/; HttpOnly");
                match HeaderValue::from_bytes(&v) {
                    Ok(v) => {
                        headers.append(header::SET_COOKIE, v);
                        Outcome::CookieSet
                    }
                    Err(_) => Outcome::Nothing,
                }
            }
        }
    }

    /// Learn mode: sessions the member sets are its own; a known session that was moved here is
    /// placed here. A session id the table does not know is never learned from a request: only a
    /// member can create entries, so clients sending made-up ids cannot push real sessions out.
    fn learn(&self, headers: &HeaderMap, session: &Session, index: usize, now: u64) -> Outcome {
        let (Some(table), Some(name)) = (&self.table, &self.cookie) else {
            return Outcome::Nothing;
        };
        let mut news = false;
        let mut set = false;
        for h in headers.get_all(header::SET_COOKIE) {
            if let Some((n, value, deletes)) = set_cookie(h.as_bytes())
                && n == name.as_bytes()
            {
                set = true;
                let key = session_key(value);
                if deletes {
                    if !value.is_empty() {
                        table.forget(key);
                    }
                    if let Some(k) = session.key {
                        table.forget(k);
                    }
                } else {
                    news |= table.learn(key, index, now);
                }
            }
        }
        if !set
            && session.via_redirect != Some(index)
            && let (Some(k), Some(holder)) = (session.key, session.holder)
            && holder != index
        {
            news |= table.learn(k, index, now);
        }
        if news {
            Outcome::Learned
        } else {
            Outcome::Nothing
        }
    }
}

/// Does the answer set cookie `name` itself?
fn sets(headers: &HeaderMap, name: &[u8]) -> bool {
    headers
        .get_all(header::SET_COOKIE)
        .iter()
        .any(|h| set_cookie(h.as_bytes()).is_some_and(|(n, _, _)| n == name))
}

/// Insert mode's cookie attributes, built once.
fn attributes(cfg: &Sticky) -> String {
    let c = &cfg.insert;
    let mut out = format!("; Path={}", c.path);
    if let Some(d) = &c.domain {
        out.push_str("; Domain=");
        out.push_str(d);
    }
    if let Some(age) = c.max_age {
        out.push_str(&format!("; Max-Age={}", age.as_secs().max(1)));
    }
    if c.http_only {
        out.push_str("; HttpOnly");
    }
    if c.secure {
        out.push_str("; Secure");
    }
    if let Some(s) = &c.same_site {
        out.push_str("; SameSite=");
        out.push_str(s);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use drover_config::InsertCookie;
    use drover_core::{Flag, MemberSpec, PolicyKind};

    fn farm() -> Farm {
        let specs = (1..=3)
            .map(|i| MemberSpec {
                name: format!("m{i}"),
                addr: ([127, 0, 0, 1], 9000 + i).into(),
                weight: 1,
                route: Some(format!("n{i}")),
                enabled: true,
            })
            .collect();
        Farm::new("app", PolicyKind::RoundRobin, specs)
    }

    fn sticky(mode: StickyMode, cookie: &str) -> Sticky {
        Sticky {
            mode,
            cookie: Some(cookie.to_owned()),
            path_param: None,
            separator: b'.',
            nofailover: false,
            moved_header: Some("X-Drover-Sticky-Moved".to_owned()),
            set_cookie: RouteCookie::Moved,
            insert: InsertCookie {
                keys: vec![drover_config::Secret::new("unit-test-key-0123456789")],
                ..InsertCookie::default()
            },
            ttl: std::time::Duration::from_secs(60),
            max_sessions: 1000,
            redirects: vec![None, Some("n3".to_owned()), None],
        }
    }

    fn cookies(c: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, c.parse().unwrap());
        h
    }

    fn set_cookies(h: &HeaderMap) -> Vec<String> {
        h.get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn route_mode_sticks_redirects_and_moves() {
        let farm = farm();
        let s = StickyState::build(&sticky(StickyMode::Route, "JSESSIONID"), &farm);
        let (session, v) = s.resolve(&farm, b"/", &cookies("JSESSIONID=abc.n2"), 0);
        assert_eq!((session.holder, v), (Some(1), Verdict::Stick(1)));

        // m2 down: its redirect m3 serves, and the client is not re-stuck there.
        farm.members[1].state.set(Flag::Up, false);
        let (session, v) = s.resolve(&farm, b"/", &cookies("JSESSIONID=abc.n2"), 0);
        assert_eq!(v, Verdict::Stick(2));
        let mut answer = HeaderMap::new();
        assert_eq!(s.answer(&mut answer, &session, 2, 0), Outcome::Nothing);
        assert_eq!(session.placed(2), Some(true));

        // m1 down, no redirect: moved; the member is told, and the cookie gets the new route.
        farm.members[0].state.set(Flag::Up, false);
        let (session, v) = s.resolve(&farm, b"/", &cookies("JSESSIONID=abc.n1"), 0);
        assert_eq!(v, Verdict::Pick);
        let mut req = cookies("x=1");
        req.insert("x-drover-sticky-moved", "forged".parse().unwrap());
        s.mark_moved(&mut req, &session, 2);
        assert_eq!(req["x-drover-sticky-moved"], "m1");
        let mut answer = HeaderMap::new();
        assert_eq!(s.answer(&mut answer, &session, 2, 0), Outcome::CookieSet);
        assert_eq!(
            set_cookies(&answer),
            ["JSESSIONID=abc.n3; Path=/; HttpOnly"]
        );
        // ... unless the member set the cookie itself.
        let mut answer = HeaderMap::new();
        answer.insert(
            header::SET_COOKIE,
            "JSESSIONID=new.n3; Path=/app".parse().unwrap(),
        );
        assert_eq!(s.answer(&mut answer, &session, 2, 0), Outcome::Nothing);
        assert_eq!(set_cookies(&answer).len(), 1);

        // A client's own moved header never reaches a member it was not moved to.
        let (session, _) = s.resolve(&farm, b"/", &cookies("JSESSIONID=abc.n3"), 0);
        let mut req = HeaderMap::new();
        req.insert("x-drover-sticky-moved", "forged".parse().unwrap());
        s.mark_moved(&mut req, &session, 2);
        assert!(req.get("x-drover-sticky-moved").is_none());
    }

    #[test]
    fn nofailover_refuses_and_draining_still_serves() {
        let farm = farm();
        let mut cfg = sticky(StickyMode::Route, "JSESSIONID");
        cfg.nofailover = true;
        cfg.redirects = vec![None; 3];
        let s = StickyState::build(&cfg, &farm);
        farm.members[0].state.set(Flag::Draining, true);
        let (_, v) = s.resolve(&farm, b"/", &cookies("JSESSIONID=abc.n1"), 0);
        assert_eq!(v, Verdict::Stick(0), "draining keeps its sticky users");
        farm.members[0].state.set(Flag::On, false);
        let (_, v) = s.resolve(&farm, b"/", &cookies("JSESSIONID=abc.n1"), 0);
        assert_eq!(v, Verdict::Refuse);
        let (session, v) = s.resolve(&farm, b"/", &cookies("JSESSIONID=abc.n9"), 0);
        assert_eq!(
            (session.holder, v),
            (None, Verdict::Pick),
            "unknown route: no session"
        );
    }

    #[test]
    fn learn_mode_learns_only_what_members_set() {
        let farm = farm();
        let s = StickyState::build(&sticky(StickyMode::Learn, "PHPSESSID"), &farm);
        let table = s.table.as_ref().unwrap();
        // A made-up id is not learned from the request.
        let (session, v) = s.resolve(&farm, b"/", &cookies("PHPSESSID=made-up"), 1);
        assert_eq!(v, Verdict::Pick);
        assert_eq!(
            s.answer(&mut HeaderMap::new(), &session, 0, 1),
            Outcome::Nothing
        );
        assert!(table.is_empty());
        // The member sets one: learned.
        let mut answer = HeaderMap::new();
        answer.insert(
            header::SET_COOKIE,
            "PHPSESSID=real; Path=/".parse().unwrap(),
        );
        let (session, _) = s.resolve(&farm, b"/", &HeaderMap::new(), 1);
        assert_eq!(s.answer(&mut answer, &session, 1, 1), Outcome::Learned);
        let (session, v) = s.resolve(&farm, b"/", &cookies("PHPSESSID=real"), 2);
        assert_eq!(v, Verdict::Stick(1));
        // Moved while m2 is off: the entry follows the client.
        farm.members[1].state.set(Flag::On, false);
        let (moved, v) = s.resolve(&farm, b"/", &cookies("PHPSESSID=real"), 3);
        assert_eq!(v, Verdict::Stick(2), "m2's redirect is m3");
        assert_eq!(
            s.answer(&mut HeaderMap::new(), &moved, 2, 3),
            Outcome::Nothing
        );
        // ... but a session the redirect member creates itself is learned there.
        let mut answer = HeaderMap::new();
        answer.insert(
            header::SET_COOKIE,
            "PHPSESSID=fresh; Path=/".parse().unwrap(),
        );
        assert_eq!(s.answer(&mut answer, &moved, 2, 3), Outcome::Learned);
        let (_, v) = s.resolve(&farm, b"/", &cookies("PHPSESSID=fresh"), 3);
        assert_eq!(v, Verdict::Stick(2));
        table.forget(session_key(b"fresh"));
        farm.members[2].state.set(Flag::On, false);
        let (moved, v) = s.resolve(&farm, b"/", &cookies("PHPSESSID=real"), 3);
        assert_eq!(v, Verdict::Pick);
        assert_eq!(
            s.answer(&mut HeaderMap::new(), &moved, 0, 3),
            Outcome::Learned
        );
        farm.members[1].state.set(Flag::On, true);
        let (_, v) = s.resolve(&farm, b"/", &cookies("PHPSESSID=real"), 4);
        assert_eq!(v, Verdict::Stick(0), "re-stuck to m1");
        // The member ends the session.
        let mut answer = HeaderMap::new();
        answer.insert(header::SET_COOKIE, "PHPSESSID=; Max-Age=0".parse().unwrap());
        assert_eq!(s.answer(&mut answer, &session, 0, 5), Outcome::Nothing);
        assert!(table.is_empty());
    }

    #[test]
    fn insert_mode_sets_once_and_ignores_forgeries() {
        let farm = farm();
        let s = StickyState::build(&sticky(StickyMode::Insert, "DROVERID"), &farm);
        let (session, v) = s.resolve(&farm, b"/", &HeaderMap::new(), 0);
        assert_eq!(v, Verdict::Pick);
        let mut answer = HeaderMap::new();
        assert_eq!(s.answer(&mut answer, &session, 1, 0), Outcome::CookieSet);
        let set = set_cookies(&answer);
        assert!(
            set[0].ends_with("; Path=/; HttpOnly; SameSite=Lax"),
            "{set:?}"
        );
        let value = set[0].split(';').next().unwrap().to_owned();
        let (session, v) = s.resolve(&farm, b"/", &cookies(&value), 0);
        assert_eq!(v, Verdict::Stick(1));
        let mut answer = HeaderMap::new();
        assert_eq!(
            s.answer(&mut answer, &session, 1, 0),
            Outcome::Nothing,
            "not re-sent"
        );
        let last = if value.ends_with('0') { '1' } else { '0' };
        let forged = format!("{}{last}", &value[..value.len() - 1]);
        let (session, v) = s.resolve(&farm, b"/", &cookies(&forged), 0);
        assert_eq!((session.holder, v), (None, Verdict::Pick));
    }

    #[test]
    fn a_rebuild_copies_learned_sessions_coldest_first_and_follows_a_new_ttl() {
        let old_farm = Arc::new(farm());
        let mut cfg = sticky(StickyMode::Learn, "PHPSESSID");
        cfg.max_sessions = 3;
        let old = StickyState::build(&cfg, &old_farm);
        let table = old.table.as_ref().unwrap();
        let now = drover_core::clock::now();
        // Session 1 is the coldest, 3 the most recently used.
        for (key, at) in [(1, now - 3), (2, now - 2), (3, now - 1)] {
            table.learn(key, 0, at);
        }

        // Same members, same size, new ttl: a copy, not the same table, with the new ttl.
        cfg.ttl = std::time::Duration::from_secs(120);
        let same = StickyState::rebuild(&cfg, &old_farm, Some((&old, &old_farm)));
        let copy = same.table.as_ref().unwrap();
        assert!(!Arc::ptr_eq(copy, table));
        assert_eq!(copy.ttl(), drover_core::clock::span(cfg.ttl));
        assert_eq!(copy.len(), 3);

        // A smaller table over members in another order: the coldest session goes.
        let members: Vec<_> = old_farm.members.iter().rev().cloned().collect();
        let new_farm = Farm::with_members("app", PolicyKind::RoundRobin, members);
        cfg.max_sessions = 2;
        let small = StickyState::rebuild(&cfg, &new_farm, Some((&old, &old_farm)));
        let small = small.table.as_ref().unwrap();
        assert_eq!(small.get(1, now), None, "the coldest session was dropped");
        // m1 was first and is now last.
        assert_eq!(small.get(2, now), Some(2));
        assert_eq!(small.get(3, now), Some(2));
    }
}
