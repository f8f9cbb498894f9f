//! Owns: the daemon's log lines on stderr — their level from `-v` (`RUST_LOG` overrides), changed
//! live by a reload, and their format: `[LEVEL target] message` without timestamps, or, when
//! `$JOURNAL_STREAM` names stderr (systemd connected it to journald), sd-daemon priority
//! prefixes (`<3>` error, `<4>` warning, `<6>` info, `<7>` debug) that journald reads.
//! Does not: decide what is logged (each module does; none logs a key, a value or a credential
//! below `-vv`).

use std::io::Write;
use std::os::fd::AsRawFd;

use log::{Level, LevelFilter};

/// `-v` info, `-vv` debug, `-vvv` trace; warnings and errors always.
pub fn level_for(verbose: u8) -> LevelFilter {
    match verbose {
        0 => LevelFilter::Warn,
        1 => LevelFilter::Info,
        2 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    }
}

/// A non-empty `RUST_LOG` names the filters itself, and a reload leaves them.
fn rust_log() -> Option<String> {
    std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
}

/// Sets up the daemon's logger (once, at start-up).
pub fn init(verbose: u8) {
    let mut b = env_logger::Builder::new();
    match rust_log() {
        Some(filters) => b.parse_filters(&filters),
        // Everything passes the logger's own filter; the global maximum (`set_verbosity`) is
        // the one level that decides, so a reload can change it.
        None => b.filter_level(LevelFilter::Trace),
    };
    if journald_on_stderr() {
        b.format(|buf, record| writeln!(buf, "<{}>{}", priority(record.level()), record.args()));
    } else {
        b.format_timestamp(None);
    }
    b.init();
    set_verbosity(verbose);
}

/// A reload's `-v`: the new level, unless `RUST_LOG` decides.
pub fn set_verbosity(verbose: u8) {
    if rust_log().is_none() {
        log::set_max_level(level_for(verbose));
    }
}

/// sd-daemon(3)'s priorities.
fn priority(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 6,
        Level::Debug | Level::Trace => 7,
    }
}

/// True when `$JOURNAL_STREAM` (`DEVICE:INODE`) is stderr's own device and inode.
fn journald_on_stderr() -> bool {
    let Ok(var) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(st) = nix::sys::stat::fstat(std::io::stderr().as_raw_fd()) else {
        return false;
    };
    names(&var, st.st_dev, st.st_ino)
}

fn names(var: &str, dev: u64, ino: u64) -> bool {
    let mut parts = var.trim().splitn(2, ':');
    let (Some(d), Some(i)) = (parts.next(), parts.next()) else {
        return false;
    };
    d.parse::<u64>().ok() == Some(dev) && i.parse::<u64>().ok() == Some(ino)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_stream_must_name_this_stream() {
        assert!(names("8:12345", 8, 12345));
        assert!(!names("8:12346", 8, 12345));
        assert!(!names("9:12345", 8, 12345));
        assert!(!names("8", 8, 12345));
        assert!(!names("x:y", 8, 12345));
    }

    #[test]
    fn priorities_are_sd_daemon_s() {
        assert_eq!(priority(Level::Error), 3);
        assert_eq!(priority(Level::Warn), 4);
        assert_eq!(priority(Level::Info), 6);
        assert_eq!(priority(Level::Debug), 7);
    }

    #[test]
    fn verbosity_levels() {
        assert_eq!(level_for(0), LevelFilter::Warn);
        assert_eq!(level_for(1), LevelFilter::Info);
        assert_eq!(level_for(2), LevelFilter::Debug);
        assert_eq!(level_for(5), LevelFilter::Trace);
    }
}
