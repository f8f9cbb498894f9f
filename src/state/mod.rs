//! Owns: process-wide state shared by every thread, as typed parts with private fields — the
//! config, the store, the server clock, runtime settings (`settings`), connection accounting
//! (`conns`), per-thread counters, shutdown and delayed-flush requests, the credentials in force,
//! the served cluster config and the log streams `watch` reads (`logger`).
//! Does not: touch sockets or spawn threads (reloads read files; see `auth` and `cluster::state`).

mod conns;
pub mod logger;
mod settings;

pub use conns::{ConnInfo, Connections, Phase};
pub use logger::Logger;
pub use settings::{DisplayOnly, Settings};

use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::RwLock;

use crate::auth::{cyrus, Credentials, CredentialsError};
use crate::cluster::state::ClusterState;
use crate::config::Config;
use crate::stats::{Latency, ThreadGauges, ThreadStats};
use crate::store::exptime::CLOCK_START;
use crate::store::Store;

/// The server clock: seconds since start, ticked by the maintainer thread. A warm restart
/// resumes the saving process's clock (as memcached's restart keeps its `process_started`), so
/// server times saved with items keep their meaning and `uptime` goes on.
#[derive(Debug)]
pub struct Clock {
    /// Unix time at which server time was 0.
    started_unix: AtomicI64,
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
            started_unix: AtomicI64::new(unix_now() - i64::from(CLOCK_START)),
            now: AtomicU32::new(CLOCK_START),
        }
    }
    #[inline]
    pub fn now(&self) -> u32 {
        self.now.load(Ordering::Relaxed)
    }
    /// Unix time at which server time was 0.
    #[inline]
    pub fn started_unix(&self) -> i64 {
        self.started_unix.load(Ordering::Relaxed)
    }
    /// Re-reads the system clock (never moves backwards).
    pub fn tick(&self) {
        let rel = (unix_now() - self.started_unix()).max(i64::from(CLOCK_START));
        self.now
            .fetch_max(rel.min(i64::from(u32::MAX)) as u32, Ordering::Relaxed);
    }
    /// Goes on with the clock of a process that started at `started_unix` (a warm restart,
    /// before anything is served): server time is then that process's, as if it had run on.
    /// Server time never moves backwards, so with the system clock set back it stays put.
    pub fn resume(&self, started_unix: i64) {
        self.started_unix.store(started_unix, Ordering::Relaxed);
        self.tick();
    }
    /// Unix time of server time `rel`.
    pub fn to_unix(&self, rel: u32) -> i64 {
        self.started_unix() + i64::from(rel)
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

/// Shutdown requests (signals or the `shutdown` command).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shutdown {
    None = 0,
    Now = 1,
    Graceful = 2,
}

/// Everything the workers share, in typed parts; every field is reached through a method.
#[derive(Debug)]
pub struct Shared {
    config: Config,
    store: Store,
    clock: Clock,
    settings: Settings,
    conns: Connections,
    thread_stats: Box<[ThreadStats]>,
    /// One gauge block per worker thread (each written by its thread only; never reset).
    thread_gauges: Box<[ThreadGauges]>,
    /// One latency histogram block per worker thread (filled only with `--metrics-listen`).
    thread_latency: Box<[Latency]>,
    /// Requests are timed into `thread_latency` (once a metrics endpoint serves them).
    timing: std::sync::atomic::AtomicBool,
    /// Server time at which a delayed `flush_all` takes effect (0 = none).
    pending_flush: AtomicU32,
    shutdown: AtomicU8,
    /// The credentials file of `-S`/`-Y` (or the sasldb), replaced whole on SIGHUP.
    credentials: RwLock<Option<Arc<Credentials>>>,
    /// The sasldb's stamp when it was last read: a login finding another re-reads it.
    sasldb_stamp: parking_lot::Mutex<Option<cyrus::Stamp>>,
    /// Auto Discovery.
    cluster: ClusterState,
    /// The log streams `watch` reads.
    logger: Arc<Logger>,
    /// TLS (`-Z`): the configuration new connections get, reloadable.
    tls: Option<crate::tls::TlsContext>,
}

