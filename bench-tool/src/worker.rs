//! Owns: one load thread: its mio event loop, its connections, pipelined request issue and reply matching.
//! Long because: one connection's state machine (issue, partial reads, reply matching, reconnects) is one
//! loop whose parts share the connection's buffers; split, each part would take the whole state.
//!
//! Each connection keeps up to `pipeline` requests in flight. Requests are encoded into a reused write buffer
//! and sent with as few write calls as the socket allows; replies are read until `WouldBlock` into a reused read
//! buffer and matched, in order, against the requests in flight. Nothing is allocated per request.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Barrier, Mutex};
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use crate::config::Config;
use crate::proto::{self, ErrorKind, Protocol, Reply};
use crate::stats::{Errors, Perf};
use crate::tls::Link;
use crate::workload::{KeySource, KeyTable, Lane, ValueGen};

/// Phases published by the main thread.
pub const PHASE_WARMUP: u8 = 0;
pub const PHASE_MEASURE: u8 = 1;
pub const PHASE_STOP: u8 = 2;

/// Initial read buffer size per connection (grows for large values).
const READ_BUF: usize = 64 * 1024;
/// Longest the loop sleeps in `poll` before looking at the phase again.
const POLL_TICK: Duration = Duration::from_millis(20);
/// Validation failures logged in detail per thread.
const LOGGED_FAILURES: u64 = 5;

/// What a phase does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Store every key once, sequentially.
    Preload,
    /// The configured mix, for a duration or a request count.
    Run,
}

/// Everything the load threads share read-only.
pub struct Bench {
    pub cfg: Config,
    pub keys: KeyTable,
    pub values: ValueGen,
}

/// Coordination between the main thread and the load threads.
pub struct Shared {
    pub phase: AtomicU8,
    /// Completed requests per thread (all phases), for progress display.
    pub ops: Vec<AtomicU64>,
    pub errors: Vec<AtomicU64>,
    /// Threads that have left their loop.
    pub finished: AtomicUsize,
    /// All threads connected (or failed to); the main thread starts its clocks after this.
    pub connected: Barrier,
    pub connect_failed: AtomicBool,
    pub connect_error: Mutex<Option<String>>,
}

impl Shared {
    pub fn new(threads: usize, phase: u8) -> Self {
        Shared {
            phase: AtomicU8::new(phase),
            ops: (0..threads).map(|_| AtomicU64::new(0)).collect(),
            errors: (0..threads).map(|_| AtomicU64::new(0)).collect(),
            finished: AtomicUsize::new(0),
            connected: Barrier::new(threads + 1),
            connect_failed: AtomicBool::new(false),
            connect_error: Mutex::new(None),
        }
    }
}

/// What a thread hands back.
pub struct ThreadResult {
    pub perf: Perf,
    pub errors: Errors,
    /// When the thread stopped issuing (quota done, stop seen, or all connections lost).
    pub end: Instant,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Set,
    Get,
}

/// A request in flight.
struct Pending {
    kind: Kind,
    start: Instant,
    /// The key (single-key requests).
    key: u32,
    /// Multi-get keys live in `Tracker::mkeys[slot * multiget ..][.. nkeys]`.
    slot: u32,
    nkeys: u16,
    /// Next key position expected to be answered (replies arrive in request order).
    cursor: u16,
    hits: u16,
    /// Completed by a single value/miss reply (meta/binary single get) rather than by an end marker.
    ends_on_value: bool,
}

/// Per-thread issue limits.
struct Gate {
    measuring: bool,
    /// Requests this thread may still start in the measured phase (`None`: unlimited).
    remaining: Option<u64>,
    /// Fixed rate: one request per `interval`, the next one due at `due`.
    pace: Option<(Duration, Instant)>,
}

impl Gate {
    /// Whether one more request may start now; returns the time its latency counts from (its
    /// scheduled time under a fixed rate, so a late start still counts as waiting).
    #[inline]
    fn take(&mut self, now: Instant) -> Option<Instant> {
        let start = match &mut self.pace {
            Some((interval, due)) => {
                if now < *due {
                    return None;
                }
                let at = *due;
                *due += *interval;
                at
            }
            None => now,
        };
        match (&mut self.remaining, self.measuring) {
            (Some(0), true) => None,
            (Some(r), true) => {
                *r -= 1;
                Some(start)
            }
            _ => Some(start),
        }
    }

