//! The sleepy member's run-time state, its HTTP/1 server, the job runner (queue, workers, sleep),
//! the utilisation sampler and the hidden load. See the module docs of `sleepy` for the model.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpSocket;
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;

use super::service::{degrade_factor, draw, fails, splitmix, unit};
use super::{SleepyConfig, X_DROVER_SEED, X_DROVER_SERVICE};
use crate::X_MEMBER;

/// Utilisation samples kept: one every [`SAMPLE_EVERY`], so the average covers one second.
const SAMPLES: usize = 100;
const SAMPLE_EVERY: Duration = Duration::from_millis(10);
const BACKLOG: u32 = 1024;

pub(crate) struct State {
    pub(crate) cfg: SleepyConfig,
    /// Time zero of stalls, episodes and the hidden load's on/off phase.
    pub(crate) epoch: Instant,
    slots: Semaphore,
    pub(crate) queue: Arc<AtomicU32>,
    pub(crate) busy: AtomicU32,
    util_bits: AtomicU64,
    draws: AtomicU64,
    x_member: HeaderValue,
    body: Bytes,
    pub(crate) served: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) hidden_served: AtomicU64,
    pub(crate) pushes_ok: AtomicU64,
    pub(crate) pushes_failed: AtomicU64,
    push_error: Mutex<Option<String>>,
}

/// Holds one unit of a counter for as long as it lives (a job in the queue, a busy worker), so
/// the count is right however the job ends.
struct Held<'a>(&'a AtomicU32);

impl<'a> Held<'a> {
    fn new(c: &'a AtomicU32) -> Held<'a> {
        c.fetch_add(1, Relaxed);
        Held(c)
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

impl State {
    pub(crate) fn new(cfg: SleepyConfig) -> State {
        // `validate` checked the name is a valid header value.
        let x_member =
            HeaderValue::from_str(&cfg.name).unwrap_or(HeaderValue::from_static("sleepy"));
        State {
            slots: Semaphore::new(cfg.workers as usize),
            queue: Arc::new(AtomicU32::new(0)),
            busy: AtomicU32::new(0),
            util_bits: AtomicU64::new(0f64.to_bits()),
            draws: AtomicU64::new(0),
            body: Bytes::from(format!("{}\n", cfg.name)),
            x_member,
            served: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            hidden_served: AtomicU64::new(0),
            pushes_ok: AtomicU64::new(0),
            pushes_failed: AtomicU64::new(0),
            push_error: Mutex::new(None),
            epoch: Instant::now(),
            cfg,
        }
    }

    /// The next value of the member's own seeded stream.
    fn own_draw(&self) -> u64 {
        splitmix(self.cfg.seed, self.draws.fetch_add(1, Relaxed))
    }

    /// [`SleepyConfig::expected_response`] at the live queue, knowing also what the config says
    /// about now: a slow episode in force sets the service time, and a freeze in progress adds
    /// what is left of it. In seconds.
    pub(crate) fn expected_response(&self) -> f64 {
        let q = self.queue.load(Relaxed);
        let t = self.epoch.elapsed();
        let mut secs = match self.cfg.episodes.iter().find(|e| e.covers(t)) {
            Some(e) => {
                let c = self.cfg.workers.max(1);
                let s = e.service.as_secs_f64();
                if q < c {
                    s
                } else {
                    s * (1.0 + f64::from(q + 1 - c) / f64::from(c))
                }
            }
            None => self.cfg.expected_response(q),
        };
        if let Some(st) = self.cfg.stall
            && st.frozen(t)
        {
            let into = t.as_nanos() % st.period.as_nanos();
            secs += (st.length.as_nanos().saturating_sub(into)) as f64 / 1e9;
        }
        secs
    }

    pub(crate) fn utilization(&self) -> f64 {
        f64::from_bits(self.util_bits.load(Relaxed))
    }

    pub(crate) fn set_push_error(&self, e: Option<String>) {
        *self.push_error.lock().unwrap_or_else(|p| p.into_inner()) = e;
    }

    pub(crate) fn last_push_error(&self) -> Option<String> {
        self.push_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Queue, wait for a worker, sleep the service time; returns the time spent in service.
    async fn run_job(self: Arc<State>, seed: u64) -> Duration {
        let _queued = Held::new(&self.queue);
        // The semaphore is never closed, so `acquire` cannot fail; if it did, serve anyway.
        let _permit = self.slots.acquire().await.ok();
        let busy = Held::new(&self.busy);
        let n = self.busy.load(Relaxed).max(1);
        let start = self.epoch.elapsed();
        let work = match self.cfg.episodes.iter().find(|e| e.covers(start)) {
            Some(e) => e.service,
            None => {
                let (a, b) = self.cfg.degrade;
                let factor = self.cfg.speed * degrade_factor(n, a, b);
                draw(seed, self.cfg.mean, self.cfg.cv).mul_f64(factor)
            }
        };
        let end = match self.cfg.stall {
            Some(s) => s.finish(start, work),
            None => start + work,
        };
        // A job that would end past an hour (a freeze longer than its period) ends in an hour.
        let end = end.min(start + Duration::from_secs(3600));
        tokio::time::sleep_until(self.epoch + end).await;
        drop(busy);
        end - start
    }

    fn respond(&self, status: StatusCode, service: Option<Duration>) -> Response<Full<Bytes>> {
        let mut res = Response::new(Full::new(self.body.clone()));
        *res.status_mut() = status;
        let h = res.headers_mut();
        h.insert(X_MEMBER, self.x_member.clone());
        h.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        if let Some(s) = service {
            h.insert(X_DROVER_SERVICE, HeaderValue::from(s.as_micros() as u64));
        }
        if self.cfg.orca
            && let Ok(v) = HeaderValue::from_str(&super::report::orca_value(self))
        {
            h.insert(super::report::ORCA_HEADER, v);
        }
        res
    }
}

async fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let seed = req
        .headers()
        .get(X_DROVER_SEED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or_else(|| state.own_draw());
    drop(req);
    if fails(seed, state.cfg.fail_rate) {
        state.failed.fetch_add(1, Relaxed);
        return Ok(state.respond(StatusCode::SERVICE_UNAVAILABLE, None));
    }
    // Its own task: a client that leaves does not end the job (the worker stays busy).
    let job = tokio::spawn(Arc::clone(&state).run_job(seed));
    let service = job.await.ok();
    state.served.fetch_add(1, Relaxed);
    Ok(state.respond(StatusCode::OK, service))
}

/// Resolves once the member is stopped.
pub(crate) async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// Binds the HTTP listener and spawns its accept loop; returns the address.
pub(crate) async fn start(state: Arc<State>, rx: watch::Receiver<bool>) -> io::Result<SocketAddr> {
    let socket = TcpSocket::new_v4()?;
    socket.set_reuseaddr(true)?;
    socket.bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let listener = socket.listen(BACKLOG)?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let (stream, _) = tokio::select! {
                () = stopped(rx.clone()) => break,
                r = listener.accept() => match r {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "sleepy member: accept failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let state = Arc::clone(&state);
            let rx = rx.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| handle(Arc::clone(&state), req));
                let conn = http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), svc);
                tokio::select! {
                    () = stopped(rx) => {}
                    _ = conn => {}
                }
            });
        }
    });
    Ok(addr)
}

