//! Owns: the segmented LRU policy of a class — what a read marks (`bump`), and the eviction
//! sweep: the hand moving over the class's chunks, ageing the items it passes between HOT, WARM
//! and COLD, keeping HOT and WARM within their shares, freeing dead items and evicting; and the
//! look ahead of the hand that reclaim, eviction and the age statistics use.
//! Does not: hold the hand's position rules (see `store::hand`) or take pages (see `alloc`).

use std::sync::atomic::Ordering;

use super::{Reclaimer, Shard};
use crate::store::item::{self, Segment, ACTIVE, FETCHED};
use crate::store::slab::ChunkId;

/// Chunks the hand passes at most to find an item to evict; past it, the next live item is
/// evicted whatever its segment. Every item passed is aged, so this bound is rarely reached.
const EVICT_SWEEP_MAX: usize = 2048;

/// Chunks the hand passes at most per item the balancer is asked to move.
const BALANCE_SWEEP_PER_MOVE: usize = 16;

/// Chunks a look ahead of the hand passes at most (free chunks included), so that a sparse class
/// costs no more than a full one.
const PEEK_CHUNKS_MAX: usize = 4096;

/// What a pass of the hand may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Sweep {
    /// After a store: age HOT and WARM items only while their segment is over its share; stop
    /// at an expired or flushed item (left for a reclaim, which looks only ahead of the hand,
    /// or for a lookup to find expired, as memcached's lazy expiry counts it).
    Link,
    /// Background: as `Link`, but free the expired and flushed items passed.
    Background,
    /// Age every item passed and stop at the first one freed (expired, flushed, or inactive COLD).
    Evict,
}

impl Shard {
    /// Records an access: first read marks FETCHED, a later one ACTIVE; ACTIVE items in COLD move
    /// up to WARM straight away.
    pub(super) fn bump(&mut self, id: ChunkId, now: u32) {
        let cls = self.lru_class(id);
        let c = self.pages.chunk_mut(id);
        let b = item::bits(c);
        let seg = item::segment(c);
        // Write only what changes: a read that leaves the item's cache line clean costs no
        // write-back (most reads of a hot item find the same second and the marks already set).
        if item::atime(c) != now {
            item::set_atime(c, now);
        }
        let stats = &mut self.class[cls].stats;
        match seg {
            Some(Segment::Hot) => stats.hits_to_hot += 1,
            Some(Segment::Warm) => stats.hits_to_warm += 1,
            Some(Segment::Cold) => stats.hits_to_cold += 1,
            Some(Segment::Temp) => stats.hits_to_temp += 1,
            None => {}
        }
        if b & FETCHED == 0 {
            item::set_bits(c, b | FETCHED);
        } else if seg == Some(Segment::Cold) {
            item::set_bits(c, b & !ACTIVE);
            item::set_segment(c, Some(Segment::Warm));
            stats.moves_to_warm += 1;
            self.class[cls].segs.shift(Segment::Cold, Segment::Warm);
        } else if b & ACTIVE == 0 {
            item::set_bits(c, b | ACTIVE);
        }
    }

    /// Keeps HOT and WARM within their share of the class, ageing up to `budget` items under
    /// the hand.
    pub(super) fn balance_class(
        &mut self,
        cls: usize,
        budget: usize,
        mode: Sweep,
        now: u32,
    ) -> usize {
        if budget == 0 || !self.over_share(cls) {
            return 0;
        }
        let steps = budget.saturating_mul(BALANCE_SWEEP_PER_MOVE);
        self.sweep(cls, steps, budget, mode, now).0
    }

    /// True when HOT or WARM holds more than its share (`hot_lru_pct`, `warm_lru_pct`) of the
    /// class's items.
    fn over_share(&self, cls: usize) -> bool {
        let segs = &self.class[cls].segs;
        segs.over_share(
            Segment::Hot,
            self.shared.hot_lru_pct.load(Ordering::Relaxed) as usize,
        ) || segs.over_share(
            Segment::Warm,
            self.shared.warm_lru_pct.load(Ordering::Relaxed) as usize,
        )
    }

    /// The page and chunk number under class `cls`'s hand (None when the class owns no page).
    fn hand_chunk(&self, cls: usize) -> Option<(usize, usize)> {
        let class = &self.class[cls];
        let (pi, n) = class.hand.at();
        Some((*class.pages.get(pi)?, n))
    }

    /// Moves the hand one chunk on within the part of each page that has held items.
    pub(super) fn advance_hand(&mut self, cls: usize) {
        let class = &mut self.class[cls];
        let (pi, _) = class.hand.at();
        let chunks = class.pages.get(pi).map_or(0, |&p| self.pages.carved(p));
        class.hand.advance(chunks, class.pages.len());
    }

