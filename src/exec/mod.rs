//! Owns: what every encoding's executor shares — the request context (`Ctx`), per-connection
//! protocol state (`Session`), what the connection must do next (`Action`), and the store
//! operations counted the same way for text, meta and binary (`store_counted`, `flush_all`,
//! `count_lookup`). The encodings' executors are `text`, `meta` and `binary`; exec is the one
//! place that knows both the protocol and the store.
//! Does not: touch sockets or threads (the server owns those).

pub mod admin;
pub mod binary;
pub mod cluster;
pub mod meta;
pub mod metrics;
pub mod stats;
pub mod text;
pub mod watch;

#[cfg(test)]
mod tests;

use crate::state::{Shared, Shutdown};
use crate::stats::{bump, ThreadStats};
use crate::store::exptime::realtime;
use crate::store::{Miss, StoreError, StoreMode, StoreOutcome, StoreRequest};

/// What the connection must do after a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Continue,
    /// Write what is buffered, then close.
    Close,
    /// Discard this many more input bytes.
    Swallow(usize),
    /// Write what is buffered now (`mn`).
    Flush,
    /// Stop the server.
    Shutdown(Shutdown),
    /// Check the credentials left in `Session::pending`, then answer with `finish_auth`.
    Verify,
    /// `watch`: the connection becomes a log watcher in this slot (its `OK` is the watcher
    /// thread's first line).
    Watch(crate::state::logger::Ticket),
    /// `lru_crawler metadump`: the connection sends the dump a piece at a time as its socket
    /// drains (`Metadump::step`), then goes on with its requests.
    Dump(admin::Metadump),
}

/// Per-connection protocol state the executor reads and changes.
#[derive(Debug, Default)]
pub struct Session {
    /// Passed SASL or ASCII authentication (meaningless when neither is enabled).
    pub authenticated: bool,
    /// Credentials waiting to be checked (see `Action::Verify`).
    pub pending: Option<crate::auth::Attempt>,
    /// A SASL exchange waiting for the client's next step.
    pub sasl_step: SaslStep,
}

/// What a SASL_STEP continues.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub enum SaslStep {
    #[default]
    None,
    /// PLAIN started without an initial response: the step carries it.
    Plain,
    /// CRAM-MD5: the challenge sent.
    CramMd5(Vec<u8>),
}

/// Per-connection facts a request may need.
#[derive(Debug, Clone, Copy)]
pub struct ConnRef {
    /// The connection's id in `stats conns` (its file descriptor).
    pub id: i64,
    /// Index of the worker thread (selects its counters).
    pub worker: usize,
    /// Connected through the admin endpoint: may push cluster configs.
    pub admin: bool,
    /// For a request read from a UDP socket: the peer that sent it (`stats conns` shows it).
    pub udp_peer: Option<std::net::SocketAddr>,
}

/// Values a get's reply (text, `mg`, binary) sends from the store later instead of copying them (see
/// `Store::pin`), each with the place in the reply's output where its bytes go. A connection that
/// sends them a piece at a time as its socket drains passes one (`Ctx::with_pins`) and takes
/// what a request left in it; every pin in it must go back to the store.
pub type PinSink = std::cell::RefCell<Vec<(usize, crate::store::Pin)>>;

/// Values at least this long are pinned rather than copied when the connection takes pins.
pub const PIN_MIN: usize = 16 * 1024;

/// Everything a request executes against.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    pub shared: &'a Shared,
    pub stats: &'a ThreadStats,
    pub conn: ConnRef,
    /// Where a get leaves the values it pins (none: values are copied into the reply).
    pub pins: Option<&'a PinSink>,
}

