//! TLS in transit (`-Z`): requests over TLS, `notls:` listeners beside TLS ones, client
//! certificates by `ssl_verify_mode`, protocol versions, session resumption, certificate reload
//! (`refresh_certs` and SIGHUP, a broken file keeping the old certificate), the `ssl_*` stats and
//! start-up refusals. Certificates are made at test time (tests/common/tls.rs).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::tls::{self, Pki};
use common::{free_port, Server};

fn start(pki: &Pki, extra: &[&str], more: &[&str]) -> Server {
    let args = pki.server_args(extra);
    let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
    all.extend_from_slice(more);
    Server::start(&all)
}

fn stat(reply: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(reply);
    let prefix = format!("STAT {name} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix).map(str::to_string))
}

#[test]
fn requests_over_tls_batched_large_and_pipelined() {
    let pki = Pki::new("requests");
    let srv = start(&pki, &[], &[]);
    let mut s = tls::connect(srv.addr, pki.client(None, &[])).expect("handshake");
    assert_eq!(
        tls::exchange(&mut s, b"set a 0 0 3\r\nabc\r\nget a\r\n").unwrap(),
        b"STORED\r\nVALUE a 0 3\r\nabc\r\nEND\r\n"
    );
    // A value larger than a TLS record and the worker's write buffer.
    let big = vec![b'x'; 900 * 1024];
    let mut req = format!("set big 0 0 {}\r\n", big.len()).into_bytes();
    req.extend_from_slice(&big);
    req.extend_from_slice(b"\r\n");
    assert_eq!(tls::exchange(&mut s, &req).unwrap(), b"STORED\r\n");
    let reply = tls::exchange(&mut s, b"get big\r\n").unwrap();
    assert_eq!(
        reply.len(),
        big.len() + "VALUE big 0 921600\r\n\r\nEND\r\n".len()
    );
    // Many pipelined requests in one write, answered in order.
    let mut many = Vec::new();
    for i in 0..500 {
        many.extend_from_slice(format!("set k{i} 0 0 1\r\n{}\r\nget k{i}\r\n", i % 10).as_bytes());
    }
    let reply = tls::exchange(&mut s, &many).unwrap();
    let mut want = Vec::new();
    for i in 0..500 {
        want.extend_from_slice(
            format!("STORED\r\nVALUE k{i} 0 1\r\n{}\r\nEND\r\n", i % 10).as_bytes(),
        );
    }
    assert!(reply == want, "pipelined replies differ");
    // Binary protocol over TLS too (a connection of its own): a no-op.
    let mut s = tls::connect(srv.addr, pki.client(None, &[])).unwrap();
    s.write_all(&[
        0x80, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ])
    .unwrap();
    let mut hdr = [0u8; 24];
    s.read_exact(&mut hdr).unwrap();
    assert_eq!((hdr[0], hdr[1]), (0x81, 0x0a));
}

#[test]
fn stats_show_tls_settings_and_counters() {
    let pki = Pki::new("stats");
    let srv = start(&pki, &["ssl_session_cache", "ssl_wbuf_size=64"], &[]);
    let mut s = tls::connect(srv.addr, pki.client(None, &[])).unwrap();
    let settings = tls::exchange(&mut s, b"stats settings\r\n").unwrap();
    let crt = pki.server_crt.display().to_string();
    for (name, want) in [
        ("ssl_enabled", "yes"),
        ("ssl_chain_cert", crt.as_str()),
        ("ssl_verify_mode", "0"),
        ("ssl_keyformat", "1"),
        ("ssl_ciphers", "NULL"),
        ("ssl_ca_cert", "NULL"),
        ("ssl_wbuf_size", "65536"),
        ("ssl_session_cache", "yes"),
        ("ssl_kernel_tls", "no"),
        ("ssl_min_version", "tlsv1.2"),
    ] {
        assert_eq!(stat(&settings, name).as_deref(), Some(want), "{name}");
    }
    let stats = tls::exchange(&mut s, b"stats\r\n").unwrap();
    assert_eq!(stat(&stats, "ssl_new_sessions").as_deref(), Some("1"));
    assert_eq!(stat(&stats, "ssl_handshake_errors").as_deref(), Some("0"));
    assert!(stat(&stats, "time_since_server_cert_refresh").is_some());
    // A plaintext client on the TLS port never reaches the protocol.
    let mut plain = srv.connect();
    plain.write_all(b"version\r\n").unwrap();
    let got = common::read_to_close(&mut plain);
    assert!(!got.starts_with(b"VERSION"), "{got:?}");
    let stats = tls::exchange(&mut s, b"stats\r\n").unwrap();
    assert_eq!(stat(&stats, "ssl_handshake_errors").as_deref(), Some("1"));
}

#[test]
fn notls_listener_beside_a_tls_one() {
    let pki = Pki::new("notls");
    let port = free_port();
    let plain = format!("notls:127.0.0.1:{port}");
    let srv = start(&pki, &[], &["-l", &plain]);
    let mut s = tls::connect(srv.addr, pki.client(None, &[])).unwrap();
    assert_eq!(
        tls::exchange(&mut s, b"set foo 0 0 2\r\nhi\r\n").unwrap(),
        b"STORED\r\n"
    );
    let mut p = TcpStream::connect(("127.0.0.1", port)).unwrap();
    p.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(
        common::exchange(&mut p, b"get foo\r\n"),
        b"VALUE foo 0 2\r\nhi\r\nEND\r\n"
    );
    // `notls:` without -Z is refused, as memcached refuses it.
    let out = Command::new(env!("CARGO_BIN_EXE_ferrocache"))
        .args(["-u", "root", "-l", &plain])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("'notls' option is valid only when SSL is enabled"));
}

