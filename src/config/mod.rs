//! Owns: the validated, immutable `Config` — memcached's command line and `--config-file` merged,
//! checked and turned into settings (listen addresses, limits, the store's configuration), with
//! memcached's start-up errors and exit codes. The clap definitions are in `args`, the `-o`
//! settings in `extended`.
//! Does not: act on the options (see `server`).

mod args;
mod extended;
#[cfg(test)]
mod tests;

pub use args::{config_file_args, Args};
use extended::parse_extended;
pub use extended::{parse_size, Extended};

use std::path::PathBuf;

use clap::Parser;

use crate::auth::cyrus::{self, SaslConf};
use crate::cluster::state::ClusterSettings;

/// Exit code for usage errors (`EX_USAGE`), as memcached uses.
pub const EX_USAGE: i32 = 64;

/// The version clients see in `version` and `stats`: three plain numbers (clients parse it).
pub const PROTOCOL_VERSION: &str = "1.6.18";

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
    /// Prefixed `notls:`: plaintext beside TLS listeners (`-Z`).
    pub notls: bool,
}

/// Validated settings, immutable after start-up.
#[derive(Clone, Debug)]
pub struct Config {
    pub port: i32,
    /// `-U`: 0 off, -1 any free port.
    pub udp_port: i32,
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
    /// `-e`: where a graceful stop saves the cache and a start restores it from.
    pub memory_file: Option<PathBuf>,
    pub growth_factor: f64,
    pub min_size: usize,
    pub threads: usize,
    pub reqs_per_event: usize,
    pub cas_enabled: bool,
    pub backlog: i32,
    pub protocol: Protocol,
    pub item_size_max: usize,
    /// Bytes counted as malloced before any page: memcached's test-suite hook, the
    /// `T_MEMD_INITIAL_MALLOC` environment variable (its t/64bit.t fakes a 4 GB heap with it).
    pub initial_malloc: usize,
    pub sasl: bool,
    pub flush_enabled: bool,
    pub dump_enabled: bool,
    pub watch_enabled: bool,
    pub shutdown_enabled: bool,
    pub prefix_delimiter: String,
    pub auth_file: Option<PathBuf>,
    /// The credentials file in use: `-Y`, else `--sasl-pwdb`, else `$MEMCACHED_SASL_PWDB` (with `-S`).
    pub credentials_file: Option<PathBuf>,
    /// With `-S` and no credentials file: cyrus' config (`$SASL_CONF_PATH`) and its sasldb.
    pub sasl_conf: Option<SaslConf>,
    pub ext: Extended,
    pub cluster: ClusterSettings,
    /// `--metrics-listen`: where `GET /metrics` is served (Prometheus' text format).
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// `--cluster-health-tls`: the health check's probes speak TLS with these files.
    pub cluster_health_tls: Option<crate::tls::ClientSettings>,
}

/// A start-up error: message and exit code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{msg}")]
pub struct ConfigError {
    pub msg: String,
    pub code: i32,
}

/// memcached's slab page size.
pub const PAGE_SIZE: usize = 1024 * 1024;

/// memcached's rules for `slab_chunk_max` against `-I` and the page size.
fn check_chunk_max(ext: &Extended, item_size_max: usize) -> Result<(), ConfigError> {
    let max = ext.slab_chunk_max;
    if max > item_size_max {
        return Err(usage(format!(
            "slab_chunk_max (bytes: {max}) cannot be larger than -I (item_size_max {item_size_max})"
        )));
    }
    if max == 0 || !item_size_max.is_multiple_of(max) {
        return Err(usage(format!(
            "-I (item_size_max: {item_size_max}) must be evenly divisible by slab_chunk_max (bytes: {max})"
        )));
    }
    if !PAGE_SIZE.is_multiple_of(max) {
        return Err(usage(format!(
            "slab_chunk_max (bytes: {max}) must divide evenly into {PAGE_SIZE} (slab_page_size)"
        )));
    }
    Ok(())
}

