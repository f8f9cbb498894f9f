//! Meta protocol (`mg ms md ma mn me`): differential tests against memcached 1.6.18 (the same
//! bytes to both servers, replies compared after masking what legitimately differs), quiet
//! pipelines, property tests of the meta parser, and a real meta client.

mod common;
use common::*;

use std::net::TcpStream;

use ferrocache::protocol::ascii::{Command, Tokens};
use ferrocache::protocol::meta::{parse_meta, MetaCmd};
use ferrocache::protocol::parse_ascii as parse;
use ferrocache::protocol::{Limits, Parsed};
use proptest::prelude::*;

fn oracle() -> Server {
    Server::memcached(&[]).expect(
        "the reference memcached is needed for differential tests: apt-get install memcached",
    )
}

/// Replaces the digits of the named return flags (`t`, `l`, ...) and `me` fields (`la=`, ...)
/// with `#`: they depend on when each server's clock ticks, or on its item layout.
fn mask(reply: &[u8], flags: &[u8], fields: &[&str]) -> String {
    let text = show(reply);
    let mut out = String::new();
    for line in text.split_inclusive("\r\n") {
        let is_header = ["VA ", "HD", "EN", "NF", "NS", "EX", "ME "]
            .iter()
            .any(|p| line.starts_with(p));
        if !is_header {
            out.push_str(line);
            continue;
        }
        let body = line.trim_end_matches("\r\n");
        let words: Vec<String> = body
            .split(' ')
            .enumerate()
            .map(|(i, w)| {
                let digits = |s: &str| -> String {
                    s.chars()
                        .map(|c| {
                            if c.is_ascii_digit() || c == '-' {
                                '#'
                            } else {
                                c
                            }
                        })
                        .collect()
                };
                if i > 0 && !body.starts_with("ME ") {
                    if let Some(&f) = w.as_bytes().first() {
                        if flags.contains(&f) {
                            return format!("{}{}", f as char, digits(&w[1..]));
                        }
                    }
                }
                for field in fields {
                    if let Some(v) = w.strip_prefix(field) {
                        return format!("{field}{}", digits(v));
                    }
                }
                w.to_string()
            })
            .collect();
        out.push_str(&words.join(" "));
        out.push_str("\r\n");
    }
    out
}

/// Both servers, one connection each.
struct Pair {
    _ours: Server,
    _theirs: Server,
    a: TcpStream,
    b: TcpStream,
}

impl Pair {
    fn new() -> Pair {
        let ours = Server::start(&[]);
        let theirs = oracle();
        let a = ours.connect();
        let b = theirs.connect();
        Pair {
            _ours: ours,
            _theirs: theirs,
            a,
            b,
        }
    }

    /// Sends each request to both servers; returns every difference (after masking).
    fn run(&mut self, reqs: &[&str], flags: &[u8], fields: &[&str]) -> Vec<String> {
        let mut diffs = Vec::new();
        for r in reqs {
            let ours = mask(&exchange(&mut self.a, r.as_bytes()), flags, fields);
            let theirs = mask(&exchange(&mut self.b, r.as_bytes()), flags, fields);
            if ours != theirs {
                diffs.push(format!(
                    "request {r:?}\n  ferrocache: {ours:?}\n  memcached:  {theirs:?}"
                ));
            }
        }
        diffs
    }
}

/// Runs a script on a fresh pair of servers and fails with every difference.
fn same(reqs: &[&str]) {
    same_masked(reqs, b"tl", &["exp=", "la=", "cls=", "size="]);
}

fn same_masked(reqs: &[&str], flags: &[u8], fields: &[&str]) {
    let diffs = Pair::new().run(reqs, flags, fields);
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}

// ----- differential tests -------------------------------------------------------------------

