//! Owns: the thread-safe cache — the request and outcome types, key hashing and the choice of a
//! key's shard (each shard a `parking_lot::Mutex<Shard>`), construction from `StoreConfig`,
//! flush, the memory limit and the maintainer's round over the shards. The statistics views
//! over shards are in `stats`, store-wide page moves in `automove`, the atomics every shard
//! shares in `shared`.
//! Does not: know any protocol, socket or thread (the maintainer thread calls `maintain`).
//!
//! Lock order: a thread holds at most one shard lock at a time (the views, `maintain`,
//! `automove` and `reassign` lock the shards one after another). Under a shard lock the store
//! takes one other lock, a leaf: with `-L`, the large-page region's free list
//! (`slab::LargeRegion`), when a page is added or released. The budget, CAS counter and flush
//! mark are atomics.

pub mod exptime;
pub mod hand;
pub mod item;
pub mod restart;
pub mod segments;
pub mod shard;
pub mod slab;
pub mod value;

mod automove;
mod pool;
mod shared;
mod stats;

use std::hash::BuildHasher;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crossbeam_utils::CachePadded;
use parking_lot::{Mutex, MutexGuard};

pub use shard::{Shard, ShardCounters};
pub use shared::{Evicted, EvictionWatch, MemBudget, StoreShared};
pub use slab::{SizeClasses, Steps};
pub use stats::{ClassStats, WalkPos};
pub use value::Value;

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
    pub value: Value<'a>,
    pub flags: u32,
    pub cas: u64,
    pub exptime: u32,
    pub atime: u32,
    pub bits: u8,
    pub class: usize,
    pub total: usize,
}

/// A reply's pin on an item (see `shard::pins`): its value can be read (`Store::read_pinned`)
/// until the pin goes back (`Store::unpin`). Not `Clone`: each pin is given back once.
#[derive(Debug, PartialEq, Eq)]
pub struct Pin {
    shard: usize,
    id: slab::ChunkId,
    len: usize,
}

impl Pin {
    /// The pinned value's length.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
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

/// Construction parameters (from the command line).
#[derive(Clone, Debug)]
pub struct StoreConfig {
    pub memory_limit: usize,
    /// `-I`, against an item's size as memcached counts it (`item::limit_size`).
    pub item_size_max: usize,
    /// CAS on (not `-C`): memcached counts 8 more bytes per item against `-I`.
    pub use_cas: bool,
    /// Items larger than this are chained (memcached's `slab_chunk_max`).
    pub slab_chunk_max: usize,
    pub page_size: usize,
    pub min_size: usize,
    pub growth_factor: f64,
    pub evictions: bool,
    /// `-L`: take pages from one region advised for transparent huge pages.
    pub large_pages: bool,
    pub hot_lru_pct: u32,
    pub warm_lru_pct: u32,
    pub slab_automove: u8,
    /// Segmented LRU (memcached's default); without it (`-o no_modern`, `no_lru_segmented`) every
    /// allocation first frees the dead items at the tail, as memcached's flat LRU does.
    pub lru_segmented: bool,
    /// `-o temporary_ttl=N`: items with a TTL of at most N go to the TEMP segment, where they are
    /// never aged or evicted, only freed once dead.
    pub temp_lru: bool,
    pub temporary_ttl: u32,
    /// Bytes counted as malloced before any page (memcached's test hook `T_MEMD_INITIAL_MALLOC`):
    /// they count against the memory limit and in `total_malloced`.
    pub initial_malloc: usize,
    /// `-o hashpower`: the hash table's starting power (0: memcached's 16), shown as
    /// `hash_power_level` and grown as memcached's table grows.
    pub hash_power: u32,
    /// Number of shards; 0 picks one from the memory limit and thread count.
    pub shards: usize,
    pub threads: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            memory_limit: 64 << 20,
            item_size_max: 1 << 20,
            use_cas: true,
            slab_chunk_max: 1 << 19,
            page_size: 1 << 20,
            min_size: 48,
            growth_factor: 1.25,
            evictions: true,
            large_pages: false,
            hot_lru_pct: 20,
            warm_lru_pct: 40,
            slab_automove: 1,
            lru_segmented: true,
            temp_lru: false,
            temporary_ttl: 61,
            initial_malloc: 0,
            hash_power: 0,
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

/// Pages per shard at least (see `shard_count`).
const SHARD_PAGES_MIN: usize = 64;

/// Shard count: enough for the threads to rarely meet, few enough that every shard owns a
/// useful number of pages (each shard holds whole pages per size class, evicts within itself
/// and borrows a class's first page for itself). Up to `-m 127` (the default `-m 64`
/// included) that is one shard: the cache then evicts in one order and runs out of memory at
/// one point, as memcached does (its t/ suite counts on both).
fn shard_count(cfg: &StoreConfig) -> usize {
    if cfg.shards > 0 {
        return cfg.shards.next_power_of_two();
    }
    let pages = (cfg.memory_limit / cfg.page_size).max(1);
    let by_memory = (pages / SHARD_PAGES_MIN).max(1);
    let by_threads = (cfg.threads.max(1) * 4).next_power_of_two();
    let n = by_memory.min(by_threads);
    // Round down to a power of two.
    1 << (usize::BITS - 1 - n.leading_zeros())
}

/// The size classes for `shards` shards: with 8-byte steps for small items when every shard can
/// give every class two pages, else memcached's schedule. Each class needs whole pages in each
/// shard; with few pages per shard (the default `-m 64`), more classes would leave classes
/// without a page, and items of varied sizes would be evicted from a mostly empty cache.
fn size_classes(cfg: &StoreConfig, shards: usize) -> SizeClasses {
    let pages = (cfg.page_size, cfg.slab_chunk_max);
    let fine = SizeClasses::new(cfg.min_size, cfg.growth_factor, pages, Steps::Fine);
    let pages_per_shard = (cfg.memory_limit / cfg.page_size).max(1) / shards.max(1);
    if pages_per_shard >= 2 * fine.len() {
        fine
    } else {
        SizeClasses::new(cfg.min_size, cfg.growth_factor, pages, Steps::Factor)
    }
}

impl Store {
    pub fn new(cfg: &StoreConfig) -> Store {
        let n = shard_count(cfg);
        let classes = Arc::new(size_classes(cfg, n));
        let shared = Arc::new(StoreShared::new(cfg));
        let hasher = KeyHasher::new();
        // With -L: the memory limit plus a page per shard for first pages of classes taken past
        // the limit, in one region (further such pages come from the heap).
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

    /// Reports evictions to `w` from now on (set once; later calls are ignored).
    pub fn set_eviction_watch(&self, w: Arc<dyn EvictionWatch>) {
        let _ = self.shared.eviction_watch.set(w);
    }

    /// The class (numbered as `stats slabs` shows it) an item of this key, value and flags
    /// would be stored in; 0 when too large for any.
    pub fn class_id_for(&self, key: &[u8], value_len: usize, flags: u32) -> u32 {
        self.classes
            .class_for(item::total_size(key.len(), value_len, flags))
            .map_or(0, |c| c as u32 + 1)
    }

    /// Locks the shard owning `hash`. Hold the guard only for one operation and its encoding.
    #[inline]
    pub fn lock(&self, hash: u64) -> MutexGuard<'_, Shard> {
        self.shards[self.shard_of(hash)].lock()
    }

