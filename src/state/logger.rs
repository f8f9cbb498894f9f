//! Owns: the log streams behind `watch` — which streams someone watches (one mask, read with a
//! relaxed load before anything is logged, so nobody watching costs one atomic load), the global
//! event number (`gid`), a bounded buffer per worker thread (`worker_logbuf_size`; a full
//! buffer drops the event), the watcher slots (at most 20) and the `log_*` counters of `stats`.
//! Does not: render lines or write to watchers (the watcher thread in `server::watcher` drains
//! the buffers with `collect`), or decide what is logged (the executors, the store's eviction
//! hook and the workers call `log`).
//!
//! Locks: each worker buffer's mutex is a leaf, taken on the request path (also under a shard
//! lock, for evictions) only while its stream is watched, and by the watcher thread to drain it;
//! the slot table's mutex is a leaf taken by `watch` and when a watcher goes.

use std::cell::Cell;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use crate::protocol::watch::{self, Event, Key};
use crate::store::{Evicted, EvictionWatch};

/// memcached's `WATCHER_LIMIT`.
pub const WATCHER_LIMIT: usize = 20;

/// Room one event takes in a worker buffer (memcached reserves its entry header plus 512 bytes
/// for each, whatever the line's length).
const ENTRY_SIZE: usize = 512 + 32;

thread_local! {
    /// The worker buffer this thread logs to (threads that are not workers share the last).
    static SLOT: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// Makes the calling thread log to worker buffer `index` (called once by each worker).
pub fn set_thread_slot(index: usize) {
    SLOT.with(|s| s.set(index));
}

/// One logged event with its number and wall-clock time.
#[derive(Clone, Copy, Debug)]
pub struct Entry {
    pub gid: u64,
    pub secs: i64,
    pub usecs: u32,
    pub event: Event,
}

/// A new watcher's slot, its streams, and the first event number it is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ticket {
    pub slot: usize,
    pub streams: u16,
    pub min_gid: u64,
}

/// `watch` when 20 watchers exist (memcached's `WATCHER_TOO_MANY`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("log watcher limit reached")]
pub struct TooMany;

/// The log streams' shared state: see the module header.
#[derive(Debug)]
pub struct Logger {
    mask: AtomicU16,
    gid: AtomicU64,
    bufs: Box<[Mutex<VecDeque<Entry>>]>,
    /// Events a worker buffer holds at most.
    buf_entries: usize,
    slots: Mutex<[Option<u16>; WATCHER_LIMIT]>,
    worker_dropped: AtomicU64,
    worker_written: AtomicU64,
    watcher_skipped: AtomicU64,
    watcher_sent: AtomicU64,
    watchers: AtomicU64,
}

/// The `log_*` counters of `stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogStats {
    pub worker_dropped: u64,
    pub worker_written: u64,
    pub watcher_skipped: u64,
    pub watcher_sent: u64,
    pub watchers: u64,
}

impl Logger {
    /// A logger for `workers` worker threads with `buf_bytes` (`worker_logbuf_size`) each.
    pub fn new(workers: usize, buf_bytes: usize) -> Logger {
        Logger {
            mask: AtomicU16::new(0),
            gid: AtomicU64::new(0),
            bufs: (0..=workers).map(|_| Mutex::default()).collect(),
            buf_entries: (buf_bytes / ENTRY_SIZE).max(1),
            slots: Mutex::new([None; WATCHER_LIMIT]),
            worker_dropped: AtomicU64::new(0),
            worker_written: AtomicU64::new(0),
            watcher_skipped: AtomicU64::new(0),
            watcher_sent: AtomicU64::new(0),
            watchers: AtomicU64::new(0),
        }
    }

    /// True when a watcher wants `stream` (a `protocol::watch` bit): one relaxed load.
    #[inline]
    pub fn wants(&self, stream: u16) -> bool {
        self.mask.load(Ordering::Relaxed) & stream != 0
    }

