//! Owns: what every shard of the store shares, atomics but for the page pool (a leaf lock): the
//! page budget (`-m`, with the memory counted as malloced before any page), the global page
//! pool, the CAS counter, the flush mark, the settings the shards read on every allocation
//! (`-M`, `-I`, the HOT and WARM shares, the automove mode), and the hook evictions are
//! reported to while someone watches them (`EvictionWatch`).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use super::pool::PagePool;
use super::StoreConfig;

/// The global page budget (`-m`), shared by all shards.
#[derive(Debug)]
pub struct MemBudget {
    limit: AtomicUsize,
    used: AtomicUsize,
}

impl MemBudget {
    /// A budget of `limit_pages` of which `used_pages` are taken already.
    pub fn new(limit_pages: usize, used_pages: usize) -> MemBudget {
        MemBudget {
            limit: AtomicUsize::new(limit_pages),
            used: AtomicUsize::new(used_pages),
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

/// What an item evicted to make room showed (memcached's `eviction` log line).
#[derive(Clone, Copy, Debug)]
pub struct Evicted<'a> {
    pub key: &'a [u8],
    /// The item was read since it was stored.
    pub fetched: bool,
    /// Seconds it had left to live, -1 when it never expires.
    pub ttl: i64,
    /// Seconds since its last access.
    pub la: u32,
    /// Its class as `stats slabs` numbers it.
    pub clsid: u32,
    /// The value's length.
    pub size: usize,
}

/// Receives evictions (called under the shard lock; takes only leaf locks).
pub trait EvictionWatch: Send + Sync + std::fmt::Debug {
    /// Whether evictions are watched now (cheap: checked before `evicted` is built).
    fn watching(&self) -> bool;
    fn evicted(&self, e: &Evicted<'_>);
}

/// State shared by every shard (all atomics: never a lock).
#[derive(Debug)]
pub struct StoreShared {
    pub budget: MemBudget,
    /// Pages of each class, over all shards.
    class_pages: Box<[AtomicUsize]>,
    /// Pages malloced and in no class (memcached's class 0).
    pub pool: PagePool,
    /// Bytes counted as malloced before any page (`StoreConfig::initial_malloc`), and the pages
    /// of the budget they take.
    initial_malloc: usize,
    initial_pages: usize,
    page_size: usize,
    cas: AtomicU64,
    /// Items whose CAS is at or below this value are flushed.
    pub flush_cas: AtomicU64,
    pub evictions: bool,
    item_size_max: usize,
    use_cas: bool,
    /// Items larger than this are chained (see `shard::chain`).
    pub slab_chunk_max: usize,
    pub hot_lru_pct: AtomicU32,
    pub warm_lru_pct: AtomicU32,
    pub automove: AtomicU8,
    /// See `StoreConfig::lru_segmented`.
    pub segmented: bool,
    /// Where evictions are reported (set once at start-up).
    pub eviction_watch: OnceLock<Arc<dyn EvictionWatch>>,
    /// The TEMP segment (`-o temporary_ttl`, `lru temp_ttl`): on, and the largest TTL it takes.
    temp_lru: AtomicBool,
    temporary_ttl: AtomicU32,
    /// memcached's `hash_power_level`: the power of two its hash table would have for the items
    /// held so far (it grows past 1.5 items per bucket and never shrinks).
    hash_power: AtomicU32,
}

/// memcached's starting hash power.
const HASH_POWER_DEFAULT: u32 = 16;
/// memcached's largest hash power.
const HASH_POWER_MAX: u32 = 32;

impl StoreShared {
    /// Whether an item of these lengths and flags is within `-I` (as memcached counts it).
    pub fn fits(&self, klen: usize, vlen: usize, flags: u32) -> bool {
        super::item::limit_size(klen, vlen, flags, self.use_cas) <= self.item_size_max
    }

    pub(super) fn new(cfg: &StoreConfig) -> StoreShared {
        let initial_pages = cfg.initial_malloc.div_ceil(cfg.page_size);
        StoreShared {
            budget: MemBudget::new((cfg.memory_limit / cfg.page_size).max(1), initial_pages),
            class_pages: (0..=super::slab::MAX_CLASSES)
                .map(|_| AtomicUsize::new(0))
                .collect(),
            pool: PagePool::default(),
            initial_malloc: cfg.initial_malloc,
            initial_pages,
            page_size: cfg.page_size,
            cas: AtomicU64::new(0),
            flush_cas: AtomicU64::new(0),
            evictions: cfg.evictions,
            item_size_max: cfg.item_size_max,
            use_cas: cfg.use_cas,
            slab_chunk_max: cfg.slab_chunk_max,
            hot_lru_pct: AtomicU32::new(cfg.hot_lru_pct),
            warm_lru_pct: AtomicU32::new(cfg.warm_lru_pct),
            automove: AtomicU8::new(cfg.slab_automove),
            segmented: cfg.lru_segmented,
            eviction_watch: OnceLock::new(),
            temp_lru: AtomicBool::new(cfg.temp_lru),
            temporary_ttl: AtomicU32::new(cfg.temporary_ttl),
            hash_power: AtomicU32::new(if cfg.hash_power == 0 {
                HASH_POWER_DEFAULT
            } else {
                cfg.hash_power.min(HASH_POWER_MAX)
            }),
        }
    }

    /// `hash_power_level`.
    pub fn hash_power(&self) -> u32 {
        self.hash_power.load(Ordering::Relaxed)
    }

    /// Raises `hash_power_level` to at least `p` (a warm restart restores the saved one).
    pub fn raise_hash_power(&self, p: u32) {
        self.hash_power
            .fetch_max(p.min(HASH_POWER_MAX), Ordering::Relaxed);
    }

    /// Grows `hash_power_level` as memcached's table grows for `items` items: one power at a
    /// time while they exceed 1.5 per bucket.
    pub fn grow_hash_power(&self, items: u64) {
        let mut p = self.hash_power();
        while p < HASH_POWER_MAX && items > (3u64 << p) / 2 {
            p += 1;
        }
        self.raise_hash_power(p);
    }

    /// Whether the TEMP segment is on, and the largest TTL it takes.
    pub fn temp_lru(&self) -> (bool, u32) {
        (
            self.temp_lru.load(Ordering::Relaxed),
            self.temporary_ttl.load(Ordering::Relaxed),
        )
    }

    /// `lru temp_ttl N`: a negative TTL (`None`) turns the TEMP segment off and keeps the last
    /// TTL, as memcached does.
    pub fn set_temp_ttl(&self, ttl: Option<u32>) {
        match ttl {
            Some(t) => {
                self.temporary_ttl.store(t, Ordering::Relaxed);
                self.temp_lru.store(true, Ordering::Relaxed);
            }
            None => self.temp_lru.store(false, Ordering::Relaxed),
        }
    }

    /// True when an item expiring at `exptime` (server time; 0 never) stored at `now` goes to
    /// the TEMP segment: its TTL is at most `temporary_ttl`, as memcached decides.
    pub fn is_temporary(&self, exptime: u32, now: u32) -> bool {
        let (on, ttl) = self.temp_lru();
        on && exptime != 0 && exptime >= now && exptime - now <= ttl
    }

    /// Counts a page joining (`true`) or leaving class `cls` in some shard.
    pub fn count_class_page(&self, cls: usize, joins: bool) {
        if let Some(n) = self.class_pages.get(cls) {
            if joins {
                n.fetch_add(1, Ordering::Relaxed);
            } else {
                n.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// Pages of class `cls` over all shards.
    pub fn class_pages(&self, cls: usize) -> usize {
        self.class_pages
            .get(cls)
            .map_or(0, |n| n.load(Ordering::Relaxed))
    }

    /// Bytes malloced for pages (`total_malloced`): those of every page in a class or in the
    /// pool, plus the initial count.
    pub fn malloced(&self) -> usize {
        self.initial_malloc
            + (self.budget.used().saturating_sub(self.initial_pages)) * self.page_size
    }

    /// The next CAS value: one global, monotonic counter, as memcached has.
    #[inline]
    pub fn next_cas(&self) -> u64 {
        self.cas.fetch_add(1, Ordering::Relaxed) + 1
    }
    /// Moves the CAS counter to at least `v` (past every restored item's CAS).
    pub fn raise_cas(&self, v: u64) {
        self.cas.fetch_max(v, Ordering::Relaxed);
    }
    pub fn current_cas(&self) -> u64 {
        self.cas.load(Ordering::Relaxed)
    }
}
