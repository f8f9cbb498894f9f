//! Command-line behaviour of the real binary: help, version, usage errors, root rule, pid file,
//! config file.

mod common;
use common::*;
use std::process::Command;

fn run(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ferrocache"))
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn help_and_version_exit_zero() {
    let h = run(&["-h"]);
    assert!(h.status.success());
    let text = String::from_utf8_lossy(&h.stdout);
    assert!(text.contains("--memory-limit") && text.contains("--unix-socket"));
    let v = run(&["-V"]);
    assert!(v.status.success());
    assert!(String::from_utf8_lossy(&v.stdout).contains("1.6.18"));
}

#[test]
fn usage_errors_name_the_option() {
    let o = run(&["-u", "root", "-o", "no_such_option"]);
    assert_eq!(o.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no_such_option"));
    let b = run(&["-u", "root", "-B", "carrier-pigeon"]);
    assert_eq!(b.status.code(), Some(64));
    let i = run(&["-u", "root", "-I", "100"]);
    assert_eq!(i.status.code(), Some(64));
    let m = run(&["-u", "root", "-m", "lots"]);
    assert!(!m.status.success());
    assert!(String::from_utf8_lossy(&m.stderr).contains("memory-limit"));
}

#[test]
fn root_needs_user_flag() {
    if !nix_is_root() {
        return;
    }
    let o = run(&["-p", "-1", "-l", "127.0.0.1"]);
    assert_eq!(o.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&o.stderr).contains("can't run as root without the -u switch"));
}

fn nix_is_root() -> bool {
    String::from_utf8_lossy(&Command::new("id").arg("-u").output().unwrap().stdout).trim() == "0"
}

#[test]
fn pidfile_and_config_file() {
    let dir = std::env::temp_dir().join(format!("ferrocache-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pidfile = dir.join("fc.pid");
    let conf = dir.join("memcached.conf");
    std::fs::write(
        &conf,
        "# test config\n-m 32\nlogfile /dev/null\n-c 77\n-t 3\n",
    )
    .unwrap();
    let srv = Server::start(&[
        "-P",
        pidfile.to_str().unwrap(),
        "--config-file",
        conf.to_str().unwrap(),
    ]);
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    assert_eq!(pid.trim(), srv.pid().to_string());
    let settings = show(&one(&srv, b"stats settings\r\n"));
    assert!(
        settings.contains("STAT maxbytes 33554432\r\n"),
        "{settings}"
    );
    assert!(settings.contains("STAT maxconns 77\r\n"));
    assert!(settings.contains("STAT num_threads 3\r\n"));
    drop(srv);
    let _ = std::fs::remove_dir_all(&dir);
}

/// `-L` (memcached's large pages) is accepted, and the server stores and evicts as usual from
/// its huge-page region: 12 MB of values into `-m 4` keeps memory within the limit.
#[test]
fn large_pages_flag_serves_and_stays_within_memory() {
    let srv = Server::start(&["-L", "-m", "4"]);
    let mut c = srv.connect();
    let v = "x".repeat(1000);
    for i in 0..12_000 {
        let req = format!("set k{i} 0 0 {}\r\n{v}\r\n", v.len());
        assert_eq!(exchange(&mut c, req.as_bytes()), b"STORED\r\n", "set {i}");
    }
    let got = show(&exchange(&mut c, b"get k11999\r\n"));
    assert!(got.starts_with("VALUE k11999 0 1000\r\n"), "{got}");
    let stats = show(&exchange(&mut c, b"stats\r\n"));
    let evictions: u64 = stats
        .lines()
        .find_map(|l| l.strip_prefix("STAT evictions "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap();
    assert!(evictions > 5000, "{stats}");
    // Item memory is bounded by -m (plus a page per shard) whatever the page source.
    assert!(srv.rss_kib() < 64 * 1024, "rss {} KiB", srv.rss_kib());
}

/// `help` prints the usage (daemon options and subcommands) and exits 0 without starting a
/// daemon; `help SUBCOMMAND` and `SUBCOMMAND --help` print that subcommand's usage.
#[test]
fn help_subcommand_prints_usage() {
    let h = run(&["help"]);
    assert_eq!(h.status.code(), Some(0));
    let text = String::from_utf8_lossy(&h.stdout);
    assert!(text.contains("--memory-limit"), "{text}");
    for cmd in ["ring", "passwd", "cluster"] {
        assert!(text.contains(cmd), "{cmd} listed: {text}");
    }
    let ring = run(&["help", "ring"]);
    assert_eq!(ring.status.code(), Some(0));
    let ring_text = String::from_utf8_lossy(&ring.stdout);
    assert!(
        ring_text.starts_with("usage: ferrocache ring --nodes"),
        "{ring_text}"
    );
    let ring2 = run(&["ring", "--help"]);
    assert_eq!(ring2.status.code(), Some(0));
    assert_eq!(ring2.stdout, ring.stdout);
    let passwd = run(&["help", "passwd"]);
    assert_eq!(passwd.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&passwd.stdout).contains("USER"));
    let push = run(&["cluster", "push", "--help"]);
    assert_eq!(push.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&push.stdout).contains("--nodes"));
}

/// Words that are neither options nor subcommands are usage errors, not a daemon start; so is
/// mixing daemon options with a subcommand.
#[test]
fn stray_words_are_usage_errors() {
    let o = run(&["-u", "root", "no-such-command"]);
    assert_eq!(o.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no-such-command"));
    let mixed = run(&["-p", "0", "ring", "--nodes", "a"]);
    assert_eq!(mixed.status.code(), Some(64));
    let ring = run(&["ring", "--bogus"]);
    assert_eq!(ring.status.code(), Some(2));
}
