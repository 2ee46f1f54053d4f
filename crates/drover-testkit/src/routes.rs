//! What a test member answers: one function per route, chosen by exact path.
//!
//! Called by hyper (through `member.rs`) once per request head. In order: count the request;
//! if hanging, read the body and never answer; wait the latency; answer `500` if the failure
//! draw says so; then the route:
//!
//! | path | answer |
//! |---|---|
//! | `/echo` | `200`, body: `<name>`, the request line, then each header as `name: value` |
//! | `/upload` (POST, PUT) | reads the body without keeping it; `<name> <bytes>` |
//! | `/download?bytes=N` | N bytes of [`DOWNLOAD_PATTERN`](crate::DOWNLOAD_PATTERN), streamed |
//! | `/redirect?to=/p` | `302`, `Location` and `Content-Location` = `http://<member addr>/p` |
//! | `/status/<code>` | that status, body `<name> <code>` |
//! | `/slow?ms=N` | the default answer after N more milliseconds |
//! | `/ws` | WebSocket echo (`ws.rs`) |
//! | anything else | the configured status, body `<name>` |
//!
//! Every answer carries `X-Member: <name>`, and every body starts with the name. A member with
//! sessions (`MemberConfig::session_cookie`) also starts one for a request that has none.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_LENGTH, CONTENT_LOCATION, HeaderValue, LOCATION};
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::body::MemberBody;
use crate::member::{Ctx, Mode, reached};
use crate::ws;

/// The request was dropped unanswered: the client went away mid-body, or a hung request was
/// abandoned by `stop`. hyper closes the connection.
#[derive(Debug)]
pub(crate) struct Abandoned;

impl std::fmt::Display for Abandoned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("request abandoned without an answer")
    }
}

impl std::error::Error for Abandoned {}

type Answer = Result<Response<MemberBody>, Abandoned>;

pub(crate) async fn handle(ctx: Arc<Ctx>, req: Request<Incoming>) -> Answer {
    let b = &ctx.behaviour;
    b.requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if b.hang() {
        drain(req.into_body()).await?;
        reached(&ctx, Mode::Draining).await;
        return Err(Abandoned);
    }
    let delay = b.sample_latency();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if b.draw_failure() {
        drain(req.into_body()).await?;
        return Ok(b.text(StatusCode::INTERNAL_SERVER_ERROR, "injected failure"));
    }
    let session = b.new_session(req.headers());
    let path = req.uri().path();
    let answer = match path {
        "/echo" => echo(&ctx, req).await,
        "/upload" => upload(&ctx, req).await,
        "/download" => download(&ctx, req).await,
        "/stall" => stall(&ctx, req).await,
        "/redirect" => redirect(&ctx, req).await,
        "/slow" => slow(&ctx, req).await,
        "/ws" => Ok(ws::accept(&ctx, req)),
        _ => match path.strip_prefix("/status/") {
            Some(code) => status(&ctx, code.to_owned(), req).await,
            None => {
                drain(req.into_body()).await?;
                Ok(b.default_answer())
            }
        },
    };
    answer.map(|mut res| {
        if let Some(cookie) = session {
            res.headers_mut().append(http::header::SET_COOKIE, cookie);
        }
        res
    })
}

/// Read a request body to its end, keeping only its length, so the connection can be reused.
async fn drain(mut body: Incoming) -> Result<u64, Abandoned> {
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| Abandoned)?;
        if let Some(data) = frame.data_ref() {
            total += data.len() as u64;
        }
    }
    Ok(total)
}

/// The value of `key` in the query string, percent-decoded.
fn query_param(req: &Request<Incoming>, key: &str) -> Option<String> {
    req.uri()
        .query()?
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| percent_decode(v))
}

