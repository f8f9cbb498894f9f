//! Owns: what the daemon does on a signal — SIGTERM/SIGINT stop now, SIGUSR1 stops gracefully,
//! SIGHUP reloads the credentials file and the cluster file (telling systemd it reloads).
//! Does not: wait for signals (the acceptor's poll does).

use log::{error, info};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use signal_hook_mio::v1_0::Signals;

use crate::state::{Shared, Shutdown};

/// The signals the daemon answers, as a source for the acceptor's poll.
pub fn register() -> std::io::Result<Signals> {
    Signals::new([SIGTERM, SIGINT, SIGUSR1, SIGHUP])
}

/// Acts on one received signal.
pub fn handle(sig: i32, sh: &Shared) {
    match sig {
        SIGTERM | SIGINT => {
            info!("signal {sig}: exiting");
            sh.request_shutdown(Shutdown::Now);
        }
        SIGUSR1 => {
            info!("SIGUSR1: gracefully stopping");
            sh.request_shutdown(Shutdown::Graceful);
        }
        SIGHUP => {
            super::notify::reloading();
            let outcome = reload(sh);
            super::notify::reloaded(&outcome);
        }
        _ => {}
    }
}

/// SIGHUP: re-reads the credentials file and the cluster file; one that does not load leaves the
/// old one in force. Returns what it did, in one line (for systemd's status).
fn reload(sh: &Shared) -> String {
    let mut done = Vec::new();
    if sh.cluster().enabled() {
        match sh.cluster().reload() {
            Ok(v) => {
                info!("SIGHUP: cluster config version {v:?}");
                done.push(format!("cluster config version {v:?}"));
            }
            Err(e) => {
                error!("SIGHUP: keeping the previous cluster config: {e}");
                done.push("cluster file not loaded".to_string());
            }
        }
    }
    if sh.config().credentials_file.is_some() || sh.config().sasl_conf.is_some() {
        match sh.reload_credentials() {
            Ok(n) => {
                info!("SIGHUP: reloaded {n} credential(s)");
                done.push(format!("{n} credential(s)"));
            }
            Err(e) => {
                error!("SIGHUP: keeping the previous credentials: {e}");
                done.push("credentials not loaded".to_string());
            }
        }
    } else if done.is_empty() {
        info!("SIGHUP: nothing to reload");
        done.push("nothing to reload".to_string());
    }
    done.join(", ")
}
