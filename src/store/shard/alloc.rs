//! Owns: finding a free chunk for a new item — the class's free list, a dead item just ahead of
//! the hand, a new page from the budget (or, for a class without one, its first page past the
//! limit), eviction — and carving new pages into free chunks.
//! Does not: decide which item is evicted (see `sweep`) or which page moves (see `page_moves`).

use super::{Reclaimer, Shard};
use crate::store::slab::ChunkId;
use crate::store::StoreError;

/// Items ahead of the hand looked at per allocation attempt when searching for expired
/// items to reuse.
pub(super) const TAIL_PEEK: usize = 5;

/// Chunks the flat LRU's tail pull passes at most to find the next item: a bound on the work
/// added to a store (the chunks ahead of the hand are mostly items; free ones are rare).
const PULL_CHUNKS_MAX: usize = 64;

/// Allocation attempts before giving up (memcached's `do_item_alloc_pull` also tries 10 times).
const ALLOC_TRIES: usize = 10;

impl Shard {
    /// Takes a free chunk of class `cls`: the free list, then a dead item ahead of the hand, then
    /// a page from the global page pool, then a new page from the global budget (a class
    /// without pages takes its first one past the limit), then eviction by the hand. The flag
    /// says whether anything was unlinked or moved on the way (ids found before
    /// the call may then be stale).
    pub(super) fn alloc(&mut self, cls: usize, now: u32) -> Result<(ChunkId, bool), StoreError> {
        for attempt in 0..ALLOC_TRIES {
            if let Some(id) = self.class[cls].free.pop() {
                return Ok((id, attempt > 0));
            }
            if self.reclaim_tail(cls, now) {
                continue;
            }
            if self.page_from_pool(cls) {
                continue;
            }
            if self.shared.budget.try_acquire() {
                self.add_page(cls);
                continue;
            }
            // Under -M (memcached's rule as it is: out of memory once the class has a page
            // anywhere) the first page is the class's, not this shard's.
            let first = if self.shared.evictions {
                self.class[cls].pages.is_empty()
            } else {
                self.shared.class_pages(cls) == 0
            };
            if first {
                // memcached's rule: a class gets its first page even past the limit, so every
                // size can be stored (the overshoot is bounded by one page per class; `maintain`
                // pays it back from classes with more than one page).
                self.shared.budget.force_acquire();
                self.add_page(cls);
                continue;
            }
            if !self.shared.evictions {
                break;
            }
            self.class[cls].stats.direct_reclaims += 1;
            if self.evict_tail(cls, now) {
                continue;
            }
            break;
        }
        self.class[cls].stats.outofmemory += 1;
        Err(StoreError::OutOfMemory)
    }

    fn add_page(&mut self, cls: usize) {
        let size = self.classes.size(cls);
        let p = self.pages.add(cls, size);
        self.push_page_chunks(p, cls);
    }

    pub(super) fn push_page_chunks(&mut self, p: usize, cls: usize) {
        let n = self.pages.chunks_in(p);
        let class = &mut self.class[cls];
        class.pages.push(p);
        self.shared.count_class_page(cls, true);
        class.free.reserve(n);
        // Reverse so chunks are handed out from the start of the page.
        for i in (0..n).rev() {
            class.free.push(self.pages.id(p, i));
        }
    }

    /// Frees the expired or flushed items just ahead of the hand, up to `max` of them, stopping
    /// at the first live one (counted as `reclaimed`); returns how many it freed. Looks at no
    /// more than `PULL_CHUNKS_MAX` chunks per item, free ones included.
    pub(super) fn pull_tail(&mut self, cls: usize, max: usize, now: u32) -> usize {
        for freed in 0..max {
            let mut first = None;
            self.peek_ahead_within(cls, 1, PULL_CHUNKS_MAX, |id, c, passed| {
                first = Some((id, passed, self.is_dead(c, now)));
                false
            });
            let Some((id, passed, true)) = first else {
                return freed;
            };
            for _ in 0..=passed {
                self.advance_hand(cls);
            }
            self.reclaim(id, Reclaimer::Other);
        }
        max
    }

    /// Reuses an expired or flushed item found among the next few under the hand, moving
    /// the hand past it (so the new item stored there is the last the hand reaches again). True
    /// when one was freed; the hand stays put when none was.
    fn reclaim_tail(&mut self, cls: usize, now: u32) -> bool {
        let mut found = None;
        self.peek_ahead(cls, TAIL_PEEK, |id, c, passed| {
            if self.is_dead(c, now) {
                found = Some((id, passed));
                return false;
            }
            true
        });
        let Some((id, passed)) = found else {
            return false;
        };
        for _ in 0..=passed {
            self.advance_hand(cls);
        }
        self.reclaim(id, Reclaimer::Other);
        true
    }
}
