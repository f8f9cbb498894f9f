//! Owns: one worker thread — a `mio::Poll`, the connections handed to it, their readiness and
//! idle timeouts, and their orderly close on shutdown.
//! Does not: accept sockets (see `server`) or interpret bytes (see `conn`).

use std::io;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use log::{debug, warn};
use mio::{Events, Interest, Poll, Token, Waker};

use super::conn::{Conn, Next};
use super::stream::Stream;
use super::verify::{Done, FailureLimiter, Job, Verifier};
use crate::protocol::Limits;
use crate::state::{ConnInfo, Shared, Shutdown};
use crate::stats;

pub const WAKE: Token = Token(usize::MAX);

/// A connection handed from the acceptor.
#[derive(Debug)]
pub struct NewConn {
    pub stream: Stream,
    pub id: i64,
    pub addr: String,
    pub listen_addr: String,
    /// Accepted on the admin endpoint (may push cluster configs).
    pub admin: bool,
}

/// What a worker needs to hand slow credential checks to the verification pool.
#[allow(missing_debug_implementations)]
pub struct AuthLink {
    pub verifier: Verifier,
    /// This worker's own waker (the pool wakes it with each result).
    pub waker: Arc<Waker>,
}

/// Runs the worker loop until shutdown.
pub fn run(
    index: usize,
    mut poll: Poll,
    rx: Receiver<NewConn>,
    sh: Arc<Shared>,
    link: AuthLink,
) -> io::Result<()> {
    let (done_tx, done_rx) = crossbeam_channel::unbounded::<Done>();
    let mut next_serial: u64 = 0;
    let mut limiter = FailureLimiter::default();
    let mut events = Events::with_capacity(1024);
    let mut conns: slab::Slab<Conn> = slab::Slab::new();
    let limits = Limits {
        item_size_max: sh.config.item_size_max,
        config_commands: sh.cluster.enabled(),
        item_header_max: crate::store::item::max_header_size,
        ..Limits::default()
    };
    // Room for the largest request any parser accepts (an item, a long get line, a pushed
    // cluster config), plus slack for the line around it.
    let max_buf = (sh.config.item_size_max + 64 * 1024).max(limits.max_get_line + 64 * 1024);
    let mut pending: Vec<usize> = Vec::new();
    // Connections to drive this round; kept across rounds so the loop does not allocate.
    let mut ready: Vec<usize> = Vec::new();
    let mut stopping_since: Option<Instant> = None;
    let idle = sh.config.ext.idle_timeout;
    let mut last_idle_check = sh.clock.now();
    loop {
        let timeout = if !pending.is_empty() {
            Some(Duration::ZERO)
        } else if stopping_since.is_some() {
            Some(Duration::from_millis(50))
        } else if idle > 0 {
            Some(Duration::from_secs(1))
        } else {
            None
        };
        if let Err(e) = poll.poll(&mut events, timeout) {
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        ready.clear();
        ready.append(&mut pending);
        for ev in events.iter() {
            if ev.token() == WAKE {
                while let Ok(nc) = rx.try_recv() {
                    next_serial += 1;
                    accept(&mut poll, &mut conns, nc, &sh, &mut ready, next_serial);
                }
                while let Ok(d) = done_rx.try_recv() {
                    if let Some(c) = conns
                        .get_mut(d.conn_key)
                        .filter(|c| c.serial == d.conn_serial)
                    {
                        if !d.ok {
                            if let Some(ip) = c.peer_ip {
                                limiter.failed(ip, sh.clock.now() as u64);
                            }
                        }
                        c.auth_done(d.ok, d.reply, &sh, index);
                        ready.push(d.conn_key);
                    }
                }
                continue;
            }
            if ev.is_read_closed() || ev.is_error() {
                if let Some(c) = conns.get_mut(ev.token().0) {
                    c.peer_closing = true;
                }
            }
            ready.push(ev.token().0);
        }
        ready.sort_unstable();
        ready.dedup();
        for &key in &ready {
            let Some(conn) = conns.get_mut(key) else {
                continue;
            };
            let mut next = conn.drive(&sh, index, &limits, max_buf);
            if next == Next::Verify {
                next = Next::Read;
                if let Some(attempt) = conn.take_attempt() {
                    let reply = attempt.reply;
                    let cancel = Arc::new(std::sync::atomic::AtomicBool::new(false));
                    let now = sh.clock.now() as u64;
                    let allowed = conn.peer_ip.is_none_or(|ip| limiter.allow(ip, now));
                    let queued = match sh.credentials().filter(|_| allowed) {
                        Some(creds) => link.verifier.submit(Job {
                            creds,
                            attempt,
                            conn_key: key,
                            conn_serial: conn.serial,
                            cancel: cancel.clone(),
                            done: done_tx.clone(),
                            waker: link.waker.clone(),
                        }),
                        None => false,
                    };
                    if queued {
                        conn.verify_cancel = Some(cancel);
                    } else {
                        // Saturated pool or a peer failing too often: refuse rather than queue.
                        if let Some(ip) = conn.peer_ip {
                            limiter.failed(ip, now);
                        }
                        conn.auth_refused(reply, &sh, index);
                        pending.push(key);
                    }
                }
            }
            settle(&mut poll, &mut conns, key, next, &sh, &mut pending);
        }
        if sh.shutdown_requested() != Shutdown::None {
            let since = *stopping_since.get_or_insert_with(|| {
                for (_, c) in conns.iter_mut() {
                    c.close_after_write();
                }
                Instant::now()
            });
            // Finish what was requested, then go; give slow readers a bounded grace period.
            let keys: Vec<usize> = conns.iter().map(|(k, _)| k).collect();
            for key in keys {
                let st = &sh.thread_stats[index];
                let done = conns
                    .get_mut(key)
                    .is_none_or(|c| c.flush(st).is_err() || !c.has_output());
                if done || since.elapsed() > Duration::from_secs(2) {
                    close(&mut poll, &mut conns, key, &sh);
                }
            }
            if conns.is_empty() {
                return Ok(());
            }
        }
        if idle > 0 {
            let now = sh.clock.now();
            if now != last_idle_check {
                last_idle_check = now;
                let stale: Vec<usize> = conns
                    .iter()
                    .filter(|(_, c)| now.saturating_sub(c.last_active) > idle)
                    .map(|(k, _)| k)
                    .collect();
                for key in stale {
                    stats::bump(&sh.thread_stats[index].idle_kicks);
                    close(&mut poll, &mut conns, key, &sh);
                }
            }
        }
    }
}

fn accept(
    poll: &mut Poll,
    conns: &mut slab::Slab<Conn>,
    mut nc: NewConn,
    sh: &Shared,
    ready: &mut Vec<usize>,
    serial: u64,
) {
    let peer_ip = nc
        .addr
        .strip_prefix("tcp:")
        .or_else(|| nc.addr.strip_prefix("tcp6:"))
        .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
        .map(|a| a.ip());
    let entry = conns.vacant_entry();
    let key = entry.key();
    if let Err(e) = poll
        .registry()
        .register(&mut nc.stream, Token(key), Interest::READABLE)
    {
        warn!("cannot register connection: {e}");
        sh.curr_connections.fetch_sub(1, Ordering::Relaxed);
        return;
    }
    let now = sh.clock.now();
    let last_cmd = Arc::new(AtomicU32::new(now));
    sh.conns.lock().insert(
        nc.id,
        ConnInfo {
            addr: nc.addr,
            listen_addr: Some(nc.listen_addr),
            last_cmd: last_cmd.clone(),
        },
    );
    let mut conn = Conn::new(nc.stream, nc.id, now, last_cmd, nc.admin, serial);
    conn.peer_ip = peer_ip;
    entry.insert(conn);
    // Data may have arrived before registration; edge-triggered polling would not report it.
    ready.push(key);
}

fn settle(
    poll: &mut Poll,
    conns: &mut slab::Slab<Conn>,
    key: usize,
    next: Next,
    sh: &Shared,
    pending: &mut Vec<usize>,
) {
    let interest = match next {
        Next::Close => {
            close(poll, conns, key, sh);
            return;
        }
        Next::Read | Next::Verify => Interest::READABLE,
        Next::Write => Interest::READABLE | Interest::WRITABLE,
        Next::Yield => {
            pending.push(key);
            Interest::READABLE
        }
    };
    // Registration is edge-triggered and stays armed: only a change of interest costs a syscall.
    if let Some(c) = conns.get_mut(key) {
        if c.interest == interest {
            return;
        }
        if let Err(e) = poll
            .registry()
            .reregister(&mut c.stream, Token(key), interest)
        {
            debug!("reregister failed: {e}");
            close(poll, conns, key, sh);
        } else {
            c.interest = interest;
        }
    }
}

fn close(poll: &mut Poll, conns: &mut slab::Slab<Conn>, key: usize, sh: &Shared) {
    if let Some(mut c) = conns.try_remove(key) {
        let _ = poll.registry().deregister(&mut c.stream);
        sh.conns.lock().remove(&c.id);
        sh.curr_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Creates a worker's poll and the waker the acceptor uses to hand it connections.
pub fn new_poll() -> io::Result<(Poll, Arc<Waker>)> {
    let poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
    Ok((poll, waker))
}
