//! Owns: systemd's service notifications, written against the protocol (sd_notify(3)): one
//! datagram of newline-separated `KEY=VALUE` lines to `$NOTIFY_SOCKET` (a path, or an abstract
//! name when it starts with `@`) — `READY=1` with a one-line `STATUS=`, `RELOADING=1` (with
//! `MONOTONIC_USEC=`, as `Type=notify-reload` wants) … `READY=1` around a reload, `STOPPING=1`,
//! `WATCHDOG=1` (sent by `watchdog`); and reading the watchdog's period from `$WATCHDOG_USEC`.
//! Does not: decide when the daemon is ready, reloads or stops (see `server::serve`, `signals`),
//! or whether the workers are alive (see `watchdog`).
//!
//! Without `$NOTIFY_SOCKET` (not started by systemd, or `Type=simple`) every call is a no-op.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::OnceLock;
use std::time::Duration;

use log::{debug, warn};
use parking_lot::Mutex;

/// The process's notifier, set once at start-up by `init`.
static NOTIFIER: OnceLock<Option<Notifier>> = OnceLock::new();

/// A socket that sends notifications to one service manager.
#[derive(Debug)]
pub struct Notifier {
    sock: UnixDatagram,
    addr: SocketAddr,
    /// The `STATUS=` line sent with `READY=1`, repeated after each reload.
    summary: Mutex<String>,
}

impl Notifier {
    /// A notifier for the socket `target` names: an absolute path, or `@name` for the abstract
    /// namespace.
    pub fn new(target: &str) -> io::Result<Notifier> {
        let addr = match target.strip_prefix('@') {
            Some(name) => SocketAddr::from_abstract_name(name.as_bytes())?,
            None if target.starts_with('/') => SocketAddr::from_pathname(target)?,
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("NOTIFY_SOCKET={target}: neither a path nor an abstract name"),
                ))
            }
        };
        let sock = UnixDatagram::unbound()?;
        // A service manager that stops reading must not wedge the thread that notifies.
        sock.set_write_timeout(Some(Duration::from_secs(1)))?;
        Ok(Notifier {
            sock,
            addr,
            summary: Mutex::new(String::new()),
        })
    }

    /// Sends one message (lines of `KEY=VALUE`).
    pub fn send(&self, msg: &str) -> io::Result<()> {
        self.sock
            .send_to_addr(msg.as_bytes(), &self.addr)
            .map(|_| ())
    }

    fn send_logged(&self, msg: &str) {
        match self.send(msg) {
            Ok(()) => debug!("sd_notify: {}", msg.replace('\n', " ")),
            Err(e) => warn!("sd_notify failed: {e}"),
        }
    }
}

/// Reads `$NOTIFY_SOCKET` once (at start-up). A value that cannot be used is logged and ignored.
pub fn init() {
    NOTIFIER.get_or_init(|| {
        let target = std::env::var("NOTIFY_SOCKET").ok()?;
        Notifier::new(&target)
            .map_err(|e| warn!("not notifying systemd: {e}"))
            .ok()
    });
}

fn notifier() -> Option<&'static Notifier> {
    NOTIFIER.get().and_then(Option::as_ref)
}

/// One line, as `STATUS=` must be.
fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// Every listener is bound, the store is ready and the threads run: `READY=1` and `summary` as
/// the status line.
pub fn ready(summary: &str) {
    if let Some(n) = notifier() {
        let summary = one_line(summary);
        n.send_logged(&format!("READY=1\nSTATUS={summary}"));
        *n.summary.lock() = summary;
    }
}

/// A reload starts (SIGHUP).
pub fn reloading() {
    if let Some(n) = notifier() {
        n.send_logged(&format!(
            "RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=reloading",
            monotonic_usec()
        ));
    }
}

/// The reload is over: `READY=1`, the summary and what the reload did.
pub fn reloaded(outcome: &str) {
    if let Some(n) = notifier() {
        let summary = n.summary.lock().clone();
        n.send_logged(&format!(
            "READY=1\nSTATUS={summary}; last reload: {}",
            one_line(outcome)
        ));
    }
}

/// Shutdown has begun.
pub fn stopping() {
    if let Some(n) = notifier() {
        n.send_logged("STOPPING=1\nSTATUS=stopping");
    }
}

/// The watchdog's keep-alive.
pub fn watchdog_ping() {
    if let Some(n) = notifier() {
        n.send_logged("WATCHDOG=1");
    }
}

/// `CLOCK_MONOTONIC` in microseconds, as systemd compares it.
fn monotonic_usec() -> u64 {
    use nix::time::{clock_gettime, ClockId};
    clock_gettime(ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1_000)
        .unwrap_or(0)
}

/// How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC`, when it is set for this process
/// (`$WATCHDOG_PID`, when present, names it) and there is a socket to send to.
pub fn watchdog_period() -> Option<Duration> {
    notifier()?;
    period_from(
        std::env::var("WATCHDOG_USEC").ok().as_deref(),
        std::env::var("WATCHDOG_PID").ok().as_deref(),
        std::process::id(),
    )
}

fn period_from(usec: Option<&str>, pid: Option<&str>, me: u32) -> Option<Duration> {
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok()? != me {
            return None;
        }
    }
    let usec: u64 = usec?.trim().parse().ok().filter(|&u| u > 0)?;
    Some(Duration::from_micros(usec / 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound(dir: &std::path::Path) -> (UnixDatagram, String) {
        let path = dir.join("notify.sock");
        let _ = std::fs::remove_file(&path);
        let s = UnixDatagram::bind(&path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        (s, path.to_str().unwrap().to_string())
    }

    fn recv(s: &UnixDatagram) -> String {
        let mut buf = [0u8; 4096];
        let n = s.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn sends_to_a_path() {
        let dir = std::env::temp_dir().join(format!("ferrocache-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (s, path) = bound(&dir);
        let n = Notifier::new(&path).unwrap();
        n.send("READY=1\nSTATUS=up").unwrap();
        assert_eq!(recv(&s), "READY=1\nSTATUS=up");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn sends_to_an_abstract_name() {
        let name = format!("ferrocache-notify-test-{}", std::process::id());
        let s = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
            .unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let n = Notifier::new(&format!("@{name}")).unwrap();
        n.send("STOPPING=1").unwrap();
        assert_eq!(recv(&s), "STOPPING=1");
    }

    #[test]
    fn refuses_a_relative_target() {
        assert!(Notifier::new("notify.sock").is_err());
    }

    #[test]
    fn watchdog_period_is_half_for_this_process() {
        let half = Some(Duration::from_secs(15));
        assert_eq!(period_from(Some("30000000"), None, 7), half);
        assert_eq!(period_from(Some("30000000"), Some("7"), 7), half);
        assert_eq!(period_from(Some("30000000"), Some("8"), 7), None);
        assert_eq!(period_from(None, None, 7), None);
        assert_eq!(period_from(Some("0"), None, 7), None);
        assert_eq!(period_from(Some("x"), None, 7), None);
    }

    #[test]
    fn status_is_one_line() {
        assert_eq!(one_line("a\nb\r\nc"), "a b  c");
    }
}
