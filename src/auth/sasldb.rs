//! Owns: reading cyrus SASL's user database (`sasldb2`, as `saslpasswd2` writes it): a Berkeley DB
//! hash file (format versions 8 and 9, either byte order, with overflow pages) into its entries
//! `user NUL realm NUL property` → value. Read-only and pure: bytes in, entries out.
//! Does not: open files (see `cyrus`) or decide what an entry is worth (see `Credentials`).
//!
//! # The format, as far as it is read here
//!
//! Page 0 is the metadata page: magic `0x061561` at offset 12 (its byte order is the file's),
//! version at 16, page size at 20, encryption algorithm at 24, flags at 26. Every other page
//! starts with a 26-byte header: page number (8), next page (16), entry count (20), `hf_offset`
//! (22: the free-space offset, or an overflow page's data length), type (25). A hash page
//! (type 2, unsorted, or 13) has an array of 16-bit offsets after the header; item `i` runs from
//! its offset to item `i-1`'s (item 0 to the page's end), and items pair up as key, data. An
//! item starts with its type: 1 the bytes inline, 3 a reference (first page at +4, total
//! length at +8) to a chain of overflow pages (type 7) holding the bytes after their header.

/// Largest database read (bytes): a user file is small; this bounds memory on a wrong path.
pub const MAX_FILE: usize = 64 * 1024 * 1024;

const HASH_MAGIC: u32 = 0x0006_1561;
const PAGE_HEADER: usize = 26;
const P_HASH_UNSORTED: u8 = 2;
const P_OVERFLOW: u8 = 7;
const P_HASH: u8 = 13;
const H_KEYDATA: u8 = 1;
const H_OFFPAGE: u8 = 3;

/// Why a file is not a readable sasldb.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SasldbError {
    #[error("not a Berkeley DB hash file")]
    NotHash,
    #[error("Berkeley DB hash version {0} is not supported (8 and 9 are)")]
    Version(u32),
    #[error("encrypted or checksummed databases are not supported")]
    Encrypted,
    #[error("bad page size {0}")]
    PageSize(u32),
    #[error("larger than {MAX_FILE} bytes")]
    TooLarge,
    #[error("page {0}: {1}")]
    Corrupt(u32, &'static str),
}

/// One sasldb record: `user`, `realm`, `property` (`userPassword` for passwords) and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub user: Vec<u8>,
    pub realm: Vec<u8>,
    pub property: Vec<u8>,
    pub value: Vec<u8>,
}

/// The property holding a user's password.
pub const PASSWORD: &[u8] = b"userPassword";

struct Db<'a> {
    bytes: &'a [u8],
    page_size: usize,
    pages: u32,
    big_endian: bool,
}

