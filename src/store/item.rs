//! Owns: the byte layout of one item inside a slab chunk, and typed accessors for its fields.
//! Does not: allocate, age or index items (see `slab`, `segments`, `hand`, `shard`).
//!
//! ```text
//!  0                8        12       16  17  18  19
//!  +----------------+--------+--------+---+---+---+--------+---------+-----+-------
//!  | cas (u64)      | exptime| atime  |kl |bit|lay| vlen   | [flags] | key | value
//!  +----------------+--------+--------+---+---+---+--------+---------+-----+-------
//! ```
//! All integers little-endian. `exptime`/`atime` are server-relative seconds; `bits` holds the
//! LRU segment, access marks and meta-protocol marks (win token sent, stale, base64 key). The
//! layout byte says how the rest is laid out: the value length takes 1 to 4 bytes (as many as it
//! needs) and the client flags take 4 bytes only when they are not zero (as memcached does), so
//! a small item has a 20-byte header. There are no per-item links: LRU segments are ages kept
//! in `bits` and walked by an eviction hand (see `hand`).

/// Bytes of fixed header before the value length.
const FIXED: usize = 19;
/// Header of the largest item (4-byte value length and flags).
pub const MAX_HEADER: usize = FIXED + 4 + 4;

const CAS: usize = 0;
const EXPTIME: usize = 8;
const ATIME: usize = 12;
const KLEN: usize = 16;
const BITS: usize = 17;
const LAYOUT: usize = 18;
/// Layout byte: value-length bytes minus one in the low two bits.
const LAYOUT_VLEN_MASK: u8 = 0x03;
/// Layout byte: the client flags are stored (non-zero).
const LAYOUT_FLAGS: u8 = 0x04;
/// Layout byte: the value is not in this chunk but in a chain of body chunks whose ids follow
/// the key (see `shard::chain`).
const LAYOUT_CHAINED: u8 = 0x08;

/// Segment of the LRU an item is linked into (stored in the low three bits of `bits`). TEMP
/// holds items with a short TTL (`-o temporary_ttl`): never aged or evicted, only freed once dead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Segment {
    Hot = 1,
    Warm = 2,
    Cold = 3,
    Temp = 4,
}

impl Segment {
    pub const ALL: [Segment; 4] = [Segment::Hot, Segment::Warm, Segment::Cold, Segment::Temp];
    #[inline]
    pub fn index(self) -> usize {
        self as usize - 1
    }
}

/// Item was read at least once since it was stored.
pub const FETCHED: u8 = 0x08;
/// Item was read at least twice (eligible to move up from COLD, or stay in WARM).
pub const ACTIVE: u8 = 0x10;
/// A recache "win" token was handed out for this item (meta protocol).
pub const WIN_SENT: u8 = 0x20;
/// Item was marked stale (meta invalidation).
pub const STALE: u8 = 0x40;
/// The key was stored base64-encoded by a meta command (`b`), so `mg k` and `me` show it
/// base64-encoded, as memcached's `ITEM_KEY_BINARY` does.
pub const KEY_BINARY: u8 = 0x80;
const SEGMENT_MASK: u8 = 0x07;
/// The segment field of a chunk that holds a part of a chained item's value (see
/// `shard::chain`): neither free nor an item of its own.
const BODY: u8 = 0x07;

/// Bytes the value length takes.
#[inline]
fn vlen_bytes(vlen: usize) -> usize {
    match vlen {
        0..=0xff => 1,
        0x100..=0xffff => 2,
        0x1_0000..=0xff_ffff => 3,
        _ => 4,
    }
}

/// Header bytes of an item with this value length and these flags.
#[inline]
pub fn header_size(vlen: usize, flags: u32) -> usize {
    FIXED + vlen_bytes(vlen) + if flags != 0 { 4 } else { 0 }
}

/// Total chunk bytes an item with these key/value lengths and flags needs.
#[inline]
pub fn total_size(klen: usize, vlen: usize, flags: u32) -> usize {
    header_size(vlen, flags) + klen + vlen
}

/// memcached's `sizeof(item)` on 64-bit.
const MEMCACHED_HEADER: usize = 48;

/// An item's size as memcached counts it against the item size limit (`-I`, `item_size_ok`):
/// its 48-byte header, the key and its NUL, 4 bytes of flags when not 0, the value and its CRLF,
/// and 8 bytes of CAS unless `-C`. ferrocache's own item is always smaller (see `total_size`),
/// so whatever passes this fits; counting as memcached does refuses exactly the items memcached
/// refuses, before the value arrives (`protocol::Limits::item_size`) and for an append's
/// result.
#[inline]
pub fn limit_size(klen: usize, vlen: usize, flags: u32, cas: bool) -> usize {
    let flags = if flags != 0 { 4 } else { 0 };
    let cas = if cas { 8 } else { 0 };
    MEMCACHED_HEADER + klen + 1 + flags + vlen + 2 + cas
}

