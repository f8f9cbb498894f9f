//! Owns: the store's unit tests — semantics, expiry, eviction, rebalancing, and a model check
//! against a map.

use super::*;
use proptest::prelude::*;

pub(super) fn store(mb: usize) -> Store {
    Store::new(&StoreConfig {
        memory_limit: mb << 20,
        shards: 1,
        ..StoreConfig::default()
    })
}

/// `store`, but `-M`: a full store answers out of memory instead of evicting.
pub(super) fn store_without_evictions(mb: usize) -> Store {
    Store::new(&StoreConfig {
        memory_limit: mb << 20,
        shards: 1,
        evictions: false,
        ..StoreConfig::default()
    })
}

pub(super) fn set(
    s: &Store,
    mode: StoreMode,
    k: &[u8],
    v: &[u8],
    exp: u32,
    now: u32,
) -> Result<StoreOutcome, StoreError> {
    let h = s.hash(k);
    s.lock(h).store(
        StoreRequest {
            mode,
            key: k,
            hash: h,
            flags: 0,
            exptime: exp,
            value: v,
        },
        now,
    )
}

pub(super) fn get(s: &Store, k: &[u8], now: u32) -> Option<Vec<u8>> {
    let h = s.hash(k);
    let mut g = s.lock(h);
    g.get(k, h, now, Recency::Bump)
        .ok()
        .map(|v| v.value.to_vec())
}

#[test]
fn set_get_modes() {
    let s = store(8);
    assert!(matches!(
        set(&s, StoreMode::Set, b"a", b"1", 0, 5),
        Ok(StoreOutcome::Stored(_))
    ));
    assert_eq!(get(&s, b"a", 5).as_deref(), Some(&b"1"[..]));
    assert_eq!(
        set(&s, StoreMode::Add, b"a", b"2", 0, 5),
        Ok(StoreOutcome::NotStored)
    );
    assert_eq!(
        set(&s, StoreMode::Replace, b"b", b"2", 0, 5),
        Ok(StoreOutcome::NotStored)
    );
    assert_eq!(
        set(&s, StoreMode::Append(0), b"b", b"2", 0, 5),
        Ok(StoreOutcome::NotStored)
    );
    set(&s, StoreMode::Append(0), b"a", b"xy", 0, 5).unwrap();
    set(&s, StoreMode::Prepend(0), b"a", b"<", 0, 5).unwrap();
    assert_eq!(get(&s, b"a", 5).as_deref(), Some(&b"<1xy"[..]));
    let h = s.hash(b"a");
    let cas = s.lock(h).get(b"a", h, 5, Recency::Keep).unwrap().cas;
    assert_eq!(
        set(&s, StoreMode::Cas(cas + 100), b"a", b"z", 0, 5),
        Ok(StoreOutcome::Exists)
    );
    assert!(
        matches!(set(&s, StoreMode::Cas(cas), b"a", b"z", 0, 5), Ok(StoreOutcome::Stored(c)) if c > cas)
    );
    assert_eq!(
        set(&s, StoreMode::Cas(1), b"nope", b"z", 0, 5),
        Ok(StoreOutcome::NotFound)
    );
    assert_eq!(s.lock(h).delete(b"a", h, 0, 5), DeleteOutcome::Deleted);
    assert_eq!(s.lock(h).delete(b"a", h, 0, 5), DeleteOutcome::NotFound);
    s.lock(h).check();
}

#[test]
fn too_large_deletes_old_value_on_set() {
    let s = store(8);
    set(&s, StoreMode::Set, b"k", b"old", 0, 5).unwrap();
    let big = vec![b'x'; 1 << 20];
    assert_eq!(
        set(&s, StoreMode::Set, b"k", &big, 0, 5),
        Err(StoreError::TooLarge)
    );
    assert_eq!(get(&s, b"k", 5), None);
    let fits = vec![b'x'; (1 << 20) - 100];
    assert!(set(&s, StoreMode::Set, b"k", &fits, 0, 5).is_ok());
    assert_eq!(get(&s, b"k", 5).map(|v| v.len()), Some(fits.len()));
}

