//! Sticky sessions: reading a client's session from a request and naming the member that holds it.
//!
//! Three modes, each with its own codec here; the proxy (`drover-proxy/src/sticky.rs`) runs them
//! on the request path (DESIGN.md, "The request path", step 3) and writes cookies on the way back.
//! - **route** (mod_proxy_balancer): the member is named in the application's own session value,
//!   after its first separator: `BALANCEID=balancer.http1` → route `http1`. [`route_of`] cuts the
//!   value, [`RouteMap`] finds the member whose configured `route` it is.
//! - **insert** (HAProxy's `cookie ... insert`): drover sets its own cookie whose value is an HMAC
//!   of the member's identity ([`CookieSigner`]): opaque to clients, unforgeable without the key.
//! - **learn** (mod_athena's "blind sticky", HAProxy's `stick on cookie`): drover learns the
//!   application's session id from a member's `Set-Cookie` and remembers which member issued it
//!   ([`SessionTable`]).
//!
//! Where a session id is read (Apache's order, kept): a URL parameter first ([`path_param`]:
//! `;jsessionid=abc.node1` in the path or `?jsessionid=` in the query), then the cookie
//! ([`cookie_value`]). Everything here works on bytes and does no I/O; none of it allocates on a
//! request except [`SessionTable`]'s learning of a new session.

mod insert;
mod learn;

pub use insert::{CookieSigner, TOKEN_LEN};
pub use learn::{Change, JOURNAL_CAP, SessionTable, session_key};

/// The route in a session value: the part after the first `sep` (`abc.node7` → `node7`), or
/// `None` when there is no separator or nothing after it. Apache cuts at the first separator too,
/// so `a.b.node7` names the route `b.node7`, which no member can have (route ids hold no `.`).
pub fn route_of(value: &[u8], sep: u8) -> Option<&[u8]> {
    let at = value.iter().position(|&b| b == sep)?;
    let route = &value[at + 1..];
    (!route.is_empty()).then_some(route)
}

/// The value of URL parameter `name` in a request target (path and query), as mod_proxy_balancer
/// reads it: the first `name=` found anywhere in the target, its value running to the next `;`,
/// `?` or `&` (or the end). So `/shop;jsessionid=abc.node1?x=1` and `/shop?jsessionid=abc.node1`
/// both give `abc.node1`. A match must start the target or follow `;`, `?`, `&` or `/`, so
/// `xjsessionid=` is not `jsessionid=`. An empty value counts as absent.
pub fn path_param<'a>(target: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    if name.is_empty() || target.len() <= name.len() {
        return None;
    }
    let mut from = 0;
    while let Some(pos) = find(&target[from..], name) {
        let start = from + pos;
        let end = start + name.len();
        let boundary = start == 0 || matches!(target[start - 1], b';' | b'?' | b'&' | b'/');
        if boundary && target.get(end) == Some(&b'=') {
            let rest = &target[end + 1..];
            let len = rest
                .iter()
                .position(|&b| matches!(b, b';' | b'?' | b'&' | b'#'))
                .unwrap_or(rest.len());
            if len > 0 {
                return Some(&rest[..len]);
            }
        }
        from = start + 1;
    }
    None
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The value of cookie `name` in one `Cookie` header value (`a=1; BALANCEID=balancer.http1`), or
/// `None`. Names are compared exactly (cookie names are case-sensitive); surrounding double quotes
/// on the value are removed, as RFC 6265 allows them. The first occurrence wins, as browsers send
/// the most specific path first.
pub fn cookie_value<'a>(header: &'a [u8], name: &[u8]) -> Option<&'a [u8]> {
    header.split(|&b| b == b';').find_map(|pair| {
        let pair = pair.trim_ascii();
        let eq = pair.iter().position(|&b| b == b'=')?;
        if pair[..eq].trim_ascii() != name {
            return None;
        }
        let v = pair[eq + 1..].trim_ascii();
        let v = match v {
            [b'"', inner @ .., b'"'] => inner,
            v => v,
        };
        (!v.is_empty()).then_some(v)
    })
}

/// The name and value a `Set-Cookie` header value sets (`PHPSESSID=abc; Path=/` → `PHPSESSID`,
/// `abc`), and whether it deletes the cookie instead (`Max-Age=0` or a negative one, or an empty
/// value): a member ending a session must not leave it pinned.
pub fn set_cookie(header: &[u8]) -> Option<(&[u8], &[u8], bool)> {
    let mut parts = header.split(|&b| b == b';');
    let first = parts.next()?.trim_ascii();
    let eq = first.iter().position(|&b| b == b'=')?;
    let name = first[..eq].trim_ascii();
    let value = first[eq + 1..].trim_ascii();
    let value = match value {
        [b'"', inner @ .., b'"'] => inner,
        v => v,
    };
    let mut deletes = value.is_empty();
    for attr in parts {
        let attr = attr.trim_ascii();
        if attr.len() > 8 && attr[..8].eq_ignore_ascii_case(b"max-age=") {
            let n = attr[8..].trim_ascii();
            if n.first() == Some(&b'-') || n.iter().all(|&b| b == b'0') {
                deletes = true;
            }
        }
    }
    (!name.is_empty()).then_some((name, value, deletes))
}

