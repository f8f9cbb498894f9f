//! Owns: page moves decided across the store — slab automove's choice of the classes to move a
//! page between (or to the global page pool), and `slabs reassign`. Each shard is locked in turn; the move itself is
//! `Shard::move_page`.

use std::sync::atomic::Ordering;

use super::Store;

/// Free chunks, in pages' worth, above which a class gives pages to the pool (memcached's
/// `MIN_PAGES_FOR_RECLAIM`).
const POOL_FREE_PAGES: f64 = 2.5;

/// Pages a shard gives to the pool at most per automove round.
const POOL_MOVES: usize = 8;

impl Store {
    /// Slab automove (memcached's mode 1, simplified): when the cache is full and a class is
    /// evicting, move a page to it from the class whose oldest item is oldest, if that item is
    /// clearly older. Mode 2 moves on any eviction. Returns the moves made.
    pub fn automove(&self, now: u32) -> usize {
        let mode = self.shared.automove.load(Ordering::Relaxed);
        if mode == 0 {
            return 0;
        }
        let mut moved = self.free_pages_to_pool(now);
        if self.shared.budget.used() < self.shared.budget.limit() {
            return moved;
        }
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

    /// As memcached's automover: a class holding more than `POOL_FREE_PAGES` pages' worth of
    /// free chunks (so it is not evicting) gives its emptiest pages to the global page pool,
    /// up to `POOL_MOVES` per shard and round.
    fn free_pages_to_pool(&self, now: u32) -> usize {
        let mut moved = 0;
        for s in self.shards.iter() {
            let mut shard = s.lock();
            let mut moves = 0;
            for c in 0..self.classes.len() {
                let per_page = self.classes.chunks_per_page(c) as f64;
                while moves < POOL_MOVES
                    && shard.class_free(c) as f64 > per_page * POOL_FREE_PAGES
                    && shard.page_to_pool(c, now)
                {
                    moves += 1;
                }
            }
            moved += moves;
        }
        moved
    }

    /// `slabs reassign`: moves one page from `src` to `dst` (0-based classes; `None` is the
    /// global page pool) in the first shard that has more than one page of `src` (or, from the
    /// pool, in the first shard). False when no page could move.
    pub fn reassign(&self, src: Option<usize>, dst: Option<usize>, now: u32) -> bool {
        match (src, dst) {
            (None, Some(dst)) => self.shards[0].lock().page_from_pool(dst),
            (Some(src), None) => self.shards.iter().any(|s| s.lock().page_to_pool(src, now)),
            (Some(src), Some(dst)) => self.shards.iter().any(|s| {
                let mut shard = s.lock();
                shard.class_pages(src) > 1 && shard.move_page(src, dst, now)
            }),
            (None, None) => false,
        }
    }

    /// Pages in the global page pool (`slab_global_page_pool`).
    pub fn pooled_pages(&self) -> usize {
        self.shared.pool.len()
    }

    /// Bytes malloced for pages (`total_malloced`).
    pub fn malloced(&self) -> usize {
        self.shared.malloced()
    }
}
