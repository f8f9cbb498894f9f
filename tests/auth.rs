//! Authentication: SASL PLAIN over the binary protocol (`-S`) and memcached's ASCII authfile
//! mode (`-Y`), with plaintext and hashed credentials, reload on SIGHUP, and the pre-auth gate.
//! Replies are checked byte for byte against the frames memcached 1.6.18 sends.

mod common;
use common::*;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use ferrocache::protocol::binary::{op, parse_response, request};

fn connect(fc: &Server) -> TcpStream {
    let s = TcpStream::connect(fc.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

fn closed(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 16];
    matches!(s.read(&mut b), Ok(0) | Err(_))
}

fn get_pkt(key: &[u8]) -> Vec<u8> {
    request(op::GET, 0, 0, &[], key, &[])
}

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

const AUTH_OK: &str = "81 21 00 00 00 00 00 00 00 00 00 0d 00 00 00 00 00 00 00 00 00 00 00 00 \
                       41 75 74 68 65 6e 74 69 63 61 74 65 64";
const AUTH_FAIL: &str = "81 21 00 00 00 00 00 20 00 00 00 0d 00 00 00 00 00 00 00 00 00 00 00 00 \
                         41 75 74 68 20 66 61 69 6c 75 72 65 2e";

fn sasl_server(dir: &std::path::Path, contents: &str) -> (Server, PathBuf) {
    let file = dir.join("creds");
    std::fs::write(&file, contents).unwrap();
    let fc = Server::start(&["-S", "--sasl-pwdb", file.to_str().unwrap()]);
    (fc, file)
}

#[test]
fn sasl_plain_gate_and_exact_frames() {
    let dir = tmpdir("sasl");
    let hashed = passwd("alice", "wonderland", "argon2id");
    let (fc, _) = sasl_server(&dir, &format!("foo:bar\n{hashed}\n"));

    let mut s = connect(&fc);
    let (_, raw) = call(&mut s, &request(op::SASL_LIST_MECHS, 0, 0, &[], &[], &[])).unwrap();
    assert_eq!(
        raw,
        hex("81 20 00 00 00 00 00 00 00 00 00 05 00 00 00 00 00 00 00 00 00 00 00 00 50 4c 41 49 4e")
    );
    // VERSION is allowed before authentication.
    let (r, _) = call(&mut s, &request(op::VERSION, 0, 0, &[], &[], &[])).unwrap();
    assert_eq!(r.value, b"1.6.18");
    // A wrong password fails, exactly as memcached answers, and the connection stays open.
    let (_, raw) = call(&mut s, &auth_pkt("foo", "wrong")).unwrap();
    assert_eq!(raw, hex(AUTH_FAIL));
    let (_, raw) = call(&mut s, &auth_pkt("nobody", "bar")).unwrap();
    assert_eq!(
        raw,
        hex(AUTH_FAIL),
        "unknown user looks like a wrong password"
    );
    // A SASL_STEP has nothing to continue with PLAIN.
    let (r, _) = call(&mut s, &request(op::SASL_STEP, 0, 0, &[], b"PLAIN", b"x")).unwrap();
    assert_eq!(r.status, 0x20);
    // PLAIN without an initial response: an empty challenge (0x21), then the STEP carries it.
    let (r, _) = call(&mut s, &request(op::SASL_AUTH, 0, 0, &[], b"PLAIN", b"")).unwrap();
    assert_eq!((r.status, r.value.len()), (0x21, 0));
    let step = request(op::SASL_STEP, 0, 0, &[], b"PLAIN", b"\0foo\0wrong");
    assert_eq!(call(&mut s, &step).unwrap().0.status, 0x20);
    // As in memcached, the continuing STEP's key does not matter.
    let mut t = connect(&fc);
    let (r, _) = call(&mut t, &request(op::SASL_AUTH, 0, 0, &[], b"PLAIN", b"")).unwrap();
    assert_eq!(r.status, 0x21);
    let step = request(op::SASL_STEP, 0, 0, &[], b"XYZ", b"\0foo\0bar");
    assert_eq!(call(&mut t, &step).unwrap().0.status, 0);
    // Anything else before authentication: "Auth failure." and the connection is closed.
    let (_, raw) = call(&mut s, &get_pkt(b"k")).unwrap();
    assert_eq!(&raw[..8], &hex("81 00 00 00 00 00 00 20")[..]);
    assert_eq!(&raw[24..], b"Auth failure.");
    assert!(closed(&mut s));

    // Plaintext entry.
    let mut s = connect(&fc);
    let (_, raw) = call(&mut s, &auth_pkt("foo", "bar")).unwrap();
    assert_eq!(raw, hex(AUTH_OK));
    let set = request(op::SET, 9, 0, &[0, 0, 0, 3, 0, 0, 0, 0], b"k", b"v1");
    assert_eq!(call(&mut s, &set).unwrap().0.status, 0);
    let (r, _) = call(&mut s, &get_pkt(b"k")).unwrap();
    assert_eq!((r.status, &r.value[..]), (0, &b"v1"[..]));

    // Hashed (argon2id) entry, verified off the event loop; a second login hits the cache.
    for _ in 0..2 {
        let mut s = connect(&fc);
        let (_, raw) = call(&mut s, &auth_pkt("alice", "wonderland")).unwrap();
        assert_eq!(raw, hex(AUTH_OK));
        assert_eq!(call(&mut s, &get_pkt(b"k")).unwrap().0.value, b"v1");
    }
    let mut s = connect(&fc);
    assert_eq!(
        call(&mut s, &auth_pkt("alice", "Wonderland")).unwrap().1,
        hex(AUTH_FAIL)
    );
    // A failed re-authentication leaves the connection unauthenticated.
    assert_eq!(
        call(&mut s, &auth_pkt("foo", "bar")).unwrap().1,
        hex(AUTH_OK)
    );
    assert_eq!(
        call(&mut s, &auth_pkt("foo", "nope")).unwrap().1,
        hex(AUTH_FAIL)
    );
    assert_eq!(call(&mut s, &get_pkt(b"k")).unwrap().0.status, 0x20);

    // auth_cmds / auth_errors, read over an authenticated connection.
    let mut s = connect(&fc);
    call(&mut s, &auth_pkt("foo", "bar")).unwrap();
    s.write_all(&request(op::STAT, 0, 0, &[], &[], &[]))
        .unwrap();
    let mut buf = Vec::new();
    let mut stats = std::collections::HashMap::new();
    let mut chunk = [0u8; 65536];
    'read: loop {
        while let Some((r, used)) = parse_response(&buf) {
            buf.drain(..used);
            if r.key.is_empty() {
                break 'read;
            }
            stats.insert(show(&r.key), show(&r.value));
        }
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0);
        buf.extend_from_slice(&chunk[..n]);
    }
    // Succeeded: step, foo, alice twice, foo, foo = 6; failed: wrong, nobody, step, step,
    // alice, nope = 6.
    assert_eq!(stats["auth_cmds"], "12");
    assert_eq!(stats["auth_errors"], "6");

    // Text on a SASL server is read as binary: bad magic, closed.
    let mut t = connect(&fc);
    t.write_all(b"version\r\nget k\r\nget k\r\nget k\r\n")
        .unwrap();
    assert!(read_to_close(&mut t).is_empty());
}

