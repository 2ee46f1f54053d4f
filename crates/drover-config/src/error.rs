//! Config errors: one [`ConfigError`] per problem, each naming where it is (file, line, column),
//! which key, the value as written and what would be valid; [`ConfigErrors`] is all of them, in
//! file order, displayed one per line (what `drover check` prints).

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem in a config file.
///
/// Displays as `drover.toml:12: farm.app.policy = "round-robbin": unknown policy; expected one
/// of round-robin, ...` — the value part only when there is a value to show, the key part only
/// when the problem belongs to a key (a TOML syntax error does not), the line only when known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", Render(self))]
pub struct ConfigError {
    /// The file, as given to [`crate::load`] / [`crate::parse_str`].
    pub file: PathBuf,
    /// 1-based line; 0 when the problem is the whole file (unreadable, or a required top-level
    /// table missing).
    pub line: usize,
    /// 1-based column (in characters); 0 with `line`.
    pub column: usize,
    /// Dotted key, e.g. `farm.app.members[1].address` (array indexes are 0-based); empty for
    /// syntax errors and file-level problems.
    pub key: String,
    /// The offending value as written in the file (strings keep their quotes; long values are
    /// shortened); `None` when the problem is a key, a missing key or a whole table.
    pub value: Option<String>,
    /// What is wrong and what would be valid.
    pub message: String,
}

impl ConfigError {
    /// A problem with the whole file (it cannot be read, say).
    pub fn file(file: &Path, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_path_buf(),
            line: 0,
            column: 0,
            key: String::new(),
            value: None,
            message: message.into(),
        }
    }
}

struct Render<'a>(&'a ConfigError);

impl fmt::Display for Render<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.0;
        write!(f, "{}", e.file.display())?;
        if e.line > 0 {
            write!(f, ":{}", e.line)?;
        }
        f.write_str(": ")?;
        if !e.key.is_empty() {
            f.write_str(&e.key)?;
            if let Some(value) = &e.value {
                write!(f, " = {value}")?;
            }
            f.write_str(": ")?;
        }
        f.write_str(&e.message)
    }
}

/// Every problem found in a config file, sorted by position. Never empty when returned as an
/// error. Displays one error per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }
}

impl IntoIterator for ConfigErrors {
    type Item = ConfigError;
    type IntoIter = std::vec::IntoIter<ConfigError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Longest value shown in a message; longer ones are cut with "...".
const MAX_SHOWN: usize = 60;

/// A value as written, fit for a one-line message: whitespace runs (newlines of a multi-line
/// array included) become one space, and long values are shortened.
pub(crate) fn compact(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len().min(MAX_SHOWN + 3));
    for (i, word) in raw.split_whitespace().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(word);
    }
    if out.chars().count() > MAX_SHOWN {
        out = out.chars().take(MAX_SHOWN).collect();
        out.push_str("...");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(line: usize, key: &str, value: Option<&str>) -> ConfigError {
        ConfigError {
            file: "drover.toml".into(),
            line,
            column: 1,
            key: key.into(),
            value: value.map(Into::into),
            message: "bad".into(),
        }
    }

    #[test]
    fn display_forms() {
        let with_value = error(12, "farm.app.policy", Some("\"x\""));
        assert_eq!(
            with_value.to_string(),
            "drover.toml:12: farm.app.policy = \"x\": bad"
        );
        assert_eq!(
            error(3, "server.x", None).to_string(),
            "drover.toml:3: server.x: bad"
        );
        assert_eq!(error(3, "", None).to_string(), "drover.toml:3: bad");
        assert_eq!(error(0, "", None).to_string(), "drover.toml: bad");
        let all = ConfigErrors(vec![error(1, "", None), error(2, "", None)]);
        assert_eq!(all.to_string(), "drover.toml:1: bad\ndrover.toml:2: bad");
    }

    #[test]
    fn compact_values() {
        assert_eq!(compact("[\n  \"a\",\n  \"b\",\n]"), "[ \"a\", \"b\", ]");
        let long = "x".repeat(100);
        assert_eq!(compact(&long).len(), MAX_SHOWN + 3);
    }
}
