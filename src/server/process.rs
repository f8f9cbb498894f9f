//! Owns: the process around the server — the root rule (`-u`), daemonizing (`-d`), resource
//! limits (`-r`, `-c`, `-k`), dropping privileges, and the files that describe the running
//! process: the pid file (`-P`), the port file (`MEMCACHED_PORT_FILENAME`), and their removal
//! (with the UNIX socket's) at exit.
//! Does not: bind or serve sockets (see `listeners`, `acceptor`).

use std::path::Path;

use log::warn;

use super::fail;
use super::listeners::Listener;
use crate::config::{Config, ConfigError, EX_USAGE};

/// memcached's rule: root must name the user to run as.
pub fn check_user(cfg: &Config) -> Result<(), ConfigError> {
    if nix::unistd::geteuid().is_root() && cfg.user.is_none() {
        return Err(fail("can't run as root without the -u switch", EX_USAGE));
    }
    Ok(())
}

/// `-d`: detaches from the terminal — except under systemd's `Type=notify` (`$NOTIFY_SOCKET`
/// set), where the service manager keeps the process and a fork would lose the main pid, as
/// Debian's wrapper drops the `-d` of memcached.conf.
pub fn daemonize(cfg: &Config) -> Result<(), ConfigError> {
    if cfg.daemon && std::env::var_os("NOTIFY_SOCKET").is_some() {
        log::info!("-d ignored: started by systemd (NOTIFY_SOCKET is set)");
        return Ok(());
    }
    if cfg.daemon {
        nix::unistd::daemon(cfg.coredumps, cfg.verbose > 0)
            .map_err(|e| fail(format!("failed to daemon() in order to daemonize: {e}"), 71))?;
    }
    Ok(())
}

/// Core dumps (`-r`), open files for `-c` connections, and locked memory (`-k`).
pub fn set_limits(cfg: &Config) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if cfg.coredumps {
        if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_CORE) {
            let _ = setrlimit(Resource::RLIMIT_CORE, hard, hard);
        }
    }
    raise_open_files(cfg.maxconns);
    if cfg.lock_memory {
        use nix::sys::mman::{mlockall, MlockAllFlags};
        if let Err(e) = mlockall(MlockAllFlags::MCL_CURRENT | MlockAllFlags::MCL_FUTURE) {
            warn!("failed to mlockall(): {e}; proceeding without");
        }
    }
}

/// Room for `maxconns` connections (`-c`, at start-up and when a reload raises it): the open
/// files limit raised, up to the hard limit once privileges are dropped.
pub fn raise_open_files(maxconns: usize) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let want = maxconns as u64 + 64;
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
}

/// `-u USER` as root: switches to USER (after binding, so privileged ports work).
pub fn drop_privileges(cfg: &Config) -> Result<(), ConfigError> {
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

/// `-P FILE`: the process id (a failure is logged, not fatal).
pub fn write_pid_file(cfg: &Config) {
    if let Some(p) = &cfg.pidfile {
        let pid = format!("{}\n", std::process::id());
        if let Err(e) = crate::fsutil::write_atomically(p, pid.as_bytes()) {
            warn!("could not write pid file {}: {e}", p.display());
        }
    }
}

/// `MEMCACHED_PORT_FILENAME`: the bound TCP client ports, one `TCP INET: PORT` or
/// `TCP INET6: PORT` line each, then the UDP ones as `UDP INET: PORT` (memcached's format and
/// its `<name>.lck` temporary file).
pub fn write_port_file(listeners: &[Listener], udp: &[std::net::SocketAddr]) {
    let Ok(f) = std::env::var("MEMCACHED_PORT_FILENAME") else {
        return;
    };
    let lines: String = listeners
        .iter()
        .filter_map(Listener::tcp_client_addr)
        .map(|a| {
            let family = if a.is_ipv4() { "INET" } else { "INET6" };
            format!("TCP {family}: {}\n", a.port())
        })
        .chain(udp.iter().map(|a| {
            let family = if a.is_ipv4() { "INET" } else { "INET6" };
            format!("UDP {family}: {}\n", a.port())
        }))
        .collect();
    let lck = format!("{f}.lck");
    let _ = crate::fsutil::write_via(Path::new(&lck), Path::new(&f), lines.as_bytes());
}

/// At exit: removes the pid file (when daemonized, as memcached does) and the UNIX socket.
pub fn remove_files(cfg: &Config) {
    if cfg.daemon {
        if let Some(p) = &cfg.pidfile {
            let _ = std::fs::remove_file(p);
        }
    }
    if let Some(p) = &cfg.unix_socket {
        let _ = std::fs::remove_file(p);
    }
}
