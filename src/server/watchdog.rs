//! Owns: the systemd watchdog — one heartbeat per worker (bumped each time its event loop
//! turns), and the thread that, every half `$WATCHDOG_USEC`, sends `WATCHDOG=1` only when every
//! heartbeat moved since the last look, then wakes every worker so an idle one turns once more.
//! A worker stuck in a request stops its heartbeat, the pings stop, and systemd acts.
//! Does not: speak the notification protocol (see `notify`) or run a worker (see `worker`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_utils::CachePadded;
use log::warn;

/// One counter per worker, each written by its worker only.
#[derive(Debug)]
pub struct Heartbeats {
    beats: Box<[CachePadded<AtomicU64>]>,
}

impl Heartbeats {
    pub fn new(workers: usize) -> Arc<Heartbeats> {
        Arc::new(Heartbeats {
            beats: (0..workers)
                .map(|_| CachePadded::new(AtomicU64::new(0)))
                .collect(),
        })
    }

    /// Worker `i`'s event loop turned once.
    pub fn beat(&self, i: usize) {
        if let Some(b) = self.beats.get(i) {
            b.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn snapshot(&self) -> Vec<u64> {
        self.beats
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect()
    }
}

/// The heartbeats as last seen.
#[derive(Debug)]
struct Watch {
    last: Vec<u64>,
}

impl Watch {
    /// The workers whose heartbeat did not move since the last look (none: ping).
    fn stalled(&mut self, now: Vec<u64>) -> Vec<usize> {
        let stalled = now
            .iter()
            .zip(&self.last)
            .enumerate()
            .filter(|(_, (n, l))| n == l)
            .map(|(i, _)| i)
            .collect();
        self.last = now;
        stalled
    }
}

/// What the watchdog thread acts through (the real one: `notify::watchdog_ping`, the workers'
/// wakers, the shutdown request).
pub struct Hooks {
    pub ping: Box<dyn Fn() + Send>,
    pub wake_all: Box<dyn Fn() + Send>,
    pub stop: Box<dyn Fn() -> bool + Send>,
}

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hooks")
    }
}

/// Starts the watchdog thread; it ends once `hooks.stop` says so.
pub fn start(
    period: Duration,
    beats: Arc<Heartbeats>,
    hooks: Hooks,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || run(period, &beats, &hooks))
}

fn run(period: Duration, beats: &Heartbeats, hooks: &Hooks) {
    let mut watch = Watch {
        last: beats.snapshot(),
    };
    (hooks.wake_all)();
    loop {
        std::thread::sleep(period);
        if (hooks.stop)() {
            return;
        }
        let stalled = watch.stalled(beats.snapshot());
        if stalled.is_empty() {
            (hooks.ping)();
        } else {
            warn!("watchdog: worker(s) {stalled:?} did not turn their event loop; not pinging");
        }
        (hooks.wake_all)();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    #[test]
    fn stalled_names_the_workers_whose_beat_did_not_move() {
        let mut w = Watch {
            last: vec![0, 0, 0],
        };
        assert_eq!(w.stalled(vec![1, 5, 2]), Vec::<usize>::new());
        assert_eq!(w.stalled(vec![2, 5, 3]), vec![1]);
        assert_eq!(w.stalled(vec![2, 6, 3]), vec![0, 2]);
    }

    /// The thread pings while every "worker" answers its wake, and never while one is wedged.
    fn pings(wedged: bool) -> u64 {
        let beats = Heartbeats::new(2);
        let pings = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (b, p, s) = (beats.clone(), pings.clone(), stop.clone());
        let h = start(
            Duration::from_millis(1),
            beats.clone(),
            Hooks {
                ping: Box::new(move || {
                    if p.fetch_add(1, Ordering::Relaxed) >= 20 {
                        s.store(true, Ordering::Relaxed);
                    }
                }),
                // Worker 0 always turns when woken; worker 1 only when not wedged.
                wake_all: Box::new(move || {
                    b.beat(0);
                    if !wedged {
                        b.beat(1);
                    }
                }),
                stop: Box::new({
                    let stop = stop.clone();
                    let beats = beats.clone();
                    move || stop.load(Ordering::Relaxed) || beats.snapshot()[0] > 200
                }),
            },
        )
        .unwrap();
        h.join().unwrap();
        pings.load(Ordering::Relaxed)
    }

    #[test]
    fn pings_only_while_every_worker_turns() {
        assert!(pings(false) > 20);
        assert_eq!(pings(true), 0);
    }
}
