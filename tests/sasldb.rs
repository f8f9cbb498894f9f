//! SASL users as memcached's Debian users have them: `-S` with `SASL_CONF_PATH` naming a
//! `memcached.conf` (`mech_list`, `sasldb_path`) and users made by `saslpasswd2` (cyrus' sasldb,
//! a Berkeley DB hash file) — read at login when it changes, PLAIN and CRAM-MD5, compared with
//! memcached 1.6.18 where it defines the bytes, and a real client (python-binary-memcached).
//! Needs `saslpasswd2` (sasl2-bin) and `db_load` (db-util); `make test-deps` installs them.

mod common;
use common::*;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use ferrocache::auth::cram;
use ferrocache::protocol::binary::{op, request, status};

/// A SASL config dir whose `memcached.conf` names `dir/users.db` (not created).
fn sasl_dir(name: &str, mechs: &str) -> (PathBuf, PathBuf) {
    let dir = tmpdir(name);
    let db = dir.join("users.db");
    std::fs::write(
        dir.join("memcached.conf"),
        format!(
            "mech_list: {mechs}\nlog_level: 5\nsasldb_path: {}\n",
            db.display()
        ),
    )
    .unwrap();
    (dir, db)
}

/// `saslpasswd2` as memcached's docs and t/binary-sasl.t run it (`realm` None: the host name).
fn saslpasswd2(db: &Path, user: &str, password: &str, realm: Option<&str>, delete: bool) {
    let mut cmd = Command::new("saslpasswd2");
    cmd.args(["-f", db.to_str().unwrap(), "-a", "memcached"]);
    if let Some(r) = realm {
        cmd.args(["-u", r]);
    }
    cmd.arg(if delete { "-d" } else { "-c" }).args(["-p", user]);
    let mut child = cmd
        .stdin(Stdio::piped())
        .spawn()
        .expect("saslpasswd2 (sasl2-bin) is needed: make test-deps");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
}

fn start(conf_dir: &Path) -> Server {
    Server::start_with_env(&["-S"], &[("SASL_CONF_PATH", conf_dir.to_str().unwrap())])
}

fn status_of(server: &Server, pkt: &[u8]) -> u16 {
    let mut s = server.connect();
    call(&mut s, pkt).expect("a reply").0.status
}

fn list_mechs(server: &Server) -> Vec<u8> {
    let mut s = server.connect();
    call(&mut s, &request(op::SASL_LIST_MECHS, 0, 0, &[], &[], &[]))
        .unwrap()
        .0
        .value
}

/// A CRAM-MD5 login: AUTH without data, the challenge, a STEP answering it. Returns the STEP's
/// status.
fn cram_login(server: &Server, user: &str, password: &str) -> u16 {
    let mut s = server.connect();
    let (r, _) = call(&mut s, &request(op::SASL_AUTH, 0, 0, &[], b"CRAM-MD5", &[])).unwrap();
    assert_eq!(r.status, status::AUTH_CONTINUE);
    assert!(r.value.starts_with(b"<") && r.value.ends_with(b">"));
    let d = cram::digest(password.as_bytes(), &r.value);
    let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
    let answer = format!("{user} {hex}");
    let (r, _) = call(
        &mut s,
        &request(op::SASL_STEP, 0, 0, &[], b"CRAM-MD5", answer.as_bytes()),
    )
    .unwrap();
    if r.status == status::OK {
        // Authenticated for real: a get goes through the gate.
        let (g, _) = call(&mut s, &request(op::GET, 0, 0, &[], b"k", &[])).unwrap();
        assert_eq!(g.status, status::KEY_ENOENT);
    }
    r.status
}

fn hostname() -> String {
    String::from_utf8(ferrocache::auth::cyrus::hostname()).unwrap()
}

