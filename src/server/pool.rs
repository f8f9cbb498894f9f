//! Owns: the worker pool — starting the `-t` worker threads, handing each new connection to the
//! next worker round-robin (a channel plus the worker's waker), and waking and joining them at
//! shutdown.
//! Does not: run a worker's event loop (see `worker`).

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::Sender;
use log::error;
use mio::Waker;

use super::verify::Verifier;
use super::watchdog::Heartbeats;
use super::worker::{self, AuthLink, NewConn};
use crate::state::Shared;

/// The running workers.
#[allow(missing_debug_implementations)]
pub struct Workers {
    handles: Vec<JoinHandle<()>>,
    dispatch: Dispatch,
}

/// The hand-off to the workers, round-robin, for every thread that hands connections on (the
/// acceptor, the TLS handshake threads); clones share the rotation.
#[derive(Clone)]
#[allow(missing_debug_implementations)]
pub struct Dispatch {
    senders: Arc<[(Sender<NewConn>, Arc<Waker>)]>,
    next: Arc<AtomicUsize>,
}

impl Dispatch {
    /// Gives the connection to the next worker. False when that worker is gone.
    pub fn hand_off(&self, nc: NewConn) -> bool {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, waker) = &self.senders[i % self.senders.len()];
        if tx.send(nc).is_ok() {
            let _ = waker.wake();
            true
        } else {
            false
        }
    }
}

impl Workers {
    /// Starts `sh.config().threads` workers, each handing slow credential checks to `verifier`.
    /// `udp[i]` are the UDP sockets worker `i` reads; worker `i` bumps heartbeat `i`.
    pub fn start(
        sh: &Arc<Shared>,
        verifier: &Verifier,
        udp: Vec<Vec<super::udp::Port>>,
        beats: &Arc<Heartbeats>,
        watchers: &Sender<super::watcher::NewWatcher>,
    ) -> io::Result<Workers> {
        let mut handles = Vec::new();
        let mut senders = Vec::new();
        let mut udp = udp.into_iter();
        for i in 0..sh.config().threads {
            let ports = udp.next().unwrap_or_default();
            let (wpoll, wwaker) = worker::new_poll()?;
            let (tx, rx) = crossbeam_channel::unbounded();
            let s = sh.clone();
            let beats = beats.clone();
            let link = AuthLink {
                verifier: verifier.clone(),
                waker: wwaker.clone(),
                watchers: watchers.clone(),
            };
            let h = std::thread::Builder::new()
                .name(format!("worker-{i}"))
                .spawn(move || {
                    if let Err(e) = worker::run(i, wpoll, rx, s, link, ports, beats) {
                        error!("worker {i} failed: {e}");
                    }
                })?;
            handles.push(h);
            senders.push((tx, wwaker));
        }
        Ok(Workers {
            handles,
            dispatch: Dispatch {
                senders: senders.into(),
                next: Arc::default(),
            },
        })
    }

    /// The hand-off to these workers.
    pub fn dispatch(&self) -> &Dispatch {
        &self.dispatch
    }

    /// A function that wakes every worker once (for the watchdog).
    pub fn waker(&self) -> impl Fn() + Send + 'static {
        let wakers: Vec<Arc<Waker>> = self
            .dispatch
            .senders
            .iter()
            .map(|(_, w)| w.clone())
            .collect();
        move || {
            for w in &wakers {
                let _ = w.wake();
            }
        }
    }

    /// After shutdown was requested: wakes every worker so it sees the request, and waits until
    /// each has finished its connections.
    pub fn join(self) {
        for (_, w) in self.dispatch.senders.iter() {
            let _ = w.wake();
        }
        for h in self.handles {
            let _ = h.join();
        }
    }
}
