//! Owns: connection accounting — the counts `stats` shows (current, total, rejected, times
//! accepting was disabled), whether the acceptor accepts, and the registry behind `stats conns`.
//! The registry lock is taken on connect and close and by `stats conns`, never with another lock.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

/// What `stats conns` shows of one socket.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub addr: String,
    pub listen_addr: Option<String>,
    pub last_cmd: Arc<AtomicU32>,
    /// What a client connection waits for (a `Phase` as `u8`), set by its worker.
    pub phase: Arc<AtomicU8>,
    /// A UDP socket (`addr` is its local address).
    pub udp: bool,
}

/// What an idle client connection waits for, named as memcached's connection states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Nothing received yet.
    New = 0,
    /// The next request (or the rest of its command line).
    Read = 4,
    /// The data of a request whose command line (or binary header) has been read.
    Nread = 1,
    /// The rest of a value being discarded (too large, or its request refused).
    Swallow = 2,
    /// The socket to take pending output.
    Mwrite = 3,
    /// Handed to the watcher thread (`watch`).
    Watch = 5,
}

impl Phase {
    pub fn from_u8(v: u8) -> Phase {
        match v {
            1 => Phase::Nread,
            2 => Phase::Swallow,
            3 => Phase::Mwrite,
            4 => Phase::Read,
            5 => Phase::Watch,
            _ => Phase::New,
        }
    }
    /// The state `stats conns` shows.
    pub fn name(self) -> &'static str {
        match self {
            Phase::New => "conn_new_cmd",
            Phase::Read => "conn_read",
            Phase::Nread => "conn_nread",
            Phase::Swallow => "conn_swallow",
            Phase::Mwrite => "conn_mwrite",
            Phase::Watch => "conn_watch",
        }
    }
}

/// Connection counts and the registry.
#[derive(Debug)]
pub struct Connections {
    curr: AtomicUsize,
    total: AtomicU64,
    rejected: AtomicU64,
    listen_disabled: AtomicU64,
    accepting: AtomicBool,
    registry: Mutex<BTreeMap<i64, ConnInfo>>,
}

impl Default for Connections {
    fn default() -> Self {
        Connections {
            curr: AtomicUsize::new(0),
            total: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            listen_disabled: AtomicU64::new(0),
            accepting: AtomicBool::new(true),
            registry: Mutex::new(BTreeMap::new()),
        }
    }
}

impl Connections {
    /// Counts an accepted connection against `max` (`-c`): false when it is one too many, in
    /// which case it is counted as rejected and not as current.
    pub fn admit(&self, max: usize) -> bool {
        self.total.fetch_add(1, Ordering::Relaxed);
        let curr = self.curr.fetch_add(1, Ordering::Relaxed);
        if curr >= max {
            self.curr.fetch_sub(1, Ordering::Relaxed);
            self.rejected.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }
    /// A UDP socket a worker reads: memcached counts each as a connection.
    pub fn udp_opened(&self) {
        self.total.fetch_add(1, Ordering::Relaxed);
        self.curr.fetch_add(1, Ordering::Relaxed);
    }
    /// An admitted connection has gone (closed, or never handed to a worker).
    pub fn closed(&self) {
        self.curr.fetch_sub(1, Ordering::Relaxed);
    }
    pub fn current(&self) -> usize {
        self.curr.load(Ordering::Relaxed)
    }
    pub fn total(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }
    pub fn listen_disabled(&self) -> u64 {
        self.listen_disabled.load(Ordering::Relaxed)
    }
    /// `stats reset` clears the totals (not the current count).
    pub fn reset(&self) {
        self.total.store(0, Ordering::Relaxed);
        self.rejected.store(0, Ordering::Relaxed);
        self.listen_disabled.store(0, Ordering::Relaxed);
    }
    pub fn accepting(&self) -> bool {
        self.accepting.load(Ordering::Relaxed)
    }
    pub fn stop_accepting(&self) {
        self.accepting.store(false, Ordering::Relaxed);
    }

    /// Lists a socket in `stats conns`.
    pub fn register(&self, id: i64, info: ConnInfo) {
        self.registry.lock().insert(id, info);
    }
    pub fn unregister(&self, id: i64) {
        self.registry.lock().remove(&id);
    }
    /// Every listed socket, in id order (`stats conns`).
    pub fn for_each(&self, mut f: impl FnMut(i64, &ConnInfo)) {
        for (id, info) in self.registry.lock().iter() {
            f(*id, info);
        }
    }
}
