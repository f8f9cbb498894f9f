//! Owns: memcached's meta commands (`mg ms md ma mn me`) on the wire side: framing a meta line
//! and an `ms` data block into a `Command`, parsing meta flags into a typed `MetaReq` with memcached 1.6.18's error lines, and the
//! base64 key encoding. Pure; never panics.
//! Does not: apply requests to the store or encode replies (see `exec::meta`).

use super::ascii::{data_block, Block, Command, Tokens, BAD_FORMAT, ERROR, TOO_LARGE};
use super::{Limits, ParseError, Parsed};
use crate::num::{strtol32, strtoul32, strtoull};

/// Frames a meta command whose line (tokenized as `t`, command word `m?`) ended at `used`:
/// `mn` is complete, `ms` waits for its data block, the others carry their words.
pub fn parse_line<'a>(
    buf: &'a [u8],
    used: usize,
    t: Tokens<'a>,
    lim: &Limits,
) -> Result<Parsed<Command<'a>>, ParseError> {
    let c = match t.get(0) {
        b"mn" => Command::MetaNoop,
        b"ms" => return parse_ms(buf, used, t, lim),
        _ => Command::Meta {
            tokens: t,
            data: &[],
        },
    };
    Ok(Parsed::Complete(c, used))
}

/// `ms <key> <datalen> <flags>*\r\n<data>\r\n`: waits for the whole data block.
fn parse_ms<'a>(
    buf: &'a [u8],
    used: usize,
    t: Tokens<'a>,
    lim: &Limits,
) -> Result<Parsed<Command<'a>>, ParseError> {
    let done = |c: Command<'a>, n: usize| Ok(Parsed::Complete(c, n));
    if t.ntokens() < 3 {
        return done(
            Command::Reply {
                msg: ERROR,
                noreply: false,
            },
            used,
        );
    }
    if t.get(1).len() > lim.max_key || t.ntokens() == 3 {
        return done(
            Command::Reply {
                msg: BAD_FORMAT,
                noreply: false,
            },
            used,
        );
    }
    if t.ntokens() > MAX_OPT_TOKENS {
        return done(
            Command::Reply {
                msg: TOO_LONG,
                noreply: false,
            },
            used,
        );
    }
    let vlen = match strtol32(t.get(2)) {
        Some(v) if (0..=i32::MAX - 2).contains(&v) => v as usize,
        _ => {
            return done(
                Command::Reply {
                    msg: BAD_FORMAT,
                    noreply: false,
                },
                used,
            )
        }
    };
    // Flag errors come before the size check, and the data block is swallowed after them.
    let (klen, raw, flags) = match parse_meta(t, &[]) {
        Ok(req) => (req.key().len(), !req.flags.base64, req.flags.client_flags),
        Err(msg) => {
            return done(
                Command::Swallow {
                    msg,
                    noreply: false,
                    skip: vlen + 2,
                    too_large: false,
                    unlink: None,
                },
                used,
            )
        }
    };
    if lim.too_large(klen, vlen, flags) {
        return done(
            Command::Swallow {
                msg: TOO_LARGE,
                noreply: false,
                skip: vlen + 2,
                too_large: true,
                // memcached drops the old value so no stale data survives the failed store
                // (a base64 key is not in the input buffer; its old value stays).
                unlink: raw.then(|| t.get(1)),
            },
            used,
        );
    }
    match data_block(buf, used, vlen) {
        Block::Incomplete => Ok(Parsed::Incomplete),
        Block::BadChunk { end } => done(Command::BadDataChunk { noreply: false }, end),
        Block::Data { data, end } => done(Command::Meta { tokens: t, data }, end),
    }
}

// ----- meta flags ---------------------------------------------------------------------------

/// Which meta command a request is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetaCmd {
    /// `mg`
    Get,
    /// `ms`
    Set,
    /// `md`
    Delete,
    /// `ma`
    Arith,
    /// `me`
    Debug,
}

/// memcached's `MFLAG_MAX_OPT_LENGTH`: more tokens than this (command, key, flags and the
/// terminal token) is an error.
pub const MAX_OPT_TOKENS: usize = 20;
/// memcached's `MFLAG_MAX_OPAQUE_LENGTH`: longest `O` token, the `O` included.
pub const MAX_OPAQUE: usize = 32;
/// Longest key, checked before base64 decoding.
pub const MAX_KEY: usize = 250;