    /// The number of the shard owning `hash`.
    #[inline]
    pub fn shard_of(&self, hash: u64) -> usize {
        ((hash >> SHARD_BITS_AT) & self.mask) as usize
    }

    /// Pins the live item under `key` that a lookup under `shard` (the locked shard of `hash`)
    /// just found, for a reply that sends its value later (`read_pinned`) instead of copying
    /// it now. Every pin must go back through `unpin`.
    pub fn pin(&self, shard: &mut Shard, key: &[u8], hash: u64) -> Option<Pin> {
        let id = shard.pin(key, hash)?;
        Some(Pin {
            shard: self.shard_of(hash),
            id,
            len: shard.pinned_value(id).len(),
        })
    }

    /// Appends to `out` the pinned value's bytes from `from`, at most `max` of them; returns how
    /// many. The bytes are the value as it was when pinned, whatever happened to the key since.
    pub fn read_pinned(&self, pin: &Pin, from: usize, max: usize, out: &mut Vec<u8>) -> usize {
        let shard = self.shards[pin.shard].lock();
        let end = pin.len.min(from.saturating_add(max));
        let mut at = 0;
        for part in shard.pinned_value(pin.id).parts() {
            let (lo, hi) = (at, at + part.len());
            at = hi;
            if hi <= from {
                continue;
            }
            if lo >= end {
                break;
            }
            out.extend_from_slice(&part[from.max(lo) - lo..end.min(hi) - lo]);
        }
        end.saturating_sub(from)
    }

    /// Gives a pin back (the last pin of an item unlinked meanwhile frees its chunks).
    pub fn unpin(&self, pin: Pin) {
        self.shards[pin.shard].lock().unpin(pin.id);
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
        // Over the limit (it shrank): pooled pages go first.
        while self.shared.budget.over_limit() && self.shared.pool.take().is_some() {
            self.shared.budget.release();
        }
        let mut items = 0;
        let done = self
            .shards
            .iter()
            .map(|s| {
                let mut shard = s.lock();
                items += shard.counters().curr_items;
                shard.maintain(balance, crawl, now)
            })
            .sum();
        self.shared.grow_hash_power(items);
        done
    }

    /// Where each shard's expiry crawler stands: its completed passes, and whether it is at the
    /// start of the pages (between passes). A requested pass is done once every shard has
    /// completed a pass begun after the request (see `CrawlMark::covers`).
    pub fn crawl_marks(&self) -> Vec<CrawlMark> {
        self.shards.iter().map(|s| s.lock().crawl_mark()).collect()
    }
}

/// One shard's crawler position, for waiting on a full pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CrawlMark {
    pub passes: u64,
    pub at_start: bool,
}

impl CrawlMark {
    /// True when the shard, marked `earlier` when a pass was requested and `self` now, has
    /// walked all its pages since: a pass begun at the start has completed, or a pass that was
    /// under way then has completed and a whole one after it; or it stands at the start
    /// without having walked, which it does only when nothing can be found.
    pub fn covers(&self, earlier: &CrawlMark) -> bool {
        let need = if earlier.at_start { 1 } else { 2 };
        self.passes >= earlier.passes + need || (self.at_start && self.passes == earlier.passes)
    }
}

#[cfg(test)]
mod chain_tests;
#[cfg(test)]
mod pin_tests;
#[cfg(test)]
mod tests;
