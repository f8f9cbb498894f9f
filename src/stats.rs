//! Owns: request counters, the connection budget's gauges, per-command latency histograms (and the per-key-prefix counters of `stats detail`). Each worker thread owns one `ThreadStats` and is its only writer
//! (relaxed loads and stores, no read-modify-write contention); `stats` sums them all.
//! Does not: format replies (see `exec::stats`).

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($name:ident, $snap:ident { $($f:ident),* $(,)? }) => {
        /// Per-thread counters (single writer).
        #[derive(Debug, Default)]
        pub struct $name { $(pub $f: AtomicU64,)* }

        /// A plain copy of counters, summable.
        #[derive(Debug, Default, Clone, Copy)]
        pub struct $snap { $(pub $f: u64,)* }

        impl $name {
            pub fn snapshot(&self) -> $snap {
                $snap { $($f: self.$f.load(Ordering::Relaxed),)* }
            }
            pub fn reset(&self) {
                $(self.$f.store(0, Ordering::Relaxed);)*
            }
        }

        impl $snap {
            pub fn add(&mut self, o: &$snap) {
                $(self.$f += o.$f;)*
            }
        }
    };
}

counters!(
    ThreadStats,
    Counters {
        cmd_get,
        cmd_set,
        cmd_flush,
        cmd_touch,
        cmd_meta,
        get_hits,
        get_misses,
        get_expired,
        get_flushed,
        delete_misses,
        delete_hits,
        incr_misses,
        incr_hits,
        decr_misses,
        decr_hits,
        cas_misses,
        cas_hits,
        cas_badval,
        touch_hits,
        touch_misses,
        store_too_large,
        store_no_memory,
        auth_cmds,
        auth_errors,
        bytes_read,
        bytes_written,
        conn_yields,
        idle_kicks,
        // The connection budget (`server::budget`): memcached's two limit hits, then ferrocache's.
        response_obj_oom,
        read_buf_oom,
        conn_out_paused,
        conn_out_hard_cap,
        inflight_oom,
        // Values of gets sent from the store rather than copied (`server::pinned`).
        pinned_values,
        // TLS (`-Z`): failed handshakes, and full (not resumed) handshakes with
        // `ssl_session_cache`.
        ssl_handshake_errors,
        ssl_new_sessions,
    }
);

counters!(
    ThreadGauges,
    Gauges {
        // Response objects whose bytes are not written yet; the pool's objects in memcached's
        // units (read buffers and response bundles in use, plus those kept free); bytes of
        // requests larger than a pooled buffer held while being received.
        response_objs,
        pool_objs,
        pool_objs_free,
        inflight_bytes,
    }
);

/// The connection budget's unit, memcached's `READ_BUFFER_SIZE`: one read buffer, or one bundle
/// of response objects.
pub const POOL_OBJ: usize = 16 * 1024;
/// Response objects per bundle in memcached 1.6.18 on 64-bit
/// (`(READ_BUFFER_SIZE - sizeof(mc_resp_bundle)) / sizeof(mc_resp)`).
pub const RESP_PER_OBJ: usize = 13;

/// Every worker's gauges, summed (what their connections hold now).
pub fn sum_gauges(all: &[ThreadGauges]) -> Gauges {
    let mut g = Gauges::default();
    for t in all {
        g.add(&t.snapshot());
    }
    g
}

/// Sets a gauge this thread owns (`stats reset` leaves gauges alone).
#[inline]
pub fn set(g: &AtomicU64, v: u64) {
    g.store(v, Ordering::Relaxed);
}

/// Adds `n` to a counter this thread owns.
#[inline]
pub fn add(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

/// Adds one to a counter this thread owns.
#[inline]
pub fn bump(c: &AtomicU64) {
    add(c, 1)
}

// ----- per-command latency histograms (`/metrics`) -------------------------------------------

/// What a request is counted as in the latency histograms (its `command` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmdKind {
    Get,
    Set,
    Cas,
    Delete,
    Arith,
    Touch,
    Flush,
    Other,
}

impl CmdKind {
    pub const ALL: [CmdKind; 8] = [
        CmdKind::Get,
        CmdKind::Set,
        CmdKind::Cas,
        CmdKind::Delete,
        CmdKind::Arith,
        CmdKind::Touch,
        CmdKind::Flush,
        CmdKind::Other,
    ];

    /// The `command` label.
    pub fn label(self) -> &'static str {
        match self {
            CmdKind::Get => "get",
            CmdKind::Set => "set",
            CmdKind::Cas => "cas",
            CmdKind::Delete => "delete",
            CmdKind::Arith => "arith",
            CmdKind::Touch => "touch",
            CmdKind::Flush => "flush",
            CmdKind::Other => "other",
        }
    }
}

/// The histograms' upper bounds in nanoseconds (a last, unbounded bucket follows).
pub const LATENCY_BOUNDS_NS: [u64; 14] = [
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    10_000_000,
    100_000_000,
    1_000_000_000,
];
const BUCKETS: usize = LATENCY_BOUNDS_NS.len() + 1;

/// One worker's latency histograms, one per `CmdKind` (single writer; never reset, as
/// Prometheus counters are not).
#[derive(Debug, Default)]
pub struct Latency {
    /// Per kind: requests per bucket (not cumulative), then the sum of nanoseconds.
    per_kind: [[AtomicU64; BUCKETS + 1]; CmdKind::ALL.len()],
}

/// A plain copy of histograms, summable: per kind, per-bucket counts and the sum in ns.
#[derive(Debug, Default, Clone, Copy)]
pub struct LatencySnapshot {
    pub buckets: [[u64; BUCKETS]; CmdKind::ALL.len()],
    pub sum_ns: [u64; CmdKind::ALL.len()],
}

