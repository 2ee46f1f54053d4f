//! Learn mode's table: application session id → member, bounded in size and in time.
//!
//! Keys are 64-bit hashes of the session id ([`session_key`], the stable hash of `crate::hash`),
//! not the ids themselves: an entry is small (~90 bytes, see below) whatever the id's length, and
//! the table (shown in the API, later shared between nodes) never holds a session secret. Two
//! live sessions collide with probability about n²/2⁶⁵ (3·10⁻⁸ at a million); a collision sends
//! one client to the other's member, nothing worse. Every node computes the same key for the same
//! id, so the cluster issue can gossip entries as they are: (key, member, last seen).
//!
//! Bounds:
//! - **time**: an entry not used for `ttl` is gone: [`SessionTable::get`] treats it as absent and
//!   removes it, each [`SessionTable::learn`] drops up to a few expired entries from the cold end,
//!   and [`SessionTable::sweep`] (run by the proxy every few seconds) drops the rest;
//! - **size**: at most `max_sessions` entries; learning one more evicts the least recently used.
//!
//! Layout and cost: 16 shards (by key), each a `Mutex` around an [`lru::LruCache`], so the
//! recency order is per shard (close to global LRU with a uniform hash). One request that carries
//! a session takes one shard lock for a lookup; one response that sets a session takes one to
//! learn it. Memory: the cache's hash map is allocated for the shard's whole share of
//! `max_sessions` up front (16 bytes a slot), and each entry is one 40-byte node (48 with the
//! allocator's header): about 70–90 bytes an entry at the cap (`bench/sticky-table` measures it).

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use lru::LruCache;

use crate::clock;

const SHARDS: usize = 16;
/// Expired entries a `learn` removes from the cold end of its shard, at most.
const LEARN_SWEEP: usize = 4;
/// Changes a [`SessionTable`]'s journal holds between two drains, at most.
pub const JOURNAL_CAP: usize = 4096;

/// A change to the table made by this node's traffic, for the peers: `member: None` is a forget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub key: u64,
    pub member: Option<usize>,
    /// When, on the [`clock`] scale.
    pub at: u64,
}

/// The key of a session id in a [`SessionTable`].
pub fn session_key(id: &[u8]) -> u64 {
    crate::hash::hash_key(id)
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    member: u32,
    /// Last use, on the [`clock`] scale.
    seen: u64,
}

/// Session id → member; see the module docs.
#[derive(Debug)]
pub struct SessionTable {
    shards: Box<[Mutex<LruCache<u64, Entry>>]>,
    ttl: u64,
    max_sessions: usize,
    /// Off until a peer-sharing task asks for it ([`SessionTable::journal_on`]): then each new,
    /// moved or forgotten session is noted for it (one relaxed load per change when off).
    journaling: AtomicBool,
    journal: Mutex<Vec<Change>>,
    /// Changes not journaled because the journal was full.
    journal_dropped: AtomicU64,
}

impl SessionTable {
    /// A table of at most `max_sessions` entries (at least 1) that each live `ttl` after their last use.
    pub fn new(max_sessions: usize, ttl: Duration) -> Self {
        let max_sessions = max_sessions.max(1);
        let shards = if max_sessions < SHARDS * 64 {
            1
        } else {
            SHARDS
        };
        let per = NonZeroUsize::new(max_sessions.div_ceil(shards)).unwrap_or(NonZeroUsize::MIN);
        SessionTable {
            shards: (0..shards)
                .map(|_| Mutex::new(LruCache::new(per)))
                .collect(),
            ttl: clock::span(ttl).max(1),
            max_sessions: per.get() * shards,
            journaling: AtomicBool::new(false),
            journal: Mutex::new(Vec::new()),
            journal_dropped: AtomicU64::new(0),
        }
    }

    fn shard(&self, key: u64) -> MutexGuard<'_, LruCache<u64, Entry>> {
        let i = (key >> 60) as usize % self.shards.len();
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    fn expired(&self, e: &Entry, now: u64) -> bool {
        now.saturating_sub(e.seen) >= self.ttl
    }

    /// The member holding session `key`, if the table knows it and it has not expired; a hit
    /// counts as a use (its time to live starts again; it becomes the most recently used).
    pub fn get(&self, key: u64, now: u64) -> Option<usize> {
        let mut shard = self.shard(key);
        let e = shard.get_mut(&key)?;
        if self.expired(e, now) {
            shard.pop(&key);
            return None;
        }
        e.seen = e.seen.max(now);
        Some(e.member as usize)
    }