pub const DUPLICATE_FLAG: &str = "CLIENT_ERROR duplicate flag";
pub const INVALID_FLAG: &str = "CLIENT_ERROR invalid flag";
pub const BAD_TOKEN: &str = "CLIENT_ERROR bad token in command line format";
pub const BAD_KEY_ENCODING: &str = "CLIENT_ERROR error decoding key";
pub const MG_TOO_LONG: &str = "CLIENT_ERROR options flags are too long";
/// `ms`, `md` and `ma` spell it without "are".
pub const TOO_LONG: &str = "CLIENT_ERROR options flags too long";
pub const OPAQUE_TOO_LONG: &str = "CLIENT_ERROR opaque token too long";
pub const INVALID_OR_DUPLICATE: &str = "CLIENT_ERROR invalid or duplicate flag";
pub const BAD_M_LENGTH: &str = "CLIENT_ERROR incorrect length for M token";
pub const BAD_MS_MODE: &str = "CLIENT_ERROR invalid mode for ms M token";
pub const BAD_MA_MODE: &str = "CLIENT_ERROR invalid mode for ma M token";
pub const BAD_INITIAL: &str = "CLIENT_ERROR invalid numeric initial value";
pub const BAD_DELTA_VALUE: &str = "CLIENT_ERROR invalid numeric delta value";

/// Options of a meta request, as memcached 1.6.18's `_meta_flag_preparse` reads them.
/// Times are the client's seconds (not yet converted to server time).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MetaFlags {
    /// `b`: the key token is base64.
    pub base64: bool,
    /// `u`: no LRU bump, no access-time update.
    pub no_update: bool,
    /// `v`: return the value.
    pub value: bool,
    /// `I`: invalidate (mark stale) instead of deleting / accept an older CAS.
    pub stale: bool,
    /// `q`: hide nominal replies.
    pub quiet: bool,
    /// `N<ttl>`: create on miss.
    pub vivify: Option<i32>,
    /// `T<ttl>`: new TTL.
    pub ttl: Option<i32>,
    /// `R<ttl>`: recache win below this remaining TTL.
    pub recache: Option<i32>,
    /// `C<cas>`: compare CAS.
    pub cas: Option<u64>,
    /// `F<flags>`: client flags for `ms`.
    pub client_flags: u32,
    /// `M<c>`: mode switch character.
    pub mode: Option<u8>,
    /// `J<n>`: `ma` initial value.
    pub initial: u64,
    /// `D<n>`: `ma` delta (default 1).
    pub delta: u64,
    /// An `O` token is longer than memcached allows (reported when memcached reports it).
    pub opaque_too_long: bool,
}

/// A parsed meta request. The key is held decoded (base64 keys are decoded here).
#[derive(Clone, Copy, Debug)]
pub struct MetaReq<'a> {
    pub cmd: MetaCmd,
    pub tokens: Tokens<'a>,
    /// Index of the first word that may be a flag (the data length of `ms` is skipped).
    pub first_flag: usize,
    pub flags: MetaFlags,
    /// `ms` data block (without its `\r\n`).
    pub data: &'a [u8],
    key: [u8; MAX_KEY],
    klen: usize,
}

impl<'a> MetaReq<'a> {
    /// The key as stored (decoded when `b` was given).
    pub fn key(&self) -> &[u8] {
        &self.key[..self.klen]
    }
    /// The flag words in request order (for echoing return flags).
    pub fn flag_words(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        (self.first_flag..self.tokens.len()).map(move |i| self.tokens.get(i))
    }
}

/// Which command `word` names, if it is a meta command other than `mn`.
pub fn meta_cmd(word: &[u8]) -> Option<MetaCmd> {
    match word {
        b"mg" => Some(MetaCmd::Get),
        b"ms" => Some(MetaCmd::Set),
        b"md" => Some(MetaCmd::Delete),
        b"ma" => Some(MetaCmd::Arith),
        b"me" => Some(MetaCmd::Debug),
        _ => None,
    }
}

