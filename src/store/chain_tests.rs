//! Owns: the unit tests of chained items — values around every chunk boundary, append and
//! prepend across them, eviction and page moves of chains, and a store never evicting the item
//! it changes.

use super::tests::{get, set};
use super::*;

/// A store of `mb` MB in one shard, chaining items above `chunk_max` bytes.
fn chained_store(mb: usize, chunk_max: usize) -> Store {
    Store::new(&StoreConfig {
        memory_limit: mb << 20,
        slab_chunk_max: chunk_max,
        shards: 1,
        ..StoreConfig::default()
    })
}

/// A value of `n` bytes that repeats nowhere within a chunk (so a misplaced part shows).
fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3] ^ seed)
        .collect()
}

fn check(s: &Store) {
    s.lock(0).check();
}

/// What one full body chunk holds in `s`.
fn body_cap(s: &Store, chunk_max: usize) -> usize {
    let c = s.classes();
    c.size(c.class_for(chunk_max).unwrap()) - item::BODY_DATA
}

#[test]
fn values_around_every_chunk_boundary_read_back() {
    let chunk_max = 16 << 10;
    let s = chained_store(64, chunk_max);
    let cap = body_cap(&s, chunk_max);
    let head = item::total_size(3, 0, 0);
    let mut sizes = vec![chunk_max - head - 1, chunk_max - head, chunk_max - head + 1];
    for n in 1..=5 {
        sizes.extend([n * cap - 1, n * cap, n * cap + 1]);
    }
    sizes.push((1 << 20) - 200);
    for (i, &n) in sizes.iter().enumerate() {
        let v = pattern(n, i as u8);
        assert!(
            matches!(
                set(&s, StoreMode::Set, b"key", &v, 0, 1),
                Ok(StoreOutcome::Stored(_))
            ),
            "{n} bytes"
        );
        assert!(get(&s, b"key", 1) == Some(v), "{n} bytes");
        check(&s);
    }
    // Too large for -I (1 MB): refused, and a set of an existing key removes it.
    assert_eq!(
        set(&s, StoreMode::Set, b"key", &vec![0; 1 << 20], 0, 1),
        Err(StoreError::TooLarge)
    );
    assert_eq!(get(&s, b"key", 1), None);
    check(&s);
}

#[test]
fn append_and_prepend_cross_boundaries() {
    let chunk_max = 4 << 10;
    let s = chained_store(16, chunk_max);
    let mut want = b"seed".to_vec();
    set(&s, StoreMode::Set, b"a", &want, 0, 1).unwrap();
    set(&s, StoreMode::Set, b"p", &want, 0, 1).unwrap();
    let mut front = want.clone();
    for i in 0..400u32 {
        let part = pattern(37 + (i as usize % 50), i as u8);
        let r = set(&s, StoreMode::Append(0), b"a", &part, 0, 1);
        assert!(
            matches!(r, Ok(StoreOutcome::Stored(_))),
            "append {i}: {r:?}"
        );
        assert!(matches!(
            set(&s, StoreMode::Prepend(0), b"p", &part, 0, 1),
            Ok(StoreOutcome::Stored(_))
        ));
        want.extend_from_slice(&part);
        front.splice(0..0, part.iter().copied());
        assert!(get(&s, b"a", 1).as_ref() == Some(&want), "append {i}");
        assert!(get(&s, b"p", 1).as_ref() == Some(&front), "prepend {i}");
    }
    check(&s);
    // A chained value appended to a chained value.
    let again = want.clone();
    set(&s, StoreMode::Append(0), b"a", &again, 0, 1).unwrap();
    want.extend_from_slice(&again);
    assert!(get(&s, b"a", 1) == Some(want));
    assert_eq!(
        s.lock(0).delete(b"a", s.hash(b"a"), 0, 1),
        DeleteOutcome::Deleted
    );
    check(&s);
}

