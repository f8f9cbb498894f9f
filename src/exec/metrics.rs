//! Owns: what `GET /metrics` answers — one `Snapshot` of the `stats` groups (general, settings,
//! items, slabs: the very fields `stats` writes, from the same functions), the latency
//! histograms and the cluster state, rendered in Prometheus' text format (0.0.4) under
//! prometheus/memcached_exporter's metric names and labels, plus `ferrocache_*` metrics no
//! exporter has (per-command latency histograms, the cluster); and which histogram a request
//! counts in (`text_kind`, `binary_kind`).
//! Does not: speak HTTP or own a socket (see `protocol::http`, `server::metrics`).
//! Long because: the exporter's mapping is written out as tables, one row per metric, and its
//! tests check the rendering row by row.
//!
//! The exporter (pkg/exporter/exporter.go) maps `stats` fields to metrics and emits a metric only
//! when its field is present; `MAP` below is that mapping, so a setting that hides a field from
//! `stats` hides its metric too, as when the exporter scrapes memcached. Help texts name the
//! `stats` field a metric comes from. Types follow the exporter's, except that its few counters
//! without a `_total` suffix (uptime, evicted time, memory requested, LRU moves per class) are
//! typed gauges so `promtool check metrics` finds nothing to lint; names and values are the
//! exporter's.

use std::collections::HashMap;
use std::fmt::Write;

use super::stats::{self, Fields};
use crate::protocol::ascii::{Command, StoreCmd};
use crate::protocol::binary::op;
use crate::state::Shared;
use crate::stats::{CmdKind, LatencySnapshot, LATENCY_BOUNDS_NS};

/// The latency histogram a text request counts in.
pub fn text_kind(cmd: &Command<'_>) -> CmdKind {
    match cmd {
        Command::Get { .. } => CmdKind::Get,
        Command::Store {
            cmd: StoreCmd::Cas, ..
        } => CmdKind::Cas,
        Command::Store { .. } => CmdKind::Set,
        Command::Delete { .. } => CmdKind::Delete,
        Command::Arith { .. } => CmdKind::Arith,
        Command::Touch { .. } => CmdKind::Touch,
        Command::FlushAll { .. } => CmdKind::Flush,
        Command::Meta { tokens, .. } => match tokens.get(0) {
            b"mg" => CmdKind::Get,
            b"ms" => CmdKind::Set,
            b"md" => CmdKind::Delete,
            b"ma" => CmdKind::Arith,
            _ => CmdKind::Other,
        },
        _ => CmdKind::Other,
    }
}

/// The latency histogram a binary request counts in.
pub fn binary_kind(opcode: u8) -> CmdKind {
    match opcode {
        op::GET | op::GETQ | op::GETK | op::GETKQ => CmdKind::Get,
        op::SET
        | op::SETQ
        | op::ADD
        | op::ADDQ
        | op::REPLACE
        | op::REPLACEQ
        | op::APPEND
        | op::APPENDQ
        | op::PREPEND
        | op::PREPENDQ => CmdKind::Set,
        op::DELETE | op::DELETEQ => CmdKind::Delete,
        op::INCREMENT | op::INCREMENTQ | op::DECREMENT | op::DECREMENTQ => CmdKind::Arith,
        op::TOUCH | op::GAT | op::GATQ | op::GATK | op::GATKQ => CmdKind::Touch,
        op::FLUSH | op::FLUSHQ => CmdKind::Flush,
        _ => CmdKind::Other,
    }
}

/// Everything one scrape reports, taken at once.
#[derive(Debug)]
pub struct Snapshot {
    pub general: Fields,
    pub settings: Fields,
    pub items: Fields,
    pub slabs: Fields,
    pub latency: LatencySnapshot,
    /// `stats cluster`'s fields, when Auto Discovery is on.
    pub cluster: Option<Vec<(String, String)>>,
}

