//! Signed pushes: HMAC-SHA256 over `timestamp + "\n" + body` under a secret shared with the
//! agents, with a freshness window and a replay guard.
//!
//! The agent sends `X-Drover-Timestamp: <unix seconds>` (a fraction such as `1700000000.125` is
//! allowed and signed with the rest: send one when pushing more than once a second, or two
//! identical bodies in one second are one message and the second is a replay) and `X-Drover-Signature: sha256=<hex>`;
//! the admin listener (later) passes both headers, the raw body (the query string for the GET
//! form), the wall clock and the farm's window to [`verify`]. Order of checks: timestamp syntax,
//! freshness (more than `window` away from now, in either direction, is stale), signature
//! (compared in constant time by the `hmac` crate), and last the replay guard, so that unsigned
//! junk can never fill the guard.
//!
//! [`ReplayGuard`]: the (timestamp, signature) pairs accepted within the window. Bound: at most
//! `capacity` entries ([`DEFAULT_REPLAY_CAPACITY`] by default, about 40 bytes each). Eviction:
//! entries whose timestamp left the window are dropped first (a replay of them is stale anyway);
//! if the guard is still full, the oldest accepted entry goes, which re-opens a replay of that one
//! message until its window ends; size `capacity` above the pushes expected per window (agents x
//! window / push interval) so this does not happen. Concurrency: one `Mutex`, taken once per
//! signed push; pushes are not on the request path.

use super::super::{Reject, RejectKind};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

const CONTEXT: &str = "signature";
/// Entries a [`ReplayGuard::default`] holds.
pub const DEFAULT_REPLAY_CAPACITY: usize = 65_536;

/// What the guard remembers of one accepted push: its timestamp and the first half of its tag
/// (128 bits of an HMAC output are as unique as the whole for this purpose).
type Key = (u64, [u8; 16]);

/// The signed pushes accepted within the window; see the module docs for the bound and eviction.
#[derive(Debug)]
pub struct ReplayGuard {
    capacity: usize,
    inner: Mutex<Seen>,
}

#[derive(Debug, Default)]
struct Seen {
    set: HashSet<Key>,
    order: VecDeque<Key>,
}

impl ReplayGuard {
    pub fn new(capacity: usize) -> Self {
        ReplayGuard {
            capacity: capacity.max(1),
            inner: Mutex::new(Seen::default()),
        }
    }

    /// How many pushes the guard remembers now.
    pub fn len(&self) -> usize {
        self.lock().order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Seen> {
        // A panic while holding the lock cannot leave the set and the queue out of step in a way
        // that matters (at worst one entry is in one and not the other), so poison is ignored.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records `key`; false when it was already there (a replay).
    fn insert(&self, key: Key, oldest_fresh: u64) -> bool {
        let mut seen = self.lock();
        if seen.set.contains(&key) {
            return false;
        }
        // Entries are in acceptance order, not timestamp order, so prune every stale one.
        if seen.order.len() >= self.capacity {
            let Seen { set, order } = &mut *seen;
            order.retain(|k| k.0 >= oldest_fresh || !set.remove(k));
        }
        while seen.order.len() >= self.capacity {
            if let Some(old) = seen.order.pop_front() {
                seen.set.remove(&old);
            }
        }
        seen.set.insert(key);
        seen.order.push_back(key);
        true
    }
}

impl Default for ReplayGuard {
    fn default() -> Self {
        ReplayGuard::new(DEFAULT_REPLAY_CAPACITY)
    }
}

fn mac(secret: &[u8], timestamp: &str, body: &[u8]) -> Result<Hmac<Sha256>, Reject> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).map_err(|_| {
        Reject::new(
            CONTEXT,
            RejectKind::Unauthorized,
            "secret of an unusable length",
        )
    })?;
    mac.update(timestamp.as_bytes());
    mac.update(b"\n");
    mac.update(body);
    Ok(mac)
}

