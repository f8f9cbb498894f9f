//! Owns: memcached's binary protocol framing — the 24-byte header, opcodes, status codes, the
//! per-opcode length rules of memcached 1.6.18 (`dispatch_bin_command`), and the response header
//! encoder. Pure: never panics, never trusts a claimed length (a value is only ever sliced out of
//! bytes already received; an oversized one is skipped unread).
//! Does not: execute requests (see `exec::binary`) or decide authentication.

use super::{Limits, ParseError, Parsed};

/// Size of every request and response header.
pub const HEADER_LEN: usize = 24;
/// Magic byte of a request.
pub const REQ_MAGIC: u8 = 0x80;
/// Magic byte of a response.
pub const RES_MAGIC: u8 = 0x81;
/// Longest SASL mechanism name (memcached's `MAX_SASL_MECH_LEN`).
pub const MAX_SASL_MECH_LEN: usize = 32;
/// Largest SASL auth/step payload accepted (a PLAIN payload is two names and a password).
pub const MAX_SASL_DATA: usize = 64 * 1024;

/// Opcodes.
pub mod op {
    pub const GET: u8 = 0x00;
    pub const SET: u8 = 0x01;
    pub const ADD: u8 = 0x02;
    pub const REPLACE: u8 = 0x03;
    pub const DELETE: u8 = 0x04;
    pub const INCREMENT: u8 = 0x05;
    pub const DECREMENT: u8 = 0x06;
    pub const QUIT: u8 = 0x07;
    pub const FLUSH: u8 = 0x08;
    pub const GETQ: u8 = 0x09;
    pub const NOOP: u8 = 0x0a;
    pub const VERSION: u8 = 0x0b;
    pub const GETK: u8 = 0x0c;
    pub const GETKQ: u8 = 0x0d;
    pub const APPEND: u8 = 0x0e;
    pub const PREPEND: u8 = 0x0f;
    pub const STAT: u8 = 0x10;
    pub const SETQ: u8 = 0x11;
    pub const ADDQ: u8 = 0x12;
    pub const REPLACEQ: u8 = 0x13;
    pub const DELETEQ: u8 = 0x14;
    pub const INCREMENTQ: u8 = 0x15;
    pub const DECREMENTQ: u8 = 0x16;
    pub const QUITQ: u8 = 0x17;
    pub const FLUSHQ: u8 = 0x18;
    pub const APPENDQ: u8 = 0x19;
    pub const PREPENDQ: u8 = 0x1a;
    pub const VERBOSITY: u8 = 0x1b;
    pub const TOUCH: u8 = 0x1c;
    pub const GAT: u8 = 0x1d;
    pub const GATQ: u8 = 0x1e;
    pub const SASL_LIST_MECHS: u8 = 0x20;
    pub const SASL_AUTH: u8 = 0x21;
    pub const SASL_STEP: u8 = 0x22;
    pub const GATK: u8 = 0x23;
    pub const GATKQ: u8 = 0x24;
    /// ElastiCache Auto Discovery.
    pub const CONFIG_GET: u8 = 0x60;
    pub const CONFIG_SET: u8 = 0x64;
    pub const CONFIG_SETQ: u8 = 0x65;
}

/// Response status codes and memcached's text for each.
pub mod status {
    pub const OK: u16 = 0x0000;
    pub const KEY_ENOENT: u16 = 0x0001;
    pub const KEY_EEXISTS: u16 = 0x0002;
    pub const E2BIG: u16 = 0x0003;
    pub const EINVAL: u16 = 0x0004;
    pub const NOT_STORED: u16 = 0x0005;
    pub const DELTA_BADVAL: u16 = 0x0006;
    pub const AUTH_ERROR: u16 = 0x0020;
    pub const AUTH_CONTINUE: u16 = 0x0021;
    pub const UNKNOWN_COMMAND: u16 = 0x0081;
    pub const ENOMEM: u16 = 0x0082;

    /// The body memcached sends with an error status.
    pub fn text(status: u16) -> &'static str {
        match status {
            ENOMEM => "Out of memory",
            UNKNOWN_COMMAND => "Unknown command",
            KEY_ENOENT => "Not found",
            EINVAL => "Invalid arguments",
            KEY_EEXISTS => "Data exists for key.",
            E2BIG => "Too large.",
            DELTA_BADVAL => "Non-numeric server-side value for incr or decr",
            NOT_STORED => "Not stored.",
            AUTH_ERROR => "Auth failure.",
            _ => "UNHANDLED ERROR",
        }
    }
}

