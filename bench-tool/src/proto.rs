//! Owns: wire formats: request encoders and incremental reply parsers for the text, meta and binary protocols.
//! Long because: its unit tests (about 220 lines, every protocol's encoders against its parsers) sit beside the code.
//!
//! Encoders append to a caller-owned buffer (no allocation once it has grown). The parser looks at the unread
//! bytes and either returns one complete reply plus the number of bytes it used, or `None` when more bytes are
//! needed; it never consumes a partial reply, so any split of the stream gives the same replies.

use crate::workload::{KeyTable, ValueGen};

/// Wire protocol spoken to the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Text,
    Meta,
    Binary,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Text => "text",
            Protocol::Meta => "meta",
            Protocol::Binary => "binary",
        }
    }
}

/// Longest reply line accepted before the stream is declared broken.
const MAX_LINE: usize = 8192;
/// Largest reply body accepted.
const MAX_BODY: usize = 256 << 20;

const BIN_REQ: u8 = 0x80;
const BIN_RES: u8 = 0x81;
const OP_GET: u8 = 0x00;
const OP_SET: u8 = 0x01;
const OP_SETQ: u8 = 0x11;
const OP_GETQ: u8 = 0x09;
const OP_NOOP: u8 = 0x0a;
const OP_GETK: u8 = 0x0c;
const OP_GETKQ: u8 = 0x0d;

/// Kind of an error reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// `ERROR`
    Generic,
    /// `CLIENT_ERROR …`
    Client,
    /// `SERVER_ERROR …`
    Server,
    /// Binary status other than success / not found / not stored.
    Status(u16),
}

/// One parsed reply; slices borrow the read buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply<'a> {
    /// A hit: text `VALUE`, meta `VA`, binary get success. `key` when the reply names it.
    Value {
        key: Option<&'a [u8]>,
        data: &'a [u8],
        opaque: Option<u32>,
    },
    /// A miss that is reported (meta `EN`, binary get status 1).
    Miss { key: Option<&'a [u8]> },
    /// End of a retrieval: text `END`, meta `MN`, binary Noop.
    End,
    /// Store succeeded: `STORED`, `HD`, binary set success.
    Stored,
    /// Store or lookup refused: `NOT_STORED`/`EXISTS`/`NOT_FOUND`, `NS`/`EX`/`NF`, binary status 1/2/5 on set.
    NotStored,
    /// Error reply; `msg` is the rest of the line or the binary error body.
    Error { kind: ErrorKind, msg: &'a [u8] },
}

/// The byte stream cannot be a valid reply stream.
#[derive(Debug, PartialEq, Eq)]
pub struct ProtoError(pub String);

type Parsed<'a> = Result<Option<(Reply<'a>, usize)>, ProtoError>;

fn push_num(out: &mut Vec<u8>, mut n: usize) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&tmp[i..]);
}

fn push_bin_header(
    out: &mut Vec<u8>,
    op: u8,
    keylen: usize,
    extlen: u8,
    bodylen: usize,
    opaque: u32,
) {
    out.push(BIN_REQ);
    out.push(op);
    out.extend_from_slice(&(keylen as u16).to_be_bytes());
    out.push(extlen);
    out.push(0); // data type
    out.extend_from_slice(&[0, 0]); // vbucket
    out.extend_from_slice(&(bodylen as u32).to_be_bytes());
    out.extend_from_slice(&opaque.to_be_bytes());
    out.extend_from_slice(&[0u8; 8]); // cas
}

/// Appends a store of key `idx` with its generated value.
pub fn encode_set(
    proto: Protocol,
    out: &mut Vec<u8>,
    keys: &KeyTable,
    values: &ValueGen,
    idx: u32,
) {
    let key = keys.key(idx);
    let len = values.len_for(idx);
    match proto {
        Protocol::Text => {
            out.extend_from_slice(b"set ");
            out.extend_from_slice(key);
            out.extend_from_slice(b" 0 0 ");
            push_num(out, len);
            out.extend_from_slice(b"\r\n");
            values.write_value(idx, out);
            out.extend_from_slice(b"\r\n");
        }
        Protocol::Meta => {
            out.extend_from_slice(b"ms ");
            out.extend_from_slice(key);
            out.push(b' ');
            push_num(out, len);
            out.extend_from_slice(b" T0\r\n");
            values.write_value(idx, out);
            out.extend_from_slice(b"\r\n");
        }
        Protocol::Binary => {
            push_bin_header(out, OP_SET, key.len(), 8, 8 + key.len() + len, idx);
            out.extend_from_slice(&[0u8; 8]); // flags, exptime
            out.extend_from_slice(key);
            values.write_value(idx, out);
        }
    }
}

