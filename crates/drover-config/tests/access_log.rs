//! `access_log` on a listener: the forms it takes, its default, and errors that name the line,
//! the key, the bad value and what would be valid.

use std::path::Path;

use drover_config::{ConfigError, LogFormat, LogPath, parse_str};

fn listener(access_log: &str) -> String {
    format!(
        "[[listener]]\nlisten = \"127.0.0.1:8080\"\nfarm = \"app\"\n{access_log}\n\
         [farm.app]\nmembers = [{{ address = \"127.0.0.1:9001\" }}]\n"
    )
}

fn errors_of(text: &str) -> Vec<ConfigError> {
    parse_str(text, Path::new("t.toml"))
        .expect_err("should not validate")
        .0
}

#[test]
fn off_by_default_and_the_forms_it_takes() {
    let c = parse_str(&listener(""), Path::new("t.toml")).unwrap();
    assert_eq!(c.listeners[0].access_log, None);

    let dir = std::env::temp_dir();
    let file = dir.join("drover-config-test-access.log");
    let text = listener(&format!(
        "access_log = {{ path = {:?} }}",
        file.display().to_string()
    ));
    let log = parse_str(&text, Path::new("t.toml")).unwrap().listeners[0]
        .access_log
        .clone()
        .unwrap();
    assert_eq!(log.path, LogPath::File(file));
    assert_eq!(log.format, LogFormat::Combined, "combined is the default");

    for stdout in ["-", "stdout"] {
        let text = listener(&format!(
            "access_log = {{ path = \"{stdout}\", format = \"json\" }}"
        ));
        let log = parse_str(&text, Path::new("t.toml")).unwrap().listeners[0]
            .access_log
            .clone()
            .unwrap();
        assert_eq!((log.path, log.format), (LogPath::Stdout, LogFormat::Json));
    }
}

#[test]
fn bad_values_are_reported_with_line_key_value_and_fix() {
    let text = listener(
        "access_log = { path = \"/nonexistent-drover-dir/a.log\", format = \"jsno\", size = 1 }",
    );
    let errors = errors_of(&text);
    let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(errors.len(), 3, "{shown:#?}");
    assert!(errors.iter().all(|e| e.line == 4), "{shown:#?}");
    let by_key = |k: &str| {
        errors
            .iter()
            .find(|e| e.key == k)
            .unwrap_or_else(|| panic!("no error for {k}: {shown:#?}"))
    };
    let format = by_key("listener[0].access_log.format");
    assert_eq!(format.value.as_deref(), Some("\"jsno\""));
    assert!(
        format.message.contains("did you mean \"json\""),
        "{}",
        format.message
    );
    let path = by_key("listener[0].access_log.path");
    assert!(
        path.message
            .contains("/nonexistent-drover-dir does not exist"),
        "{}",
        path.message
    );
    let unknown = by_key("listener[0].access_log.size");
    assert!(
        unknown.message.contains("valid keys here: path, format"),
        "{}",
        unknown.message
    );

    let missing = errors_of(&listener("access_log = { format = \"json\" }"));
    assert_eq!(missing.len(), 1);
    assert_eq!(missing[0].key, "listener[0].access_log.path");
    assert!(
        missing[0].message.contains("missing"),
        "{}",
        missing[0].message
    );

    let dir = std::env::temp_dir().display().to_string();
    let is_dir = errors_of(&listener(&format!("access_log = {{ path = {dir:?} }}")));
    assert!(
        is_dir[0].message.contains("is a directory"),
        "{}",
        is_dir[0].message
    );

    let not_table = errors_of(&listener("access_log = \"/tmp/a.log\""));
    assert!(
        not_table[0].message.contains("expected a table"),
        "{}",
        not_table[0].message
    );
}
