//! Owns: slab size classes, the pages that hold item chunks (addressed by `ChunkId`s), and the
//! memory pages come from (the heap, or with `-L` one region advised for transparent huge pages).
//! Does not: decide what to evict or link items (see `shard`); count the global budget
//! (see `MemBudget` in `store`).

/// A chunk's address: `page index << chunk_bits | chunk index within the page`.
pub type ChunkId = u32;

/// memcached's item header (`sizeof(item)`, 48 bytes on 64-bit): the first class's chunk is
/// this plus `-n`, as in memcached's `slabs_init`, so class ids and chunk sizes are memcached's
/// (`stats slabs`, `stats items`, `slabs reassign` name the same classes). ferrocache's own item
/// header is smaller (see `item`), so an item may land one class lower than in memcached.
const MEMCACHED_ITEM_HEADER: usize = 48;
/// With fine steps, chunk sizes up to this grow in 8-byte steps; above it are memcached's classes.
const FINE_STEPS_UNTIL: usize = 256;
/// At most this many classes, as memcached (`MAX_NUMBER_OF_SLAB_CLASSES - 1`): class ids stay
/// within what `stats cachedump` and `slabs reassign` accept.
pub const MAX_CLASSES: usize = 63;

/// How the chunk sizes of small classes grow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Steps {
    /// 8-byte steps up to 256 bytes, then memcached's classes above that (when that makes at
    /// most 63 classes).
    Fine,
    /// memcached's schedule: the factor from the first class on.
    Factor,
}

/// The size classes: chunk sizes growing from a minimum, as memcached's `slabs_init`: the
/// first class holds memcached's 48-byte item header plus `-n` bytes, each next class is
/// `factor` larger (8-byte aligned) up to `slab_chunk_max`, the last class (larger items are
/// chained across chunks, see `shard::chain`); at most 63 classes, as memcached.
///
/// With `Steps::Fine`, classes up to 256 bytes are 8 bytes apart instead, and the classes above
/// are memcached's own (so a large item lands in the chunk size it has in memcached). For small
/// items the factor's rounding is the largest cost per item (a 25% step wastes up to a fifth of
/// a chunk); 8-byte steps bound it to 7 bytes. They make more classes, and a class needs whole pages, so
/// the store asks for them only when memory is ample (see `size_classes` in `store`), and they
/// are dropped when they would make more than 63 classes (a small `-f` or `-n`, a large `-I`).
#[derive(Debug, Clone)]
pub struct SizeClasses {
    sizes: Vec<usize>,
    page_size: usize,
}

impl SizeClasses {
    /// Classes for pages of `page_size` bytes whose largest chunk is `chunk_max` (memcached's
    /// `slab_chunk_max`: a divisor of the page size, at most the page).
    pub fn new(
        min_size: usize,
        factor: f64,
        (page_size, chunk_max): (usize, usize),
        steps: Steps,
    ) -> SizeClasses {
        let factor = if factor > 1.0 { factor } else { 1.25 };
        let chunk_max = chunk_max.clamp(align8(MEMCACHED_ITEM_HEADER + 1), page_size);
        let coarse = Self::schedule(min_size, factor, chunk_max);
        let fine = match steps {
            Steps::Fine => Self::fine(&coarse, chunk_max),
            Steps::Factor => Vec::new(),
        };
        let mut sizes = if !fine.is_empty() && fine.len() <= MAX_CLASSES {
            fine
        } else {
            coarse
        };
        if sizes.len() > MAX_CLASSES {
            // memcached stops at its last class id; the `slab_chunk_max` class stays.
            sizes.truncate(MAX_CLASSES - 1);
            sizes.push(chunk_max);
        }
        SizeClasses { sizes, page_size }
    }

    /// memcached's chunk sizes: `factor` from the first class on, until `chunk_max`, the last.
    /// As memcached, the growth stops before a size (unaligned, as grown) that is at least
    /// `chunk_max` divided by the factor.
    fn schedule(min_size: usize, factor: f64, chunk_max: usize) -> Vec<usize> {
        let mut sizes = Vec::new();
        let mut size = MEMCACHED_ITEM_HEADER + min_size.max(1);
        while (size as f64) < chunk_max as f64 / factor && sizes.len() < 4096 {
            let aligned = align8(size);
            sizes.push(aligned);
            size = ((aligned as f64 * factor) as usize).max(aligned + 1);
        }
        sizes.push(chunk_max);
        sizes
    }