#[test]
fn errors_match() {
    let k251 = format!("mg {} v\r\n", "a".repeat(251));
    let ms251 = format!("ms {} 1\r\nx\r\n", "a".repeat(251));
    let md251 = format!("md {}\r\n", "a".repeat(251));
    let ma251 = format!("ma {}\r\n", "a".repeat(251));
    let me251 = format!("me {}\r\n", "a".repeat(251));
    let many = (0..18).map(|i| i.to_string()).collect::<Vec<_>>().join(" ");
    let mg_many = format!("mg k {many}\r\n");
    let md_many = format!("md k {many}\r\n");
    let ma_many = format!("ma k {many}\r\n");
    let ms_many = format!("ms k 1 {many}\r\nx\r\n");
    let long_o = format!("O{}", "1".repeat(32));
    let mg_o = format!("mg k v {long_o}\r\n");
    let md_o = format!("md k {long_o}\r\n");
    let ms_o = format!("ms k 1 {long_o}\r\nx\r\n");
    let ms_o_mode = format!("ms k 1 {long_o} MX\r\nx\r\n");
    let reqs = [
        "mg\r\n",
        "ms\r\n",
        "md\r\n",
        "ma\r\n",
        "me\r\n",
        "mx k\r\n",
        "ms k\r\n",
        "ms k -1\r\nx\r\n",
        "ms k 1x\r\nx\r\n",
        &k251,
        &ms251,
        &md251,
        &ma251,
        &me251,
        &mg_many,
        &md_many,
        &ma_many,
        &ms_many,
        &mg_o,
        &md_o,
        &ms_o,
        &ms_o_mode,
        "mg k v v\r\n",
        "mg k vv\r\n",
        "mg k E5\r\n",
        "mg k x\r\n",
        "mg k W\r\n",
        "mg k Nx\r\n",
        "mg k Rx\r\n",
        "mg k T\r\n",
        "mg k Cx\r\n",
        "mg k Tx Nx X\r\n",
        "mg k \u{00e9}\r\n",
        "mg ===== b\r\n",
        "mg Zm9vYg b v\r\n",
        "ms k 2 MX\r\nhi\r\n",
        "ms k 2 MEE\r\nhi\r\n",
        "ms k 2 M\r\nhi\r\n",
        "ms k 2 S5\r\nhi\r\n",
        "ms k 2 E5\r\nhi\r\n",
        "ms k 2 k b\r\nhi\r\n",
        "ms k 2 Fx\r\nhi\r\n",
        "ms k 2 F-1\r\nhi\r\n",
        "ms k 2 T\r\nhi\r\n",
        "ms k 2 C\r\nhi\r\n",
        "ms k 2 Tx Fx\r\nhi\r\n",
        "ms k 2 c c\r\nhi\r\n",
        "ms k 1 q O1\r\nxy\r\n",
        "md k Cx\r\n",
        "md k X\r\n",
        "md k E1\r\n",
        "md k x\r\n",
        "md k k k\r\n",
        "md k b\r\n",
        "ma k Mx\r\n",
        "ma k MII\r\n",
        "ma k Dx\r\n",
        "ma k Jx\r\n",
        "ma k E1\r\n",
        "ma k b\r\n",
        "ma k D18446744073709551616\r\n",
        "me k b\r\n",
        "me k x y\r\n",
    ];
    same(&reqs);
}

#[test]
fn mg_flags_match() {
    same(&[
        "mg k v\r\n",
        "mg k v k O5 s t c f h l\r\n",
        "ms k 2 T0 F5 c k O123\r\nhi\r\n",
        "mg k v f t c s k O9 h l\r\n",
        "mg k h l\r\n",
        "mg k\r\n",
        "mg k q\r\n",
        "mg k C1 v c\r\n",
        "mg k F5 I D1 J1 MS P L\r\n",
        "mg k s v u\r\n",
        "mg k O\r\n",
        "ms t 1 T100\r\nx\r\n",
        "mg t t v\r\n",
        "mg t T5 t v\r\n",
        "mg t t T-1 v\r\n",
        "mg t v\r\n",
        "mg zz T5 t v\r\n",
    ]);
}

