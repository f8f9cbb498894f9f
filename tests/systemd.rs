//! systemd integration: readiness, reload and stop notifications and watchdog pings sent to a
//! fake `$NOTIFY_SOCKET` (a bound Unix datagram socket, by path or abstract name); the shipped
//! units and the warm-restart drop-in checked by `systemd-analyze` and run.

mod common;

use std::io::{Read, Write};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{exchange, tmpdir, Server};

/// A fake service manager's notification socket.
struct Manager {
    sock: UnixDatagram,
}

impl Manager {
    fn at_path(test: &str) -> (Manager, String) {
        let path = tmpdir(test).join("notify.sock");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        (Manager { sock }, path.to_str().unwrap().to_string())
    }

    /// The next notification (panics after 10 s without one).
    fn next(&self) -> String {
        let mut buf = [0u8; 4096];
        let n = self
            .sock
            .recv(&mut buf)
            .expect("a notification within 10 s");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    /// Skips notifications until one starts with `prefix` (bounded in count and time).
    fn until(&self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        for _ in 0..200 {
            let m = self.next();
            if m.starts_with(prefix) {
                return m;
            }
            assert!(Instant::now() < deadline, "no {prefix} in time");
        }
        panic!("no {prefix} in 200 notifications")
    }
}

fn signal(server: &Server, sig: &str) {
    assert!(Command::new("kill")
        .args([sig, &server.pid().to_string()])
        .status()
        .unwrap()
        .success());
}

#[test]
fn ready_then_reloading_ready_on_sighup_then_stopping_on_sigterm() {
    let (m, path) = Manager::at_path("notify-path");
    let server = Server::start_with_env(&["-t", "2"], &[("NOTIFY_SOCKET", &path)]);
    let ready = m.next();
    assert!(ready.starts_with("READY=1\n"), "{ready}");
    let status = ready.lines().find(|l| l.starts_with("STATUS=")).unwrap();
    assert!(status.contains("2 worker threads"), "{status}");
    assert!(status.contains(&format!("tcp:{}", server.addr)), "{status}");

    signal(&server, "-HUP");
    let reloading = m.next();
    let lines: Vec<&str> = reloading.lines().collect();
    assert_eq!(lines[0], "RELOADING=1", "{reloading}");
    let usec = lines
        .iter()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .expect("MONOTONIC_USEC");
    assert!(usec.parse::<u64>().unwrap() > 0);
    let again = m.next();
    assert!(again.starts_with("READY=1\nSTATUS="), "{again}");
    assert!(again.contains("last reload"), "{again}");
    // Still serving after the reload.
    assert_eq!(common::one(&server, b"version\r\n")[..8], *b"VERSION ");

    let stopping = {
        let s = server;
        signal(&s, "-TERM");
        let msg = m.next();
        assert!(s.terminate().is_some_and(|st| st.success()));
        msg
    };
    assert!(stopping.starts_with("STOPPING=1"), "{stopping}");
}

#[test]
fn notifies_an_abstract_socket() {
    let name = format!("ferrocache-test-notify-{}", std::process::id());
    let sock =
        UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let m = Manager { sock };
    let _server = Server::start_with_env(&[], &[("NOTIFY_SOCKET", &format!("@{name}"))]);
    assert!(m.next().starts_with("READY=1\n"));
}

#[test]
fn watchdog_pings_while_the_workers_turn() {
    let (m, path) = Manager::at_path("notify-watchdog");
    // Half of 200 ms: a ping every 100 ms while all four workers answer their wakes.
    let server = Server::start_with_env(
        &["-t", "4"],
        &[("NOTIFY_SOCKET", &path), ("WATCHDOG_USEC", "200000")],
    );
    for _ in 0..3 {
        assert_eq!(m.until("WATCHDOG=1"), "WATCHDOG=1");
    }
    // Serving connections does not stop the pings.
    assert_eq!(common::one(&server, b"version\r\n")[..8], *b"VERSION ");
    assert_eq!(m.until("WATCHDOG=1"), "WATCHDOG=1");
}

#[test]
fn watchdog_pings_stop_when_a_worker_is_wedged() {
    if !cfg!(debug_assertions) {
        println!("SKIPPED: the wedge hook exists in debug builds only (server::testhooks)");
        return;
    }
    let (m, path) = Manager::at_path("notify-watchdog-wedge");
    // The debug build's test hook (server::testhooks): `get wedge-me` never returns.
    let server = Server::start_with_env(
        &["-t", "2"],
        &[
            ("NOTIFY_SOCKET", &path),
            ("WATCHDOG_USEC", "200000"),
            ("FERROCACHE_TEST_WEDGE", "wedge-me"),
        ],
    );
    assert_eq!(m.until("WATCHDOG=1"), "WATCHDOG=1");
    let mut c = server.connect();
    c.write_all(b"get wedge-me\r\n").unwrap();
    // The other worker still serves.
    assert_eq!(common::one(&server, b"version\r\n")[..8], *b"VERSION ");
    // Pings stop: a few may still be on their way (decided before the worker took the request),
    // then none for a whole second (ten periods). Bounded: 50 notifications at most.
    m.sock
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let mut buf = [0u8; 64];
    let mut late = 0;
    while m.sock.recv(&mut buf).is_ok() {
        late += 1;
        assert!(late < 50, "WATCHDOG=1 pings go on with a wedged worker");
    }
    // The connection on the wedged worker got nothing.
    c.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    assert!(c.read(&mut buf).is_err(), "the wedged worker answered");
}

#[test]
fn no_watchdog_for_another_process() {
    let (m, path) = Manager::at_path("notify-watchdog-pid");
    let _server = Server::start_with_env(
        &[],
        &[
            ("NOTIFY_SOCKET", &path),
            ("WATCHDOG_USEC", "200000"),
            ("WATCHDOG_PID", "1"),
        ],
    );
    assert!(m.next().starts_with("READY=1\n"));
    // Ten periods without a ping: the watchdog was meant for another process.
    m.sock
        .set_read_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let mut buf = [0u8; 64];
    assert!(m.sock.recv(&mut buf).is_err(), "no WATCHDOG=1 expected");
}

/// `systemd-socket-activate` (Debian's systemd package) listening with `args`, which starts
/// ferrocache on the first connection or datagram with `ferrocache_args`; killed on drop.
struct Activated(std::process::Child);

impl Activated {
    fn start(args: &[&str], ferrocache_args: &[&str]) -> Activated {
        use std::io::{BufRead, BufReader};
        let mut child = Command::new("systemd-socket-activate")
            .args(args)
            .arg(env!("CARGO_BIN_EXE_ferrocache"))
            .args(["-u", "root"])
            .args(ferrocache_args)
            .env("RUST_LOG", "info")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("systemd-socket-activate (apt-get install systemd) on PATH");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        // It says `Listening on ADDR as FD.` for each socket once it listens.
        let want = args.iter().filter(|a| **a == "-l").count();
        let mut seen = 0;
        while seen < want {
            let line = lines
                .next()
                .expect("systemd-socket-activate ended")
                .unwrap();
            if line.starts_with("Listening on") {
                seen += 1;
            }
        }
        std::thread::spawn(move || for _ in lines {});
        Activated(child)
    }
}

impl Drop for Activated {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn serves_clients_and_admin_on_sockets_inherited_from_systemd() {
    let (port, admin) = (common::free_port(), common::free_port());
    let (client_at, admin_at) = (format!("127.0.0.1:{port}"), format!("127.0.0.1:{admin}"));
    let _sa = Activated::start(
        &["-l", &client_at, "-l", &admin_at, "--fdname=memcache:admin"],
        &["-t", "2"],
    );
    // The first connection starts the daemon; it is served, not refused.
    let mut c = std::net::TcpStream::connect(&client_at).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let r = common::exchange(&mut c, b"set k 0 0 1\r\nv\r\nget k\r\n");
    assert_eq!(common::show(&r), "STORED\r\nVALUE k 0 1\r\nv\r\nEND\r\n");
    let mut a = std::net::TcpStream::connect(&admin_at).unwrap();
    a.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let conns = common::show(&common::exchange(&mut a, b"stats conns\r\n"));
    // Both inherited listeners are the daemon's own, and the admin connection came through one.
    assert!(conns.contains(&format!("addr tcp:{client_at}")), "{conns}");
    assert!(
        conns.contains(&format!("listen_addr tcp:{admin_at}")),
        "{conns}"
    );
    assert_eq!(
        common::show(&common::exchange(&mut a, b"get k\r\n")),
        "VALUE k 0 1\r\nv\r\nEND\r\n"
    );
}

#[test]
fn serves_metrics_on_a_socket_inherited_from_systemd() {
    let (port, metrics) = (common::free_port(), common::free_port());
    let (client_at, metrics_at) = (format!("127.0.0.1:{port}"), format!("127.0.0.1:{metrics}"));
    let _sa = Activated::start(
        &[
            "-l",
            &client_at,
            "-l",
            &metrics_at,
            "--fdname=memcache:metrics",
        ],
        &[],
    );
    let mut c = std::net::TcpStream::connect(&client_at).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let r = common::exchange(&mut c, b"set k 0 0 1\r\nv\r\n");
    assert_eq!(common::show(&r), "STORED\r\n");
    let r = common::show(&common::raw(
        metrics_at.parse().unwrap(),
        b"GET /metrics HTTP/1.1\r\nConnection: close\r\n\r\n",
        b"\0 until the close",
    ));
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
    assert!(r.contains("\nmemcached_current_items 1\n"), "{r}");
}

#[test]
fn serves_udp_on_a_socket_inherited_from_systemd() {
    let port = common::free_port();
    let at = format!("127.0.0.1:{port}");
    let _sa = Activated::start(
        // `memcache` on a datagram socket is UDP, as ferrocache.socket's ListenDatagram= is.
        &["--datagram", "-l", &at, "--fdname=memcache"],
        &["-p", "0"],
    );
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // memcached's frame: request id 7, datagram 0 of 1.
    s.send_to(b"\x00\x07\x00\x00\x00\x01\x00\x00version\r\n", &at)
        .unwrap();
    let mut buf = [0u8; 1500];
    let n = s.recv(&mut buf).expect("a reply within 10 s");
    assert_eq!(&buf[..2], b"\x00\x07");
    assert!(buf[8..n].starts_with(b"VERSION "), "{:?}", &buf[..n]);
}

#[test]
fn an_unknown_socket_name_stops_start_up() {
    let at = format!("127.0.0.1:{}", common::free_port());
    let mut sa = Activated::start(&["-l", &at, "--fdname=admni"], &[]);
    let _c = std::net::TcpStream::connect(&at).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(st) = sa.0.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "ferrocache did not refuse to start"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(status.code(), Some(71));
}

/// `stats settings` value of `name`.
fn setting(c: &mut std::net::TcpStream, name: &str) -> String {
    let all = common::show(&common::exchange(c, b"stats settings\r\n"));
    let prefix = format!("STAT {name} ");
    all.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {name} in {all}"))
        .to_string()
}

#[test]
fn sighup_reloads_the_config_file_live() {
    let (m, path) = Manager::at_path("reload-config");
    let conf = tmpdir("reload-config-file").join("ferrocache.conf");
    std::fs::write(&conf, "# as memcached.conf\n-c 100\n-v\n-t 2\n").unwrap();
    let conf_arg = conf.to_str().unwrap();
    // No RUST_LOG: the levels follow -v.
    let server = Server::start_with_env(
        &["--config-file", conf_arg],
        &[("NOTIFY_SOCKET", &path), ("RUST_LOG", "")],
    );
    assert!(m.next().starts_with("READY=1"));
    let mut c = server.connect();
    assert_eq!(setting(&mut c, "maxconns"), "100");
    assert_eq!(setting(&mut c, "verbosity"), "1");

    let reload = |text: &str| {
        std::fs::write(&conf, text).unwrap();
        signal(&server, "-HUP");
        assert!(m.next().starts_with("RELOADING=1"));
        let ready = m.next();
        assert!(ready.starts_with("READY=1\n"), "{ready}");
        ready
    };
    let ready = reload("-c 3\n-vv\n-m 32\n-t 2\n");
    assert!(ready.contains("connection limit 3"), "{ready}");
    assert!(ready.contains("verbosity 2"), "{ready}");
    assert_eq!(setting(&mut c, "maxconns"), "3");
    assert_eq!(setting(&mut c, "verbosity"), "2");
    assert_eq!(setting(&mut c, "maxbytes"), (32u64 << 20).to_string());

    // Three connections are the limit now: the fourth is refused as memcached refuses it.
    let mut others: Vec<_> = (0..2).map(|_| server.connect()).collect();
    for o in &mut others {
        assert_eq!(common::exchange(o, b"version\r\n")[..8], *b"VERSION ");
    }
    let mut fourth = server.connect();
    assert_eq!(
        common::show(&common::read_to_close(&mut fourth)),
        "ERROR Too many open connections\r\n"
    );

    // A file that does not parse changes nothing, and says why.
    let ready = reload("-c banana\n-v\n-t 2\n");
    assert!(ready.contains("nothing changed"), "{ready}");
    assert_eq!(setting(&mut c, "maxconns"), "3");
    assert_eq!(setting(&mut c, "verbosity"), "2");

    // Threads and ports wait for a restart.
    let ready = reload("-c 3\n-vv\n-m 32\n-t 7\n");
    assert!(ready.contains("-t need a restart"), "{ready}");
    assert_eq!(setting(&mut c, "num_threads"), "2");
}

/// Starts ferrocache with stderr on a pipe whose device and inode `journal` decides to put in
/// `$JOURNAL_STREAM` (as systemd does for a journald stream) or not; returns the child and its
/// stderr lines up to the `listening on` one.
fn start_logging_to(journal: bool, args: &[&str]) -> (std::process::Child, Vec<String>) {
    use std::io::BufRead;
    use std::os::unix::fs::MetadataExt;
    let (reader, writer) = std::io::pipe().unwrap();
    let writer = std::fs::File::from(std::os::fd::OwnedFd::from(writer));
    let meta = writer.metadata().unwrap();
    let stream = if journal {
        format!("{}:{}", meta.dev(), meta.ino())
    } else {
        format!("{}:{}", meta.dev(), meta.ino() + 1)
    };
    let child = Command::new(env!("CARGO_BIN_EXE_ferrocache"))
        .args(["-p", "-1", "-l", "127.0.0.1", "-u", "root"])
        .args(args)
        .env_remove("RUST_LOG")
        .env("JOURNAL_STREAM", stream)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(writer)
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(reader).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let done = line.contains("listening on");
        seen.push(line);
        if done {
            break;
        }
    }
    (child, seen)
}

#[test]
fn journald_lines_carry_priorities_when_stderr_is_the_journal_stream() {
    let (mut child, seen) = start_logging_to(true, &["-v"]);
    let _ = child.kill();
    let _ = child.wait();
    let listening = seen.last().unwrap();
    assert!(listening.starts_with("<6>listening on tcp:"), "{seen:?}");

    let (mut child, seen) = start_logging_to(false, &["-v"]);
    let _ = child.kill();
    let _ = child.wait();
    let listening = seen.last().unwrap();
    assert!(listening.starts_with("[INFO "), "{seen:?}");
}

#[test]
fn no_secret_in_the_journal_at_default_verbosity() {
    use std::io::{BufRead, Read, Write};
    let dir = tmpdir("journal-secret");
    let creds = dir.join("users");
    std::fs::write(&creds, "alice:s3cr3t-pw\n").unwrap();
    let (m, notify) = Manager::at_path("journal-secret-notify");
    let (reader, writer) = std::io::pipe().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferrocache"))
        .args(["-p", "-1", "-l", "127.0.0.1", "-u", "root", "-Y"])
        .arg(&creds)
        .env_remove("RUST_LOG")
        .env("NOTIFY_SOCKET", notify)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(writer)
        .spawn()
        .unwrap();
    // Readiness from the notification: at the default verbosity no `listening on` line.
    let ready = m.next();
    let addr = ready
        .split("on tcp:")
        .nth(1)
        .and_then(|a| a.split_whitespace().next())
        .unwrap_or_else(|| panic!("{ready}"))
        .to_string();
    for attempt in ["alice wrong-pw", "alice s3cr3t-pw"] {
        let mut c = std::net::TcpStream::connect(&addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let req = format!(
            "set k 0 0 {}\r\n{attempt}\r\nset key-name 0 0 5\r\nvalue\r\nget key-name\r\n",
            attempt.len()
        );
        c.write_all(req.as_bytes()).unwrap();
        let mut line = String::new();
        std::io::BufReader::new(c).read_line(&mut line).unwrap();
        assert!(!line.is_empty());
    }
    let _ = child.kill();
    let _ = child.wait();
    let mut all = String::new();
    std::io::BufReader::new(reader)
        .read_to_string(&mut all)
        .unwrap();
    for secret in ["s3cr3t-pw", "wrong-pw", "key-name"] {
        assert!(!all.contains(secret), "{secret} logged: {all}");
    }
    assert!(
        all.contains("plaintext password"),
        "the plaintext warning: {all}"
    );
}

/// The units of dist/systemd/ in a scratch directory, their ExecStart on the binary under test
/// (`systemd-analyze verify` checks that it is executable), the template as instance 11212.
fn units(test: &str) -> std::path::PathBuf {
    let dir = tmpdir(test);
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dist/systemd");
    for unit in [
        "ferrocache.service",
        "ferrocache.socket",
        "ferrocache@.service",
    ] {
        let text = std::fs::read_to_string(src.join(unit))
            .unwrap()
            .replace("/usr/bin/ferrocache", env!("CARGO_BIN_EXE_ferrocache"));
        let name = unit.replace("@.", "@11212.");
        std::fs::write(dir.join(name), text).unwrap();
    }
    let drop_in = std::fs::read_to_string(src.join(WARM_RESTART))
        .unwrap()
        .replace("/usr/bin/ferrocache", env!("CARGO_BIN_EXE_ferrocache"));
    std::fs::create_dir_all(dir.join("ferrocache.service.d")).unwrap();
    std::fs::write(dir.join(WARM_RESTART), drop_in).unwrap();
    dir
}

/// The warm-restart drop-in, under dist/systemd/ and in `units`' directory.
const WARM_RESTART: &str = "ferrocache.service.d/warm-restart.conf";

/// `systemd-analyze verify UNIT` in `dir`, with `dir` searched for units and drop-ins: whether
/// it succeeded, and what it said.
fn verify(dir: &std::path::Path, unit: &str) -> (bool, String) {
    let out = Command::new("systemd-analyze")
        .args(["verify", unit])
        .current_dir(dir)
        // The trailing colon keeps systemd's own unit directories.
        .env("SYSTEMD_UNIT_PATH", format!("{}:", dir.display()))
        .output()
        .expect("systemd-analyze (apt-get install systemd) on PATH");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

#[test]
fn shipped_units_verify_clean() {
    let dir = units("units-verify");
    for unit in [
        "ferrocache.service",
        "ferrocache.socket",
        "ferrocache@11212.service",
    ] {
        let (ok, said) = verify(&dir, unit);
        assert!(ok && said.trim().is_empty(), "{unit}: {said}");
    }
}

#[test]
fn shipped_services_are_exposed_at_most_2_0() {
    let dir = units("units-security");
    for unit in ["ferrocache.service", "ferrocache@11212.service"] {
        let out = Command::new("systemd-analyze")
            .args(["security", "--offline=true", unit])
            .current_dir(&dir)
            .output()
            .expect("systemd-analyze (apt-get install systemd) on PATH");
        let text = String::from_utf8_lossy(&out.stdout);
        let level: f64 = text
            .lines()
            .find_map(|l| l.split("Overall exposure level for ").nth(1))
            .and_then(|l| l.split(": ").nth(1))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{unit}: no exposure level in {text}"));
        assert!(level <= 2.0, "{unit}: exposure {level}\n{text}");
    }
}

/// The warm-restart drop-in: systemd reads it with the service cleanly (a broken copy is
/// reported, so it is read), and its settings do what docs/restart.md says with the real binary:
/// its ExecStart puts `-e` on the runtime directory, its KillSignal saves the cache, and the next
/// start restores it.
#[test]
fn the_warm_restart_drop_in_verifies_and_its_stop_saves_what_its_start_restores() {
    let dir = units("units-warm-restart");
    let (ok, said) = verify(&dir, "ferrocache.service");
    assert!(ok && said.trim().is_empty(), "{said}");
    let text = std::fs::read_to_string(dir.join(WARM_RESTART)).unwrap();
    std::fs::write(
        dir.join(WARM_RESTART),
        text.replace("KillSignal=SIGUSR1", "KillSignal=SIGBOGUS"),
    )
    .unwrap();
    assert!(verify(&dir, "ferrocache.service").1.contains("SIGBOGUS"));
    // The last value of each setting (an empty ExecStart= resets the unit's).
    let setting = |key: &str| {
        text.lines()
            .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .next_back()
            .unwrap_or_else(|| panic!("no {key} in the drop-in"))
            .to_string()
    };
    assert_eq!(setting("RuntimeDirectoryPreserve"), "yes");
    assert!(setting("ExecStart").contains(" -e /run/ferrocache/"));
    // ExecStart on the repository's configuration file, the runtime directory in scratch space.
    let conf = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dist/debian/ferrocache.conf");
    let exec = setting("ExecStart")
        .replace("/etc/ferrocache/ferrocache.conf", conf.to_str().unwrap())
        .replace("/run/ferrocache/", &format!("{}/", dir.display()));
    let args: Vec<&str> = exec.split_whitespace().skip(1).collect();
    let signal = setting("KillSignal");
    let signal = signal.strip_prefix("SIG").unwrap();
    let server = Server::start(&args);
    let mut c = server.connect();
    assert_eq!(
        exchange(&mut c, b"set kept 5 0 4\r\nwarm\r\n"),
        b"STORED\r\n"
    );
    let st = server.stop_with(signal).expect("exited");
    assert!(st.success(), "{st:?}");
    assert!(dir.join("cache.meta").exists(), "the stop saved the cache");
    let server = Server::start(&args);
    assert!(
        server
            .early_log
            .iter()
            .any(|l| l.contains("restored 1 items")),
        "{:?}",
        server.early_log
    );
    let mut c = server.connect();
    assert_eq!(
        exchange(&mut c, b"get kept\r\n"),
        b"VALUE kept 5 4\r\nwarm\r\nEND\r\n"
    );
}
