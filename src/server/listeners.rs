//! Owns: the listening sockets — binding the TCP (`-l`, `-p`), UNIX (`-s`, `-a`), admin
//! (`--admin-listen`) and metrics (`--metrics-listen`) listeners, their names as `stats conns` and the logs show them, and
//! accepting one connection from a listener as a `Stream`; sockets inherited from systemd (see
//! `activation`) in place of the configured ones of their role.
//! Does not: run the accept loop, limit connections or hand them to workers (see `acceptor`).
//!
//! A new kind of listener (a metrics endpoint) is a new `Socket` variant or `Role`, and a new
//! binding step in `bind_all`. With `-Z`, the TCP client listeners are TLS listeners (`tls`),
//! except the `-l` addresses prefixed `notls:`, and so is the admin endpoint (same certificate
//! and client verification), unless `--admin-listen notls:HOST:PORT`; UNIX sockets and the
//! metrics endpoint stay plaintext, as UNIX sockets do in memcached.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::PermissionsExt;

use mio::net::{TcpListener, UnixListener};

use super::fail;
use super::stream::Stream;
use crate::config::{Config, ConfigError};

/// What connections accepted on a listener may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Cache clients.
    Clients,
    /// The cluster admin endpoint: clients that may also push cluster configs.
    Admin,
    /// The metrics endpoint: HTTP, served by `metrics`, never by the workers.
    Metrics,
}

/// The listening socket itself.
#[derive(Debug)]
pub enum Socket {
    Tcp(TcpListener),
    Unix(UnixListener),
}

/// One bound listener.
#[derive(Debug)]
pub struct Listener {
    pub socket: Socket,
    /// `tcp:ADDR`, `tcp6:ADDR` or `unix:PATH`.
    pub name: String,
    pub role: Role,
    /// Connections accepted here speak TLS first (`-Z`).
    pub tls: bool,
}

/// A connection just accepted.
#[derive(Debug)]
pub struct Accepted {
    pub stream: Stream,
    /// The peer as `stats conns` shows it (`tcp:IP:PORT`; a UNIX peer shows the listener's name).
    pub addr: String,
}

impl Listener {
    /// Accepts one connection (non-blocking: `WouldBlock` when none is waiting). TCP connections
    /// get `TCP_NODELAY`; on a TLS listener, a TLS session with the configuration `tls` holds
    /// now (its handshake runs on a handshake thread, see `handshake`).
    pub fn accept(&self, tls: Option<&crate::tls::TlsContext>) -> io::Result<Accepted> {
        match &self.socket {
            Socket::Tcp(t) => {
                let (s, a) = t.accept()?;
                let _ = s.set_nodelay(true);
                let stream = match tls.filter(|_| self.tls) {
                    Some(ctx) => Stream::tls(s, ctx.config())?,
                    None => Stream::Tcp(s),
                };
                Ok(Accepted {
                    stream,
                    addr: tcp_name(a),
                })
            }
            Socket::Unix(u) => {
                let (s, _) = u.accept()?;
                Ok(Accepted {
                    stream: Stream::Unix(s),
                    addr: self.name.clone(),
                })
            }
        }
    }

    /// The bound TCP address of a client listener (for the port file).
    pub fn tcp_client_addr(&self) -> Option<SocketAddr> {
        match (&self.socket, self.role) {
            (Socket::Tcp(t), Role::Clients) => t.local_addr().ok(),
            _ => None,
        }
    }

    /// The source to register with the acceptor's poll.
    pub fn source(&mut self) -> &mut dyn mio::event::Source {
        match &mut self.socket {
            Socket::Tcp(t) => t,
            Socket::Unix(u) => u,
        }
    }
}

impl AsRawFd for Listener {
    fn as_raw_fd(&self) -> RawFd {
        match &self.socket {
            Socket::Tcp(t) => t.as_raw_fd(),
            Socket::Unix(u) => u.as_raw_fd(),
        }
    }
}

/// `tcp:ADDR` or `tcp6:ADDR`, as `stats conns` and the logs name a TCP socket.
pub(super) fn tcp_name(a: SocketAddr) -> String {
    match a {
        SocketAddr::V4(a) => format!("tcp:{a}"),
        SocketAddr::V6(a) => format!("tcp6:{a}"),
    }
}