    /// How long until the next paced request is due (None: not paced).
    fn wait(&self, now: Instant) -> Option<Duration> {
        self.pace.map(|(_, due)| due.saturating_duration_since(now))
    }

    fn exhausted(&self) -> bool {
        self.measuring && self.remaining == Some(0)
    }
}

/// Thread-local counters, passed around together.
struct Counters {
    perf: Perf,
    errors: Errors,
    measuring: bool,
    /// Completed requests in all phases (progress display).
    completed: u64,
    logged: u64,
}

impl Counters {
    fn validation_failure(&mut self, what: std::fmt::Arguments<'_>) {
        self.errors.validation += 1;
        if self.logged < LOGGED_FAILURES {
            self.logged += 1;
            log::error!("validation: {what}");
        }
    }
}

/// In-flight request bookkeeping for one connection.
struct Tracker {
    inflight: VecDeque<Pending>,
    mkeys: Vec<u32>,
    next_slot: u32,
    slots: u32,
}

enum Step {
    Continue,
    /// The reply stream does not fit the requests; drop the connection.
    Broken(String),
}

impl Tracker {
    fn complete(&mut self, now: Instant, c: &mut Counters) {
        let p = self.inflight.pop_front().expect("request in flight");
        c.completed += 1;
        if !c.measuring {
            return;
        }
        c.perf.ops += 1;
        c.perf
            .record_latency(now.saturating_duration_since(p.start).as_nanos() as u64);
        match p.kind {
            Kind::Set => c.perf.sets += 1,
            Kind::Get => {
                c.perf.gets += 1;
                c.perf.get_keys += u64::from(p.nkeys);
                c.perf.hits += u64::from(p.hits);
                c.perf.misses += u64::from(p.nkeys - p.hits);
            }
        }
    }

    fn handle(&mut self, reply: Reply<'_>, now: Instant, b: &Bench, c: &mut Counters) -> Step {
        let proto = b.cfg.protocol;
        let multiget = b.cfg.multiget;
        let Some(p) = self.inflight.front_mut() else {
            return Step::Broken(format!("reply with no request in flight: {reply:?}"));
        };
        match reply {
            Reply::Value { key, data, opaque } => {
                if p.kind != Kind::Get {
                    return Step::Broken("value reply to a store".into());
                }
                let idx = match key {
                    Some(k) => {
                        let Some(idx) = b.keys.index_of(k) else {
                            c.validation_failure(format_args!(
                                "reply names a key never asked for: {:?}",
                                String::from_utf8_lossy(k)
                            ));
                            return Step::Continue;
                        };
                        let base = p.slot as usize * multiget;
                        let asked = if p.nkeys == 1 {
                            std::slice::from_ref(&p.key)
                        } else {
                            &self.mkeys[base..base + usize::from(p.nkeys)]
                        };
                        match asked[usize::from(p.cursor)..]
                            .iter()
                            .position(|&a| a == idx)
                        {
                            Some(off) => p.cursor += off as u16 + 1,
                            None => {
                                c.validation_failure(format_args!(
                                    "reply for key {idx} which is not (or no longer) pending"
                                ));
                                return Step::Continue;
                            }
                        }
                        idx
                    }
                    None if p.nkeys == 1 => p.key,
                    None => return Step::Broken("multi-get value without its key".into()),
                };
                if proto == Protocol::Binary && opaque != Some(idx) {
                    c.validation_failure(format_args!(
                        "binary reply opaque {opaque:?} for key {idx}"
                    ));
                } else if b.values.validate(idx, data) {
                    p.hits += 1;
                } else {
                    c.validation_failure(format_args!(
                        "key {idx}: got {} bytes not written by this tool: {:?}",
                        data.len(),
                        String::from_utf8_lossy(&data[..data.len().min(40)])
                    ));
                }
                if p.ends_on_value {
                    self.complete(now, c);
                }
            }
            Reply::Miss { .. } => {
                if p.kind != Kind::Get {
                    return Step::Broken("miss reply to a store".into());
                }
                if p.ends_on_value {
                    self.complete(now, c);
                }
            }
            Reply::End => {
                if p.kind != Kind::Get || p.ends_on_value {
                    return Step::Broken("unexpected end-of-retrieval reply".into());
                }
                self.complete(now, c);
            }
            Reply::Stored => {
                if p.kind != Kind::Set {
                    return Step::Broken("store reply to a get".into());
                }
                self.complete(now, c);
            }
            Reply::NotStored => {
                if p.kind != Kind::Set {
                    return Step::Broken("not-stored reply to a get".into());
                }
                c.errors.not_stored += 1;
                self.complete(now, c);
            }
            Reply::Error { kind, msg } => {
                match kind {
                    ErrorKind::Generic => c.errors.error += 1,
                    ErrorKind::Client => c.errors.client_error += 1,
                    ErrorKind::Server | ErrorKind::Status(_) => c.errors.server_error += 1,
                }
                log::debug!("error reply {kind:?}: {}", String::from_utf8_lossy(msg));
                // In a quiet meta/binary multi-get an error answers one key; the end marker still follows.
                let quiet_batch =
                    p.kind == Kind::Get && !p.ends_on_value && proto != Protocol::Text;
                if !quiet_batch {
                    self.complete(now, c);
                }
            }
        }
        Step::Continue
    }
}

