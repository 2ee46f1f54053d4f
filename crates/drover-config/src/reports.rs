//! `[reports]` (how pushed load reports are authenticated) and `[farm.<name>.reports]` (how a
//! farm takes its members' reports: freshness, ORCA headers).
//!
//! Called by `parse.rs` for the top-level table and by `farm.rs` for each farm. A secret is never
//! echoed in an error message: a bad `secret` is reported by its length, not its value.

use std::time::Duration;

use crate::model::{FarmReports, Reports, Secret};
use crate::walk::{Ctx, Table};

const REPORTS_KEYS: &[&str] = &["secret", "secret_file", "window"];
const FARM_REPORTS_KEYS: &[&str] = &["expect", "orca", "orca_request"];
/// Shortest accepted secret, in bytes: an HMAC key shorter than this is guessable.
pub const MIN_SECRET: usize = 16;

/// `[reports]`; the defaults (pushes refused: no secret) when absent.
pub(crate) fn reports(ctx: &mut Ctx<'_>, root: &Table<'_, '_>) -> Reports {
    let mut out = Reports::default();
    let Some(t) = root.table(ctx, "reports", Some(REPORTS_KEYS)) else {
        return out;
    };
    if let Some(w) = t.positive_duration(ctx, "window") {
        out.window = w;
    }
    out.secret = secret(ctx, &t, "secret", "secret_file", "shared with the agents");
    out
}

/// A secret given inline (`inline` key) or in a file (`file` key, trimmed), at least
/// [`MIN_SECRET`] bytes; `None` when neither key is there or it is invalid (reported). `whose`
/// says what the secret is for, in messages ("shared with the agents"). The value never appears
/// in a message.
pub(crate) fn secret(
    ctx: &mut Ctx<'_>,
    t: &Table<'_, '_>,
    inline: &str,
    file: &str,
    whose: &str,
) -> Option<Secret> {
    let given = t.get(inline).map(|v| (v, t.child(inline)));
    let from_file = t.get(file).map(|v| (v, t.child(file)));
    if let (Some(_), Some((v, key))) = (&given, &from_file) {
        ctx.bad(key, v, format!("give either {inline} or {file}, not both"));
        return None;
    }
    let (text, v, key) = if let Some((v, key)) = given {
        match v.get_ref() {
            toml::de::DeValue::String(s) => (s.to_string(), v, key),
            _ => {
                // Whatever was written stays out of the message: it may be the secret.
                let message = format!("expected a string {whose} (at least {MIN_SECRET} bytes)");
                ctx.error(v.span().start, &key, Some("(hidden)".to_owned()), message);
                return None;
            }
        }
    } else if let Some((v, key)) = from_file {
        let path = ctx.expect_str(&key, v, "a path to a file holding the secret")?;
        match std::fs::read_to_string(path) {
            Ok(s) => (s.trim().to_owned(), v, key),
            Err(e) => {
                ctx.bad(&key, v, format!("cannot read the secret file: {e}"));
                return None;
            }
        }
    } else {
        return None;
    };
    if text.len() < MIN_SECRET {
        // The value itself stays out of the message.
        ctx.error(
            v.span().start,
            &key,
            Some("(hidden)".to_owned()),
            format!(
                "too short ({} bytes); use at least {MIN_SECRET} random bytes, e.g. the output of \
                 `openssl rand -hex 32`",
                text.len()
            ),
        );
        return None;
    }
    Some(Secret::new(text))
}

/// `[farm.<name>.reports]`; defaults when absent. `steady`: the farm has a report source that
/// does not depend on its traffic (an agent on some member, or signed pushes).
pub(crate) fn farm_reports(ctx: &mut Ctx<'_>, farm: &Table<'_, '_>, steady: bool) -> FarmReports {
    let mut out = FarmReports::default();
    let Some(t) = farm.table(ctx, "reports", Some(FARM_REPORTS_KEYS)) else {
        return out;
    };
    out.expect = t.positive_duration(ctx, "expect");
    if out.expect.is_some()
        && !steady
        && let Some(v) = t.get("expect")
    {
        // ORCA headers come with responses, and a member that is out gets none: it could never
        // come back in.
        ctx.bad(
            &t.child("expect"),
            v,
            "nothing would report steadily: ORCA headers stop when a member is out, so it could \
             never come back in; give the farm an agent ([farm.<name>.agent]) or accept signed \
             pushes ([reports] secret and [admin])",
        );
        out.expect = None;
    }
    if let Some(b) = t.bool(ctx, "orca") {
        out.orca = b;
    }
    if let Some(b) = t.bool(ctx, "orca_request") {
        out.orca_request = b;
    }
    out
}

/// The replay window used when `window` is absent.
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(30);
