//! Owns: chained items — values larger than `slab_chunk_max` held in a head chunk (header, key
//! and the ids of the parts) plus body chunks: full ones of the body class (the class of
//! `slab_chunk_max`), the last part in the smallest class that holds it (or a full body chunk
//! when that class has no memory). Allocating an item's chunks (with the chunks already taken
//! reserved, so that no page holding one moves), writing a value across them, freeing them with
//! the head, and the body chunk to head step the eviction hand and page moves take.
//! Does not: choose which item to evict (see `sweep`) or link items (see `link`).

use super::Shard;
use crate::store::item::{self, Header};
use crate::store::slab::ChunkId;
use crate::store::StoreError;

/// The chunks taken for one new item: its head (the item itself when unchained) and the parts
/// of a chained value.
#[derive(Debug)]
pub(super) struct Taken {
    pub head: ChunkId,
    pub parts: Vec<ChunkId>,
    /// Something was unlinked or moved on the way (ids found before may be stale).
    pub disturbed: bool,
}

impl Shard {
    /// Value bytes one full body chunk holds.
    #[inline]
    pub(super) fn body_cap(&self) -> usize {
        self.classes.size(self.body_cls) - item::BODY_DATA
    }

    /// Takes the chunks for an item with a `klen`-byte key, a `vlen`-byte value and `flags`:
    /// one chunk when it fits `slab_chunk_max`, else a chain. `TooLarge` when not even the
    /// head of a chain fits.
    pub(super) fn take_chunks(
        &mut self,
        klen: usize,
        vlen: usize,
        flags: u32,
        now: u32,
    ) -> Result<Taken, StoreError> {
        let total = item::total_size(klen, vlen, flags);
        if total <= self.shared.slab_chunk_max {
            let cls = self.classes.class_for(total).ok_or(StoreError::TooLarge)?;
            let (head, disturbed) = self.alloc(cls, now)?;
            return Ok(Taken {
                head,
                parts: Vec::new(),
                disturbed,
            });
        }
        let cap = self.body_cap();
        let n = vlen.div_ceil(cap);
        let head_cls = self
            .classes
            .class_for(item::head_size(klen, vlen, flags, n))
            .filter(|&c| self.classes.size(c) <= self.shared.slab_chunk_max)
            .ok_or(StoreError::TooLarge)?;
        let last = vlen - (n - 1) * cap;
        let last_cls = self
            .classes
            .class_for(last + item::BODY_DATA)
            .unwrap_or(self.body_cls)
            .min(self.body_cls);
        let mut taken = Taken {
            head: 0,
            parts: Vec::with_capacity(n),
            disturbed: false,
        };
        let mut result = Ok(());
        for i in 0..=n {
            let cls = match i {
                _ if i == n => head_cls,
                _ if i == n - 1 => last_cls,
                _ => self.body_cls,
            };
            // memcached's fallback: when the last part's smaller class has no memory (its
            // chunks may all be parts of chained items, which its own LRU cannot evict), the
            // last part takes a full body chunk, evicting from the body class's LRU.
            let got = match self.alloc(cls, now) {
                Err(StoreError::OutOfMemory) if i == n - 1 && cls != self.body_cls => {
                    self.alloc(self.body_cls, now)
                }
                got => got,
            };
            match got {
                Ok((id, d)) => {
                    taken.disturbed |= d;
                    self.reserved.push(id);
                    if i == n {
                        taken.head = id;
                    } else {
                        taken.parts.push(id);
                    }
                }
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        self.reserved.clear();
        match result {
            Ok(()) => Ok(taken),
            Err(e) => {
                for &id in &taken.parts {
                    let cls = self.pages.class_of(id);
                    self.class[cls].free.push(id);
                }
                Err(e)
            }
        }
    }

    /// Gives back chunks taken for an item that is not stored after all.
    pub(super) fn give_back(&mut self, t: &Taken) {
        for &id in t.parts.iter().chain(std::iter::once(&t.head)) {
            let cls = self.pages.class_of(id);
            self.class[cls].free.push(id);
        }
    }

    /// Writes a fresh item into the chunks taken for it: the value is `data` concatenated.
    pub(super) fn write_item(&mut self, t: &Taken, h: &Header<'_>, data: &[&[u8]]) {
        if t.parts.is_empty() {
            item::write_new(self.pages.chunk_mut(t.head), h, data);
            return;
        }
        let vlen: usize = data.iter().map(|d| d.len()).sum();
        item::write_head(self.pages.chunk_mut(t.head), h, vlen, &t.parts);
        let cap = self.body_cap();
        let mut src = data.iter().copied().filter(|d| !d.is_empty());
        let mut cur: &[u8] = src.next().unwrap_or(&[]);
        for &id in &t.parts {
            let c = self.pages.chunk_mut(id);
            item::set_body_head(c, t.head);
            let mut at = item::BODY_DATA;
            let end = item::BODY_DATA + cap.min(c.len() - item::BODY_DATA);
            while at < end {
                if cur.is_empty() {
                    match src.next() {
                        Some(d) => cur = d,
                        None => break,
                    }
                }
                let n = cur.len().min(end - at);
                c[at..at + n].copy_from_slice(&cur[..n]);
                at += n;
                cur = &cur[n..];
            }
            self.pages.mark_used(id);
            let cls = self.pages.class_of(id);
            self.class[cls].bodies += 1;
        }
    }

    /// Frees the body chunks of the chained item whose head is `head` (its head stays); with
    /// `keep`, they only stop being body chunks and go on no free list (a pinned item's, see
    /// `pins`).
    pub(super) fn free_parts(&mut self, head: ChunkId, keep: bool) {
        let c = self.pages.chunk(head);
        if !item::is_chained(c) {
            return;
        }
        let n = item::vlen(c).div_ceil(self.body_cap());
        // Last part first: the first part (where the hand stood when it evicted the item) is
        // the next chunk handed out, so a new item there is the last the hand reaches again.
        for i in (0..n).rev() {
            let id = item::part(self.pages.chunk(head), i);
            let cls = self.pages.class_of(id);
            item::set_bits(self.pages.chunk_mut(id), 0);
            let class = &mut self.class[cls];
            class.bodies = class.bodies.saturating_sub(1);
            if !keep {
                class.free.push(id);
            }
        }
    }

    /// The parts of the chained item whose head is `head` (none when unchained).
    pub(super) fn parts_of(&self, head: ChunkId) -> impl Iterator<Item = ChunkId> + '_ {
        let c = self.pages.chunk(head);
        let n = if item::is_chained(c) {
            item::vlen(c).div_ceil(self.body_cap())
        } else {
            0
        };
        (0..n).map(move |i| item::part(c, i))
    }

    /// The class whose LRU (segments and hand) a linked item belongs to: its own, or for a
    /// chained item the class of its first part, so that the hand of the class whose memory
    /// it holds ages and evicts it, once per pass.
    #[inline]
    pub(super) fn lru_class(&self, id: ChunkId) -> usize {
        let c = self.pages.chunk(id);
        if item::is_chained(c) {
            self.pages.class_of(item::part(c, 0))
        } else {
            self.pages.class_of(id)
        }
    }

    /// The item a class's hand meets at chunk `id`: an unchained item, or a chained one at its
    /// first part (the hand passes each item once); none for free chunks, heads and other parts.
    #[inline]
    pub(super) fn lru_item_at(&self, id: ChunkId) -> Option<ChunkId> {
        let c = self.pages.chunk(id);
        if item::in_use(c) {
            (!item::is_chained(c)).then_some(id)
        } else if item::is_body(c) {
            let head = item::body_head(c);
            (item::part(self.pages.chunk(head), 0) == id).then_some(head)
        } else {
            None
        }
    }

    /// The item a chunk stands for: itself when it holds an item, its head when it is a body
    /// chunk, none when free.
    #[inline]
    pub(super) fn item_of(&self, id: ChunkId) -> Option<ChunkId> {
        let c = self.pages.chunk(id);
        if item::in_use(c) {
            Some(id)
        } else if item::is_body(c) {
            Some(item::body_head(c))
        } else {
            None
        }
    }

    /// True when page `p` holds a chunk that must not move now: one taken for an item being
    /// stored, the item a store changes (its head or a part), or an item a reply pins.
    pub(super) fn page_pinned(&self, p: usize) -> bool {
        self.reply_pins.holds_page(p)
            || self.reserved.iter().any(|&id| self.pages.page_of(id) == p)
            || self.pinned.is_some_and(|h| {
                self.pages.page_of(h) == p || self.parts_of(h).any(|id| self.pages.page_of(id) == p)
            })
    }

    /// After item `from` was copied to chunk `to`: its body chunks name their new head.
    pub(super) fn rehead(&mut self, to: ChunkId) {
        let parts: Vec<ChunkId> = self.parts_of(to).collect();
        for id in parts {
            item::set_body_head(self.pages.chunk_mut(id), to);
        }
    }

    /// Copies body chunk `from` into free chunk `to` of the same class and points its head at it.
    pub(super) fn rescue_body(&mut self, from: ChunkId, to: ChunkId) {
        let head = item::body_head(self.pages.chunk(from));
        let bytes = self.pages.chunk(from).to_vec();
        self.pages.chunk_mut(to).copy_from_slice(&bytes);
        self.pages.mark_used(to);
        item::set_bits(self.pages.chunk_mut(from), 0);
        let n = self.parts_of(head).position(|x| x == from);
        if let Some(i) = n {
            item::set_part(self.pages.chunk_mut(head), i, to);
        }
    }
}