#[test]
fn sasl_reload_on_sighup() {
    let dir = tmpdir("reload");
    let (fc, file) = sasl_server(&dir, "foo:old\n");
    let mut kept = connect(&fc);
    assert_eq!(
        call(&mut kept, &auth_pkt("foo", "old")).unwrap().1,
        hex(AUTH_OK)
    );

    let hashed = passwd("foo", "new", "pbkdf2-sha256");
    std::fs::write(&file, format!("{hashed}\n")).unwrap();
    let hup = |fc: &Server| {
        assert!(Command::new("kill")
            .args(["-HUP", &fc.pid().to_string()])
            .status()
            .unwrap()
            .success())
    };
    hup(&fc);
    // The reload is asynchronous: retry (bounded) until the new password is accepted.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut s = connect(&fc);
        if call(&mut s, &auth_pkt("foo", "new")).unwrap().0.status == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "new password never accepted");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut s = connect(&fc);
    assert_eq!(
        call(&mut s, &auth_pkt("foo", "old")).unwrap().1,
        hex(AUTH_FAIL)
    );
    // The session authenticated before the reload is unaffected.
    assert_eq!(call(&mut kept, &get_pkt(b"nokey")).unwrap().0.status, 1);

    // A file that does not parse leaves the previous credentials in force.
    std::fs::write(&file, "this is not a credentials file\n").unwrap();
    hup(&fc);
    let mut probe = connect(&fc);
    assert_eq!(
        call(&mut probe, &request(op::VERSION, 0, 0, &[], &[], &[]))
            .unwrap()
            .0
            .status,
        0
    );
    for _ in 0..3 {
        let mut s = connect(&fc);
        assert_eq!(
            call(&mut s, &auth_pkt("foo", "new")).unwrap().1,
            hex(AUTH_OK)
        );
    }
}

