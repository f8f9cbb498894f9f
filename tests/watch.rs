//! `watch`: the log streams, line by line against memcached 1.6.18 (volatile fields — `ts`,
//! `gid`, `cfd`, `rport` — masked), its replies (`-W`, unknown streams, pipelining, the
//! 20-watcher limit), `skipped=N` after a watcher's buffer overflowed, and the `log_*` stats.
//!
//! Deliberate differences, not compared here (docs/protocol.md): `ttl=` of an item stored with
//! a negative exptime (the server clocks start at different values); `clsid=` and which item is
//! evicted (the memory models differ: only the eviction line's fields are compared).

mod common;
use common::*;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// A watcher: its reader, after `OK` was read.
fn watcher(s: &Server, streams: &str) -> BufReader<TcpStream> {
    let mut w = s.connect();
    w.write_all(format!("watch {streams}\r\n").as_bytes())
        .unwrap();
    let mut r = BufReader::new(w);
    let mut ok = String::new();
    r.read_line(&mut ok).unwrap();
    assert_eq!(ok, "OK\r\n", "watch {streams}");
    r
}

/// Lines from `w` up to and including the first containing `until` (bounded by the socket's
/// read timeout and a line count).
fn lines_until(w: &mut BufReader<TcpStream>, until: &str) -> Vec<String> {
    let mut out = Vec::new();
    for _ in 0..100_000 {
        let mut l = String::new();
        if w.read_line(&mut l).unwrap_or(0) == 0 {
            break;
        }
        let done = l.contains(until);
        out.push(l);
        if done {
            return out;
        }
    }
    panic!("no line with {until:?} in {out:?}")
}

