//! Unit tests of the ketama ring: libmemcached's test vectors, weights, lookups.

use super::*;

fn md5_le32(s: &[u8]) -> u32 {
    key_hash(s)
}

// ---- float32 point counts -------------------------------------------------------------------------

#[test]
fn equal_weight_point_counts_use_float32() {
    let short = [25usize, 47, 50, 55, 61, 71, 94, 100];
    for n in 1..=100usize {
        let pps = points_for_weight(1, n as u64, n);
        let want = if short.contains(&n) { 156 } else { 160 };
        assert_eq!(pps, want, "n = {n}");
    }
}

#[test]
fn weight_zero_counts_as_one() {
    // libmemcached 1.1.4: weights 0,1,5 -> 68,68,340 points (476 total).
    let nodes = [
        Node::with_weight("zero-a", 11211, 0),
        Node::with_weight("zero-b", 11211, 1),
        Node::with_weight("zero-c", 11212, 5),
    ];
    let r = Ring::new(&nodes);
    assert_eq!(r.point_counts(), &[68, 68, 340]);
    assert_eq!(r.points().len(), 476);
}

#[test]
fn extreme_weights_do_not_panic() {
    let nodes = [
        Node::with_weight("a", 1, u32::MAX),
        Node::with_weight("b", 2, 1),
        Node::with_weight("c", 3, u32::MAX),
    ];
    let r = Ring::new(&nodes);
    assert_eq!(r.point_counts()[1], 0);
    assert!(r.points().len() <= 3 * 160);
    for i in 0..100 {
        let idx = r.locate(sample_key(i).as_bytes());
        assert!(matches!(idx, Some(0) | Some(2)));
    }
}

// ---- reference doc §2.2: libmemcached tests/ketama_test_cases.h pool -------------------------------

fn libmemcached_pool() -> Vec<Node> {
    [600, 300, 200, 350, 1000, 800, 950, 100]
        .iter()
        .enumerate()
        .map(|(i, &w)| Node::with_weight(format!("10.0.1.{}", i + 1), 11211, w))
        .collect()
}

#[test]
fn libmemcached_ketama_test_cases_pool() {
    let r = Ring::new(&libmemcached_pool());
    assert_eq!(r.point_counts(), &[176, 88, 56, 104, 296, 236, 280, 28]);
    assert_eq!(r.points().len(), 1264);
    let cases: [(&[u8], u32, u32, &str); 8] = [
        (b"SVa_]_V41)", 443691461, 445379617, "10.0.1.7"),
        (b"*/Z;?V(.\\8", 1422915503, 1428303028, "10.0.1.1"),
        (b"30C1*Z*S/_", 1473165754, 1480075959, "10.0.1.2"),
        (b"ERR:EC58G>", 2148406511, 2168579133, "10.0.1.7"),
        (b"1I=cTMNTKF", 2882686667, 2885206587, "10.0.1.5"),
        (b"]VG<`I*Z8)", 1103544263, 1104827657, "10.0.1.5"),
        (b"UUTC`-V159", 3716288206, 3727224240, "10.0.1.5"),
        (b"@7RU6C6T+Z", 3862737685, 3871917949, "10.0.1.5"),
    ];
    for (key, hash, point, server) in cases {
        assert_eq!(md5_le32(key), hash);
        assert_eq!(r.point_for_hash(hash).map(|p| p.hash), Some(point));
        assert_eq!(r.locate_node(key).map(|n| n.host.as_str()), Some(server));
    }
}

#[test]
fn wraparound_goes_to_first_point() {
    let r = Ring::new(&libmemcached_pool());
    assert_eq!(md5_le32(b"VDEAAAAA"), 0xfffc_d1b5);
    assert_eq!(r.points().last().map(|p| p.hash), Some(0xfffb_df7f));
    assert_eq!(r.point_for_hash(0xfffc_d1b5), r.points().first().copied());
    assert_eq!(
        r.locate_node(b"VDEAAAAA").map(|n| n.host.as_str()),
        Some("10.0.1.3")
    );
}

