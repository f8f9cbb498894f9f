//! Owns: one worker thread — a `mio::Poll`, the connections handed to it, their readiness and
//! idle timeouts, and their orderly close on shutdown.
//! Does not: accept sockets (see `server`) or interpret bytes (see `conn`).

use std::io;
use std::sync::atomic::{AtomicU32, AtomicU8};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use log::{debug, warn};
use mio::{Events, Interest, Poll, Token, Waker};

use super::budget::Budget;
use super::conn::{Conn, Next};
use super::stream::Stream;
use super::udp::{Port, Scratch};
use super::verify::{Done, FailureLimiter, Job, Verifier};
use super::watchdog::Heartbeats;
use super::watcher::{self, NewWatcher};
use crate::protocol::watch::{CloseReason, Event};
use crate::protocol::Limits;
use crate::state::{ConnInfo, Shared, Shutdown};
use crate::stats;

pub const WAKE: Token = Token(usize::MAX);
/// UDP socket `i` is registered as `Token(UDP_BASE - i)`.
const UDP_BASE: usize = usize::MAX - 1;

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

/// What a worker hands connections on to: slow credential checks to the verification pool,
/// watchers to the watcher thread.
#[allow(missing_debug_implementations)]
pub struct AuthLink {
    pub verifier: Verifier,
    /// This worker's own waker (the pool wakes it with each result).
    pub waker: Arc<Waker>,
    pub watchers: Sender<NewWatcher>,
}

