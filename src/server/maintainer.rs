//! Owns: the maintainer thread — the server clock's tick, delayed `flush_all`, LRU balancing,
//! the expiry crawler (and `lru_crawler` requests) and slab automove, on a 100 ms beat.
//! Does not: decide what a maintenance pass does to a shard (see `store`).

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::state::{Shared, Shutdown};
use crate::store::CrawlMark;

/// Slices a maintainer round is cut into.
const MAINTAIN_SLICES: usize = 8;

/// Starts the thread; it ends once shutdown is requested.
pub fn start(sh: &Arc<Shared>) -> std::io::Result<JoinHandle<()>> {
    let s = sh.clone();
    std::thread::Builder::new()
        .name("maintainer".into())
        .spawn(move || run(&s))
}

/// Background work: the clock, delayed flushes, LRU balancing, the expiry crawler and page
/// rebalancing. Each shard is locked only for a bounded amount of work at a time.
fn run(sh: &Shared) {
    let tick = Duration::from_millis(100);
    let mut rounds = 0u64;
    // While an `lru_crawler crawl` is served: where each shard's crawler stood when it came.
    let mut requested: Option<Vec<CrawlMark>> = None;
    let lru_maintainer = sh.config().ext.lru_maintainer;
    while sh.shutdown_requested() == Shutdown::None {
        std::thread::sleep(tick);
        sh.clock().tick();
        sh.apply_pending_flush();
        let now = sh.clock().now();
        let crawler = sh.settings().lru_crawler();
        if sh.settings().take_crawl_request() {
            requested = Some(sh.store().crawl_marks());
        }
        // An explicit `lru_crawler crawl` gets a full pass at a high budget until every shard
        // has walked all its pages; else `lru_crawler disable` stops crawling.
        let crawl = if requested.is_some() {
            1 << 20
        } else if crawler {
            2048
        } else {
            0
        };
        // Balancing keeps the bound it had with the default crawl budget (2048 / 4 + 1). The
        // work is done in slices with a yield between them, so a worker sharing this CPU waits
        // for one slice at most, not for the whole round.
        // Without the LRU maintainer (`-o no_lru_maintainer`, `no_modern`) nothing juggles the
        // segments in the background, as in memcached: dead items are then freed by the crawler
        // and by allocation only (and counted as theirs).
        let balance = if lru_maintainer {
            513 / MAINTAIN_SLICES + 1
        } else {
            0
        };
        for _ in 0..MAINTAIN_SLICES {
            sh.store().maintain(balance, crawl / MAINTAIN_SLICES, now);
            std::thread::yield_now();
        }
        if let Some(marks) = &requested {
            let now_marks = sh.store().crawl_marks();
            if now_marks.iter().zip(marks).all(|(m, was)| m.covers(was)) {
                requested = None;
                sh.settings().finish_crawl();
            }
        }
        rounds += 1;
        if rounds.is_multiple_of(10) {
            sh.store().automove(now);
        }
    }
}
