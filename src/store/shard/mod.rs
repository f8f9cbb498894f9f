//! Owns: one shard of the cache — the `Shard` state (key index, pages, per-class free lists,
//! segment counts, hands and counters) and the checks every concern shares (is an item dead,
//! a borrowed view of it). Single-threaded (`&mut self`); the concerns live in the files below,
//! each adding an `impl Shard` block.
//! Does not: lock, hash keys, or read the time (the caller passes `hash` and `now`).

mod alloc;
mod chain;
mod link;
mod maintain;
mod meta;
mod ops;
mod page_moves;
mod pins;
mod restore;
mod stats;
mod sweep;

use maintain::Crawler;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use hashbrown::HashTable;

use super::exptime::is_expired;
use super::hand::Hand;
use super::item;
use super::segments::SegmentCounts;
use super::slab::{ChunkId, LargeRegion, Pages, SizeClasses};
use super::value::Value;
use super::{ClassStats, ItemView, KeyHasher, Miss, StoreShared};

/// One size class within the shard.
#[derive(Debug, Default)]
struct Class {
    segs: SegmentCounts,
    hand: Hand,
    free: Vec<ChunkId>,
    pages: Vec<usize>,
    stats: ClassStats,
    evictions_seen: u64,
    /// Chunks holding a part of a chained item (see `chain`).
    bodies: usize,
}

/// Shard-wide counters.
#[derive(Debug, Default, Clone)]
pub struct ShardCounters {
    pub curr_items: u64,
    pub total_items: u64,
    pub bytes: u64,
    pub slabs_moved: u64,
    pub slab_reassign_rescues: u64,
    /// Parts of chained items copied out of a page changing class.
    pub slab_reassign_chunk_rescues: u64,
    pub slab_reassign_evictions: u64,
    pub lru_maintainer_juggles: u64,
    pub crawler_runs: u64,
    /// Live items with an expiry time (the crawler has work only when some exist, or after a
    /// flush).
    pub expiring: u64,
}

/// One shard: see the module header.
#[derive(Debug)]
pub struct Shard {
    classes: Arc<SizeClasses>,
    shared: Arc<StoreShared>,
    hasher: KeyHasher,
    pages: Pages,
    index: HashTable<ChunkId>,
    class: Vec<Class>,
    counters: ShardCounters,
    crawler: Crawler,
    /// The class of full body chunks of chained items: the class of `slab_chunk_max`.
    body_cls: usize,
    /// Chunks taken for an item being stored (see `chain::take_chunks`): no page holding one moves.
    reserved: Vec<ChunkId>,
    /// The item a store is changing: never evicted or moved by that store's allocation.
    pinned: Option<ChunkId>,
    /// Restored items linked but not yet in the index, with their key hashes (see `restore`).
    unindexed: Vec<(u64, ChunkId)>,
    /// Restored items dropped when indexed because their key was already there.
    restore_dups: u64,
    /// Items replies are sending (see `pins`).
    reply_pins: pins::ReplyPins,
    /// Linked items per 32-byte size bucket (`stats sizes`), kept by every link and unlink
    /// while size tracking is on (see `stats::track_sizes`).
    sizes: Option<std::collections::HashMap<u32, u64>>,
}

/// Result of looking a key up.
enum Found {
    Hit(ChunkId),
    Miss(Miss),
}

/// Who frees a dead item: the counter it goes to (`crawler_reclaimed` or `reclaimed`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reclaimer {
    Crawler,
    /// The sweep, an allocation reusing a dead item ahead of the hand, or a page being emptied.
    Other,
}

impl Shard {
    pub fn new(
        classes: Arc<SizeClasses>,
        shared: Arc<StoreShared>,
        hasher: KeyHasher,
        large: Option<Arc<LargeRegion>>,
    ) -> Shard {
        let class = (0..classes.len()).map(|_| Class::default()).collect();
        let body_cls = classes
            .class_for(shared.slab_chunk_max)
            .unwrap_or(classes.len() - 1);
        Shard {
            body_cls,
            reserved: Vec::new(),
            pinned: None,
            unindexed: Vec::new(),
            restore_dups: 0,
            reply_pins: pins::ReplyPins::default(),
            sizes: None,
            pages: Pages::new(&classes, large),
            classes,
            shared,
            hasher,
            index: HashTable::new(),
            class,
            counters: ShardCounters::default(),
            crawler: Crawler::default(),
        }
    }

    fn is_flushed(&self, c: &[u8]) -> bool {
        item::cas(c) <= self.shared.flush_cas.load(Ordering::Relaxed)
    }

    /// True when the item in `c` can no longer be returned: expired or flushed.
    fn is_dead(&self, c: &[u8], now: u32) -> bool {
        is_expired(item::exptime(c), now) || self.is_flushed(c)
    }

    fn view(&self, id: ChunkId) -> ItemView<'_> {
        let c = self.pages.chunk(id);
        ItemView {
            key: item::key(c),
            value: Value::of(&self.pages, c, self.body_cap()),
            flags: item::flags(c),
            cas: item::cas(c),
            exptime: item::exptime(c),
            atime: item::atime(c),
            bits: item::bits(c),
            class: self.pages.class_of(id),
            total: item::size(c),
        }
    }

    /// Checks internal consistency (tests only): index, segment counts, pages and counters agree.
    #[cfg(test)]
    pub fn check(&self) {
        let mut linked = 0;
        let mut expiring = 0;
        for (cls, class) in self.class.iter().enumerate() {
            let mut counts = [0usize; 4];
            let mut bodies = 0;
            for &p in &class.pages {
                for n in 0..self.pages.chunks_in(p) {
                    let id = self.pages.id(p, n);
                    assert_eq!(self.pages.class_of(id), cls);
                    let c = self.pages.chunk(id);
                    if item::is_body(c) {
                        bodies += 1;
                        let head = item::body_head(c);
                        assert!(item::in_use(self.pages.chunk(head)), "body of a free head");
                        assert!(self.parts_of(head).any(|x| x == id), "head lists its body");
                        assert!(!class.free.contains(&id), "body chunk on the free list");
                    }
                    if let Some(seg) = self
                        .lru_item_at(id)
                        .and_then(|i| item::segment(self.pages.chunk(i)))
                    {
                        counts[seg.index()] += 1;
                    }
                    if item::in_use(c) {
                        expiring += u64::from(item::exptime(c) != 0);
                    }
                }
            }
            for seg in item::Segment::ALL {
                assert_eq!(
                    counts[seg.index()],
                    class.segs.len(seg),
                    "class {cls} {seg:?}"
                );
            }
            assert_eq!(bodies, class.bodies, "class {cls} body chunks");
            linked += class.segs.total();
        }
        assert_eq!(linked, self.index.len());
        assert_eq!(linked as u64, self.counters.curr_items);
        assert_eq!(expiring, self.counters.expiring);
        self.check_pins();
    }
}
