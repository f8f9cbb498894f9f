//! Owns: one shard's side of a warm restart — handing out its pages' bytes for the save, and
//! taking back one restored item (already decoded and checked, see `store::restart`): chunks of
//! its size, its header, key and value written, linked into its saved LRU segment with its marks.
//! Does not: read or check saved bytes (see `store::restart`), or touch files.

use super::{Found, Shard};
use crate::store::item::{self, Header, Segment};
use crate::store::restart::Restored;

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

    /// Makes room in the key index for `n` more items (before a restore, so it never rehashes).
    pub fn reserve_index(&mut self, n: usize) {
        let pages = &self.pages;
        let hasher = &self.hasher;
        self.index
            .reserve(n, |&x| hasher.hash(item::key(pages.chunk(x))));
    }

    /// Stores a restored item as it was (CAS, flags, expiry and access time, segment and marks)
    /// without the request path's checks: false when its key is already here or no chunk can be
    /// had for it.
    pub fn restore_item(&mut self, hash: u64, it: &Restored<'_>, now: u32) -> bool {
        if let Found::Hit(_) = self.find(it.key, hash, now) {
            return false;
        }
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
        self.link_in(taken.head, hash, seg);
        item::set_marks(self.pages.chunk_mut(taken.head), it.bits);
        true
    }
}