/// The line with its volatile fields' values removed; checks `ts=<secs>.<usecs>` and `gid`.
fn mask(line: &str) -> String {
    line.trim_end_matches('\n')
        .split(' ')
        .map(|f| match f.split_once('=') {
            Some(("ts", v)) => {
                let (s, u) = v.split_once('.').expect("ts=secs.usecs");
                assert!(
                    s.parse::<u64>().is_ok() && u.parse::<u32>().is_ok(),
                    "{line}"
                );
                "ts=".to_string()
            }
            Some((k @ ("gid" | "cfd" | "rport"), v)) => {
                assert!(v.parse::<u64>().is_ok(), "{line}");
                format!("{k}=")
            }
            _ => f.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Only the field names of a line (for events whose values depend on the memory model).
fn fields(line: &str) -> Vec<String> {
    line.split(' ')
        .map(|f| match f.split_once('=') {
            Some(("type", v)) => format!("type={v}"),
            Some((k, _)) => k.to_string(),
            None => f.to_string(),
        })
        .collect()
}

/// Runs `reqs` on a client of each server while a `watch streams` watcher reads, and returns
/// each server's masked lines up to the `get` of `__end__`.
fn both(args: &[&str], streams: &str, reqs: &[&[u8]]) -> (Vec<String>, Vec<String>) {
    let (mc, _probe) = start_memcached(args);
    let fc = Server::start(args);
    let run = |s: &Server| {
        let mut w = watcher(s, streams);
        let mut c = s.connect();
        for r in reqs {
            exchange(&mut c, r);
        }
        exchange(&mut c, b"get __end__\r\n");
        lines_until(&mut w, "key=__end__")
            .iter()
            .map(|l| mask(l))
            .collect::<Vec<_>>()
    };
    (run(&mc), run(&fc))
}

#[test]
fn fetcher_and_mutation_lines_match_memcached() {
    let hashes = format!("set {} 0 0 1\r\nx\r\n", "#".repeat(20));
    let reqs: Vec<&[u8]> = vec![
        b"get foo\r\n",
        b"set foo 0 0 3\r\nbar\r\n",
        b"get foo bar\r\ngets foo\r\n",
        b"add foo 0 100 1\r\nx\r\n",
        b"replace foo 5 100 2\r\nxy\r\n",
        b"append foo 0 0 1\r\nz\r\nprepend foo 0 0 1\r\nz\r\n",
        b"append nope 0 0 1\r\nz\r\n",
        b"cas foo 0 0 1 999\r\nq\r\ncas nope 0 0 1 1\r\nq\r\n",
        b"touch foo 10\r\ngat 0 foo\r\ngats 0 foo\r\n",
        b"delete foo\r\ndelete foo\r\n",
        b"set sp%ace~.-_/\xff 0 1000 1\r\nx\r\n",
        b"set n 0 0 1\r\n5\r\nincr n 1\r\ndecr n 9\r\nincr none 1\r\n",
        b"mg foo v\r\nms mkey 2\r\nhi\r\nmg mkey v\r\nmd mkey\r\n",
        b"ms mn 1\r\n7\r\nma mn\r\nma mn MD D3\r\nma nope\r\nma viv N0 J5\r\nma viv\r\n",
        hashes.as_bytes(),
        b"flush_all\r\nget n\r\n",
    ];
    let (m, f) = both(&[], "fetchers mutations", &reqs);
    assert_eq!(f, m);
}

/// Binary deletes and counters log their lookups (and a created counter its `add`) as the text
/// commands do.
#[test]
fn binary_delete_and_counter_lines_match_memcached() {
    use ferrocache::protocol::binary::{op, request};
    let arith = |opc: u8, key: &[u8], delta: u64, initial: u64, exptime: u32| {
        let mut ex = Vec::new();
        ex.extend_from_slice(&delta.to_be_bytes());
        ex.extend_from_slice(&initial.to_be_bytes());
        ex.extend_from_slice(&exptime.to_be_bytes());
        request(opc, 0, 0, &ex, key, b"")
    };
    let pkts = [
        request(op::SET, 0, 0, &[0; 8], b"n", b"5"),
        arith(op::INCREMENT, b"n", 1, 0, 0),
        arith(op::DECREMENT, b"n", 9, 0, 0),
        arith(op::INCREMENT, b"none", 1, 0, u32::MAX),
        arith(op::INCREMENT, b"viv", 1, 3, 0),
        request(op::DELETE, 0, 0, &[], b"n", b""),
        request(op::DELETE, 0, 0, &[], b"n", b""),
    ];
    let (mc, _probe) = start_memcached(&[]);
    let fc = Server::start(&[]);
    let run = |s: &Server| {
        let mut w = watcher(s, "fetchers mutations");
        let mut b = s.connect();
        for p in &pkts {
            call(&mut b, p).expect("binary reply");
        }
        // The end mark from the same connection (one worker's lines stay in order).
        call(&mut b, &request(op::GET, 0, 0, &[], b"__end__", b"")).expect("binary reply");
        lines_until(&mut w, "key=__end__")
            .iter()
            .map(|l| mask(l))
            .collect::<Vec<_>>()
    };
    let (m, f) = (run(&mc), run(&fc));
    assert!(m.iter().any(|l| l.contains("key=viv")), "{m:?}");
    assert_eq!(f, m);
}

#[test]
fn eviction_and_connection_lines_match_memcached() {
    let value = "v".repeat(100_000);
    let fill: Vec<String> = (0..60)
        .map(|i| format!("set fill{i} 0 0 {}\r\n{value}\r\n", value.len()))
        .collect();
    let mut reqs: Vec<&[u8]> = fill.iter().map(|s| s.as_bytes()).collect();
    reqs.push(b"version\r\n");
    let (mc, _probe) = start_memcached(&["-m", "2"]);
    let fc = Server::start(&["-m", "2"]);
    for s in [&mc, &fc] {
        let mut w = watcher(s, "evictions connevents");
        let mut c = s.connect();
        for r in &reqs {
            exchange(&mut c, r);
        }
        let mut quitter = s.connect();
        quitter.write_all(b"quit\r\n").unwrap();
        read_to_close(&mut quitter);
        let lines = lines_until(&mut w, "reason=normal");
        let ev = lines
            .iter()
            .find(|l| l.contains("type=eviction"))
            .unwrap_or_else(|| panic!("no eviction in {lines:?}"));
        assert_eq!(
            fields(ev.trim_end()),
            [
                "ts",
                "gid",
                "type=eviction",
                "key",
                "fetch",
                "ttl",
                "la",
                "clsid",
                "size"
            ]
        );
        assert!(ev.contains(" fetch=no ttl=-1 ") && ev.contains(" size=100000\n"));
        let conns: Vec<String> = lines
            .iter()
            .filter(|l| l.contains("type=conn_"))
            .map(|l| mask(l))
            .collect();
        let new = "ts= gid= type=conn_new rip=127.0.0.1 rport= transport=tcp cfd=";
        let close =
            "ts= gid= type=conn_close rip=127.0.0.1 rport= transport=tcp reason=normal cfd=";
        assert_eq!(conns, [new, new, close]);
    }
}

#[test]
fn replies_match_memcached() {
    let (mc, _probe) = start_memcached(&[]);
    let fc = Server::start(&[]);
    for req in [
        &b"watch deletions\r\n"[..],
        b"watch fetchers bogus\r\n",
        b"watch fetchers noreply\r\nversion\r\n",
        b"touch a 1\r\nwatch\r\n",
        b"set a 0 0 1\r\nx\r\nwatch\r\n",
    ] {
        assert_eq!(show(&one(&fc, req)), show(&one(&mc, req)), "{}", show(req));
    }
    // memcached writes replies out after a retrieval or `mn`: a `watch` behind one is accepted.
    for s in [&mc, &fc] {
        let mut c = s.connect();
        c.write_all(b"get none\r\nmn\r\nwatch\r\n").unwrap();
        let mut r = BufReader::new(c);
        for want in ["END\r\n", "MN\r\n", "OK\r\n"] {
            let mut l = String::new();
            r.read_line(&mut l).unwrap();
            assert_eq!(l, want);
        }
    }
    // The 21st watcher is refused.
    for s in [&mc, &fc] {
        let ws: Vec<_> = (0..20).map(|_| watcher(s, "mutations")).collect();
        let mut extra = s.connect();
        extra.write_all(b"watch\r\n").unwrap();
        let mut line = String::new();
        BufReader::new(extra).read_line(&mut line).unwrap();
        assert_eq!(line, "WATCHER_TOO_MANY log watcher limit reached\r\n");
        drop(ws);
    }
    let (mcw, _probe_w) = start_memcached(&["-W"]);
    let fcw = Server::start(&["-W"]);
    assert_eq!(
        show(&one(&fcw, b"watch\r\n")),
        show(&one(&mcw, b"watch\r\n"))
    );
}

/// The value of `stats` field `name`.
fn stat(s: &Server, name: &str) -> u64 {
    let st = show(&one(s, b"stats\r\n"));
    let prefix = format!("STAT {name} ");
    st.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {st}"))
}

/// Polls `stats` until `name` is `want` (bounded in count and time).
fn wait_stat(s: &Server, name: &str, want: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while stat(s, name) != want {
        assert!(Instant::now() < deadline, "{name} never became {want}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn watchers_are_counted_and_shown_in_stats_conns() {
    let fc = Server::start(&[]);
    let w1 = watcher(&fc, "fetchers");
    let w2 = watcher(&fc, "connevents");
    wait_stat(&fc, "log_watchers", 2);
    let conns = show(&one(&fc, b"stats conns\r\n"));
    assert_eq!(conns.matches("state conn_watch").count(), 2, "{conns}");
    let mut w1 = w1;
    exchange(&mut fc.connect(), b"get k\r\n");
    lines_until(&mut w1, "key=k ");
    assert!(stat(&fc, "log_worker_written") >= 1);
    assert!(stat(&fc, "log_watcher_sent") >= 1);
    drop(w1);
    drop(w2);
    wait_stat(&fc, "log_watchers", 0);
}

#[test]
fn a_full_watcher_skips_lines_and_says_how_many() {
    let fc = Server::start(&["-o", "watcher_logbuf_size=1"]);
    // A small receive buffer (set before connecting, so the window is small from the start) so
    // the watcher's kernel buffers fill quickly.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(&fc.addr.into()).unwrap();
    let w = TcpStream::from(sock);
    w.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut w = BufReader::new(w);
    w.get_mut().write_all(b"watch\r\n").unwrap();
    let mut c = fc.connect();
    let pad = "x".repeat(200);
    let batch: String = (0..200).map(|i| format!("get {pad}{i}\r\n")).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    while stat(&fc, "log_watcher_skipped") == 0 {
        assert!(Instant::now() < deadline, "no line was ever skipped");
        exchange(&mut c, batch.as_bytes());
    }
    let mut ok = String::new();
    w.read_line(&mut ok).unwrap();
    assert_eq!(ok, "OK\r\n");
    // Lines keep coming (a touch without reply logs a lookup); the first that fits after the
    // gap is preceded by how many were skipped.
    for _ in 0..200_000 {
        c.write_all(b"touch more 0 noreply\r\n").unwrap();
        let mut l = String::new();
        w.read_line(&mut l).unwrap();
        if l.starts_with("skipped=") {
            assert!(l.trim_end()["skipped=".len()..].parse::<u64>().unwrap() > 0);
            let mut next = String::new();
            w.read_line(&mut next).unwrap();
            assert!(next.contains(" type=item_get "), "{next}");
            return;
        }
    }
    panic!("no skipped= line");
}
