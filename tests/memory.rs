//! Memory bounds: with `-m 64`, writing 1 GB of mixed-size values keeps RSS bounded, evicts, stays
//! responsive, and recently read keys survive better than cold ones.

mod common;
use common::*;
use std::io::Write;

#[test]
fn one_gigabyte_into_sixty_four_megabytes() {
    let srv = Server::start(&["-m", "64", "-t", "2"]);
    let mut c = srv.connect();
    let sizes = [100usize, 700, 3000, 20_000];
    let hot: Vec<String> = (0..50).map(|i| format!("hot:{i}")).collect();
    let mut written = 0usize;
    let mut n = 0usize;
    let mut batch = Vec::new();
    let target = 1usize << 30;
    while written < target {
        batch.clear();
        for _ in 0..64 {
            let size = sizes[n % sizes.len()];
            batch.extend_from_slice(format!("set cold:{n:08} 0 0 {size} noreply\r\n").as_bytes());
            batch.extend(std::iter::repeat_n(b'a' + (n % 26) as u8, size));
            batch.extend_from_slice(b"\r\n");
            written += size;
            n += 1;
        }
        // Keep the hot keys hot: read them (twice) every batch, rewriting any that went missing.
        for k in &hot {
            batch.extend_from_slice(format!("get {k}\r\nget {k}\r\n").as_bytes());
        }
        let out = exchange(&mut c, &batch);
        let text = show(&out);
        let mut missing = Vec::new();
        for k in &hot {
            if !text.contains(&format!("VALUE {k} ")) {
                missing.push(k.clone());
            }
        }
        if !missing.is_empty() {
            let mut req = Vec::new();
            for k in missing {
                req.extend_from_slice(
                    format!("set {k} 0 0 500 noreply\r\n{}\r\n", "h".repeat(500)).as_bytes(),
                );
            }
            exchange(&mut c, &req);
        }
    }
    let rss_mb = srv.rss_kib() / 1024;
    // 64 MB of item pages, a first page per class possibly past the limit, plus index, buffers
    // and code.
    assert!(rss_mb < 64 + 48, "RSS {rss_mb} MB");
    let stats = show(&exchange(&mut c, b"stats\r\n"));
    let evictions: u64 = stats
        .lines()
        .find_map(|l| l.strip_prefix("STAT evictions "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap();
    assert!(evictions > 10_000, "evictions {evictions}");
    // Hot keys survived; the oldest cold ones did not.
    let mut hot_alive = 0;
    for k in &hot {
        if show(&exchange(&mut c, format!("get {k}\r\n").as_bytes())).starts_with("VALUE") {
            hot_alive += 1;
        }
    }
    let mut cold_alive = 0;
    for i in 0..500 {
        if show(&exchange(&mut c, format!("get cold:{i:08}\r\n").as_bytes())).starts_with("VALUE") {
            cold_alive += 1;
        }
    }
    assert!(hot_alive >= 45, "hot alive {hot_alive}");
    assert!(cold_alive < 50, "cold alive {cold_alive}");
    // Still responsive for a new client.
    let mut d = srv.connect();
    d.write_all(b"version\r\n").unwrap();
    assert_eq!(show(&exchange(&mut d, b"")), "VERSION 1.6.18\r\n");
}
