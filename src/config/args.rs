//! Owns: the clap definitions of every option memcached users pass (and ferrocache's own), and
//! turning a memcached.conf into arguments.

use std::path::PathBuf;

use clap::{ArgAction, Parser};

/// Command line options, memcached-compatible.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "ferrocache",
    about = "A memcached-compatible, multi-threaded cache daemon",
    disable_version_flag = true,
    args_override_self = true
)]
pub struct Args {
    /// TCP port to listen on (0 = off, -1 = any free port).
    /// Default 11211, or the UDP port when only `-U` is given.
    #[arg(short = 'p', long = "port", allow_negative_numbers = true)]
    pub port: Option<i32>,
    /// UDP port (0 = off, the default; -1 = any free port).
    #[arg(
        short = 'U',
        long = "udp-port",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    pub udp_port: i32,
    /// UNIX socket path to listen on (disables network support).
    #[arg(short = 's', long = "unix-socket")]
    pub unix_socket: Option<PathBuf>,
    /// Access mask for the UNIX socket, in octal.
    #[arg(short = 'a', long = "unix-mask", default_value = "0700")]
    pub unix_mask: String,
    /// Interface(s) to listen on: comma-separated or repeated, `host` or `host:port`.
    #[arg(short = 'l', long = "listen", action = ArgAction::Append)]
    pub listen: Vec<String>,
    /// Run as a daemon (fork into the background).
    #[arg(short = 'd', long = "daemon")]
    pub daemon: bool,
    /// Maximize core file limit.
    #[arg(short = 'r', long = "enable-coredumps")]
    pub coredumps: bool,
    /// Assume the identity of this user (only when started as root).
    #[arg(short = 'u', long = "user")]
    pub user: Option<String>,
    /// Item memory in megabytes.
    #[arg(short = 'm', long = "memory-limit", default_value_t = 64)]
    pub memory_limit: u64,
    /// Return an error on memory exhausted instead of evicting items.
    #[arg(short = 'M', long = "disable-evictions")]
    pub disable_evictions: bool,
    /// Try to use large memory pages: item memory is one region advised for transparent huge
    /// pages.
    #[arg(short = 'L', long = "enable-largepages")]
    pub large_pages: bool,
    /// Max simultaneous connections.
    #[arg(short = 'c', long = "conn-limit", default_value_t = 1024)]
    pub conn_limit: u32,
    /// Lock down all paged memory.
    #[arg(short = 'k', long = "lock-memory")]
    pub lock_memory: bool,
    /// Verbose (repeat for more: -vv, -vvv).
    #[arg(short = 'v', long = "verbose", action = ArgAction::Count)]
    pub verbose: u8,
    /// Print version and exit.
    #[arg(short = 'V', long = "version")]
    pub version: bool,
    /// Save the PID in this file.
    #[arg(short = 'P', long = "pidfile")]
    pub pidfile: Option<PathBuf>,
    /// Warm restart: a graceful stop (SIGUSR1, `shutdown graceful`) saves the cache's pages to
    /// this file and its metadata to FILE.meta; a start with the same file restores them
    /// (docs/restart.md). Put it on a tmpfs.
    #[arg(short = 'e', long = "memory-file")]
    pub memory_file: Option<PathBuf>,
    /// Chunk size growth factor.
    #[arg(short = 'f', long = "slab-growth-factor", default_value_t = 1.25)]
    pub growth_factor: f64,
    /// Minimum space allocated for key+value+flags.
    #[arg(short = 'n', long = "slab-min-size", default_value_t = 48)]
    pub min_size: u32,
    /// Number of worker threads (default: number of cores).
    #[arg(short = 't', long = "threads")]
    pub threads: Option<u32>,
    /// Maximum requests per event before yielding to other connections.
    #[arg(short = 'R', long = "max-reqs-per-event", default_value_t = 20)]
    pub reqs_per_event: u32,
    /// Disable use of CAS.
    #[arg(short = 'C', long = "disable-cas")]
    pub disable_cas: bool,
    /// Backlog queue limit.
    #[arg(short = 'b', long = "listen-backlog", default_value_t = 1024)]
    pub backlog: i32,
    /// Protocol: auto (the default), ascii or binary.
    #[arg(short = 'B', long = "protocol")]
    pub protocol: Option<String>,
    /// Maximum item size, with k/m suffixes (default 1m, min 1k, max 1g).
    #[arg(short = 'I', long = "max-item-size", default_value = "1m")]
    pub max_item_size: String,
    /// Turn on SASL authentication (binary protocol): users from --sasl-pwdb, else
    /// $MEMCACHED_SASL_PWDB, else cyrus' sasldb as memcached.conf in $SASL_CONF_PATH names it.
    #[arg(short = 'S', long = "enable-sasl")]
    pub sasl: bool,
    /// Disable flush_all.
    #[arg(short = 'F', long = "disable-flush-all")]
    pub disable_flush_all: bool,
    /// Disable stats cachedump and lru_crawler metadump.
    #[arg(short = 'X', long = "disable-dumping")]
    pub disable_dumping: bool,
    /// Disable watch commands.
    #[arg(short = 'W', long = "disable-watch")]
    pub disable_watch: bool,
    /// Enable the shutdown command.
    #[arg(short = 'A', long = "enable-shutdown")]
    pub enable_shutdown: bool,
    /// Enable TLS/SSL on the TCP listeners (certificates and options: `-o ssl_*`, docs/tls.md);
    /// an `-l` address prefixed `notls:` stays plaintext.
    #[arg(short = 'Z', long = "enable-ssl")]
    pub enable_ssl: bool,
    /// Stats prefix delimiter.
    #[arg(short = 'D', default_value = ":")]
    pub prefix_delimiter: String,
    /// ASCII authentication file (user:password lines).
    #[arg(short = 'Y', long = "auth-file")]
    pub auth_file: Option<PathBuf>,
    /// Credentials file for SASL (-S); defaults to $MEMCACHED_SASL_PWDB. `-Y FILE` serves both.
    #[arg(long = "sasl-pwdb")]
    pub sasl_pwdb: Option<PathBuf>,
    /// Extended options, comma separated (memcached's -o).
    #[arg(short = 'o', long = "extended", action = ArgAction::Append)]
    pub extended: Vec<String>,
    /// Read options from a memcached.conf-style file (one option per line, `#` comments).
    #[arg(long = "config-file")]
    pub config_file: Option<PathBuf>,
    /// Auto Discovery: cluster members (`host|ip|port` or `host:port[:weight]`, comma or space
    /// separated, `version N` optional); repeatable.
    #[arg(long = "cluster-nodes", action = ArgAction::Append)]
    pub cluster_nodes: Vec<String>,
    /// Auto Discovery: a cluster file (same syntax, one entry per line), re-read on SIGHUP.
    #[arg(long = "cluster-file")]
    pub cluster_file: Option<PathBuf>,
    /// Directory keeping state across restarts (the cluster config version).
    #[arg(long = "state-dir")]
    pub state_dir: Option<PathBuf>,
    /// Admin endpoint (HOST:PORT, port 0 = any): the only listener that accepts `config set`.
    /// With -Z it speaks TLS, as the -l listeners, unless given as notls:HOST:PORT.
    #[arg(long = "admin-listen")]
    pub admin_listen: Option<String>,
    /// Probe every cluster member with `version` this often (seconds) and report reachability in
    /// `stats cluster`. Off by default; never changes the served member list.
    #[arg(long = "cluster-health-check")]
    pub cluster_health_check: Option<f64>,
    /// Probe the members over TLS (members started with -Z), trusting --cluster-health-tls-ca
    /// (default: -o ssl_ca_cert).
    #[arg(long = "cluster-health-tls")]
    pub cluster_health_tls: bool,
    /// The CA certificate (PEM) the members' certificates must chain to.
    #[arg(long = "cluster-health-tls-ca", value_name = "FILE")]
    pub cluster_health_tls_ca: Option<PathBuf>,
    /// A client certificate (PEM) for members that verify clients (-o ssl_verify_mode).
    #[arg(long = "cluster-health-tls-cert", value_name = "FILE")]
    pub cluster_health_tls_cert: Option<PathBuf>,
    /// Its key (PEM; default: read from the certificate's file).
    #[arg(long = "cluster-health-tls-key", value_name = "FILE")]
    pub cluster_health_tls_key: Option<PathBuf>,
    /// The name the members' certificates must carry (default: each member's host name).
    #[arg(long = "cluster-health-tls-server-name", value_name = "NAME")]
    pub cluster_health_tls_server_name: Option<String>,
    /// Serve Prometheus metrics (`GET /metrics`, memcached_exporter's names) on ADDR:PORT
    /// (port 0 = any).
    #[arg(long = "metrics-listen", value_name = "ADDR:PORT")]
    pub metrics_listen: Option<String>,
}

/// Turns a memcached.conf into arguments: one option per line, `#` comments, lines not starting
/// with `-` (Debian's `logfile ...`) ignored, as Debian's wrapper does.
pub fn config_file_args(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        if !line.starts_with('-') {
            continue;
        }
        out.extend(line.split_whitespace().map(str::to_string));
    }
    out
}
