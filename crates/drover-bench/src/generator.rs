//! The open-loop load generator: Poisson arrivals at a fixed rate, each request sent at its
//! scheduled time whatever happened to the earlier ones, and its latency measured from that
//! scheduled time, so a stalled balancer cannot hide its stall by slowing the generator down
//! (no coordinated omission).
//!
//! Where it sits: `run.rs` calls [`run`] once per run, after the members (and drover) are up. It
//! sends `GET /` with `X-Drover-Seed: <u64>` either to drover listeners ([`Route::Proxies`],
//! alternating between them when there are several) or, for the oracle, straight to the member
//! whose true queue (its shared `Arc<AtomicU32>`) is the shortest, ties broken at random
//! ([`Route::Oracle`]).
//!
//! Determinism: arrival gaps, job seeds and tie-breaks come from three splitmix64 streams of the
//! run's seed, so every policy of one repetition faces the same arrivals and the same jobs.
//!
//! Concurrency: the scheduling loop runs on a thread of its own (a current-thread runtime), so
//! busy request or member tasks never delay a send; one task per request on the caller's
//! runtime, bounded by the timeout (a request not answered by scheduled time + timeout is an error and is
//! dropped, which closes its connection). Results go into one `Mutex`-guarded accumulator, taken
//! once per answer (about a thousand times a second at most; not the system under test).
//! Connections: a hyper keep-alive pool with no cap on idle connections, so the pool grows to the
//! concurrency the run needs.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use drover_testkit::sleepy::SleepyProbe;
use drover_testkit::sleepy::{X_DROVER_SEED, splitmix};
use hdrhistogram::Histogram;
use http::{Request, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;

use crate::stats::RunResult;

type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// Where requests go.
#[derive(Clone, Debug)]
pub enum Route {
    /// Through drover: request `i` goes to listener `i % n`.
    Proxies(Vec<SocketAddr>),
    /// Straight to the member with the smallest true queue (`oracle`), or with `by_wait`, the
    /// smallest expected time to answer one more job given its true queue, its config and the
    /// episode or freeze it is in now (`oracle-wait`, [`SleepyProbe::expected_response`]).
    Oracle {
        members: Vec<OracleMember>,
        by_wait: bool,
    },
}

#[derive(Clone, Debug)]
pub struct OracleMember {
    pub addr: SocketAddr,
    /// The member's shared queue counter (`oracle`).
    pub queue: Arc<AtomicU32>,
    /// The member's live state (`oracle-wait`).
    pub probe: SleepyProbe,
}

/// The load of one run.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    /// Requests per second (Poisson).
    pub rate: f64,
    pub warmup: Duration,
    pub window: Duration,
    pub seed: u64,
    /// A request not answered by its scheduled time + this is an error.
    pub timeout: Duration,
    /// A send later than this against its schedule counts as late...
    pub lag_threshold: Duration,
    /// ...and a run with more than this share of late sends is void.
    pub max_late_share: f64,
}

struct Acc {
    latency: Histogram<u64>,
    lag: Histogram<u64>,
    requests: u64,
    ok: u64,
    errors: BTreeMap<String, u64>,
    share: BTreeMap<String, u64>,
    late: u64,
}

fn histogram() -> Histogram<u64> {
    // 1 us to 1 hour, 3 significant digits. Infallible: `new_with_bounds` fails only for
    // low < 1, high < 2 x low or sigfig > 5, and these constants are none of those.
    #[allow(clippy::expect_used)]
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

fn lock(acc: &Mutex<Acc>) -> std::sync::MutexGuard<'_, Acc> {
    acc.lock().unwrap_or_else(|p| p.into_inner())
}

/// Uniform in (0, 1) from 64 random bits.
fn unit(x: u64) -> f64 {
    ((x >> 11) as f64 + 0.5) / (1u64 << 53) as f64
}