    /// Session `key` is held by member `member` from now on. Returns true when that is news (a
    /// new session, or one that moved). The least recently used entry goes when the table is full.
    pub fn learn(&self, key: u64, member: usize, now: u64) -> bool {
        let news = self.adopt(key, member, now);
        if news {
            self.note(key, Some(member), now);
        }
        news
    }

    /// [`SessionTable::learn`] without noting it in the journal: for entries that come from a
    /// peer (noting them would send them back) or from the table of the snapshot before.
    pub fn adopt(&self, key: u64, member: usize, now: u64) -> bool {
        let mut shard = self.shard(key);
        for _ in 0..LEARN_SWEEP {
            match shard.peek_lru() {
                Some((k, e)) if *k != key && self.expired(e, now) => {
                    shard.pop_lru();
                }
                _ => break,
            }
        }
        let entry = Entry {
            member: member as u32,
            seen: now,
        };
        match shard.get_mut(&key) {
            Some(e) if !self.expired(e, now) => {
                let moved = e.member != entry.member;
                *e = entry;
                moved
            }
            _ => {
                shard.push(key, entry);
                true
            }
        }
    }

    /// The session ended (the member deleted its cookie).
    pub fn forget(&self, key: u64) -> bool {
        let gone = self.forget_quietly(key);
        if gone {
            self.note(key, None, clock::now());
        }
        gone
    }

    /// [`SessionTable::forget`] without noting it in the journal (a peer's forget).
    pub fn forget_quietly(&self, key: u64) -> bool {
        self.shard(key).pop(&key).is_some()
    }

    fn note(&self, key: u64, member: Option<usize>, at: u64) {
        if !self.journaling.load(Relaxed) {
            return;
        }
        let mut j = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        if j.len() < JOURNAL_CAP {
            j.push(Change { key, member, at });
        } else {
            self.journal_dropped.fetch_add(1, Relaxed);
        }
    }

    /// From now on, note this node's changes for [`SessionTable::drain_journal`].
    pub fn journal_on(&self) {
        self.journaling.store(true, Relaxed);
    }

    /// The changes noted since the last drain, oldest first, and how many were dropped (journal
    /// full) since the table was made.
    pub fn drain_journal(&self) -> (Vec<Change>, u64) {
        let j = std::mem::take(&mut *self.journal.lock().unwrap_or_else(|p| p.into_inner()));
        (j, self.journal_dropped.load(Relaxed))
    }

    /// The member holding session `key` and its last use, without counting this as a use.
    pub fn peek(&self, key: u64, now: u64) -> Option<(usize, u64)> {
        let shard = self.shard(key);
        let e = shard.peek(&key)?;
        (!self.expired(e, now)).then_some((e.member as usize, e.seen))
    }

    /// The time to live of an entry after its last use, in nanoseconds.
    pub fn ttl(&self) -> u64 {
        self.ttl
    }

    /// Drops every expired entry; returns how many went. Cheap when few expired: each shard is
    /// walked from its cold end only as far as the entries are expired.
    pub fn sweep(&self, now: u64) -> usize {
        let mut gone = 0;
        for shard in self.shards.iter() {
            let mut shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            while let Some((_, e)) = shard.peek_lru() {
                if !self.expired(e, now) {
                    break;
                }
                shard.pop_lru();
                gone += 1;
            }
        }
        gone
    }

    /// Entries held now (expired ones not yet swept included).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most entries the table holds (`max_sessions`, rounded up to a multiple of the shards).
    pub fn capacity(&self) -> usize {
        self.max_sessions
    }

