//! Owns: one shard of the cache — its key index, slab pages, per-class free lists and segmented
//! LRUs, eviction, expiry, page rebalancing and per-class statistics. Single-threaded (`&mut self`).
//! Does not: lock, hash keys, or read clocks (the caller passes `hash` and `now`).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use hashbrown::HashTable;

use super::exptime::is_expired;
use super::hand::Hand;
use super::item::{self, Segment, ACTIVE, FETCHED, STALE, WIN_SENT};
use super::segments::SegmentCounts;
use super::slab::{ChunkId, LargeRegion, Pages, SizeClasses};
use super::{
    ArithOutcome, ClassStats, DeleteOutcome, ItemView, KeyHasher, Miss, StoreError, StoreMode,
    StoreOutcome, StoreShared,
};

/// Items ahead of the hand looked at per allocation attempt when searching for expired
/// items to reuse.
const TAIL_PEEK: usize = 5;
/// Chunks the hand passes at most to find an item to evict; past it, the next live item is
/// evicted whatever its segment. Every item passed is aged, so this bound is rarely reached.
const EVICT_SWEEP_MAX: usize = 2048;
/// Chunks the hand passes at most per item the balancer is asked to move.
const BALANCE_SWEEP_PER_MOVE: usize = 16;
/// Live items ahead of the hand sampled for the ages `stats items` reports and the automover uses.
const AGE_PEEK: usize = 64;
/// Chunks a look ahead of the hand passes at most (free chunks included), so that a sparse class
/// costs no more than a full one.
const PEEK_CHUNKS_MAX: usize = 4096;
/// Allocation attempts before giving up (memcached's `do_item_alloc_pull` also tries 10 times).
const ALLOC_TRIES: usize = 10;

#[derive(Debug, Default)]
struct Class {
    segs: SegmentCounts,
    hand: Hand,
    free: Vec<ChunkId>,
    pages: Vec<usize>,
    stats: ClassStats,
    evictions_seen: u64,
}

/// Shard-wide counters.
#[derive(Debug, Default, Clone)]
pub struct ShardCounters {
    pub curr_items: u64,
    pub total_items: u64,
    pub bytes: u64,
    pub slabs_moved: u64,
    pub slab_reassign_rescues: u64,
    pub slab_reassign_evictions: u64,
    pub lru_maintainer_juggles: u64,
    pub crawler_runs: u64,
    /// Live items with an expiry time (the crawler has work only when some exist, or after a
    /// flush).
    pub expiring: u64,
}

/// One shard: see the module header.
#[derive(Debug)]
pub struct Shard {
    classes: Arc<SizeClasses>,
    shared: Arc<StoreShared>,
    hasher: KeyHasher,
    pages: Pages,
    index: HashTable<ChunkId>,
    class: Vec<Class>,
    counters: ShardCounters,
    crawl_page: usize,
    crawl_chunk: usize,
    /// The flush mark the crawler's current pass started under, and the one its last complete
    /// pass covered (items flushed before it are reclaimed).
    crawl_pass_flush: u64,
    crawl_flush_done: u64,
}

/// What happens to the live items of a page being taken from its class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Vacate {
    /// Copy them into free chunks of the class elsewhere when there are any.
    Rescue,
    Evict,
}

/// What a pass of the hand may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sweep {
    /// After a store: age HOT and WARM items only while their segment is over its share; stop
    /// at an expired or flushed item (left for a reclaim, which looks only ahead of the hand,
    /// or for a lookup to find expired, as memcached's lazy expiry counts it).
    Link,
    /// Background: as `Link`, but free the expired and flushed items passed.
    Background,
    /// Age every item passed and stop at the first one freed (expired, flushed, or inactive COLD).
    Evict,
}

/// Result of looking a key up.
enum Found {
    Hit(ChunkId),
    Miss(Miss),
}

impl Shard {
    pub fn new(
        classes: Arc<SizeClasses>,
        shared: Arc<StoreShared>,
        hasher: KeyHasher,
        large: Option<Arc<LargeRegion>>,
    ) -> Shard {
        let class = (0..classes.len()).map(|_| Class::default()).collect();
        Shard {
            pages: Pages::new(&classes, large),
            classes,
            shared,
            hasher,
            index: HashTable::new(),
            class,
            counters: ShardCounters::default(),
            crawl_page: 0,
            crawl_chunk: 0,
            crawl_pass_flush: 0,
            crawl_flush_done: 0,
        }
    }

    fn is_flushed(&self, c: &[u8]) -> bool {
        item::cas(c) <= self.shared.flush_cas.load(Ordering::Relaxed)
    }

    /// True when the item in `c` can no longer be returned: expired or flushed.
    fn is_dead(&self, c: &[u8], now: u32) -> bool {
        is_expired(item::exptime(c), now) || self.is_flushed(c)
    }

