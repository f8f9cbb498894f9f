//! Owns: the TLS handshake threads — each with its own `mio::Poll` over the connections accepted
//! on TLS listeners (`-Z`, the admin endpoint's included), driving each one's handshake until it
//! completes (then handing the stream to a worker through the pool's `Dispatch`), fails or goes
//! idle past `-o idle_timeout`; the `ssl_new_sessions`/`ssl_handshake_errors` counters.
//! Does not: accept sockets (see `acceptor`), make TLS sessions (see `stream`, `tls`) or serve
//! requests (see `worker`).
//!
//! Why: a full handshake costs the server hundreds of microseconds of CPU (key exchange and a
//! signature); on the worker's loop that time stalls every established connection of that
//! worker, so a storm of new connections would raise every client's latency. Here the worker
//! only ever sees connections whose handshake is done. The rustls session moves with the stream,
//! so session resumption, client-certificate verification (`ssl_verify_mode`) and any request
//! bytes that arrived with the client's last handshake flight carry over unchanged.

use std::io;
use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use log::{debug, warn};
use mio::{Events, Interest, Poll, Token, Waker};

use super::pool::Dispatch;
use super::stream::Handshake;
use super::worker::NewConn;
use crate::state::{ConnInfo, Shared, Shutdown};
use crate::stats::{self, ThreadStats};

const WAKE: Token = Token(usize::MAX);

/// The running handshake threads; connections are spread over them round-robin.
#[allow(missing_debug_implementations)]
pub struct Handshakers {
    threads: Vec<(Sender<NewConn>, Arc<Waker>, JoinHandle<()>)>,
    next: usize,
}

impl Handshakers {
    /// Starts `sh.config().handshake_threads()` threads (none without `-Z`), handing finished
    /// handshakes to `dispatch`.
    pub fn start(sh: &Arc<Shared>, dispatch: &Dispatch) -> io::Result<Handshakers> {
        let workers = sh.config().threads;
        let mut threads = Vec::new();
        for i in 0..sh.config().handshake_threads() {
            let poll = Poll::new()?;
            let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
            let (tx, rx) = crossbeam_channel::unbounded();
            let (sh, dispatch) = (sh.clone(), dispatch.clone());
            let h = std::thread::Builder::new()
                .name(format!("tls-handshake-{i}"))
                .spawn(move || {
                    let mut t = Thread {
                        poll,
                        rx,
                        conns: slab::Slab::new(),
                        stats_slot: workers + i,
                        sh,
                        dispatch,
                    };
                    if let Err(e) = t.run() {
                        warn!("TLS handshake thread {i} failed: {e}");
                    }
                    t.close_all();
                })?;
            threads.push((tx, waker, h));
        }
        Ok(Handshakers { threads, next: 0 })
    }

    /// Takes a connection whose handshake is still to run. Without handshake threads (no `-Z`)
    /// or when its thread is gone, gives the connection back.
    pub fn take(&mut self, nc: NewConn) -> Result<(), NewConn> {
        if self.threads.is_empty() {
            return Err(nc);
        }
        let (tx, waker, _) = &self.threads[self.next % self.threads.len()];
        self.next += 1;
        match tx.send(nc) {
            Ok(()) => {
                let _ = waker.wake();
                Ok(())
            }
            Err(e) => Err(e.0),
        }
    }

    /// After shutdown was requested: wakes the threads, which close the connections still
    /// handshaking, and waits for them.
    pub fn join(self) {
        for (_, w, _) in &self.threads {
            let _ = w.wake();
        }
        for (_, _, h) in self.threads {
            let _ = h.join();
        }
    }
}

/// A connection in its handshake, and when it last made progress (server clock).
struct Pending {
    nc: NewConn,
    last_active: u32,
}

/// One handshake thread's state.
struct Thread {
    poll: Poll,
    rx: Receiver<NewConn>,
    conns: slab::Slab<Pending>,
    stats_slot: usize,
    sh: Arc<Shared>,
    dispatch: Dispatch,
}