#[test]
fn arith_wrap_clamp_and_padding() {
    let s = store(8);
    let h = s.hash(b"n");
    set(&s, StoreMode::Set, b"n", b"18446744073709551615", 0, 5).unwrap();
    assert!(matches!(
        s.lock(h).arith(b"n", h, ArithOp::Incr, 1, 0, 5),
        Ok(ArithOutcome::Value(0, _))
    ));
    assert_eq!(get(&s, b"n", 5).unwrap(), b"0                   ".to_vec());
    set(&s, StoreMode::Set, b"n", b"100", 0, 5).unwrap();
    assert!(matches!(
        s.lock(h).arith(b"n", h, ArithOp::Decr, 1, 0, 5),
        Ok(ArithOutcome::Value(99, _))
    ));
    assert_eq!(get(&s, b"n", 5).unwrap(), b"99 ".to_vec());
    assert!(matches!(
        s.lock(h).arith(b"n", h, ArithOp::Decr, 1000, 0, 5),
        Ok(ArithOutcome::Value(0, _))
    ));
    set(&s, StoreMode::Set, b"n", b"9", 0, 5).unwrap();
    assert!(matches!(
        s.lock(h).arith(b"n", h, ArithOp::Incr, 1, 0, 5),
        Ok(ArithOutcome::Value(10, _))
    ));
    assert_eq!(get(&s, b"n", 5).unwrap(), b"10".to_vec());
    set(&s, StoreMode::Set, b"n", b"abc", 0, 5).unwrap();
    assert_eq!(
        s.lock(h).arith(b"n", h, ArithOp::Incr, 1, 0, 5),
        Ok(ArithOutcome::NonNumeric)
    );
    assert_eq!(
        s.lock(h)
            .arith(b"zz", s.hash(b"zz"), ArithOp::Incr, 1, 0, 5),
        Ok(ArithOutcome::NotFound)
    );
}

#[test]
fn expiry_and_flush() {
    let s = store(8);
    set(&s, StoreMode::Set, b"t", b"v", 10, 5).unwrap();
    assert!(get(&s, b"t", 9).is_some());
    assert!(get(&s, b"t", 10).is_none());
    let h = s.hash(b"t");
    set(&s, StoreMode::Set, b"t", b"v", 0, 5).unwrap();
    s.flush();
    assert_eq!(
        s.lock(h).get(b"t", h, 5, Recency::Bump).err(),
        Some(Miss::Flushed)
    );
    set(&s, StoreMode::Set, b"t", b"v", 0, 5).unwrap();
    assert!(get(&s, b"t", 5).is_some());
    s.lock(h).check();
}

#[test]
fn crawler_reclaims_expired() {
    let s = store(8);
    for i in 0..100u32 {
        set(&s, StoreMode::Set, format!("k{i}").as_bytes(), b"v", 10, 5).unwrap();
    }
    assert_eq!(s.counters().curr_items, 100);
    for _ in 0..10 {
        s.maintain(25_001, 100_000, 20);
    }
    assert_eq!(s.counters().curr_items, 0);
    // Freed by the crawler, or by the balancing pass that meets them first (as memcached's LRU
    // maintainer counts `reclaimed`).
    let reclaimed: u64 = s
        .class_stats(20)
        .iter()
        .map(|c| c.crawler_reclaimed + c.reclaimed)
        .sum();
    assert_eq!(reclaimed, 100);
}

#[test]
fn eviction_keeps_memory_bounded_and_prefers_recent_reads() {
    let s = store(2);
    let v = vec![b'v'; 1000];
    // Hot keys are read twice after each round of writes; cold ones never.
    for i in 0..20_000u32 {
        set(&s, StoreMode::Set, format!("key{i}").as_bytes(), &v, 0, 5).unwrap();
        if i % 50 == 0 {
            for h in 0..20u32 {
                let _ = get(&s, format!("hot{h}").as_bytes(), 5);
                let _ = get(&s, format!("hot{h}").as_bytes(), 5);
                if get(&s, format!("hot{h}").as_bytes(), 5).is_none() {
                    set(&s, StoreMode::Set, format!("hot{h}").as_bytes(), &v, 0, 5).unwrap();
                }
            }
        }
        if i % 1000 == 0 {
            s.maintain(251, 1000, 5);
        }
    }
    assert!(s.shared().budget.used() <= 2 + 1);
    let evicted: u64 = s.class_stats(5).iter().map(|c| c.evicted).sum();
    assert!(evicted > 10_000);
    let hot_alive = (0..20u32)
        .filter(|h| get(&s, format!("hot{h}").as_bytes(), 5).is_some())
        .count();
    let cold_alive = (0..1000u32)
        .filter(|i| get(&s, format!("key{i}").as_bytes(), 5).is_some())
        .count();
    assert_eq!(hot_alive, 20);
    assert_eq!(cold_alive, 0);
    let h = s.hash(b"x");
    s.lock(h).check();
}

