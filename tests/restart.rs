//! Warm restart (`-e PATH`): a graceful stop saves the cache and a start with the same file
//! brings back every item as it was (value, flags, CAS, remaining TTL), across a change of `-t`
//! (and so of the shard count and size classes); expired items stay gone and new CAS values come
//! after the restored ones. Faults (truncated or damaged data, damaged metadata, metadata of
//! another `-m`, kill -9 during the save) give a clean cold start or an exact partial restore,
//! never a wrong value; an empty metadata file stops the start, as memcached does.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{read_until_mn, tmpdir, Server};

/// What `mg KEY v f c t` shows of an item.
#[derive(Clone, Debug, PartialEq)]
struct Seen {
    value: Vec<u8>,
    flags: u32,
    cas: u64,
    ttl: i64,
}

fn key(i: usize) -> String {
    format!("k{i}")
}

/// Item `i`'s value: mostly small, some of a few KB, every 2000th chained (over 512 KB).
fn value(i: usize) -> Vec<u8> {
    let len = if i % 2000 == 7 {
        600_000 + i % 1000
    } else if i % 50 == 3 {
        3000 + i % 5000
    } else {
        i % 300
    };
    (0..len).map(|j| b'a' + ((i + j) % 26) as u8).collect()
}

/// Item `i`'s TTL: none, long, or 1 s (expired by the time it is read back).
fn ttl(i: usize) -> u32 {
    match i % 4 {
        0 | 1 => 0,
        2 => 3600 + (i % 1000) as u32,
        _ => 1,
    }
}

/// Stores items `0..n` (noreply, in batches) with their flags and TTLs.
fn load(server: &Server, n: usize) {
    let mut s = server.connect();
    let mut buf = Vec::new();
    for i in 0..n {
        let v = value(i);
        write!(
            buf,
            "set {} {} {} {} noreply\r\n",
            key(i),
            i * 7919 % 100_000,
            ttl(i),
            v.len()
        )
        .unwrap();
        buf.extend_from_slice(&v);
        buf.extend_from_slice(b"\r\n");
        if buf.len() > 1 << 20 || i + 1 == n {
            buf.extend_from_slice(b"mn\r\n");
            s.write_all(&buf).unwrap();
            assert_eq!(read_until_mn(&mut s), b"", "stores answered");
            buf.clear();
        }
    }
}

/// Reads items `0..n` with `mg`: what each shows, missing ones left out.
fn read_all(server: &Server, n: usize) -> HashMap<usize, Seen> {
    let mut s = server.connect();
    let mut out = HashMap::new();
    for start in (0..n).step_by(200) {
        let end = (start + 200).min(n);
        let mut req = Vec::new();
        for i in start..end {
            write!(req, "mg {} v f c t k\r\n", key(i)).unwrap();
        }
        req.extend_from_slice(b"mn\r\n");
        s.write_all(&req).unwrap();
        let reply = read_until_mn(&mut s);
        let mut rest = &reply[..];
        while !rest.is_empty() {
            let eol = rest.windows(2).position(|w| w == b"\r\n").expect("line");
            let line = std::str::from_utf8(&rest[..eol]).unwrap().to_string();
            rest = &rest[eol + 2..];
            if line.starts_with("EN") {
                continue;
            }
            let mut f = line.split(' ');
            assert_eq!(f.next(), Some("VA"), "{line}");
            let len: usize = f.next().unwrap().parse().unwrap();
            let (mut flags, mut cas, mut ttl, mut k) = (0, 0, 0, String::new());
            for t in f {
                match &t[..1] {
                    "f" => flags = t[1..].parse().unwrap(),
                    "c" => cas = t[1..].parse().unwrap(),
                    "t" => ttl = t[1..].parse().unwrap(),
                    "k" => k = t[1..].to_string(),
                    _ => {}
                }
            }
            let i: usize = k[1..].parse().unwrap();
            out.insert(
                i,
                Seen {
                    value: rest[..len].to_vec(),
                    flags,
                    cas,
                    ttl,
                },
            );
            rest = &rest[len + 2..];
        }
    }
    out
}