#[test]
fn mg_no_bump_keeps_fetch_state() {
    same(&[
        "ms k 1\r\nx\r\n",
        "mg k u h v\r\n",
        "mg k u h\r\n",
        "me k\r\n",
        "mg k h\r\n",
        "mg k h\r\n",
        "me k\r\n",
    ]);
}

#[test]
fn ms_modes_match() {
    same(&[
        "ms k 2 c\r\nhi\r\n",
        "ms k 2 ME c k O1\r\nhi\r\n",
        "ms nk 2 MR c\r\nhi\r\n",
        "ms nk 2 MA\r\nhi\r\n",
        "ms nk 2 MP\r\nhi\r\n",
        "ms k 2 MA c\r\nyo\r\n",
        "mg k v c\r\n",
        "ms k 2 MP T100 F9\r\nab\r\n",
        "mg k v f t\r\n",
        "ms k 2 MS F7 T0\r\nzz\r\n",
        "mg k v f\r\n",
        "ms k 2 MR\r\nrr\r\n",
        "mg k v\r\n",
        "ms k 2 C1\r\nhi\r\n",
        "ms k 2 C1 c\r\nhi\r\n",
        "ms nk2 2 C1\r\nhi\r\n",
        "ms nk2 2 C1 ME\r\nhi\r\n",
        "ms nk2 2 C1 MA\r\nhi\r\n",
        "ms nk2 2 C0 MA\r\nhi\r\n",
        "mg nk2 v\r\n",
        "mg k c\r\n",
        "ms k 2 C9 c MR\r\nhi\r\n",
        "ms k 2 C10 c\r\nhi\r\n",
        "ms k 2 t f h l u R5 N5 v D5 J5 P1 L1 s\r\nhi\r\n",
        "ms k 0\r\n\r\n",
        "mg k v s\r\n",
        "ms k 1 T-1\r\nx\r\n",
        "mg k v\r\n",
        "ms k 1 I\r\nx\r\n",
        "mg k v\r\n",
    ]);
}

#[test]
fn md_matches() {
    same(&[
        "md k\r\n",
        "md k q\r\n",
        "md k q O1 k\r\n",
        "ms k 1\r\n1\r\n",
        "md k q\r\n",
        "md k\r\n",
        "ms k 1\r\n1\r\n",
        "mg k c\r\n",
        "md k C1\r\n",
        "md k C1 q\r\n",
        "md k C0\r\n",
        "md k C3 O9 k\r\n",
        "mg k v\r\n",
        "md k v f t s h l u N5 R5 F5 J1 D1 MA P L\r\n",
        "ms k 1\r\n1\r\n",
        "md k T30\r\n",
        "mg k t\r\n",
    ]);
}

#[test]
fn ma_matches() {
    same(&[
        "ma n\r\n",
        "ma n q\r\n",
        "ma n q O1 k\r\n",
        "ma n N0 J10\r\n",
        "ma n v\r\n",
        "ma n v t c k O1 N0 T50\r\n",
        "ma n v t\r\n",
        "ma n2 N0 J10 v t c\r\n",
        "ma n2 N100 J10 v t c\r\n",
        "ma n3 N100 J10 v t T20\r\n",
        "ma n3 t v\r\n",
        "ma n3 MD D100 v\r\n",
        "ma n3 M- D3 v\r\n",
        "ma n3 M+ D3 v\r\n",
        "ma n3 MI v\r\n",
        "ma n3 Md v\r\n",
        "ma n3 C1 v\r\n",
        "ma n3 C0 v\r\n",
        "mg n3 c\r\n",
        "ma n3 C6 v c\r\n",
        "ma n3 q\r\n",
        "ma n3 q v\r\n",
        "ma nope q O1\r\n",
        "ma n4 q N0\r\n",
        "ms s 1\r\nx\r\n",
        "ma s\r\n",
        "ma s q\r\n",
        "ma n3 f s h l u R5 F5 P L I\r\n",
        "ma n3 D18446744073709551615 v\r\n",
        "ms w 3\r\n100\r\n",
        "ma w MD D1 v\r\n",
        "mg w v s\r\n",
        "ms w 20\r\n18446744073709551615\r\n",
        "ma w v\r\n",
        "ma cn O123456789012345678901234567890123 N0 v\r\n",
        "ma cn v\r\n",
    ]);
}