#[test]
fn sasl_without_a_credentials_file_reads_cyrus_config_and_the_env() {
    // No credentials file: cyrus' config decides, and one cyrus refuses stops the start as in
    // memcached (tests/sasldb.rs covers a working one).
    let dir = tmpdir("env");
    std::fs::write(dir.join("memcached.conf"), "not a key value line\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ferrocache"))
        .args(["-S", "-p", "-1", "-l", "127.0.0.1", "-u", "root"])
        .env_remove("MEMCACHED_SASL_PWDB")
        .env("SASL_CONF_PATH", &dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        show(&out.stderr).contains("Error initializing sasl."),
        "{}",
        show(&out.stderr)
    );

    let file = dir.join("pwdb");
    std::fs::write(&file, "envuser:envpass\n").unwrap();
    let fc = Server::start_with_env(&["-S"], &[("MEMCACHED_SASL_PWDB", file.to_str().unwrap())]);
    let mut s = connect(&fc);
    assert_eq!(
        call(&mut s, &auth_pkt("envuser", "envpass")).unwrap().1,
        hex(AUTH_OK)
    );
}

/// memcached's binary SASL replies when SASL is off: unknown command.
#[test]
fn sasl_opcodes_without_dash_s_match_memcached() {
    let (mc, _) = start_memcached(&[]);
    let fc = Server::start(&[]);
    for pkt in [
        request(op::SASL_LIST_MECHS, 0, 0, &[], &[], &[]),
        auth_pkt("foo", "bar"),
    ] {
        let mut m = TcpStream::connect(mc.addr).unwrap();
        m.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut f = connect(&fc);
        assert_eq!(call(&mut m, &pkt).unwrap().1, call(&mut f, &pkt).unwrap().1);
    }
}