/// Parses the words of a meta command (`data` is the `ms` data block) into a request, or the
/// error line memcached 1.6.18 answers with. Pure; never panics.
pub fn parse_meta<'a>(t: Tokens<'a>, data: &'a [u8]) -> Result<MetaReq<'a>, &'static str> {
    let cmd = meta_cmd(t.get(0)).ok_or(ERROR)?;
    let nt = t.ntokens();
    let raw_key = t.get(1);
    if cmd == MetaCmd::Debug {
        if nt < 3 || raw_key.len() > MAX_KEY {
            return Err(BAD_FORMAT);
        }
        let mut req = new_req(cmd, t, 2, data, raw_key);
        if nt >= 4 && t.get(2) == b"b" {
            req.klen = base64_decode(raw_key, &mut req.key);
            if req.klen == 0 {
                return Err(BAD_FORMAT);
            }
            req.flags.base64 = true;
        }
        return Ok(req);
    }
    if nt < 3 {
        return Err(ERROR);
    }
    if raw_key.len() > MAX_KEY {
        return Err(BAD_FORMAT);
    }
    let first_flag = if cmd == MetaCmd::Set { 3 } else { 2 };
    if cmd == MetaCmd::Set && nt == 3 {
        return Err(BAD_FORMAT);
    }
    if nt > MAX_OPT_TOKENS {
        return Err(if cmd == MetaCmd::Get {
            MG_TOO_LONG
        } else {
            TOO_LONG
        });
    }
    let mut req = new_req(cmd, t, first_flag, data, raw_key);
    if cmd == MetaCmd::Set {
        match strtol32(t.get(2)) {
            Some(v) if (0..=i32::MAX - 2).contains(&v) => {}
            _ => return Err(BAD_FORMAT),
        }
    }
    if let Err(e) = preparse(&mut req) {
        return Err(match cmd {
            MetaCmd::Delete | MetaCmd::Arith => INVALID_OR_DUPLICATE,
            _ => e,
        });
    }
    let f = &req.flags;
    match cmd {
        MetaCmd::Set => {
            if !matches!(f.mode, None | Some(b'E' | b'A' | b'P' | b'R' | b'S')) {
                return Err(BAD_MS_MODE);
            }
            if f.opaque_too_long {
                return Err(OPAQUE_TOO_LONG);
            }
        }
        MetaCmd::Delete if f.opaque_too_long => return Err(OPAQUE_TOO_LONG),
        MetaCmd::Arith if !matches!(f.mode, None | Some(b'I' | b'+' | b'D' | b'-')) => {
            return Err(BAD_MA_MODE)
        }
        // mg and ma report a long opaque after the lookup (memcached's order).
        _ => {}
    }
    Ok(req)
}

fn new_req<'a>(
    cmd: MetaCmd,
    tokens: Tokens<'a>,
    first_flag: usize,
    data: &'a [u8],
    raw_key: &[u8],
) -> MetaReq<'a> {
    let mut key = [0u8; MAX_KEY];
    let klen = raw_key.len().min(MAX_KEY);
    key[..klen].copy_from_slice(&raw_key[..klen]);
    MetaReq {
        cmd,
        tokens,
        first_flag,
        flags: MetaFlags {
            delta: 1,
            ..MetaFlags::default()
        },
        data,
        key,
        klen,
    }
}

