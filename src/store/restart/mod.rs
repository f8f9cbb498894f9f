//! Owns: warm restart's formats and the store's part of it (memcached's `-e`): the metadata
//! (`Meta`: versioned text ending in a checksum over itself), the checksum of page bytes, the
//! settings that define the saved layout (`Layout`), walking the shards' pages for a save, and
//! rebuilding the cache from one saved shard's pages: each chunk holding an item is decoded and
//! checked within the saved bytes (bounds, lengths, chained parts naming their head), its times
//! moved from the old process's clock to this one's, and stored again by `Shard::restore_item`
//! in batches per shard; then each shard's restored items indexed (`Shard::index_restored`).
//! Does not: read or write files (see `server::restart`), or trust the saved bytes: whatever they
//! hold, decoding stays inside them, and an item failing a check is dropped, never stored.

mod meta;

use std::collections::HashMap;

use super::item::{self, Segment};
use super::Store;

/// memcached's longest key.
const KEY_MAX: usize = 250;

/// Decoded items stored into one shard under one lock.
const RESTORE_BATCH: usize = 256;

pub use meta::{checksum, Layout, Meta, MetaError, PageRecord, DATA_HEADER, DATA_MAGIC, FORMAT};

/// The saving process's clock against this one's.
#[derive(Clone, Copy, Debug)]
pub struct Clocks {
    /// Unix time of the saving process's server time 0, and of this one's.
    pub old_started: i64,
    pub new_started: i64,
    /// Server time now.
    pub now: u32,
}

impl Clocks {
    /// Server time `t` of the saving process in this one's (may be before this one started).
    fn moved(&self, t: u32) -> i64 {
        self.old_started + i64::from(t) - self.new_started
    }
}

/// One item decoded from saved bytes, ready to be stored again.
#[derive(Clone, Debug)]
pub struct Restored<'a> {
    pub key: &'a [u8],
    /// The value when unchained (see `parts`).
    pub value: &'a [u8],
    /// A chained value's parts (empty, allocating nothing, when unchained).
    pub chain: Vec<&'a [u8]>,
    pub flags: u32,
    /// Server times in this process's clock.
    pub exptime: u32,
    pub atime: u32,
    pub cas: u64,
    pub segment: Segment,
    /// The marks (FETCHED, ACTIVE, ...) the item had.
    pub bits: u8,
}

impl<'a> Restored<'a> {
    /// The value's parts.
    pub fn parts(&self) -> &[&'a [u8]] {
        if self.chain.is_empty() {
            std::slice::from_ref(&self.value)
        } else {
            &self.chain
        }
    }
}

/// What a restore did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RestoreReport {
    pub restored: u64,
    /// Expired or flushed before the save, or expired while the cache was down.
    pub expired: u64,
    /// Failed a check (bounds, lengths, a chained part missing or not naming its head).
    pub invalid: u64,
    /// Checked but not stored (a duplicate key, or no memory).
    pub not_stored: u64,
    /// Pages whose bytes failed their checksum or shape (their items are dropped).
    pub bad_pages: u64,
    /// The largest CAS restored.
    pub max_cas: u64,
}

impl RestoreReport {
    pub fn add(&mut self, o: &RestoreReport) {
        self.restored += o.restored;
        self.expired += o.expired;
        self.invalid += o.invalid;
        self.not_stored += o.not_stored;
        self.bad_pages += o.bad_pages;
        self.max_cas = self.max_cas.max(o.max_cas);
    }
}

/// One saved shard's pages that passed their checks, by slot, in saved order.
#[derive(Debug, Default)]
pub struct ShardImage<'a> {
    pages: HashMap<u32, (usize, &'a [u8])>,
    order: Vec<u32>,
}

impl<'a> ShardImage<'a> {
    /// Adds a page `Meta::page_ok` accepted (its shape and checksum).
    pub fn add(&mut self, slot: u32, chunk_size: usize, bytes: &'a [u8]) {
        if chunk_size <= item::MAX_HEADER {
            return;
        }
        if self.pages.insert(slot, (chunk_size, bytes)).is_none() {
            self.order.push(slot);
        }
    }

    /// The saved chunk `id`, if its page is here and it lies within the page's bytes.
    fn chunk(&self, id: u32, chunk_bits: u32) -> Option<&'a [u8]> {
        let slot = id >> chunk_bits;
        let n = (id & ((1u32 << chunk_bits) - 1)) as usize;
        let &(cs, bytes) = self.pages.get(&slot)?;
        bytes.get(n.checked_mul(cs)?..(n + 1).checked_mul(cs)?)
    }
}

