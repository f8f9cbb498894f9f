//! Owns: the shard's bounded background round — segment balance per class, the expiry crawler's
//! walk over every page (and where it stands between rounds), and pages given back while the
//! store is over its memory limit.
//! Does not: schedule itself (the maintainer thread calls `Store::maintain`).

use std::sync::atomic::Ordering;

use super::sweep::Sweep;
use super::{Reclaimer, Shard};
use crate::store::item;

/// Where the expiry crawler stands between rounds.
#[derive(Debug, Default)]
pub(super) struct Crawler {
    /// Page slot and chunk it looks at next.
    page: usize,
    chunk: usize,
    /// The flush mark the current pass started under, and the one the last complete pass
    /// covered (items flushed before it are reclaimed).
    pass_flush: u64,
    flush_done: u64,
}

impl Shard {
    /// Bounded background work: free the dead items at each class's hand and balance LRU
    /// segments (the LRU maintainer, when `balance` > 0), reclaim expired/flushed items (crawler),
    /// give pages back when over the memory limit. `balance` bounds the items moved per class,
    /// `crawl` the chunks the crawler looks at (0 when the crawler is off). Returns the items it
    /// looked at.
    pub fn maintain(&mut self, balance: usize, crawl: usize, now: u32) -> usize {
        let mut work = 0;
        for cls in 0..self.class.len() {
            // As memcached's LRU maintainer at each LRU tail: the dead items the hand reaches
            // next are freed first (counted `reclaimed`; the crawler's are `crawler_reclaimed`).
            let moved = self.pull_tail(cls, balance, now)
                + self.balance_class(cls, balance, Sweep::Background, now);
            if moved > 0 {
                self.counters.lru_maintainer_juggles += 1;
            }
            work += moved;
        }
        work += self.crawl(crawl, now);
        // Pages past the limit (first pages of classes, or a shrunk limit) go back, evicting
        // their items; never under `-M`, which promises no evictions.
        let mut released = 0;
        while self.shared.evictions
            && self.shared.budget.over_limit()
            && released < 4
            && self.release_page(now)
        {
            released += 1;
        }
        work
    }

    /// The crawler's completed passes and whether it stands between passes.
    pub fn crawl_mark(&self) -> crate::store::CrawlMark {
        crate::store::CrawlMark {
            passes: self.counters.crawler_runs,
            at_start: self.crawler.page == 0 && self.crawler.chunk == 0,
        }
    }

    /// Walks up to `budget` chunks, freeing expired and flushed items.
    /// Only walks when there is something to find: items with an expiry time, or items stored
    /// before a flush that no complete pass has covered yet (memcached's crawler likewise visits
    /// only classes holding items with a TTL).
    fn crawl(&mut self, budget: usize, now: u32) -> usize {
        let slots = self.pages.slots();
        let flush = self.shared.flush_cas.load(Ordering::Relaxed);
        let at_start = self.crawler.page == 0 && self.crawler.chunk == 0;
        if slots == 0
            || budget == 0
            || (at_start && self.counters.expiring == 0 && flush <= self.crawler.flush_done)
        {
            return 0;
        }
        if at_start {
            self.crawler.pass_flush = flush;
        }
        let mut looked = 0;
        while looked < budget {
            if self.crawler.page >= slots {
                self.crawler.page = 0;
                self.crawler.chunk = 0;
                self.counters.crawler_runs += 1;
                self.crawler.flush_done = self.crawler.pass_flush;
                break;
            }
            let n = self.pages.carved(self.crawler.page);
            if self.crawler.chunk >= n {
                self.crawler.page += 1;
                self.crawler.chunk = 0;
                continue;
            }
            let id = self.pages.id(self.crawler.page, self.crawler.chunk);
            self.crawler.chunk += 1;
            looked += 1;
            let c = self.pages.chunk(id);
            if !item::in_use(c) {
                continue;
            }
            let cls = self.pages.class_of(id);
            self.class[cls].stats.crawler_items_checked += 1;
            if self.is_dead(c, now) {
                self.reclaim(id, Reclaimer::Crawler);
            }
        }
        looked
    }
}
