//! Owns: the metrics endpoint (`--metrics-listen`, or a socket systemd passes as `metrics`) — a
//! thread with its own `mio::Poll` over its listeners and at most `MAX_CONNS` HTTP connections,
//! answering `GET /metrics` with a fresh `exec::metrics::Snapshot`, one request at a time per
//! connection; a connection is closed after an error response, at its peer's close, and
//! `IDLE` after it was accepted or last answered (bytes trickling in do not extend it).
//! Does not: parse HTTP (see `protocol::http`) or choose metric names (see `exec::metrics`).
//!
//! Its own thread, not the acceptor's or a worker's: a scrape walks every class of the store,
//! and cache clients should not wait behind it. Client ports never answer HTTP.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token, Waker};

use super::listeners::{Listener, Socket};
use crate::exec::metrics::{render, Snapshot};
use crate::protocol::http::{self, Request, MAX_HEAD};
use crate::state::{Shared, Shutdown};

/// Connections served at once; more are closed as soon as accepted.
pub const MAX_CONNS: usize = 32;
/// How long a connection may stay without a request answered.
pub const IDLE: Duration = Duration::from_secs(10);

const WAKE: Token = Token(usize::MAX);
/// Connection `i` is `Token(CONN_BASE + i)`; listener `i` is `Token(i)`.
const CONN_BASE: usize = 1 << 16;

/// The running endpoint.
#[derive(Debug)]
pub struct Endpoint {
    handle: JoinHandle<()>,
    waker: Arc<Waker>,
}

impl Endpoint {
    /// After shutdown was requested: wakes the thread and waits for it to close everything.
    pub fn stop(self) {
        let _ = self.waker.wake();
        let _ = self.handle.join();
    }
}

/// Starts the endpoint on `listeners` (none: no thread).
pub fn start(listeners: Vec<Listener>, sh: &Arc<Shared>) -> io::Result<Option<Endpoint>> {
    if listeners.is_empty() {
        return Ok(None);
    }
    let poll = Poll::new()?;
    let waker = Arc::new(Waker::new(poll.registry(), WAKE)?);
    let mut tcp = Vec::new();
    for l in listeners {
        info!("metrics endpoint on {}", l.name);
        match l.socket {
            Socket::Tcp(mut t) => {
                poll.registry()
                    .register(&mut t, Token(tcp.len()), Interest::READABLE)?;
                tcp.push(t);
            }
            Socket::Unix(_) => warn!("metrics endpoint {}: not TCP; ignored", l.name),
        }
    }
    sh.start_timing();
    let sh = sh.clone();
    let handle = std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || run(poll, tcp, &sh))?;
    Ok(Some(Endpoint { handle, waker }))
}

/// One HTTP connection.
struct Conn {
    stream: TcpStream,
    /// Bytes of requests not yet answered (at most `MAX_HEAD`).
    buf: Vec<u8>,
    out: Vec<u8>,
    wpos: usize,
    close_after: bool,
    deadline: Instant,
}

fn run(poll: Poll, listeners: Vec<mio::net::TcpListener>, sh: &Shared) {
    let mut poll = poll;
    let mut conns: slab::Slab<Conn> = slab::Slab::new();
    let mut events = Events::with_capacity(64);
    while sh.shutdown_requested() == Shutdown::None {
        let timeout = (!conns.is_empty()).then_some(Duration::from_secs(1));
        if let Err(e) = poll.poll(&mut events, timeout) {
            if e.kind() != io::ErrorKind::Interrupted {
                warn!("metrics endpoint: {e}");
                return;
            }
        }
        for ev in events.iter() {
            match ev.token() {
                WAKE => {}
                Token(i) if i < CONN_BASE => {
                    if let Some(l) = listeners.get(i) {
                        accept_all(l, &mut poll, &mut conns);
                    }
                }
                Token(t) => {
                    let i = t - CONN_BASE;
                    let keep = conns.get_mut(i).is_some_and(|c| drive(c, sh));
                    if !keep && conns.contains(i) {
                        close(&poll, conns.remove(i));
                    }
                }
            }
        }
        let now = Instant::now();
        let idle: Vec<usize> = conns
            .iter()
            .filter(|(_, c)| c.deadline <= now)
            .map(|(i, _)| i)
            .collect();
        for i in idle {
            debug!("metrics endpoint: closing an idle connection");
            close(&poll, conns.remove(i));
        }
    }
}

fn close(poll: &Poll, mut c: Conn) {
    let _ = poll.registry().deregister(&mut c.stream);
}

fn accept_all(l: &mio::net::TcpListener, poll: &mut Poll, conns: &mut slab::Slab<Conn>) {
    loop {
        let mut stream = match l.accept() {
            Ok((s, _)) => s,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) => {
                warn!("metrics endpoint: accept failed: {e}");
                return;
            }
        };
        if conns.len() >= MAX_CONNS {
            debug!("metrics endpoint: {MAX_CONNS} connections open; closing a new one");
            continue;
        }
        let entry = conns.vacant_entry();
        let token = Token(CONN_BASE + entry.key());
        if poll
            .registry()
            .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
            .is_err()
        {
            continue;
        }
        entry.insert(Conn {
            stream,
            buf: Vec::new(),
            out: Vec::new(),
            wpos: 0,
            close_after: false,
            deadline: Instant::now() + IDLE,
        });
    }
}

/// Writes what is pending, answers buffered requests, reads more; until the socket would
/// block. False: close the connection.
fn drive(c: &mut Conn, sh: &Shared) -> bool {
    let mut chunk = [0u8; 4096];
    loop {
        while c.wpos < c.out.len() {
            match c.stream.write(&c.out[c.wpos..]) {
                Ok(0) => return false,
                Ok(n) => c.wpos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        c.out.clear();
        c.wpos = 0;
        if c.close_after {
            return false;
        }
        if let Some((req, used)) = http::parse(&c.buf) {
            c.buf.drain(..used.min(c.buf.len()));
            answer(c, req, sh);
            continue;
        }
        // `parse` answers once MAX_HEAD bytes are buffered, so there is room.
        let room = MAX_HEAD.saturating_sub(c.buf.len()).min(chunk.len());
        match c.stream.read(&mut chunk[..room]) {
            Ok(0) => return false,
            Ok(n) => c.buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}

fn answer(c: &mut Conn, req: Request, sh: &Shared) {
    match req {
        Request::Metrics { head, keep_alive } => {
            let body = render(&Snapshot::take(sh));
            let h = http::response_head(
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                body.len(),
                keep_alive,
            );
            c.out.extend_from_slice(h.as_bytes());
            if !head {
                c.out.extend_from_slice(body.as_bytes());
            }
            c.close_after = !keep_alive;
            c.deadline = Instant::now() + IDLE;
        }
        Request::Error(status) => {
            let body = format!("{}\n", status.line());
            let h = http::response_head(status.line(), "text/plain", body.len(), false);
            c.out.extend_from_slice(h.as_bytes());
            c.out.extend_from_slice(body.as_bytes());
            c.close_after = true;
            c.buf.clear();
        }
    }
}
