//! Owns: the pins replies hold on items (memcached's item refcount for a response that points
//! at an item instead of copying it): a pinned item's chunks are never reused, moved or
//! evicted while a reply references them. An item unlinked meanwhile (replaced, deleted,
//! expired, flushed) leaves the index, its LRU and the counts at once, but its chunks stay
//! as they were — looking free to every walk, on no free list — until its last pin goes, so a
//! reply sends exactly the value it found. Pinned chunks are slab memory: they stay inside `-m`.
//! Does not: bound how many pins a client holds (the connection does, see `server::conn`).

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use super::Shard;
use crate::store::item;
use crate::store::slab::ChunkId;
use crate::store::value::Value;

/// The reply pins of one shard.
#[derive(Debug, Default)]
pub(super) struct ReplyPins {
    /// Pinned items by head chunk: how many pins, and whether the item was unlinked meanwhile
    /// (its chunks are freed with the last pin).
    items: HashMap<ChunkId, Pinned>,
    /// Pages holding a chunk of a pinned item (head or part), with how many such items: no page
    /// move takes them.
    pages: HashMap<usize, u32>,
}

#[derive(Debug)]
struct Pinned {
    pins: u32,
    unlinked: bool,
}

impl ReplyPins {
    /// True when item `id` (its head) is pinned.
    #[inline]
    pub(super) fn holds(&self, id: ChunkId) -> bool {
        !self.items.is_empty() && self.items.contains_key(&id)
    }

    /// True when page `p` holds a chunk of a pinned item.
    #[inline]
    pub(super) fn holds_page(&self, p: usize) -> bool {
        !self.pages.is_empty() && self.pages.contains_key(&p)
    }
}

impl Shard {
    /// Pins the live item under `key` (found by the lookup just before, under the same lock):
    /// its chunks stay as they are until `unpin`. None when there is no such item.
    pub fn pin(&mut self, key: &[u8], hash: u64) -> Option<ChunkId> {
        let pages = &self.pages;
        let &id = self
            .index
            .find(hash, |&id| item::key(pages.chunk(id)) == key)?;
        match self.reply_pins.items.entry(id) {
            Entry::Occupied(mut e) => e.get_mut().pins += 1,
            Entry::Vacant(e) => {
                e.insert(Pinned {
                    pins: 1,
                    unlinked: false,
                });
                for p in self.item_pages(id) {
                    *self.reply_pins.pages.entry(p).or_default() += 1;
                }
            }
        }
        Some(id)
    }

    /// The value of pinned item `id`, as it was when pinned (valid while the lock is held).
    pub fn pinned_value(&self, id: ChunkId) -> Value<'_> {
        debug_assert!(self.reply_pins.holds(id), "reading an item not pinned");
        Value::of(&self.pages, self.pages.chunk(id), self.body_cap())
    }

    /// Gives back one pin of item `id`; the last pin of an item unlinked meanwhile frees its
    /// chunks.
    pub fn unpin(&mut self, id: ChunkId) {
        let Entry::Occupied(mut e) = self.reply_pins.items.entry(id) else {
            debug_assert!(false, "unpinning an item not pinned");
            return;
        };
        e.get_mut().pins -= 1;
        if e.get().pins > 0 {
            return;
        }
        let unlinked = e.remove().unlinked;
        for p in self.item_pages(id) {
            if let Entry::Occupied(mut e) = self.reply_pins.pages.entry(p) {
                *e.get_mut() -= 1;
                if *e.get() == 0 {
                    e.remove();
                }
            }
        }
        if unlinked {
            let chunks: Vec<ChunkId> = self.parts_of(id).chain(std::iter::once(id)).collect();
            for c in chunks {
                let cls = self.pages.class_of(c);
                self.class[cls].free.push(c);
            }
        }
    }

    /// Called when item `id` leaves the index: true when it is pinned, so its chunks must stay
    /// (they are freed by its last `unpin`).
    pub(super) fn keep_unlinked(&mut self, id: ChunkId) -> bool {
        match self.reply_pins.items.get_mut(&id) {
            Some(p) => {
                p.unlinked = true;
                true
            }
            None => false,
        }
    }

    /// The pages holding item `id`'s head and parts.
    fn item_pages(&self, id: ChunkId) -> Vec<usize> {
        let mut v: Vec<usize> = std::iter::once(id)
            .chain(self.parts_of(id))
            .map(|c| self.pages.page_of(c))
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Item `id` may not be evicted or moved now: a store is changing it, or a reply pins it.
    #[inline]
    pub(super) fn held(&self, id: ChunkId) -> bool {
        self.pinned == Some(id) || self.reply_pins.holds(id)
    }

    /// Checks the pins (tests): an unlinked pinned item is out of the index and on no free list,
    /// and every pinned item's pages are counted.
    #[cfg(test)]
    pub(super) fn check_pins(&self) {
        let mut pages: HashMap<usize, u32> = HashMap::new();
        for (&id, p) in &self.reply_pins.items {
            assert!(p.pins > 0);
            for pg in self.item_pages(id) {
                *pages.entry(pg).or_default() += 1;
            }
            let chunks: Vec<ChunkId> = self.parts_of(id).chain(std::iter::once(id)).collect();
            for c in chunks {
                let free = &self.class[self.pages.class_of(c)].free;
                assert!(
                    !free.contains(&c),
                    "a pinned item's chunk is on a free list"
                );
            }
            let c = self.pages.chunk(id);
            let linked = item::in_use(c);
            assert_eq!(linked, !p.unlinked, "pinned item linked state");
        }
        assert_eq!(pages, self.reply_pins.pages, "pinned pages");
    }
}
