//! Owns: command-line options and their validation into the run configuration.

use std::net::{SocketAddr, ToSocketAddrs};

use clap::Parser;

use crate::proto::Protocol;
use crate::workload::{KeyPattern, KeyTable, SizeSpec};

/// Load generator for memcached-protocol servers (text, meta and binary protocols).
///
/// Every hit is checked against the value this tool writes for its key; any error makes the exit status 1.
#[derive(Parser, Debug)]
#[command(name = "ferrocache-bench", version)]
pub struct Args {
    /// Server address host:port; repeat for several servers (keys are split among them by index).
    #[arg(short = 's', long = "server", default_value = "127.0.0.1:11211")]
    pub servers: Vec<String>,
    /// Wire protocol.
    #[arg(short = 'P', long, value_enum, default_value_t = Protocol::Text)]
    pub protocol: Protocol,
    /// Load threads, each with its own event loop.
    #[arg(short = 't', long, default_value_t = 4)]
    pub threads: usize,
    /// Connections per thread.
    #[arg(short = 'c', long, default_value_t = 50)]
    pub conns: usize,
    /// Requests kept in flight per connection.
    #[arg(long, default_value_t = 1)]
    pub pipeline: usize,
    /// Length of the measured phase in seconds (default 10 unless --requests is given).
    #[arg(short = 'd', long, conflicts_with = "requests")]
    pub duration: Option<f64>,
    /// Number of requests in the measured phase, over all threads.
    #[arg(short = 'n', long)]
    pub requests: Option<u64>,
    /// Fixed offered rate in requests/s over all threads (default: as fast as replies come).
    /// Latency is measured from each request's scheduled time, so queueing delay counts.
    #[arg(long)]
    pub rate: Option<f64>,
    /// SET:GET request mix, e.g. 1:9 (0:1 = gets only, 1:0 = sets only).
    #[arg(long, default_value = "1:10", value_parser = parse_ratio)]
    pub ratio: (u32, u32),
    /// Number of distinct keys.
    #[arg(long, default_value_t = 100_000)]
    pub keys: u32,
    /// Key length in bytes (keys look like `key:000…123`).
    #[arg(long, default_value_t = 32)]
    pub key_size: usize,
    /// Value length in bytes: fixed `100` or a range `64-4096` (length chosen per key).
    #[arg(long, default_value = "100")]
    pub value_size: SizeSpec,
    /// Key choice: uniform, zipf:<skew> (e.g. zipf:0.99) or sequential.
    #[arg(long, default_value = "uniform")]
    pub key_pattern: KeyPattern,
    /// Keys per get request (text `get k1 … kN`, meta `mg … q` + `mn`, binary GetKQ… + Noop).
    #[arg(long, default_value_t = 1)]
    pub multiget: usize,
    /// Store every key once (sequentially) before the run.
    #[arg(long)]
    pub preload: bool,
    /// Seconds of unmeasured load before the measured phase.
    #[arg(long, default_value_t = 0.0)]
    pub warmup: f64,
    /// Seed for key choice (default: derived from the clock, and printed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Print one JSON object with all results on stdout (progress still goes to stderr).
    #[arg(long)]
    pub json: bool,
    /// PID of the server process: report its CPU time per request over the measured phase.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// No progress output.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// Run as a null server on this address instead of generating load: it answers this tool's
    /// text gets and sets (same --keys, --key-size and --value-size) without storing anything,
    /// the ceiling a server can reach on this machine's network path.
    #[arg(long, value_name = "ADDR")]
    pub null_server: Option<String>,
    /// Speak TLS to the servers (memcached -Z, ferrocache -Z). The server's certificate is not
    /// verified unless --tls-ca names its CA.
    #[arg(long)]
    pub tls: bool,
    /// PEM file of the CA that signed the servers' certificates (verify them).
    #[arg(long, requires = "tls")]
    pub tls_ca: Option<std::path::PathBuf>,
    /// Client certificate (PEM) for servers that require one (with --tls-key).
    #[arg(long, requires = "tls")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The client certificate's key (PEM).
    #[arg(long, requires = "tls")]
    pub tls_key: Option<std::path::PathBuf>,
    /// During the measured phase, also open this many new TLS connections per second on the
    /// first server (full handshakes, no resumption; each asks `version` and closes), and report
    /// their latency beside the established connections'.
    #[arg(long, requires = "tls")]
    pub handshake_rate: Option<f64>,
}

fn parse_ratio(s: &str) -> Result<(u32, u32), String> {
    let (a, b) = s
        .split_once(':')
        .ok_or_else(|| format!("bad ratio '{s}' (want SET:GET, e.g. 1:9)"))?;
    let num = |t: &str| {
        t.trim()
            .parse::<u32>()
            .map_err(|_| format!("bad ratio '{s}' (want SET:GET, e.g. 1:9)"))
    };
    let (set, get) = (num(a)?, num(b)?);
    if set == 0 && get == 0 {
        return Err("ratio 0:0 issues nothing".into());
    }
    if set > 1_000_000 || get > 1_000_000 {
        return Err("ratio terms must be at most 1000000".into());
    }
    Ok((set, get))
}

