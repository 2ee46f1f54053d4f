//! The hand walk over toml's spanned document that lets the parser report every problem with its
//! line: [`Ctx`] collects errors and turns byte offsets into lines; [`Table`] is one TOML table
//! whose keys were checked against the allowed list when it was opened, with typed getters that
//! record a precise error and answer `None` when a value is absent or wrong.
//!
//! Why not serde: `deny_unknown_fields` and typed deserialization stop at the first error and
//! lose the position of everything else; here an error is recorded and the walk goes on.

use std::ops::RangeInclusive;
use std::path::Path;
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::error::{ConfigError, ConfigErrors, compact};
use crate::units::{self, did_you_mean};

pub(crate) type Value<'i> = Spanned<DeValue<'i>>;

/// The file being parsed and the errors found so far.
pub(crate) struct Ctx<'s> {
    src: &'s str,
    file: &'s Path,
    /// Byte offset at which each line starts.
    line_starts: Vec<usize>,
    errors: Vec<ConfigError>,
}

impl<'s> Ctx<'s> {
    pub(crate) fn new(src: &'s str, file: &'s Path) -> Self {
        let line_starts = std::iter::once(0)
            .chain(src.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Ctx {
            src,
            file,
            line_starts,
            errors: Vec::new(),
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub(crate) fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.src.len());
        // line_starts[0] == 0 <= offset, so at least one start precedes it.
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let start = self.line_starts[line - 1];
        let column = self
            .src
            .get(start..offset)
            .map_or(1, |s| s.chars().count() + 1);
        (line, column)
    }

    pub(crate) fn line(&self, offset: usize) -> usize {
        self.position(offset).0
    }

    /// Records a problem at byte offset `at`.
    pub(crate) fn error(
        &mut self,
        at: usize,
        key: &str,
        value: Option<String>,
        message: impl Into<String>,
    ) {
        let (line, column) = self.position(at);
        self.errors.push(ConfigError {
            file: self.file.to_path_buf(),
            line,
            column,
            key: key.to_owned(),
            value,
            message: message.into(),
        });
    }

    /// Records a problem with the file as a whole (no line), e.g. a missing top-level table.
    pub(crate) fn file_error(&mut self, key: &str, message: impl Into<String>) {
        let mut e = ConfigError::file(self.file, message);
        e.key = key.to_owned();
        self.errors.push(e);
    }

    /// Records a problem with a value, at the value, showing it as written.
    pub(crate) fn bad(&mut self, key: &str, v: &Value<'_>, message: impl Into<String>) {
        let value = self.written(v);
        self.error(v.span().start, key, value, message);
    }

    /// A value as written in the file, for messages; `None` for tables (a `[header]` is not a
    /// value worth repeating).
    pub(crate) fn written(&self, v: &Value<'_>) -> Option<String> {
        if v.get_ref().is_table() {
            return None;
        }
        self.src.get(v.span()).map(compact)
    }

    /// The collected errors sorted by position, or `ok` when there are none.
    pub(crate) fn finish<T>(self, ok: T) -> Result<T, ConfigErrors> {
        if self.errors.is_empty() {
            return Ok(ok);
        }
        Err(self.into_errors())
    }

    /// The collected errors sorted by position (file-level ones first).
    pub(crate) fn into_errors(mut self) -> ConfigErrors {
        self.errors.sort_by_key(|e| (e.line, e.column));
        ConfigErrors(self.errors)
    }

    pub(crate) fn expect_str<'v>(
        &mut self,
        key: &str,
        v: &'v Value<'_>,
        what: &str,
    ) -> Option<&'v str> {
        match v.get_ref() {
            DeValue::String(s) => Some(s.as_ref()),
            _ => self.wrong_type(key, v, what),
        }
    }

    pub(crate) fn expect_bool(&mut self, key: &str, v: &Value<'_>) -> Option<bool> {
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => self.wrong_type(key, v, "true or false"),
        }
    }

    /// An integer within `range`.
    pub(crate) fn expect_int(
        &mut self,
        key: &str,
        v: &Value<'_>,
        range: RangeInclusive<i64>,
    ) -> Option<i64> {
        let within = format!("an integer from {} to {}", range.start(), range.end());
        let DeValue::Integer(i) = v.get_ref() else {
            return self.wrong_type(key, v, &within);
        };
        match i64::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) if range.contains(&n) => Some(n),
            _ => {
                self.bad(key, v, format!("out of range; expected {within}"));
                None
            }
        }
    }

    /// A float (an integer is accepted too: `hash_bound = 2`).
    pub(crate) fn expect_float(&mut self, key: &str, v: &Value<'_>, what: &str) -> Option<f64> {
        let parsed = match v.get_ref() {
            DeValue::Float(f) => f.as_str().parse::<f64>().ok(),
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                .ok()
                .map(|n| n as f64),
            _ => return self.wrong_type(key, v, what),
        };
        match parsed {
            Some(f) if f.is_finite() => Some(f),
            _ => {
                self.bad(key, v, format!("expected {what}"));
                None
            }
        }
    }

    pub(crate) fn expect_duration(&mut self, key: &str, v: &Value<'_>) -> Option<Duration> {
        let what = format!("a duration: {}", units::DURATION_FORMS);
        let text = self.expect_str(key, v, &what)?;
        match units::parse_duration(text) {
            Ok(d) => Some(d),
            Err(e) => {
                self.bad(key, v, format!("invalid duration: {e}"));
                None
            }
        }
    }

    /// A size in bytes, as a string with a unit or a bare integer, within `range`.
    pub(crate) fn expect_size(
        &mut self,
        key: &str,
        v: &Value<'_>,
        range: RangeInclusive<u64>,
    ) -> Option<u64> {
        let size = match v.get_ref() {
            DeValue::String(s) => units::parse_size(s),
            DeValue::Integer(i) => u64::from_str_radix(i.as_str(), i.radix())
                .map_err(|_| units::UnitError(format!("expected {}", units::SIZE_FORMS))),
            _ => return self.wrong_type(key, v, &format!("a size: {}", units::SIZE_FORMS)),
        };
        match size {
            Ok(n) if range.contains(&n) => Some(n),
            Ok(_) => {
                let (lo, hi) = (range.start(), range.end());
                self.bad(
                    key,
                    v,
                    format!(
                        "out of range; expected a size from {} to {}",
                        bytes(*lo),
                        bytes(*hi)
                    ),
                );
                None
            }
            Err(e) => {
                self.bad(key, v, format!("invalid size: {e}"));
                None
            }
        }
    }

    /// A percentage string (`"20%"`) as a fraction within `range` (fractions: `0.0..=1.0` is
    /// 0% to 100%).
    pub(crate) fn expect_percent(
        &mut self,
        key: &str,
        v: &Value<'_>,
        range: RangeInclusive<f64>,
    ) -> Option<f64> {
        let (lo, hi) = (units::percent(*range.start()), units::percent(*range.end()));
        let within = format!("a percentage from {lo} to {hi}, e.g. \"20%\"");
        let text = self.expect_str(key, v, &within)?;
        match units::parse_percent(text) {
            Ok(p) if range.contains(&p) => Some(p),
            Ok(_) => {
                self.bad(key, v, format!("out of range; expected {within}"));
                None
            }
            Err(e) => {
                self.bad(key, v, format!("invalid percentage: {e}"));
                None
            }
        }
    }

    pub(crate) fn expect_array<'a, 'i>(
        &mut self,
        key: &str,
        v: &'a Value<'i>,
        what: &str,
    ) -> Option<&'a [Value<'i>]> {
        match v.get_ref() {
            DeValue::Array(a) => Some(a),
            _ => self.wrong_type(key, v, what),
        }
    }

    fn wrong_type<T>(&mut self, key: &str, v: &Value<'_>, what: &str) -> Option<T> {
        let found = match v.get_ref() {
            DeValue::Integer(_) => "an integer".to_owned(),
            DeValue::Array(_) => "an array".to_owned(),
            other => format!("a {}", other.type_str()),
        };
        self.bad(key, v, format!("expected {what}, found {found}"));
        None
    }
}

