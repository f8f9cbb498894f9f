//! Owns: the opt-in peer health check (`--cluster-health-check SECS`) — a thread that probes
//! every cluster member with `version` and records the results for `stats cluster`. It never
//! changes the served member list: membership is the operator's (flags, file, push).
//! Does not: decide reported states (see `cluster::state`, which applies the hysteresis).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::state::{Shared, Shutdown};

const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// One probe: connect, `version`, expect a `VERSION ` line, within the timeout.
fn probe(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, PROBE_TIMEOUT) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(PROBE_TIMEOUT));
    if s.write_all(b"version\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    let mut n = 0;
    let deadline = Instant::now() + PROBE_TIMEOUT;
    while n < buf.len() && !buf[..n].contains(&b'\n') && Instant::now() < deadline {
        match s.read(&mut buf[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    buf[..n].starts_with(b"VERSION ")
}

/// Runs until shutdown, probing each member once per `interval`.
pub fn run(sh: &Shared, interval: Duration) {
    while sh.shutdown_requested() == Shutdown::None {
        let started = Instant::now();
        let members: Vec<(String, Option<SocketAddr>)> = sh
            .cluster
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
        sh.cluster.retain_peers(&names);
        for (name, addr) in members {
            let ok = addr.is_some_and(probe);
            sh.cluster.record_probe(&name, ok);
        }
        // Sleep the rest of the interval in short steps so shutdown is not delayed.
        while started.elapsed() < interval && sh.shutdown_requested() == Shutdown::None {
            std::thread::sleep((interval - started.elapsed()).min(Duration::from_millis(50)));
        }
    }
}