/// Total chunk bytes the item in `c` uses.
#[inline]
pub fn size(c: &[u8]) -> usize {
    header_len(c) + klen(c) + vlen(c)
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
fn vlen_width(c: &[u8]) -> usize {
    usize::from(c[LAYOUT] & LAYOUT_VLEN_MASK) + 1
}
#[inline]
fn header_len(c: &[u8]) -> usize {
    FIXED + vlen_width(c) + if c[LAYOUT] & LAYOUT_FLAGS != 0 { 4 } else { 0 }
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
    if c[LAYOUT] & LAYOUT_FLAGS != 0 {
        rd32(c, FIXED + vlen_width(c))
    } else {
        0
    }
}
#[inline]
pub fn vlen(c: &[u8]) -> usize {
    let w = vlen_width(c);
    // Chunks are at least 72 bytes, so four bytes can be read whatever the width (no copy of a
    // variable length on the hot path); the bytes past the width are masked off.
    let raw = match c.get(FIXED..FIXED + 4) {
        Some(b) => u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        None => {
            let mut b = [0u8; 4];
            b[..w].copy_from_slice(&c[FIXED..FIXED + w]);
            u32::from_le_bytes(b)
        }
    };
    let mask = if w == 4 {
        u32::MAX
    } else {
        (1u32 << (8 * w)) - 1
    };
    (raw & mask) as usize
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
        4 => Some(Segment::Temp),
        _ => None,
    }
}
#[inline]
pub fn set_segment(c: &mut [u8], s: Option<Segment>) {
    let v = s.map_or(0, |s| s as u8);
    c[BITS] = (c[BITS] & !SEGMENT_MASK) | v;
}
/// Sets the marks of `bits` (everything but the segment), keeping the chunk's segment.
#[inline]
pub fn set_marks(c: &mut [u8], bits: u8) {
    c[BITS] = (c[BITS] & SEGMENT_MASK) | (bits & !SEGMENT_MASK);
}
/// True when the chunk holds a linked item (free chunks have no segment).
#[inline]
pub fn in_use(c: &[u8]) -> bool {
    !matches!(c[BITS] & SEGMENT_MASK, 0 | BODY)
}
/// True when the item's value is in a chain of body chunks (see `shard::chain`).
#[inline]
pub fn is_chained(c: &[u8]) -> bool {
    c[LAYOUT] & LAYOUT_CHAINED != 0
}
/// True when the chunk holds a part of a chained item's value.
#[inline]
pub fn is_body(c: &[u8]) -> bool {
    c[BITS] & SEGMENT_MASK == BODY
}
/// Where the key's bytes end: a chained item's part ids start there.
#[inline]
pub fn key_end(c: &[u8]) -> usize {
    header_len(c) + klen(c)
}
#[inline]
pub fn key(c: &[u8]) -> &[u8] {
    let h = header_len(c);
    &c[h..h + klen(c)]
}
#[inline]
pub fn value(c: &[u8]) -> &[u8] {
    let at = header_len(c) + klen(c);
    &c[at..at + vlen(c)]
}
#[inline]
pub fn value_mut(c: &mut [u8]) -> &mut [u8] {
    let at = header_len(c) + klen(c);
    let v = vlen(c);
    &mut c[at..at + v]
}

/// What an item's header holds, for writing a fresh one.
#[derive(Clone, Copy, Debug)]
pub struct Header<'a> {
    pub key: &'a [u8],
    pub flags: u32,
    pub exptime: u32,
    pub now: u32,
    pub cas: u64,
}

/// Writes the header and key of a fresh item with a `vlen`-byte value (in the chunk, or chained)
/// and returns where the key ends. The segment is left unset (the caller links it).
fn write_header(c: &mut [u8], h: &Header<'_>, vlen: usize, chained: bool) -> usize {
    let w = vlen_bytes(vlen);
    set_cas(c, h.cas);
    wr32(c, EXPTIME, h.exptime);
    wr32(c, ATIME, h.now);
    c[KLEN] = h.key.len() as u8;
    c[BITS] = 0;
    c[LAYOUT] = (w - 1) as u8
        | if h.flags != 0 { LAYOUT_FLAGS } else { 0 }
        | if chained { LAYOUT_CHAINED } else { 0 };
    c[FIXED..FIXED + w].copy_from_slice(&(vlen as u32).to_le_bytes()[..w]);
    let mut at = FIXED + w;
    if h.flags != 0 {
        wr32(c, at, h.flags);
        at += 4;
    }
    c[at..at + h.key.len()].copy_from_slice(h.key);
    at + h.key.len()
}

