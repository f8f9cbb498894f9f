//! Real client libraries drive ferrocache through a mixed workload; the assertions live in the
//! Python scripts under `tests/clients/`. Both clients run under Debian's Python
//! (`/usr/bin/python3`, where the Debian packages install them; `FERROCACHE_PYTHON` overrides):
//!
//! ```text
//! apt-get install -y python3-pylibmc python3-pymemcache
//! ```
//!
//! A missing client is a failure naming that command, never a silent pass.

mod common;
use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const INSTALL: &str = "apt-get install -y python3-pylibmc python3-pymemcache";

fn python() -> String {
    if let Ok(p) = std::env::var("FERROCACHE_PYTHON") {
        return p;
    }
    if std::path::Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3".into()
    } else {
        "python3".into()
    }
}

/// Fails unless `module` imports under the chosen interpreter.
fn require(py: &str, module: &str) {
    let out = Command::new(py)
        .args(["-c", &format!("import {module}")])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {py}: {e}; install Python and `{INSTALL}`"));
    assert!(
        out.status.success(),
        "the Python client `{module}` is not importable by {py}; install it with `{INSTALL}`\n{}",
        show(&out.stderr)
    );
}

/// Runs `tests/clients/<script>.py <port>` against a fresh ferrocache, bounded in time.
fn run_script(module: &str, script: &str, args: &[&str]) {
    let py = python();
    require(&py, module);
    let srv = Server::start(args);
    let path = format!("{}/tests/clients/{script}.py", env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new(&py)
        .arg(&path)
        .arg(srv.addr.port().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {py} {path}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait for the client script") {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("client output");
            panic!(
                "{script} timed out\nstdout:\n{}\nstderr:\n{}",
                show(&out.stdout),
                show(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().expect("client output");
    assert!(
        status.success(),
        "{script} failed ({status}) against ferrocache {}\nstdout:\n{}\nstderr:\n{}",
        srv.addr,
        show(&out.stdout),
        show(&out.stderr)
    );
}

#[test]
fn pymemcache_workload() {
    run_script("pymemcache", "pymemcache_workload", &[]);
}

#[test]
fn pylibmc_text_protocol_workload() {
    run_script("pylibmc", "pylibmc_workload", &[]);
}

#[test]
fn pymemcache_workload_single_thread_small_memory() {
    run_script(
        "pymemcache",
        "pymemcache_workload",
        &["-t", "1", "-m", "64"],
    );
}
