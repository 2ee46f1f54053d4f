//! docs/configuration.md stays true: its examples validate, and the error output it shows is what
//! the parser prints for the broken example next to it.

use std::path::Path;

use drover_config::parse_str;

fn doc() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
    std::fs::read_to_string(path).expect("docs/configuration.md")
}

/// The first fenced block (```` ```lang ````) after the line containing `marker`.
fn block_after<'a>(doc: &'a str, marker: &str, lang: &str) -> &'a str {
    let from = doc
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker:?} in the doc"));
    let fence = format!("```{lang}\n");
    let start = from + doc[from..].find(&fence).expect("a fenced block") + fence.len();
    let len = doc[start..].find("```").expect("a closing fence");
    &doc[start..start + len]
}

#[test]
fn doc_examples_validate() {
    let doc = doc();
    for marker in ["# Configuration", "## A complete example"] {
        let text = block_after(&doc, marker, "toml");
        if let Err(e) = parse_str(text, Path::new("drover.toml")) {
            panic!("example after {marker:?} is invalid:\n{e}");
        }
    }
}

#[test]
fn doc_error_output_is_real() {
    let doc = doc();
    let broken = block_after(&doc, "For example, this file", "toml");
    let shown = block_after(&doc, "gives, from `drover check", "");
    let errors = parse_str(broken, Path::new("drover.toml")).expect_err("the example is broken");
    assert_eq!(format!("{errors}\n"), shown);
}
