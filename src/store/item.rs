//! Owns: the byte layout of one item inside a slab chunk, and typed accessors for its fields.
//! Does not: allocate, link or index items (see `slab`, `lru`, `shard`).
//!
//! ```text
//!  0        4        8                16       20       24       28       32  33  34  36
//!  +--------+--------+----------------+--------+--------+--------+--------+---+---+---+--------- - -
//!  | prev   | next   | cas (u64)      | exptime| atime  | flags  | vlen   |kl |bit|pad| key | value
//!  +--------+--------+----------------+--------+--------+--------+--------+---+---+---+--------- - -
//! ```
//! All integers little-endian. `prev`/`next` are chunk ids of the LRU neighbours (`NIL` = none);
//! `exptime`/`atime` are server-relative seconds; `bits` holds the LRU segment, access marks and
//! meta-protocol marks (win token sent, stale, base64 key).

/// Bytes of header before the key.
pub const HEADER: usize = 36;
/// "No chunk" marker for links.
pub const NIL: u32 = u32::MAX;

const PREV: usize = 0;
const NEXT: usize = 4;
const CAS: usize = 8;
const EXPTIME: usize = 16;
const ATIME: usize = 20;
const FLAGS: usize = 24;
const VLEN: usize = 28;
const KLEN: usize = 32;
const BITS: usize = 33;

/// Segment of the LRU an item is linked into (stored in the low two bits of `bits`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Segment {
    Hot = 1,
    Warm = 2,
    Cold = 3,
}

impl Segment {
    pub const ALL: [Segment; 3] = [Segment::Hot, Segment::Warm, Segment::Cold];
    #[inline]
    pub fn index(self) -> usize {
        self as usize - 1
    }
}

/// Item was read at least once since it was stored.
pub const FETCHED: u8 = 0x04;
/// Item was read at least twice (eligible to move up from COLD, or stay in WARM).
pub const ACTIVE: u8 = 0x08;
/// A recache "win" token was handed out for this item (meta protocol).
pub const WIN_SENT: u8 = 0x10;
/// Item was marked stale (meta invalidation).
pub const STALE: u8 = 0x20;
/// The key was stored base64-encoded by a meta command (`b`), so `mg k` and `me` show it
/// base64-encoded, as memcached's `ITEM_KEY_BINARY` does.
pub const KEY_BINARY: u8 = 0x40;
const SEGMENT_MASK: u8 = 0x03;

/// Total chunk bytes an item with these key/value lengths needs.
#[inline]
pub fn total_size(klen: usize, vlen: usize) -> usize {
    HEADER + klen + vlen
}

#[inline]
fn rd32(c: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&c[at..at + 4]);
    u32::from_le_bytes(b)
}
#[inline]
fn wr32(c: &mut [u8], at: usize, v: u32) {
    c[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

#[inline]
pub fn prev(c: &[u8]) -> u32 {
    rd32(c, PREV)
}
#[inline]
pub fn next(c: &[u8]) -> u32 {
    rd32(c, NEXT)
}
#[inline]
pub fn set_prev(c: &mut [u8], v: u32) {
    wr32(c, PREV, v)
}
#[inline]
pub fn set_next(c: &mut [u8], v: u32) {
    wr32(c, NEXT, v)
}
#[inline]
pub fn cas(c: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&c[CAS..CAS + 8]);
    u64::from_le_bytes(b)
}
#[inline]
pub fn set_cas(c: &mut [u8], v: u64) {
    c[CAS..CAS + 8].copy_from_slice(&v.to_le_bytes());
}
#[inline]
pub fn exptime(c: &[u8]) -> u32 {
    rd32(c, EXPTIME)
}
#[inline]
pub fn set_exptime(c: &mut [u8], v: u32) {
    wr32(c, EXPTIME, v)
}
#[inline]
pub fn atime(c: &[u8]) -> u32 {
    rd32(c, ATIME)
}
#[inline]
pub fn set_atime(c: &mut [u8], v: u32) {
    wr32(c, ATIME, v)
}
#[inline]
pub fn flags(c: &[u8]) -> u32 {
    rd32(c, FLAGS)
}
#[inline]
pub fn vlen(c: &[u8]) -> usize {
    rd32(c, VLEN) as usize
}
#[inline]
pub fn klen(c: &[u8]) -> usize {
    c[KLEN] as usize
}
#[inline]
pub fn bits(c: &[u8]) -> u8 {
    c[BITS]
}
#[inline]
pub fn set_bits(c: &mut [u8], b: u8) {
    c[BITS] = b
}
#[inline]
pub fn segment(c: &[u8]) -> Option<Segment> {
    match c[BITS] & SEGMENT_MASK {
        1 => Some(Segment::Hot),
        2 => Some(Segment::Warm),
        3 => Some(Segment::Cold),
        _ => None,
    }
}
#[inline]
pub fn set_segment(c: &mut [u8], s: Option<Segment>) {
    let v = s.map_or(0, |s| s as u8);
    c[BITS] = (c[BITS] & !SEGMENT_MASK) | v;
}
/// True when the chunk holds a linked item (free chunks have no segment).
#[inline]
pub fn in_use(c: &[u8]) -> bool {
    c[BITS] & SEGMENT_MASK != 0
}
#[inline]
pub fn key(c: &[u8]) -> &[u8] {
    &c[HEADER..HEADER + klen(c)]
}
#[inline]
pub fn value(c: &[u8]) -> &[u8] {
    let k = klen(c);
    &c[HEADER + k..HEADER + k + vlen(c)]
}
#[inline]
pub fn value_mut(c: &mut [u8]) -> &mut [u8] {
    let k = klen(c);
    let v = vlen(c);
    &mut c[HEADER + k..HEADER + k + v]
}

/// Writes a fresh item (header, key, value parts concatenated) into a chunk; links are cleared
/// and the segment left unset (the caller links it).
pub fn write_new(
    c: &mut [u8],
    key: &[u8],
    flags: u32,
    exptime: u32,
    now: u32,
    cas: u64,
    parts: &[&[u8]],
) {
    let vlen: usize = parts.iter().map(|p| p.len()).sum();
    wr32(c, PREV, NIL);
    wr32(c, NEXT, NIL);
    set_cas(c, cas);
    wr32(c, EXPTIME, exptime);
    wr32(c, ATIME, now);
    wr32(c, FLAGS, flags);
    wr32(c, VLEN, vlen as u32);
    c[KLEN] = key.len() as u8;
    c[BITS] = 0;
    c[BITS + 1] = 0;
    c[BITS + 2] = 0;
    c[HEADER..HEADER + key.len()].copy_from_slice(key);
    let mut at = HEADER + key.len();
    for p in parts {
        c[at..at + p.len()].copy_from_slice(p);
        at += p.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_fields() {
        let mut c = vec![0u8; 128];
        write_new(&mut c, b"key", 7, 99, 5, 42, &[b"he", b"llo"]);
        assert_eq!(key(&c), b"key");
        assert_eq!(value(&c), b"hello");
        assert_eq!(flags(&c), 7);
        assert_eq!(exptime(&c), 99);
        assert_eq!(atime(&c), 5);
        assert_eq!(cas(&c), 42);
        assert_eq!(prev(&c), NIL);
        assert!(!in_use(&c));
        set_segment(&mut c, Some(Segment::Warm));
        let b = bits(&c);
        set_bits(&mut c, b | FETCHED);
        assert_eq!(segment(&c), Some(Segment::Warm));
        assert!(in_use(&c));
        assert_eq!(bits(&c) & FETCHED, FETCHED);
    }
}