#[test]
fn loopback_vectors_from_reference() {
    let nodes = [
        Node::new("127.0.0.1", 11211),
        Node::new("127.0.0.1", 11212),
        Node::new("127.0.0.1", 11213),
    ];
    let r = Ring::new(&nodes);
    assert_eq!(r.points().len(), 480);
    let cases: [(&str, u32, u32, u16); 8] = [
        ("foo", 3675831724, 3682376632, 11211),
        ("bar", 421377335, 437918984, 11212),
        ("baz", 2768240243, 2805981807, 11212),
        ("key1", 2497097154, 2508123131, 11212),
        ("key2", 2854615160, 2859198590, 11213),
        ("key3", 2237083958, 2253980274, 11211),
        ("hello", 708854109, 727298178, 11211),
        ("memcached", 1357326829, 1358192456, 11213),
    ];
    for (key, hash, point, port) in cases {
        assert_eq!(md5_le32(key.as_bytes()), hash, "{key}");
        assert_eq!(r.point_for_hash(hash).map(|p| p.hash), Some(point));
        assert_eq!(r.locate_node(key.as_bytes()).map(|n| n.port), Some(port));
    }
}

// ---- vectors generated with libmemcached 1.1.4 (Debian libmemcached-dev) ---------------------------
//
// memcached_behavior_set(MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED, 1), servers added in the order below with
// memcached_server_add_with_weight, then memcached_generate_hash() for the keys
// "foo","bar","baz","key1","key2","key3","hello","memcached","a","VDEAAAAA","key:0","key:1",...
// Per server: (continuum point count, sum of its point values).

const NAMED_KEYS: [&str; 10] = [
    "foo",
    "bar",
    "baz",
    "key1",
    "key2",
    "key3",
    "hello",
    "memcached",
    "a",
    "VDEAAAAA",
];

fn vector_key(i: usize) -> String {
    match NAMED_KEYS.get(i) {
        Some(k) => (*k).to_string(),
        None => sample_key(i - NAMED_KEYS.len()),
    }
}

struct Vector {
    name: &'static str,
    nodes: Vec<Node>,
    total_points: usize,
    per_server: &'static [(u32, u64)],
    expected: &'static [u8],
}

fn check_vector(v: &Vector) {
    let r = Ring::new(&v.nodes);
    assert_eq!(r.points().len(), v.total_points, "{}", v.name);
    for (i, &(count, sum)) in v.per_server.iter().enumerate() {
        let got: Vec<u32> = r
            .points()
            .iter()
            .filter(|p| p.node == i)
            .map(|p| p.hash)
            .collect();
        assert_eq!(got.len() as u32, count, "{} server {i} count", v.name);
        assert_eq!(
            got.iter().map(|&h| u64::from(h)).sum::<u64>(),
            sum,
            "{} server {i} sum",
            v.name
        );
    }
    for (i, &want) in v.expected.iter().enumerate() {
        let key = vector_key(i);
        assert_eq!(
            r.locate(key.as_bytes()),
            Some(usize::from(want)),
            "{} key {key}",
            v.name
        );
    }
}