#[test]
fn base64_keys_match() {
    same(&[
        "mg Zm9v b k v\r\n",
        "ms Zm9v 1 b k c\r\nx\r\n",
        "mg Zm9v b k v\r\n",
        "mg foo v k\r\n",
        "me foo\r\n",
        "me Zm9v b\r\n",
        "ms bar 1\r\ny\r\n",
        "mg YmFy b k v\r\n",
        "me YmFy b\r\n",
        "mg miss v k O5 b\r\n",
        "mg Zm9= b k\r\n",
        "mg Zm=v b k\r\n",
        "mg ==== b k\r\n",
        "mg Zh== b k\r\n",
        "mg Z*m9v b k\r\n",
        "mg AAECAwQF b k N30\r\n",
        "mg AAECAwQF b k v\r\n",
        "ma Y250 b N0 k v\r\n",
        "mg cnt k v\r\n",
        "md Zm9v b k\r\n",
        "md Zm9v b k q\r\n",
        "mg Zm9v b k\r\n",
    ]);
}

#[test]
fn stale_win_recache_match() {
    same(&[
        "ms k 1 T100\r\n1\r\n",
        "md k I T30 k\r\n",
        "mg k v c t\r\n",
        "mg k v c t\r\n",
        "ms k 1 C2 I c\r\nX\r\n",
        "mg k v c\r\n",
        "ms k 1 C3 c\r\nY\r\n",
        "ms k 1 C4 I\r\nZ\r\n",
        "mg k v c\r\n",
        "mg k v c\r\n",
        "ms k 1 c\r\nn\r\n",
        "mg k v c\r\n",
        "md k I\r\n",
        "mg k v c\r\n",
        "mg av N30 v c t s f h l k O1\r\n",
        "mg av N30 v c t\r\n",
        "mg av v c t\r\n",
        "mg av2 s t N30 q\r\n",
        "mg av3 q k O1\r\n",
        "ms r 1 T100\r\nx\r\n",
        "mg r R30 v t\r\n",
        "mg r R200 v t c\r\n",
        "mg r R200 v t\r\n",
        "ms r2 1\r\nx\r\n",
        "mg r2 R200 v t\r\n",
        "md r I\r\n",
        "mg r R200 v\r\n",
        "mg r v\r\n",
    ]);
}

#[test]
fn quiet_pipeline_ends_with_mn() {
    let pipeline = concat!(
        "ms a 1 q\r\n1\r\n",
        "ms b 1 q O2\r\n2\r\n",
        "ms c 1 q MR\r\n3\r\n",
        "mg a v q k\r\n",
        "mg zz v q k O5\r\n",
        "mg b v q O6\r\n",
        "md b q\r\n",
        "md b q O7\r\n",
        "ma a q\r\n",
        "ma a q v O8\r\n",
        "ma zz q O9\r\n",
        "mg a v q\r\n",
        "mg bad q Tx\r\n",
    );
    same(&[pipeline]);
    let srv = Server::start(&[]);
    let mut c = srv.connect();
    assert_eq!(
        show(&exchange(&mut c, pipeline.as_bytes())),
        concat!(
            "NS\r\n",
            "VA 1 ka\r\n1\r\n",
            "VA 1 O6\r\n2\r\n",
            "NF O7\r\n",
            "NF O9\r\n",
            "VA 1\r\n3\r\n",
            "CLIENT_ERROR bad token in command line format\r\n"
        )
    );
}

