//! Micro benchmarks of the ketama ring: building it and locating keys.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use ferrocache::cluster::ring::{Node, Ring};

fn ring(c: &mut Criterion) {
    let nodes: Vec<Node> = (0..10)
        .map(|i| Node::new(format!("10.0.0.{i}"), 11211))
        .collect();
    let mut g = c.benchmark_group("ring");
    g.bench_function("build_10_nodes", |b| {
        b.iter(|| Ring::new(black_box(&nodes)))
    });
    let r = Ring::new(&nodes);
    let keys: Vec<Vec<u8>> = (0..1024)
        .map(|i| format!("key:{i:030}").into_bytes())
        .collect();
    g.throughput(Throughput::Elements(1));
    let mut i = 0;
    g.bench_function("locate", |b| {
        b.iter(|| {
            i = (i + 1) & 1023;
            r.locate(black_box(&keys[i]))
        })
    });
    g.finish();
}

criterion_group!(benches, ring);
criterion_main!(benches);
