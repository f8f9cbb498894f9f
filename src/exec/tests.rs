//! Executor tests without sockets: requests are parsed with `protocol::*` and executed with
//! `exec::*` against a `Shared` built from a command line, every complete request of the input in
//! turn, and the replies compared byte for byte.
#![allow(clippy::unwrap_used, clippy::panic)]

use super::{binary, text, Action, ConnRef, Ctx, Session};
use crate::config::{Config, PROTOCOL_VERSION};
use crate::protocol::binary::{op, parse_response, request, Response};
use crate::protocol::{self, Limits, Parsed};
use crate::state::Shared;

/// A server without sockets: its shared state and one connection's session.
struct Server {
    sh: Shared,
    session: Session,
}

impl Server {
    fn new(args: &[&str]) -> Server {
        let argv = std::iter::once("ferrocache").chain(args.iter().copied());
        Server {
            sh: Shared::new(Config::from_args(argv).unwrap()),
            session: Session::default(),
        }
    }

    fn limits(&self) -> Limits {
        super::limits(&self.sh)
    }

    fn ctx(&self) -> Ctx<'_> {
        Ctx::new(
            &self.sh,
            ConnRef {
                udp_peer: None,
                id: 1,
                worker: 0,
                admin: false,
            },
        )
    }

    /// Runs every ASCII request in `input`; returns the replies.
    fn text(&mut self, input: &[u8]) -> Vec<u8> {
        let (lim, ctx) = (self.limits(), self.ctx());
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < input.len() {
            let Ok(Parsed::Complete(cmd, used)) = protocol::parse_ascii(&input[pos..], &lim) else {
                panic!("not one complete request at {pos} of {input:?}");
            };
            pos += used;
            match text::execute(cmd, &ctx, &mut out) {
                Action::Swallow(n) => pos += n,
                Action::Dump(mut d) => while !d.step(&ctx, &mut out, 100) {},
                Action::Close | Action::Shutdown(_) => break,
                _ => {}
            }
        }
        out
    }

    /// Runs every binary request in `input`; returns the responses.
    fn binary(&mut self, input: &[u8]) -> Vec<Response> {
        let lim = self.limits();
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < input.len() {
            let Ok(Parsed::Complete(frame, used)) = protocol::binary::parse(&input[pos..], &lim)
            else {
                panic!("not one complete request at {pos}");
            };
            pos += used + frame.skip;
            let ctx = Ctx::new(&self.sh, self.ctx().conn);
            if binary::execute(&frame, &ctx, &mut self.session, &mut out) == Action::Close {
                break;
            }
        }
        let mut responses = Vec::new();
        let mut at = 0;
        while let Some((r, used)) = parse_response(&out[at..]) {
            responses.push(r);
            at += used;
        }
        assert_eq!(at, out.len(), "trailing bytes after the responses");
        responses
    }
}

/// Text or meta requests on a fresh default server give exactly `want`.
fn check(input: &[u8], want: &str) {
    check_with(&[], input, want);
}

fn check_with(args: &[&str], input: &[u8], want: &str) {
    let got = Server::new(args).text(input);
    assert_eq!(
        String::from_utf8_lossy(&got),
        want,
        "input {:?}",
        String::from_utf8_lossy(input)
    );
}

/// Binary requests on a fresh default server: (opcode, status, value) of every response.
fn check_bin(input: &[u8], want: &[(u8, u16, &[u8])]) {
    let got = Server::new(&[]).binary(input);
    let got: Vec<(u8, u16, &[u8])> = got
        .iter()
        .map(|r| (r.opcode, r.status, &r.value[..]))
        .collect();
    assert_eq!(got, want);
}

fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

// ----- text -------------------------------------------------------------------------------