struct Conn {
    stream: Link,
    alive: bool,
    rbuf: Vec<u8>,
    rhead: usize,
    rtail: usize,
    wbuf: Vec<u8>,
    wpos: usize,
    tracker: Tracker,
    source: KeySource,
    /// Position in the SET:GET cycle.
    mix_pos: u32,
    /// Preload: every request is a store.
    sets_only: bool,
}

impl Conn {
    fn kill(&mut self, why: &str) {
        if self.alive {
            log::warn!("connection dropped: {why}");
            self.alive = false;
            self.tracker.inflight.clear();
        }
    }

    fn on_readable(&mut self, b: &Bench, c: &mut Counters) {
        let now = Instant::now();
        while self.alive {
            if self.rtail == self.rbuf.len() {
                if self.rhead > 0 {
                    self.rbuf.copy_within(self.rhead..self.rtail, 0);
                    self.rtail -= self.rhead;
                    self.rhead = 0;
                } else {
                    let n = self.rbuf.len() * 2;
                    self.rbuf.resize(n, 0);
                }
            }
            match self.stream.read(&mut self.rbuf[self.rtail..]) {
                Ok(0) => {
                    c.errors.connection += 1;
                    self.kill("closed by server");
                }
                Ok(n) => {
                    self.rtail += n;
                    if c.measuring {
                        c.perf.bytes_in += n as u64;
                    }
                    self.parse_replies(now, b, c);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    c.errors.connection += 1;
                    self.kill(&format!("read: {e}"));
                }
            }
        }
    }

    fn parse_replies(&mut self, now: Instant, b: &Bench, c: &mut Counters) {
        while self.rhead < self.rtail {
            match proto::parse(b.cfg.protocol, &self.rbuf[self.rhead..self.rtail]) {
                Ok(Some((reply, used))) => {
                    if let Step::Broken(why) = self.tracker.handle(reply, now, b, c) {
                        c.errors.protocol += 1;
                        self.kill(&why);
                        return;
                    }
                    self.rhead += used;
                }
                Ok(None) => break,
                Err(e) => {
                    c.errors.protocol += 1;
                    self.kill(&e.0);
                    return;
                }
            }
        }
        if self.rhead == self.rtail {
            self.rhead = 0;
            self.rtail = 0;
        }
    }

    /// Tops the pipeline up. Returns false once the key source is exhausted (preload done).
    fn fill(&mut self, b: &Bench, gate: &mut Gate) -> bool {
        let cfg = &b.cfg;
        let mut now = None;
        while self.alive && self.tracker.inflight.len() < cfg.pipeline {
            let cycle = cfg.ratio_set + cfg.ratio_get;
            let kind = if self.sets_only || self.mix_pos < cfg.ratio_set {
                Kind::Set
            } else {
                Kind::Get
            };
            let t = *now.get_or_insert_with(Instant::now);
            let Some(start) = gate.take(t) else {
                break;
            };
            let Some(first) = self.source.next_key() else {
                return false;
            };
            self.mix_pos = (self.mix_pos + 1) % cycle;
            let slot = self.tracker.next_slot;
            self.tracker.next_slot = (slot + 1) % self.tracker.slots;
            let mut pending = Pending {
                kind,
                start,
                key: first,
                slot,
                nkeys: 1,
                cursor: 0,
                hits: 0,
                ends_on_value: false,
            };
            match kind {
                Kind::Set => {
                    proto::encode_set(cfg.protocol, &mut self.wbuf, &b.keys, &b.values, first)
                }
                Kind::Get => {
                    let n = cfg.multiget;
                    let base = slot as usize * n;
                    self.tracker.mkeys[base] = first;
                    for i in 1..n {
                        // Endless patterns never run dry; preload never issues gets.
                        self.tracker.mkeys[base + i] = self.source.next_key().unwrap_or(first);
                    }
                    let keys = &self.tracker.mkeys[base..base + n];
                    proto::encode_get(cfg.protocol, &mut self.wbuf, &b.keys, keys);
                    pending.nkeys = n as u16;
                    pending.ends_on_value = n == 1 && cfg.protocol != Protocol::Text;
                }
            }
            self.tracker.inflight.push_back(pending);
        }
        true
    }