#[test]
fn shifting_sizes_rebalance_pages() {
    let s = store(4);
    let small = vec![b's'; 100];
    for i in 0..100_000u32 {
        set(&s, StoreMode::Set, format!("s{i}").as_bytes(), &small, 0, 5).unwrap();
    }
    // Now only large values: they must be storable, taking pages from the small class.
    let large = vec![b'L'; 100_000];
    for i in 0..100u32 {
        assert!(set(&s, StoreMode::Set, format!("L{i}").as_bytes(), &large, 0, 6).is_ok());
        s.automove(6);
    }
    assert!(get(&s, b"L99", 6).is_some());
    assert!(s.counters().slabs_moved > 0);
    let h = s.hash(b"x");
    s.lock(h).check();
}

#[test]
fn no_evictions_mode_errors() {
    let s = store_without_evictions(2);
    let v = vec![b'v'; 50_000];
    let mut oom = 0;
    for i in 0..200u32 {
        if set(&s, StoreMode::Set, format!("k{i}").as_bytes(), &v, 0, 5)
            == Err(StoreError::OutOfMemory)
        {
            oom += 1;
        }
    }
    assert!(oom > 100);
    assert!(get(&s, b"k0", 5).is_some());
}

/// A class without pages takes its first page past the limit (memcached's rule), so a full cache
/// still stores an item of a new size; `maintain` pays the page back from a class with more
/// than one page, never taking a class's only page.
#[test]
fn first_page_of_a_class_past_the_limit_is_paid_back() {
    let s = store(4);
    let small = vec![b's'; 100];
    let mut n = 0u32;
    while s.shared().budget.used() < 4 {
        set(&s, StoreMode::Set, format!("s{n}").as_bytes(), &small, 0, 5).unwrap();
        n += 1;
    }
    // Memory is full of small items: a 50 KB value still gets its class's first page.
    let big = vec![b'b'; 50_000];
    assert!(matches!(
        set(&s, StoreMode::Set, b"big", &big, 0, 5),
        Ok(StoreOutcome::Stored(_))
    ));
    assert_eq!(s.shared().budget.used(), 5);
    for _ in 0..4 {
        s.maintain(0, 0, 5);
    }
    assert_eq!(s.shared().budget.used(), 4);
    assert_eq!(get(&s, b"big", 5), Some(big.clone()));
    assert!(get(&s, format!("s{}", n - 1).as_bytes(), 5).is_some());
    // One small class page left and the big class's page: neither is taken back.
    let all = Store::new(&StoreConfig {
        memory_limit: 1 << 20,
        shards: 1,
        ..StoreConfig::default()
    });
    for (i, size) in [10usize, 1000, 10_000, 100_000].into_iter().enumerate() {
        let v = vec![b'x'; size];
        set(&all, StoreMode::Set, format!("k{i}").as_bytes(), &v, 0, 5).unwrap();
    }
    assert_eq!(all.shared().budget.used(), 4);
    all.maintain(0, 0, 5);
    assert_eq!(all.shared().budget.used(), 4);
    for i in 0..4 {
        assert!(get(&all, format!("k{i}").as_bytes(), 5).is_some());
    }
    let h = all.hash(b"x");
    all.lock(h).check();
}

