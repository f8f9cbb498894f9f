//! Owns: the process's I/O life cycle — privileges and limits, binding listeners, the acceptor
//! loop with connection limits, worker and maintainer threads, signals, pid and port files, and
//! graceful shutdown.
//! Does not: parse or execute requests (see `conn`, `exec`).

pub mod conn;
pub mod health;
pub mod push;
pub mod stream;
pub mod verify;
pub mod worker;

use std::io::{self, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crossbeam_channel::Sender;
use log::{error, info, warn};
use mio::net::{TcpListener, UnixListener};
use mio::{Events, Interest, Poll, Token, Waker};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use signal_hook_mio::v1_0::Signals;

use crate::config::{Config, ConfigError, EX_USAGE};
use crate::state::{ConnInfo, Shared, Shutdown};
use stream::Stream;
use worker::NewConn;

const SIGNALS: Token = Token(usize::MAX - 1);
const WAKE: Token = Token(usize::MAX - 2);

/// The acceptor's waker, so a `shutdown` command on any worker can stop the accept loop.
static ACCEPTOR_WAKER: OnceLock<Waker> = OnceLock::new();

/// Wakes the acceptor after a shutdown request (from the `shutdown` command).
pub fn signal_shutdown(_how: Shutdown) {
    if let Some(w) = ACCEPTOR_WAKER.get() {
        let _ = w.wake();
    }
}

enum Listener {
    /// A TCP listener, its name, and whether it is the admin endpoint.
    Tcp(TcpListener, String, bool),
    Unix(UnixListener, String),
}

/// Errors that stop start-up, with the exit code to use.
pub fn fail(msg: impl Into<String>, code: i32) -> ConfigError {
    ConfigError {
        msg: msg.into(),
        code,
    }
}

fn bind_tcp(addr: SocketAddr, backlog: i32) -> io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    s.set_reuse_address(true)?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.bind(&addr.into())?;
    s.listen(backlog)?;
    s.set_nonblocking(true)?;
    Ok(TcpListener::from_std(s.into()))
}

fn bind_all(cfg: &Config) -> Result<Vec<Listener>, ConfigError> {
    let mut out = Vec::new();
    if let Some(path) = &cfg.unix_socket {
        let _ = std::fs::remove_file(path);
        let l = std::os::unix::net::UnixListener::bind(path).map_err(|e| {
            fail(
                format!(
                    "failed to listen on UNIX socket \"{}\": {e}",
                    path.display()
                ),
                71,
            )
        })?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(cfg.unix_mask & 0o777))
            .map_err(|e| {
                fail(
                    format!("cannot set permissions of {}: {e}", path.display()),
                    71,
                )
            })?;
        l.set_nonblocking(true)
            .map_err(|e| fail(e.to_string(), 71))?;
        out.push(Listener::Unix(
            UnixListener::from_std(l),
            format!("unix:{}", path.display()),
        ));
        return Ok(out);
    }
    if cfg.port == 0 {
        return Ok(out);
    }
    let port = if cfg.port < 0 { 0 } else { cfg.port as u16 };
    let targets: Vec<(String, u16)> = if cfg.listen.is_empty() {
        vec![("127.0.0.1".to_string(), port)]
    } else {
        cfg.listen
            .iter()
            .map(|l| (l.host.clone(), l.port.unwrap_or(port)))
            .collect()
    };
    for (host, port) in targets {
        let host = if host == "*" {
            "0.0.0.0".to_string()
        } else {
            host
        };
        let addrs: Vec<SocketAddr> = (host.as_str(), port)
            .to_socket_addrs()
            .map_err(|e| fail(format!("getaddrinfo(): {host}: {e}"), 71))?
            .collect();
        if addrs.is_empty() {
            return Err(fail(format!("failed to listen on {host}:{port}"), 71));
        }
        for addr in addrs {
            let l = bind_tcp(addr, cfg.backlog)
                .map_err(|e| fail(format!("failed to listen on TCP port {port}: {e}"), 71))?;
            let local = l.local_addr().map_err(|e| fail(e.to_string(), 71))?;
            let name = match local {
                SocketAddr::V4(a) => format!("tcp:{a}"),
                SocketAddr::V6(a) => format!("tcp6:{a}"),
            };
            out.push(Listener::Tcp(l, name, false));
        }
    }
    Ok(out)
}