/// memcached's `_meta_flag_preparse`: a repeated or unknown flag stops at once; other errors are
/// remembered (the last one wins) and parsing goes on.
fn preparse(req: &mut MetaReq<'_>) -> Result<(), &'static str> {
    let mut seen = [false; 128];
    let mut err: Option<&'static str> = None;
    let raw_key = req.tokens.get(1);
    for i in req.first_flag..req.tokens.len() {
        let tok = req.tokens.get(i);
        let Some(&o) = tok.first() else { continue };
        if o >= 127 || seen[usize::from(o)] {
            return Err(DUPLICATE_FLAG);
        }
        seen[usize::from(o)] = true;
        let arg = &tok[1..];
        let f = &mut req.flags;
        match o {
            b'b' => {
                let n = base64_decode(raw_key, &mut req.key);
                if n == 0 {
                    err = Some(BAD_KEY_ENCODING);
                }
                req.klen = n;
                f.base64 = true;
            }
            b'N' | b'T' | b'R' => match strtol32(arg) {
                Some(v) => match o {
                    b'N' => f.vivify = Some(v),
                    b'T' => f.ttl = Some(v),
                    _ => f.recache = Some(v),
                },
                None => err = Some(BAD_TOKEN),
            },
            b'O' => {
                if tok.len() > MAX_OPAQUE {
                    f.opaque_too_long = true;
                }
            }
            b'P' | b'L' | b'k' | b's' | b't' | b'c' | b'f' | b'l' | b'h' => {}
            b'v' => f.value = true,
            b'u' => f.no_update = true,
            b'q' => f.quiet = true,
            b'I' => f.stale = true,
            b'F' => match strtoul32(arg) {
                Some(v) => f.client_flags = v,
                None => err = Some(err.unwrap_or(BAD_FORMAT)),
            },
            b'C' => match strtoull(arg) {
                Some(v) => f.cas = Some(v),
                None => err = Some(BAD_TOKEN),
            },
            b'M' => {
                if tok.len() != 2 {
                    err = Some(BAD_M_LENGTH);
                } else {
                    f.mode = Some(tok[1]);
                }
            }
            b'J' => match strtoull(arg) {
                Some(v) => f.initial = v,
                None => err = Some(BAD_INITIAL),
            },
            b'D' => match strtoull(arg) {
                Some(v) => f.delta = v,
                None => err = Some(BAD_DELTA_VALUE),
            },
            _ => return Err(INVALID_FLAG),
        }
    }
    match err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

// ----- base64 (memcached's variant) ---------------------------------------------------------

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn b64_value(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        b'=' => Some(0),
        _ => None,
    }
}

/// Decodes `src` into `out` the way memcached does: characters outside the alphabet are
/// skipped, the rest must come in groups of four, `=` ends the data (one or two per group).
/// Returns the decoded length; 0 means the key cannot be decoded.
pub fn base64_decode(src: &[u8], out: &mut [u8]) -> usize {
    let count = src.iter().filter(|&&c| b64_value(c).is_some()).count();
    if count == 0 || count % 4 != 0 || count / 4 * 3 > out.len() {
        return 0;
    }
    let mut pos = 0;
    let mut block = [0u8; 4];
    let mut n = 0;
    let mut pad = 0;
    for &c in src {
        let Some(v) = b64_value(c) else { continue };
        if c == b'=' {
            pad += 1;
        }
        block[n] = v;
        n += 1;
        if n == 4 {
            out[pos] = (block[0] << 2) | (block[1] >> 4);
            out[pos + 1] = (block[1] << 4) | (block[2] >> 2);
            out[pos + 2] = (block[2] << 6) | block[3];
            pos += 3;
            n = 0;
            if pad > 0 {
                match pad {
                    1 => pos -= 1,
                    2 => pos -= 2,
                    _ => return 0,
                }
                break;
            }
        }
    }
    pos
}

/// Appends the standard, padded base64 form of `src`.
pub fn base64_encode(src: &[u8], out: &mut Vec<u8>) {
    let sym = |i: u8| B64[usize::from(i & 0x3f)];
    let mut chunks = src.chunks_exact(3);
    for c in &mut chunks {
        out.extend_from_slice(&[
            sym(c[0] >> 2),
            sym((c[0] << 4) | (c[1] >> 4)),
            sym((c[1] << 2) | (c[2] >> 6)),
            sym(c[2]),
        ]);
    }
    match *chunks.remainder() {
        [a] => out.extend_from_slice(&[sym(a >> 2), sym(a << 4), b'=', b'=']),
        [a, b] => {
            out.extend_from_slice(&[sym(a >> 2), sym((a << 4) | (b >> 4)), sym(b << 2), b'='])
        }
        _ => {}
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(line: &str) -> Result<MetaReq<'_>, &'static str> {
        parse_meta(Tokens::new(line.as_bytes()), b"")
    }

    #[test]
    fn base64_round_trip_and_memcached_quirks() {
        for src in [
            &b""[..],
            b"f",
            b"fo",
            b"foo",
            b"\x00\xff\r\n",
            &[7u8; 187][..],
        ] {
            let mut enc = Vec::new();
            base64_encode(src, &mut enc);
            let mut dec = [0u8; 250];
            let n = base64_decode(&enc, &mut dec);
            assert_eq!(&dec[..n], src);
        }
        let mut dec = [0u8; 250];
        assert_eq!(base64_decode(b"Zm9vYg", &mut dec), 0); // unpadded
        assert_eq!(base64_decode(b"====", &mut dec), 0);
        assert_eq!(base64_decode(b"Z*m9v", &mut dec), 3); // foreign bytes skipped
        assert_eq!(&dec[..3], b"foo");
    }

    #[test]
    fn flags_and_errors() {
        let r = parse("mg Zm9v b v T30 N5 R7 C9 O1 q u").unwrap();
        assert_eq!(r.key(), b"foo");
        let f = r.flags;
        assert!(f.base64 && f.value && f.quiet && f.no_update);
        assert_eq!(
            (f.ttl, f.vivify, f.recache, f.cas),
            (Some(30), Some(5), Some(7), Some(9))
        );
        assert_eq!(parse("mg k v v").err(), Some(DUPLICATE_FLAG));
        assert_eq!(parse("mg k E1").err(), Some(INVALID_FLAG));
        assert_eq!(parse("mg k Tx Cy").err(), Some(BAD_TOKEN));
        assert_eq!(parse("ms k 1 Fx").err(), Some(BAD_FORMAT));
        assert_eq!(parse("md k E1").err(), Some(INVALID_OR_DUPLICATE));
        assert_eq!(parse("ma k Mx").err(), Some(BAD_MA_MODE));
        assert_eq!(parse("ms k 1 MX").err(), Some(BAD_MS_MODE));
        assert_eq!(parse("mg").err(), Some(ERROR));
        assert_eq!(parse("me").err(), Some(BAD_FORMAT));
        assert_eq!(parse("ma k D5 J7 M-").unwrap().flags.delta, 5);
    }
}