/// `16384` as `"16KiB"` when it is a whole number of KiB/MiB, for range messages.
fn bytes(n: u64) -> String {
    match n {
        0 => "0".into(),
        n if n % (1 << 20) == 0 => format!("{}MiB", n >> 20),
        n if n % (1 << 10) == 0 => format!("{}KiB", n >> 10),
        n => n.to_string(),
    }
}

/// Dotted key of `name` inside the table at `parent` (`""` for the root).
pub(crate) fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_owned()
    } else {
        format!("{parent}.{name}")
    }
}

/// One TOML table being read: its dotted key, where it starts, its entries in file order.
pub(crate) struct Table<'a, 'i> {
    key: String,
    at: usize,
    /// (name, byte offset of the key, value), in file order.
    entries: Vec<(&'a str, usize, &'a Value<'i>)>,
}

impl<'a, 'i> Table<'a, 'i> {
    /// Reads `table`, recording an error for each key not in `allowed` (`None`: any key, as
    /// for the farm names under `[farm]`).
    pub(crate) fn new(
        ctx: &mut Ctx<'_>,
        key: String,
        at: usize,
        table: &'a DeTable<'i>,
        allowed: Option<&[&str]>,
    ) -> Self {
        let mut entries: Vec<_> = table
            .iter()
            .map(|(k, v)| (k.get_ref().as_ref(), k.span().start, v))
            .collect();
        // toml keeps keys sorted by name; the spans give back the file order.
        entries.sort_by_key(|&(_, at, v)| at.min(v.span().start));
        if let Some(allowed) = allowed {
            for &(name, at, _) in &entries {
                if allowed.contains(&name) {
                    continue;
                }
                let mut message = String::from("unknown key");
                if let Some(close) = did_you_mean(name, allowed.iter().copied()) {
                    message.push_str(&format!(" (did you mean {close}?)"));
                }
                if allowed.is_empty() {
                    message.push_str("; this table takes no keys");
                } else {
                    message.push_str(&format!("; valid keys here: {}", allowed.join(", ")));
                }
                ctx.error(at, &join(&key, name), None, message);
            }
        }
        Table { key, at, entries }
    }