#[test]
fn memlimit_shrink_releases_pages() {
    let s = store(16);
    let v = vec![b'v'; 1000];
    for i in 0..15_000u32 {
        set(&s, StoreMode::Set, format!("k{i}").as_bytes(), &v, 0, 5).unwrap();
    }
    assert!(s.shared().budget.used() > 8);
    s.set_memory_limit(8 << 20);
    for _ in 0..10 {
        s.maintain(251, 1000, 5);
    }
    assert!(s.shared().budget.used() <= 8);
    let h = s.hash(b"x");
    s.lock(h).check();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    /// With evictions impossible (ample memory), the store behaves like a map.
    #[test]
    fn behaves_like_a_map(ops in proptest::collection::vec((0u8..5, 0u8..20, proptest::collection::vec(any::<u8>(), 0..300)), 1..200)) {
        let s = store(64);
        let mut model = std::collections::HashMap::<Vec<u8>, Vec<u8>>::new();
        for (op, k, v) in ops {
            let key = format!("key{k}").into_bytes();
            let h = s.hash(&key);
            match op {
                0 => { set(&s, StoreMode::Set, &key, &v, 0, 5).unwrap(); model.insert(key, v); }
                1 => { let r = set(&s, StoreMode::Add, &key, &v, 0, 5).unwrap();
                       if let std::collections::hash_map::Entry::Vacant(e) = model.entry(key) { prop_assert!(matches!(r, StoreOutcome::Stored(_))); e.insert(v); } else { prop_assert_eq!(r, StoreOutcome::NotStored); } }
                2 => { let r = set(&s, StoreMode::Append(0), &key, &v, 0, 5).unwrap();
                       if let Some(old) = model.get_mut(&key) { prop_assert!(matches!(r, StoreOutcome::Stored(_))); old.extend_from_slice(&v); } else { prop_assert_eq!(r, StoreOutcome::NotStored); } }
                3 => { let r = s.lock(h).delete(&key, h, 0, 5);
                       prop_assert_eq!(r == DeleteOutcome::Deleted, model.remove(&key).is_some()); }
                _ => { prop_assert_eq!(get(&s, &key, 5), model.get(&key).cloned()); }
            }
        }
        s.lock(0).check();
    }
}

/// A replace (or append, prepend, cas) never evicts the item it changes, even when that item
/// is the one the hand would evict next: it is stored, and another item goes.
#[test]
fn store_never_evicts_the_item_it_changes() {
    // One 1 MB page: fill its class so that the oldest item is the one replaced next.
    let s = store(1);
    let v = vec![b'v'; 100];
    let mut n = 0u32;
    // Fill until the first eviction: key 0 is then gone, key 1 is the LRU tail.
    while get_peek(&s, b"k0").is_some() || n == 0 {
        set(&s, StoreMode::Set, format!("k{n}").as_bytes(), &v, 0, 5).unwrap();
        n += 1;
        assert!(n < 100_000, "no eviction");
    }
    // The class is full; k1 is the coldest item. Replacing it needs a new chunk first.
    assert!(get_peek(&s, b"k1").is_some());
    // Each request keeps the item in its class (a class without pages would take its first
    // page past the limit instead of evicting).
    for (mode, add) in [
        (StoreMode::Replace, &v[..]),
        (StoreMode::Append(0), &v[..1]),
    ] {
        // Takes the chunk a previous round gave back, so the class is full.
        set(&s, StoreMode::Set, format!("k{n}").as_bytes(), &v, 0, 5).unwrap();
        n += 1;
        let tail = (1..n)
            .map(|i| format!("k{i}"))
            .find(|k| get_peek(&s, k.as_bytes()).is_some())
            .unwrap();
        let r = set(&s, mode, tail.as_bytes(), add, 0, 5).unwrap();
        assert!(matches!(r, StoreOutcome::Stored(_)), "{mode:?} of the tail");
        assert!(get_peek(&s, tail.as_bytes()).is_some());
    }
    s.lock(0).check();
}

fn get_peek(s: &Store, k: &[u8]) -> Option<Vec<u8>> {
    let h = s.hash(k);
    let mut g = s.lock(h);
    g.peek(k, h, 5).ok().map(|v| v.value.to_vec())
}