#[test]
fn users_from_saslpasswd2_log_in_and_changes_apply_at_the_next_login() {
    let (dir, db) = sasl_dir("sasldb-flow", "plain cram-md5");
    // As memcached: the database need not exist when the server starts.
    let fc = start(&dir);
    assert_eq!(list_mechs(&fc), b"PLAIN CRAM-MD5");
    assert_eq!(
        status_of(&fc, &auth_pkt("alice", "pw1")),
        status::AUTH_ERROR
    );

    saslpasswd2(&db, "alice", "pw1", None, false);
    saslpasswd2(&db, "testuser", "testpass", Some("memcached.realm"), false);
    assert_eq!(status_of(&fc, &auth_pkt("alice", "pw1")), status::OK);
    let at_host = format!("alice@{}", hostname());
    assert_eq!(status_of(&fc, &auth_pkt(&at_host, "pw1")), status::OK);
    assert_eq!(
        status_of(&fc, &auth_pkt("alice", "pw2")),
        status::AUTH_ERROR
    );
    let tu = "testuser@memcached.realm";
    assert_eq!(status_of(&fc, &auth_pkt(tu, "testpass")), status::OK);
    assert_eq!(
        status_of(&fc, &auth_pkt("testuser", "testpass")),
        status::AUTH_ERROR,
        "another realm"
    );
    assert_eq!(cram_login(&fc, "alice", "pw1"), status::OK);
    assert_eq!(cram_login(&fc, tu, "testpass"), status::OK);
    assert_eq!(cram_login(&fc, "alice", "wrong"), status::AUTH_ERROR);

    // A changed password and a deleted user count from the next login.
    saslpasswd2(&db, "alice", "pw2", None, false);
    assert_eq!(
        status_of(&fc, &auth_pkt("alice", "pw1")),
        status::AUTH_ERROR
    );
    assert_eq!(status_of(&fc, &auth_pkt("alice", "pw2")), status::OK);
    saslpasswd2(&db, "testuser", "", Some("memcached.realm"), true);
    assert_eq!(
        status_of(&fc, &auth_pkt(tu, "testpass")),
        status::AUTH_ERROR
    );
    // The server only reads the database.
    let before = std::fs::read(&db).unwrap();
    assert_eq!(status_of(&fc, &auth_pkt("alice", "pw2")), status::OK);
    assert_eq!(std::fs::read(&db).unwrap(), before);
}

#[test]
fn mech_list_limits_what_is_offered() {
    let (dir, db) = sasl_dir("sasldb-mechs", "cram-md5");
    saslpasswd2(&db, "bob", "secret", None, false);
    let fc = start(&dir);
    assert_eq!(list_mechs(&fc), b"CRAM-MD5");
    assert_eq!(
        status_of(&fc, &auth_pkt("bob", "secret")),
        status::AUTH_ERROR
    );
    assert_eq!(cram_login(&fc, "bob", "secret"), status::OK);
}

