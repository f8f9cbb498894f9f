//! The memory model under pressure: with a small `-m` and values from tens of bytes to hundreds
//! of KB written in rounds, the newest item of every size reads back (a cache may evict, but
//! not the item just written ahead of older ones); and with `-M` a full cache refuses every
//! further store, whichever key it names.

mod common;
use common::*;

/// Value sizes spanning small, middle and page-sized classes.
const SIZES: [usize; 9] = [
    20, 100, 700, 3_000, 20_000, 70_000, 200_000, 400_000, 900_000,
];

fn set(c: &mut std::net::TcpStream, key: &str, size: usize, fill: u8) -> String {
    let mut req = format!("set {key} 0 0 {size}\r\n").into_bytes();
    req.extend(std::iter::repeat_n(fill, size));
    req.extend_from_slice(b"\r\n");
    show(&exchange(c, &req))
}

#[test]
fn newest_item_of_every_size_survives_rounds() {
    for m in ["2", "4", "8"] {
        let srv = Server::start(&["-m", m]);
        let mut c = srv.connect();
        for round in 0..12 {
            // Each round writes several items of every size, sizes interleaved.
            for i in 0..4 {
                for (s, &size) in SIZES.iter().enumerate() {
                    let key = format!("r{round}:s{s}:{i}");
                    let fill = b'a' + ((round * 4 + i) % 26) as u8;
                    assert_eq!(set(&mut c, &key, size, fill), "STORED\r\n", "-m {m} {key}");
                }
            }
            for (s, &size) in SIZES.iter().enumerate() {
                let key = format!("r{round}:s{s}:3");
                let fill = b'a' + ((round * 4 + 3) % 26) as u8;
                let out = exchange(&mut c, format!("get {key}\r\n").as_bytes());
                let mut want = format!("VALUE {key} 0 {size}\r\n").into_bytes();
                want.extend(std::iter::repeat_n(fill, size));
                want.extend_from_slice(b"\r\nEND\r\n");
                assert!(
                    out == want,
                    "-m {m}: the newest {size}-byte item {key} did not read back: {:?}",
                    show(&out[..out.len().min(80)])
                );
            }
        }
    }
}

/// Under `-M` the cache is one: once a store fails for lack of memory, a store of another key
/// of the same size fails too (no part of the cache still has room).
#[test]
fn without_evictions_a_full_cache_refuses_every_key() {
    let srv = Server::start(&["-M", "-m", "2"]);
    let mut c = srv.connect();
    let mut n = 0;
    while set(&mut c, &format!("dash{n}"), 8192, b'B') == "STORED\r\n" {
        n += 1;
        assert!(n < 10_000, "never ran out of memory");
    }
    for k in n + 1..n + 40 {
        let r = set(&mut c, &format!("dash{k}"), 8192, b'B');
        assert_eq!(
            r, "SERVER_ERROR out of memory storing object\r\n",
            "dash{k}"
        );
    }
    for k in 0..n {
        let out = show(&exchange(&mut c, format!("mg dash{k}\r\n").as_bytes()));
        assert_eq!(out, "HD\r\n", "dash{k} was stored and must stay");
    }
}