    /// Reads `v` as a table (see [`Table::new`]); a non-table is an error.
    pub(crate) fn open(
        ctx: &mut Ctx<'_>,
        key: String,
        v: &'a Value<'i>,
        allowed: Option<&[&str]>,
    ) -> Option<Self> {
        match v.get_ref() {
            DeValue::Table(t) => Some(Table::new(ctx, key, v.span().start, t, allowed)),
            _ => ctx.wrong_type(&key, v, "a table"),
        }
    }

    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    /// Byte offset of the table's header (or `{` of an inline table).
    pub(crate) fn at(&self) -> usize {
        self.at
    }

    /// Dotted key of an entry of this table.
    pub(crate) fn child(&self, name: &str) -> String {
        join(&self.key, name)
    }

    pub(crate) fn get(&self, name: &str) -> Option<&'a Value<'i>> {
        self.entries.iter().find(|e| e.0 == name).map(|e| e.2)
    }

    pub(crate) fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Byte offset of an entry's key.
    pub(crate) fn key_at(&self, name: &str) -> Option<usize> {
        self.entries.iter().find(|e| e.0 == name).map(|e| e.1)
    }

    /// (name, key offset, value) in file order.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&'a str, usize, &'a Value<'i>)> + '_ {
        self.entries.iter().copied()
    }

