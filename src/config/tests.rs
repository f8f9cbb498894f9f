//! Unit tests of the command line and config file rules.

use super::*;

fn cfg(args: &[&str]) -> Result<Config, ConfigError> {
    let mut v = vec!["ferrocache"];
    v.extend_from_slice(args);
    Config::from_args(v)
}

#[test]
fn defaults_match_memcached() {
    let c = cfg(&[]).unwrap();
    assert_eq!(c.port, 11211);
    assert_eq!(c.memory_limit, 64 << 20);
    assert_eq!(c.maxconns, 1024);
    assert_eq!(c.item_size_max, 1 << 20);
    assert_eq!(c.protocol, Protocol::Auto);
    assert!(c.evictions);
}

#[test]
fn short_and_long_options() {
    let c = cfg(&[
        "-p",
        "1234",
        "-m",
        "128",
        "-c",
        "10",
        "-t",
        "3",
        "-I",
        "2m",
        "-M",
        "-vv",
        "-o",
        "slab_reassign,slab_automove=2,idle_timeout=5",
        "--listen=127.0.0.1,::1",
        "-l",
        "localhost:99",
    ])
    .unwrap();
    assert_eq!(c.port, 1234);
    assert_eq!(c.memory_limit, 128 << 20);
    assert_eq!(c.threads, 3);
    assert_eq!(c.item_size_max, 2 << 20);
    assert!(!c.evictions);
    assert_eq!(c.verbose, 2);
    assert_eq!(c.ext.slab_automove, 2);
    assert_eq!(c.ext.idle_timeout, 5);
    assert_eq!(c.listen.len(), 3);
    assert_eq!(
        c.listen[2],
        ListenAddr {
            host: "localhost".into(),
            port: Some(99),
            notls: false,
        }
    );
    assert_eq!(c.listen[1].host, "::1");
}

#[test]
fn errors_name_the_option() {
    let e = cfg(&["-o", "bogus"]).unwrap_err();
    assert_eq!(e.code, EX_USAGE);
    assert!(e.msg.contains("bogus"));
    assert_eq!(cfg(&["-B", "foo"]).unwrap_err().code, EX_USAGE);
    assert!(cfg(&["-I", "512"]).unwrap_err().msg.contains("1024"));
    assert!(cfg(&["-t", "0"]).is_err());
    assert!(cfg(&["-m", "notanumber"]).is_err());
    assert!(cfg(&["-S", "-U", "11211"]).unwrap_err().msg.contains("UDP"));
    assert!(cfg(&["-U", "70000"]).is_err());
    assert!(cfg(&["-S", "-B", "ascii"]).is_err());
    // As memcached: an explicit -B other than the one the auth mode needs is refused.
    for bad in [
        &["-S", "-B", "auto"][..],
        &["-S", "-B", "binary", "-B", "ascii"],
        &["-Y", "/x", "-B", "auto"],
    ] {
        assert_eq!(cfg(bad).unwrap_err().code, EX_USAGE, "{bad:?}");
    }
}

#[test]
fn config_file_format() {
    let args = config_file_args("# comment\n-d\nlogfile /var/log/memcached.log\n-m 64\n-p 11211 # port\n-u memcache\n\n-l 127.0.0.1\n");
    assert_eq!(
        args,
        vec![
            "-d",
            "-m",
            "64",
            "-p",
            "11211",
            "-u",
            "memcache",
            "-l",
            "127.0.0.1"
        ]
    );
}

#[test]
fn sizes() {
    assert_eq!(parse_size("1m"), Some(1 << 20));
    assert_eq!(parse_size("512k"), Some(512 << 10));
    assert_eq!(parse_size("2048"), Some(2048));
    assert_eq!(parse_size("x"), None);
}

#[test]
fn udp_port() {
    // Off by default; `-U` alone moves the TCP port too; `-p` wins; a UNIX socket disables it.
    let c = cfg(&[]).unwrap();
    assert_eq!((c.port, c.udp_port), (11211, 0));
    let c = cfg(&["-U", "11311"]).unwrap();
    assert_eq!((c.port, c.udp_port), (11311, 11311));
    let c = cfg(&["-p", "0", "-U", "11311"]).unwrap();
    assert_eq!((c.port, c.udp_port), (0, 11311));
    let c = cfg(&["-U", "-1", "-p", "-1"]).unwrap();
    assert_eq!((c.port, c.udp_port), (-1, -1));
    let c = cfg(&["-s", "/tmp/x.sock", "-U", "11311"]).unwrap();
    assert_eq!(c.udp_port, 0);
    let e = cfg(&["-S", "-U", "11311"]).unwrap_err();
    assert_eq!(
        e.msg,
        "ERROR: Cannot enable UDP while using binary SASL authentication."
    );
    assert_eq!(e.code, EX_USAGE);
    let c = cfg(&["-t", "3", "-U", "1"]).unwrap();
    assert_eq!(c.threads_per_udp(), 3);
    let c = cfg(&["-t", "3", "-U", "1", "-l", "127.0.0.1,127.0.0.2"]).unwrap();
    assert_eq!(c.threads_per_udp(), 1);
}

#[test]
fn tls_options() {
    let c = cfg(&[
        "-Z",
        "-o",
        "ssl_chain_cert=/c.pem,ssl_key=/k.pem,ssl_verify_mode=2,ssl_wbuf_size=64",
        "-o",
        "ssl_session_cache,ssl_min_version=3,ssl_ciphers=HIGH:!aNULL",
        "-l",
        "notls:127.0.0.1:5000,127.0.0.1:5001",
    ])
    .unwrap();
    let s = &c.ext.ssl;
    assert!(s.enabled && s.session_cache && !s.kernel_tls);
    assert_eq!(
        s.chain_cert.as_deref(),
        Some(std::path::Path::new("/c.pem"))
    );
    assert_eq!(
        (s.verify_mode, s.verify_flags(), s.wbuf_size),
        (2, 3, 65536)
    );
    assert_eq!(s.min_version_name(), "tlsv1.3");
    assert_eq!(s.ciphers.as_deref(), Some("HIGH:!aNULL"));
    assert!(c.listen[0].notls && !c.listen[1].notls);
    assert_eq!(c.listen[0].port, Some(5000));
    let e = cfg(&["-l", "notls:127.0.0.1:5000"]).unwrap_err();
    assert_eq!(e.msg, "'notls' option is valid only when SSL is enabled");
    let e = cfg(&["-o", "ssl_verify_mode=4"]).unwrap_err();
    assert_eq!(
        e.msg,
        "Invalid ssl_verify_mode. Use help to see valid options."
    );
    let e = cfg(&["-o", "ssl_key"]).unwrap_err();
    assert_eq!(e.msg, "Missing ssl_key argument");
}
