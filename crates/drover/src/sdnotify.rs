//! systemd's readiness protocol (`sd_notify`), so `Type=notify` units follow a binary upgrade.
//!
//! When systemd starts drover with `NotifyAccess=all`, it passes `$NOTIFY_SOCKET`; drover says
//! `READY=1` once it serves, and a process that took over says `MAINPID=<its pid>` first, so
//! systemd keeps the unit running when the old process exits (docs/upgrade.md, "systemd").
//! Without `$NOTIFY_SOCKET` this does nothing.

use std::os::unix::net::UnixDatagram;

/// Sends `state` (newline-separated `KEY=value` lines) to `$NOTIFY_SOCKET`, if set. Failures are
/// logged, never fatal: drover serves either way.
pub(crate) fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let sent = UnixDatagram::unbound().and_then(|socket| {
        let bytes = path.as_encoded_bytes();
        // "@name" is a Linux abstract socket.
        if let Some(name) = bytes.strip_prefix(b"@") {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            socket.send_to_addr(state.as_bytes(), &addr)
        } else {
            socket.send_to(state.as_bytes(), &path)
        }
    });
    match sent {
        Ok(_) => tracing::debug!(state, "told systemd"),
        Err(e) => tracing::warn!(error = %e, socket = ?path, "cannot notify systemd"),
    }
}
