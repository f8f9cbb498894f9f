//! Owns: the segmented LRU of one slab class — three intrusive doubly linked lists (HOT, WARM,
//! COLD) threaded through the item headers by chunk id.
//! Does not: decide when items move between segments (policy lives in `shard`).

use super::item::{self, Segment, NIL};
use super::slab::{ChunkId, Pages};

/// Heads, tails and lengths of the three segments of one class.
#[derive(Debug, Clone)]
pub struct Lru {
    head: [ChunkId; 3],
    tail: [ChunkId; 3],
    len: [usize; 3],
}

impl Default for Lru {
    fn default() -> Self {
        Lru {
            head: [NIL; 3],
            tail: [NIL; 3],
            len: [0; 3],
        }
    }
}

impl Lru {
    /// Links `id` at the head (most recent end) of `seg`.
    pub fn push_head(&mut self, pages: &mut Pages, id: ChunkId, seg: Segment) {
        let s = seg.index();
        let old = self.head[s];
        {
            let c = pages.chunk_mut(id);
            item::set_prev(c, NIL);
            item::set_next(c, old);
            item::set_segment(c, Some(seg));
        }
        if old != NIL {
            item::set_prev(pages.chunk_mut(old), id);
        } else {
            self.tail[s] = id;
        }
        self.head[s] = id;
        self.len[s] += 1;
    }

    /// Unlinks `id` from whichever segment it is in; a no-op for an unlinked chunk.
    pub fn unlink(&mut self, pages: &mut Pages, id: ChunkId) {
        let (seg, prev, next) = {
            let c = pages.chunk(id);
            match item::segment(c) {
                Some(seg) => (seg, item::prev(c), item::next(c)),
                None => return,
            }
        };
        let s = seg.index();
        if prev != NIL {
            item::set_next(pages.chunk_mut(prev), next);
        } else {
            self.head[s] = next;
        }
        if next != NIL {
            item::set_prev(pages.chunk_mut(next), prev);
        } else {
            self.tail[s] = prev;
        }
        self.len[s] -= 1;
        let c = pages.chunk_mut(id);
        item::set_prev(c, NIL);
        item::set_next(c, NIL);
        item::set_segment(c, None);
    }

    /// Moves `id` to the head of `seg`.
    pub fn move_to(&mut self, pages: &mut Pages, id: ChunkId, seg: Segment) {
        self.unlink(pages, id);
        self.push_head(pages, id, seg);
    }

    /// The least recently used item of `seg`, or `NIL`.
    #[inline]
    pub fn tail(&self, seg: Segment) -> ChunkId {
        self.tail[seg.index()]
    }

    /// The eviction candidate: the COLD tail, else the HOT tail, else the WARM tail, or `NIL`.
    #[inline]
    pub fn coldest(&self) -> ChunkId {
        [Segment::Cold, Segment::Hot, Segment::Warm]
            .into_iter()
            .map(|s| self.tail(s))
            .find(|&id| id != NIL)
            .unwrap_or(NIL)
    }

    #[inline]
    pub fn len(&self, seg: Segment) -> usize {
        self.len[seg.index()]
    }

    /// Items in all segments.
    #[inline]
    pub fn total(&self) -> usize {
        self.len.iter().sum()
    }

    pub fn is_empty(&self) -> bool {
        self.total() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::super::slab::SizeClasses;
    use super::*;

    fn ids(lru: &Lru, pages: &Pages, seg: Segment) -> Vec<ChunkId> {
        let mut out = Vec::new();
        let mut at = lru.tail(seg);
        while at != NIL {
            out.push(at);
            at = item::prev(pages.chunk(at));
        }
        out
    }

    #[test]
    fn push_unlink_move() {
        let classes = SizeClasses::new(48, 1.25, 1 << 20);
        let mut pages = Pages::new(&classes);
        let p = pages.add(0, classes.size(0));
        let a = pages.id(p, 0);
        let b = pages.id(p, 1);
        let c = pages.id(p, 2);
        let mut lru = Lru::default();
        for id in [a, b, c] {
            lru.push_head(&mut pages, id, Segment::Hot);
        }
        assert_eq!(ids(&lru, &pages, Segment::Hot), vec![a, b, c]);
        lru.move_to(&mut pages, a, Segment::Cold);
        assert_eq!(ids(&lru, &pages, Segment::Hot), vec![b, c]);
        assert_eq!(ids(&lru, &pages, Segment::Cold), vec![a]);
        lru.unlink(&mut pages, c);
        lru.unlink(&mut pages, c);
        assert_eq!(ids(&lru, &pages, Segment::Hot), vec![b]);
        assert_eq!(lru.total(), 2);
        lru.unlink(&mut pages, b);
        lru.unlink(&mut pages, a);
        assert!(lru.is_empty());
        assert_eq!(lru.tail(Segment::Hot), NIL);
    }
}
