//! Owns: unit tests of reply pins (`Store::pin`): a pinned value reads back as it was while
//! its key is replaced, deleted, expired, flushed, evicted or its page would move; a model check
//! with pins held across random operations.

use super::tests::{get, set, store, store_without_evictions};
use super::*;
use proptest::prelude::*;

fn pin(s: &Store, k: &[u8], now: u32) -> Pin {
    let h = s.hash(k);
    let mut shard = s.lock(h);
    assert!(
        shard.get(k, h, now, Recency::Bump).is_ok(),
        "pinning a missing key"
    );
    s.pin(&mut shard, k, h).expect("pinned")
}

/// Reads a pinned value in pieces of `step` bytes, as a connection sends it.
fn read_all(s: &Store, p: &Pin, step: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while out.len() < p.len() {
        let from = out.len();
        assert!(s.read_pinned(p, from, step, &mut out) > 0);
    }
    out
}

fn value(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| seed.wrapping_add((i % 251) as u8))
        .collect()
}

fn check(s: &Store) {
    s.lock(0).check();
}

fn free_chunks(s: &Store) -> usize {
    s.class_stats(5)
        .iter()
        .map(|c| c.free_chunks as usize)
        .sum()
}

/// Replace, delete, expiry, flush, append and incr while a reply is halfway through: the rest
/// of the value is the one pinned; the chunks are freed with the last pin, not before.
#[test]
fn pinned_value_survives_every_change_of_its_key() {
    for len in [20_000usize, 600_000, 1_000_000] {
        type Change = fn(&Store, &[u8]);
        let changes: [(&str, Change); 6] = [
            ("replace", |s, k| {
                set(s, StoreMode::Set, k, &value(9, 700_000), 0, 5).unwrap();
            }),
            ("delete", |s, k| {
                let h = s.hash(k);
                assert_eq!(s.lock(h).delete(k, h, 0, 5), DeleteOutcome::Deleted);
            }),
            ("flush", |s, k| {
                s.flush();
                assert_eq!(get(s, k, 5), None);
            }),
            ("expiry", |s, k| {
                let h = s.hash(k);
                assert!(s.lock(h).touch(k, h, 6, 5).is_ok());
                assert_eq!(get(s, k, 7), None);
            }),
            ("append", |s, k| {
                set(s, StoreMode::Append(0), k, b"tail", 0, 5).unwrap();
            }),
            ("small replace", |s, k| {
                set(s, StoreMode::Set, k, b"1", 0, 5).unwrap();
            }),
        ];
        for (what, change) in changes {
            let s = store(8);
            let v = value(1, len);
            set(&s, StoreMode::Set, b"k", &v, 0, 5).unwrap();
            let free = free_chunks(&s);
            let p = pin(&s, b"k", 5);
            let mut got = Vec::new();
            s.read_pinned(&p, 0, len / 2, &mut got);
            change(&s, b"k");
            check(&s);
            // Store more values of the same sizes: none takes the pinned chunks.
            for i in 0..6 {
                set(
                    &s,
                    StoreMode::Set,
                    format!("o{i}").as_bytes(),
                    &value(7, len),
                    0,
                    5,
                )
                .unwrap();
            }
            check(&s);
            while got.len() < len {
                let from = got.len();
                s.read_pinned(&p, from, 10_000, &mut got);
            }
            assert!(got == v, "{what} {len}: the pinned value changed");
            s.unpin(p);
            check(&s);
            for i in 0..6 {
                let h = s.hash(format!("o{i}").as_bytes());
                s.lock(h).delete(format!("o{i}").as_bytes(), h, 0, 5);
            }
            let h = s.hash(b"k");
            s.lock(h).delete(b"k", h, 0, 5);
            check(&s);
            assert!(free_chunks(&s) >= free, "{what} {len}: chunks not freed");
        }
    }
}