impl Snapshot {
    pub fn take(sh: &Shared) -> Snapshot {
        let mut snap = Snapshot {
            general: Fields::default(),
            settings: Fields::default(),
            items: Fields::default(),
            slabs: Fields::default(),
            latency: LatencySnapshot::default(),
            cluster: None,
        };
        stats::general(sh, &mut snap.general);
        stats::settings(sh, &mut snap.settings);
        stats::items(sh, &mut snap.items);
        stats::slabs(sh, &mut snap.slabs);
        for l in sh.thread_latency() {
            snap.latency.add(&l.snapshot());
        }
        if sh.cluster().enabled() {
            let mut c: Vec<(String, String)> = sh
                .cluster()
                .stats()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
            c.extend(sh.cluster().health_stats());
            snap.cluster = Some(c);
        }
        snap
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
    Counter,
    Gauge,
}

use Type::{Counter, Gauge};

/// The exporter's mapping of general `stats` fields: (field, metric, type).
const GENERAL: &[(&str, &str, Type)] = &[
    ("uptime", "uptime_seconds", Gauge),
    ("time", "time_seconds", Gauge),
    ("rusage_user", "process_user_cpu_seconds_total", Counter),
    ("rusage_system", "process_system_cpu_seconds_total", Counter),
    ("bytes", "current_bytes", Gauge),
    ("limit_maxbytes", "limit_bytes", Gauge),
    ("curr_items", "current_items", Gauge),
    ("total_items", "items_total", Counter),
    ("bytes_read", "read_bytes_total", Counter),
    ("bytes_written", "written_bytes_total", Counter),
    ("curr_connections", "current_connections", Gauge),
    ("total_connections", "connections_total", Counter),
    (
        "rejected_connections",
        "connections_rejected_total",
        Counter,
    ),
    ("conn_yields", "connections_yielded_total", Counter),
    (
        "listen_disabled_num",
        "connections_listener_disabled_total",
        Counter,
    ),
    ("evictions", "items_evicted_total", Counter),
    ("reclaimed", "items_reclaimed_total", Counter),
    ("store_too_large", "item_too_large_total", Counter),
    ("store_no_memory", "item_no_memory_total", Counter),
    ("lru_crawler_starts", "lru_crawler_starts_total", Counter),
    ("direct_reclaims", "direct_reclaims_total", Counter),
    (
        "crawler_items_checked",
        "lru_crawler_items_checked_total",
        Counter,
    ),
    ("crawler_reclaimed", "lru_crawler_reclaimed_total", Counter),
    ("moves_to_cold", "lru_crawler_moves_to_cold_total", Counter),
    ("moves_to_warm", "lru_crawler_moves_to_warm_total", Counter),
    (
        "moves_within_lru",
        "lru_crawler_moves_within_lru_total",
        Counter,
    ),
    ("total_malloced", "malloced_bytes", Gauge),
    ("accepting_conns", "accepting_connections", Gauge),
];

/// `stats settings` fields, reported only while `lru_crawler` is `yes` (as the exporter does),
/// but `maxconns`: (field, metric).
const SETTINGS: &[(&str, &str)] = &[
    ("lru_crawler", "lru_crawler_enabled"),
    ("lru_crawler_sleep", "lru_crawler_sleep"),
    ("lru_crawler_tocrawl", "lru_crawler_to_crawl"),
    ("lru_maintainer_thread", "lru_crawler_maintainer_thread"),
    ("hot_lru_pct", "lru_crawler_hot_percent"),
    ("warm_lru_pct", "lru_crawler_warm_percent"),
    ("hot_max_factor", "lru_crawler_hot_max_factor"),
    ("warm_max_factor", "lru_crawler_warm_max_factor"),
];

/// `stats items` fields per class: (field, metric, type).
const ITEMS: &[(&str, &str, Type)] = &[
    ("number", "slab_current_items", Gauge),
    ("age", "slab_items_age_seconds", Gauge),
    (
        "crawler_reclaimed",
        "slab_items_crawler_reclaimed_total",
        Counter,
    ),
    ("evicted", "slab_items_evicted_total", Counter),
    (
        "evicted_nonzero",
        "slab_items_evicted_nonzero_total",
        Counter,
    ),
    ("evicted_time", "slab_items_evicted_time_seconds", Gauge),
    (
        "evicted_unfetched",
        "slab_items_evicted_unfetched_total",
        Counter,
    ),
    (
        "expired_unfetched",
        "slab_items_expired_unfetched_total",
        Counter,
    ),
    ("outofmemory", "slab_items_outofmemory_total", Counter),
    ("reclaimed", "slab_items_reclaimed_total", Counter),
    ("tailrepairs", "slab_items_tailrepairs_total", Counter),
    ("mem_requested", "slab_mem_requested_bytes", Gauge),
    ("moves_to_cold", "slab_items_moves_to_cold", Gauge),
    ("moves_to_warm", "slab_items_moves_to_warm", Gauge),
    ("moves_within_lru", "slab_items_moves_within_lru", Gauge),
    ("number_hot", "slab_hot_items", Gauge),
    ("number_warm", "slab_warm_items", Gauge),
    ("number_cold", "slab_cold_items", Gauge),
    ("number_temp", "slab_temporary_items", Gauge),
    ("age_hot", "slab_hot_age_seconds", Gauge),
    ("age_warm", "slab_warm_age_seconds", Gauge),
];

/// `stats items` hit counters per LRU: (field, `lru` label).
const LRU_HITS: &[(&str, &str)] = &[
    ("hits_to_hot", "hot"),
    ("hits_to_warm", "warm"),
    ("hits_to_cold", "cold"),
    ("hits_to_temp", "temporary"),
];

/// `stats slabs` gauges per class: (field, metric).
const SLABS: &[(&str, &str)] = &[
    ("chunk_size", "slab_chunk_size_bytes"),
    ("chunks_per_page", "slab_chunks_per_page"),
    ("total_pages", "slab_current_pages"),
    ("total_chunks", "slab_current_chunks"),
    ("used_chunks", "slab_chunks_used"),
    ("free_chunks", "slab_chunks_free"),
    ("free_chunks_end", "slab_chunks_free_end"),
];

/// The commands the exporter reports hits (and, in the general group, misses) of.
const COMMANDS: [&str; 6] = ["get", "delete", "incr", "decr", "cas", "touch"];

/// `stats cluster` fields: (field, metric, type).
const CLUSTER: &[(&str, &str, Type)] = &[
    ("cluster_version", "ferrocache_cluster_version", Gauge),
    ("cluster_nodes", "ferrocache_cluster_nodes", Gauge),
    ("cluster_pushes", "ferrocache_cluster_pushes_total", Counter),
    (
        "cluster_push_errors",
        "ferrocache_cluster_push_errors_total",
        Counter,
    ),
    (
        "cluster_reload_errors",
        "ferrocache_cluster_reload_errors_total",
        Counter,
    ),
    (
        "cluster_supervisor_events",
        "ferrocache_cluster_supervisor_events_total",
        Counter,
    ),
    (
        "cluster_supervisor_replacements",
        "ferrocache_cluster_supervisor_replacements_total",
        Counter,
    ),
    (
        "cluster_health_checks",
        "ferrocache_cluster_health_checks_total",
        Counter,
    ),
];

/// One metric family: help, type, and samples as (labels, value).
type Family = (String, Type, Vec<(String, String)>);

/// Metric families in order of first appearance, each with its samples.
#[derive(Default)]
struct Families {
    order: Vec<String>,
    by_name: HashMap<String, Family>,
}

impl Families {
    fn add(&mut self, name: &str, help: &str, t: Type, labels: &str, value: f64) {
        let entry = self.by_name.entry(name.to_string()).or_insert_with(|| {
            self.order.push(name.to_string());
            (help.to_string(), t, Vec::new())
        });
        entry.2.push((labels.to_string(), number(value)));
    }

