//! How a sleepy member reports its load: the ORCA header value, the HAProxy agent-check port and
//! the signed push loop. Formats are drover-core's (`report::orca`, `report::agent_check`,
//! `report::push`), so what a member sends is what drover parses.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::server::{State, stopped};

/// The ORCA response header.
pub(crate) const ORCA_HEADER: &str = "endpoint-load-metrics";
/// A push that gets no answer within this is counted failed.
const PUSH_TIMEOUT: Duration = Duration::from_secs(2);

/// `TEXT cpu_utilization=<u>, named_metrics.queue=<q>`.
pub(crate) fn orca_value(state: &State) -> String {
    format!(
        "TEXT cpu_utilization={:.4}, named_metrics.queue={}",
        state.utilization(),
        state.queue.load(Relaxed)
    )
}

/// `up NN%`, NN = round(100 x (1 - utilisation)) clamped to 1..=100 (0% would drain the member
/// for good in HAProxy's reading).
pub fn agent_line(utilization: f64) -> String {
    let pct = (100.0 * (1.0 - utilization)).round().clamp(1.0, 100.0) as u32;
    format!("up {pct}%\n")
}

/// Binds the agent-check port and serves it: each connection gets one line, then is closed.
pub(crate) async fn start_agent(
    state: Arc<State>,
    rx: watch::Receiver<bool>,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let mut stream = tokio::select! {
                () = stopped(rx.clone()) => break,
                r = listener.accept() => match r {
                    Ok((s, _)) => s,
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                },
            };
            let line = agent_line(state.utilization());
            tokio::spawn(async move {
                let _ = stream.write_all(line.as_bytes()).await;
                let _ = stream.shutdown().await;
                // Read what the checker sent (HAProxy's agent-send) until it closes, so closing
                // with unread data does not reset the connection before the reply is read.
                let mut sink = [0u8; 256];
                let _ = tokio::time::timeout(Duration::from_secs(1), async {
                    while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
                })
                .await;
            });
        }
    });
    Ok(addr)
}

/// The JSON body of one push.
pub fn push_body(member: &str, utilization: f64, queue: u32) -> String {
    serde_json::json!({
        "member": member,
        "metrics": { "cpu": utilization.clamp(0.0, 1.0), "queue": queue },
    })
    .to_string()
}

/// Every interval, pushes the member's load to each target; one kept-alive connection per target,
/// opened again after an error. `X-Drover-Timestamp` is unix seconds with milliseconds.
pub(crate) async fn push_loop(state: Arc<State>, rx: watch::Receiver<bool>) {
    let Some(push) = state.cfg.push.clone() else {
        return;
    };
    let mut conns: Vec<Option<SendRequest<Full<Bytes>>>> =
        push.targets.iter().map(|_| None).collect();
    let mut tick = tokio::time::interval(push.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stopped(rx.clone()) => break,
            _ = tick.tick() => {}
        }
        let body = push_body(
            &state.cfg.name,
            state.utilization(),
            state.queue.load(Relaxed),
        );
        // Milliseconds: two pushes of the same load within one second are distinct messages,
        // not a replay (drover signs and accepts a fractional timestamp).
        let ts = SystemTime::now().duration_since(UNIX_EPOCH).map_or_else(
            |_| "0".to_owned(),
            |d| format!("{}.{:03}", d.as_secs(), d.subsec_millis()),
        );
        let sig = drover_core::report::push::sign(&push.secret, &ts, body.as_bytes());
        for (target, conn) in push.targets.iter().zip(conns.iter_mut()) {
            let sent = tokio::time::timeout(
                PUSH_TIMEOUT,
                push_once(conn, *target, &ts, &sig, body.clone()),
            )
            .await
            .unwrap_or_else(|_| Err("timed out".into()));
            match sent {
                Ok(()) => {
                    state.pushes_ok.fetch_add(1, Relaxed);
                }
                Err(e) => {
                    *conn = None;
                    state.pushes_failed.fetch_add(1, Relaxed);
                    tracing::debug!(member = state.cfg.name, %target, error = e, "push failed");
                    state.set_push_error(Some(format!("{target}: {e}")));
                }
            }
        }
    }
}

async fn push_once(
    conn: &mut Option<SendRequest<Full<Bytes>>>,
    target: SocketAddr,
    ts: &str,
    sig: &str,
    body: String,
) -> Result<(), String> {
    if conn.as_ref().is_none_or(|c| c.is_closed()) {
        let stream = TcpStream::connect(target)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let _ = stream.set_nodelay(true);
        let (sender, driver) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(async move {
            let _ = driver.await;
        });
        *conn = Some(sender);
    }
    let Some(sender) = conn.as_mut() else {
        return Err("no connection".into());
    };
    sender.ready().await.map_err(|e| e.to_string())?;
    let req = Request::post("/api/v1/reports")
        .header("host", target.to_string())
        .header("content-type", "application/json")
        .header("x-drover-timestamp", ts)
        .header("x-drover-signature", sig)
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| e.to_string())?;
    let res = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = res.status();
    let body = res
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    if status.is_success() {
        Ok(())
    } else {
        let text = String::from_utf8_lossy(&body);
        Err(format!("{status}: {}", text.trim()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_line_is_clamped_percent_free() {
        assert_eq!(agent_line(0.0), "up 100%\n");
        assert_eq!(agent_line(0.254), "up 75%\n");
        assert_eq!(agent_line(1.0), "up 1%\n");
        assert_eq!(agent_line(7.0), "up 1%\n");
    }

    #[test]
    fn push_body_parses_as_a_drover_push() {
        let body = push_body("B1", 0.5, 3);
        let reports = drover_core::report::push::parse_json(body.as_bytes(), 0).unwrap();
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].member, "B1");
    }
}