    /// Moves class `cls`'s hand over at most `steps` chunks, ageing the live items it
    /// passes (see `Sweep`), and stops after `moves` items were aged or one was freed. Returns
    /// the items aged and whether one was freed.
    fn sweep(
        &mut self,
        cls: usize,
        steps: usize,
        moves: usize,
        mode: Sweep,
        now: u32,
    ) -> (usize, bool) {
        let hot_pct = self.shared.hot_lru_pct.load(Ordering::Relaxed) as usize;
        let warm_pct = self.shared.warm_lru_pct.load(Ordering::Relaxed) as usize;
        let mut moved = 0;
        for _ in 0..steps {
            let Some((p, n)) = self.hand_chunk(cls) else {
                break;
            };
            let hand = self.class[cls].hand.at();
            self.advance_hand(cls);
            if n >= self.pages.carved(p) {
                continue;
            }
            let id = self.pages.id(p, n);
            // A chained item is met at its first part; the item a store changes, or one a reply
            // pins, is never evicted or aged, and is counted as memcached counts a referenced
            // item at an LRU tail.
            let item = self.lru_item_at(id);
            let Some(id) = item.filter(|&i| !self.held(i)) else {
                if item.is_some() {
                    self.class[cls].stats.lrutail_reflocked += 1;
                }
                if mode == Sweep::Evict && self.evict_cold_chain(id, now) {
                    return (moved, true);
                }
                continue;
            };
            let c = self.pages.chunk(id);
            let Some(seg) = item::segment(c) else {
                continue;
            };
            let b = item::bits(c);
            if self.is_dead(c, now) {
                // An item the hand leaves behind must be live: the next reclaim looks only
                // ahead of the hand.
                if mode == Sweep::Link {
                    self.class[cls].hand.set(hand);
                    break;
                }
                self.reclaim(id, Reclaimer::Other);
                if mode == Sweep::Evict {
                    return (moved, true);
                }
                moved += 1;
                if moved >= moves {
                    break;
                }
                continue;
            }
            let segs = &self.class[cls].segs;
            let over = |s: Segment, pct: usize| mode == Sweep::Evict || segs.over_share(s, pct);
            let active = b & ACTIVE != 0;
            // memcached ages only HOT's tail, so an item stored or read this second stays HOT
            // while HOT keeps its share, even when evicting: the hand reaches chunks by place,
            // not age, and one just stored ahead of it (an append's new item) would otherwise go
            // COLD, then be evicted or given back with its page, before anyone read it.
            let fresh_hot = mode == Sweep::Evict
                && item::atime(c) == now
                && !segs.over_share(Segment::Hot, hot_pct);
            let to = match seg {
                Segment::Hot if over(Segment::Hot, hot_pct) && !fresh_hot => {
                    if active {
                        Segment::Warm
                    } else {
                        Segment::Cold
                    }
                }
                // WARM keeps its items while within its share, evicting or not: memcached's
                // eviction takes COLD's tail, else moves HOT's tail down, never WARM's.
                Segment::Warm if segs.over_share(Segment::Warm, warm_pct) => {
                    if active {
                        Segment::Warm
                    } else {
                        Segment::Cold
                    }
                }
                Segment::Cold if mode == Sweep::Evict => {
                    if active {
                        Segment::Warm
                    } else {
                        self.evict_for_room(id, now);
                        return (moved, true);
                    }
                }
                _ => continue,
            };
            let c = self.pages.chunk_mut(id);
            item::set_bits(c, b & !ACTIVE);
            item::set_segment(c, Some(to));
            let class = &mut self.class[cls];
            class.segs.shift(seg, to);
            match (seg, to) {
                (_, Segment::Cold) => class.stats.moves_to_cold += 1,
                (Segment::Warm, Segment::Warm) => class.stats.moves_within_lru += 1,
                _ => class.stats.moves_to_warm += 1,
            }
            moved += 1;
            if moved >= moves {
                break;
            }
        }
        (moved, false)
    }

    /// Calls `f` for up to `limit` live items from the hand on, without moving it, while
    /// `f` returns true; `f` also gets how many chunks lie between the hand and the item. Looks
    /// at no more than `PEEK_CHUNKS_MAX` chunks.
    pub(super) fn peek_ahead(
        &self,
        cls: usize,
        limit: usize,
        f: impl FnMut(ChunkId, &[u8], usize) -> bool,
    ) {
        self.peek_ahead_within(cls, limit, PEEK_CHUNKS_MAX, f);
    }

