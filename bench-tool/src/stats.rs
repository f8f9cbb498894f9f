//! Owns: per-thread counters and latency histograms, their merging, and process CPU readings from /proc.

use hdrhistogram::Histogram;

/// Highest latency the histograms track (60 s, in ns); larger samples saturate.
const MAX_LATENCY_NS: u64 = 60_000_000_000;

/// Throughput counters and latency of the measured phase (reset when warmup ends).
pub struct Perf {
    /// Completed requests (a multi-get counts once).
    pub ops: u64,
    pub sets: u64,
    /// Completed get requests, and keys asked for by them.
    pub gets: u64,
    pub get_keys: u64,
    pub hits: u64,
    pub misses: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Request latency in nanoseconds.
    pub latency: Histogram<u64>,
}

impl Perf {
    pub fn new() -> Self {
        Perf {
            ops: 0,
            sets: 0,
            gets: 0,
            get_keys: 0,
            hits: 0,
            misses: 0,
            bytes_in: 0,
            bytes_out: 0,
            latency: Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("histogram bounds"),
        }
    }

    pub fn reset(&mut self) {
        let Perf {
            ops,
            sets,
            gets,
            get_keys,
            hits,
            misses,
            bytes_in,
            bytes_out,
            latency,
        } = self;
        for counter in [ops, sets, gets, get_keys, hits, misses, bytes_in, bytes_out] {
            *counter = 0;
        }
        latency.reset();
    }

    #[inline]
    pub fn record_latency(&mut self, ns: u64) {
        self.latency.saturating_record(ns.max(1));
    }

    pub fn merge(&mut self, other: &Perf) {
        self.ops += other.ops;
        self.sets += other.sets;
        self.gets += other.gets;
        self.get_keys += other.get_keys;
        self.hits += other.hits;
        self.misses += other.misses;
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
        self.latency
            .add(&other.latency)
            .expect("same histogram bounds");
    }
}

/// Error counters; never reset (an error during warmup still fails the run).
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Errors {
    /// `SERVER_ERROR` lines and binary error statuses other than the ones below.
    pub server_error: u64,
    /// `CLIENT_ERROR` lines.
    pub client_error: u64,
    /// Plain `ERROR` lines.
    pub error: u64,
    /// Stores answered `NOT_STORED`/`EXISTS`/`NOT_FOUND`/`NS`/`EX`/`NF` or binary status 1/2/5.
    pub not_stored: u64,
    /// Hits whose value is not one this tool writes for the key, replies for keys not asked for, wrong opaque.
    pub validation: u64,
    /// Reply streams that cannot be parsed or do not match the requests in flight (the connection is dropped).
    pub protocol: u64,
    /// Connections closed by the peer or failed while running.
    pub connection: u64,
}

impl Errors {
    pub fn total(&self) -> u64 {
        self.server_error
            + self.client_error
            + self.error
            + self.not_stored
            + self.validation
            + self.protocol
            + self.connection
    }

    pub fn merge(&mut self, o: &Errors) {
        self.server_error += o.server_error;
        self.client_error += o.client_error;
        self.error += o.error;
        self.not_stored += o.not_stored;
        self.validation += o.validation;
        self.protocol += o.protocol;
        self.connection += o.connection;
    }
}

/// Kernel clock ticks per second used by /proc/PID/stat (USER_HZ, fixed at 100 on Linux).
const CLOCK_TICKS: u64 = 100;

/// User + system CPU time consumed so far by process `pid` (all its threads), in nanoseconds.
/// `None` for "self" means the current process.
pub fn process_cpu_ns(pid: Option<u32>) -> Option<u64> {
    let path = match pid {
        Some(p) => format!("/proc/{p}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let text = std::fs::read_to_string(path).ok()?;
    // The command name (field 2) may contain spaces; fields after its closing parenthesis are plain.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime field 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) * (1_000_000_000 / CLOCK_TICKS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_clears_counts_and_histogram() {
        let mut p = Perf::new();
        p.ops = 5;
        p.record_latency(1000);
        p.reset();
        assert_eq!(p.ops, 0);
        assert_eq!(p.latency.len(), 0);
        p.record_latency(70_000_000_000);
        assert_eq!(p.latency.len(), 1);
    }

    #[test]
    fn merge_adds_up() {
        let mut a = Perf::new();
        let mut b = Perf::new();
        a.ops = 1;
        b.ops = 2;
        a.record_latency(10);
        b.record_latency(20_000);
        a.merge(&b);
        assert_eq!(a.ops, 3);
        assert_eq!(a.latency.len(), 2);
        assert!(a.latency.max() >= 19_990);
    }

    #[test]
    fn own_cpu_is_readable() {
        assert!(process_cpu_ns(None).is_some());
        assert!(process_cpu_ns(Some(std::process::id())).is_some());
    }
}
