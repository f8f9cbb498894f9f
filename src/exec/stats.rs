//! Owns: the `stats` family of replies (general, settings, items, slabs, sizes, conns, reset,
//! detail, cachedump, cluster) in memcached 1.6.18's order and names, and prefix counting for
//! `stats detail`.
//! The general, settings, items and slabs groups are written to a `StatSink`: a reply's
//! `STAT` lines, or the `Fields` `/metrics` is rendered from (`exec::metrics`), so the two are
//! the same values computed by the same code.
//! Does not: count anything itself (see `stats` and the store's class counters).
//! Long because: each group is memcached's field list, in its order, written out once.

use std::fmt::Display;
use std::io::Write;
use std::sync::atomic::Ordering;

use super::Ctx;
use crate::protocol::ascii::{self, write_stat, Cachedump, Stats, ERROR};
use crate::state::{Phase, Shared};
use crate::stats::{Counters, PrefixOp, POOL_OBJ, RESP_PER_OBJ};

/// Where the fields of a `stats` group go.
pub trait StatSink {
    fn stat(&mut self, key: &dyn Display, value: &dyn Display);
}

/// A reply: `STAT key value` lines.
impl StatSink for Vec<u8> {
    fn stat(&mut self, key: &dyn Display, value: &dyn Display) {
        let _ = write!(self, "STAT {key} {value}\r\n");
    }
}

/// The fields of one or more groups as text pairs, in order (what `/metrics` reads).
#[derive(Debug, Default)]
pub struct Fields(pub Vec<(String, String)>);

impl StatSink for Fields {
    fn stat(&mut self, key: &dyn Display, value: &dyn Display) {
        self.0.push((key.to_string(), value.to_string()));
    }
}

/// Sums every worker's counters.
pub fn totals(sh: &Shared) -> Counters {
    let mut c = Counters::default();
    for t in sh.thread_stats().iter() {
        c.add(&t.snapshot());
    }
    c
}

fn rusage() -> (String, String) {
    use nix::sys::resource::{getrusage, UsageWho};
    match getrusage(UsageWho::RUSAGE_SELF) {
        Ok(r) => {
            let u = r.user_time();
            let s = r.system_time();
            (
                format!("{}.{:06}", u.tv_sec(), u.tv_usec()),
                format!("{}.{:06}", s.tv_sec(), s.tv_usec()),
            )
        }
        Err(_) => ("0.000000".into(), "0.000000".into()),
    }
}

/// `stats <group>`.
pub fn stats(group: Stats<'_>, ctx: &Ctx<'_>, out: &mut Vec<u8>) {
    let sh = ctx.shared;
    let end = |out: &mut Vec<u8>| out.extend_from_slice(b"END\r\n");
    match group {
        Stats::General => {
            general(sh, out);
            end(out);
        }
        Stats::Reset => {
            reset(ctx);
            ascii::write_line(out, "RESET");
        }
        Stats::DetailOn | Stats::DetailOff => {
            let on = group == Stats::DetailOn;
            sh.settings().set_detail(on);
            ascii::write_line(out, "OK");
        }
        Stats::DetailDump => sh.settings().prefixes().dump(out),
        Stats::DetailUsage => {
            ascii::write_line(out, "CLIENT_ERROR usage: stats detail on|off|dump")
        }
        Stats::Settings => {
            settings(sh, out);
            end(out);
        }
        Stats::Cachedump(args) => cachedump(args, ctx, out),
        Stats::Conns => {
            conns(ctx, out);
            end(out);
        }
        Stats::Items => {
            items(sh, out);
            end(out);
        }
        Stats::Slabs => {
            slabs(sh, out);
            end(out);
        }
        Stats::Sizes => {
            sizes(ctx, out);
            end(out);
        }
        Stats::Ferrocache => {
            ferrocache(ctx, out);
            end(out);
        }
        Stats::Cluster if sh.cluster().enabled() => {
            for (k, v) in sh.cluster().stats() {
                write_stat(out, k, v);
            }
            for (k, v) in sh.cluster().health_stats() {
                write_stat(out, &k, v);
            }
            end(out);
        }
        // memcached answers these two without an `END` line.
        Stats::SizesEnable => sizes_toggle(ctx, true, out),
        Stats::SizesDisable => sizes_toggle(ctx, false, out),
        Stats::Cluster | Stats::Unknown(_) => ascii::write_line(out, ERROR),
    }
}