/// Appends a retrieval of `idxs` (one key: plain get; several: multi-get ended by `END`/`mn`/Noop).
pub fn encode_get(proto: Protocol, out: &mut Vec<u8>, keys: &KeyTable, idxs: &[u32]) {
    match proto {
        Protocol::Text => {
            out.extend_from_slice(b"get");
            for &i in idxs {
                out.push(b' ');
                out.extend_from_slice(keys.key(i));
            }
            out.extend_from_slice(b"\r\n");
        }
        Protocol::Meta => {
            if let [i] = idxs {
                out.extend_from_slice(b"mg ");
                out.extend_from_slice(keys.key(*i));
                out.extend_from_slice(b" v\r\n");
            } else {
                for &i in idxs {
                    out.extend_from_slice(b"mg ");
                    out.extend_from_slice(keys.key(i));
                    out.extend_from_slice(b" v k q\r\n");
                }
                out.extend_from_slice(b"mn\r\n");
            }
        }
        Protocol::Binary => {
            if let [i] = idxs {
                let key = keys.key(*i);
                push_bin_header(out, OP_GET, key.len(), 0, key.len(), *i);
                out.extend_from_slice(key);
            } else {
                for &i in idxs {
                    let key = keys.key(i);
                    push_bin_header(out, OP_GETKQ, key.len(), 0, key.len(), i);
                    out.extend_from_slice(key);
                }
                push_bin_header(out, OP_NOOP, 0, 0, 0, 0);
            }
        }
    }
}

/// Parses one reply from the front of `buf`.
pub fn parse(proto: Protocol, buf: &[u8]) -> Parsed<'_> {
    match proto {
        Protocol::Text => parse_text(buf),
        Protocol::Meta => parse_meta(buf),
        Protocol::Binary => parse_binary(buf),
    }
}

/// Finds one line; returns (line without CRLF, bytes including the terminator).
fn line(buf: &[u8]) -> Result<Option<(&[u8], usize)>, ProtoError> {
    let limit = buf.len().min(MAX_LINE);
    match buf[..limit].iter().position(|&b| b == b'\n') {
        Some(nl) => {
            let end = if nl > 0 && buf[nl - 1] == b'\r' {
                nl - 1
            } else {
                nl
            };
            Ok(Some((&buf[..end], nl + 1)))
        }
        None if buf.len() >= MAX_LINE => Err(ProtoError(format!(
            "no line end within {MAX_LINE} bytes: {:?}",
            String::from_utf8_lossy(&buf[..64])
        ))),
        None => Ok(None),
    }
}

fn parse_usize(tok: &[u8]) -> Option<usize> {
    if tok.is_empty() || tok.len() > 19 || !tok.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        tok.iter()
            .fold(0usize, |n, &b| n * 10 + usize::from(b - b'0')),
    )
}

/// Reads a data block of `len` bytes + CRLF starting at `at`.
fn data_block(buf: &[u8], at: usize, len: usize) -> Result<Option<(&[u8], usize)>, ProtoError> {
    if len > MAX_BODY {
        return Err(ProtoError(format!("value length {len} too large")));
    }
    let end = at + len + 2;
    if buf.len() < end {
        return Ok(None);
    }
    if &buf[at + len..end] != b"\r\n" {
        return Err(ProtoError("data block not terminated by CRLF".into()));
    }
    Ok(Some((&buf[at..at + len], end)))
}

fn error_line(l: &[u8]) -> Option<Reply<'_>> {
    let (head, rest) = match l.iter().position(|&b| b == b' ') {
        Some(p) => (&l[..p], &l[p + 1..]),
        None => (l, &l[l.len()..]),
    };
    let kind = match head {
        b"ERROR" => ErrorKind::Generic,
        b"CLIENT_ERROR" => ErrorKind::Client,
        b"SERVER_ERROR" => ErrorKind::Server,
        _ => return None,
    };
    Some(Reply::Error { kind, msg: rest })
}