#[test]
fn me_and_mixed_classic_commands_match() {
    same(&[
        "set k 5 0 2\r\nhi\r\n",
        "mg k v f c\r\n",
        "me k\r\n",
        "gets k\r\n",
        "ms k 3 F6\r\nabc\r\n",
        "get k\r\n",
        "append k 0 0 1\r\nd\r\n",
        "mg k v s\r\n",
        "set n 0 0 1\r\n5\r\n",
        "ma n v\r\n",
        "incr n 2\r\n",
        "ma n MD D3 v c\r\n",
        "gets n\r\n",
        "md k I\r\n",
        "get k\r\n",
        "mg k v\r\n",
        "delete k\r\n",
        "mg k v\r\n",
        "touch n 100\r\n",
        "mg n t\r\n",
        "me n\r\n",
        "me nope\r\n",
        "flush_all\r\n",
        "mg n v\r\n",
        "me n\r\n",
    ]);
}

#[test]
fn mn_answers_and_flushes() {
    use std::io::{Read, Write};
    let srv = Server::start(&[]);
    let mut c = srv.connect();
    c.write_all(b"mn extra\r\n").unwrap();
    let mut buf = [0u8; 4];
    c.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"MN\r\n");
    assert_eq!(show(&exchange(&mut c, b"mg k\r\n")), "EN\r\n");
}

#[test]
fn ms_errors_swallow_data_like_memcached() {
    // A flag error after a valid length swallows the block; a length error does not.
    same(&[
        "ms k 5 Z\r\nget x\r\n",
        "ms k 5 O123456789012345678901234567890123\r\nget x\r\n",
        "ms k xx Z\r\nget x\r\n",
    ]);
}

#[test]
fn ms_too_large_drops_old_value() {
    let big = format!("ms k 2000000 T0\r\n{}\r\n", "x".repeat(2_000_000));
    same(&["ms k 1\r\nx\r\n", &big, "mg k v\r\n"]);
}