/// Binds every listener the configuration asks for: the client listeners (a UNIX socket, or the
/// TCP addresses), then the admin endpoint. Listeners inherited from systemd (`activation`) take
/// the place of the configured ones of their role: inherited client listeners replace `-l`/`-p`
/// and `-s`, an inherited admin endpoint replaces `--cluster-admin-listen`.
pub fn bind_all(cfg: &Config, inherited: Vec<Listener>) -> Result<Vec<Listener>, ConfigError> {
    let has = |role| inherited.iter().any(|l| l.role == role);
    let (clients, admin, metrics) = (has(Role::Clients), has(Role::Admin), has(Role::Metrics));
    let mut out = match &cfg.unix_socket {
        _ if clients => Vec::new(),
        Some(path) => vec![bind_unix(path, cfg.unix_mask)?],
        None => bind_clients_tcp(cfg)?,
    };
    // With -Z, inherited TCP client and admin sockets are TLS listeners as the configured ones
    // would be.
    let admin_tls = cfg.ext.ssl.enabled && !cfg.cluster.admin_notls;
    out.extend(inherited.into_iter().map(|l| Listener {
        tls: matches!(l.socket, Socket::Tcp(_))
            && match l.role {
                Role::Clients => cfg.ext.ssl.enabled,
                Role::Admin => admin_tls,
                Role::Metrics => false,
            },
        ..l
    }));
    if let Some(addr) = cfg.cluster.admin_listen.filter(|_| !admin) {
        let mut l = bind_endpoint(addr, cfg.backlog, Role::Admin)?;
        l.tls = admin_tls;
        out.push(l);
    }
    if let Some(addr) = cfg.metrics_listen.filter(|_| !metrics) {
        out.push(bind_endpoint(addr, cfg.backlog, Role::Metrics)?);
    }
    Ok(out)
}

fn bind_unix(path: &std::path::Path, mask: u32) -> Result<Listener, ConfigError> {
    let _ = std::fs::remove_file(path);
    let l = std::os::unix::net::UnixListener::bind(path).map_err(|e| {
        fail(
            format!(
                "failed to listen on UNIX socket \"{}\": {e}",
                path.display()
            ),
            71,
        )
    })?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mask & 0o777)).map_err(|e| {
        fail(
            format!("cannot set permissions of {}: {e}", path.display()),
            71,
        )
    })?;
    l.set_nonblocking(true)
        .map_err(|e| fail(e.to_string(), 71))?;
    Ok(Listener {
        socket: Socket::Unix(UnixListener::from_std(l)),
        name: format!("unix:{}", path.display()),
        role: Role::Clients,
        tls: false,
    })
}

/// The `-l` addresses (default 127.0.0.1) on `-p`; none with `-p 0`.
fn bind_clients_tcp(cfg: &Config) -> Result<Vec<Listener>, ConfigError> {
    let mut out = Vec::new();
    if cfg.port == 0 {
        return Ok(out);
    }
    let port = if cfg.port < 0 { 0 } else { cfg.port as u16 };
    let tls = cfg.ext.ssl.enabled;
    let targets: Vec<(String, u16, bool)> = if cfg.listen.is_empty() {
        vec![("127.0.0.1".to_string(), port, tls)]
    } else {
        cfg.listen
            .iter()
            .map(|l| (l.host.clone(), l.port.unwrap_or(port), tls && !l.notls))
            .collect()
    };
    for (host, port, tls) in targets {
        for addr in resolve(&host, port)? {
            let l = bind_tcp(addr, cfg.backlog)
                .map_err(|e| fail(format!("failed to listen on TCP port {port}: {e}"), 71))?;
            let local = l.local_addr().map_err(|e| fail(e.to_string(), 71))?;
            out.push(Listener {
                socket: Socket::Tcp(l),
                name: tcp_name(local),
                role: Role::Clients,
                tls,
            });
        }
    }
    Ok(out)
}

/// The addresses of an `-l` host (`*` is every IPv4 interface), as memcached's getaddrinfo;
/// shared by the TCP and UDP listeners.
pub(super) fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, ConfigError> {
    let host = if host == "*" { "0.0.0.0" } else { host };
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| fail(format!("getaddrinfo(): {host}: {e}"), 71))?
        .collect();
    if addrs.is_empty() {
        return Err(fail(format!("failed to listen on {host}:{port}"), 71));
    }
    Ok(addrs)
}

/// The admin or metrics endpoint.
fn bind_endpoint(addr: SocketAddr, backlog: i32, role: Role) -> Result<Listener, ConfigError> {
    let what = if role == Role::Admin {
        "admin"
    } else {
        "metrics"
    };
    let l = bind_tcp(addr, backlog).map_err(|e| {
        fail(
            format!("failed to listen on {what} endpoint {addr}: {e}"),
            71,
        )
    })?;
    let local = l.local_addr().map_err(|e| fail(e.to_string(), 71))?;
    Ok(Listener {
        socket: Socket::Tcp(l),
        // Named `tcp:` for either family, as it always was.
        name: format!("tcp:{local}"),
        role,
        tls: false,
    })
}

fn bind_tcp(addr: SocketAddr, backlog: i32) -> io::Result<TcpListener> {
    let s = bound_socket(addr, socket2::Type::STREAM)?;
    s.listen(backlog)?;
    Ok(TcpListener::from_std(s.into()))
}

/// A non-blocking socket of `kind` bound to `addr`, as memcached binds its listeners:
/// `SO_REUSEADDR`, and IPv6 sockets for IPv6 only. Shared by the TCP and UDP listeners.
pub(super) fn bound_socket(addr: SocketAddr, kind: socket2::Type) -> io::Result<socket2::Socket> {
    use socket2::{Domain, Socket};
    let s = Socket::new(Domain::for_address(addr), kind, None)?;
    s.set_reuse_address(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.bind(&addr.into())?;
    s.set_nonblocking(true)?;
    Ok(s)
}