impl Db<'_> {
    fn u16_at(&self, page: &[u8], at: usize) -> Option<u16> {
        let b: [u8; 2] = page.get(at..at + 2)?.try_into().ok()?;
        Some(if self.big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    }

    fn u32_at(&self, page: &[u8], at: usize) -> Option<u32> {
        let b: [u8; 4] = page.get(at..at + 4)?.try_into().ok()?;
        Some(if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }

    fn page(&self, n: u32) -> Option<&[u8]> {
        if n >= self.pages {
            return None;
        }
        let start = n as usize * self.page_size;
        self.bytes.get(start..start + self.page_size)
    }

    /// The bytes of an overflow chain starting at `first`, `len` long.
    fn overflow(&self, from: u32, first: u32, len: usize) -> Result<Vec<u8>, SasldbError> {
        let bad = |why| SasldbError::Corrupt(from, why);
        if len > self.bytes.len() {
            return Err(bad("overflow length past the file"));
        }
        let mut out = Vec::with_capacity(len);
        let mut next = first;
        // Each step consumes a distinct page or fails: at most `pages` steps.
        for _ in 0..self.pages {
            if out.len() == len {
                return Ok(out);
            }
            let p = self.page(next).ok_or(bad("overflow page out of range"))?;
            if p[25] != P_OVERFLOW {
                return Err(bad("overflow chain reaches a page of another type"));
            }
            let n = usize::from(self.u16_at(p, 22).ok_or(bad("short page"))?);
            let data = p
                .get(PAGE_HEADER..PAGE_HEADER + n)
                .ok_or(bad("overflow data past the page"))?;
            if out.len() + n > len {
                return Err(bad("overflow chain longer than its item"));
            }
            out.extend_from_slice(data);
            next = self.u32_at(p, 16).ok_or(bad("short page"))?;
        }
        if out.len() == len {
            Ok(out)
        } else {
            Err(bad("overflow chain shorter than its item"))
        }
    }

    /// The key/data items of hash page `n`, resolved.
    fn items(&self, n: u32, p: &[u8], out: &mut Vec<Vec<u8>>) -> Result<(), SasldbError> {
        let bad = |why| SasldbError::Corrupt(n, why);
        let count = usize::from(self.u16_at(p, 20).ok_or(bad("short page"))?);
        if PAGE_HEADER + 2 * count > p.len() {
            return Err(bad("more entries than fit the page"));
        }
        let mut end = p.len();
        for i in 0..count {
            let off = usize::from(
                self.u16_at(p, PAGE_HEADER + 2 * i)
                    .ok_or(bad("short page"))?,
            );
            if off < PAGE_HEADER + 2 * count || off >= end {
                return Err(bad("item offset out of order"));
            }
            let item = &p[off..end];
            end = off;
            match item[0] {
                H_KEYDATA => out.push(item[1..].to_vec()),
                H_OFFPAGE => {
                    let first = self.u32_at(item, 4).ok_or(bad("short overflow item"))?;
                    let len = self.u32_at(item, 8).ok_or(bad("short overflow item"))?;
                    out.push(self.overflow(n, first, len as usize)?);
                }
                _ => return Err(bad("duplicate sets are not supported")),
            }
        }
        Ok(())
    }
}

/// One key and its data.
pub type Pair = (Vec<u8>, Vec<u8>);

/// Every key/data pair of a Berkeley DB hash file, in page order.
pub fn pairs(bytes: &[u8]) -> Result<Vec<Pair>, SasldbError> {
    if bytes.len() > MAX_FILE {
        return Err(SasldbError::TooLarge);
    }
    let meta = bytes.get(..PAGE_HEADER + 6).ok_or(SasldbError::NotHash)?;
    let magic = [meta[12], meta[13], meta[14], meta[15]];
    let big_endian = if u32::from_le_bytes(magic) == HASH_MAGIC {
        false
    } else if u32::from_be_bytes(magic) == HASH_MAGIC {
        true
    } else {
        return Err(SasldbError::NotHash);
    };
    let mut db = Db {
        bytes,
        page_size: 0,
        pages: 1,
        big_endian,
    };
    let version = db.u32_at(meta, 16).ok_or(SasldbError::NotHash)?;
    if !(8..=9).contains(&version) {
        return Err(SasldbError::Version(version));
    }
    let page_size = db.u32_at(meta, 20).ok_or(SasldbError::NotHash)?;
    if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
        return Err(SasldbError::PageSize(page_size));
    }
    // Encryption algorithm, or the checksum flag: both move the page layout.
    if meta[24] != 0 || meta[26] & 1 != 0 {
        return Err(SasldbError::Encrypted);
    }
    db.page_size = page_size as usize;
    db.pages = u32::try_from(bytes.len() / db.page_size).map_err(|_| SasldbError::TooLarge)?;
    let mut items = Vec::new();
    let mut out = Vec::new();
    for n in 1..db.pages {
        let Some(p) = db.page(n) else { break };
        if !matches!(p[25], P_HASH | P_HASH_UNSORTED) {
            continue;
        }
        items.clear();
        db.items(n, p, &mut items)?;
        if items.len() % 2 != 0 {
            return Err(SasldbError::Corrupt(n, "a key without data"));
        }
        let mut it = items.drain(..);
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            out.push((k, v));
        }
    }
    Ok(out)
}