impl Thread {
    fn stats(&self) -> &ThreadStats {
        &self.sh.thread_stats()[self.stats_slot]
    }

    fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(256);
        let mut last_idle_check = self.sh.clock().now();
        loop {
            // Idle connections are checked once a second, as the workers check theirs.
            let timeout = (self.sh.settings().idle_timeout() > 0 && !self.conns.is_empty())
                .then_some(Duration::from_secs(1));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            if self.sh.shutdown_requested() != Shutdown::None {
                return Ok(());
            }
            for ev in events.iter() {
                if ev.token() != WAKE {
                    self.step(ev.token().0);
                }
            }
            while let Ok(nc) = self.rx.try_recv() {
                self.admit(nc);
            }
            let now = self.sh.clock().now();
            if now != last_idle_check {
                last_idle_check = now;
                self.kick_idle(now);
            }
        }
    }

    /// Registers a new connection and starts its handshake (its ClientHello may be there).
    fn admit(&mut self, mut nc: NewConn) {
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        if let Err(e) =
            self.poll
                .registry()
                .register(&mut nc.stream, Token(key), Interest::READABLE)
        {
            warn!("cannot register connection: {e}");
            self.sh.conns().closed();
            return;
        }
        // Listed in `stats conns` while handshaking; the worker lists it again when it takes it.
        self.sh.conns().register(
            nc.id,
            ConnInfo {
                addr: nc.addr.clone(),
                listen_addr: Some(nc.listen_addr.clone()),
                last_cmd: Arc::new(AtomicU32::new(self.sh.clock().now())),
                phase: Arc::default(),
                udp: false,
            },
        );
        entry.insert(Pending {
            nc,
            last_active: self.sh.clock().now(),
        });
        self.step(key);
    }

    /// Advances one connection's handshake; hands it on when done, closes it when it failed.
    fn step(&mut self, key: usize) {
        let now = self.sh.clock().now();
        let Some(p) = self.conns.get_mut(key) else {
            return;
        };
        p.last_active = now;
        let r = p.nc.stream.handshake();
        p.nc.stream
            .count_tls_event(&self.sh.thread_stats()[self.stats_slot]);
        let p = &mut self.conns[key];
        let interest = match r {
            Ok(Handshake::Done) => {
                let mut p = self.conns.remove(key);
                let _ = self.poll.registry().deregister(&mut p.nc.stream);
                if !self.dispatch.hand_off(p.nc) {
                    // The worker is gone (shutdown): the connection closes.
                    self.sh.conns().closed();
                }
                return;
            }
            Ok(Handshake::WantRead) => Interest::READABLE,
            Ok(Handshake::WantWrite) => Interest::READABLE | Interest::WRITABLE,
            Err(e) => {
                debug!("TLS handshake with {} failed: {e}", p.nc.addr);
                self.close(key);
                return;
            }
        };
        if let Err(e) = self
            .poll
            .registry()
            .reregister(&mut p.nc.stream, Token(key), interest)
        {
            debug!("reregister failed: {e}");
            self.close(key);
        }
    }

    /// `-o idle_timeout`: a handshake that made no progress for longer is closed, as a worker
    /// closes an idle connection.
    fn kick_idle(&mut self, now: u32) {
        let idle = self.sh.settings().idle_timeout();
        if idle == 0 {
            return;
        }
        let stale: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, p)| now.saturating_sub(p.last_active) > idle)
            .map(|(k, _)| k)
            .collect();
        for key in stale {
            stats::bump(&self.stats().idle_kicks);
            self.close(key);
        }
    }

    fn close(&mut self, key: usize) {
        if let Some(mut p) = self.conns.try_remove(key) {
            let _ = self.poll.registry().deregister(&mut p.nc.stream);
            self.sh.conns().unregister(p.nc.id);
            self.sh.conns().closed();
        }
    }

    /// At the end: closes every connection still handshaking.
    fn close_all(&mut self) {
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.close(key);
        }
    }
}
