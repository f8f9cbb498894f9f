//! Owns: one client connection — its socket, read and write buffers (borrowed from the worker's
//! `Budget` while in use), protocol detection, what it answers when a budget limit is hit, and the
//! loop that reads everything available, answers every complete request, and writes once.
//! Does not: decide request semantics (see `exec`), count memory (see `budget`), choose the
//! answers to a spent budget (see `oom`) or own the event loop (see `worker`).
//! Long because: reading, the per-request loop, writing and the buffers they borrow are one
//! state machine over the same fields; splitting it would spread each transition over files.

use std::io::{self, Read, Write};

use log::debug;

use super::budget::{self, Budget, BUF, OUT_SOFT_CAP};
use super::oom::{self, charge};
use super::pinned::{Pinned, Sent};
use super::stream::Stream;
use crate::exec::{self, Action, ConnRef, Ctx, PinSink, Session};
use crate::protocol::ascii::Command;
use crate::protocol::watch::CloseReason;
use crate::protocol::{self, binary, text, Kind, Limits, Parsed};
use crate::state::logger::Ticket;
use crate::state::{Phase, Shared};
use crate::stats;

/// Bytes of metadump lines made per piece: under a pooled buffer's size, with room for the
/// line that crosses it (a 250-byte key URI-encoded is at most 750 bytes).
const DUMP_PIECE: usize = BUF - 1024;

/// Metadump pieces one drive sends before the worker turns to its other connections.
const DUMP_PIECES_PER_TURN: usize = 8;

