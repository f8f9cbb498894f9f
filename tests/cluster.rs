//! Auto Discovery and consistent hashing: byte-exact discovery replies (text, legacy key, binary
//! 0x60) and memcached's replies with discovery off; pushes only on the admin endpoint, stale
//! versions refused, versions that survive restarts, SIGHUP reload of a cluster file; three
//! daemons found and followed by real discovery clients (Python: elasticache-auto-discovery and
//! emcache; Node: memcached-elasticache and memcache-plus); keys written by pylibmc's ketama land
//! where `ferrocache ring` says.
//!
//! Client packages (installed by `make test-deps`): PyPI `elasticache-auto-discovery` and
//! `emcache` in /tmp/ferrocache-pydeps, npm `memcached-elasticache` and `memcache-plus` in
//! /tmp/ferrocache-npm, Debian's python3-pylibmc.

mod common;
use common::*;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use ferrocache::protocol::binary::{op, parse_response, request};

const PYDEPS: &str = "/tmp/ferrocache-pydeps";
const NPMDEPS: &str = "/tmp/ferrocache-npm/node_modules";
const BIN: &str = env!("CARGO_BIN_EXE_ferrocache");

fn config_get(addr: SocketAddr) -> String {
    show(&raw(addr, b"config get cluster\r\n", b"END\r\n"))
}

