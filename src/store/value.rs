//! Owns: an item's value as the store hands it out (`Value`): one slice of the item's chunk, or
//! the parts of a chained item in order, each a slice of a body chunk, so that a reply copies
//! them straight into its output without joining them first.
//! Does not: allocate or free chains (see `shard::chain`).

use super::item;
use super::slab::Pages;

/// A borrowed value (valid while the shard lock is held).
#[derive(Clone, Copy, Debug)]
pub enum Value<'a> {
    Flat(&'a [u8]),
    Chained(Chain<'a>),
}

/// The value of a chained item: its head chunk (holding the part ids) and the pages they are in.
#[derive(Clone, Copy, Debug)]
pub struct Chain<'a> {
    pages: &'a Pages,
    head: &'a [u8],
    len: usize,
    /// Value bytes of every part but the last.
    cap: usize,
}

impl<'a> Value<'a> {
    /// The value of the item in chunk `c`; `cap` is what one full body chunk holds.
    pub(super) fn of(pages: &'a Pages, c: &'a [u8], cap: usize) -> Value<'a> {
        if item::is_chained(c) {
            Value::Chained(Chain {
                pages,
                head: c,
                len: item::vlen(c),
                cap,
            })
        } else {
            Value::Flat(item::value(c))
        }
    }

    /// Length in bytes.
    #[inline]
    pub fn len(&self) -> usize {
        match self {
            Value::Flat(v) => v.len(),
            Value::Chained(ch) => ch.len,
        }
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value's bytes in order, as slices (one for an unchained value).
    pub fn parts(&self) -> Parts<'a> {
        Parts {
            value: *self,
            next: 0,
            left: self.len(),
        }
    }

    /// The one slice of an unchained value (None for a chained one).
    #[inline]
    pub fn flat(&self) -> Option<&'a [u8]> {
        match self {
            Value::Flat(v) => Some(v),
            Value::Chained(_) => None,
        }
    }

    /// A copy of the value's bytes.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len());
        for p in self.parts() {
            v.extend_from_slice(p);
        }
        v
    }
}

impl PartialEq<[u8]> for Value<'_> {
    fn eq(&self, other: &[u8]) -> bool {
        if self.len() != other.len() {
            return false;
        }
        let mut at = 0;
        self.parts().all(|p| {
            let same = other[at..at + p.len()] == *p;
            at += p.len();
            same
        })
    }
}

impl PartialEq<&[u8]> for Value<'_> {
    fn eq(&self, other: &&[u8]) -> bool {
        *self == **other
    }
}

/// The parts of a value, in order.
#[derive(Clone, Debug)]
pub struct Parts<'a> {
    value: Value<'a>,
    next: usize,
    left: usize,
}

impl<'a> Iterator for Parts<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        match self.value {
            Value::Flat(v) => {
                if self.next > 0 {
                    return None;
                }
                self.next = 1;
                Some(v)
            }
            Value::Chained(ch) => {
                if self.left == 0 {
                    return None;
                }
                let n = self.left.min(ch.cap);
                let c = ch.pages.chunk(item::part(ch.head, self.next));
                self.next += 1;
                self.left -= n;
                Some(&c[item::BODY_DATA..item::BODY_DATA + n])
            }
        }
    }
}
