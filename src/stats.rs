//! Owns: request counters. Each worker thread owns one `ThreadStats` and is its only writer
//! (relaxed loads and stores, no read-modify-write contention); `stats` sums them all.
//! Does not: format replies (see `exec::stats`).

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($name:ident, $snap:ident { $($f:ident),* $(,)? }) => {
        /// Per-thread counters (single writer).
        #[derive(Debug, Default)]
        pub struct $name { $(pub $f: AtomicU64,)* }

        /// A plain copy of counters, summable.
        #[derive(Debug, Default, Clone, Copy)]
        pub struct $snap { $(pub $f: u64,)* }

        impl $name {
            pub fn snapshot(&self) -> $snap {
                $snap { $($f: self.$f.load(Ordering::Relaxed),)* }
            }
            pub fn reset(&self) {
                $(self.$f.store(0, Ordering::Relaxed);)*
            }
        }

        impl $snap {
            pub fn add(&mut self, o: &$snap) {
                $(self.$f += o.$f;)*
            }
        }
    };
}

counters!(
    ThreadStats,
    Counters {
        cmd_get,
        cmd_set,
        cmd_flush,
        cmd_touch,
        cmd_meta,
        get_hits,
        get_misses,
        get_expired,
        get_flushed,
        delete_misses,
        delete_hits,
        incr_misses,
        incr_hits,
        decr_misses,
        decr_hits,
        cas_misses,
        cas_hits,
        cas_badval,
        touch_hits,
        touch_misses,
        store_too_large,
        store_no_memory,
        auth_cmds,
        auth_errors,
        bytes_read,
        bytes_written,
        conn_yields,
        idle_kicks,
    }
);

/// Adds `n` to a counter this thread owns.
#[inline]
pub fn add(c: &AtomicU64, n: u64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
}

/// Adds one to a counter this thread owns.
#[inline]
pub fn bump(c: &AtomicU64) {
    add(c, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_sum_reset() {
        let a = ThreadStats::default();
        let b = ThreadStats::default();
        bump(&a.cmd_get);
        add(&b.cmd_get, 2);
        let mut s = a.snapshot();
        s.add(&b.snapshot());
        assert_eq!(s.cmd_get, 3);
        a.reset();
        assert_eq!(a.snapshot().cmd_get, 0);
    }
}
