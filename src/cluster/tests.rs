//! Unit tests of the cluster module: node lists, payloads, versions, the state file.

use std::io;
use std::path::{Path, PathBuf};

use super::nodes::normalize_nodes;
use super::*;

fn node(h: &str, ip: &str, p: u16) -> ClusterNode {
    ClusterNode::new(h, ip, p)
}

fn reply(c: &ClusterConfig) -> Vec<u8> {
    let mut v = Vec::new();
    c.write_config_reply(&mut v);
    v
}

// ---- byte layouts (reference §1.2-§1.4) --------------------------------------------------------------

#[test]
fn loopback_reply_bytes() {
    let c = ClusterConfig::new(7, vec![node("localhost", "127.0.0.1", 22311)]);
    let c = c.expect("valid");
    assert_eq!(
        reply(&c),
        b"CONFIG cluster 0 28\r\n7\nlocalhost|127.0.0.1|22311\n\r\nEND\r\n".to_vec()
    );
    assert_eq!(c.payload().len(), 28);
}

#[test]
fn aws_example_length_and_order() {
    let a = "myCluster.pc4ldq.0001.use1.cache.amazonaws.com";
    let b = "myCluster.pc4ldq.0002.use1.cache.amazonaws.com";
    // Given out of order: emitted sorted.
    let c = ClusterConfig::new(
        12,
        vec![
            node(b, "10.80.249.27", 11211),
            node(a, "10.82.235.120", 11211),
        ],
    )
    .expect("valid");
    let want_payload = format!("12\n{a}|10.82.235.120|11211 {b}|10.80.249.27|11211\n");
    assert_eq!(c.payload(), want_payload.as_bytes());
    assert_eq!(c.payload().len(), 136);
    let want = format!("CONFIG cluster 0 136\r\n{want_payload}\r\nEND\r\n");
    assert_eq!(reply(&c), want.as_bytes());
}

#[test]
fn legacy_and_binary_forms() {
    let c = ClusterConfig::new(1, vec![node("localhost", "127.0.0.1", 11211)]).expect("valid");
    let mut v = Vec::new();
    c.write_legacy_reply(&mut v);
    assert_eq!(
        v,
        b"VALUE AmazonElastiCache:cluster 0 28\r\n1\nlocalhost|127.0.0.1|11211\n\r\nEND\r\n"
    );
    v.clear();
    c.write_legacy_value(&mut v, Some(1));
    assert_eq!(
        v,
        b"VALUE AmazonElastiCache:cluster 0 28 1\r\n1\nlocalhost|127.0.0.1|11211\n\r\n"
    );
    v.clear();
    c.write_binary_body(&mut v);
    assert_eq!(v.len(), 32);
    assert_eq!(c.binary_body_len(), 0x20);
    assert_eq!(&v[..4], &[0, 0, 0, 0]);
    assert_eq!(&v[4..8], b"1\nlo");
    assert_eq!(v.last(), Some(&b'\n'));
}

#[test]
fn empty_ip_keeps_pipes() {
    let c = ClusterConfig::new(
        3,
        vec![node("b.internal", "", 1), node("a.internal", "", 2)],
    )
    .expect("valid");
    assert_eq!(c.payload(), b"3\na.internal||2 b.internal||1\n");
}

#[test]
fn sorted_by_host_then_port() {
    let c = ClusterConfig::new(
        9,
        vec![
            node("b", "10.0.0.2", 11212),
            node("b", "10.0.0.2", 11211),
            node("a", "10.0.0.9", 2),
        ],
    )
    .expect("valid");
    assert_eq!(
        c.payload(),
        b"9\na|10.0.0.9|2 b|10.0.0.2|11211 b|10.0.0.2|11212\n"
    );
}

// ---- validation ------------------------------------------------------------------------------------

#[test]
fn config_new_rejects() {
    let n = || vec![node("a", "", 1)];
    assert!(matches!(
        ClusterConfig::new(0, n()),
        Err(ClusterError::BadVersion(_))
    ));
    assert!(matches!(
        ClusterConfig::new(MAX_VERSION + 1, n()),
        Err(ClusterError::BadVersion(_))
    ));
    assert!(ClusterConfig::new(MAX_VERSION, n()).is_ok());
    assert_eq!(ClusterConfig::new(1, vec![]), Err(ClusterError::NoNodes));
    assert!(matches!(
        ClusterConfig::new(1, vec![node("a", "", 1), node("a", "10.0.0.1", 1)]),
        Err(ClusterError::DuplicateNode(_))
    ));
    for bad in [
        node("", "", 1),
        node("a b", "", 1),
        node("a|b", "", 1),
        node("a\r\n", "", 1),
        node("a", "nope", 1),
        node("a", "", 0),
    ] {
        assert!(
            matches!(
                ClusterConfig::new(1, vec![bad.clone()]),
                Err(ClusterError::BadNode { .. })
            ),
            "{bad:?}"
        );
    }
    let mut w = node("a", "", 1);
    w.weight = 0;
    assert!(ClusterConfig::new(1, vec![w]).is_err());
}