    /// Frees a dead item, counting it as reclaimed (by the crawler or otherwise) and, when it
    /// expired without ever being read, as expired unfetched.
    fn reclaim(&mut self, id: ChunkId, now: u32, by_crawler: bool) {
        let c = self.pages.chunk(id);
        let expired_unfetched = is_expired(item::exptime(c), now) && item::bits(c) & FETCHED == 0;
        let stats = &mut self.class[self.pages.class_of(id)].stats;
        if by_crawler {
            stats.crawler_reclaimed += 1;
        } else {
            stats.reclaimed += 1;
        }
        if expired_unfetched {
            stats.expired_unfetched += 1;
        }
        self.unlink_item(id, None);
    }

    /// Finds a live item, unlinking it lazily when expired or flushed.
    fn find(&mut self, key: &[u8], hash: u64, now: u32) -> Found {
        let pages = &self.pages;
        let Some(&id) = self
            .index
            .find(hash, |&id| item::key(pages.chunk(id)) == key)
        else {
            return Found::Miss(Miss::NotFound);
        };
        let c = self.pages.chunk(id);
        if is_expired(item::exptime(c), now) {
            self.unlink_item(id, Some(hash));
            return Found::Miss(Miss::Expired);
        }
        if self.is_flushed(c) {
            self.unlink_item(id, Some(hash));
            return Found::Miss(Miss::Flushed);
        }
        Found::Hit(id)
    }

    /// Removes an item from the index and its LRU and returns its chunk to the free list.
    fn unlink_item(&mut self, id: ChunkId, hash: Option<u64>) {
        let (hash, total, seg, expiring) = {
            let c = self.pages.chunk(id);
            let hash = hash.unwrap_or_else(|| self.hasher.hash(item::key(c)));
            (hash, item::size(c), item::segment(c), item::exptime(c) != 0)
        };
        if expiring {
            self.counters.expiring = self.counters.expiring.saturating_sub(1);
        }
        if let Ok(entry) = self.index.find_entry(hash, |&x| x == id) {
            entry.remove();
        }
        let cls = self.pages.class_of(id);
        let class = &mut self.class[cls];
        if let Some(seg) = seg {
            class.segs.remove(seg);
        }
        item::set_segment(self.pages.chunk_mut(id), None);
        class.free.push(id);
        class.stats.mem_requested = class.stats.mem_requested.saturating_sub(total as u64);
        self.counters.curr_items = self.counters.curr_items.saturating_sub(1);
        self.counters.bytes = self.counters.bytes.saturating_sub(total as u64);
    }

    /// Inserts a freshly written chunk into the index and the HOT segment.
    fn link_item(&mut self, id: ChunkId, hash: u64, now: u32) {
        let (total, expiring) = {
            let c = self.pages.chunk(id);
            (item::size(c), item::exptime(c) != 0)
        };
        if expiring {
            self.counters.expiring += 1;
        }
        let pages = &self.pages;
        let hasher = &self.hasher;
        self.index
            .insert_unique(hash, id, |&x| hasher.hash(item::key(pages.chunk(x))));
        let cls = self.pages.class_of(id);
        item::set_segment(self.pages.chunk_mut(id), Some(Segment::Hot));
        let class = &mut self.class[cls];
        class.segs.add(Segment::Hot);
        class.stats.mem_requested += total as u64;
        self.counters.curr_items += 1;
        self.counters.total_items += 1;
        self.counters.bytes += total as u64;
        // While pages are still free nothing is evicted and the maintainer keeps the segment
        // shares (finding a HOT item to age walks chunks, a cost per store). Once memory is
        // full, every store ages one item inline, as memcached juggles its LRU on each
        // allocation: it keeps eviction order close to an LRU's (zipf hit ratio under `-m 64`
        // 0.73 without it, 0.76-0.79 with it).
        let budget = &self.shared.budget;
        if budget.used() >= budget.limit() {
            self.balance_class(cls, 1, Sweep::Link, now);
        }
    }

    /// Sets a live item's expiry in place, keeping the count of expiring items.
    fn retime(&mut self, id: ChunkId, exptime: u32) {
        let c = self.pages.chunk_mut(id);
        let was = item::exptime(c) != 0;
        item::set_exptime(c, exptime);
        match (was, exptime != 0) {
            (false, true) => self.counters.expiring += 1,
            (true, false) => self.counters.expiring = self.counters.expiring.saturating_sub(1),
            _ => {}
        }
    }

