//! Owns: the thread-safe cache — key hashing, the shards (each a `parking_lot::Mutex<Shard>`),
//! the global memory budget, the CAS counter, flush state, and the statistics views over shards.
//! Does not: know any protocol, socket or thread (the maintainer thread calls `maintain`).
//!
//! Lock order: a thread holds at most one shard lock at a time; no other lock is taken while a
//! shard lock is held (the budget, CAS counter and flush mark are atomics).

pub mod exptime;
pub mod hand;
pub mod item;
pub mod segments;
pub mod shard;
pub mod slab;

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam_utils::CachePadded;
use parking_lot::{Mutex, MutexGuard};

pub use shard::{Shard, ShardCounters};
pub use slab::{SizeClasses, Steps};

/// How a store request treats an existing item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreMode {
    Set,
    Add,
    Replace,
    /// Append to an existing item; with a non-zero CAS, only if the item has that CAS.
    Append(u64),
    /// Prepend to an existing item; with a non-zero CAS, only if the item has that CAS.
    Prepend(u64),
    /// Store only if the item exists with this CAS value.
    Cas(u64),
}

/// A store request: how it treats an existing item, and the item to write.
#[derive(Clone, Copy, Debug)]
pub struct StoreRequest<'a> {
    pub mode: StoreMode,
    pub key: &'a [u8],
    /// `Store::hash(key)`.
    pub hash: u64,
    /// Client flags (append and prepend keep the existing item's).
    pub flags: u32,
    /// Server-relative expiry (0 = never; append and prepend keep the existing item's).
    pub exptime: u32,
    pub value: &'a [u8],
}

impl<'a> StoreRequest<'a> {
    /// A request for an item without client flags that never expires.
    #[inline]
    pub fn new(mode: StoreMode, key: &'a [u8], hash: u64, value: &'a [u8]) -> StoreRequest<'a> {
        StoreRequest {
            mode,
            key,
            hash,
            flags: 0,
            exptime: 0,
            value,
        }
    }
}

/// Whether a read counts as an access for the segmented LRU (the FETCHED and ACTIVE marks, and
/// an ACTIVE item's move from COLD to WARM). `Keep` reads leave the item's LRU state as it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recency {
    Bump,
    Keep,
}

/// incr or decr: incr wraps at 2^64, decr stops at 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArithOp {
    Incr,
    Decr,
}

/// What a meta request applies to an item after reading it (`Shard::meta_access`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetaAccess {
    /// A new server-relative expiry (counts a touch hit instead of a get hit).
    pub exptime: Option<u32>,
    /// Item bits to set, then bits to clear (`item::WIN_SENT`, `item::STALE`, ...).
    pub set: u8,
    pub clear: u8,
    pub recency: Recency,
}

/// Expected results of a store request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreOutcome {
    /// Stored, with the item's new CAS.
    Stored(u64),
    NotStored,
    Exists,
    NotFound,
}

/// Why a store could not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("object too large for cache")]
    TooLarge,
    #[error("out of memory storing object")]
    OutOfMemory,
}

/// Why a lookup missed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Miss {
    NotFound,
    Expired,
    Flushed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteOutcome {
    Deleted,
    NotFound,
    Exists,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArithOutcome {
    /// New value and new CAS.
    Value(u64, u64),
    NotFound,
    NonNumeric,
    Exists,
}

/// A borrowed view of a live item (valid while the shard lock is held).
#[derive(Clone, Copy, Debug)]
pub struct ItemView<'a> {
    pub key: &'a [u8],
    pub value: &'a [u8],
    pub flags: u32,
    pub cas: u64,
    pub exptime: u32,
    pub atime: u32,
    pub bits: u8,
    pub class: usize,
    pub total: usize,
}

/// Per-class counters, as `stats items` and `stats slabs` report them.
#[derive(Clone, Debug, Default)]
pub struct ClassStats {
    pub number_hot: u64,
    pub number_warm: u64,
    pub number_cold: u64,
    pub age_hot: u64,
    pub age_warm: u64,
    pub age: u64,
    pub mem_requested: u64,
    pub evicted: u64,
    pub evicted_nonzero: u64,
    pub evicted_time: u64,
    pub outofmemory: u64,
    pub reclaimed: u64,
    pub expired_unfetched: u64,
    pub evicted_unfetched: u64,
    pub evicted_active: u64,
    pub crawler_reclaimed: u64,
    pub crawler_items_checked: u64,
    pub moves_to_cold: u64,
    pub moves_to_warm: u64,
    pub moves_within_lru: u64,
    pub direct_reclaims: u64,
    pub hits_to_hot: u64,
    pub hits_to_warm: u64,
    pub hits_to_cold: u64,
    pub get_hits: u64,
    pub cmd_set: u64,
    pub delete_hits: u64,
    pub incr_hits: u64,
    pub decr_hits: u64,
    pub cas_hits: u64,
    pub cas_badval: u64,
    pub touch_hits: u64,
    pub total_pages: u64,
    pub free_chunks: u64,
}