    /// Fine steps over memcached's schedule `coarse`: from its first class up to 256 bytes (and
    /// below `chunk_max`) in 8-byte steps, then its classes above the last of those.
    fn fine(coarse: &[usize], chunk_max: usize) -> Vec<usize> {
        let until = FINE_STEPS_UNTIL.min(chunk_max - 1);
        let mut sizes: Vec<usize> = (coarse[0]..=until).step_by(8).collect();
        let last = sizes.last().copied().unwrap_or(0);
        sizes.extend(coarse.iter().copied().filter(|&s| s > last));
        sizes
    }

    /// Number of classes.
    pub fn len(&self) -> usize {
        self.sizes.len()
    }
    pub fn is_empty(&self) -> bool {
        self.sizes.is_empty()
    }
    pub fn page_size(&self) -> usize {
        self.page_size
    }
    /// Chunk size of class `cls` (0-based; memcached's class id is `cls + 1`).
    pub fn size(&self, cls: usize) -> usize {
        self.sizes[cls]
    }
    pub fn chunks_per_page(&self, cls: usize) -> usize {
        self.page_size / self.sizes[cls]
    }
    /// The smallest class whose chunks hold `total` bytes.
    pub fn class_for(&self, total: usize) -> Option<usize> {
        let i = self.sizes.partition_point(|&s| s < total);
        (i < self.sizes.len()).then_some(i)
    }
    /// Bits needed to number the chunks of the page with the smallest chunks.
    pub fn chunk_bits(&self) -> u32 {
        let max_chunks = self.page_size / self.sizes[0];
        usize::BITS - max_chunks.leading_zeros()
    }
}

fn align8(n: usize) -> usize {
    (n + 7) & !7
}

/// Alignment of the large-page region (the usual transparent huge page size).
const HUGE_PAGE: usize = 2 << 20;

/// With `-L`: one anonymous region of the whole memory limit, 2 MB aligned and advised for
/// transparent huge pages (as memcached's `-L` on Linux), cut into pages up front. A page
/// taken from it goes back to it when released (the memory stays with the process, as
/// memcached's preallocated memory does). The mapping lives as long as the process.
#[derive(Debug)]
pub struct LargeRegion {
    free: parking_lot::Mutex<Vec<&'static mut [u8]>>,
    pages: usize,
}

impl LargeRegion {
    /// Maps `pages` pages of `page_size` bytes. Fails when the system cannot map or advise it
    /// (no transparent huge page support).
    pub fn new(pages: usize, page_size: usize) -> std::io::Result<LargeRegion> {
        let len = pages
            .checked_mul(page_size)
            .and_then(|n| n.checked_add(HUGE_PAGE))
            .ok_or_else(|| std::io::Error::other("region size overflows"))?;
        let map = memmap2::MmapOptions::new().len(len).map_anon()?;
        map.advise(memmap2::Advice::HugePage)?;
        let map: &'static mut memmap2::MmapMut = Box::leak(Box::new(map));
        let all: &'static mut [u8] = map;
        let skip = (HUGE_PAGE - all.as_ptr() as usize % HUGE_PAGE) % HUGE_PAGE;
        let mut rest = all.split_at_mut(skip).1;
        let mut free = Vec::with_capacity(pages);
        while free.len() < pages && rest.len() >= page_size {
            let (page, tail) = rest.split_at_mut(page_size);
            free.push(page);
            rest = tail;
        }
        // Hand pages out from the start of the region.
        free.reverse();
        Ok(LargeRegion {
            free: parking_lot::Mutex::new(free),
            pages,
        })
    }

    /// A zeroed page, if any is left.
    fn take(&self) -> Option<&'static mut [u8]> {
        self.free.lock().pop()
    }

    /// Takes a released page back, zeroed for its next use.
    fn give(&self, page: &'static mut [u8]) {
        page.fill(0);
        self.free.lock().push(page);
    }

    /// Pages the region was cut into.
    pub fn pages(&self) -> usize {
        self.pages
    }
}

