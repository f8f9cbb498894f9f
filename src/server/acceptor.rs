//! Owns: the acceptor — the main thread's poll over the listeners, the signals and the shutdown
//! waker; accepting until `WouldBlock`, enforcing `-c` (`ERROR Too many open connections`), and
//! handing each connection to the worker pool, or first to a TLS handshake thread when it speaks
//! TLS.
//! Does not: bind listeners (see `listeners`), act on signals (see `signals`), or serve
//! connections (see `worker`).

use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, OnceLock};

use log::{info, warn};
use mio::{Events, Interest, Poll, Token, Waker};
use signal_hook_mio::v1_0::Signals;

use super::handshake::Handshakers;
use super::listeners::{Listener, Role};
use super::pool::Workers;
use super::signals;
use super::stream::Stream;
use super::worker::NewConn;
use crate::state::{ConnInfo, Shared, Shutdown};

const SIGNALS: Token = Token(usize::MAX - 1);
const WAKE: Token = Token(usize::MAX - 2);

/// The acceptor's waker, so a `shutdown` command on any worker can stop the accept loop.
static ACCEPTOR_WAKER: OnceLock<Waker> = OnceLock::new();

/// Wakes the acceptor after a shutdown request (from the `shutdown` command).
pub fn signal_shutdown(_how: Shutdown) {
    if let Some(w) = ACCEPTOR_WAKER.get() {
        let _ = w.wake();
    }
}

/// The main thread's event loop; listener `i` is registered as `Token(i)`.
#[allow(missing_debug_implementations)]
pub struct Acceptor {
    poll: Poll,
    signals: Signals,
    listeners: Vec<Listener>,
}

impl Acceptor {
    /// Registers the listeners (logging each, and listing each in `stats conns`), the signals
    /// and the shutdown waker.
    pub fn new(mut listeners: Vec<Listener>, sh: &Shared) -> io::Result<Acceptor> {
        let poll = Poll::new()?;
        let _ = ACCEPTOR_WAKER.set(Waker::new(poll.registry(), WAKE)?);
        let mut signals = signals::register()?;
        poll.registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)?;
        for (i, l) in listeners.iter_mut().enumerate() {
            poll.registry()
                .register(l.source(), Token(i), Interest::READABLE)?;
            match l.role {
                Role::Admin if l.tls => info!("admin endpoint on {} (TLS)", l.name),
                Role::Admin => info!("admin endpoint on {}", l.name),
                Role::Clients if l.tls => info!("listening on {} (TLS)", l.name),
                Role::Clients | Role::Metrics => info!("listening on {}", l.name),
            }
            sh.conns().register(
                l.as_raw_fd() as i64,
                ConnInfo {
                    addr: l.name.clone(),
                    listen_addr: None,
                    last_cmd: Arc::new(AtomicU32::new(0)),
                    phase: Arc::default(),
                    udp: false,
                },
            );
        }
        Ok(Acceptor {
            poll,
            signals,
            listeners,
        })
    }

    pub fn listeners(&self) -> &[Listener] {
        &self.listeners
    }

    /// Closes the listeners (at shutdown); the signals stay registered.
    pub fn close_listeners(&mut self) {
        self.listeners.clear();
    }

    /// Accepts and hands off connections, and answers signals, until shutdown is requested.
    pub fn run(
        &mut self,
        sh: &Shared,
        workers: &Workers,
        handshakes: &mut Handshakers,
    ) -> io::Result<()> {
        let mut events = Events::with_capacity(256);
        while sh.shutdown_requested() == Shutdown::None {
            if let Err(e) = self.poll.poll(&mut events, None) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            for ev in events.iter() {
                match ev.token() {
                    SIGNALS => {
                        for sig in self.signals.pending() {
                            signals::handle(sig, sh);
                        }
                    }
                    WAKE => {}
                    Token(i) => {
                        if let Some(l) = self.listeners.get(i) {
                            accept_all(l, sh, workers, handshakes);
                        }
                    }
                }
                if sh.shutdown_requested() != Shutdown::None {
                    break;
                }
            }
        }
        Ok(())
    }
}

/// Accepts until the listener would block.
fn accept_all(l: &Listener, sh: &Shared, workers: &Workers, handshakes: &mut Handshakers) {
    loop {
        let accepted = match l.accept(sh.tls()) {
            Ok(a) => a,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) => {
                warn!("accept failed: {e}");
                return;
            }
        };
        let mut stream = accepted.stream;
        if !sh.conns().admit(sh.settings().max_conns()) {
            let _ = stream.write(b"ERROR Too many open connections\r\n");
            continue;
        }
        let id = stream.id();
        let mut nc = NewConn {
            stream,
            id,
            addr: accepted.addr,
            listen_addr: l.name.clone(),
            admin: l.role == Role::Admin,
        };
        if matches!(nc.stream, Stream::Tls(_)) {
            match handshakes.take(nc) {
                Ok(()) => continue,
                Err(back) => nc = back,
            }
        }
        if !workers.dispatch().hand_off(nc) {
            sh.conns().closed();
        }
    }
}