fn percent_decode(s: &str) -> String {
    let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16));
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
            (b'%', Some(high), Some(low)) => {
                // Two hex digits make at most 255: the cast is lossless.
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn echo(ctx: &Ctx, req: Request<Incoming>) -> Answer {
    let (parts, body) = req.into_parts();
    drain(body).await?;
    let mut text = format!(
        "{}\n{} {} {:?}\n",
        ctx.behaviour.name(),
        parts.method,
        parts.uri,
        parts.version
    );
    for (name, value) in &parts.headers {
        // Writing to a String cannot fail.
        let _ = writeln!(
            text,
            "{name}: {}",
            String::from_utf8_lossy(value.as_bytes())
        );
    }
    Ok(ctx
        .behaviour
        .respond(StatusCode::OK, MemberBody::full(Bytes::from(text))))
}

async fn upload(ctx: &Ctx, req: Request<Incoming>) -> Answer {
    let b = &ctx.behaviour;
    if req.method() != Method::POST && req.method() != Method::PUT {
        drain(req.into_body()).await?;
        let mut res = b.text(StatusCode::METHOD_NOT_ALLOWED, "upload takes POST or PUT");
        res.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("POST, PUT"));
        return Ok(res);
    }
    let received = drain(req.into_body()).await?;
    Ok(b.text(StatusCode::OK, &received.to_string()))
}

async fn download(ctx: &Ctx, req: Request<Incoming>) -> Answer {
    let b = &ctx.behaviour;
    let len = query_param(&req, "bytes").and_then(|v| v.parse::<u64>().ok());
    drain(req.into_body()).await?;
    let Some(len) = len else {
        return Ok(b.text(StatusCode::BAD_REQUEST, "download needs ?bytes=<count>"));
    };
    let mut res = b.respond(StatusCode::OK, MemberBody::pattern(len));
    res.headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from(len));
    res.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    Ok(res)
}

/// `/stall?bytes=N`: announces N + 1 bytes, sends N of the download pattern, then sends nothing
/// more while keeping the connection open (a member stuck mid-response).
async fn stall(ctx: &Ctx, req: Request<Incoming>) -> Answer {
    let b = &ctx.behaviour;
    let len = query_param(&req, "bytes").and_then(|v| v.parse::<u64>().ok());
    drain(req.into_body()).await?;
    let Some(len) = len else {
        return Ok(b.text(StatusCode::BAD_REQUEST, "stall needs ?bytes=<count>"));
    };
    let mut res = b.respond(StatusCode::OK, MemberBody::stalled(len));
    res.headers_mut()
        .insert(CONTENT_LENGTH, HeaderValue::from(len + 1));
    Ok(res)
}

async fn redirect(ctx: &Ctx, req: Request<Incoming>) -> Answer {
    let b = &ctx.behaviour;
    let to = query_param(&req, "to").unwrap_or_default();
    drain(req.into_body()).await?;
    let slash = if to.starts_with('/') { "" } else { "/" };
    let location = format!("http://{}{slash}{to}", b.addr());
    let Ok(value) = HeaderValue::from_str(&location) else {
        return Ok(b.text(
            StatusCode::BAD_REQUEST,
            "redirect target is not a valid header value",
        ));
    };
    let mut res = b.text(StatusCode::FOUND, &format!("-> {location}"));
    res.headers_mut().insert(LOCATION, value.clone());
    res.headers_mut().insert(CONTENT_LOCATION, value);
    Ok(res)
}

async fn status(ctx: &Ctx, code: String, req: Request<Incoming>) -> Answer {
    let b = &ctx.behaviour;
    drain(req.into_body()).await?;
    let status = code
        .parse::<u16>()
        .ok()
        .and_then(|c| StatusCode::from_u16(c).ok())
        .filter(|s| !s.is_informational());
    match status {
        // 204 and 304 must not carry a body.
        Some(s @ (StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED)) => {
            Ok(b.respond(s, MemberBody::empty()))
        }
        Some(s) => Ok(b.text(s, s.as_str())),
        None => Ok(b.text(StatusCode::BAD_REQUEST, "status needs a code in 200..=999")),
    }
}

async fn slow(ctx: &Ctx, req: Request<Incoming>) -> Answer {
    let b = &ctx.behaviour;
    let ms = query_param(&req, "ms").and_then(|v| v.parse::<u64>().ok());
    drain(req.into_body()).await?;
    let Some(ms) = ms else {
        return Ok(b.text(StatusCode::BAD_REQUEST, "slow needs ?ms=<milliseconds>"));
    };
    tokio::time::sleep(Duration::from_millis(ms)).await;
    Ok(b.default_answer())
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("%2Fa%3Fb%3D1"), "/a?b=1");
        assert_eq!(percent_decode("/plain+x"), "/plain+x");
        assert_eq!(percent_decode("bad%zz%4"), "bad%zz%4");
        assert_eq!(percent_decode("%C3%A9"), "é");
    }
}