fn start(path: &Path, extra: &[&str]) -> Server {
    let mut args = vec!["-e", path.to_str().unwrap(), "-m", "1024"];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// A graceful stop (SIGUSR1): the save is complete once the process has exited.
fn graceful(server: Server) {
    let st = server.stop_with("USR1").expect("exited");
    assert!(st.success(), "{st:?}");
}

fn new_cas(server: &Server) -> u64 {
    let mut s = server.connect();
    let r = common::exchange(&mut s, b"ms fresh 1 c\r\nx\r\n");
    let r = String::from_utf8(r).unwrap();
    r.trim()
        .strip_prefix("HD c")
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("{r}"))
}

fn log_says(server: &Server, what: &str) -> bool {
    server.early_log.iter().any(|l| l.contains(what))
}

/// Every item read back is the one saved (TTL within the clocks' one-second ticks), and the
/// items that expired are gone.
fn assert_restored(before: &HashMap<usize, Seen>, after: &HashMap<usize, Seen>, elapsed: f64) {
    for (i, got) in after {
        let was = before
            .get(i)
            .unwrap_or_else(|| panic!("{} came back from nowhere", key(*i)));
        assert_eq!(got.value, was.value, "{} value", key(*i));
        assert_eq!((got.flags, got.cas), (was.flags, was.cas), "{}", key(*i));
        if was.ttl < 0 {
            assert_eq!(got.ttl, -1, "{}", key(*i));
        } else {
            let want = was.ttl as f64 - elapsed;
            assert!(
                (got.ttl as f64 - want).abs() <= 2.0,
                "{} ttl {} want {want}",
                key(*i),
                got.ttl
            );
        }
    }
}

fn scratch(name: &str) -> PathBuf {
    tmpdir(&format!("restart-{name}")).join("cache")
}

/// Items of the main test: 40 000 by default (under 30 s in a debug build);
/// `FERRO_RESTART_ITEMS=1000000 cargo test --release --test restart` runs the figure.
fn items() -> usize {
    std::env::var("FERRO_RESTART_ITEMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(40_000)
}

#[test]
fn every_item_comes_back_across_a_thread_change() {
    let path = scratch("items");
    let n = items();
    // -t 1: 4 shards with 8-byte small classes; -t 4: 16 shards with memcached's classes.
    let server = start(&path, &["-t", "1"]);
    load(&server, n);
    // Wait out the 1 s TTLs: they expire before the save.
    std::thread::sleep(Duration::from_millis(2100));
    let before = read_all(&server, n);
    let expired = (0..n).filter(|&i| ttl(i) == 1).count();
    assert_eq!(before.len(), n - expired);
    let max_cas = before.values().map(|s| s.cas).max().unwrap();
    let t0 = Instant::now();
    graceful(server);
    assert!(path.exists() && common_meta(&path).exists());
    let server = start(&path, &["-t", "4"]);
    assert!(
        log_says(&server, "[restart] restored"),
        "{:?}",
        server.early_log
    );
    let after = read_all(&server, n);
    assert_restored(&before, &after, t0.elapsed().as_secs_f64());
    assert_eq!(after.len(), before.len(), "every item restored");
    assert!(new_cas(&server) > max_cas);
    // The files are consumed: a crash now restarts clean, never with this state.
    assert!(!path.exists() && !common_meta(&path).exists());
    // And once more, back to -t 1.
    graceful(server);
    let server = start(&path, &["-t", "1"]);
    let again = read_all(&server, n);
    assert_restored(&before, &again, t0.elapsed().as_secs_f64());
    assert_eq!(again.len(), before.len());
    drop(server);
}

#[test]
fn shutdown_graceful_saves_and_large_pages_restore() {
    let path = scratch("graceful");
    let server = start(&path, &["-A", "-L"]);
    load(&server, 2000);
    let before = read_all(&server, 2000);
    let t0 = Instant::now();
    let mut s = server.connect();
    s.write_all(b"shutdown graceful\r\n").unwrap();
    let _ = common::read_to_close(&mut s);
    let st = server.stop_with("0").expect("exited");
    assert!(st.success(), "{st:?}");
    assert!(common_meta(&path).exists());
    let server = start(&path, &["-L"]);
    let after = read_all(&server, 2000);
    assert_restored(&before, &after, t0.elapsed().as_secs_f64());
    // All but the 1 s TTLs, which may have expired meanwhile.
    let lasting = before.values().filter(|s| s.ttl < 0 || s.ttl > 60).count();
    assert_eq!(lasting, 1500);
    assert!(after.len() >= lasting, "{}", after.len());
}

fn common_meta(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".meta");
    PathBuf::from(p)
}

