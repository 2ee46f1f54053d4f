//! The admin listener, read-only for now: `GET /api/v1/farms` (every farm and member with flags,
//! weight and counters, as JSON) and `GET /healthz`. The control-plane issue grows this into the
//! `drover-admin` crate (writes with auth, dashboard, /metrics).

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use drover_core::Flag;
use drover_proxy::Proxy;
use http_body_util::Full;
use hyper::{
    Request, Response, StatusCode, body::Incoming, header, server::conn::http1, service::service_fn,
};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpListener;

#[derive(Serialize)]
struct FarmView<'a> {
    name: &'a str,
    policy: &'static str,
    members: Vec<MemberView<'a>>,
}

#[derive(Serialize)]
struct MemberView<'a> {
    name: &'a str,
    address: String,
    weight: u32,
    route: Option<&'a str>,
    on: bool,
    up: bool,
    #[serde(rename = "in")]
    is_in: bool,
    draining: bool,
    ready: bool,
    in_flight: u32,
    requests: u64,
    failures: u64,
    bytes_in: u64,
    bytes_out: u64,
    latency_ewma_ms: f64,
    connections: u32,
}

pub async fn serve(listener: TcpListener, proxy: Arc<Proxy>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let proxy = Arc::clone(&proxy);
        tokio::spawn(async move {
            let svc = service_fn(move |req| answer(Arc::clone(&proxy), req));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

async fn answer(
    proxy: Arc<Proxy>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (status, ctype, body) = match (req.method().as_str(), req.uri().path()) {
        ("GET", "/healthz") => (StatusCode::OK, "text/plain", Bytes::from_static(b"ok\n")),
        ("GET", "/api/v1/farms") => (StatusCode::OK, "application/json", farms_json(&proxy)),
        ("GET", _) => (
            StatusCode::NOT_FOUND,
            "text/plain",
            Bytes::from_static(b"not found\n"),
        ),
        _ => (
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            Bytes::from_static(b"read-only\n"),
        ),
    };
    let mut res = Response::new(Full::new(body));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(ctype),
    );
    Ok(res)
}

fn farms_json(proxy: &Proxy) -> Bytes {
    let routing = proxy.routing();
    let farms: Vec<FarmView<'_>> = routing
        .farms
        .iter()
        .map(|f| FarmView {
            name: &f.farm.name,
            policy: f.farm.kind.name(),
            members: f
                .farm
                .members
                .iter()
                .map(|m| MemberView {
                    name: m.name(),
                    address: m.addr().to_string(),
                    weight: m.state.weight(),
                    route: m.spec.route.as_deref(),
                    on: m.state.get(Flag::On),
                    up: m.state.get(Flag::Up),
                    is_in: m.state.get(Flag::In),
                    draining: m.state.get(Flag::Draining),
                    ready: m.state.is_ready(),
                    in_flight: m.stats.in_flight(),
                    requests: m.stats.requests(),
                    failures: m.stats.failures(),
                    bytes_in: m.stats.bytes_in(),
                    bytes_out: m.stats.bytes_out(),
                    latency_ewma_ms: m.stats.latency_ewma_ns() / 1e6,
                    connections: m.stats.connections(),
                })
                .collect(),
        })
        .collect();
    let mut out =
        serde_json::to_vec_pretty(&serde_json::json!({ "farms": farms })).unwrap_or_default();
    out.push(b'\n');
    Bytes::from(out)
}