/// The memory of one page.
#[derive(Debug)]
pub enum PageMem {
    Heap(Box<[u8]>),
    Large(&'static mut [u8]),
}

impl std::ops::Deref for PageMem {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        match self {
            PageMem::Heap(b) => b,
            PageMem::Large(s) => s,
        }
    }
}

impl std::ops::DerefMut for PageMem {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u8] {
        match self {
            PageMem::Heap(b) => b,
            PageMem::Large(s) => s,
        }
    }
}

/// One page: a fixed-size block of memory carved into equal chunks for one class.
#[derive(Debug)]
pub struct Page {
    pub data: PageMem,
    pub class: usize,
    pub chunk_size: usize,
    /// Chunks from the start that have held an item (free chunks are handed out from the
    /// start of a page): the walks over a class (its hand, the crawler) stop here, so a page
    /// mostly never used costs them nothing.
    pub carved: usize,
}

/// All pages of one shard.
#[derive(Debug)]
pub struct Pages {
    pages: Vec<Option<Page>>,
    free_slots: Vec<u32>,
    chunk_bits: u32,
    page_size: usize,
    large: Option<std::sync::Arc<LargeRegion>>,
}

impl Pages {
    /// Pages from the heap, or from `large` while it has any left.
    pub fn new(classes: &SizeClasses, large: Option<std::sync::Arc<LargeRegion>>) -> Pages {
        Pages {
            pages: Vec::new(),
            free_slots: Vec::new(),
            chunk_bits: classes.chunk_bits(),
            page_size: classes.page_size(),
            large,
        }
    }

    #[inline]
    fn split(&self, id: ChunkId) -> (usize, usize) {
        (
            (id >> self.chunk_bits) as usize,
            (id & ((1 << self.chunk_bits) - 1)) as usize,
        )
    }

    /// Chunk id of chunk `n` of page `page`.
    #[inline]
    pub fn id(&self, page: usize, n: usize) -> ChunkId {
        ((page as u32) << self.chunk_bits) | n as u32
    }

    /// The bytes of a chunk. Ids come only from this structure, so indexing cannot fail for live ids.
    #[inline]
    pub fn chunk(&self, id: ChunkId) -> &[u8] {
        let (p, n) = self.split(id);
        let page = self.pages[p]
            .as_ref()
            .expect("chunk id refers to a live page");
        let off = n * page.chunk_size;
        &page.data[off..off + page.chunk_size]
    }

    #[inline]
    pub fn chunk_mut(&mut self, id: ChunkId) -> &mut [u8] {
        let (p, n) = self.split(id);
        let page = self.pages[p]
            .as_mut()
            .expect("chunk id refers to a live page");
        let off = n * page.chunk_size;
        &mut page.data[off..off + page.chunk_size]
    }

    /// Class of the page holding chunk `id`.
    #[inline]
    pub fn class_of(&self, id: ChunkId) -> usize {
        let (p, _) = self.split(id);
        self.pages[p].as_ref().map_or(0, |pg| pg.class)
    }

    /// Page index of chunk `id`.
    #[inline]
    pub fn page_of(&self, id: ChunkId) -> usize {
        self.split(id).0
    }

    /// Adds a zeroed page for class `cls`; returns its index. The memory is requested zeroed, so the
    /// operating system maps it lazily as chunks are first written.
    pub fn add(&mut self, cls: usize, chunk_size: usize) -> usize {
        let data = match self.large.as_ref().and_then(|r| r.take()) {
            Some(mem) => PageMem::Large(mem),
            None => PageMem::Heap(vec![0u8; self.page_size].into_boxed_slice()),
        };
        self.add_mem(cls, chunk_size, data)
    }

    /// Adds a page of class `cls` with memory `data` (zeroed, e.g. from the page pool); returns
    /// its index.
    pub fn add_mem(&mut self, cls: usize, chunk_size: usize, data: PageMem) -> usize {
        let page = Page {
            data,
            class: cls,
            chunk_size,
            carved: 0,
        };
        if let Some(slot) = self.free_slots.pop() {
            self.pages[slot as usize] = Some(page);
            slot as usize
        } else {
            self.pages.push(Some(page));
            self.pages.len() - 1
        }
    }

