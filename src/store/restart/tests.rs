//! Owns: unit tests of the warm restart's store side: the metadata's round trip and refusals,
//! the checksum, a save and restore through memory (chained items, times, CAS, segments, another
//! shard count), and restores of damaged bytes that never panic and never serve a wrong value.

use super::*;
use crate::store::item;
use crate::store::tests::{get, set};
use crate::store::*;

fn store(mb: usize, shards: usize) -> Store {
    Store::new(&StoreConfig {
        memory_limit: mb << 20,
        shards,
        ..StoreConfig::default()
    })
}

/// A save of `s` held in memory: its metadata and its pages' bytes.
fn save(s: &Store) -> (Meta, Vec<(PageRecord, Vec<u8>)>) {
    let mut meta = s.meta_template(Layout::of(&StoreConfig::default()));
    meta.started_unix = 1_000;
    meta.saved_now = 100;
    let mut pages = Vec::new();
    let mut end = DATA_HEADER;
    s.save_pages(|shard, slot, cs, bytes| {
        let r = PageRecord::of(shard, slot, cs, end, bytes);
        end += r.len;
        pages.push((r, bytes.to_vec()));
        Ok::<(), ()>(())
    })
    .unwrap();
    meta.data_len = end;
    meta.pages = pages.iter().map(|(r, _)| *r).collect();
    (meta, pages)
}

/// Restores a save into `s` as `server::restart` does: pages failing their checks are left out.
fn restore(
    s: &Store,
    meta: &Meta,
    pages: &[(PageRecord, Vec<u8>)],
    clocks: Clocks,
) -> RestoreReport {
    let mut report = RestoreReport::default();
    for shard in 0..meta.shards {
        let mut image = ShardImage::default();
        for (r, b) in pages.iter().filter(|(r, _)| r.shard == shard) {
            if meta.page_ok(r, b) {
                image.add(r.slot, r.chunk_size as usize, b);
            } else {
                report.bad_pages += 1;
            }
        }
        s.restore_shard(meta, &image, clocks, &mut report);
    }
    s.finish_restore(meta, &mut report);
    report
}

fn item(s: &Store, k: &[u8], now: u32) -> Option<(Vec<u8>, u32, u64, u32, u8)> {
    let h = s.hash(k);
    let mut g = s.lock(h);
    g.get(k, h, now, Recency::Keep)
        .ok()
        .map(|v| (v.value.to_vec(), v.flags, v.cas, v.exptime, v.bits))
}

fn value_of(i: usize) -> Vec<u8> {
    let len = match i % 5 {
        0 => 0,
        1 => 10,
        2 => 300,
        3 => 5000,
        _ => 600_000 + i,
    };
    (0..len).map(|j| (i + j) as u8).collect()
}

/// A restart in the second the store was saved from, 60 seconds after it started.
const SAME_START: Clocks = Clocks {
    old_started: 1_000,
    new_started: 1_000,
    now: 60,
};

fn filled(shards: usize) -> Store {
    let s = store(64, shards);
    for i in 0..200 {
        let k = format!("key{i}");
        let h = s.hash(k.as_bytes());
        let req = StoreRequest {
            mode: StoreMode::Set,
            key: k.as_bytes(),
            hash: h,
            flags: i as u32 * 7,
            exptime: if i % 3 == 0 { 0 } else { 100 + i as u32 },
            value: &value_of(i),
        };
        s.lock(h).store(req, 50).unwrap();
    }
    s
}

#[test]
fn meta_round_trip_and_refusals() {
    let s = filled(1);
    let (meta, _) = save(&s);
    let text = meta.encode();
    assert_eq!(Meta::parse(text.as_bytes()), Ok(meta.clone()));
    assert_eq!(Meta::parse(b""), Err(MetaError::Empty));
    // Every flipped byte and every truncation is refused.
    for at in 0..text.len() {
        let mut b = text.clone().into_bytes();
        b[at] ^= 0x04;
        assert!(Meta::parse(&b).is_err(), "flip at {at}");
        assert!(Meta::parse(&text.as_bytes()[..at]).is_err(), "cut at {at}");
    }
    let other = text.replacen(
        &format!("ferrocache-memory-file {FORMAT}"),
        "ferrocache-memory-file 1",
        1,
    );
    assert!(matches!(
        Meta::parse(other.as_bytes()),
        Err(MetaError::Version(_))
    ));
    let mut bigger = Layout::of(&StoreConfig::default());
    bigger.memory_limit *= 2;
    let why = bigger.differs(&meta.layout).unwrap();
    assert!(why.contains("-m"), "{why}");
    assert_eq!(meta.layout.differs(&meta.layout), None);
}