#[test]
fn client_certificates_by_verify_mode() {
    let pki = Pki::new("verify");
    let ca = format!("ssl_ca_cert={}", pki.ca.display());
    // 2 (require) and 3 (once): only a certificate the CA signed.
    for mode in ["ssl_verify_mode=2", "ssl_verify_mode=3"] {
        let srv = start(&pki, &[mode, &ca], &[]);
        assert!(
            tls::served(srv.addr, pki.client(Some("client"), &[])),
            "{mode}"
        );
        assert!(
            !tls::served(srv.addr, pki.client(None, &[])),
            "{mode}: none"
        );
        assert!(
            !tls::served(srv.addr, pki.client(Some("stranger"), &[])),
            "{mode}"
        );
        // Over TLS 1.2 the refusal is part of the handshake.
        let v12 = [&rustls::version::TLS12];
        assert!(
            tls::connect(srv.addr, pki.client(None, &v12)).is_err(),
            "{mode}"
        );
        let mut s = tls::connect(srv.addr, pki.client(Some("client"), &[])).unwrap();
        let stats = tls::exchange(&mut s, b"stats\r\n").unwrap();
        assert_eq!(stat(&stats, "ssl_handshake_errors").as_deref(), Some("3"));
    }
    // 1 (request): none is fine, a wrong one is not.
    let srv = start(&pki, &["ssl_verify_mode=1", &ca], &[]);
    assert!(tls::served(srv.addr, pki.client(None, &[])));
    assert!(tls::served(srv.addr, pki.client(Some("client"), &[])));
    assert!(!tls::served(srv.addr, pki.client(Some("stranger"), &[])));
    // 0 (none): a certificate is not even asked for.
    let srv = start(&pki, &[&ca], &[]);
    assert!(tls::served(srv.addr, pki.client(Some("stranger"), &[])));
}

#[test]
fn minimum_protocol_version() {
    let pki = Pki::new("versions");
    let v12 = [&rustls::version::TLS12];
    let v13 = [&rustls::version::TLS13];
    let srv = start(&pki, &["ssl_min_version=3"], &[]);
    assert!(!tls::served(srv.addr, pki.client(None, &v12)));
    assert!(tls::served(srv.addr, pki.client(None, &v13)));
    let srv = start(&pki, &[], &[]);
    assert!(tls::served(srv.addr, pki.client(None, &v12)));
    assert!(tls::served(srv.addr, pki.client(None, &v13)));
}

