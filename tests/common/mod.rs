//! Test support: start the real `ferrocache` binary (and, for differential tests, the real
//! `memcached`) on 127.0.0.1 with an OS-assigned port, and talk to them with raw bytes.
#![allow(dead_code)]

pub mod tls;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running server process, killed on drop.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    /// The first UDP socket, when started with `-U` (ferrocache: from its log line).
    pub udp: Option<SocketAddr>,
    /// ferrocache's log lines up to its readiness line (start-up: a warm restart's report).
    pub early_log: Vec<String>,
}

impl Server {
    /// Starts ferrocache with `args` on an OS-assigned port. Readiness is the server's own
    /// `listening on` log line (written after the socket is bound), so no sleeping is needed.
    pub fn start(args: &[&str]) -> Server {
        Server::start_with_env(args, &[])
    }

    /// `start` with extra environment variables (they win over the default `RUST_LOG=info`).
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Server {
        Server::spawn(args, env, None).0
    }

    /// Starts ferrocache with `--admin-listen 127.0.0.1:0` added; returns the admin address too
    /// (from its `admin endpoint on` log line).
    pub fn start_admin(args: &[&str]) -> (Server, SocketAddr) {
        let mut all = vec!["--admin-listen", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let (s, admin) = Server::spawn(&all, &[], Some("admin endpoint on tcp:"));
        (s, admin.expect("admin address"))
    }

    /// Starts ferrocache with `--metrics-listen 127.0.0.1:0` added; returns the metrics address
    /// too (from its `metrics endpoint on` log line).
    pub fn start_metrics(args: &[&str]) -> (Server, SocketAddr) {
        let mut all = vec!["--metrics-listen", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let (s, at) = Server::spawn(&all, &[], Some("metrics endpoint on tcp:"));
        (s, at.expect("metrics address"))
    }

    fn spawn(
        args: &[&str],
        env: &[(&str, &str)],
        // The log line naming a second address to wait for (admin or metrics endpoint).
        want: Option<&str>,
    ) -> (Server, Option<SocketAddr>) {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferrocache"));
        cmd.args(["-p", "-1", "-l", "127.0.0.1", "-u", "root"])
            .args(args)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn ferrocache");
        let stderr = child.stderr.take().expect("stderr");
        let mut lines = BufReader::new(stderr).lines();
        let mut addr = None;
        let mut admin = None;
        let mut udp = None;
        let mut early_log = Vec::new();
        for line in lines.by_ref() {
            let Ok(line) = line else { break };
            early_log.push(line.clone());
            if let Some(rest) = line.split("listening on udp:").nth(1) {
                udp = udp.or(Some(rest.trim().parse().expect("udp address")));
            } else if let Some(rest) = want.and_then(|w| line.split(w).nth(1)) {
                // `ADDR`, or `ADDR (TLS)` with -Z.
                let first = rest.split_whitespace().next().unwrap_or_default();
                admin = Some(first.parse().expect("endpoint address"));
            } else if let Some(rest) = line.split("listening on tcp:").nth(1) {
                // `ADDR`, or `ADDR (TLS)` with -Z.
                let first = rest.split_whitespace().next().unwrap_or_default();
                addr = Some(first.parse().expect("address"));
            }
            if addr.is_some() && (admin.is_some() || want.is_none()) {
                break;
            }
        }
        let addr = addr.unwrap_or_else(|| {
            let status = child.wait();
            panic!("ferrocache did not start: {status:?}: {early_log:?}")
        });
        // Keep draining stderr so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        (
            Server {
                child,
                addr,
                udp,
                early_log,
            },
            admin,
        )
    }

    /// Starts the reference memcached (the apt package) if installed, else None.
    pub fn memcached(args: &[&str]) -> Option<Server> {
        Server::memcached_with_env(args, &[])
    }

    /// `memcached` with extra environment variables.
    pub fn memcached_with_env(args: &[&str], env: &[(&str, &str)]) -> Option<Server> {
        if Command::new("memcached")
            .arg("-h")
            .stdout(Stdio::null())
            .status()
            .is_err()
        {
            return None;
        }
        let port = free_port();
        let child = Command::new("memcached")
            .args([
                "-p",
                &port.to_string(),
                "-l",
                "127.0.0.1",
                "-U",
                "0",
                "-u",
                "root",
            ])
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().ok()?;
        // memcached offers no readiness signal: retry connecting, bounded in count and time.
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if TcpStream::connect(addr).is_ok() {
                return Some(Server {
                    child,
                    addr,
                    udp: None,
                    early_log: Vec::new(),
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.set_nodelay(true).unwrap();
        s
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits for the exit status (bounded).
    pub fn terminate(self) -> Option<std::process::ExitStatus> {
        self.stop_with("TERM")
    }

    /// Sends signal `sig` (a name for `kill`: `TERM`, `USR1`, `KILL`) and waits for the exit
    /// status (bounded: 60 s, for a graceful stop saving a large cache in a debug build).
    pub fn stop_with(mut self, sig: &str) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }

    /// Resident set size in KiB (from /proc).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// Sends `req` followed by `mn\r\n` and returns everything before the `MN\r\n` it produces
/// (or everything until the server closes). The sentinel makes replies self-delimiting.
pub fn exchange(s: &mut TcpStream, req: &[u8]) -> Vec<u8> {
    let mut msg = req.to_vec();
    msg.extend_from_slice(b"mn\r\n");
    s.write_all(&msg).unwrap();
    read_until_mn(s)
}

pub fn read_until_mn(s: &mut TcpStream) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        if buf.ends_with(b"MN\r\n") {
            buf.truncate(buf.len() - 4);
            return buf;
        }
        match s.read(&mut chunk) {
            Ok(0) => return buf,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => panic!("read failed after {:?}: {e}", String::from_utf8_lossy(&buf)),
        }
    }
}

/// Reads until the peer closes (bounded by the socket's read timeout).
pub fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    buf
}

/// One request/reply round trip with a fresh connection.
pub fn one(server: &Server, req: &[u8]) -> Vec<u8> {
    let mut s = server.connect();
    exchange(&mut s, req)
}

pub fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Starts the oracle and checks that the port really is its own: the port is picked before
/// memcached binds it, so a server started meanwhile by another test may hold it (then retry).
pub fn start_memcached(args: &[&str]) -> (Server, TcpStream) {
    for _ in 0..5 {
        let mc = Server::memcached(args).unwrap_or_else(|| {
            panic!(
                "the reference memcached could not be started: these differential tests need \
                 it installed as `memcached` on PATH (`apt-get install -y memcached`)"
            )
        });
        let Ok(mut m) = TcpStream::connect(mc.addr) else {
            continue;
        };
        m.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        m.set_nodelay(true).unwrap();
        let pid = format!("STAT pid {}\r\n", mc.pid());
        if probe_stats(&mut m).contains(&pid) {
            return (mc, m);
        }
    }
    panic!("memcached did not start on a port of its own in 5 tries")
}

/// `stats` without panicking on a connection error (empty then).
pub fn probe_stats(m: &mut TcpStream) -> String {
    use std::io::{Read, Write};
    if m.write_all(b"stats\r\nmn\r\n").is_err() {
        return String::new();
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    while !buf.ends_with(b"MN\r\n") {
        match m.read(&mut chunk) {
            Ok(0) | Err(_) => return String::new(),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    show(&buf)
}

/// A fresh, empty scratch directory for one test.
pub fn tmpdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("ferrocache-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `ferrocache passwd USER --algorithm ALG` with the password on stdin: the credentials-file line.
pub fn passwd(user: &str, password: &str, alg: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferrocache"))
        .args(["passwd", user, "--algorithm", alg])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let line = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(line.starts_with(&format!("{user}:$")), "{line}");
    assert!(
        !line.contains(password),
        "the password must not appear: {line}"
    );
    line
}

/// Sends one binary packet, reads one response (None when the server closed instead).
pub fn call(
    s: &mut TcpStream,
    pkt: &[u8],
) -> Option<(ferrocache::protocol::binary::Response, Vec<u8>)> {
    s.write_all(pkt).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some((r, used)) = ferrocache::protocol::binary::parse_response(&buf) {
            return Some((r, buf[..used].to_vec()));
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// A binary SASL_AUTH with mechanism PLAIN for `user`, `pass`.
pub fn auth_pkt(user: &str, pass: &str) -> Vec<u8> {
    use ferrocache::protocol::binary::{op, request};
    request(
        op::SASL_AUTH,
        0,
        0,
        &[],
        b"PLAIN",
        format!("\0{user}\0{pass}").as_bytes(),
    )
}

/// Runs a discovery client script (tests/clients/discovery_*) that prints `READY`, waits for a
/// line on stdin, then expects a membership change: `change` makes it happen between the two.
/// Every wait is bounded; the client is killed if it does not finish.
pub fn follow_client(mut cmd: Command, change: impl FnOnce()) {
    /// Kills the client if the test panics before it finishes.
    struct Client(Child);
    impl Drop for Client {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut client = Client(
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("client script"),
    );
    let child = &mut client.0;
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(l) => {
                let ready = l.trim() == "READY";
                seen.push(l);
                if ready {
                    break;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(_) => {}
        }
        assert!(Instant::now() < deadline, "no READY:\n{}", seen.join("\n"));
    }
    change();
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(b"go\n");
    }
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    while let Ok(l) = rx.try_recv() {
        seen.push(l);
    }
    let mut err = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut err);
    assert!(
        status.success(),
        "client failed ({status}):\n{}\n{err}",
        seen.join("\n")
    );
    println!("{}", seen.join("\n"));
}

/// One request on a fresh connection, read until the reply ends with `until` (or the peer
/// closes, or 10 s pass between reads); empty when nothing listens.
pub fn raw(addr: SocketAddr, req: &[u8], until: &[u8]) -> Vec<u8> {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return Vec::new();
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    if s.write_all(req).is_err() {
        return Vec::new();
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    while !buf.ends_with(until) {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    buf
}
