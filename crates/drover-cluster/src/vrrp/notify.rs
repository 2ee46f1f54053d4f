//! keepalived's `notify_fifo`: one line per state change, `INSTANCE "drover_12" MASTER 250`. The
//! supervisor reads them into the per-instance states the API shows.

/// An instance's state change: (instance name, state).
pub fn parse(line: &str) -> Option<(String, String)> {
    let rest = line.trim().strip_prefix("INSTANCE ")?;
    let rest = rest.strip_prefix('"')?;
    let (name, rest) = rest.split_once('"')?;
    let state = rest.split_whitespace().next()?;
    Some((name.to_owned(), state.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_lines() {
        assert_eq!(
            parse("INSTANCE \"drover_12\" MASTER 250\n"),
            Some(("drover_12".into(), "MASTER".into()))
        );
        assert_eq!(
            parse("INSTANCE \"drover_3\" FAULT 0"),
            Some(("drover_3".into(), "FAULT".into()))
        );
        assert_eq!(parse("GROUP \"g\" MASTER"), None);
        assert_eq!(parse("INSTANCE drover_3 FAULT"), None);
        assert_eq!(parse(""), None);
    }
}