impl ClassStats {
    /// Adds another shard's numbers for the same class (ages take the maximum).
    fn merge(&mut self, o: &ClassStats) {
        macro_rules! add { ($($f:ident),*) => { $( self.$f += o.$f; )* } }
        add!(
            number_hot,
            number_warm,
            number_cold,
            mem_requested,
            evicted,
            evicted_nonzero,
            outofmemory,
            reclaimed,
            expired_unfetched,
            evicted_unfetched,
            evicted_active,
            crawler_reclaimed,
            crawler_items_checked,
            moves_to_cold,
            moves_to_warm,
            moves_within_lru,
            direct_reclaims,
            hits_to_hot,
            hits_to_warm,
            hits_to_cold,
            get_hits,
            cmd_set,
            delete_hits,
            incr_hits,
            decr_hits,
            cas_hits,
            cas_badval,
            touch_hits,
            total_pages,
            free_chunks
        );
        self.age_hot = self.age_hot.max(o.age_hot);
        self.age_warm = self.age_warm.max(o.age_warm);
        self.age = self.age.max(o.age);
        self.evicted_time = self.evicted_time.max(o.evicted_time);
    }

    pub fn number(&self) -> u64 {
        self.number_hot + self.number_warm + self.number_cold
    }
}

/// Where the shard number is taken from the key hash. The shard's index (hashbrown) uses the low
/// bits to place a key and the top 7 bits as its tag, so the shard number must come from neither:
/// taking it from the top bits made every key of a shard share most of its tag, and lookups
/// compared keys (a cache miss each) far more often than needed.
const SHARD_BITS_AT: u32 = 40;

/// The key hash used for both shard choice and the shard's index.
#[derive(Clone, Debug)]
pub struct KeyHasher(foldhash::fast::RandomState);

impl KeyHasher {
    pub fn new() -> KeyHasher {
        KeyHasher(foldhash::fast::RandomState::default())
    }
    #[inline]
    pub fn hash(&self, key: &[u8]) -> u64 {
        self.0.hash_one(key)
    }
}

impl Default for KeyHasher {
    fn default() -> Self {
        Self::new()
    }
}

/// The global page budget (`-m`), shared by all shards.
#[derive(Debug)]
pub struct MemBudget {
    limit: AtomicUsize,
    used: AtomicUsize,
}

impl MemBudget {
    pub fn new(limit_pages: usize) -> MemBudget {
        MemBudget {
            limit: AtomicUsize::new(limit_pages),
            used: AtomicUsize::new(0),
        }
    }
    /// Takes a page if one is left under the limit.
    pub fn try_acquire(&self) -> bool {
        let limit = self.limit.load(Ordering::Relaxed);
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |u| {
                (u < limit).then_some(u + 1)
            })
            .is_ok()
    }
    /// Takes a page even past the limit (bounded by the caller).
    pub fn force_acquire(&self) {
        self.used.fetch_add(1, Ordering::AcqRel);
    }
    pub fn release(&self) {
        self.used.fetch_sub(1, Ordering::AcqRel);
    }
    pub fn over_limit(&self) -> bool {
        self.used.load(Ordering::Relaxed) > self.limit.load(Ordering::Relaxed)
    }
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }
    pub fn set_limit(&self, pages: usize) {
        self.limit.store(pages, Ordering::Relaxed);
    }
}

/// State shared by every shard (all atomics: never a lock).
#[derive(Debug)]
pub struct StoreShared {
    pub budget: MemBudget,
    cas: AtomicU64,
    /// Items whose CAS is at or below this value are flushed.
    pub flush_cas: AtomicU64,
    pub evictions: bool,
    pub item_size_max: usize,
    pub hot_lru_pct: AtomicU32,
    pub warm_lru_pct: AtomicU32,
    pub automove: AtomicU8,
}

impl StoreShared {
    /// The next CAS value: one global, monotonic counter, as memcached has.
    #[inline]
    pub fn next_cas(&self) -> u64 {
        self.cas.fetch_add(1, Ordering::Relaxed) + 1
    }
    pub fn current_cas(&self) -> u64 {
        self.cas.load(Ordering::Relaxed)
    }
}

