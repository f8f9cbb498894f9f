//! Owns: page moves decided across the store — slab automove's choice of the classes to move a
//! page between, and `slabs reassign`. Each shard is locked in turn; the move itself is
//! `Shard::move_page`.

use std::sync::atomic::Ordering;

use super::Store;

impl Store {
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
}