/// A request header, in host byte order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Header {
    pub opcode: u8,
    pub keylen: u16,
    pub extlen: u8,
    pub datatype: u8,
    pub vbucket: u16,
    pub bodylen: u32,
    pub opaque: u32,
    pub cas: u64,
}

impl Header {
    fn read(b: &[u8]) -> Header {
        let u16_at = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
        let u32_at = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        Header {
            opcode: b[1],
            keylen: u16_at(2),
            extlen: b[4],
            datatype: b[5],
            vbucket: u16_at(6),
            bodylen: u32_at(8),
            opaque: u32_at(12),
            cas: (u64::from(u32_at(16)) << 32) | u64::from(u32_at(20)),
        }
    }

    /// Bytes of the body after extras and key (may be negative on a malformed header).
    fn value_len(&self) -> i64 {
        i64::from(self.bodylen) - i64::from(self.keylen) - i64::from(self.extlen)
    }

    /// Appends this header as a request (used by tests and the load generator).
    pub fn write_request(&self, out: &mut Vec<u8>) {
        out.push(REQ_MAGIC);
        out.push(self.opcode);
        out.extend_from_slice(&self.keylen.to_be_bytes());
        out.push(self.extlen);
        out.push(self.datatype);
        out.extend_from_slice(&self.vbucket.to_be_bytes());
        out.extend_from_slice(&self.bodylen.to_be_bytes());
        out.extend_from_slice(&self.opaque.to_be_bytes());
        out.extend_from_slice(&self.cas.to_be_bytes());
    }
}

/// How a framed request measured up against memcached's rules, in the order memcached checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// Well formed; the value (if the opcode takes one) is in the frame.
    Ok,
    /// `keylen + extlen > bodylen`: "Unknown command", then close.
    BadLengths,
    /// Key over 250 bytes, or lengths the opcode does not allow: "Invalid arguments", then close.
    Invalid,
    /// An opcode memcached does not implement: "Unknown command"; the body is skipped.
    Unknown,
    /// A value larger than an item may be: "Too large."; the value is skipped unread.
    TooLarge,
}

/// One request: its header, extras and key (always buffered), and its value when the opcode
/// takes one and the value is storable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    pub header: Header,
    pub check: Check,
    pub extras: &'a [u8],
    pub key: &'a [u8],
    pub value: &'a [u8],
    /// Body bytes after the frame that the connection must discard unread.
    pub skip: usize,
}

impl Frame<'_> {
    /// The opcode without its quiet bit, and whether it was quiet.
    pub fn base_opcode(&self) -> (u8, bool) {
        unquiet(self.header.opcode)
    }
}

/// Maps a quiet opcode to its loud twin (`GETQ` → `GET`), with a flag saying it was quiet.
pub fn unquiet(opcode: u8) -> (u8, bool) {
    let loud = match opcode {
        op::SETQ => op::SET,
        op::ADDQ => op::ADD,
        op::REPLACEQ => op::REPLACE,
        op::DELETEQ => op::DELETE,
        op::INCREMENTQ => op::INCREMENT,
        op::DECREMENTQ => op::DECREMENT,
        op::QUITQ => op::QUIT,
        op::FLUSHQ => op::FLUSH,
        op::APPENDQ => op::APPEND,
        op::PREPENDQ => op::PREPEND,
        op::GETQ => op::GET,
        op::GETKQ => op::GETK,
        op::GATQ => op::GAT,
        op::GATKQ => op::GATK,
        op::CONFIG_SETQ => op::CONFIG_SET,
        other => return (other, false),
    };
    (loud, true)
}

/// Whether the opcode's value is part of the request (stored or consumed), as opposed to
/// bytes memcached never reads.
fn takes_value(opcode: u8) -> bool {
    matches!(
        unquiet(opcode).0,
        op::SET
            | op::ADD
            | op::REPLACE
            | op::APPEND
            | op::PREPEND
            | op::SASL_AUTH
            | op::SASL_STEP
            | op::CONFIG_SET
    )
}