    /// Logs `event` to the calling thread's buffer if its stream is watched; a full buffer
    /// drops it (`log_worker_dropped`).
    pub fn log(&self, event: Event) {
        if !self.wants(event.stream()) {
            return;
        }
        let slot = SLOT.with(Cell::get).min(self.bufs.len() - 1);
        let mut buf = self.bufs[slot].lock();
        if buf.len() >= self.buf_entries {
            drop(buf);
            self.worker_dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        buf.push_back(Entry {
            gid: self.next_gid(),
            secs: t.as_secs() as i64,
            usecs: t.subsec_micros(),
            event,
        });
        drop(buf);
        self.worker_written.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes the next event number (as memcached's `logger_get_gid`; a warm restart's save takes
    /// one too).
    pub fn next_gid(&self) -> u64 {
        self.gid.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Goes on numbering events after `gid` (a warm restart: the saving process's last number).
    pub fn resume_gid(&self, gid: u64) {
        self.gid.fetch_max(gid, Ordering::Relaxed);
    }

    /// Takes every buffered event, in event-number order, into `out`.
    pub fn collect(&self, out: &mut Vec<Entry>) {
        for b in self.bufs.iter() {
            out.extend(b.lock().drain(..));
        }
        out.sort_unstable_by_key(|e| e.gid);
    }

    /// Reserves a watcher slot for `streams` and starts logging them.
    pub fn add_watcher(&self, streams: u16) -> Result<Ticket, TooMany> {
        let mut slots = self.slots.lock();
        let slot = slots.iter().position(Option::is_none).ok_or(TooMany)?;
        slots[slot] = Some(streams);
        self.set_mask(&slots);
        Ok(Ticket {
            slot,
            streams,
            min_gid: self.next_gid(),
        })
    }

    /// Frees a watcher's slot; streams nobody watches any more stop being logged.
    pub fn remove_watcher(&self, slot: usize) {
        let mut slots = self.slots.lock();
        if let Some(s) = slots.get_mut(slot) {
            *s = None;
        }
        self.set_mask(&slots);
    }

    fn set_mask(&self, slots: &[Option<u16>; WATCHER_LIMIT]) {
        let mask = slots.iter().flatten().fold(0, |m, s| m | s);
        self.mask.store(mask, Ordering::Relaxed);
        let n = slots.iter().flatten().count();
        self.watchers.store(n as u64, Ordering::Relaxed);
    }

    /// Counts lines given to watchers and lines a full watcher buffer skipped.
    pub fn count_sent(&self, sent: u64, skipped: u64) {
        self.watcher_sent.fetch_add(sent, Ordering::Relaxed);
        self.watcher_skipped.fetch_add(skipped, Ordering::Relaxed);
    }

    pub fn stats(&self) -> LogStats {
        LogStats {
            worker_dropped: self.worker_dropped.load(Ordering::Relaxed),
            worker_written: self.worker_written.load(Ordering::Relaxed),
            watcher_skipped: self.watcher_skipped.load(Ordering::Relaxed),
            watcher_sent: self.watcher_sent.load(Ordering::Relaxed),
            watchers: self.watchers.load(Ordering::Relaxed),
        }
    }

    /// `stats reset`.
    pub fn reset_stats(&self) {
        for c in [
            &self.worker_dropped,
            &self.worker_written,
            &self.watcher_skipped,
            &self.watcher_sent,
        ] {
            c.store(0, Ordering::Relaxed);
        }
    }
}

impl EvictionWatch for Logger {
    fn watching(&self) -> bool {
        self.wants(watch::EVICTIONS)
    }
    fn evicted(&self, e: &Evicted<'_>) {
        self.log(Event::Eviction {
            key: Key::new(e.key),
            fetched: e.fetched,
            ttl: e.ttl,
            la: e.la,
            clsid: e.clsid,
            size: e.size,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(cfd: i64) -> Event {
        Event::ItemGet {
            key: Key::new(b"k"),
            found: watch::Found::Found,
            clsid: 1,
            cfd,
            size: 1,
        }
    }

    #[test]
    fn nothing_logged_unless_watched() {
        let l = Logger::new(2, 64 * 1024);
        l.log(get(1));
        let mut v = Vec::new();
        l.collect(&mut v);
        assert!(v.is_empty());
        assert_eq!(l.stats(), LogStats::default());
        let t = l.add_watcher(watch::FETCHERS).unwrap();
        l.log(get(2));
        l.collect(&mut v);
        assert_eq!(v.len(), 1);
        assert!(v[0].gid > t.min_gid);
        assert_eq!(l.stats().watchers, 1);
        l.remove_watcher(t.slot);
        assert!(!l.wants(watch::FETCHERS));
        assert_eq!(l.stats().watchers, 0);
    }

    #[test]
    fn full_buffer_drops_and_limit_holds() {
        let l = Logger::new(1, ENTRY_SIZE * 2);
        l.add_watcher(watch::FETCHERS).unwrap();
        for i in 0..5 {
            l.log(get(i));
        }
        assert_eq!(l.stats().worker_written, 2);
        assert_eq!(l.stats().worker_dropped, 3);
        for _ in 1..WATCHER_LIMIT {
            l.add_watcher(watch::MUTATIONS).unwrap();
        }
        assert_eq!(l.add_watcher(watch::MUTATIONS), Err(TooMany));
    }
}