/// Validated settings for a run.
#[derive(Clone, Debug)]
pub struct Config {
    pub servers: Vec<SocketAddr>,
    pub server_names: Vec<String>,
    pub protocol: Protocol,
    pub threads: usize,
    pub conns: usize,
    pub pipeline: usize,
    pub duration: Option<f64>,
    pub requests: Option<u64>,
    pub rate: Option<f64>,
    pub ratio_set: u32,
    pub ratio_get: u32,
    pub keys: u32,
    pub key_size: usize,
    pub value_size: SizeSpec,
    pub pattern: KeyPattern,
    pub multiget: usize,
    pub preload: bool,
    pub warmup: f64,
    pub seed: u64,
    pub json: bool,
    pub server_pid: Option<u32>,
    pub quiet: bool,
    /// `--tls`: the client configuration.
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    pub handshake_rate: Option<f64>,
}

impl Config {
    pub fn from_args(a: Args) -> Result<Config, String> {
        let mut servers = Vec::new();
        for name in &a.servers {
            let addr = name
                .to_socket_addrs()
                .map_err(|e| format!("--server {name}: {e}"))?
                .next()
                .ok_or_else(|| format!("--server {name}: no address"))?;
            servers.push(addr);
        }
        if !(1..=1024).contains(&a.threads) {
            return Err("--threads must be in 1..=1024".into());
        }
        if !(1..=65_536).contains(&a.conns) {
            return Err("--conns must be in 1..=65536".into());
        }
        if !(1..=65_536).contains(&a.pipeline) {
            return Err("--pipeline must be in 1..=65536".into());
        }
        if !(1..=1024).contains(&a.multiget) {
            return Err("--multiget must be in 1..=1024".into());
        }
        if a.threads * a.conns < servers.len() {
            return Err("need at least one connection per server (--threads x --conns)".into());
        }
        if (a.keys as usize) < servers.len() {
            return Err("need at least one key per server".into());
        }
        let min_key = KeyTable::min_key_size(a.keys);
        if a.key_size < min_key || a.key_size > 250 {
            return Err(format!(
                "--key-size must be in {min_key}..=250 for {} keys",
                a.keys
            ));
        }
        let duration = match (a.duration, a.requests) {
            (Some(d), _) if !(d.is_finite() && d > 0.0) => {
                return Err("--duration must be > 0".into())
            }
            (Some(d), _) => Some(d),
            (None, None) => Some(10.0),
            (None, Some(_)) => None,
        };
        if a.requests == Some(0) {
            return Err("--requests must be > 0".into());
        }
        if !(a.warmup.is_finite() && a.warmup >= 0.0) {
            return Err("--warmup must be >= 0".into());
        }
        let tls = if a.tls {
            Some(crate::tls::client_config(
                a.tls_ca.as_deref(),
                a.tls_cert.as_deref(),
                a.tls_key.as_deref(),
            )?)
        } else {
            None
        };
        let handshake_rate = match a.handshake_rate {
            Some(r) if !(r.is_finite() && r > 0.0 && r <= 100_000.0) => {
                return Err("--handshake-rate must be in (0, 100000]".into())
            }
            r => r,
        };
        let seed = a.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
        Ok(Config {
            server_names: a.servers,
            servers,
            protocol: a.protocol,
            threads: a.threads,
            conns: a.conns,
            pipeline: a.pipeline,
            duration,
            requests: a.requests,
            rate: a.rate.filter(|r| *r > 0.0),
            ratio_set: a.ratio.0,
            ratio_get: a.ratio.1,
            keys: a.keys,
            key_size: a.key_size,
            value_size: a.value_size,
            pattern: a.key_pattern,
            multiget: a.multiget,
            preload: a.preload,
            warmup: a.warmup,
            seed,
            json: a.json,
            server_pid: a.server_pid,
            quiet: a.quiet,
            tls,
            handshake_rate,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(args: &[&str]) -> Result<Config, String> {
        let mut v = vec!["ferrocache-bench"];
        v.extend_from_slice(args);
        Config::from_args(Args::try_parse_from(v).map_err(|e| e.to_string())?)
    }

    #[test]
    fn defaults_are_valid() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.servers.len(), 1);
        assert_eq!(c.duration, Some(10.0));
        assert_eq!((c.ratio_set, c.ratio_get), (1, 10));
    }

    #[test]
    fn options_parse() {
        let c = cfg(&[
            "--server",
            "127.0.0.1:1",
            "--server",
            "127.0.0.1:2",
            "--protocol",
            "binary",
            "--ratio",
            "1:9",
            "--value-size",
            "64-4096",
            "--key-pattern",
            "zipf:1.1",
            "--requests",
            "1000",
            "--seed",
            "5",
        ])
        .unwrap();
        assert_eq!(c.servers.len(), 2);
        assert_eq!(c.protocol, Protocol::Binary);
        assert_eq!(c.duration, None);
        assert_eq!(c.requests, Some(1000));
        assert_eq!(c.value_size, SizeSpec { min: 64, max: 4096 });
        assert_eq!(c.pattern, KeyPattern::Zipf(1.1));
        assert_eq!(c.seed, 5);
    }

    #[test]
    fn bad_options_are_refused() {
        assert!(cfg(&["--ratio", "0:0"]).is_err());
        assert!(cfg(&["--ratio", "19"]).is_err());
        assert!(cfg(&["--duration", "1", "--requests", "5"]).is_err());
        assert!(cfg(&["--key-size", "5"]).is_err());
        assert!(cfg(&["--pipeline", "0"]).is_err());
        assert!(cfg(&["--duration", "-1"]).is_err());
    }
}