#[test]
fn text_storage_commands() {
    check(b"set a 0 0 1\r\nx\r\n", "STORED\r\n");
    check(
        b"set a 5 0 2\r\nxy\r\nget a\r\n",
        "STORED\r\nVALUE a 5 2\r\nxy\r\nEND\r\n",
    );
    check(
        b"add a 0 0 1\r\nx\r\nadd a 0 0 1\r\ny\r\n",
        "STORED\r\nNOT_STORED\r\n",
    );
    check(b"replace a 0 0 1\r\nx\r\n", "NOT_STORED\r\n");
    check(
        b"set a 0 0 1\r\nb\r\nappend a 0 0 1\r\nc\r\nprepend a 0 0 1\r\na\r\nget a\r\n",
        "STORED\r\nSTORED\r\nSTORED\r\nVALUE a 0 3\r\nabc\r\nEND\r\n",
    );
    check(b"append a 0 0 1\r\nc\r\n", "NOT_STORED\r\n");
    check(b"cas a 0 0 1 1\r\nx\r\n", "NOT_FOUND\r\n");
}

#[test]
fn text_cas_round_trip() {
    let mut s = Server::new(&[]);
    let out = s.text(b"set a 0 0 1\r\nx\r\ngets a\r\n");
    let out = String::from_utf8(out).unwrap();
    let cas: u64 = out
        .lines()
        .nth(1)
        .and_then(|l| l.split(' ').nth(4))
        .and_then(|c| c.parse().ok())
        .unwrap();
    assert_ne!(cas, 0);
    let req = format!(
        "cas a 0 0 1 {}\r\ny\r\ncas a 0 0 1 {cas}\r\nz\r\nget a\r\n",
        cas + 1
    );
    assert_eq!(
        s.text(req.as_bytes()),
        b"EXISTS\r\nSTORED\r\nVALUE a 0 1\r\nz\r\nEND\r\n"
    );
}

#[test]
fn text_retrieval_and_touch() {
    check(b"get a b\r\n", "END\r\n");
    check(
        b"set a 0 0 1\r\n1\r\nset b 0 0 1\r\n2\r\nget a zz b\r\n",
        "STORED\r\nSTORED\r\nVALUE a 0 1\r\n1\r\nVALUE b 0 1\r\n2\r\nEND\r\n",
    );
    check(
        b"set a 0 0 1\r\n1\r\ntouch a 100\r\ntouch b 100\r\ngat 0 a b\r\n",
        "STORED\r\nTOUCHED\r\nNOT_FOUND\r\nVALUE a 0 1\r\n1\r\nEND\r\n",
    );
    // A key over 250 bytes discards what the get already wrote.
    let long = "k".repeat(251);
    check(
        format!("set a 0 0 1\r\n1\r\nget a {long}\r\n").as_bytes(),
        "STORED\r\nCLIENT_ERROR bad command line format\r\n",
    );
}

#[test]
fn text_delete_and_arith() {
    check(
        b"set a 0 0 1\r\n1\r\ndelete a\r\ndelete a\r\n",
        "STORED\r\nDELETED\r\nNOT_FOUND\r\n",
    );
    check(
        b"set n 0 0 2\r\n10\r\nincr n 5\r\ndecr n 20\r\nincr m 1\r\n",
        "STORED\r\n15\r\n0\r\nNOT_FOUND\r\n",
    );
    check(
        b"set s 0 0 1\r\nx\r\nincr s 1\r\n",
        "STORED\r\nCLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
    );
    check(
        b"incr n x\r\n",
        "CLIENT_ERROR invalid numeric delta argument\r\n",
    );
}

#[test]
fn text_noreply_hides_replies_and_errors() {
    check(
        b"set a 0 0 1 noreply\r\nx\r\nadd a 0 0 1 noreply\r\ny\r\nget a\r\n",
        "VALUE a 0 1\r\nx\r\nEND\r\n",
    );
    check(
        b"set n 0 0 1 noreply\r\n1\r\nincr n 1 noreply\r\ndecr zz 1 noreply\r\ntouch n 1 noreply\r\n\
          delete n noreply\r\ndelete n noreply\r\nflush_all noreply\r\nverbosity 1 noreply\r\nget n\r\n",
        "END\r\n",
    );
    // The parser's own errors are hidden too, but a wrong token count is not a noreply command.
    check(b"incr n x noreply\r\nset a 0 0 z noreply\r\n", "");
    check(b"set a 0 0 1 noreply\r\nxyz", "");
    check(b"set a noreply\r\n", "ERROR\r\n");
}