#[test]
fn sessions_resume_only_with_the_session_cache() {
    let pki = Pki::new("resume");
    for (extra, resumes) in [(&["ssl_session_cache"][..], true), (&[][..], false)] {
        let srv = start(&pki, extra, &[]);
        for versions in [
            &[&rustls::version::TLS12][..],
            &[&rustls::version::TLS13][..],
        ] {
            // One client config: its session store carries the session to the next connection.
            let config = pki.client(None, versions);
            let mut first = tls::connect(srv.addr, config.clone()).unwrap();
            // TLS 1.3 tickets arrive after the handshake: read a reply first.
            tls::exchange(&mut first, b"version\r\n").unwrap();
            let mut again = tls::connect(srv.addr, config).unwrap();
            tls::exchange(&mut again, b"version\r\n").unwrap();
            let kind = again.conn.handshake_kind();
            assert_eq!(
                kind == Some(rustls::HandshakeKind::Resumed),
                resumes,
                "{extra:?} {versions:?}: {kind:?}"
            );
        }
        if resumes {
            let mut s = tls::connect(srv.addr, pki.client(None, &[])).unwrap();
            let stats = tls::exchange(&mut s, b"stats\r\n").unwrap();
            // Two full handshakes (one per version) and this one; the resumed ones add none.
            assert_eq!(stat(&stats, "ssl_new_sessions").as_deref(), Some("3"));
        }
    }
}

