//! Binary protocol: differential tests against memcached 1.6.18 with raw packets (every opcode,
//! hits, misses, quiet pipelines ended by NOOP, CAS, incr rules, too-large values, unknown
//! opcodes, malformed headers), plus checks of framing edge cases on ferrocache alone.
//!
//! Responses are compared field by field; a CAS is compared only as zero/non-zero (each server
//! numbers its items itself), and the version string is not compared.

mod common;
use common::*;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use ferrocache::protocol::binary::{op, parse_response, request, Response};

const SENTINEL: u32 = 0x5e17_1e1a;

/// A response with what may differ between servers masked.
#[derive(Debug, PartialEq, Eq)]
struct Masked {
    opcode: u8,
    status: u16,
    opaque: u32,
    has_cas: bool,
    extras: Vec<u8>,
    key: String,
    value: String,
}

fn mask(r: &Response) -> Masked {
    Masked {
        opcode: r.opcode,
        status: r.status,
        opaque: r.opaque,
        has_cas: r.cas != 0,
        extras: r.extras.clone(),
        key: show(&r.key),
        value: if r.opcode == op::VERSION && r.status == 0 {
            "<version>".into()
        } else {
            show(&r.value)
        },
    }
}

/// Sends `req` then a NOOP with a sentinel opaque; returns the responses before the sentinel's
/// reply and whether the server closed the connection instead.
fn bin_exchange(s: &mut TcpStream, req: &[u8]) -> (Vec<Response>, bool) {
    let mut msg = req.to_vec();
    msg.extend_from_slice(&request(op::NOOP, SENTINEL, 0, &[], &[], &[]));
    if s.write_all(&msg).is_err() {
        return (Vec::new(), true);
    }
    read_responses(s)
}

