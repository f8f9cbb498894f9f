//! Owns: the statistics views over all shards — per-class counters (`ClassStats`) summed over
//! shards, the shard counters summed, and the walk over every live item for dumps. Each shard is
//! locked in turn, never two at once.

use super::{ItemView, ShardCounters, Store};

/// Per-class counters, as `stats items` and `stats slabs` report them.
#[derive(Clone, Debug, Default)]
pub struct ClassStats {
    pub number_hot: u64,
    pub number_warm: u64,
    pub number_cold: u64,
    pub number_temp: u64,
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
    /// Items the LRU hand passed over because a store or a reply held them (memcached's
    /// referenced items at an LRU tail).
    pub lrutail_reflocked: u64,
    pub moves_to_cold: u64,
    pub moves_to_warm: u64,
    pub moves_within_lru: u64,
    pub direct_reclaims: u64,
    pub hits_to_hot: u64,
    pub hits_to_warm: u64,
    pub hits_to_cold: u64,
    pub hits_to_temp: u64,
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
    /// Chunks holding parts of chained items.
    pub body_chunks: u64,
}

impl ClassStats {
    /// Adds another shard's numbers for the same class (ages take the maximum).
    fn merge(&mut self, o: &ClassStats) {
        macro_rules! add { ($($f:ident),*) => { $( self.$f += o.$f; )* } }
        add!(
            number_hot,
            number_warm,
            number_cold,
            number_temp,
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
            lrutail_reflocked,
            moves_to_cold,
            moves_to_warm,
            moves_within_lru,
            direct_reclaims,
            hits_to_hot,
            hits_to_warm,
            hits_to_cold,
            hits_to_temp,
            get_hits,
            cmd_set,
            delete_hits,
            incr_hits,
            decr_hits,
            cas_hits,
            cas_badval,
            touch_hits,
            total_pages,
            free_chunks,
            body_chunks
        );
        self.age_hot = self.age_hot.max(o.age_hot);
        self.age_warm = self.age_warm.max(o.age_warm);
        self.age = self.age.max(o.age);
        self.evicted_time = self.evicted_time.max(o.evicted_time);
    }

    pub fn number(&self) -> u64 {
        self.number_hot + self.number_warm + self.number_cold + self.number_temp
    }
}

impl Store {
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
            t.slab_reassign_chunk_rescues += c.slab_reassign_chunk_rescues;
            t.slab_reassign_evictions += c.slab_reassign_evictions;
            t.lru_maintainer_juggles += c.lru_maintainer_juggles;
            t.crawler_runs += c.crawler_runs;
            t.expiring += c.expiring;
        }
        t
    }

    /// `stats reset`: zeroes the resettable counters of every shard.
    pub fn reset_stats(&self) {
        for s in self.shards.iter() {
            s.lock().reset_stats();
        }
    }

    /// Starts or stops keeping the `stats sizes` histogram in every shard (starting counts the
    /// items held now, one shard locked at a time).
    pub fn track_sizes(&self, on: bool) {
        for s in self.shards.iter() {
            s.lock().track_sizes(on);
        }
    }

    /// Linked items per 32-byte size bucket, as (bucket's upper size in bytes, items), in size
    /// order; None while some shard does not track sizes.
    pub fn sizes(&self) -> Option<Vec<(usize, u64)>> {
        let mut all = std::collections::BTreeMap::<u32, u64>::new();
        for s in self.shards.iter() {
            for (b, n) in s.lock().sizes()? {
                *all.entry(b).or_default() += n;
            }
        }
        Some(all.into_iter().map(|(b, n)| (b as usize * 32, n)).collect())
    }

    /// Visits the live items of `classes` (bit `c` for class index `c`) from `pos` on, one
    /// shard locked at a time, until `f` returns false (`pos` then says where to go on) or the
    /// walk is over (false). Between calls nothing is locked: items stored, moved or removed
    /// meanwhile may be met or missed, as memcached's crawler may meet or miss them.
    pub fn walk_items(
        &self,
        pos: &mut WalkPos,
        now: u32,
        classes: u64,
        mut f: impl FnMut(ItemView<'_>) -> bool,
    ) -> bool {
        while let Some(s) = self.shards.get(pos.shard) {
            match s
                .lock()
                .walk_items((pos.page, pos.chunk), now, classes, &mut f)
            {
                Some((page, chunk)) => {
                    (pos.page, pos.chunk) = (page, chunk);
                    return true;
                }
                None => {
                    *pos = WalkPos {
                        shard: pos.shard + 1,
                        page: 0,
                        chunk: 0,
                    }
                }
            }
        }
        false
    }
}

/// Where a walk over the items (`Store::walk_items`) stands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalkPos {
    shard: usize,
    page: usize,
    chunk: usize,
}
