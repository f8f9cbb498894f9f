//! Owns: the daemon's start-up and shutdown sequence — `run` and `serve` call the steps in order
//! (process set-up, listeners, shared state, threads, the accept loop, an orderly stop).
//! Does not: do any step itself (each has its file below), parse or execute requests (see
//! `conn`, `exec`).
//!
//! Files: `process` (root rule, daemon, limits, privileges, pid/port files), `activation`
//! (sockets inherited from systemd), `listeners` (binding), `acceptor` (accept loop, `-c`, hand-off), `signals`, `pool` (worker threads),
//! `worker` (one worker's event loop), `conn` (one connection), `stream` (its socket),
//! `handshake` (TLS handshakes off the workers' loops),
//! `udp` (the `-U` sockets and datagrams), `verify` (the credential-verification pool), `maintainer`, `watcher` (the `watch`
//! connections and their log lines), `health` (cluster probes), `push`
//! (the `cluster push` client), `notify` (systemd notifications), `watchdog` (worker heartbeats
//! and systemd's watchdog), `reload` (what SIGHUP changes), `restart` (the `-e` files), `logging` (stderr and journald),
//! `metrics` (the Prometheus endpoint).

pub mod acceptor;
pub mod activation;
pub mod budget;
pub mod conn;
pub mod handshake;
pub mod health;
pub mod listeners;
pub mod logging;
pub mod maintainer;
pub mod metrics;
pub mod notify;
pub mod oom;
pub mod pinned;
pub mod pool;
pub mod process;
pub mod push;
pub mod reload;
pub mod restart;
pub mod signals;
pub mod stream;
pub mod supervise;
#[cfg(debug_assertions)]
pub mod testhooks;
pub mod udp;
pub mod verify;
pub mod watchdog;
pub mod watcher;
pub mod worker;

use std::io;
use std::sync::Arc;

use log::{info, warn};

use crate::config::{Config, ConfigError, EX_USAGE};
use crate::state::{Shared, Shutdown};
pub use acceptor::signal_shutdown;
use acceptor::Acceptor;
use handshake::Handshakers;
use listeners::Listener;
use pool::Workers;

/// Errors that stop start-up, with the exit code to use.
pub fn fail(msg: impl Into<String>, code: i32) -> ConfigError {
    ConfigError {
        msg: msg.into(),
        code,
    }
}

/// Starts the daemon and serves until a shutdown signal or command. Returns the exit code.
pub fn run(cfg: Config) -> Result<i32, ConfigError> {
    process::check_user(&cfg)?;
    process::daemonize(&cfg)?;
    notify::init();
    process::set_limits(&cfg);
    let inherited = activation::take()?;
    let listeners = listeners::bind_all(&cfg, inherited.listeners)?;
    let udp = udp::bind_all(&cfg, inherited.udp)?;
    process::drop_privileges(&cfg)?;
    process::write_pid_file(&cfg);
    let shared = Arc::new(shared_state(cfg)?);
    let code = serve(listeners, udp, shared.clone());
    process::remove_files(shared.config());
    code
}

/// The state every thread shares: the store, the served cluster config, the credentials.
fn shared_state(cfg: Config) -> Result<Shared, ConfigError> {
    let cluster = crate::cluster::state::ClusterState::start(&cfg.cluster)
        .map_err(|e| fail(format!("ERROR: {e}"), EX_USAGE))?;
    let mut shared = Shared::new(cfg).with_cluster(cluster);
    let ssl = &shared.config().ext.ssl;
    if ssl.enabled {
        if ssl.kernel_tls {
            warn!("ssl_kernel_tls: kernel TLS offload is not implemented; TLS runs in the daemon");
        }
        let tls = crate::tls::TlsContext::new(ssl.clone(), shared.clock().now())
            .map_err(|e| fail(e, EX_USAGE))?;
        shared = shared.with_tls(tls);
    }
    // Checked here so a file that does not load stops the start (the health thread loads its own).
    if let Some(c) = &shared.config().cluster_health_tls {
        crate::tls::ClientTls::new(c)
            .map_err(|e| fail(format!("--cluster-health-tls: {e}"), EX_USAGE))?;
    }
    if shared.config().sasl || shared.config().auth_file.is_some() {
        match shared.reload_credentials() {
            Ok(n) => match &shared.config().sasl_conf {
                Some(conf) => sasl_banner(conf, n),
                None => info!("loaded {n} credential(s)"),
            },
            Err(e) => {
                return Err(fail(
                    format!("ERROR: cannot load credentials: {e}"),
                    EX_USAGE,
                ))
            }
        }
    }
    restart::restore(&shared)?;
    Ok(shared)
}

