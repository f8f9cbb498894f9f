//! Chunked large items: values larger than `slab_chunk_max` are stored in chains of chunks, as
//! memcached 1.6.18 stores them. The same bytes go to memcached and ferrocache and the replies
//! must match byte for byte: values around every chunk boundary (ferrocache's and memcached's,
//! whose chunk header is larger), appends and prepends across them, and `-I 64m`. Then what
//! only ferrocache is asked here: an append to an item read after every append never fails
//! while memory fills with big values (the store never evicts the item it changes).
//!
//! The oracle must be installed (`apt-get install -y memcached`); without it these tests fail.

mod common;
use common::*;
use std::io::Write;
use std::net::TcpStream;

/// Both daemons with the same arguments, one connection each.
struct Both {
    _mc: Server,
    _fc: Server,
    m: TcpStream,
    f: TcpStream,
}

fn both(args: &[&str]) -> Both {
    let (mc, m) = start_memcached(args);
    let fc = Server::start(args);
    let f = fc.connect();
    Both {
        _mc: mc,
        _fc: fc,
        m,
        f,
    }
}

impl Both {
    /// Sends `req` to both; the replies must be equal (shown shortened when not).
    fn same(&mut self, req: &[u8], label: &str) -> Vec<u8> {
        let a = exchange(&mut self.m, req);
        let b = exchange(&mut self.f, req);
        if a != b {
            let cut = |v: &[u8]| show(&v[..v.len().min(120)]);
            panic!(
                "{label}: memcached {} bytes {:?}..., ferrocache {} bytes {:?}...",
                a.len(),
                cut(&a),
                b.len(),
                cut(&b)
            );
        }
        b
    }
}

/// A value of `n` bytes that repeats nowhere within a chunk, so a misplaced part shows.
fn pattern(n: usize, seed: u32) -> Vec<u8> {
    (0..n as u32)
        .map(|i| b'a' + ((i.wrapping_mul(2_654_435_761) ^ seed) >> 27) as u8 % 26)
        .collect()
}

fn set_req(verb: &str, key: &str, v: &[u8]) -> Vec<u8> {
    let mut r = format!("{verb} {key} 0 0 {}\r\n", v.len()).into_bytes();
    r.extend_from_slice(v);
    r.extend_from_slice(b"\r\n");
    r
}

#[test]
fn values_around_every_chunk_boundary_match_memcached() {
    for chunk_max in [16 << 10, 512 << 10] {
        let arg = format!("slab_chunk_max={chunk_max}");
        let mut b = both(&["-m", "64", "-o", &arg]);
        let mut sizes = Vec::new();
        // Chain lengths of both daemons: full chunks hold chunk_max less a part header (24
        // bytes here, memcached's item_chunk more); the item itself has a header and key too.
        for n in 1..=3usize {
            for hdr in [0usize, 24, 48, 56, 80, 96] {
                let at = n * (chunk_max - hdr);
                sizes.extend([at - 1, at, at + 1]);
            }
        }
        sizes.retain(|&s| s < 1_000_000);
        for (i, &n) in sizes.iter().enumerate() {
            let v = pattern(n, i as u32);
            let label = format!("slab_chunk_max {chunk_max}, {n} bytes");
            b.same(&set_req("set", "k", &v), &label);
            let got = b.same(b"get k\r\n", &label);
            assert!(
                got.windows(v.len()).any(|w| w == v),
                "{label}: value read back"
            );
        }
    }
}

#[test]
fn append_and_prepend_across_boundaries_match_memcached() {
    let mut b = both(&["-m", "64", "-o", "slab_chunk_max=4096"]);
    b.same(&set_req("set", "a", b"seed"), "seed a");
    b.same(&set_req("set", "p", b"seed"), "seed p");
    for i in 0..120u32 {
        let part = pattern(97 + (i as usize * 37) % 400, i);
        b.same(&set_req("append", "a", &part), "append");
        b.same(&set_req("prepend", "p", &part), "prepend");
        b.same(b"get a p\r\n", &format!("read after step {i}"));
    }
    // A chained value appended and prepended to a chained value.
    let long = pattern(20_000, 7);
    b.same(&set_req("append", "a", &long), "append chained");
    b.same(&set_req("prepend", "p", &long), "prepend chained");
    b.same(b"get a p\r\n", "read chained");
}

#[test]
fn dash_i_64m_stores_a_64_mb_item() {
    let mut b = both(&["-m", "256", "-I", "64m"]);
    let v = pattern(60 << 20, 3);
    b.same(&set_req("set", "huge", &v), "set 60 MB");
    let got = b.same(b"get huge\r\n", "get 60 MB");
    assert_eq!(
        got.len(),
        v.len() + "VALUE huge 0 62914560\r\n\r\nEND\r\n".len()
    );
    // Over the limit: refused by both alike.
    let over = vec![b'x'; (64 << 20) + 1];
    b.same(&set_req("set", "over", &over), "set over -I");
    b.same(b"get huge over\r\n", "after refusal");
}

