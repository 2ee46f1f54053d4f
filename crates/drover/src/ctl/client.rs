//! The HTTP side of `drover ctl`: where the admin API is ([`Target`]), which credentials go with
//! each call ([`Credentials`]), and one request per call ([`Client::call`]).
//!
//! Transport: HTTP/1.1 with hyper's client connection API, a new connection per call (`ctl` makes
//! one or two calls and exits: no pool), `Connection: close`, the whole exchange bounded by the
//! timeout. `https` is not supported, as for `drover agent --push`: the admin listener speaks plain
//! HTTP; reach a remote one through an SSH tunnel or a TLS proxy.
//!
//! Secrets: the token or password only ever goes into the `Authorization` header (marked
//! sensitive); no error message built here contains it.

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// The admin port, for an `--admin` given as a bare host.
const ADMIN_PORT: u16 = 9090;

/// Where the admin API is: from `http://host[:port][/prefix]` or `host[:port]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `http://host:port[/prefix]`, for messages.
    pub url: String,
    /// Host for the TCP connect (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    /// `host[:port]` for the `Host` header.
    pub authority: String,
    /// The URL's path without its trailing `/` (empty, or a prefix such as `/drover` behind a
    /// reverse proxy), put before every API path.
    pub prefix: String,
}

impl Target {
    /// Parses `--admin`. Without a scheme, `http://` is assumed, and port 9090 when none is given
    /// (`--admin 10.0.0.5` means the admin listener's default port there); a URL with a scheme
    /// follows URL rules (no port = 80).
    pub fn parse(text: &str) -> Result<Target, String> {
        let bad =
            |why: &str| format!("--admin {text:?}: {why} (expected http://host:port or host:port)");
        let has_scheme = text.contains("://");
        let url = if has_scheme {
            text.to_owned()
        } else {
            format!("http://{text}")
        };
        let uri: hyper::Uri = url.parse().map_err(|_| bad("not a URL"))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => return Err(bad("https is not supported")),
            _ => return Err(bad("the scheme must be http")),
        }
        if uri.query().is_some() {
            return Err(bad("no query string allowed"));
        }
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        if authority.as_str().contains('@') {
            return Err(bad("no user info allowed; use --user or --token"));
        }
        let host = authority.host();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if host.is_empty() {
            return Err(bad("no host"));
        }
        let default_port = if has_scheme { 80 } else { ADMIN_PORT };
        let port = authority.port_u16().unwrap_or(default_port);
        let authority = match authority.port_u16() {
            Some(_) => authority.as_str().to_owned(),
            None if port == 80 => authority.as_str().to_owned(),
            None => format!("{}:{port}", authority.as_str()),
        };
        let prefix = uri.path().trim_end_matches('/').to_owned();
        Ok(Target {
            url: format!("http://{authority}{prefix}"),
            host: host.to_owned(),
            port,
            authority,
            prefix,
        })
    }
}

/// What a call authenticates with.
pub enum Credentials {
    /// No `Authorization` header: enough for reads when the listener has `open_reads`.
    None,
    /// `Authorization: Bearer <token>`.
    Token(String),
    /// `Authorization: Basic ...` from `name:password`.
    User(String),
}

impl Credentials {
    /// The `Authorization` header, marked sensitive. Errors never quote the secret.
    fn header(&self) -> anyhow::Result<Option<HeaderValue>> {
        let value = match self {
            Credentials::None => return Ok(None),
            Credentials::Token(token) => {
                if token.is_empty() {
                    bail!("the token is empty");
                }
                HeaderValue::from_str(&format!("Bearer {token}"))
                    .map_err(|_| anyhow!("the token contains characters a header cannot carry"))?
            }
            Credentials::User(user) => {
                if !user.contains(':') {
                    bail!("--user takes name:password");
                }
                let encoded = base64::engine::general_purpose::STANDARD.encode(user);
                HeaderValue::from_str(&format!("Basic {encoded}"))
                    .map_err(|_| anyhow!("--user cannot be sent in a header"))?
            }
        };
        let mut value = value;
        value.set_sensitive(true);
        Ok(Some(value))
    }
}

/// One answer from the API: its status and whole body.
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

/// Calls the admin API at one [`Target`] with one set of credentials.
pub struct Client {
    target: Target,
    auth: Option<HeaderValue>,
    timeout: Duration,
}

