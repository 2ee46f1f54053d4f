//! Learn mode's session table under a million distinct sessions: memory (process RSS, so it
//! includes the allocator's own overhead) and time per operation, at the default cap (100,000)
//! and at a cap of a million.
//!
//!   cargo bench -p drover-core --bench sticky_table
//!
//! Each cap runs in a fresh child process (this binary re-run with `--cap N`), so one table's
//! freed memory does not hide the next one's growth. Figures go to docs/performance.md.

use std::hint::black_box;
use std::time::{Duration, Instant};

use drover_core::sticky::{SessionTable, session_key};

const SESSIONS: u64 = 1_000_000;
const CAPS: [usize; 2] = [100_000, 1_000_000];

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A PHP-like session id: 26 characters of [a-v0-9], distinct for each `i`.
fn session_id(i: u64, out: &mut [u8; 26]) {
    let mut x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x5bd1_e995;
    for b in out.iter_mut() {
        let d = (x % 32) as u8;
        *b = if d < 10 { b'0' + d } else { b'a' + d - 10 };
        x = (x / 32) ^ i.rotate_left(17);
    }
    // Make ids distinct whatever the digit walk did: the last 8 characters are `i` in base 32.
    let mut n = i;
    for b in out[18..].iter_mut().rev() {
        let d = (n % 32) as u8;
        *b = if d < 10 { b'0' + d } else { b'a' + d - 10 };
        n /= 32;
    }
}

fn run(cap: usize) {
    let before = rss_kib();
    let table = SessionTable::new(cap, Duration::from_secs(1800));
    let empty = rss_kib();
    let mut id = [0u8; 26];
    let start = Instant::now();
    for i in 0..SESSIONS {
        session_id(i, &mut id);
        // Time in nanoseconds, one session learned every microsecond.
        table.learn(
            session_key(&id),
            (i % 8) as usize,
            1_000_000_000 + i * 1_000,
        );
    }
    let learn_ns = start.elapsed().as_nanos() as f64 / SESSIONS as f64;
    let full = rss_kib();
    // Lookups of the most recent `cap` sessions (all present).
    let now = 1_000_000_000 + SESSIONS * 1_000;
    let lookups = cap.min(SESSIONS as usize) as u64;
    let start = Instant::now();
    let mut hits = 0usize;
    for i in SESSIONS - lookups..SESSIONS {
        session_id(i, &mut id);
        hits += usize::from(black_box(table.get(session_key(&id), now)).is_some());
    }
    let get_ns = start.elapsed().as_nanos() as f64 / lookups as f64;
    let len = table.len();
    assert!(
        len <= table.capacity(),
        "{len} entries over the cap {}",
        table.capacity()
    );
    let grown = full.saturating_sub(before);
    println!(
        "| {cap} | {SESSIONS} | {len} | {:.1} MiB ({:.1} MiB empty) | {:.0} | {learn_ns:.0} | {get_ns:.0} | {:.1}% |",
        grown as f64 / 1024.0,
        empty.saturating_sub(before) as f64 / 1024.0,
        grown as f64 * 1024.0 / len as f64,
        hits as f64 * 100.0 / lookups as f64,
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--cap") {
        run(args[at + 1].parse().expect("--cap N"));
        return;
    }
    println!(
        "| max_sessions | distinct sessions learned | entries kept | RSS growth | bytes / entry | learn ns | lookup ns | lookups that hit |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let me = std::env::current_exe().expect("own path");
    for cap in CAPS {
        let status = std::process::Command::new(&me)
            .args(["--cap", &cap.to_string()])
            .status()
            .expect("run a child");
        assert!(status.success());
    }
}