/// Construction parameters (from the command line).
#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub memory_limit: usize,
    pub item_size_max: usize,
    pub page_size: usize,
    pub min_size: usize,
    pub growth_factor: f64,
    pub evictions: bool,
    /// `-L`: take pages from one region advised for transparent huge pages.
    pub large_pages: bool,
    pub hot_lru_pct: u32,
    pub warm_lru_pct: u32,
    pub slab_automove: u8,
    /// Number of shards; 0 picks one from the memory limit and thread count.
    pub shards: usize,
    pub threads: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            memory_limit: 64 << 20,
            item_size_max: 1 << 20,
            page_size: 1 << 20,
            min_size: 48,
            growth_factor: 1.25,
            evictions: true,
            large_pages: false,
            hot_lru_pct: 20,
            warm_lru_pct: 40,
            slab_automove: 1,
            shards: 0,
            threads: 4,
        }
    }
}

/// The cache: see the module header.
#[derive(Debug)]
pub struct Store {
    shards: Box<[CachePadded<Mutex<Shard>>]>,
    /// Shard choice: `(hash >> SHARD_BITS_AT) & mask`.
    mask: u64,
    hasher: KeyHasher,
    classes: Arc<SizeClasses>,
    shared: Arc<StoreShared>,
}

/// Shard count: enough for the threads to rarely meet, few enough that every shard owns a
/// useful number of pages (each shard holds whole pages per size class: with 32 pages a shard
/// can give a page to each of the ~18 classes a workload of 10 B to 3 KB values touches, so the
/// default `-m 64` gets 2 shards).
fn shard_count(cfg: &StoreConfig) -> usize {
    if cfg.shards > 0 {
        return cfg.shards.next_power_of_two();
    }
    let pages = (cfg.memory_limit / cfg.page_size).max(1);
    let by_memory = (pages / 32).max(1);
    let by_threads = (cfg.threads.max(1) * 4).next_power_of_two();
    let n = by_memory.min(by_threads).max(2);
    // Round down to a power of two.
    1 << (usize::BITS - 1 - n.leading_zeros())
}

/// The size classes for `shards` shards: with 8-byte steps for small items when every shard can
/// give every class two pages, else memcached's schedule. Each class needs whole pages in each
/// shard; with few pages per shard (the default `-m 64`), more classes would leave classes
/// without a page, and items of varied sizes would be evicted from a mostly empty cache.
fn size_classes(cfg: &StoreConfig, shards: usize) -> SizeClasses {
    let fine = SizeClasses::new(cfg.min_size, cfg.growth_factor, cfg.page_size, Steps::Fine);
    let pages_per_shard = (cfg.memory_limit / cfg.page_size).max(1) / shards.max(1);
    if pages_per_shard >= 2 * fine.len() {
        fine
    } else {
        SizeClasses::new(
            cfg.min_size,
            cfg.growth_factor,
            cfg.page_size,
            Steps::Factor,
        )
    }
}

impl Store {
    pub fn new(cfg: &StoreConfig) -> Store {
        let n = shard_count(cfg);
        let classes = Arc::new(size_classes(cfg, n));
        let shared = Arc::new(StoreShared {
            budget: MemBudget::new((cfg.memory_limit / cfg.page_size).max(1)),
            cas: AtomicU64::new(0),
            flush_cas: AtomicU64::new(0),
            evictions: cfg.evictions,
            item_size_max: cfg.item_size_max,
            hot_lru_pct: AtomicU32::new(cfg.hot_lru_pct),
            warm_lru_pct: AtomicU32::new(cfg.warm_lru_pct),
            automove: AtomicU8::new(cfg.slab_automove),
        });
        let hasher = KeyHasher::new();
        // With -L: the memory limit plus the page each shard may borrow, in one region.
        let large = cfg
            .large_pages
            .then(|| {
                let pages = (cfg.memory_limit / cfg.page_size).max(1) + n;
                match slab::LargeRegion::new(pages, cfg.page_size) {
                    Ok(r) => {
                        log::info!(
                            "large pages: {} MB region advised for transparent huge pages",
                            (pages * cfg.page_size) >> 20
                        );
                        Some(Arc::new(r))
                    }
                    Err(e) => {
                        log::warn!("large pages unavailable ({e}); using ordinary pages");
                        None
                    }
                }
            })
            .flatten();
        let shards = (0..n)
            .map(|_| {
                CachePadded::new(Mutex::new(Shard::new(
                    classes.clone(),
                    shared.clone(),
                    hasher.clone(),
                    large.clone(),
                )))
            })
            .collect();
        Store {
            shards,
            mask: n as u64 - 1,
            hasher,
            classes,
            shared,
        }
    }