/// Index of the smallest cost; among equals, the `r`-th (mod their count).
pub fn pick_shortest<T: PartialOrd + Copy>(
    queues: impl Iterator<Item = T> + Clone,
    r: u64,
) -> usize {
    let Some(min) = queues.clone().reduce(|a, b| if b < a { b } else { a }) else {
        return 0;
    };
    let ties = queues.clone().filter(|&q| q == min).count().max(1);
    let k = (r % ties as u64) as usize;
    queues
        .enumerate()
        .filter(|&(_, q)| q == min)
        .nth(k)
        .map_or(0, |(i, _)| i)
}

/// Sends the load along `route` and measures it; the result has every field but the run's
/// identity (scenario, policy, ...), which the caller fills in.
pub async fn run(route: &Route, load: &Load) -> anyhow::Result<RunResult> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(usize::MAX)
        .pool_idle_timeout(Duration::from_secs(90))
        .build(connector);
    let uri = |a: &SocketAddr| -> Uri {
        format!("http://{a}/")
            .parse()
            .unwrap_or_else(|_| Uri::from_static("http://127.0.0.1/"))
    };
    let (targets, oracle, by_wait): (Vec<Uri>, Vec<OracleMember>, bool) = match route {
        Route::Proxies(a) => (a.iter().map(uri).collect(), Vec::new(), false),
        Route::Oracle { members, by_wait } => (
            members.iter().map(|m| uri(&m.addr)).collect(),
            members.clone(),
            *by_wait,
        ),
    };
    let acc = Arc::new(Mutex::new(Acc {
        latency: histogram(),
        lag: histogram(),
        requests: 0,
        ok: 0,
        errors: BTreeMap::new(),
        share: BTreeMap::new(),
        late: 0,
    }));
    let (s_arrive, s_job, s_tie) = (
        splitmix(load.seed, 11),
        splitmix(load.seed, 12),
        splitmix(load.seed, 13),
    );
    let start = Instant::now() + Duration::from_millis(20);
    let measure_from = start + load.warmup;
    let end = measure_from + load.window;
    let load = *load;
    let handle = tokio::runtime::Handle::current();
    let outstanding = Arc::new(AtomicUsize::new(0));
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let schedule = {
        let (acc, outstanding) = (Arc::clone(&acc), Arc::clone(&outstanding));
        move || {
            let mut t = start;
            let mut i = 0u64;
            let sched = async {
                loop {
                    let gap = -unit(splitmix(s_arrive, i)).ln() / load.rate.max(1e-9);
                    t += Duration::from_secs_f64(gap.min(3600.0));
                    if t >= end {
                        break;
                    }
                    tokio::time::sleep_until(t).await;
                    let lag = Instant::now().saturating_duration_since(t);
                    let measured = t >= measure_from;
                    if measured {
                        let mut a = lock(&acc);
                        a.requests += 1;
                        let _ = a.lag.record(lag.as_micros().max(1) as u64);
                        if lag > load.lag_threshold {
                            a.late += 1;
                        }
                    }
                    let r = splitmix(s_tie, i);
                    let target = if oracle.is_empty() {
                        (i % targets.len().max(1) as u64) as usize
                    } else if by_wait {
                        pick_shortest(oracle.iter().map(|m| m.probe.expected_response()), r)
                    } else {
                        pick_shortest(oracle.iter().map(|m| m.queue.load(Relaxed)), r)
                    };
                    let seed = splitmix(s_job, i);
                    let (client, uri) = (client.clone(), targets[target].clone());
                    let (acc, outstanding) = (Arc::clone(&acc), Arc::clone(&outstanding));
                    outstanding.fetch_add(1, Relaxed);
                    handle.spawn(async move {
                        one(client, uri, seed, t, load.timeout, measured, acc).await;
                        outstanding.fetch_sub(1, Relaxed);
                    });
                    i += 1;
                }
            };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build();
            match rt {
                Ok(rt) => rt.block_on(sched),
                Err(e) => tracing_fallback(&e),
            }
            let _ = done_tx.send(());
        }
    };
    // The schedule runs on a thread of its own, so request and member tasks never delay a send;
    // the requests themselves run on the caller's runtime.
    std::thread::Builder::new()
        .name("bench-schedule".into())
        .spawn(schedule)
        .context("cannot start the schedule thread")?;
    let _ = done_rx.await;
    // Every request ends by its scheduled time + timeout; poll until the last has.
    while outstanding.load(Relaxed) > 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let a = lock(&acc);
    let q = |p: f64| a.latency.value_at_quantile(p) as f64 / 1000.0;
    let late_share = if a.requests == 0 {
        0.0
    } else {
        a.late as f64 / a.requests as f64
    };
    let (void, void_reason) = if late_share > load.max_late_share {
        (
            true,
            Some(format!(
                "generator behind schedule: {:.2}% of sends more than {} ms late (limit {:.2}%)",
                100.0 * late_share,
                load.lag_threshold.as_millis(),
                100.0 * load.max_late_share
            )),
        )
    } else {
        (false, None)
    };
    Ok(RunResult {
        rate: load.rate,
        requests: a.requests,
        ok: a.ok,
        errors: a.errors.values().sum(),
        errors_by_kind: a.errors.clone(),
        p50_ms: q(0.5),
        p90_ms: q(0.9),
        p99_ms: q(0.99),
        p999_ms: q(0.999),
        max_ms: a.latency.max() as f64 / 1000.0,
        mean_ms: a.latency.mean() / 1000.0,
        share: a.share.clone(),
        lag_p99_ms: a.lag.value_at_quantile(0.99) as f64 / 1000.0,
        lag_max_ms: a.lag.max() as f64 / 1000.0,
        late_share,
        void,
        void_reason,
        ..RunResult::default()
    })
}

