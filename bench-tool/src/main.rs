//! Owns: the program flow: options, workload setup, the preload and measured phases, the report and the exit status.
//!
//! Exit status: 0 when no error of any kind was seen, 1 when any request failed or any hit did not validate,
//! 2 when the run could not be set up (bad options, no connection).

mod config;
mod null;
mod proto;
mod report;
mod stats;
mod tls;
mod worker;
mod workload;

use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use clap::Parser;

use config::{Args, Config};
use report::{CpuUse, PhaseSummary, Progress, Report, Settings};
use stats::{process_cpu_ns, Errors, Perf};
use worker::{Bench, Mode, Shared, PHASE_MEASURE, PHASE_STOP, PHASE_WARMUP};
use workload::{KeyTable, ValueGen};

/// Runs the null server (see `null`) until killed; exit status 2 when it cannot start.
fn null_server(addr: &str, args: &Args) -> ExitCode {
    use std::net::ToSocketAddrs;
    let keys = match KeyTable::new(args.keys, args.key_size) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("ferrocache-bench: {e}");
            return ExitCode::from(2);
        }
    };
    let values = ValueGen::new(args.value_size);
    let addr = match addr.to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(a)) => a,
        _ => {
            eprintln!("ferrocache-bench: --null-server {addr}: not an address");
            return ExitCode::from(2);
        }
    };
    match null::serve(addr, &keys, &values) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferrocache-bench: null server: {e}");
            ExitCode::from(2)
        }
    }
}

/// How often the main thread looks at the clock and the progress counters.
const TICK: Duration = Duration::from_millis(100);

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args = Args::parse();
    if let Some(addr) = args.null_server.clone() {
        return null_server(&addr, &args);
    }
    let cfg = match Config::from_args(args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ferrocache-bench: {e}");
            return ExitCode::from(2);
        }
    };
    let keys = match KeyTable::new(cfg.keys, cfg.key_size) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("ferrocache-bench: {e}");
            return ExitCode::from(2);
        }
    };
    let values = ValueGen::new(cfg.value_size);
    let bench = Arc::new(Bench { cfg, keys, values });
    let cfg = &bench.cfg;

    let mut report = Report {
        settings: Settings::new(cfg),
        preload: None,
        run: None,
        ok: true,
    };
    let mut setup_failed = false;
    if cfg.preload {
        match run_phase(&bench, Mode::Preload) {
            Ok(s) => report.preload = Some(s),
            Err(e) => {
                eprintln!("ferrocache-bench: preload: {e}");
                setup_failed = true;
            }
        }
    }
    if !setup_failed {
        match run_phase(&bench, Mode::Run) {
            Ok(s) => report.run = Some(s),
            Err(e) => {
                eprintln!("ferrocache-bench: {e}");
                setup_failed = true;
            }
        }
    }
    let errors: u64 = [&report.preload, &report.run]
        .iter()
        .filter_map(|p| p.as_ref())
        .map(|p| p.errors.total())
        .sum();
    report.ok = !setup_failed && errors == 0;

    if cfg.json {
        match serde_json::to_string(&report) {
            Ok(j) => println!("{j}"),
            Err(e) => eprintln!("ferrocache-bench: json: {e}"),
        }
    } else {
        print!("{}", report.to_text());
    }
    if setup_failed {
        ExitCode::from(2)
    } else if errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn sum(counters: &[std::sync::atomic::AtomicU64]) -> u64 {
    counters.iter().map(|c| c.load(Ordering::Relaxed)).sum()
}

