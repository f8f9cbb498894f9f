//! The metrics endpoint (`--metrics-listen`): `/metrics` against `stats`, its names against
//! prometheus/memcached_exporter's, `promtool check metrics`, and the HTTP responder's limits.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::{exchange, raw, show, Server};

/// The memcached_exporter's metric names for the stats memcached 1.6.18 reports, from
/// github.com/prometheus/memcached_exporter pkg/exporter/exporter.go (commit 17e002c6, July
/// 2026): every `prometheus.NewDesc` but the extstore_* and proxy-mode ones (proxy_*,
/// round_robin_fallback_total, unexpected_napi_ids_total), which it reports only when `stats`
/// has extstore or proxy fields, and neither memcached 1.6.18 as Debian builds it nor ferrocache
/// has them.
const EXPORTER: &[&str] = &[
    "memcached_up",
    "memcached_uptime_seconds",
    "memcached_time_seconds",
    "memcached_version",
    "memcached_process_user_cpu_seconds_total",
    "memcached_process_system_cpu_seconds_total",
    "memcached_read_bytes_total",
    "memcached_written_bytes_total",
    "memcached_current_connections",
    "memcached_max_connections",
    "memcached_connections_total",
    "memcached_connections_rejected_total",
    "memcached_connections_yielded_total",
    "memcached_connections_listener_disabled_total",
    "memcached_current_bytes",
    "memcached_limit_bytes",
    "memcached_commands_total",
    "memcached_current_items",
    "memcached_items_total",
    "memcached_items_evicted_total",
    "memcached_items_reclaimed_total",
    "memcached_item_too_large_total",
    "memcached_item_no_memory_total",
    "memcached_direct_reclaims_total",
    "memcached_lru_crawler_enabled",
    "memcached_lru_crawler_sleep",
    "memcached_lru_crawler_to_crawl",
    "memcached_lru_crawler_maintainer_thread",
    "memcached_lru_crawler_hot_percent",
    "memcached_lru_crawler_warm_percent",
    "memcached_lru_crawler_hot_max_factor",
    "memcached_lru_crawler_warm_max_factor",
    "memcached_lru_crawler_starts_total",
    "memcached_lru_crawler_reclaimed_total",
    "memcached_lru_crawler_items_checked_total",
    "memcached_lru_crawler_moves_to_cold_total",
    "memcached_lru_crawler_moves_to_warm_total",
    "memcached_lru_crawler_moves_within_lru_total",
    "memcached_malloced_bytes",
    "memcached_slab_current_items",
    "memcached_slab_items_age_seconds",
    "memcached_slab_items_crawler_reclaimed_total",
    "memcached_slab_items_evicted_total",
    "memcached_slab_items_evicted_nonzero_total",
    "memcached_slab_items_evicted_time_seconds",
    "memcached_slab_items_evicted_unfetched_total",
    "memcached_slab_items_expired_unfetched_total",
    "memcached_slab_items_outofmemory_total",
    "memcached_slab_items_reclaimed_total",
    "memcached_slab_items_tailrepairs_total",
    "memcached_slab_items_moves_to_cold",
    "memcached_slab_items_moves_to_warm",
    "memcached_slab_items_moves_within_lru",
    "memcached_slab_hot_items",
    "memcached_slab_warm_items",
    "memcached_slab_cold_items",
    "memcached_slab_temporary_items",
    "memcached_slab_hot_age_seconds",
    "memcached_slab_warm_age_seconds",
    "memcached_slab_lru_hits_total",
    "memcached_slab_chunk_size_bytes",
    "memcached_slab_chunks_per_page",
    "memcached_slab_current_pages",
    "memcached_slab_current_chunks",
    "memcached_slab_chunks_used",
    "memcached_slab_chunks_free",
    "memcached_slab_chunks_free_end",
    "memcached_slab_mem_requested_bytes",
    "memcached_slab_commands_total",
    "memcached_accepting_connections",
];

