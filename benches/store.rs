//! Micro benchmarks of the store: get hit/miss, set, and set with eviction.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use ferrocache::store::{Recency, Store, StoreConfig, StoreMode, StoreRequest};

fn keys(n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("key:{i:028}").into_bytes())
        .collect()
}

fn set<'a>(key: &'a [u8], hash: u64, value: &'a [u8]) -> StoreRequest<'a> {
    StoreRequest {
        mode: StoreMode::Set,
        key,
        hash,
        flags: 0,
        exptime: 0,
        value,
    }
}

fn store(c: &mut Criterion) {
    let mut g = c.benchmark_group("store");
    g.throughput(Throughput::Elements(1));
    let s = Store::new(&StoreConfig {
        memory_limit: 256 << 20,
        ..StoreConfig::default()
    });
    let ks = keys(100_000);
    let v = vec![b'v'; 100];
    for k in &ks {
        let h = s.hash(k);
        s.lock(h).store(set(k, h, &v), 10).unwrap();
    }
    let mut i = 0usize;
    g.bench_function("get_hit", |b| {
        b.iter(|| {
            i = (i + 7919) % ks.len();
            let k = &ks[i];
            let h = s.hash(k);
            let mut sh = s.lock(h);
            black_box(sh.get(k, h, 10, Recency::Bump).map(|v| v.value.len()).ok())
        })
    });
    let miss = b"missing-key-000000000000000000".to_vec();
    g.bench_function("get_miss", |b| {
        b.iter(|| {
            let h = s.hash(&miss);
            black_box(s.lock(h).get(&miss, h, 10, Recency::Bump).is_ok())
        })
    });
    g.bench_function("set_overwrite", |b| {
        b.iter(|| {
            i = (i + 7919) % ks.len();
            let k = &ks[i];
            let h = s.hash(k);
            black_box(s.lock(h).store(set(k, h, &v), 10).is_ok())
        })
    });
    let small = Store::new(&StoreConfig {
        memory_limit: 4 << 20,
        ..StoreConfig::default()
    });
    let many = keys(200_000);
    g.bench_function("set_with_eviction", |b| {
        b.iter(|| {
            i = (i + 1) % many.len();
            let k = &many[i];
            let h = small.hash(k);
            black_box(small.lock(h).store(set(k, h, &v), 10).is_ok())
        })
    });
    g.finish();
}

criterion_group!(benches, store);
criterion_main!(benches);