#[test]
fn start_up_refuses_bad_chunk_sizes_as_memcached() {
    for args in [
        &["-I", "256k"][..],
        &["-I", "1000k"],
        &["-o", "slab_chunk_max=1000"],
        &["-I", "2m", "-o", "slab_chunk_max=3145728"],
    ] {
        let run = |bin: &str| {
            std::process::Command::new(bin)
                .args(["-u", "root", "-p", "0", "-U", "0"])
                .args(args)
                .output()
                .expect("run")
        };
        let m = run("memcached");
        let f = run(env!("CARGO_BIN_EXE_ferrocache"));
        assert_eq!(f.status.code(), m.status.code(), "{args:?}: exit code");
        assert_eq!(
            show(&f.stderr).lines().next(),
            show(&m.stderr).lines().next(),
            "{args:?}: message"
        );
    }
}

#[test]
fn appends_to_an_item_read_after_each_never_fail_once_memory_is_full_of_big_values() {
    // As memcached's t/chunked-items.t: memory first fills with big values, then one item is
    // appended to and read back many times; each append needs new chunks and evicts, never the
    // item it changes (nor does the maintainer, paying back pages taken past the limit). Three
    // daemons at once: the maintainer's timing against the requests is what varies, and the
    // loss showed under load.
    let runs: Vec<_> = (0..3)
        .map(|_| std::thread::spawn(append_and_read_back))
        .collect();
    for r in runs {
        r.join().unwrap();
    }
}

fn append_and_read_back() {
    let s = Server::start(&["-m", "48", "-o", "slab_chunk_max=16384"]);
    let mut c = s.connect();
    let big = vec![b'b'; 700 << 10];
    for i in 0..100u32 {
        let r = exchange(&mut c, &set_req("set", &format!("big{i}"), &big));
        assert_eq!(r, b"STORED\r\n", "big {i}");
    }
    let mut want = b"seedstring".to_vec();
    assert_eq!(
        exchange(&mut c, &set_req("set", "appender", &want)),
        b"STORED\r\n"
    );
    for i in 0..2000u32 {
        let part = pattern(30 + i as usize % 50, i);
        let r = exchange(&mut c, &set_req("append", "appender", &part));
        assert_eq!(show(&r), "STORED\r\n", "append {i}");
        want.extend_from_slice(&part);
        let got = exchange(&mut c, b"get appender\r\n");
        let head = format!("VALUE appender 0 {}\r\n", want.len());
        assert!(
            got.starts_with(head.as_bytes()) && got[head.len()..].starts_with(&want),
            "read {i}"
        );
    }
    c.write_all(b"quit\r\n").unwrap();
}

#[test]
fn the_item_size_limit_counts_an_item_as_memcached_does() {
    // memcached counts its 48-byte header, the key and a NUL, 4 bytes of flags when not 0, the
    // value and its CRLF, and 8 bytes of CAS (none with -C) against -I; ferrocache's items are
    // smaller, but the same sizes must pass and fail: text, meta and an append's result.
    for args in [&["-I", "1m"][..], &["-I", "1m", "-C"]] {
        let mut b = both(args);
        let cas = if args.contains(&"-C") { 0 } else { 8 };
        let key = "boundary";
        for flags in [0u32, 7] {
            let fit = (1 << 20) - 48 - (key.len() + 1) - if flags != 0 { 4 } else { 0 } - 2 - cas;
            for vlen in [fit - 1, fit, fit + 1] {
                let v = pattern(vlen, vlen as u32);
                let mut set = format!("set {key} {flags} 0 {vlen}\r\n").into_bytes();
                set.extend_from_slice(&v);
                set.extend_from_slice(b"\r\n");
                b.same(&set, &format!("{args:?} set {vlen} flags {flags}"));
                b.same(
                    b"mg boundary s f\r\n",
                    &format!("{args:?} after set {vlen}"),
                );
                let mut ms = format!("ms {key} {vlen} F{flags} T0\r\n").into_bytes();
                ms.extend_from_slice(&v);
                ms.extend_from_slice(b"\r\n");
                b.same(&ms, &format!("{args:?} ms {vlen} flags {flags}"));
                b.same(b"mg boundary s f\r\n", &format!("{args:?} after ms {vlen}"));
            }
        }
        // An append whose result would pass the limit by one byte, then one that fits exactly.
        let fit = (1 << 20) - 48 - (key.len() + 1) - 2 - cas;
        b.same(&set_req("set", key, &pattern(fit - 10, 1)), "seed");
        b.same(&set_req("append", key, &pattern(11, 2)), "append over");
        b.same(b"mg boundary s\r\n", "after append over");
        b.same(
            &set_req("append", key, &pattern(10, 3)),
            "append to the limit",
        );
        b.same(b"mg boundary s\r\n", "after append to the limit");
    }
}
