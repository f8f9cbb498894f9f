//! Owns: process-wide state shared by every thread — the config, the store, the server clock,
//! per-thread counters, connection accounting, the connection registry behind `stats conns`, the
//! credentials in force and the served cluster config.
//! Does not: touch sockets or spawn threads (reloads read files; see `auth` and `cluster::state`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

use crate::config::Config;
use crate::stats::{PrefixTable, ThreadStats};
use crate::store::exptime::CLOCK_START;
use crate::store::Store;

/// The server clock: seconds since start, ticked by the maintainer thread.
#[derive(Debug)]
pub struct Clock {
    /// Unix time at which server time was 0.
    pub started_unix: i64,
    now: AtomicU32,
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Clock {
    pub fn new() -> Clock {
        Clock {
            started_unix: unix_now() - i64::from(CLOCK_START),
            now: AtomicU32::new(CLOCK_START),
        }
    }
    #[inline]
    pub fn now(&self) -> u32 {
        self.now.load(Ordering::Relaxed)
    }
    /// Re-reads the system clock (never moves backwards).
    pub fn tick(&self) {
        let rel = (unix_now() - self.started_unix).max(i64::from(CLOCK_START));
        self.now.fetch_max(rel as u32, Ordering::Relaxed);
    }
    /// Unix time of server time `rel`.
    pub fn to_unix(&self, rel: u32) -> i64 {
        self.started_unix + i64::from(rel)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// What `stats conns` shows of one socket.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub addr: String,
    pub listen_addr: Option<String>,
    pub last_cmd: Arc<AtomicU32>,
}

/// Shutdown requests (signals or the `shutdown` command).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shutdown {
    None = 0,
    Now = 1,
    Graceful = 2,
}

/// Runtime-adjustable settings (admin commands change them).
#[derive(Debug)]
pub struct Runtime {
    pub verbosity: AtomicU32,
    pub lru_crawler: AtomicBool,
    pub lru_crawler_sleep: AtomicU32,
    pub lru_crawler_tocrawl: AtomicU32,
    pub crawl_requested: AtomicBool,
    pub hot_max_factor: Mutex<f64>,
    pub warm_max_factor: Mutex<f64>,
    pub lru_segmented: AtomicBool,
    pub temp_lru: AtomicBool,
    pub temporary_ttl: AtomicU32,
    pub slab_automove_ratio: Mutex<f64>,
    /// `stats detail on|off` and its per-prefix counters.
    pub detail_enabled: AtomicBool,
    pub prefixes: Mutex<PrefixTable>,
    /// `stats sizes_enable|disable` (on top of `-o track_sizes`).
    pub sizes_enabled: AtomicBool,
}

/// Everything the workers share.
#[derive(Debug)]
pub struct Shared {
    pub config: Config,
    pub store: Store,
    pub clock: Clock,
    pub runtime: Runtime,
    pub thread_stats: Box<[ThreadStats]>,
    pub curr_connections: AtomicUsize,
    pub total_connections: AtomicU64,
    pub rejected_connections: AtomicU64,
    pub listen_disabled_num: AtomicU64,
    pub accepting: AtomicBool,
    /// Server time at which a delayed `flush_all` takes effect (0 = none).
    pub pending_flush: AtomicU32,
    pub shutdown: AtomicU8,
    pub conns: Mutex<BTreeMap<i64, ConnInfo>>,
    pub started: std::time::Instant,
    /// The credentials file of `-S`/`-Y`, replaced whole on SIGHUP.
    pub credentials: parking_lot::RwLock<Option<std::sync::Arc<crate::auth::Credentials>>>,
    /// Auto Discovery.
    pub cluster: crate::cluster::state::ClusterState,
}

impl Shared {
    pub fn new(config: Config) -> Shared {
        if config.large_pages {
            // As memcached's -L: large pages here are transparent huge pages.
            match std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled") {
                Ok(s) if s.contains("[never]") => log::warn!(
                    "-L: transparent huge pages are disabled on this system; item memory uses ordinary pages"
                ),
                Ok(_) => {}
                Err(_) => log::warn!(
                    "-L: transparent huge pages not detected; item memory uses ordinary pages"
                ),
            }
        }
        let store = Store::new(&config.store_config());
        let runtime = Runtime {
            verbosity: AtomicU32::new(u32::from(config.verbose)),
            lru_crawler: AtomicBool::new(config.ext.lru_crawler),
            lru_crawler_sleep: AtomicU32::new(config.ext.lru_crawler_sleep),
            lru_crawler_tocrawl: AtomicU32::new(config.ext.lru_crawler_tocrawl),
            crawl_requested: AtomicBool::new(false),
            hot_max_factor: Mutex::new(config.ext.hot_max_factor),
            warm_max_factor: Mutex::new(config.ext.warm_max_factor),
            lru_segmented: AtomicBool::new(config.ext.lru_segmented),
            temp_lru: AtomicBool::new(config.ext.temp_lru),
            temporary_ttl: AtomicU32::new(config.ext.temporary_ttl),
            slab_automove_ratio: Mutex::new(config.ext.slab_automove_ratio),
            detail_enabled: AtomicBool::new(false),
            prefixes: Mutex::new(PrefixTable::default()),
            sizes_enabled: AtomicBool::new(false),
        };
        let thread_stats = (0..config.threads)
            .map(|_| ThreadStats::default())
            .collect();
        Shared {
            store,
            clock: Clock::new(),
            runtime,
            thread_stats,
            curr_connections: AtomicUsize::new(0),
            total_connections: AtomicU64::new(0),
            rejected_connections: AtomicU64::new(0),
            listen_disabled_num: AtomicU64::new(0),
            accepting: AtomicBool::new(true),
            pending_flush: AtomicU32::new(0),
            shutdown: AtomicU8::new(Shutdown::None as u8),
            conns: Mutex::new(BTreeMap::new()),
            started: std::time::Instant::now(),
            credentials: parking_lot::RwLock::new(None),
            cluster: crate::cluster::state::ClusterState::disabled(),
            config,
        }
    }

    /// The credentials in force now.
    pub fn credentials(&self) -> Option<std::sync::Arc<crate::auth::Credentials>> {
        self.credentials.read().clone()
    }

    /// Loads the credentials file (if any) and puts it in force; on error the old one stays.
    pub fn reload_credentials(&self) -> Result<usize, crate::auth::CredentialsError> {
        let Some(path) = self.config.credentials_file.as_deref() else {
            return Ok(0);
        };
        let c = crate::auth::Credentials::load(path)?;
        if c.plaintext_entries() > 0 {
            log::warn!(
                "{}: {} plaintext password(s); use `ferrocache passwd USER` to store hashes instead",
                path.display(),
                c.plaintext_entries()
            );
        }
        let n = c.len();
        *self.credentials.write() = Some(std::sync::Arc::new(c));
        Ok(n)
    }

    pub fn request_shutdown(&self, how: Shutdown) {
        self.shutdown.store(how as u8, Ordering::SeqCst);
    }

    pub fn shutdown_requested(&self) -> Shutdown {
        match self.shutdown.load(Ordering::SeqCst) {
            1 => Shutdown::Now,
            2 => Shutdown::Graceful,
            _ => Shutdown::None,
        }
    }

    /// Applies a due delayed flush (called by the maintainer each tick).
    pub fn apply_pending_flush(&self) {
        let at = self.pending_flush.load(Ordering::Relaxed);
        if at != 0 && self.clock.now() >= at {
            self.store.flush();
            self.pending_flush.store(0, Ordering::Relaxed);
        }
    }
}