/// Saves `n` items to `path` and returns what they showed, and when.
fn saved(path: &Path, n: usize) -> (HashMap<usize, Seen>, Instant) {
    let server = start(path, &[]);
    load(&server, n);
    let before = read_all(&server, n);
    let t0 = Instant::now();
    graceful(server);
    (before, t0)
}

fn flip(path: &Path, at: u64) {
    let mut b = std::fs::read(path).unwrap();
    let at = (at as usize).min(b.len() - 1);
    b[at] ^= 0x10;
    std::fs::write(path, b).unwrap();
}

#[test]
fn truncated_data_starts_clean() {
    let path = scratch("truncated");
    saved(&path, 3000);
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let server = start(&path, &[]);
    assert!(
        log_says(&server, "truncated or replaced"),
        "{:?}",
        server.early_log
    );
    assert!(read_all(&server, 3000).is_empty());
}

#[test]
fn a_damaged_page_is_dropped_and_the_rest_is_exact() {
    let path = scratch("flipped");
    let (before, t0) = saved(&path, 3000);
    // A byte in the middle of the data: one page fails its checksum.
    let len = std::fs::metadata(&path).unwrap().len();
    flip(&path, len / 2);
    let server = start(&path, &[]);
    assert!(log_says(&server, "1 bad pages"), "{:?}", server.early_log);
    let after = read_all(&server, 3000);
    assert!(!after.is_empty() && after.len() < before.len());
    assert_restored(&before, &after, t0.elapsed().as_secs_f64());
}

#[test]
fn damaged_or_foreign_metadata_starts_clean() {
    // A flipped byte in the metadata.
    let path = scratch("meta");
    saved(&path, 1000);
    flip(&common_meta(&path), 40);
    let server = start(&path, &[]);
    assert!(
        log_says(&server, "starting with a clean cache"),
        "{:?}",
        server.early_log
    );
    assert!(read_all(&server, 1000).is_empty());
    drop(server);
    // Metadata of another -m.
    saved(&path, 1000);
    let server = Server::start(&["-e", path.to_str().unwrap(), "-m", "512"]);
    assert!(log_says(&server, "-m was"), "{:?}", server.early_log);
    assert!(read_all(&server, 1000).is_empty());
    drop(server);
    // Metadata of the previous format (version 1: no delayed flush, no event number).
    saved(&path, 1000);
    let meta = std::fs::read_to_string(common_meta(&path)).unwrap();
    let (_, rest) = meta.split_once('\n').unwrap();
    std::fs::write(
        common_meta(&path),
        format!("ferrocache-memory-file 1\n{rest}"),
    )
    .unwrap();
    let server = start(&path, &[]);
    assert!(
        log_says(&server, "written by another format (format 1"),
        "{:?}",
        server.early_log
    );
    assert!(read_all(&server, 1000).is_empty());
    drop(server);
    // No metadata at all.
    let server = start(&path, &[]);
    assert!(
        log_says(&server, "no metadata file"),
        "{:?}",
        server.early_log
    );
}