/// `stats reset`: zeroes the resettable counters.
pub fn reset(ctx: &Ctx<'_>) {
    let sh = ctx.shared;
    for ts in sh.thread_stats().iter() {
        ts.reset();
    }
    sh.conns().reset();
    sh.store().reset_stats();
    sh.logger().reset_stats();
    sh.settings().prefixes().clear();
}

/// `stats sizes_enable` / `stats sizes_disable` (memcached answers without an `END` line).
pub fn sizes_toggle(ctx: &Ctx<'_>, enable: bool, out: &mut Vec<u8>) {
    let sh = ctx.shared;
    if !enable {
        sh.settings().set_sizes_enabled(false);
        sh.store().track_sizes(sizes_enabled(sh));
        write_stat(out, "sizes_status", "disabled");
    } else if sh.config().cas_enabled {
        sh.settings().set_sizes_enabled(true);
        sh.store().track_sizes(true);
        write_stat(out, "sizes_status", "enabled");
    } else {
        write_stat(out, "sizes_status", "error");
        write_stat(out, "sizes_error", "cas_support_disabled");
    }
}

/// Size tracking is on: `-o track_sizes` at start or `stats sizes_enable` since.
fn sizes_enabled(sh: &Shared) -> bool {
    sh.config().ext.track_sizes || sh.settings().sizes_enabled()
}

pub fn detail_enabled(ctx: &Ctx<'_>) -> bool {
    ctx.shared.settings().detail_enabled()
}

/// Counts a request for `stats detail dump` (only while `stats detail on`).
pub fn record_prefix(ctx: &Ctx<'_>, key: &[u8], op: PrefixOp) {
    if !detail_enabled(ctx) {
        return;
    }
    let delimiter = ctx
        .shared
        .config()
        .prefix_delimiter
        .as_bytes()
        .first()
        .copied()
        .unwrap_or(b':');
    ctx.shared.settings().prefixes().record(key, delimiter, op);
}