pub(crate) fn usage(msg: impl Into<String>) -> ConfigError {
    ConfigError {
        msg: msg.into(),
        code: EX_USAGE,
    }
}

pub(crate) fn bad(msg: impl Into<String>) -> ConfigError {
    ConfigError {
        msg: msg.into(),
        code: 1,
    }
}

fn parse_listen(
    items: &[String],
    default_port: Option<u16>,
    tls: bool,
) -> Result<Vec<ListenAddr>, ConfigError> {
    let mut out = Vec::new();
    for item in items {
        for part in item
            .split([',', ';'])
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            // As memcached: `notls:` (with any separator after it) only with -Z.
            let notls = part.starts_with("notls");
            if notls && !tls {
                return Err(bad("'notls' option is valid only when SSL is enabled"));
            }
            let part = if notls {
                part.get(6..).unwrap_or("")
            } else {
                part
            };
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
                notls,
            });
        }
    }
    Ok(out)
}

/// `--cluster-health-tls` and its files (the CA defaults to `-o ssl_ca_cert`).
fn health_tls(a: &Args, ext: &Extended) -> Result<Option<crate::tls::ClientSettings>, ConfigError> {
    let given = a.cluster_health_tls_ca.is_some()
        || a.cluster_health_tls_cert.is_some()
        || a.cluster_health_tls_key.is_some()
        || a.cluster_health_tls_server_name.is_some();
    if !a.cluster_health_tls {
        return match given {
            true => Err(usage(
                "--cluster-health-tls-* options need --cluster-health-tls",
            )),
            false => Ok(None),
        };
    }
    let Some(ca) = a.cluster_health_tls_ca.clone().or(ext.ssl.ca_cert.clone()) else {
        return Err(usage(
            "--cluster-health-tls needs --cluster-health-tls-ca FILE (or -o ssl_ca_cert)",
        ));
    };
    Ok(Some(crate::tls::ClientSettings {
        ca,
        cert: a.cluster_health_tls_cert.clone(),
        key: a.cluster_health_tls_key.clone(),
        server_name: a.cluster_health_tls_server_name.clone(),
    }))
}

impl Config {
    /// The TLS handshake threads (`server::handshake`): one per four workers with `-Z`, else
    /// none. Each has a counter block after the workers' (`state::Shared::thread_stats`).
    pub fn handshake_threads(&self) -> usize {
        if self.ext.ssl.enabled {
            self.threads.div_ceil(4)
        } else {
            0
        }
    }

