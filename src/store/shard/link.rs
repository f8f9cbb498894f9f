//! Owns: an item's way into and out of the shard — lookup in the key index (unlinking expired
//! and flushed items lazily), linking a written chunk into the index and the HOT segment,
//! unlinking back to the free list (and reclaiming dead items with their counts), and expiry
//! changes with the count of expiring items.
//! Does not: choose chunks (see `alloc`) or age items (see `sweep`).

use super::sweep::Sweep;
use super::{Found, Reclaimer, Shard};
use crate::store::exptime::is_expired;
use crate::store::item::{self, Segment, FETCHED};
use crate::store::slab::ChunkId;
use crate::store::Miss;

impl Shard {
    /// Finds a live item, unlinking it lazily when expired or flushed.
    pub(super) fn find(&mut self, key: &[u8], hash: u64, now: u32) -> Found {
        let pages = &self.pages;
        let Some(&id) = self
            .index
            .find(hash, |&id| item::key(pages.chunk(id)) == key)
        else {
            return Found::Miss(Miss::NotFound);
        };
        let c = self.pages.chunk(id);
        if is_expired(item::exptime(c), now) {
            self.unlink_item(id, Some(hash));
            return Found::Miss(Miss::Expired);
        }
        if self.is_flushed(c) {
            self.unlink_item(id, Some(hash));
            return Found::Miss(Miss::Flushed);
        }
        Found::Hit(id)
    }

    /// Inserts a freshly written chunk into the index and the HOT segment (COLD with the flat
    /// LRU).
    pub(super) fn link_item(&mut self, id: ChunkId, hash: u64, now: u32) {
        // The flat LRU has no HOT segment to pass through: a new item is at the head of the one
        // list the hand evicts from.
        let seg = if self
            .shared
            .is_temporary(item::exptime(self.pages.chunk(id)), now)
        {
            Segment::Temp
        } else if self.shared.segmented {
            Segment::Hot
        } else {
            Segment::Cold
        };
        let cls = self.link_in(id, hash, seg);
        // While pages are still free nothing is evicted and the maintainer keeps the segment
        // shares (finding a HOT item to age walks chunks, a cost per store). Once memory is
        // full, every store ages one item inline, as memcached juggles its LRU on each
        // allocation: it keeps eviction order close to an LRU's (zipf hit ratio under `-m 64`
        // 0.73 without it, 0.76-0.79 with it).
        let budget = &self.shared.budget;
        if self.shared.segmented && budget.used() >= budget.limit() {
            self.balance_class(cls, 1, Sweep::Link, now);
        }
    }

    /// Inserts a written chunk into the index and segment `seg`, with its counts; returns the
    /// class whose LRU it joined.
    pub(super) fn link_in(&mut self, id: ChunkId, hash: u64, seg: Segment) -> usize {
        let pages = &self.pages;
        let hasher = &self.hasher;
        self.index
            .insert_unique(hash, id, |&x| hasher.hash(item::key(pages.chunk(x))));
        self.link_unindexed(id, seg)
    }

    /// `link_in` but for the index (a restore indexes its items afterwards, see `restore`).
    pub(super) fn link_unindexed(&mut self, id: ChunkId, seg: Segment) -> usize {
        let (total, expiring) = {
            let c = self.pages.chunk(id);
            (item::size(c), item::exptime(c) != 0)
        };
        if expiring {
            self.counters.expiring += 1;
        }
        self.pages.mark_used(id);
        let cls = self.lru_class(id);
        item::set_segment(self.pages.chunk_mut(id), Some(seg));
        self.class[cls].segs.add(seg);
        let class = &mut self.class[self.pages.class_of(id)];
        class.stats.mem_requested += total as u64;
        self.counters.curr_items += 1;
        self.counters.total_items += 1;
        self.counters.bytes += total as u64;
        self.count_size(total, true);
        cls
    }

    /// Removes an item from the index and its LRU and returns its chunks to the free lists (a
    /// pinned item's once its last pin goes).
    pub(super) fn unlink_item(&mut self, id: ChunkId, hash: Option<u64>) {
        if !self.unindexed.is_empty() {
            // A restored item must be indexed to be found by its id below; indexing may drop
            // `id` itself, as a duplicate key.
            self.index_restored();
            if !item::in_use(self.pages.chunk(id)) {
                return;
            }
        }
        let (hash, total, seg, expiring) = {
            let c = self.pages.chunk(id);
            let hash = hash.unwrap_or_else(|| self.hasher.hash(item::key(c)));
            (hash, item::size(c), item::segment(c), item::exptime(c) != 0)
        };
        if expiring {
            self.counters.expiring = self.counters.expiring.saturating_sub(1);
        }
        if let Ok(entry) = self.index.find_entry(hash, |&x| x == id) {
            entry.remove();
        }
        if let Some(seg) = seg {
            let lru = self.lru_class(id);
            self.class[lru].segs.remove(seg);
        }
        // A pinned item's chunks stay as they are until its last pin goes (see `pins`).
        let keep = self.keep_unlinked(id);
        self.free_parts(id, keep);
        let cls = self.pages.class_of(id);
        let class = &mut self.class[cls];
        item::set_segment(self.pages.chunk_mut(id), None);
        if !keep {
            class.free.push(id);
        }
        class.stats.mem_requested = class.stats.mem_requested.saturating_sub(total as u64);
        self.counters.curr_items = self.counters.curr_items.saturating_sub(1);
        self.counters.bytes = self.counters.bytes.saturating_sub(total as u64);
        self.count_size(total, false);
    }

    /// Frees a dead item, counting it as reclaimed (by the crawler or otherwise, see `Reclaimer`)
    /// and, when it was never read, as expired unfetched: as memcached counts them, any such item
    /// freed at the tail, but only an unflushed one freed by the crawler.
    pub(super) fn reclaim(&mut self, id: ChunkId, by: Reclaimer) {
        let c = self.pages.chunk(id);
        let counted = match by {
            Reclaimer::Crawler => !self.is_flushed(c),
            Reclaimer::Other => true,
        };
        let expired_unfetched = counted && item::bits(c) & FETCHED == 0;
        let stats = &mut self.class[self.pages.class_of(id)].stats;
        match by {
            Reclaimer::Crawler => stats.crawler_reclaimed += 1,
            Reclaimer::Other => stats.reclaimed += 1,
        }
        if expired_unfetched {
            stats.expired_unfetched += 1;
        }
        self.unlink_item(id, None);
    }

    /// Sets a live item's expiry in place, keeping the count of expiring items.
    pub(super) fn retime(&mut self, id: ChunkId, exptime: u32) {
        let c = self.pages.chunk_mut(id);
        let was = item::exptime(c) != 0;
        item::set_exptime(c, exptime);
        match (was, exptime != 0) {
            (false, true) => self.counters.expiring += 1,
            (true, false) => self.counters.expiring = self.counters.expiring.saturating_sub(1),
            _ => {}
        }
    }
}
