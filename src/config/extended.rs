//! Owns: memcached's `-o` settings — their defaults, names, value rules and errors — and the
//! size syntax (`64m`) shared with `-I`.

use super::{bad, usage, ConfigError};

/// `-o` settings.
#[derive(Clone, Debug)]
pub struct Extended {
    pub maxconns_fast: bool,
    pub hashpower: u32,
    pub slab_reassign: bool,
    pub slab_automove: u8,
    pub slab_automove_ratio: f64,
    pub slab_automove_window: u32,
    /// Items larger than this are chained (bytes; a divisor of the 1 MB page and of `-I`).
    pub slab_chunk_max: usize,
    /// `slab_chunk_max` was given (`no_modern` then keeps it, and a large `-I` too).
    pub slab_chunk_max_set: bool,
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
    /// `-Z` and the `ssl_*` settings.
    pub ssl: crate::tls::TlsSettings,
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
            slab_chunk_max_set: false,
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
            ssl: crate::tls::TlsSettings::default(),
        }
    }
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

pub(super) fn parse_extended(opts: &[String], ext: &mut Extended) -> Result<(), ConfigError> {
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
            "slab_chunk_max" => {
                ext.slab_chunk_max = num(val)? as usize;
                ext.slab_chunk_max_set = true;
            }
            "no_chunked_items" => ext.slab_chunk_max = super::PAGE_SIZE,
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
            | "lru_segmented"
            | "inline_ascii_resp"
            | "no_inline_ascii_resp"
            | "drop_privileges"
            | "no_drop_privileges"
            | "resp_obj_mem_limit"
            | "sock_cookie_id" => {}
            "modern" => {}
            "no_modern" => {
                if !ext.slab_chunk_max_set {
                    ext.slab_chunk_max = super::PAGE_SIZE;
                }
                ext.slab_reassign = false;
                ext.slab_automove = 0;
                ext.maxconns_fast = false;
                ext.lru_segmented = false;
                ext.lru_maintainer = false;
                ext.lru_crawler = false;
                ext.hash_algorithm = "jenkins".into();
            }
            "shards" => ext.shards = num(val)? as usize,
            n if n.starts_with("ssl_") => parse_ssl(n, val, &mut ext.ssl)?,
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

/// One `ssl_*` setting, with memcached's messages (they are checked whether or not `-Z` is given,
/// as memcached parses them).
fn parse_ssl(
    name: &str,
    val: Option<&str>,
    ssl: &mut crate::tls::TlsSettings,
) -> Result<(), ConfigError> {
    let need = |v: Option<&str>| -> Result<String, ConfigError> {
        v.map(str::to_string)
            .ok_or_else(|| bad(format!("Missing {name} argument")))
    };
    let int = |v: Option<&str>| -> Result<i64, ConfigError> {
        let v = need(v)?;
        crate::num::strtol32(v.as_bytes())
            .map(i64::from)
            .ok_or_else(|| bad(format!("could not parse argument to {name}")))
    };
    match name {
        "ssl_chain_cert" => ssl.chain_cert = Some(need(val)?.into()),
        "ssl_key" => ssl.key = Some(need(val)?.into()),
        "ssl_verify_mode" => match int(val)? {
            v @ 0..=3 => ssl.verify_mode = v as u8,
            _ => {
                return Err(bad(
                    "Invalid ssl_verify_mode. Use help to see valid options.",
                ))
            }
        },
        "ssl_keyformat" => {
            ssl.keyformat = i32::try_from(int(val)?)
                .map_err(|_| bad("could not parse argument to ssl_keyformat"))?
        }
        "ssl_ciphers" => ssl.ciphers = Some(need(val)?),
        "ssl_ca_cert" => ssl.ca_cert = Some(need(val)?.into()),
        "ssl_wbuf_size" => {
            let v = need(val)?;
            let kb = crate::num::strtoul32(v.as_bytes())
                .ok_or_else(|| bad("could not parse argument to ssl_wbuf_size"))?;
            ssl.wbuf_size = kb.wrapping_mul(1024);
        }
        "ssl_session_cache" => ssl.session_cache = true,
        "ssl_kernel_tls" => ssl.kernel_tls = true,
        "ssl_min_version" => match int(val)? {
            v @ 0..=3 => ssl.min_version = v as u8,
            _ => {
                return Err(bad(
                    "Invalid ssl_min_version. Use help to see valid options.",
                ))
            }
        },
        _ => return Err(usage(format!("Illegal suboption \"{name}\""))),
    }
    Ok(())
}
