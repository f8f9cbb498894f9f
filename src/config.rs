//! Owns: memcached's command line — clap definitions of every option memcached users pass, the
//! `--config-file` (memcached.conf format), and validation into an immutable `Config`.
//! Does not: act on the options (see `server`).

use std::path::PathBuf;

use clap::{ArgAction, Parser};

use crate::cluster::state::ClusterSettings;

/// Exit code for usage errors (`EX_USAGE`), as memcached uses.
pub const EX_USAGE: i32 = 64;

/// The version clients see in `version` and `stats`: three plain numbers (clients parse it).
pub const PROTOCOL_VERSION: &str = "1.6.18";

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
    #[arg(
        short = 'p',
        long = "port",
        default_value_t = 11211,
        allow_negative_numbers = true
    )]
    pub port: i32,
    /// UDP port (0 = off; UDP is not supported).
    #[arg(short = 'U', long = "udp-port", default_value_t = 0)]
    pub udp_port: u32,
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
    /// Protocol: auto, ascii or binary.
    #[arg(short = 'B', long = "protocol", default_value = "auto")]
    pub protocol: String,
    /// Maximum item size, with k/m suffixes (default 1m, min 1k, max 1g).
    #[arg(short = 'I', long = "max-item-size", default_value = "1m")]
    pub max_item_size: String,
    /// Turn on SASL authentication (binary protocol).
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
    /// Stats prefix delimiter.
    #[arg(short = 'D', default_value = ":")]
    pub prefix_delimiter: String,
    /// ASCII authentication file (user:password lines).
    #[arg(short = 'Y', long = "auth-file")]
    pub auth_file: Option<PathBuf>,
    /// The credentials file in use: `-Y`, else `--sasl-pwdb`, else `$MEMCACHED_SASL_PWDB` (with `-S`).
    pub credentials_file: Option<PathBuf>,
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
    #[arg(long = "admin-listen")]
    pub admin_listen: Option<String>,
    /// Probe every cluster member with `version` this often (seconds) and report reachability in
    /// `stats cluster`. Off by default; never changes the served member list.
    #[arg(long = "cluster-health-check")]
    pub cluster_health_check: Option<f64>,
}

/// Wire protocol(s) accepted on connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Auto,
    Ascii,
    Binary,
}

impl Protocol {
    pub fn settings_name(self) -> &'static str {
        match self {
            Protocol::Auto => "auto-negotiate",
            Protocol::Ascii => "ascii",
            Protocol::Binary => "binary",
        }
    }
}

/// A listen address as given: host and optional port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenAddr {
    pub host: String,
    pub port: Option<u16>,
}

/// Validated settings, immutable after start-up.
#[derive(Clone, Debug)]
pub struct Config {
    pub port: i32,
    pub udp_port: u32,
    pub unix_socket: Option<PathBuf>,
    pub unix_mask: u32,
    pub listen: Vec<ListenAddr>,
    pub inter: Option<String>,
    pub daemon: bool,
    pub coredumps: bool,
    pub user: Option<String>,
    pub memory_limit: usize,
    pub evictions: bool,
    pub large_pages: bool,
    pub maxconns: usize,
    pub lock_memory: bool,
    pub verbose: u8,
    pub pidfile: Option<PathBuf>,
    pub growth_factor: f64,
    pub min_size: usize,
    pub threads: usize,
    pub reqs_per_event: usize,
    pub cas_enabled: bool,
    pub backlog: i32,
    pub protocol: Protocol,
    pub item_size_max: usize,
    pub sasl: bool,
    pub flush_enabled: bool,
    pub dump_enabled: bool,
    pub watch_enabled: bool,
    pub shutdown_enabled: bool,
    pub prefix_delimiter: String,
    pub auth_file: Option<PathBuf>,
    /// The credentials file in use: `-Y`, else `--sasl-pwdb`, else `$MEMCACHED_SASL_PWDB` (with `-S`).
    pub credentials_file: Option<PathBuf>,
    pub ext: Extended,
    pub cluster: ClusterSettings,
}