impl Shared {
    /// The shared state for `config`; Auto Discovery off until `with_cluster`.
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
        let thread_stats = (0..config.threads + config.handshake_threads())
            .map(|_| ThreadStats::default())
            .collect();
        let store = Store::new(&config.store_config());
        let logger = Arc::new(Logger::new(
            config.threads,
            config.ext.worker_logbuf_size as usize,
        ));
        store.set_eviction_watch(logger.clone());
        // `-o track_sizes`: the `stats sizes` histogram is kept from the start.
        store.track_sizes(config.ext.track_sizes);
        Shared {
            store,
            logger,
            clock: Clock::new(),
            settings: Settings::new(&config),
            conns: Connections::default(),
            thread_stats,
            thread_gauges: (0..config.threads)
                .map(|_| ThreadGauges::default())
                .collect(),
            thread_latency: (0..config.threads).map(|_| Latency::default()).collect(),
            timing: std::sync::atomic::AtomicBool::new(false),
            pending_flush: AtomicU32::new(0),
            shutdown: AtomicU8::new(Shutdown::None as u8),
            credentials: RwLock::new(None),
            sasldb_stamp: parking_lot::Mutex::new(None),
            cluster: ClusterState::disabled(),
            tls: None,
            config,
        }
    }

    /// The same state serving `cluster` for Auto Discovery.
    pub fn with_cluster(mut self, cluster: ClusterState) -> Shared {
        self.cluster = cluster;
        self
    }

    /// The same state serving TLS (`-Z`).
    pub fn with_tls(mut self, tls: crate::tls::TlsContext) -> Shared {
        self.tls = Some(tls);
        self
    }

    /// TLS, when `-Z` enabled it.
    pub fn tls(&self) -> Option<&crate::tls::TlsContext> {
        self.tls.as_ref()
    }

    /// The validated settings, immutable after start-up.
    #[inline]
    pub fn config(&self) -> &Config {
        &self.config
    }
    #[inline]
    pub fn store(&self) -> &Store {
        &self.store
    }
    #[inline]
    pub fn clock(&self) -> &Clock {
        &self.clock
    }
    /// Settings changed at run time by admin commands.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }
    /// Connection counts and the `stats conns` registry.
    pub fn conns(&self) -> &Connections {
        &self.conns
    }
    /// One counter block per worker thread, then one per TLS handshake thread (each written by
    /// its thread only).
    #[inline]
    pub fn thread_stats(&self) -> &[ThreadStats] {
        &self.thread_stats
    }
    /// The log streams behind `watch`.
    #[inline]
    pub fn logger(&self) -> &Logger {
        &self.logger
    }
    /// One gauge block per worker thread: what its connections hold now.
    #[inline]
    pub fn thread_gauges(&self) -> &[ThreadGauges] {
        &self.thread_gauges
    }
    /// One latency histogram block per worker thread (see `/metrics`).
    #[inline]
    pub fn thread_latency(&self) -> &[Latency] {
        &self.thread_latency
    }
    /// Whether workers time requests into their latency histograms.
    #[inline]
    pub fn timing(&self) -> bool {
        self.timing.load(Ordering::Relaxed)
    }
    /// Starts timing requests (a metrics endpoint is serving).
    pub fn start_timing(&self) {
        self.timing.store(true, Ordering::Relaxed);
    }
    /// The served Auto Discovery config.
    pub fn cluster(&self) -> &ClusterState {
        &self.cluster
    }

    /// The credentials in force now. With a sasldb, a login first re-reads it if it changed
    /// (as cyrus opens it per login): users added with `saslpasswd2` can log in at once.
    pub fn credentials(&self) -> Option<Arc<Credentials>> {
        if let Some(conf) = &self.config.sasl_conf {
            let now = cyrus::stamp(&conf.sasldb);
            let mut seen = self.sasldb_stamp.lock();
            if seen.as_ref() != Some(&now) {
                *seen = Some(now);
                drop(seen);
                match self.reload_credentials() {
                    Ok(n) => log::info!("{}: changed, {n} user(s)", conf.sasldb.display()),
                    Err(e) => log::error!("keeping the previous SASL users: {e}"),
                }
            }
        }
        self.credentials.read().clone()
    }

    /// Loads the credentials file or the sasldb (if any) and puts it in force; on error the old
    /// one stays.
    pub fn reload_credentials(&self) -> Result<usize, CredentialsError> {
        let (c, path) = match (&self.config.credentials_file, &self.config.sasl_conf) {
            (Some(path), _) => (Credentials::load(path)?, path),
            (None, Some(conf)) => {
                *self.sasldb_stamp.lock() = Some(cyrus::stamp(&conf.sasldb));
                (conf.load()?, &conf.sasldb)
            }
            (None, None) => return Ok(0),
        };
        if c.plaintext_entries() > 0 {
            let advice = if self.config.sasl_conf.is_some() {
                "sasldb passwords are stored in clear; use `ferrocache passwd USER` and --sasl-pwdb to store hashes instead"
            } else {
                "use `ferrocache passwd USER` to store hashes instead"
            };
            log::warn!(
                "{}: {} plaintext password(s); {advice}",
                path.display(),
                c.plaintext_entries()
            );
        }
        let n = c.len();
        *self.credentials.write() = Some(Arc::new(c));
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

    /// Schedules a delayed `flush_all` at server time `at`, or cancels one (`None`).
    pub fn schedule_flush(&self, at: Option<u32>) {
        self.pending_flush.store(at.unwrap_or(0), Ordering::Relaxed);
    }

    /// The server time of a delayed `flush_all` still to come (0 = none).
    pub fn pending_flush(&self) -> u32 {
        self.pending_flush.load(Ordering::Relaxed)
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