    /// Gives page `p` to class `cls` (its chunks must all be free and out of every free list).
    pub fn reassign(&mut self, p: usize, cls: usize, chunk_size: usize) {
        if let Some(page) = self.pages[p].as_mut() {
            page.class = cls;
            page.chunk_size = chunk_size;
            page.carved = 0;
            page.data.fill(0);
        }
    }

    /// Takes page `p` out, handing its memory over (to the page pool).
    pub fn take_out(&mut self, p: usize) -> Option<PageMem> {
        let page = self.pages[p].take()?;
        self.free_slots.push(p as u32);
        Some(page.data)
    }

    /// Frees page `p`'s memory (back to the large-page region when it came from there).
    pub fn release(&mut self, p: usize) {
        if let Some(page) = self.pages[p].take() {
            if let (PageMem::Large(mem), Some(region)) = (page.data, self.large.as_ref()) {
                region.give(mem);
            }
            self.free_slots.push(p as u32);
        }
    }

    pub fn get(&self, p: usize) -> Option<&Page> {
        self.pages.get(p).and_then(|p| p.as_ref())
    }

    /// Number of page slots (live or released).
    pub fn slots(&self) -> usize {
        self.pages.len()
    }

    /// Chunks in page `p`.
    pub fn chunks_in(&self, p: usize) -> usize {
        self.get(p).map_or(0, |pg| self.page_size / pg.chunk_size)
    }

    /// Chunks of page `p` from its start that have held an item (see `Page::carved`).
    #[inline]
    pub fn carved(&self, p: usize) -> usize {
        self.get(p).map_or(0, |pg| pg.carved)
    }