/// memcached's per-opcode length rules (after the quiet mapping). `None`: not an opcode
/// memcached implements.
fn lengths_ok(h: &Header) -> Option<bool> {
    let (ext, key, body) = (h.extlen, h.keylen, h.bodylen);
    let key32 = u32::from(key);
    let ok = match unquiet(h.opcode).0 {
        op::VERSION | op::NOOP | op::QUIT | op::SASL_LIST_MECHS => {
            ext == 0 && key == 0 && body == 0
        }
        op::FLUSH => key == 0 && body == u32::from(ext) && (ext == 0 || ext == 4),
        op::SET | op::ADD | op::REPLACE => ext == 8 && key != 0 && body >= key32 + 8,
        op::GET | op::GETK | op::DELETE => ext == 0 && body == key32 && key > 0,
        op::INCREMENT | op::DECREMENT => key > 0 && ext == 20 && body == key32 + 20,
        op::APPEND | op::PREPEND => key > 0 && ext == 0,
        op::STAT => ext == 0,
        op::SASL_AUTH | op::SASL_STEP => ext == 0 && key != 0,
        op::TOUCH | op::GAT | op::GATK => ext == 4 && key != 0,
        op::CONFIG_GET => ext == 0 && key != 0 && body == key32,
        op::CONFIG_SET => (ext == 0 || ext == 8) && key != 0,
        _ => return None,
    };
    Some(ok)
}

/// Frames one request from the front of `input`.
///
/// Waits (`Incomplete`) for the header, extras and key, and for the value of a storing opcode
/// unless that value is too large to store (then it is skipped, never buffered). A first byte
/// other than the request magic is an error: memcached closes the connection.
pub fn parse<'a>(input: &'a [u8], lim: &Limits) -> Result<Parsed<Frame<'a>>, ParseError> {
    if input.len() < HEADER_LEN {
        return Ok(Parsed::Incomplete);
    }
    if input[0] != REQ_MAGIC {
        return Err(ParseError::BadMagic);
    }
    let h = Header::read(&input[..HEADER_LEN]);
    let head = HEADER_LEN + usize::from(h.extlen) + usize::from(h.keylen);
    if input.len() < head {
        return Ok(Parsed::Incomplete);
    }
    let extras = &input[HEADER_LEN..HEADER_LEN + usize::from(h.extlen)];
    let key = &input[HEADER_LEN + usize::from(h.extlen)..head];
    let frame = |check, value: &'a [u8], skip| Frame {
        header: h,
        check,
        extras,
        key,
        value,
        skip,
    };
    let vlen = h.value_len();
    if vlen < 0 {
        return Ok(Parsed::Complete(frame(Check::BadLengths, &[], 0), head));
    }
    let vlen = vlen as usize;
    if usize::from(h.keylen) > lim.max_key {
        return Ok(Parsed::Complete(frame(Check::Invalid, &[], 0), head));
    }
    match lengths_ok(&h) {
        None => return Ok(Parsed::Complete(frame(Check::Unknown, &[], vlen), head)),
        Some(false) => return Ok(Parsed::Complete(frame(Check::Invalid, &[], 0), head)),
        Some(true) => {}
    }
    if !takes_value(h.opcode) {
        // Bytes beyond extras and key that the opcode does not use are skipped.
        return Ok(Parsed::Complete(frame(Check::Ok, &[], vlen), head));
    }
    let base = unquiet(h.opcode).0;
    let too_large = match base {
        op::SASL_AUTH | op::SASL_STEP => vlen > MAX_SASL_DATA,
        // set/add/replace carry the flags first in their extras; append/prepend have none.
        _ => {
            let flags = extras
                .get(..4)
                .map_or(0, |f| u32::from_be_bytes([f[0], f[1], f[2], f[3]]));
            lim.too_large(key.len(), vlen, flags)
        }
    };
    if too_large {
        return Ok(Parsed::Complete(frame(Check::TooLarge, &[], vlen), head));
    }
    if input.len() < head + vlen {
        return Ok(Parsed::Incomplete);
    }
    let value = &input[head..head + vlen];
    Ok(Parsed::Complete(frame(Check::Ok, value, 0), head + vlen))
}

/// The fields of a response header a reply chooses (magic, data type and lengths follow).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResHeader {
    pub opcode: u8,
    pub status: u16,
    pub opaque: u32,
    pub cas: u64,
}

/// Appends a response header for a body of `bodylen` bytes starting with `extlen` bytes of
/// extras and `keylen` bytes of key.
pub fn write_header(out: &mut Vec<u8>, h: ResHeader, extlen: u8, keylen: u16, bodylen: u32) {
    out.push(RES_MAGIC);
    out.push(h.opcode);
    out.extend_from_slice(&keylen.to_be_bytes());
    out.push(extlen);
    out.push(0);
    out.extend_from_slice(&h.status.to_be_bytes());
    out.extend_from_slice(&bodylen.to_be_bytes());
    out.extend_from_slice(&h.opaque.to_be_bytes());
    out.extend_from_slice(&h.cas.to_be_bytes());
}

