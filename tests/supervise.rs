//! The self-healing cluster: `ferrocache cluster supervise` against real daemons on 127.0.0.1.
//! A member killed with SIGKILL is replaced by the standby on every surviving node (version + 1,
//! identical bytes), keys on the survivors stay where ketama put them; a supervisor reaching
//! one member of three does nothing; two supervisors make one new version; a member restarted
//! quickly (flapping) is not replaced. Every wait is a bounded loop on a condition.

mod common;
use common::*;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferrocache::cluster::ClusterConfig;

const BIN: &str = env!("CARGO_BIN_EXE_ferrocache");

/// The config a node serves, as parsed, and its exact reply bytes.
fn served(addr: SocketAddr) -> Option<(ClusterConfig, Vec<u8>)> {
    let r = raw(addr, b"config get cluster\r\n", b"END\r\n");
    let text = show(&r);
    let body = text.strip_prefix("CONFIG cluster 0 ")?;
    let (len, rest) = body.split_once("\r\n")?;
    let payload = rest.as_bytes().get(..len.parse::<usize>().ok()?)?;
    Some((ClusterConfig::parse_payload(payload).ok()?, r))
}

fn stat(addr: SocketAddr, name: &str) -> Option<String> {
    let r = show(&raw(addr, b"stats cluster\r\n", b"END\r\n"));
    r.lines()
        .find_map(|l| l.strip_prefix(&format!("STAT {name} ")).map(String::from))
}

/// Waits (bounded) until `f` holds.
fn wait_for(what: &str, log: &Output, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; supervisor said:\n{}",
            log.text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A node: the daemon, its admin endpoint and its discovery entry.
struct Node {
    server: Option<Server>,
    admin: SocketAddr,
    port: u16,
}

impl Node {
    fn start(dir: &std::path::Path, name: &str) -> Node {
        let st = dir.join(name);
        let (server, admin) = Server::start_admin(&["--state-dir", st.to_str().unwrap()]);
        let port = server.addr.port();
        Node {
            server: Some(server),
            admin,
            port,
        }
    }
    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
    fn entry(&self) -> String {
        format!("localhost|127.0.0.1|{}", self.port)
    }
    fn known(&self) -> String {
        format!("{}@{}", self.entry(), self.admin)
    }
    /// SIGKILL (the `Server`'s drop).
    fn kill(&mut self) {
        self.server.take();
    }
}

/// Three members (pushed with `cluster push`) and one standby.
fn cluster(name: &str) -> Vec<Node> {
    let dir = tmpdir(name);
    let nodes: Vec<Node> = (0..4)
        .map(|i| Node::start(&dir, &format!("n{i}")))
        .collect();
    let list: Vec<String> = nodes[..3].iter().map(Node::entry).collect();
    let out = Command::new(BIN)
        .args(["cluster", "push", "--nodes", &list.join(",")])
        .args(nodes[..3].iter().map(|n| n.admin.to_string()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out.stdout));
    nodes
}

/// What a supervisor printed so far.
#[derive(Clone, Default)]
struct Output(Arc<Mutex<Vec<String>>>);

impl Output {
    fn text(&self) -> String {
        self.0.lock().unwrap().join("\n")
    }
}

/// A running `cluster supervise`, killed on drop.
struct Supervise {
    child: Child,
    out: Output,
}

impl Supervise {
    fn start(members: &[String], standbys: &[String], extra: &[&str]) -> Supervise {
        let mut cmd = Command::new(BIN);
        cmd.args(["cluster", "supervise"]);
        for m in members {
            cmd.args(["--member", m]);
        }
        for s in standbys {
            cmd.args(["--standby", s]);
        }
        cmd.args([
            "--interval",
            "0.1",
            "--grace",
            "0.5",
            "--grace-probes",
            "3",
            "--replace-interval",
            "1",
            // Generous: a live node slowed by a loaded machine must not look dead.
            "--probe-timeout",
            "3",
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("supervise");
        let out = Output::default();
        let lines = out.0.clone();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(l);
            }
        });
        Supervise { child, out }
    }

    /// Waits (bounded) for a supervisor started with `--rounds` to finish.
    fn finish(mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                assert!(st.success(), "{st}");
                break;
            }
            assert!(Instant::now() < deadline, "supervisor did not finish");
            std::thread::sleep(Duration::from_millis(50));
        }
        // The reader thread drains the pipe to its end.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Arc::strong_count(&self.out.0) > 1 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.out.text()
    }
}