/// The general `stats` group: memcached 1.6.18's fields, in its order, and no others.
pub fn general(sh: &Shared, out: &mut dyn StatSink) {
    let c = totals(sh);
    let store = sh.store().counters();
    let classes = sh.store().class_stats(sh.clock().now());
    let sum = |f: fn(&crate::store::ClassStats) -> u64| classes.iter().map(f).sum::<u64>();
    let (ru, rs) = rusage();
    let now_unix = sh.clock().to_unix(sh.clock().now());
    let uptime = sh
        .clock()
        .now()
        .saturating_sub(crate::store::exptime::CLOCK_START);
    let curr = sh.conns().current();
    let s = |out: &mut dyn StatSink, k: &str, v: &dyn Display| out.stat(&k, v);
    s(out, "pid", &std::process::id());
    s(out, "uptime", &uptime);
    s(out, "time", &now_unix);
    s(out, "version", &crate::config::PROTOCOL_VERSION);
    s(out, "libevent", &"mio-1");
    s(out, "pointer_size", &(usize::BITS));
    s(out, "rusage_user", &ru);
    s(out, "rusage_system", &rs);
    s(out, "max_connections", &sh.settings().max_conns());
    s(out, "curr_connections", &curr);
    s(out, "total_connections", &sh.conns().total());
    if sh.config().ext.maxconns_fast {
        s(out, "rejected_connections", &sh.conns().rejected());
    }
    s(out, "connection_structures", &(curr + 1));
    let g = crate::stats::sum_gauges(sh.thread_gauges());
    // The connection budget in memcached's units (read buffers and bundles of response objects).
    let obj = POOL_OBJ as u64;
    let bundles = g.response_objs.div_ceil(RESP_PER_OBJ as u64);
    s(out, "response_obj_oom", &c.response_obj_oom);
    s(out, "response_obj_count", &g.response_objs);
    s(out, "response_obj_bytes", &(bundles * obj));
    s(out, "read_buf_count", &g.pool_objs);
    s(out, "read_buf_bytes", &(g.pool_objs * obj));
    s(out, "read_buf_bytes_free", &(g.pool_objs_free * obj));
    s(out, "read_buf_oom", &c.read_buf_oom);
    s(out, "reserved_fds", &5);
    s(out, "cmd_get", &c.cmd_get);
    s(out, "cmd_set", &c.cmd_set);
    s(out, "cmd_flush", &c.cmd_flush);
    s(out, "cmd_touch", &c.cmd_touch);
    s(out, "cmd_meta", &c.cmd_meta);
    s(out, "get_hits", &c.get_hits);
    s(out, "get_misses", &c.get_misses);
    s(out, "get_expired", &c.get_expired);
    s(out, "get_flushed", &c.get_flushed);
    s(out, "delete_misses", &c.delete_misses);
    s(out, "delete_hits", &c.delete_hits);
    s(out, "incr_misses", &c.incr_misses);
    s(out, "incr_hits", &c.incr_hits);
    s(out, "decr_misses", &c.decr_misses);
    s(out, "decr_hits", &c.decr_hits);
    s(out, "cas_misses", &c.cas_misses);
    s(out, "cas_hits", &c.cas_hits);
    s(out, "cas_badval", &c.cas_badval);
    s(out, "touch_hits", &c.touch_hits);
    s(out, "touch_misses", &c.touch_misses);
    s(out, "store_too_large", &c.store_too_large);
    s(out, "store_no_memory", &c.store_no_memory);
    s(out, "auth_cmds", &c.auth_cmds);
    s(out, "auth_errors", &c.auth_errors);
    if sh.settings().idle_timeout() > 0 {
        s(out, "idle_kicks", &c.idle_kicks);
    }
    s(out, "bytes_read", &c.bytes_read);
    s(out, "bytes_written", &c.bytes_written);
    s(out, "limit_maxbytes", &sh.store().memory_limit());
    s(out, "accepting_conns", &u8::from(sh.conns().accepting()));
    s(out, "listen_disabled_num", &sh.conns().listen_disabled());
    s(out, "time_in_listen_disabled_us", &0);
    s(out, "threads", &sh.config().threads);
    s(out, "conn_yields", &c.conn_yields);
    let power = sh.store().shared().hash_power();
    s(out, "hash_power_level", &power);
    s(out, "hash_bytes", &(8u64 << power));
    s(out, "hash_is_expanding", &0);
    if sh.config().ext.slab_reassign {
        s(out, "slab_reassign_rescues", &store.slab_reassign_rescues);
        s(
            out,
            "slab_reassign_chunk_rescues",
            &store.slab_reassign_chunk_rescues,
        );
        s(
            out,
            "slab_reassign_evictions_nomem",
            &store.slab_reassign_evictions,
        );
        s(out, "slab_reassign_inline_reclaim", &0);
        s(out, "slab_reassign_busy_items", &0);
        s(out, "slab_reassign_busy_deletes", &0);
        s(out, "slab_reassign_running", &0);
        s(out, "slabs_moved", &store.slabs_moved);
    }
    // As memcached, while the crawler is enabled (at start or by `lru_crawler enable`).
    if sh.settings().lru_crawler() {
        s(
            out,
            "lru_crawler_running",
            &u8::from(sh.settings().crawl_running()),
        );
        s(out, "lru_crawler_starts", &store.crawler_runs);
    }
    if sh.config().ext.lru_maintainer {
        s(out, "lru_maintainer_juggles", &store.lru_maintainer_juggles);
    }
    s(out, "malloc_fails", &0);
    let log = sh.logger().stats();
    s(out, "log_worker_dropped", &log.worker_dropped);
    s(out, "log_worker_written", &log.worker_written);
    s(out, "log_watcher_skipped", &log.watcher_skipped);
    s(out, "log_watcher_sent", &log.watcher_sent);
    s(out, "log_watchers", &log.watchers);
    if let Some(tls) = sh.tls() {
        if tls.settings().session_cache {
            s(out, "ssl_new_sessions", &c.ssl_new_sessions);
        }
        s(out, "ssl_handshake_errors", &c.ssl_handshake_errors);
        s(
            out,
            "time_since_server_cert_refresh",
            &sh.clock().now().wrapping_sub(tls.refreshed_at()),
        );
    }
    s(out, "unexpected_napi_ids", &0);
    s(out, "round_robin_fallback", &0);
    s(out, "bytes", &store.bytes);
    s(out, "curr_items", &store.curr_items);
    s(out, "total_items", &store.total_items);
    s(out, "slab_global_page_pool", &sh.store().pooled_pages());
    s(out, "expired_unfetched", &sum(|c| c.expired_unfetched));
    s(out, "evicted_unfetched", &sum(|c| c.evicted_unfetched));
    // As memcached, the segment counters only while the LRU maintainer runs.
    let maintainer = sh.config().ext.lru_maintainer;
    if maintainer {
        s(out, "evicted_active", &sum(|c| c.evicted_active));
    }
    s(out, "evictions", &sum(|c| c.evicted));
    s(out, "reclaimed", &sum(|c| c.reclaimed));
    s(out, "crawler_reclaimed", &sum(|c| c.crawler_reclaimed));
    s(
        out,
        "crawler_items_checked",
        &sum(|c| c.crawler_items_checked),
    );
    s(out, "lrutail_reflocked", &sum(|c| c.lrutail_reflocked));
    if maintainer {
        s(out, "moves_to_cold", &sum(|c| c.moves_to_cold));
        s(out, "moves_to_warm", &sum(|c| c.moves_to_warm));
        s(out, "moves_within_lru", &sum(|c| c.moves_within_lru));
        s(out, "direct_reclaims", &sum(|c| c.direct_reclaims));
        s(out, "lru_bumps_dropped", &0);
    }
}