    /// Records that required key `name` is absent, at the table's header.
    pub(crate) fn missing(&self, ctx: &mut Ctx<'_>, name: &str, message: &str) {
        ctx.error(
            self.at,
            &self.child(name),
            None,
            format!("missing; {message}"),
        );
    }

    pub(crate) fn str(&self, ctx: &mut Ctx<'_>, name: &str, what: &str) -> Option<&'a str> {
        let v = self.get(name)?;
        ctx.expect_str(&self.child(name), v, what)
    }

    pub(crate) fn bool(&self, ctx: &mut Ctx<'_>, name: &str) -> Option<bool> {
        let v = self.get(name)?;
        ctx.expect_bool(&self.child(name), v)
    }

    pub(crate) fn int(
        &self,
        ctx: &mut Ctx<'_>,
        name: &str,
        range: RangeInclusive<i64>,
    ) -> Option<i64> {
        let v = self.get(name)?;
        ctx.expect_int(&self.child(name), v, range)
    }

    pub(crate) fn float(&self, ctx: &mut Ctx<'_>, name: &str, what: &str) -> Option<f64> {
        let v = self.get(name)?;
        ctx.expect_float(&self.child(name), v, what)
    }

    pub(crate) fn duration(&self, ctx: &mut Ctx<'_>, name: &str) -> Option<Duration> {
        let v = self.get(name)?;
        ctx.expect_duration(&self.child(name), v)
    }

    /// A duration that must not be zero.
    pub(crate) fn positive_duration(&self, ctx: &mut Ctx<'_>, name: &str) -> Option<Duration> {
        let d = self.duration(ctx, name)?;
        if d.is_zero() {
            if let Some(v) = self.get(name) {
                ctx.bad(&self.child(name), v, "must be more than 0s");
            }
            return None;
        }
        Some(d)
    }

    pub(crate) fn size(
        &self,
        ctx: &mut Ctx<'_>,
        name: &str,
        range: RangeInclusive<u64>,
    ) -> Option<u64> {
        let v = self.get(name)?;
        ctx.expect_size(&self.child(name), v, range)
    }

    pub(crate) fn percent(
        &self,
        ctx: &mut Ctx<'_>,
        name: &str,
        range: RangeInclusive<f64>,
    ) -> Option<f64> {
        let v = self.get(name)?;
        ctx.expect_percent(&self.child(name), v, range)
    }

    pub(crate) fn array(
        &self,
        ctx: &mut Ctx<'_>,
        name: &str,
        what: &str,
    ) -> Option<&'a [Value<'i>]> {
        let v = self.get(name)?;
        ctx.expect_array(&self.child(name), v, what)
    }

    /// The sub-table `name`, its keys checked against `allowed`.
    pub(crate) fn table(
        &self,
        ctx: &mut Ctx<'_>,
        name: &str,
        allowed: Option<&[&str]>,
    ) -> Option<Table<'a, 'i>> {
        let v = self.get(name)?;
        Table::open(ctx, self.child(name), v, allowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_lines_and_char_columns() {
        let src = "a = 1\nbé = 2\n\nc = 3";
        let ctx = Ctx::new(src, Path::new("x.toml"));
        assert_eq!(ctx.position(0), (1, 1));
        assert_eq!(ctx.position(4), (1, 5));
        assert_eq!(ctx.position(6), (2, 1));
        assert_eq!(ctx.position(src.find('=').unwrap()), (1, 3));
        assert_eq!(ctx.position(src.find("= 2").unwrap()), (2, 4));
        assert_eq!(ctx.position(src.find('c').unwrap()), (4, 1));
        assert_eq!(ctx.position(src.len() + 5), (4, 6));
    }

    #[test]
    fn byte_sizes_for_messages() {
        assert_eq!(bytes(8192), "8KiB");
        assert_eq!(bytes(1 << 20), "1MiB");
        assert_eq!(bytes(65534), "65534");
    }
}
