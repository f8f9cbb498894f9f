//! Owns: one worker's memory budget for its connections — the pool of 16 KB buffers lent to
//! connections (read and reply buffers, given back when a connection goes idle), the response
//! objects charged with the read buffers against `-o read_buf_mem_limit` in memcached's units, and
//! the bytes of requests too large for a pooled buffer held while they are received (values in
//! flight), limited per worker. Publishes its gauges for `stats`.
//! Does not: read or write sockets, or decide what a connection answers when a limit is hit
//! (see `conn`).

use std::sync::Arc;

use crate::state::Shared;
use crate::stats::{self, ThreadGauges, POOL_OBJ, RESP_PER_OBJ};

/// A pooled buffer: memcached's unit for read buffers and response bundles.
pub const BUF: usize = POOL_OBJ;
/// Pooled buffers of each kind kept for reuse per worker; more are freed when given back.
const KEEP_FREE: usize = 64;
/// Unsent output above which a connection stops reading and answering until it is written.
pub const OUT_SOFT_CAP: usize = 64 * 1024;
/// Unsent output at which a connection is closed: one reply larger than any sane client asks
/// for (at least 16 MB, and twice the largest request).
pub fn out_hard_cap(max_request: usize) -> usize {
    (16 << 20).max(2 * max_request)
}

/// One worker's budget. Single-threaded: owned by the worker, lent to its connections.
#[derive(Debug)]
pub struct Budget {
    /// Free read buffers (length `BUF`) and reply buffers (empty, capacity `BUF`).
    free_read: Vec<Vec<u8>>,
    free_out: Vec<Vec<u8>>,
    /// Read buffers lent out (memcached's unit: one object each).
    rbufs: usize,
    /// Response objects whose bytes are not written yet (`RESP_PER_OBJ` to an object).
    resps: usize,
    /// The most objects ever in use (memcached's cache `total`: objects freed are kept).
    total: usize,
    /// Objects this worker may use (`read_buf_mem_limit` / threads / 16 KB, at least one); 0:
    /// no limit.
    limit: usize,
    /// Bytes of grown read buffers (requests larger than `BUF` being received).
    inflight: usize,
    inflight_limit: usize,
    sh: Arc<Shared>,
    index: usize,
}

impl Budget {
    /// Worker `index`'s budget: memcached's per-thread share of `read_buf_mem_limit`, and values
    /// in flight up to a quarter of `-m` shared by the workers (at least two of the largest
    /// requests, so any one request can always be received).
    pub fn new(sh: Arc<Shared>, index: usize, max_request: usize) -> Budget {
        let c = sh.config();
        let threads = c.threads.max(1);
        let limit = match c.ext.read_buf_mem_limit as usize {
            0 => 0,
            l => (l / threads / BUF).max(1),
        };
        let inflight_limit = (c.memory_limit / 4 / threads).max(2 * max_request);
        Budget {
            free_read: Vec::new(),
            free_out: Vec::new(),
            rbufs: 0,
            resps: 0,
            total: 0,
            limit,
            inflight: 0,
            inflight_limit,
            sh,
            index,
        }
    }