/// What memcached's `-vv` says at SASL start-up, and what ferrocache read.
fn sasl_banner(conf: &crate::auth::cyrus::SaslConf, users: usize) {
    match &conf.file {
        Some(f) => info!("Reading configuration from: <{}>", f.display()),
        None => info!("SASL: no memcached.conf in SASL_CONF_PATH; cyrus defaults"),
    }
    if conf.sasldb.exists() {
        info!(
            "SASL: {users} user(s) from {} (re-read when it changes); mechanisms {}",
            conf.sasldb.display(),
            conf.mech_list()
        );
    } else {
        warn!(
            "SASL: {} does not exist yet: no user can log in until saslpasswd2 creates it",
            conf.sasldb.display()
        );
    }
}

/// Serves on `listeners` until shutdown, then stops accepting, lets the workers finish their
/// in-flight requests and joins the threads.
fn serve(
    listeners: Vec<Listener>,
    udp: Vec<std::net::UdpSocket>,
    sh: Arc<Shared>,
) -> Result<i32, ConfigError> {
    let io_err = |e: io::Error| fail(format!("server error: {e}"), 71);
    let (scraped, listeners): (Vec<Listener>, Vec<Listener>) = listeners
        .into_iter()
        .partition(|l| l.role == listeners::Role::Metrics);
    let metrics_names: Vec<String> = scraped.iter().map(|l| l.name.clone()).collect();
    let mut acceptor = Acceptor::new(listeners, &sh).map_err(io_err)?;
    let udp_addrs: Vec<std::net::SocketAddr> =
        udp.iter().filter_map(|s| s.local_addr().ok()).collect();
    process::write_port_file(acceptor.listeners(), &udp_addrs);
    let cfg = sh.config();
    let ports = udp::spread(udp, cfg.threads, cfg.threads_per_udp(), &sh).map_err(io_err)?;
    let verifier = verify::Verifier::start(2).map_err(io_err)?;
    let (watchers, watcher) = watcher::start(&sh).map_err(io_err)?;
    let beats = watchdog::Heartbeats::new(cfg.threads);
    let workers = Workers::start(&sh, &verifier, ports, &beats, &watchers).map_err(io_err)?;
    drop(watchers);
    let mut handshakes = Handshakers::start(&sh, workers.dispatch()).map_err(io_err)?;
    let health = health::start(&sh).map_err(io_err)?;
    let maintainer = maintainer::start(&sh).map_err(io_err)?;
    let metrics = metrics::start(scraped, &sh).map_err(io_err)?;
    if let Some(period) = notify::watchdog_period() {
        let s = sh.clone();
        let hooks = watchdog::Hooks {
            ping: Box::new(notify::watchdog_ping),
            wake_all: Box::new(workers.waker()),
            stop: Box::new(move || s.shutdown_requested() != Shutdown::None),
        };
        // Not joined: it may be asleep for half the watchdog period at shutdown.
        drop(watchdog::start(period, beats, hooks).map_err(io_err)?);
    }
    let names: Vec<&str> = acceptor
        .listeners()
        .iter()
        .map(|l| l.name.as_str())
        .chain(metrics_names.iter().map(|n| n.as_str()))
        .collect();
    let summary = format!(
        "ferrocache {} serving with {} worker threads, {} MB",
        env!("CARGO_PKG_VERSION"),
        sh.config().threads,
        sh.config().memory_limit >> 20
    );
    info!("{summary}");
    notify::ready(&format!("{summary} on {}", names.join(" ")));
    acceptor
        .run(&sh, &workers, &mut handshakes)
        .map_err(io_err)?;
    notify::stopping();
    // Stop accepting; let workers finish in-flight requests.
    sh.conns().stop_accepting();
    acceptor.close_listeners();
    handshakes.join();
    workers.join();
    let _ = maintainer.join();
    let _ = watcher.join();
    if let Some(m) = metrics {
        m.stop();
    }
    if sh.shutdown_requested() == Shutdown::Graceful {
        restart::save(&sh);
    }
    // The health thread is not joined: a probe may be waiting on a dead peer's timeout, and it
    // holds nothing that needs an orderly end.
    drop(health);
    info!("exiting normally");
    Ok(0)
}
