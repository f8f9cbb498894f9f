//! `ferrocache-bench` end to end: short runs of every protocol against the real server that
//! must validate, the null server answering the tool's own workload, and a server that returns
//! wrong values failing the run (the validation can fail).

mod common;
use common::*;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

/// The tool is its own package in the workspace (bench-tool/): cargo gives this package's tests
/// only their own binaries, so it is found beside the daemon's, where `cargo build --workspace
/// --bins` (the first step of `make test`) puts it.
fn bench_exe() -> std::path::PathBuf {
    let exe =
        std::path::Path::new(env!("CARGO_BIN_EXE_ferrocache")).with_file_name("ferrocache-bench");
    assert!(
        exe.is_file(),
        "{} is missing: run `cargo build --workspace --bins` first",
        exe.display()
    );
    exe
}

/// Runs the tool (one thread of `conns` connections) with `args`; returns the exit code and the
/// JSON report.
fn bench(addr: SocketAddr, conns: &str, args: &[&str]) -> (i32, serde_json::Value) {
    let out = Command::new(bench_exe())
        .args([
            "-q",
            "--json",
            "--threads",
            "1",
            "--conns",
            conns,
            "--seed",
            "5",
        ])
        .args(["--server", &addr.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ferrocache-bench");
    let json = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap_or(-1), json)
}

/// A null server on an OS-assigned port; its address comes from its start-up line.
struct Null(Child, SocketAddr);

impl Null {
    fn start(args: &[&str]) -> Null {
        let mut child = Command::new(bench_exe())
            .args(["--null-server", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn null server");
        let stderr = child.stderr.take().unwrap();
        let line = BufReader::new(stderr)
            .lines()
            .next()
            .expect("start-up line")
            .unwrap();
        let addr = line
            .split("null server on ")
            .nth(1)
            .expect("address in start-up line")
            .trim()
            .parse()
            .unwrap();
        Null(child, addr)
    }
}

impl Drop for Null {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// All error counts of a phase summed.
fn errors(phase: &serde_json::Value) -> u64 {
    phase["errors"]
        .as_object()
        .map(|o| o.values().filter_map(|v| v.as_u64()).sum())
        .unwrap_or(u64::MAX)
}

#[test]
fn every_protocol_validates_against_the_server() {
    let srv = Server::start(&[]);
    for proto in ["text", "meta", "binary"] {
        for (pipeline, multiget) in [("1", "1"), ("8", "1"), ("1", "5")] {
            let (code, json) = bench(
                srv.addr,
                "4",
                &[
                    "--protocol",
                    proto,
                    "--keys",
                    "500",
                    "--preload",
                    "--requests",
                    "3000",
                    "--ratio",
                    "1:4",
                    "--value-size",
                    "10-3000",
                    "--pipeline",
                    pipeline,
                    "--multiget",
                    multiget,
                ],
            );
            assert_eq!(code, 0, "{proto} p{pipeline} m{multiget}: {json}");
            let run = &json["run"];
            assert_eq!(errors(run), 0, "{json}");
            assert!(run["ops"].as_u64().unwrap_or(0) >= 3000, "{json}");
            assert!(run["hit_ratio"].as_f64().unwrap() > 0.99, "{json}");
        }
    }
}

#[test]
fn null_server_answers_the_tools_workload() {
    let null = Null::start(&["--keys", "1000", "--value-size", "100"]);
    let (code, json) = bench(
        null.1,
        "4",
        &[
            "--keys",
            "1000",
            "--value-size",
            "100",
            "--requests",
            "5000",
            "--ratio",
            "1:9",
            "--multiget",
            "4",
            "--pipeline",
            "4",
        ],
    );
    assert_eq!(code, 0, "{json}");
    assert_eq!(json["run"]["hit_ratio"].as_f64(), Some(1.0), "{json}");
}

/// A server that answers every get with the same wrong value must fail the run (exit 1, with
/// validation errors): a fast wrong server cannot look good.
#[test]
fn wrong_values_fail_the_run() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut out = stream.try_clone().unwrap();
        let reader = BufReader::new(stream);
        for line in reader.lines() {
            let Ok(line) = line else { break };
            if let Some(key) = line.strip_prefix("get ") {
                let reply = format!("VALUE {key} 0 5\r\nhello\r\nEND\r\n");
                if std::io::Write::write_all(&mut out, reply.as_bytes()).is_err() {
                    break;
                }
            }
        }
    });
    // One connection: the fake server above accepts only one.
    let (code, json) = bench(
        addr,
        "1",
        &["--keys", "100", "--requests", "200", "--ratio", "0:1"],
    );
    assert_eq!(code, 1, "{json}");
    assert!(
        json["run"]["errors"]["validation"].as_u64().unwrap_or(0) > 0,
        "{json}"
    );
    let _ = server.join();
}

/// `--tls` against ferrocache -Z, the server verified against its CA, with a handshake storm
/// beside the measured load: every reply validates and the storm's connections all succeed.
#[test]
fn tls_with_a_handshake_storm() {
    let pki = common::tls::Pki::new("bench");
    let args = pki.server_args(&[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let srv = Server::start(&args);
    let ca = pki.ca.display().to_string();
    let (code, json) = bench(
        srv.addr,
        "4",
        &[
            "--tls",
            "--tls-ca",
            &ca,
            "--pipeline",
            "4",
            "--keys",
            "500",
            "--preload",
            "--duration",
            "1",
            "--handshake-rate",
            "20",
        ],
    );
    assert_eq!(code, 0, "{json}");
    let run = &json["run"];
    assert!(run["ops"].as_u64().unwrap_or(0) > 0, "{json}");
    let storm = &run["handshake_storm"];
    assert!(storm["handshakes"].as_u64().unwrap_or(0) > 0, "{json}");
    assert_eq!(storm["failed"].as_u64(), Some(0), "{json}");
    // Without the CA, a server certificate is not trusted: the run cannot start.
    let other = pki.other_ca.display().to_string();
    let (code, _) = bench(
        srv.addr,
        "1",
        &["--tls", "--tls-ca", &other, "--duration", "1"],
    );
    assert_eq!(code, 2);
}
