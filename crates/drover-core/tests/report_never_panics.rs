//! Property test of the report parsers: whatever the bytes, they return a report or a reject, and
//! never panic. Seeded, so a failure reproduces; inputs are random bytes and random mutations of
//! valid samples of every format (pure noise rarely gets past the first check).

use drover_core::Rng;
use drover_core::report::{agent_check, orca, push};
use std::time::Duration;

const SAMPLES: &[&str] = &[
    "up 75% maxconn:30 # disk full",
    "ready,50%\r\n",
    "TEXT cpu_utilization=0.3, mem_utilization=0.5, named_metrics.foo=2",
    "JSON {\"cpu_utilization\": 0.3, \"named_metrics\": {\"foo\": 2}}",
    "cpu_utilization:0.3",
    "{\"member\": \"m1\", \"metrics\": {\"cpu\": 0.42}, \"state\": \"drain\", \"weight\": 75}",
    "{\"reports\": [{\"member\": \"m1\"}, {\"member\": \"m2\", \"metrics\": {\"rif\": 3}}]}",
    "member=m1&cpu=0.42&load1=1.5&state=up&reason=a%20b+c",
];
const ALPHABET: &[u8] = b" ,\t#%:=.{}[]\"\\-+0123456789eE\r\nTEXTJSONBIN_upmaxconn\xff\xc3\xa9";

fn input(rng: &mut Rng) -> Vec<u8> {
    let len = rng.below(120);
    if rng.below(2) == 0 {
        return (0..len).map(|_| rng.next_u64() as u8).collect();
    }
    let mut v = SAMPLES[rng.below(SAMPLES.len())].as_bytes().to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(v.len() + 1);
        match rng.below(3) {
            0 => v.insert(at, ALPHABET[rng.below(ALPHABET.len())]),
            1 if at < v.len() => {
                v.remove(at);
            }
            _ => v.truncate(at),
        }
    }
    v
}

#[test]
fn parsers_never_panic() {
    let mut rng = Rng::new(0x5eed_2026);
    let guard = push::ReplayGuard::new(64);
    let mut accepted = 0;
    for _ in 0..20_000 {
        let bytes = input(&mut rng);
        let text = String::from_utf8_lossy(&bytes);
        let results = [
            agent_check::parse(&text, "m1", 1).map(|r| vec![r]),
            orca::parse(&bytes, "m1", 1).map(|r| vec![r]),
            push::parse_json(&bytes, 1),
            push::parse_query(&text, 1).map(|r| vec![r]),
        ];
        for r in results {
            match r {
                Ok(reports) => {
                    accepted += 1;
                    for report in reports {
                        assert!(report.metrics.iter().all(|(_, v)| v.is_finite()));
                    }
                }
                Err(e) => assert!(!e.to_string().contains('\n'), "{e}"),
            }
        }
        let window = Duration::from_secs(300);
        let _ = push::verify(b"k", &text, &text, &bytes, 1_700_000_000, window, &guard);
    }
    // The mutations keep a share of inputs valid, so the accepting paths are exercised too.
    assert!(accepted > 500, "only {accepted} accepted");
}
