//! Owns: one client connection — its socket, read and write buffers, protocol detection, and the
//! loop that reads everything available, answers every complete request, and writes once.
//! Does not: decide request semantics (see `exec`) or own the event loop (see `worker`).

use std::io::{self, Read, Write};

use log::debug;

use super::stream::Stream;
use crate::exec::{self, Action, ConnRef, Ctx, Session};
use crate::protocol::ascii::Command;
use crate::protocol::watch::CloseReason;
use crate::protocol::{self, binary, text, Kind, Limits, Parsed};
use crate::state::logger::Ticket;
use crate::state::{Phase, Shared};
use crate::stats;

/// First read buffer size (memcached's `READ_BUFFER_SIZE`).
const READ_CHUNK: usize = 16 * 1024;
/// Stop parsing new requests while this much output is waiting for the client.
const OUT_HIGH_WATER: usize = 4 * 1024 * 1024;

/// What the worker must do with the connection after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Wait for readability.
    Read,
    /// Output is pending: wait for writability too.
    Write,
    /// Complete requests remain unprocessed (the `-R` budget ran out): come back soon.
    Yield,
    /// Credentials need a slow check: take them with `take_attempt`, answer with `auth_done`.
    Verify,
    /// `watch` succeeded: hand the connection to the watcher thread (`take_watch`).
    Watch,
    Close,
}

/// One connection.
#[derive(Debug)]
pub struct Conn {
    pub stream: Stream,
    pub id: i64,
    rbuf: Vec<u8>,
    rstart: usize,
    rend: usize,
    out: Vec<u8>,
    wpos: usize,
    kind: Option<Kind>,
    swallow: usize,
    closing: bool,
    eof: bool,
    session: Session,
    /// Accepted on the admin endpoint.
    admin: bool,
    /// An authentication attempt is being checked: no request is processed until it is answered.
    verifying: bool,
    /// Set when the connection goes away, so a queued check of its credentials is skipped.
    pub verify_cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    /// Unique per worker for the life of the process (file descriptors are reused at once), so a
    /// verification result can only ever reach the connection that asked for it.
    pub serial: u64,
    /// Processing stopped because too much output was waiting; resume once it is written.
    paused: bool,
    /// The client's address (TCP), for limiting failed logins per peer.
    pub peer_ip: Option<std::net::IpAddr>,
    /// The client's address and port (TCP), for `conn_*` log lines.
    pub peer: Option<std::net::SocketAddr>,
    /// The readiness interest registered with the worker's poll.
    pub interest: mio::Interest,
    /// The poll reported the peer's end closed: read until EOF rather than stop at a short read.
    pub peer_closing: bool,
    pub last_active: u32,
    pub last_cmd: std::sync::Arc<std::sync::atomic::AtomicU32>,
    /// Why the connection closes (`conn_close` log lines): an error unless something says else.
    pub close_reason: CloseReason,
    /// The watcher slot `watch` reserved, until the worker hands the connection over.
    watch: Option<Ticket>,
    /// Replies up to here count as sent: memcached writes them out after a retrieval or `mn`
    /// before it reads the next request (ferrocache writes once per batch), which decides
    /// whether a `watch` is pipelined behind other replies.
    sent_mark: usize,
    /// What the connection waits for, as `stats conns` shows it (written only on a change).
    phase: std::sync::Arc<std::sync::atomic::AtomicU8>,
    phase_shown: Phase,
}

impl Conn {
    pub fn new(
        stream: Stream,
        id: i64,
        now: u32,
        (last_cmd, phase): (
            std::sync::Arc<std::sync::atomic::AtomicU32>,
            std::sync::Arc<std::sync::atomic::AtomicU8>,
        ),
        admin: bool,
        serial: u64,
    ) -> Conn {
        Conn {
            stream,
            id,
            rbuf: Vec::new(),
            rstart: 0,
            rend: 0,
            out: Vec::new(),
            wpos: 0,
            kind: None,
            swallow: 0,
            closing: false,
            eof: false,
            session: Session::default(),
            admin,
            verifying: false,
            verify_cancel: None,
            serial,
            paused: false,
            peer_ip: None,
            peer: None,
            interest: mio::Interest::READABLE,
            peer_closing: false,
            last_active: now,
            last_cmd,
            close_reason: CloseReason::Error,
            watch: None,
            sent_mark: 0,
            phase,
            phase_shown: Phase::New,
        }
    }