/// Runs the worker loop until shutdown, bumping heartbeat `index` each time the loop turns.
pub fn run(
    index: usize,
    poll: Poll,
    rx: Receiver<NewConn>,
    sh: Arc<Shared>,
    link: AuthLink,
    mut udp: Vec<Port>,
    beats: Arc<Heartbeats>,
) -> io::Result<()> {
    crate::state::logger::set_thread_slot(index);
    for (i, p) in udp.iter_mut().enumerate() {
        poll.registry()
            .register(p.source(), Token(UDP_BASE - i), Interest::READABLE)?;
    }
    let mut w = Worker::new(index, poll, rx, sh, link);
    w.udp = udp;
    w.udp_ready = (0..w.udp.len()).collect();
    let mut events = Events::with_capacity(1024);
    loop {
        if let Err(e) = w.poll.poll(&mut events, w.timeout()) {
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        beats.beat(index);
        w.collect(&events);
        w.serve_udp();
        w.drive_ready();
        if w.sh.shutdown_requested() != Shutdown::None && w.drain() {
            return Ok(());
        }
        w.kick_idle();
    }
}

/// One worker's state: its poll, its connections, and what links it to the acceptor and the
/// verification pool.
struct Worker {
    index: usize,
    poll: Poll,
    rx: Receiver<NewConn>,
    sh: Arc<Shared>,
    link: AuthLink,
    /// Verification results come back here (the pool wakes the worker after sending one).
    done_tx: Sender<Done>,
    done_rx: Receiver<Done>,
    next_serial: u64,
    limiter: FailureLimiter,
    conns: slab::Slab<Conn>,
    limits: Limits,
    max_buf: usize,
    /// What this worker's connections may hold: pooled buffers, response objects, values in
    /// flight.
    mem: Budget,
    /// Connections to drive again without waiting for an event (`Next::Yield`, refused checks).
    pending: Vec<usize>,
    /// Connections to drive this round; kept across rounds so the loop does not allocate.
    ready: Vec<usize>,
    stopping_since: Option<Instant>,
    last_idle_check: u32,
    /// The UDP sockets this worker reads, those with datagrams to serve, and their buffers.
    udp: Vec<Port>,
    udp_ready: Vec<usize>,
    udp_scratch: Scratch,
}

impl Worker {
    fn new(
        index: usize,
        poll: Poll,
        rx: Receiver<NewConn>,
        sh: Arc<Shared>,
        link: AuthLink,
    ) -> Self {
        let (done_tx, done_rx) = crossbeam_channel::unbounded::<Done>();
        let limits = crate::exec::limits(&sh);
        // Room for the largest request any parser accepts (an item, a long get line, a pushed
        // cluster config), plus slack for the line around it.
        let max_buf = (sh.config().item_size_max + 64 * 1024).max(limits.max_get_line + 64 * 1024);
        let mem = Budget::new(sh.clone(), index, max_buf);
        let last_idle_check = sh.clock().now();
        Worker {
            index,
            poll,
            rx,
            sh,
            link,
            done_tx,
            done_rx,
            next_serial: 0,
            limiter: FailureLimiter::default(),
            conns: slab::Slab::new(),
            limits,
            max_buf,
            mem,
            pending: Vec::new(),
            ready: Vec::new(),
            stopping_since: None,
            last_idle_check,
            udp: Vec::new(),
            udp_ready: Vec::new(),
            udp_scratch: Scratch::default(),
        }
    }

    /// How long the next poll may wait.
    fn timeout(&self) -> Option<Duration> {
        if !self.pending.is_empty() || !self.udp_ready.is_empty() {
            Some(Duration::ZERO)
        } else if self.stopping_since.is_some() {
            Some(Duration::from_millis(50))
        } else if self.sh.settings().idle_timeout() > 0 {
            Some(Duration::from_secs(1))
        } else {
            None
        }
    }

    /// Gathers this round's connections: the pending ones, those with readiness, new ones from
    /// the acceptor, and those whose credential check came back.
    fn collect(&mut self, events: &Events) {
        self.ready.clear();
        self.ready.append(&mut self.pending);
        for ev in events.iter() {
            if ev.token() == WAKE {
                self.on_wake();
                continue;
            }
            if let Some(i) = UDP_BASE.checked_sub(ev.token().0) {
                if i < self.udp.len() {
                    self.udp_ready.push(i);
                    continue;
                }
            }
            if ev.is_read_closed() || ev.is_error() {
                if let Some(c) = self.conns.get_mut(ev.token().0) {
                    c.peer_closing = true;
                }
            }
            self.ready.push(ev.token().0);
        }
        self.ready.sort_unstable();
        self.ready.dedup();
    }

    fn on_wake(&mut self) {
        while let Ok(nc) = self.rx.try_recv() {
            self.next_serial += 1;
            accept(
                &mut self.poll,
                &mut self.conns,
                nc,
                &self.sh,
                &mut self.ready,
                self.next_serial,
            );
        }
        while let Ok(d) = self.done_rx.try_recv() {
            if let Some(c) = self
                .conns
                .get_mut(d.conn_key)
                .filter(|c| c.serial == d.conn_serial)
            {
                if !d.ok {
                    if let Some(ip) = c.peer_ip {
                        self.limiter.failed(ip, self.sh.clock().now() as u64);
                    }
                }
                c.auth_done(d.ok, d.reply, &self.sh, self.index);
                self.ready.push(d.conn_key);
            }
        }
    }

    /// Serves the UDP sockets with datagrams waiting, a round's worth each; a socket not yet
    /// drained stays ready for the next round (readiness is edge-triggered).
    fn serve_udp(&mut self) {
        if self.udp_ready.is_empty() {
            return;
        }
        self.udp_ready.sort_unstable();
        self.udp_ready.dedup();
        let ready = std::mem::take(&mut self.udp_ready);
        for &i in &ready {
            let more = self.udp[i].serve(&self.sh, self.index, &self.limits, &mut self.udp_scratch);
            if more {
                self.udp_ready.push(i);
            }
        }
    }

    /// Drives every connection gathered this round and settles its poll interest.
    fn drive_ready(&mut self) {
        let ready = std::mem::take(&mut self.ready);
        for &key in &ready {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            let mut next = conn.drive(
                &self.sh,
                self.index,
                &self.limits,
                self.max_buf,
                &mut self.mem,
            );
            if next == Next::Verify {
                next = Next::Read;
                self.submit_check(key);
            }
            if next == Next::Watch {
                self.hand_to_watcher(key);
                continue;
            }
            settle(
                &mut self.poll,
                &mut self.conns,
                key,
                next,
                (&self.sh, &mut self.mem),
                &mut self.pending,
            );
        }
        self.ready = ready;
    }

    /// Gives a connection whose `watch` succeeded to the watcher thread.
    fn hand_to_watcher(&mut self, key: usize) {
        let Some(mut conn) = self.conns.try_remove(key) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut conn.stream);
        conn.leave(&mut self.mem);
        let Some(ticket) = conn.take_watch() else {
            return;
        };
        if let Err(e) = self.link.watchers.send(NewWatcher { conn, ticket }) {
            // The watcher thread is gone (shutdown): the connection closes.
            self.sh.logger().remove_watcher(ticket.slot);
            self.sh.conns().unregister(e.0.conn.id);
            self.sh.conns().closed();
        }
    }

    /// Queues the connection's credentials on the verification pool, or refuses them at once
    /// when the pool is saturated or the peer has failed too often.
    fn submit_check(&mut self, key: usize) {
        let sh = &self.sh;
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let Some(attempt) = conn.take_attempt() else {
            return;
        };
        let reply = attempt.reply;
        let cancel = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let now = sh.clock().now() as u64;
        let allowed = conn.peer_ip.is_none_or(|ip| self.limiter.allow(ip, now));
        let queued = match sh.credentials().filter(|_| allowed) {
            Some(creds) => self.link.verifier.submit(Job {
                creds,
                attempt,
                conn_key: key,
                conn_serial: conn.serial,
                cancel: cancel.clone(),
                done: self.done_tx.clone(),
                waker: self.link.waker.clone(),
            }),
            None => false,
        };
        if queued {
            conn.verify_cancel = Some(cancel);
        } else {
            // Saturated pool or a peer failing too often: refuse rather than queue.
            if let Some(ip) = conn.peer_ip {
                self.limiter.failed(ip, now);
            }
            conn.auth_refused(reply, sh, self.index);
            self.pending.push(key);
        }
    }

    /// Shutdown: every connection finishes what was requested, then closes; slow readers get a
    /// bounded grace period. True once no connection is left.
    fn drain(&mut self) -> bool {
        let conns = &mut self.conns;
        let since = *self.stopping_since.get_or_insert_with(|| {
            for (_, c) in conns.iter_mut() {
                c.close_after_write();
            }
            Instant::now()
        });
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            let st = &self.sh.thread_stats()[self.index];
            let done = self
                .conns
                .get_mut(key)
                .is_none_or(|c| c.flush(st, &mut self.mem).is_err() || !c.has_output());
            if done || since.elapsed() > Duration::from_secs(2) {
                if let Some(c) = self.conns.get_mut(key) {
                    c.close_reason = CloseReason::Shutdown;
                }
                close(
                    &mut self.poll,
                    &mut self.conns,
                    key,
                    (&self.sh, &mut self.mem),
                );
            }
        }
        self.conns.is_empty()
    }

    /// `-o idle_timeout` (live: a reload changes it): closes connections idle for longer,
    /// checked once a second.
    fn kick_idle(&mut self) {
        let idle = self.sh.settings().idle_timeout();
        if idle == 0 {
            return;
        }
        let now = self.sh.clock().now();
        if now == self.last_idle_check {
            return;
        }
        self.last_idle_check = now;
        let stale: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| now.saturating_sub(c.last_active) > idle)
            .map(|(k, _)| k)
            .collect();
        for key in stale {
            stats::bump(&self.sh.thread_stats()[self.index].idle_kicks);
            if let Some(c) = self.conns.get_mut(key) {
                c.close_reason = CloseReason::IdleTimeout;
            }
            close(
                &mut self.poll,
                &mut self.conns,
                key,
                (&self.sh, &mut self.mem),
            );
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
    let peer = nc
        .addr
        .strip_prefix("tcp:")
        .or_else(|| nc.addr.strip_prefix("tcp6:"))
        .and_then(|a| a.parse::<std::net::SocketAddr>().ok());
    let entry = conns.vacant_entry();
    let key = entry.key();
    if let Err(e) = poll
        .registry()
        .register(&mut nc.stream, Token(key), Interest::READABLE)
    {
        warn!("cannot register connection: {e}");
        sh.conns().closed();
        return;
    }
    let now = sh.clock().now();
    let last_cmd = Arc::new(AtomicU32::new(now));
    let phase: Arc<AtomicU8> = Arc::default();
    sh.conns().register(
        nc.id,
        ConnInfo {
            addr: nc.addr,
            listen_addr: Some(nc.listen_addr),
            last_cmd: last_cmd.clone(),
            phase: phase.clone(),
            udp: false,
        },
    );
    let mut conn = Conn::new(nc.stream, nc.id, now, (last_cmd, phase), nc.admin, serial);
    conn.peer_ip = peer.map(|a| a.ip());
    conn.peer = peer;
    sh.logger().log(Event::ConnNew {
        peer,
        transport: watcher::transport(&conn.stream),
        cfd: conn.id,
    });
    entry.insert(conn);
    // Data may have arrived before registration; edge-triggered polling would not report it.
    ready.push(key);
}

