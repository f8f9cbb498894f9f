//! Owns: turning merged phase results into figures, printing them (human text or one JSON object) and progress.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

use crate::config::Config;
use crate::stats::{Errors, Perf};

/// CPU used by a process over the measured phase.
#[derive(Clone, Debug, Serialize)]
pub struct CpuUse {
    pub pid: u32,
    pub cpu_seconds: f64,
    /// CPU microseconds per completed request.
    pub us_per_op: f64,
    /// Average cores busy (cpu seconds / wall seconds).
    pub cores: f64,
}

impl CpuUse {
    pub fn new(pid: u32, before_ns: u64, after_ns: u64, seconds: f64, ops: u64) -> CpuUse {
        let cpu = after_ns.saturating_sub(before_ns) as f64 / 1e9;
        CpuUse {
            pid,
            cpu_seconds: cpu,
            us_per_op: if ops > 0 { cpu * 1e6 / ops as f64 } else { 0.0 },
            cores: if seconds > 0.0 { cpu / seconds } else { 0.0 },
        }
    }
}

/// Latency percentiles in microseconds.
#[derive(Clone, Debug, Serialize)]
pub struct Latency {
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

/// Figures for one phase (preload or the measured run).
#[derive(Clone, Debug, Serialize)]
pub struct PhaseSummary {
    pub seconds: f64,
    pub ops: u64,
    pub ops_per_sec: f64,
    pub sets: u64,
    pub sets_per_sec: f64,
    /// Get requests (a multi-get counts once).
    pub gets: u64,
    pub gets_per_sec: f64,
    /// Keys asked for by gets.
    pub get_keys: u64,
    pub get_keys_per_sec: f64,
    pub hits: u64,
    pub misses: u64,
    /// hits / get_keys (0 when there were no gets).
    pub hit_ratio: f64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub bytes_in_per_sec: f64,
    pub bytes_out_per_sec: f64,
    pub latency_us: Latency,
    pub errors: Errors,
    pub server_cpu: Option<CpuUse>,
    pub client_cpu: Option<CpuUse>,
    /// `--handshake-rate`: the new TLS connections opened during the measured phase.
    pub handshake_storm: Option<crate::tls::StormSummary>,
}

impl PhaseSummary {
    pub fn new(perf: &Perf, errors: Errors, seconds: f64) -> PhaseSummary {
        let rate = |n: u64| {
            if seconds > 0.0 {
                n as f64 / seconds
            } else {
                0.0
            }
        };
        let h = &perf.latency;
        let us = |ns: u64| ns as f64 / 1000.0;
        let latency = if h.is_empty() {
            Latency {
                mean: 0.0,
                p50: 0.0,
                p90: 0.0,
                p99: 0.0,
                p999: 0.0,
                max: 0.0,
            }
        } else {
            Latency {
                mean: h.mean() / 1000.0,
                p50: us(h.value_at_quantile(0.50)),
                p90: us(h.value_at_quantile(0.90)),
                p99: us(h.value_at_quantile(0.99)),
                p999: us(h.value_at_quantile(0.999)),
                max: us(h.max()),
            }
        };
        PhaseSummary {
            seconds,
            ops: perf.ops,
            ops_per_sec: rate(perf.ops),
            sets: perf.sets,
            sets_per_sec: rate(perf.sets),
            gets: perf.gets,
            gets_per_sec: rate(perf.gets),
            get_keys: perf.get_keys,
            get_keys_per_sec: rate(perf.get_keys),
            hits: perf.hits,
            misses: perf.misses,
            hit_ratio: if perf.get_keys > 0 {
                perf.hits as f64 / perf.get_keys as f64
            } else {
                0.0
            },
            bytes_in: perf.bytes_in,
            bytes_out: perf.bytes_out,
            bytes_in_per_sec: rate(perf.bytes_in),
            bytes_out_per_sec: rate(perf.bytes_out),
            latency_us: latency,
            errors,
            server_cpu: None,
            client_cpu: None,
            handshake_storm: None,
        }
    }
}

/// Settings echoed in the report.
#[derive(Clone, Debug, Serialize)]
pub struct Settings {
    pub servers: Vec<String>,
    pub protocol: crate::proto::Protocol,
    pub threads: usize,
    pub conns: usize,
    pub pipeline: usize,
    pub duration: Option<f64>,
    pub requests: Option<u64>,
    pub rate: Option<f64>,
    pub ratio: String,
    pub keys: u32,
    pub key_size: usize,
    pub value_size: String,
    pub key_pattern: String,
    pub multiget: usize,
    pub preload: bool,
    pub warmup: f64,
    pub seed: u64,
}

impl Settings {
    pub fn new(c: &Config) -> Settings {
        let v = c.value_size;
        Settings {
            servers: c.server_names.clone(),
            protocol: c.protocol,
            threads: c.threads,
            conns: c.conns,
            pipeline: c.pipeline,
            duration: c.duration,
            requests: c.requests,
            rate: c.rate,
            ratio: format!("{}:{}", c.ratio_set, c.ratio_get),
            keys: c.keys,
            key_size: c.key_size,
            value_size: if v.min == v.max {
                v.min.to_string()
            } else {
                format!("{}-{}", v.min, v.max)
            },
            key_pattern: c.pattern.to_string(),
            multiget: c.multiget,
            preload: c.preload,
            warmup: c.warmup,
            seed: c.seed,
        }
    }
}

/// The whole report.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub settings: Settings,
    pub preload: Option<PhaseSummary>,
    pub run: Option<PhaseSummary>,
    /// True when no error of any kind was seen.
    pub ok: bool,
}