    /// As `peek_ahead`, looking at no more than `max_chunks` chunks.
    pub(super) fn peek_ahead_within(
        &self,
        cls: usize,
        limit: usize,
        max_chunks: usize,
        mut f: impl FnMut(ChunkId, &[u8], usize) -> bool,
    ) {
        let class = &self.class[cls];
        if class.segs.is_empty() {
            return;
        }
        let mut hand = class.hand;
        let mut seen = 0;
        // Every chunk that has held an item, and a step past each page that has none.
        let chunks: usize = class.pages.iter().map(|&p| self.pages.carved(p)).sum();
        for passed in 0..(chunks + class.pages.len()).min(max_chunks) {
            let (pi, n) = hand.at();
            let Some(&p) = class.pages.get(pi) else {
                return;
            };
            let in_page = self.pages.carved(p);
            if n < in_page {
                let id = self.pages.id(p, n);
                let found = self.lru_item_at(id).filter(|&i| !self.held(i));
                if let Some(id) = found {
                    if !f(id, self.pages.chunk(id), passed) {
                        return;
                    }
                    seen += 1;
                    if seen >= limit {
                        return;
                    }
                }
            }
            hand.advance(in_page, class.pages.len());
        }
    }

    /// Frees one chunk of class `cls` by moving the hand (expired items first, else the
    /// first inactive COLD item it reaches, ageing the others). False when the class has no item.
    pub(super) fn evict_tail(&mut self, cls: usize, now: u32) -> bool {
        if self.class[cls].segs.is_empty() && self.class[cls].bodies == 0 {
            return false;
        }
        // At most one revolution: an item passed twice in one sweep would go from young to
        // evicted at once (a class of few chunks, or a chained item just stored ahead of it).
        let chunks: usize = self.class[cls]
            .pages
            .iter()
            .map(|&p| self.pages.chunks_in(p))
            .sum();
        if self
            .sweep(
                cls,
                EVICT_SWEEP_MAX.min(chunks),
                usize::MAX,
                Sweep::Evict,
                now,
            )
            .1
        {
            return true;
        }
        // Everything passed was young: evict the next live item (TEMP items are never evicted).
        let mut victim = None;
        self.peek_ahead(cls, usize::MAX, |id, c, _| {
            if item::segment(c) == Some(Segment::Temp) {
                return true;
            }
            victim = Some(id);
            false
        });
        match victim {
            Some(id) => {
                self.evict_for_room(id, now);
                true
            }
            None => false,
        }
    }

    /// Evicts an item to make room, reporting it while evictions are watched.
    fn evict_for_room(&mut self, id: ChunkId, now: u32) {
        if let Some(w) = self.shared.eviction_watch.get().filter(|w| w.watching()) {
            let c = self.pages.chunk(id);
            let exp = item::exptime(c);
            w.evicted(&crate::store::Evicted {
                key: item::key(c),
                fetched: item::bits(c) & FETCHED != 0,
                ttl: if exp > 0 {
                    i64::from(exp) - i64::from(now)
                } else {
                    -1
                },
                la: now.wrapping_sub(item::atime(c)),
                clsid: self.pages.class_of(id) as u32 + 1,
                size: item::vlen(c),
            });
        }
        self.evict(id, now);
    }

    /// At a later part of a chained item (its LRU is its first part's class): evicts the item
    /// when it is dead or inactive in COLD already, so that a class holding last parts frees
    /// memory from old chains rather than only from its own items. False otherwise.
    fn evict_cold_chain(&mut self, id: ChunkId, now: u32) -> bool {
        let Some(head) = self.item_of(id).filter(|&h| h != id && !self.held(h)) else {
            return false;
        };
        let c = self.pages.chunk(head);
        if self.is_dead(c, now) {
            self.reclaim(head, Reclaimer::Other);
            return true;
        }
        if is_cold(c) {
            self.evict_for_room(head, now);
            return true;
        }
        false
    }

    pub(super) fn evict(&mut self, id: ChunkId, now: u32) {
        let c = self.pages.chunk(id);
        let cls = self.lru_class(id);
        let (exp, atime, bits) = (item::exptime(c), item::atime(c), item::bits(c));
        let stats = &mut self.class[cls].stats;
        stats.evicted += 1;
        if exp != 0 {
            stats.evicted_nonzero += 1;
        }
        stats.evicted_time = u64::from(now.saturating_sub(atime));
        if bits & FETCHED == 0 {
            stats.evicted_unfetched += 1;
        }
        if bits & ACTIVE != 0 {
            stats.evicted_active += 1;
        }
        self.unlink_item(id, None);
    }
}

/// An item (its header `c`) the hand evicts when it reaches it: in COLD and not read twice.
pub(super) fn is_cold(c: &[u8]) -> bool {
    item::segment(c) == Some(Segment::Cold) && item::bits(c) & ACTIVE == 0
}