#[test]
fn versions() {
    assert_eq!(parse_version("1"), Ok(1));
    assert_eq!(parse_version("007"), Ok(7));
    assert_eq!(parse_version("9007199254740991"), Ok(MAX_VERSION));
    for bad in [
        "",
        "0",
        "-1",
        "+1",
        " 1",
        "1.0",
        "9007199254740992",
        "99999999999999999999999",
        "x",
    ] {
        assert!(
            matches!(parse_version(bad), Err(ClusterError::BadVersion(_))),
            "{bad}"
        );
    }
    assert_eq!(next_version(None, 0), Ok(1));
    assert_eq!(next_version(Some(5), 3), Ok(6));
    assert_eq!(next_version(Some(5), 1_700_000_000), Ok(1_700_000_000));
    assert_eq!(next_version(None, 1_700_000_000), Ok(1_700_000_000));
    assert!(next_version(Some(MAX_VERSION), 0).is_err());
    assert!(next_version(Some(u64::MAX), 0).is_err());
}

#[test]
fn error_wire_text() {
    let e = ClusterError::VersionNotNewer {
        current: 5,
        proposed: 5,
    };
    assert_eq!(e.to_string(), "CLIENT_ERROR cluster version not newer");
    let mut v = Vec::new();
    e.write_wire(&mut v);
    assert_eq!(v, b"CLIENT_ERROR cluster version not newer\r\n");
    assert_eq!(e.binary_status(), 0x05);
    assert_eq!(ClusterError::NoNodes.binary_status(), 0x04);
    let all = [
        ClusterError::BadFormat("x".into()),
        ClusterError::BadVersion("x\r\n".into()),
        e,
        bad_node("a\r\nb", "bad host"),
        ClusterError::DuplicateNode("a||1".into()),
        ClusterError::NoNodes,
        ClusterError::TooLarge(5),
    ];
    for e in all {
        let s = e.to_string();
        assert!(s.starts_with("CLIENT_ERROR "), "{s}");
        assert!(!s.contains(['\r', '\n']), "{s}");
        assert!(!e.detail().contains(['\r', '\n']), "{}", e.detail());
    }
}

// ---- pushed payloads ---------------------------------------------------------------------------------

#[test]
fn parse_payload_forms() {
    let want = ClusterConfig::new(
        2,
        vec![
            node("localhost.localdomain", "10.0.0.1", 22211),
            node("localhost.localdomain", "10.0.0.1", 22212),
        ],
    )
    .expect("valid");
    for p in [
        &b"2\nlocalhost.localdomain|10.0.0.1|22211 localhost.localdomain|10.0.0.1|22212"[..],
        b"2\nlocalhost.localdomain|10.0.0.1|22211 localhost.localdomain|10.0.0.1|22212\n",
        b"2\r\nlocalhost.localdomain|10.0.0.1|22212  localhost.localdomain|10.0.0.1|22211 \r\n",
        b" 2 \nlocalhost.localdomain|10.0.0.1|22212\tlocalhost.localdomain|10.0.0.1|22211",
    ] {
        assert_eq!(
            ClusterConfig::parse_payload(p).as_ref(),
            Ok(&want),
            "{}",
            String::from_utf8_lossy(p)
        );
    }
}

