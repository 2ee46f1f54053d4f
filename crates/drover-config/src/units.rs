//! Value syntaxes shared by many keys: durations (`"1m30s"`), sizes (`"16KiB"`), percentages
//! (`"20%"`), networks (`"10.0.0.0/8"`), socket addresses, and the "did you mean" used for typos.
//!
//! Each parser returns a [`UnitError`] whose text says what the accepted forms are, so the
//! config parser can put it straight into a [`crate::ConfigError`]. Public so that the admin API
//! and the CLI accept exactly the same forms as the config file.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::Duration;

use crate::model::Cidr;

/// Why a value could not be read; the text says what would be valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UnitError(pub String);

fn fail<T>(message: impl Into<String>) -> Result<T, UnitError> {
    Err(UnitError(message.into()))
}

/// What [`parse_duration`] accepts, for messages.
pub const DURATION_FORMS: &str =
    "a number and a unit (ns, us, ms, s, m, h, d), e.g. \"500ms\", \"30s\", \"1m30s\", \"0s\"";

/// What [`parse_size`] accepts, for messages.
pub const SIZE_FORMS: &str = "a byte count (512) or a number and a unit (B, KiB, MiB, GiB, TiB = \
     powers of 1024; KB, MB, GB, TB = powers of 1000), e.g. \"16KiB\", \"1MiB\"";

/// A duration such as `"2s"`, `"500ms"`, `"1m30s"`, `"250us"` or `"1.5s"`: one or more
/// number-unit pairs (units `ns`, `us`/`µs`, `ms`, `s`, `m`, `h`, `d`), added up. `"0"` alone is
/// also zero.
pub fn parse_duration(text: &str) -> Result<Duration, UnitError> {
    let s = text.trim();
    if s.is_empty() {
        return fail(format!("empty duration; expected {DURATION_FORMS}"));
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut nanos: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        if number.is_empty() {
            return fail(format!(
                "expected a number at \"{rest}\"; expected {DURATION_FORMS}"
            ));
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (spaced, after) = after.split_at(unit_len);
        let unit = spaced.trim();
        let scale: u128 = match unit {
            "ns" => 1,
            "us" | "µs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "d" => 86_400_000_000_000,
            "" => {
                return fail(format!(
                    "missing unit after {number}; expected {DURATION_FORMS}"
                ));
            }
            _ => {
                return fail(format!(
                    "unknown unit \"{unit}\"; expected {DURATION_FORMS}"
                ));
            }
        };
        if unit.len() != spaced.len() {
            return fail(format!("no spaces allowed; expected {DURATION_FORMS}"));
        }
        let Some(part) = scaled(number, scale) else {
            return fail(format!(
                "bad number \"{number}\"; expected {DURATION_FORMS}"
            ));
        };
        nanos = nanos.saturating_add(part);
        rest = after;
    }
    let secs = u64::try_from(nanos / 1_000_000_000);
    match secs {
        // The remainder is below 10^9, so it fits a u32.
        Ok(secs) => Ok(Duration::new(secs, (nanos % 1_000_000_000) as u32)),
        Err(_) => fail("duration too large"),
    }
}

/// A duration written the way [`parse_duration`] reads it, largest units first: `"5m"`,
/// `"1m30s"`, `"500ms"`, `"1s500ms"`, `"0s"`.
pub fn format_duration(d: Duration) -> String {
    const UNITS: [(&str, u128); 7] = [
        ("d", 86_400_000_000_000),
        ("h", 3_600_000_000_000),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
        ("ns", 1),
    ];
    let mut nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, scale) in UNITS {
        if nanos >= scale {
            out.push_str(&format!("{}{unit}", nanos / scale));
            nanos %= scale;
        }
    }
    out
}

/// `number` (digits, optionally one `.` and more digits) times `scale`, truncated to an integer.
fn scaled(number: &str, scale: u128) -> Option<u128> {
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || frac.contains('.') || (number.contains('.') && frac.is_empty()) {
        return None;
    }
    let whole: u128 = whole.parse().ok()?;
    let mut value = whole.checked_mul(scale)?;
    let mut unit = scale;
    for digit in frac.bytes() {
        unit /= 10;
        value = value.checked_add(u128::from(digit - b'0') * unit)?;
    }
    Some(value)
}

/// A size such as `"16KiB"`, `"1MiB"`, `"1MB"` (10^6) or `"512"` (bytes). Units are not case
/// sensitive; a space between number and unit is allowed.
pub fn parse_size(text: &str) -> Result<u64, UnitError> {
    let s = text.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(digits);
    if number.is_empty() {
        return fail(format!("expected {SIZE_FORMS}"));
    }
    let scale: u64 = match unit.trim_start().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        _ => {
            return fail(format!(
                "unknown size unit \"{unit}\"; expected {SIZE_FORMS}"
            ));
        }
    };
    number
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .ok_or_else(|| UnitError("size too large".into()))
}

/// What [`parse_percent`] accepts, for messages.
pub const PERCENT_FORMS: &str = "a percentage like \"20%\" or \"12.5%\"";

