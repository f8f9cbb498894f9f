//! Owns: pages changing hands — a page moved from one class to another (its items rescued into
//! free chunks of their class, or evicted), and pages given back to the budget when the memory
//! limit shrinks.
//! Does not: decide when pages move (the allocator, `Store::automove` and `slabs reassign` do).

use super::{Reclaimer, Shard};
use crate::store::item;
use crate::store::slab::ChunkId;

/// What happens to the live items of a page being taken from its class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Vacate {
    /// Copy them into free chunks of the class elsewhere when there are any.
    Rescue,
    Evict,
}

impl Shard {
    /// Moves one page from class `src` to class `dst`: items in it are copied into free chunks
    /// of `src` elsewhere when possible (rescued), otherwise evicted. The page chosen is the one
    /// the hand reaches next (see `coldest_page`).
    pub fn move_page(&mut self, src: usize, dst: usize, now: u32) -> bool {
        if src == dst || self.class[src].pages.is_empty() {
            return false;
        }
        let p = self.coldest_page(src);
        self.vacate_page(src, p, now, Vacate::Rescue);
        let size = self.classes.size(dst);
        self.pages.reassign(p, dst, size);
        self.push_page_chunks(p, dst);
        self.counters.slabs_moved += 1;
        true
    }

    /// The page the hand reaches next after the one it is on (its items have gone longest
    /// without the hand passing; the part of the hand's own page just behind it holds the newest
    /// items). The class must own a page.
    fn coldest_page(&self, cls: usize) -> usize {
        let class = &self.class[cls];
        let next = (class.hand.at().0 + 1) % class.pages.len();
        class.pages[next]
    }

    /// Empties page `p` of class `src` and takes it out of the class: live items are rescued
    /// into free chunks of `src` elsewhere (`Vacate::Rescue`, counted as reassign rescues and
    /// evictions) or evicted (`Vacate::Evict`).
    fn vacate_page(&mut self, src: usize, p: usize, now: u32, how: Vacate) {
        // Free chunks inside the page leave the free list first so rescues never land there.
        let pages = &self.pages;
        self.class[src].free.retain(|&id| pages.page_of(id) != p);
        for n in 0..self.pages.chunks_in(p) {
            let id = self.pages.id(p, n);
            let c = self.pages.chunk(id);
            if !item::in_use(c) {
                continue;
            }
            if self.is_dead(c, now) {
                // Dead already: free it rather than copy it somewhere the crawler has passed.
                self.reclaim(id, Reclaimer::Other);
                let back = self.class[src].free.pop();
                debug_assert_eq!(back, Some(id));
                continue;
            }
            let to = match how {
                Vacate::Rescue => self.class[src].free.pop(),
                Vacate::Evict => None,
            };
            if let Some(to) = to {
                self.rescue(id, to);
                self.counters.slab_reassign_rescues += 1;
            } else {
                self.evict(id, now);
                if how == Vacate::Rescue {
                    self.counters.slab_reassign_evictions += 1;
                }
                // `evict` pushed the chunk onto the free list; it leaves with the page.
                let back = self.class[src].free.pop();
                debug_assert_eq!(back, Some(id));
            }
        }
        let class = &mut self.class[src];
        if let Some(at) = class.pages.iter().position(|&x| x == p) {
            class.pages.remove(at);
            class.hand.page_removed(at, class.pages.len());
        }
    }

    /// Copies item `from` into free chunk `to` of the same class, keeping its LRU segment (the
    /// segment counts do not change).
    fn rescue(&mut self, from: ChunkId, to: ChunkId) {
        let hash = self.hasher.hash(item::key(self.pages.chunk(from)));
        let bytes = self.pages.chunk(from).to_vec();
        self.pages.chunk_mut(to).copy_from_slice(&bytes);
        self.pages.mark_used(to);
        item::set_segment(self.pages.chunk_mut(from), None);
        if let Ok(mut entry) = self.index.find_entry(hash, |&x| x == from) {
            *entry.get_mut() = to;
        }
    }

    /// Releases one page of the class with the most pages back to the global budget (when the
    /// memory limit shrinks, or to pay back first pages taken past the limit). A class's only
    /// page stays: every class may hold one page past the limit, as in memcached.
    pub(super) fn release_page(&mut self, now: u32) -> bool {
        let Some(src) = (0..self.class.len())
            .filter(|&c| self.class[c].pages.len() > 1)
            .max_by_key(|&c| self.class[c].pages.len())
        else {
            return false;
        };
        let p = self.coldest_page(src);
        self.vacate_page(src, p, now, Vacate::Evict);
        self.pages.release(p);
        self.shared.budget.release();
        true
    }
}