#[test]
fn an_empty_metadata_file_stops_the_start() {
    let path = scratch("empty");
    std::fs::write(common_meta(&path), b"").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferrocache"))
        .args(["-p", "-1", "-l", "127.0.0.1", "-u", "root", "-e"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is empty"), "{err}");
}

#[test]
fn kill_during_the_save_leaves_a_cold_start() {
    let path = scratch("kill");
    let server = start(&path, &[]);
    load(&server, 20_000);
    let before = read_all(&server, 20_000);
    let t0 = Instant::now();
    let pid = server.pid().to_string();
    let _ = std::process::Command::new("kill")
        .args(["-USR1", &pid])
        .status();
    // Kill it once the data file is being written (or the save is done already).
    let tmp = {
        let mut p = path.as_os_str().to_owned();
        p.push(".tmp");
        PathBuf::from(p)
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !tmp.exists() && !common_meta(&path).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let _ = server.stop_with("KILL");
    let server = start(&path, &[]);
    let after = read_all(&server, 20_000);
    // Either the save completed before the kill (everything back) or nothing comes back.
    assert!(
        after.is_empty() || after.len() == before.len(),
        "{}",
        after.len()
    );
    assert_restored(&before, &after, t0.elapsed().as_secs_f64());
}

/// `stats` field `name` of `server`.
fn stat(server: &Server, name: &str) -> u64 {
    let mut s = server.connect();
    let r = common::show(&common::exchange(&mut s, b"stats\r\n"));
    r.lines()
        .find_map(|l| l.strip_prefix(&format!("STAT {name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {r}"))
}

/// The CAS value of `key` (`gets`).
fn cas_of(server: &Server, key: &str) -> Option<u64> {
    let mut s = server.connect();
    let r = common::show(&common::exchange(
        &mut s,
        format!("gets {key}\r\n").as_bytes(),
    ));
    r.lines()
        .next()
        .filter(|l| l.starts_with("VALUE"))
        .and_then(|l| l.split(' ').nth(4))
        .and_then(|c| c.trim().parse().ok())
}

/// What a warm restart keeps of the server's own state, the same way in memcached and
/// ferrocache: the CAS counter goes on from the save (which takes a value: a new item's CAS is
/// the last saved one's + 2), `uptime` goes on counting from the first start (the clock is the
/// saving process's), and a delayed `flush_all` pending at the stop still happens.
#[test]
fn a_restart_keeps_the_clock_the_cas_counter_and_a_delayed_flush_as_memcached() {
    let run = |name: &str, start: &dyn Fn(&Path) -> Server| {
        let path = scratch(name);
        let server = start(&path);
        let mut s = server.connect();
        assert_eq!(
            common::exchange(&mut s, b"set a 0 0 1\r\n1\r\nflush_all 8\r\n"),
            b"STORED\r\nOK\r\n"
        );
        let cas_a = cas_of(&server, "a").expect("a stored");
        let uptime = stat(&server, "uptime");
        graceful(server);
        // memcached refuses a start in the second of its stop.
        std::thread::sleep(Duration::from_millis(1100));
        let server = start(&path);
        // Restored (the flush is not due yet)...
        assert_eq!(cas_of(&server, "a"), Some(cas_a), "{name}: a restored");
        let mut s = server.connect();
        assert_eq!(
            common::exchange(&mut s, b"set b 0 0 1\r\n2\r\n"),
            b"STORED\r\n"
        );
        let cas_b = cas_of(&server, "b").expect("b stored");
        let uptime_after = stat(&server, "uptime");
        assert!(
            uptime_after > uptime,
            "{name}: uptime {uptime} -> {uptime_after}"
        );
        // ... and flushed when the delayed flush_all is due (bounded wait).
        let deadline = Instant::now() + Duration::from_secs(30);
        while cas_of(&server, "a").is_some() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(
            cas_of(&server, "a"),
            None,
            "{name}: the delayed flush happened"
        );
        drop(server);
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
        cas_b - cas_a
    };
    let ours = run("keeps-ferrocache", &|path| start(path, &[]));
    let theirs = run("keeps-memcached", &|path| {
        Server::memcached(&["-e", path.to_str().unwrap(), "-m", "64"]).expect("memcached")
    });
    assert_eq!(ours, theirs, "the first CAS after a restart");
    assert_eq!(theirs, 2);
}

#[test]
fn a_delayed_flush_due_while_down_flushes_the_saved_items() {
    let path = scratch("flush-while-down");
    let server = start(&path, &[]);
    let mut s = server.connect();
    assert_eq!(
        common::exchange(&mut s, b"set a 0 0 1\r\n1\r\nflush_all 2\r\n"),
        b"STORED\r\nOK\r\n"
    );
    graceful(server);
    std::thread::sleep(Duration::from_millis(2100));
    let server = start(&path, &[]);
    assert!(
        log_says(&server, "restored 0 items") && log_says(&server, "dropped 1 expired"),
        "{:?}",
        server.early_log
    );
    assert_eq!(cas_of(&server, "a"), None);
}