/// A percentage such as `"20%"` or `"12.5%"`, as a fraction: `"20%"` is 0.2. Digits with at most
/// one `.`, then `%`; not negative. Ranges are the caller's to check.
pub fn parse_percent(text: &str) -> Result<f64, UnitError> {
    let s = text.trim();
    let Some(number) = s.strip_suffix('%') else {
        return fail(format!("missing '%'; expected {PERCENT_FORMS}"));
    };
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
    let valid = !whole.is_empty()
        && digits(whole)
        && digits(frac)
        && !(number.contains('.') && frac.is_empty());
    match number.parse::<f64>() {
        Ok(n) if valid && n.is_finite() => Ok(n / 100.0),
        _ => fail(format!("bad number \"{number}\"; expected {PERCENT_FORMS}")),
    }
}

/// A fraction written back as a percentage, `0.125` as `"12.5%"`, for messages.
pub(crate) fn percent(fraction: f64) -> String {
    // Rounded to a millionth of a percent: 0.07 * 100 is 7.000000000000001 in binary.
    let n = (fraction * 100.0 * 1e6).round() / 1e6;
    format!("{n}%")
}

/// A network `"10.0.0.0/8"`, `"fd00::/8"`, or a bare address (`"192.0.2.7"` = /32, `"::1"` =
/// /128). Host bits after the prefix are allowed and ignored by [`Cidr::contains`].
pub fn parse_cidr(text: &str) -> Result<Cidr, UnitError> {
    const FORMS: &str = "an address or network such as \"10.0.0.0/8\", \"192.0.2.7\", \
                         \"fd00::/8\" or \"::1\"";
    let s = text.trim();
    let (addr, prefix) = match s.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix)),
        None => (s, None),
    };
    let Ok(addr) = addr.parse::<IpAddr>() else {
        return fail(format!("not an IP address; expected {FORMS}"));
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => max,
        Some(p) => match p.parse::<u8>() {
            Ok(p) if p <= max => p,
            _ => {
                return fail(format!(
                    "prefix length must be 0 to {max}; expected {FORMS}"
                ));
            }
        },
    };
    Ok(Cidr { addr, prefix })
}

/// What [`parse_listen`] accepts, for messages.
pub const LISTEN_FORMS: &str =
    "an IP address and port such as \"127.0.0.1:8080\", \"0.0.0.0:80\" or \"[::1]:8080\"";

/// An address to bind: IP and port (port 0 = any free port, for tests).
pub fn parse_listen(text: &str) -> Result<SocketAddr, UnitError> {
    let s = text.trim();
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if s.parse::<IpAddr>().is_ok() {
        return fail(format!("missing port; expected {LISTEN_FORMS}"));
    }
    fail(format!(
        "expected {LISTEN_FORMS} (host names are not bound)"
    ))
}

/// What [`resolve`] accepts, for messages.
pub const MEMBER_FORMS: &str = "\"ip:port\" or \"host:port\", e.g. \"10.0.0.5:8080\", \
                                \"[fd00::5]:8080\", \"app1.internal:8080\"";

/// A member (upstream) address: `ip:port`, or `host:port` resolved now through the system
/// resolver (the first address it answers). Port 0 is refused: nothing can be reached there.
pub fn resolve(text: &str) -> Result<SocketAddr, UnitError> {
    let s = text.trim();
    if let Ok(addr) = s.parse::<SocketAddr>() {
        if addr.port() == 0 {
            return fail(format!("port must be 1 to 65535; expected {MEMBER_FORMS}"));
        }
        return Ok(addr);
    }
    if s.parse::<IpAddr>().is_ok() {
        return fail(format!("missing port; expected {MEMBER_FORMS}"));
    }
    let Some((host, port)) = s.rsplit_once(':') else {
        return fail(format!("missing port; expected {MEMBER_FORMS}"));
    };
    if host.contains(':') || host.starts_with('[') {
        return fail(format!(
            "not an IPv6 address with port (write it in brackets: \"[fd00::5]:8080\"); \
             expected {MEMBER_FORMS}"
        ));
    }
    let valid_host = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_');
    if !valid_host {
        return fail(format!(
            "\"{host}\" is not a host name; expected {MEMBER_FORMS}"
        ));
    }
    let port = match port.parse::<u16>() {
        Ok(p) if p > 0 => p,
        _ => return fail(format!("port must be 1 to 65535; expected {MEMBER_FORMS}")),
    };
    match (host, port).to_socket_addrs() {
        Ok(mut addrs) => match addrs.next() {
            Some(addr) => Ok(addr),
            None => fail(format!("host \"{host}\" resolved to no address")),
        },
        Err(e) => fail(format!("cannot resolve host \"{host}\": {e}")),
    }
}

/// The candidate closest to `word`, when close enough to be a likely typo.
pub(crate) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let word = word.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (distance(&word, &c.to_ascii_lowercase()), c))
        .filter(|&(d, c)| d <= (c.chars().count() / 3).max(1))
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Edit distance counting a swap of two neighbours as one edit (optimal string alignment), so
/// `idel` is one edit from `idle`.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        d[i * width] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(width) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1)
                .min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = best;
        }
    }
    d[a.len() * width + b.len()]
}

#[cfg(test)]
mod tests;