fn human_rate(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

fn human_bytes(x: f64) -> String {
    if x >= 1e9 {
        format!("{:.2} GB", x / 1e9)
    } else if x >= 1e6 {
        format!("{:.2} MB", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1} kB", x / 1e3)
    } else {
        format!("{x:.0} B")
    }
}

fn errors_line(e: &Errors) -> String {
    format!(
        "{} (server_error {}, client_error {}, error {}, not_stored {}, validation {}, protocol {}, connection {})",
        e.total(),
        e.server_error,
        e.client_error,
        e.error,
        e.not_stored,
        e.validation,
        e.protocol,
        e.connection
    )
}

fn cpu_line(label: &str, c: &CpuUse) -> String {
    format!(
        "  {label:<11} {:.2} us/op  ({:.2} s CPU, {:.0}% of a core, pid {})\n",
        c.us_per_op,
        c.cpu_seconds,
        c.cores * 100.0,
        c.pid
    )
}

impl Report {
    pub fn to_text(&self) -> String {
        let s = &self.settings;
        let mut out = format!(
            "ferrocache-bench: {} protocol, servers {}, {} threads x {} conns, pipeline {}, ratio {}, \
             {} keys of {} B, values {} B, {} keys, multiget {}, seed {}\n",
            s.protocol.name(),
            s.servers.join(","),
            s.threads,
            s.conns,
            s.pipeline,
            s.ratio,
            s.keys,
            s.key_size,
            s.value_size,
            s.key_pattern,
            s.multiget,
            s.seed
        );
        if let Some(p) = &self.preload {
            out += &format!(
                "preload: {} sets in {:.2} s ({} sets/s), errors {}\n",
                p.sets,
                p.seconds,
                human_rate(p.sets_per_sec),
                errors_line(&p.errors)
            );
        }
        if let Some(r) = &self.run {
            let l = &r.latency_us;
            out += &format!("run: {:.2} s measured", r.seconds);
            if s.warmup > 0.0 {
                out += &format!(" after {:.1} s warmup", s.warmup);
            }
            out += "\n";
            out += &format!(
                "  ops/s       {:>10.0}  ({} requests)\n  gets/s      {:>10.0}  (keys/s {:.0})\n  sets/s      {:>10.0}\n",
                r.ops_per_sec, r.ops, r.gets_per_sec, r.get_keys_per_sec, r.sets_per_sec
            );
            out += &format!(
                "  hit ratio   {:>9.2}%  (hits {}, misses {})\n",
                r.hit_ratio * 100.0,
                r.hits,
                r.misses
            );
            out += &format!(
                "  bytes/s     in {}/s, out {}/s\n",
                human_bytes(r.bytes_in_per_sec),
                human_bytes(r.bytes_out_per_sec)
            );
            out += &format!(
                "  latency us  p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}  (mean {:.1})\n",
                l.p50, l.p90, l.p99, l.p999, l.max, l.mean
            );
            out += &format!("  errors      {}\n", errors_line(&r.errors));
            if let Some(c) = &r.server_cpu {
                out += &cpu_line("server cpu", c);
            }
            if let Some(c) = &r.client_cpu {
                out += &cpu_line("client cpu", c);
            }
            if let Some(h) = &r.handshake_storm {
                out += &format!(
                    "  handshakes  {} new TLS connections ({:.0}/s of {:.0}/s asked), {} failed; connect+handshake+version us p50 {}  p99 {}  max {}\n",
                    h.handshakes, h.per_sec, h.target_per_sec, h.failed, h.p50_us, h.p99_us, h.max_us
                );
            }
        }
        out += if self.ok {
            "result: OK\n"
        } else {
            "result: ERRORS\n"
        };
        out
    }
}

/// Progress on stderr: a bar on a terminal, plain lines once a second otherwise.
pub struct Progress {
    bar: Option<ProgressBar>,
    plain: bool,
    label: &'static str,
    started: Instant,
    last_print: Instant,
    last_ops: u64,
}

impl Progress {
    /// `total`: seconds (duration mode) or requests (count mode) for the bar length.
    pub fn new(quiet: bool, label: &'static str, total: Option<u64>, unit_secs: bool) -> Progress {
        let tty = std::io::stderr().is_terminal();
        let bar = if quiet || !tty {
            None
        } else {
            let bar = match total {
                Some(t) => ProgressBar::new(t),
                None => ProgressBar::new_spinner(),
            };
            let template = if unit_secs {
                "{prefix:>8} [{elapsed_precise}] {wide_bar} {pos}/{len}s {msg}"
            } else {
                "{prefix:>8} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg}"
            };
            if let Ok(style) = ProgressStyle::with_template(template) {
                bar.set_style(style);
            }
            bar.set_prefix(label);
            Some(bar)
        };
        let now = Instant::now();
        Progress {
            bar,
            plain: !quiet && !tty,
            label,
            started: now,
            last_print: now,
            last_ops: 0,
        }
    }

    /// Updates with cumulative ops/errors; `pos` is the bar position (seconds or requests).
    pub fn update(&mut self, ops: u64, errors: u64, pos: u64) {
        let now = Instant::now();
        let since = now.duration_since(self.last_print);
        if let Some(bar) = &self.bar {
            bar.set_position(pos);
            if since >= Duration::from_millis(500) {
                let rate = (ops - self.last_ops.min(ops)) as f64 / since.as_secs_f64();
                bar.set_message(format!("{} ops/s, errors {errors}", human_rate(rate)));
                self.last_print = now;
                self.last_ops = ops;
            }
        } else if self.plain && since >= Duration::from_secs(1) {
            let rate = (ops - self.last_ops.min(ops)) as f64 / since.as_secs_f64();
            eprintln!(
                "[{:>7.1}s] {}: {} ops/s, {ops} ops, errors {errors}",
                now.duration_since(self.started).as_secs_f64(),
                self.label,
                human_rate(rate)
            );
            self.last_print = now;
            self.last_ops = ops;
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_computes_rates_and_percentiles() {
        let mut p = Perf::new();
        p.ops = 1000;
        p.gets = 900;
        p.get_keys = 900;
        p.hits = 450;
        p.misses = 450;
        p.sets = 100;
        p.bytes_in = 2000;
        for i in 1..=1000u64 {
            p.record_latency(i * 1000);
        }
        let s = PhaseSummary::new(&p, Errors::default(), 2.0);
        assert_eq!(s.ops_per_sec, 500.0);
        assert_eq!(s.hit_ratio, 0.5);
        assert_eq!(s.bytes_in_per_sec, 1000.0);
        assert!((s.latency_us.p50 - 500.0).abs() < 1.0);
        assert!((s.latency_us.p99 - 990.0).abs() < 1.5);
        assert!((s.latency_us.max - 1000.0).abs() < 1.5);
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["ops"], 1000);
    }

    #[test]
    fn cpu_use_per_op() {
        let c = CpuUse::new(1, 1_000_000_000, 3_000_000_000, 4.0, 1_000_000);
        assert_eq!(c.cpu_seconds, 2.0);
        assert_eq!(c.us_per_op, 2.0);
        assert_eq!(c.cores, 0.5);
    }
}