    fn render(&self, out: &mut String) {
        for name in &self.order {
            let (help, t, samples) = &self.by_name[name];
            let t = match t {
                Counter => "counter",
                Gauge => "gauge",
            };
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {t}");
            for (labels, v) in samples {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        }
    }
}

/// A sample value as Prometheus reads it (integers without a fraction).
fn number(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else if v.is_nan() {
        "NaN".into()
    } else if v > 0.0 {
        "+Inf".into()
    } else {
        "-Inf".into()
    }
}

/// A label value, escaped as the text format wants.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A `stats` value as a number: integers, decimals, `yes`/`no`, and timevals (`s.us`).
fn value(v: &str) -> Option<f64> {
    match v {
        "yes" => Some(1.0),
        "no" => Some(0.0),
        _ => v.parse().ok(),
    }
}

fn map(f: &Fields) -> HashMap<&str, &str> {
    f.0.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Per class: `PREFIX:ID:field` (or `ID:field`) fields grouped by class id, in class order.
fn per_class<'a>(f: &'a Fields, prefix: &str) -> Vec<(u32, HashMap<&'a str, &'a str>)> {
    let mut out: Vec<(u32, HashMap<&str, &str>)> = Vec::new();
    for (k, v) in &f.0 {
        let Some(rest) = k.strip_prefix(prefix) else {
            continue;
        };
        let Some((id, field)) = rest.split_once(':') else {
            continue;
        };
        let Ok(id) = id.parse::<u32>() else { continue };
        match out.last_mut() {
            Some((last, m)) if *last == id => {
                m.insert(field, v);
            }
            _ => out.push((id, HashMap::from([(field, v.as_str())]))),
        }
    }
    out
}

fn help(field: &str, group: &str) -> String {
    format!("memcached `stats{group}` field {field}.")
}

/// `/metrics`' body for `snap`.
pub fn render(snap: &Snapshot) -> String {
    let mut fam = Families::default();
    // The exporter's client reads `stats slabs`' totals (total_malloced) with the general group.
    let mut g = map(&snap.general);
    g.extend(
        snap.slabs
            .0
            .iter()
            .filter(|(k, _)| !k.contains(':'))
            .map(|(k, v)| (k.as_str(), v.as_str())),
    );
    let m = |n: &str| format!("memcached_{n}");
    fam.add(
        "memcached_up",
        "Could the memcached server be reached.",
        Gauge,
        "",
        1.0,
    );
    if let Some(v) = g.get("version") {
        fam.add(
            "memcached_version",
            "The version of this memcached server.",
            Gauge,
            &format!("{{version=\"{}\"}}", escape(v)),
            1.0,
        );
    }
    let cmds = "memcached_commands_total";
    let cmds_help =
        "Requests by command and status (memcached `stats` *_hits, *_misses, cmd_set, cmd_flush).";
    let num = |f: &HashMap<&str, &str>, k: &str| f.get(k).and_then(|v| value(v));
    for c in COMMANDS {
        for (suffix, status) in [("hits", "hit"), ("misses", "miss")] {
            if let Some(v) = num(&g, &format!("{c}_{suffix}")) {
                let labels = format!("{{command=\"{c}\",status=\"{status}\"}}");
                fam.add(cmds, cmds_help, Counter, &labels, v);
            }
        }
    }
    if let Some(v) = num(&g, "cas_badval") {
        let labels = "{command=\"cas\",status=\"badval\"}";
        fam.add(cmds, cmds_help, Counter, labels, v);
    }
    if let Some(v) = num(&g, "cmd_flush") {
        let labels = "{command=\"flush\",status=\"hit\"}";
        fam.add(cmds, cmds_help, Counter, labels, v);
    }
    // memcached counts cas commands in cmd_set too; the exporter takes them out.
    if let (Some(set), Some(a), Some(b), Some(c)) = (
        num(&g, "cmd_set"),
        num(&g, "cas_misses"),
        num(&g, "cas_hits"),
        num(&g, "cas_badval"),
    ) {
        let labels = "{command=\"set\",status=\"hit\"}";
        fam.add(cmds, cmds_help, Counter, labels, set - a - b - c);
    }
    for (field, name, t) in GENERAL {
        if let Some(v) = num(&g, field) {
            fam.add(&m(name), &help(field, ""), *t, "", v);
        }
    }
    let s = map(&snap.settings);
    if let Some(v) = num(&s, "maxconns") {
        fam.add(
            "memcached_max_connections",
            &help("maxconns", " settings"),
            Gauge,
            "",
            v,
        );
    }
    if s.get("lru_crawler") == Some(&"yes") {
        for (field, name) in SETTINGS {
            if let Some(v) = num(&s, field) {
                fam.add(&m(name), &help(field, " settings"), Gauge, "", v);
            }
        }
    }
    for (id, f) in per_class(&snap.items, "items:") {
        let slab = format!("{{slab=\"{id}\"}}");
        for (field, name, t) in ITEMS {
            if let Some(v) = num(&f, field) {
                fam.add(&m(name), &help(field, " items"), *t, &slab, v);
            }
        }
        for (field, lru) in LRU_HITS {
            if let Some(v) = num(&f, field) {
                let labels = format!("{{slab=\"{id}\",lru=\"{lru}\"}}");
                let name = "memcached_slab_lru_hits_total";
                fam.add(name, &help(field, " items"), Counter, &labels, v);
            }
        }
    }
    let slab_cmds = "memcached_slab_commands_total";
    let slab_cmds_help = "Requests by class, command and status (memcached `stats slabs`).";
    for (id, f) in per_class(&snap.slabs, "") {
        let labels =
            |c: &str, st: &str| format!("{{slab=\"{id}\",command=\"{c}\",status=\"{st}\"}}");
        for c in COMMANDS {
            if let Some(v) = num(&f, &format!("{c}_hits")) {
                fam.add(slab_cmds, slab_cmds_help, Counter, &labels(c, "hit"), v);
            }
        }
        if let Some(v) = num(&f, "cas_badval") {
            fam.add(
                slab_cmds,
                slab_cmds_help,
                Counter,
                &labels("cas", "badval"),
                v,
            );
        }
        if let (Some(set), Some(a), Some(b)) = (
            num(&f, "cmd_set"),
            num(&f, "cas_hits"),
            num(&f, "cas_badval"),
        ) {
            fam.add(
                slab_cmds,
                slab_cmds_help,
                Counter,
                &labels("set", "hit"),
                set - a - b,
            );
        }
        let slab = format!("{{slab=\"{id}\"}}");
        for (field, name) in SLABS {
            if let Some(v) = num(&f, field) {
                fam.add(&m(name), &help(field, " slabs"), Gauge, &slab, v);
            }
        }
    }
    let mut out = String::with_capacity(64 * 1024);
    fam.render(&mut out);
    latency(&snap.latency, &mut out);
    cluster(snap.cluster.as_deref(), &mut out);
    out
}

/// `ferrocache_command_duration_seconds`: one histogram per command kind.
fn latency(l: &LatencySnapshot, out: &mut String) {
    let name = "ferrocache_command_duration_seconds";
    let _ = writeln!(
        out,
        "# HELP {name} Time from a parsed request to its reply, by command (measured with --metrics-listen).\n# TYPE {name} histogram"
    );
    for kind in CmdKind::ALL {
        let k = kind as usize;
        let c = kind.label();
        let mut total = 0;
        for (b, n) in l.buckets[k].iter().enumerate() {
            total += n;
            let le = match LATENCY_BOUNDS_NS.get(b) {
                Some(ns) => number(*ns as f64 / 1e9),
                None => "+Inf".into(),
            };
            let _ = writeln!(out, "{name}_bucket{{command=\"{c}\",le=\"{le}\"}} {total}");
        }
        let sum = number(l.sum_ns[k] as f64 / 1e9);
        let _ = writeln!(out, "{name}_sum{{command=\"{c}\"}} {sum}");
        let _ = writeln!(out, "{name}_count{{command=\"{c}\"}} {total}");
    }
}

/// The cluster: `ferrocache_cluster_enabled`, then `stats cluster`'s numbers and each peer's
/// reachability (`ferrocache_cluster_peer_up`, once the health check has probed it).
fn cluster(fields: Option<&[(String, String)]>, out: &mut String) {
    let mut fam = Families::default();
    fam.add(
        "ferrocache_cluster_enabled",
        "Auto Discovery is on (1) or off (0).",
        Gauge,
        "",
        if fields.is_some() { 1.0 } else { 0.0 },
    );
    let fields = fields.unwrap_or_default();
    for (k, v) in fields {
        if let Some((_, name, t)) = CLUSTER.iter().find(|(f, _, _)| f == k) {
            if let Some(v) = value(v) {
                fam.add(name, &help(k, " cluster"), *t, "", v);
            }
        } else if let Some(peer) = k.strip_prefix("cluster_peer:") {
            let up = match v.as_str() {
                "up" => 1.0,
                "down" => 0.0,
                _ => continue,
            };
            fam.add(
                "ferrocache_cluster_peer_up",
                "A cluster member answered the last health probe (1) or not (0).",
                Gauge,
                &format!("{{peer=\"{}\"}}", escape(peer)),
                up,
            );
        }
    }
    fam.render(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Fields {
        Fields(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    fn snap() -> Snapshot {
        Snapshot {
            general: fields(&[
                ("version", "1.6.18"),
                ("rusage_user", "1.500000"),
                ("cmd_set", "10"),
                ("cas_misses", "1"),
                ("cas_hits", "2"),
                ("cas_badval", "3"),
                ("get_hits", "7"),
                ("get_misses", "8"),
                ("curr_items", "4"),
            ]),
            settings: fields(&[
                ("maxconns", "1024"),
                ("lru_crawler", "no"),
                ("hot_lru_pct", "20"),
            ]),
            items: fields(&[
                ("items:1:number", "3"),
                ("items:1:hits_to_hot", "5"),
                ("items:12:number", "1"),
            ]),
            slabs: fields(&[
                ("1:chunk_size", "96"),
                ("1:cmd_set", "9"),
                ("1:cas_hits", "1"),
                ("1:cas_badval", "2"),
                ("active_slabs", "1"),
                ("total_malloced", "1048576"),
            ]),
            latency: LatencySnapshot::default(),
            cluster: None,
        }
    }

    #[test]
    fn maps_fields_to_the_exporters_names() {
        let text = render(&snap());
        for line in [
            "memcached_up 1",
            "memcached_version{version=\"1.6.18\"} 1",
            "memcached_process_user_cpu_seconds_total 1.5",
            "memcached_commands_total{command=\"set\",status=\"hit\"} 4",
            "memcached_commands_total{command=\"get\",status=\"miss\"} 8",
            "memcached_commands_total{command=\"cas\",status=\"badval\"} 3",
            "memcached_current_items 4",
            "memcached_max_connections 1024",
            "memcached_slab_current_items{slab=\"12\"} 1",
            "memcached_slab_lru_hits_total{slab=\"1\",lru=\"hot\"} 5",
            "memcached_slab_chunk_size_bytes{slab=\"1\"} 96",
            "memcached_slab_commands_total{slab=\"1\",command=\"set\",status=\"hit\"} 6",
            "ferrocache_cluster_enabled 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        // Settings but maxconns only while the crawler is on, as the exporter reports them.
        assert!(!text.contains("memcached_lru_crawler_hot_percent"));
        // `stats slabs`' totals: total_malloced is the exporter's malloced_bytes.
        assert!(text
            .lines()
            .any(|l| l == "memcached_malloced_bytes 1048576"));
        assert!(!text.contains("active_slabs"));
    }

    #[test]
    fn each_family_is_described_once_and_its_samples_are_together() {
        let text = render(&snap());
        let mut seen = std::collections::HashSet::new();
        let mut last = String::new();
        for l in text.lines().filter(|l| !l.starts_with('#')) {
            let name = l.split(['{', ' ']).next().unwrap();
            let family = name
                .trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count")
                .to_string();
            if family != last {
                assert!(seen.insert(family.clone()), "{family} split:\n{text}");
                last = family;
            }
        }
        assert_eq!(
            text.matches("# TYPE memcached_slab_current_items ").count(),
            1
        );
    }

    #[test]
    fn histograms_are_cumulative() {
        let l = crate::stats::Latency::default();
        l.record(CmdKind::Get, 500);
        l.record(CmdKind::Get, 3_000);
        l.record(CmdKind::Get, 5_000_000_000);
        let mut s = snap();
        s.latency = l.snapshot();
        let text = render(&s);
        let h = "ferrocache_command_duration_seconds";
        for line in [
            format!("{h}_bucket{{command=\"get\",le=\"0.000001\"}} 1"),
            format!("{h}_bucket{{command=\"get\",le=\"0.0000025\"}} 1"),
            format!("{h}_bucket{{command=\"get\",le=\"0.000005\"}} 2"),
            format!("{h}_bucket{{command=\"get\",le=\"1\"}} 2"),
            format!("{h}_bucket{{command=\"get\",le=\"+Inf\"}} 3"),
            format!("{h}_count{{command=\"get\"}} 3"),
            format!("{h}_count{{command=\"set\"}} 0"),
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
    }

    #[test]
    fn cluster_fields_and_peers() {
        let mut s = snap();
        s.cluster = Some(vec![
            ("cluster_version".into(), "3".into()),
            ("cluster_source".into(), "flags".into()),
            ("cluster_pushes".into(), "2".into()),
            ("cluster_peer:10.0.0.1:11211".into(), "up".into()),
            ("cluster_peer:10.0.0.2:11211".into(), "down".into()),
            ("cluster_peer:10.0.0.3:11211".into(), "unknown".into()),
        ]);
        let text = render(&s);
        for line in [
            "ferrocache_cluster_enabled 1",
            "ferrocache_cluster_version 3",
            "ferrocache_cluster_pushes_total 2",
            "ferrocache_cluster_peer_up{peer=\"10.0.0.1:11211\"} 1",
            "ferrocache_cluster_peer_up{peer=\"10.0.0.2:11211\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing:\n{text}");
        }
        assert!(!text.contains("10.0.0.3"));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
