//! Owns: the warm restart's formats — the metadata (`Meta`: a version line, `key value` lines,
//! a line per saved page, and a checksum over all of it), the data file's header, the page
//! checksum, and the settings that define the saved layout (`Layout`).
//! Does not: read files, or decode saved items (see the folder's `mod.rs`).

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::store::item;
use crate::store::StoreConfig;

/// The version of the data and metadata formats this build writes and reads (2: the delayed
/// flush and the event number kept, the CAS counter saved as memcached's `current_cas`).
pub const FORMAT: u32 = 2;
const META_MAGIC: &str = "ferrocache-memory-file";
/// The data file starts with these 8 bytes, then the save's nonce (8 bytes, little-endian).
pub const DATA_MAGIC: [u8; 8] = *b"FCPAGES1";
/// Bytes before the first page in the data file.
pub const DATA_HEADER: u64 = 16;

/// A fast 64-bit checksum: four lanes of xor-multiply-rotate over 8-byte words, then the length
/// and the tail bytes. Each step is a bijection of the lane, so one changed word always changes
/// the sum; it catches flipped bytes and torn writes, not a forger.
pub fn checksum(bytes: &[u8]) -> u64 {
    const P1: u64 = 0x9E37_79B1_85EB_CA87;
    const P2: u64 = 0xC2B2_AE3D_27D4_EB4F;
    let mut lanes = [P1, P2, P1.rotate_left(17), P2.rotate_left(17)];
    let mut blocks = bytes.chunks_exact(32);
    for b in &mut blocks {
        for (i, lane) in lanes.iter_mut().enumerate() {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[i * 8..i * 8 + 8]);
            *lane = (*lane ^ u64::from_le_bytes(w))
                .wrapping_mul(P1)
                .rotate_left(31);
        }
    }
    let mut h = bytes.len() as u64;
    for lane in lanes {
        h = (h ^ lane).wrapping_mul(P2).rotate_left(27);
    }
    for &b in blocks.remainder() {
        h = (h ^ u64::from(b)).wrapping_mul(P1).rotate_left(23);
    }
    h ^ (h >> 29)
}

/// The settings that decide where items sit in pages (memcached refuses a restart when one of
/// them changed, and so does ferrocache).
#[derive(Clone, Debug, PartialEq)]
pub struct Layout {
    pub memory_limit: u64,
    pub item_size_max: u64,
    pub min_size: u64,
    pub growth_factor: f64,
    pub slab_chunk_max: u64,
    pub page_size: u64,
}

impl Layout {
    /// The layout a store built from `cfg` has.
    pub fn of(cfg: &StoreConfig) -> Layout {
        Layout {
            memory_limit: cfg.memory_limit as u64,
            item_size_max: cfg.item_size_max as u64,
            min_size: cfg.min_size as u64,
            growth_factor: cfg.growth_factor,
            slab_chunk_max: cfg.slab_chunk_max as u64,
            page_size: cfg.page_size as u64,
        }
    }

    /// Each setting: its metadata key, the option that sets it, its value.
    fn fields(&self) -> [(&'static str, &'static str, String); 6] {
        [
            ("memory_limit", "-m", self.memory_limit.to_string()),
            ("item_size_max", "-I", self.item_size_max.to_string()),
            ("min_size", "-n", self.min_size.to_string()),
            ("growth_factor", "-f", self.growth_factor.to_string()),
            (
                "slab_chunk_max",
                "-o slab_chunk_max",
                self.slab_chunk_max.to_string(),
            ),
            ("page_size", "page size", self.page_size.to_string()),
        ]
    }

    /// The first setting of `saved` that differs from this one, named as on the command line.
    pub fn differs(&self, saved: &Layout) -> Option<String> {
        self.fields()
            .into_iter()
            .zip(saved.fields())
            .find(|((_, _, now), (_, _, then))| now != then)
            .map(|((_, opt, now), (_, _, then))| {
                format!("{opt} was {then} when saved and is {now} now")
            })
    }
}

/// Where one saved page's bytes are in the data file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRecord {
    pub shard: u32,
    /// The page's number in its shard's chunk ids.
    pub slot: u32,
    pub chunk_size: u32,
    pub len: u64,
    pub offset: u64,
    pub sum: u64,
}

impl PageRecord {
    /// The record of page `slot` of `shard` (chunks of `chunk_size` bytes) whose `bytes` are
    /// written at `offset` of the data file.
    pub fn of(shard: u32, slot: u32, chunk_size: usize, offset: u64, bytes: &[u8]) -> PageRecord {
        PageRecord {
            shard,
            slot,
            chunk_size: chunk_size as u32,
            len: bytes.len() as u64,
            offset,
            sum: checksum(bytes),
        }
    }
}

