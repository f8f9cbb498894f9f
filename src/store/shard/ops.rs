//! Owns: the classic operations on one shard — store (set/add/replace/append/prepend/cas), get,
//! touch, delete and incr/decr — with their per-class hit counters.
//! Does not: parse or encode requests, or apply meta protocol marks (see `meta`).

use super::{Found, Shard};
use crate::store::item;
use crate::store::{
    ArithOp, ArithOutcome, DeleteOutcome, ItemView, Miss, Recency, StoreError, StoreMode,
    StoreOutcome, StoreRequest,
};

impl Shard {
    /// Stores `req.value` under `req.key` according to `req.mode`.
    pub fn store(&mut self, req: StoreRequest<'_>, now: u32) -> Result<StoreOutcome, StoreError> {
        let StoreRequest {
            mode,
            key,
            hash,
            mut flags,
            mut exptime,
            value,
        } = req;
        // memcached's flat LRU frees the dead items at its tail when it allocates the new item,
        // before it looks the key up.
        if !self.shared.segmented {
            let total = item::total_size(key.len(), value.len(), flags);
            if let Some(cls) = self.classes.class_for(total) {
                if total <= self.shared.slab_chunk_max {
                    self.pull_tail(cls, super::alloc::TAIL_PEEK, now);
                }
            }
        }
        let found = match self.find(key, hash, now) {
            Found::Hit(id) => Some(id),
            Found::Miss(_) => None,
        };
        let mut joined: Option<Vec<u8>> = None;
        match (mode, found) {
            (StoreMode::Add, Some(id)) => {
                item::set_atime(self.pages.chunk_mut(id), now);
                return Ok(StoreOutcome::NotStored);
            }
            (StoreMode::Replace | StoreMode::Append(_) | StoreMode::Prepend(_), None) => {
                return Ok(StoreOutcome::NotStored);
            }
            (StoreMode::Cas(_), None) => return Ok(StoreOutcome::NotFound),
            (StoreMode::Cas(want), Some(id)) => {
                let cls = self.pages.class_of(id);
                if item::cas(self.pages.chunk(id)) != want {
                    self.class[cls].stats.cas_badval += 1;
                    return Ok(StoreOutcome::Exists);
                }
                self.class[cls].stats.cas_hits += 1;
            }
            (StoreMode::Append(want) | StoreMode::Prepend(want), Some(id)) => {
                let c = self.pages.chunk(id);
                if want != 0 && item::cas(c) != want {
                    return Ok(StoreOutcome::Exists);
                }
                flags = item::flags(c);
                exptime = item::exptime(c);
                let old = self.view(id).value;
                let mut v = Vec::with_capacity(old.len() + value.len());
                if matches!(mode, StoreMode::Prepend(_)) {
                    v.extend_from_slice(value);
                }
                for p in old.parts() {
                    v.extend_from_slice(p);
                }
                if matches!(mode, StoreMode::Append(_)) {
                    v.extend_from_slice(value);
                }
                joined = Some(v);
            }
            _ => {}
        }
        let data = joined.as_deref().unwrap_or(value);
        let fits = self.shared.fits(key.len(), data.len(), flags);
        // The item this store changes is pinned: its own allocation never evicts or moves it.
        self.pinned = found;
        let taken = if fits {
            self.take_chunks(key.len(), data.len(), flags, now)
        } else {
            Err(StoreError::TooLarge)
        };
        self.pinned = None;
        let taken = match taken {
            Ok(t) => t,
            // memcached: an append or prepend whose result is too large, or finds no memory,
            // is not stored (and the item stays as it was).
            Err(_) if joined.is_some() => return Ok(StoreOutcome::NotStored),
            Err(e) => {
                if mode == StoreMode::Set {
                    if let Found::Hit(old) = self.find(key, hash, now) {
                        self.unlink_item(old, Some(hash));
                    }
                }
                return Err(e);
            }
        };
        // If allocation freed or moved items, the old one may be elsewhere: look again.
        let old = if taken.disturbed {
            match self.find(key, hash, now) {
                Found::Hit(old) => Some(old),
                Found::Miss(_) => None,
            }
        } else {
            found
        };
        if old.is_none() && found.is_some() {
            // Pinned, the item cannot have been evicted; should it be gone all the same, answer
            // as if it were missing (as memcached does) and give the chunks back.
            let outcome = match mode {
                StoreMode::Replace | StoreMode::Append(_) | StoreMode::Prepend(_) => {
                    Some(StoreOutcome::NotStored)
                }
                StoreMode::Cas(_) => Some(StoreOutcome::NotFound),
                _ => None,
            };
            if let Some(o) = outcome {
                self.give_back(&taken);
                return Ok(o);
            }
        }
        if let Some(old) = old {
            self.unlink_item(old, Some(hash));
        }
        let cas = self.shared.next_cas();
        let header = item::Header {
            key,
            flags,
            exptime,
            now,
            cas,
        };
        self.write_item(&taken, &header, &[data]);
        let id = taken.head;
        let cls = self.pages.class_of(id);
        self.link_item(id, hash, now);
        self.class[cls].stats.cmd_set += 1;
        Ok(StoreOutcome::Stored(cas))
    }