fn read_responses(s: &mut TcpStream) -> (Vec<Response>, bool) {
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        while let Some((r, used)) = parse_response(&buf) {
            buf.drain(..used);
            if r.opcode == op::NOOP && r.opaque == SENTINEL {
                return (out, false);
            }
            out.push(r);
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return (out, true),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

struct BinPair {
    _mc: Server,
    fc: Server,
    m: TcpStream,
    f: TcpStream,
    failures: Vec<String>,
    cases: usize,
}

fn connect(addr: std::net::SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

impl BinPair {
    fn new(args: &[&str]) -> BinPair {
        let (mc, _text) = start_memcached(args);
        let fc = Server::start(args);
        BinPair {
            m: connect(mc.addr),
            f: connect(fc.addr),
            _mc: mc,
            fc,
            failures: Vec::new(),
            cases: 0,
        }
    }

    /// Fresh connections to both (after a case that closes).
    fn reconnect(&mut self) {
        self.m = connect(self._mc.addr);
        self.f = connect(self.fc.addr);
    }

    fn case(&mut self, label: &str, req: &[u8]) -> (Vec<Response>, Vec<Response>) {
        self.cases += 1;
        let (a, ca) = bin_exchange(&mut self.m, req);
        let (b, cb) = bin_exchange(&mut self.f, req);
        let (ma, mb): (Vec<Masked>, Vec<Masked>) =
            (a.iter().map(mask).collect(), b.iter().map(mask).collect());
        if ma != mb || ca != cb {
            self.failures.push(format!(
                "case {label}\n    memcached (closed={ca}):  {ma:?}\n    ferrocache (closed={cb}): {mb:?}"
            ));
        }
        if ca || cb {
            self.reconnect();
        }
        (a, b)
    }

    fn finish(self) {
        assert!(
            self.failures.is_empty(),
            "{} of {} binary cases differ:\n{}",
            self.failures.len(),
            self.cases,
            self.failures.join("\n")
        );
    }
}

fn set_extras(flags: u32, exptime: u32) -> Vec<u8> {
    let mut e = flags.to_be_bytes().to_vec();
    e.extend_from_slice(&exptime.to_be_bytes());
    e
}

fn incr_extras(delta: u64, initial: u64, exptime: u32) -> Vec<u8> {
    let mut e = delta.to_be_bytes().to_vec();
    e.extend_from_slice(&initial.to_be_bytes());
    e.extend_from_slice(&exptime.to_be_bytes());
    e
}

fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

#[test]
fn every_opcode_matches_memcached() {
    let mut p = BinPair::new(&[]);
    let set = |op_: u8, key: &[u8], v: &[u8], flags: u32, cas: u64| {
        request(op_, 1, cas, &set_extras(flags, 0), key, v)
    };
    let get = |op_: u8, key: &[u8]| request(op_, 2, 0, &[], key, &[]);

    p.case("get miss", &get(op::GET, b"nokey"));
    p.case("getk miss", &get(op::GETK, b"nokey"));
    p.case(
        "quiet misses then noop",
        &cat(&[get(op::GETQ, b"a1"), get(op::GETKQ, b"a2")]),
    );
    p.case("set", &set(op::SET, b"k1", b"hello", 42, 0));
    p.case("get hit", &get(op::GET, b"k1"));
    p.case("getk hit", &get(op::GETK, b"k1"));
    p.case(
        "quiet pipeline: miss, miss, hit",
        &cat(&[
            get(op::GETQ, b"zz1"),
            get(op::GETKQ, b"zz2"),
            get(op::GETQ, b"k1"),
            get(op::GETKQ, b"k1"),
        ]),
    );
    p.case("empty value", &set(op::SET, b"empty", b"", 0, 0));
    p.case("get empty", &get(op::GET, b"empty"));
    p.case(
        "binary value",
        &set(op::SET, b"bin", &[0, 13, 10, 255, 128], 0xffff_ffff, 0),
    );
    p.case("get binary", &get(op::GETK, b"bin"));
    p.case("add existing", &set(op::ADD, b"k1", b"x", 0, 0));
    p.case("add new", &set(op::ADD, b"k2", b"x", 0, 0));
    p.case(
        "addq existing (error sent)",
        &set(op::ADDQ, b"k1", b"x", 0, 0),
    );
    p.case("addq new (silent)", &set(op::ADDQ, b"k3", b"x", 0, 0));
    p.case("replace missing", &set(op::REPLACE, b"nokey", b"x", 0, 0));
    p.case("replace existing", &set(op::REPLACE, b"k2", b"yy", 7, 0));
    p.case("replaceq missing", &set(op::REPLACEQ, b"nokey", b"x", 0, 0));
    p.case("setq (silent)", &set(op::SETQ, b"k4", b"quiet", 0, 0));
    p.case("get setq'd", &get(op::GET, b"k4"));
    p.case("set wrong cas", &set(op::SET, b"k1", b"x", 0, 999_999));
    p.case(
        "set cas on missing",
        &set(op::SET, b"nokey", b"x", 0, 12345),
    );
    p.case(
        "add with cas on missing",
        &set(op::ADD, b"nokey", b"x", 0, 12345),
    );
    p.case(
        "replace wrong cas",
        &set(op::REPLACE, b"k1", b"x", 0, 999_999),
    );
    // The right CAS, read from each server.
    let (a, b) = p.case("get for cas", &get(op::GET, b"k1"));
    if let (Some(a), Some(b)) = (a.first(), b.first()) {
        let (ca, cb) = (a.cas, b.cas);
        p.cases += 1;
        let ra = bin_exchange(&mut p.m, &set(op::SET, b"k1", b"new", 1, ca)).0;
        let rb = bin_exchange(&mut p.f, &set(op::SET, b"k1", b"new", 1, cb)).0;
        let (ma, mb): (Vec<Masked>, Vec<Masked>) =
            (ra.iter().map(mask).collect(), rb.iter().map(mask).collect());
        if ma != mb {
            p.failures
                .push(format!("set right cas\n    {ma:?}\n    {mb:?}"));
        }
        let ra = bin_exchange(&mut p.m, &request(op::DELETE, 3, ca, &[], b"k1", &[])).0;
        let rb = bin_exchange(&mut p.f, &request(op::DELETE, 3, cb, &[], b"k1", &[])).0;
        let (ma, mb): (Vec<Masked>, Vec<Masked>) =
            (ra.iter().map(mask).collect(), rb.iter().map(mask).collect());
        if ma != mb {
            p.failures
                .push(format!("delete stale cas\n    {ma:?}\n    {mb:?}"));
        }
    }
    p.case(
        "delete wrong cas",
        &request(op::DELETE, 3, 999_999, &[], b"k1", &[]),
    );
    p.case("delete hit", &request(op::DELETE, 3, 0, &[], b"k1", &[]));
    p.case("delete miss", &request(op::DELETE, 3, 0, &[], b"k1", &[]));
    p.case(
        "deleteq hit (silent)",
        &cat(&[
            set(op::SET, b"d", b"1", 0, 0),
            request(op::DELETEQ, 3, 0, &[], b"d", &[]),
        ]),
    );
    p.case(
        "deleteq miss (error)",
        &request(op::DELETEQ, 3, 0, &[], b"d", &[]),
    );

    // incr/decr
    p.case(
        "incr miss, no create",
        &request(
            op::INCREMENT,
            4,
            0,
            &incr_extras(1, 5, 0xffff_ffff),
            b"n",
            &[],
        ),
    );
    p.case(
        "incr miss creates initial",
        &request(op::INCREMENT, 4, 0, &incr_extras(1, 5, 0), b"n", &[]),
    );
    p.case("get created counter", &get(op::GET, b"n"));
    p.case(
        "incr hit",
        &request(op::INCREMENT, 4, 0, &incr_extras(10, 0, 0), b"n", &[]),
    );
    p.case(
        "decr below zero",
        &request(op::DECREMENT, 4, 0, &incr_extras(100, 0, 0), b"n", &[]),
    );
    p.case(
        "incr wraps",
        &cat(&[
            request(op::INCREMENT, 4, 0, &incr_extras(u64::MAX, 0, 0), b"n", &[]),
            request(op::INCREMENT, 4, 0, &incr_extras(2, 0, 0), b"n", &[]),
        ]),
    );
    p.case("get counter text", &get(op::GET, b"n"));
    p.case(
        "incr non-numeric",
        &request(op::INCREMENT, 4, 0, &incr_extras(1, 0, 0), b"k2", &[]),
    );
    p.case(
        "incr wrong cas",
        &request(op::INCREMENT, 4, 777_777, &incr_extras(1, 0, 0), b"n", &[]),
    );
    p.case(
        "incrq hit (silent)",
        &request(op::INCREMENTQ, 4, 0, &incr_extras(1, 0, 0), b"n", &[]),
    );
    p.case(
        "decrq miss (error)",
        &request(
            op::DECREMENTQ,
            4,
            0,
            &incr_extras(1, 0, 0xffff_ffff),
            b"nn",
            &[],
        ),
    );
    p.case(
        "incr on 20 digits",
        &cat(&[
            set(op::SET, b"big", b"18446744073709551615", 0, 0),
            request(op::INCREMENT, 4, 0, &incr_extras(1, 0, 0), b"big", &[]),
            get(op::GET, b"big"),
        ]),
    );

    // append/prepend
    p.case(
        "append missing",
        &request(op::APPEND, 5, 0, &[], b"nokey", b"x"),
    );
    p.case("append", &request(op::APPEND, 5, 0, &[], b"k2", b"-tail"));
    p.case("prepend", &request(op::PREPEND, 5, 0, &[], b"k2", b"head-"));
    p.case("get appended", &get(op::GETK, b"k2"));
    p.case(
        "append wrong cas",
        &request(op::APPEND, 5, 424_242, &[], b"k2", b"x"),
    );
    p.case(
        "appendq (silent)",
        &request(op::APPENDQ, 5, 0, &[], b"k2", b"!"),
    );
    p.case(
        "prependq missing (error)",
        &request(op::PREPENDQ, 5, 0, &[], b"nokey", b"!"),
    );

    // touch and gat
    let t = |o: u8, key: &[u8], exp: u32| request(o, 6, 0, &exp.to_be_bytes(), key, &[]);
    p.case("touch hit", &t(op::TOUCH, b"k2", 100));
    p.case("touch miss", &t(op::TOUCH, b"nokey", 100));
    p.case("gat hit", &t(op::GAT, b"k2", 100));
    p.case("gat miss", &t(op::GAT, b"nokey", 100));
    p.case("gatk hit", &t(op::GATK, b"k2", 100));
    p.case("gatk miss", &t(op::GATK, b"nokey", 100));
    p.case(
        "gatq miss (silent), gatkq hit",
        &cat(&[t(op::GATQ, b"nokey", 0), t(op::GATKQ, b"k2", 0)]),
    );
    p.case(
        "gat expires at once",
        &cat(&[
            set(op::SET, b"gone", b"v", 0, 0),
            t(op::GAT, b"gone", 0xffff_fff0),
            get(op::GET, b"gone"),
        ]),
    );

    // misc
    p.case("version", &request(op::VERSION, 7, 0, &[], &[], &[]));
    p.case("noop", &request(op::NOOP, 7, 0, &[], &[], &[]));
    p.case(
        "verbosity is unknown in 1.6.18",
        &request(op::VERBOSITY, 7, 0, &[], &[], &[]),
    );
    p.case(
        "unknown opcode with body",
        &request(0x50, 7, 0, &[], &[], b"abcde"),
    );
    p.case(
        "sasl list mechs without -S",
        &request(op::SASL_LIST_MECHS, 7, 0, &[], &[], &[]),
    );
    p.case(
        "sasl auth without -S",
        &request(op::SASL_AUTH, 7, 0, &[], b"PLAIN", b"\0foo\0bar"),
    );
    p.case(
        "stat unknown group",
        &request(op::STAT, 8, 0, &[], b"bogus", &[]),
    );
    p.case(
        "stat conns is not binary",
        &request(op::STAT, 8, 0, &[], b"conns", &[]),
    );
    p.case(
        "stat detail bad",
        &request(op::STAT, 8, 0, &[], b"detail xx", &[]),
    );
    p.case(
        "stat detail on",
        &request(op::STAT, 8, 0, &[], b"detail on", &[]),
    );
    p.case(
        "stat detail off",
        &request(op::STAT, 8, 0, &[], b"detail off", &[]),
    );
    p.case("stat reset", &request(op::STAT, 8, 0, &[], b"reset", &[]));
    p.case("flushq (silent)", &request(op::FLUSHQ, 9, 0, &[], &[], &[]));
    p.case("get after flush", &get(op::GET, b"k2"));
    p.case(
        "flush with delay",
        &request(op::FLUSH, 9, 0, &0u32.to_be_bytes(), &[], &[]),
    );

    // Values over -I are refused and their bytes skipped: the next request is answered.
    let mut big = request(op::SET, 10, 0, &set_extras(0, 0), b"big", &[]);
    let vlen = 2 * 1024 * 1024;
    big[8..12].copy_from_slice(&((8 + 3 + vlen) as u32).to_be_bytes());
    big.extend(std::iter::repeat_n(b'x', vlen));
    p.case("set over -I", &big);
    p.case("set after too large", &set(op::SET, b"after", b"ok", 0, 0));
    p.case("get after too large", &get(op::GET, b"after"));

    // Protocol errors close the connection.
    p.case(
        "get with extras: invalid",
        &request(op::GET, 11, 0, &[0; 4], b"k", &[]),
    );
    p.case(
        "get without key: invalid",
        &request(op::GET, 11, 0, &[], &[], &[]),
    );
    p.case(
        "set without extras: invalid",
        &request(op::SET, 11, 0, &[], b"k", b"v"),
    );
    p.case(
        "incr short extras: invalid",
        &request(op::INCREMENT, 11, 0, &[0; 8], b"k", &[]),
    );
    p.case(
        "noop with body: invalid",
        &request(op::NOOP, 11, 0, &[], &[], b"x"),
    );
    p.case(
        "flush with key: invalid",
        &request(op::FLUSH, 11, 0, &[], b"k", &[]),
    );
    p.case("key of 251: invalid", &get(op::GET, &[b'k'; 251]));
    let mut bad = request(op::GET, 12, 0, &[], b"key", &[]);
    bad[8..12].copy_from_slice(&1u32.to_be_bytes());
    p.case("key longer than body", &bad);
    let mut magic = request(op::GET, 13, 0, &[], b"key", &[]);
    magic[0] = 0x82;
    // (Mid-connection: a first byte other than 0x80 selects the text protocol instead.)
    p.case(
        "bad magic",
        &cat(&[request(op::NOOP, 1, 0, &[], &[], &[]), magic]),
    );
    p.case("quit", &request(op::QUIT, 14, 0, &[], &[], &[]));
    p.finish();
}

#[test]
fn flush_disabled_is_auth_error_like_memcached() {
    let mut p = BinPair::new(&["-F"]);
    p.case("flush with -F", &request(op::FLUSH, 1, 0, &[], &[], &[]));
    p.finish();
}

/// `stat` packets carry the same names, in the same order, as the text `stats` groups.
#[test]
fn stat_groups_match_the_text_protocol() {
    let fc = Server::start(&[]);
    for group in ["", "settings", "items", "slabs"] {
        let mut t = fc.connect();
        let cmd = if group.is_empty() {
            "stats\r\n".to_string()
        } else {
            format!("stats {group}\r\n")
        };
        let text = exchange(&mut t, cmd.as_bytes());
        let names: Vec<String> = show(&text)
            .lines()
            .filter_map(|l| {
                l.strip_prefix("STAT ")
                    .map(|r| r.split(' ').next().unwrap_or("").to_string())
            })
            .filter(|n| {
                !matches!(
                    n.as_str(),
                    "uptime" | "time" | "rusage_user" | "rusage_system"
                )
            })
            .collect();
        let mut b = connect(fc.addr);
        let (resps, closed) = bin_exchange(
            &mut b,
            &request(op::STAT, 77, 0, &[], group.as_bytes(), &[]),
        );
        assert!(!closed);
        let last = resps.last().expect("terminator");
        assert!(
            last.key.is_empty() && last.value.is_empty() && last.status == 0,
            "terminator"
        );
        assert!(resps.iter().all(|r| r.opaque == 77 && r.opcode == op::STAT));
        let bnames: Vec<String> = resps[..resps.len() - 1]
            .iter()
            .map(|r| show(&r.key))
            .filter(|n| {
                !matches!(
                    n.as_str(),
                    "uptime" | "time" | "rusage_user" | "rusage_system"
                )
            })
            .collect();
        assert_eq!(names, bnames, "stats group {group:?}");
    }
}

/// A header that claims a huge body neither allocates it nor hangs the worker: the value is
/// skipped as it arrives, and other connections are served meanwhile.
#[test]
fn huge_claimed_lengths_are_skipped_not_buffered() {
    let fc = Server::start(&["-t", "1"]);
    let mut s = connect(fc.addr);
    let mut h = request(op::SET, 1, 0, &set_extras(0, 0), b"k", &[]);
    h[8..12].copy_from_slice(&u32::MAX.to_be_bytes());
    s.write_all(&h).unwrap();
    // The refusal comes at once, before any of the 4 GB arrives.
    let mut buf = vec![0u8; 24 + 10];
    s.read_exact(&mut buf).unwrap();
    let (r, _) = parse_response(&buf).unwrap();
    assert_eq!((r.status, &r.value[..]), (3, &b"Too large."[..]));
    // Another client is unaffected.
    let mut other = connect(fc.addr);
    let (rs, _) = bin_exchange(&mut other, &request(op::VERSION, 2, 0, &[], &[], &[]));
    assert_eq!(rs[0].value, b"1.6.18");
    let rss = fc.rss_kib();
    assert!(rss < 200 * 1024, "rss {rss} KiB");
}

/// Text and binary clients share one store.
#[test]
fn binary_and_text_share_items() {
    let fc = Server::start(&[]);
    let mut b = connect(fc.addr);
    let (r, _) = bin_exchange(
        &mut b,
        &request(op::SET, 1, 0, &set_extras(5, 0), b"shared", b"from-binary"),
    );
    assert_eq!(r[0].status, 0);
    let mut t = fc.connect();
    assert_eq!(
        exchange(&mut t, b"get shared\r\n"),
        b"VALUE shared 5 11\r\nfrom-binary\r\nEND\r\n"
    );
    exchange(&mut t, b"set t 3 0 4\r\ntext\r\n");
    let (r, _) = bin_exchange(&mut b, &request(op::GETK, 2, 0, &[], b"t", &[]));
    assert_eq!(
        (&r[0].extras[..], &r[0].value[..]),
        (&3u32.to_be_bytes()[..], &b"text"[..])
    );
}

/// memcached skips `bodylen` bytes after an unknown opcode's extras and key, eating into the
/// next request; ferrocache skips only the rest of the unknown request (docs/protocol.md).
#[test]
fn unknown_opcode_skips_exactly_its_own_body() {
    let fc = Server::start(&[]);
    let mut b = connect(fc.addr);
    let (r, closed) = bin_exchange(
        &mut b,
        &request(op::VERBOSITY, 7, 0, &1u32.to_be_bytes(), b"key", b"val"),
    );
    assert!(!closed);
    assert_eq!(
        (r.len(), r[0].status, &r[0].value[..]),
        (1, 0x81, &b"Unknown command"[..])
    );
}

/// QUITQ closes without a reply (memcached 1.6.18 leaves such a connection open but deaf).
#[test]
fn quitq_closes_silently() {
    let fc = Server::start(&[]);
    let mut b = connect(fc.addr);
    let (r, closed) = bin_exchange(&mut b, &request(op::QUITQ, 7, 0, &[], &[], &[]));
    assert!(closed && r.is_empty(), "{r:?}");
}

/// `-B binary` and `-B ascii` fix the protocol whatever the first byte.
#[test]
fn protocol_flag_selects_the_protocol() {
    let fc = Server::start(&["-B", "binary"]);
    let mut s = connect(fc.addr);
    s.write_all(b"version\r\nxxxxxxxxxxxxxxxxxxxxxxxxxxxx")
        .unwrap();
    assert!(
        read_to_close(&mut s).is_empty(),
        "text on a binary-only server is closed"
    );
    let mut b = connect(fc.addr);
    let (r, closed) = bin_exchange(&mut b, &request(op::VERSION, 1, 0, &[], &[], &[]));
    assert!(!closed && r[0].value == b"1.6.18");
    let fa = Server::start(&["-B", "ascii"]);
    let mut s = connect(fa.addr);
    s.write_all(&request(op::VERSION, 1, 0, &[], &[], &[]))
        .unwrap();
    s.write_all(b"\r\nversion\r\n").unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    while !show(&got).contains("VERSION 1.6.18\r\n") {
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "closed: {}", show(&got));
        got.extend_from_slice(&chunk[..n]);
    }
    assert!(show(&got).starts_with("ERROR\r\n"), "{}", show(&got));
}

/// With `-C` (no CAS) every CAS field is 0, as in memcached.
#[test]
fn no_cas_mode_matches_memcached() {
    let mut p = BinPair::new(&["-C"]);
    let set = request(op::SET, 1, 0, &set_extras(1, 0), b"k", b"v");
    p.case("set", &set);
    let (a, b) = p.case("get", &request(op::GET, 2, 0, &[], b"k", &[]));
    assert!(
        a.iter().chain(&b).all(|r| r.cas == 0),
        "cas must be 0 with -C"
    );
    p.case(
        "incr creates",
        &request(op::INCREMENT, 3, 0, &incr_extras(1, 7, 0), b"n", &[]),
    );
    p.case(
        "incr",
        &request(op::INCREMENT, 3, 0, &incr_extras(1, 0, 0), b"n", &[]),
    );
    p.case(
        "touch",
        &request(op::TOUCH, 4, 0, &10u32.to_be_bytes(), b"k", &[]),
    );
    p.finish();
}