    /// The process-wide state the budget's worker serves.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.sh
    }

    fn in_use(&self, resps: usize) -> usize {
        self.rbufs + resps.div_ceil(RESP_PER_OBJ)
    }

    fn gauges(&self) -> &ThreadGauges {
        &self.sh.thread_gauges()[self.index]
    }

    fn publish(&mut self) {
        let used = self.in_use(self.resps);
        self.total = self.total.max(used);
        let g = &self.sh.thread_gauges()[self.index];
        stats::set(&g.response_objs, self.resps as u64);
        stats::set(&g.pool_objs, self.total as u64);
        stats::set(&g.pool_objs_free, (self.total - used) as u64);
    }

    /// A read buffer (`BUF` bytes), or None when the limit is reached (memcached's
    /// `read_buf_oom`).
    pub fn lend_read(&mut self) -> Option<Vec<u8>> {
        if self.limit > 0 && self.in_use(self.resps) >= self.limit {
            return None;
        }
        self.rbufs += 1;
        self.publish();
        Some(self.free_read.pop().unwrap_or_else(|| vec![0; BUF]))
    }

    /// Gives back a buffer `lend_read` lent.
    pub fn give_read(&mut self, buf: Vec<u8>) {
        self.rbufs -= 1;
        if self.free_read.len() < KEEP_FREE && buf.len() == BUF {
            self.free_read.push(buf);
        }
        self.publish();
    }

    /// An empty reply buffer. Reply buffers hold what memcached's response objects point to;
    /// the objects themselves are charged with `take_resps`.
    pub fn lend_out(&mut self) -> Vec<u8> {
        self.free_out
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(BUF))
    }

    /// Gives back a reply buffer; one grown past twice the pooled size is freed.
    pub fn give_out(&mut self, mut buf: Vec<u8>) {
        if self.free_out.len() < KEEP_FREE && (BUF..=2 * BUF).contains(&buf.capacity()) {
            buf.clear();
            self.free_out.push(buf);
        }
    }

    /// Whether `-o read_buf_mem_limit` applies.
    pub fn limited(&self) -> bool {
        self.limit > 0
    }

    /// How many more response objects fit (`usize::MAX` without a limit).
    pub fn resp_room(&self) -> usize {
        if self.limit == 0 {
            return usize::MAX;
        }
        let objs = self.limit.saturating_sub(self.rbufs);
        (objs * RESP_PER_OBJ).saturating_sub(self.resps)
    }

    /// Charges `n` response objects; false (nothing charged) when they do not fit.
    pub fn take_resps(&mut self, n: usize) -> bool {
        if n > self.resp_room() {
            return false;
        }
        self.resps += n;
        self.publish();
        true
    }

    /// Response objects written (or dropped).
    pub fn give_resps(&mut self, n: usize) {
        if n > 0 {
            self.resps -= n;
            self.publish();
        }
    }

    /// Charges a read buffer growing from `old` to `new` bytes (`old` 0 when it was a pooled
    /// one); false (nothing charged) when values in flight would pass the worker's limit.
    pub fn grow_inflight(&mut self, old: usize, new: usize) -> bool {
        let after = self.inflight - old + new;
        if after > self.inflight_limit {
            return false;
        }
        self.inflight = after;
        stats::set(&self.gauges().inflight_bytes, after as u64);
        true
    }

    /// A grown read buffer of `n` bytes freed.
    pub fn give_inflight(&mut self, n: usize) {
        self.inflight -= n;
        stats::set(&self.gauges().inflight_bytes, self.inflight as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn budget(args: &[&str]) -> Budget {
        let mut argv = vec!["ferrocache"];
        argv.extend_from_slice(args);
        let sh = Arc::new(Shared::new(Config::from_args(argv).unwrap()));
        Budget::new(sh, 0, 1 << 20)
    }

    #[test]
    fn no_limit_by_default() {
        let mut b = budget(&["-t", "1"]);
        let bufs: Vec<_> = (0..100).map(|_| b.lend_read().unwrap()).collect();
        assert!(b.take_resps(10_000));
        for buf in bufs {
            b.give_read(buf);
        }
        b.give_resps(10_000);
        assert_eq!(b.free_read.len(), KEEP_FREE);
    }

    #[test]
    fn read_buffers_and_responses_share_the_limit() {
        // 1 MB over 32 threads: two 16 KB objects per worker, as memcached counts them.
        let mut b = budget(&["-t", "32", "-o", "read_buf_mem_limit=1"]);
        let r = b.lend_read().unwrap();
        assert_eq!(b.resp_room(), RESP_PER_OBJ);
        assert!(b.take_resps(RESP_PER_OBJ));
        assert!(!b.take_resps(1));
        assert!(b.lend_read().is_none());
        b.give_resps(RESP_PER_OBJ);
        b.give_read(r);
        assert_eq!(b.resp_room(), 2 * RESP_PER_OBJ);
        let g = b.sh.thread_gauges()[0].snapshot();
        assert_eq!((g.pool_objs, g.pool_objs_free, g.response_objs), (2, 2, 0));
    }

    #[test]
    fn values_in_flight_are_limited() {
        // -m 64 over 2 threads: 8 MB each, more than two 1 MB items.
        let mut b = budget(&["-t", "2", "-m", "64"]);
        assert!(b.grow_inflight(0, 8 << 20));
        assert!(!b.grow_inflight(0, 1));
        b.give_inflight(8 << 20);
        assert!(b.grow_inflight(0, 1 << 20));
    }
}
