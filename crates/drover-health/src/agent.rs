//! The HAProxy agent-check client: one task per member with an agent, reading one reply line
//! from the agent's TCP port every interval and applying it to the member.
//!
//! Where it sits: started by the [`HealthService`](crate::HealthService) next to the members'
//! checks, on the same thread and runtime, with the same schedule (the first read at a random
//! point of the first interval, then every `interval` ± 10%, wake-ups rounded to the 25 ms grid).
//! Each read connects to the member's host on the agent's port, writes `send` if set, reads one
//! line (up to `\n` or EOF, at most 1 KiB), all within `timeout`; the line (lossily decoded if it
//! is not UTF-8) goes to `drover_core::report::agent_check::parse`, and the report to
//! `Farm::apply_report`, which decides what it does to the member (see docs/reports.md).
//!
//! Failures, as in HAProxy: an agent that cannot be reached, times out or closes without a line
//! changes nothing on the member (the last good reply's effects stay; active checks decide
//! up/down). It is counted in the member's `Reported::failures` and logged at warn once when the
//! agent starts failing and at info once when it answers again. A malformed reply is counted in
//! `Reported::rejects`, logged with its reason, and changes nothing. Each flip the reply causes is
//! logged once at info (`member app/m1 draining: agent: drain`).
//!
//! Concurrency: a member's task is the only writer of its agent state; it owns its socket and
//! buffer, opened and closed per read (HAProxy's agent protocol is one line per connection).
//!
//! Config keys read: `[farm.<name>.agent]` and the members' `agent` overrides, through
//! `drover_config::Farm::member_agents`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use drover_config::AgentCheck;
use drover_core::report::agent_check::{self, MAX_LINE};
use drover_core::{Farm, Rng, clock};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{Instant, sleep_until};

use crate::schedule::{SLOT, jittered, log, on_grid};

/// Each wait is `interval` ± this share, as the checks' default jitter.
const JITTER: f64 = 0.1;

/// Why a read of an agent got no reply line.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("no reply line within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Io(std::io::Error),
    #[error("closed without a reply")]
    Closed,
}

/// One read of the agent at `addr`: connect, write `send` if any, read one line (up to `\n` or
/// EOF, at most `MAX_LINE + 1` bytes so the parser can tell a line that is too long), all within
/// `timeout`. Returns the bytes read (including the `\n`, if any).
pub async fn read_reply(
    addr: SocketAddr,
    send: Option<&[u8]>,
    timeout: Duration,
) -> Result<Vec<u8>, AgentError> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .map_err(|source| AgentError::Connect { addr, source })?;
        if let Some(send) = send {
            stream.write_all(send).await.map_err(AgentError::Io)?;
        }
        let mut buf = vec![0u8; MAX_LINE + 1];
        let mut len = 0;
        while len < buf.len() {
            let n = stream.read(&mut buf[len..]).await.map_err(AgentError::Io)?;
            if n == 0 {
                break;
            }
            let had = len;
            len += n;
            if buf[had..len].contains(&b'\n') {
                break;
            }
        }
        if len == 0 {
            return Err(AgentError::Closed);
        }
        buf.truncate(len);
        Ok(buf)
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .unwrap_or(Err(AgentError::Timeout(timeout)))
}

/// Reads member `index`'s agent every interval, forever (until the service stops).
pub(crate) async fn agent_member(
    farm: Arc<Farm>,
    index: usize,
    agent: AgentCheck,
    mut rng: Rng,
    grid: Instant,
) {
    let member = &farm.members[index];
    let name = member.name();
    let addr = SocketAddr::new(member.addr().ip(), agent.port);
    let step = SLOT.min(agent.interval / 8);
    let unit = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let mut due = Instant::now() + agent.interval.mul_f64(unit);
    sleep_until(on_grid(due, grid, step)).await;
    loop {
        match read_reply(
            addr,
            agent.send.as_deref().map(str::as_bytes),
            agent.timeout,
        )
        .await
        {
            Ok(bytes) => {
                if member.reported.answered() {
                    tracing::info!(farm = %farm.name, member = name, "agent of member {name} answers again");
                }
                let line = String::from_utf8_lossy(&bytes);
                match agent_check::parse(&line, name, clock::now()) {
                    Ok(report) => {
                        for t in farm.apply_report(index, &report, clock::now()) {
                            log(&farm, index, &t);
                        }
                    }
                    Err(reject) => {
                        member.reported.count_reject();
                        tracing::warn!(farm = %farm.name, member = name, "agent of member {name}: rejected: {reject}; nothing changed");
                    }
                }
            }
            Err(e) => {
                if member.reported.failed() {
                    tracing::warn!(farm = %farm.name, member = name, "agent of member {name} failed: {e}; the member keeps its state");
                }
            }
        }
        due += jittered(agent.interval, JITTER, &mut rng);
        let now = Instant::now();
        if due < now {
            due = now;
        }
        sleep_until(on_grid(due, grid, step)).await;
    }
}
