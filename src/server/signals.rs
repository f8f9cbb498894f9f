//! Owns: what the daemon does on a signal — SIGTERM/SIGINT stop now, SIGUSR1 stops gracefully,
//! SIGHUP reloads (see `reload`), telling systemd it does.
//! Does not: wait for signals (the acceptor's poll does).

use log::info;
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
            let outcome = super::reload::reload(sh);
            super::notify::reloaded(&outcome);
        }
        _ => {}
    }
}