/// Route id → member index for one farm (route mode), built once with the farm.
#[derive(Debug, Clone, Default)]
pub struct RouteMap {
    routes: Vec<(Box<[u8]>, usize)>,
}

impl RouteMap {
    /// From the members' configured routes, in member order (`None`: that member has none).
    pub fn new<'a>(routes: impl IntoIterator<Item = Option<&'a str>>) -> Self {
        let routes = routes
            .into_iter()
            .enumerate()
            .filter_map(|(i, r)| Some((Box::from(r?.as_bytes()), i)))
            .collect();
        RouteMap { routes }
    }

    /// The member whose route is `route`. A linear scan: farms hold tens of members, and comparing
    /// short byte strings beats hashing them at that size.
    pub fn get(&self, route: &[u8]) -> Option<usize> {
        self.routes
            .iter()
            .find(|(r, _)| &**r == route)
            .map(|&(_, i)| i)
    }

    /// Member `index`'s route id.
    pub fn route(&self, index: usize) -> Option<&[u8]> {
        self.routes
            .iter()
            .find(|&&(_, i)| i == index)
            .map(|(r, _)| &**r)
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_is_after_the_first_separator() {
        assert_eq!(route_of(b"balancer.http1", b'.'), Some(&b"http1"[..]));
        assert_eq!(route_of(b"ABC123.node7", b'.'), Some(&b"node7"[..]));
        assert_eq!(route_of(b"a.b.node7", b'.'), Some(&b"b.node7"[..]));
        assert_eq!(route_of(b"ABC123!node7", b'!'), Some(&b"node7"[..]));
        assert_eq!(route_of(b"ABC123", b'.'), None);
        assert_eq!(route_of(b"ABC123.", b'.'), None);
        assert_eq!(route_of(b".node1", b'.'), Some(&b"node1"[..]));
    }

    #[test]
    fn path_parameter_in_path_and_query() {
        let p = |t: &str| path_param(t.as_bytes(), b"jsessionid").map(|v| v.to_vec());
        assert_eq!(p("/shop;jsessionid=abc.node1"), Some(b"abc.node1".to_vec()));
        assert_eq!(
            p("/shop;jsessionid=abc.node1?x=1"),
            Some(b"abc.node1".to_vec())
        );
        assert_eq!(
            p("/shop?a=1&jsessionid=abc.node2&b=2"),
            Some(b"abc.node2".to_vec())
        );
        assert_eq!(
            p("/shop;jsessionid=abc.node1;other=2"),
            Some(b"abc.node1".to_vec())
        );
        assert_eq!(p("/shop?xjsessionid=abc.node1"), None);
        assert_eq!(p("/shop;jsessionid="), None);
        assert_eq!(p("/shop;jsessionid"), None);
        assert_eq!(p("/jsessionid/x?jsessionid=z.n"), Some(b"z.n".to_vec()));
        assert_eq!(p("/"), None);
    }

    #[test]
    fn cookie_values() {
        let h = b"a=1; BALANCEID=balancer.http1;JSESSIONID=\"q.node7\"; e=";
        assert_eq!(cookie_value(h, b"BALANCEID"), Some(&b"balancer.http1"[..]));
        assert_eq!(cookie_value(h, b"JSESSIONID"), Some(&b"q.node7"[..]));
        assert_eq!(cookie_value(h, b"balanceid"), None);
        assert_eq!(cookie_value(h, b"e"), None);
        assert_eq!(cookie_value(h, b"zz"), None);
        assert_eq!(cookie_value(b"x=1; x=2", b"x"), Some(&b"1"[..]));
    }

    #[test]
    fn set_cookie_names_and_deletions() {
        assert_eq!(
            set_cookie(b"PHPSESSID=abc; Path=/; HttpOnly"),
            Some((&b"PHPSESSID"[..], &b"abc"[..], false))
        );
        assert_eq!(
            set_cookie(b"PHPSESSID=abc; Max-Age=0"),
            Some((&b"PHPSESSID"[..], &b"abc"[..], true))
        );
        assert_eq!(
            set_cookie(b"PHPSESSID=; Path=/"),
            Some((&b"PHPSESSID"[..], &b""[..], true))
        );
        assert_eq!(set_cookie(b"junk"), None);
    }

    #[test]
    fn route_map() {
        let m = RouteMap::new([Some("http1"), None, Some("http2")]);
        assert_eq!(m.get(b"http1"), Some(0));
        assert_eq!(m.get(b"http2"), Some(2));
        assert_eq!(m.get(b"http3"), None);
        assert_eq!(m.route(2), Some(&b"http2"[..]));
        assert_eq!(m.route(1), None);
    }
}
