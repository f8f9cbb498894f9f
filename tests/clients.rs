//! Real client libraries drive ferrocache through a mixed workload; the assertions live in the
//! Python scripts under `tests/clients/`. Both clients run under Debian's Python
//! (`/usr/bin/python3`, where the Debian packages install them; `FERROCACHE_PYTHON` overrides):
//!
//! ```text
//! apt-get install -y python3-pylibmc python3-pymemcache
//! ```
//!
//! The Node clients (memjs; memcache-plus over TLS, with Auto Discovery) come from npm into
//! /tmp/ferrocache-npm (`make test-deps`).
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
    run_script_with(module, script, args, &[]);
}

/// `run_script` with arguments for the script after the port.
fn run_script_with(module: &str, script: &str, args: &[&str], script_args: &[&str]) {
    let py = python();
    require(&py, module);
    let srv = Server::start(args);
    let path = format!("{}/tests/clients/{script}.py", env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new(&py)
        .arg(&path)
        .arg(srv.addr.port().to_string())
        .args(script_args)
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

/// A credentials file with one plaintext and one argon2id entry (made by `ferrocache passwd`).
fn credentials(name: &str) -> String {
    let dir = tmpdir(&format!("clients-{name}"));
    let hashed = passwd("hashed-user", "s3cret pass", "argon2id");
    let file = dir.join("users");
    std::fs::write(&file, format!("plainuser:plainpass\n{hashed}\n")).unwrap();
    file.to_str().unwrap().to_string()
}

#[test]
fn binary_clients_bmemcached_and_pylibmc() {
    run_script("bmemcached", "binary_clients", &[]);
}

#[test]
fn binary_clients_with_sasl_hashed_credentials() {
    let file = credentials("sasl");
    run_script_with(
        "bmemcached",
        "binary_clients",
        &["-S", "--sasl-pwdb", &file],
        &["--user", "hashed-user", "--password", "s3cret pass"],
    );
    run_script_with(
        "bmemcached",
        "binary_clients",
        &["-S", "--sasl-pwdb", &file],
        &["--user", "plainuser", "--password", "plainpass"],
    );
}

#[test]
fn ascii_auth_pymemcache() {
    let file = credentials("ascii");
    run_script_with(
        "pymemcache",
        "ascii_auth",
        &["-Y", &file],
        &["plainuser", "plainpass"],
    );
}

/// libmemcached's tools: `memcstat` over binary with SASL, `memccapable -b` (it flushes).
#[test]
fn libmemcached_tools_binary_and_sasl() {
    let file = credentials("tools");
    let srv = Server::start(&["-S", "--sasl-pwdb", &file]);
    let servers = format!("--servers=127.0.0.1:{}", srv.addr.port());
    let run = |args: &[&str]| {
        Command::new("memcstat")
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("memcstat: {e}; apt-get install -y libmemcached-tools"))
    };
    let ok = run(&[
        &servers,
        "--binary",
        "--username=hashed-user",
        "--password=s3cret pass",
    ]);
    assert!(ok.status.success(), "{}", show(&ok.stderr));
    let text = show(&ok.stdout);
    assert!(
        text.contains("pid:") && text.contains("auth_cmds: 1"),
        "{text}"
    );
    let bad = run(&[
        &servers,
        "--binary",
        "--username=hashed-user",
        "--password=wrong",
    ]);
    assert!(!bad.status.success());

    let plain = Server::start(&[]);
    let out = Command::new("memccapable")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &plain.addr.port().to_string(),
            "-b",
        ])
        .output()
        .expect("memccapable (apt-get install -y libmemcached-tools)");
    assert!(
        out.status.success(),
        "memccapable -b failed:\n{}{}",
        show(&out.stdout),
        show(&out.stderr)
    );
}

/// The npm client memjs (binary protocol, SASL PLAIN), without and with authentication.
#[test]
fn memjs_binary_and_sasl() {
    let file = credentials("memjs");
    let script = format!(
        "{}/tests/clients/memjs_client.js",
        env!("CARGO_MANIFEST_DIR")
    );
    let plain = Server::start(&[]);
    let sasl = Server::start(&["-S", "--sasl-pwdb", &file]);
    for (srv, args) in [
        (&plain, vec![]),
        (&sasl, vec!["hashed-user", "s3cret pass", "wrong"]),
    ] {
        let out = Command::new("node")
            .env("NODE_PATH", "/tmp/ferrocache-npm/node_modules")
            .arg(&script)
            .arg(srv.addr.port().to_string())
            .args(&args)
            .output()
            .expect("node (comes with the machine; `make test-deps` installs memjs)");
        assert!(
            out.status.success(),
            "memjs failed:\n{}{}",
            show(&out.stdout),
            show(&out.stderr)
        );
    }
}

/// pymemcache with an `ssl.SSLContext`: verified against the CA, then with a client certificate
/// under `ssl_verify_mode=2` (a client without one refused).
#[test]
fn pymemcache_over_tls_verified_and_with_a_client_certificate() {
    let pki = common::tls::Pki::new("pymemcache");
    let files = |p: &std::path::Path| p.display().to_string();
    let (ca, crt, key) = (
        files(&pki.ca),
        files(&pki.client_crt),
        files(&pki.client_key),
    );
    let ca_opt = format!("ssl_ca_cert={ca}");
    for (extra, mode) in [
        (vec![], "none"),
        (vec!["ssl_verify_mode=2", ca_opt.as_str()], "require"),
    ] {
        let args = pki.server_args(&extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_script_with(
            "pymemcache",
            "pymemcache_tls",
            &args,
            &[&ca, &crt, &key, mode],
        );
    }
}

/// The npm client memcache-plus over TLS: Auto Discovery (`config get cluster` over TLS) from one
/// node, then set/get over TLS on the node it discovered.
#[test]
fn memcache_plus_discovery_and_requests_over_tls() {
    let pki = common::tls::Pki::new("memcacheplus");
    let args = pki.server_args(&[]);
    let tls_args: Vec<&str> = args.iter().map(String::as_str).collect();
    let data = Server::start(&tls_args);
    let nodes = format!("localhost|127.0.0.1|{}", data.addr.port());
    let mut all = tls_args.clone();
    all.extend(["--cluster-nodes", &nodes]);
    let config = Server::start(&all);
    let script = format!(
        "{}/tests/clients/memcache_plus_tls.js",
        env!("CARGO_MANIFEST_DIR")
    );
    let out = Command::new("node")
        .env("NODE_PATH", "/tmp/ferrocache-npm/node_modules")
        .env("NODE_EXTRA_CA_CERTS", &pki.ca)
        .arg(&script)
        .arg(config.addr.port().to_string())
        .arg(data.addr.port().to_string())
        .stdin(Stdio::null())
        .output()
        .expect("node (comes with the machine; `make test-deps` installs memcache-plus)");
    assert!(
        out.status.success(),
        "memcache-plus over TLS failed:\n{}{}",
        show(&out.stdout),
        show(&out.stderr)
    );
    // The keys went to the discovered node, over TLS.
    let mut s = common::tls::connect(data.addr, pki.client(None, &[])).unwrap();
    let r = common::tls::exchange(&mut s, b"get tls-key-7\r\n").unwrap();
    assert!(show(&r).contains("value-7"), "{}", show(&r));
}
