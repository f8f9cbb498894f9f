//! Owns: pages changing hands — a page moved from one class to another (its items rescued into
//! free chunks of their class, or evicted), and pages given back to the budget when the memory
//! limit shrinks.
//! Does not: decide when pages move (the allocator, `Store::automove` and `slabs reassign` do).

use super::sweep::is_cold;
use super::{Reclaimer, Shard};
use crate::store::item;
use crate::store::slab::ChunkId;

/// What happens to the live items of a page being taken from its class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Vacate {
    /// Copy them into free chunks of the class elsewhere when there are any, else evict them
    /// (counted as the page mover's evictions).
    Rescue,
    /// As `Rescue`, for a page given back to the budget: evictions are plain ones.
    PayBack,
}

impl Shard {
    /// Moves one page from class `src` to class `dst`: items in it are copied into free chunks
    /// of `src` elsewhere when possible (rescued), otherwise evicted. The page chosen is the one
    /// the hand reaches next after the one it is on (its items have gone longest without the
    /// hand passing), passing over pages that hold a chunk a store in progress needs (see
    /// `Shard::page_pinned`).
    pub fn move_page(&mut self, src: usize, dst: usize, now: u32) -> bool {
        if src == dst || self.class[src].pages.is_empty() {
            return false;
        }
        let Some(p) = self.coldest_movable_page(src) else {
            return false;
        };
        self.vacate_page(src, p, now, Vacate::Rescue);
        let size = self.classes.size(dst);
        self.pages.reassign(p, dst, size);
        self.push_page_chunks(p, dst);
        self.counters.slabs_moved += 1;
        true
    }

    /// The first page from the coldest on (in the hand's order) that holds no chunk a store in
    /// progress needs (see `Shard::page_pinned`).
    fn coldest_movable_page(&self, cls: usize) -> Option<usize> {
        self.movable_pages(cls).next()
    }

    /// The pages of class `cls` in the hand's order from the coldest (the one after the hand's),
    /// without those holding a chunk a store in progress needs (see `Shard::page_pinned`).
    fn movable_pages(&self, cls: usize) -> impl Iterator<Item = usize> + '_ {
        let class = &self.class[cls];
        let n = class.pages.len();
        let at = class.hand.at().0;
        (1..=n)
            .map(move |k| class.pages[(at + k) % n])
            .filter(|&p| !self.page_pinned(p))
    }

    /// A free chunk of class `cls` outside page `p` (free chunks inside it are dropped from
    /// the list: the page is leaving the class).
    fn free_outside(&mut self, cls: usize, p: usize) -> Option<ChunkId> {
        while let Some(id) = self.class[cls].free.pop() {
            if self.pages.page_of(id) != p {
                return Some(id);
            }
        }
        None
    }

    /// Empties page `p` of class `src` and takes it out of the class: live items and the parts
    /// of chained items are rescued into free chunks of `src` elsewhere (`Vacate::Rescue`,
    /// counted as reassign rescues) or evicted (counted as reassign evictions by
    /// `Vacate::Rescue`).
    fn vacate_page(&mut self, src: usize, p: usize, now: u32, how: Vacate) {
        // A restored item must be indexed before its page moves (`rescue` finds it by its id).
        self.index_restored();
        for n in 0..self.pages.chunks_in(p) {
            let id = self.pages.id(p, n);
            let Some(owner) = self.item_of(id) else {
                continue;
            };
            let body = owner != id;
            if self.is_dead(self.pages.chunk(owner), now) {
                // Dead already: free it rather than copy it somewhere the crawler has passed.
                self.reclaim(owner, Reclaimer::Other);
                continue;
            }
            let to = self.free_outside(src, p);
            match to {
                Some(to) if body => {
                    self.rescue_body(id, to);
                    self.counters.slab_reassign_chunk_rescues += 1;
                }
                Some(to) => {
                    self.rescue(id, to);
                    self.counters.slab_reassign_rescues += 1;
                }
                None => {
                    self.evict(owner, now);
                    if how == Vacate::Rescue {
                        self.counters.slab_reassign_evictions += 1;
                    }
                }
            }
        }
        // Chunks of the page freed on the way leave with it.
        let pages = &self.pages;
        self.class[src].free.retain(|&id| pages.page_of(id) != p);
        let class = &mut self.class[src];
        if let Some(at) = class.pages.iter().position(|&x| x == p) {
            class.pages.remove(at);
            self.shared.count_class_page(src, false);
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
        self.rehead(to);
    }

    /// Moves the emptiest page of class `cls` to the global page pool: its live items are
    /// rescued into free chunks elsewhere in the class, or evicted. The class keeps one page.
    pub fn page_to_pool(&mut self, cls: usize, now: u32) -> bool {
        if self.class[cls].pages.len() < 2 {
            return false;
        }
        let used = |p: usize| {
            (0..self.pages.chunks_in(p))
                .filter(|&n| self.item_of(self.pages.id(p, n)).is_some())
                .count()
        };
        let Some(p) = self.class[cls]
            .pages
            .iter()
            .copied()
            .filter(|&p| !self.page_pinned(p))
            .min_by_key(|&p| used(p))
        else {
            return false;
        };
        self.vacate_page(cls, p, now, Vacate::Rescue);
        if let Some(mem) = self.pages.take_out(p) {
            self.shared.pool.give(mem);
        }
        self.counters.slabs_moved += 1;
        true
    }

    /// Gives class `cls` a page from the global page pool, if it holds one.
    pub fn page_from_pool(&mut self, cls: usize) -> bool {
        let Some(mem) = self.shared.pool.take() else {
            return false;
        };
        let p = self.pages.add_mem(cls, self.classes.size(cls), mem);
        self.push_page_chunks(p, cls);
        true
    }

    /// Releases one page of the class with the most pages back to the global budget (when the
    /// memory limit shrinks, or to pay back first pages taken past the limit). A class's only
    /// page stays: every class may hold one page past the limit, as in memcached. The page is
    /// the one the hand reaches next that holds no young item (see `page_holds`), else the next
    /// that holds no TEMP item, else the next; its live items are rescued into free chunks of
    /// the class elsewhere while there are any, the rest evicted. Taking the next page whatever
    /// it held evicted what had just been stored there: a chained item appended to and read back
    /// went missing while memory was full of big COLD values, which memcached keeps.
    pub(super) fn release_page(&mut self, now: u32) -> bool {
        let Some(src) = (0..self.class.len())
            .filter(|&c| self.class[c].pages.len() > 1)
            .max_by_key(|&c| self.class[c].pages.len())
        else {
            return false;
        };
        let Some(p) = self
            .movable_pages(src)
            .find(|&p| !self.page_holds(p, |c| !is_cold(c)))
            .or_else(|| {
                self.movable_pages(src).find(|&p| {
                    !self.page_holds(p, |c| item::segment(c) == Some(item::Segment::Temp))
                })
            })
            .or_else(|| self.coldest_movable_page(src))
        else {
            return false;
        };
        self.vacate_page(src, p, now, Vacate::PayBack);
        self.pages.release(p);
        self.shared.budget.release();
        true
    }

    /// True when page `p` holds a chunk of an item (a chained one's part included) whose
    /// header `young` accepts. Stops at the first.
    fn page_holds(&self, p: usize, young: impl Fn(&[u8]) -> bool) -> bool {
        (0..self.pages.chunks_in(p)).any(|n| {
            self.item_of(self.pages.id(p, n))
                .is_some_and(|owner| young(self.pages.chunk(owner)))
        })
    }
}