/// The records of a sasldb file: keys that are not `user NUL realm NUL property` are skipped.
pub fn entries(bytes: &[u8]) -> Result<Vec<Entry>, SasldbError> {
    Ok(pairs(bytes)?
        .into_iter()
        .filter_map(|(k, value)| {
            let mut parts = k.splitn(3, |&b| b == 0);
            let (user, realm, property) = (parts.next()?, parts.next()?, parts.next()?);
            Some(Entry {
                user: user.to_vec(),
                realm: realm.to_vec(),
                property: property.to_vec(),
                value,
            })
        })
        .collect())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Writes a hash database the way the format above describes it: page 0 metadata, one hash
    /// page per `per_page` pairs, values longer than `inline` on overflow chains.
    pub(crate) fn build(pairs: &[(&[u8], &[u8])], big_endian: bool, page_size: usize) -> Vec<u8> {
        let u16b = |v: u16| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let u32b = |v: u32| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut pages: Vec<Vec<u8>> = vec![vec![0; page_size]];
        pages[0][12..16].copy_from_slice(&u32b(HASH_MAGIC));
        pages[0][16..20].copy_from_slice(&u32b(9));
        pages[0][20..24].copy_from_slice(&u32b(page_size as u32));
        pages[0][25] = 8;
        let room = page_size - PAGE_HEADER;
        let overflow = |pages: &mut Vec<Vec<u8>>, data: &[u8]| -> Vec<u8> {
            let first = pages.len() as u32;
            let chunks: Vec<&[u8]> = data.chunks(room).collect();
            for (i, c) in chunks.iter().enumerate() {
                let mut p = vec![0; page_size];
                let n = pages.len() as u32;
                p[8..12].copy_from_slice(&u32b(n));
                let next = if i + 1 < chunks.len() { n + 1 } else { 0 };
                p[16..20].copy_from_slice(&u32b(next));
                p[20..22].copy_from_slice(&u16b(1));
                p[22..24].copy_from_slice(&u16b(c.len() as u16));
                p[25] = P_OVERFLOW;
                p[PAGE_HEADER..PAGE_HEADER + c.len()].copy_from_slice(c);
                pages.push(p);
            }
            let mut item = vec![H_OFFPAGE, 0, 0, 0];
            item.extend_from_slice(&u32b(first));
            item.extend_from_slice(&u32b(data.len() as u32));
            item
        };
        let mut hash = vec![0u8; page_size];
        let hash_no = pages.len();
        pages.push(Vec::new());
        let mut end = page_size;
        let mut n = 0usize;
        for (k, v) in pairs {
            for d in [*k, *v] {
                let item = if d.len() > page_size / 4 {
                    overflow(&mut pages, d)
                } else {
                    let mut i = vec![H_KEYDATA];
                    i.extend_from_slice(d);
                    i
                };
                end -= item.len();
                hash[end..end + item.len()].copy_from_slice(&item);
                hash[PAGE_HEADER + 2 * n..PAGE_HEADER + 2 * n + 2]
                    .copy_from_slice(&u16b(end as u16));
                n += 1;
            }
        }
        hash[8..12].copy_from_slice(&u32b(hash_no as u32));
        hash[20..22].copy_from_slice(&u16b(n as u16));
        hash[22..24].copy_from_slice(&u16b(end as u16));
        hash[25] = P_HASH;
        pages[hash_no] = hash;
        pages.concat()
    }

    #[test]
    fn both_byte_orders_and_overflow_chains() {
        let long = vec![b'y'; 10_000];
        let pairs_in: Vec<(&[u8], &[u8])> = vec![
            (b"alice\0vm\0userPassword", b"pw1"),
            (b"bob\0example.org\0userPassword", &long),
            (b"junk", b"skipped by entries"),
        ];
        for be in [false, true] {
            for ps in [512, 4096] {
                let db = build(&pairs_in, be, ps);
                let got = pairs(&db).unwrap();
                assert_eq!(got.len(), 3);
                assert_eq!(got[1].1, long);
                let e = entries(&db).unwrap();
                assert_eq!(e.len(), 2);
                assert_eq!(e[0].user, b"alice");
                assert_eq!(e[0].realm, b"vm");
                assert_eq!(e[0].property, PASSWORD);
                assert_eq!(e[0].value, b"pw1");
                assert_eq!(e[1].realm, b"example.org");
            }
        }
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        assert_eq!(pairs(b""), Err(SasldbError::NotHash));
        assert_eq!(pairs(&[0u8; 4096]), Err(SasldbError::NotHash));
        let mut db = build(&[(b"a\0r\0userPassword", b"p")], false, 512);
        db[16] = 7;
        assert_eq!(pairs(&db), Err(SasldbError::Version(7)));
        db[16] = 9;
        db[24] = 1;
        assert_eq!(pairs(&db), Err(SasldbError::Encrypted));
        db[24] = 0;
        db[20] = 0xff;
        assert!(matches!(pairs(&db), Err(SasldbError::PageSize(_))));
    }

    #[test]
    fn a_looping_overflow_chain_ends() {
        let long = vec![b'z'; 2000];
        let mut db = build(&[(b"a\0r\0userPassword", &long)], false, 512);
        // Point the last overflow page back at the first.
        let last = db.len() / 512 - 1;
        db[last * 512 + 16..last * 512 + 20].copy_from_slice(&2u32.to_le_bytes());
        db[last * 512 + 22..last * 512 + 24].copy_from_slice(&486u16.to_le_bytes());
        assert!(matches!(pairs(&db), Err(SasldbError::Corrupt(..))));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..3000)) {
            let _ = entries(&bytes);
        }

        #[test]
        fn damaged_databases_never_panic(
            flips in proptest::collection::vec((0usize..4096, any::<u8>()), 1..40),
            be in any::<bool>(),
        ) {
            let long = vec![b'q'; 1500];
            let mut db = build(&[(b"u\0r\0userPassword", b"pw"), (b"v\0r\0userPassword", &long)], be, 512);
            for (at, b) in flips {
                let n = db.len();
                db[at % n] = b;
            }
            let _ = entries(&db);
        }
    }
}