/// Why a saved item is not restored.
enum Dropped {
    Expired,
    Invalid,
}

/// Decodes items from one saved shard's pages.
struct Decoder<'i, 'a> {
    image: &'i ShardImage<'a>,
    meta: &'i Meta,
    body_size: usize,
    clocks: Clocks,
}

impl<'a> Decoder<'_, 'a> {
    /// The item whose head is chunk `head` (bytes `c`, of a checked page; in use).
    fn decode(&self, head: u32, c: &'a [u8]) -> Result<Restored<'a>, Dropped> {
        use Dropped::{Expired, Invalid};
        let segment = item::segment(c).ok_or(Invalid)?;
        let klen = item::klen(c);
        // The header (at most `MAX_HEADER` bytes) lies within every checked chunk.
        let key_end = item::key_end(c);
        let vlen = item::vlen(c);
        let flags = item::flags(c);
        if klen == 0 || klen > KEY_MAX || key_end > c.len() {
            return Err(Invalid);
        }
        if item::total_size(klen, vlen, flags) as u64 > self.meta.layout.item_size_max {
            return Err(Invalid);
        }
        let cas = item::cas(c);
        let exptime = item::exptime(c);
        if cas <= self.meta.flush_cas || (exptime != 0 && exptime <= self.meta.saved_now) {
            return Err(Expired);
        }
        let (value, chain): (&[u8], _) = if item::is_chained(c) {
            (&[], self.parts(head, c, key_end, vlen)?)
        } else {
            (c.get(key_end..key_end + vlen).ok_or(Invalid)?, Vec::new())
        };
        let exptime = match exptime {
            0 => 0,
            e => {
                let rel = self.clocks.moved(e);
                if rel <= i64::from(self.clocks.now) {
                    return Err(Expired);
                }
                u32::try_from(rel).unwrap_or(u32::MAX)
            }
        };
        let atime = self
            .clocks
            .moved(item::atime(c))
            .clamp(0, i64::from(self.clocks.now)) as u32;
        Ok(Restored {
            key: &c[key_end - klen..key_end],
            value,
            chain,
            flags,
            exptime,
            atime,
            cas,
            segment,
            bits: item::bits(c),
        })
    }

    /// A chained item's value parts: each a body chunk of a checked page naming `head`, full
    /// ones of the body class, the last holding the rest.
    fn parts(
        &self,
        head: u32,
        c: &[u8],
        key_end: usize,
        vlen: usize,
    ) -> Result<Vec<&'a [u8]>, Dropped> {
        let cap = self.body_size - item::BODY_DATA;
        let n = vlen.div_ceil(cap);
        if n == 0 || key_end + 4 * n > c.len() {
            return Err(Dropped::Invalid);
        }
        (0..n)
            .map(|i| {
                let p = self
                    .image
                    .chunk(item::part(c, i), self.meta.chunk_bits)
                    .ok_or(Dropped::Invalid)?;
                let last = i + 1 == n;
                let len = if last { vlen - (n - 1) * cap } else { cap };
                let ok = item::is_body(p)
                    && item::body_head(p) == head
                    && (last || p.len() == self.body_size);
                ok.then(|| p.get(item::BODY_DATA..item::BODY_DATA + len))
                    .flatten()
                    .ok_or(Dropped::Invalid)
            })
            .collect()
    }
}

