//! The agent-check client of a running health service, against a scripted agent on a real
//! socket: each connection is answered with the agent's current line, and the test changes that
//! line and waits (deadline polling) for the member to follow.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use drover_config::AgentCheck;
use drover_core::{Farm, Flag, MemberSpec, PolicyKind};
use drover_health::{FarmChecks, HealthService};

/// A scripted agent: answers every connection with `reply` (or, when `None`, accepts and never
/// answers), after reading what the client sent, which it keeps in `received`.
#[derive(Clone)]
struct Agent {
    port: u16,
    reply: Arc<Mutex<Option<Vec<u8>>>>,
    received: Arc<Mutex<Vec<u8>>>,
}

impl Agent {
    fn start(reply: Option<&str>) -> Agent {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let agent = Agent {
            port: listener.local_addr().unwrap().port(),
            reply: Arc::new(Mutex::new(reply.map(|r| r.as_bytes().to_vec()))),
            received: Arc::new(Mutex::new(Vec::new())),
        };
        let a = agent.clone();
        std::thread::spawn(move || {
            let mut held: Vec<TcpStream> = Vec::new();
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                // Whatever the client sent right after connecting (its `send`), if anything.
                stream
                    .set_read_timeout(Some(Duration::from_millis(20)))
                    .unwrap();
                let mut buf = [0u8; 256];
                if let Ok(n) = stream.read(&mut buf) {
                    a.received.lock().unwrap().extend_from_slice(&buf[..n]);
                }
                match a.reply.lock().unwrap().clone() {
                    Some(line) => {
                        let _ = stream.write_all(&line);
                    }
                    None => held.push(stream),
                }
            }
        });
        agent
    }

    fn say(&self, line: &str) {
        self.say_bytes(line.as_bytes());
    }

    fn say_bytes(&self, line: &[u8]) {
        *self.reply.lock().unwrap() = Some(line.to_vec());
    }
}

fn farm() -> Arc<Farm> {
    let spec = MemberSpec {
        name: "m0".into(),
        addr: "127.0.0.1:1".parse::<SocketAddr>().unwrap(),
        weight: 2,
        route: None,
        enabled: true,
    };
    Arc::new(Farm::new("app", PolicyKind::LeastConn, vec![spec]))
}

fn service(farm: &Arc<Farm>, port: u16, send: Option<&str>) -> HealthService {
    let agent = AgentCheck {
        port,
        interval: Duration::from_millis(50),
        timeout: Duration::from_millis(40),
        send: send.map(str::to_owned),
    };
    HealthService::start(vec![FarmChecks {
        farm: Arc::clone(farm),
        checks: vec![None],
        agents: vec![Some(agent)],
    }])
    .expect("health service")
}

/// Polls `cond` every 5 ms for up to 5 s.
#[track_caller]
fn eventually(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn replies_set_weight_drain_and_health() {
    let agent = Agent::start(Some("75%\n"));
    let farm = farm();
    let _health = service(&farm, agent.port, None);
    let m = &farm.members[0];
    eventually("weight 75%", || m.state.weight_pct() == 75);
    assert_eq!(m.state.live_weight_x100(), 150, "75% of weight 2");

    agent.say("drain\n");
    eventually("draining", || m.state.get(Flag::Draining));
    assert!(m.state.is_ready() && !m.state.accepts_new());

    agent.say("ready\n");
    eventually("not draining", || !m.state.get(Flag::Draining));

    agent.say("down # disk full\n");
    eventually("down", || !m.state.get(Flag::Up));
    let t = m.health.last_transition().unwrap();
    assert_eq!(t.to_string(), "down: agent: down # disk full");

    agent.say("up 100%\n");
    eventually("up", || m.state.get(Flag::Up));
    assert_eq!(m.state.weight_pct(), 100);
    let flips = m.health.flips(Flag::Up) + m.health.flips(Flag::Draining);
    assert_eq!(flips, 4, "each change flipped once");

    agent.say("raedy 10%\n");
    eventually("rejected", || m.reported.rejects() >= 2);
    assert_eq!(
        m.state.weight_pct(),
        100,
        "a rejected reply changes nothing"
    );
    assert!(m.state.accepts_new());
    assert_eq!(m.reported.last().unwrap().weight_pct, Some(100));
    assert_eq!(m.reported.failures(), 0);

    // Not UTF-8: decoded lossily, so the bad byte is an unknown word and the line is rejected.
    let before = m.reported.rejects();
    agent.say_bytes(b"drain \xff\n");
    eventually("rejected", || m.reported.rejects() > before);
    assert!(m.state.accepts_new(), "nothing changed");
}

#[test]
fn the_send_string_reaches_the_agent() {
    let agent = Agent::start(Some("up\n"));
    let farm = farm();
    let _health = service(&farm, agent.port, Some("ready\n"));
    eventually("the agent got the send string", || {
        agent.received.lock().unwrap().starts_with(b"ready\n")
    });
    eventually("a report applied", || {
        farm.members[0].reported.last().is_some()
    });
}

#[test]
fn a_silent_agent_times_out_and_changes_nothing() {
    let agent = Agent::start(None);
    let farm = farm();
    let _health = service(&farm, agent.port, None);
    let m = &farm.members[0];
    eventually("two failed reads", || m.reported.failures() >= 2);
    assert!(m.reported.is_failing());
    assert!(m.state.accepts_new() && m.state.get(Flag::Up));
    assert_eq!(
        (m.reported.rejects(), m.health.last_transition()),
        (0, None)
    );

    // Once it answers again, its reply applies.
    agent.say("drain\n");
    eventually("draining", || m.state.get(Flag::Draining));
    assert!(!m.reported.is_failing());
}

#[test]
fn an_unreachable_agent_keeps_what_the_last_reply_set() {
    let agent = Agent::start(Some("drain 50%\n"));
    let farm = farm();
    // A port nothing listens on: bind, note it, close.
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let health = service(&farm, agent.port, None);
    let m = &farm.members[0];
    eventually("draining", || m.state.get(Flag::Draining));
    health.stop();
    let _health = service(&farm, closed, None);
    eventually("failed reads", || m.reported.failures() >= 2);
    assert!(m.state.get(Flag::Draining) && m.state.weight_pct() == 50);
}
