use std::net::IpAddr;
use std::time::Duration;

use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn durations() {
    assert_eq!(parse_duration("2s"), Ok(ms(2_000)));
    assert_eq!(parse_duration("500ms"), Ok(ms(500)));
    assert_eq!(parse_duration("1m"), Ok(ms(60_000)));
    assert_eq!(parse_duration("1h"), Ok(ms(3_600_000)));
    assert_eq!(parse_duration("1m30s"), Ok(ms(90_000)));
    assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
    assert_eq!(parse_duration("250µs"), Ok(Duration::from_micros(250)));
    assert_eq!(parse_duration("7ns"), Ok(Duration::from_nanos(7)));
    assert_eq!(parse_duration("1d"), Ok(ms(86_400_000)));
    assert_eq!(parse_duration("1.5s"), Ok(ms(1_500)));
    assert_eq!(parse_duration("0.25ms"), Ok(Duration::from_micros(250)));
    assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
    assert_eq!(parse_duration(" 1h2m3s "), Ok(ms(3_723_000)));
}

#[test]
fn bad_durations_say_what_is_valid() {
    for bad in [
        "", "2", "5 s", "2sec", "-1s", "s", "1..5s", "1.s", ".5s", "1m30", "ms5",
    ] {
        let err = parse_duration(bad).expect_err(bad);
        assert!(err.0.contains("\"1m30s\""), "{bad}: {err}");
    }
    assert!(
        parse_duration("2")
            .unwrap_err()
            .0
            .starts_with("missing unit after 2")
    );
    assert!(
        parse_duration("2sec")
            .unwrap_err()
            .0
            .starts_with("unknown unit \"sec\"")
    );
    assert!(
        parse_duration("5 s")
            .unwrap_err()
            .0
            .starts_with("no spaces allowed")
    );
    assert!(
        parse_duration("30 seconds")
            .unwrap_err()
            .0
            .starts_with("unknown unit \"seconds\"")
    );
    assert!(parse_duration("999999999999999999999d").is_err());
}

#[test]
fn sizes() {
    assert_eq!(parse_size("512"), Ok(512));
    assert_eq!(parse_size("512B"), Ok(512));
    assert_eq!(parse_size("16KiB"), Ok(16 * 1024));
    assert_eq!(parse_size("1MiB"), Ok(1 << 20));
    assert_eq!(parse_size("1GiB"), Ok(1 << 30));
    assert_eq!(parse_size("1MB"), Ok(1_000_000));
    assert_eq!(parse_size("8kb"), Ok(8_000));
    assert_eq!(parse_size("64 kib"), Ok(64 * 1024));
}

