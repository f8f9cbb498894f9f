//! Owns: what the shard reports about itself — per-class snapshots for `stats items` and `stats
//! slabs`, ages sampled ahead of the hand, the automover's eviction window, page and free chunk
//! counts, shard counters, and the walk over live items for dumps.

use super::{ClassStats, Shard, ShardCounters};
use crate::store::item::{self, Segment};
use crate::store::ItemView;

/// Live items ahead of the hand sampled for the ages `stats items` reports and the automover uses.
const AGE_PEEK: usize = 64;

impl Shard {
    /// Evictions seen by class `cls` since the last call (for the automover's window).
    pub fn take_eviction_delta(&mut self, cls: usize) -> u64 {
        let c = &mut self.class[cls];
        let d = c.stats.evicted - c.evictions_seen;
        c.evictions_seen = c.stats.evicted;
        d
    }

    /// Age in seconds (since last access) of the oldest item among the next few under class
    /// `cls`'s hand, COLD ones first, if the class holds any.
    pub fn tail_age(&self, cls: usize, now: u32) -> Option<u32> {
        let ages = self.hand_ages(cls, now);
        ages[Segment::Cold.index()]
            .or(ages[Segment::Warm.index()])
            .or(ages[Segment::Hot.index()])
    }

    /// Per segment, the largest age among the next `AGE_PEEK` items under the hand: the sweep's
    /// stand-in for the age of an LRU tail.
    fn hand_ages(&self, cls: usize, now: u32) -> [Option<u32>; 4] {
        let mut ages = [None; 4];
        self.peek_ahead(cls, AGE_PEEK, |_, c, _| {
            if let Some(seg) = item::segment(c) {
                let age = now.saturating_sub(item::atime(c));
                let slot = &mut ages[seg.index()];
                *slot = Some(slot.map_or(age, |a: u32| a.max(age)));
            }
            true
        });
        ages
    }

    /// Pages owned by class `cls`.
    pub fn class_pages(&self, cls: usize) -> usize {
        self.class[cls].pages.len()
    }

    /// Free chunks of class `cls`.
    pub fn class_free(&self, cls: usize) -> usize {
        self.class[cls].free.len()
    }

    /// A snapshot of class `cls`'s counters with its live item numbers filled in.
    pub fn class_snapshot(&self, cls: usize, now: u32) -> ClassStats {
        let c = &self.class[cls];
        let mut s = c.stats.clone();
        s.number_hot = c.segs.len(Segment::Hot) as u64;
        s.number_warm = c.segs.len(Segment::Warm) as u64;
        s.number_cold = c.segs.len(Segment::Cold) as u64;
        s.number_temp = c.segs.len(Segment::Temp) as u64;
        s.total_pages = c.pages.len() as u64;
        s.free_chunks = c.free.len() as u64;
        s.body_chunks = c.bodies as u64;
        let ages = self.hand_ages(cls, now);
        let age = |seg: Segment| u64::from(ages[seg.index()].unwrap_or(0));
        s.age_hot = age(Segment::Hot);
        s.age_warm = age(Segment::Warm);
        s.age = age(Segment::Cold);
        s
    }

    pub fn counters(&self) -> &ShardCounters {
        &self.counters
    }

    /// `stats reset`: zeroes the per-class counters (not `mem_requested`, which is state) and the
    /// resettable shard counters (not the live item and byte counts).
    pub fn reset_stats(&mut self) {
        for c in self.class.iter_mut() {
            c.stats = ClassStats {
                mem_requested: c.stats.mem_requested,
                ..ClassStats::default()
            };
            c.evictions_seen = 0;
        }
        let k = &mut self.counters;
        k.total_items = 0;
        k.slabs_moved = 0;
        k.slab_reassign_rescues = 0;
        k.slab_reassign_evictions = 0;
        k.lru_maintainer_juggles = 0;
        k.crawler_runs = 0;
    }

    /// Starts or stops keeping the `stats sizes` histogram. Starting counts the items linked
    /// now, in one walk; from then on every link and unlink keeps it (memcached's histogram is
    /// kept the same way), so reading it costs its buckets, not the items.
    pub fn track_sizes(&mut self, on: bool) {
        if !on {
            self.sizes = None;
            return;
        }
        if self.sizes.is_some() {
            return;
        }
        let mut sizes = std::collections::HashMap::new();
        for p in 0..self.pages.slots() {
            for n in 0..self.pages.chunks_in(p) {
                let c = self.pages.chunk(self.pages.id(p, n));
                if item::in_use(c) {
                    *sizes.entry(size_bucket(item::size(c))).or_default() += 1;
                }
            }
        }
        self.sizes = Some(sizes);
    }

    /// Counts a linked (`add`) or unlinked item of `total` bytes while sizes are tracked.
    #[inline]
    pub(super) fn count_size(&mut self, total: usize, add: bool) {
        let Some(sizes) = self.sizes.as_mut() else {
            return;
        };
        let b = size_bucket(total);
        if add {
            *sizes.entry(b).or_default() += 1;
        } else if let Some(n) = sizes.get_mut(&b) {
            *n -= 1;
            if *n == 0 {
                sizes.remove(&b);
            }
        }
    }

    /// The tracked sizes: linked items per 32-byte bucket (index = size / 32, rounded up);
    /// None while sizes are not tracked.
    pub fn sizes(&self) -> Option<impl Iterator<Item = (u32, u64)> + '_> {
        Some(self.sizes.as_ref()?.iter().map(|(&b, &n)| (b, n)))
    }

    /// Calls `f` for the live items of the classes in `classes` (bit `c` for class index `c`),
    /// in page order from chunk `from` (page, chunk), until it returns false: then returns where
    /// the walk goes on (past the item `f` refused more after), or None once the shard is done.
    /// Pages of other classes are skipped whole.
    pub fn walk_items(
        &self,
        from: (usize, usize),
        now: u32,
        classes: u64,
        mut f: impl FnMut(ItemView<'_>) -> bool,
    ) -> Option<(usize, usize)> {
        let (mut p, mut n) = from;
        while p < self.pages.slots() {
            let chunks = self.pages.chunks_in(p);
            if chunks > 0
                && classes & (1u64 << (self.pages.class_of(self.pages.id(p, 0)) & 63)) != 0
            {
                while n < chunks {
                    let id = self.pages.id(p, n);
                    n += 1;
                    let c = self.pages.chunk(id);
                    if item::in_use(c) && !self.is_dead(c, now) && !f(self.view(id)) {
                        return Some((p, n));
                    }
                }
            }
            p += 1;
            n = 0;
        }
        None
    }
}

/// `stats sizes`' bucket of an item of `total` bytes: memcached's 32-byte steps, rounded up.
fn size_bucket(total: usize) -> u32 {
    u32::try_from(total.div_ceil(32)).unwrap_or(u32::MAX)
}
