//! Owns: the credential-verification pool — threads that run the slow key-derivation checks
//! (argon2, PBKDF2) so no event loop ever does, and the hand-back of each result to the worker
//! that owns the connection (a channel plus that worker's waker).
//! Does not: decide what a credential is (see `auth`) or answer the client (see `exec::binary`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use log::warn;
use mio::Waker;

use crate::auth::{Attempt, Credentials};

/// Checks waiting at most; beyond that attempts fail at once (a key derivation takes tens of
/// milliseconds, so a longer queue only makes every login wait).
const QUEUE: usize = 128;

/// A check to run.
#[allow(missing_debug_implementations)]
pub struct Job {
    pub creds: Arc<Credentials>,
    pub attempt: Attempt,
    /// Where the connection lives: its slab key and its serial (guards against key reuse).
    pub conn_key: usize,
    pub conn_serial: u64,
    /// Set when the connection has gone: the check is skipped.
    pub cancel: Arc<AtomicBool>,
    pub done: Sender<Done>,
    pub waker: Arc<Waker>,
}

/// A finished check, for the worker that submitted it.
#[derive(Debug)]
pub struct Done {
    pub conn_key: usize,
    pub conn_serial: u64,
    pub reply: crate::auth::Reply,
    pub ok: bool,
}

/// Handle to the pool; cloned into every worker.
#[derive(Clone)]
#[allow(missing_debug_implementations)]
pub struct Verifier {
    tx: Sender<Job>,
}

impl Verifier {
    /// Starts `threads` verification threads. They end when every handle is dropped.
    pub fn start(threads: usize) -> std::io::Result<Verifier> {
        let (tx, rx) = crossbeam_channel::bounded::<Job>(QUEUE);
        for i in 0..threads.max(1) {
            let rx: Receiver<Job> = rx.clone();
            std::thread::Builder::new()
                .name(format!("verify-{i}"))
                .spawn(move || {
                    for job in rx.iter() {
                        if job.cancel.load(Ordering::Relaxed) {
                            continue;
                        }
                        let ok = job.creds.check(&job.attempt.user, &job.attempt.password);
                        let done = Done {
                            conn_key: job.conn_key,
                            conn_serial: job.conn_serial,
                            reply: job.attempt.reply,
                            ok,
                        };
                        if job.done.send(done).is_ok() {
                            if let Err(e) = job.waker.wake() {
                                warn!("cannot wake worker: {e}");
                            }
                        }
                    }
                })?;
        }
        Ok(Verifier { tx })
    }

    /// Queues a check. False when the queue is full or the pool is gone (the attempt then fails).
    pub fn submit(&self, job: Job) -> bool {
        self.tx.try_send(job).is_ok()
    }
}

/// Failed attempts one peer address may make per second before its further attempts fail at
/// once, without queuing a check: one client guessing passwords cannot fill the queue that
/// every other client's logins wait in.
pub const FAILURES_PER_SECOND: u32 = 20;

/// Per-worker count of failed attempts by peer address, in one-second windows.
#[derive(Debug, Default)]
pub struct FailureLimiter {
    second: u64,
    failures: std::collections::HashMap<std::net::IpAddr, u32>,
}

impl FailureLimiter {
    fn roll(&mut self, now: u64) {
        if now != self.second {
            self.second = now;
            self.failures.clear();
        }
    }

    /// Whether `ip` may have a check queued now.
    pub fn allow(&mut self, ip: std::net::IpAddr, now: u64) -> bool {
        self.roll(now);
        self.failures.get(&ip).copied().unwrap_or(0) < FAILURES_PER_SECOND
    }

    /// Records a failed attempt.
    pub fn failed(&mut self, ip: std::net::IpAddr, now: u64) {
        self.roll(now);
        *self.failures.entry(ip).or_insert(0) += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limiter_counts_per_peer_and_second() {
        let mut l = FailureLimiter::default();
        let a: std::net::IpAddr = "10.0.0.1".parse().unwrap();
        let b: std::net::IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..FAILURES_PER_SECOND {
            assert!(l.allow(a, 7));
            l.failed(a, 7);
        }
        assert!(!l.allow(a, 7));
        assert!(l.allow(b, 7), "other peers are unaffected");
        assert!(l.allow(a, 8), "a new second starts afresh");
    }
}