    /// What a request on this connection executes against.
    fn ctx<'a>(&self, sh: &'a Shared, worker: usize) -> Ctx<'a> {
        Ctx::new(
            sh,
            ConnRef {
                udp_peer: None,
                id: self.id,
                worker,
                admin: self.admin,
            },
        )
    }

    /// Handles readiness: read, process, write, until there is nothing more to do now; then
    /// records what the connection waits for (`stats conns`).
    pub fn drive(&mut self, sh: &Shared, worker: usize, limits: &Limits, max_buf: usize) -> Next {
        let next = self.run(sh, worker, limits, max_buf);
        let phase = self.waits_for(next);
        if phase != self.phase_shown {
            self.phase_shown = phase;
            self.phase
                .store(phase as u8, std::sync::atomic::Ordering::Relaxed);
        }
        next
    }

    /// After `run`: output to write, nothing received yet, the next request (also when more are
    /// buffered to answer soon), a value to discard, the data of a request whose command
    /// line (or binary header) is buffered — everything complete has been processed, so a
    /// buffered line end belongs to an unfinished request — or the next request.
    fn waits_for(&self, next: Next) -> Phase {
        let rest = &self.rbuf[self.rstart..self.rend];
        if next == Next::Watch {
            Phase::Watch
        } else if next == Next::Write {
            Phase::Mwrite
        } else if self.kind.is_none() {
            Phase::New
        } else if next != Next::Read || self.verifying {
            Phase::Read
        } else if self.swallow > 0 {
            Phase::Swallow
        } else if match self.kind {
            Some(Kind::Binary) => rest.len() >= binary::HEADER_LEN,
            _ => rest.contains(&b'\n'),
        } {
            Phase::Nread
        } else {
            Phase::Read
        }
    }

    fn run(&mut self, sh: &Shared, worker: usize, limits: &Limits, max_buf: usize) -> Next {
        let ctx = self.ctx(sh, worker);
        let mut budget = sh.config().reqs_per_event;
        loop {
            let blocked = if self.closing || self.eof {
                true
            } else {
                match self.fill(ctx.stats, max_buf) {
                    Ok(b) => b,
                    Err(_) => return Next::Close,
                }
            };
            let before = (self.rstart, self.rend);
            let more = self.process(&ctx, limits, &mut budget);
            if self.flush(ctx.stats).is_err() {
                return Next::Close;
            }
            if self.watch.is_some() {
                return Next::Watch;
            }
            if self.verifying {
                // Even after a half-close the check finishes and is answered, then what is
                // buffered; a reset ends the connection (and cancels the check) in `fill`.
                return if self.session.pending.is_some() {
                    Next::Verify
                } else {
                    Next::Read
                };
            }
            if self.wpos < self.out.len() {
                return Next::Write;
            }
            if self.closing {
                return Next::Close;
            }
            if more {
                stats::bump(&ctx.stats.conn_yields);
                return Next::Yield;
            }
            if std::mem::take(&mut self.paused) {
                // The output that stopped processing is written: go on with what is buffered.
                continue;
            }
            if self.eof {
                return Next::Close;
            }
            if blocked {
                return Next::Read;
            }
            if before == (self.rstart, self.rend) && self.swallow == 0 {
                // The buffer is full and holds no complete request: none ever will.
                debug!(
                    "conn {}: read buffer full without a complete request; closing",
                    self.id
                );
                return Next::Close;
            }
        }
    }

    /// Reads until the socket would block (true) or the buffer is full (false).
    fn fill(&mut self, st: &stats::ThreadStats, max_buf: usize) -> io::Result<bool> {
        loop {
            if self.rstart == self.rend {
                self.rstart = 0;
                self.rend = 0;
            }
            if self.rend == self.rbuf.len() {
                if self.rstart > 0 {
                    self.rbuf.copy_within(self.rstart..self.rend, 0);
                    self.rend -= self.rstart;
                    self.rstart = 0;
                } else if self.rbuf.len() < max_buf {
                    let new = (self.rbuf.len() * 2).clamp(READ_CHUNK, max_buf);
                    self.rbuf.resize(new, 0);
                } else {
                    return Ok(false);
                }
                continue;
            }
            match self.stream.read(&mut self.rbuf[self.rend..]) {
                Ok(0) => {
                    self.eof = true;
                    self.close_reason = CloseReason::Normal;
                    return Ok(true);
                }
                Ok(n) => {
                    stats::add(&st.bytes_read, n as u64);
                    let space = self.rbuf.len() - self.rend;
                    self.rend += n;
                    // A short read emptied the socket: with edge-triggered readiness, more data
                    // will raise a new event, so skip the read that would only say EAGAIN.
                    if n < space && !self.peer_closing {
                        return Ok(true);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(true),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Answers complete requests in the buffer. True when some remain for later.
    fn process(&mut self, ctx: &Ctx<'_>, limits: &Limits, budget: &mut usize) -> bool {
        let now = ctx.shared.clock().now();
        loop {
            if self.swallow > 0 {
                let n = self.swallow.min(self.rend - self.rstart);
                self.rstart += n;
                self.swallow -= n;
                if self.swallow > 0 {
                    return false;
                }
            }
            if self.rstart == self.rend || self.closing || self.verifying || self.watch.is_some() {
                return false;
            }
            if self.out.len() - self.wpos > OUT_HIGH_WATER {
                self.paused = true;
                return false;
            }
            let kind = *self.kind.get_or_insert_with(|| {
                let k = protocol::detect(self.rbuf[self.rstart]);
                match ctx.shared.config().protocol {
                    crate::config::Protocol::Ascii => Kind::Text,
                    crate::config::Protocol::Binary => Kind::Binary,
                    crate::config::Protocol::Auto => k,
                }
            });
            if *budget == 0 {
                return true;
            }
            let input = &self.rbuf[self.rstart..self.rend];
            let (action, used) = match kind {
                Kind::Binary => match binary::parse(input, limits) {
                    Ok(Parsed::Incomplete) => return false,
                    Ok(Parsed::Complete(frame, used)) => {
                        let a =
                            exec::binary::execute(&frame, ctx, &mut self.session, &mut self.out);
                        let a = match a {
                            Action::Continue if frame.skip > 0 => Action::Swallow(frame.skip),
                            a => a,
                        };
                        (a, used)
                    }
                    Err(e) => {
                        debug!("conn {}: {e}; closing", self.id);
                        self.closing = true;
                        return false;
                    }
                },
                Kind::Text
                    if ctx.shared.config().auth_file.is_some() && !self.session.authenticated =>
                {
                    match text::parse_auth(input, limits) {
                        Ok(Parsed::Incomplete) => return false,
                        Ok(Parsed::Complete(line, used)) => (
                            exec::text::ascii_auth(line, &mut self.session, &mut self.out),
                            used,
                        ),
                        Err(e) => {
                            debug!("conn {}: {e}; closing", self.id);
                            self.closing = true;
                            return false;
                        }
                    }
                }
                Kind::Text => match protocol::parse_ascii(input, limits) {
                    Ok(Parsed::Incomplete) => return false,
                    Ok(Parsed::Complete(cmd, used)) => {
                        let retrieval = matches!(cmd, Command::Get { .. });
                        let a = if matches!(cmd, Command::Watch { .. })
                            && self.out.len() == self.sent_mark
                        {
                            // Everything before is sent as memcached sees it: `watch` is not
                            // pipelined behind it.
                            let mut own = Vec::new();
                            let a = exec::text::execute(cmd, ctx, &mut own);
                            self.out.extend_from_slice(&own);
                            a
                        } else {
                            exec::text::execute(cmd, ctx, &mut self.out)
                        };
                        if retrieval || a == Action::Flush {
                            self.sent_mark = self.out.len();
                        }
                        (a, used)
                    }
                    Err(e) => {
                        debug!("conn {}: {e}; closing", self.id);
                        self.closing = true;
                        return false;
                    }
                },
            };
            *budget = budget.saturating_sub(1);
            self.last_active = now;
            self.last_cmd
                .store(now, std::sync::atomic::Ordering::Relaxed);
            self.rstart += used;
            match action {
                Action::Continue | Action::Flush => {}
                Action::Close => {
                    self.closing = true;
                    self.close_reason = CloseReason::Normal;
                }
                Action::Swallow(n) => self.swallow = n,
                Action::Watch(ticket) => {
                    self.watch = Some(ticket);
                    return false;
                }
                Action::Shutdown(how) => {
                    ctx.shared.request_shutdown(how);
                    self.closing = true;
                    self.close_reason = CloseReason::Shutdown;
                    crate::server::signal_shutdown(how);
                }
                Action::Verify => {
                    if !self.verify_fast(ctx) {
                        self.verifying = true;
                        return false;
                    }
                }
            }
        }
    }

    /// Answers the pending attempt at once when no key-derivation function is needed.
    /// False: the attempt stays pending for the worker's verification pool.
    fn verify_fast(&mut self, ctx: &Ctx<'_>) -> bool {
        let Some(a) = self.session.pending.as_ref() else {
            return true;
        };
        let creds = ctx.shared.credentials();
        let ok = match &creds {
            Some(c) => c.check_fast(&a.user, &a.password),
            None => Some(false),
        };
        match ok {
            Some(ok) => {
                let reply = a.reply;
                self.session.pending = None;
                exec::binary::finish_auth(ok, reply, ctx, &mut self.session, &mut self.out);
                true
            }
            None => false,
        }
    }

    /// The watcher slot a `Next::Watch` reserved.
    pub fn take_watch(&mut self) -> Option<Ticket> {
        self.watch.take()
    }

    /// Output not yet written (replies before a `watch` the socket did not take yet).
    pub fn take_unsent(&mut self) -> Vec<u8> {
        let rest = self.out.split_off(self.wpos);
        self.out.clear();
        self.wpos = 0;
        self.sent_mark = 0;
        rest
    }

    /// The attempt a `Next::Verify` asked to check.
    pub fn take_attempt(&mut self) -> Option<crate::auth::Attempt> {
        self.session.pending.take()
    }

    /// Answers a checked attempt; the caller drives the connection again afterwards.
    pub fn auth_done(&mut self, ok: bool, reply: crate::auth::Reply, sh: &Shared, worker: usize) {
        if !self.verifying {
            return;
        }
        self.verify_cancel = None;
        let ctx = self.ctx(sh, worker);
        exec::binary::finish_auth(ok, reply, &ctx, &mut self.session, &mut self.out);
        self.verifying = false;
    }

    /// Writes pending output until done or the socket would block.
    pub fn flush(&mut self, st: &stats::ThreadStats) -> io::Result<()> {
        while self.wpos < self.out.len() {
            match self.stream.write(&self.out[self.wpos..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    stats::add(&st.bytes_written, n as u64);
                    self.wpos += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.out.clear();
        self.wpos = 0;
        self.sent_mark = 0;
        if self.out.capacity() > 1 << 20 {
            self.out.shrink_to(64 * 1024);
        }
        if self.rstart == self.rend && self.rbuf.len() > 1 << 20 {
            self.rbuf = Vec::new();
            self.rstart = 0;
            self.rend = 0;
        }
        Ok(())
    }

    /// Answers the pending attempt as failed without checking it (the verification pool is
    /// saturated or gone).
    pub fn auth_refused(&mut self, reply: crate::auth::Reply, sh: &Shared, worker: usize) {
        self.verifying = true;
        self.auth_done(false, reply, sh, worker);
    }

    /// True when the connection has unanswered output.
    pub fn has_output(&self) -> bool {
        self.wpos < self.out.len()
    }

    /// Marks the connection for closing after pending output (graceful shutdown).
    pub fn close_after_write(&mut self) {
        self.closing = true;
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if let Some(c) = &self.verify_cancel {
            c.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
}
