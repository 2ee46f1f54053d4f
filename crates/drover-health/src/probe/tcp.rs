//! The TCP probe: the member accepted the connection, so it passes; close it at once.
//!
//! The close is an ordinary FIN (the socket is dropped with nothing unread), not a reset: a member
//! that logs resets as errors stays quiet, and the TIME_WAIT this leaves on our side is one per
//! member per interval, spread over as many four-tuples as there are members.

use tokio::net::TcpStream;

/// Ends a successful TCP probe.
pub(super) fn finish(stream: TcpStream) {
    drop(stream);
}
