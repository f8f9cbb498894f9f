//! Owns: the opt-in peer health check (`--cluster-health-check SECS`) — a thread that probes
//! every cluster member with `version` (text, then binary for binary-only nodes) and records the
//! results for `stats cluster`. It never
//! changes the served member list: membership is the operator's (flags, file, push). With
//! `--cluster-health-tls` the probes speak TLS (a member's certificate is checked against its
//! host name, or `--cluster-health-tls-server-name`); a failed handshake is a failed probe.
//! Does not: decide reported states (see `cluster::state`, which applies the hysteresis).

use std::io::{Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::push::open_addr;
use crate::state::{Shared, Shutdown};
use crate::tls::ClientTls;

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

/// Where a probe goes: the member's address, its host name (what TLS verifies) and the TLS
/// client, if the probes speak TLS.
#[derive(Clone, Copy)]
struct Target<'a> {
    addr: SocketAddr,
    host: &'a str,
    tls: Option<&'a ClientTls>,
}

fn exchange(t: Target<'_>, req: &[u8], done: impl Fn(&[u8]) -> bool) -> Heard {
    let Ok(mut s) = open_addr(t.addr, t.host, PROBE_TIMEOUT, t.tls) else {
        return Heard::Nothing;
    };
    if s.write_all(req).and_then(|()| s.flush()).is_err() {
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
fn probe(t: Target<'_>) -> bool {
    // Three lines: at least a binary header's 24 bytes, so a binary-only node sees bad magic and
    // closes instead of waiting for the rest of a header.
    match exchange(t, b"version\r\nversion\r\nversion\r\n", |b| {
        b.ends_with(b"\r\n")
    }) {
        Heard::Reply => true,
        Heard::Nothing => false,
        Heard::Closed => {
            use crate::protocol::binary::{op, parse_response, request};
            let pkt = request(op::VERSION, 0, 0, &[], &[], &[]);
            matches!(
                exchange(t, &pkt, |b| parse_response(b).is_some()),
                Heard::Reply
            )
        }
    }
}

/// Starts the thread when `--cluster-health-check` is given and a cluster is configured.
pub fn start(sh: &Arc<Shared>) -> std::io::Result<Option<JoinHandle<()>>> {
    match sh.config().cluster.health_check {
        Some(every) if sh.cluster().enabled() => {
            let tls = match &sh.config().cluster_health_tls {
                Some(c) => Some(ClientTls::new(c).map_err(std::io::Error::other)?),
                None => None,
            };
            let s = sh.clone();
            std::thread::Builder::new()
                .name("cluster-health".into())
                .spawn(move || run(&s, every, tls.as_ref()))
                .map(Some)
        }
        _ => Ok(None),
    }
}

/// Runs until shutdown, probing each member once per `interval`.
fn run(sh: &Shared, interval: Duration, tls: Option<&ClientTls>) {
    while sh.shutdown_requested() == Shutdown::None {
        let started = Instant::now();
        let members: Vec<(String, String, Option<SocketAddr>)> = sh
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
                        (format!("{}:{}", n.host, n.port), n.host.clone(), addr)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let names: Vec<String> = members.iter().map(|m| m.0.clone()).collect();
        sh.cluster().retain_peers(&names);
        for (name, host, addr) in members {
            if sh.shutdown_requested() != Shutdown::None {
                return;
            }
            let ok = addr.is_some_and(|addr| {
                probe(Target {
                    addr,
                    host: &host,
                    tls,
                })
            });
            sh.cluster().record_probe(&name, ok);
        }
        // Sleep the rest of the interval in short steps so shutdown is not delayed.
        while started.elapsed() < interval && sh.shutdown_requested() == Shutdown::None {
            std::thread::sleep((interval - started.elapsed()).min(Duration::from_millis(50)));
        }
    }
}
