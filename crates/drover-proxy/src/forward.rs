//! Forwarding: the header rewrites between client and member.
//!
//! Request (client → member): hop-by-hop headers removed (RFC 9110 §7.6.1: `Connection` and the
//! headers it names, `Keep-Alive`, `Proxy-Connection`, `TE`, `Trailer`, `Transfer-Encoding`,
//! `Upgrade`); forwarding headers set: `X-Forwarded-For` / `-Proto` / `-Host` and/or RFC 7239
//! `Forwarded`. Forwarding headers that arrive from a client outside `trusted_proxies` are removed
//! and replaced (a client must not be able to claim another address); from a trusted proxy they
//! are kept and drover appends its own hop.
//!
//! Response (member → client): hop-by-hop headers removed; `Location` and `Content-Location` that
//! name the member's own address rewritten to the address the client used (Apache's
//! `ProxyPassReverse`).
//!
//! Cost: the client address header value is built once per connection ([`ClientAddr`]) and cloned
//! by reference count per request; no allocation unless a header has to be appended to or rewritten.

use std::net::{IpAddr, SocketAddr};

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Headers that apply to one connection only, never forwarded. [`Scan`] keeps one bit per entry,
/// by position: `Connection` must stay first and `Upgrade` seventh.
static HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static HTTP: HeaderValue = HeaderValue::from_static("http");
static UPGRADE: HeaderValue = HeaderValue::from_static("upgrade");

/// The client's address, formatted once per connection.
#[derive(Debug, Clone)]
pub struct ClientAddr {
    pub ip: IpAddr,
    /// For `X-Forwarded-For`: `192.0.2.1` or `2001:db8::1`.
    pub xff: HeaderValue,
    /// For `Forwarded: for=`: `192.0.2.1` or `"[2001:db8::1]"` (RFC 7239 quotes v6).
    pub forwarded_for: Bytes,
    /// Whether this client may send forwarding headers.
    pub trusted: bool,
}

impl ClientAddr {
    pub fn new(peer: SocketAddr, trusted: bool) -> Self {
        let ip = match peer.ip() {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        let text = ip.to_string();
        let forwarded_for = match ip {
            IpAddr::V4(_) => Bytes::from(text.clone()),
            IpAddr::V6(_) => Bytes::from(format!("\"[{text}]\"")),
        };
        ClientAddr {
            ip,
            xff: HeaderValue::from_maybe_shared(Bytes::from(text))
                .expect("an IP address is a valid header value"),
            forwarded_for,
            trusted,
        }
    }
}

/// Which forwarding headers to set.
#[derive(Debug, Clone, Copy)]
pub struct ForwardSettings {
    pub x_forwarded: bool,
    pub forwarded: bool,
}

/// What one pass over a message's header names found. Most messages carry no hop-by-hop header
/// but `Connection`, no forwarding header and no `Location`, so the rewrites below look headers up
/// (a hash each) only when this pass says there is something to do.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scan {
    /// Bit `i` set: `HOP_BY_HOP[i]` is present.
    hop_by_hop: u8,
    /// Some `X-Forwarded-*` or `Forwarded` header is present.
    forwarding: bool,
    /// `Location` or `Content-Location` is present.
    location: bool,
    /// `endpoint-load-metrics` (an ORCA load report) is present.
    orca: bool,
}

impl Scan {
    pub fn of(headers: &HeaderMap) -> Scan {
        let mut scan = Scan::default();
        for name in headers.keys() {
            let s = name.as_str();
            // Dispatch on length first: one compare rules out nearly every name.
            match s.len() {
                2 | 7 | 10 | 16 | 17 => {
                    if let Some(i) = HOP_BY_HOP.iter().position(|h| h.as_str() == s) {
                        scan.hop_by_hop |= 1 << i;
                    } else if s == "x-forwarded-host" || s == "x-forwarded-proto" {
                        scan.forwarding = true;
                    } else if s == "content-location" {
                        scan.location = true;
                    }
                }
                8 => scan.location |= s == "location",
                9 => scan.forwarding |= s == "forwarded",
                15 => scan.forwarding |= s == "x-forwarded-for",
                21 => scan.orca |= s == "endpoint-load-metrics",
                _ => {}
            }
        }
        scan
    }

