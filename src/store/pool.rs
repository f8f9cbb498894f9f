//! Owns: the global page pool (memcached's class 0) — pages whose memory the cache holds
//! (counted in `total_malloced`) but that belong to no class: a class taking a new page takes
//! one from here before asking the budget for fresh memory, and `slabs reassign N 0` and slab
//! automove put pages here.
//! Does not: decide when pages move (see `automove`, `shard::page_moves`).

use parking_lot::Mutex;

use super::slab::PageMem;

/// The pool: a leaf lock, taken under a shard lock only to take or give one page.
#[derive(Debug, Default)]
pub struct PagePool {
    pages: Mutex<Vec<PageMem>>,
}

impl PagePool {
    /// A pooled page, zeroed, if there is one.
    pub fn take(&self) -> Option<PageMem> {
        self.pages.lock().pop()
    }

    /// Takes a page in, zeroing it for its next class.
    pub fn give(&self, mut page: PageMem) {
        page.fill(0);
        self.pages.lock().push(page);
    }

    /// Pages in the pool (`slab_global_page_pool`).
    pub fn len(&self) -> usize {
        self.pages.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