/// `GET /metrics` on a fresh connection: status line and body.
fn scrape(at: SocketAddr) -> (String, String) {
    let r = raw(
        at,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"\0 until the close",
    );
    let r = String::from_utf8(r).expect("UTF-8");
    let (head, body) = r.split_once("\r\n\r\n").expect("a response head");
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .expect("Content-Length")
        .parse()
        .unwrap();
    assert_eq!(body.len(), len, "{head}");
    (head.lines().next().unwrap().to_string(), body.to_string())
}

/// Samples by `name{labels}`.
fn samples(body: &str) -> HashMap<String, f64> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_string(), v.parse().unwrap())
        })
        .collect()
}

/// `stats <group>` as a map.
fn stats(c: &mut TcpStream, group: &str) -> HashMap<String, String> {
    let r = show(&exchange(c, format!("stats {group}\r\n").as_bytes()));
    r.lines()
        .filter_map(|l| l.strip_prefix("STAT "))
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A server with some traffic: a temporary item (`-o temporary_ttl`), hits, misses, a cas.
fn busy_server() -> (Server, SocketAddr, TcpStream) {
    let (server, at) = Server::start_metrics(&["-o", "temporary_ttl=60"]);
    let mut c = server.connect();
    let mut req = b"set a 0 0 1\r\nx\r\nset big 0 0 3000\r\n".to_vec();
    req.extend_from_slice(&[b'y'; 3000]);
    req.extend_from_slice(
        b"\r\nset t 0 30 1\r\nt\r\nget a\r\nget a\r\nget nope\r\ngets a\r\ncas a 0 0 1 1\r\nz\r\nincr nope 1\r\ndelete nope\r\ntouch a 0\r\n",
    );
    let r = show(&exchange(&mut c, &req));
    assert!(
        r.starts_with("STORED\r\nSTORED\r\nSTORED\r\nVALUE a"),
        "{r}"
    );
    (server, at, c)
}

#[test]
fn scrape_agrees_with_stats() {
    let (_server, at, mut c) = busy_server();
    let general = stats(&mut c, "");
    let settings = stats(&mut c, "settings");
    let items = stats(&mut c, "items");
    let slabs = stats(&mut c, "slabs");
    let (status, body) = scrape(at);
    assert_eq!(status, "HTTP/1.1 200 OK");
    let m = samples(&body);
    let num = |s: &HashMap<String, String>, k: &str| -> f64 {
        s.get(k)
            .unwrap_or_else(|| panic!("stats {k}"))
            .parse()
            .unwrap()
    };
    let get = |k: &str| -> f64 { *m.get(k).unwrap_or_else(|| panic!("{k} missing:\n{body}")) };
    for (metric, field) in [
        ("memcached_current_items", "curr_items"),
        ("memcached_items_total", "total_items"),
        ("memcached_current_bytes", "bytes"),
        ("memcached_limit_bytes", "limit_maxbytes"),
        ("memcached_connections_total", "total_connections"),
        ("memcached_current_connections", "curr_connections"),
        ("memcached_accepting_connections", "accepting_conns"),
        ("memcached_items_evicted_total", "evictions"),
        (
            "memcached_commands_total{command=\"get\",status=\"hit\"}",
            "get_hits",
        ),
        (
            "memcached_commands_total{command=\"get\",status=\"miss\"}",
            "get_misses",
        ),
        (
            "memcached_commands_total{command=\"cas\",status=\"badval\"}",
            "cas_badval",
        ),
        (
            "memcached_commands_total{command=\"incr\",status=\"miss\"}",
            "incr_misses",
        ),
        (
            "memcached_commands_total{command=\"delete\",status=\"miss\"}",
            "delete_misses",
        ),
        (
            "memcached_commands_total{command=\"touch\",status=\"hit\"}",
            "touch_hits",
        ),
    ] {
        assert_eq!(
            get(metric),
            num(&general, field),
            "{metric} vs stats {field}"
        );
    }
    assert_eq!(
        get("memcached_commands_total{command=\"get\",status=\"hit\"}"),
        3.0
    );
    let cas: f64 = ["cas_misses", "cas_hits", "cas_badval"]
        .iter()
        .map(|k| num(&general, k))
        .sum();
    assert_eq!(
        get("memcached_commands_total{command=\"set\",status=\"hit\"}"),
        num(&general, "cmd_set") - cas
    );
    assert_eq!(
        get("memcached_malloced_bytes"),
        num(&slabs, "total_malloced")
    );
    assert_eq!(get("memcached_max_connections"), num(&settings, "maxconns"));
    assert_eq!(
        get("memcached_lru_crawler_hot_percent"),
        num(&settings, "hot_lru_pct")
    );
    // Every class in `stats items` and `stats slabs`, by its label.
    let mut classes = 0;
    for (k, v) in &items {
        let Some(id) = k
            .strip_prefix("items:")
            .and_then(|r| r.strip_suffix(":number"))
        else {
            continue;
        };
        classes += 1;
        let slab = format!("{{slab=\"{id}\"}}");
        assert_eq!(
            get(&format!("memcached_slab_current_items{slab}")),
            v.parse::<f64>().unwrap()
        );
        assert_eq!(
            get(&format!("memcached_slab_chunk_size_bytes{slab}")),
            num(&slabs, &format!("{id}:chunk_size"))
        );
        assert_eq!(
            get(&format!("memcached_slab_chunks_used{slab}")),
            num(&slabs, &format!("{id}:used_chunks"))
        );
        assert_eq!(
            get(&format!("memcached_slab_temporary_items{slab}")),
            num(&items, &format!("items:{id}:number_temp"))
        );
    }
    assert!(classes >= 2, "{items:?}");
    assert_eq!(
        get(&format!(
            "memcached_version{{version=\"{}\"}}",
            general["version"]
        )),
        1.0
    );
    // The latency histograms counted the requests above (each get, gets, set ... once).
    let h = "ferrocache_command_duration_seconds";
    assert!(
        get(&format!("{h}_count{{command=\"get\"}}")) >= 4.0,
        "{body}"
    );
    assert!(
        get(&format!("{h}_count{{command=\"set\"}}")) >= 3.0,
        "{body}"
    );
    assert_eq!(
        get(&format!("{h}_bucket{{command=\"get\",le=\"+Inf\"}}")),
        get(&format!("{h}_count{{command=\"get\"}}"))
    );
    assert_eq!(get("ferrocache_cluster_enabled"), 0.0);
}

#[test]
fn metric_names_are_the_exporters() {
    let (_server, at, _c) = busy_server();
    let (_, body) = scrape(at);
    let ours: BTreeSet<&str> = body
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .filter(|n| n.starts_with("memcached_"))
        .collect();
    let theirs: BTreeSet<&str> = EXPORTER.iter().copied().collect();
    assert_eq!(
        ours.difference(&theirs).collect::<Vec<_>>(),
        Vec::<&&str>::new(),
        "names the exporter does not have"
    );
    assert_eq!(
        theirs.difference(&ours).collect::<Vec<_>>(),
        Vec::<&&str>::new(),
        "exporter names missing"
    );
    // And their labels.
    for label in [
        "memcached_commands_total{command=\"get\",status=\"hit\"}",
        "memcached_slab_lru_hits_total{slab=\"1\",lru=\"temporary\"}",
        "memcached_slab_commands_total{slab=\"1\",command=\"set\",status=\"hit\"}",
    ] {
        assert!(body.contains(label), "{label}:\n{body}");
    }
}

#[test]
fn promtool_accepts_the_metrics() {
    let (_server, at, _c) = busy_server();
    let (_, body) = scrape(at);
    let child = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        println!("SKIPPED: promtool not found (apt-get install prometheus; `make test-deps` does)");
        return;
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The status line of the answer to `req` on a fresh connection, and whether it was closed.
fn status_of(at: SocketAddr, req: &[u8]) -> (String, bool) {
    let r = show(&raw(at, req, b"\0 until the close"));
    (r.lines().next().unwrap_or("").to_string(), !r.is_empty())
}

#[test]
fn bad_requests_get_4xx_and_are_closed() {
    let (_server, at) = Server::start_metrics(&[]);
    for (req, want) in [
        (
            &b"GET /other HTTP/1.1\r\n\r\n"[..],
            "HTTP/1.1 404 Not Found",
        ),
        (
            b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
            "HTTP/1.1 405 Method Not Allowed",
        ),
        (b"GET /metrics\r\n\r\n", "HTTP/1.1 400 Bad Request"),
        (b"\x80\x01\x00\x00\r\n\r\n", "HTTP/1.1 400 Bad Request"),
        (
            b"GET /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
            "HTTP/1.1 400 Bad Request",
        ),
        (b"stats\r\n\r\n", "HTTP/1.1 400 Bad Request"),
    ] {
        assert_eq!(status_of(at, req).0, want, "{}", show(req));
    }
    let mut big = b"GET /metrics HTTP/1.1\r\nX-Pad: ".to_vec();
    big.resize(20_000, b'a');
    assert_eq!(
        status_of(at, &big).0,
        "HTTP/1.1 431 Request Header Fields Too Large"
    );
    // Still serving.
    assert_eq!(scrape(at).0, "HTTP/1.1 200 OK");
}

#[test]
fn keep_alive_serves_one_request_after_another_then_idle_connections_close() {
    let (_server, at) = Server::start_metrics(&[]);
    let mut s = TcpStream::connect(at).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    // Two requests in one write: answered in order, the connection kept open.
    s.write_all(b"GET /metrics HTTP/1.1\r\n\r\nHEAD /metrics HTTP/1.1\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 65536];
    // The HEAD answer ends the stream of bytes before the idle close: read until the close.
    let closed = loop {
        match s.read(&mut chunk) {
            Ok(0) => break true,
            Err(_) => break false,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
        }
    };
    let text = String::from_utf8(got).unwrap();
    assert_eq!(text.matches("HTTP/1.1 200 OK\r\n").count(), 2, "{text}");
    assert!(!text.contains("Connection: close"));
    // The HEAD answer has no body: the text ends with its head.
    assert!(text.ends_with("\r\n\r\n"), "{}", &text[text.len() - 200..]);
    // The read above ended because the idle connection was closed (not by its timeout).
    assert!(closed, "the idle connection was not closed");
}

#[test]
fn client_ports_do_not_answer_http() {
    let (server, at) = Server::start_metrics(&[]);
    assert_eq!(scrape(at).0, "HTTP/1.1 200 OK");
    // memcached's rule: an HTTP request on the memcached port closes the connection silently.
    let r = raw(
        server.addr,
        b"GET /metrics HTTP/1.1\r\n\r\n",
        b"\0 until the close",
    );
    assert!(r.is_empty(), "{}", show(&r));
}

#[test]
fn connections_over_the_limit_are_closed() {
    let (_server, at) = Server::start_metrics(&[]);
    // 32 connections are served at once (server::metrics::MAX_CONNS); more are closed at once.
    let held: Vec<TcpStream> = (0..32).map(|_| TcpStream::connect(at).unwrap()).collect();
    // Each held connection is answered, so all 32 were accepted before the next one.
    for mut h in held.iter() {
        h.write_all(b"HEAD /metrics HTTP/1.1\r\n\r\n").unwrap();
    }
    for mut h in held.iter() {
        h.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 512];
        let n = h.read(&mut buf).unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200 OK"));
    }
    let (status, _) = status_of(at, b"GET /metrics HTTP/1.1\r\n\r\n");
    assert_eq!(status, "", "the 33rd connection is closed unanswered");
    drop(held);
}
