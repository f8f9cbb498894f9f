//! Owns: memcached's UDP service (`-U`) — binding a UDP socket on each `-l` address, giving
//! the sockets to the workers, and serving datagrams on a worker: receive, run the requests in
//! one datagram through the same parsers and executors as a connection, send the replies.
//! Does not: frame datagrams (see `protocol::udp`) or decide request semantics (see `exec`).
//!
//! Every worker reads every UDP socket, as memcached's threads do: each worker registers its
//! own clone (a `dup`) of the socket with its poll, and the kernel hands each datagram to one
//! of them, so there is no hand-off and no lock. With several `-l` addresses each socket goes to
//! one worker (memcached's `num_threads_per_udp` 1). Nothing is kept per peer: each datagram is
//! answered on its own, a request cut off at the end of its datagram is dropped, and a reply
//! the socket cannot take now is dropped (UDP may lose datagrams; a worker never waits).
//! A request is answered with exactly what memcached 1.6.18 sends, so a spoofed source gets no
//! more than memcached would send it.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use log::{debug, info};

use super::fail;
use crate::config::{Config, ConfigError};
use crate::exec::{self, Action, ConnRef, Ctx, Session};
use crate::protocol::ascii::{self, Command};
use crate::protocol::udp::{self, Replies};
use crate::protocol::{self, binary, Limits, Parsed};
use crate::state::{ConnInfo, Shared};
use crate::stats;

/// The largest datagram read (memcached's `UDP_READ_BUFFER_SIZE`).
const READ_SIZE: usize = 64 * 1024;
/// Datagrams one socket serves per round before the worker turns to its other sockets.
const PER_ROUND: usize = 64;

/// One worker's handle on a UDP socket.
#[derive(Debug)]
pub struct Port {
    socket: mio::net::UdpSocket,
    /// Its file descriptor: the id `stats conns` shows.
    pub id: i64,
    last_cmd: Arc<AtomicU32>,
}

/// What a worker keeps for serving datagrams, allocated once.
#[derive(Debug, Default)]
pub struct Scratch {
    buf: Vec<u8>,
    replies: Replies,
}

/// Binds a UDP socket on every `-l` address (default 127.0.0.1) on `-U`; none with `-U 0`.
/// UDP sockets inherited from systemd (`activation`), when there are any, replace them.
pub fn bind_all(
    cfg: &Config,
    inherited: Vec<std::net::UdpSocket>,
) -> Result<Vec<std::net::UdpSocket>, ConfigError> {
    if !inherited.is_empty() {
        for a in inherited.iter().filter_map(|s| s.local_addr().ok()) {
            info!("listening on {}", name(a));
        }
        return Ok(inherited);
    }
    let mut out = Vec::new();
    if cfg.udp_port == 0 {
        return Ok(out);
    }
    let port = cfg.udp_port.max(0) as u16;
    let hosts: Vec<String> = if cfg.listen.is_empty() {
        vec!["127.0.0.1".to_string()]
    } else {
        cfg.listen.iter().map(|l| l.host.clone()).collect()
    };
    for host in hosts {
        for addr in super::listeners::resolve(&host, port)? {
            let s = bind(addr)
                .map_err(|e| fail(format!("failed to listen on UDP port {port}: {e}"), 71))?;
            if let Ok(a) = s.local_addr() {
                info!("listening on {}", name(a));
            }
            out.push(s);
        }
    }
    Ok(out)
}

fn bind(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    Ok(super::listeners::bound_socket(addr, socket2::Type::DGRAM)?.into())
}

/// `udp:ADDR` or `udp6:ADDR`, as `stats conns` names a UDP socket.
fn name(a: SocketAddr) -> String {
    match a {
        SocketAddr::V4(a) => format!("udp:{a}"),
        SocketAddr::V6(a) => format!("udp6:{a}"),
    }
}

