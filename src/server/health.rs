//! Owns: the opt-in peer health check (`--cluster-health-check SECS`) — a thread that probes
//! every cluster member with `version` (text, then binary for binary-only nodes) and records the
//! results for `stats cluster`. It never
//! changes the served member list: membership is the operator's (flags, file, push).
//! Does not: decide reported states (see `cluster::state`, which applies the hysteresis).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::state::{Shared, Shutdown};

const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// What a probe request got back.
enum Heard {
    /// A complete reply.
    Reply,
    /// The peer closed without one (a binary-only node reading text as bad magic).
    Closed,
    /// Nothing within the timeout, or no connection.
    Nothing,
}

fn exchange(addr: SocketAddr, req: &[u8], done: impl Fn(&[u8]) -> bool) -> Heard {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, PROBE_TIMEOUT) else {
        return Heard::Nothing;
    };
    let _ = s.set_read_timeout(Some(PROBE_TIMEOUT));
    if s.write_all(req).is_err() {
        return Heard::Nothing;
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 256];
    let deadline = Instant::now() + PROBE_TIMEOUT;
    while !done(&buf) && buf.len() < 4096 && Instant::now() < deadline {
        match s.read(&mut chunk) {
            Ok(0) => return Heard::Closed,
            Err(_) => return Heard::Nothing,
            Ok(k) => buf.extend_from_slice(&chunk[..k]),
        }
    }
    if done(&buf) {
        Heard::Reply
    } else {
        Heard::Nothing
    }
}

/// One probe. A text `version` answered with any complete line (`VERSION`, or
/// `CLIENT_ERROR unauthenticated` from a `-Y` node) means up; a binary-only (`-S`) node closes
/// on text, so it gets a binary VERSION, which is allowed before authentication.
fn probe(addr: SocketAddr) -> bool {
    // Three lines: at least a binary header's 24 bytes, so a binary-only node sees bad magic and
    // closes instead of waiting for the rest of a header.
    match exchange(addr, b"version\r\nversion\r\nversion\r\n", |b| {
        b.ends_with(b"\r\n")
    }) {
        Heard::Reply => true,
        Heard::Nothing => false,
        Heard::Closed => {
            use crate::protocol::binary::{op, parse_response, request};
            let pkt = request(op::VERSION, 0, 0, &[], &[], &[]);
            matches!(
                exchange(addr, &pkt, |b| parse_response(b).is_some()),
                Heard::Reply
            )
        }
    }
}

/// Starts the thread when `--cluster-health-check` is given and a cluster is configured.
pub fn start(sh: &Arc<Shared>) -> std::io::Result<Option<JoinHandle<()>>> {
    match sh.config().cluster.health_check {
        Some(every) if sh.cluster().enabled() => {
            let s = sh.clone();
            std::thread::Builder::new()
                .name("cluster-health".into())
                .spawn(move || run(&s, every))
                .map(Some)
        }
        _ => Ok(None),
    }
}

/// Runs until shutdown, probing each member once per `interval`.
fn run(sh: &Shared, interval: Duration) {
    while sh.shutdown_requested() == Shutdown::None {
        let started = Instant::now();
        let members: Vec<(String, Option<SocketAddr>)> = sh
            .cluster()
            .current()
            .map(|c| {
                c.nodes()
                    .iter()
                    .map(|n| {
                        let host = if n.ip.is_empty() { &n.host } else { &n.ip };
                        let addr = (host.as_str(), n.port)
                            .to_socket_addrs()
                            .ok()
                            .and_then(|mut a| a.next());
                        (format!("{}:{}", n.host, n.port), addr)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let names: Vec<String> = members.iter().map(|m| m.0.clone()).collect();
        sh.cluster().retain_peers(&names);
        for (name, addr) in members {
            if sh.shutdown_requested() != Shutdown::None {
                return;
            }
            let ok = addr.is_some_and(probe);
            sh.cluster().record_probe(&name, ok);
        }
        // Sleep the rest of the interval in short steps so shutdown is not delayed.
        while started.elapsed() < interval && sh.shutdown_requested() == Shutdown::None {
            std::thread::sleep((interval - started.elapsed()).min(Duration::from_millis(50)));
        }
    }
}
