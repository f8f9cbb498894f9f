//! Micro benchmarks of the protocol parsers.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use ferrocache::protocol::parse_ascii as parse;
use ferrocache::protocol::Limits;

fn text(c: &mut Criterion) {
    let lim = Limits::default();
    let mut g = c.benchmark_group("text_parse");
    g.throughput(Throughput::Elements(1));
    let get = b"get key:00000000000000000000000012345\r\n".to_vec();
    g.bench_function("get", |b| b.iter(|| parse(black_box(&get), &lim)));
    let mut set = b"set key:00000000000000000000000012345 0 0 100\r\n".to_vec();
    set.extend(std::iter::repeat_n(b'v', 100));
    set.extend_from_slice(b"\r\n");
    g.bench_function("set_100b", |b| b.iter(|| parse(black_box(&set), &lim)));
    let multi: Vec<u8> = {
        let keys: String = (0..10).map(|i| format!(" key:{i:030}")).collect();
        format!("get{keys}\r\n").into_bytes()
    };
    g.bench_function("get_10_keys", |b| b.iter(|| parse(black_box(&multi), &lim)));
    g.finish();
}

fn meta(c: &mut Criterion) {
    use ferrocache::protocol::ascii::Command;
    use ferrocache::protocol::meta::parse_meta;
    let lim = Limits::default();
    let mut g = c.benchmark_group("meta_parse");
    g.throughput(Throughput::Elements(1));
    let mg = b"mg key:00000000000000000000000012345 v f t c k O123\r\n".to_vec();
    g.bench_function("mg_frame_and_flags", |b| {
        b.iter(|| match parse(black_box(&mg), &lim) {
            Ok(ferrocache::protocol::Parsed::Complete(Command::Meta { tokens, data }, _)) => {
                black_box(parse_meta(tokens, data).is_ok())
            }
            _ => false,
        })
    });
    let mut ms = b"ms key:00000000000000000000000012345 100 T0 F5 c\r\n".to_vec();
    ms.extend(std::iter::repeat_n(b'v', 100));
    ms.extend_from_slice(b"\r\n");
    g.bench_function("ms_100b", |b| {
        b.iter(|| match parse(black_box(&ms), &lim) {
            Ok(ferrocache::protocol::Parsed::Complete(Command::Meta { tokens, data }, _)) => {
                black_box(parse_meta(tokens, data).is_ok())
            }
            _ => false,
        })
    });
    g.finish();
}

fn binary(c: &mut Criterion) {
    use ferrocache::protocol::binary::{op, parse as bparse, request};
    let lim = Limits::default();
    let mut g = c.benchmark_group("binary_parse");
    g.throughput(Throughput::Elements(1));
    let get = request(
        op::GETK,
        7,
        0,
        &[],
        b"key:00000000000000000000000012345",
        &[],
    );
    g.bench_function("getk", |b| b.iter(|| bparse(black_box(&get), &lim)));
    let set = request(
        op::SET,
        7,
        0,
        &[0, 0, 0, 5, 0, 0, 0, 0],
        b"key:00000000000000000000000012345",
        &[b'v'; 100],
    );
    g.bench_function("set_100b", |b| b.iter(|| bparse(black_box(&set), &lim)));
    g.finish();
}

criterion_group!(benches, text, meta, binary);
criterion_main!(benches);