#[test]
fn checksum_sees_every_flipped_bit() {
    let bytes: Vec<u8> = (0..1000u32).map(|i| (i * 31) as u8).collect();
    let sum = checksum(&bytes);
    for at in (0..bytes.len()).step_by(7) {
        for bit in 0..8 {
            let mut b = bytes.clone();
            b[at] ^= 1 << bit;
            assert_ne!(checksum(&b), sum);
        }
    }
    assert_ne!(checksum(&bytes[..999]), sum);
}

#[test]
fn save_and_restore_keep_every_item_across_shard_counts() {
    for (from, to) in [(1, 1), (1, 4), (4, 2)] {
        let s = filled(from);
        let (meta, pages) = save(&s);
        let t = store(64, to);
        // The new process started 10 s after the old one.
        let clocks = Clocks {
            old_started: 1_000,
            new_started: 1_010,
            now: 95,
        };
        let r = restore(&t, &meta, &pages, clocks);
        assert_eq!(r.invalid + r.not_stored + r.bad_pages, 0, "{r:?}");
        for i in 0..200 {
            let k = format!("key{i}");
            let old = item(&s, k.as_bytes(), 50).unwrap();
            let exp = if i % 3 == 0 { 0 } else { 100 + i as u32 };
            let moved = exp.saturating_sub(10);
            match item(&t, k.as_bytes(), 95) {
                Some((v, f, cas, e, _)) => {
                    assert_eq!((v, f, cas), (old.0, old.1, old.2), "{k}");
                    assert_eq!(e, if exp == 0 { 0 } else { moved });
                }
                // Expired while down: 100 + i - 10 <= 95.
                None => assert!(exp != 0 && moved <= 95, "{k} lost"),
            }
        }
        assert!(r.expired > 0);
        // New CAS values come after every restored one.
        let Ok(StoreOutcome::Stored(cas)) = set(&t, StoreMode::Set, b"new", b"x", 0, 95) else {
            panic!("store after restore")
        };
        assert!(cas > s.shared().current_cas());
        for shard in t.shards.iter() {
            shard.lock().check();
        }
    }
}

#[test]
fn segments_marks_and_flush_survive() {
    let s = filled(1);
    assert!(get(&s, b"key3", 50).is_some());
    assert!(get(&s, b"key3", 50).is_some());
    let (meta, pages) = save(&s);
    let before = item(&s, b"key3", 50).unwrap().4;
    let t = store(64, 1);
    restore(&t, &meta, &pages, SAME_START);
    assert_eq!(item(&t, b"key3", 60).unwrap().4, before);
    assert!(before & (item::FETCHED | item::ACTIVE) != 0);
    // A flush before the save: nothing comes back.
    s.flush();
    let (meta, pages) = save(&s);
    let u = store(64, 1);
    let r = restore(&u, &meta, &pages, SAME_START);
    assert_eq!((r.restored, r.expired), (0, 200));
}

#[test]
fn damaged_pages_never_panic_nor_serve_wrong_values() {
    let s = filled(2);
    let (meta, pages) = save(&s);
    let mut seed = 0x1234_5678_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..12 {
        // Damage bytes, with the checksums recomputed (as if the damage were written by the
        // saving process): decoding must stay in bounds whatever it meets.
        let mut damaged = pages.clone();
        for _ in 0..50 {
            let p = (next() % damaged.len() as u64) as usize;
            let b = &mut damaged[p].1;
            if !b.is_empty() {
                let at = (next() % b.len() as u64) as usize;
                b[at] = next() as u8;
            }
        }
        for (r, b) in damaged.iter_mut() {
            r.sum = checksum(b);
        }
        let t = store(64, 1 + round % 3);
        restore(&t, &meta, &damaged, SAME_START);
        // Damage the checksummed way: whole pages are dropped, the rest is exact.
        let mut flipped = pages.clone();
        let p = (next() % flipped.len() as u64) as usize;
        if !flipped[p].1.is_empty() {
            let at = (next() % flipped[p].1.len() as u64) as usize;
            flipped[p].1[at] ^= 0x20;
        }
        let u = store(64, 1);
        let r = restore(&u, &meta, &flipped, SAME_START);
        assert!(r.bad_pages <= 1);
        for i in 0..200 {
            let k = format!("key{i}");
            if let Some(got) = item(&u, k.as_bytes(), 60) {
                let old = item(&s, k.as_bytes(), 50).unwrap();
                assert_eq!((got.0, got.1, got.2), (old.0, old.1, old.2), "{k}");
            }
        }
    }
}