/// Shares the sockets among `threads` workers: a clone of each for every worker, or each socket
/// to one worker when `per_socket` is 1. Lists every handle in `stats conns` and counts it as a
/// connection, as memcached does.
pub fn spread(
    sockets: Vec<std::net::UdpSocket>,
    threads: usize,
    per_socket: usize,
    sh: &Shared,
) -> io::Result<Vec<Vec<Port>>> {
    let mut out: Vec<Vec<Port>> = (0..threads).map(|_| Vec::new()).collect();
    for (i, s) in sockets.into_iter().enumerate() {
        let local = name(s.local_addr()?);
        let mut handles = Vec::new();
        for _ in 1..per_socket.max(1) {
            handles.push(s.try_clone()?);
        }
        handles.insert(0, s);
        for (k, h) in handles.into_iter().enumerate() {
            let worker = if per_socket <= 1 { i % threads } else { k };
            let last_cmd = Arc::new(AtomicU32::new(sh.clock().now()));
            let id = h.as_raw_fd() as i64;
            sh.conns().register(
                id,
                ConnInfo {
                    addr: local.clone(),
                    listen_addr: None,
                    last_cmd: last_cmd.clone(),
                    phase: Arc::default(),
                    udp: true,
                },
            );
            sh.conns().udp_opened();
            out[worker].push(Port {
                socket: mio::net::UdpSocket::from_std(h),
                id,
                last_cmd,
            });
        }
    }
    Ok(out)
}

impl Port {
    pub fn source(&mut self) -> &mut mio::net::UdpSocket {
        &mut self.socket
    }

    /// Serves the datagrams waiting, up to a round's worth. True when more may be waiting.
    pub fn serve(&mut self, sh: &Shared, worker: usize, limits: &Limits, sc: &mut Scratch) -> bool {
        sc.buf.resize(READ_SIZE, 0);
        for _ in 0..PER_ROUND {
            let (n, peer) = match self.socket.recv_from(&mut sc.buf) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    debug!("udp {}: {e}", self.id);
                    return false;
                }
            };
            let Some((id, payload)) = udp::request(&sc.buf[..n]) else {
                continue;
            };
            let ctx = Ctx::new(
                sh,
                ConnRef {
                    id: self.id,
                    worker,
                    admin: false,
                    udp_peer: Some(peer),
                },
            );
            stats::add(&ctx.stats.bytes_read, n as u64);
            self.last_cmd.store(sh.clock().now(), Ordering::Relaxed);
            sc.replies.reset(id);
            let socket = &self.socket;
            let mut send = |d: &[u8]| match socket.send_to(d, peer) {
                Ok(w) => {
                    stats::add(&ctx.stats.bytes_written, w as u64);
                    true
                }
                // The socket cannot take it now: drop it, as UDP may.
                Err(_) => false,
            };
            serve_datagram(payload, &ctx, limits, &mut sc.replies, &mut send);
        }
        true
    }
}

/// What follows a request in a datagram.
enum Then {
    Go,
    /// Send what is answered so far, then go on.
    Flush,
    /// Send what is answered, ignore the rest of the datagram.
    FlushStop,
    /// Drop what is not yet sent and the rest of the datagram.
    DropStop,
}