fn settle(
    poll: &mut Poll,
    conns: &mut slab::Slab<Conn>,
    key: usize,
    next: Next,
    (sh, mem): (&Shared, &mut Budget),
    pending: &mut Vec<usize>,
) {
    let interest = match next {
        Next::Close => {
            close(poll, conns, key, (sh, mem));
            return;
        }
        Next::Read | Next::Verify | Next::Watch => Interest::READABLE,
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
            close(poll, conns, key, (sh, mem));
        } else {
            c.interest = interest;
        }
    }
}

fn close(
    poll: &mut Poll,
    conns: &mut slab::Slab<Conn>,
    key: usize,
    (sh, mem): (&Shared, &mut Budget),
) {
    if let Some(mut c) = conns.try_remove(key) {
        c.release(mem);
        let _ = poll.registry().deregister(&mut c.stream);
        sh.logger().log(Event::ConnClose {
            peer: c.peer,
            transport: watcher::transport(&c.stream),
            reason: c.close_reason,
            cfd: c.id,
        });
        sh.conns().unregister(c.id);
        sh.conns().closed();
    }
}

/// Creates a worker's poll and the waker the acceptor uses to hand it connections.
pub fn new_poll() -> io::Result<(Poll, Arc<Waker>)> {
    let poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
    Ok((poll, waker))
}