fn version_of(addr: SocketAddr) -> u64 {
    let r = config_get(addr);
    r.split("\r\n")
        .nth(1)
        .and_then(|l| l.split('\n').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no version in {r:?}"))
}

fn bin_call(addr: SocketAddr, pkt: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(pkt).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    while parse_response(&buf).is_none() {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    buf
}

fn push(nodes: &str, version: Option<u64>, endpoints: &[SocketAddr]) -> (bool, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(["cluster", "push", "--nodes", nodes]);
    if let Some(v) = version {
        cmd.args(["--version", &v.to_string()]);
    }
    cmd.args(endpoints.iter().map(|e| e.to_string()));
    let out = cmd.output().unwrap();
    (out.status.success(), show(&out.stdout) + &show(&out.stderr))
}

#[test]
fn discovery_off_matches_memcached() {
    let (mc, _) = start_memcached(&[]);
    let fc = Server::start(&[]);
    for req in [
        &b"config get cluster\r\n"[..],
        b"get AmazonElastiCache:cluster\r\n",
        b"config set cluster 0 1\r\n",
    ] {
        let until: &[u8] = if req.starts_with(b"get") {
            b"END\r\n"
        } else {
            b"\r\n"
        };
        assert_eq!(
            show(&raw(mc.addr, req, until)),
            show(&raw(fc.addr, req, until)),
            "{}",
            show(req)
        );
    }
    // Binary 0x60 is an unknown command. (memcached answers that too, but only once it has
    // skipped `bodylen` more bytes than the request has: it hangs here, so it is not asked.)
    assert_eq!(
        show(&raw(mc.addr, b"stats cluster\r\n", b"\r\n")),
        show(&raw(fc.addr, b"stats cluster\r\n", b"\r\n"))
    );
    let pkt = request(op::CONFIG_GET, 5, 0, &[], b"cluster", &[]);
    let mut want = vec![0x81, 0x60, 0, 0, 0, 0, 0, 0x81, 0, 0, 0, 15, 0, 0, 0, 5];
    want.extend_from_slice(&[0; 8]);
    want.extend_from_slice(b"Unknown command");
    assert_eq!(bin_call(fc.addr, &pkt), want);
}

#[test]
fn discovery_replies_are_byte_exact() {
    let nodes = "b.example|10.0.0.2|11211 a.example|10.0.0.1|11212, c.example||11213";
    let fc = Server::start(&["--cluster-nodes", nodes]);
    let payload = "1\na.example|10.0.0.1|11212 b.example|10.0.0.2|11211 c.example||11213\n";
    let want = format!("CONFIG cluster 0 {}\r\n{payload}\r\nEND\r\n", payload.len());
    assert_eq!(config_get(fc.addr), want);
    // Trailing space and a bare LF are accepted, as the AWS clients send them.
    assert_eq!(
        show(&raw(fc.addr, b"config get cluster \n", b"END\r\n")),
        want
    );
    // The legacy key, read-only and in multi-gets.
    let legacy = format!(
        "VALUE AmazonElastiCache:cluster 0 {}\r\n{payload}\r\n",
        payload.len()
    );
    assert_eq!(
        show(&raw(
            fc.addr,
            b"get AmazonElastiCache:cluster\r\n",
            b"END\r\n"
        )),
        format!("{legacy}END\r\n")
    );
    // Read-only: writes are refused in every protocol.
    let ro = "CLIENT_ERROR AmazonElastiCache:cluster is read-only";
    let r = raw(
        fc.addr,
        b"set AmazonElastiCache:cluster 0 0 1\r\nx\r\ndelete AmazonElastiCache:cluster\r\nms AmazonElastiCache:cluster 1\r\nx\r\nmn\r\n",
        b"MN\r\n",
    );
    assert_eq!(show(&r), format!("{ro}\r\n{ro}\r\n{ro}\r\nMN\r\n"));
    let b = bin_call(
        fc.addr,
        &request(op::SET, 0, 0, &[0; 8], b"AmazonElastiCache:cluster", b"x"),
    );
    assert_eq!(b[6..8], [0, 5]);
    let r = raw(
        fc.addr,
        b"set k 0 0 1\r\nv\r\nget AmazonElastiCache:cluster k\r\n",
        b"END\r\n",
    );
    assert_eq!(
        show(&r),
        format!("STORED\r\n{legacy}VALUE k 0 1\r\nv\r\nEND\r\n")
    );
    // Binary CONFIG_GET: 4 bytes of flags, no key, the payload; opaque echoed.
    let got = bin_call(
        fc.addr,
        &request(op::CONFIG_GET, 0x0102_0304, 0, &[], b"cluster", &[]),
    );
    let mut want_bin = vec![0x81, 0x60, 0, 0, 4, 0, 0, 0];
    want_bin.extend_from_slice(&((4 + payload.len()) as u32).to_be_bytes());
    want_bin.extend_from_slice(&[1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    want_bin.extend_from_slice(payload.as_bytes());
    assert_eq!(got, want_bin);
    // `version` stays three plain numbers.
    assert_eq!(
        show(&raw(fc.addr, b"version\r\n", b"\r\n")),
        "VERSION 1.6.18\r\n"
    );
    // Pushes are refused off the admin endpoint (text and binary).
    let p = "2\na.example|10.0.0.1|11212\n";
    let req = format!("config set cluster 0 {}\r\n{p}\r\n", p.len());
    assert_eq!(
        show(&raw(fc.addr, req.as_bytes(), b"\r\n")),
        "CLIENT_ERROR config set is accepted only on the admin endpoint\r\n"
    );
    let r = bin_call(
        fc.addr,
        &request(op::CONFIG_SET, 0, 0, &[], b"cluster", p.as_bytes()),
    );
    assert_eq!(r[7], 0x20, "auth error status");
    assert_eq!(config_get(fc.addr), want, "unchanged");

    // Another node given the same membership in another order serves the same bytes.
    let other = Server::start(&[
        "--cluster-nodes",
        "c.example||11213",
        "--cluster-nodes",
        "a.example|10.0.0.1|11212,b.example|10.0.0.2|11211",
    ]);
    assert_eq!(config_get(other.addr), want);
}

#[test]
fn versions_rise_persist_and_refuse_stale_pushes() {
    let dir = tmpdir("versions");
    let state = dir.join("state");
    let st = state.to_str().unwrap();
    let (fc, admin) = Server::start_admin(&["--state-dir", st]);
    // Enabled but not configured yet.
    assert_eq!(config_get(fc.addr), "END\r\n");
    let (ok, out) = push(
        "localhost|127.0.0.1|1,localhost|127.0.0.1|2",
        None,
        &[admin],
    );
    assert!(ok, "{out}");
    assert_eq!(version_of(fc.addr), 1);
    let (ok, _) = push("localhost|127.0.0.1|1", None, &[admin]);
    assert!(ok);
    assert_eq!(version_of(fc.addr), 2);
    // A stale or equal version is refused with a clear error and changes nothing.
    let (ok, out) = push("localhost|127.0.0.1|3", Some(2), &[admin]);
    assert!(
        !ok && out.contains("CLIENT_ERROR cluster version not newer"),
        "{out}"
    );
    let p = "9007199254740992\nlocalhost|127.0.0.1|3\n";
    let req = format!("config set cluster 0 {}\r\n{p}\r\n", p.len());
    assert_eq!(
        show(&raw(admin, req.as_bytes(), b"\r\n")),
        "CLIENT_ERROR bad cluster version\r\n"
    );
    assert_eq!(version_of(fc.addr), 2);
    // Binary CONFIG_SET on the admin endpoint.
    let p = "7\nlocalhost|127.0.0.1|4\n";
    let r = bin_call(
        admin,
        &request(op::CONFIG_SET, 0, 0, &[], b"cluster", p.as_bytes()),
    );
    assert_eq!(r[6..8], [0, 0]);
    assert_eq!(version_of(fc.addr), 7);
    let before = config_get(fc.addr);
    drop(fc);
    // A restart serves the same config: the version never goes back.
    let (fc, _) = Server::start_admin(&["--state-dir", st]);
    assert_eq!(config_get(fc.addr), before);
    drop(fc);
    // Restarting with flags that were never applied here applies them, with a newer version.
    let fc = Server::start(&[
        "--state-dir",
        st,
        "--cluster-nodes",
        "localhost|127.0.0.1|5",
    ]);
    assert_eq!(version_of(fc.addr), 8);
}

/// A conditional push (the version it replaces: text after `<bytes>`, binary in the header's
/// CAS) is stored only while that version is served; otherwise a clear error, nothing changed.
/// Unconditional pushes keep working.
#[test]
fn conditional_push_is_a_compare_and_set() {
    let (fc, admin) = Server::start_admin(&["--cluster-nodes", "localhost|127.0.0.1|1"]);
    assert_eq!(version_of(fc.addr), 1);
    let set = |p: &str, tail: &str| {
        let req = format!("config set cluster 0 {}{tail}\r\n{p}\r\n", p.len());
        show(&raw(admin, req.as_bytes(), b"\r\n"))
    };
    // Text: replaces 1 while 1 is served.
    assert_eq!(set("2\nlocalhost|127.0.0.1|2\n", " 1"), "STORED\r\n");
    assert_eq!(version_of(fc.addr), 2);
    // Two writers that both saw version 2: the second is refused.
    assert_eq!(set("3\nlocalhost|127.0.0.1|3\n", " 2"), "STORED\r\n");
    assert_eq!(
        set("3\nlocalhost|127.0.0.1|4\n", " 2"),
        "CLIENT_ERROR cluster version mismatch: expected 2, current 3\r\n"
    );
    assert_eq!(
        config_get(fc.addr),
        "CONFIG cluster 0 24\r\n3\nlocalhost|127.0.0.1|3\n\r\nEND\r\n"
    );
    // noreply after the version: silent either way.
    let p = "4\nlocalhost|127.0.0.1|5\n";
    let req = format!(
        "config set cluster 0 {} 9 noreply\r\n{p}\r\nconfig set cluster 0 {} 3 noreply\r\n{p}\r\nmn\r\n",
        p.len(),
        p.len()
    );
    assert_eq!(show(&raw(admin, req.as_bytes(), b"MN\r\n")), "MN\r\n");
    assert_eq!(version_of(fc.addr), 4);
    // A bad version token is a format error.
    assert_eq!(
        set("5\nlocalhost|127.0.0.1|6\n", " x"),
        "CLIENT_ERROR bad command line format\r\n"
    );
    // Binary: the CAS field names the version replaced; a mismatch is "exists" (0x02).
    let p = "5\nlocalhost|127.0.0.1|7\n";
    let r = bin_call(
        admin,
        &request(op::CONFIG_SET, 0, 3, &[], b"cluster", p.as_bytes()),
    );
    assert_eq!(r[6..8], [0, 2], "{}", show(&r));
    assert!(
        show(&r).ends_with("CLIENT_ERROR cluster version mismatch: expected 3, current 4"),
        "{}",
        show(&r)
    );
    assert_eq!(version_of(fc.addr), 4);
    let r = bin_call(
        admin,
        &request(op::CONFIG_SET, 0, 4, &[], b"cluster", p.as_bytes()),
    );
    assert_eq!(r[6..8], [0, 0]);
    assert_eq!(version_of(fc.addr), 5);
    // Unconditional pushes (text and binary) as before.
    assert_eq!(set("6\nlocalhost|127.0.0.1|8\n", ""), "STORED\r\n");
    let r = bin_call(
        admin,
        &request(
            op::CONFIG_SET,
            0,
            0,
            &[],
            b"cluster",
            b"7\nlocalhost|127.0.0.1|9\n",
        ),
    );
    assert_eq!(r[6..8], [0, 0]);
    assert_eq!(version_of(fc.addr), 7);
    let stats = show(&raw(fc.addr, b"stats cluster\r\n", b"END\r\n"));
    assert!(stats.contains("STAT cluster_push_errors 3\r\n"), "{stats}");
}

#[test]
fn cluster_file_reloads_on_sighup() {
    let dir = tmpdir("file");
    let file = dir.join("nodes");
    std::fs::write(&file, "version 5\nlocalhost:11211\n").unwrap();
    let fc = Server::start(&["--cluster-file", file.to_str().unwrap()]);
    assert_eq!(
        config_get(fc.addr),
        "CONFIG cluster 0 19\r\n5\nlocalhost||11211\n\r\nEND\r\n"
    );
    std::fs::write(&file, "version 6\n127.0.0.1:11211 127.0.0.2:11212:3\n").unwrap();
    let hup = || {
        Command::new("kill")
            .args(["-HUP", &fc.pid().to_string()])
            .status()
            .unwrap()
    };
    hup();
    let deadline = Instant::now() + Duration::from_secs(10);
    while version_of(fc.addr) != 6 {
        assert!(Instant::now() < deadline, "reload not applied");
        std::thread::sleep(Duration::from_millis(20));
    }
    let p = "6\n127.0.0.1|127.0.0.1|11211 127.0.0.2|127.0.0.2|11212\n";
    assert_eq!(
        config_get(fc.addr),
        format!("CONFIG cluster 0 {}\r\n{p}\r\nEND\r\n", p.len())
    );
    // A broken file keeps the config in force.
    std::fs::write(&file, "version 7\nnot a node!\n").unwrap();
    hup();
    assert_eq!(
        show(&raw(fc.addr, b"version\r\n", b"\r\n")),
        "VERSION 1.6.18\r\n"
    );
    assert_eq!(version_of(fc.addr), 6);
}

/// Three daemons with admin endpoints and the membership pushed with `ferrocache cluster push`.
struct Three {
    nodes: Vec<(Server, SocketAddr)>,
}

impl Three {
    fn start(name: &str) -> Three {
        let dir = tmpdir(name);
        let nodes: Vec<(Server, SocketAddr)> = (0..3)
            .map(|i| {
                let st = dir.join(format!("n{i}"));
                Server::start_admin(&["--state-dir", st.to_str().unwrap()])
            })
            .collect();
        Three { nodes }
    }
    fn port(&self, i: usize) -> u16 {
        self.nodes[i].0.addr.port()
    }
    fn list(&self, which: &[usize]) -> String {
        which
            .iter()
            .map(|&i| format!("localhost|127.0.0.1|{}", self.port(i)))
            .collect::<Vec<_>>()
            .join(",")
    }
    fn push(&self, which: &[usize]) {
        let admins: Vec<SocketAddr> = self.nodes.iter().map(|n| n.1).collect();
        let (ok, out) = push(&self.list(which), None, &admins);
        assert!(ok, "{out}");
    }
}

/// Runs a discovery client script that follows a push of `after` (see [`follow_client`]).
fn follow(cmd: Command, three: &Three, after: &[usize]) {
    follow_client(cmd, || {
        let before: Vec<u64> = (0..3).map(|i| version_of(three.nodes[i].0.addr)).collect();
        three.push(after);
        for (i, (node, was)) in three.nodes.iter().zip(&before).enumerate() {
            assert!(version_of(node.0.addr) > *was, "version rose on node {i}");
        }
        let configs: Vec<String> = (0..3).map(|i| config_get(three.nodes[i].0.addr)).collect();
        assert!(configs.iter().all(|c| c == &configs[0]), "{configs:?}");
    });
}

#[test]
fn python_discovery_clients_find_and_follow_three_nodes() {
    let three = Three::start("py");
    three.push(&[0, 1, 2]);
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.env("PYTHONPATH", PYDEPS)
        .arg(format!(
            "{}/tests/clients/discovery_py.py",
            env!("CARGO_MANIFEST_DIR")
        ))
        .arg(three.port(0).to_string())
        .args((0..3).map(|i| three.port(i).to_string()))
        .arg("--expect-change")
        .args([three.port(0).to_string(), three.port(2).to_string()]);
    follow(cmd, &three, &[0, 2]);
}

#[test]
fn node_discovery_clients_find_and_follow_three_nodes() {
    let three = Three::start("node");
    three.push(&[0, 1]);
    let mut cmd = Command::new("node");
    cmd.env("NODE_PATH", NPMDEPS)
        .arg(format!(
            "{}/tests/clients/discovery_node.js",
            env!("CARGO_MANIFEST_DIR")
        ))
        .arg(three.port(1).to_string())
        .args([three.port(0).to_string(), three.port(1).to_string()])
        .arg("--expect-change")
        .args((0..3).map(|i| three.port(i).to_string()));
    follow(cmd, &three, &[0, 1, 2]);
}

/// Keys written by libmemcached's weighted ketama (pylibmc) sit on the node `ferrocache ring`
/// names, read back from each node directly.
#[test]
fn pylibmc_ketama_placement_matches_ring() {
    let servers: Vec<Server> = (0..3).map(|_| Server::start(&[])).collect();
    let ports: Vec<String> = servers.iter().map(|s| s.addr.port().to_string()).collect();
    let out = Command::new("/usr/bin/python3")
        .arg(format!(
            "{}/tests/clients/ketama_pylibmc.py",
            env!("CARGO_MANIFEST_DIR")
        ))
        .args(&ports)
        .args(["--count", "200"])
        .output()
        .expect("python3");
    assert!(out.status.success(), "{}", show(&out.stderr));
    let placed: Vec<(String, String)> = show(&out.stdout)
        .lines()
        .filter_map(|l| {
            l.split_once(' ')
                .map(|(k, p)| (k.to_string(), p.to_string()))
        })
        .collect();
    assert_eq!(placed.len(), 200);
    let nodes = ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let ring = Command::new(BIN)
        .args(["ring", "--nodes", &nodes])
        .args(placed.iter().map(|(k, _)| k.as_str()))
        .output()
        .unwrap();
    assert!(ring.status.success());
    let predicted: Vec<(String, String)> = show(&ring.stdout)
        .lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.first() == Some(&"key")).then(|| {
                let node = w.last().unwrap();
                (
                    w[1].to_string(),
                    node.rsplit(':').next().unwrap().to_string(),
                )
            })
        })
        .collect();
    assert_eq!(placed, predicted);
    let used: std::collections::BTreeSet<&String> = placed.iter().map(|(_, p)| p).collect();
    assert_eq!(used.len(), 3, "every node holds keys");
}

/// Nodes started with `-Y`: the admin endpoint needs a login too; `cluster push --user` does it.
/// A node without `-Y` asks for no login, so none is sent (nor stored, nor run as a command).
#[test]
fn push_logs_in_on_ascii_auth_nodes() {
    let push_as_ops = |admin: SocketAddr| {
        Command::new(BIN)
            .args([
                "cluster",
                "push",
                "--user",
                "ops",
                "--nodes",
                "localhost|127.0.0.1|1",
            ])
            .arg(admin.to_string())
            .env("FERROCACHE_PASSWORD", "opspass")
            .output()
            .unwrap()
    };
    let (plain, plain_admin) = Server::start_admin(&[]);
    let out = push_as_ops(plain_admin);
    assert!(out.status.success(), "no login asked, none sent");
    let stats = show(&raw(plain.addr, b"stats\r\n", b"END\r\n"));
    assert!(stats.contains("STAT curr_items 0\r\n"), "{stats}");
    let dir = tmpdir("ascii");
    let users = dir.join("users");
    std::fs::write(&users, "ops:opspass\n").unwrap();
    let (fc, admin) = Server::start_admin(&["-Y", users.to_str().unwrap()]);
    let (ok, out) = push("localhost|127.0.0.1|1", None, &[admin]);
    assert!(!ok, "{out}");
    let out = push_as_ops(admin);
    assert!(out.status.success(), "{}", show(&out.stdout));
    let r = raw(
        fc.addr,
        b"set _ 0 0 11\r\nops opspass\r\nconfig get cluster\r\n",
        b"END\r\n",
    );
    assert!(
        show(&r).starts_with("STORED\r\nCONFIG cluster 0 "),
        "{}",
        show(&r)
    );
}

/// The opt-in health check reports each member's reachability in `stats cluster` (after a few
/// consistent probes) and never changes the served list.
#[test]
fn health_check_reports_peers_without_changing_the_list() {
    let peer = Server::start(&[]);
    // Peers that need a login still count as up (text probe answered / binary VERSION allowed).
    let dir = tmpdir("health");
    let users = dir.join("users");
    std::fs::write(&users, "u:p\n").unwrap();
    let ascii = Server::start(&["-Y", users.to_str().unwrap()]);
    let sasl = Server::start(&["-S", "--sasl-pwdb", users.to_str().unwrap()]);
    // A port held by this test that never answers: no other process can take it meanwhile.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = silent.local_addr().unwrap().port();
    let nodes = format!(
        "localhost|127.0.0.1|{},localhost|127.0.0.1|{dead},localhost|127.0.0.1|{},localhost|127.0.0.1|{}",
        peer.addr.port(),
        ascii.addr.port(),
        sasl.addr.port()
    );
    let fc = Server::start(&["--cluster-nodes", &nodes, "--cluster-health-check", "0.05"]);
    let before = config_get(fc.addr);
    let up = format!("STAT cluster_peer:localhost:{} up\r\n", peer.addr.port());
    let down = format!("STAT cluster_peer:localhost:{dead} down\r\n");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stats = show(&raw(fc.addr, b"stats cluster\r\n", b"END\r\n"));
        let others_up = [ascii.addr.port(), sasl.addr.port()]
            .iter()
            .all(|p| stats.contains(&format!("STAT cluster_peer:localhost:{p} up\r\n")));
        if stats.contains(&up) && stats.contains(&down) && others_up {
            break;
        }
        assert!(Instant::now() < deadline, "peers never reported: {stats}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        config_get(fc.addr),
        before,
        "the list is the operator's, not the probe's"
    );
}