/// What reading found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fill {
    /// The socket would block (or reached its end).
    Blocked,
    /// The buffer is full: answer what it holds (or, if it holds no complete request, grow it).
    Full,
    /// The request being received needs a larger buffer than the values-in-flight budget allows.
    NoRoom,
}

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
    /// Empty while idle; a pooled `BUF` buffer, or a larger one of its own while a large request
    /// is received (`grown`, charged to the budget's values in flight).
    rbuf: Vec<u8>,
    grown: bool,
    /// The full read buffer holds only part of a request: the next fill grows it.
    must_grow: bool,
    rstart: usize,
    rend: usize,
    /// Empty (no capacity) while nothing is to be written; else a pooled buffer or a larger one.
    out: Vec<u8>,
    wpos: usize,
    /// Large values of text gets, sent from the store at their places in `out`.
    pinned: Pinned,
    /// Response objects (memcached's unit, one per request, one per key of a get) in `out`.
    resps: usize,
    /// Close at once, dropping unsent output (memcached's stacked responses past the limit).
    abort: bool,
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
    /// Reading and processing stopped because too much output was waiting; resume once it is
    /// written.
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
    /// A `lru_crawler metadump` being sent: no request is processed until it is over.
    dump: Option<exec::admin::Metadump>,
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
            grown: false,
            must_grow: false,
            rstart: 0,
            rend: 0,
            out: Vec::new(),
            wpos: 0,
            pinned: Pinned::default(),
            resps: 0,
            abort: false,
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
            dump: None,
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
    pub fn drive(
        &mut self,
        sh: &Shared,
        worker: usize,
        limits: &Limits,
        max_buf: usize,
        budget: &mut Budget,
    ) -> Next {
        let next = self.run(sh, worker, limits, max_buf, budget);
        self.go_idle(budget);
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

    fn run(
        &mut self,
        sh: &Shared,
        worker: usize,
        limits: &Limits,
        max_buf: usize,
        mem: &mut Budget,
    ) -> Next {
        // Without a response-object limit, large values are pinned rather than copied (with one,
        // a get that runs out drops the replies stacked before it, copied ones only).
        let sink = PinSink::default();
        let ctx = self
            .ctx(sh, worker)
            .with_pins((!mem.limited()).then_some(&sink));
        let mut reqs = sh.config().reqs_per_event;
        let mut dump_pieces = DUMP_PIECES_PER_TURN;
        loop {
            let blocked = if self.closing || self.eof {
                true
            } else if self.unsent() > OUT_SOFT_CAP {
                // The client is not reading its replies: leave its requests in the socket.
                self.paused = true;
                true
            } else {
                match self.fill(ctx.stats, max_buf, mem) {
                    Ok(Fill::Blocked) => true,
                    Ok(Fill::Full) => false,
                    Ok(Fill::NoRoom) => {
                        if !self.refuse_inflight(&ctx, limits, mem) {
                            return Next::Close;
                        }
                        false
                    }
                    Err(_) => return Next::Close,
                }
            };
            let before = (self.rstart, self.rend);
            let more = self.process(&ctx, limits, &mut reqs, max_buf, mem);
            if self.abort {
                return Next::Close;
            }
            if self.flush(ctx.stats, mem).is_err() {
                return Next::Close;
            }
            if self.dump.is_some() && !self.closing {
                // The next piece of a metadump once the last one is written; other
                // connections get their turn after a few.
                if self.has_output() {
                    return Next::Write;
                }
                if dump_pieces == 0 {
                    stats::bump(&ctx.stats.conn_yields);
                    return Next::Yield;
                }
                dump_pieces -= 1;
                // A dump the client is reading is activity (`-o idle_timeout`): memcached never
                // times out a connection its crawler is writing to.
                self.last_active = sh.clock().now();
                self.ensure_out(mem);
                if let Some(d) = self.dump.as_mut() {
                    if d.step(&ctx, &mut self.out, DUMP_PIECE) {
                        self.dump = None;
                    }
                }
                continue;
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
            if self.has_output() {
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
            if before == (self.rstart, self.rend) && self.swallow == 0 && self.rbuf.len() < max_buf
            {
                // The full buffer holds no complete request: the one it starts needs more room.
                self.must_grow = true;
            } else if before == (self.rstart, self.rend) && self.swallow == 0 {
                // The buffer is full and holds no complete request: none ever will.
                debug!(
                    "conn {}: read buffer full without a complete request; closing",
                    self.id
                );
                return Next::Close;
            }
        }
    }

    /// Reads until the socket would block or the buffer is full. A connection without a read
    /// buffer borrows one (memcached closes it when its pool is spent: `read_buf_oom`); one whose
    /// request outgrows it moves to a larger buffer of its own, charged as a value in flight.
    fn fill(
        &mut self,
        st: &stats::ThreadStats,
        max_buf: usize,
        mem: &mut Budget,
    ) -> io::Result<Fill> {
        loop {
            if self.rstart == self.rend {
                self.rstart = 0;
                self.rend = 0;
            }
            if self.rbuf.is_empty() {
                match mem.lend_read() {
                    Some(b) => self.rbuf = b,
                    None => {
                        stats::bump(&st.read_buf_oom);
                        return Err(io::ErrorKind::OutOfMemory.into());
                    }
                }
            }
            if self.rend == self.rbuf.len() {
                if self.rstart > 0 {
                    self.rbuf.copy_within(self.rstart..self.rend, 0);
                    self.rend -= self.rstart;
                    self.rstart = 0;
                } else if !std::mem::take(&mut self.must_grow) {
                    // Answer what the buffer holds first; grow only for a request that needs it.
                    return Ok(Fill::Full);
                } else if self.rbuf.len() < max_buf {
                    let old = if self.grown { self.rbuf.len() } else { 0 };
                    let new = (self.rbuf.len() * 2).clamp(BUF, max_buf);
                    if !mem.grow_inflight(old, new) {
                        return Ok(Fill::NoRoom);
                    }
                    if self.grown {
                        self.rbuf.resize(new, 0);
                    } else {
                        let mut own = vec![0; new];
                        own[..self.rend].copy_from_slice(&self.rbuf[..self.rend]);
                        mem.give_read(std::mem::replace(&mut self.rbuf, own));
                        self.grown = true;
                    }
                } else {
                    return Ok(Fill::Full);
                }
                continue;
            }
            let read = self.stream.read(&mut self.rbuf[self.rend..]);
            // Only when no handshake thread ran the handshake (see `handshake`).
            self.stream.count_tls_event(st);
            match read {
                Ok(0) => {
                    self.eof = true;
                    self.close_reason = CloseReason::Normal;
                    return Ok(Fill::Blocked);
                }
                Ok(n) => {
                    stats::add(&st.bytes_read, n as u64);
                    let space = self.rbuf.len() - self.rend;
                    self.rend += n;
                    // A short read emptied the socket: with edge-triggered readiness, more data
                    // will raise a new event, so skip the read that would only say EAGAIN.
                    if n < space && !self.peer_closing {
                        return Ok(Fill::Blocked);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Fill::Blocked),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The request filling the read buffer needs more room than values in flight may take now
    /// (see `oom::refuse_inflight`). False: close.
    fn refuse_inflight(&mut self, ctx: &Ctx<'_>, limits: &Limits, mem: &mut Budget) -> bool {
        stats::bump(&ctx.stats.inflight_oom);
        let kind = self.kind(ctx);
        if kind == Kind::Text
            && ctx.shared.config().auth_file.is_some()
            && !self.session.authenticated
        {
            return false;
        }
        self.ensure_out(mem);
        let input = &self.rbuf[self.rstart..self.rend];
        let pending = (&mut self.out, &mut self.resps);
        let Some((used, skip)) = oom::refuse_inflight(kind, input, limits, ctx, pending, mem)
        else {
            return false;
        };
        self.rstart += used;
        self.swallow = skip;
        true
    }

    /// Answers complete requests in the buffer. True when some remain for later.
    /// Answers complete requests in the buffer. True when some remain for later.
    ///
    /// Each request takes a response object (each key of a text get one), as memcached's do:
    /// with `-o read_buf_mem_limit`, a request that finds none left closes the connection
    /// without writing its stacked replies, and a get that runs out midway answers
    /// `SERVER_ERROR out of memory writing get response` instead.
    fn process(
        &mut self,
        ctx: &Ctx<'_>,
        limits: &Limits,
        reqs: &mut usize,
        max_buf: usize,
        mem: &mut Budget,
    ) -> bool {
        let now = ctx.shared.clock().now();
        self.ensure_out(mem);
        let mut flush_now = false;
        loop {
            if self.swallow > 0 {
                let n = self.swallow.min(self.rend - self.rstart);
                self.rstart += n;
                self.swallow -= n;
                if self.swallow > 0 {
                    return false;
                }
            }
            if self.rstart == self.rend
                || self.closing
                || self.verifying
                || self.watch.is_some()
                || self.dump.is_some()
            {
                return false;
            }
            if self.unsent() > OUT_SOFT_CAP {
                stats::bump(&ctx.stats.conn_out_paused);
                self.paused = true;
                return false;
            }
            let kind = self.kind(ctx);
            if *reqs == 0 {
                return true;
            }
            let input = &self.rbuf[self.rstart..self.rend];
            let started = ctx.shared.timing().then(std::time::Instant::now);
            let mut cmd_kind = stats::CmdKind::Other;
            let (action, used) = match kind {
                Kind::Binary => match binary::parse(input, limits) {
                    Ok(Parsed::Incomplete) => return false,
                    Ok(Parsed::Complete(frame, used)) => {
                        if !charge(mem, &mut self.resps, 1, ctx.stats) {
                            self.abort = true;
                            return false;
                        }
                        flush_now = mem.limited() && frame.header.opcode == binary::op::NOOP;
                        cmd_kind = exec::metrics::binary_kind(frame.header.opcode);
                        let a =
                            exec::binary::execute(&frame, ctx, &mut self.session, &mut self.out);
                        if let Some(sink) = ctx.pins {
                            self.pinned.take(sink, mem.shared(), ctx.stats);
                        }
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
                        Ok(Parsed::Complete(line, used)) => {
                            if !charge(mem, &mut self.resps, 1, ctx.stats) {
                                self.abort = true;
                                return false;
                            }
                            (
                                exec::text::ascii_auth(line, &mut self.session, &mut self.out),
                                used,
                            )
                        }
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
                        cmd_kind = exec::metrics::text_kind(&cmd);
                        #[cfg(debug_assertions)]
                        super::testhooks::maybe_wedge(&cmd, ctx.shared);
                        flush_now =
                            mem.limited() && matches!(cmd, Command::Get { .. } | Command::MetaNoop);
                        let written = self.wpos > 0;
                        let resps = &mut self.resps;
                        let a = if matches!(cmd, Command::Watch { .. })
                            && self.out.len() == self.sent_mark
                        {
                            // Everything before is sent as memcached sees it: `watch` is not
                            // pipelined behind it.
                            let mut own = Vec::new();
                            let a = oom::execute_text(cmd, ctx, &mut own, written, resps, mem);
                            self.out.extend_from_slice(&own);
                            a
                        } else {
                            oom::execute_text(cmd, ctx, &mut self.out, written, resps, mem)
                        };
                        if let Some(sink) = ctx.pins {
                            self.pinned.take(sink, mem.shared(), ctx.stats);
                        }
                        let Some(a) = a else {
                            self.abort = true;
                            return false;
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
            if let Some(t0) = started {
                let all = ctx.shared.thread_latency();
                let ns = u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX);
                all[ctx.conn.worker % all.len()].record(cmd_kind, ns);
            }
            *reqs = reqs.saturating_sub(1);
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
                Action::Dump(d) => {
                    self.dump = Some(d);
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
            let pending = self.out.len() - self.wpos;
            if pending > budget::out_hard_cap(max_buf) {
                // One request's reply alone is larger than any client should ask for.
                stats::bump(&ctx.stats.conn_out_hard_cap);
                debug!(
                    "conn {}: {pending} bytes of replies unsent; closing",
                    self.id
                );
                self.abort = true;
                return false;
            }
            if std::mem::take(&mut flush_now) {
                // Under a limit, the replies up to a text get, `mn` or a binary no-op are written
                // before the next request is read, as memcached writes them (their response
                // objects go back before more are taken).
                if self.flush(ctx.stats, mem).is_err() {
                    self.abort = true;
                    return false;
                }
                if self.has_output() {
                    self.paused = true;
                    return false;
                }
                self.ensure_out(mem);
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

    /// Output not yet written (replies before a `watch` the socket did not take yet), pinned
    /// values copied in.
    pub fn take_unsent(&mut self) -> Vec<u8> {
        let rest = self.pinned.unsent_bytes(&self.out, self.wpos);
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

    /// Writes pending output until done or the socket would block; once all is written, its
    /// response objects and buffer go back to the budget.
    pub fn flush(&mut self, st: &stats::ThreadStats, mem: &mut Budget) -> io::Result<()> {
        if self.stream.pending() {
            // TLS records the socket did not take yet go first.
            match self.stream.flush() {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                r => r?,
            }
        }
        loop {
            if self.pinned.send(&mut self.stream, self.wpos, st)? == Sent::Blocked {
                return Ok(());
            }
            // Up to the next pinned value's place, or the end.
            let end = self.pinned.next_at().unwrap_or(self.out.len());
            if self.wpos >= end {
                break;
            }
            match self.stream.write(&self.out[self.wpos..end]) {
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
        self.wpos = 0;
        self.sent_mark = 0;
        mem.give_resps(std::mem::take(&mut self.resps));
        if self.out.capacity() > 0 {
            mem.give_out(std::mem::take(&mut self.out));
        }
        Ok(())
    }

    /// The protocol, decided by the first byte received (or by `-B`).
    fn kind(&mut self, ctx: &Ctx<'_>) -> Kind {
        *self.kind.get_or_insert_with(|| {
            let k = protocol::detect(self.rbuf[self.rstart]);
            match ctx.shared.config().protocol {
                crate::config::Protocol::Ascii => Kind::Text,
                crate::config::Protocol::Binary => Kind::Binary,
                crate::config::Protocol::Auto => k,
            }
        })
    }

    /// A pooled reply buffer to write into, unless one is held.
    fn ensure_out(&mut self, mem: &mut Budget) {
        if self.out.capacity() == 0 {
            self.out = mem.lend_out();
        }
    }

    /// After a drive: a read buffer holding nothing goes back to the budget (an idle connection
    /// holds none), and a grown one holding little moves back into a pooled one.
    fn go_idle(&mut self, mem: &mut Budget) {
        let left = self.rend - self.rstart;
        if left == 0 {
            self.rstart = 0;
            self.rend = 0;
            self.give_rbuf(mem);
        } else if self.grown && left <= BUF {
            if let Some(mut b) = mem.lend_read() {
                b[..left].copy_from_slice(&self.rbuf[self.rstart..self.rend]);
                mem.give_inflight(self.rbuf.len());
                self.rbuf = b;
                self.grown = false;
                self.rstart = 0;
                self.rend = left;
            }
        }
        if self.out.is_empty() && self.out.capacity() > 0 {
            mem.give_out(std::mem::take(&mut self.out));
        }
    }

    fn give_rbuf(&mut self, mem: &mut Budget) {
        let b = std::mem::take(&mut self.rbuf);
        if self.grown {
            mem.give_inflight(b.len());
            self.grown = false;
        } else if !b.is_empty() {
            mem.give_read(b);
        }
    }

    /// The connection leaves its worker (for the watcher thread): its read buffer and response
    /// objects go back to the budget; unsent output stays with it.
    pub fn leave(&mut self, mem: &mut Budget) {
        self.give_rbuf(mem);
        self.rstart = 0;
        self.rend = 0;
        mem.give_resps(std::mem::take(&mut self.resps));
    }

    /// The connection is closing: everything it holds goes back to the budget (and its pins to
    /// the store).
    pub fn release(&mut self, mem: &mut Budget) {
        self.pinned.clear();
        self.leave(mem);
        mem.give_out(std::mem::take(&mut self.out));
    }

    /// Answers the pending attempt as failed without checking it (the verification pool is
    /// saturated or gone).
    pub fn auth_refused(&mut self, reply: crate::auth::Reply, sh: &Shared, worker: usize) {
        self.verifying = true;
        self.auth_done(false, reply, sh, worker);
    }

    /// True when the connection has unanswered output.
    pub fn has_output(&self) -> bool {
        self.wpos < self.out.len() || !self.pinned.is_empty() || self.stream.pending()
    }

    /// Reply bytes not written yet, pinned values included.
    fn unsent(&self) -> usize {
        self.out.len() - self.wpos + self.pinned.unsent()
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
