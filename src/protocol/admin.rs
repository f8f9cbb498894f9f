//! Owns: parsing memcached's admin commands into typed commands with memcached 1.6.18's error
//! lines — the `stats` groups (text lines and binary STAT keys), `slabs reassign|automove`,
//! `lru_crawler ...` and `lru ...`.
//! Does not: execute them (see `exec::admin` and `exec::stats`).

use super::ascii::{
    reply, Cachedump, ClassIds, Command, Lru, LruCrawler, Stats, Tokens, BAD_FORMAT, ERROR,
};
use crate::num::{strtol32, strtoul32};

/// Parses an admin command line; `None` when its first word names no admin command.
pub fn parse<'a>(t: &Tokens<'a>) -> Option<Command<'a>> {
    Some(match t.get(0) {
        b"stats" => Command::Stats(stats(t)),
        b"slabs" => slabs(t),
        b"lru_crawler" => lru_crawler(t),
        b"lru" => lru(t),
        _ => return None,
    })
}

fn stats<'a>(t: &Tokens<'a>) -> Stats<'a> {
    if t.ntokens() == 2 {
        return Stats::General;
    }
    match t.get(1) {
        b"reset" => Stats::Reset,
        b"detail" => match t.get(2) {
            b"on" => Stats::DetailOn,
            b"off" => Stats::DetailOff,
            b"dump" => Stats::DetailDump,
            _ => Stats::DetailUsage,
        },
        b"settings" => Stats::Settings,
        b"cachedump" => Stats::Cachedump(cachedump(t)),
        b"conns" => Stats::Conns,
        b"items" => Stats::Items,
        b"slabs" => Stats::Slabs,
        b"sizes" => Stats::Sizes,
        b"cluster" => Stats::Cluster,
        b"ferrocache" => Stats::Ferrocache,
        b"sizes_enable" => Stats::SizesEnable,
        b"sizes_disable" => Stats::SizesDisable,
        other => Stats::Unknown(other),
    }
}

fn cachedump(t: &Tokens<'_>) -> Result<Cachedump, &'static str> {
    if t.ntokens() < 5 {
        return Err("CLIENT_ERROR bad command line");
    }
    let (Some(class), Some(limit)) = (strtoul32(t.get(2)), strtoul32(t.get(3))) else {
        return Err(BAD_FORMAT);
    };
    if class >= 64 {
        return Err("CLIENT_ERROR Illegal slab id");
    }
    Ok(Cachedump { class, limit })
}

/// A binary STAT key, matched as memcached does: `reset`, `settings` and `detail` by prefix,
/// the other groups by whole name (groups the binary protocol lacks are `Unknown`).
pub fn binary_stats(key: &[u8]) -> Stats<'_> {
    if key.is_empty() {
        Stats::General
    } else if key.starts_with(b"reset") {
        Stats::Reset
    } else if key.starts_with(b"settings") {
        Stats::Settings
    } else if let Some(rest) = key.strip_prefix(b"detail") {
        if rest.starts_with(b" dump") {
            Stats::DetailDump
        } else if rest.starts_with(b" on") {
            Stats::DetailOn
        } else if rest.starts_with(b" off") {
            Stats::DetailOff
        } else {
            Stats::DetailUsage
        }
    } else {
        match key {
            b"items" => Stats::Items,
            b"slabs" => Stats::Slabs,
            b"sizes" => Stats::Sizes,
            b"sizes_enable" => Stats::SizesEnable,
            b"sizes_disable" => Stats::SizesDisable,
            b"ferrocache" => Stats::Ferrocache,
            other => Stats::Unknown(other),
        }
    }
}

fn slabs<'a>(t: &Tokens<'a>) -> Command<'a> {
    let nt = t.ntokens();
    if nt == 5 && t.get(1) == b"reassign" {
        match (strtol32(t.get(2)), strtol32(t.get(3))) {
            (Some(src), Some(dst)) => Command::SlabsReassign { src, dst },
            _ => reply(BAD_FORMAT, false),
        }
    } else if nt >= 4 && t.get(1) == b"automove" {
        let noreply = t.noreply();
        match strtoul32(t.get(2)) {
            Some(level) => Command::SlabsAutomove { level, noreply },
            None => reply(BAD_FORMAT, noreply),
        }
    } else {
        reply(ERROR, false)
    }
}

/// Longest `lru_crawler sleep` (one second, in microseconds).
const MAX_CRAWLER_SLEEP: u32 = 1_000_000;

fn lru_crawler<'a>(t: &Tokens<'a>) -> Command<'a> {
    let arg = t.get(2);
    let c = match (t.ntokens(), t.get(1)) {
        (4, b"crawl") => LruCrawler::Crawl(ClassIds(arg)),
        (4, b"metadump") => LruCrawler::Metadump((arg != b"hash").then_some(ClassIds(arg))),
        (4, b"tocrawl") => match strtoul32(arg) {
            Some(n) => LruCrawler::Tocrawl(n),
            None => return reply(BAD_FORMAT, false),
        },
        (4, b"sleep") => match strtoul32(arg) {
            Some(n) if n > MAX_CRAWLER_SLEEP => {
                return reply("CLIENT_ERROR sleep must be one second or less", false)
            }
            Some(n) => LruCrawler::Sleep(n),
            None => return reply(BAD_FORMAT, false),
        },
        (3, b"enable") => LruCrawler::Enable,
        (3, b"disable") => LruCrawler::Disable,
        _ => return reply(ERROR, false),
    };
    Command::LruCrawler(c)
}

fn lru<'a>(t: &Tokens<'a>) -> Command<'a> {
    let nt = t.ntokens();
    if nt < 3 {
        return reply(ERROR, false);
    }
    let noreply = t.noreply();
    let cmd = match t.get(1) {
        b"tune" if nt >= 7 => {
            let float = |b: &[u8]| {
                std::str::from_utf8(b)
                    .ok()
                    .and_then(|s| s.parse::<f64>().ok())
            };
            let (Some(hot_pct), Some(warm_pct), Some(hot_factor), Some(warm_factor)) = (
                strtoul32(t.get(2)),
                strtoul32(t.get(3)),
                float(t.get(4)),
                float(t.get(5)),
            ) else {
                return reply(ERROR, noreply);
            };
            if u64::from(hot_pct) + u64::from(warm_pct) > 80 {
                return reply("ERROR hot and warm pcts must not exceed 80", noreply);
            }
            if hot_factor <= 0.0 || warm_factor <= 0.0 {
                return reply("ERROR hot/warm age factors must be greater than 0", noreply);
            }
            Lru::Tune {
                hot_pct,
                warm_pct,
                hot_factor,
                warm_factor,
            }
        }
        b"mode" if nt >= 4 => match t.get(2) {
            b"flat" => Lru::Mode { segmented: false },
            b"segmented" => Lru::Mode { segmented: true },
            _ => return reply(ERROR, noreply),
        },
        b"temp_ttl" if nt >= 4 => match strtol32(t.get(2)) {
            Some(ttl) => Lru::TempTtl(ttl),
            None => return reply(ERROR, noreply),
        },
        _ => return reply(ERROR, noreply),
    };
    Command::Lru { cmd, noreply }
}