#[test]
fn bad_sizes_say_what_is_valid() {
    for bad in [
        "",
        "KiB",
        "1.5MiB",
        "-1",
        "16K",
        "1 megabyte",
        "99999999999999999999",
    ] {
        let err = parse_size(bad).expect_err(bad);
        assert!(
            err.0.contains("\"16KiB\"") || err.0.contains("too large"),
            "{bad}: {err}"
        );
    }
    assert!(parse_size("18446744073709551615GiB").is_err());
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn cidrs() {
    assert_eq!(
        parse_cidr("10.0.0.0/8"),
        Ok(Cidr {
            addr: ip("10.0.0.0"),
            prefix: 8
        })
    );
    assert_eq!(
        parse_cidr("192.0.2.7"),
        Ok(Cidr {
            addr: ip("192.0.2.7"),
            prefix: 32
        })
    );
    assert_eq!(
        parse_cidr("fd00::/8"),
        Ok(Cidr {
            addr: ip("fd00::"),
            prefix: 8
        })
    );
    assert_eq!(
        parse_cidr("::1"),
        Ok(Cidr {
            addr: ip("::1"),
            prefix: 128
        })
    );
    assert_eq!(
        parse_cidr("0.0.0.0/0"),
        Ok(Cidr {
            addr: ip("0.0.0.0"),
            prefix: 0
        })
    );
    assert_eq!("10.1.0.0/16".parse::<Cidr>(), parse_cidr("10.1.0.0/16"));
    for bad in [
        "10.0.0.0/33",
        "::/129",
        "10.0.0/8",
        "example.com",
        "10.0.0.0/",
        "/8",
        "[::1]",
    ] {
        assert!(parse_cidr(bad).is_err(), "{bad}");
    }
}

#[test]
fn cidr_contains() {
    let net = parse_cidr("10.0.0.0/8").unwrap();
    assert!(net.contains(ip("10.1.2.3")));
    assert!(!net.contains(ip("11.0.0.1")));
    // A v4 client seen through a dual-stack socket arrives as ::ffff:a.b.c.d.
    assert!(net.contains(ip("::ffff:10.9.9.9")));
    assert!(!net.contains(ip("::ffff:11.9.9.9")));
    assert!(!net.contains(ip("::1")));
    let host = parse_cidr("192.0.2.7").unwrap();
    assert!(host.contains(ip("192.0.2.7")) && !host.contains(ip("192.0.2.8")));
    let all = parse_cidr("0.0.0.0/0").unwrap();
    assert!(all.contains(ip("203.0.113.1")) && all.contains(ip("::ffff:1.2.3.4")));
    let v6 = parse_cidr("fd00::/8").unwrap();
    assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
    assert!(!v6.contains(ip("10.0.0.1")));
    let lo6 = parse_cidr("::1").unwrap();
    assert!(lo6.contains(ip("::1")) && !lo6.contains(ip("::2")));
    // Host bits past the prefix are ignored.
    assert!(parse_cidr("10.0.0.1/8").unwrap().contains(ip("10.200.0.1")));
}

#[test]
fn listen_addresses() {
    assert_eq!(parse_listen("127.0.0.1:8080").unwrap().port(), 8080);
    assert!(parse_listen("[::1]:8080").unwrap().is_ipv6());
    assert_eq!(parse_listen("127.0.0.1:0").unwrap().port(), 0);
    assert!(
        parse_listen("127.0.0.1")
            .unwrap_err()
            .0
            .starts_with("missing port")
    );
    assert!(parse_listen("localhost:8080").is_err());
    assert!(parse_listen("127.0.0.1:70000").is_err());
}

#[test]
fn member_addresses() {
    assert_eq!(
        resolve("10.0.0.5:8080").unwrap().to_string(),
        "10.0.0.5:8080"
    );
    assert_eq!(resolve("[fd00::5]:80").unwrap().to_string(), "[fd00::5]:80");
    assert!(resolve("localhost:8080").unwrap().ip().is_loopback());
    assert!(
        resolve("10.0.0.5")
            .unwrap_err()
            .0
            .starts_with("missing port")
    );
    assert!(
        resolve("10.0.0.5:0")
            .unwrap_err()
            .0
            .starts_with("port must be")
    );
    assert!(
        resolve("127.0.0.1:99999")
            .unwrap_err()
            .0
            .starts_with("port must be")
    );
    assert!(resolve("fd00::5:80").is_err());
    assert!(
        resolve("bad host:80")
            .unwrap_err()
            .0
            .contains("not a host name")
    );
}

#[test]
fn suggestions() {
    let keys = ["idle_timeout", "listen", "name", "farm"];
    assert_eq!(did_you_mean("idel_timeout", keys), Some("idle_timeout"));
    assert_eq!(did_you_mean("lisen", keys), Some("listen"));
    assert_eq!(did_you_mean("Farm", keys), Some("farm"));
    assert_eq!(did_you_mean("zzzzzz", keys), None);
    assert_eq!(
        did_you_mean(
            "round-robbin",
            drover_core::PolicyKind::NAMES.iter().copied()
        ),
        Some("round-robin")
    );
    assert_eq!(distance("abc", "acb"), 1);
    assert_eq!(distance("", "abc"), 3);
}

#[test]
fn percentages() {
    assert_eq!(parse_percent("20%"), Ok(0.2));
    assert_eq!(parse_percent("12.5%"), Ok(0.125));
    assert_eq!(parse_percent("0%"), Ok(0.0));
    assert_eq!(parse_percent("100%"), Ok(1.0));
    assert_eq!(parse_percent(" 50% "), Ok(0.5));
    assert_eq!(parse_percent("150%"), Ok(1.5), "ranges are the caller's");
    assert_eq!(percent(0.125), "12.5%");
    assert_eq!(percent(0.07), "7%");
    assert_eq!(percent(1.0), "100%");
}

#[test]
fn bad_percentages_say_what_is_valid() {
    for bad in [
        "", "20", "0.2", "%", "-5%", "1.%", ".5%", "1..5%", "20 %", "2O%", "20%%",
    ] {
        let err = parse_percent(bad).expect_err(bad);
        assert!(
            err.0
                .ends_with("expected a percentage like \"20%\" or \"12.5%\""),
            "{bad}: {err}"
        );
    }
    assert!(
        parse_percent("20")
            .unwrap_err()
            .0
            .starts_with("missing '%'")
    );
    assert!(
        parse_percent("-5%")
            .unwrap_err()
            .0
            .starts_with("bad number \"-5\"")
    );
}

#[test]
fn durations_format_the_way_they_parse() {
    assert_eq!(format_duration(ms(300_000)), "5m");
    assert_eq!(format_duration(ms(90_000)), "1m30s");
    assert_eq!(format_duration(ms(500)), "500ms");
    assert_eq!(format_duration(ms(1_500)), "1s500ms");
    assert_eq!(format_duration(Duration::ZERO), "0s");
    assert_eq!(
        format_duration(Duration::from_nanos(90_061_000_000_007)),
        "1d1h1m1s7ns"
    );
    for d in [
        ms(1),
        ms(2_000),
        ms(3_723_000),
        Duration::from_nanos(1_234_567),
    ] {
        assert_eq!(parse_duration(&format_duration(d)), Ok(d));
    }
}