/// `-o` settings.
#[derive(Clone, Debug)]
pub struct Extended {
    pub maxconns_fast: bool,
    pub hashpower: u32,
    pub slab_reassign: bool,
    pub slab_automove: u8,
    pub slab_automove_ratio: f64,
    pub slab_automove_window: u32,
    pub slab_chunk_max: usize,
    pub lru_crawler: bool,
    pub lru_crawler_sleep: u32,
    pub lru_crawler_tocrawl: u32,
    pub lru_maintainer: bool,
    pub lru_segmented: bool,
    pub hot_lru_pct: u32,
    pub warm_lru_pct: u32,
    pub hot_max_factor: f64,
    pub warm_max_factor: f64,
    pub temp_lru: bool,
    pub temporary_ttl: u32,
    pub idle_timeout: u32,
    pub hash_algorithm: String,
    pub tail_repair_time: u32,
    pub watcher_logbuf_size: u32,
    pub worker_logbuf_size: u32,
    pub read_buf_mem_limit: u32,
    pub track_sizes: bool,
    pub shards: usize,
}

impl Default for Extended {
    fn default() -> Self {
        Extended {
            maxconns_fast: true,
            hashpower: 0,
            slab_reassign: true,
            slab_automove: 1,
            slab_automove_ratio: 0.8,
            slab_automove_window: 30,
            slab_chunk_max: 512 * 1024,
            lru_crawler: true,
            lru_crawler_sleep: 100,
            lru_crawler_tocrawl: 0,
            lru_maintainer: true,
            lru_segmented: true,
            hot_lru_pct: 20,
            warm_lru_pct: 40,
            hot_max_factor: 0.2,
            warm_max_factor: 2.0,
            temp_lru: false,
            temporary_ttl: 61,
            idle_timeout: 0,
            hash_algorithm: "murmur3".into(),
            tail_repair_time: 0,
            watcher_logbuf_size: 256 * 1024,
            worker_logbuf_size: 64 * 1024,
            read_buf_mem_limit: 0,
            track_sizes: false,
            shards: 0,
        }
    }
}

/// A start-up error: message and exit code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{msg}")]
pub struct ConfigError {
    pub msg: String,
    pub code: i32,
}

fn usage(msg: impl Into<String>) -> ConfigError {
    ConfigError {
        msg: msg.into(),
        code: EX_USAGE,
    }
}

fn bad(msg: impl Into<String>) -> ConfigError {
    ConfigError {
        msg: msg.into(),
        code: 1,
    }
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

/// Parses a size with an optional k/m/g suffix (memcached's `-I`).
pub fn parse_size(s: &str) -> Option<usize> {
    let s = s.trim();
    let (num, mul) = match s.chars().last()? {
        'k' | 'K' => (&s[..s.len() - 1], 1024),
        'm' | 'M' => (&s[..s.len() - 1], 1024 * 1024),
        'g' | 'G' => (&s[..s.len() - 1], 1024 * 1024 * 1024),
        _ => (s, 1),
    };
    num.parse::<usize>().ok()?.checked_mul(mul)
}

fn parse_listen(
    items: &[String],
    default_port: Option<u16>,
) -> Result<Vec<ListenAddr>, ConfigError> {
    let mut out = Vec::new();
    for item in items {
        for part in item
            .split([',', ';'])
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let (host, port) = if let Some(rest) = part.strip_prefix('[') {
                let Some((h, tail)) = rest.split_once(']') else {
                    return Err(bad(format!("bad listen address: {part}")));
                };
                let port = match tail.strip_prefix(':') {
                    Some(p) => Some(
                        p.parse::<u16>()
                            .map_err(|_| bad(format!("bad listen port: {part}")))?,
                    ),
                    None => None,
                };
                (h.to_string(), port)
            } else if part.matches(':').count() == 1 {
                let (h, p) = part.split_once(':').unwrap_or((part, ""));
                (
                    h.to_string(),
                    Some(
                        p.parse::<u16>()
                            .map_err(|_| bad(format!("bad listen port: {part}")))?,
                    ),
                )
            } else {
                (part.to_string(), None)
            };
            out.push(ListenAddr {
                host,
                port: port.or(default_port),
            });
        }
    }
    Ok(out)
}