/// Spawns the utilisation sampler and, if configured, the hidden load.
pub(crate) fn start_background(state: Arc<State>, rx: watch::Receiver<bool>) {
    let s = Arc::clone(&state);
    let stop = rx.clone();
    tokio::spawn(async move {
        let mut ring = [0u32; SAMPLES];
        let mut i = 0usize;
        let mut sum = 0u64;
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let c = f64::from(s.cfg.workers);
        loop {
            tokio::select! {
                () = stopped(stop.clone()) => break,
                _ = tick.tick() => {}
            }
            let b = s.busy.load(Relaxed);
            sum = sum - u64::from(ring[i]) + u64::from(b);
            ring[i] = b;
            i = (i + 1) % SAMPLES;
            let util = (sum as f64 / SAMPLES as f64 / c).clamp(0.0, 1.0);
            s.util_bits.store(util.to_bits(), Relaxed);
        }
    });
    if let Some(h) = state.cfg.hidden
        && h.rate > 0.0
    {
        tokio::spawn(hidden_load(state, h, rx));
    }
}

async fn hidden_load(state: Arc<State>, h: super::Hidden, rx: watch::Receiver<bool>) {
    // A stream of its own, apart from the member's draws for seedless requests.
    let seed = state.cfg.seed ^ 0x4849_4444_454e_0000;
    let period = h.on + h.off;
    let mut i = 0u64;
    let mut next = state.epoch;
    loop {
        let gap = -unit(splitmix(seed, 2 * i)).ln() / h.rate;
        let job_seed = splitmix(seed, 2 * i + 1);
        i += 1;
        next += Duration::from_secs_f64(gap.min(3600.0));
        tokio::select! {
            () = stopped(rx.clone()) => break,
            () = tokio::time::sleep_until(next) => {}
        }
        let t = next - state.epoch;
        let on = h.off.is_zero()
            || period.is_zero()
            || t.as_nanos() % period.as_nanos() < h.on.as_nanos();
        if on {
            let s = Arc::clone(&state);
            tokio::spawn(async move {
                Arc::clone(&s).run_job(job_seed).await;
                s.hidden_served.fetch_add(1, Relaxed);
            });
        }
    }
}