#[test]
fn parse_payload_rejects() {
    let cases: [(&[u8], &str); 14] = [
        (b"", "format"),
        (b"\n", "format"),
        (b"1", "format"),
        (b"1\n", "format"),
        (b"1\n\n", "nodes"),
        (b"0\na||1", "version"),
        (b"x\na||1", "version"),
        (b"1\na||1\nb||2", "format"),
        (b"1\na||1\n\n", "format"),
        (b"1\na|1", "node"),
        (b"1\na||1|2", "node"),
        (b"1\na||0", "node"),
        (b"1\na|x|1", "node"),
        (b"1\n\xff||1", "format"),
    ];
    for (p, kind) in cases {
        let r = ClusterConfig::parse_payload(p);
        let ok = matches!(
            (kind, &r),
            ("format", Err(ClusterError::BadFormat(_)))
                | ("version", Err(ClusterError::BadVersion(_)))
                | ("nodes", Err(ClusterError::NoNodes))
                | ("node", Err(ClusterError::BadNode { .. }))
        );
        assert!(ok, "{:?} -> {r:?}", String::from_utf8_lossy(p));
    }
    let big = vec![b'1'; MAX_PAYLOAD_LEN + 1];
    assert!(matches!(
        ClusterConfig::parse_payload(&big),
        Err(ClusterError::TooLarge(_))
    ));
    assert!(matches!(
        ClusterConfig::parse_payload(b"1\na||1 a|10.0.0.1|1"),
        Err(ClusterError::DuplicateNode(_))
    ));
}

#[test]
fn push_must_be_newer() {
    let cur = ClusterConfig::parse_payload(b"5\na||1\n").expect("valid");
    assert_eq!(
        ClusterConfig::apply_push(Some(&cur), b"5\nb||1\n", None),
        Err(ClusterError::VersionNotNewer {
            current: 5,
            proposed: 5
        })
    );
    assert!(matches!(
        ClusterConfig::apply_push(Some(&cur), b"4\nb||1\n", None),
        Err(ClusterError::VersionNotNewer { .. })
    ));
    let new = ClusterConfig::apply_push(Some(&cur), b"6\nb||1", None).expect("newer");
    assert_eq!(new.payload(), b"6\nb||1\n");
    assert!(ClusterConfig::apply_push(None, b"1\nb||1", None).is_ok());
    // A malformed payload is reported as such even if its version would be stale.
    assert!(matches!(
        ClusterConfig::apply_push(Some(&cur), b"1\nb|1", None),
        Err(ClusterError::BadNode { .. })
    ));
}

#[test]
fn conditional_push_needs_the_current_version() {
    let cur = ClusterConfig::parse_payload(b"5\na||1\n").expect("valid");
    let new = ClusterConfig::apply_push(Some(&cur), b"6\nb||1", Some(5)).expect("replaces 5");
    assert_eq!(new.version(), 6);
    let stale = ClusterConfig::apply_push(Some(&cur), b"6\nb||1", Some(4));
    assert_eq!(
        stale,
        Err(ClusterError::VersionMismatch {
            current: Some(5),
            expected: 4
        })
    );
    let e = stale.unwrap_err();
    assert_eq!(
        e.to_string(),
        "CLIENT_ERROR cluster version mismatch: expected 4, current 5"
    );
    assert_eq!(e.binary_status(), 0x0002);
    // Nothing served: a conditional push has nothing to replace.
    assert_eq!(
        ClusterConfig::apply_push(None, b"1\nb||1", Some(1))
            .unwrap_err()
            .to_string(),
        "CLIENT_ERROR cluster version mismatch: expected 1, current none"
    );
    // The current version named, but the new one not newer: still refused as stale.
    assert!(matches!(
        ClusterConfig::apply_push(Some(&cur), b"5\nb||1", Some(5)),
        Err(ClusterError::VersionNotNewer { .. })
    ));
}

// ---- node lists (flags / files) ----------------------------------------------------------------------

#[test]
fn node_list_syntax() {
    let text = "\
# cluster file
version = 42   # bumped by config management
cache-b.internal|10.0.0.2|11211|3
cache-a.internal|10.0.0.1|11211
10.0.0.3:11211, 10.0.0.4:11212:2 [::1]:11213
plainhost\tother.host:5
";
    let l = NodeList::parse(text).expect("valid");
    assert_eq!(l.version, Some(42));
    let got: Vec<String> = l
        .nodes
        .iter()
        .map(|n| format!("{n}/{}", n.weight))
        .collect();
    assert_eq!(
        got,
        [
            "10.0.0.3|10.0.0.3|11211/1",
            "10.0.0.4|10.0.0.4|11212/2",
            "::1|::1|11213/1",
            "cache-a.internal|10.0.0.1|11211/1",
            "cache-b.internal|10.0.0.2|11211/3",
            "other.host||5/1",
            "plainhost||11211/1",
        ]
    );
    assert_eq!(
        NodeList::parse("version=7\na").map(|l| l.version),
        Ok(Some(7))
    );
    assert_eq!(NodeList::parse("version 7").map(|l| l.nodes.len()), Ok(0));
    assert_eq!(NodeList::parse("").map(|l| l.nodes.len()), Ok(0));
    // A host that merely starts with "version".
    assert_eq!(
        NodeList::parse("versions.internal:1").map(|l| l.nodes[0].host.clone()),
        Ok("versions.internal".to_string())
    );
    assert!(NodeList::parse("version").is_err());
    assert!(NodeList::parse("version 0").is_err());
    assert!(NodeList::parse("version 1\nversion 2").is_err());
    assert!(NodeList::parse("a:1 a|10.0.0.1|1").is_err());
    assert!(NodeList::parse("a|b").is_err());
    assert!(NodeList::parse("a||1|2|3").is_err());
    assert!(NodeList::parse("a||1|0").is_err());
    assert!(NodeList::parse("::1").is_err());
}

