//! Owns: one shard's side of a warm restart — handing out its pages' bytes for the save, and
//! taking back restored items (already decoded and checked, see `store::restart`): chunks of
//! their size, header, key and value written, linked into their saved LRU segments with their
//! marks, then indexed all at once in the order of the index's buckets (a duplicate key dropped).
//! Does not: read or check saved bytes (see `store::restart`), or touch files.

use hashbrown::hash_table::Entry;

use super::Shard;
use crate::store::item::{self, Header, Segment};
use crate::store::restart::Restored;

/// Buckets of the key index per bin when restored items are ordered for indexing (about 4 KB of
/// control bytes and 16 KB of slots: each bin's inserts stay in the CPU's caches).
const BIN_BUCKETS_LOG2: u32 = 12;

impl Shard {
    /// Each page in use: its slot (the page number in the shard's chunk ids), chunk size and the
    /// bytes of the chunks that have held items (the rest of the page was never written).
    pub fn page_images(&self) -> impl Iterator<Item = (u32, usize, &[u8])> + '_ {
        (0..self.pages.slots()).filter_map(move |p| {
            let page = self.pages.get(p)?;
            let len = (page.carved * page.chunk_size).min(page.data.len());
            Some((p as u32, page.chunk_size, &page.data[..len]))
        })
    }

    /// Makes room in the key index for `n` more items (before a restore, so it never rehashes),
    /// and in the list of items restored but not yet indexed.
    pub fn reserve_index(&mut self, n: usize) {
        self.unindexed
            .reserve(n.saturating_sub(self.unindexed.len()));
        self.reserve_keys(n);
    }

    /// Makes room in the key index for `n` more items.
    fn reserve_keys(&mut self, n: usize) {
        let pages = &self.pages;
        let hasher = &self.hasher;
        self.index
            .reserve(n, |&x| hasher.hash(item::key(pages.chunk(x))));
    }

    /// Stores a restored item as it was (CAS, flags, expiry and access time, segment and marks)
    /// without the request path's checks: false when no chunk can be had for it. The item is
    /// linked into its segment but not indexed: `index_restored` does that for every restored
    /// item at once (and drops one whose key is already there), and runs before anything that
    /// unlinks or moves an item.
    pub fn restore_item(&mut self, hash: u64, it: &Restored<'_>, now: u32) -> bool {
        let vlen: usize = it.parts().iter().map(|p| p.len()).sum();
        if !self.shared.fits(it.key.len(), vlen, it.flags) {
            return false;
        }
        let Ok(taken) = self.take_chunks(it.key.len(), vlen, it.flags, now) else {
            return false;
        };
        let header = Header {
            key: it.key,
            flags: it.flags,
            exptime: it.exptime,
            now: it.atime,
            cas: it.cas,
        };
        self.write_item(&taken, &header, it.parts());
        let (temp_on, _) = self.shared.temp_lru();
        let seg = match it.segment {
            _ if !self.shared.segmented => Segment::Cold,
            Segment::Temp if !temp_on => Segment::Hot,
            s => s,
        };
        self.link_unindexed(taken.head, seg);
        item::set_marks(self.pages.chunk_mut(taken.head), it.bits);
        self.unindexed.push((hash, taken.head));
        true
    }

    /// Puts the items `restore_item` linked into the key index. They go in the order of the
    /// index's buckets (a counting sort on the bucket's high bits), so the table is written bin
    /// by bin instead of at random: a cache miss per item fewer. An item whose key is already
    /// indexed (only a damaged save has two) is unlinked and counted in `take_restore_dups`.
    pub fn index_restored(&mut self) {
        if self.unindexed.is_empty() {
            return;
        }
        let restored = std::mem::take(&mut self.unindexed);
        self.reserve_keys(restored.len());
        // hashbrown's capacity is 7/8 of its (power of two) bucket count; a bucket is the hash's
        // low bits.
        let buckets = (self.index.capacity() / 7 * 8).next_power_of_two().max(1);
        let shift = BIN_BUCKETS_LOG2.min(buckets.trailing_zeros());
        let bin = |h: u64| (h as usize & (buckets - 1)) >> shift;
        let mut starts = vec![0usize; (buckets >> shift) + 1];
        for &(h, _) in &restored {
            starts[bin(h) + 1] += 1;
        }
        for b in 1..starts.len() {
            starts[b] += starts[b - 1];
        }
        let mut ordered = vec![(0u64, 0); restored.len()];
        for &(h, id) in &restored {
            let at = &mut starts[bin(h)];
            ordered[*at] = (h, id);
            *at += 1;
        }
        drop(restored);
        let mut dups = Vec::new();
        let pages = &self.pages;
        let hasher = &self.hasher;
        for (hash, id) in ordered {
            // The keys are compared only when the index's 7-bit tags match.
            let same = |&x: &u32| item::key(pages.chunk(x)) == item::key(pages.chunk(id));
            match self
                .index
                .entry(hash, same, |&x| hasher.hash(item::key(pages.chunk(x))))
            {
                Entry::Occupied(_) => dups.push((hash, id)),
                Entry::Vacant(v) => {
                    v.insert(id);
                }
            }
        }
        for (hash, id) in dups {
            self.unlink_item(id, Some(hash));
            self.restore_dups += 1;
        }
    }

    /// How many restored items `index_restored` dropped as duplicates since the last call.
    pub fn take_restore_dups(&mut self) -> u64 {
        std::mem::take(&mut self.restore_dups)
    }
}