/// The metadata of one save (`PATH.meta`).
#[derive(Clone, Debug, PartialEq)]
pub struct Meta {
    /// Also in the data file's header: binds the two files of one save.
    pub nonce: u64,
    pub layout: Layout,
    /// Unix time of the saving process's server time 0.
    pub started_unix: i64,
    /// Unix time and server time of the save.
    pub saved_unix: i64,
    pub saved_now: u32,
    /// The CAS counter at the save, one past the last CAS given out (the save takes a value,
    /// as memcached's `current_cas`), and the flush mark.
    pub cas: u64,
    pub flush_cas: u64,
    /// Server time of a delayed `flush_all` still to come at the save (0 = none; memcached's
    /// `oldest_live`).
    pub pending_flush: u32,
    /// The `watch` event number at the save (memcached's `logger_gid`).
    pub logger_gid: u64,
    pub hash_power: u32,
    pub shards: u32,
    /// Bits of a chunk id that number the chunk within its page.
    pub chunk_bits: u32,
    /// The chunk size of each class.
    pub classes: Vec<usize>,
    /// The data file's length.
    pub data_len: u64,
    pub pages: Vec<PageRecord>,
}

/// Why a metadata file is not used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MetaError {
    #[error("the metadata file is empty")]
    Empty,
    #[error("the metadata checksum does not match (corrupt or partly written)")]
    Checksum,
    #[error("the metadata was written by another format ({0}; this build reads {FORMAT})")]
    Version(String),
    #[error("corrupt metadata: {0}")]
    Malformed(String),
}

const SCALARS: [&str; 20] = [
    "nonce",
    "memory_limit",
    "item_size_max",
    "min_size",
    "growth_factor",
    "slab_chunk_max",
    "page_size",
    "started_unix",
    "saved_unix",
    "saved_now",
    "cas",
    "flush_cas",
    "pending_flush",
    "logger_gid",
    "hash_power",
    "shards",
    "chunk_bits",
    "classes",
    "data_len",
    "pages",
];

impl Meta {
    /// The metadata as text: a version line, `key value` lines, a line per page, and a last
    /// line with the checksum of everything before it.
    pub fn encode(&self) -> String {
        let mut t = format!("{META_MAGIC} {FORMAT}\n");
        let l = &self.layout;
        let classes: Vec<String> = self.classes.iter().map(|c| c.to_string()).collect();
        let _ = write!(
            t,
            "nonce {:016x}\nmemory_limit {}\nitem_size_max {}\nmin_size {}\ngrowth_factor {}\n\
             slab_chunk_max {}\npage_size {}\nstarted_unix {}\nsaved_unix {}\nsaved_now {}\n\
             cas {}\nflush_cas {}\npending_flush {}\nlogger_gid {}\nhash_power {}\nshards {}\n\
             chunk_bits {}\nclasses {}\n\
             data_len {}\npages {}\n",
            self.nonce,
            l.memory_limit,
            l.item_size_max,
            l.min_size,
            l.growth_factor,
            l.slab_chunk_max,
            l.page_size,
            self.started_unix,
            self.saved_unix,
            self.saved_now,
            self.cas,
            self.flush_cas,
            self.pending_flush,
            self.logger_gid,
            self.hash_power,
            self.shards,
            self.chunk_bits,
            classes.join(","),
            self.data_len,
            self.pages.len(),
        );
        for p in &self.pages {
            let _ = writeln!(
                t,
                "page {} {} {} {} {} {:016x}",
                p.shard, p.slot, p.chunk_size, p.len, p.offset, p.sum
            );
        }
        let sum = checksum(t.as_bytes());
        let _ = writeln!(t, "checksum {sum:016x}");
        t
    }

