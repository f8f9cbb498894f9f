//! Owns: socket activation — taking the listening sockets systemd passes (`$LISTEN_FDS` from fd
//! 3, for this process only: `$LISTEN_PID`), giving each its role by its name in
//! `$LISTEN_FDNAMES` (`FileDescriptorName=`), making each non-blocking and close-on-exec, and
//! unsetting the variables.
//! Does not: bind sockets or decide which configured listeners the inherited ones replace (see
//! `listeners::bind_all`, `udp::bind_all`).
//!
//! Names: `memcache` (also `client`, `clients`) the client sockets: a TCP or UNIX stream
//! listener, or UDP when a datagram socket (so one socket unit can hold `ListenStream=` and
//! `ListenDatagram=`); `memcache-udp` (also `udp`) a UDP socket; `admin` the cluster admin
//! endpoint (TCP); `metrics` the metrics endpoint (TCP). systemd's default names (`unknown`, or the socket unit's `NAME.socket`) are
//! `memcache`'s. Any other name stops start-up.
//!
//! The descriptors are turned into sockets by the `listenfd` crate (the conversion from a
//! descriptor number needs `unsafe`, which this crate denies); it checks each is a socket of the
//! expected kind and marks it close-on-exec.

use std::net::UdpSocket;

use listenfd::ListenFd;
use log::info;
use mio::net::{TcpListener, UnixListener};

use super::fail;
use super::listeners::{tcp_name, Listener, Role, Socket};
use crate::config::ConfigError;

/// What systemd passed: stream listeners with their roles, and UDP sockets.
#[derive(Debug, Default)]
pub struct Inherited {
    pub listeners: Vec<Listener>,
    pub udp: Vec<UdpSocket>,
}

/// The role a `FileDescriptorName=` gives a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Clients,
    Udp,
    Admin,
    Metrics,
    /// systemd's default name: decided by the socket's type.
    ByType,
}

fn kind(name: &str) -> Option<Kind> {
    match name {
        "memcache-udp" | "udp" => Some(Kind::Udp),
        "admin" => Some(Kind::Admin),
        "metrics" => Some(Kind::Metrics),
        "memcache" | "client" | "clients" | "" | "unknown" => Some(Kind::ByType),
        n if n.ends_with(".socket") => Some(Kind::ByType),
        _ => None,
    }
}

/// `$LISTEN_FDNAMES` split per descriptor (missing names are systemd's default).
fn names(var: Option<&str>, count: usize) -> Vec<String> {
    let mut out: Vec<String> = var
        .map(|v| v.split(':').map(str::to_string).collect())
        .unwrap_or_default();
    out.resize(count, String::new());
    out
}

/// True when `$LISTEN_PID` names this process (systemd always sets it).
fn for_me(pid: Option<&str>, me: u32) -> bool {
    pid.and_then(|p| p.trim().parse::<u32>().ok()) == Some(me)
}

