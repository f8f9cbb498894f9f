//! Owns: the eviction hand of one slab class — where it stands (a page of the class and a chunk
//! in it), how it moves on, and where it goes when a page leaves the class.
//! Does not: age or evict items (the sweep in `shard`), or count segments (see `segments`).
//!
//! There are no per-item links. The LRU order is approximated by a sweep: the hand walks the
//! class's chunks in page order, and each item it passes is aged one step (HOT or WARM to COLD,
//! or to WARM when it was read again; COLD to evicted, or to WARM when it was read again). An
//! item stored into a chunk the hand has just freed is the last one the hand reaches again.

/// The position of one class's eviction hand.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Hand {
    /// Index into the class's page list, and chunk number within that page.
    at: (usize, usize),
}

impl Hand {
    /// The hand: (index into the class's page list, chunk within the page).
    #[inline]
    pub fn at(&self) -> (usize, usize) {
        self.at
    }

    /// Moves the hand one chunk on, wrapping to the next page (and from the last to the first)
    /// given the chunk count of the page it stands on and the number of pages in the class.
    #[inline]
    pub fn advance(&mut self, chunks_in_page: usize, pages: usize) {
        let (mut pi, mut n) = self.at;
        n += 1;
        if n >= chunks_in_page {
            n = 0;
            pi += 1;
        }
        if pi >= pages {
            pi = 0;
        }
        self.at = (pi, n);
    }

    /// Keeps the hand where it was when the page at list index `removed` leaves the class: on the
    /// same page, or, if it was on the removed page, at the start of the page that followed it.
    pub fn page_removed(&mut self, removed: usize, pages_left: usize) {
        let (pi, n) = self.at;
        self.at = if pi > removed {
            (pi - 1, n)
        } else if pi == removed {
            (removed, 0)
        } else {
            (pi, n)
        };
        if self.at.0 >= pages_left {
            self.at = (0, 0);
        }
    }

    /// Places the hand.
    pub fn set(&mut self, at: (usize, usize)) {
        self.at = at;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_wraps_and_follows_page_removal() {
        let mut hand = Hand::default();
        // Two pages of three chunks: the hand walks both and wraps.
        let mut seen = Vec::new();
        for _ in 0..7 {
            seen.push(hand.at());
            hand.advance(3, 2);
        }
        assert_eq!(
            seen,
            vec![(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2), (0, 0)]
        );
        hand.advance(3, 2);
        hand.advance(3, 2);
        hand.advance(3, 2);
        assert_eq!(hand.at(), (1, 1));
        // The first page leaves: the hand stays where it was on the second one.
        hand.page_removed(0, 1);
        assert_eq!(hand.at(), (0, 1));
        // The page under the hand leaves: the hand goes on at the start of the next page.
        let mut three = Hand::default();
        three.set((1, 2));
        three.page_removed(1, 2);
        assert_eq!(three.at(), (1, 0));
        // ... or wraps to the first page when it was the last.
        hand.page_removed(0, 0);
        assert_eq!(hand.at(), (0, 0));
    }
}