/// Appends a complete response packet.
pub fn write_response(out: &mut Vec<u8>, h: ResHeader, extras: &[u8], key: &[u8], value: &[u8]) {
    let body = extras.len() + key.len() + value.len();
    write_header(out, h, extras.len() as u8, key.len() as u16, body as u32);
    out.extend_from_slice(extras);
    out.extend_from_slice(key);
    out.extend_from_slice(value);
}

/// Appends an error packet with memcached's text for `status`.
pub fn write_error(out: &mut Vec<u8>, opcode: u8, status: u16, opaque: u32) {
    let h = ResHeader {
        opcode,
        status,
        opaque,
        cas: 0,
    };
    write_response(out, h, &[], &[], status::text(status).as_bytes());
}

/// The reply writer of one request: answers with its opcode and opaque, and owns quiet mode —
/// a quiet opcode (`GETQ`, `SETQ`, ...) hides successes and get misses, never errors or get hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    pub opcode: u8,
    pub opaque: u32,
    pub quiet: bool,
}

impl Reply {
    /// The writer for the request with this header.
    pub fn to(h: &Header) -> Reply {
        Reply {
            opcode: h.opcode,
            opaque: h.opaque,
            quiet: unquiet(h.opcode).1,
        }
    }
    fn head(&self, status: u16, cas: u64) -> ResHeader {
        ResHeader {
            opcode: self.opcode,
            status,
            opaque: self.opaque,
            cas,
        }
    }
    /// A success carrying `value` (may be empty): hidden when quiet.
    pub fn ok(&self, out: &mut Vec<u8>, cas: u64, value: &[u8]) {
        if !self.quiet {
            write_response(out, self.head(status::OK, cas), &[], &[], value);
        }
    }
    /// An error status with memcached's text for it: always written.
    pub fn error(&self, out: &mut Vec<u8>, status: u16) {
        write_error(out, self.opcode, status, self.opaque);
    }
    /// A packet written whatever the mode (errors with their own text, SASL answers, stats).
    pub fn always(&self, out: &mut Vec<u8>, status: u16, key: &[u8], value: &[u8]) {
        write_response(out, self.head(status, 0), &[], key, value);
    }
    /// A get hit: 4 bytes of flags, the key when asked for, the value (`len` bytes in parts);
    /// always written.
    pub fn hit<'a>(
        &self,
        out: &mut Vec<u8>,
        cas: u64,
        (flags, key): (u32, &[u8]),
        value: impl IntoIterator<Item = &'a [u8]>,
        len: usize,
    ) {
        let body = 4 + key.len() + len;
        write_header(
            out,
            self.head(status::OK, cas),
            4,
            key.len() as u16,
            body as u32,
        );
        out.extend_from_slice(&flags.to_be_bytes());
        out.extend_from_slice(key);
        out.reserve(len);
        for part in value {
            out.extend_from_slice(part);
        }
    }
    /// A get miss (with the key for GETK/GATK, else memcached's text): hidden when quiet.
    pub fn miss(&self, out: &mut Vec<u8>, key: Option<&[u8]>) {
        if self.quiet {
            return;
        }
        match key {
            Some(k) => write_response(out, self.head(status::KEY_ENOENT, 0), &[], k, &[]),
            None => self.error(out, status::KEY_ENOENT),
        }
    }
}

/// Builds a request packet (tests, the load generator, the cluster push client).
pub fn request(
    opcode: u8,
    opaque: u32,
    cas: u64,
    extras: &[u8],
    key: &[u8],
    value: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + extras.len() + key.len() + value.len());
    Header {
        opcode,
        keylen: key.len() as u16,
        extlen: extras.len() as u8,
        bodylen: (extras.len() + key.len() + value.len()) as u32,
        opaque,
        cas,
        ..Header::default()
    }
    .write_request(&mut out);
    out.extend_from_slice(extras);
    out.extend_from_slice(key);
    out.extend_from_slice(value);
    out
}

/// A response as read back by clients of this crate (tests, tools).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    pub opcode: u8,
    pub status: u16,
    pub opaque: u32,
    pub cas: u64,
    pub extras: Vec<u8>,
    pub key: Vec<u8>,
    pub value: Vec<u8>,
}

