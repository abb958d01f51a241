//! systemd's notify protocol (`sd_notify(3)`), with std alone: when `NOTIFY_SOCKET` names a
//! Unix datagram socket, the server sends it its state as `KEY=VALUE` lines.
//!
//! What walkv sends, and when (a unit with `Type=notify` waits for `READY=1`):
//!
//! | when | message |
//! |---|---|
//! | listening, before the replay | `STATUS=replaying the log` |
//! | each progress line of a long replay (about once a second) | `STATUS=replaying: ...` and `EXTEND_TIMEOUT_USEC=5000000`, so a replay that keeps moving is not killed by `TimeoutStartSec` |
//! | the replay is done and every request is served | `READY=1` and `STATUS=serving N keys` |
//! | a stop signal came | `STOPPING=1` and `STATUS=stopping` |
//!
//! `NOTIFY_SOCKET` is a path (`/run/systemd/notify`) or, starting with `@`, an abstract socket
//! name (Linux). Anything else is ignored with one message. Sending is best effort and never
//! blocks the server: a datagram that cannot be sent is dropped (systemd then times the start
//! out, which is what it should do if it cannot hear us).

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::OnceLock;

/// The socket to notify, read from `NOTIFY_SOCKET` once.
fn target() -> Option<&'static (UnixDatagram, SocketAddr)> {
    static TARGET: OnceLock<Option<(UnixDatagram, SocketAddr)>> = OnceLock::new();
    TARGET
        .get_or_init(|| {
            let name = std::env::var_os("NOTIFY_SOCKET")?;
            let Some(addr) = name.to_str().and_then(address) else {
                crate::log!("NOTIFY_SOCKET is neither a path nor an @name; not notifying systemd");
                return None;
            };
            let socket = UnixDatagram::unbound().ok()?;
            socket.set_nonblocking(true).ok()?;
            Some((socket, addr))
        })
        .as_ref()
}

/// The address `NOTIFY_SOCKET` names: an absolute path, or `@name` for an abstract socket.
fn address(name: &str) -> Option<SocketAddr> {
    if let Some(abstract_name) = name.strip_prefix('@') {
        use std::os::linux::net::SocketAddrExt;
        return SocketAddr::from_abstract_name(abstract_name.as_bytes()).ok();
    }
    name.starts_with('/').then(|| SocketAddr::from_pathname(name).ok()).flatten()
}

/// Sends `state` (newline-separated `KEY=VALUE` lines) if systemd asked for notifications.
pub fn send(state: &str) {
    if let Some((socket, addr)) = target() {
        let _ = socket.send_to_addr(state.as_bytes(), addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn addresses_are_paths_or_abstract_names() {
        assert!(address("/run/systemd/notify").unwrap().as_pathname().is_some());
        use std::os::linux::net::SocketAddrExt;
        assert_eq!(address("@walkv/x").unwrap().as_abstract_name(), Some(&b"walkv/x"[..]));
        assert!(address("relative/path").is_none());
        assert!(address("").is_none());
    }

    /// An abstract name works end to end (the integration test uses a path).
    #[test]
    fn a_datagram_reaches_an_abstract_socket() {
        let name = format!("@walkv-notify-test-{}", std::process::id());
        use std::os::linux::net::SocketAddrExt;
        let bound = SocketAddr::from_abstract_name(&name.as_bytes()[1..]).unwrap();
        let receiver = UnixDatagram::bind_addr(&bound).unwrap();
        receiver.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let sender = UnixDatagram::unbound().unwrap();
        sender.send_to_addr(b"READY=1", &address(&name).unwrap()).unwrap();
        let mut buf = [0u8; 64];
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }
}