#[test]
fn text_errors_and_swallowed_data() {
    check(b"bogus\r\n", "ERROR\r\n");
    check(b"\r\n", "ERROR\r\n");
    check(b"set a 0 0 1\r\nxyz", "CLIENT_ERROR bad data chunk\r\n");
    check_with(
        &["-I", "1k", "-o", "slab_chunk_max=1024"],
        &cat(&[
            b"set a 0 0 2000\r\n".to_vec(),
            vec![b'v'; 2000],
            b"\r\nget a\r\n".to_vec(),
        ]),
        "SERVER_ERROR object too large for cache\r\nEND\r\n",
    );
    check(
        b"delete a 1\r\n",
        "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n",
    );
}

#[test]
fn text_misc_commands() {
    check(b"version\r\n", &format!("VERSION {PROTOCOL_VERSION}\r\n"));
    check(
        b"verbosity 1\r\nverbosity x\r\n",
        "OK\r\nCLIENT_ERROR bad command line format\r\n",
    );
    check(
        b"set a 0 0 1\r\n1\r\nflush_all\r\nget a\r\n",
        "STORED\r\nOK\r\nEND\r\n",
    );
    check_with(
        &["-F"],
        b"flush_all\r\n",
        "CLIENT_ERROR flush_all not allowed\r\n",
    );
    check(b"shutdown\r\n", "ERROR: shutdown not enabled\r\n");
    check(b"shutdown now\r\n", "ERROR: shutdown not enabled\r\n");
    check_with(
        &["-A"],
        b"shutdown now\r\n",
        "CLIENT_ERROR invalid shutdown mode\r\n",
    );
    check_with(
        &["-W"],
        b"watch\r\n",
        "CLIENT_ERROR watch commands not allowed\r\n",
    );
    // 1.6.18 has no `deletions` stream; a watch behind a pipelined request is refused.
    check(b"watch fetchers deletions\r\n", "ERROR\r\n");
    check(
        b"touch a 1\r\nwatch\r\n",
        "NOT_FOUND\r\nERROR cannot pipeline other commands before watch\r\n",
    );
    check(b"quit\r\nversion\r\n", "");
}

#[test]
fn text_admin_commands() {
    check(
        b"cache_memlimit 4\r\ncache_memlimit 100\r\ncache_memlimit x\r\ncache_memlimit x noreply\r\n",
        "MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m\r\nOK\r\nERROR\r\n",
    );
    check(
        b"slabs automove 1\r\nslabs automove 3\r\nslabs automove x\r\nslabs reassign 1 1\r\nslabs foo\r\n",
        "OK\r\nERROR\r\nCLIENT_ERROR bad command line format\r\n\
         SAME src and dst class are identical\r\nERROR\r\n",
    );
    check(
        b"lru tune 10 10 0.1 0.1\r\nlru tune 50 50 0.1 0.1\r\nlru tune 10 10 0 0.1\r\n\
          lru tune x 10 0.1 0.1\r\nlru mode flat\r\nlru mode odd\r\nlru temp_ttl -1\r\nlru x\r\n\
          lru tune 50 50 0.1 0.1 noreply\r\n",
        "OK\r\nERROR hot and warm pcts must not exceed 80\r\n\
         ERROR hot/warm age factors must be greater than 0\r\nERROR\r\nOK\r\nERROR\r\nOK\r\nERROR\r\n",
    );
    check(
        b"lru_crawler sleep 2000000\r\nlru_crawler sleep x\r\nlru_crawler sleep 10\r\n\
          lru_crawler tocrawl 5\r\nlru_crawler crawl 0\r\nlru_crawler crawl all\r\n\
          lru_crawler disable\r\nlru_crawler crawl all\r\nlru_crawler enable\r\nlru_crawler\r\n",
        "CLIENT_ERROR sleep must be one second or less\r\nCLIENT_ERROR bad command line format\r\n\
         OK\r\nOK\r\nBADCLASS invalid class id\r\nOK\r\nOK\r\n\
         CLIENT_ERROR lru crawler disabled\r\nOK\r\nERROR\r\n",
    );
    check(
        b"set a 0 0 1\r\n1\r\nlru_crawler metadump all\r\n",
        "STORED\r\nERROR cannot pipeline other commands before metadump\r\n",
    );
    let dump = Server::new(&[]).text(b"lru_crawler metadump hash\r\n");
    assert_eq!(dump, b"END\r\n");
}