/// The `X-Drover-Signature` value for `body` sent at `timestamp`: `sha256=<64 hex digits>`.
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    let mut out = String::from("sha256=");
    // HMAC takes keys of any length, so this cannot fail; an empty string would fail `verify`.
    if let Ok(mac) = mac(secret, timestamp, body) {
        for b in mac.finalize().into_bytes() {
            out.push_str(&format!("{b:02x}"));
        }
    }
    out
}

/// Checks a push's timestamp and signature (see the module docs for the order of checks), without
/// touching the replay guard.
pub fn authenticate(
    secret: &[u8],
    timestamp: &str,
    signature: &str,
    body: &[u8],
    now_unix: u64,
    window: Duration,
) -> Result<Signed, Reject> {
    let unauthorized = |m: &str| Reject::new(CONTEXT, RejectKind::Unauthorized, m.to_owned());
    if secret.is_empty() {
        return Err(unauthorized("no shared secret configured"));
    }
    // Unix seconds, optionally with a fraction (`1700000000.125`): the fraction is signed too, so
    // an agent that pushes the same body twice within a second still sends two distinct messages.
    let (secs, frac) = timestamp.split_once('.').unwrap_or((timestamp, "0"));
    let digits = |s: &str, max: usize| {
        !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit())
    };
    if !digits(secs, 19) || !digits(frac, 9) {
        return Err(unauthorized(
            "missing or bad X-Drover-Timestamp (expected unix seconds, e.g. 1700000000 or \
             1700000000.125)",
        ));
    }
    let ts: u64 = secs
        .parse()
        .map_err(|_| unauthorized("bad X-Drover-Timestamp"))?;
    let w = window.as_secs();
    if ts.saturating_add(w) < now_unix || ts > now_unix.saturating_add(w) {
        return Err(Reject::new(
            CONTEXT,
            RejectKind::Stale,
            format!(
                "stale timestamp {ts}: {}s from now, outside the {w}s window",
                ts.abs_diff(now_unix)
            ),
        ));
    }
    let tag = signature
        .strip_prefix("sha256=")
        .and_then(unhex)
        .ok_or_else(|| {
            unauthorized("missing or bad X-Drover-Signature (expected sha256=<64 hex digits>)")
        })?;
    mac(secret, timestamp, body)?
        .verify_slice(&tag)
        .map_err(|_| unauthorized("bad signature"))?;
    let mut half = [0u8; 16];
    half.copy_from_slice(&tag[..16]);
    Ok(Signed {
        key: (ts, half),
        oldest_fresh: now_unix.saturating_sub(w),
    })
}

/// A push whose signature and timestamp [`authenticate`] accepted, not yet checked against the
/// replay guard: the caller validates the content first and then [`ReplayGuard::accept`]s it, so
/// a push rejected for its content leaves no trace in the guard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signed {
    key: Key,
    oldest_fresh: u64,
}

impl ReplayGuard {
    /// Records an authenticated push; a [`RejectKind::Replay`] when it was accepted before.
    pub fn accept(&self, signed: Signed) -> Result<(), Reject> {
        if self.insert(signed.key, signed.oldest_fresh) {
            Ok(())
        } else {
            Err(Reject::new(
                CONTEXT,
                RejectKind::Replay,
                "replay: this signed push was already accepted",
            ))
        }
    }
}

/// [`authenticate`] then [`ReplayGuard::accept`]: the whole check for a caller with nothing to
/// validate in between.
pub fn verify(
    secret: &[u8],
    timestamp: &str,
    signature: &str,
    body: &[u8],
    now_unix: u64,
    window: Duration,
    seen: &ReplayGuard,
) -> Result<(), Reject> {
    seen.accept(authenticate(
        secret, timestamp, signature, body, now_unix, window,
    )?)
}

/// 64 hex digits (either case) as 32 bytes.
fn unhex(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        let digit = |c: u8| (c as char).to_digit(16);
        *o = u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests;