/// Two pins of one item: the chunks stay until both are back.
#[test]
fn two_pins_of_one_item() {
    let s = store(8);
    let v = value(3, 300_000);
    set(&s, StoreMode::Set, b"k", &v, 0, 5).unwrap();
    let (a, b) = (pin(&s, b"k", 5), pin(&s, b"k", 5));
    set(&s, StoreMode::Set, b"k", b"new", 0, 5).unwrap();
    s.unpin(a);
    check(&s);
    for i in 0..20 {
        set(
            &s,
            StoreMode::Set,
            format!("o{i}").as_bytes(),
            &value(4, 300_000),
            0,
            5,
        )
        .unwrap();
    }
    assert!(read_all(&s, &b, 4096) == v);
    s.unpin(b);
    check(&s);
    assert_eq!(get(&s, b"k", 5).as_deref(), Some(&b"new"[..]));
}

/// Under memory pressure the hand passes pinned items (memcached skips referenced ones) and
/// counts them (`lrutail_reflocked`): they stay readable and in the cache, and memory stays
/// within the limit.
#[test]
fn pinned_items_are_not_evicted() {
    let s = store(4);
    let vals: Vec<Vec<u8>> = (0..3).map(|i| value(i, 200_000)).collect();
    let mut pins = Vec::new();
    for (i, v) in vals.iter().enumerate() {
        set(&s, StoreMode::Set, format!("p{i}").as_bytes(), v, 0, 5).unwrap();
        pins.push(pin(&s, format!("p{i}").as_bytes(), 5));
    }
    for i in 0..200u32 {
        set(
            &s,
            StoreMode::Set,
            format!("o{i}").as_bytes(),
            &value(9, 200_000),
            0,
            5,
        )
        .unwrap();
        if i % 20 == 0 {
            s.maintain(251, 1000, 5);
            check(&s);
        }
    }
    let stats = s.class_stats(5);
    assert!(stats.iter().map(|c| c.evicted).sum::<u64>() > 100);
    // Each pass of the hand over a pinned item is counted, as memcached counts referenced
    // items at an LRU tail.
    assert!(stats.iter().map(|c| c.lrutail_reflocked).sum::<u64>() >= 3);
    assert!(s.shared().budget.used() <= 4 + 1);
    for (i, (p, v)) in pins.iter().zip(&vals).enumerate() {
        assert!(read_all(&s, p, 65_536) == *v);
        assert_eq!(get(&s, format!("p{i}").as_bytes(), 5).as_ref(), Some(v));
    }
    for p in pins {
        s.unpin(p);
    }
    check(&s);
}

/// Page moves (automove, `slabs reassign`, a shrinking memory limit) take no page holding a
/// pinned item, linked or not.
#[test]
fn pages_holding_pinned_items_do_not_move() {
    let s = store(4);
    let small = value(5, 20_000);
    let mut pins = Vec::new();
    for i in 0..150u32 {
        let k = format!("s{i}");
        set(&s, StoreMode::Set, k.as_bytes(), &small, 0, 5).unwrap();
        if i % 10 == 0 {
            pins.push(pin(&s, k.as_bytes(), 5));
            if i % 20 == 0 {
                // Unlinked and pinned.
                let h = s.hash(k.as_bytes());
                s.lock(h).delete(k.as_bytes(), h, 0, 5);
            }
        }
    }
    let cls = s.class_id_for(b"s0", small.len(), 0) as usize - 1;
    let large = value(6, 100_000);
    for i in 0..60u32 {
        set(&s, StoreMode::Set, format!("L{i}").as_bytes(), &large, 0, 6).unwrap();
        s.automove(6);
        s.reassign(Some(cls), None, 6);
        check(&s);
    }
    s.set_memory_limit(2 << 20);
    for _ in 0..10 {
        s.maintain(251, 1000, 6);
    }
    check(&s);
    for p in &pins {
        assert!(read_all(&s, p, 7000) == small);
    }
    for p in pins {
        s.unpin(p);
    }
    check(&s);
}