fn set_limits(cfg: &Config) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if cfg.coredumps {
        if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_CORE) {
            let _ = setrlimit(Resource::RLIMIT_CORE, hard, hard);
        }
    }
    let want = cfg.maxconns as u64 + 64;
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < want {
            let new_hard = hard.max(want);
            if setrlimit(Resource::RLIMIT_NOFILE, want, new_hard).is_err()
                && setrlimit(Resource::RLIMIT_NOFILE, hard.min(want), hard).is_err()
            {
                warn!("failed to set rlimit for open files to {want}");
            }
        }
    }
    if cfg.lock_memory {
        use nix::sys::mman::{mlockall, MlockAllFlags};
        if let Err(e) = mlockall(MlockAllFlags::MCL_CURRENT | MlockAllFlags::MCL_FUTURE) {
            warn!("failed to mlockall(): {e}; proceeding without");
        }
    }
}

fn check_user(cfg: &Config) -> Result<(), ConfigError> {
    let euid = nix::unistd::geteuid();
    if !euid.is_root() {
        return Ok(());
    }
    if cfg.user.is_none() {
        return Err(fail("can't run as root without the -u switch", EX_USAGE));
    }
    Ok(())
}

fn drop_privileges(cfg: &Config) -> Result<(), ConfigError> {
    let Some(name) = &cfg.user else { return Ok(()) };
    if !nix::unistd::geteuid().is_root() || name == "root" {
        return Ok(());
    }
    let user = nix::unistd::User::from_name(name)
        .ok()
        .flatten()
        .ok_or_else(|| fail(format!("can't find the user {name} to switch to"), 67))?;
    nix::unistd::setgroups(&[user.gid])
        .map_err(|e| fail(format!("failed to setgroups: {e}"), 71))?;
    nix::unistd::setgid(user.gid)
        .map_err(|e| fail(format!("failed to assume identity of user {name}: {e}"), 71))?;
    nix::unistd::setuid(user.uid)
        .map_err(|e| fail(format!("failed to assume identity of user {name}: {e}"), 71))?;
    Ok(())
}

/// SIGHUP: re-reads the credentials file and the cluster file; one that does not load leaves the
/// old one in force.
fn reload(sh: &Shared) {
    if sh.cluster.enabled() {
        match sh.cluster.reload() {
            Ok(v) => info!("SIGHUP: cluster config version {v:?}"),
            Err(e) => error!("SIGHUP: keeping the previous cluster config: {e}"),
        }
    }
    if sh.config.credentials_file.is_some() {
        match sh.reload_credentials() {
            Ok(n) => info!("SIGHUP: reloaded {n} credential(s)"),
            Err(e) => error!("SIGHUP: keeping the previous credentials: {e}"),
        }
    } else {
        info!("SIGHUP: nothing to reload");
    }
}

/// Starts the daemon and serves until a shutdown signal or command. Returns the exit code.
pub fn run(cfg: Config) -> Result<i32, ConfigError> {
    check_user(&cfg)?;
    if cfg.daemon {
        nix::unistd::daemon(cfg.coredumps, cfg.verbose > 0)
            .map_err(|e| fail(format!("failed to daemon() in order to daemonize: {e}"), 71))?;
    }
    set_limits(&cfg);
    let mut listeners = bind_all(&cfg)?;
    if let Some(addr) = cfg.cluster.admin_listen {
        let l = bind_tcp(addr, cfg.backlog).map_err(|e| {
            fail(
                format!("failed to listen on admin endpoint {addr}: {e}"),
                71,
            )
        })?;
        let local = l.local_addr().map_err(|e| fail(e.to_string(), 71))?;
        listeners.push(Listener::Tcp(l, format!("tcp:{local}"), true));
    }
    drop_privileges(&cfg)?;
    if let Some(p) = &cfg.pidfile {
        if let Err(e) =
            crate::fsutil::write_atomically(p, format!("{}\n", std::process::id()).as_bytes())
        {
            warn!("could not write pid file {}: {e}", p.display());
        }
    }
    let mut shared = Shared::new(cfg);
    shared.cluster = crate::cluster::state::ClusterState::start(&shared.config.cluster)
        .map_err(|e| fail(format!("ERROR: {e}"), EX_USAGE))?;
    let shared = Arc::new(shared);
    if shared.config.sasl || shared.config.auth_file.is_some() {
        match shared.reload_credentials() {
            Ok(0) if shared.config.credentials_file.is_none() => {
                return Err(fail(
                    "ERROR: -S needs a credentials file: --sasl-pwdb FILE or MEMCACHED_SASL_PWDB"
                        .to_string(),
                    EX_USAGE,
                ))
            }
            Ok(n) => info!("loaded {n} credential(s)"),
            Err(e) => {
                return Err(fail(
                    format!("ERROR: cannot load credentials: {e}"),
                    EX_USAGE,
                ))
            }
        }
    }
    let code = serve(listeners, shared.clone());
    if shared.config.daemon {
        if let Some(p) = &shared.config.pidfile {
            let _ = std::fs::remove_file(p);
        }
    }
    if let Some(p) = &shared.config.unix_socket {
        let _ = std::fs::remove_file(p);
    }
    code
}

