//! Owns: the admin commands' semantics — `cache_memlimit`, `slabs reassign|automove`,
//! `lru_crawler ...` (including `metadump`) and `lru ...` applied to the store and the runtime
//! settings, with memcached 1.6.18's reply lines.
//! Does not: parse their words (see `protocol::admin`) or answer `stats` (see `stats`).

use std::io::Write;
use std::sync::atomic::Ordering;

use super::{Action, Ctx};
use crate::num::strtoul32;
use crate::protocol::ascii::{self, ClassIds, Lru, LruCrawler, ERROR};
use crate::store::WalkPos;

/// `cache_memlimit <mb>`: the reply line.
pub fn mem_limit(mb: u32, ctx: &Ctx<'_>) -> &'static str {
    if mb < 8 {
        "MEMLIMIT_TOO_SMALL cannot set maxbytes to less than 8m"
    } else if mb > 1_000_000_000 {
        "MEMLIMIT_ADJUST_FAILED input value is megabytes not bytes"
    } else {
        ctx.shared
            .store()
            .set_memory_limit(mb as usize * 1024 * 1024);
        "OK"
    }
}

/// `slabs automove <level>`: the reply line.
pub fn slabs_automove(level: u32, ctx: &Ctx<'_>) -> &'static str {
    let sh = ctx.shared;
    if level > 2 {
        return ERROR;
    }
    // Without slab reassignment the store never moves pages (memcached still says OK).
    if sh.config().ext.slab_reassign {
        sh.store()
            .shared()
            .automove
            .store(level as u8, Ordering::Relaxed);
    }
    "OK"
}

/// `slabs reassign <src> <dst>`: the reply line.
pub fn slabs_reassign(src: i32, dst: i32, ctx: &Ctx<'_>) -> &'static str {
    let sh = ctx.shared;
    let now = ctx.now();
    if !sh.config().ext.slab_reassign {
        return "CLIENT_ERROR slab reassignment disabled";
    }
    if src == dst {
        return "SAME src and dst class are identical";
    }
    let n = sh.store().classes().len() as i32;
    // memcached's `slabclass[c].slabs >= 2`, per class id (1-based), summed over shards.
    let pages = sh.store().class_stats(now);
    let has_spare = |class_id: i32| {
        pages
            .get((class_id - 1) as usize)
            .is_some_and(|s| s.total_pages >= 2)
    };
    // memcached: `-1` picks any class with a spare page (none found reads as a bad class);
    // class 0 is the global page pool, a valid source or destination.
    let src = if src == -1 {
        match (1..=n).find(|&c| c != dst && has_spare(c)) {
            Some(c) => c,
            None => return "BADCLASS invalid src or dst class id",
        }
    } else {
        src
    };
    if src < 0 || src > n || dst < 0 || dst > n {
        return "BADCLASS invalid src or dst class id";
    }
    // Class 0 is the global page pool: a source while it holds two pages (memcached's rule).
    let spare = if src == 0 {
        sh.store().pooled_pages() >= 2
    } else {
        has_spare(src)
    };
    if !spare {
        return "NOSPARE source class has no spare pages";
    }
    let class = |id: i32| (id > 0).then(|| (id - 1) as usize);
    if sh.store().reassign(class(src), class(dst), now) {
        "OK"
    } else {
        "NOSPARE source class has no spare pages"
    }
}

fn uri_encode(out: &mut Vec<u8>, key: &[u8]) {
    for &b in key {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

/// `lru_crawler <crawl|metadump|tocrawl|sleep|enable|disable> ...`: the reply, or the dump to
/// send.
pub fn lru_crawler(c: LruCrawler<'_>, ctx: &Ctx<'_>, out: &mut Vec<u8>) -> Action {
    let sh = ctx.shared;
    let rt = sh.settings();
    let enabled = rt.lru_crawler();
    let classes_ok = |ids: ClassIds<'_>| ids.within(sh.store().classes().len());
    match c {
        LruCrawler::Crawl(ids) => {
            if !enabled {
                ascii::write_line(out, "CLIENT_ERROR lru crawler disabled");
            } else if !classes_ok(ids) {
                ascii::write_line(out, "BADCLASS invalid class id");
            } else {
                rt.request_crawl();
                ascii::write_line(out, "OK");
            }
        }
        LruCrawler::Metadump(ids) => {
            if !enabled {
                ascii::write_line(out, "CLIENT_ERROR lru crawler disabled");
            } else if !sh.config().dump_enabled {
                ascii::write_line(out, "ERROR metadump not allowed");
            } else if !out.is_empty() {
                // memcached hands the connection to its crawler, which needs no replies of
                // earlier pipelined commands still waiting to be written.
                ascii::write_line(out, "ERROR cannot pipeline other commands before metadump");
            } else if ids.is_some_and(|ids| !classes_ok(ids)) {
                ascii::write_line(out, "BADCLASS invalid class id");
            } else {
                return Action::Dump(Metadump::new(ids));
            }
        }
        LruCrawler::Tocrawl(n) => {
            rt.display().set_lru_crawler_tocrawl(n);
            ascii::write_line(out, "OK");
        }
        LruCrawler::Sleep(n) => {
            rt.display().set_lru_crawler_sleep(n);
            ascii::write_line(out, "OK");
        }
        LruCrawler::Enable => {
            rt.set_lru_crawler(true);
            ascii::write_line(out, "OK");
        }
        LruCrawler::Disable => {
            rt.set_lru_crawler(false);
            ascii::write_line(out, "OK");
        }
    }
    Action::Continue
}

/// A `lru_crawler metadump` being sent: every live item's metadata, one line each, then `END`.
/// The connection asks for it a piece at a time as its socket drains, so a dump of any size
/// holds one piece of memory and each step locks one shard for one piece's items (memcached's
/// crawler thread streams it the same way).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Metadump {
    /// Bit `c` for class index `c` (`all` and `hash`: every class).
    classes: u64,
    pos: WalkPos,
}

impl Metadump {
    /// The dump of classes `ids` (1-based, checked by the caller), or of all.
    fn new(ids: Option<ClassIds<'_>>) -> Metadump {
        let classes = match ids {
            Some(ClassIds(list)) if list != b"all" => list
                .split(|&b| b == b',')
                .filter_map(strtoul32)
                .filter(|id| (1..=64).contains(id))
                .fold(0u64, |m, id| m | 1 << (id - 1)),
            _ => u64::MAX,
        };
        Metadump {
            classes,
            pos: WalkPos::default(),
        }
    }

    /// Appends the next items' lines to `out` until it has grown by about `piece` bytes, or the
    /// rest and `END`: true once the dump is over.
    pub fn step(&mut self, ctx: &Ctx<'_>, out: &mut Vec<u8>, piece: usize) -> bool {
        let sh = ctx.shared;
        let now = sh.clock().now();
        let started = sh.clock().started_unix();
        let stop = out.len().saturating_add(piece);
        let more = sh
            .store()
            .walk_items(&mut self.pos, now, self.classes, |v| {
                out.extend_from_slice(b"key=");
                uri_encode(out, v.key);
                let exp = if v.exptime == 0 {
                    -1
                } else {
                    started + i64::from(v.exptime)
                };
                let _ = writeln!(
                    out,
                    " exp={exp} la={} cas={} fetch={} cls={} size={}",
                    started + i64::from(v.atime),
                    ctx.visible_cas(v.cas),
                    if v.bits & crate::store::item::FETCHED != 0 {
                        "yes"
                    } else {
                        "no"
                    },
                    v.class + 1,
                    v.total
                );
                out.len() < stop
            });
        if !more {
            ascii::write_line(out, "END");
        }
        !more
    }
}

/// `lru tune|mode|temp_ttl ...`: the reply line.
pub fn lru(cmd: Lru, ctx: &Ctx<'_>) -> &'static str {
    let sh = ctx.shared;
    let shown = sh.settings().display();
    let maintainer = sh.config().ext.lru_maintainer;
    match cmd {
        Lru::Tune {
            hot_pct,
            warm_pct,
            hot_factor,
            warm_factor,
        } => {
            let ss = sh.store().shared();
            ss.hot_lru_pct.store(hot_pct, Ordering::Relaxed);
            ss.warm_lru_pct.store(warm_pct, Ordering::Relaxed);
            shown.set_max_factors(hot_factor, warm_factor);
            "OK"
        }
        Lru::Mode { .. } | Lru::TempTtl(_) if !maintainer => ERROR,
        Lru::Mode { segmented } => {
            shown.set_lru_segmented(segmented);
            "OK"
        }
        Lru::TempTtl(ttl) => {
            sh.store().shared().set_temp_ttl(u32::try_from(ttl).ok());
            "OK"
        }
    }
}