fn vectors() -> Vec<Vector> {
    vec![
        Vector {
            name: "loopback3",
            nodes: vec![
                Node::new("127.0.0.1", 11211),
                Node::new("127.0.0.1", 11212),
                Node::new("127.0.0.1", 11213),
            ],
            total_points: 480,
            per_server: &[
                (160, 358718173423),
                (160, 337201112898),
                (160, 359245613976),
            ],
            expected: &[
                0, 1, 1, 1, 2, 0, 0, 2, 1, 1, 1, 0, 0, 0, 0, 1, 2, 2, 0, 1, 0, 0, 0, 2, 0, 1, 0, 0,
                1, 0, 1, 2, 1, 0, 2, 0, 2, 0, 0, 0, 0, 0, 2, 1, 0, 1, 0, 0, 1, 2, 1, 1, 2, 2, 1, 1,
                0, 0, 2, 2, 2, 1, 1, 2, 1, 2, 2, 1, 0, 0, 2, 1, 0, 1, 0, 0, 2, 0, 0, 2, 1, 1, 2, 0,
                0, 1, 1, 1, 1, 2, 0, 1, 1, 2, 1, 0, 0, 0, 0, 2,
            ],
        },
        Vector {
            name: "mixed4",
            nodes: vec![
                Node::new("cache-a.example.internal", 11211),
                Node::with_weight("cache-b.example.internal", 22122, 2),
                Node::with_weight("10.0.0.3", 11211, 3),
                Node::new("10.0.0.4", 11311),
            ],
            total_points: 628,
            per_server: &[
                (88, 191484440398),
                (180, 374858972340),
                (272, 570461793980),
                (88, 181921435322),
            ],
            expected: &[
                3, 2, 2, 0, 0, 2, 1, 1, 1, 1, 2, 3, 2, 2, 0, 1, 1, 3, 1, 1, 1, 0, 0, 3, 2, 0, 2, 3,
                3, 1, 1, 1, 0, 1, 2, 3, 3, 2, 1, 1, 1, 2, 2, 2, 1, 1, 2, 2, 2, 2, 0, 2, 1, 2, 2, 2,
                0, 0, 1, 1, 3, 2, 3, 1, 1, 0, 2, 2, 1, 1, 1, 1, 2, 1, 1, 2, 1, 1, 2, 3, 1, 0, 2, 1,
                2, 3, 2, 1, 1, 2, 1, 1, 1, 2, 0, 1, 2, 0, 1, 0,
            ],
        },
        Vector {
            name: "equal25",
            nodes: (0..25u16)
                .map(|i| {
                    Node::new(
                        format!("node-{i:02}.example"),
                        if i % 3 == 0 { 11212 } else { 11211 },
                    )
                })
                .collect(),
            total_points: 3900,
            per_server: &[
                (156, 321880055936),
                (156, 300251336846),
                (156, 306347885815),
                (156, 317476464909),
                (156, 350759424965),
                (156, 345515690660),
                (156, 358203948765),
                (156, 347193230004),
                (156, 328951750465),
                (156, 323610815612),
                (156, 347337584918),
                (156, 326325154523),
                (156, 324192393247),
                (156, 340550453394),
                (156, 339747958180),
                (156, 346215035895),
                (156, 334490181886),
                (156, 324603431420),
                (156, 357192194937),
                (156, 326824810576),
                (156, 349890103116),
                (156, 355519147445),
                (156, 334477971227),
                (156, 369899844211),
                (156, 340392054350),
            ],
            expected: &[
                15, 17, 14, 10, 20, 1, 21, 5, 4, 21, 20, 16, 2, 24, 17, 20, 22, 3, 10, 15, 3, 7, 1,
                16, 14, 12, 13, 21, 13, 4, 10, 13, 18, 20, 12, 0, 23, 23, 24, 13, 11, 18, 3, 7, 7,
                20, 16, 5, 3, 18, 2, 2, 12, 19, 16, 21, 3, 17, 4, 10, 3, 19, 5, 9, 15, 4, 21, 4, 4,
                19, 5, 20, 3, 5, 19, 9, 21, 8, 23, 7, 23, 4, 12, 20, 24, 11, 1, 1, 17, 23, 12, 16,
                0, 15, 3, 24, 24, 20, 17, 2,
            ],
        },
        Vector {
            name: "weighted50",
            nodes: (0..50u16)
                .map(|i| {
                    Node::with_weight(
                        format!("10.1.0.{}", i + 1),
                        if i % 2 == 1 { 11211 } else { 11300 + i },
                        if i % 5 == 0 { 2 } else { 1 },
                    )
                })
                .collect(),
            total_points: 7920,
            per_server: &[
                (264, 572521797335),
                (132, 276945993191),
                (132, 266293566597),
                (132, 291492478187),
                (132, 300497926261),
                (264, 526721851953),
                (132, 298374215914),
                (132, 292831055432),
                (132, 283370465769),
                (132, 278335438071),
                (264, 540158027286),
                (132, 286238068608),
                (132, 295229541300),
                (132, 306282146252),
                (132, 297123138385),
                (264, 584188314144),
                (132, 303127199419),
                (132, 280261799164),
                (132, 276616866095),
                (132, 275061155563),
                (264, 582720119853),
                (132, 280723382610),
                (132, 283273647173),
                (132, 292767087477),
                (132, 301479662792),
                (264, 510717588348),
                (132, 272997692375),
                (132, 282410744776),
                (132, 274189747824),
                (132, 306280713955),
                (264, 555969026948),
                (132, 286999120585),
                (132, 266431368223),
                (132, 271539392531),
                (132, 261831956461),
                (264, 537477136457),
                (132, 264788718127),
                (132, 284564936349),
                (132, 285444604743),
                (132, 283419344049),
                (264, 577212948725),
                (132, 263801951349),
                (132, 251132138346),
                (132, 277057072525),
                (132, 302596561244),
                (264, 565854680190),
                (132, 289859232757),
                (132, 262267297876),
                (132, 296085384556),
                (132, 268313531478),
            ],
            expected: &[
                37, 40, 30, 2, 15, 20, 13, 10, 30, 30, 0, 40, 10, 45, 43, 36, 44, 21, 41, 2, 3, 30,
                40, 4, 10, 49, 40, 24, 33, 13, 8, 4, 32, 41, 36, 12, 2, 40, 40, 35, 7, 13, 26, 35,
                5, 33, 29, 18, 0, 38, 28, 37, 12, 36, 25, 36, 28, 5, 35, 45, 21, 27, 20, 14, 44,
                17, 28, 45, 14, 8, 45, 35, 15, 9, 15, 45, 26, 44, 44, 27, 35, 29, 9, 35, 10, 17,
                35, 5, 40, 23, 34, 35, 4, 3, 44, 10, 44, 40, 19, 47,
            ],
        },
        Vector {
            name: "equal50",
            nodes: (0..50)
                .map(|i| Node::new(format!("10.2.0.{}", i + 1), 11211))
                .collect(),
            total_points: 7800,
            per_server: &[
                (156, 326473929871),
                (156, 324992256469),
                (156, 324335283172),
                (156, 308152168806),
                (156, 340996990631),
                (156, 329665429062),
                (156, 326792357469),
                (156, 323679046773),
                (156, 332257926772),
                (156, 322280289053),
                (156, 343041245588),
                (156, 325224793690),
                (156, 326182611658),
                (156, 297995620171),
                (156, 351693716350),
                (156, 313193057986),
                (156, 337474348617),
                (156, 304888457262),
                (156, 347611050449),
                (156, 330109832794),
                (156, 348308490664),
                (156, 334238945162),
                (156, 346680851046),
                (156, 316609135167),
                (156, 355885848974),
                (156, 331154708300),
                (156, 307048532597),
                (156, 342717623087),
                (156, 329990620973),
                (156, 353693818562),
                (156, 342145421715),
                (156, 371066429695),
                (156, 348936039212),
                (156, 357928037774),
                (156, 303834946192),
                (156, 345936203780),
                (156, 350736725336),
                (156, 342700723996),
                (156, 313783926967),
                (156, 341190308698),
                (156, 340684591315),
                (156, 347528779709),
                (156, 351572710797),
                (156, 344079239924),
                (156, 309176763733),
                (156, 330305395330),
                (156, 362948074376),
                (156, 327552604173),
                (156, 335313111627),
                (156, 356770826396),
            ],
            expected: &[
                29, 27, 20, 11, 9, 39, 30, 41, 13, 44, 36, 10, 37, 4, 40, 12, 39, 36, 22, 15, 11,
                28, 31, 25, 44, 4, 46, 6, 10, 49, 25, 31, 44, 31, 38, 21, 23, 5, 13, 45, 31, 45,
                10, 47, 48, 16, 9, 23, 44, 24, 18, 30, 2, 39, 28, 37, 16, 17, 33, 31, 5, 41, 34,
                27, 46, 42, 7, 1, 29, 9, 21, 10, 5, 26, 42, 34, 44, 22, 15, 45, 38, 11, 39, 32, 3,
                23, 15, 8, 5, 6, 6, 48, 46, 45, 20, 6, 7, 14, 36, 17,
            ],
        },
        Vector {
            name: "weight0",
            nodes: vec![
                Node::with_weight("zero-a", 11211, 0),
                Node::new("zero-b", 11211),
                Node::with_weight("zero-c", 11212, 5),
            ],
            total_points: 476,
            per_server: &[(68, 151828583997), (68, 133962971920), (340, 727375779577)],
            expected: &[
                2, 1, 2, 2, 1, 2, 2, 2, 2, 0, 2, 2, 2, 1, 2, 2, 0, 2, 2, 2, 1, 2, 2, 0, 2, 2, 2, 2,
                2, 1, 2, 2, 2, 1, 2, 2, 2, 2, 2, 1,
            ],
        },
        Vector {
            name: "single",
            nodes: vec![Node::new("solo", 11211)],
            total_points: 160,
            per_server: &[(160, 371683036489)],
            expected: &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        },
    ]
}