impl Store {
    /// Hands every page of every shard to `sink` (shard, slot, chunk size, bytes), each shard
    /// locked while its pages are handed out; stops at the first error.
    pub fn save_pages<E>(
        &self,
        mut sink: impl FnMut(u32, u32, usize, &[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        for (i, s) in self.shards.iter().enumerate() {
            let shard = s.lock();
            for (slot, cs, bytes) in shard.page_images() {
                sink(i as u32, slot, cs, bytes)?;
            }
        }
        Ok(())
    }

    /// The metadata of a save of this store now, but for the clock, the nonce, the pages and the
    /// server's state (delayed flush, event number). Takes a CAS value, as memcached's save does.
    pub fn meta_template(&self, layout: Layout) -> Meta {
        Meta {
            nonce: 0,
            layout,
            started_unix: 0,
            saved_unix: 0,
            saved_now: 0,
            cas: self.shared.next_cas(),
            flush_cas: self
                .shared
                .flush_cas
                .load(std::sync::atomic::Ordering::Relaxed),
            pending_flush: 0,
            logger_gid: 0,
            hash_power: self.shared.hash_power(),
            shards: self.shards.len() as u32,
            chunk_bits: self.classes.chunk_bits(),
            classes: (0..self.classes.len())
                .map(|c| self.classes.size(c))
                .collect(),
            data_len: 0,
            pages: Vec::new(),
        }
    }

    /// Before restoring `meta`'s pages: room in every shard's index for the items they can
    /// hold (at most one per saved chunk), spread over this store's shards.
    pub fn prepare_restore(&self, meta: &Meta) {
        let chunks: u64 = meta
            .pages
            .iter()
            .filter(|r| meta.page_shape_ok(r))
            .map(|r| r.len / u64::from(r.chunk_size))
            .sum();
        let per_shard = (chunks / self.shards.len() as u64) as usize;
        // A little more than the even share: keys do not spread exactly evenly.
        let per_shard = per_shard + per_shard / 16;
        for s in self.shards.iter() {
            s.lock().reserve_index(per_shard);
        }
    }

    /// Stores again the items of one saved shard's checked pages (safe to run for several
    /// saved shards at once), adding what happened to `report`. Items go to their shards in
    /// batches, each shard locked once per batch; they are indexed by `index_restored` (or
    /// `finish_restore`).
    pub fn restore_shard(
        &self,
        meta: &Meta,
        image: &ShardImage<'_>,
        clocks: Clocks,
        report: &mut RestoreReport,
    ) {
        let Some(body_size) = meta.body_size() else {
            return;
        };
        let dec = Decoder {
            image,
            meta,
            body_size,
            clocks,
        };
        let mut batches: Vec<Vec<(u64, Restored<'_>)>> = (0..self.shards.len())
            .map(|_| Vec::with_capacity(RESTORE_BATCH))
            .collect();
        for &slot in &image.order {
            let (cs, bytes) = image.pages[&slot];
            for (n, c) in bytes.chunks_exact(cs).enumerate() {
                if !item::in_use(c) {
                    continue;
                }
                let head = (slot << meta.chunk_bits) | n as u32;
                match dec.decode(head, c) {
                    Ok(it) => {
                        let hash = self.hash(it.key);
                        let shard = self.shard_of(hash);
                        batches[shard].push((hash, it));
                        if batches[shard].len() == RESTORE_BATCH {
                            self.restore_batch(shard, &mut batches[shard], clocks.now, report);
                        }
                    }
                    Err(Dropped::Expired) => report.expired += 1,
                    Err(Dropped::Invalid) => report.invalid += 1,
                }
            }
        }
        for (shard, batch) in batches.iter_mut().enumerate() {
            self.restore_batch(shard, batch, clocks.now, report);
        }
    }

    /// Stores the decoded items `batch` (all of shard `shard`) under one lock, emptying it.
    fn restore_batch(
        &self,
        shard: usize,
        batch: &mut Vec<(u64, Restored<'_>)>,
        now: u32,
        report: &mut RestoreReport,
    ) {
        if batch.is_empty() {
            return;
        }
        let mut s = self.shards[shard].lock();
        for (hash, it) in batch.drain(..) {
            if s.restore_item(hash, &it, now) {
                report.restored += 1;
                report.max_cas = report.max_cas.max(it.cas);
            } else {
                report.not_stored += 1;
            }
        }
    }

    /// Indexes the restored items of shard `shard` (see `Shard::index_restored`); shards may be
    /// indexed at once on several threads.
    pub fn index_restored(&self, shard: usize) {
        self.shards[shard].lock().index_restored();
    }

    /// After every saved shard is restored: every restored item indexed (a duplicate key moves
    /// from `restored` to `not_stored` in `report`), the CAS counter past every saved CAS, and
    /// the hash power the saved one at least.
    pub fn finish_restore(&self, meta: &Meta, report: &mut RestoreReport) {
        for s in self.shards.iter() {
            let mut s = s.lock();
            s.index_restored();
            let dups = s.take_restore_dups();
            report.restored -= dups;
            report.not_stored += dups;
        }
        self.shared.raise_cas(meta.cas.max(report.max_cas));
        self.shared.raise_hash_power(meta.hash_power);
    }
}

#[cfg(test)]
mod tests;