    /// Reads metadata written by `encode`, checking its checksum, version and every field.
    pub fn parse(bytes: &[u8]) -> Result<Meta, MetaError> {
        let bad = |s: &str| MetaError::Malformed(s.to_string());
        if bytes.is_empty() {
            return Err(MetaError::Empty);
        }
        let text = std::str::from_utf8(bytes).map_err(|_| bad("not text"))?;
        if !text.ends_with('\n') {
            return Err(bad("no end of line after the checksum"));
        }
        let first = text.lines().next().unwrap_or("");
        match first.strip_prefix(META_MAGIC).map(str::trim) {
            Some(v) if v == FORMAT.to_string() => {}
            Some(v) => return Err(MetaError::Version(format!("format {v}"))),
            None => return Err(bad("not a ferrocache metadata file")),
        }
        let body_end = text
            .trim_end_matches('\n')
            .rfind('\n')
            .ok_or_else(|| bad("no checksum line"))?
            + 1;
        let sum = text[body_end..]
            .trim_end()
            .strip_prefix("checksum ")
            .and_then(|h| u64::from_str_radix(h, 16).ok())
            .ok_or_else(|| bad("no checksum line"))?;
        if checksum(&bytes[..body_end]) != sum {
            return Err(MetaError::Checksum);
        }
        let mut kv: HashMap<&str, &str> = HashMap::new();
        let mut pages = Vec::new();
        for line in text[..body_end].lines().skip(1) {
            let (k, v) = line.split_once(' ').ok_or_else(|| bad(line))?;
            if k == "page" {
                pages.push(parse_page(v).ok_or_else(|| bad(line))?);
            } else if !SCALARS.contains(&k) || kv.insert(k, v).is_some() {
                return Err(bad(line));
            }
        }
        let get = |k: &str| {
            kv.get(k)
                .copied()
                .ok_or_else(|| MetaError::Malformed(format!("no {k}")))
        };
        fn num<T: std::str::FromStr>(k: &str, v: &str) -> Result<T, MetaError> {
            v.parse()
                .map_err(|_| MetaError::Malformed(format!("{k} {v}")))
        }
        let n = |k: &str| get(k).and_then(|v| num::<u64>(k, v));
        let classes = get("classes")?
            .split(',')
            .map(|c| num::<usize>("classes", c))
            .collect::<Result<Vec<_>, _>>()?;
        let meta = Meta {
            nonce: u64::from_str_radix(get("nonce")?, 16).map_err(|_| bad("nonce"))?,
            layout: Layout {
                memory_limit: n("memory_limit")?,
                item_size_max: n("item_size_max")?,
                min_size: n("min_size")?,
                growth_factor: num("growth_factor", get("growth_factor")?)?,
                slab_chunk_max: n("slab_chunk_max")?,
                page_size: n("page_size")?,
            },
            started_unix: num("started_unix", get("started_unix")?)?,
            saved_unix: num("saved_unix", get("saved_unix")?)?,
            saved_now: num("saved_now", get("saved_now")?)?,
            cas: n("cas")?,
            flush_cas: n("flush_cas")?,
            pending_flush: num("pending_flush", get("pending_flush")?)?,
            logger_gid: n("logger_gid")?,
            hash_power: num("hash_power", get("hash_power")?)?,
            shards: num("shards", get("shards")?)?,
            chunk_bits: num("chunk_bits", get("chunk_bits")?)?,
            classes,
            data_len: n("data_len")?,
            pages,
        };
        if n("pages")? != meta.pages.len() as u64 {
            return Err(bad("page count"));
        }
        if !(1..=31).contains(&meta.chunk_bits) || meta.shards == 0 {
            return Err(bad("chunk_bits or shards out of range"));
        }
        Ok(meta)
    }

    /// The chunk size of full body chunks of chained items (the class of `slab_chunk_max`).
    pub(super) fn body_size(&self) -> Option<usize> {
        let max = usize::try_from(self.layout.slab_chunk_max).ok()?;
        self.classes
            .iter()
            .copied()
            .find(|&c| c >= max)
            .filter(|&c| c > item::BODY_DATA)
    }

    /// True when a page of `chunk_size` and `len` bytes can be one of this save's pages.
    pub fn page_shape_ok(&self, r: &PageRecord) -> bool {
        let cs = r.chunk_size as usize;
        self.classes.contains(&cs)
            && cs > item::MAX_HEADER
            && r.len.is_multiple_of(u64::from(r.chunk_size))
            && r.len <= self.layout.page_size
            && r.len / u64::from(r.chunk_size) <= 1 << self.chunk_bits
            && r.shard < self.shards
    }

    /// True when `bytes`, read for page `r`, may be restored: its shape is one of this save's
    /// pages and its checksum matches.
    pub fn page_ok(&self, r: &PageRecord, bytes: &[u8]) -> bool {
        self.page_shape_ok(r) && checksum(bytes) == r.sum
    }
}

fn parse_page(v: &str) -> Option<PageRecord> {
    let f: Vec<&str> = v.split(' ').collect();
    let [shard, slot, cs, len, offset, sum] = f.as_slice() else {
        return None;
    };
    let r = PageRecord {
        shard: shard.parse().ok()?,
        slot: slot.parse().ok()?,
        chunk_size: cs.parse().ok()?,
        len: len.parse().ok()?,
        offset: offset.parse().ok()?,
        sum: u64::from_str_radix(sum, 16).ok()?,
    };
    (r.chunk_size > 0).then_some(r)
}