/// Runs one phase on fresh connections and returns its merged figures.
fn run_phase(bench: &Arc<Bench>, mode: Mode) -> Result<PhaseSummary, String> {
    let cfg = &bench.cfg;
    let warmup = match mode {
        Mode::Run => cfg.warmup,
        Mode::Preload => 0.0,
    };
    let initial = if warmup > 0.0 {
        PHASE_WARMUP
    } else {
        PHASE_MEASURE
    };
    let shared = Arc::new(Shared::new(cfg.threads, initial));
    let mut handles = Vec::with_capacity(cfg.threads);
    for tid in 0..cfg.threads {
        let (b, s) = (Arc::clone(bench), Arc::clone(&shared));
        let h = thread::Builder::new()
            .name(format!("load-{tid}"))
            .spawn(move || worker::run(&b, &s, tid, mode))
            .map_err(|e| format!("spawn: {e}"))?;
        handles.push(h);
    }
    shared.connected.wait();
    if shared.connect_failed.load(Ordering::SeqCst) {
        shared.phase.store(PHASE_STOP, Ordering::SeqCst);
        for h in handles {
            let _ = h.join();
        }
        let e = shared.connect_error.lock().expect("lock").take();
        return Err(e.unwrap_or_else(|| "connection failed".into()));
    }

    if warmup > 0.0 {
        let mut progress = Progress::new(cfg.quiet, "warmup", Some(warmup.ceil() as u64), true);
        let t0 = Instant::now();
        let limit = Duration::from_secs_f64(warmup);
        while t0.elapsed() < limit && shared.finished.load(Ordering::SeqCst) < cfg.threads {
            thread::sleep(TICK.min(limit.saturating_sub(t0.elapsed())));
            progress.update(
                sum(&shared.ops),
                sum(&shared.errors),
                t0.elapsed().as_secs(),
            );
        }
        progress.finish();
    }

    let server_before = cfg.server_pid.and_then(|p| process_cpu_ns(Some(p)));
    let client_before = process_cpu_ns(None);
    shared.phase.store(PHASE_MEASURE, Ordering::SeqCst);
    let start = Instant::now();
    // --handshake-rate: new TLS connections beside the measured load, for as long as it runs.
    let storm_stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut storm = Vec::new();
    if let (Mode::Run, Some(tls), Some(rate)) = (mode, &cfg.tls, cfg.handshake_rate) {
        let n = tls::storm_threads(rate);
        for i in 0..n {
            let (addr, tls, stop) = (cfg.servers[0], Arc::clone(tls), Arc::clone(&storm_stop));
            let share = rate / n as f64;
            storm.push(
                thread::Builder::new()
                    .name(format!("handshakes-{i}"))
                    .spawn(move || tls::storm(addr, &tls, share, &stop))
                    .map_err(|e| format!("spawn: {e}"))?,
            );
        }
    }
    let base_ops = sum(&shared.ops);

    let (label, duration, bar_total, bar_secs) = match mode {
        Mode::Preload => ("preload", None, Some(u64::from(cfg.keys)), false),
        Mode::Run => match cfg.duration {
            Some(d) => (
                "run",
                Some(Duration::from_secs_f64(d)),
                Some(d.ceil() as u64),
                true,
            ),
            None => ("run", None, cfg.requests, false),
        },
    };
    let mut progress = Progress::new(cfg.quiet, label, bar_total, bar_secs);
    let mut stopped_at = None;
    loop {
        let wait = match duration {
            Some(d) => TICK.min(d.saturating_sub(start.elapsed())),
            None => TICK,
        };
        thread::sleep(wait);
        let ops = sum(&shared.ops) - base_ops;
        let pos = if bar_secs {
            start.elapsed().as_secs()
        } else {
            ops
        };
        progress.update(ops, sum(&shared.errors), pos);
        if shared.finished.load(Ordering::SeqCst) == cfg.threads {
            break;
        }
        if duration.is_some_and(|d| start.elapsed() >= d) {
            shared.phase.store(PHASE_STOP, Ordering::SeqCst);
            stopped_at = Some(Instant::now());
            break;
        }
    }
    let server_after = cfg.server_pid.and_then(|p| process_cpu_ns(Some(p)));
    let client_after = process_cpu_ns(None);
    storm_stop.store(true, Ordering::SeqCst);
    let storm: Vec<tls::StormPart> = storm.into_iter().filter_map(|h| h.join().ok()).collect();
    progress.finish();

    let mut perf = Perf::new();
    let mut errors = Errors::default();
    let mut last_end = start;
    for h in handles {
        let r = h.join().map_err(|_| "load thread panicked".to_string())?;
        perf.merge(&r.perf);
        errors.merge(&r.errors);
        last_end = last_end.max(r.end);
    }
    let seconds = stopped_at
        .unwrap_or(last_end)
        .duration_since(start)
        .as_secs_f64();
    let mut summary = PhaseSummary::new(&perf, errors, seconds);
    if let (Some(pid), Some(b), Some(a)) = (cfg.server_pid, server_before, server_after) {
        summary.server_cpu = Some(CpuUse::new(pid, b, a, seconds, perf.ops));
    } else if let Some(pid) = cfg.server_pid {
        log::warn!("cannot read /proc/{pid}/stat: no server CPU figures");
    }
    if let (Some(b), Some(a)) = (client_before, client_after) {
        summary.client_cpu = Some(CpuUse::new(std::process::id(), b, a, seconds, perf.ops));
    }
    summary.handshake_storm = cfg.handshake_rate.and_then(|r| tls::summarize(storm, r));
    Ok(summary)
}