    /// Every live entry as (key, member, nanoseconds since last use): for the API and, later, for
    /// sharing with other nodes. Allocates; not for the request path.
    pub fn entries(&self, now: u64) -> Vec<(u64, usize, u64)> {
        let mut out = Vec::new();
        for shard in self.shards.iter() {
            let shard = shard.lock().unwrap_or_else(|p| p.into_inner());
            out.extend(
                shard
                    .iter()
                    .filter(|(_, e)| !self.expired(e, now))
                    .map(|(k, e)| (*k, e.member as usize, now.saturating_sub(e.seen))),
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    #[test]
    fn journal_notes_only_local_changes_once_on() {
        let t = SessionTable::new(100, Duration::from_secs(60));
        let (a, b) = (session_key(b"a"), session_key(b"b"));
        t.learn(a, 1, S);
        assert_eq!(t.peek(a, 2 * S), Some((1, S)), "a peek is no use");
        assert_eq!(t.peek(a, 2 * S), Some((1, S)));
        assert_eq!(t.peek(a, 61 * S), None, "expired");
        assert!(t.drain_journal().0.is_empty(), "off until asked");
        t.journal_on();
        t.learn(a, 2, 2 * S);
        t.learn(a, 2, 3 * S);
        t.adopt(b, 0, 4 * S);
        t.forget(a);
        t.forget_quietly(b);
        let (j, dropped) = t.drain_journal();
        assert_eq!(
            j.iter().map(|c| (c.key, c.member)).collect::<Vec<_>>(),
            vec![(a, Some(2)), (a, None)],
            "a move and a forget; no repeat, nothing adopted or forgotten quietly"
        );
        assert_eq!(dropped, 0);
        assert!(t.drain_journal().0.is_empty());
        for i in 0..(JOURNAL_CAP as u64 + 10) {
            t.learn(session_key(&i.to_le_bytes()), 0, 5 * S);
        }
        let (j, dropped) = t.drain_journal();
        assert_eq!((j.len(), dropped), (JOURNAL_CAP, 10));
    }

    #[test]
    fn learns_finds_and_moves() {
        let t = SessionTable::new(100, Duration::from_secs(60));
        let k = session_key(b"abc");
        assert_eq!(t.get(k, S), None);
        assert!(t.learn(k, 2, S));
        assert_eq!(t.get(k, 2 * S), Some(2));
        assert!(!t.learn(k, 2, 3 * S), "same member again is not news");
        assert!(t.learn(k, 1, 4 * S), "a move is news");
        assert_eq!(t.get(k, 5 * S), Some(1));
        assert!(t.forget(k));
        assert_eq!(t.get(k, 6 * S), None);
    }

    #[test]
    fn entries_expire_after_their_last_use() {
        let t = SessionTable::new(100, Duration::from_secs(10));
        let (a, b) = (session_key(b"a"), session_key(b"b"));
        t.learn(a, 0, S);
        t.learn(b, 1, S);
        // A use at 8 s keeps `a` until 18 s; `b` expires at 11 s.
        assert_eq!(t.get(a, 8 * S), Some(0));
        assert_eq!(t.get(b, 11 * S), None, "an expired entry is absent");
        assert_eq!(t.len(), 1, "and the lookup removed it");
        assert_eq!(t.get(a, 17 * S), Some(0));
        assert_eq!(t.sweep(26 * S), 0, "used at 17 s: lives to 27 s");
        assert_eq!(t.sweep(27 * S), 1);
        assert!(t.is_empty());
    }

    #[test]
    fn sweep_removes_only_expired() {
        let t = SessionTable::new(10_000, Duration::from_secs(10));
        for i in 0..5_000u64 {
            t.learn(session_key(&i.to_le_bytes()), 0, i * S / 1_000);
        }
        // Learned from 0 to 5 s; at 12.5 s those learned before 2.5 s are expired.
        let gone = t.sweep(12_500 * S / 1_000);
        assert_eq!(gone, 2_501);
        assert_eq!(t.len(), 5_000 - 2_501);
        assert_eq!(t.entries(12_500 * S / 1_000).len(), t.len());
    }

    #[test]
    fn size_is_capped_and_the_least_recent_go() {
        let cap = 2_048;
        let t = SessionTable::new(cap, Duration::from_secs(3_600));
        let keep = session_key(b"kept busy");
        t.learn(keep, 3, S);
        for i in 0..100_000u64 {
            t.learn(session_key(&i.to_le_bytes()), 1, S + i);
            if i % 64 == 0 {
                assert_eq!(t.get(keep, S + i), Some(3));
            }
        }
        assert!(t.len() <= t.capacity(), "{} > {}", t.len(), t.capacity());
        assert!(t.capacity() >= cap && t.capacity() < cap + SHARDS);
        assert_eq!(
            t.get(keep, 2 * S),
            Some(3),
            "a session in use is never evicted"
        );
        // The oldest learned are gone, the newest are there.
        assert_eq!(t.get(session_key(&0u64.to_le_bytes()), 2 * S), None);
        assert_eq!(t.get(session_key(&99_999u64.to_le_bytes()), 2 * S), Some(1));
    }
}
