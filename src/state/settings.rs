//! Owns: the settings admin commands and a SIGHUP reload change at run time. Live ones are read
//! by the code they steer (verbosity, the crawler switch and its on-demand pass, `stats detail`,
//! `stats sizes`, the connection limit `-c` and `-o idle_timeout`);
//! display-only ones are accepted and shown by `stats settings` exactly as memcached does, but
//! nothing reads them, because the mechanism they tune in memcached does not exist here (the
//! crawler runs in the maintainer's slices, LRU ageing is a clock hand). docs/protocol.md lists
//! them.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use parking_lot::{Mutex, MutexGuard};

use crate::config::Config;
use crate::stats::PrefixTable;

/// A float setting changed without a lock.
#[derive(Debug)]
struct AtomicF64(AtomicU64);

impl AtomicF64 {
    fn new(v: f64) -> AtomicF64 {
        AtomicF64(AtomicU64::new(v.to_bits()))
    }
    fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
    fn set(&self, v: f64) {
        self.0.store(v.to_bits(), Ordering::Relaxed);
    }
}

/// Runtime-adjustable settings.
#[derive(Debug)]
pub struct Settings {
    verbosity: AtomicU32,
    lru_crawler: AtomicBool,
    crawl_requested: AtomicBool,
    /// From an `lru_crawler crawl` until the maintainer has finished its pass
    /// (`lru_crawler_running` in `stats`).
    crawl_running: AtomicBool,
    /// `stats detail on|off` and its per-prefix counters (a leaf lock: taken under a shard lock,
    /// takes none itself).
    detail_enabled: AtomicBool,
    prefixes: Mutex<PrefixTable>,
    /// `stats sizes_enable|disable` (on top of `-o track_sizes`).
    sizes_enabled: AtomicBool,
    /// `-c`, changed by a reload.
    max_conns: AtomicUsize,
    /// `-o idle_timeout` in seconds (0: off), changed by a reload.
    idle_timeout: AtomicU32,
    display: DisplayOnly,
}

/// Settings that `stats settings` shows and admin commands set, read by nothing else.
#[derive(Debug)]
pub struct DisplayOnly {
    lru_crawler_sleep: AtomicU32,
    lru_crawler_tocrawl: AtomicU32,
    hot_max_factor: AtomicF64,
    warm_max_factor: AtomicF64,
    lru_segmented: AtomicBool,
}

impl Settings {
    pub fn new(config: &Config) -> Settings {
        let ext = &config.ext;
        Settings {
            verbosity: AtomicU32::new(u32::from(config.verbose)),
            lru_crawler: AtomicBool::new(ext.lru_crawler),
            crawl_requested: AtomicBool::new(false),
            crawl_running: AtomicBool::new(false),
            detail_enabled: AtomicBool::new(false),
            prefixes: Mutex::new(PrefixTable::default()),
            sizes_enabled: AtomicBool::new(false),
            max_conns: AtomicUsize::new(config.maxconns),
            idle_timeout: AtomicU32::new(ext.idle_timeout),
            display: DisplayOnly {
                lru_crawler_sleep: AtomicU32::new(ext.lru_crawler_sleep),
                lru_crawler_tocrawl: AtomicU32::new(ext.lru_crawler_tocrawl),
                hot_max_factor: AtomicF64::new(ext.hot_max_factor),
                warm_max_factor: AtomicF64::new(ext.warm_max_factor),
                lru_segmented: AtomicBool::new(ext.lru_segmented),
            },
        }
    }

    /// `verbosity N` (0-2).
    pub fn verbosity(&self) -> u32 {
        self.verbosity.load(Ordering::Relaxed)
    }
    pub fn set_verbosity(&self, level: u32) {
        self.verbosity.store(level, Ordering::Relaxed);
    }

    /// `-c`: the most client connections at once.
    pub fn max_conns(&self) -> usize {
        self.max_conns.load(Ordering::Relaxed)
    }
    pub fn set_max_conns(&self, n: usize) {
        self.max_conns.store(n, Ordering::Relaxed);
    }

