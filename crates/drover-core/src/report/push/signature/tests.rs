use super::*;

const SECRET: &[u8] = b"s3cret";
const NOW: u64 = 1_700_000_000;
const WINDOW: Duration = Duration::from_secs(300);

fn check(ts: &str, sig: &str, body: &[u8], guard: &ReplayGuard) -> Result<(), Reject> {
    verify(SECRET, ts, sig, body, NOW, WINDOW, guard)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn sign_is_hmac_sha256_of_timestamp_newline_body() {
    // RFC 4231 test case 2 checks the primitive itself.
    let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
    mac.update(b"what do ya want for nothing?");
    assert_eq!(
        hex(&mac.finalize().into_bytes()),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    // ... and `sign` is that primitive over timestamp + "\n" + body, in lower-case hex.
    let mut mac = Hmac::<Sha256>::new_from_slice(b"k").unwrap();
    mac.update(b"1700000000\n{\"member\":\"m1\"}");
    let want = format!("sha256={}", hex(&mac.finalize().into_bytes()));
    assert_eq!(sign(b"k", "1700000000", br#"{"member":"m1"}"#), want);
    assert_ne!(sign(b"k", "1", b"body"), sign(b"k", "2", b"body"));
    assert_ne!(sign(b"k", "1", b"body"), sign(b"k2", "1", b"body"));
}

#[test]
fn accepts_fresh_signed_pushes_once() {
    let guard = ReplayGuard::default();
    let body = br#"{"member":"m1","metrics":{"cpu":0.4}}"#;
    for ts in [NOW, NOW - 300, NOW + 300] {
        let ts = ts.to_string();
        let sig = sign(SECRET, &ts, body);
        check(&ts, &sig, body, &guard).unwrap();
        let upper = sig.replace("sha256=", "").to_uppercase();
        let e = check(&ts, &format!("sha256={upper}"), body, &guard).unwrap_err();
        assert_eq!(e.kind, RejectKind::Replay, "{e}");
    }
    assert_eq!(guard.len(), 3);
}

#[test]
fn rejects() {
    let guard = ReplayGuard::default();
    let body = b"{}";
    let ts = NOW.to_string();
    let good = sign(SECRET, &ts, body);
    let old = (NOW - 301).to_string();
    let future = (NOW + 301).to_string();
    let table: Vec<(String, String, &[u8], RejectKind, &str)> = vec![
        (
            ts.clone(),
            sign(b"other", &ts, body),
            body,
            RejectKind::Unauthorized,
            "bad signature",
        ),
        (
            ts.clone(),
            good.clone(),
            b"{ }",
            RejectKind::Unauthorized,
            "bad signature",
        ),
        (
            ts.clone(),
            "".into(),
            body,
            RejectKind::Unauthorized,
            "missing or bad X-Drover-Signature",
        ),
        (
            ts.clone(),
            good.replace("sha256=", "sha1="),
            body,
            RejectKind::Unauthorized,
            "expected sha256=",
        ),
        (
            ts.clone(),
            format!("{}0", good),
            body,
            RejectKind::Unauthorized,
            "64 hex digits",
        ),
        (
            ts.clone(),
            good.replace('a', "g"),
            body,
            RejectKind::Unauthorized,
            "X-Drover-Signature",
        ),
        (
            "".into(),
            good.clone(),
            body,
            RejectKind::Unauthorized,
            "X-Drover-Timestamp",
        ),
        (
            "-5".into(),
            good.clone(),
            body,
            RejectKind::Unauthorized,
            "X-Drover-Timestamp",
        ),
        (
            "99999999999999999999".into(),
            good.clone(),
            body,
            RejectKind::Unauthorized,
            "Timestamp",
        ),
        (
            old.clone(),
            sign(SECRET, &old, body),
            body,
            RejectKind::Stale,
            "stale timestamp",
        ),
        (
            future.clone(),
            sign(SECRET, &future, body),
            body,
            RejectKind::Stale,
            "outside the 300s window",
        ),
    ];
    for (ts, sig, body, kind, want) in table {
        let e = check(&ts, &sig, body, &guard).unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with("signature: ") && text.contains(want),
            "{ts} {sig}: {text}"
        );
        assert_eq!(e.kind, kind, "{text}");
    }
    assert!(guard.is_empty(), "nothing rejected may enter the guard");
    let e = verify(b"", &ts, &good, body, NOW, WINDOW, &guard).unwrap_err();
    assert!(e.to_string().contains("no shared secret"));
}

#[test]
fn guard_is_bounded_and_drops_stale_entries_first() {
    let guard = ReplayGuard::new(3);
    let body = b"x";
    let push = |ts: u64, now: u64| {
        let t = ts.to_string();
        verify(
            SECRET,
            &t,
            &sign(SECRET, &t, body),
            body,
            now,
            WINDOW,
            &guard,
        )
    };
    push(NOW - 250, NOW).unwrap();
    push(NOW, NOW).unwrap();
    push(NOW + 1, NOW).unwrap();
    // Full: at NOW + 100 the first entry is stale and goes, the other two stay.
    push(NOW + 2, NOW + 100).unwrap();
    assert_eq!(guard.len(), 3);
    assert_eq!(push(NOW, NOW + 100).unwrap_err().kind, RejectKind::Replay);
    // Full of fresh entries: the oldest accepted goes, and the bound holds.
    push(NOW + 3, NOW + 100).unwrap();
    assert_eq!(guard.len(), 3);
    assert_eq!(
        push(NOW + 3, NOW + 100).unwrap_err().kind,
        RejectKind::Replay
    );
}

#[test]
fn a_fractional_timestamp_is_signed_so_two_pushes_in_one_second_are_two_messages() {
    let guard = ReplayGuard::default();
    let body = br#"{"member":"m1"}"#;
    for ts in ["1700000000.1", "1700000000.2", "1700000000.123456789"] {
        let sig = sign(SECRET, ts, body);
        check(ts, &sig, body, &guard).unwrap();
        assert_eq!(
            check(ts, &sig, body, &guard).unwrap_err().kind,
            RejectKind::Replay
        );
    }
    // The fraction is part of what is signed: moving it breaks the signature.
    let sig = sign(SECRET, "1700000000.5", body);
    let e = check("1700000000.6", &sig, body, &guard).unwrap_err();
    assert!(e.message.contains("bad signature"), "{e}");
    for bad in [
        "1700000000.",
        ".5",
        "1700000000.1234567890",
        "1700000000.5.5",
        "17e8",
    ] {
        let e = check(bad, &sign(SECRET, bad, body), body, &guard).unwrap_err();
        assert!(e.message.contains("X-Drover-Timestamp"), "{bad}: {e}");
    }
}