#[test]
fn node_list_args() {
    let l = NodeList::parse_args(&["b:1,a:1", "c|10.0.0.3|1", "version 3"]).expect("valid");
    assert_eq!(l.version, Some(3));
    assert_eq!(l.nodes.len(), 3);
    assert_eq!(l.nodes[0].host, "a");
    assert!(NodeList::parse_args(&["a:1", "a:1"]).is_err());
    assert!(NodeList::parse_args(&["version 1", "version 2"]).is_err());
}

#[test]
fn static_reconcile() {
    let l1 = NodeList::parse("a:1 b:1").expect("valid");
    let c1 = ClusterConfig::from_node_list(&l1, None, 1_700_000_000).expect("ok");
    assert_eq!(c1.version(), 1_700_000_000);
    // Reload with the same members: unchanged, whatever the clock says.
    let again = ClusterConfig::from_node_list(&l1, Some(&c1), 1_800_000_000).expect("ok");
    assert_eq!(again, c1);
    // New members, clock behind: previous + 1.
    let l2 = NodeList::parse("a:1 b:1 c:1").expect("valid");
    let c2 = ClusterConfig::from_node_list(&l2, Some(&c1), 5).expect("ok");
    assert_eq!(c2.version(), 1_700_000_001);
    // Explicit versions.
    let l3 = NodeList::parse("version 10\na:1").expect("valid");
    let c3 = ClusterConfig::from_node_list(&l3, None, 99).expect("ok");
    assert_eq!(c3.version(), 10);
    assert_eq!(
        ClusterConfig::from_node_list(&l3, Some(&c3), 99),
        Ok(c3.clone())
    );
    let l4 = NodeList::parse("version 10\nb:1").expect("valid");
    assert!(matches!(
        ClusterConfig::from_node_list(&l4, Some(&c3), 99),
        Err(ClusterError::VersionNotNewer { .. })
    ));
    let l5 = NodeList::parse("version 9\na:1").expect("valid");
    assert!(ClusterConfig::from_node_list(&l5, Some(&c3), 99).is_err());
    let l6 = NodeList::parse("version 11\na:1").expect("valid");
    assert_eq!(
        ClusterConfig::from_node_list(&l6, Some(&c3), 99).map(|c| c.version()),
        Ok(11)
    );
    // Weights are not in the state file: reloading a weighted file after a restart keeps the version.
    let lw = NodeList::parse("a:1:5 b:1").expect("valid");
    let cw = ClusterConfig::from_node_list(&lw, None, 1_000).expect("ok");
    let restored = ClusterConfig::parse_state(cw.state_file_contents()).expect("valid");
    assert_eq!(restored.nodes()[0].weight, 1);
    let reloaded = ClusterConfig::from_node_list(&lw, Some(&restored), 2_000).expect("ok");
    assert_eq!(reloaded, cw);
    assert_eq!(
        ClusterConfig::from_node_list(&NodeList::default(), None, 1),
        Err(ClusterError::NoNodes)
    );
}

#[test]
fn ring_from_config() {
    let c = ClusterConfig::parse_payload(
        b"1\nc.local|127.0.0.1|11213 a.local|127.0.0.1|11211 b.local|127.0.0.1|11212",
    )
    .expect("valid");
    let r = c.ring(true);
    assert_eq!(r.points().len(), 480);
    assert_eq!(r.nodes()[0], ring::Node::new("127.0.0.1", 11211));
    assert_eq!(r.locate_node(b"foo").map(|n| n.port), Some(11211));
    assert_eq!(r.locate_node(b"key2").map(|n| n.port), Some(11213));
    let by_host = c.ring(false);
    assert_eq!(by_host.nodes()[1].host, "b.local");
}