    fn flush(&mut self, c: &mut Counters) {
        // TLS records a full socket kept back go first.
        if let Err(e) = self.stream.flush() {
            c.errors.connection += 1;
            self.kill(&format!("write: {e}"));
        }
        while self.alive && self.wpos < self.wbuf.len() {
            match self.stream.write(&self.wbuf[self.wpos..]) {
                Ok(0) => {
                    c.errors.connection += 1;
                    self.kill("write returned 0");
                }
                Ok(n) => {
                    self.wpos += n;
                    if c.measuring {
                        c.perf.bytes_out += n as u64;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    c.errors.connection += 1;
                    self.kill(&format!("write: {e}"));
                }
            }
        }
        self.wbuf.clear();
        self.wpos = 0;
    }
}

/// Opens connection `c` of thread `tid`, with its lane of the key space.
fn connect(b: &Bench, tid: usize, c: usize, mode: Mode) -> Result<Conn, String> {
    let cfg = &b.cfg;
    let total = cfg.threads * cfg.conns;
    let servers = cfg.servers.len();
    let g = tid * cfg.conns + c;
    let server = g % servers;
    let lane = Lane {
        server: server as u32,
        servers: servers as u32,
        rank: (g / servers) as u32,
        peers: total.saturating_sub(server).div_ceil(servers) as u32,
    };
    let addr = cfg.servers[server];
    let (session, std_stream) = match &cfg.tls {
        Some(config) => {
            let (tls, s) = crate::tls::handshake(addr, config, Duration::from_secs(5))
                .map_err(|e| format!("TLS connect to {addr}: {e}"))?;
            (Some(tls), s)
        }
        None => (
            None,
            std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
                .map_err(|e| format!("connect to {addr}: {e}"))?,
        ),
    };
    std_stream
        .set_nodelay(true)
        .and_then(|()| std_stream.set_nonblocking(true))
        .map_err(|e| format!("socket options for {addr}: {e}"))?;
    let sock = TcpStream::from_std(std_stream);
    let stream = match session {
        Some(tls) => Link::Tls(Box::new((tls, sock))),
        None => Link::Plain(sock),
    };
    let conn_seed = crate::workload::mix64(cfg.seed ^ (g as u64).wrapping_mul(0x1000_0001));
    let source = match mode {
        Mode::Preload => KeySource::once(b.keys.count(), lane),
        Mode::Run => KeySource::new(cfg.pattern, b.keys.count(), lane, conn_seed),
    };
    let cycle = cfg.ratio_set + cfg.ratio_get;
    Ok(Conn {
        stream,
        alive: true,
        rbuf: vec![0; READ_BUF],
        rhead: 0,
        rtail: 0,
        wbuf: Vec::with_capacity(16 * 1024),
        wpos: 0,
        tracker: Tracker {
            inflight: VecDeque::with_capacity(cfg.pipeline),
            mkeys: vec![0; cfg.pipeline * cfg.multiget],
            next_slot: 0,
            slots: cfg.pipeline as u32,
        },
        source,
        mix_pos: (g as u32) % cycle,
        sets_only: mode == Mode::Preload,
    })
}

/// Body of load thread `tid`. Connects, meets the others at the barrier, then runs until told to stop,
/// until its share of `--requests` is done, or (preload) until its keys are all stored.
pub fn run(b: &Bench, shared: &Shared, tid: usize, mode: Mode) -> ThreadResult {
    let cfg = &b.cfg;
    let mut c = Counters {
        perf: Perf::new(),
        errors: Errors::default(),
        measuring: false,
        completed: 0,
        logged: 0,
    };
    let setup = (|| -> Result<(Poll, Vec<Conn>), String> {
        let poll = Poll::new().map_err(|e| format!("poll: {e}"))?;
        let mut conns = Vec::with_capacity(cfg.conns);
        for i in 0..cfg.conns {
            let mut conn = connect(b, tid, i, mode)?;
            poll.registry()
                .register(
                    &mut conn.stream,
                    Token(i),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .map_err(|e| format!("register: {e}"))?;
            conns.push(conn);
        }
        Ok((poll, conns))
    })();
    let (mut poll, mut conns) = match setup {
        Ok(s) => s,
        Err(e) => {
            shared.connect_failed.store(true, Ordering::SeqCst);
            shared.connect_error.lock().expect("lock").get_or_insert(e);
            c.errors.connection += 1;
            shared.connected.wait();
            shared.finished.fetch_add(1, Ordering::SeqCst);
            return ThreadResult {
                perf: c.perf,
                errors: c.errors,
                end: Instant::now(),
            };
        }
    };
    shared.connected.wait();

    let quota = match mode {
        Mode::Preload => None,
        Mode::Run => cfg.requests.map(|n| {
            let t = cfg.threads as u64;
            n / t + u64::from((tid as u64) < n % t)
        }),
    };
    let pace = cfg.rate.filter(|_| mode == Mode::Run).map(|r| {
        (
            Duration::from_secs_f64(cfg.threads as f64 / r),
            Instant::now(),
        )
    });
    let mut gate = Gate {
        measuring: false,
        remaining: quota,
        pace,
    };
    let mut events = Events::with_capacity(1024);
    let mut exhausted = vec![false; conns.len()];
    let mut end = Instant::now();
    if shared.phase.load(Ordering::Relaxed) == PHASE_MEASURE {
        c.measuring = true;
        gate.measuring = true;
    }
    for (i, conn) in conns.iter_mut().enumerate() {
        exhausted[i] = !conn.fill(b, &mut gate);
        conn.flush(&mut c);
    }
    loop {
        let phase = shared.phase.load(Ordering::Relaxed);
        if phase == PHASE_STOP || shared.connect_failed.load(Ordering::Relaxed) {
            end = Instant::now();
            break;
        }
        if phase == PHASE_MEASURE && !c.measuring {
            c.measuring = true;
            gate.measuring = true;
            c.perf.reset();
        }
        let idle = conns
            .iter()
            .all(|k| !k.alive || k.tracker.inflight.is_empty());
        let no_more = gate.exhausted()
            || conns
                .iter()
                .enumerate()
                .all(|(i, k)| !k.alive || exhausted[i]);
        if idle && no_more {
            end = Instant::now();
            break;
        }
        // epoll waits in whole milliseconds: under a fixed rate, spin for shorter waits so
        // requests leave on schedule rather than in millisecond bursts.
        let tick = match gate.wait(Instant::now()) {
            None => POLL_TICK,
            Some(w) if w < Duration::from_millis(2) => Duration::ZERO,
            Some(w) => (w - Duration::from_millis(1)).min(POLL_TICK),
        };
        if let Err(e) = poll.poll(&mut events, Some(tick)) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            log::error!("poll: {e}");
            c.errors.connection += 1;
            break;
        }
        for ev in events.iter() {
            let i = ev.token().0;
            let conn = &mut conns[i];
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                conn.on_readable(b, &mut c);
            }
            if conn.alive && !exhausted[i] {
                exhausted[i] = !conn.fill(b, &mut gate);
            }
            conn.flush(&mut c);
        }
        // Paced: requests fall due on the clock, not only on replies.
        if gate.pace.is_some() {
            for (i, conn) in conns.iter_mut().enumerate() {
                if conn.alive && !exhausted[i] && conn.tracker.inflight.len() < cfg.pipeline {
                    exhausted[i] = !conn.fill(b, &mut gate);
                    conn.flush(&mut c);
                }
            }
        }
        shared.ops[tid].store(c.completed, Ordering::Relaxed);
        shared.errors[tid].store(c.errors.total(), Ordering::Relaxed);
    }
    shared.ops[tid].store(c.completed, Ordering::Relaxed);
    shared.errors[tid].store(c.errors.total(), Ordering::Relaxed);
    shared.finished.fetch_add(1, Ordering::SeqCst);
    ThreadResult {
        perf: c.perf,
        errors: c.errors,
        end,
    }
}