fn parse_extended(opts: &[String], ext: &mut Extended) -> Result<(), ConfigError> {
    for opt in opts
        .iter()
        .flat_map(|o| o.split(','))
        .map(str::trim)
        .filter(|o| !o.is_empty())
    {
        let (name, val) = match opt.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (opt, None),
        };
        let num = |v: Option<&str>| -> Result<u64, ConfigError> {
            v.and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| usage(format!("Illegal suboption value for \"{opt}\"")))
        };
        let float = |v: Option<&str>| -> Result<f64, ConfigError> {
            v.and_then(|v| v.parse::<f64>().ok())
                .ok_or_else(|| usage(format!("Illegal suboption value for \"{opt}\"")))
        };
        match name {
            "maxconns_fast" => ext.maxconns_fast = true,
            "no_maxconns_fast" => ext.maxconns_fast = false,
            "hashpower" => {
                let v = num(val)?;
                if !(12..=32).contains(&v) {
                    return Err(usage(
                        "Initial hashtable multiplier of 12 or more is required (and at most 32)",
                    ));
                }
                ext.hashpower = v as u32;
            }
            "no_hashexpand" => {}
            "slab_reassign" => ext.slab_reassign = true,
            "no_slab_reassign" => ext.slab_reassign = false,
            "slab_automove" => {
                let v = match val {
                    None => 1,
                    Some(_) => num(val)?,
                };
                if v > 2 {
                    return Err(usage("slab_automove must be between 0 and 2"));
                }
                ext.slab_automove = v as u8;
            }
            "no_slab_automove" => ext.slab_automove = 0,
            "slab_automove_ratio" => ext.slab_automove_ratio = float(val)?,
            "slab_automove_window" => ext.slab_automove_window = num(val)? as u32,
            "slab_automove_freeratio" => {
                float(val)?;
            }
            "slab_chunk_max" => ext.slab_chunk_max = num(val)? as usize,
            "tail_repair_time" => ext.tail_repair_time = num(val)? as u32,
            "hash_algorithm" => match val {
                Some(v @ ("jenkins" | "murmur3" | "xxh3")) => ext.hash_algorithm = v.to_string(),
                _ => {
                    return Err(usage(format!(
                        "Unknown hash_algorithm option: {}",
                        val.unwrap_or("")
                    )))
                }
            },
            "lru_crawler" => ext.lru_crawler = true,
            "no_lru_crawler" => ext.lru_crawler = false,
            "lru_crawler_sleep" => {
                let v = num(val)?;
                if v > 1_000_000 {
                    return Err(usage("lru_crawler_sleep must be between 0 and 1 second"));
                }
                ext.lru_crawler_sleep = v as u32;
            }
            "lru_crawler_tocrawl" => ext.lru_crawler_tocrawl = num(val)? as u32,
            "lru_maintainer" => ext.lru_maintainer = true,
            "no_lru_maintainer" => {
                ext.lru_maintainer = false;
                ext.lru_segmented = false;
            }
            "hot_lru_pct" => ext.hot_lru_pct = num(val)? as u32,
            "warm_lru_pct" => ext.warm_lru_pct = num(val)? as u32,
            "hot_max_factor" => ext.hot_max_factor = float(val)?,
            "warm_max_factor" => ext.warm_max_factor = float(val)?,
            "temporary_ttl" => {
                ext.temp_lru = true;
                ext.temporary_ttl = num(val)? as u32;
            }
            "idle_timeout" => ext.idle_timeout = num(val)? as u32,
            "watcher_logbuf_size" => ext.watcher_logbuf_size = (num(val)? * 1024) as u32,
            "worker_logbuf_size" => ext.worker_logbuf_size = (num(val)? * 1024) as u32,
            "read_buf_mem_limit" => ext.read_buf_mem_limit = (num(val)? * 1024 * 1024) as u32,
            "track_sizes" => ext.track_sizes = true,
            "slab_sizes"
            | "no_chunked_items"
            | "lru_segmented"
            | "inline_ascii_resp"
            | "no_inline_ascii_resp"
            | "drop_privileges"
            | "no_drop_privileges"
            | "resp_obj_mem_limit"
            | "sock_cookie_id" => {}
            "modern" => {}
            "no_modern" => {
                ext.slab_chunk_max = 1024 * 1024;
                ext.slab_reassign = false;
                ext.slab_automove = 0;
                ext.maxconns_fast = false;
                ext.lru_segmented = false;
                ext.lru_maintainer = false;
                ext.lru_crawler = false;
                ext.hash_algorithm = "jenkins".into();
            }
            "shards" => ext.shards = num(val)? as usize,
            _ => return Err(usage(format!("Illegal suboption \"{opt}\""))),
        }
    }
    if ext.hot_lru_pct + ext.warm_lru_pct > 80
        || !(1..80).contains(&ext.hot_lru_pct)
        || !(1..80).contains(&ext.warm_lru_pct)
    {
        return Err(usage(
            "hot_lru_pct + warm_lru_pct must be between 2 and 80, each 1..79",
        ));
    }
    Ok(())
}

