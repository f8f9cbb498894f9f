//! Owns: the bookkeeping of one slab class's segmented LRU — how many items each segment (HOT,
//! WARM, COLD) holds, and where the class's clock hand stands.
//! Does not: decide when items move between segments or what to evict (policy lives in
//! `shard`), or store segment membership (two bits in each item header, see `item`).
//!
//! There are no per-item links. The LRU order is approximated by a clock: the hand walks the
//! class's chunks in page order, and each item it passes is aged one step (HOT or WARM to COLD,
//! or to WARM when it was read again; COLD to evicted, or to WARM when it was read again). An
//! item stored into a chunk the hand has just freed is the last one the hand reaches again.

use super::item::Segment;

/// Segment sizes and clock hand of one class.
#[derive(Debug, Clone, Default)]
pub struct Lru {
    len: [usize; 3],
    /// Index into the class's page list, and chunk number within that page.
    hand: (usize, usize),
}

impl Lru {
    /// Counts an item entering `seg`.
    #[inline]
    pub fn add(&mut self, seg: Segment) {
        self.len[seg.index()] += 1;
    }

    /// Counts an item leaving `seg`.
    #[inline]
    pub fn remove(&mut self, seg: Segment) {
        let n = &mut self.len[seg.index()];
        debug_assert!(*n > 0, "segment count underflow");
        *n = n.saturating_sub(1);
    }

    /// Counts an item moving from `from` to `to`.
    #[inline]
    pub fn shift(&mut self, from: Segment, to: Segment) {
        self.remove(from);
        self.add(to);
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

    /// The hand: (index into the class's page list, chunk within the page).
    #[inline]
    pub fn hand(&self) -> (usize, usize) {
        self.hand
    }

    /// Moves the hand one chunk on, wrapping to the next page (and from the last to the first)
    /// given the chunk count of the page it stands on and the number of pages in the class.
    #[inline]
    pub fn advance(&mut self, chunks_in_page: usize, pages: usize) {
        let (mut pi, mut n) = self.hand;
        n += 1;
        if n >= chunks_in_page {
            n = 0;
            pi += 1;
        }
        if pi >= pages {
            pi = 0;
        }
        self.hand = (pi, n);
    }

    /// Keeps the hand where it was when the page at list index `removed` leaves the class: on the
    /// same page, or, if it was on the removed page, at the start of the page that followed it.
    pub fn page_removed(&mut self, removed: usize, pages_left: usize) {
        let (pi, n) = self.hand;
        self.hand = if pi > removed {
            (pi - 1, n)
        } else if pi == removed {
            (removed, 0)
        } else {
            (pi, n)
        };
        if self.hand.0 >= pages_left {
            self.hand = (0, 0);
        }
    }

    /// Places the hand.
    pub fn set_hand(&mut self, hand: (usize, usize)) {
        self.hand = hand;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_hand() {
        let mut lru = Lru::default();
        lru.add(Segment::Hot);
        lru.add(Segment::Hot);
        lru.shift(Segment::Hot, Segment::Cold);
        assert_eq!(lru.len(Segment::Hot), 1);
        assert_eq!(lru.len(Segment::Cold), 1);
        assert_eq!(lru.total(), 2);
        lru.remove(Segment::Hot);
        lru.remove(Segment::Cold);
        assert!(lru.is_empty());

        // Two pages of three chunks: the hand walks both and wraps.
        let mut seen = Vec::new();
        for _ in 0..7 {
            seen.push(lru.hand());
            lru.advance(3, 2);
        }
        assert_eq!(
            seen,
            vec![(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (0, 0)]
        );
        lru.advance(3, 2);
        lru.advance(3, 2);
        lru.advance(3, 2);
        assert_eq!(lru.hand(), (1, 1));
        // The first page leaves: the hand stays where it was on the second one.
        lru.page_removed(0, 1);
        assert_eq!(lru.hand(), (0, 1));
        // The page under the hand leaves: the hand goes on at the start of the next page.
        let mut three = Lru::default();
        three.set_hand((1, 2));
        three.page_removed(1, 2);
        assert_eq!(three.hand(), (1, 0));
        // ... or wraps to the first page when it was the last.
        lru.page_removed(0, 0);
        assert_eq!(lru.hand(), (0, 0));
    }
}