    /// The request asks to switch protocols (`Connection: upgrade` + `Upgrade`).
    pub fn wants_upgrade(&self, headers: &HeaderMap) -> bool {
        const CONNECTION: u8 = 1 << 0;
        const UPGRADE: u8 = 1 << 6;
        self.hop_by_hop & (CONNECTION | UPGRADE) == CONNECTION | UPGRADE
            && headers
                .get_all(header::CONNECTION)
                .iter()
                .any(|v| has_token(v.as_bytes(), b"upgrade"))
    }

    pub fn has_location(&self) -> bool {
        self.location
    }

    /// A member's response carries an ORCA load report.
    pub fn has_orca(&self) -> bool {
        self.orca
    }
}

fn has_token(list: &[u8], token: &[u8]) -> bool {
    list.split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// Removes hop-by-hop headers, including those the `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, scan: &Scan) {
    if scan.hop_by_hop == 0 {
        return;
    }
    if scan.hop_by_hop & 1 != 0 {
        // Rare (mostly `Connection: keep-alive`/`close`/`upgrade`, removed anyway): a Vec is only
        // allocated when the header names something unusual.
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .flat_map(|v| v.as_bytes().split(|&b| b == b','))
            .map(|t| t.trim_ascii())
            .filter(|t| !t.is_empty() && !is_standard_connection_token(t))
            .filter_map(|t| HeaderName::from_bytes(t).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if scan.hop_by_hop & (1 << i) != 0 {
            headers.remove(name);
        }
    }
}

fn is_standard_connection_token(t: &[u8]) -> bool {
    t.eq_ignore_ascii_case(b"keep-alive")
        || t.eq_ignore_ascii_case(b"close")
        || t.eq_ignore_ascii_case(b"upgrade")
}

/// Prepares a client's request headers for the member. `scan` is [`Scan::of`] these headers,
/// `host` the client's Host header, `upgrade` whether to keep the protocol switch.
pub fn request_headers(
    headers: &mut HeaderMap,
    scan: &Scan,
    host: Option<&HeaderValue>,
    client: &ClientAddr,
    settings: ForwardSettings,
    upgrade: bool,
) {
    let upgrade_value = if upgrade {
        headers.get(header::UPGRADE).cloned()
    } else {
        None
    };
    strip_hop_by_hop(headers, scan);
    if let Some(u) = upgrade_value {
        headers.insert(header::UPGRADE, u);
        headers.insert(header::CONNECTION, UPGRADE.clone());
    }
    // Forwarding headers already present are kept (and appended to) only from a trusted proxy.
    let existing = scan.forwarding && client.trusted;
    if scan.forwarding && !client.trusted {
        for name in [
            &X_FORWARDED_FOR,
            &X_FORWARDED_PROTO,
            &X_FORWARDED_HOST,
            &header::FORWARDED,
        ] {
            headers.remove(name);
        }
    }
    if settings.x_forwarded {
        set_x_forwarded(headers, client, host, existing);
    }
    if settings.forwarded {
        set_forwarded(headers, client, host, existing);
    }
}

fn set_x_forwarded(
    headers: &mut HeaderMap,
    client: &ClientAddr,
    host: Option<&HeaderValue>,
    existing: bool,
) {
    let prev = if existing {
        joined(headers, &X_FORWARDED_FOR)
    } else {
        None
    };
    match prev {
        Some(mut v) => {
            v.put_slice(b", ");
            v.put_slice(client.xff.as_bytes());
            if let Ok(v) = HeaderValue::from_maybe_shared(v.freeze()) {
                headers.insert(&X_FORWARDED_FOR, v);
            }
        }
        None => {
            headers.insert(&X_FORWARDED_FOR, client.xff.clone());
        }
    }
    if !existing || !headers.contains_key(&X_FORWARDED_PROTO) {
        headers.insert(&X_FORWARDED_PROTO, HTTP.clone());
    }
    if let Some(host) = host
        && (!existing || !headers.contains_key(&X_FORWARDED_HOST))
    {
        headers.insert(&X_FORWARDED_HOST, host.clone());
    }
}

fn set_forwarded(
    headers: &mut HeaderMap,
    client: &ClientAddr,
    host: Option<&HeaderValue>,
    existing: bool,
) {
    let prev = if existing {
        joined(headers, &header::FORWARDED)
    } else {
        None
    };
    let mut v = prev.unwrap_or_else(|| BytesMut::with_capacity(64));
    if !v.is_empty() {
        v.put_slice(b", ");
    }
    v.put_slice(b"for=");
    v.put_slice(&client.forwarded_for);
    v.put_slice(b";proto=http");
    if let Some(host) = host.map(|h| h.as_bytes()) {
        v.put_slice(b";host=");
        // RFC 7239: a value that is not a token is a quoted-string; quote and escape anything
        // else, so a Host header can never add elements (`, for=...`) of its own.
        if host.iter().all(|&b| is_tchar(b)) {
            v.put_slice(host);
        } else {
            v.put_u8(b'"');
            for &b in host {
                if b == b'"' || b == b'\\' {
                    v.put_u8(b'\\');
                }
                v.put_u8(b);
            }
            v.put_u8(b'"');
        }
    }
    if let Ok(v) = HeaderValue::from_maybe_shared(v.freeze()) {
        headers.insert(header::FORWARDED, v);
    }
}

/// Every line of a header joined with ", " (a list header may arrive on several lines).
fn joined(headers: &HeaderMap, name: &HeaderName) -> Option<BytesMut> {
    let mut out: Option<BytesMut> = None;
    for line in headers.get_all(name) {
        let v = out.get_or_insert_with(|| BytesMut::with_capacity(64));
        if !v.is_empty() {
            v.put_slice(b", ");
        }
        v.put_slice(line.as_bytes());
    }
    out
}

/// RFC 9110 token characters.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A Host header value a reverse proxy may pass on: `host[:port]` with a reg-name, IPv4 or
/// bracketed IPv6 host (RFC 3986 characters only: no spaces, commas, quotes or slashes).
pub fn valid_host(host: &[u8]) -> bool {
    !host.is_empty()
        && host
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+;=:[]%".contains(&b))
}

/// Rewrites `Location` / `Content-Location` values that start with the member's own origin
/// (`http://ip:port`) to the origin the client used (`http://<client Host>`).
pub fn rewrite_location(
    headers: &mut HeaderMap,
    member_origin: &str,
    client_host: Option<&HeaderValue>,
) {
    let Some(host) = client_host else { return };
    for name in [header::LOCATION, header::CONTENT_LOCATION] {
        let Some(v) = headers.get(&name) else {
            continue;
        };
        let Some(rest) = strip_origin(v.as_bytes(), member_origin.as_bytes()) else {
            continue;
        };
        let mut out = BytesMut::with_capacity(7 + host.len() + rest.len());
        out.put_slice(b"http://");
        out.put_slice(host.as_bytes());
        out.put_slice(rest);
        if let Ok(v) = HeaderValue::from_maybe_shared(out.freeze()) {
            headers.insert(name, v);
        }
    }
}

/// The part after `origin` when `value` is `origin` followed by nothing, `/`, `?` or `#`.
fn strip_origin<'a>(value: &'a [u8], origin: &[u8]) -> Option<&'a [u8]> {
    if value.len() < origin.len() || !value[..origin.len()].eq_ignore_ascii_case(origin) {
        return None;
    }
    let rest = &value[origin.len()..];
    matches!(rest.first(), None | Some(b'/' | b'?' | b'#')).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn forward(h: &mut HeaderMap, c: &ClientAddr, upgrade: bool) {
        let scan = Scan::of(h);
        let host = h.get(header::HOST).cloned();
        request_headers(h, &scan, host.as_ref(), c, BOTH, upgrade);
    }

    #[test]
    fn scan_finds_what_matters() {
        let h = map(&[
            ("host", "a"),
            ("x-forwarded-proto", "https"),
            ("content-location", "/x"),
        ]);
        let s = Scan::of(&h);
        assert!(s.forwarding && s.location && s.hop_by_hop == 0);
        let h = map(&[("transfer-encoding", "chunked"), ("upgrade", "websocket")]);
        let s = Scan::of(&h);
        assert_eq!(s.hop_by_hop, (1 << 5) | (1 << 6));
        assert!(
            !s.wants_upgrade(&h),
            "Upgrade without Connection: upgrade is no upgrade"
        );
        assert!(!Scan::of(&map(&[("accept", "*/*")])).forwarding);
    }

    const BOTH: ForwardSettings = ForwardSettings {
        x_forwarded: true,
        forwarded: true,
    };

    #[test]
    fn hop_by_hop_and_connection_named_headers_go() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("te", "trailers"),
            ("x-kept", "yes"),
        ]);
        let scan = Scan::of(&h);
        strip_hop_by_hop(&mut h, &scan);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn untrusted_client_cannot_spoof() {
        let c = ClientAddr::new("192.0.2.7:5000".parse().unwrap(), false);
        let mut h = map(&[
            ("host", "example.com"),
            ("x-forwarded-for", "6.6.6.6"),
            ("forwarded", "for=6.6.6.6"),
        ]);
        forward(&mut h, &c, false);
        assert_eq!(h["x-forwarded-for"], "192.0.2.7");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "example.com");
        assert_eq!(h["forwarded"], "for=192.0.2.7;proto=http;host=example.com");
    }

    #[test]
    fn trusted_proxy_chain_is_appended() {
        let c = ClientAddr::new("[::1]:5000".parse().unwrap(), true);
        let mut h = map(&[
            ("host", "example.com:8080"),
            ("x-forwarded-for", "203.0.113.9"),
            ("forwarded", "for=203.0.113.9"),
        ]);
        forward(&mut h, &c, false);
        assert_eq!(h["x-forwarded-for"], "203.0.113.9, ::1");
        assert_eq!(
            h["forwarded"],
            "for=203.0.113.9, for=\"[::1]\";proto=http;host=\"example.com:8080\""
        );
    }

    #[test]
    fn forwarded_host_cannot_add_elements_and_chains_keep_every_line() {
        let c = ClientAddr::new("192.0.2.7:5000".parse().unwrap(), true);
        let mut h = map(&[
            ("host", "x\\\"y"),
            ("x-forwarded-for", "1.1.1.1"),
            ("x-forwarded-for", "2.2.2.2"),
            ("forwarded", "for=1.1.1.1"),
        ]);
        forward(&mut h, &c, false);
        assert_eq!(
            h["forwarded"],
            "for=1.1.1.1, for=192.0.2.7;proto=http;host=\"x\\\\\\\"y\""
        );
        assert_eq!(h["x-forwarded-for"], "1.1.1.1, 2.2.2.2, 192.0.2.7");
        assert!(valid_host(b"example.com:8080") && valid_host(b"[::1]:80"));
        assert!(!valid_host(b"x, for=10.0.0.1") && !valid_host(b"a\"b") && !valid_host(b""));
    }

    #[test]
    fn upgrade_survives_when_asked() {
        let c = ClientAddr::new("127.0.0.1:1".parse().unwrap(), false);
        let mut h = map(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        assert!(Scan::of(&h).wants_upgrade(&h));
        forward(&mut h, &c, true);
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["connection"], "upgrade");
    }

    #[test]
    fn location_rewrite_only_for_the_member_origin() {
        let host = HeaderValue::from_static("www.example.com");
        let mut h = map(&[
            ("location", "http://127.0.0.1:9001/next?x=1"),
            ("content-location", "http://127.0.0.1:90011/x"),
        ]);
        rewrite_location(&mut h, "http://127.0.0.1:9001", Some(&host));
        assert_eq!(h["location"], "http://www.example.com/next?x=1");
        assert_eq!(
            h["content-location"], "http://127.0.0.1:90011/x",
            "another port is another origin"
        );
    }
}
