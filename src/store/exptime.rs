//! Owns: memcached's expiry-time rules — where server time (seconds since the process started)
//! begins, a client's exptime converted to server time, expiry and time left.
//! Does not: read the system clock (the server's `state::Clock` ticks once a second).

/// Relative expiry times up to this many seconds (30 days) are offsets from now; larger values are
/// absolute unix timestamps (memcached's `REALTIME_MAXDELTA`).
pub const REALTIME_MAXDELTA: i64 = 60 * 60 * 24 * 30;

/// Server time is seconds since the process started, starting at this value so that an expiry time of
/// `1` is always in the past (memcached starts its clock at 2 for the same reason).
pub const CLOCK_START: u32 = 2;

/// Converts a client exptime (seconds) into server-relative time. `0` means "never expires";
/// negative values and absolute times at or before process start give `1` (already expired).
/// `started_unix` is the unix time at which server time was `0`.
pub fn realtime(exptime: i64, now: u32, started_unix: i64) -> u32 {
    if exptime == 0 {
        return 0;
    }
    if exptime < 0 {
        return 1;
    }
    if exptime > REALTIME_MAXDELTA {
        if exptime <= started_unix {
            return 1;
        }
        let rel = exptime - started_unix;
        return u32::try_from(rel).unwrap_or(u32::MAX);
    }
    // exptime is at most REALTIME_MAXDELTA here, so it fits in u32.
    (exptime as u32).saturating_add(now)
}

/// True when an item with server-relative expiry `exp` is expired at `now`.
#[inline]
pub fn is_expired(exp: u32, now: u32) -> bool {
    exp != 0 && exp <= now
}

/// Seconds of life left for an item, `-1` when it never expires (meta `t` flag semantics).
pub fn ttl_remaining(exp: u32, now: u32) -> i64 {
    if exp == 0 {
        -1
    } else {
        i64::from(exp) - i64::from(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_never_expires() {
        assert_eq!(realtime(0, 100, 1_700_000_000), 0);
        assert!(!is_expired(0, u32::MAX));
    }

    #[test]
    fn relative_and_absolute() {
        let started = 1_700_000_000;
        assert_eq!(realtime(10, 100, started), 110);
        assert_eq!(
            realtime(REALTIME_MAXDELTA, 5, started),
            REALTIME_MAXDELTA as u32 + 5
        );
        assert_eq!(realtime(started + 500, 100, started), 500);
        assert_eq!(realtime(REALTIME_MAXDELTA + 1, 100, started), 1);
        assert!(is_expired(1, CLOCK_START));
    }

    #[test]
    fn negative_is_expired() {
        assert!(is_expired(realtime(-1, 50, 1_700_000_000), 50));
    }

    #[test]
    fn ttl() {
        assert_eq!(ttl_remaining(0, 10), -1);
        assert_eq!(ttl_remaining(40, 10), 30);
    }
}
