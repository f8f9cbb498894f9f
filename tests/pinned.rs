//! Replies that send large values from the store a piece at a time (`server::pinned`): a
//! client reading its replies slowly gets exactly the value its get found while other clients
//! replace, delete, flush and evict the key and move its pages, and the get behind it (not run
//! until those replies are mostly read) sees what the changes left.
mod common;
use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const LEN: usize = 900_000;
/// Gets pipelined by the slow client: about 11 MB of replies.
const GETS: usize = 12;

/// A value whose bytes say which version it is and where they are.
fn value(tag: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| b'a' + ((i / 7 + usize::from(tag) * 5) % 26) as u8)
        .collect()
}

fn set(c: &mut TcpStream, key: &str, v: &[u8]) {
    let mut req = format!("set {key} 0 0 {}\r\n", v.len()).into_bytes();
    req.extend_from_slice(v);
    req.extend_from_slice(b"\r\n");
    assert_eq!(show(&exchange(c, &req)), "STORED\r\n", "set {key}");
}

/// A client with a small receive buffer: the server cannot push much of a reply into it.
fn slow_client(srv: &Server) -> TcpStream {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.set_recv_buffer_size(4096).unwrap();
    s.connect(&srv.addr.into()).unwrap();
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

fn read_exact(s: &mut TcpStream, n: usize) -> Vec<u8> {
    let mut b = vec![0; n];
    s.read_exact(&mut b).unwrap();
    b
}

/// One reply to `get big`: its value and `END`, or `END` alone; `head` is what was read of it.
fn read_reply(s: &mut TcpStream, head: Option<Vec<u8>>) -> Vec<u8> {
    let mut r = head.unwrap_or_default();
    while !r.ends_with(b"\r\n") {
        r.extend(read_exact(s, 1));
    }
    if r != b"END\r\n" {
        r.extend(read_exact(s, LEN + 7));
    }
    r
}

fn value_reply(v: &[u8]) -> Vec<u8> {
    let mut want = format!("VALUE big 0 {}\r\n", v.len()).into_bytes();
    want.extend_from_slice(v);
    want.extend_from_slice(b"\r\nEND\r\n");
    want
}

/// The class `stats slabs` shows for chunks of `size` bytes.
fn class_of_chunk(c: &mut TcpStream, size: usize) -> Option<u32> {
    let stats = show(&exchange(c, b"stats slabs\r\n"));
    stats.lines().find_map(|l| {
        let (cls, rest) = l.strip_prefix("STAT ")?.split_once(':')?;
        (rest == format!("chunk_size {size}")).then(|| cls.parse().ok())?
    })
}

#[test]
fn a_slow_reader_gets_the_value_its_get_found() {
    let srv = Server::start(&["-m", "24", "-t", "2"]);
    let mut c = srv.connect();
    let a = value(1, LEN);
    let b = value(2, LEN);
    type Change = fn(&mut TcpStream, &[u8]);
    let cases: [(&str, Change, Option<u8>); 6] = [
        ("replace", |c, b| set(c, "big", b), Some(2)),
        (
            "delete",
            |c, _| assert_eq!(show(&exchange(c, b"delete big\r\n")), "DELETED\r\n"),
            None,
        ),
        (
            "flush_all",
            |c, _| assert_eq!(show(&exchange(c, b"flush_all\r\n")), "OK\r\n"),
            None,
        ),
        (
            "append",
            |c, _| {
                let r = exchange(c, b"append big 0 0 1\r\nz\r\n");
                assert_eq!(show(&r), "STORED\r\n");
                set(c, "big", &value(2, LEN));
            },
            Some(2),
        ),
        (
            // Memory fills with other values: the pinned item is passed by the evictions.
            "evictions",
            |c, _| {
                for i in 0..60 {
                    set(c, &format!("other{i}"), &value(3, LEN));
                }
            },
            Some(1),
        ),
        (
            // Pages of the value's classes are asked to move while it is pinned.
            "page moves",
            |c, _| {
                for i in 0..20 {
                    set(c, &format!("other{i}"), &value(3, LEN));
                }
                let cls = class_of_chunk(c, 524288).expect("the body class");
                for _ in 0..10 {
                    let r = show(&exchange(
                        c,
                        format!("slabs reassign {cls} 0\r\n").as_bytes(),
                    ));
                    assert!(
                        ["OK\r\n", "BUSY\r\n", "NOSPARE\r\n"].contains(&r.as_str()),
                        "{r}"
                    );
                    for i in 20..24 {
                        set(c, &format!("other{i}"), &value(4, 20_000));
                    }
                }
            },
            Some(1),
        ),
    ];
    for (what, change, after) in cases {
        set(&mut c, "big", &a);
        let mut slow = slow_client(&srv);
        // More replies than the sockets' buffers take (the server's send buffer grows to a few
        // MB): the gets past them wait until the client reads, holding their values pinned.
        slow.write_all(&b"get big\r\n".repeat(GETS)).unwrap();
        // The first get ran once its value's line arrives.
        let line = format!("VALUE big 0 {LEN}\r\n");
        assert_eq!(show(&read_exact(&mut slow, line.len())), line, "{what}");
        change(&mut c, &b);
        let mut replies = vec![read_reply(&mut slow, Some(line.into_bytes()))];
        for _ in 1..GETS {
            replies.push(read_reply(&mut slow, None));
        }
        let before = value_reply(&a);
        let after = match after {
            Some(tag) => value_reply(&value(tag, LEN)),
            None => b"END\r\n".to_vec(),
        };
        // Each reply is whole: the value when its get ran, before the change or after it.
        let changed = replies.iter().position(|r| *r != before).unwrap_or(GETS);
        assert!(changed > 0, "{what}: the first reply changed");
        assert!(
            changed < GETS || after == before,
            "{what}: no get ran after the change"
        );
        for (i, r) in replies[changed..].iter().enumerate() {
            assert!(
                *r == after,
                "{what}: reply {} is {}",
                changed + i,
                show(&r[..r.len().min(40)])
            );
        }
        slow.write_all(b"mn\r\n").unwrap();
        assert_eq!(show(&read_until_mn(&mut slow)), "", "{what}");
    }
    let own = show(&exchange(&mut c, b"stats ferrocache\r\n"));
    let pinned: u64 = own
        .lines()
        .find_map(|l| l.strip_prefix("STAT ferrocache_pinned_values "))
        .and_then(|v| v.trim().parse().ok())
        .expect("ferrocache_pinned_values");
    assert!(pinned >= 6 * 6, "{own}");
}

/// A multi-key get of large values, a `gets`, a `gat`, meta `mg` and a binary GET, read
/// slowly: every value arrives whole and in order, small values between them copied as before.
#[test]
fn pinned_and_copied_values_interleave_in_order() {
    let srv = Server::start(&["-t", "2"]);
    let mut c = srv.connect();
    let vals: Vec<Vec<u8>> = (0..4u8)
        .map(|i| value(i, [100, 40_000, 5, 700_000][usize::from(i)]))
        .collect();
    for (i, v) in vals.iter().enumerate() {
        set(&mut c, &format!("k{i}"), v);
    }
    let mut slow = slow_client(&srv);
    slow.write_all(b"get k0 k1 k2 k3 k1\r\ngets k3\r\ngat 0 k1\r\n")
        .unwrap();
    let mut want = Vec::new();
    for i in [0usize, 1, 2, 3, 1] {
        want.extend(format!("VALUE k{i} 0 {}\r\n", vals[i].len()).into_bytes());
        want.extend_from_slice(&vals[i]);
        want.extend_from_slice(b"\r\n");
    }
    want.extend_from_slice(b"END\r\n");
    let got = read_exact(&mut slow, want.len());
    assert!(got == want, "multi-get");
    let mut line = Vec::new();
    while !line.ends_with(b"\r\n") {
        line.extend(read_exact(&mut slow, 1));
    }
    assert!(
        show(&line).starts_with("VALUE k3 0 700000 "),
        "{}",
        show(&line)
    );
    let rest = read_exact(&mut slow, 700_000 + 7);
    assert!(rest[..700_000] == vals[3][..] && rest.ends_with(b"\r\nEND\r\n"));
    let mut want = format!("VALUE k1 0 {}\r\n", vals[1].len()).into_bytes();
    want.extend_from_slice(&vals[1]);
    want.extend_from_slice(b"\r\nEND\r\n");
    assert!(read_exact(&mut slow, want.len()) == want, "gat");
    // Meta and binary gets pin large values the same way.
    slow.write_all(b"mg k3 v f k\r\nmg k1 v\r\nmg k0 v\r\nmn\r\n")
        .unwrap();
    let mut want = b"VA 700000 f0 kk3\r\n".to_vec();
    for (i, v) in [(3usize, "VA 40000\r\n"), (1, "VA 100\r\n"), (0, "MN\r\n")] {
        want.extend_from_slice(&vals[i]);
        want.extend_from_slice(b"\r\n");
        want.extend_from_slice(v.as_bytes());
    }
    assert!(read_exact(&mut slow, want.len()) == want, "mg");
    let mut bin = slow_client(&srv);
    // GET k3, then a no-op: the header, flags, value, then the no-op's header.
    let mut req = vec![0x80, 0x00, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2];
    req.extend_from_slice(&[0; 12]);
    req.extend_from_slice(b"k3");
    req.extend_from_slice(&[0x80, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    req.extend_from_slice(&[0; 12]);
    bin.write_all(&req).unwrap();
    let got = read_exact(&mut bin, 24 + 4 + vals[3].len() + 24);
    assert_eq!(&got[..2], &[0x81, 0x00]);
    assert_eq!(&got[8..12], &(4 + vals[3].len() as u32).to_be_bytes());
    assert!(got[28..28 + vals[3].len()] == vals[3][..], "binary get");
    assert_eq!(&got[28 + vals[3].len()..][..2], &[0x81, 0x0a]);
    drop(slow);
    // A client gone mid-reply gives its pins back: the key can be replaced and read.
    let mut gone = slow_client(&srv);
    gone.write_all(&b"get k3\r\n".repeat(10)).unwrap();
    read_exact(&mut gone, 100);
    drop(gone);
    set(&mut c, "k3", b"small");
    assert_eq!(
        show(&exchange(&mut c, b"get k3\r\n")),
        "VALUE k3 0 5\r\nsmall\r\nEND\r\n"
    );
    c.write_all(b"quit\r\n").unwrap();
}