    /// Records that chunk `id` holds an item.
    #[inline]
    pub fn mark_used(&mut self, id: ChunkId) {
        let (p, n) = self.split(id);
        if let Some(page) = self.pages[p].as_mut() {
            page.carved = page.carved.max(n + 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_classes_grow_like_memcached() {
        let c = SizeClasses::new(48, 1.25, (1 << 20, 1 << 19), Steps::Fine);
        assert_eq!(c.size(0), 96);
        assert_eq!(c.size(1), 104);
        // 8-byte steps up to 256, then memcached's classes (a 100 KB value lands in 103496,
        // as in memcached).
        let at = (0..c.len()).find(|&i| c.size(i) == 256).unwrap();
        assert_eq!(c.size(at + 1), 304);
        assert_eq!(c.size(at + 2), 384);
        let factor = SizeClasses::new(48, 1.25, (1 << 20, 1 << 19), Steps::Factor);
        let above = (0..factor.len())
            .map(|i| factor.size(i))
            .filter(|&s| s > 256);
        assert!(above.eq((at + 1..c.len()).map(|i| c.size(i))));
        assert_eq!(c.size(c.class_for(100 * 1024 + 60).unwrap()), 103496);
        assert!(c.len() <= MAX_CLASSES, "{} classes", c.len());
        assert_eq!(c.size(c.len() - 1), 1 << 19);
        for w in 1..c.len() {
            assert!(c.size(w) > c.size(w - 1));
        }
        assert_eq!(c.class_for(1), Some(0));
        assert_eq!(c.class_for(96), Some(0));
        assert_eq!(c.class_for(97), Some(1));
        assert_eq!(c.class_for(1 << 19), Some(c.len() - 1));
        assert_eq!(c.class_for((1 << 19) + 1), None);
        // With slab_chunk_max 16 KB (memcached's t/chunked-items.t), the last class is 16 KB;
        // without chunked items, the page.
        let small = SizeClasses::new(48, 1.25, (1 << 20, 16 << 10), Steps::Factor);
        assert_eq!(small.size(small.len() - 1), 16 << 10);
        let whole = SizeClasses::new(48, 1.25, (1 << 20, 1 << 20), Steps::Factor);
        assert_eq!(whole.size(whole.len() - 1), 1 << 20);
    }

    #[test]
    fn never_more_than_63_classes() {
        for (n, f, page) in [
            (1, 1.25, 1 << 20),
            (48, 1.2, 1 << 20),
            (48, 1.25, 16 << 20),
            (48, 1.01, 1 << 20),
        ] {
            let c = SizeClasses::new(n, f, (page, page / 2), Steps::Fine);
            assert!(c.len() <= MAX_CLASSES, "-n {n} -f {f}: {} classes", c.len());
            assert_eq!(c.size(c.len() - 1), page / 2);
            for w in 1..c.len() {
                assert!(c.size(w) > c.size(w - 1));
            }
        }
        // Too many with fine steps: memcached's schedule (factor from the first class).
        let c = SizeClasses::new(48, 1.1, (1 << 20, 1 << 19), Steps::Fine);
        assert_eq!((c.size(0), c.size(1)), (96, 112));
        // Without fine steps: memcached's schedule from the first class.
        let c = SizeClasses::new(48, 1.25, (1 << 20, 1 << 19), Steps::Factor);
        let sizes: Vec<usize> = (0..6).map(|i| c.size(i)).collect();
        assert_eq!(sizes, vec![96, 120, 152, 192, 240, 304]);
    }

    #[test]
    fn factor_classes_are_memcacheds() {
        // memcached 1.6.18 -vv, defaults: classes 1 to 39.
        let c = SizeClasses::new(48, 1.25, (1 << 20, 1 << 19), Steps::Factor);
        let sizes: Vec<usize> = (0..c.len()).map(|i| c.size(i)).collect();
        let memcached = [
            96, 120, 152, 192, 240, 304, 384, 480, 600, 752, 944, 1184, 1480, 1856, 2320, 2904,
            3632, 4544, 5680, 7104, 8880, 11104, 13880, 17352, 21696, 27120, 33904, 42384, 52984,
            66232, 82792, 103496, 129376, 161720, 202152, 252696, 315872, 394840, 524288,
        ];
        assert_eq!(sizes, memcached);
        // -n 10 -f 1.1: memcached's first classes and its 62 grown classes.
        let c = SizeClasses::new(10, 1.1, (1 << 20, 1 << 19), Steps::Factor);
        let first: Vec<usize> = (0..8).map(|i| c.size(i)).collect();
        assert_eq!(first, vec![64, 72, 80, 88, 96, 112, 128, 144]);
        assert_eq!(c.size(60), 26696);
    }

    #[test]
    fn large_region_pages_are_zeroed_reused_and_then_heap() {
        let c = SizeClasses::new(48, 1.25, (1 << 20, 1 << 19), Steps::Fine);
        let Ok(region) = LargeRegion::new(2, 1 << 20) else {
            // No transparent huge page support on this kernel: nothing to test.
            return;
        };
        let region = std::sync::Arc::new(region);
        assert_eq!(region.pages(), 2);
        let mut pages = Pages::new(&c, Some(region.clone()));
        let a = pages.add(0, c.size(0));
        let b = pages.add(0, c.size(0));
        assert!(matches!(pages.get(a).unwrap().data, PageMem::Large(_)));
        let id = pages.id(a, 3);
        pages.chunk_mut(id)[0] = 7;
        // Region used up: the next page comes from the heap.
        let h = pages.add(1, c.size(1));
        assert!(matches!(pages.get(h).unwrap().data, PageMem::Heap(_)));
        // A released region page comes back zeroed.
        pages.release(a);
        let again = pages.add(0, c.size(0));
        assert!(matches!(pages.get(again).unwrap().data, PageMem::Large(_)));
        assert!(pages.get(again).unwrap().data.iter().all(|&x| x == 0));
        assert!(pages.get(b).is_some());
    }

    #[test]
    fn chunk_addressing() {
        let c = SizeClasses::new(48, 1.25, (1 << 20, 1 << 19), Steps::Fine);
        let mut pages = Pages::new(&c, None);
        let p = pages.add(0, c.size(0));
        let id = pages.id(p, 5);
        pages.chunk_mut(id)[0] = 9;
        assert_eq!(pages.chunk(id)[0], 9);
        assert_eq!(pages.chunk(id).len(), 96);
        assert_eq!(pages.page_of(id), p);
        assert_eq!(pages.class_of(id), 0);
        let last = pages.id(p, pages.chunks_in(p) - 1);
        assert_eq!(pages.chunk(last).len(), 96);
    }
}
