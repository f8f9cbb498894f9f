//! Owns: the shard operations only the meta protocol needs — reading an item without counting an
//! access, applying what a meta request decided afterwards (expiry, marks, LRU bump), stale
//! invalidation and the win/stale marks.
//! Does not: parse meta flags or encode replies (see `exec::meta`).

use super::{Found, Shard};
use crate::store::item::{self, STALE, WIN_SENT};
use crate::store::{ItemView, MetaAccess, Miss, Recency};

impl Shard {
    /// A live item as it is, without counting an access (no LRU bump, no statistics): meta
    /// commands read the state before the request changes it (`h`, `l`, `t`, win tokens).
    pub fn peek(&mut self, key: &[u8], hash: u64, now: u32) -> Result<ItemView<'_>, Miss> {
        match self.find(key, hash, now) {
            Found::Hit(id) => Ok(self.view(id)),
            Found::Miss(m) => Err(m),
        }
    }

    /// Applies what a meta request decided after reading an item (see `MetaAccess`). Counts a
    /// get hit (a touch hit when the expiry changes) for the class. False when the item is gone.
    pub fn meta_access(&mut self, key: &[u8], hash: u64, now: u32, access: MetaAccess) -> bool {
        let MetaAccess {
            exptime,
            set,
            clear,
            recency,
        } = access;
        let Found::Hit(id) = self.find(key, hash, now) else {
            return false;
        };
        let c = self.pages.chunk_mut(id);
        item::set_bits(c, (item::bits(c) | set) & !clear);
        if let Some(e) = exptime {
            self.retime(id, e);
        }
        if recency == Recency::Bump {
            self.bump(id, now);
        }
        let cls = self.pages.class_of(id);
        if exptime.is_some() {
            self.class[cls].stats.touch_hits += 1;
        } else {
            self.class[cls].stats.get_hits += 1;
        }
        true
    }

    /// Marks an item stale (meta invalidation): new CAS, optional new TTL, win token reset.
    pub fn mark_stale(&mut self, key: &[u8], hash: u64, exptime: Option<u32>, now: u32) -> bool {
        match self.find(key, hash, now) {
            Found::Hit(id) => {
                let cas = self.shared.next_cas();
                let c = self.pages.chunk_mut(id);
                item::set_cas(c, cas);
                item::set_bits(c, (item::bits(c) | STALE) & !WIN_SENT);
                if let Some(e) = exptime {
                    self.retime(id, e);
                }
                true
            }
            Found::Miss(_) => false,
        }
    }

    /// Sets bits of a live item (meta win token, base64 key). Returns the old bits.
    pub fn update_bits(&mut self, key: &[u8], hash: u64, set: u8, now: u32) -> Option<u8> {
        match self.find(key, hash, now) {
            Found::Hit(id) => {
                let c = self.pages.chunk_mut(id);
                let old = item::bits(c);
                item::set_bits(c, old | set);
                Some(old)
            }
            Found::Miss(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::store::item::{FETCHED, STALE, WIN_SENT};
    use crate::store::{
        MetaAccess, Miss, Recency, Store, StoreConfig, StoreMode, StoreOutcome, StoreRequest,
    };

    fn set<'a>(key: &'a [u8], hash: u64, flags: u32, value: &'a [u8]) -> StoreRequest<'a> {
        StoreRequest {
            mode: StoreMode::Set,
            key,
            hash,
            flags,
            exptime: 0,
            value,
        }
    }

    fn access(exptime: Option<u32>, set: u8, clear: u8, recency: Recency) -> MetaAccess {
        MetaAccess {
            exptime,
            set,
            clear,
            recency,
        }
    }

    #[test]
    fn peek_does_not_count_an_access() {
        let store = Store::new(&StoreConfig::default());
        let h = store.hash(b"k");
        let mut s = store.lock(h);
        assert_eq!(s.peek(b"k", h, 10).err(), Some(Miss::NotFound));
        assert!(matches!(
            s.store(set(b"k", h, 3, b"v"), 10),
            Ok(StoreOutcome::Stored(_))
        ));
        let v = s.peek(b"k", h, 20).unwrap();
        assert_eq!((v.value.to_vec(), v.flags, v.atime), (b"v".to_vec(), 3, 10));
        assert_eq!(v.bits & FETCHED, 0);
        let v = s.peek(b"k", h, 30).unwrap();
        assert_eq!((v.atime, v.bits & FETCHED), (10, 0));
    }

    #[test]
    fn meta_access_sets_bits_expiry_and_bumps() {
        let store = Store::new(&StoreConfig::default());
        let h = store.hash(b"k");
        let mut s = store.lock(h);
        s.store(set(b"k", h, 0, b"v"), 10).unwrap();
        assert!(s.meta_access(
            b"k",
            h,
            12,
            access(Some(100), WIN_SENT | STALE, 0, Recency::Keep)
        ));
        let v = s.peek(b"k", h, 12).unwrap();
        assert_eq!((v.exptime, v.atime, v.bits & FETCHED), (100, 10, 0));
        assert_eq!(v.bits & (WIN_SENT | STALE), WIN_SENT | STALE);
        assert!(s.meta_access(b"k", h, 15, access(None, 0, STALE, Recency::Bump)));
        let v = s.peek(b"k", h, 15).unwrap();
        assert_eq!((v.exptime, v.atime), (100, 15));
        assert_eq!(v.bits & (WIN_SENT | STALE | FETCHED), WIN_SENT | FETCHED);
        assert!(!s.meta_access(
            b"other",
            store.hash(b"other"),
            15,
            access(None, 0, 0, Recency::Bump)
        ));
        // Expired items are gone for meta access too.
        assert!(!s.meta_access(b"k", h, 100, access(None, 0, 0, Recency::Bump)));
    }
}