    /// How many worker threads read each UDP socket (`num_threads_per_udp`): every worker, or
    /// one per socket when `-l` lists several interfaces, as memcached does.
    pub fn threads_per_udp(&self) -> usize {
        if self.inter.as_deref().is_some_and(|i| i.contains(',')) {
            1
        } else {
            self.threads
        }
    }

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
        Config::from_command_line(first, &argv)
    }

    /// Completes arguments already parsed from `argv`: with `--config-file`, parses again with
    /// the file's options first (so the command line wins); then validates.
    pub fn from_command_line(first: Args, argv: &[String]) -> Result<Config, ConfigError> {
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
        // As memcached: `-U` alone also moves the TCP port; a UNIX socket disables UDP.
        let port = match a.port {
            Some(p) => p,
            None if a.udp_port != 0 => a.udp_port,
            None => 11211,
        };
        if !(-1..=65535).contains(&port) {
            return Err(usage(format!("ERROR: Invalid port number {port}.")));
        }
        if !(-1..=65535).contains(&a.udp_port) {
            return Err(usage(format!("ERROR: Invalid port number {}.", a.udp_port)));
        }
        let udp_port = if a.unix_socket.is_some() {
            0
        } else {
            a.udp_port
        };
        if a.sasl && a.udp_port != 0 {
            return Err(usage(
                "ERROR: Cannot enable UDP while using binary SASL authentication.",
            ));
        }
        if a.auth_file.is_some() && a.udp_port != 0 {
            return Err(usage(
                "Cannot use UDP with ascii authentication enabled (-U 0 to disable)",
            ));
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
        let protocol = match a.protocol.as_deref().unwrap_or("auto") {
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
            // As memcached: -S means binary, and a -B naming anything else is refused.
            if a.protocol.is_some() && protocol != Protocol::Binary {
                return Err(usage(
                    "ERROR: You cannot allow the ASCII protocol while using SASL.",
                ));
            }
            Protocol::Binary
        } else if a.auth_file.is_some() {
            if a.protocol.is_some() && protocol != Protocol::Ascii {
                return Err(usage(
                    "ERROR: You cannot allow the BINARY protocol while using ascii authentication tokens.",
                ));
            }
            Protocol::Ascii
        } else {
            protocol
        };
        let credentials_file = a.auth_file.clone().or(a.sasl_pwdb.clone()).or_else(|| {
            a.sasl
                .then(|| std::env::var_os("MEMCACHED_SASL_PWDB").map(PathBuf::from))
                .flatten()
        });
        let sasl_conf = if a.sasl && credentials_file.is_none() {
            let conf_path = std::env::var_os("SASL_CONF_PATH");
            let conf = SaslConf::find(conf_path.as_deref())
                .map_err(|e| bad(format!("ERROR: SASL: {e}\n{}", cyrus::INIT_FAILED)))?;
            Some(conf)
        } else {
            None
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
            admin_notls: a
                .admin_listen
                .as_deref()
                .is_some_and(|s| s.starts_with("notls:")),
            admin_listen: match &a.admin_listen {
                None => None,
                Some(s) => Some(s.trim_start_matches("notls:").parse().map_err(|_| {
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
        let default_port = match port {
            p if p > 0 => Some(p as u16),
            -1 => Some(0),
            _ => None,
        };
        let mut ext = Extended::default();
        parse_extended(&a.extended, &mut ext)?;
        ext.ssl.enabled = a.enable_ssl;
        let listen = parse_listen(&a.listen, default_port, a.enable_ssl)?;
        check_chunk_max(&ext, item_size_max)?;
        let metrics_listen = match &a.metrics_listen {
            None => None,
            Some(s) => Some(s.parse().map_err(|_| {
                usage(format!(
                    "--metrics-listen: expected ADDR:PORT (an IP address), got {s}"
                ))
            })?),
        };
        let cluster_health_tls = health_tls(&a, &ext)?;
        Ok(Config {
            cluster_health_tls,
            metrics_listen,
            port,
            udp_port,
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
            memory_file: a.memory_file,
            growth_factor: a.growth_factor,
            min_size: a.min_size as usize,
            threads,
            reqs_per_event: a.reqs_per_event as usize,
            cas_enabled: !a.disable_cas,
            backlog: a.backlog,
            protocol,
            item_size_max,
            initial_malloc: std::env::var("T_MEMD_INITIAL_MALLOC")
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0),
            sasl: a.sasl,
            flush_enabled: !a.disable_flush_all,
            dump_enabled: !a.disable_dumping,
            watch_enabled: !a.disable_watch,
            shutdown_enabled: a.enable_shutdown,
            prefix_delimiter: a.prefix_delimiter,
            credentials_file,
            sasl_conf,
            auth_file: a.auth_file,
            ext,
            cluster,
        })
    }

    /// Page size: 1 MB whatever `-I` (items larger than `slab_chunk_max` are chained).
    pub fn page_size(&self) -> usize {
        PAGE_SIZE
    }

    /// The store's construction parameters.
    pub fn store_config(&self) -> crate::store::StoreConfig {
        crate::store::StoreConfig {
            memory_limit: self.memory_limit,
            item_size_max: self.item_size_max,
            use_cas: self.cas_enabled,
            slab_chunk_max: self.ext.slab_chunk_max,
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
            lru_segmented: self.ext.lru_segmented,
            temp_lru: self.ext.temp_lru,
            temporary_ttl: self.ext.temporary_ttl,
            initial_malloc: self.initial_malloc,
            hash_power: self.ext.hashpower,
            shards: self.ext.shards,
            threads: self.threads,
        }
    }
}