/// Append and prepend with a CAS store only over that CAS; 0 means any.
#[test]
fn append_prepend_honour_cas() {
    let s = store(8);
    let Ok(StoreOutcome::Stored(cas)) = set(&s, StoreMode::Set, b"a", b"1", 0, 5) else {
        panic!("set")
    };
    assert_eq!(
        set(&s, StoreMode::Append(cas + 1), b"a", b"x", 0, 5),
        Ok(StoreOutcome::Exists)
    );
    assert_eq!(get(&s, b"a", 5).as_deref(), Some(&b"1"[..]));
    let Ok(StoreOutcome::Stored(cas)) = set(&s, StoreMode::Append(cas), b"a", b"2", 0, 5) else {
        panic!("append with the right cas")
    };
    assert!(matches!(
        set(&s, StoreMode::Prepend(cas), b"a", b"0", 0, 5),
        Ok(StoreOutcome::Stored(_))
    ));
    assert!(matches!(
        set(&s, StoreMode::Append(0), b"a", b"3", 0, 5),
        Ok(StoreOutcome::Stored(_))
    ));
    assert_eq!(get(&s, b"a", 5).as_deref(), Some(&b"0123"[..]));
    assert_eq!(
        set(&s, StoreMode::Prepend(7), b"missing", b"x", 0, 5),
        Ok(StoreOutcome::NotStored)
    );
}

/// Without evictions (`-M`), a full class of expired items keeps taking new items: each store
/// reuses an expired chunk found ahead of the eviction hand, and the hand moves past it, so fresh
/// items never block the way to the expired ones.
#[test]
fn expired_items_are_reused_without_evictions_or_crawler() {
    let s = store_without_evictions(1);
    let v = vec![b'v'; 100];
    let mut n = 0u32;
    while set(&s, StoreMode::Set, format!("old{n}").as_bytes(), &v, 10, 5).is_ok() {
        n += 1;
        assert!(n < 100_000, "never full");
    }
    assert!(n > 1000);
    // Everything stored expires at 10; at 20 every new store must find an expired chunk.
    for i in 0..n {
        let r = set(&s, StoreMode::Set, format!("new{i}").as_bytes(), &v, 0, 20);
        assert!(r.is_ok(), "store {i} of {n}: {r:?}");
    }
    assert_eq!(s.counters().curr_items, u64::from(n));
    let h = s.hash(b"x");
    s.lock(h).check();
}

/// Ages in `stats items` and the automover's look ahead stay cheap on a class emptied by a flush.
#[test]
fn class_stats_of_an_emptied_class() {
    let s = store(8);
    let v = vec![b'v'; 10];
    for i in 0..50_000u32 {
        set(&s, StoreMode::Set, format!("k{i}").as_bytes(), &v, 0, 5).unwrap();
    }
    s.flush();
    for _ in 0..100 {
        s.maintain(513, 1 << 20, 6);
    }
    assert_eq!(s.counters().curr_items, 0);
    let stats = s.class_stats(7);
    assert!(stats.iter().all(|c| c.age == 0 && c.number() == 0));
}

/// The crawler walks only when it can find something: items with an expiry time, or items
/// older than a flush no pass has covered yet.
#[test]
fn crawler_walks_only_when_items_can_expire_or_were_flushed() {
    let s = store(8);
    let v = vec![b'v'; 10];
    for i in 0..1000u32 {
        set(&s, StoreMode::Set, format!("k{i}").as_bytes(), &v, 0, 5).unwrap();
    }
    let checked = |s: &Store| -> u64 {
        s.class_stats(6)
            .iter()
            .map(|c| c.crawler_items_checked)
            .sum()
    };
    s.maintain(0, 100_000, 6);
    assert_eq!(checked(&s), 0, "nothing can expire: no walk");
    // A flush: the next pass reclaims everything, then the crawler rests again.
    s.flush();
    s.maintain(0, 100_000, 6);
    assert_eq!(s.counters().curr_items, 0);
    let after_flush = checked(&s);
    s.maintain(0, 100_000, 6);
    assert_eq!(checked(&s), after_flush);
    // An item with a TTL, and one touched to get one: both found by the crawler once expired.
    set(&s, StoreMode::Set, b"ttl", &v, 10, 6).unwrap();
    set(&s, StoreMode::Set, b"touched", &v, 0, 6).unwrap();
    let h = s.hash(b"touched");
    assert!(s.lock(h).touch(b"touched", h, 10, 6).is_ok());
    s.maintain(0, 100_000, 20);
    assert_eq!(s.counters().curr_items, 0);
    let h = s.hash(b"x");
    s.lock(h).check();
}