// ---- state file ----------------------------------------------------------------------------------------

#[test]
fn state_file_roundtrip() {
    let dir = std::env::temp_dir().join(format!("ferrocache-cluster-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let path = dir.join(STATE_FILE_NAME);
    assert!(matches!(load_state(&path), Ok(None)));
    let c = ClusterConfig::parse_payload(b"77\na|10.0.0.1|1 b||2\n").expect("valid");
    store_state(&path, &c).expect("store");
    assert!(!state_tmp_path(&path).exists());
    assert_eq!(load_state(&path).ok().flatten(), Some(c.clone()));
    let c2 = ClusterConfig::apply_push(Some(&c), b"78\nb||2", None).expect("newer");
    store_state(&path, &c2).expect("store");
    assert_eq!(load_state(&path).ok().flatten(), Some(c2));
    std::fs::write(&path, b"garbage").expect("write");
    let err = load_state(&path).expect_err("invalid");
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        state_tmp_path(Path::new("/x/cluster.state")),
        PathBuf::from("/x/cluster.state.tmp")
    );
}

// ---- property-ish round trips (bounded, deterministic) ----------------------------------------------------

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn random_node(r: &mut Lcg) -> ClusterNode {
    const HOST_CHARS: &[u8] = b"abcxyz0189.-_";
    let host = match r.below(4) {
        0 => format!("10.{}.{}.{}", r.below(256), r.below(256), r.below(256)),
        1 => format!("fd00::{:x}", r.below(65536)),
        _ => {
            let len = 1 + r.below(20) as usize;
            (0..len)
                .map(|_| char::from(HOST_CHARS[r.below(HOST_CHARS.len() as u64) as usize]))
                .collect()
        }
    };
    let ip = match r.below(3) {
        0 => String::new(),
        1 => format!("192.168.{}.{}", r.below(256), r.below(256)),
        _ => format!("2001:db8::{:x}", r.below(65536)),
    };
    let port = 1 + r.below(65535) as u16;
    ClusterNode::new(host, ip, port)
}

#[test]
fn payload_roundtrip_property() {
    let mut r = Lcg(0x5eed);
    for _ in 0..2_000 {
        let n = 1 + r.below(12) as usize;
        let nodes: Vec<ClusterNode> = (0..n).map(|_| random_node(&mut r)).collect();
        let version = 1 + ((r.next() << 22) ^ r.next()) % MAX_VERSION;
        let Ok(c) = ClusterConfig::new(version, nodes) else {
            continue; // duplicate host+port drawn: fine
        };
        assert_eq!(ClusterConfig::parse_payload(c.payload()).as_ref(), Ok(&c));
        assert_eq!(
            ClusterConfig::parse_state(c.state_file_contents()).as_ref(),
            Ok(&c)
        );
        // Building from the parsed nodes in any order yields identical bytes.
        let mut shuffled = c.nodes().to_vec();
        shuffled.reverse();
        let c2 = ClusterConfig::new(version, shuffled).expect("same nodes");
        assert_eq!(c2.payload(), c.payload());
        // Reply length prefix matches.
        let rep = reply(&c);
        let head = format!("CONFIG cluster 0 {}\r\n", c.payload().len());
        assert!(rep.starts_with(head.as_bytes()));
        assert!(rep.ends_with(b"\n\r\nEND\r\n"));
        assert_eq!(rep.len(), head.len() + c.payload().len() + 7);
    }
}

#[test]
fn node_list_roundtrip_property() {
    let mut r = Lcg(42);
    for _ in 0..2_000 {
        let n = r.below(10) as usize;
        let nodes: Vec<ClusterNode> = (0..n)
            .map(|_| {
                let mut node = random_node(&mut r);
                node.weight = if r.below(2) == 0 {
                    1
                } else {
                    1 + r.below(1000) as u32
                };
                node
            })
            .collect();
        let Ok(nodes) = normalize_nodes(nodes) else {
            continue;
        };
        let list = NodeList {
            version: if r.below(2) == 0 {
                None
            } else {
                Some(1 + ((r.next() << 22) ^ r.next()) % MAX_VERSION)
            },
            nodes,
        };
        assert_eq!(NodeList::parse(&list.to_text()).as_ref(), Ok(&list));
    }
}

#[test]
fn parsers_never_panic() {
    let alphabet: &[u8] = b"1 0|a:\n\r\t#,[]9.v=-\xff";
    let mut r = Lcg(7);
    let mut buf = Vec::new();
    for _ in 0..30_000 {
        buf.clear();
        let len = r.below(24) as usize;
        for _ in 0..len {
            buf.push(alphabet[r.below(alphabet.len() as u64) as usize]);
        }
        if let Ok(c) = ClusterConfig::parse_payload(&buf) {
            assert_eq!(ClusterConfig::parse_payload(c.payload()), Ok(c.clone()));
        }
        if let Ok(s) = std::str::from_utf8(&buf) {
            if let Ok(l) = NodeList::parse(s) {
                assert_eq!(NodeList::parse(&l.to_text()), Ok(l));
            }
        }
    }
}

// ---- the supervisor's decisions --------------------------------------------------------------------

mod supervise {
    use super::super::supervise::*;
    use super::super::{ClusterConfig, ClusterNode};
    use std::time::{Duration, Instant};

    const S: Duration = Duration::from_secs(1);

    fn node(i: u16) -> ClusterNode {
        ClusterNode::new("localhost", "127.0.0.1", 100 + i)
    }

    /// Members 0..m and standbys m..m+s; policy: grace 3 s, 3 probes, one replacement per 10 s.
    fn sup(m: u16, s: u16, min: usize) -> Supervisor {
        let known = (0..m + s)
            .map(|i| Known {
                entry: node(i),
                admin: format!("a:{i}"),
                standby: i >= m,
            })
            .collect();
        let policy = Policy {
            grace: 3 * S,
            grace_probes: 3,
            replace_interval: 10 * S,
            min_members: min,
        };
        Supervisor::new(policy, known)
    }

    fn config(v: u64, members: &[u16]) -> ClusterConfig {
        ClusterConfig::new(v, members.iter().map(|&i| node(i)).collect()).unwrap()
    }

    /// Probes: `down` nodes fail, the others serve `served` (standbys serve nothing).
    fn probes(n: u16, members: u16, served: &ClusterConfig, down: &[u16]) -> Vec<Probe> {
        (0..n)
            .map(|i| match i {
                _ if down.contains(&i) => Probe::Down,
                _ if i < members => Probe::Up(Some(served.clone())),
                _ => Probe::Up(None),
            })
            .collect()
    }

    fn pushed(a: Option<Action>) -> (ClusterConfig, Vec<(String, Option<u64>)>, String) {
        match a {
            Some(Action::Push { config, to, reason }) => (config, to, reason),
            other => panic!("expected a push, got {other:?}"),
        }
    }

    /// Runs rounds one second apart from `t`, returning the actions.
    fn rounds(
        s: &mut Supervisor,
        t: &mut Instant,
        n: usize,
        p: impl Fn() -> Vec<Probe>,
    ) -> Vec<Option<Action>> {
        (0..n)
            .map(|_| {
                *t += S;
                s.round(*t, p())
            })
            .collect()
    }

    #[test]
    fn a_dead_member_is_replaced_after_the_grace_period_and_probes() {
        let mut s = sup(3, 1, 3);
        let v1 = config(1, &[0, 1, 2]);
        let mut t = Instant::now();
        // The standby answers twice before the failure: not yet healthy (3 needed), but will be.
        let a = rounds(&mut s, &mut t, 2, || probes(4, 3, &v1, &[]));
        assert!(
            a.iter().all(|a| matches!(a, Some(Action::Push { .. }))),
            "{a:?}"
        );
        // Aligning the standby (no config) to version 1.
        let (c, to, why) = pushed(a[0].clone());
        assert_eq!((c.version(), to), (1, vec![("a:3".to_string(), None)]));
        assert!(why.starts_with("align a:3 to version 1"), "{why}");
        // Member 1 dies: rounds at +1 s, +2 s see it down, not for 3 s yet.
        let served = |v: &ClusterConfig| {
            let v = v.clone();
            move || {
                let mut p = probes(4, 3, &v, &[1]);
                p[3] = Probe::Up(Some(v.clone()));
                p
            }
        };
        let a = rounds(&mut s, &mut t, 3, served(&v1));
        assert_eq!(a, vec![None, None, None], "within the grace period");
        let (c, to, why) = pushed(rounds(&mut s, &mut t, 1, served(&v1)).remove(0));
        assert_eq!(c, config(2, &[0, 2, 3]));
        assert_eq!(
            to,
            vec![
                ("a:0".to_string(), Some(1)),
                ("a:2".to_string(), Some(1)),
                ("a:3".to_string(), Some(1)),
            ],
            "members of the new list first, each conditional on the version it serves"
        );
        assert_eq!(
            why,
            "replace localhost|127.0.0.1|101 by standby localhost|127.0.0.1|103 in version 2: \
             unreachable for 3.0s (4 failed probes)"
        );
        assert!(s.retired(1));
        // Once served, nothing more to do.
        let v2 = c;
        let a = rounds(&mut s, &mut t, 3, || {
            let mut p = probes(4, 4, &v2, &[1]);
            p[1] = Probe::Down;
            p
        });
        assert_eq!(a, vec![None, None, None]);
        // The replaced node comes back with its old list: it is aligned, never swapped back.
        let a = rounds(&mut s, &mut t, 20, || {
            let mut p = probes(4, 4, &v2, &[]);
            p[1] = Probe::Up(Some(v1.clone()));
            p
        });
        let (c, to, why) = pushed(a[0].clone());
        assert_eq!((c, to), (v2.clone(), vec![("a:1".to_string(), Some(1))]));
        assert!(why.starts_with("align a:1"), "{why}");
    }

    #[test]
    fn the_time_and_the_count_both_matter() {
        // Many probes in under the grace period: not dead.
        let mut s = sup(3, 1, 3);
        let v1 = config(1, &[0, 1, 2]);
        let mut t = Instant::now();
        let p = || {
            let mut p = probes(4, 3, &v1, &[2]);
            p[3] = Probe::Up(Some(v1.clone()));
            p
        };
        for _ in 0..20 {
            t += S / 10;
            assert_eq!(s.round(t, p()), None);
        }
        // Past the grace period, but one probe short: a slow prober needs its probes too.
        let mut s = sup(3, 1, 3);
        let mut t = Instant::now();
        for _ in 0..3 {
            s.round(t, probes(4, 3, &v1, &[]));
        }
        s.round(t, p());
        t += 10 * S;
        assert_eq!(s.round(t, p()), None);
        t += S;
        assert!(matches!(s.round(t, p()), Some(Action::Push { .. })));
    }

    #[test]
    fn a_flapping_member_is_not_replaced() {
        let mut s = sup(3, 1, 3);
        let v1 = config(1, &[0, 1, 2]);
        let mut t = Instant::now();
        for round in 0..200 {
            t += S;
            // Down for two rounds out of three: never for a whole grace period.
            let down: &[u16] = if round % 3 == 0 { &[] } else { &[0] };
            let mut p = probes(4, 3, &v1, down);
            p[3] = Probe::Up(Some(v1.clone()));
            assert_eq!(s.round(t, p), None, "round {round}");
            // Each flap is noted for the log.
            let notes = s.take_notes();
            match round % 3 {
                0 if round > 0 => assert_eq!(
                    notes,
                    ["localhost|127.0.0.1|100 answers again, after 2 failed probe(s)"]
                ),
                1 => assert_eq!(
                    notes,
                    ["localhost|127.0.0.1|100 does not answer at a:0; replaced if it stays so for 3s and 3 probes"]
                ),
                _ => assert!(notes.is_empty(), "{notes:?}"),
            }
        }
    }

    #[test]
    fn no_majority_no_action() {
        let mut s = sup(3, 1, 3);
        let v1 = config(1, &[0, 1, 2]);
        let mut t = Instant::now();
        let p = || {
            let mut p = probes(4, 3, &v1, &[1, 2]);
            p[3] = Probe::Up(Some(v1.clone()));
            p
        };
        let a = rounds(&mut s, &mut t, 30, p);
        assert_eq!(
            a[0],
            Some(Action::Hold(
                "reaches 1 of 3 members of version 1: no majority, doing nothing".into()
            ))
        );
        assert!(a[1..].iter().all(Option::is_none), "logged once: {a:?}");
        // Two of four is not a majority either.
        let mut s = sup(4, 1, 4);
        let v1 = config(1, &[0, 1, 2, 3]);
        let a = rounds(&mut s, &mut t, 30, || probes(5, 4, &v1, &[0, 1]));
        assert!(matches!(&a[0], Some(Action::Hold(w)) if w.contains("no majority")));
        assert!(a[1..].iter().all(Option::is_none));
    }

    #[test]
    fn one_replacement_per_interval_and_never_below_the_minimum() {
        // Five members, two standbys, two members die together.
        let mut s = sup(5, 2, 5);
        let v1 = config(1, &[0, 1, 2, 3, 4]);
        let mut t = Instant::now();
        let healthy = |v: &ClusterConfig| {
            let v = v.clone();
            move || {
                let mut p = probes(7, 5, &v, &[]);
                p[5] = Probe::Up(Some(v.clone()));
                p[6] = Probe::Up(Some(v.clone()));
                p
            }
        };
        rounds(&mut s, &mut t, 3, healthy(&v1));
        let down = |v: &ClusterConfig| {
            let v = v.clone();
            move || {
                let mut p = healthy(&v)();
                p[1] = Probe::Down;
                p[3] = Probe::Down;
                p
            }
        };
        let a = rounds(&mut s, &mut t, 4, down(&v1));
        let (v2, _, why) = pushed(a[3].clone());
        assert_eq!(v2, config(2, &[0, 2, 3, 4, 5]), "{why}");
        // The second dead member waits for the replacement interval.
        let a = rounds(&mut s, &mut t, 9, down(&v2));
        assert!(
            matches!(&a[0], Some(Action::Hold(w)) if w.contains("last replacement")),
            "{a:?}"
        );
        assert!(a[1..].iter().all(Option::is_none), "{a:?}");
        let (v3, _, _) = pushed(rounds(&mut s, &mut t, 1, down(&v2)).remove(0));
        assert_eq!(v3, config(3, &[0, 2, 4, 5, 6]));
        // A third death with no standby left: at the minimum, the list stays.
        let a = rounds(&mut s, &mut t, 20, || {
            let mut p = probes(7, 7, &v3, &[0, 1, 3]);
            p[0] = Probe::Down;
            p
        });
        // Logged once per reason: first the interval, then the minimum.
        let holds: Vec<&Action> = a.iter().flatten().collect();
        assert_eq!(holds.len(), 2, "{holds:?}");
        assert!(
            matches!(holds[1], Action::Hold(w) if w.contains("no standby is healthy and 5 members is the minimum")),
            "{holds:?}"
        );
        // With a lower minimum it is removed.
        let mut s = sup(3, 0, 2);
        let v1 = config(1, &[0, 1, 2]);
        let a = rounds(&mut s, &mut t, 5, || probes(3, 3, &v1, &[2]));
        let (c, _, why) = pushed(a[3].clone());
        assert_eq!(c, config(2, &[0, 1]));
        assert!(why.starts_with("remove localhost|127.0.0.1|102 in version 2 (no healthy standby)"));
    }

    #[test]
    fn an_unhealthy_standby_is_not_used() {
        let mut s = sup(3, 1, 3);
        let v1 = config(1, &[0, 1, 2]);
        let mut t = Instant::now();
        // The standby answers only every other round: never 3 in a row.
        for round in 0..30 {
            t += S;
            let down: &[u16] = if round % 2 == 0 { &[1, 3] } else { &[1] };
            let a = s.round(t, probes(4, 3, &v1, down));
            // Only the standby is aligned (it serves nothing); no replacement.
            assert!(
                !matches!(&a, Some(Action::Push { config, .. }) if config.version() > 1),
                "round {round}: {a:?}"
            );
        }
    }

    #[test]
    fn different_lists_under_one_version_stop_everything() {
        let mut s = sup(3, 1, 3);
        let a = config(2, &[0, 1, 3]);
        let b = config(2, &[0, 2, 3]);
        let mut t = Instant::now();
        let r = rounds(&mut s, &mut t, 10, || {
            vec![
                Probe::Up(Some(a.clone())),
                Probe::Up(Some(a.clone())),
                Probe::Up(Some(b.clone())),
                Probe::Down,
            ]
        });
        assert!(
            matches!(&r[0], Some(Action::Hold(w)) if w.contains("different lists under version 2"))
        );
        assert!(r[1..].iter().all(Option::is_none));
    }

    #[test]
    fn two_supervisors_seeing_the_same_decide_the_same() {
        let v1 = config(1, &[0, 1, 2]);
        let run = || {
            let mut s = sup(3, 2, 3);
            let mut t = Instant::now();
            let a = rounds(&mut s, &mut t, 8, || {
                let mut p = probes(5, 3, &v1, &[2]);
                p[3] = Probe::Up(Some(v1.clone()));
                p[4] = Probe::Up(Some(v1.clone()));
                p
            });
            a.into_iter().flatten().collect::<Vec<_>>()
        };
        let (x, y) = (run(), run());
        let pushes = x
            .iter()
            .filter(|a| matches!(a, Action::Push { .. }))
            .count();
        assert_eq!(pushes, 1, "{x:?}");
        assert_eq!(
            x, y,
            "same list, same version, same order: the first node decides the race"
        );
    }
}