/// The schedule thread could not build its runtime: nothing is sent, and the run shows zero
/// requests (said on stderr, as the harness has no logger).
fn tracing_fallback(e: &std::io::Error) {
    eprintln!("balancing: cannot start the schedule runtime: {e}; this run sends nothing");
}

async fn one(
    client: HttpClient,
    uri: Uri,
    seed: u64,
    scheduled: Instant,
    timeout: Duration,
    measured: bool,
    acc: Arc<Mutex<Acc>>,
) {
    let req = Request::get(uri)
        .header(X_DROVER_SEED, seed)
        .body(Empty::new());
    let exchange = async {
        let req = req.map_err(|e| format!("request: {e}"))?;
        let res = client.request(req).await.map_err(|e| {
            if e.is_connect() {
                "connect".to_owned()
            } else {
                "transport".to_owned()
            }
        })?;
        let status = res.status();
        let member = res
            .headers()
            .get("x-member")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        res.into_body()
            .collect()
            .await
            .map_err(|_| "body".to_owned())?;
        Ok::<_, String>((status, member))
    };
    let outcome = tokio::time::timeout_at(scheduled + timeout, exchange).await;
    if !measured {
        return;
    }
    let latency = Instant::now().saturating_duration_since(scheduled);
    let mut a = lock(&acc);
    let error = match outcome {
        Err(_) => Some("timeout".to_owned()),
        Ok(Err(kind)) => Some(kind),
        Ok(Ok((status, member))) => {
            if let Some(m) = member {
                *a.share.entry(m).or_insert(0) += 1;
            }
            if status.is_success() {
                None
            } else {
                Some(format!("status {}", status.as_u16()))
            }
        }
    };
    match error {
        None => {
            a.ok += 1;
            let _ = a.latency.record(latency.as_micros().max(1) as u64);
        }
        Some(kind) => {
            *a.errors.entry(kind).or_insert(0) += 1;
            let _ = a.latency.record(timeout.as_micros().max(1) as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortest_queue_with_ties_spread() {
        let q = [3u32, 1, 4, 1, 5];
        assert_eq!(pick_shortest(q.iter().copied(), 0), 1);
        assert_eq!(pick_shortest(q.iter().copied(), 1), 3);
        assert_eq!(pick_shortest(q.iter().copied(), 2), 1);
        assert_eq!(pick_shortest([7u32].iter().copied(), 99), 0);
        // Expected waits: (q + 1) x cost; 3 x 0.005 beats 1 x 0.02.
        let waits = [3.0 * 0.005, 0.02, 2.0 * 0.01];
        assert_eq!(pick_shortest(waits.iter().copied(), 5), 0);
    }
}