/// With the default 64 MB and four threads, a few hundred items of sizes spread over many
/// classes all fit: the classes stay few enough for every shard to give each a page (finer
/// classes are used only when memory is ample).
#[test]
fn small_memory_keeps_varied_sizes_without_evicting() {
    let s = Store::new(&StoreConfig {
        memory_limit: 64 << 20,
        threads: 4,
        ..StoreConfig::default()
    });
    for i in 0..500usize {
        let v = vec![b'v'; 10 + (i * 7919) % 2990];
        set(
            &s,
            StoreMode::Set,
            format!("key:{i:028}").as_bytes(),
            &v,
            0,
            5,
        )
        .unwrap();
    }
    let evicted: u64 = s.class_stats(5).iter().map(|c| c.evicted).sum();
    assert_eq!(evicted, 0);
    assert_eq!(s.counters().curr_items, 500);
    // Ample memory gets the 8-byte steps.
    let big = Store::new(&StoreConfig {
        memory_limit: 4096 << 20,
        threads: 2,
        ..StoreConfig::default()
    });
    assert_eq!(big.classes().size(1) - big.classes().size(0), 8);
}

/// With the TEMP segment on, an item with a short TTL is never evicted, however many longer
/// lived items of its class push through; it goes once it expires.
#[test]
fn temporary_items_are_not_evicted() {
    let s = Store::new(&StoreConfig {
        memory_limit: 1 << 20,
        shards: 1,
        temp_lru: true,
        temporary_ttl: 61,
        ..StoreConfig::default()
    });
    let v = vec![b'v'; 50_000];
    set(&s, StoreMode::Set, b"canary", &v, 5 + 30, 5).unwrap();
    for i in 0..200u32 {
        set(
            &s,
            StoreMode::Set,
            format!("k{i}").as_bytes(),
            &v,
            5 + 3600,
            5,
        )
        .unwrap();
    }
    let stats = s.class_stats(6);
    assert!(stats.iter().map(|c| c.evicted).sum::<u64>() > 100);
    assert_eq!(stats.iter().map(|c| c.number_temp).sum::<u64>(), 1);
    assert_eq!(get(&s, b"canary", 6), Some(v.clone()));
    assert_eq!(get(&s, b"canary", 5 + 31), None);
    let h = s.hash(b"x");
    s.lock(h).check();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]
    /// The `stats sizes` histogram kept by links and unlinks always equals a fresh count of the
    /// linked items: across sets of every size (chained ones too), appends, deletes, expiry,
    /// flushes, the maintainer's reclaims and evictions under a small memory limit.
    #[test]
    fn tracked_sizes_match_a_fresh_count(ops in proptest::collection::vec((0u8..7, 0u8..40, 0usize..5, any::<u16>()), 1..150)) {
        let s = Store::new(&StoreConfig {
            memory_limit: 4 << 20,
            shards: 2,
            ..StoreConfig::default()
        });
        s.track_sizes(true);
        let mut now = 5;
        for (op, k, size, n) in ops {
            let key = format!("key{k}").into_bytes();
            let len = [1, 90, 2_000, 40_000, 300_000][size] + usize::from(n % 64);
            let h = s.hash(&key);
            match op {
                0 | 1 => { let _ = set(&s, StoreMode::Set, &key, &vec![b'v'; len], u32::from(n % 3) * (now + 1), now); }
                2 => { let _ = set(&s, StoreMode::Append(0), &key, &vec![b'a'; len / 3], 0, now); }
                3 => { let _ = s.lock(h).delete(&key, h, 0, now); }
                4 => now += 1,
                5 => { s.maintain(251, 1000, now); }
                _ => if n % 8 == 0 { s.flush() },
            }
        }
        let kept = s.sizes().expect("tracking");
        s.track_sizes(false);
        prop_assert!(s.sizes().is_none());
        s.track_sizes(true);
        prop_assert_eq!(kept, s.sizes().expect("tracking"));
        s.lock(0).check();
    }
}