/// `stats ferrocache`: ferrocache's own fields, in a group of their own (memcached's scripts and
/// tests count the lines of `stats`).
pub fn ferrocache(ctx: &Ctx<'_>, out: &mut Vec<u8>) {
    let sh = ctx.shared;
    write_stat(out, "ferrocache_version", env!("CARGO_PKG_VERSION"));
    let (c, g) = (totals(sh), crate::stats::sum_gauges(sh.thread_gauges()));
    for (k, v) in [
        ("shards", sh.store().shard_count() as u64),
        ("pages_used", sh.store().shared().budget.used() as u64),
        ("conn_out_paused", c.conn_out_paused),
        ("conn_out_hard_cap", c.conn_out_hard_cap),
        ("inflight_bytes", g.inflight_bytes),
        ("inflight_oom", c.inflight_oom),
        ("pinned_values", c.pinned_values),
    ] {
        write_stat(out, &format!("ferrocache_{k}"), v);
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

/// `stats settings`, memcached 1.6.18's fields (build-specific ext_/ssl_ ones omitted).
pub fn settings(sh: &Shared, out: &mut dyn StatSink) {
    let c = sh.config();
    let rt = sh.settings();
    let shown = rt.display();
    let (hot_factor, warm_factor) = shown.max_factors();
    let (temp_lru, temporary_ttl) = sh.store().shared().temp_lru();
    let s = |out: &mut dyn StatSink, k: &str, v: &dyn Display| out.stat(&k, v);
    s(out, "maxbytes", &sh.store().memory_limit());
    s(out, "maxconns", &rt.max_conns());
    s(out, "tcpport", &c.port.max(0));
    s(out, "udpport", &c.udp_port);
    s(out, "inter", &c.inter.as_deref().unwrap_or("NULL"));
    s(out, "verbosity", &rt.verbosity());
    s(out, "oldest", &0);
    s(out, "evictions", &if c.evictions { "on" } else { "off" });
    s(
        out,
        "domain_socket",
        &c.unix_socket
            .as_ref()
            .map_or("NULL".to_string(), |p| p.display().to_string()),
    );
    s(out, "umask", &format!("{:o}", c.unix_mask));
    s(out, "shutdown_command", &yes_no(c.shutdown_enabled));
    s(out, "growth_factor", &format!("{:.2}", c.growth_factor));
    s(out, "chunk_size", &c.min_size);
    s(out, "num_threads", &c.threads);
    s(out, "num_threads_per_udp", &c.threads_per_udp());
    s(out, "stat_key_prefix", &c.prefix_delimiter);
    s(
        out,
        "detail_enabled",
        &yes_no(sh.settings().detail_enabled()),
    );
    s(out, "reqs_per_event", &c.reqs_per_event);
    s(out, "cas_enabled", &yes_no(c.cas_enabled));
    s(out, "tcp_backlog", &c.backlog);
    s(out, "binding_protocol", &c.protocol.settings_name());
    s(out, "auth_enabled_sasl", &yes_no(c.sasl));
    s(
        out,
        "auth_enabled_ascii",
        &c.auth_file
            .as_ref()
            .map_or("no".to_string(), |p| p.display().to_string()),
    );
    s(out, "item_size_max", &c.item_size_max);
    s(out, "maxconns_fast", &yes_no(c.ext.maxconns_fast));
    s(out, "hashpower_init", &c.ext.hashpower);
    s(out, "slab_reassign", &yes_no(c.ext.slab_reassign));
    // memcached keeps the configured level even when slab reassignment is off (the store
    // then never moves pages, so it holds 0).
    let automove = if c.ext.slab_reassign {
        sh.store().shared().automove.load(Ordering::Relaxed)
    } else {
        c.ext.slab_automove
    };
    s(out, "slab_automove", &automove);
    s(
        out,
        "slab_automove_ratio",
        &format!("{:.2}", c.ext.slab_automove_ratio),
    );
    s(out, "slab_automove_window", &c.ext.slab_automove_window);
    s(out, "slab_chunk_max", &c.ext.slab_chunk_max);
    s(out, "lru_crawler", &yes_no(rt.lru_crawler()));
    s(out, "lru_crawler_sleep", &shown.lru_crawler_sleep());
    s(out, "lru_crawler_tocrawl", &shown.lru_crawler_tocrawl());
    s(out, "tail_repair_time", &c.ext.tail_repair_time);
    s(out, "flush_enabled", &yes_no(c.flush_enabled));
    s(out, "dump_enabled", &yes_no(c.dump_enabled));
    s(out, "hash_algorithm", &c.ext.hash_algorithm);
    s(out, "lru_maintainer_thread", &yes_no(c.ext.lru_maintainer));
    s(out, "lru_segmented", &yes_no(shown.lru_segmented()));
    s(
        out,
        "hot_lru_pct",
        &sh.store().shared().hot_lru_pct.load(Ordering::Relaxed),
    );
    s(
        out,
        "warm_lru_pct",
        &sh.store().shared().warm_lru_pct.load(Ordering::Relaxed),
    );
    s(out, "hot_max_factor", &format!("{hot_factor:.2}"));
    s(out, "warm_max_factor", &format!("{warm_factor:.2}"));
    s(out, "temp_lru", &yes_no(temp_lru));
    s(out, "temporary_ttl", &temporary_ttl);
    s(out, "idle_timeout", &rt.idle_timeout());
    s(out, "watcher_logbuf_size", &c.ext.watcher_logbuf_size);
    s(out, "worker_logbuf_size", &c.ext.worker_logbuf_size);
    s(out, "read_buf_mem_limit", &c.ext.read_buf_mem_limit);
    s(out, "track_sizes", &yes_no(sizes_enabled(sh)));
    s(out, "inline_ascii_response", &"no");
    s(out, "slab_automove_freeratio", &"0.010");
    // memcached built with TLS (Debian's) shows these with or without -Z.
    let ssl = &c.ext.ssl;
    let path = |p: &Option<std::path::PathBuf>, none: &'static str| {
        p.as_ref()
            .map_or(none.to_string(), |p| p.display().to_string())
    };
    s(out, "ssl_enabled", &yes_no(ssl.enabled));
    s(out, "ssl_chain_cert", &path(&ssl.chain_cert, "(null)"));
    s(out, "ssl_key", &path(&ssl.key, "(null)"));
    s(out, "ssl_verify_mode", &ssl.verify_flags());
    s(out, "ssl_keyformat", &ssl.keyformat);
    s(
        out,
        "ssl_ciphers",
        &ssl.ciphers.as_deref().unwrap_or("NULL"),
    );
    s(out, "ssl_ca_cert", &path(&ssl.ca_cert, "NULL"));
    s(out, "ssl_wbuf_size", &ssl.wbuf_size);
    s(out, "ssl_session_cache", &yes_no(ssl.session_cache));
    s(out, "ssl_kernel_tls", &yes_no(ssl.kernel_tls));
    s(out, "ssl_min_version", &ssl.min_version_name());
    s(out, "num_napi_ids", &"(null)");
    match &c.memory_file {
        Some(p) => s(out, "memory_file", &p.display()),
        None => s(out, "memory_file", &"(null)"),
    }
}

/// `stats items`: per class with items, memcached's field order.
pub fn items(sh: &Shared, out: &mut dyn StatSink) {
    // As memcached, the segment fields only while the LRU maintainer runs.
    let maintainer = sh.config().ext.lru_maintainer;
    let temp_lru = sh.store().shared().temp_lru().0;
    for (i, c) in sh.store().class_stats(sh.clock().now()).iter().enumerate() {
        if c.number() == 0 {
            continue;
        }
        let id = i + 1;
        let mut s = |k: &str, v: u64| out.stat(&format_args!("items:{id}:{k}"), &v);
        s("number", c.number());
        if maintainer {
            s("number_hot", c.number_hot);
            s("number_warm", c.number_warm);
            s("number_cold", c.number_cold);
            if temp_lru {
                s("number_temp", c.number_temp);
            }
            s("age_hot", c.age_hot);
            s("age_warm", c.age_warm);
        }
        s("age", c.age);
        s("mem_requested", c.mem_requested);
        s("evicted", c.evicted);
        s("evicted_nonzero", c.evicted_nonzero);
        s("evicted_time", c.evicted_time);
        s("outofmemory", c.outofmemory);
        s("tailrepairs", 0);
        s("reclaimed", c.reclaimed);
        s("expired_unfetched", c.expired_unfetched);
        s("evicted_unfetched", c.evicted_unfetched);
        if maintainer {
            s("evicted_active", c.evicted_active);
        }
        s("crawler_reclaimed", c.crawler_reclaimed);
        s("crawler_items_checked", c.crawler_items_checked);
        s("lrutail_reflocked", c.lrutail_reflocked);
        if maintainer {
            s("moves_to_cold", c.moves_to_cold);
            s("moves_to_warm", c.moves_to_warm);
            s("moves_within_lru", c.moves_within_lru);
            s("direct_reclaims", c.direct_reclaims);
            s("hits_to_hot", c.hits_to_hot);
            s("hits_to_warm", c.hits_to_warm);
            s("hits_to_cold", c.hits_to_cold);
            s("hits_to_temp", c.hits_to_temp);
        }
    }
}

/// `stats slabs`: per class with pages, then totals.
pub fn slabs(sh: &Shared, out: &mut dyn StatSink) {
    let classes = sh.store().classes();
    let mut active = 0;
    for (i, c) in sh.store().class_stats(sh.clock().now()).iter().enumerate() {
        if c.total_pages == 0 {
            continue;
        }
        active += 1;
        let id = i + 1;
        let per_page = classes.chunks_per_page(i) as u64;
        let total_chunks = c.total_pages * per_page;
        let mut s = |k: &str, v: u64| out.stat(&format_args!("{id}:{k}"), &v);
        s("chunk_size", classes.size(i) as u64);
        s("chunks_per_page", per_page);
        s("total_pages", c.total_pages);
        s("total_chunks", total_chunks);
        s("used_chunks", c.number() + c.body_chunks);
        s("free_chunks", c.free_chunks);
        s("free_chunks_end", 0);
        s("get_hits", c.get_hits);
        s("cmd_set", c.cmd_set);
        s("delete_hits", c.delete_hits);
        s("incr_hits", c.incr_hits);
        s("decr_hits", c.decr_hits);
        s("cas_hits", c.cas_hits);
        s("cas_badval", c.cas_badval);
        s("touch_hits", c.touch_hits);
    }
    out.stat(&"active_slabs", &active);
    out.stat(&"total_malloced", &sh.store().malloced());
}

/// `stats sizes`: item counts per 32-byte size bucket with `-o track_sizes`.
pub fn sizes(ctx: &Ctx<'_>, out: &mut Vec<u8>) {
    let sh = ctx.shared;
    if !sizes_enabled(sh) {
        write_stat(out, "sizes_status", "disabled");
        return;
    }
    // The store keeps the histogram while tracking is on; a toggle racing another may have
    // left it off, so it is started here then (counting the items held now).
    let store = sh.store();
    let buckets = store.sizes().or_else(|| {
        store.track_sizes(true);
        store.sizes()
    });
    for (size, n) in buckets.unwrap_or_default() {
        write_stat(out, &size.to_string(), n);
    }
}

/// `stats conns`: every listener and connection.
pub fn conns(ctx: &Ctx<'_>, out: &mut Vec<u8>) {
    let sh = ctx.shared;
    let now = sh.clock().now();
    sh.conns().for_each(|fd, info| {
        if info.udp {
            let _ = write!(out, "STAT {fd}:UDP UDP\r\n");
            let (addr, state) = match ctx.conn.udp_peer.filter(|_| fd == ctx.conn.id) {
                Some(peer) => {
                    let proto = if peer.is_ipv4() { "udp" } else { "udp6" };
                    let _ = write!(out, "STAT {fd}:addr {proto}:{peer}\r\n");
                    let _ = write!(out, "STAT {fd}:listen_addr {}\r\n", info.addr);
                    (None, "conn_parse_cmd")
                }
                None => (Some(&info.addr), "conn_read"),
            };
            if let Some(a) = addr {
                let _ = write!(out, "STAT {fd}:addr {a}\r\n");
            }
            let _ = write!(out, "STAT {fd}:state {state}\r\n");
            let last = info.last_cmd.load(Ordering::Relaxed);
            let _ = write!(
                out,
                "STAT {fd}:secs_since_last_cmd {}\r\n",
                now.saturating_sub(last)
            );
            return;
        }
        let _ = write!(out, "STAT {fd}:addr {}\r\n", info.addr);
        let state = match &info.listen_addr {
            Some(l) => {
                let _ = write!(out, "STAT {fd}:listen_addr {l}\r\n");
                if fd == ctx.conn.id {
                    "conn_parse_cmd"
                } else {
                    Phase::from_u8(info.phase.load(Ordering::Relaxed)).name()
                }
            }
            None => "conn_listening",
        };
        let _ = write!(out, "STAT {fd}:state {state}\r\n");
        let last = info.last_cmd.load(Ordering::Relaxed);
        let _ = write!(
            out,
            "STAT {fd}:secs_since_last_cmd {}\r\n",
            now.saturating_sub(last)
        );
    });
}

fn cachedump(args: Result<Cachedump, &'static str>, ctx: &Ctx<'_>, out: &mut Vec<u8>) {
    let sh = ctx.shared;
    if !sh.config().dump_enabled {
        ascii::write_line(out, "CLIENT_ERROR stats cachedump not allowed");
        return;
    }
    let Cachedump { class: id, limit } = match args {
        Ok(a) => a,
        Err(msg) => {
            ascii::write_line(out, msg);
            return;
        }
    };
    // The class's pages only, and no further than the limit or memcached's 2 MB of lines.
    let Some(class) = (id as usize).checked_sub(1).filter(|&c| c < 64) else {
        out.extend_from_slice(b"END\r\n");
        return;
    };
    let mut n = 0u32;
    let started = sh.clock().started_unix();
    let stop = out.len() + (2 << 20);
    let mut pos = crate::store::WalkPos::default();
    sh.store()
        .walk_items(&mut pos, sh.clock().now(), 1 << class, |v| {
            if (limit != 0 && n >= limit) || out.len() >= stop {
                return false;
            }
            n += 1;
            let exp = if v.exptime == 0 {
                0
            } else {
                started + i64::from(v.exptime)
            };
            out.extend_from_slice(b"ITEM ");
            out.extend_from_slice(v.key);
            let _ = write!(out, " [{} b; {} s]\r\n", v.value.len(), exp);
            true
        });
    out.extend_from_slice(b"END\r\n");
}
