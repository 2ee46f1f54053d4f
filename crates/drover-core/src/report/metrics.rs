//! The metrics of one report: a small ordered list of `(name, value)`, validated on insert.
//!
//! A report carries a handful of numbers, so a `Vec` searched linearly beats a map and keeps the
//! order the member sent. Every way in goes through [`Metrics::insert`], so the invariants (name
//! syntax, finite values, ranges of the well-known names, no duplicates, at most [`MAX_METRICS`])
//! hold for every report whatever its format.

use std::fmt;

/// Most metrics one report may carry.
pub const MAX_METRICS: usize = 32;
/// Longest metric name, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// Why a metric was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricError {
    #[error("bad metric name {0:?} (use 1 to {MAX_NAME_LEN} of lower-case a-z, 0-9, '_' and '.')")]
    BadName(String),
    #[error("metric {0:?} is not a finite number")]
    NotFinite(String),
    #[error("metric {name:?} = {value} is out of range ({range})")]
    OutOfRange {
        name: String,
        value: f64,
        range: &'static str,
    },
    #[error("duplicate metric {0:?}")]
    Duplicate(String),
    #[error("too many metrics (at most {MAX_METRICS})")]
    TooMany,
}

/// The allowed range of a well-known metric, `None` for a custom name (any finite value).
///
/// `cpu` and `mem` are utilisations in `0..=1`; `load1`, `rps`, `eps`, `rif` and `queue` are
/// non-negative.
pub fn bounds(name: &str) -> Option<(f64, f64, &'static str)> {
    match name {
        "cpu" | "mem" => Some((0.0, 1.0, "0..=1")),
        "load1" | "rps" | "eps" | "rif" | "queue" => Some((0.0, f64::INFINITY, ">= 0")),
        _ => None,
    }
}

fn valid_name(name: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.')
}

/// The metrics of one report, in the order they were sent.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics(Vec<(String, f64)>);

impl Metrics {
    /// Adds `name = value`, or says why not (and leaves the list unchanged).
    pub fn insert(&mut self, name: &str, value: f64) -> Result<(), MetricError> {
        if !valid_name(name) {
            return Err(MetricError::BadName(super::clip(name)));
        }
        if !value.is_finite() {
            return Err(MetricError::NotFinite(name.to_owned()));
        }
        if let Some((lo, hi, range)) = bounds(name)
            && !(lo..=hi).contains(&value)
        {
            return Err(MetricError::OutOfRange {
                name: name.to_owned(),
                value,
                range,
            });
        }
        if self.get(name).is_some() {
            return Err(MetricError::Duplicate(name.to_owned()));
        }
        if self.0.len() >= MAX_METRICS {
            return Err(MetricError::TooMany);
        }
        self.0.push((name.to_owned(), value));
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<f64> {
        self.0.iter().find(|(n, _)| n == name).map(|&(_, v)| v)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, f64)> {
        self.0.iter().map(|(n, v)| (n.as_str(), *v))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (n, v)) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{n}={v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_validates() {
        let mut m = Metrics::default();
        m.insert("cpu", 0.42).unwrap();
        m.insert("load1", 7.5).unwrap();
        m.insert("db.conns", -3.0).unwrap();
        assert_eq!(m.get("cpu"), Some(0.42));
        assert_eq!(m.to_string(), "cpu=0.42 load1=7.5 db.conns=-3");
        let bad = [
            ("cpu", 1.5, "out of range"),
            ("cpu", -0.1, "out of range"),
            ("mem", 2.0, "0..=1"),
            ("rif", -1.0, ">= 0"),
            ("x", f64::NAN, "not a finite"),
            ("x", f64::INFINITY, "not a finite"),
            ("CPU", 0.1, "bad metric name"),
            ("", 0.1, "bad metric name"),
            ("a-b", 0.1, "bad metric name"),
            ("cpu", 0.1, "duplicate"),
        ];
        for (name, value, want) in bad {
            let e = m.insert(name, value).unwrap_err().to_string();
            assert!(e.contains(want), "{name}={value}: {e}");
        }
        assert!(m.insert(&"a".repeat(64), 1.0).is_ok());
        assert!(m.insert(&"a".repeat(65), 1.0).is_err());
        for i in m.len()..MAX_METRICS {
            m.insert(&format!("m{i}"), 1.0).unwrap();
        }
        assert_eq!(m.insert("one_more", 1.0), Err(MetricError::TooMany));
        assert_eq!(m.len(), MAX_METRICS);
    }
}