/// incr on a pinned value gives the key a new item: the pinned bytes do not change.
#[test]
fn incr_never_changes_a_pinned_value_in_place() {
    let s = store(8);
    let mut v = b"12".to_vec();
    v.resize(20_000, b' ');
    set(&s, StoreMode::Set, b"n", &v, 0, 5).unwrap();
    let p = pin(&s, b"n", 5);
    let h = s.hash(b"n");
    let r = s.lock(h).arith(b"n", h, ArithOp::Incr, 1, 0, 5);
    assert!(matches!(r, Ok(ArithOutcome::Value(13, _))));
    assert!(read_all(&s, &p, 5000) == v);
    s.unpin(p);
    assert_eq!(get(&s, b"n", 5).as_deref(), Some(&b"13"[..]));
    check(&s);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    /// Random sets, deletes, flushes and gets, with pins taken and given back among them, in a
    /// small memory (evicting): every pinned value reads back as it was when pinned, and the
    /// shard stays consistent; once every pin is back, the memory is reusable.
    #[test]
    fn pins_hold_values_across_random_operations(ops in proptest::collection::vec((0u8..7, 0u8..8, 1usize..700_000, any::<u8>()), 1..80)) {
        let s = store(4);
        let mut pins: Vec<(Pin, Vec<u8>, usize)> = Vec::new();
        for (op, k, len, seed) in ops {
            let key = format!("key{k}").into_bytes();
            let h = s.hash(&key);
            match op {
                0 | 1 => { let _ = set(&s, StoreMode::Set, &key, &value(seed, len), 0, 5); }
                2 => { s.lock(h).delete(&key, h, 0, 5); }
                3 => {
                    let mut shard = s.lock(h);
                    let v = shard.get(&key, h, 5, Recency::Bump).ok().map(|v| v.value.to_vec());
                    if let Some(v) = v {
                        let p = s.pin(&mut shard, &key, h).unwrap();
                        prop_assert_eq!(p.len(), v.len());
                        pins.push((p, v, 0));
                    }
                }
                4 if !pins.is_empty() => {
                    // Send a piece of one reply; give the pin back once all is sent.
                    let i = usize::from(seed) % pins.len();
                    let (p, v, sent) = &mut pins[i];
                    let mut piece = Vec::new();
                    let n = s.read_pinned(p, *sent, len % 70_000 + 1, &mut piece);
                    prop_assert_eq!(&piece[..], &v[*sent..*sent + n]);
                    *sent += n;
                    if *sent == v.len() {
                        let (p, _, _) = pins.swap_remove(i);
                        s.unpin(p);
                    }
                }
                5 => { if seed % 8 == 0 { s.flush(); } }
                _ => { s.maintain(251, 1000, 5); s.automove(5); }
            }
            s.lock(0).check();
        }
        for (p, v, _) in pins {
            let all = read_all(&s, &p, 100_000);
            prop_assert!(all == v);
            s.unpin(p);
        }
        s.lock(0).check();
        // Every chunk is reusable again: fill the memory with values that need them.
        for i in 0..40u32 {
            let k = format!("f{i}");
            prop_assert!(set(&s, StoreMode::Set, k.as_bytes(), &value(1, 300_000), 0, 5).is_ok());
        }
        s.lock(0).check();
    }
}

/// incr whose result needs a new item (the value is pinned, or the result is longer) and finds
/// no memory: memcached answers out of memory and the key keeps its value; it was unlinked.
#[test]
fn incr_out_of_memory_keeps_the_value() {
    let s = store_without_evictions(2);
    let mut big = b"12".to_vec();
    big.resize(20_000, b' ');
    set(&s, StoreMode::Set, b"n", &big, 0, 5).unwrap();
    set(&s, StoreMode::Set, b"m", b"9999", 0, 5).unwrap();
    // Fill the memory with items of the class the new values need.
    let mut i = 0u32;
    while set(&s, StoreMode::Set, format!("f{i}").as_bytes(), b"1", 0, 5).is_ok() {
        i += 1;
        assert!(i < 1_000_000, "memory never filled");
    }
    assert!(set(&s, StoreMode::Set, b"y", b"10000", 0, 5).is_err());
    let p = pin(&s, b"n", 5);
    for (k, v) in [(&b"n"[..], &big[..]), (b"m", b"9999")] {
        let h = s.hash(k);
        let r = s.lock(h).arith(k, h, ArithOp::Incr, 1, 0, 5);
        assert_eq!(r, Err(StoreError::OutOfMemory));
        let kept = get(&s, k, 5);
        assert!(
            kept.as_deref() == Some(v),
            "{} lost",
            String::from_utf8_lossy(k)
        );
    }
    assert!(read_all(&s, &p, 5000) == big);
    s.unpin(p);
    check(&s);
}
