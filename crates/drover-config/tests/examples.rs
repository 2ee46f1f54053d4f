//! Every example config in the repository's `examples/` validates, and the two the docs and the
//! benchmark rely on say what they are said to say.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use drover_config::{Action, Config, load};
use drover_core::PolicyKind;

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn example(name: &str) -> Config {
    let path = examples_dir().join(name);
    load(&path).unwrap_or_else(|e| panic!("{}:\n{e}", path.display()))
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn every_example_validates() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(examples_dir())
        .expect("examples/ exists")
        .map(|entry| entry.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 2, "found {files:?}");
    let failures: Vec<String> = files
        .iter()
        .filter_map(|f| load(f).err().map(|e| e.to_string()))
        .collect();
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn quickstart_is_three_members_round_robin_with_admin() {
    let config = example("quickstart.toml");
    assert_eq!(config.listeners.len(), 1);
    let listener = &config.listeners[0];
    assert_eq!(listener.listen, vec![addr("127.0.0.1:8080")]);
    assert_eq!(listener.routes.len(), 1);
    assert_eq!(listener.routes[0].action, Action::Farm("app".into()));
    let farm = config.farm("app").expect("farm app");
    assert_eq!(farm.policy, PolicyKind::RoundRobin);
    let members: Vec<SocketAddr> = farm.members.iter().map(|m| m.addr).collect();
    assert_eq!(
        members,
        ["127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"].map(addr)
    );
    assert_eq!(
        config.admin.expect("[admin]").listen,
        addr("127.0.0.1:9090")
    );
}

#[test]
fn peers_is_the_one_thread_benchmark_config() {
    let config = example("peers.toml");
    assert_eq!(config.server.threads, 1);
    assert_eq!(config.listeners.len(), 1);
    assert_eq!(config.listeners[0].listen, vec![addr("127.0.0.1:8085")]);
    let farm = config.farm("app").expect("farm app");
    assert_eq!(farm.policy, PolicyKind::RoundRobin);
    assert_eq!(farm.members.len(), 3);
    assert!(config.admin.is_none());
}