impl Latency {
    /// Counts one request of `kind` that took `ns` nanoseconds (by its worker only).
    #[inline]
    pub fn record(&self, kind: CmdKind, ns: u64) {
        let b = LATENCY_BOUNDS_NS.partition_point(|&bound| bound < ns);
        let h = &self.per_kind[kind as usize];
        bump(&h[b]);
        add(&h[BUCKETS], ns);
    }

    pub fn snapshot(&self) -> LatencySnapshot {
        let mut s = LatencySnapshot::default();
        for (k, h) in self.per_kind.iter().enumerate() {
            for (b, c) in h[..BUCKETS].iter().enumerate() {
                s.buckets[k][b] = c.load(Ordering::Relaxed);
            }
            s.sum_ns[k] = h[BUCKETS].load(Ordering::Relaxed);
        }
        s
    }
}

impl LatencySnapshot {
    pub fn add(&mut self, o: &LatencySnapshot) {
        for k in 0..CmdKind::ALL.len() {
            for b in 0..BUCKETS {
                self.buckets[k][b] += o.buckets[k][b];
            }
            self.sum_ns[k] += o.sum_ns[k];
        }
    }
}

// ----- `stats detail` prefix counters ------------------------------------------------------

/// memcached's `PREFIX_HASH_SIZE` buckets and `MAX_PREFIX_COUNT` limit.
const PREFIX_BUCKETS: usize = 256;
const MAX_PREFIXES: usize = 1 << 16;

/// Per-prefix counters of `stats detail dump`, in memcached's table layout (so the dump lists
/// prefixes in the same order): bucket = murmur3(prefix) % 256, newest prefix first in a bucket.
#[derive(Debug, Default)]
pub struct PrefixTable {
    buckets: Vec<Vec<PrefixStats>>,
    count: usize,
}

#[derive(Debug)]
struct PrefixStats {
    prefix: Vec<u8>,
    gets: u64,
    hits: u64,
    sets: u64,
    deletes: u64,
}

impl PrefixTable {
    pub fn clear(&mut self) {
        self.buckets.clear();
        self.count = 0;
    }

    /// `stats detail dump`: bucket by bucket, newest prefix first (memcached links a new prefix at
    /// the head of its bucket), then `END`.
    pub fn dump(&self, out: &mut Vec<u8>) {
        use std::io::Write;
        for bucket in self.buckets.iter() {
            for p in bucket.iter().rev() {
                out.extend_from_slice(b"PREFIX ");
                out.extend_from_slice(&p.prefix);
                let _ = write!(
                    out,
                    " get {} hit {} set {} del {}\r\n",
                    p.gets, p.hits, p.sets, p.deletes
                );
            }
        }
        out.extend_from_slice(b"END\r\n");
    }

    /// Counts `op` for the prefix of `key` (keys without the delimiter are not counted).
    pub fn record(&mut self, key: &[u8], delimiter: u8, op: PrefixOp) {
        if let Some(p) = self.find(key, delimiter) {
            match op {
                PrefixOp::Get { hit } => {
                    p.gets += 1;
                    p.hits += u64::from(hit);
                }
                PrefixOp::Set => p.sets += 1,
                PrefixOp::Delete => p.deletes += 1,
            }
        }
    }

    /// memcached's `stats_prefix_find`: the prefix is the key up to the first delimiter (a key
    /// without one, or with a NUL before it, is not counted).
    fn find(&mut self, key: &[u8], delimiter: u8) -> Option<&mut PrefixStats> {
        let len = key.iter().position(|&b| b == delimiter || b == 0)?;
        if key[len] != delimiter {
            return None;
        }
        let prefix = &key[..len];
        if self.buckets.is_empty() {
            self.buckets.resize_with(PREFIX_BUCKETS, Vec::new);
        }
        let b = murmur3_32(prefix) as usize % PREFIX_BUCKETS;
        // memcached compares with strncmp over the new prefix's length.
        let found = self.buckets[b]
            .iter()
            .rposition(|p| p.prefix.len() >= len && &p.prefix[..len] == prefix);
        let i = match found {
            Some(i) => i,
            None => {
                if self.count >= MAX_PREFIXES {
                    return None;
                }
                self.count += 1;
                self.buckets[b].push(PrefixStats {
                    prefix: prefix.to_vec(),
                    gets: 0,
                    hits: 0,
                    sets: 0,
                    deletes: 0,
                });
                self.buckets[b].len() - 1
            }
        };
        self.buckets[b].get_mut(i)
    }
}

/// Which counter of a key's prefix a request bumps.
#[derive(Clone, Copy, Debug)]
pub enum PrefixOp {
    Get { hit: bool },
    Set,
    Delete,
}

/// MurmurHash3 x86_32 with seed 0: memcached's default `hash_algorithm`, which places prefixes.
fn murmur3_32(data: &[u8]) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let mut h: u32 = 0;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let tail = chunks.remainder();
    let mut k: u32 = 0;
    for (i, &b) in tail.iter().enumerate() {
        k ^= u32::from(b) << (8 * i);
    }
    if !tail.is_empty() {
        k = k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
        h ^= k;
    }
    h ^= data.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_sum_reset() {
        let a = ThreadStats::default();
        let b = ThreadStats::default();
        bump(&a.cmd_get);
        add(&b.cmd_get, 2);
        let mut s = a.snapshot();
        s.add(&b.snapshot());
        assert_eq!(s.cmd_get, 3);
        a.reset();
        assert_eq!(a.snapshot().cmd_get, 0);
    }
}
