//! How expired and flushed items are reclaimed and counted, compared with memcached 1.6.18:
//! `lru_crawler crawl` and `lru_crawler_running`, `reclaimed` on a store, `used_chunks`.
//! Items expire on the servers' own clocks: the tests wait, bounded, until `stats` `time` has
//! moved past the expiry, never on a duration.

mod common;
use common::*;
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// One `STAT name value` of a `stats` group reply.
fn stat(s: &mut TcpStream, group: &str, name: &str) -> Option<String> {
    let reply = show(&exchange(s, format!("stats{group}\r\n").as_bytes()));
    reply.lines().find_map(|l| {
        let mut it = l.split(' ');
        (it.next() == Some("STAT") && it.next() == Some(name))
            .then(|| it.next().unwrap_or("").to_owned())
    })
}

fn num(s: &mut TcpStream, group: &str, name: &str) -> u64 {
    stat(s, group, name)
        .unwrap_or_else(|| panic!("no {name} in stats{group}"))
        .parse()
        .unwrap()
}

/// Waits, bounded, until the server's clock has passed `secs` seconds beyond `from`.
fn wait_clock(s: &mut TcpStream, from: u64, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while num(s, "", "time") < from + secs {
        assert!(Instant::now() < deadline, "server clock did not move");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits, bounded, while `stats` reports `lru_crawler_running 1`.
fn wait_crawl(s: &mut TcpStream) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while stat(s, "", "lru_crawler_running").as_deref() == Some("1") {
        assert!(Instant::now() < deadline, "crawl did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Without the LRU maintainer and with the crawler off at start: expired items stay until an
/// `lru_crawler crawl`, which reports `lru_crawler_running 1` until its pass is done; then the
/// expired items are gone from `used_chunks` and counted as `crawler_reclaimed`.
#[test]
fn requested_crawl_reclaims_before_it_reports_done() {
    let args = ["-o", "no_modern"];
    let (_mc, mut m) = start_memcached(&args);
    let fc = Server::start(&args);
    let mut f = fc.connect();
    let mut results = Vec::new();
    for s in [&mut m, &mut f] {
        let t0 = num(s, "", "time");
        let mut req = Vec::new();
        for i in 0..10 {
            req.extend_from_slice(format!("set keep{i} 0 0 2\r\nok\r\n").as_bytes());
            req.extend_from_slice(format!("set short{i} 0 1 2\r\nok\r\n").as_bytes());
        }
        exchange(s, &req);
        let before = num(s, " slabs", "1:used_chunks");
        wait_clock(s, t0, 3);
        assert_eq!(show(&exchange(s, b"lru_crawler enable\r\n")), "OK\r\n");
        assert_eq!(show(&exchange(s, b"lru_crawler crawl 1\r\n")), "OK\r\n");
        wait_crawl(s);
        results.push((
            before,
            num(s, " slabs", "1:used_chunks"),
            num(s, " items", "items:1:crawler_reclaimed"),
            num(s, "", "crawler_reclaimed"),
        ));
    }
    assert_eq!(results[0], (20, 10, 10, 10), "memcached");
    assert_eq!(results[1], results[0], "ferrocache vs memcached");
}

/// memcached's flat LRU (`-o no_modern`) frees the dead items at its tail before every
/// allocation and counts them as `reclaimed`: a flushed item, then an expired one, each
/// replaced by a store of the same key.
#[test]
fn flat_lru_store_reclaims_dead_tail_items() {
    let args = ["-o", "no_modern"];
    let (_mc, mut m) = start_memcached(&args);
    let fc = Server::start(&args);
    let mut f = fc.connect();
    let mut results = Vec::new();
    for s in [&mut m, &mut f] {
        let t0 = num(s, "", "time");
        assert_eq!(show(&exchange(s, b"set key 0 0 1\r\n1\r\n")), "STORED\r\n");
        // memcached's flush_all covers items stored before the current second.
        wait_clock(s, t0, 2);
        assert_eq!(show(&exchange(s, b"flush_all\r\n")), "OK\r\n");
        assert_eq!(show(&exchange(s, b"set key 0 0 1\r\n2\r\n")), "STORED\r\n");
        let after_flush = num(s, "", "reclaimed");
        let t1 = num(s, "", "time");
        assert_eq!(show(&exchange(s, b"set key 0 1 1\r\n3\r\n")), "STORED\r\n");
        wait_clock(s, t1, 3);
        assert_eq!(show(&exchange(s, b"set key 0 0 1\r\n4\r\n")), "STORED\r\n");
        results.push((
            after_flush,
            num(s, "", "reclaimed"),
            num(s, "", "expired_unfetched"),
            num(s, "", "curr_items"),
            show(&exchange(s, b"get key\r\n")),
        ));
    }
    assert_eq!(
        results[0],
        (1, 2, 2, 1, "VALUE key 0 1\r\n4\r\nEND\r\n".to_owned()),
        "memcached"
    );
    assert_eq!(results[1], results[0], "ferrocache vs memcached");
}

/// With the LRU maintainer (the default), expired items are freed by it as it reaches them at
/// the tail, before the crawler comes by: counted as `reclaimed`, not `crawler_reclaimed` (as
/// t/lru-maintainer.t checks).
#[test]
fn lru_maintainer_reclaims_expired_items_it_reaches() {
    let args = ["-o", "lru_maintainer,lru_crawler"];
    let (_mc, mut m) = start_memcached(&args);
    let fc = Server::start(&args);
    let mut f = fc.connect();
    let mut results = Vec::new();
    for s in [&mut m, &mut f] {
        let t0 = num(s, "", "time");
        let mut req = Vec::new();
        for i in 0..10 {
            req.extend_from_slice(format!("set ifoo{i} 0 1 2\r\nok\r\n").as_bytes());
        }
        exchange(s, &req);
        wait_clock(s, t0, 3);
        let deadline = Instant::now() + Duration::from_secs(10);
        while num(s, "", "curr_items") > 0 {
            assert!(
                Instant::now() < deadline,
                "expired items were not reclaimed"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        results.push((num(s, "", "reclaimed"), num(s, "", "crawler_reclaimed")));
    }
    assert_eq!(results[0], (10, 0), "memcached");
    assert_eq!(results[1], results[0], "ferrocache vs memcached");
}