/// Runs the requests of one datagram as memcached does: replies go out at the end, when a
/// retrieval (`get`, `gets`, `gat`, `gats`), `mn`, `quit` or a binary request was answered, and
/// after every `-R` requests; a request whose data block is cut off, or an error that would
/// close a connection, drops what was not yet sent. Public for the UDP fuzz target.
pub fn serve_datagram(
    payload: &[u8],
    ctx: &Ctx<'_>,
    limits: &Limits,
    rep: &mut Replies,
    send: &mut dyn FnMut(&[u8]) -> bool,
) {
    // memcached picks the encoding from the datagram's first byte, whatever `-B` says.
    let binary_dgram = payload[0] == binary::REQ_MAGIC;
    let per_event = ctx.shared.config().reqs_per_event as isize;
    let mut left = per_event;
    let mut session = Session::default();
    let mut pos = 0;
    loop {
        let input = &payload[pos..];
        if input.is_empty() {
            rep.flush(&mut *send);
            return;
        }
        let (used, then, action) = if binary_dgram {
            match binary::parse(input, limits) {
                Ok(Parsed::Complete(frame, used)) => {
                    let a = exec::binary::execute(&frame, ctx, &mut session, &mut rep.out);
                    rep.end_response(true);
                    match a {
                        Action::Continue if frame.skip > 0 => {
                            (used, Then::Go, Action::Swallow(frame.skip))
                        }
                        a => (used, Then::Flush, a),
                    }
                }
                Ok(Parsed::Incomplete) if input.len() < binary::HEADER_LEN => {
                    (0, Then::FlushStop, Action::Continue)
                }
                Ok(Parsed::Incomplete) | Err(_) => (0, Then::DropStop, Action::Continue),
            }
        } else {
            match protocol::parse_ascii(input, limits) {
                Ok(Parsed::Complete(cmd, used)) => {
                    let (then, action) = text(cmd, ctx, rep);
                    (used, then, action)
                }
                // A line not yet ended waits for more input, which never comes: send what is
                // answered. A line whose data block is cut off leaves memcached reading the
                // value from the socket: nothing more is sent for this datagram.
                Ok(Parsed::Incomplete) if !input.contains(&b'\n') => {
                    (0, Then::FlushStop, Action::Continue)
                }
                Ok(Parsed::Incomplete) | Err(_) => (0, Then::DropStop, Action::Continue),
            }
        };
        pos += used;
        let then = match action {
            Action::Continue | Action::Flush => then,
            Action::Close => Then::FlushStop,
            Action::Swallow(n) if n <= payload.len() - pos => {
                pos += n;
                then
            }
            // memcached's crawler would write a dump to the UDP socket without a frame header
            // or a peer: nothing arrives.
            Action::Swallow(_) | Action::Verify | Action::Watch(_) | Action::Dump(_) => {
                Then::DropStop
            }
            Action::Shutdown(how) => {
                ctx.shared.request_shutdown(how);
                crate::server::signal_shutdown(how);
                Then::FlushStop
            }
        };
        match then {
            Then::Go => {}
            Then::Flush => rep.flush(&mut *send),
            Then::FlushStop => {
                rep.flush(&mut *send);
                return;
            }
            Then::DropStop => {
                rep.discard();
                return;
            }
        }
        // memcached yields after `-R` requests, writing what is answered first.
        left -= 1;
        if left < 0 {
            rep.flush(&mut *send);
            stats::bump(&ctx.stats.conn_yields);
            left = per_event - 1;
        }
    }
}

/// Runs one text request; a retrieval of several keys answers each key as its own response.
fn text(cmd: Command<'_>, ctx: &Ctx<'_>, rep: &mut Replies) -> (Then, Action) {
    let Command::Get {
        kind,
        exptime,
        keys,
    } = cmd
    else {
        // `quit` answers with an empty response, which goes out as a bare header.
        let quiet = !matches!(cmd, Command::Quit);
        let a = exec::text::execute(cmd, ctx, &mut rep.out);
        rep.end_response(quiet);
        return match a {
            Action::Flush => (Then::Flush, a),
            _ => (Then::Go, a),
        };
    };
    let many = ascii::keys(keys).nth(1).is_some();
    // A key too long makes the whole reply one error line, as on a connection.
    if many && ascii::keys(keys).all(|k| k.len() <= 250) {
        let mut it = ascii::keys(keys).peekable();
        while let Some(key) = it.next() {
            let one = Command::Get {
                kind,
                exptime,
                keys: key,
            };
            exec::text::execute(one, ctx, &mut rep.out);
            if it.peek().is_some() && rep.out.ends_with(b"END\r\n") {
                rep.out.truncate(rep.out.len() - 5);
            }
            rep.end_response(false);
        }
    } else {
        exec::text::execute(cmd, ctx, &mut rep.out);
        rep.end_response(false);
    }
    (Then::Flush, Action::Continue)
}