/// Parses one response from the front of `input`: `Some((response, used))` when complete.
pub fn parse_response(input: &[u8]) -> Option<(Response, usize)> {
    if input.len() < HEADER_LEN || input[0] != RES_MAGIC {
        return None;
    }
    let h = Header::read(&input[..HEADER_LEN]);
    let total = HEADER_LEN + h.bodylen as usize;
    if input.len() < total {
        return None;
    }
    let e = HEADER_LEN + usize::from(h.extlen);
    let k = e + usize::from(h.keylen);
    if k > total {
        return None;
    }
    Some((
        Response {
            opcode: h.opcode,
            status: h.vbucket,
            opaque: h.opaque,
            cas: h.cas,
            extras: input[HEADER_LEN..e].to_vec(),
            key: input[e..k].to_vec(),
            value: input[k..total].to_vec(),
        },
        total,
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    use super::*;

    fn lim() -> Limits {
        Limits::default()
    }

    #[test]
    fn get_frames_and_every_prefix_is_incomplete() {
        let p = request(op::GET, 7, 0, &[], b"foo", &[]);
        for i in 0..p.len() {
            assert_eq!(parse(&p[..i], &lim()), Ok(Parsed::Incomplete), "prefix {i}");
        }
        let Ok(Parsed::Complete(f, used)) = parse(&p, &lim()) else {
            panic!("not complete")
        };
        assert_eq!(used, p.len());
        assert_eq!(f.key, b"foo");
        assert_eq!(f.check, Check::Ok);
        assert_eq!(f.header.opaque, 7);
    }

    #[test]
    fn set_waits_for_value_unless_too_large() {
        let p = request(op::SET, 0, 0, &[0; 8], b"k", b"hello");
        assert_eq!(parse(&p[..p.len() - 1], &lim()), Ok(Parsed::Incomplete));
        let Ok(Parsed::Complete(f, _)) = parse(&p, &lim()) else {
            panic!()
        };
        assert_eq!(f.value, b"hello");
        // A value over -I is skipped unread, decided from the header alone.
        let mut big = request(op::SET, 0, 0, &[0; 8], b"k", &[]);
        big[8..12].copy_from_slice(&(9 + 2_000_000u32).to_be_bytes());
        let Ok(Parsed::Complete(f, used)) = parse(&big, &lim()) else {
            panic!()
        };
        assert_eq!(f.check, Check::TooLarge);
        assert_eq!(used, big.len());
        assert_eq!(f.skip, 2_000_000);
    }

    #[test]
    fn malformed_headers() {
        let mut p = request(op::GET, 0, 0, &[], b"k", &[]);
        p[0] = 0x82;
        assert_eq!(parse(&p, &lim()), Err(ParseError::BadMagic));
        let mut p = request(op::GET, 0, 0, &[], b"key", &[]);
        p[8..12].copy_from_slice(&1u32.to_be_bytes());
        let Ok(Parsed::Complete(f, _)) = parse(&p, &lim()) else {
            panic!()
        };
        assert_eq!(f.check, Check::BadLengths);
        let p = request(op::GET, 0, 0, &[0; 4], b"k", &[]);
        let Ok(Parsed::Complete(f, _)) = parse(&p, &lim()) else {
            panic!()
        };
        assert_eq!(f.check, Check::Invalid);
        let p = request(0x50, 0, 0, &[], &[], b"abcde");
        let Ok(Parsed::Complete(f, used)) = parse(&p, &lim()) else {
            panic!()
        };
        assert_eq!((f.check, used, f.skip), (Check::Unknown, 24, 5));
        let long = vec![b'a'; 251];
        let p = request(op::GET, 0, 0, &[], &long, &[]);
        let Ok(Parsed::Complete(f, _)) = parse(&p, &lim()) else {
            panic!()
        };
        assert_eq!(f.check, Check::Invalid);
    }

    #[test]
    fn response_round_trip() {
        let mut out = Vec::new();
        let h = ResHeader {
            opcode: op::GETK,
            status: 0,
            opaque: 9,
            cas: 42,
        };
        write_response(&mut out, h, &[0, 0, 0, 1], b"k", b"v");
        let (r, used) = parse_response(&out).unwrap();
        assert_eq!(used, out.len());
        assert_eq!((r.opcode, r.status, r.opaque, r.cas), (op::GETK, 0, 9, 42));
        assert_eq!(
            (&r.extras[..], &r.key[..], &r.value[..]),
            (&[0, 0, 0, 1][..], &b"k"[..], &b"v"[..])
        );
    }
}