/// Waits (bounded) until new connections see `want` as the server's certificate.
fn wait_for_cert(srv: &Server, pki: &Pki, want: &[u8]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = tls::connect(srv.addr, pki.client(None, &[])).unwrap();
        if tls::peer_cert(&s) == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate never showed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn reload_applies_to_new_connections_and_a_broken_file_keeps_the_old() {
    let pki = Pki::new("reload");
    let old = tls::file_cert(&pki.server_crt);
    let srv = start(&pki, &[], &[]);
    let mut before = tls::connect(srv.addr, pki.client(None, &[])).unwrap();
    assert_eq!(tls::peer_cert(&before), old);
    // A new certificate and key, by refresh_certs.
    tls::make_leaf(&pki.dir, "server", "ca", 20, tls::SERVER_EXT);
    let new = tls::file_cert(&pki.server_crt);
    assert_ne!(old, new);
    assert_eq!(
        tls::exchange(&mut before, b"refresh_certs\r\n").unwrap(),
        b"OK\r\n"
    );
    let after = tls::connect(srv.addr, pki.client(None, &[])).unwrap();
    assert_eq!(tls::peer_cert(&after), new);
    // The connection made before keeps working, with its certificate.
    assert_eq!(
        tls::exchange(&mut before, b"set k 0 0 1\r\nv\r\n").unwrap(),
        b"STORED\r\n"
    );
    assert_eq!(tls::peer_cert(&before), old);
    // A broken file: an error naming it, and new connections keep the certificate in force.
    let good = std::fs::read(&pki.server_crt).unwrap();
    std::fs::write(&pki.server_crt, b"not a certificate\n").unwrap();
    let reply = tls::exchange(&mut before, b"refresh_certs\r\n").unwrap();
    let crt = pki.server_crt.display().to_string();
    assert!(
        reply.starts_with(format!("Error loading the certificate chain: {crt} : ").as_bytes()),
        "{}",
        common::show(&reply)
    );
    assert!(reply.ends_with(b"\r\n"));
    let s = tls::connect(srv.addr, pki.client(None, &[])).unwrap();
    assert_eq!(tls::peer_cert(&s), new);
    // SIGHUP reloads too.
    std::fs::write(&pki.server_crt, good).unwrap();
    tls::make_leaf(&pki.dir, "server", "ca", 10, tls::SERVER_EXT);
    let third = tls::file_cert(&pki.server_crt);
    nix_kill_hup(srv.pid());
    wait_for_cert(&srv, &pki, &third);
    // Without -Z, memcached's answer.
    let plain = Server::start(&[]);
    assert_eq!(
        common::one(&plain, b"refresh_certs\r\n"),
        b"Error TLS not enabled\r\n"
    );
}

fn nix_kill_hup(pid: u32) {
    let ok = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

#[test]
fn start_up_refusals() {
    let pki = Pki::new("refusals");
    let crt = format!("ssl_chain_cert={}", pki.server_crt.display());
    let key = format!("ssl_key={}", pki.server_key.display());
    let refused = |args: &[&str], want: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_ferrocache"))
            .args(["-u", "root", "-p", "-1", "-U", "0", "-Z"])
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    };
    refused(&[], "Error loading the certificate chain: (null)");
    refused(
        &["-o", &crt, "-o", "ssl_key=/nonexistent"],
        "Error loading the key: /nonexistent",
    );
    refused(
        &["-o", &crt, "-o", &key, "-o", "ssl_min_version=1"],
        "tlsv1.1",
    );
    refused(
        &["-o", &crt, "-o", &key, "-o", "ssl_verify_mode=2"],
        "needs ssl_ca_cert",
    );
    refused(
        &["-o", &crt, "-o", &key, "-o", "ssl_ciphers=RC4-MD5"],
        "Error setting the provided cipher(s): RC4-MD5",
    );
    // A key that is not the certificate's.
    let other = format!("ssl_key={}", pki.client_key.display());
    refused(
        &["-o", &crt, "-o", &other],
        "Error validating the certificate",
    );
}

/// Kills the child on drop (also on panic).
struct Kill(std::process::Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn expiry_is_logged_and_warned_within_30_days() {
    use std::io::BufRead;
    let pki = Pki::new("expiry");
    tls::make_leaf(&pki.dir, "soon", "ca", 5, tls::SERVER_EXT);
    let mut child = Kill(
        Command::new(env!("CARGO_BIN_EXE_ferrocache"))
            .args(["-u", "root", "-p", "-1", "-U", "0", "-Z", "-o"])
            .arg(format!(
                "ssl_chain_cert={},ssl_key={}",
                pki.dir.join("soon.crt").display(),
                pki.dir.join("soon.key").display()
            ))
            .env("RUST_LOG", "info")
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let stderr = child.0.stderr.take().unwrap();
    let mut seen = Vec::new();
    for line in std::io::BufReader::new(stderr).lines() {
        let line = line.unwrap();
        let done = line.contains("listening on");
        seen.push(line);
        if done {
            break;
        }
    }
    let warn = seen
        .iter()
        .find(|l| l.contains("WARN") && l.contains("soon.crt expires on"))
        .unwrap_or_else(|| panic!("no expiry warning in {seen:?}"));
    assert!(
        warn.contains("in 4 day(s)") || warn.contains("in 5 day(s)"),
        "{warn}"
    );
}

// ---- against memcached 1.6.18 -Z (Debian's build has TLS) -------------------------------------

/// memcached -Z with the same TLS arguments, checked to be the process on its port (the port is
/// picked before memcached binds it): its pid over a TLS `stats`.
fn memcached_tls(pki: &Pki, extra: &[&str]) -> Server {
    let args = pki.server_args(extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    for _ in 0..5 {
        let mc = Server::memcached(&args).unwrap_or_else(|| {
            panic!("the reference memcached (with TLS: Debian's) is needed: apt-get install -y memcached")
        });
        // Any certificate the verify mode accepts: the CA's client.
        let Ok(mut s) = tls::connect(mc.addr, pki.client(Some("client"), &[])) else {
            continue;
        };
        let pid = format!("STAT pid {}\r\n", mc.pid());
        if tls::exchange(&mut s, b"stats\r\n").is_ok_and(|r| common::show(&r).contains(&pid)) {
            return mc;
        }
    }
    panic!("memcached -Z did not start on a port of its own in 5 tries")
}

/// The `ssl_*` lines of `stats settings` over a TLS connection.
fn ssl_settings(addr: std::net::SocketAddr, pki: &Pki) -> Vec<String> {
    let mut s = tls::connect(addr, pki.client(Some("client"), &[])).unwrap();
    let r = tls::exchange(&mut s, b"stats settings\r\n").unwrap();
    common::show(&r)
        .lines()
        .filter(|l| l.starts_with("STAT ssl_"))
        .map(str::to_string)
        .collect()
}

#[test]
fn same_replies_settings_and_refusals_as_memcached() {
    let pki = Pki::new("differential");
    let ca = format!("ssl_ca_cert={}", pki.ca.display());
    let configs: [&[&str]; 4] = [
        &[],
        &["ssl_verify_mode=1", &ca],
        &["ssl_verify_mode=2", &ca, "ssl_session_cache"],
        &[
            "ssl_verify_mode=3",
            &ca,
            "ssl_min_version=3",
            "ssl_wbuf_size=32",
        ],
    ];
    let script: &[u8] = b"set a 0 0 3\r\nabc\r\nget a b\r\nappend a 0 0 2\r\nde\r\nget a\r\n\
        incr n 1\r\nset n 5 0 1\r\n7\r\nincr n 35\r\ndecr n 100\r\ntouch a 100\r\n\
        mg a v f t\r\nms m 2\r\nhi\r\nmg m s v\r\ndelete a\r\nget a\r\nbogus\r\n";
    for extra in configs {
        let ours = start(&pki, extra, &[]);
        let theirs = memcached_tls(&pki, extra);
        // The same settings, word for word (the same file names on both command lines).
        assert_eq!(
            ssl_settings(ours.addr, &pki),
            ssl_settings(theirs.addr, &pki),
            "{extra:?}"
        );
        // The same replies over TLS.
        let reply = |addr| {
            let mut s = tls::connect(addr, pki.client(Some("client"), &[])).unwrap();
            tls::exchange(&mut s, script).unwrap()
        };
        let (a, b) = (reply(ours.addr), reply(theirs.addr));
        assert!(
            a == b,
            "{extra:?}\nours:\n{}\nmemcached:\n{}",
            common::show(&a),
            common::show(&b)
        );
        // Who is served: no certificate, a stranger's, the CA's client; TLS 1.2 only.
        let v12 = [&rustls::version::TLS12];
        for (cert, versions) in [
            (None, &[][..]),
            (Some("stranger"), &[][..]),
            (Some("client"), &[][..]),
            (Some("client"), &v12[..]),
        ] {
            let served = |addr| tls::served(addr, pki.client(cert, versions));
            assert_eq!(
                served(ours.addr),
                served(theirs.addr),
                "{extra:?}: client certificate {cert:?}, versions {versions:?}"
            );
        }
        // Plaintext on the TLS port: neither answers it.
        for addr in [ours.addr, theirs.addr] {
            let mut p = TcpStream::connect(addr).unwrap();
            p.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            p.write_all(b"version\r\n").unwrap();
            let got = common::read_to_close(&mut p);
            assert!(!common::show(&got).contains("VERSION"), "{addr}: {got:?}");
        }
    }
}

/// TLS 1.1 (the openssl CLI can still offer it) is refused by both when the minimum is 1.2.
#[test]
fn tls_1_1_refused_like_memcached() {
    let pki = Pki::new("tls11");
    let ours = start(&pki, &[], &[]);
    let theirs = memcached_tls(&pki, &[]);
    for (addr, who) in [(ours.addr, "ferrocache"), (theirs.addr, "memcached")] {
        let out = Command::new("timeout")
            .args([
                "10",
                "openssl",
                "s_client",
                "-tls1_1",
                "-cipher",
                "DEFAULT@SECLEVEL=0",
            ])
            .args(["-connect", &addr.to_string()])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let text = common::show(&out.stdout) + &common::show(&out.stderr);
        assert!(!out.status.success(), "{who}: {text}");
        assert!(text.contains("Cipher is (NONE)"), "{who}: {text}");
    }
}

/// A client that sends its ClientHello and then nothing: the server's side of the handshake is
/// left in progress, waiting for the client's next flight.
fn stalled_hello(addr: std::net::SocketAddr, pki: &Pki) -> (TcpStream, rustls::ClientConnection) {
    let mut sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
    let mut c =
        rustls::ClientConnection::new(std::sync::Arc::new(pki.client(None, &[])), name).unwrap();
    while c.wants_write() {
        c.write_tls(&mut sock).unwrap();
    }
    (sock, c)
}

#[test]
fn handshakes_in_progress_do_not_stop_established_connections() {
    let pki = Pki::new("stalled");
    // One worker: every connection, established or handshaking, belongs to it. (The session
    // cache shows `ssl_new_sessions`; every client here has its own, so none resumes.)
    let srv = start(&pki, &["ssl_session_cache"], &["-t", "1"]);
    let mut est = tls::connect(srv.addr, pki.client(None, &[])).unwrap();
    assert_eq!(
        tls::exchange(&mut est, b"set k 0 0 1\r\nv\r\n").unwrap(),
        b"STORED\r\n"
    );
    // Handshakes stalled at every early point: half a record header, a whole ClientHello (the
    // server has answered and waits for the client's Finished).
    let mut partial = Vec::new();
    for _ in 0..16 {
        let mut s = srv.connect();
        s.write_all(&[0x16, 0x03, 0x01]).unwrap();
        partial.push(s);
    }
    let mut stalled: Vec<_> = (0..16).map(|_| stalled_hello(srv.addr, &pki)).collect();
    // The established connection is served, request after request, while all of them wait.
    for i in 0..200 {
        let reply = tls::exchange(&mut est, b"get k\r\n").unwrap();
        assert_eq!(reply, b"VALUE k 0 1\r\nv\r\nEND\r\n", "request {i}");
    }
    // So is a new connection, whose handshake overtakes the stalled ones.
    let mut fresh = tls::connect(srv.addr, pki.client(None, &[])).unwrap();
    let stats = tls::exchange(&mut fresh, b"stats\r\n").unwrap();
    let curr: usize = stat(&stats, "curr_connections").unwrap().parse().unwrap();
    assert!(curr >= 34, "the stalled handshakes are held: {curr}");
    // A stalled handshake may still finish, and its connection is served.
    let (mut sock, conn) = stalled.pop().unwrap();
    let mut late = rustls::StreamOwned::new(conn, &mut sock);
    while late.conn.is_handshaking() {
        late.conn.complete_io(&mut late.sock).unwrap();
    }
    late.write_all(b"get k\r\n").unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    while !got.ends_with(b"END\r\n") {
        let n = late.read(&mut buf).unwrap();
        assert!(n > 0, "closed after {got:?}");
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(got, b"VALUE k 0 1\r\nv\r\nEND\r\n");
    // Nothing stalled counts as a failed handshake; the completed ones count as new sessions.
    let stats = tls::exchange(&mut est, b"stats\r\n").unwrap();
    assert_eq!(stat(&stats, "ssl_handshake_errors").as_deref(), Some("0"));
    assert_eq!(stat(&stats, "ssl_new_sessions").as_deref(), Some("3"));
    drop(partial);
}

#[test]
fn an_idle_handshake_is_closed_by_idle_timeout() {
    let pki = Pki::new("idlehs");
    let srv = start(&pki, &["idle_timeout=1"], &["-t", "1"]);
    let (mut sock, _conn) = stalled_hello(srv.addr, &pki);
    // The server's flight, then its close (bounded by the 10 s read timeout).
    let mut buf = [0u8; 4096];
    let closed = loop {
        match sock.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(_) => break false,
        }
    };
    assert!(closed, "an idle handshake stays open past idle_timeout");
    let mut s = tls::connect(srv.addr, pki.client(None, &[])).unwrap();
    let stats = tls::exchange(&mut s, b"stats\r\n").unwrap();
    assert_eq!(stat(&stats, "idle_kicks").as_deref(), Some("1"));
}

/// `--tls` with CA `ca` and the client certificate `crt`, `key`, for `cluster_tool`.
fn with_cert<'a>(ca: &'a str, crt: &'a Path, key: &'a Path) -> [&'a str; 7] {
    let path = |p: &'a Path| p.to_str().unwrap();
    [
        "--tls",
        "--tls-ca",
        ca,
        "--tls-cert",
        path(crt),
        "--tls-key",
        path(key),
    ]
}

/// `ferrocache cluster ARGS…`: whether it succeeded, and what it printed.
fn cluster_tool(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ferrocache"))
        .arg("cluster")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    (
        out.status.success(),
        common::show(&out.stdout) + &common::show(&out.stderr),
    )
}

#[test]
fn cluster_push_and_status_over_tls_to_the_admin_endpoint() {
    let pki = Pki::new("admin");
    let args = pki.server_args(&[]);
    let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
    all.extend(["--cluster-nodes", "localhost|127.0.0.1|11211"]);
    let (srv, admin) = Server::start_admin(&all);
    let admin = admin.to_string();
    let (ca, other) = (pki.ca.to_str().unwrap(), pki.other_ca.to_str().unwrap());
    // With -Z the admin endpoint speaks TLS: a plaintext push never reaches it.
    let (ok, out) = cluster_tool(&["push", "--nodes", "a|127.0.0.1|1", &admin]);
    assert!(!ok, "{out}");
    let nodes = "a|127.0.0.1|1,b|127.0.0.1|2";
    let (ok, out) = cluster_tool(&["push", "--tls", "--tls-ca", ca, "--nodes", nodes, &admin]);
    assert!(ok && out.contains("STORED version 2"), "{out}");
    let (ok, out) = cluster_tool(&["status", "--tls", "--tls-ca", ca, &admin]);
    assert!(ok && out.contains("version 2, 2 member(s)"), "{out}");
    // A CA that did not sign the node's certificate: refused, nothing pushed.
    let (ok, out) = cluster_tool(&[
        "push",
        "--tls",
        "--tls-ca",
        other,
        "--nodes",
        "c|127.0.0.1|3",
        &admin,
    ]);
    assert!(!ok && out.contains("certificate"), "{out}");
    let (ok, out) = cluster_tool(&["status", "--tls", "--tls-ca", other, &admin]);
    assert!(!ok && out.contains("unreachable"), "{out}");
    // A certificate for another name: refused unless --tls-server-name names one it carries.
    for (name, carried) in [("cache.example", false), ("localhost", true)] {
        let (ok, out) = cluster_tool(&[
            "status",
            "--tls",
            "--tls-ca",
            ca,
            "--tls-server-name",
            name,
            &admin,
        ]);
        assert_eq!(ok, carried, "--tls-server-name {name}: {out}");
    }
    // Discovery over TLS on the client port serves the pushed list.
    let mut s = tls::connect(srv.addr, pki.client(None, &[])).unwrap();
    let r = common::show(&tls::exchange(&mut s, b"config get cluster\r\n").unwrap());
    assert!(
        r.starts_with("CONFIG cluster 0 ") && r.contains("a|127.0.0.1|1 b|127.0.0.1|2"),
        "{r}"
    );
}

#[test]
fn cluster_tools_with_client_certificates_and_a_notls_admin_endpoint() {
    let pki = Pki::new("adminmtls");
    let ca = pki.ca.to_str().unwrap();
    let verify = format!("ssl_verify_mode=2,ssl_ca_cert={ca}");
    let args = pki.server_args(&[&verify]);
    let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
    all.extend(["--cluster-nodes", "localhost|127.0.0.1|11211"]);
    let (_srv, admin) = Server::start_admin(&all);
    let admin = admin.to_string();
    let (ok, out) = cluster_tool(&["status", "--tls", "--tls-ca", ca, &admin]);
    assert!(!ok, "no client certificate, yet: {out}");
    let mine = with_cert(ca, &pki.client_crt, &pki.client_key);
    let (ok, out) =
        cluster_tool(&[&["push"][..], &mine, &["--nodes", "a|127.0.0.1|1", &admin]].concat());
    assert!(ok && out.contains("STORED version 2"), "{out}");
    let stranger = with_cert(ca, &pki.stranger_crt, &pki.stranger_key);
    let (ok, out) = cluster_tool(&[&["status"][..], &stranger, &[&admin]].concat());
    assert!(!ok, "a certificate of another CA: {out}");
    // `notls:` keeps the admin endpoint plaintext beside TLS client listeners.
    let port = free_port();
    let plain_admin = format!("127.0.0.1:{port}");
    let notls = format!("notls:{plain_admin}");
    let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
    all.extend([
        "--cluster-nodes",
        "localhost|127.0.0.1|11211",
        "--admin-listen",
        &notls,
    ]);
    let _plain = start(&pki, &[], &all[args.len()..]);
    let (ok, out) = cluster_tool(&["status", &plain_admin]);
    assert!(ok && out.contains("version 1"), "{out}");
}

/// Starts a plaintext node probing `nodes` over TLS (trusting `ca`, with `extra` options) and
/// waits (bounded) until `stats cluster` shows `want`.
fn wait_health(nodes: &str, ca: &std::path::Path, extra: &[&str], want: &str) {
    let mut args = vec![
        "--cluster-nodes",
        nodes,
        "--cluster-health-check",
        "0.05",
        "--cluster-health-tls",
        "--cluster-health-tls-ca",
        ca.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let fc = Server::start(&args);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stats = common::show(&common::raw(fc.addr, b"stats cluster\r\n", b"END\r\n"));
        if stats.contains(want) {
            break;
        }
        assert!(Instant::now() < deadline, "never {want:?}: {stats}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn health_check_over_tls() {
    let pki = Pki::new("health");
    let peer = start(&pki, &[], &[]);
    let nodes = format!("localhost|127.0.0.1|{}", peer.addr.port());
    let up = format!("STAT cluster_peer:localhost:{} up\r\n", peer.addr.port());
    let down = format!("STAT cluster_peer:localhost:{} down\r\n", peer.addr.port());
    let check =
        |ca: &std::path::Path, extra: &[&str], want: &str| wait_health(&nodes, ca, extra, want);
    check(&pki.ca, &[], &up);
    // A CA that did not sign the peer's certificate: every probe fails.
    check(&pki.other_ca, &[], &down);
}

#[test]
fn health_check_over_tls_with_a_client_certificate() {
    let pki = Pki::new("healthmtls");
    let verify = format!("ssl_verify_mode=2,ssl_ca_cert={}", pki.ca.display());
    let peer = start(&pki, &[&verify], &[]);
    let nodes = format!("localhost|127.0.0.1|{}", peer.addr.port());
    let state = |s: &str| format!("STAT cluster_peer:localhost:{} {s}\r\n", peer.addr.port());
    let (crt, key) = (
        pki.client_crt.to_str().unwrap(),
        pki.client_key.to_str().unwrap(),
    );
    let with_cert = [
        "--cluster-health-tls-cert",
        crt,
        "--cluster-health-tls-key",
        key,
    ];
    wait_health(&nodes, &pki.ca, &with_cert, &state("up"));
    // The peer requires a client certificate: probes without one fail.
    wait_health(&nodes, &pki.ca, &[], &state("down"));
}

#[test]
fn supervise_probes_and_pushes_over_tls() {
    let pki = Pki::new("supervise");
    let ca = pki.ca.to_str().unwrap();
    let args = pki.server_args(&[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (member, member_admin) = Server::start_admin(&args);
    let (standby, standby_admin) = Server::start_admin(&args);
    let entry = |s: &Server| format!("localhost|127.0.0.1|{}", s.addr.port());
    let (ma, sa) = (member_admin.to_string(), standby_admin.to_string());
    let (ok, out) = cluster_tool(&[
        "push",
        "--tls",
        "--tls-ca",
        ca,
        "--nodes",
        &entry(&member),
        &ma,
    ]);
    assert!(ok, "{out}");
    // The supervisor brings the standby to the served list, over TLS both ways.
    let (ok, out) = cluster_tool(&[
        "supervise",
        "--tls",
        "--tls-ca",
        ca,
        "--member",
        &format!("{}@{ma}", entry(&member)),
        "--standby",
        &format!("{}@{sa}", entry(&standby)),
        "--interval",
        "0.1",
        "--probe-timeout",
        "3",
        "--rounds",
        "10",
    ]);
    assert!(ok, "{out}");
    let (ok, out) = cluster_tool(&["status", "--tls", "--tls-ca", ca, &ma, &sa]);
    assert!(
        ok && out.contains("consistent: 2 reachable node(s) serve version 1"),
        "{out}"
    );
}
