//! Owns: the watcher thread (memcached's logger thread) — the connections `watch` turned into
//! watchers, each with its own bounded buffer (`watcher_logbuf_size`); each round it drains the
//! workers' log buffers (`state::Logger::collect`), renders every event once, offers the line to
//! each watcher of its stream (a line that does not fit after a write attempt is skipped and
//! counted, and the next line that fits is preceded by `skipped=N`), writes what the sockets
//! take, and closes watchers whose peer went away. It sleeps 1 ms to 50 ms between rounds
//! (longer while idle) and waits for a new watcher when there is none.
//! Does not: decide what is logged (see `state::logger`) or parse `watch` (see `exec::watch`).

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use super::conn::Conn;
use super::stream::Stream;
use crate::protocol::watch::{self, CloseReason, Event, Transport};
use crate::state::logger::{Entry, Ticket};
use crate::state::{Shared, Shutdown};

const MIN_SLEEP: Duration = Duration::from_millis(1);
const MAX_SLEEP: Duration = Duration::from_millis(50);
/// With no watcher, how often the thread looks for shutdown.
const IDLE_WAIT: Duration = Duration::from_millis(200);
/// Room kept free beside a line for its `skipped=N` line (as memcached).
const SKIP_ROOM: usize = 128;

/// A connection a worker hands over after its `watch` succeeded.
#[derive(Debug)]
pub struct NewWatcher {
    pub conn: Conn,
    pub ticket: Ticket,
}

/// The transport a connection's `conn_*` lines name.
pub fn transport(s: &Stream) -> Transport {
    match s {
        Stream::Tcp(_) | Stream::Tls(_) => Transport::Tcp,
        Stream::Unix(_) => Transport::Local,
    }
}

/// Starts the watcher thread; it ends once shutdown is requested.
pub fn start(sh: &Arc<Shared>) -> io::Result<(Sender<NewWatcher>, JoinHandle<()>)> {
    let (tx, rx) = crossbeam_channel::unbounded();
    let s = sh.clone();
    let h = std::thread::Builder::new()
        .name("watcher".into())
        .spawn(move || run(&s, &rx))?;
    Ok((tx, h))
}

/// One watcher: its connection, streams and pending output.
struct Watcher {
    conn: Conn,
    ticket: Ticket,
    buf: Vec<u8>,
    pos: usize,
    cap: usize,
    skipped: u64,
    /// A write this round could not make room: skip without trying again until next round.
    failed_flush: bool,
    /// Why it must close (set when its socket fails or its peer is gone).
    gone: Option<CloseReason>,
}

impl Watcher {
    fn new(mut nw: NewWatcher, cap: usize) -> Watcher {
        // Replies before the `watch` the socket did not take yet go first.
        let mut buf = nw.conn.take_unsent();
        buf.extend_from_slice(b"OK\r\n");
        Watcher {
            conn: nw.conn,
            ticket: nw.ticket,
            buf,
            pos: 0,
            cap,
            skipped: 0,
            failed_flush: false,
            gone: None,
        }
    }

    fn pending(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Adds `line` if it fits (writing first to make room). False: skipped.
    fn offer(&mut self, line: &[u8]) -> bool {
        while self.pending() + line.len() + SKIP_ROOM > self.cap {
            if self.failed_flush || self.gone.is_some() {
                self.skipped += 1;
                return false;
            }
            let before = self.pending();
            self.flush();
            if self.pending() == before {
                self.failed_flush = true;
            }
        }
        if self.pos > 0 && self.pos * 2 >= self.buf.len() {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        if self.skipped > 0 {
            let s = format!("skipped={}\n", self.skipped);
            self.buf.extend_from_slice(s.as_bytes());
            self.skipped = 0;
        }
        self.buf.extend_from_slice(line);
        true
    }

    /// Writes what the socket takes now.
    fn flush(&mut self) {
        while self.pending() > 0 && self.gone.is_none() {
            match self.conn.stream.write(&self.buf[self.pos..]) {
                Ok(0) => self.gone = Some(CloseReason::Error),
                Ok(n) => self.pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => self.gone = Some(CloseReason::Error),
            }
        }
        if self.pending() == 0 {
            self.buf.clear();
            self.pos = 0;
        }
    }

    /// Reads (and discards) what the peer sent, noticing when it closed.
    fn check_peer(&mut self) {
        let mut scratch = [0u8; 512];
        loop {
            match self.conn.stream.read(&mut scratch) {
                Ok(0) => {
                    self.gone = Some(CloseReason::Normal);
                    return;
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.gone = Some(CloseReason::Error);
                    return;
                }
            }
        }
    }
}

fn run(sh: &Shared, rx: &Receiver<NewWatcher>) {
    let cap = sh.config().ext.watcher_logbuf_size as usize;
    let mut watchers: Vec<Watcher> = Vec::new();
    let mut entries: Vec<Entry> = Vec::new();
    let mut line = String::new();
    let mut sleep = MIN_SLEEP;
    loop {
        if sh.shutdown_requested() != Shutdown::None {
            for w in watchers.drain(..) {
                let mut w = w;
                w.flush();
                close(sh, w, CloseReason::Shutdown);
            }
            return;
        }
        let wait = if watchers.is_empty() {
            IDLE_WAIT
        } else {
            sleep
        };
        match rx.recv_timeout(wait) {
            Ok(nw) => watchers.push(Watcher::new(nw, cap)),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                if watchers.is_empty() {
                    return;
                }
                std::thread::sleep(wait);
            }
        }
        while let Ok(nw) = rx.try_recv() {
            watchers.push(Watcher::new(nw, cap));
        }
        entries.clear();
        sh.logger().collect(&mut entries);
        let (mut sent, mut skipped) = (0u64, 0u64);
        for w in watchers.iter_mut() {
            w.failed_flush = false;
        }
        for e in &entries {
            let stream = e.event.stream();
            let mut rendered = false;
            for w in watchers.iter_mut() {
                if w.ticket.streams & stream == 0 || e.gid < w.ticket.min_gid {
                    continue;
                }
                if !rendered {
                    watch::render(&e.event, e.gid, e.secs, e.usecs, &mut line);
                    rendered = true;
                }
                if w.offer(line.as_bytes()) {
                    sent += 1;
                } else {
                    skipped += 1;
                }
            }
        }
        if sent + skipped > 0 {
            sh.logger().count_sent(sent, skipped);
        }
        let mut i = 0;
        while i < watchers.len() {
            let w = &mut watchers[i];
            w.check_peer();
            w.flush();
            match w.gone {
                Some(reason) => close(sh, watchers.swap_remove(i), reason),
                None => i += 1,
            }
        }
        sleep = if entries.is_empty() {
            (sleep + sleep / 8).min(MAX_SLEEP)
        } else {
            (sleep / 2).max(MIN_SLEEP)
        };
    }
}

/// Ends a watcher: frees its slot, logs its close, and drops its connection.
fn close(sh: &Shared, w: Watcher, reason: CloseReason) {
    sh.logger().remove_watcher(w.ticket.slot);
    sh.logger().log(Event::ConnClose {
        peer: w.conn.peer,
        transport: transport(&w.conn.stream),
        reason,
        cfd: w.conn.id,
    });
    sh.conns().unregister(w.conn.id);
    sh.conns().closed();
}
