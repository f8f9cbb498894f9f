//! Owns: test-only hooks, compiled only with debug assertions (never into a release build, which
//! is what is installed and benchmarked) and armed only by an environment variable:
//! `FERROCACHE_TEST_WEDGE=KEY` makes the worker serving `get KEY` stop turning its event loop
//! until shutdown is requested — a wedged worker, for the watchdog's end-to-end test.
//! Does not: exist in a release build; nothing else calls it.

use std::sync::OnceLock;
use std::time::Duration;

use crate::protocol::ascii::Command;
use crate::state::{Shared, Shutdown};

/// The armed key, read once.
fn wedge_key() -> Option<&'static [u8]> {
    static KEY: OnceLock<Option<Vec<u8>>> = OnceLock::new();
    KEY.get_or_init(|| {
        std::env::var("FERROCACHE_TEST_WEDGE")
            .ok()
            .map(String::into_bytes)
    })
    .as_deref()
}

/// When `cmd` is `get KEY` for the armed key: blocks this worker until shutdown is requested.
pub fn maybe_wedge(cmd: &Command<'_>, sh: &Shared) {
    let Some(key) = wedge_key() else { return };
    if !matches!(cmd, Command::Get { keys, .. } if keys.trim_ascii() == key) {
        return;
    }
    log::warn!("FERROCACHE_TEST_WEDGE: this worker stops turning its event loop");
    while sh.shutdown_requested() == Shutdown::None {
        std::thread::sleep(Duration::from_millis(20));
    }
}