#[test]
fn text_stats_groups() {
    check(
        b"stats detail\r\nstats detail on\r\nstats detail off\r\nstats bogus\r\nstats cluster\r\n",
        "CLIENT_ERROR usage: stats detail on|off|dump\r\nOK\r\nOK\r\nERROR\r\nERROR\r\n",
    );
    check(
        b"stats cachedump 1\r\nstats cachedump x 0\r\nstats cachedump 64 0\r\nstats cachedump 1 0\r\n",
        "CLIENT_ERROR bad command line\r\nCLIENT_ERROR bad command line format\r\n\
         CLIENT_ERROR Illegal slab id\r\nEND\r\n",
    );
    check_with(
        &["-X"],
        b"stats cachedump 1 0\r\n",
        "CLIENT_ERROR stats cachedump not allowed\r\n",
    );
    check(
        b"stats reset\r\nstats sizes\r\n",
        "RESET\r\nSTAT sizes_status disabled\r\nEND\r\n",
    );
    // Enabling counts the items held; links and unlinks keep the counts.
    check(
        b"set a 0 0 1\r\n1\r\nset b 0 0 40\r\n0123456789012345678901234567890123456789\r\n\
          stats sizes_enable\r\nstats sizes\r\ndelete a\r\nset c 0 0 1\r\n1\r\nset d 0 0 1\r\n1\r\n\
          stats sizes\r\nstats sizes_disable\r\nstats sizes\r\n",
        "STORED\r\nSTORED\r\nSTAT sizes_status enabled\r\n\
         STAT 32 1\r\nSTAT 64 1\r\nEND\r\nDELETED\r\nSTORED\r\nSTORED\r\n\
         STAT 32 2\r\nSTAT 64 1\r\nEND\r\nSTAT sizes_status disabled\r\n\
         STAT sizes_status disabled\r\nEND\r\n",
    );
    let mut s = Server::new(&[]);
    let general =
        String::from_utf8(s.text(b"set a 0 0 1\r\n1\r\nget a\r\nget b\r\nstats\r\n")).unwrap();
    for stat in [
        "STAT cmd_get 2\r\n",
        "STAT get_hits 1\r\n",
        "STAT get_misses 1\r\n",
        "STAT cmd_set 1\r\n",
    ] {
        assert!(general.contains(stat), "{stat} missing in {general}");
    }
    assert!(general.ends_with("END\r\n"));
    assert!(
        !general.contains("ferrocache"),
        "own fields in `stats`: {general}"
    );
    let own = String::from_utf8(s.text(b"stats ferrocache\r\n")).unwrap();
    let names: Vec<&str> = own
        .lines()
        .filter_map(|l| l.strip_prefix("STAT "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    assert_eq!(
        names,
        [
            "ferrocache_version",
            "ferrocache_shards",
            "ferrocache_pages_used",
            "ferrocache_conn_out_paused",
            "ferrocache_conn_out_hard_cap",
            "ferrocache_inflight_bytes",
            "ferrocache_inflight_oom",
            "ferrocache_pinned_values"
        ]
    );
    assert!(own.starts_with(&format!(
        "STAT ferrocache_version {}\r\n",
        env!("CARGO_PKG_VERSION")
    )));
    assert!(own.ends_with("END\r\n"));
}

// ----- meta -------------------------------------------------------------------------------

#[test]
fn meta_commands() {
    check(b"mn\r\n", "MN\r\n");
    check(b"mg a v\r\n", "EN\r\n");
    check(
        b"ms a 2 T0 F5\r\nhi\r\nmg a v f s k O9\r\n",
        "HD\r\nVA 2 f5 s2 ka O9\r\nhi\r\n",
    );
    check(
        b"ms a 1 MX\r\nx\r\n",
        "CLIENT_ERROR invalid mode for ms M token\r\n",
    );
    check(b"ms a 1 ME\r\nx\r\nms a 1 ME\r\ny\r\n", "HD\r\nNS\r\n");
    check(
        b"ms a 1\r\nx\r\nmd a O1\r\nmd a O2\r\n",
        "HD\r\nHD O1\r\nNF O2\r\n",
    );
    check(
        b"ma n\r\nma n N0 J10 v\r\nma n v\r\nma n MD D20 v\r\n",
        "NF\r\nVA 2\r\n10\r\nVA 2\r\n11\r\nVA 1\r\n0\r\n",
    );
    check(b"me a\r\n", "EN\r\n");
    check(b"mg a v v\r\n", "CLIENT_ERROR duplicate flag\r\n");
}

#[test]
fn meta_quiet_hides_only_nominal_replies() {
    // mg: a miss (EN) is hidden, a hit is not.
    check(b"mg a v q\r\nmn\r\n", "MN\r\n");
    check(
        b"ms a 1 q\r\nx\r\nmg a v q\r\nmn\r\n",
        "VA 1\r\nx\r\nMN\r\n",
    );
    // ms: HD hidden, NS not.
    check(
        b"ms a 1 q\r\nx\r\nms a 1 ME q\r\ny\r\nmn\r\n",
        "NS\r\nMN\r\n",
    );
    // md: HD hidden, NF not.
    check(
        b"ms a 1 q\r\nx\r\nmd a q\r\nmd a q\r\nmn\r\n",
        "NF\r\nMN\r\n",
    );
    // ma: a plain success is hidden, a created item and a miss are not.
    check(
        b"ma n q\r\nma n N0 J3 q\r\nma n q\r\nmg n v\r\n",
        "NF\r\nHD\r\nVA 1\r\n4\r\n",
    );
    // Errors are never hidden.
    check(
        b"mg a v v q\r\nms a 1 MX q\r\nx\r\n",
        "CLIENT_ERROR duplicate flag\r\nCLIENT_ERROR invalid mode for ms M token\r\n",
    );
}

// ----- binary -----------------------------------------------------------------------------

const SET_EXTRAS: [u8; 8] = [0, 0, 0, 7, 0, 0, 0, 0];

#[test]
fn binary_storage_and_retrieval() {
    let input = cat(&[
        request(op::SET, 1, 0, &SET_EXTRAS, b"a", b"xy"),
        request(op::GET, 2, 0, &[], b"a", &[]),
        request(op::GETK, 3, 0, &[], b"a", &[]),
        request(op::ADD, 4, 0, &SET_EXTRAS, b"a", b"z"),
        request(op::GET, 5, 0, &[], b"b", &[]),
        request(op::APPEND, 6, 0, &[], b"a", b"z"),
        request(op::GET, 7, 0, &[], b"a", &[]),
    ]);
    check_bin(
        &input,
        &[
            (op::SET, 0, b""),
            (op::GET, 0, b"xy"),
            (op::GETK, 0, b"xy"),
            (op::ADD, 2, b"Data exists for key."),
            (op::GET, 1, b"Not found"),
            (op::APPEND, 0, b""),
            (op::GET, 0, b"xyz"),
        ],
    );
    let got = Server::new(&[]).binary(&cat(&[
        request(op::SET, 1, 0, &SET_EXTRAS, b"a", b"xy"),
        request(op::GETK, 9, 0, &[], b"a", &[]),
    ]));
    assert_eq!((got[1].opaque, &got[1].key[..]), (9, &b"a"[..]));
    assert_eq!(got[1].extras, [0, 0, 0, 7]);
}

#[test]
fn binary_delete_arith_and_misc() {
    let incr = |delta: u8, exp: u32| {
        let mut e = vec![0u8; 20];
        e[7] = delta;
        e[15] = 5; // initial value
        e[16..].copy_from_slice(&exp.to_be_bytes());
        e
    };
    let input = cat(&[
        request(op::DELETE, 0, 0, &[], b"a", &[]),
        request(op::INCREMENT, 0, 0, &incr(1, u32::MAX), b"n", &[]),
        request(op::INCREMENT, 0, 0, &incr(1, 0), b"n", &[]),
        request(op::INCREMENT, 0, 0, &incr(2, 0), b"n", &[]),
        request(op::DELETE, 0, 0, &[], b"n", &[]),
        request(op::NOOP, 0, 0, &[], &[], &[]),
        request(0x50, 0, 0, &[], &[], &[]),
        request(op::VERSION, 0, 0, &[], &[], &[]),
    ]);
    check_bin(
        &input,
        &[
            (op::DELETE, 1, b"Not found"),
            (op::INCREMENT, 1, b"Not found"),
            (op::INCREMENT, 0, &5u64.to_be_bytes()),
            (op::INCREMENT, 0, &7u64.to_be_bytes()),
            (op::DELETE, 0, b""),
            (op::NOOP, 0, b""),
            (0x50, 0x81, b"Unknown command"),
            (op::VERSION, 0, PROTOCOL_VERSION.as_bytes()),
        ],
    );
}

#[test]
fn binary_quiet_hides_successes_and_misses_only() {
    let input = cat(&[
        request(op::SETQ, 1, 0, &SET_EXTRAS, b"a", b"x"),
        request(op::GETQ, 2, 0, &[], b"a", &[]),
        request(op::GETQ, 3, 0, &[], b"b", &[]),
        request(op::GETKQ, 4, 0, &[], b"b", &[]),
        request(op::ADDQ, 5, 0, &SET_EXTRAS, b"a", b"y"),
        request(op::DELETEQ, 6, 0, &[], b"a", &[]),
        request(op::DELETEQ, 7, 0, &[], b"a", &[]),
        request(op::NOOP, 8, 0, &[], &[], &[]),
    ]);
    let got = Server::new(&[]).binary(&input);
    let got: Vec<(u8, u16, u32)> = got.iter().map(|r| (r.opcode, r.status, r.opaque)).collect();
    assert_eq!(
        got,
        [
            (op::GETQ, 0, 2),
            (op::ADDQ, 2, 5),
            (op::DELETEQ, 1, 7),
            (op::NOOP, 0, 8)
        ]
    );
}

#[test]
fn binary_stats_and_errors() {
    let got = Server::new(&[]).binary(&cat(&[
        request(op::STAT, 0, 0, &[], b"bogus", &[]),
        request(op::STAT, 0, 0, &[], b"detail on", &[]),
        request(op::STAT, 0, 0, &[], b"detail", &[]),
        request(op::STAT, 0, 0, &[], b"sizes", &[]),
    ]));
    let got: Vec<(u16, &[u8], &[u8])> = got
        .iter()
        .map(|r| (r.status, &r.key[..], &r.value[..]))
        .collect();
    assert_eq!(
        got,
        [
            (1, &b""[..], &b"Not found"[..]),
            (0, b"", b""),
            (1, b"", b"Not found"),
            (0, b"sizes_status", b"disabled"),
            (0, b"", b""),
        ]
    );
    let own = Server::new(&[]).binary(&request(op::STAT, 0, 0, &[], b"ferrocache", &[]));
    let keys: Vec<&[u8]> = own.iter().map(|r| &r.key[..]).collect();
    assert_eq!(
        keys,
        [
            &b"ferrocache_version"[..],
            b"ferrocache_shards",
            b"ferrocache_pages_used",
            b"ferrocache_conn_out_paused",
            b"ferrocache_conn_out_hard_cap",
            b"ferrocache_inflight_bytes",
            b"ferrocache_inflight_oom",
            b"ferrocache_pinned_values",
            b""
        ]
    );
    // Bad lengths close the connection after the error.
    let mut bad = request(op::GET, 0, 0, &[0; 4], b"k", &[]);
    bad.extend(request(op::NOOP, 0, 0, &[], &[], &[]));
    check_bin(&bad, &[(op::GET, 4, b"Invalid arguments")]);
}
