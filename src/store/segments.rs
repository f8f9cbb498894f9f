//! Owns: how many items of one slab class each LRU segment (HOT, WARM, COLD) holds, and when a
//! segment is over its share.
//! Does not: store segment membership (two bits in each item header, see `item`), decide when
//! items move between segments (the sweep in `shard`), or walk the class (see `hand`).

use super::item::Segment;

/// Segment sizes of one class.
#[derive(Debug, Clone, Default)]
pub struct SegmentCounts {
    len: [usize; 4],
}

impl SegmentCounts {
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

    /// True when `seg` holds more than `pct`% of the class's HOT, WARM and COLD items (and more
    /// than one); TEMP items are outside the shares, as in memcached.
    #[inline]
    pub fn over_share(&self, seg: Segment, pct: usize) -> bool {
        let n = self.len(seg);
        let lru = self.total() - self.len(Segment::Temp);
        n > 1 && n * 100 > lru * pct
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts() {
        let mut counts = SegmentCounts::default();
        counts.add(Segment::Hot);
        counts.add(Segment::Hot);
        counts.shift(Segment::Hot, Segment::Cold);
        assert_eq!(counts.len(Segment::Hot), 1);
        assert_eq!(counts.len(Segment::Cold), 1);
        assert_eq!(counts.total(), 2);
        counts.remove(Segment::Hot);
        counts.remove(Segment::Cold);
        assert!(counts.is_empty());
    }
}