impl Config {
    /// Parses the process arguments (`argv[0]` first), merging `--config-file` first so the
    /// command line wins.
    pub fn from_args<I, T>(argv: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        let argv: Vec<String> = argv.into_iter().map(Into::into).collect();
        let first = Args::try_parse_from(&argv).map_err(|e| ConfigError {
            msg: e.to_string(),
            code: if e.use_stderr() { EX_USAGE } else { 0 },
        })?;
        let args = match &first.config_file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| bad(format!("cannot read config file {}: {e}", path.display())))?;
                let mut merged = vec![argv.first().cloned().unwrap_or_default()];
                merged.extend(config_file_args(&text));
                merged.extend(argv.iter().skip(1).cloned());
                Args::try_parse_from(&merged)
                    .map_err(|e| usage(format!("{}: {e}", path.display())))?
            }
            None => first,
        };
        Config::from_parsed(args)
    }

    /// Validates parsed arguments.
    pub fn from_parsed(a: Args) -> Result<Config, ConfigError> {
        if a.port > 65535 || a.port < -1 {
            return Err(usage(format!("ERROR: Invalid port number {}.", a.port)));
        }
        if a.udp_port != 0 {
            return Err(usage("UDP is not supported: use -U 0 (the default)"));
        }
        let item_size_max = parse_size(&a.max_item_size)
            .ok_or_else(|| usage(format!("Invalid value for -I: {}", a.max_item_size)))?;
        if item_size_max < 1024 {
            return Err(usage("Item max size cannot be less than 1024 bytes."));
        }
        if item_size_max > 1024 * 1024 * 1024 {
            return Err(usage("Cannot set item size limit higher than a gigabyte."));
        }
        let memory_limit = (a.memory_limit as usize).saturating_mul(1024 * 1024);
        if item_size_max > memory_limit / 2 {
            return Err(usage(
                "Cannot set item size limit higher than 1/2 of memory max.",
            ));
        }
        if a.growth_factor <= 1.0 || !a.growth_factor.is_finite() {
            return Err(bad("Factor must be greater than 1"));
        }
        if a.min_size == 0 {
            return Err(bad("Chunk size must be greater than 0"));
        }
        if a.conn_limit == 0 {
            return Err(bad("Number of connections must be greater than 0"));
        }
        if a.reqs_per_event == 0 {
            return Err(bad("Number of requests per event must be greater than 0"));
        }
        let threads = match a.threads {
            Some(0) => return Err(bad("Number of threads must be greater than 0")),
            Some(t) => t as usize,
            None => std::thread::available_parallelism().map_or(4, |n| n.get()),
        };
        let protocol = match a.protocol.as_str() {
            "auto" => Protocol::Auto,
            "ascii" => Protocol::Ascii,
            "binary" => Protocol::Binary,
            other => {
                return Err(usage(format!(
                    "Invalid value for binding protocol: {other}\n -- should be one of auto, binary, or ascii"
                )))
            }
        };
        let protocol = if a.sasl {
            if protocol == Protocol::Ascii {
                return Err(usage(
                    "ERROR: You cannot allow the ASCII protocol while using SASL.",
                ));
            }
            Protocol::Binary
        } else if a.auth_file.is_some() {
            if protocol == Protocol::Binary {
                return Err(usage(
                    "ERROR: You cannot allow the BINARY protocol while using ascii authentication tokens.",
                ));
            }
            Protocol::Ascii
        } else {
            protocol
        };
        let cluster = ClusterSettings {
            nodes: if a.cluster_nodes.is_empty() {
                None
            } else {
                Some(
                    crate::cluster::NodeList::parse_args(&a.cluster_nodes)
                        .map_err(|e| usage(format!("--cluster-nodes: {}", e.detail())))?,
                )
            },
            file: a.cluster_file.clone(),
            state_dir: a.state_dir.clone(),
            health_check: None,
            admin_listen: match &a.admin_listen {
                None => None,
                Some(s) => Some(s.parse().map_err(|_| {
                    usage(format!(
                        "--admin-listen: expected HOST:PORT (an IP address), got {s}"
                    ))
                })?),
            },
        };
        let cluster = ClusterSettings {
            health_check: match a.cluster_health_check {
                None => None,
                Some(s) if s.is_finite() && (0.05..=86400.0).contains(&s) => {
                    Some(std::time::Duration::from_secs_f64(s))
                }
                Some(s) => {
                    return Err(usage(format!(
                        "--cluster-health-check: {s} is not a number of seconds in 0.05..=86400"
                    )))
                }
            },
            ..cluster
        };
        if cluster.nodes.is_some() && cluster.file.is_some() {
            return Err(usage("--cluster-nodes and --cluster-file are exclusive"));
        }
        let unix_mask = u32::from_str_radix(&a.unix_mask, 8)
            .map_err(|_| usage(format!("Invalid value for -a: {}", a.unix_mask)))?;
        let default_port = match a.port {
            p if p > 0 => Some(p as u16),
            -1 => Some(0),
            _ => None,
        };
        let listen = parse_listen(&a.listen, default_port)?;
        let mut ext = Extended::default();
        parse_extended(&a.extended, &mut ext)?;
        Ok(Config {
            port: a.port,
            udp_port: a.udp_port,
            unix_socket: a.unix_socket,
            unix_mask,
            inter: (!a.listen.is_empty()).then(|| a.listen.join(",")),
            listen,
            daemon: a.daemon,
            coredumps: a.coredumps,
            user: a.user,
            memory_limit,
            evictions: !a.disable_evictions,
            large_pages: a.large_pages,
            maxconns: a.conn_limit as usize,
            lock_memory: a.lock_memory,
            verbose: a.verbose,
            pidfile: a.pidfile,
            growth_factor: a.growth_factor,
            min_size: a.min_size as usize,
            threads,
            reqs_per_event: a.reqs_per_event as usize,
            cas_enabled: !a.disable_cas,
            backlog: a.backlog,
            protocol,
            item_size_max,
            sasl: a.sasl,
            flush_enabled: !a.disable_flush_all,
            dump_enabled: !a.disable_dumping,
            watch_enabled: !a.disable_watch,
            shutdown_enabled: a.enable_shutdown,
            prefix_delimiter: a.prefix_delimiter,
            credentials_file: a.auth_file.clone().or(a.sasl_pwdb.clone()).or_else(|| {
                a.sasl
                    .then(|| std::env::var_os("MEMCACHED_SASL_PWDB").map(PathBuf::from))
                    .flatten()
            }),
            auth_file: a.auth_file,
            ext,
            cluster,
        })
    }

    /// Page size: 1 MB, or `-I` when larger.
    pub fn page_size(&self) -> usize {
        self.item_size_max.max(1024 * 1024)
    }

    /// The store's construction parameters.
    pub fn store_config(&self) -> crate::store::StoreConfig {
        crate::store::StoreConfig {
            memory_limit: self.memory_limit,
            item_size_max: self.item_size_max,
            page_size: self.page_size(),
            min_size: self.min_size,
            growth_factor: self.growth_factor,
            evictions: self.evictions,
            large_pages: self.large_pages,
            hot_lru_pct: self.ext.hot_lru_pct,
            warm_lru_pct: self.ext.warm_lru_pct,
            slab_automove: if self.ext.slab_reassign {
                self.ext.slab_automove
            } else {
                0
            },
            shards: self.ext.shards,
            threads: self.threads,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(args: &[&str]) -> Result<Config, ConfigError> {
        let mut v = vec!["ferrocache"];
        v.extend_from_slice(args);
        Config::from_args(v)
    }

    #[test]
    fn defaults_match_memcached() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.port, 11211);
        assert_eq!(c.memory_limit, 64 << 20);
        assert_eq!(c.maxconns, 1024);
        assert_eq!(c.item_size_max, 1 << 20);
        assert_eq!(c.protocol, Protocol::Auto);
        assert!(c.evictions);
    }

    #[test]
    fn short_and_long_options() {
        let c = cfg(&[
            "-p",
            "1234",
            "-m",
            "128",
            "-c",
            "10",
            "-t",
            "3",
            "-I",
            "2m",
            "-M",
            "-vv",
            "-o",
            "slab_reassign,slab_automove=2,idle_timeout=5",
            "--listen=127.0.0.1,::1",
            "-l",
            "localhost:99",
        ])
        .unwrap();
        assert_eq!(c.port, 1234);
        assert_eq!(c.memory_limit, 128 << 20);
        assert_eq!(c.threads, 3);
        assert_eq!(c.item_size_max, 2 << 20);
        assert!(!c.evictions);
        assert_eq!(c.verbose, 2);
        assert_eq!(c.ext.slab_automove, 2);
        assert_eq!(c.ext.idle_timeout, 5);
        assert_eq!(c.listen.len(), 3);
        assert_eq!(
            c.listen[2],
            ListenAddr {
                host: "localhost".into(),
                port: Some(99)
            }
        );
        assert_eq!(c.listen[1].host, "::1");
    }

    #[test]
    fn errors_name_the_option() {
        let e = cfg(&["-o", "bogus"]).unwrap_err();
        assert_eq!(e.code, EX_USAGE);
        assert!(e.msg.contains("bogus"));
        assert_eq!(cfg(&["-B", "foo"]).unwrap_err().code, EX_USAGE);
        assert!(cfg(&["-I", "512"]).unwrap_err().msg.contains("1024"));
        assert!(cfg(&["-t", "0"]).is_err());
        assert!(cfg(&["-m", "notanumber"]).is_err());
        assert!(cfg(&["-U", "11211"]).unwrap_err().msg.contains("UDP"));
        assert!(cfg(&["-S", "-B", "ascii"]).is_err());
    }

    #[test]
    fn config_file_format() {
        let args = config_file_args("# comment\n-d\nlogfile /var/log/memcached.log\n-m 64\n-p 11211 # port\n-u memcache\n\n-l 127.0.0.1\n");
        assert_eq!(
            args,
            vec![
                "-d",
                "-m",
                "64",
                "-p",
                "11211",
                "-u",
                "memcache",
                "-l",
                "127.0.0.1"
            ]
        );
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1m"), Some(1 << 20));
        assert_eq!(parse_size("512k"), Some(512 << 10));
        assert_eq!(parse_size("2048"), Some(2048));
        assert_eq!(parse_size("x"), None);
    }
}