#[test]
fn stats_counters_match() {
    let script = concat!(
        "mg a v\r\nmg a T5 v\r\nms a 1\r\n1\r\nmg a v\r\nmg a T5\r\nmg a v N5\r\nmg b N5\r\n",
        "md a\r\nmd a\r\nms a 1\r\n1\r\nmd a C99\r\nmd a I\r\nma a\r\nma a MD\r\nma zz\r\n",
        "ma zz MD\r\nma zz2 N0\r\nma a C1\r\nme a\r\nme zz\r\nms a 1 C1\r\n1\r\nms q 1 ME\r\n1\r\n",
        "ms a 1 I C1\r\n1\r\nms nf 1 C1\r\n1\r\n",
    );
    let mut p = Pair::new();
    let diffs = p.run(&[script], b"tlc", &["size=", "cls="]);
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
    let pick = |s: &mut TcpStream| -> String {
        show(&exchange(s, b"stats\r\n"))
            .lines()
            .filter(|l| {
                [
                    "cmd_get ",
                    "cmd_set ",
                    "cmd_touch ",
                    "cmd_meta ",
                    "get_hits ",
                    "get_misses ",
                    "delete_",
                    "incr_",
                    "decr_",
                    "cas_",
                    "touch_",
                    "curr_items ",
                    "total_items ",
                ]
                .iter()
                .any(|k| l.starts_with(&format!("STAT {k}")))
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let ours = pick(&mut p.a);
    let theirs = pick(&mut p.b);
    assert_eq!(ours, theirs);
}

#[test]
fn cas_disabled_reports_zero() {
    let srv = Server::start(&["-C"]);
    let mut c = srv.connect();
    assert_eq!(
        show(&exchange(&mut c, b"ms k 1 c\r\nx\r\nmg k c v\r\n")),
        "HD c0\r\nVA 1 c0\r\nx\r\n"
    );
}

#[test]
fn split_ms_across_writes() {
    use std::io::Write;
    let srv = Server::start(&[]);
    let mut c = srv.connect();
    for b in b"ms k 5 T0 c\r\nhello\r\nmg k v\r\n" {
        c.write_all(&[*b]).unwrap();
    }
    assert_eq!(show(&exchange(&mut c, b"")), "HD c1\r\nVA 5\r\nhello\r\n");
}

// ----- a real meta client -------------------------------------------------------------------

#[test]
fn meta_memcache_python_client() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients/meta_client.py");
    let probe = std::process::Command::new("python3")
        .args(["-c", "import meta_memcache"])
        .status();
    assert!(
        matches!(probe, Ok(s) if s.success()),
        "the meta client test needs python3 with meta-memcache: pip install meta-memcache"
    );
    let srv = Server::start(&[]);
    let out = std::process::Command::new("python3")
        .arg(script)
        .arg(srv.addr.port().to_string())
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "meta client failed:\n{}\n{}",
        show(&out.stdout),
        show(&out.stderr)
    );
    assert!(show(&out.stdout).contains("ok"), "{}", show(&out.stdout));
}

// ----- parser properties --------------------------------------------------------------------

fn tokens_of(line: &[u8]) -> Tokens<'_> {
    Tokens::new(line)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any words after a meta command parse to a request or an error line, never a panic.
    #[test]
    fn meta_parser_never_panics(
        cmd in prop::sample::select(vec!["mg", "ms", "md", "ma", "me", "mx"]),
        words in prop::collection::vec(
            prop::collection::vec(prop::num::u8::ANY.prop_filter("no space", |b| *b != b' '), 0..40),
            0..26,
        ),
    ) {
        let mut line = cmd.as_bytes().to_vec();
        for w in &words {
            line.push(b' ');
            line.extend_from_slice(w);
        }
        if let Ok(req) = parse_meta(tokens_of(&line), b"") {
            prop_assert!(req.key().len() <= 250);
            let _ = req.flag_words().count();
        }
    }

    /// Flag-looking words: the parse is deterministic, and a success carries a sane key.
    #[test]
    fn meta_flags_parse_consistently(
        cmd in prop::sample::select(vec!["mg", "md", "ma", "me"]),
        key in "[A-Za-z0-9+/=]{1,12}",
        flags in prop::collection::vec("[a-zA-Z+\\-][0-9a-zA-Z=\\-]{0,6}", 0..8),
    ) {
        let line = format!("{cmd} {key} {}", flags.join(" "));
        let a = parse_meta(tokens_of(line.as_bytes()), b"").map(|r| (r.cmd, r.flags, r.key().to_vec()));
        let b = parse_meta(tokens_of(line.as_bytes()), b"").map(|r| (r.cmd, r.flags, r.key().to_vec()));
        prop_assert_eq!(&a, &b);
        if let Ok((c, _, k)) = a {
            prop_assert_ne!(c, MetaCmd::Set);
            prop_assert!(!k.is_empty());
        }
    }

    /// Every proper prefix of a valid `ms` request is Incomplete; the whole is one Meta command.
    #[test]
    fn ms_prefixes_are_incomplete(
        key in "[a-z]{1,20}",
        data in prop::collection::vec(any::<u8>(), 0..64),
        flags in prop::sample::subsequence(vec!["T10", "F5", "c", "k", "q", "O99", "MS", "C0"], 0..5),
    ) {
        let mut req = format!("ms {key} {} {}", data.len(), flags.join(" ")).into_bytes();
        req.extend_from_slice(b"\r\n");
        req.extend_from_slice(&data);
        req.extend_from_slice(b"\r\n");
        let lim = Limits::default();
        for n in 0..req.len() {
            prop_assert!(matches!(parse(&req[..n], &lim), Ok(Parsed::Incomplete)), "prefix {n}");
        }
        match parse(&req, &lim) {
            Ok(Parsed::Complete(Command::Meta { data: d, .. }, used)) => {
                prop_assert_eq!(used, req.len());
                prop_assert_eq!(d, &data[..]);
            }
            other => prop_assert!(false, "unexpected {:?}", other),
        }
    }
}