#[test]
fn chains_are_evicted_whole() {
    let s = chained_store(8, 16 << 10);
    for i in 0..200u32 {
        let k = format!("big{i}");
        let last = pattern(100_000 + i as usize * 997, i as u8);
        assert!(matches!(
            set(&s, StoreMode::Set, k.as_bytes(), &last, 0, 1),
            Ok(StoreOutcome::Stored(_))
        ));
        assert!(get(&s, k.as_bytes(), 1).as_ref() == Some(&last), "{k}");
        let small = format!("small{i}");
        set(&s, StoreMode::Set, small.as_bytes(), b"x", 0, 1).unwrap();
        if i % 20 == 0 {
            check(&s);
        }
    }
    assert_eq!(get(&s, b"small199", 1).as_deref(), Some(&b"x"[..]));
    check(&s);
}

#[test]
fn an_append_never_evicts_the_item_it_changes() {
    // Memory full of big values, the appender among the oldest: every append needs new chunks
    // and evicts, never the item it changes.
    let s = chained_store(16, 16 << 10);
    let mut want = pattern(40_000, 1);
    set(&s, StoreMode::Set, b"appender", &want, 0, 1).unwrap();
    for i in 0..100u32 {
        let k = format!("filler{i}");
        set(
            &s,
            StoreMode::Set,
            k.as_bytes(),
            &pattern(300_000, i as u8),
            0,
            1,
        )
        .unwrap();
    }
    assert!(s.counters().curr_items < 101, "memory is full");
    for i in 0..200u32 {
        let part = pattern(1000, i as u8);
        let r = set(&s, StoreMode::Append(0), b"appender", &part, 0, 1);
        assert!(
            matches!(r, Ok(StoreOutcome::Stored(_))),
            "append {i}: {r:?}"
        );
        want.extend_from_slice(&part);
        assert!(get(&s, b"appender", 1).as_ref() == Some(&want), "read {i}");
    }
    check(&s);
}

#[test]
fn page_moves_rescue_body_chunks() {
    let chunk_max = 16 << 10;
    let s = chained_store(32, chunk_max);
    let vals: Vec<Vec<u8>> = (0..40).map(|i| pattern(100_000, i as u8)).collect();
    for (i, v) in vals.iter().enumerate() {
        set(&s, StoreMode::Set, format!("k{i}").as_bytes(), v, 0, 1).unwrap();
    }
    // Free half of them so that body chunks have somewhere to go.
    for i in (0..40).step_by(2) {
        let k = format!("k{i}");
        s.lock(0).delete(k.as_bytes(), s.hash(k.as_bytes()), 0, 1);
    }
    let body = s.classes().class_for(chunk_max).unwrap();
    let small = s.classes().class_for(100).unwrap();
    for _ in 0..3 {
        s.lock(0).move_page(body, small, 1);
        check(&s);
    }
    assert!(s.counters().slab_reassign_chunk_rescues > 0);
    for (i, v) in vals.iter().enumerate().skip(1).step_by(2) {
        let got = get(&s, format!("k{i}").as_bytes(), 1);
        assert!(got.is_none() || got.as_deref() == Some(&v[..]), "k{i}");
    }
}

#[test]
fn a_last_part_whose_class_cannot_evict_takes_a_full_body_chunk() {
    // memcached's t/getset.t pattern: values from 1 KB to 1 MB in 2 KB steps under -m 128. The
    // last parts of the chained ones land in ever bigger classes, each with its one page past
    // the limit soon holding nothing but last parts of items still HOT in the body class: their
    // own hand has nothing it may evict. As memcached does, such a last part takes a full body
    // chunk (evicting from the body class) rather than failing the store.
    let s = Store::new(&StoreConfig {
        memory_limit: 128 << 20,
        shards: 2,
        ..StoreConfig::default()
    });
    for n in (1024..(1 << 20) - 1024).step_by(2048) {
        let key = format!("foo_{n}");
        let v = pattern(n, n as u8);
        let r = set(&s, StoreMode::Set, key.as_bytes(), &v, 0, 1);
        assert!(matches!(r, Ok(StoreOutcome::Stored(_))), "{key}: {r:?}");
        assert!(get(&s, key.as_bytes(), 1) == Some(v), "{key}");
    }
    for shard in 0..2 {
        s.lock(shard).check();
    }
}
