//! Owns: the supervisor's I/O loop (`ferrocache cluster supervise`) — probing every known node's
//! admin endpoint each interval (in parallel, bounded by the probe timeout), feeding the results
//! to `cluster::supervise::Supervisor`, carrying out its pushes in order (stopping at the first
//! refusal) and telling each node that took one why, and logging every decision.
//! Does not: decide anything (see `cluster::supervise`).

use std::time::{Duration, Instant};

use super::push::{fetch_config_within, notify, push_one, Access};
use crate::cluster::supervise::{Action, Probe, Supervisor};

/// How the loop runs.
#[derive(Clone, Debug)]
pub struct Loop {
    pub interval: Duration,
    pub probe_timeout: Duration,
    /// The login and TLS the nodes need.
    pub access: Access,
    /// Stop after this many rounds (None: run until killed).
    pub rounds: Option<u64>,
}

/// One decision line on standard output (the service's journal).
fn log(line: &str) {
    println!("supervise: {line}");
}

/// Probes every node at once; each probe is bounded by `timeout`.
fn probe_all(sup: &Supervisor, l: &Loop) -> Vec<Probe> {
    std::thread::scope(|s| {
        let probes: Vec<_> = sup
            .nodes()
            .iter()
            .map(|k| {
                s.spawn(
                    || match fetch_config_within(&k.admin, &l.access, l.probe_timeout) {
                        Ok(c) => Probe::Up(c),
                        Err(_) => Probe::Down,
                    },
                )
            })
            .collect();
        probes
            .into_iter()
            .map(|h| h.join().unwrap_or(Probe::Down))
            .collect()
    })
}

/// Carries out one action.
fn act(action: Action, l: &Loop) {
    match action {
        Action::Hold(why) => log(&format!("hold: {why}")),
        Action::Push { config, to, reason } => {
            log(&reason);
            for (admin, replaces) in to {
                match push_one(&admin, &config, replaces, &l.access) {
                    Ok(()) => {
                        log(&format!("{admin}: STORED version {}", config.version()));
                        if let Err(e) = notify(&admin, &reason, &l.access) {
                            log(&format!("{admin}: cannot record the reason: {e}"));
                        }
                    }
                    // Refused (another writer was first): the next round reads what it did.
                    Err(e) if e.starts_with("CLIENT_ERROR") => {
                        log(&format!("{admin}: refused ({e}); stopping this push"));
                        return;
                    }
                    Err(e) => log(&format!("{admin}: FAILED {e}")),
                }
            }
        }
    }
}

/// Runs rounds every `interval` (until `rounds`, if given).
pub fn run(mut sup: Supervisor, l: &Loop) {
    let names: Vec<String> = sup
        .nodes()
        .iter()
        .map(|k| {
            let role = if k.standby { "standby" } else { "member" };
            format!("{role} {}@{}", k.entry, k.admin)
        })
        .collect();
    log(&format!("watching {}", names.join(", ")));
    let mut round = 0u64;
    loop {
        let started = Instant::now();
        let probes = probe_all(&sup, l);
        let action = sup.round(Instant::now(), probes);
        for note in sup.take_notes() {
            log(&note);
        }
        if let Some(a) = action {
            act(a, l);
        }
        round += 1;
        if l.rounds.is_some_and(|n| round >= n) {
            return;
        }
        std::thread::sleep(l.interval.saturating_sub(started.elapsed()));
    }
}