/// Writes a fresh item (header, key, value parts concatenated) into a chunk, which must hold
/// `total_size` bytes; the segment is left unset (the caller links it).
pub fn write_new(c: &mut [u8], h: &Header<'_>, parts: &[&[u8]]) {
    let vlen: usize = parts.iter().map(|p| p.len()).sum();
    let mut at = write_header(c, h, vlen, false);
    for p in parts {
        c[at..at + p.len()].copy_from_slice(p);
        at += p.len();
    }
}

/// Writes the head of a chained item: header and key, then the ids of the chunks holding its
/// `vlen`-byte value (`head_size` bytes in all).
pub fn write_head(c: &mut [u8], h: &Header<'_>, vlen: usize, parts: &[u32]) {
    let mut at = write_header(c, h, vlen, true);
    for id in parts {
        wr32(c, at, *id);
        at += 4;
    }
}

/// Where a body chunk's part of the value starts: the head's id is at 0, the `BODY` mark in the
/// bits byte (17) as in an item header. 48 bytes, as memcached's chunk header, so that a value
/// is cut into the same parts, each in the same class as memcached's.
pub const BODY_DATA: usize = 48;

/// The id of the head a body chunk belongs to.
#[inline]
pub fn body_head(c: &[u8]) -> u32 {
    rd32(c, 0)
}

/// Marks a chunk as a body chunk of the item whose head is `head`.
#[inline]
pub fn set_body_head(c: &mut [u8], head: u32) {
    wr32(c, 0, head);
    c[BITS] = BODY;
}

/// Bytes the head of a chained item with this key, these flags and `parts` part ids needs.
#[inline]
pub fn head_size(klen: usize, vlen: usize, flags: u32, parts: usize) -> usize {
    header_size(vlen, flags) + klen + 4 * parts
}

/// Part `i` of a chained item's ids (its value must be chained and have that part).
#[inline]
pub fn part(c: &[u8], i: usize) -> u32 {
    rd32(c, key_end(c) + 4 * i)
}

/// Replaces part id `i` of a chained item.
#[inline]
pub fn set_part(c: &mut [u8], i: usize, id: u32) {
    let at = key_end(c) + 4 * i;
    wr32(c, at, id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_fields() {
        let mut c = vec![0u8; 128];
        let h = Header {
            key: b"key",
            flags: 7,
            exptime: 99,
            now: 5,
            cas: 42,
        };
        write_new(&mut c, &h, &[b"he", b"llo"]);
        assert_eq!(key(&c), b"key");
        assert_eq!(value(&c), b"hello");
        assert_eq!(flags(&c), 7);
        assert_eq!(exptime(&c), 99);
        assert_eq!(atime(&c), 5);
        assert_eq!(cas(&c), 42);
        assert_eq!(size(&c), total_size(3, 5, 7));
        assert!(!in_use(&c));
        set_segment(&mut c, Some(Segment::Warm));
        let b = bits(&c);
        set_bits(&mut c, b | FETCHED);
        assert_eq!(segment(&c), Some(Segment::Warm));
        assert!(in_use(&c));
        assert_eq!(bits(&c) & FETCHED, FETCHED);
    }

    #[test]
    fn lengths_and_flags_take_only_the_bytes_they_need() {
        assert_eq!(total_size(32, 100, 0), 20 + 132);
        assert_eq!(total_size(32, 100, 1), 24 + 132);
        let cases = [
            (0usize, 0u32),
            (255, 0),
            (256, 9),
            (65_535, 0),
            (65_536, u32::MAX),
            (1 << 24, 3),
        ];
        for (n, f) in cases {
            let total = total_size(250, n, f);
            assert!(total < limit_size(250, n, f, false));
            let mut c = vec![0u8; total];
            let k = [b'k'; 250];
            let v = vec![b'v'; n];
            let h = Header {
                key: &k,
                flags: f,
                exptime: 0,
                now: 0,
                cas: 1,
            };
            write_new(&mut c, &h, &[&v]);
            assert_eq!(vlen(&c), n);
            assert_eq!(flags(&c), f);
            assert_eq!(key(&c), &k[..]);
            assert_eq!(value(&c).len(), n);
            assert_eq!(size(&c), total);
        }
    }
}