/// Takes the sockets systemd passed to this process (none when not socket-activated).
pub fn take() -> Result<Inherited, ConfigError> {
    let pid = std::env::var("LISTEN_PID").ok();
    if std::env::var_os("LISTEN_FDS").is_none() || !for_me(pid.as_deref(), std::process::id()) {
        return Ok(Inherited::default());
    }
    let fdnames = std::env::var("LISTEN_FDNAMES").ok();
    // Reads and unsets LISTEN_FDS and LISTEN_PID; then the names go too, so nothing this
    // process starts believes the sockets are its own.
    let mut fds = ListenFd::from_env();
    std::env::remove_var("LISTEN_FDNAMES");
    let names = names(fdnames.as_deref(), fds.len());
    let mut out = Inherited::default();
    for (i, name) in names.iter().enumerate() {
        let bad = |e: std::io::Error| {
            fail(
                format!("inherited socket {} (fd {}, {name:?}): {e}", i, i + 3),
                71,
            )
        };
        let kind = kind(name).ok_or_else(|| {
            fail(
                format!(
                    "inherited socket fd {} has an unknown FileDescriptorName {name:?} \
                     (memcache, memcache-udp, admin or metrics)",
                    i + 3
                ),
                71,
            )
        })?;
        let kind = match kind {
            Kind::ByType if fds.take_udp_socket(i).is_ok_and(|s| keep(&mut out, s)) => continue,
            Kind::ByType => Kind::Clients,
            k => k,
        };
        match kind {
            Kind::Udp => {
                let s = fds.take_udp_socket(i).map_err(bad)?;
                if !keep(&mut out, s) {
                    return Err(bad(std::io::Error::other("not a UDP socket")));
                }
            }
            Kind::Clients | Kind::Admin | Kind::Metrics | Kind::ByType => {
                let role = match kind {
                    Kind::Admin => Role::Admin,
                    Kind::Metrics => Role::Metrics,
                    _ => Role::Clients,
                };
                let l = stream_listener(&mut fds, i, role).map_err(bad)?;
                info!("inherited {} from systemd as {name:?}", l.name);
                out.listeners.push(l);
            }
        }
    }
    Ok(out)
}

/// Keeps a UDP socket (non-blocking). False when it cannot be made non-blocking.
fn keep(out: &mut Inherited, s: Option<UdpSocket>) -> bool {
    match s {
        Some(s) if s.set_nonblocking(true).is_ok() => {
            out.udp.push(s);
            true
        }
        _ => false,
    }
}

/// Descriptor `i` as a TCP listener, or else as a UNIX one (admin: TCP only); non-blocking.
fn stream_listener(fds: &mut ListenFd, i: usize, role: Role) -> std::io::Result<Listener> {
    if let Ok(Some(t)) = fds.take_tcp_listener(i) {
        t.set_nonblocking(true)?;
        let local = t.local_addr()?;
        let name = match role {
            // The admin and metrics endpoints are named `tcp:` for either family, as when bound.
            Role::Admin | Role::Metrics => format!("tcp:{local}"),
            Role::Clients => tcp_name(local),
        };
        return Ok(Listener {
            socket: Socket::Tcp(TcpListener::from_std(t)),
            name,
            role,
            // Set by `bind_all` with -Z.
            tls: false,
        });
    }
    if role == Role::Clients {
        if let Ok(Some(u)) = fds.take_unix_listener(i) {
            u.set_nonblocking(true)?;
            let path = u
                .local_addr()?
                .as_pathname()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            return Ok(Listener {
                socket: Socket::Unix(UnixListener::from_std(u)),
                name: format!("unix:{path}"),
                role,
                tls: false,
            });
        }
    }
    Err(std::io::Error::other(match role {
        Role::Admin | Role::Metrics => "not a listening TCP socket",
        Role::Clients => "not a listening TCP or UNIX stream socket",
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_roles() {
        assert_eq!(kind("memcache"), Some(Kind::ByType));
        assert_eq!(kind("memcache-udp"), Some(Kind::Udp));
        assert_eq!(kind("admin"), Some(Kind::Admin));
        assert_eq!(kind("unknown"), Some(Kind::ByType));
        assert_eq!(kind("ferrocache.socket"), Some(Kind::ByType));
        assert_eq!(kind("admni"), None);
        assert_eq!(kind("metrics"), Some(Kind::Metrics));
    }

    #[test]
    fn names_are_split_per_descriptor() {
        assert_eq!(names(Some("memcache:admin"), 2), ["memcache", "admin"]);
        assert_eq!(names(Some("memcache"), 2), ["memcache", ""]);
        assert_eq!(names(None, 1), [""]);
    }

    #[test]
    fn only_this_process_takes_the_sockets() {
        assert!(for_me(Some("42"), 42));
        assert!(!for_me(Some("41"), 42));
        assert!(!for_me(None, 42));
        assert!(!for_me(Some("x"), 42));
    }
}