#[test]
fn libmemcached_generated_vectors() {
    for v in vectors() {
        check_vector(&v);
    }
}

// ---- behaviour -----------------------------------------------------------------------------------

#[test]
fn empty_and_single() {
    let r = Ring::new(&[]);
    assert!(r.is_empty());
    assert_eq!(r.locate(b"x"), None);
    assert_eq!(r.point_for_hash(5), None);
    let r = Ring::new(&[Node::new("solo", 11211)]);
    for i in 0..50 {
        assert_eq!(r.locate(sample_key(i).as_bytes()), Some(0));
    }
    assert_eq!(r.locate(b""), Some(0));
    assert_eq!(r.shares(), vec![1.0]);
}

#[test]
fn point_names() {
    assert_eq!(Node::new("h", 11211).point_name(3), "h-3");
    assert_eq!(Node::new("h", 11212).point_name(0), "h:11212-0");
    assert_eq!(Node::new("::1", 11212).point_name(1), "::1:11212-1");
}

#[test]
fn continuum_is_sorted_and_complete() {
    let nodes: Vec<Node> = (0..7)
        .map(|i| Node::with_weight(format!("n{i}"), 11211 + i, u32::from(i % 3 + 1)))
        .collect();
    let r = Ring::new(&nodes);
    assert!(r.points().windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(
        r.points().len() as u32,
        r.point_counts().iter().sum::<u32>()
    );
    let total: f64 = r.shares().iter().sum();
    assert!((total - 1.0).abs() < 1e-9);
}

#[test]
fn lookup_is_first_point_at_or_above() {
    let r = Ring::new(&[Node::new("a", 1), Node::new("b", 2)]);
    let pts = r.points();
    for p in pts.iter().take(20) {
        assert_eq!(r.point_for_hash(p.hash).map(|q| q.hash), Some(p.hash));
        if p.hash > 0 {
            let q = r.point_for_hash(p.hash - 1).map(|q| q.hash);
            assert!(q.is_some_and(|q| q <= p.hash));
        }
    }
    assert_eq!(r.point_for_hash(0), pts.first().copied());
    assert_eq!(r.point_for_hash(u32::MAX).map(|p| p.hash), {
        let last = pts.last().map(|p| p.hash);
        if last == Some(u32::MAX) {
            last
        } else {
            pts.first().map(|p| p.hash)
        }
    });
}

#[test]
fn adding_a_node_moves_about_one_nth() {
    let before: Vec<Node> = (0..4)
        .map(|i| Node::new(format!("10.9.0.{i}"), 11211))
        .collect();
    let mut after = before.clone();
    after.push(Node::new("10.9.0.4", 11211));
    let keys: Vec<String> = (0..20_000).map(sample_key).collect();
    let c = count_moved(&before, &after, &keys);
    assert_eq!(c.keys, 20_000);
    // Only keys that now belong to the new node move: roughly 1/5.
    assert!(c.percent() > 12.0 && c.percent() < 28.0, "{}", c.percent());
    let (rb, ra) = (Ring::new(&before), Ring::new(&after));
    for k in &keys {
        if key_moved(&rb, &ra, k.as_bytes()) {
            assert_eq!(ra.locate(k.as_bytes()), Some(4));
        }
    }
    // Same list, different order: nothing moves (no equal points here).
    let mut rev = before.clone();
    rev.reverse();
    assert_eq!(count_moved(&before, &rev, &keys).moved, 0);
    assert_eq!(count_moved(&before, &before, &keys).moved, 0);
    assert_eq!(count_moved(&[], &before, &keys).moved, 20_000);
}

// ---- node specs ----------------------------------------------------------------------------------

#[test]
fn node_spec_parsing() {
    assert_eq!(Node::parse("h"), Ok(Node::new("h", 11211)));
    assert_eq!(Node::parse(" h:1 "), Ok(Node::new("h", 1)));
    assert_eq!(Node::parse("h:1:7"), Ok(Node::with_weight("h", 1, 7)));
    assert_eq!(Node::parse("[::1]:5:2"), Ok(Node::with_weight("::1", 5, 2)));
    assert_eq!(Node::parse("[::1]"), Ok(Node::new("::1", 11211)));
    assert_eq!(Node::parse(""), Err(NodeSpecError::Empty));
    assert_eq!(Node::parse("h:0"), Err(NodeSpecError::BadPort));
    assert_eq!(Node::parse("h:65536"), Err(NodeSpecError::BadPort));
    assert_eq!(Node::parse("h:+1"), Err(NodeSpecError::BadPort));
    assert_eq!(Node::parse("h:"), Err(NodeSpecError::BadPort));
    assert_eq!(Node::parse("h:1:0"), Err(NodeSpecError::BadWeight));
    assert_eq!(Node::parse("h:1:x"), Err(NodeSpecError::BadWeight));
    assert_eq!(Node::parse("::1"), Err(NodeSpecError::Ipv6NeedsBrackets));
    assert_eq!(Node::parse("[::1]5"), Err(NodeSpecError::BadPort));
    assert_eq!(Node::parse("[nope]:5"), Err(NodeSpecError::BadHost));
    assert_eq!(Node::parse("[::1"), Err(NodeSpecError::BadHost));
    assert_eq!(Node::parse("a|b:1"), Err(NodeSpecError::BadHost));
    assert_eq!(Node::parse(":1"), Err(NodeSpecError::BadHost));
    assert_eq!(Node::new("::1", 5).to_string(), "[::1]:5");
    assert_eq!(Node::new("h", 5).to_string(), "h:5");
}

#[test]
fn node_spec_parse_never_panics() {
    let alphabet = ['a', '1', ':', '[', ']', '|', ' ', '0', 'é', '.', '9'];
    let mut s = String::new();
    for i in 0..20_000usize {
        s.clear();
        let mut x = i;
        for _ in 0..7 {
            s.push(alphabet[x % alphabet.len()]);
            x /= alphabet.len();
        }
        if let Ok(n) = Node::parse(&s) {
            let back = if n.weight == 1 {
                n.to_string()
            } else {
                format!("{n}:{}", n.weight)
            };
            assert_eq!(Node::parse(&back), Ok(n));
        }
    }
}