impl Drop for Supervise {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `keys` where a libmemcached-compatible ketama client would (the ring of `config`,
/// built from the hostnames), directly to each node; returns each key's port.
fn place(config: &ClusterConfig, keys: &[String]) -> Vec<u16> {
    let ring = config.ring(false);
    keys.iter()
        .map(|k| {
            let port = ring.locate_node(k.as_bytes()).unwrap().port;
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let req = format!("set {k} 0 0 {}\r\n{k}\r\n", k.len());
            assert_eq!(show(&raw(addr, req.as_bytes(), b"\r\n")), "STORED\r\n");
            port
        })
        .collect()
}

#[test]
fn a_killed_member_is_replaced_by_the_standby_everywhere() {
    let mut nodes = cluster("sup-kill");
    let (v1, _) = served(nodes[0].addr()).unwrap();
    assert_eq!(v1.version(), 1);
    let keys: Vec<String> = (0..300).map(|i| format!("key:{i}")).collect();
    let before = place(&v1, &keys);
    let members: Vec<String> = nodes[..3].iter().map(Node::known).collect();
    let sup = Supervise::start(&members, &[nodes[3].known()], &[]);
    // The standby is brought to the served list first (it served none).
    wait_for("the standby to be aligned", &sup.out, || {
        served(nodes[3].admin).is_some_and(|(c, _)| c == v1)
    });
    let dead = nodes[1].port;
    nodes[1].kill();
    let want = ClusterConfig::parse_payload(
        format!(
            "2\n{} {} {}",
            nodes[0].entry(),
            nodes[2].entry(),
            nodes[3].entry()
        )
        .as_bytes(),
    )
    .unwrap();
    let survivors = [0, 2, 3];
    wait_for("every survivor to serve version 2", &sup.out, || {
        survivors
            .iter()
            .all(|&i| served(nodes[i].addr()).is_some_and(|(c, _)| c == want))
    });
    let replies: Vec<Vec<u8>> = survivors
        .iter()
        .map(|&i| served(nodes[i].addr()).unwrap().1)
        .collect();
    assert!(replies.iter().all(|r| r == &replies[0]), "identical bytes");
    // Every node that took the push counted the decision and kept its reason.
    for &i in &survivors {
        assert_eq!(
            stat(nodes[i].addr(), "cluster_supervisor_replacements").as_deref(),
            Some("1")
        );
        let last = stat(nodes[i].addr(), "cluster_supervisor_last").unwrap();
        assert!(
            last.starts_with(&format!(
                "replace localhost|127.0.0.1|{dead} by standby {} in version 2: unreachable for",
                nodes[3].entry()
            )),
            "{last}"
        );
    }
    let log = sup.out.text();
    assert!(log.contains("replace localhost|127.0.0.1|"), "{log}");
    // Keys on the survivors are still read from them. Ketama keeps them there, except the ones
    // the standby's points take over: no key moves from one survivor to another.
    let (v2, _) = served(nodes[0].addr()).unwrap();
    let after_ring = v2.ring(false);
    let mut kept = 0;
    for (k, &was) in keys.iter().zip(&before) {
        let now = after_ring.locate_node(k.as_bytes()).unwrap().port;
        if was == dead {
            assert_ne!(now, dead);
            continue;
        }
        let addr = SocketAddr::from(([127, 0, 0, 1], was));
        assert_eq!(
            show(&raw(addr, format!("get {k}\r\n").as_bytes(), b"END\r\n")),
            format!("VALUE {k} 0 {}\r\n{k}\r\nEND\r\n", k.len())
        );
        assert!(now == was || now == nodes[3].port, "{k}: {was} -> {now}");
        kept += usize::from(now == was);
    }
    assert!(kept > 0);
    // `cluster status` agrees, and reports the dead node unreachable.
    let mut status = Command::new(BIN);
    status.args(["cluster", "status"]);
    status.args(nodes.iter().map(Node::known));
    let out = status.output().unwrap();
    let text = show(&out.stdout);
    assert!(!out.status.success(), "one endpoint is down: {text}");
    assert!(
        text.contains("consistent: 3 reachable node(s) serve version 2"),
        "{text}"
    );
    assert!(
        text.contains(&format!("{}: unreachable", nodes[1].admin)),
        "{text}"
    );
    // The supervisor keeps running and does nothing more.
    drop(sup);
    assert_eq!(served(nodes[0].addr()).unwrap().0.version(), 2);
}

#[test]
fn a_supervisor_reaching_one_member_of_three_does_nothing() {
    let nodes = cluster("sup-minority");
    // Members 1 and 2 behind admin endpoints that it cannot reach (nothing listens there).
    let members = vec![
        nodes[0].known(),
        format!("{}@127.0.0.1:{}", nodes[1].entry(), free_port()),
        format!("{}@127.0.0.1:{}", nodes[2].entry(), free_port()),
    ];
    let sup = Supervise::start(&members, &[nodes[3].known()], &["--rounds", "30"]);
    let log = sup.finish();
    assert!(
        log.contains("hold: reaches 1 of 3 members of version 1: no majority, doing nothing"),
        "{log}"
    );
    assert!(!log.contains("replace "), "{log}");
    for n in &nodes[..3] {
        assert_eq!(served(n.addr()).unwrap().0.version(), 1);
    }
    assert!(served(nodes[3].addr()).is_none(), "not even aligned");
}

#[test]
fn two_supervisors_started_together_make_one_new_version() {
    let mut nodes = cluster("sup-two");
    nodes[1].kill();
    let members: Vec<String> = nodes[..3].iter().map(Node::known).collect();
    let standby = [nodes[3].known()];
    let a = Supervise::start(&members, &standby, &["--rounds", "40"]);
    let b = Supervise::start(&members, &standby, &["--rounds", "40"]);
    let (la, lb) = (a.finish(), b.finish());
    let replies: Vec<(ClusterConfig, Vec<u8>)> = [0, 2, 3]
        .iter()
        .map(|&i| served(nodes[i].addr()).unwrap())
        .collect();
    assert!(
        replies.iter().all(|r| r.1 == replies[0].1),
        "{la}\n---\n{lb}"
    );
    assert_eq!(replies[0].0.version(), 2, "{la}\n---\n{lb}");
    let replaced = [&la, &lb]
        .iter()
        .filter(|l| l.contains("STORED version 2"))
        .count();
    assert!(replaced >= 1, "{la}\n---\n{lb}");
}

#[test]
fn a_flapping_member_is_not_replaced() {
    let dir = tmpdir("sup-flap");
    let mut nodes = cluster("sup-flap-c");
    let members: Vec<String> = nodes[..3].iter().map(Node::known).collect();
    // A long grace period against a member that is back within moments each time.
    let sup = Supervise::start(
        &members,
        &[nodes[3].known()],
        &["--grace", "30", "--grace-probes", "5"],
    );
    wait_for("the standby to be aligned", &sup.out, || {
        served(nodes[3].admin).is_some()
    });
    let (port, admin) = (nodes[1].port, nodes[1].admin);
    let st = dir.join("flap");
    for _ in 0..5 {
        nodes[1].kill();
        // Down for a few probes (not for readiness: this is the outage).
        std::thread::sleep(Duration::from_millis(300));
        let server = Server::start(&[
            "-p",
            &port.to_string(),
            "--admin-listen",
            &admin.to_string(),
            "--state-dir",
            st.to_str().unwrap(),
        ]);
        nodes[1].server = Some(server);
        wait_for("the member to answer again", &sup.out, || {
            served(admin).is_some() || !raw(admin, b"version\r\n", b"\r\n").is_empty()
        });
        // Up for a few probes too.
        std::thread::sleep(Duration::from_millis(300));
    }
    let log = sup.out.text();
    drop(sup);
    assert!(!log.contains("replace "), "{log}");
    // It was seen going down and coming back.
    assert!(
        log.contains(&format!("{} answers again", nodes[1].entry())),
        "{log}"
    );
    for i in [0, 2] {
        assert_eq!(served(nodes[i].addr()).unwrap().0.version(), 1);
    }
}

/// A polling discovery client (emcache, through tests/clients/discovery_py.py, installed by
/// `make test-deps`) switches to the list with the standby after a member is killed.
#[test]
fn emcache_follows_the_replacement() {
    let mut nodes = cluster("sup-emcache");
    let members: Vec<String> = nodes[..3].iter().map(Node::known).collect();
    let sup = Supervise::start(&members, &[nodes[3].known()], &[]);
    let ports: Vec<u16> = nodes.iter().map(|n| n.port).collect();
    let mut cmd = Command::new("/usr/bin/python3");
    cmd.env("PYTHONPATH", "/tmp/ferrocache-pydeps")
        .arg(format!(
            "{}/tests/clients/discovery_py.py",
            env!("CARGO_MANIFEST_DIR")
        ))
        .arg(ports[0].to_string())
        .args(ports[..3].iter().map(u16::to_string))
        .arg("--expect-change")
        .args([ports[0], ports[2], ports[3]].iter().map(u16::to_string));
    follow_client(cmd, || {
        nodes[1].kill();
        wait_for("the replacement", &sup.out, || {
            served(nodes[0].addr()).is_some_and(|(c, _)| c.version() == 2)
        });
    });
}