fn unexpected(what: &str, l: &[u8]) -> ProtoError {
    let shown = &l[..l.len().min(80)];
    ProtoError(format!(
        "unexpected {what} reply line {:?}",
        String::from_utf8_lossy(shown)
    ))
}

fn parse_text(buf: &[u8]) -> Parsed<'_> {
    let Some((l, used)) = line(buf)? else {
        return Ok(None);
    };
    let reply = match l {
        b"END" => Reply::End,
        b"STORED" => Reply::Stored,
        b"NOT_STORED" | b"EXISTS" | b"NOT_FOUND" => Reply::NotStored,
        _ if l.starts_with(b"VALUE ") => {
            let mut toks = l[6..].split(|&b| b == b' ').filter(|t| !t.is_empty());
            let key = toks.next();
            let _flags = toks.next();
            let len = toks.next().and_then(parse_usize);
            let (Some(key), Some(len)) = (key, len) else {
                return Err(unexpected("text", l));
            };
            let Some((data, end)) = data_block(buf, used, len)? else {
                return Ok(None);
            };
            return Ok(Some((
                Reply::Value {
                    key: Some(key),
                    data,
                    opaque: None,
                },
                end,
            )));
        }
        _ => error_line(l).ok_or_else(|| unexpected("text", l))?,
    };
    Ok(Some((reply, used)))
}

/// Value of the `k` return flag among meta flag tokens.
fn meta_key<'a>(mut toks: impl Iterator<Item = &'a [u8]>) -> Option<&'a [u8]> {
    toks.find(|t| t.first() == Some(&b'k')).map(|t| &t[1..])
}

fn parse_meta(buf: &[u8]) -> Parsed<'_> {
    let Some((l, used)) = line(buf)? else {
        return Ok(None);
    };
    let mut toks = l.split(|&b| b == b' ').filter(|t| !t.is_empty());
    let reply = match toks.next().unwrap_or(b"") {
        b"VA" => {
            let Some(len) = toks.next().and_then(parse_usize) else {
                return Err(unexpected("meta", l));
            };
            let key = meta_key(toks);
            let Some((data, end)) = data_block(buf, used, len)? else {
                return Ok(None);
            };
            return Ok(Some((
                Reply::Value {
                    key,
                    data,
                    opaque: None,
                },
                end,
            )));
        }
        b"HD" => Reply::Stored,
        b"EN" => Reply::Miss {
            key: meta_key(toks),
        },
        b"NS" | b"EX" | b"NF" => Reply::NotStored,
        b"MN" => Reply::End,
        _ => error_line(l).ok_or_else(|| unexpected("meta", l))?,
    };
    Ok(Some((reply, used)))
}

