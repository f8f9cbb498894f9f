//! Owns: the credential-verification pool — threads that run the slow key-derivation checks
//! (argon2, PBKDF2) so no event loop ever does, and the hand-back of each result to the worker
//! that owns the connection (a channel plus that worker's waker).
//! Does not: decide what a credential is (see `auth`) or answer the client (see `exec::binary`).

use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};
use log::warn;
use mio::Waker;

use crate::auth::{Attempt, Credentials};

/// A check to run.
#[allow(missing_debug_implementations)]
pub struct Job {
    pub creds: Arc<Credentials>,
    pub attempt: Attempt,
    /// Where the connection lives: its slab key and its id (guards against key reuse).
    pub conn_key: usize,
    pub conn_id: i64,
    pub done: Sender<Done>,
    pub waker: Arc<Waker>,
}

/// A finished check, for the worker that submitted it.
#[derive(Debug)]
pub struct Done {
    pub conn_key: usize,
    pub conn_id: i64,
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
        let (tx, rx) = crossbeam_channel::unbounded::<Job>();
        for i in 0..threads.max(1) {
            let rx: Receiver<Job> = rx.clone();
            std::thread::Builder::new()
                .name(format!("verify-{i}"))
                .spawn(move || {
                    for job in rx.iter() {
                        let ok = job.creds.check(&job.attempt.user, &job.attempt.password);
                        let done = Done {
                            conn_key: job.conn_key,
                            conn_id: job.conn_id,
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

    /// Queues a check. False when the pool is gone (the attempt then fails).
    pub fn submit(&self, job: Job) -> bool {
        self.tx.send(job).is_ok()
    }
}