fn ascii(s: &mut TcpStream, req: &[u8]) -> String {
    s.write_all(req).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.ends_with(b"\r\n") {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    show(&buf)
}

#[test]
fn ascii_authfile_mode() {
    let dir = tmpdir("ascii");
    let file = dir.join("authfile");
    let hashed = passwd("carol", "hunter2", "argon2id");
    std::fs::write(&file, format!("dave:pass1\n{hashed}\n")).unwrap();
    let fc = Server::start(&["-Y", file.to_str().unwrap()]);

    let mut s = connect(&fc);
    assert_eq!(
        ascii(&mut s, b"get foo\r\n"),
        "CLIENT_ERROR unauthenticated\r\n"
    );
    assert_eq!(
        ascii(&mut s, b"version\r\n"),
        "CLIENT_ERROR unauthenticated\r\n"
    );
    assert_eq!(
        ascii(&mut s, b"set a 0 0 5\r\ndave!\r\n"),
        "CLIENT_ERROR bad authentication token format\r\n"
    );
    assert_eq!(
        ascii(&mut s, b"set a 0 0 10\r\ndave pass2\r\n"),
        "CLIENT_ERROR authentication failure\r\n"
    );
    assert_eq!(
        ascii(&mut s, b"set a 0 0 10\r\neve  pass1\r\n"),
        "CLIENT_ERROR authentication failure\r\n"
    );
    assert_eq!(
        ascii(&mut s, b"set a 0 0 3\r\nabcXY"),
        "CLIENT_ERROR bad command line termination\r\n"
    );
    // Retrying on the same connection works; then the normal protocol follows.
    assert_eq!(
        ascii(&mut s, b"set a 0 0 10\r\ndave pass1\r\n"),
        "STORED\r\n"
    );
    assert_eq!(ascii(&mut s, b"set k 0 0 2\r\nhi\r\n"), "STORED\r\n");
    assert_eq!(ascii(&mut s, b"get k\r\n").lines().nth(1), Some("hi"));

    // Hashed entries work for ASCII auth too; as in memcached 1.6.18, words after the password
    // are ignored.
    let mut s = connect(&fc);
    assert_eq!(
        ascii(&mut s, b"set _ _ _ 19\r\ncarol hunter2 extra\r\n"),
        "STORED\r\n"
    );
    assert_eq!(ascii(&mut s, b"version\r\n"), "VERSION 1.6.18\r\n");

    // The binary protocol is refused: it is read as text.
    let mut b = connect(&fc);
    b.write_all(&request(op::VERSION, 0, 0, &[], &[], &[]))
        .unwrap();
    assert_eq!(ascii(&mut b, b"\r\n"), "CLIENT_ERROR unauthenticated\r\n");

    // An oversized token closes the connection.
    let mut s = connect(&fc);
    s.write_all(b"set a 0 0 100000\r\n").unwrap();
    assert!(read_to_close(&mut s).is_empty());
}

/// The ASCII auth replies are memcached's (same requests to memcached -Y).
#[test]
fn ascii_authfile_replies_match_memcached() {
    let dir = tmpdir("ascii-mc");
    let file = dir.join("authfile");
    std::fs::write(&file, "user1:secret1\n").unwrap();
    let f = file.to_str().unwrap();
    let (mc, _) = start_memcached_plain(&["-Y", f]);
    let fc = Server::start(&["-Y", f]);
    let cases: [&[u8]; 6] = [
        b"get foo\r\n",
        b"set a 0 0 7\r\nsecret1\r\n",
        b"set a 0 0 13\r\nuser1 secret2\r\n",
        b"set a 0 0 3\r\nabcXY",
        b"set a 0 0 13\r\nuser1 secret1\r\n",
        b"get nothing\r\n",
    ];
    let mut m = TcpStream::connect(mc.addr).unwrap();
    m.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut s = connect(&fc);
    for c in cases {
        assert_eq!(ascii(&mut m, c), ascii(&mut s, c), "{}", show(c));
    }
}

/// memcached under `-Y` cannot answer the `stats` probe `start_memcached` uses before
/// authenticating, so its start is checked by connecting only.
fn start_memcached_plain(args: &[&str]) -> (Server, ()) {
    let mc = Server::memcached(args).expect("memcached is installed");
    (mc, ())
}

/// A verification result belongs to the connection that asked for it: a client that resets
/// while its (slow, hashed) credentials are checked hands nothing to the next connection, even
/// when that one gets the same file descriptor and slot.
#[test]
fn verification_results_never_reach_another_connection() {
    let dir = tmpdir("reuse");
    let hashed = passwd("alice", "wonderland", "argon2id");
    let file = dir.join("creds");
    std::fs::write(&file, format!("{hashed}\n")).unwrap();
    let fc = Server::start(&["-t", "1", "-S", "--sasl-pwdb", file.to_str().unwrap()]);
    for _ in 0..5 {
        let mut victim = connect(&fc);
        victim.write_all(&auth_pkt("alice", "wonderland")).unwrap();
        socket2::SockRef::from(&victim)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(victim);
        let mut other = connect(&fc);
        let (r, _) = call(&mut other, &get_pkt(b"k")).unwrap();
        assert_eq!(r.status, 0x20, "an unauthenticated connection was let in");
    }
}

/// A client that sends its login and requests and then half-closes still gets every answer,
/// even when the check runs on the verification pool (mixed file: every check costs a KDF).
#[test]
fn half_close_while_verifying_still_answers() {
    let dir = tmpdir("halfclose");
    let hashed = passwd("carol", "hunter2", "argon2id");
    let file = dir.join("users");
    std::fs::write(&file, format!("{hashed}\nbob:plain\n")).unwrap();
    let fc = Server::start(&["-Y", file.to_str().unwrap()]);
    let mut s = connect(&fc);
    s.write_all(b"set k 0 0 9\r\nbob plain\r\nversion\r\n")
        .unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(show(&read_to_close(&mut s)), "STORED\r\nVERSION 1.6.18\r\n");
}