impl Client {
    pub fn new(
        target: Target,
        credentials: &Credentials,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        Ok(Client {
            target,
            auth: credentials.header()?,
            timeout,
        })
    }

    /// `method path` (below the target's prefix), with a JSON `body` if any; any status is an
    /// answer, only the transport can fail (no connection, broken answer, timeout).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> anyhow::Result<Answer> {
        let url = &self.target.url;
        match tokio::time::timeout(self.timeout, self.exchange(method, path, body)).await {
            Ok(answer) => answer,
            Err(_) => Err(anyhow!(
                "no answer from the admin API at {url} within {}",
                drover_config::units::format_duration(self.timeout)
            )),
        }
    }

    async fn exchange(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> anyhow::Result<Answer> {
        let t = &self.target;
        let stream = TcpStream::connect((t.host.as_str(), t.port))
            .await
            .with_context(|| format!("cannot connect to the admin API at {}", t.url))?;
        let _ = stream.set_nodelay(true);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .with_context(|| format!("cannot talk HTTP to {}", t.url))?;
        let conn = tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", t.prefix))
            .header(header::HOST, t.authority.as_str())
            .header(
                header::USER_AGENT,
                concat!("drover-ctl/", env!("CARGO_PKG_VERSION")),
            )
            .header(header::ACCEPT, "application/json")
            .header(header::CONNECTION, "close");
        if let Some(auth) = &self.auth {
            request = request.header(header::AUTHORIZATION, auth.clone());
        }
        let body = match body {
            Some(json) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Bytes::from(json)
            }
            None => Bytes::new(),
        };
        let request = request
            .body(Full::new(body))
            .context("cannot build the request")?;
        let result = async {
            let response = sender
                .send_request(request)
                .await
                .with_context(|| format!("no answer from the admin API at {}", t.url))?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .with_context(|| format!("the answer from {} broke off", t.url))?
                .to_bytes();
            Ok(Answer { status, body })
        }
        .await;
        conn.abort();
        result
    }
}

/// `name` as one path segment: everything but unreserved characters percent-encoded (member names
/// may hold `:`, `@`, `%`, ...; the API decodes them).
pub fn segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_addresses() {
        let t = Target::parse("127.0.0.1:9191").unwrap();
        assert_eq!(
            (
                t.host.as_str(),
                t.port,
                t.authority.as_str(),
                t.prefix.as_str()
            ),
            ("127.0.0.1", 9191, "127.0.0.1:9191", "")
        );
        assert_eq!(t.url, "http://127.0.0.1:9191");
        let t = Target::parse("admin.internal").unwrap();
        assert_eq!(
            (t.port, t.url.as_str()),
            (9090, "http://admin.internal:9090")
        );
        let t = Target::parse("http://admin.internal").unwrap();
        assert_eq!((t.port, t.authority.as_str()), (80, "admin.internal"));
        let t = Target::parse("http://[::1]:9090/drover/").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.prefix.as_str()),
            ("::1", 9090, "/drover")
        );
        assert_eq!(t.url, "http://[::1]:9090/drover");
        for bad in [
            "https://a:1",
            "ftp://a:1",
            "http://u:p@a:1",
            "a:1/?x=1",
            "",
            "a b",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn secrets_stay_out_of_errors() {
        let e = Credentials::Token("bad\ntoken-xyz".to_owned())
            .header()
            .unwrap_err();
        assert!(!e.to_string().contains("token-xyz"), "{e}");
        let h = Credentials::Token("t0ken".to_owned())
            .header()
            .unwrap()
            .unwrap();
        assert!(h.is_sensitive());
        assert_eq!(h, "Bearer t0ken");
        let h = Credentials::User("alice:pw".to_owned())
            .header()
            .unwrap()
            .unwrap();
        assert_eq!(h, "Basic YWxpY2U6cHc=");
        assert!(Credentials::User("alice".to_owned()).header().is_err());
        assert!(Credentials::None.header().unwrap().is_none());
    }

    #[test]
    fn segments_are_percent_encoded() {
        assert_eq!(segment("app-1_x.y~"), "app-1_x.y~");
        assert_eq!(segment("a:b@c%d"), "a%3Ab%40c%25d");
        assert_eq!(segment("é"), "%C3%A9");
    }
}