    #[inline]
    pub fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash(key)
    }

    /// Locks the shard owning `hash`. Hold the guard only for one operation and its encoding.
    #[inline]
    pub fn lock(&self, hash: u64) -> MutexGuard<'_, Shard> {
        self.shards[((hash >> SHARD_BITS_AT) & self.mask) as usize].lock()
    }

    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    pub fn classes(&self) -> &SizeClasses {
        &self.classes
    }

    pub fn shared(&self) -> &StoreShared {
        &self.shared
    }

    /// Invalidates every item stored so far (flush_all).
    pub fn flush(&self) {
        let cas = self.shared.current_cas();
        self.shared.flush_cas.fetch_max(cas, Ordering::Relaxed);
    }

    /// Changes the memory limit (cache_memlimit); shrinking gives pages back during `maintain`.
    pub fn set_memory_limit(&self, bytes: usize) {
        self.shared
            .budget
            .set_limit((bytes / self.classes.page_size()).max(1));
    }

    pub fn memory_limit(&self) -> usize {
        self.shared.budget.limit() * self.classes.page_size()
    }

    /// One round of background work over every shard, each locked in turn (see
    /// `Shard::maintain` for the two budgets).
    pub fn maintain(&self, balance: usize, crawl: usize, now: u32) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().maintain(balance, crawl, now))
            .sum()
    }

    /// Slab automove (memcached's mode 1, simplified): when the cache is full and a class is
    /// evicting, move a page to it from the class whose oldest item is oldest, if that item is
    /// clearly older. Mode 2 moves on any eviction. Returns the moves made.
    pub fn automove(&self, now: u32) -> usize {
        let mode = self.shared.automove.load(Ordering::Relaxed);
        if mode == 0 || self.shared.budget.used() < self.shared.budget.limit() {
            return 0;
        }
        let mut moved = 0;
        for s in self.shards.iter() {
            let mut shard = s.lock();
            let n = self.classes.len();
            let deltas: Vec<u64> = (0..n).map(|c| shard.take_eviction_delta(c)).collect();
            let Some(young) = (0..n).filter(|&c| deltas[c] > 0).max_by_key(|&c| deltas[c]) else {
                continue;
            };
            let young_age = shard.tail_age(young, now).unwrap_or(0);
            let old = (0..n)
                .filter(|&c| c != young && shard.class_pages(c) > 1)
                .max_by_key(|&c| {
                    let free_pages = shard.class_free(c) / self.classes.chunks_per_page(c).max(1);
                    if free_pages >= 2 {
                        u32::MAX
                    } else {
                        shard.tail_age(c, now).unwrap_or(u32::MAX)
                    }
                });
            let Some(old) = old else { continue };
            let old_age = shard.tail_age(old, now).unwrap_or(u32::MAX);
            let free_pages = shard.class_free(old) / self.classes.chunks_per_page(old).max(1);
            let worth = mode == 2 || free_pages >= 2 || (young_age as f64) < old_age as f64 * 0.8;
            if worth && shard.move_page(old, young, now) {
                moved += 1;
            }
        }
        moved
    }

    /// `slabs reassign`: moves one page from class `src` to `dst` (0-based) in the first shard
    /// that has more than one page of `src`.
    pub fn reassign(&self, src: usize, dst: usize, now: u32) -> bool {
        self.shards.iter().any(|s| {
            let mut shard = s.lock();
            shard.class_pages(src) > 1 && shard.move_page(src, dst, now)
        })
    }

    /// Per-class statistics summed over shards (index = class, 0-based).
    pub fn class_stats(&self, now: u32) -> Vec<ClassStats> {
        let mut out = vec![ClassStats::default(); self.classes.len()];
        for s in self.shards.iter() {
            let shard = s.lock();
            for (c, o) in out.iter_mut().enumerate() {
                o.merge(&shard.class_snapshot(c, now));
            }
        }
        out
    }

    /// Shard-wide counters summed over shards.
    pub fn counters(&self) -> ShardCounters {
        let mut t = ShardCounters::default();
        for s in self.shards.iter() {
            let shard = s.lock();
            let c = shard.counters();
            t.curr_items += c.curr_items;
            t.total_items += c.total_items;
            t.bytes += c.bytes;
            t.slabs_moved += c.slabs_moved;
            t.slab_reassign_rescues += c.slab_reassign_rescues;
            t.slab_reassign_evictions += c.slab_reassign_evictions;
            t.lru_maintainer_juggles += c.lru_maintainer_juggles;
            t.crawler_runs += c.crawler_runs;
            t.expiring += c.expiring;
        }
        t
    }

    /// Visits every live item, shard by shard (each shard locked while it is walked).
    pub fn for_each_item(&self, now: u32, mut f: impl FnMut(ItemView<'_>)) {
        for s in self.shards.iter() {
            s.lock().for_each_item(now, &mut f);
        }
    }
}

#[cfg(test)]
mod tests;