/// Files `saslpasswd2` cannot make: the other byte order, and values on overflow page chains
/// (written with Berkeley DB's own `db_load`).
#[test]
fn big_endian_databases_and_overflow_pages() {
    let (dir, db) = sasl_dir("sasldb-be", "plain");
    let host = hostname();
    // Small pages: a 3000-byte password spans a chain of overflow pages.
    let long = "L".repeat(3000);
    let dump = format!(
        "VERSION=3\nformat=print\ntype=hash\ndb_lorder=4321\ndb_pagesize=512\nHEADER=END\n \
         carol\\00{host}\\00userPassword\n {long}\n \
         dave\\00{host}\\00userPassword\n short\nDATA=END\n"
    );
    let mut child = Command::new("db_load")
        .arg(db.to_str().unwrap())
        .stdin(Stdio::piped())
        .spawn()
        .expect("db_load (db-util) is needed: make test-deps");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(dump.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    let fc = start(&dir);
    assert_eq!(status_of(&fc, &auth_pkt("carol", &long)), status::OK);
    assert_eq!(status_of(&fc, &auth_pkt("dave", "short")), status::OK);
    assert_eq!(
        status_of(&fc, &auth_pkt("dave", "shor")),
        status::AUTH_ERROR
    );
}

/// The same packets to memcached and ferrocache, both configured by the same memcached.conf.
#[test]
fn replies_match_memcached() {
    let (dir, db) = sasl_dir("sasldb-diff", "plain cram-md5");
    saslpasswd2(&db, "alice", "pw1", None, false);
    saslpasswd2(&db, "testuser", "testpass", Some("memcached.realm"), false);
    let env = [("SASL_CONF_PATH", dir.to_str().unwrap())];
    let Some(mc) = Server::memcached_with_env(&["-S"], &env) else {
        eprintln!("memcached not installed: skipping");
        return;
    };
    let fc = start(&dir);
    let pkts = [
        request(op::SASL_LIST_MECHS, 0, 0, &[], &[], &[]),
        auth_pkt("alice", "pw1"),
        auth_pkt("alice", "nope"),
        auth_pkt("testuser@memcached.realm", "testpass"),
        auth_pkt("testuser", "testpass"),
        auth_pkt("alice@x@y", "pw1"),
        request(op::SASL_AUTH, 7, 0, &[], b"plain", b"\0alice\0pw1"),
        request(op::SASL_AUTH, 7, 0, &[], b"DIGEST-MD5", &[]),
        request(op::SASL_AUTH, 7, 0, &[], b"CRAM-MD5", b"unasked"),
        request(op::SASL_STEP, 7, 0, &[], b"CRAM-MD5", b"alice 00"),
    ];
    for p in &pkts {
        let (mut m, mut f) = (mc.connect(), fc.connect());
        assert_eq!(
            show(&call(&mut f, p).unwrap().1),
            show(&call(&mut m, p).unwrap().1),
            "{}",
            show(p)
        );
    }
    for server in [&mc, &fc] {
        assert_eq!(cram_login(server, "alice", "pw1"), status::OK);
        assert_eq!(cram_login(server, "alice", "pw2"), status::AUTH_ERROR);
    }
}

/// memcached refuses `-S` with any `-B` but binary.
#[test]
fn dash_s_refuses_protocols_but_binary_as_memcached() {
    let (dir, _) = sasl_dir("sasldb-b", "plain");
    for b in [
        &["-B", "auto"][..],
        &["-B", "ascii"],
        &["-B", "binary", "-B", "ascii"],
    ] {
        let run = |bin: &str| {
            Command::new(bin)
                .args(["-S", "-p", "0", "-U", "0", "-u", "root"])
                .args(b)
                .env("SASL_CONF_PATH", &dir)
                .output()
                .unwrap()
        };
        let f = run(env!("CARGO_BIN_EXE_ferrocache"));
        assert_eq!(f.status.code(), Some(64), "{b:?}");
        assert!(
            show(&f.stderr)
                .contains("ERROR: You cannot allow the ASCII protocol while using SASL."),
            "{}",
            show(&f.stderr)
        );
        if Command::new("memcached").arg("-h").output().is_ok() {
            let m = run("memcached");
            assert_eq!(m.status.code(), f.status.code(), "{b:?}");
        }
    }
}

/// A real client: python-binary-memcached logs in with PLAIN and works.
#[test]
fn bmemcached_client_with_sasldb_users() {
    let (dir, db) = sasl_dir("sasldb-bmc", "plain cram-md5");
    saslpasswd2(&db, "appuser", "app pass", None, false);
    let fc = start(&dir);
    let script = format!(
        "import bmemcached\n\
         c = bmemcached.Client(('{addr}',), 'appuser', 'app pass')\n\
         assert c.set('k', 'v')\n\
         assert c.get('k') == 'v', c.get('k')\n\
         bad = bmemcached.Client(('{addr}',), 'appuser', 'wrong')\n\
         try:\n    bad.get('k')\n    raise SystemExit('wrong password accepted')\n\
         except bmemcached.exceptions.MemcachedException as e:\n    assert e.code == 32, e\n\
         print('ok')\n",
        addr = fc.addr
    );
    let out = Command::new("/usr/bin/python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out.stderr));
    assert_eq!(show(&out.stdout).trim(), "ok");
}