/// A save of `s` with a copy of its first page of shard 0 added as a page of the last shard:
/// every unchained item of that page is saved twice (what only a damaged save holds).
fn save_with_a_page_twice(s: &Store) -> (Meta, Vec<(PageRecord, Vec<u8>)>) {
    let (mut meta, mut pages) = save(s);
    // The page of shard 0 with the smallest chunks: it holds items of its own (a page of a
    // large class may hold only the body chunks or last parts of chained items, whose copy
    // restores nothing).
    let (first, bytes) = pages
        .iter()
        .filter(|(r, _)| r.shard == 0)
        .min_by_key(|(r, _)| r.chunk_size)
        .unwrap()
        .clone();
    let copy = PageRecord {
        shard: meta.shards - 1,
        slot: 1000,
        offset: meta.data_len,
        ..first
    };
    meta.data_len += copy.len;
    meta.pages.push(copy);
    pages.push((copy, bytes));
    (meta, pages)
}

#[test]
fn a_key_saved_twice_is_restored_once() {
    let s = filled(2);
    let (meta, pages) = save(&s);
    let once = restore(&store(64, 2), &meta, &pages, SAME_START);
    let (meta, pages) = save_with_a_page_twice(&s);
    for shards in [1, 2, 4] {
        let t = store(64, shards);
        let r = restore(&t, &meta, &pages, SAME_START);
        assert_eq!(r.restored, once.restored, "{shards} shards: {r:?}");
        assert!(r.not_stored > 0, "{r:?}");
        for shard in t.shards.iter() {
            shard.lock().check();
        }
        for i in 0..200 {
            let k = format!("key{i}");
            if let Some(old) = item(&s, k.as_bytes(), 60) {
                let got = item(&t, k.as_bytes(), 60).unwrap();
                assert_eq!((got.0, got.1, got.2), (old.0, old.1, old.2), "{k}");
            }
        }
        // Deleting a restored key removes it for good (one index entry each).
        let h = t.hash(b"key1");
        assert_eq!(t.lock(h).delete(b"key1", h, 0, 60), DeleteOutcome::Deleted);
        assert!(item(&t, b"key1", 60).is_none());
    }
}

#[test]
fn a_restore_into_less_memory_evicts_and_stays_exact() {
    // 64 MB of 1 KB items (and a page saved twice) restored into 8 MB: the restore evicts
    // while items it stored are not yet indexed.
    let s = store(64, 4);
    let value = |i: usize| vec![b'a' + (i % 26) as u8; 1000 + i % 7];
    for i in 0..40_000 {
        let k = format!("k{i}");
        let Ok(StoreOutcome::Stored(_)) = set(&s, StoreMode::Set, k.as_bytes(), &value(i), 0, 50)
        else {
            panic!("store {k}")
        };
    }
    let (meta, pages) = save_with_a_page_twice(&s);
    for shards in [1, 2] {
        let t = store(8, shards);
        let r = restore(&t, &meta, &pages, SAME_START);
        assert!(r.restored > 1000, "{r:?}");
        let evicted: u64 = t.class_stats(60).iter().map(|c| c.evicted).sum();
        assert!(evicted > 0, "{r:?}");
        for shard in t.shards.iter() {
            shard.lock().check();
        }
        let mut found = 0;
        for i in 0..40_000 {
            let k = format!("k{i}");
            if let Some(got) = item(&t, k.as_bytes(), 60) {
                assert_eq!(got.0, value(i), "{k}");
                found += 1;
            }
        }
        assert!(found > 1000 && found < 40_000, "{found}");
    }
}