fn serve(mut listeners: Vec<Listener>, sh: Arc<Shared>) -> Result<i32, ConfigError> {
    let io_err = |e: io::Error| fail(format!("server error: {e}"), 71);
    let mut poll = Poll::new().map_err(io_err)?;
    let waker = Waker::new(poll.registry(), WAKE).map_err(io_err)?;
    let _ = ACCEPTOR_WAKER.set(waker);
    let mut signals = Signals::new([SIGTERM, SIGINT, SIGUSR1, SIGHUP]).map_err(io_err)?;
    poll.registry()
        .register(&mut signals, SIGNALS, Interest::READABLE)
        .map_err(io_err)?;
    let mut port_lines = Vec::new();
    for (i, l) in listeners.iter_mut().enumerate() {
        let admin = matches!(l, Listener::Tcp(_, _, true));
        let (src, name, fd): (&mut dyn mio::event::Source, &String, i64) = match l {
            Listener::Tcp(t, n, _) => {
                let fd = t.as_raw_fd() as i64;
                (t, n, fd)
            }
            Listener::Unix(u, n) => {
                let fd = u.as_raw_fd() as i64;
                (u, n, fd)
            }
        };
        poll.registry()
            .register(src, Token(i), Interest::READABLE)
            .map_err(io_err)?;
        if admin {
            info!("admin endpoint on {name}");
        } else {
            info!("listening on {name}");
        }
        if admin {
        } else if let Some(rest) = name.strip_prefix("tcp:") {
            if let Some((_, port)) = rest.rsplit_once(':') {
                port_lines.push(format!("TCP INET: {port}\n"));
            }
        } else if let Some(rest) = name.strip_prefix("tcp6:") {
            if let Some((_, port)) = rest.rsplit_once(':') {
                port_lines.push(format!("TCP INET6: {port}\n"));
            }
        }
        sh.conns.lock().insert(
            fd,
            ConnInfo {
                addr: name.clone(),
                listen_addr: None,
                last_cmd: Arc::new(AtomicU32::new(0)),
            },
        );
    }
    if let Ok(f) = std::env::var("MEMCACHED_PORT_FILENAME") {
        // memcached's convention: written as `<name>.lck`, then renamed.
        let lck = format!("{f}.lck");
        let _ = crate::fsutil::write_via(
            Path::new(&lck),
            Path::new(&f),
            port_lines.concat().as_bytes(),
        );
    }

    // Workers.
    let verifier = verify::Verifier::start(2).map_err(io_err)?;
    let mut handles = Vec::new();
    let mut senders: Vec<(Sender<NewConn>, Arc<Waker>)> = Vec::new();
    for i in 0..sh.config.threads {
        let (wpoll, wwaker) = worker::new_poll().map_err(io_err)?;
        let (tx, rx) = crossbeam_channel::unbounded();
        let s = sh.clone();
        let link = worker::AuthLink {
            verifier: verifier.clone(),
            waker: wwaker.clone(),
        };
        let h = std::thread::Builder::new()
            .name(format!("worker-{i}"))
            .spawn(move || {
                if let Err(e) = worker::run(i, wpoll, rx, s, link) {
                    error!("worker {i} failed: {e}");
                }
            })
            .map_err(io_err)?;
        handles.push(h);
        senders.push((tx, wwaker));
    }
    let health = match sh.config.cluster.health_check {
        Some(every) if sh.cluster.enabled() => {
            let s = sh.clone();
            Some(
                std::thread::Builder::new()
                    .name("cluster-health".into())
                    .spawn(move || health::run(&s, every))
                    .map_err(io_err)?,
            )
        }
        _ => None,
    };
    let maint = {
        let s = sh.clone();
        std::thread::Builder::new()
            .name("maintainer".into())
            .spawn(move || maintainer(&s))
            .map_err(io_err)?
    };
    info!(
        "ferrocache {} serving with {} worker threads, {} MB",
        env!("CARGO_PKG_VERSION"),
        sh.config.threads,
        sh.config.memory_limit >> 20
    );

    let mut events = Events::with_capacity(256);
    let mut next_worker = 0usize;
    'outer: loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(io_err(e));
        }
        for ev in events.iter() {
            match ev.token() {
                SIGNALS => {
                    for sig in signals.pending() {
                        match sig {
                            SIGTERM | SIGINT => {
                                info!("signal {sig}: exiting");
                                sh.request_shutdown(Shutdown::Now);
                            }
                            SIGUSR1 => {
                                info!("SIGUSR1: gracefully stopping");
                                sh.request_shutdown(Shutdown::Graceful);
                            }
                            SIGHUP => reload(&sh),
                            _ => {}
                        }
                    }
                }
                WAKE => {}
                Token(i) => {
                    if let Some(l) = listeners.get_mut(i) {
                        accept_all(l, &sh, &senders, &mut next_worker);
                    }
                }
            }
            if sh.shutdown_requested() != Shutdown::None {
                break 'outer;
            }
        }
        if sh.shutdown_requested() != Shutdown::None {
            break;
        }
    }
    // Stop accepting; let workers finish in-flight requests.
    sh.accepting.store(false, Ordering::Relaxed);
    drop(listeners);
    for (_, w) in &senders {
        let _ = w.wake();
    }
    for h in handles {
        let _ = h.join();
    }
    let _ = maint.join();
    // The health thread is not joined: a probe may be waiting on a dead peer's timeout, and it
    // holds nothing that needs an orderly end.
    drop(health);
    info!("exiting normally");
    Ok(0)
}

