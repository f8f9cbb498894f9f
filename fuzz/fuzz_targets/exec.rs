//! Owns: the stateful executor fuzz target — arbitrary sequences of sets, adds, replaces,
//! appends, prepends, CAS, gets, gats, touches, incr/decr, deletes and flushes, each encoded in
//! text, meta or binary, parsed by the protocol parsers and run by the executors against a fresh
//! store; every reply is checked against a model (a map of what was written): a read returns
//! the value and flags last written, or a miss by the rules (never written, deleted, flushed,
//! expired), and every status is the one the model predicts.
#![no_main]

use arbitrary::Arbitrary;
use ferrocache::exec::{self, binary as xbin, text as xtext, Action, ConnRef, Ctx, Session};
use ferrocache::protocol::binary::{self, op, parse_response, request, status};
use ferrocache::protocol::{self, Parsed};
use ferrocache::state::Shared;
use std::collections::HashMap;

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq)]
enum Enc {
    Text,
    Meta,
    Binary,
}

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq)]
enum Mode {
    Set,
    Add,
    Replace,
    Append,
    Prepend,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Exp {
    Never,
    /// Relative seconds from now: never reached, the clock does not move here.
    Later(u16),
    /// Negative: expired at once.
    Past,
    /// An absolute unix time before the server started: expired at once.
    AbsPast,
}

impl Exp {
    fn ascii(self) -> i64 {
        match self {
            Exp::Never => 0,
            Exp::Later(n) => i64::from(n) + 1,
            Exp::Past => -1,
            Exp::AbsPast => 2_592_001,
        }
    }
    /// The binary protocol's exptime is unsigned: the past is an absolute time.
    fn binary(self) -> u32 {
        match self {
            Exp::Past | Exp::AbsPast => 2_592_001,
            e => e.ascii() as u32,
        }
    }
    fn expired(self) -> bool {
        matches!(self, Exp::Past | Exp::AbsPast)
    }
}

#[derive(Arbitrary, Debug, Clone)]
enum Val {
    Small(Vec<u8>),
    Number(u64),
    /// 64 KB to 896 KB of one letter (the larger ones are chained items).
    Big(u8, u8),
}

impl Val {
    fn bytes(&self) -> Vec<u8> {
        match self {
            Val::Small(v) => v[..v.len().min(2048)].to_vec(),
            Val::Number(n) => n.to_string().into_bytes(),
            Val::Big(k, fill) => vec![b'a' + fill % 26; (usize::from(*k) % 14 + 1) * 64 * 1024],
        }
    }
}

#[derive(Arbitrary, Debug, Clone)]
enum Op {
    Store {
        enc: Enc,
        mode: Mode,
        key: u8,
        flags: u32,
        exp: Exp,
        val: Val,
        noreply: bool,
    },
    Cas {
        enc: Enc,
        key: u8,
        known: bool,
        cas: u64,
        flags: u32,
        exp: Exp,
        val: Val,
    },
    Get {
        enc: Enc,
        key: u8,
        gat: Option<Exp>,
    },
    Delete {
        enc: Enc,
        key: u8,
        noreply: bool,
    },
    Arith {
        enc: Enc,
        key: u8,
        incr: bool,
        delta: u64,
        noreply: bool,
    },
    Touch {
        enc: Enc,
        key: u8,
        exp: Exp,
    },
    Flush {
        enc: Enc,
    },
    Noop {
        enc: Enc,
    },
}

/// Values whose sum with what is stored would pass `-I` are not sent.
const MAX_VALUE: usize = 1000 * 1024;

fn key(k: u8) -> Vec<u8> {
    match k % 9 {
        8 => vec![b'L'; 250],
        n => format!("key:{n}").into_bytes(),
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Entry {
    value: Vec<u8>,
    flags: u32,
    /// The item's CAS once a reply has shown it (forgotten when the item changes).
    cas: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Outcome {
    Stored,
    NotStored,
    Exists,
    NotFound,
}

struct Harness {
    sh: Shared,
    session: Session,
    model: HashMap<Vec<u8>, Entry>,
}

impl Harness {
    /// Runs one encoded request; it must parse as exactly one request using all its bytes.
    fn run(&mut self, enc: Enc, req: &[u8]) -> Vec<u8> {
        let lim = exec::limits(&self.sh);
        let ctx = Ctx::new(
            &self.sh,
            ConnRef {
                id: 1,
                worker: 0,
                admin: false,
                udp_peer: None,
            },
        );
        let mut out = Vec::new();
        if enc == Enc::Binary {
            let Ok(Parsed::Complete(f, used)) = binary::parse(req, &lim) else {
                panic!("not one binary request: {req:?}");
            };
            assert_eq!((used, f.skip), (req.len(), 0));
            let a = xbin::execute(&f, &ctx, &mut self.session, &mut out);
            assert!(matches!(a, Action::Continue | Action::Flush), "{a:?}");
        } else {
            let Ok(Parsed::Complete(cmd, used)) = protocol::parse_ascii(req, &lim) else {
                panic!("not one request: {:?}", String::from_utf8_lossy(req));
            };
            assert_eq!(used, req.len());
            let a = xtext::execute(cmd, &ctx, &mut out);
            assert!(matches!(a, Action::Continue | Action::Flush), "{a:?}");
        }
        out
    }

    /// What a store of `mode` does to the model; `cas` is Some for a CAS store.
    fn expect_store(&self, k: &[u8], mode: Mode, cas: Option<u64>) -> Outcome {
        let e = self.model.get(k);
        match (mode, e, cas) {
            (_, None, Some(_)) => Outcome::NotFound,
            (_, Some(e), Some(c)) => match e.cas {
                Some(known) if known == c => Outcome::Stored,
                Some(_) => Outcome::Exists,
                None => Outcome::Stored, // either; the reply decides (see `store`)
            },
            (Mode::Set, _, None) => Outcome::Stored,
            (Mode::Add, Some(_), None) => Outcome::NotStored,
            (Mode::Add, None, None) => Outcome::Stored,
            (_, None, None) => Outcome::NotStored,
            (_, Some(_), None) => Outcome::Stored,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn store(
        &mut self,
        enc: Enc,
        mode: Mode,
        k: &[u8],
        flags: u32,
        exp: Exp,
        v: &[u8],
        cas: Option<u64>,
        noreply: bool,
    ) {
        let old = self.model.get(k).map_or(0, |e| e.value.len());
        if v.len()
            + if matches!(mode, Mode::Append | Mode::Prepend) {
                old
            } else {
                0
            }
            > MAX_VALUE
        {
            return;
        }
        let noreply = noreply && enc == Enc::Text;
        let req = match enc {
            Enc::Text => {
                let word = match (mode, cas) {
                    (_, Some(_)) => "cas",
                    (Mode::Set, _) => "set",
                    (Mode::Add, _) => "add",
                    (Mode::Replace, _) => "replace",
                    (Mode::Append, _) => "append",
                    (Mode::Prepend, _) => "prepend",
                };
                let mut r = format!("{word} ").into_bytes();
                r.extend_from_slice(k);
                r.extend_from_slice(format!(" {flags} {} {}", exp.ascii(), v.len()).as_bytes());
                if let Some(c) = cas {
                    r.extend_from_slice(format!(" {c}").as_bytes());
                }
                r.extend_from_slice(if noreply { b" noreply\r\n" } else { b"\r\n" });
                r.extend_from_slice(v);
                r.extend_from_slice(b"\r\n");
                r
            }
            Enc::Meta => {
                let m = match mode {
                    Mode::Set => 'S',
                    Mode::Add => 'E',
                    Mode::Replace => 'R',
                    Mode::Append => 'A',
                    Mode::Prepend => 'P',
                };
                let mut r = b"ms ".to_vec();
                r.extend_from_slice(k);
                r.extend_from_slice(
                    format!(" {} F{flags} T{} M{m}", v.len(), exp.ascii()).as_bytes(),
                );
                if let Some(c) = cas {
                    r.extend_from_slice(format!(" C{c}").as_bytes());
                }
                r.extend_from_slice(b"\r\n");
                r.extend_from_slice(v);
                r.extend_from_slice(b"\r\n");
                r
            }
            Enc::Binary => {
                let (opcode, extras) = match mode {
                    Mode::Set => (op::SET, true),
                    Mode::Add => (op::ADD, true),
                    Mode::Replace => (op::REPLACE, true),
                    Mode::Append => (op::APPEND, false),
                    Mode::Prepend => (op::PREPEND, false),
                };
                let mut ex = flags.to_be_bytes().to_vec();
                ex.extend_from_slice(&exp.binary().to_be_bytes());
                request(
                    opcode,
                    7,
                    cas.unwrap_or(0),
                    if extras { &ex } else { &[] },
                    k,
                    v,
                )
            }
        };
        let out = self.run(enc, &req);
        let want = self.expect_store(k, mode, cas);
        let got = if noreply {
            assert!(
                out.is_empty(),
                "noreply answered {:?}",
                String::from_utf8_lossy(&out)
            );
            want
        } else {
            let (got, new_cas) = store_reply(enc, &out);
            let got = match (enc, mode, got) {
                // Binary says a missing key for a failed replace, an existing one for add.
                (Enc::Binary, Mode::Add, Outcome::Exists) if cas.is_none() => Outcome::NotStored,
                (Enc::Binary, Mode::Replace, Outcome::NotFound) if cas.is_none() => {
                    Outcome::NotStored
                }
                (_, _, g) => g,
            };
            let unknown_cas = cas.is_some() && self.model.get(k).is_some_and(|e| e.cas.is_none());
            if !(unknown_cas && got == Outcome::Exists) {
                assert_eq!(
                    got,
                    want,
                    "{mode:?} {:?} in {enc:?}",
                    String::from_utf8_lossy(k)
                );
            }
            if got == Outcome::Stored {
                self.apply_store(k, mode, flags, exp, v, new_cas);
            }
            return;
        };
        if got == Outcome::Stored {
            self.apply_store(k, mode, flags, exp, v, None);
        }
    }

    fn apply_store(
        &mut self,
        k: &[u8],
        mode: Mode,
        flags: u32,
        exp: Exp,
        v: &[u8],
        cas: Option<u64>,
    ) {
        match mode {
            Mode::Append | Mode::Prepend => {
                let e = self.model.get_mut(k).expect("appended to a present key");
                if mode == Mode::Append {
                    e.value.extend_from_slice(v);
                } else {
                    e.value.splice(0..0, v.iter().copied());
                }
                e.cas = cas;
            }
            _ if exp.expired() => {
                self.model.remove(k);
            }
            _ => {
                self.model.insert(
                    k.to_vec(),
                    Entry {
                        value: v.to_vec(),
                        flags,
                        cas,
                    },
                );
            }
        }
    }

    fn get(&mut self, enc: Enc, k: &[u8], gat: Option<Exp>) {
        let req = match (enc, gat) {
            (Enc::Text, None) => [b"gets ", k, b"\r\n"].concat(),
            (Enc::Text, Some(e)) => {
                [format!("gats {} ", e.ascii()).as_bytes(), k, b"\r\n"].concat()
            }
            (Enc::Meta, None) => [b"mg ", k, b" v f c\r\n"].concat(),
            (Enc::Meta, Some(e)) => {
                [b"mg ", k, format!(" v f c T{}\r\n", e.ascii()).as_bytes()].concat()
            }
            (Enc::Binary, None) => request(op::GETK, 7, 0, &[], k, &[]),
            (Enc::Binary, Some(e)) => request(op::GATK, 7, 0, &e.binary().to_be_bytes(), k, &[]),
        };
        let out = self.run(enc, &req);
        let got = read_reply(enc, &out);
        let want = self.model.get(k);
        match (&got, want) {
            (None, None) => {}
            (Some((value, flags, cas)), Some(e)) => {
                assert!(
                    *value == e.value,
                    "{:?}: read {} bytes, wrote {}",
                    String::from_utf8_lossy(k),
                    value.len(),
                    e.value.len()
                );
                assert_eq!(*flags, e.flags);
                if let Some(known) = e.cas {
                    assert_eq!(*cas, known, "a read changed the CAS");
                }
            }
            (got, want) => panic!(
                "{:?}: read {:?}, model {:?}",
                String::from_utf8_lossy(k),
                got.as_ref().map(|g| g.0.len()),
                want.map(|w| w.value.len())
            ),
        }
        if let Some((_, _, cas)) = got {
            self.model.get_mut(k).expect("present").cas = Some(cas);
        }
        if gat.is_some_and(Exp::expired) {
            self.model.remove(k);
        }
    }

    fn delete(&mut self, enc: Enc, k: &[u8], noreply: bool) {
        let noreply = noreply && enc == Enc::Text;
        let req = match enc {
            Enc::Text if noreply => [b"delete ", k, b" noreply\r\n"].concat(),
            Enc::Text => [b"delete ", k, b"\r\n"].concat(),
            Enc::Meta => [b"md ", k, b"\r\n"].concat(),
            Enc::Binary => request(op::DELETE, 7, 0, &[], k, &[]),
        };
        let out = self.run(enc, &req);
        let found = self.model.remove(k).is_some();
        let want: &[u8] = match (enc, found) {
            _ if noreply => b"",
            (Enc::Text, true) => b"DELETED\r\n",
            (Enc::Text, false) => b"NOT_FOUND\r\n",
            (Enc::Meta, true) => b"HD\r\n",
            (Enc::Meta, false) => b"NF\r\n",
            (Enc::Binary, _) => {
                let r = one_response(&out);
                assert_eq!(
                    r.status,
                    if found {
                        status::OK
                    } else {
                        status::KEY_ENOENT
                    }
                );
                return;
            }
        };
        assert_eq!(String::from_utf8_lossy(&out), String::from_utf8_lossy(want));
    }

    fn arith(&mut self, enc: Enc, k: &[u8], incr: bool, delta: u64, noreply: bool) {
        let noreply = noreply && enc == Enc::Text;
        let req = match enc {
            Enc::Text => {
                let w = if incr { "incr " } else { "decr " };
                let nr = if noreply { " noreply" } else { "" };
                [w.as_bytes(), k, format!(" {delta}{nr}\r\n").as_bytes()].concat()
            }
            Enc::Meta => {
                let m = if incr { 'I' } else { 'D' };
                [b"ma ", k, format!(" M{m} D{delta} v\r\n").as_bytes()].concat()
            }
            Enc::Binary => {
                let mut ex = delta.to_be_bytes().to_vec();
                ex.extend_from_slice(&0u64.to_be_bytes());
                ex.extend_from_slice(&u32::MAX.to_be_bytes()); // never create
                request(
                    if incr { op::INCREMENT } else { op::DECREMENT },
                    7,
                    0,
                    &ex,
                    k,
                    &[],
                )
            }
        };
        let out = self.run(enc, &req);
        // The model's answer: NotFound, NonNumeric (None), or the new number.
        let want: Result<Option<u64>, ()> = match self.model.get_mut(k) {
            None => Err(()),
            Some(e) => {
                let cur = (!e.value.is_empty() && e.value.len() < 500 * 1024)
                    .then(|| ferrocache::num::strtoull(&e.value))
                    .flatten();
                Ok(cur.map(|c| {
                    let n = if incr {
                        c.wrapping_add(delta)
                    } else {
                        c.saturating_sub(delta)
                    };
                    let digits = n.to_string().into_bytes();
                    if digits.len() <= e.value.len() {
                        e.value[..digits.len()].copy_from_slice(&digits);
                        e.value[digits.len()..].fill(b' ');
                    } else {
                        e.value = digits;
                    }
                    e.cas = None;
                    n
                }))
            }
        };
        let show = String::from_utf8_lossy(&out).into_owned();
        if noreply {
            assert!(out.is_empty(), "noreply answered {show}");
            return;
        }
        match (enc, want) {
            (Enc::Text, Err(())) => assert_eq!(show, "NOT_FOUND\r\n"),
            (Enc::Meta, Err(())) => assert_eq!(show, "NF\r\n"),
            (Enc::Text | Enc::Meta, Ok(None)) => {
                assert_eq!(
                    show,
                    "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"
                )
            }
            (Enc::Text, Ok(Some(n))) => assert_eq!(show, format!("{n}\r\n")),
            (Enc::Meta, Ok(Some(n))) => {
                assert_eq!(show, format!("VA {}\r\n{n}\r\n", n.to_string().len()))
            }
            (Enc::Binary, want) => {
                let r = one_response(&out);
                match want {
                    Err(()) => assert_eq!(r.status, status::KEY_ENOENT),
                    Ok(None) => assert_eq!(r.status, status::DELTA_BADVAL),
                    Ok(Some(n)) => {
                        assert_eq!(r.status, status::OK);
                        assert_eq!(r.value, n.to_be_bytes());
                        self.model.get_mut(k).expect("present").cas = Some(r.cas);
                    }
                }
            }
        }
    }

    fn touch(&mut self, enc: Enc, k: &[u8], exp: Exp) {
        let req = match enc {
            Enc::Text => [b"touch ", k, format!(" {}\r\n", exp.ascii()).as_bytes()].concat(),
            Enc::Meta => [b"mg ", k, format!(" T{}\r\n", exp.ascii()).as_bytes()].concat(),
            Enc::Binary => request(op::TOUCH, 7, 0, &exp.binary().to_be_bytes(), k, &[]),
        };
        let out = self.run(enc, &req);
        let found = self.model.contains_key(k);
        if exp.expired() {
            self.model.remove(k);
        }
        let show = String::from_utf8_lossy(&out);
        match enc {
            Enc::Text => assert_eq!(
                show,
                if found {
                    "TOUCHED\r\n"
                } else {
                    "NOT_FOUND\r\n"
                }
            ),
            Enc::Meta => assert_eq!(show, if found { "HD\r\n" } else { "EN\r\n" }),
            Enc::Binary => {
                let r = one_response(&out);
                assert_eq!(
                    r.status,
                    if found {
                        status::OK
                    } else {
                        status::KEY_ENOENT
                    }
                );
            }
        }
    }

    fn apply(&mut self, o: &Op) {
        match *o {
            Op::Store {
                enc,
                mode,
                key: k,
                flags,
                exp,
                ref val,
                noreply,
            } => self.store(enc, mode, &key(k), flags, exp, &val.bytes(), None, noreply),
            Op::Cas {
                enc,
                key: k,
                known,
                cas,
                flags,
                exp,
                ref val,
            } => {
                let k = key(k);
                let cas = match self.model.get(&k).and_then(|e| e.cas) {
                    Some(c) if known => c,
                    // A CAS of 0 is not a compare in binary; the others never match it.
                    _ => cas.max(1),
                };
                self.store(
                    enc,
                    Mode::Set,
                    &k,
                    flags,
                    exp,
                    &val.bytes(),
                    Some(cas),
                    false,
                )
            }
            Op::Get { enc, key: k, gat } => self.get(enc, &key(k), gat),
            Op::Delete {
                enc,
                key: k,
                noreply,
            } => self.delete(enc, &key(k), noreply),
            Op::Arith {
                enc,
                key: k,
                incr,
                delta,
                noreply,
            } => self.arith(enc, &key(k), incr, delta, noreply),
            Op::Touch { enc, key: k, exp } => self.touch(enc, &key(k), exp),
            Op::Flush { enc } => {
                let bin = enc == Enc::Binary;
                let req = if bin {
                    request(op::FLUSH, 7, 0, &[], b"", b"")
                } else {
                    b"flush_all\r\n".to_vec()
                };
                let out = self.run(if bin { Enc::Binary } else { Enc::Text }, &req);
                if bin {
                    assert_eq!(one_response(&out).status, status::OK);
                } else {
                    assert_eq!(out, b"OK\r\n");
                }
                self.model.clear();
            }
            Op::Noop { enc } => {
                let (req, want): (Vec<u8>, &[u8]) = match enc {
                    Enc::Text => (b"version\r\n".to_vec(), b"VERSION 1.6.18\r\n"),
                    Enc::Meta => (b"mn\r\n".to_vec(), b"MN\r\n"),
                    Enc::Binary => (request(op::NOOP, 7, 0, &[], b"", b""), b""),
                };
                let out = self.run(enc, &req);
                if enc == Enc::Binary {
                    assert_eq!(one_response(&out).status, status::OK);
                } else {
                    assert_eq!(out, want);
                }
            }
        }
    }
}

/// The one binary response in `out`.
fn one_response(out: &[u8]) -> binary::Response {
    let Some((r, used)) = parse_response(out) else {
        panic!("no binary response in {out:?}");
    };
    assert_eq!(used, out.len(), "more than one response");
    r
}

/// A store's reply as an outcome, and the new CAS when the reply carries it.
fn store_reply(enc: Enc, out: &[u8]) -> (Outcome, Option<u64>) {
    if enc == Enc::Binary {
        let r = one_response(out);
        let o = match r.status {
            status::OK => Outcome::Stored,
            status::KEY_EEXISTS => Outcome::Exists,
            status::KEY_ENOENT => Outcome::NotFound,
            status::NOT_STORED => Outcome::NotStored,
            s => panic!("store status {s:#x}"),
        };
        return (o, (o == Outcome::Stored).then_some(r.cas));
    }
    let o = match out {
        b"STORED\r\n" | b"HD\r\n" => Outcome::Stored,
        b"NOT_STORED\r\n" | b"NS\r\n" => Outcome::NotStored,
        b"EXISTS\r\n" | b"EX\r\n" => Outcome::Exists,
        b"NOT_FOUND\r\n" | b"NF\r\n" => Outcome::NotFound,
        _ => panic!("store reply {:?}", String::from_utf8_lossy(out)),
    };
    (o, None)
}

fn num<T: std::str::FromStr>(b: &[u8]) -> T {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a number: {b:?}"))
}

/// A read's reply: (value, flags, cas) on a hit, None on a miss.
fn read_reply(enc: Enc, out: &[u8]) -> Option<(Vec<u8>, u32, u64)> {
    if enc == Enc::Binary {
        let r = one_response(out);
        if r.status == status::KEY_ENOENT {
            return None;
        }
        assert_eq!(r.status, status::OK);
        let flags = u32::from_be_bytes(r.extras[..4].try_into().expect("flags"));
        return Some((r.value, flags, r.cas));
    }
    if out == b"END\r\n" || out == b"EN\r\n" {
        return None;
    }
    let eol = out
        .windows(2)
        .position(|w| w == b"\r\n")
        .expect("a header line");
    let words: Vec<&[u8]> = out[..eol].split(|&b| b == b' ').collect();
    let (len, flags, cas, tail): (usize, u32, u64, &[u8]) = if enc == Enc::Text {
        assert_eq!(words[0], b"VALUE");
        (num(words[3]), num(words[2]), num(words[4]), b"\r\nEND\r\n")
    } else {
        assert_eq!(words[0], b"VA");
        let flag = |c: u8| {
            words
                .iter()
                .find(|w| w.first() == Some(&c))
                .map(|w| &w[1..])
                .expect("flag")
        };
        (num(words[1]), num(flag(b'f')), num(flag(b'c')), b"\r\n")
    };
    let data = &out[eol + 2..];
    assert_eq!(data.len(), len + tail.len(), "reply length");
    assert_eq!(&data[len..], tail);
    Some((data[..len].to_vec(), flags, cas))
}

libfuzzer_sys::fuzz_target!(|ops: Vec<Op>| {
    let mut h = Harness {
        sh: ferrocache_fuzz::server(&["-m", "1024", "-U", "0"]),
        session: Session::default(),
        model: HashMap::new(),
    };
    for o in ops.iter().take(64) {
        h.apply(o);
    }
});