    /// `-o idle_timeout`: seconds a connection may stay idle (0: for ever).
    pub fn idle_timeout(&self) -> u32 {
        self.idle_timeout.load(Ordering::Relaxed)
    }
    pub fn set_idle_timeout(&self, secs: u32) {
        self.idle_timeout.store(secs, Ordering::Relaxed);
    }

    /// `lru_crawler enable|disable`: whether the maintainer runs the expiry crawler.
    pub fn lru_crawler(&self) -> bool {
        self.lru_crawler.load(Ordering::Relaxed)
    }
    pub fn set_lru_crawler(&self, on: bool) {
        self.lru_crawler.store(on, Ordering::Relaxed);
    }

    /// `lru_crawler crawl`: asks the maintainer for a full pass now.
    pub fn request_crawl(&self) {
        self.crawl_running.store(true, Ordering::Relaxed);
        self.crawl_requested.store(true, Ordering::Relaxed);
    }
    /// Takes a pending `lru_crawler crawl` request (the maintainer).
    pub fn take_crawl_request(&self) -> bool {
        self.crawl_requested.swap(false, Ordering::Relaxed)
    }
    /// True from an `lru_crawler crawl` until its pass is done.
    pub fn crawl_running(&self) -> bool {
        self.crawl_running.load(Ordering::Relaxed)
    }
    /// The maintainer finished the requested pass (a request that came in meanwhile keeps the
    /// crawler running).
    pub fn finish_crawl(&self) {
        if !self.crawl_requested.load(Ordering::Relaxed) {
            self.crawl_running.store(false, Ordering::Relaxed);
        }
    }

    /// `stats detail on|off`.
    pub fn detail_enabled(&self) -> bool {
        self.detail_enabled.load(Ordering::Relaxed)
    }
    pub fn set_detail(&self, on: bool) {
        self.detail_enabled.store(on, Ordering::Relaxed);
    }
    /// The per-prefix counters of `stats detail`.
    pub fn prefixes(&self) -> MutexGuard<'_, PrefixTable> {
        self.prefixes.lock()
    }

    /// `stats sizes_enable|disable`.
    pub fn sizes_enabled(&self) -> bool {
        self.sizes_enabled.load(Ordering::Relaxed)
    }
    pub fn set_sizes_enabled(&self, on: bool) {
        self.sizes_enabled.store(on, Ordering::Relaxed);
    }

    /// The display-only settings.
    pub fn display(&self) -> &DisplayOnly {
        &self.display
    }
}

impl DisplayOnly {
    /// `lru_crawler sleep N`.
    pub fn lru_crawler_sleep(&self) -> u32 {
        self.lru_crawler_sleep.load(Ordering::Relaxed)
    }
    pub fn set_lru_crawler_sleep(&self, v: u32) {
        self.lru_crawler_sleep.store(v, Ordering::Relaxed);
    }
    /// `lru_crawler tocrawl N`.
    pub fn lru_crawler_tocrawl(&self) -> u32 {
        self.lru_crawler_tocrawl.load(Ordering::Relaxed)
    }
    pub fn set_lru_crawler_tocrawl(&self, v: u32) {
        self.lru_crawler_tocrawl.store(v, Ordering::Relaxed);
    }
    /// The age factors of `lru tune` (its percentages are live: `store::StoreShared`).
    pub fn max_factors(&self) -> (f64, f64) {
        (self.hot_max_factor.get(), self.warm_max_factor.get())
    }
    pub fn set_max_factors(&self, hot: f64, warm: f64) {
        self.hot_max_factor.set(hot);
        self.warm_max_factor.set(warm);
    }
    /// `lru mode flat|segmented`.
    pub fn lru_segmented(&self) -> bool {
        self.lru_segmented.load(Ordering::Relaxed)
    }
    pub fn set_lru_segmented(&self, on: bool) {
        self.lru_segmented.store(on, Ordering::Relaxed);
    }
}