fn accept_all(
    l: &mut Listener,
    sh: &Shared,
    senders: &[(Sender<NewConn>, Arc<Waker>)],
    next: &mut usize,
) {
    loop {
        let admin = matches!(l, Listener::Tcp(_, _, true));
        let (stream, addr, listen) = match l {
            Listener::Tcp(t, name, _) => match t.accept() {
                Ok((s, a)) => {
                    let _ = s.set_nodelay(true);
                    let addr = match a {
                        SocketAddr::V4(a) => format!("tcp:{a}"),
                        SocketAddr::V6(a) => format!("tcp6:{a}"),
                    };
                    (Stream::Tcp(s), addr, name.clone())
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    warn!("accept failed: {e}");
                    return;
                }
            },
            Listener::Unix(u, name) => match u.accept() {
                Ok((s, _)) => (Stream::Unix(s), name.clone(), name.clone()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    warn!("accept failed: {e}");
                    return;
                }
            },
        };
        sh.total_connections.fetch_add(1, Ordering::Relaxed);
        let curr = sh.curr_connections.fetch_add(1, Ordering::Relaxed);
        if curr >= sh.config.maxconns {
            sh.curr_connections.fetch_sub(1, Ordering::Relaxed);
            sh.rejected_connections.fetch_add(1, Ordering::Relaxed);
            let mut stream = stream;
            let msg = b"ERROR Too many open connections\r\n";
            let _ = stream.write(msg);
            continue;
        }
        let id = stream.id();
        let (tx, waker) = &senders[*next % senders.len()];
        *next += 1;
        if tx
            .send(NewConn {
                stream,
                id,
                addr,
                listen_addr: listen,
                admin,
            })
            .is_ok()
        {
            let _ = waker.wake();
        } else {
            sh.curr_connections.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Slices a maintainer round is cut into.
const MAINTAIN_SLICES: usize = 8;

/// Background work: the clock, delayed flushes, LRU balancing, the expiry crawler and page
/// rebalancing. Each shard is locked only for a bounded amount of work at a time.
fn maintainer(sh: &Shared) {
    let tick = Duration::from_millis(100);
    let mut rounds = 0u64;
    while sh.shutdown_requested() == Shutdown::None {
        std::thread::sleep(tick);
        sh.clock.tick();
        sh.apply_pending_flush();
        let now = sh.clock.now();
        let crawler = sh.runtime.lru_crawler.load(Ordering::Relaxed);
        let burst = sh.runtime.crawl_requested.swap(false, Ordering::Relaxed);
        // An explicit `lru_crawler crawl` gets a full pass; `lru_crawler disable` stops crawling.
        let crawl = if burst {
            1 << 20
        } else if crawler {
            2048
        } else {
            0
        };
        // Balancing keeps the bound it had with the default crawl budget (2048 / 4 + 1). The
        // work is done in slices with a yield between them, so a worker sharing this CPU waits
        // for one slice at most, not for the whole round.
        for _ in 0..MAINTAIN_SLICES {
            sh.store
                .maintain(513 / MAINTAIN_SLICES + 1, crawl / MAINTAIN_SLICES, now);
            std::thread::yield_now();
        }
        rounds += 1;
        if rounds.is_multiple_of(10) {
            sh.store.automove(now);
        }
    }
}