impl<'a> Ctx<'a> {
    pub fn new(shared: &'a Shared, conn: ConnRef) -> Ctx<'a> {
        Ctx {
            shared,
            stats: &shared.thread_stats()[conn.worker % shared.thread_stats().len()],
            conn,
            pins: None,
        }
    }
    /// The same context, with large values of gets pinned into `sink` (None: copied).
    pub fn with_pins(self, sink: Option<&'a PinSink>) -> Ctx<'a> {
        Ctx { pins: sink, ..self }
    }
    fn now(&self) -> u32 {
        self.shared.clock().now()
    }
    fn exptime(&self, e: i32) -> u32 {
        self.exptime_wide(i64::from(e))
    }
    /// The CAS a client sees: the item's, or 0 when CAS is disabled (`-C`).
    pub fn visible_cas(&self, cas: u64) -> u64 {
        if self.shared.config().cas_enabled {
            cas
        } else {
            0
        }
    }
    /// memcached's `realtime()`: relative seconds, or an absolute unix time past 30 days.
    fn exptime_wide(&self, e: i64) -> u32 {
        realtime(e, self.now(), self.shared.clock().started_unix())
    }
}

fn count_miss(stats: &ThreadStats, m: Miss) {
    bump(&stats.get_misses);
    match m {
        Miss::Expired => bump(&stats.get_expired),
        Miss::Flushed => bump(&stats.get_flushed),
        Miss::NotFound => {}
    }
}

/// Counts one key of a get (or, with `touch`, of a touch/gat) as a hit or a miss.
fn count_lookup(stats: &ThreadStats, touch: bool, miss: Option<Miss>) {
    match (touch, miss) {
        (true, hit) => {
            bump(&stats.cmd_touch);
            bump(if hit.is_none() {
                &stats.touch_hits
            } else {
                &stats.touch_misses
            });
        }
        (false, None) => {
            bump(&stats.cmd_get);
            bump(&stats.get_hits);
        }
        (false, Some(m)) => {
            bump(&stats.cmd_get);
            count_miss(stats, m);
        }
    }
}

/// The parser limits a server with this state applies: `-I` as the store counts an item, and
/// `config` commands when Auto Discovery is on (the workers, the fuzz targets and the tests).
pub fn limits(sh: &Shared) -> crate::protocol::Limits {
    crate::protocol::Limits {
        item_size_max: sh.config().item_size_max,
        config_commands: sh.cluster().enabled(),
        item_size: crate::store::item::limit_size,
        cas: sh.config().cas_enabled,
        ..crate::protocol::Limits::default()
    }
}

/// `flush_all [delay]`: memcached's rule — a delay that ends within the current second flushes
/// now, a later one is applied by the maintainer when due.
pub fn flush_all(sh: &Shared, delay: i64, now: u32) {
    if delay > 0 {
        let at = realtime(delay, now, sh.clock().started_unix()).saturating_sub(1);
        if at > now {
            sh.schedule_flush(Some(at));
            return;
        }
    }
    sh.schedule_flush(None);
    sh.store().flush();
}

/// Stores a value (`exptime` already server-relative) and counts it as memcached does.
pub fn store_counted(
    mode: StoreMode,
    key: &[u8],
    flags: u32,
    exptime: u32,
    data: &[u8],
    ctx: &Ctx<'_>,
) -> Result<StoreOutcome, StoreError> {
    let sh = ctx.shared;
    let st = ctx.stats;
    let h = sh.store().hash(key);
    let mut shard = sh.store().lock(h);
    let req = StoreRequest {
        mode,
        key,
        hash: h,
        flags,
        exptime,
        value: data,
    };
    let r = watch::store_logged(ctx, &mut shard, req);
    drop(shard);
    let is_cas = matches!(mode, StoreMode::Cas(_));
    match r {
        Ok(o) => {
            bump(&st.cmd_set);
            match o {
                StoreOutcome::Stored(_) if is_cas => bump(&st.cas_hits),
                StoreOutcome::Exists => bump(&st.cas_badval),
                StoreOutcome::NotFound => bump(&st.cas_misses),
                _ => {}
            }
        }
        Err(StoreError::TooLarge) => bump(&st.store_too_large),
        Err(StoreError::OutOfMemory) => bump(&st.store_no_memory),
    }
    r
}