fn parse_binary(buf: &[u8]) -> Parsed<'_> {
    if buf.len() < 24 {
        return Ok(None);
    }
    if buf[0] != BIN_RES {
        return Err(ProtoError(format!(
            "bad binary response magic {:#04x}",
            buf[0]
        )));
    }
    let op = buf[1];
    let keylen = usize::from(u16::from_be_bytes([buf[2], buf[3]]));
    let extlen = usize::from(buf[4]);
    let status = u16::from_be_bytes([buf[6], buf[7]]);
    let bodylen = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]) as usize;
    let opaque = u32::from_be_bytes([buf[12], buf[13], buf[14], buf[15]]);
    if bodylen > MAX_BODY || keylen + extlen > bodylen {
        return Err(ProtoError(format!(
            "bad binary lengths: key {keylen} extras {extlen} body {bodylen}"
        )));
    }
    let total = 24 + bodylen;
    if buf.len() < total {
        return Ok(None);
    }
    let body = &buf[24..total];
    let key = &body[extlen..extlen + keylen];
    let value = &body[extlen + keylen..];
    let named = if keylen > 0 { Some(key) } else { None };
    let reply = match (op, status) {
        (OP_NOOP, 0) => Reply::End,
        (OP_GET | OP_GETQ | OP_GETK | OP_GETKQ, 0) => Reply::Value {
            key: named,
            data: value,
            opaque: Some(opaque),
        },
        (OP_GET | OP_GETQ | OP_GETK | OP_GETKQ, 1) => Reply::Miss { key: named },
        (OP_SET | OP_SETQ, 0) => Reply::Stored,
        (OP_SET | OP_SETQ, 1 | 2 | 5) => Reply::NotStored,
        (_, s) if s != 0 => Reply::Error {
            kind: ErrorKind::Status(s),
            msg: value,
        },
        _ => {
            return Err(ProtoError(format!(
                "unexpected binary response opcode {op:#04x}"
            )))
        }
    };
    Ok(Some((reply, total)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `stream` in two pieces split at `at`, parsing greedily after each piece like the reader does.
    fn parse_split(proto: Protocol, stream: &[u8], at: usize) -> Result<Vec<String>, ProtoError> {
        let mut buf: Vec<u8> = Vec::new();
        let mut head = 0;
        let mut out = Vec::new();
        for piece in [&stream[..at], &stream[at..]] {
            buf.extend_from_slice(piece);
            while head < buf.len() {
                match parse(proto, &buf[head..])? {
                    Some((r, used)) => {
                        assert!(used > 0);
                        out.push(format!("{r:?}"));
                        head += used;
                    }
                    None => break,
                }
            }
        }
        assert_eq!(head, buf.len(), "stream fully consumed");
        Ok(out)
    }

    fn check_all_splits(proto: Protocol, stream: &[u8], expected: usize) -> Vec<String> {
        let whole = parse_split(proto, stream, stream.len()).unwrap();
        assert_eq!(whole.len(), expected, "{whole:?}");
        for at in 0..=stream.len() {
            assert_eq!(
                parse_split(proto, stream, at).unwrap(),
                whole,
                "split at {at}"
            );
        }
        whole
    }

    fn bin_reply(
        op: u8,
        status: u16,
        opaque: u32,
        extras: &[u8],
        key: &[u8],
        value: &[u8],
    ) -> Vec<u8> {
        let mut v = vec![BIN_RES, op];
        v.extend_from_slice(&(key.len() as u16).to_be_bytes());
        v.push(extras.len() as u8);
        v.push(0);
        v.extend_from_slice(&status.to_be_bytes());
        v.extend_from_slice(&((extras.len() + key.len() + value.len()) as u32).to_be_bytes());
        v.extend_from_slice(&opaque.to_be_bytes());
        v.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 7]);
        v.extend_from_slice(extras);
        v.extend_from_slice(key);
        v.extend_from_slice(value);
        v
    }

    #[test]
    fn text_stream_parses_identically_at_every_split() {
        let stream = b"STORED\r\nVALUE key:01 0 5\r\nhe\r\no\r\nVALUE key:02 3 0 99\r\n\r\nEND\r\nEND\r\n\
NOT_STORED\r\nSERVER_ERROR out of memory storing object\r\nCLIENT_ERROR bad data chunk\r\nERROR\r\nEXISTS\r\n";
        let r = check_all_splits(Protocol::Text, stream, 10);
        assert_eq!(r[0], format!("{:?}", Reply::Stored));
        let v = Reply::Value {
            key: Some(b"key:01"),
            data: b"he\r\no",
            opaque: None,
        };
        assert_eq!(r[1], format!("{v:?}"));
        assert_eq!(
            r[6],
            format!(
                "{:?}",
                Reply::Error {
                    kind: ErrorKind::Server,
                    msg: b"out of memory storing object"
                }
            )
        );
        assert_eq!(
            r[8],
            format!(
                "{:?}",
                Reply::Error {
                    kind: ErrorKind::Generic,
                    msg: b""
                }
            )
        );
    }

    #[test]
    fn meta_stream_parses_identically_at_every_split() {
        let stream =
            b"HD\r\nVA 3\r\nabc\r\nEN\r\nVA 2 kkey:7\r\nxy\r\nMN\r\nNS\r\nVA 0 kkey:8 O1\r\n\r\n\
CLIENT_ERROR bad data chunk\r\nEN kkey:9\r\nSERVER_ERROR out of memory\r\nMN\r\n";
        let r = check_all_splits(Protocol::Meta, stream, 11);
        assert_eq!(
            r[3],
            format!(
                "{:?}",
                Reply::Value {
                    key: Some(b"key:7"),
                    data: b"xy",
                    opaque: None
                }
            )
        );
        assert_eq!(r[4], format!("{:?}", Reply::End));
        assert_eq!(
            r[8],
            format!(
                "{:?}",
                Reply::Miss {
                    key: Some(b"key:9")
                }
            )
        );
    }

    #[test]
    fn binary_stream_parses_identically_at_every_split() {
        let mut stream = Vec::new();
        stream.extend(bin_reply(OP_SET, 0, 5, &[], b"", b""));
        stream.extend(bin_reply(OP_GET, 0, 6, &[0, 0, 0, 0], b"", b"value"));
        stream.extend(bin_reply(OP_GET, 1, 7, &[], b"", b"Not found"));
        stream.extend(bin_reply(OP_GETKQ, 0, 8, &[0, 0, 0, 0], b"key:1", b"v1"));
        stream.extend(bin_reply(OP_NOOP, 0, 0, &[], b"", b""));
        stream.extend(bin_reply(OP_SET, 3, 9, &[], b"", b"Too large."));
        stream.extend(bin_reply(OP_SET, 5, 9, &[], b"", b"Not stored."));
        let r = check_all_splits(Protocol::Binary, &stream, 7);
        assert_eq!(
            r[1],
            format!(
                "{:?}",
                Reply::Value {
                    key: None,
                    data: b"value",
                    opaque: Some(6)
                }
            )
        );
        assert_eq!(r[2], format!("{:?}", Reply::Miss { key: None }));
        assert_eq!(
            r[5],
            format!(
                "{:?}",
                Reply::Error {
                    kind: ErrorKind::Status(3),
                    msg: b"Too large."
                }
            )
        );
        assert_eq!(r[6], format!("{:?}", Reply::NotStored));
    }

    #[test]
    fn garbage_is_rejected() {
        assert!(parse(Protocol::Text, b"HELLO\r\n").is_err());
        assert!(parse(Protocol::Text, b"VALUE k 0 x\r\n").is_err());
        assert!(parse(Protocol::Text, b"VALUE k 0 1\r\nabc\r\n").is_err());
        assert!(parse(Protocol::Meta, b"VA\r\n").is_err());
        assert!(parse(Protocol::Meta, b"STORED\r\n").is_err());
        assert!(parse(Protocol::Binary, &[0x80; 24]).is_err());
        assert!(parse(Protocol::Text, &[b'x'; MAX_LINE]).is_err());
        assert_eq!(parse(Protocol::Text, &[b'x'; MAX_LINE - 1]), Ok(None));
    }

    #[test]
    fn encoders_produce_exact_bytes() {
        let keys = KeyTable::new(10, 6).unwrap();
        let values = ValueGen::new("3".parse().unwrap());
        let mut v3 = Vec::new();
        values.write_value(2, &mut v3);

        let mut out = Vec::new();
        encode_set(Protocol::Text, &mut out, &keys, &values, 2);
        let mut want = b"set key:02 0 0 3\r\n".to_vec();
        want.extend_from_slice(&v3);
        want.extend_from_slice(b"\r\n");
        assert_eq!(out, want);

        out.clear();
        encode_set(Protocol::Meta, &mut out, &keys, &values, 2);
        assert!(out.starts_with(b"ms key:02 3 T0\r\n"));

        out.clear();
        encode_get(Protocol::Text, &mut out, &keys, &[1, 3]);
        assert_eq!(out, b"get key:01 key:03\r\n");

        out.clear();
        encode_get(Protocol::Meta, &mut out, &keys, &[1]);
        assert_eq!(out, b"mg key:01 v\r\n");

        out.clear();
        encode_get(Protocol::Meta, &mut out, &keys, &[1, 3]);
        assert_eq!(out, b"mg key:01 v k q\r\nmg key:03 v k q\r\nmn\r\n");

        out.clear();
        encode_set(Protocol::Binary, &mut out, &keys, &values, 2);
        assert_eq!(out.len(), 24 + 8 + 6 + 3);
        assert_eq!(&out[..2], &[BIN_REQ, OP_SET]);
        assert_eq!(&out[8..12], &17u32.to_be_bytes());
        assert_eq!(&out[12..16], &2u32.to_be_bytes());

        out.clear();
        encode_get(Protocol::Binary, &mut out, &keys, &[1, 3]);
        assert_eq!(out.len(), 2 * (24 + 6) + 24);
        assert_eq!(out[1], OP_GETKQ);
        assert_eq!(out[30 + 1], OP_GETKQ);
        assert_eq!(out[60 + 1], OP_NOOP);

        let mut n = Vec::new();
        push_num(&mut n, 0);
        push_num(&mut n, 1_234_567);
        assert_eq!(n, b"01234567");
    }
}