    /// Looks `key` up, counting a get hit; with `Recency::Bump` the read also counts for the LRU.
    pub fn get(
        &mut self,
        key: &[u8],
        hash: u64,
        now: u32,
        recency: Recency,
    ) -> Result<ItemView<'_>, Miss> {
        match self.find(key, hash, now) {
            Found::Hit(id) => {
                if recency == Recency::Bump {
                    self.bump(id, now);
                }
                let cls = self.pages.class_of(id);
                self.class[cls].stats.get_hits += 1;
                Ok(self.view(id))
            }
            Found::Miss(m) => Err(m),
        }
    }

    /// Sets a new expiry on `key` and returns it (touch/gat semantics: CAS unchanged).
    pub fn touch(
        &mut self,
        key: &[u8],
        hash: u64,
        exptime: u32,
        now: u32,
    ) -> Result<ItemView<'_>, Miss> {
        match self.find(key, hash, now) {
            Found::Hit(id) => {
                self.bump(id, now);
                self.retime(id, exptime);
                let cls = self.pages.class_of(id);
                self.class[cls].stats.touch_hits += 1;
                Ok(self.view(id))
            }
            Found::Miss(m) => Err(m),
        }
    }

    /// Deletes `key`; with `cas` non-zero only when the item's CAS matches.
    pub fn delete(&mut self, key: &[u8], hash: u64, cas: u64, now: u32) -> DeleteOutcome {
        match self.find(key, hash, now) {
            Found::Hit(id) => {
                if cas != 0 && item::cas(self.pages.chunk(id)) != cas {
                    return DeleteOutcome::Exists;
                }
                let cls = self.pages.class_of(id);
                self.class[cls].stats.delete_hits += 1;
                self.unlink_item(id, Some(hash));
                DeleteOutcome::Deleted
            }
            Found::Miss(_) => DeleteOutcome::NotFound,
        }
    }

    /// incr/decr (`op`): the stored value must be a decimal u64; incr wraps at 2^64, decr stops at 0.
    /// A shorter result is written in place padded with spaces, as memcached does.
    pub fn arith(
        &mut self,
        key: &[u8],
        hash: u64,
        op: ArithOp,
        delta: u64,
        cas: u64,
        now: u32,
    ) -> Result<ArithOutcome, StoreError> {
        let id = match self.find(key, hash, now) {
            Found::Hit(id) => id,
            Found::Miss(_) => return Ok(ArithOutcome::NotFound),
        };
        let c = self.pages.chunk(id);
        if cas != 0 && item::cas(c) != cas {
            return Ok(ArithOutcome::Exists);
        }
        let numeric = (!item::is_chained(c))
            .then(|| crate::num::strtoull(item::value(c)))
            .flatten();
        let Some(cur) = numeric else {
            return Ok(ArithOutcome::NonNumeric);
        };
        let stats = &mut self.class[self.pages.class_of(id)].stats;
        let new = match op {
            ArithOp::Incr => {
                stats.incr_hits += 1;
                cur.wrapping_add(delta)
            }
            ArithOp::Decr => {
                stats.decr_hits += 1;
                cur.saturating_sub(delta)
            }
        };
        let mut buf = itoa::Buffer::new();
        let digits = buf.format(new).as_bytes();
        // A value a reply is sending is never changed in place: a pinned item gets a new one.
        if digits.len() <= item::vlen(c) && !self.reply_pins.holds(id) {
            let new_cas = self.shared.next_cas();
            let c = self.pages.chunk_mut(id);
            let v = item::value_mut(c);
            v[..digits.len()].copy_from_slice(digits);
            v[digits.len()..].fill(b' ');
            item::set_cas(c, new_cas);
            item::set_atime(c, now);
            return Ok(ArithOutcome::Value(new, new_cas));
        }
        let (flags, exptime) = (item::flags(c), item::exptime(c));
        // A replace, not a set: one that finds no memory leaves the item as it was (memcached's
        // incr answers out of memory and keeps the value; a failed set unlinks it).
        let req = StoreRequest {
            flags,
            exptime,
            ..StoreRequest::new(StoreMode::Replace, key, hash, digits)
        };
        match self.store(req, now)? {
            StoreOutcome::Stored(cas) => Ok(ArithOutcome::Value(new, cas)),
            _ => Ok(ArithOutcome::NotFound),
        }
    }
}