    /// Records an access: first read marks FETCHED, a later one ACTIVE; ACTIVE items in COLD move
    /// up to WARM straight away.
    fn bump(&mut self, id: ChunkId, now: u32) {
        let cls = self.pages.class_of(id);
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
    fn balance_class(&mut self, cls: usize, budget: usize, mode: Sweep, now: u32) -> usize {
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

    /// The chunk under class `cls`'s hand (None when the class owns no page).
    fn hand_chunk(&self, cls: usize) -> Option<ChunkId> {
        let class = &self.class[cls];
        let (pi, n) = class.hand.at();
        let p = *class.pages.get(pi)?;
        (n < self.pages.chunks_in(p)).then(|| self.pages.id(p, n))
    }

    fn advance_hand(&mut self, cls: usize) {
        let class = &mut self.class[cls];
        let (pi, _) = class.hand.at();
        let chunks = class.pages.get(pi).map_or(0, |&p| self.pages.chunks_in(p));
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
            let Some(id) = self.hand_chunk(cls) else {
                break;
            };
            let hand = self.class[cls].hand.at();
            self.advance_hand(cls);
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
                self.reclaim(id, now, false);
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
            let to = match seg {
                Segment::Hot if over(Segment::Hot, hot_pct) => {
                    if active {
                        Segment::Warm
                    } else {
                        Segment::Cold
                    }
                }
                Segment::Warm if over(Segment::Warm, warm_pct) => {
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
                        self.evict(id, now);
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

    /// Gets a free chunk of class `cls`: free list, then expired tail items, then a new page from
    /// the global budget, then eviction from the class tail (or a page taken from another class).
    /// Takes a free chunk of class `cls`, reclaiming, evicting or moving pages when there is
    /// none. The flag says whether anything was unlinked or moved on the way (ids found before
    /// the call may then be stale).
    fn alloc(&mut self, cls: usize, now: u32) -> Result<(ChunkId, bool), StoreError> {
        for attempt in 0..ALLOC_TRIES {
            if let Some(id) = self.class[cls].free.pop() {
                return Ok((id, attempt > 0));
            }
            if self.reclaim_tail(cls, now) {
                continue;
            }
            if self.shared.budget.try_acquire() {
                self.add_page(cls);
                continue;
            }
            if !self.shared.evictions {
                break;
            }
            self.class[cls].stats.direct_reclaims += 1;
            if self.evict_tail(cls, now) {
                continue;
            }
            // The class owns nothing to evict: take a page from the fattest other class here.
            if let Some(src) = self.fattest_class(cls) {
                if self.move_page(src, cls, now) {
                    continue;
                }
            }
            if self.pages_owned() == 0 {
                // A shard with no page at all may borrow one beyond the limit, so that every shard
                // can serve; the overshoot is bounded by one page per shard and paid back by `maintain`.
                self.shared.budget.force_acquire();
                self.add_page(cls);
                continue;
            }
            break;
        }
        self.class[cls].stats.outofmemory += 1;
        Err(StoreError::OutOfMemory)
    }

    fn pages_owned(&self) -> usize {
        self.class.iter().map(|c| c.pages.len()).sum()
    }

    fn add_page(&mut self, cls: usize) {
        let size = self.classes.size(cls);
        let p = self.pages.add(cls, size);
        self.push_page_chunks(p, cls);
    }

    fn push_page_chunks(&mut self, p: usize, cls: usize) {
        let n = self.pages.chunks_in(p);
        let class = &mut self.class[cls];
        class.pages.push(p);
        class.free.reserve(n);
        // Reverse so chunks are handed out from the start of the page.
        for i in (0..n).rev() {
            class.free.push(self.pages.id(p, i));
        }
    }

    /// Reuses an expired or flushed item found among the next few under the hand, moving
    /// the hand past it (so the new item stored there is the last the hand reaches again). True
    /// when one was freed; the hand stays put when none was.
    fn reclaim_tail(&mut self, cls: usize, now: u32) -> bool {
        let mut found = None;
        self.peek_ahead(cls, TAIL_PEEK, |id, c, passed| {
            if self.is_dead(c, now) {
                found = Some((id, passed));
                return false;
            }
            true
        });
        let Some((id, passed)) = found else {
            return false;
        };
        for _ in 0..=passed {
            self.advance_hand(cls);
        }
        self.reclaim(id, now, false);
        true
    }

    /// Calls `f` for up to `limit` live items from the hand on, without moving it, while
    /// `f` returns true; `f` also gets how many chunks lie between the hand and the item. Looks
    /// at no more than `PEEK_CHUNKS_MAX` chunks.
    fn peek_ahead(
        &self,
        cls: usize,
        limit: usize,
        mut f: impl FnMut(ChunkId, &[u8], usize) -> bool,
    ) {
        let class = &self.class[cls];
        if class.segs.is_empty() {
            return;
        }
        let mut hand = class.hand;
        let mut seen = 0;
        let chunks: usize = class.pages.iter().map(|&p| self.pages.chunks_in(p)).sum();
        for passed in 0..chunks.min(PEEK_CHUNKS_MAX) {
            let (pi, n) = hand.at();
            let Some(&p) = class.pages.get(pi) else {
                return;
            };
            let in_page = self.pages.chunks_in(p);
            if n < in_page {
                let id = self.pages.id(p, n);
                let c = self.pages.chunk(id);
                if item::in_use(c) {
                    if !f(id, c, passed) {
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
    fn evict_tail(&mut self, cls: usize, now: u32) -> bool {
        if self.class[cls].segs.is_empty() {
            return false;
        }
        if self
            .sweep(cls, EVICT_SWEEP_MAX, usize::MAX, Sweep::Evict, now)
            .1
        {
            return true;
        }
        // Everything passed was young: evict the next live item.
        let mut victim = None;
        self.peek_ahead(cls, 1, |id, _, _| {
            victim = Some(id);
            false
        });
        match victim {
            Some(id) => {
                self.evict(id, now);
                true
            }
            None => false,
        }
    }

    fn evict(&mut self, id: ChunkId, now: u32) {
        let c = self.pages.chunk(id);
        let cls = self.pages.class_of(id);
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

    /// The class other than `except` with the most pages (at least one).
    fn fattest_class(&self, except: usize) -> Option<usize> {
        (0..self.class.len())
            .filter(|&c| c != except && !self.class[c].pages.is_empty())
            .max_by_key(|&c| self.class[c].pages.len())
    }

    /// Moves one page from class `src` to class `dst`: items in it are copied into free chunks
    /// of `src` elsewhere when possible (rescued), otherwise evicted. The page chosen is the one
    /// the hand reaches next (see `coldest_page`).
    pub fn move_page(&mut self, src: usize, dst: usize, now: u32) -> bool {
        if src == dst || self.class[src].pages.is_empty() {
            return false;
        }
        let p = self.coldest_page(src);
        self.vacate_page(src, p, now, Vacate::Rescue);
        let size = self.classes.size(dst);
        self.pages.reassign(p, dst, size);
        self.push_page_chunks(p, dst);
        self.counters.slabs_moved += 1;
        true
    }

    /// The page the hand reaches next after the one it is on (its items have gone longest
    /// without the hand passing; the part of the hand's own page just behind it holds the newest
    /// items). The class must own a page.
    fn coldest_page(&self, cls: usize) -> usize {
        let class = &self.class[cls];
        let next = (class.hand.at().0 + 1) % class.pages.len();
        class.pages[next]
    }

    /// Empties page `p` of class `src` and takes it out of the class: live items are rescued
    /// into free chunks of `src` elsewhere (`Vacate::Rescue`, counted as reassign rescues and
    /// evictions) or evicted (`Vacate::Evict`).
    fn vacate_page(&mut self, src: usize, p: usize, now: u32, how: Vacate) {
        // Free chunks inside the page leave the free list first so rescues never land there.
        let pages = &self.pages;
        self.class[src].free.retain(|&id| pages.page_of(id) != p);
        for n in 0..self.pages.chunks_in(p) {
            let id = self.pages.id(p, n);
            let c = self.pages.chunk(id);
            if !item::in_use(c) {
                continue;
            }
            if self.is_dead(c, now) {
                // Dead already: free it rather than copy it somewhere the crawler has passed.
                self.reclaim(id, now, false);
                let back = self.class[src].free.pop();
                debug_assert_eq!(back, Some(id));
                continue;
            }
            let to = match how {
                Vacate::Rescue => self.class[src].free.pop(),
                Vacate::Evict => None,
            };
            if let Some(to) = to {
                self.rescue(id, to);
                self.counters.slab_reassign_rescues += 1;
            } else {
                self.evict(id, now);
                if how == Vacate::Rescue {
                    self.counters.slab_reassign_evictions += 1;
                }
                // `evict` pushed the chunk onto the free list; it leaves with the page.
                let back = self.class[src].free.pop();
                debug_assert_eq!(back, Some(id));
            }
        }
        let class = &mut self.class[src];
        if let Some(at) = class.pages.iter().position(|&x| x == p) {
            class.pages.remove(at);
            class.hand.page_removed(at, class.pages.len());
        }
    }

    /// Copies item `from` into free chunk `to` of the same class, keeping its LRU segment (the
    /// segment counts do not change).
    fn rescue(&mut self, from: ChunkId, to: ChunkId) {
        let hash = self.hasher.hash(item::key(self.pages.chunk(from)));
        let bytes = self.pages.chunk(from).to_vec();
        self.pages.chunk_mut(to).copy_from_slice(&bytes);
        item::set_segment(self.pages.chunk_mut(from), None);
        if let Ok(mut entry) = self.index.find_entry(hash, |&x| x == from) {
            *entry.get_mut() = to;
        }
    }

    /// Releases one page back to the global budget (used when the memory limit shrinks).
    fn release_page(&mut self, now: u32) -> bool {
        let Some(src) = self.fattest_class(usize::MAX) else {
            return false;
        };
        let p = self.coldest_page(src);
        self.vacate_page(src, p, now, Vacate::Evict);
        self.pages.release(p);
        self.shared.budget.release();
        true
    }

    // ----- operations -----------------------------------------------------------------------

    /// Stores `value` under `key` according to `mode`. `exptime` is server-relative (0 = never).
    #[allow(clippy::too_many_arguments)]
    pub fn store(
        &mut self,
        mode: StoreMode,
        key: &[u8],
        hash: u64,
        flags: u32,
        exptime: u32,
        value: &[u8],
        now: u32,
    ) -> Result<StoreOutcome, StoreError> {
        let found = match self.find(key, hash, now) {
            Found::Hit(id) => Some(id),
            Found::Miss(_) => None,
        };
        let mut flags = flags;
        let mut exptime = exptime;
        let mut joined: Option<Vec<u8>> = None;
        match (mode, found) {
            (StoreMode::Add, Some(id)) => {
                item::set_atime(self.pages.chunk_mut(id), now);
                return Ok(StoreOutcome::NotStored);
            }
            (StoreMode::Replace | StoreMode::Append(_) | StoreMode::Prepend(_), None) => {
                return Ok(StoreOutcome::NotStored);
            }
            (StoreMode::Cas(_), None) => return Ok(StoreOutcome::NotFound),
            (StoreMode::Cas(want), Some(id)) => {
                let cls = self.pages.class_of(id);
                if item::cas(self.pages.chunk(id)) != want {
                    self.class[cls].stats.cas_badval += 1;
                    return Ok(StoreOutcome::Exists);
                }
                self.class[cls].stats.cas_hits += 1;
            }
            (StoreMode::Append(want) | StoreMode::Prepend(want), Some(id)) => {
                let c = self.pages.chunk(id);
                if want != 0 && item::cas(c) != want {
                    return Ok(StoreOutcome::Exists);
                }
                flags = item::flags(c);
                exptime = item::exptime(c);
                let old = item::value(c);
                let mut v = Vec::with_capacity(old.len() + value.len());
                if matches!(mode, StoreMode::Append(_)) {
                    v.extend_from_slice(old);
                    v.extend_from_slice(value);
                } else {
                    v.extend_from_slice(value);
                    v.extend_from_slice(old);
                }
                joined = Some(v);
            }
            _ => {}
        }
        let data = joined.as_deref().unwrap_or(value);
        let total = item::total_size(key.len(), data.len(), flags);
        let cls = match self.classes.class_for(total) {
            Some(c) if total <= self.shared.item_size_max => c,
            _ => {
                if mode == StoreMode::Set {
                    if let Some(id) = found {
                        self.unlink_item(id, Some(hash));
                    }
                }
                return Err(StoreError::TooLarge);
            }
        };
        let (id, disturbed) = match self.alloc(cls, now) {
            Ok(r) => r,
            Err(e) => {
                if mode == StoreMode::Set {
                    if let Found::Hit(old) = self.find(key, hash, now) {
                        self.unlink_item(old, Some(hash));
                    }
                }
                return Err(e);
            }
        };
        // If allocation evicted or moved items, the old one may be gone or elsewhere: look again.
        let old = if disturbed {
            match self.find(key, hash, now) {
                Found::Hit(old) => Some(old),
                Found::Miss(_) => None,
            }
        } else {
            found
        };
        if old.is_none() && found.is_some() {
            // Allocation evicted the item this store depends on: answer as if it were missing
            // (as memcached does) and give the chunk back.
            let outcome = match mode {
                StoreMode::Replace | StoreMode::Append(_) | StoreMode::Prepend(_) => {
                    Some(StoreOutcome::NotStored)
                }
                StoreMode::Cas(_) => Some(StoreOutcome::NotFound),
                _ => None,
            };
            if let Some(o) = outcome {
                self.class[cls].free.push(id);
                return Ok(o);
            }
        }
        if let Some(old) = old {
            self.unlink_item(old, Some(hash));
        }
        let cas = self.shared.next_cas();
        item::write_new(
            self.pages.chunk_mut(id),
            key,
            flags,
            exptime,
            now,
            cas,
            &[data],
        );
        self.link_item(id, hash, now);
        self.class[cls].stats.cmd_set += 1;
        Ok(StoreOutcome::Stored(cas))
    }

    /// Looks `key` up. With `bump`, the access counts for the LRU.
    pub fn get(
        &mut self,
        key: &[u8],
        hash: u64,
        now: u32,
        bump: bool,
    ) -> Result<ItemView<'_>, Miss> {
        match self.find(key, hash, now) {
            Found::Hit(id) => {
                if bump {
                    self.bump(id, now);
                }
                let cls = self.pages.class_of(id);
                self.class[cls].stats.get_hits += 1;
                Ok(self.view(id))
            }
            Found::Miss(m) => Err(m),
        }
    }

    /// Sets a new expiry on `key` and returns it (touch/gat semantics: CAS unchanged).
    pub fn touch(
        &mut self,
        key: &[u8],
        hash: u64,
        exptime: u32,
        now: u32,
    ) -> Result<ItemView<'_>, Miss> {
        match self.find(key, hash, now) {
            Found::Hit(id) => {
                self.bump(id, now);
                self.retime(id, exptime);
                let cls = self.pages.class_of(id);
                self.class[cls].stats.touch_hits += 1;
                Ok(self.view(id))
            }
            Found::Miss(m) => Err(m),
        }
    }

    /// Deletes `key`; with `cas` non-zero only when the item's CAS matches.
    pub fn delete(&mut self, key: &[u8], hash: u64, cas: u64, now: u32) -> DeleteOutcome {
        match self.find(key, hash, now) {
            Found::Hit(id) => {
                if cas != 0 && item::cas(self.pages.chunk(id)) != cas {
                    return DeleteOutcome::Exists;
                }
                let cls = self.pages.class_of(id);
                self.class[cls].stats.delete_hits += 1;
                self.unlink_item(id, Some(hash));
                DeleteOutcome::Deleted
            }
            Found::Miss(_) => DeleteOutcome::NotFound,
        }
    }

    /// incr/decr: the stored value must be a decimal u64; incr wraps at 2^64, decr stops at 0.
    /// A shorter result is written in place padded with spaces, as memcached does.
    pub fn arith(
        &mut self,
        key: &[u8],
        hash: u64,
        incr: bool,
        delta: u64,
        cas: u64,
        now: u32,
    ) -> Result<ArithOutcome, StoreError> {
        let id = match self.find(key, hash, now) {
            Found::Hit(id) => id,
            Found::Miss(_) => return Ok(ArithOutcome::NotFound),
        };
        let c = self.pages.chunk(id);
        if cas != 0 && item::cas(c) != cas {
            return Ok(ArithOutcome::Exists);
        }
        let Some(cur) = crate::num::strtoull(item::value(c)) else {
            return Ok(ArithOutcome::NonNumeric);
        };
        let new = if incr {
            cur.wrapping_add(delta)
        } else {
            cur.saturating_sub(delta)
        };
        let cls = self.pages.class_of(id);
        if incr {
            self.class[cls].stats.incr_hits += 1;
        } else {
            self.class[cls].stats.decr_hits += 1;
        }
        let mut buf = itoa::Buffer::new();
        let digits = buf.format(new).as_bytes();
        if digits.len() <= item::vlen(c) {
            let new_cas = self.shared.next_cas();
            let c = self.pages.chunk_mut(id);
            let v = item::value_mut(c);
            v[..digits.len()].copy_from_slice(digits);
            v[digits.len()..].fill(b' ');
            item::set_cas(c, new_cas);
            item::set_atime(c, now);
            return Ok(ArithOutcome::Value(new, new_cas));
        }
        let (flags, exptime) = (item::flags(c), item::exptime(c));
        let owned = digits.to_vec();
        match self.store(StoreMode::Set, key, hash, flags, exptime, &owned, now)? {
            StoreOutcome::Stored(cas) => Ok(ArithOutcome::Value(new, cas)),
            _ => Ok(ArithOutcome::NotFound),
        }
    }

    /// Marks an item stale (meta invalidation): new CAS, optional new TTL, win token reset.
    pub fn mark_stale(&mut self, key: &[u8], hash: u64, exptime: Option<u32>, now: u32) -> bool {
        match self.find(key, hash, now) {
            Found::Hit(id) => {
                let cas = self.shared.next_cas();
                let c = self.pages.chunk_mut(id);
                item::set_cas(c, cas);
                item::set_bits(c, (item::bits(c) | STALE) & !WIN_SENT);
                if let Some(e) = exptime {
                    self.retime(id, e);
                }
                true
            }
            Found::Miss(_) => false,
        }
    }

    /// Sets or clears the bits of a live item (meta win/stale tokens). Returns the old bits.
    pub fn update_bits(&mut self, key: &[u8], hash: u64, set: u8, now: u32) -> Option<u8> {
        match self.find(key, hash, now) {
            Found::Hit(id) => {
                let c = self.pages.chunk_mut(id);
                let old = item::bits(c);
                item::set_bits(c, old | set);
                Some(old)
            }
            Found::Miss(_) => None,
        }
    }

    fn view(&self, id: ChunkId) -> ItemView<'_> {
        let c = self.pages.chunk(id);
        ItemView {
            key: item::key(c),
            value: item::value(c),
            flags: item::flags(c),
            cas: item::cas(c),
            exptime: item::exptime(c),
            atime: item::atime(c),
            bits: item::bits(c),
            class: self.pages.class_of(id),
            total: item::size(c),
        }
    }

    // ----- background work --------------------------------------------------------------------

    /// Bounded background work: balance LRU segments, reclaim expired/flushed items (crawler),
    /// give pages back when over the memory limit. `balance` bounds the items moved per class,
    /// `crawl` the chunks the crawler looks at (0 when the crawler is off). Returns the items it
    /// looked at.
    pub fn maintain(&mut self, balance: usize, crawl: usize, now: u32) -> usize {
        let mut work = 0;
        for cls in 0..self.class.len() {
            let moved = self.balance_class(cls, balance, Sweep::Background, now);
            if moved > 0 {
                self.counters.lru_maintainer_juggles += 1;
            }
            work += moved;
        }
        work += self.crawl(crawl, now);
        let mut released = 0;
        while self.shared.budget.over_limit() && released < 4 && self.release_page(now) {
            released += 1;
        }
        work
    }

    /// Walks up to `budget` chunks, freeing expired and flushed items.
    /// Only walks when there is something to find: items with an expiry time, or items stored
    /// before a flush that no complete pass has covered yet (memcached's crawler likewise visits
    /// only classes holding items with a TTL).
    fn crawl(&mut self, budget: usize, now: u32) -> usize {
        let slots = self.pages.slots();
        let flush = self.shared.flush_cas.load(Ordering::Relaxed);
        let at_start = self.crawl_page == 0 && self.crawl_chunk == 0;
        if slots == 0
            || budget == 0
            || (at_start && self.counters.expiring == 0 && flush <= self.crawl_flush_done)
        {
            return 0;
        }
        if at_start {
            self.crawl_pass_flush = flush;
        }
        let mut looked = 0;
        while looked < budget {
            if self.crawl_page >= slots {
                self.crawl_page = 0;
                self.crawl_chunk = 0;
                self.counters.crawler_runs += 1;
                self.crawl_flush_done = self.crawl_pass_flush;
                break;
            }
            let n = self.pages.chunks_in(self.crawl_page);
            if self.crawl_chunk >= n {
                self.crawl_page += 1;
                self.crawl_chunk = 0;
                continue;
            }
            let id = self.pages.id(self.crawl_page, self.crawl_chunk);
            self.crawl_chunk += 1;
            looked += 1;
            let c = self.pages.chunk(id);
            if !item::in_use(c) {
                continue;
            }
            let cls = self.pages.class_of(id);
            self.class[cls].stats.crawler_items_checked += 1;
            if self.is_dead(c, now) {
                self.reclaim(id, now, true);
            }
        }
        looked
    }

    /// Evictions seen by class `cls` since the last call (for the automover's window).
    pub fn take_eviction_delta(&mut self, cls: usize) -> u64 {
        let c = &mut self.class[cls];
        let d = c.stats.evicted - c.evictions_seen;
        c.evictions_seen = c.stats.evicted;
        d
    }

    /// Age in seconds (since last access) of the oldest item among the next few under class
    /// `cls`'s hand, COLD ones first, if the class holds any.
    pub fn tail_age(&self, cls: usize, now: u32) -> Option<u32> {
        let ages = self.hand_ages(cls, now);
        ages[Segment::Cold.index()]
            .or(ages[Segment::Warm.index()])
            .or(ages[Segment::Hot.index()])
    }

    /// Per segment, the largest age among the next `AGE_PEEK` items under the hand: the sweep's
    /// stand-in for the age of an LRU tail.
    fn hand_ages(&self, cls: usize, now: u32) -> [Option<u32>; 3] {
        let mut ages = [None; 3];
        self.peek_ahead(cls, AGE_PEEK, |_, c, _| {
            if let Some(seg) = item::segment(c) {
                let age = now.saturating_sub(item::atime(c));
                let slot = &mut ages[seg.index()];
                *slot = Some(slot.map_or(age, |a: u32| a.max(age)));
            }
            true
        });
        ages
    }

    /// Pages owned by class `cls`.
    pub fn class_pages(&self, cls: usize) -> usize {
        self.class[cls].pages.len()
    }

    /// Free chunks of class `cls`.
    pub fn class_free(&self, cls: usize) -> usize {
        self.class[cls].free.len()
    }

    /// A snapshot of class `cls`'s counters with its live item numbers filled in.
    pub fn class_snapshot(&self, cls: usize, now: u32) -> ClassStats {
        let c = &self.class[cls];
        let mut s = c.stats.clone();
        s.number_hot = c.segs.len(Segment::Hot) as u64;
        s.number_warm = c.segs.len(Segment::Warm) as u64;
        s.number_cold = c.segs.len(Segment::Cold) as u64;
        s.total_pages = c.pages.len() as u64;
        s.free_chunks = c.free.len() as u64;
        let ages = self.hand_ages(cls, now);
        let age = |seg: Segment| u64::from(ages[seg.index()].unwrap_or(0));
        s.age_hot = age(Segment::Hot);
        s.age_warm = age(Segment::Warm);
        s.age = age(Segment::Cold);
        s
    }

    pub fn counters(&self) -> &ShardCounters {
        &self.counters
    }

    /// Calls `f` for every live item (for `lru_crawler metadump` and `stats cachedump`).
    pub fn for_each_item(&self, now: u32, mut f: impl FnMut(ItemView<'_>)) {
        for p in 0..self.pages.slots() {
            for n in 0..self.pages.chunks_in(p) {
                let id = self.pages.id(p, n);
                let c = self.pages.chunk(id);
                if item::in_use(c) && !self.is_dead(c, now) {
                    f(self.view(id));
                }
            }
        }
    }

    /// Checks internal consistency (tests only): index, segment counts, pages and counters agree.
    #[cfg(test)]
    pub fn check(&self) {
        let mut linked = 0;
        let mut expiring = 0;
        for (cls, class) in self.class.iter().enumerate() {
            let mut counts = [0usize; 3];
            for &p in &class.pages {
                for n in 0..self.pages.chunks_in(p) {
                    let id = self.pages.id(p, n);
                    assert_eq!(self.pages.class_of(id), cls);
                    let c = self.pages.chunk(id);
                    if let Some(seg) = item::segment(c) {
                        counts[seg.index()] += 1;
                        expiring += u64::from(item::exptime(c) != 0);
                    }
                }
            }
            for seg in Segment::ALL {
                assert_eq!(
                    counts[seg.index()],
                    class.segs.len(seg),
                    "class {cls} {seg:?}"
                );
            }
            linked += class.segs.total();
        }
        assert_eq!(linked, self.index.len());
        assert_eq!(linked as u64, self.counters.curr_items);
        assert_eq!(expiring, self.counters.expiring);
    }

    // ----- meta protocol ----------------------------------------------------------------------

    /// A live item as it is, without counting an access (no LRU bump, no statistics): meta
    /// commands read the state before the request changes it (`h`, `l`, `t`, win tokens).
    pub fn peek(&mut self, key: &[u8], hash: u64, now: u32) -> Result<ItemView<'_>, Miss> {
        match self.find(key, hash, now) {
            Found::Hit(id) => Ok(self.view(id)),
            Found::Miss(m) => Err(m),
        }
    }

    /// Applies what a meta request decided after reading an item: a new expiry, bits to set and
    /// clear, and, with `bump`, the access for the LRU. Counts a get hit (a touch hit when the
    /// expiry changes) for the class. False when the item is gone.
    #[allow(clippy::too_many_arguments)]
    pub fn meta_access(
        &mut self,
        key: &[u8],
        hash: u64,
        now: u32,
        exptime: Option<u32>,
        set: u8,
        clear: u8,
        bump: bool,
    ) -> bool {
        let Found::Hit(id) = self.find(key, hash, now) else {
            return false;
        };
        let c = self.pages.chunk_mut(id);
        item::set_bits(c, (item::bits(c) | set) & !clear);
        if let Some(e) = exptime {
            self.retime(id, e);
        }
        if bump {
            self.bump(id, now);
        }
        let cls = self.pages.class_of(id);
        if exptime.is_some() {
            self.class[cls].stats.touch_hits += 1;
        } else {
            self.class[cls].stats.get_hits += 1;
        }
        true
    }
}

#[cfg(test)]
mod meta_tests {
    use super::super::item::{FETCHED, STALE, WIN_SENT};
    use super::super::{Miss, Store, StoreConfig, StoreMode, StoreOutcome};

    #[test]
    fn peek_does_not_count_an_access() {
        let store = Store::new(&StoreConfig::default());
        let h = store.hash(b"k");
        let mut s = store.lock(h);
        assert_eq!(s.peek(b"k", h, 10).err(), Some(Miss::NotFound));
        assert!(matches!(
            s.store(StoreMode::Set, b"k", h, 3, 0, b"v", 10),
            Ok(StoreOutcome::Stored(_))
        ));
        let v = s.peek(b"k", h, 20).unwrap();
        assert_eq!((v.value, v.flags, v.atime), (&b"v"[..], 3, 10));
        assert_eq!(v.bits & FETCHED, 0);
        let v = s.peek(b"k", h, 30).unwrap();
        assert_eq!((v.atime, v.bits & FETCHED), (10, 0));
    }

    #[test]
    fn meta_access_sets_bits_expiry_and_bumps() {
        let store = Store::new(&StoreConfig::default());
        let h = store.hash(b"k");
        let mut s = store.lock(h);
        s.store(StoreMode::Set, b"k", h, 0, 0, b"v", 10).unwrap();
        assert!(s.meta_access(b"k", h, 12, Some(100), WIN_SENT | STALE, 0, false));
        let v = s.peek(b"k", h, 12).unwrap();
        assert_eq!((v.exptime, v.atime, v.bits & FETCHED), (100, 10, 0));
        assert_eq!(v.bits & (WIN_SENT | STALE), WIN_SENT | STALE);
        assert!(s.meta_access(b"k", h, 15, None, 0, STALE, true));
        let v = s.peek(b"k", h, 15).unwrap();
        assert_eq!((v.exptime, v.atime), (100, 15));
        assert_eq!(v.bits & (WIN_SENT | STALE | FETCHED), WIN_SENT | FETCHED);
        assert!(!s.meta_access(b"other", store.hash(b"other"), 15, None, 0, 0, true));
        // Expired items are gone for meta access too.
        assert!(!s.meta_access(b"k", h, 100, None, 0, 0, true));
    }
}
