//! What `drover ctl` prints: the API's JSON read into the few fields shown, laid out as plain
//! aligned columns ([`Table`]).
//!
//! The types here read only what they print and default whatever is missing, so a newer or older
//! balancer with more or fewer fields still prints. `--json` bypasses all of this.

use std::fmt::Write as _;

use serde::Deserialize;

/// `GET /api/v1/farms`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Farms {
    pub farms: Vec<Farm>,
}

/// `GET /api/v1/farms/{farm}`, and each farm of [`Farms`].
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Farm {
    pub name: String,
    pub policy: String,
    pub panic: bool,
    pub requests: u64,
    pub attempts: u64,
    pub retries: u64,
    pub budget_refused: u64,
    pub orca_reports: u64,
    pub orca_rejects: u64,
    pub expect_s: Option<f64>,
    pub sticky: Option<Sticky>,
    pub members: Vec<Member>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Sticky {
    pub mode: String,
    pub nofailover: bool,
    pub hits: u64,
    pub moved: u64,
    pub refused: u64,
    pub cookies_set: u64,
    pub learned: u64,
    pub sessions: Option<u64>,
    pub max_sessions: Option<u64>,
}

/// A member, as listed in a farm and as answered by a member write.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Member {
    pub name: String,
    pub address: String,
    pub weight: u32,
    /// The agent's share of `weight` in percent (100 until an agent reports).
    pub weight_pct: Option<u32>,
    pub on: bool,
    pub up: bool,
    pub ejected: bool,
    #[serde(rename = "in")]
    pub is_in: bool,
    pub draining: bool,
    pub ready: bool,
    pub in_flight: u32,
    pub requests: u64,
    pub failures: u64,
    pub latency_ewma_ms: f64,
    pub last_transition: Option<Transition>,
    pub reported: Option<Reported>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Transition {
    pub state: String,
    pub reason: String,
    pub age_s: f64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Reported {
    pub source: String,
    pub age_s: f64,
}

/// `GET /api/v1/farms/{farm}/pick` (`drover_core::policy::Explanation`).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Pick {
    pub farm: String,
    pub policy: String,
    pub panic: bool,
    pub chosen: Option<Chosen>,
    pub score: Option<String>,
    pub candidates: Vec<Candidate>,
    pub removed: Vec<Removed>,
    pub notes: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Chosen {
    pub name: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Candidate {
    pub name: String,
    pub in_flight: u32,
    pub weight: f64,
    pub capacity: Option<f64>,
    pub load: Option<f64>,
    pub score: Option<f64>,
    pub report_age_s: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Removed {
    pub name: String,
    pub stage: String,
    pub why: String,
}

/// Plain text columns, two spaces apart; numbers right-aligned; no trailing spaces.
pub struct Table {
    header: Vec<&'static str>,
    right: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// Columns named in `header`; a name ending in `>` is right-aligned (the `>` is not shown).
    pub fn new(header: &[&'static str]) -> Table {
        Table {
            header: header.iter().map(|h| h.trim_end_matches('>')).collect(),
            right: header.iter().map(|h| h.ends_with('>')).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let header: Vec<String> = self.header.iter().map(|h| (*h).to_owned()).collect();
        let lines: Vec<&Vec<String>> = std::iter::once(&header).chain(&self.rows).collect();
        let mut widths = vec![0; self.header.len()];
        for line in &lines {
            for (w, cell) in widths.iter_mut().zip(line.iter()) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for line in lines {
            let mut text = String::new();
            for (i, cell) in line.iter().enumerate() {
                let width = widths.get(i).copied().unwrap_or(0);
                if i > 0 {
                    text.push_str("  ");
                }
                let pad = " ".repeat(width.saturating_sub(cell.chars().count()));
                if self.right.get(i).copied().unwrap_or(false) {
                    text.push_str(&pad);
                    text.push_str(cell);
                } else {
                    text.push_str(cell);
                    text.push_str(&pad);
                }
            }
            out.push_str(text.trim_end());
            out.push('\n');
        }
        out
    }
}

/// A member's state in words: `ready`, or what keeps it from new requests (`off`, `out`, `down`,
/// `ejected`, `draining`, comma-separated when several hold), in the order a pick checks them.
pub fn state(m: &Member) -> String {
    let mut words = Vec::new();
    if !m.on {
        words.push("off");
    }
    if !m.is_in {
        words.push("out");
    }
    if m.ejected {
        words.push("ejected");
    } else if !m.up {
        words.push("down");
    }
    if m.draining {
        words.push("draining");
    }
    if words.is_empty() {
        words.push(if m.ready { "ready" } else { "not ready" });
    }
    words.join(",")
}

/// `30s`, `4m10s`, `2h5m`, `3d4h`.
pub fn age(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{}s", s / 60, s % 60),
        3600..86400 => format!("{}h{}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{}h", s / 86400, s % 86400 / 3600),
    }
}

fn latency(m: &Member) -> String {
    if m.requests == 0 {
        "-".to_owned()
    } else {
        format!("{:.1}ms", m.latency_ewma_ms)
    }
}

fn weight(m: &Member) -> String {
    match m.weight_pct {
        Some(pct) if pct != 100 => format!("{} ({pct}%)", m.weight),
        _ => m.weight.to_string(),
    }
}

/// A number as short as it reads well: `2`, `0.75`, `-` for none.
fn number(x: Option<f64>) -> String {
    match x {
        None => "-".to_owned(),
        Some(x) if x.fract() == 0.0 && x.abs() < 1e15 => format!("{x:.0}"),
        Some(x) => format!("{x:.3}")
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_owned(),
    }
}

fn panic_note(farm: &str) -> String {
    format!("farm {farm} is in panic mode: too few members are up, so health is ignored\n")
}

/// `drover ctl list`: every farm's members in one table.
pub fn list(farms: &Farms) -> String {
    if farms.farms.is_empty() {
        return "no farms\n".to_owned();
    }
    let mut t = Table::new(&[
        "FARM",
        "MEMBER",
        "ADDRESS",
        "STATE",
        "WEIGHT>",
        "IN-FLIGHT>",
        "REQUESTS>",
        "FAILURES>",
        "LATENCY>",
    ]);
    for f in &farms.farms {
        for m in &f.members {
            t.row(vec![
                f.name.clone(),
                m.name.clone(),
                m.address.clone(),
                state(m),
                weight(m),
                m.in_flight.to_string(),
                m.requests.to_string(),
                m.failures.to_string(),
                latency(m),
            ]);
        }
    }
    let mut out = t.render();
    for f in farms.farms.iter().filter(|f| f.panic) {
        out.push_str(&panic_note(&f.name));
    }
    out
}

/// `drover ctl show <farm>`: the farm's counters, its members (with their last change and load
/// report), and its sticky-session outcomes.
pub fn show(f: &Farm) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "farm {}: policy {}, {} requests ({} attempts at members, {} retries, {} refused by the \
         retry budget)",
        f.name, f.policy, f.requests, f.attempts, f.retries, f.budget_refused
    );
    if f.panic {
        out.push_str(&panic_note(&f.name));
    }
    if let Some(expect) = f.expect_s {
        let _ = writeln!(
            out,
            "load reports expected every {}: members silent longer are out",
            age(expect)
        );
    }
    if f.orca_reports + f.orca_rejects > 0 {
        let _ = writeln!(
            out,
            "ORCA reports: {} applied, {} rejected",
            f.orca_reports, f.orca_rejects
        );
    }
    if let Some(s) = &f.sticky {
        let _ = write!(
            out,
            "sticky sessions ({}{}): {} hits, {} moved, {} refused, {} cookies set",
            s.mode,
            if s.nofailover { ", nofailover" } else { "" },
            s.hits,
            s.moved,
            s.refused,
            s.cookies_set
        );
        if s.mode == "learn" {
            let _ = write!(out, ", {} learned", s.learned);
        }
        if let (Some(n), Some(max)) = (s.sessions, s.max_sessions) {
            let _ = write!(out, ", {n} of {max} sessions in the table");
        }
        out.push('\n');
    }
    out.push('\n');
    let mut t = Table::new(&[
        "MEMBER",
        "ADDRESS",
        "STATE",
        "WEIGHT>",
        "IN-FLIGHT>",
        "REQUESTS>",
        "FAILURES>",
        "LATENCY>",
        "REPORT",
        "LAST CHANGE",
    ]);
    for m in &f.members {
        t.row(vec![
            m.name.clone(),
            m.address.clone(),
            state(m),
            weight(m),
            m.in_flight.to_string(),
            m.requests.to_string(),
            m.failures.to_string(),
            latency(m),
            m.reported.as_ref().map_or_else(
                || "-".to_owned(),
                |r| format!("{} {} ago", r.source, age(r.age_s)),
            ),
            m.last_transition.as_ref().map_or_else(
                || "-".to_owned(),
                |c| format!("{} {} ago: {}", c.state, age(c.age_s), c.reason),
            ),
        ]);
    }
    out.push_str(&t.render());
    out
}

/// What a member write answers: `app/a2: off, weight 1`.
pub fn member(farm: &str, m: &Member) -> String {
    format!("{farm}/{}: {}, weight {}\n", m.name, state(m), weight(m))
}

/// `POST /api/v1/reload`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Reloaded {
    pub path: String,
    pub farms: usize,
    pub members: usize,
    pub kept: usize,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub not_applied: Vec<String>,
}

/// `drover ctl reload`: what the reload did, then what it could not apply.
pub fn reloaded(r: &Reloaded) -> String {
    let mut out = format!(
        "reloaded {}: {} farms, {} members ({} kept their state)\n",
        r.path, r.farms, r.members, r.kept
    );
    for m in &r.added {
        let _ = writeln!(out, "  added   {m}");
    }
    for m in &r.removed {
        let _ = writeln!(out, "  removed {m}");
    }
    for line in &r.not_applied {
        let _ = writeln!(out, "  not applied: {line}");
    }
    out
}

/// `drover ctl pick <farm>`: the chosen member, the candidates with their scores (the chosen one
/// marked `*`), who was removed and why, and the policy's notes.
pub fn pick(p: &Pick) -> String {
    let mut out = String::new();
    let chosen = p.chosen.as_ref().map(|c| c.name.as_str());
    let _ = writeln!(
        out,
        "farm {} ({}): {}",
        p.farm,
        p.policy,
        chosen.unwrap_or("no member is ready")
    );
    if p.panic {
        out.push_str(&panic_note(&p.farm));
    }
    if let Some(score) = &p.score {
        // The policy's own words; they say which way wins.
        let _ = writeln!(out, "score: {score}");
    }
    if !p.candidates.is_empty() {
        out.push('\n');
        let mut t = Table::new(&[
            "",
            "CANDIDATE",
            "IN-FLIGHT>",
            "WEIGHT>",
            "CAPACITY>",
            "LOAD>",
            "SCORE>",
            "REPORT AGE>",
        ]);
        for c in &p.candidates {
            t.row(vec![
                if Some(c.name.as_str()) == chosen {
                    "*"
                } else {
                    ""
                }
                .to_owned(),
                c.name.clone(),
                c.in_flight.to_string(),
                number(Some(c.weight)),
                number(c.capacity),
                number(c.load),
                number(c.score),
                c.report_age_s.map_or_else(|| "-".to_owned(), age),
            ]);
        }
        out.push_str(&t.render());
    }
    if !p.removed.is_empty() {
        out.push('\n');
        let mut t = Table::new(&["REMOVED", "STAGE", "WHY"]);
        for r in &p.removed {
            t.row(vec![r.name.clone(), r.stage.clone(), r.why.clone()]);
        }
        out.push_str(&t.render());
    }
    if !p.notes.is_empty() {
        out.push('\n');
        for note in &p.notes {
            let _ = writeln!(out, "note: {note}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str) -> Member {
        Member {
            name: name.to_owned(),
            address: "127.0.0.1:1".to_owned(),
            weight: 1,
            on: true,
            up: true,
            is_in: true,
            ready: true,
            ..Member::default()
        }
    }

    #[test]
    fn states_in_words() {
        let mut m = member("a");
        assert_eq!(state(&m), "ready");
        m.draining = true;
        assert_eq!(state(&m), "draining");
        m.on = false;
        assert_eq!(state(&m), "off,draining");
        let mut m = member("a");
        m.up = false;
        assert_eq!(state(&m), "down");
        m.ejected = true;
        assert_eq!(state(&m), "ejected");
        let mut m = member("a");
        m.is_in = false;
        assert_eq!(state(&m), "out");
    }

    #[test]
    fn columns_align_without_trailing_spaces() {
        let mut t = Table::new(&["NAME", "N>", "NOTE"]);
        t.row(vec!["a".into(), "1".into(), String::new()]);
        t.row(vec!["long-name".into(), "12345".into(), "x".into()]);
        assert_eq!(
            t.render(),
            "NAME           N  NOTE\n\
             a              1\n\
             long-name  12345  x\n"
        );
    }

    #[test]
    fn ages_and_numbers() {
        assert_eq!(age(0.4), "0s");
        assert_eq!(age(59.9), "59s");
        assert_eq!(age(250.0), "4m10s");
        assert_eq!(age(7500.0), "2h5m");
        assert_eq!(age(273_600.0), "3d4h");
        assert_eq!(number(Some(2.0)), "2");
        assert_eq!(number(Some(0.75)), "0.75");
        assert_eq!(number(Some(1.0 / 3.0)), "0.333");
        assert_eq!(number(None), "-");
    }

    #[test]
    fn reads_the_api_json_and_tolerates_missing_fields() {
        let farms: Farms = serde_json::from_str(
            r#"{"farms":[{"name":"app","policy":"p2c","panic":true,"new_field":1,"members":[
                {"name":"a1","address":"10.0.0.1:80","weight":3,"weight_pct":50,"on":false,
                 "up":true,"in":true,"ready":true,"requests":4,"latency_ewma_ms":1.25}]}]}"#,
        )
        .unwrap();
        let text = list(&farms);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("FARM  MEMBER  ADDRESS"), "{text}");
        assert!(
            lines[1].starts_with("app   a1      10.0.0.1:80  off"),
            "{text}"
        );
        assert!(
            lines[1].contains("3 (50%)") && lines[1].ends_with("1.2ms"),
            "{text}"
        );
        assert!(lines[2].contains("panic mode"), "{text}");
    }

    #[test]
    fn pick_marks_the_chosen_member() {
        let p: Pick = serde_json::from_str(
            r#"{"farm":"app","policy":"least-conn","chosen":{"index":1,"name":"a2"},
                "score":"in-flight / weight","candidates":[
                {"index":1,"name":"a2","in_flight":0,"weight":1.0,"score":0.0},
                {"index":2,"name":"a3","in_flight":2,"weight":2.0,"score":1.0}],
                "removed":[{"index":0,"name":"a1","stage":"ready","why":"off (operator)"}],
                "notes":[]}"#,
        )
        .unwrap();
        let text = pick(&p);
        assert!(text.starts_with("farm app (least-conn): a2\n"), "{text}");
        assert!(text.contains("\n*  a2 "), "{text}");
        assert!(text.contains("\n   a3 "), "{text}");
        assert!(text.contains("a1       ready  off (operator)"), "{text}");
    }
}
