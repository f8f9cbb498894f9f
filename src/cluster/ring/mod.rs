//! Owns: the libmemcached-compatible weighted ketama ring (`MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED`, libketama
//! compatible): MD5, 160 points per server scaled by weight in float32, point names `host-i` / `host:port-i`,
//! key lookup, key-movement counting, and the text output of the `ferrocache ring` subcommand.
//! Does not: touch sockets, threads, files or stdout; know about Auto Discovery state (that is `super`).
//!
//! # Algorithm (must stay bit-for-bit identical to libmemcached `update_continuum` + `dispatch_host`)
//!
//! ```text
//! total  = Σ weight (a weight of 0 counts as 1, as libmemcached does)
//! pct    = (f32) weight / (f32) total
//! hashes = floor( (f32)( (f64)(pct * 160f / 4f * (f32) n) + 1e-10 ) )      // float32 arithmetic
//! for i in 0..hashes: d = md5(name(i)); 4 points = d[0..4], d[4..8], d[8..12], d[12..16] as LE u32
//! name(i) = "host-i" when port == 11211, else "host:port-i"
//! sort points ascending (ties: lower node index first)
//! locate(key): 0 nodes -> None; 1 node -> Some(0) (no hashing, like libmemcached);
//!              else h = md5(key)[0..4] LE; first point >= h, wrapping to the first point.
//! ```
//!
//! The float32 rounding matters: with equal weights, N ∈ {25, 47, 50, 55, 61, 71, 94, 100} servers get 156
//! points each instead of 160. Clients that compute in f64 (npm `hashring`) disagree with libmemcached for
//! those N.

use md5::{Digest, Md5};
use std::fmt;
use std::fmt::Write as _;
use std::net::Ipv6Addr;

/// Points per server before weighting (`MEMCACHED_POINTS_PER_SERVER_KETAMA`).
pub const POINTS_PER_SERVER: u32 = 160;
/// Points taken from one MD5 digest.
pub const POINTS_PER_HASH: u32 = 4;
/// The port that is left out of point names (`MEMCACHED_DEFAULT_PORT`).
pub const DEFAULT_PORT: u16 = 11211;
/// Synthetic keys used by the CLI to measure movement when no keys are given.
pub const DEFAULT_SAMPLE_KEYS: usize = 10_000;
/// Upper bound for `--sample`, to keep the CLI's run time bounded.
pub const MAX_SAMPLE_KEYS: usize = 10_000_000;

/// One server on the ring. `host` is the exact string clients hash (hostname or IP, no brackets for IPv6).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Node {
    pub host: String,
    pub port: u16,
    /// Relative weight; 0 is treated as 1 (libmemcached does the same).
    pub weight: u32,
}

/// Why a `host[:port[:weight]]` spec was rejected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NodeSpecError {
    Empty,
    BadHost,
    BadPort,
    BadWeight,
    /// An IPv6 address must be written `[addr]:port`.
    Ipv6NeedsBrackets,
}

impl fmt::Display for NodeSpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NodeSpecError::Empty => "empty node",
            NodeSpecError::BadHost => "bad host",
            NodeSpecError::BadPort => "bad port (1-65535)",
            NodeSpecError::BadWeight => "bad weight (1-4294967295)",
            NodeSpecError::Ipv6NeedsBrackets => "IPv6 address needs brackets: [addr]:port",
        })
    }
}

impl std::error::Error for NodeSpecError {}

/// True for a hostname or IP literal that is safe to put on the wire and in point names:
/// `[A-Za-z0-9._-]+`, or an IPv6 literal (without brackets).
pub fn valid_host(host: &str) -> bool {
    if host.is_empty() || host.len() > 255 {
        return false;
    }
    if host.contains(':') {
        return host.parse::<Ipv6Addr>().is_ok();
    }
    host.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
}

/// Parses a decimal port, 1..=65535, digits only.
pub fn parse_port(s: &str) -> Result<u16, NodeSpecError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NodeSpecError::BadPort);
    }
    match s.parse::<u16>() {
        Ok(0) | Err(_) => Err(NodeSpecError::BadPort),
        Ok(p) => Ok(p),
    }
}

/// Parses a decimal weight, 1..=u32::MAX, digits only.
pub fn parse_weight(s: &str) -> Result<u32, NodeSpecError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NodeSpecError::BadWeight);
    }
    match s.parse::<u32>() {
        Ok(0) | Err(_) => Err(NodeSpecError::BadWeight),
        Ok(w) => Ok(w),
    }
}

/// Splits `host[:port[:weight]]` / `[v6][:port[:weight]]` into its parts (port defaults to 11211, weight to 1).
pub fn parse_host_port_weight(spec: &str) -> Result<(String, u16, u32), NodeSpecError> {
    let spec = spec.trim();
    if spec.is_empty() {
        return Err(NodeSpecError::Empty);
    }
    let (host, rest) = if let Some(after) = spec.strip_prefix('[') {
        let close = after.find(']').ok_or(NodeSpecError::BadHost)?;
        let host = &after[..close];
        if host.parse::<Ipv6Addr>().is_err() {
            return Err(NodeSpecError::BadHost);
        }
        let rest = &after[close + 1..];
        let rest = if rest.is_empty() {
            None
        } else {
            Some(rest.strip_prefix(':').ok_or(NodeSpecError::BadPort)?)
        };
        (host, rest)
    } else {
        if spec.parse::<Ipv6Addr>().is_ok() || spec.matches(':').count() > 2 {
            return Err(NodeSpecError::Ipv6NeedsBrackets);
        }
        match spec.split_once(':') {
            Some((h, r)) => (h, Some(r)),
            None => (spec, None),
        }
    };
    let (port, weight) = match rest {
        None => (DEFAULT_PORT, 1),
        Some(r) => {
            let mut parts = r.split(':');
            // split always yields at least one item
            let port = parse_port(parts.next().unwrap_or(""))?;
            let weight = match parts.next() {
                None => 1,
                Some(w) => parse_weight(w)?,
            };
            if parts.next().is_some() {
                return Err(NodeSpecError::BadWeight);
            }
            (port, weight)
        }
    };
    if !valid_host(host) {
        return Err(NodeSpecError::BadHost);
    }
    Ok((host.to_string(), port, weight))
}

impl Node {
    /// A node with weight 1.
    pub fn new(host: impl Into<String>, port: u16) -> Node {
        Node {
            host: host.into(),
            port,
            weight: 1,
        }
    }

    pub fn with_weight(host: impl Into<String>, port: u16, weight: u32) -> Node {
        Node {
            host: host.into(),
            port,
            weight,
        }
    }

    /// Parses `host[:port[:weight]]` (port defaults to 11211, weight to 1); IPv6 as `[addr]:port[:weight]`.
    pub fn parse(spec: &str) -> Result<Node, NodeSpecError> {
        let (host, port, weight) = parse_host_port_weight(spec)?;
        Ok(Node { host, port, weight })
    }

    /// The weight libmemcached actually uses (0 becomes 1).
    pub fn effective_weight(&self) -> u32 {
        self.weight.max(1)
    }

    /// The string hashed for the i-th digest of this node: `host-i`, or `host:port-i` unless the port is 11211.
    pub fn point_name(&self, i: u32) -> String {
        if self.port == DEFAULT_PORT {
            format!("{}-{}", self.host, i)
        } else {
            format!("{}:{}-{}", self.host, self.port, i)
        }
    }

    /// Same host string and port (weight ignored): "the same server" for movement counting.
    pub fn same_endpoint(&self, other: &Node) -> bool {
        self.host == other.host && self.port == other.port
    }
}

impl fmt::Display for Node {
    /// `host:port`, with brackets around an IPv6 host. The weight is not shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// One continuum point: its hash value and the index of the node that owns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Point {
    pub hash: u32,
    pub node: usize,
}

/// Number of points libmemcached gives one server (a multiple of 4), float32 maths included.
pub fn points_for_weight(weight: u32, total_weight: u64, live_servers: usize) -> u32 {
    let pct = weight.max(1) as f32 / total_weight.max(1) as f32;
    let x = pct * POINTS_PER_SERVER as f32 / POINTS_PER_HASH as f32 * live_servers as f32;
    // C: floor((float)(x + 0.0000000001)) — the addition happens in double, then rounds back to float.
    let y = (f64::from(x) + 0.000_000_000_1) as f32;
    // `as` saturates (and maps NaN to 0); x is at most 40 * live_servers, so no saturation in practice.
    (y.floor() as u32).saturating_mul(POINTS_PER_HASH)
}

/// libmemcached's key hash for ketama: the first 4 bytes of MD5(key), little-endian.
pub fn key_hash(key: &[u8]) -> u32 {
    let d = Md5::digest(key);
    // An MD5 digest is always 16 bytes.
    u32::from_le_bytes([d[0], d[1], d[2], d[3]])
}

/// A built continuum. Cheap to query, rebuilt on membership change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ring {
    nodes: Vec<Node>,
    points: Vec<Point>,
    /// Points per node, same order as `nodes`.
    counts: Vec<u32>,
}

impl Ring {
    /// Builds the continuum over `nodes` in the given order (order only matters for equal points).
    pub fn new(nodes: &[Node]) -> Ring {
        let total: u64 = nodes.iter().map(|n| u64::from(n.effective_weight())).sum();
        let live = nodes.len();
        let counts: Vec<u32> = nodes
            .iter()
            .map(|n| points_for_weight(n.effective_weight(), total, live))
            .collect();
        let mut points = Vec::with_capacity(counts.iter().map(|&c| c as usize).sum());
        for (idx, (node, &pps)) in nodes.iter().zip(&counts).enumerate() {
            for i in 0..pps / POINTS_PER_HASH {
                let d = Md5::digest(node.point_name(i).as_bytes());
                // 16-byte digest, chunks of exactly 4: indexing cannot fail.
                for w in d.chunks_exact(4) {
                    points.push(Point {
                        hash: u32::from_le_bytes([w[0], w[1], w[2], w[3]]),
                        node: idx,
                    });
                }
            }
        }
        points.sort_unstable();
        Ring {
            nodes: nodes.to_vec(),
            points,
            counts,
        }
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The sorted continuum.
    pub fn points(&self) -> &[Point] {
        &self.points
    }

    /// Number of continuum points each node got (same order as `nodes()`).
    pub fn point_counts(&self) -> &[u32] {
        &self.counts
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The continuum point a hash lands on (first point >= hash, wrapping), if the ring has points.
    pub fn point_for_hash(&self, hash: u32) -> Option<Point> {
        let i = self.points.partition_point(|p| p.hash < hash);
        self.points.get(i).or_else(|| self.points.first()).copied()
    }

    /// Index (into `nodes()`) of the server that owns `key`, exactly as libmemcached's
    /// `memcached_generate_hash` answers: a single server always wins, no server gives `None`.
    pub fn locate(&self, key: &[u8]) -> Option<usize> {
        match self.nodes.len() {
            0 => None,
            1 => Some(0),
            _ => self.point_for_hash(key_hash(key)).map(|p| p.node),
        }
    }

    /// The node that owns `key`.
    pub fn locate_node(&self, key: &[u8]) -> Option<&Node> {
        self.locate(key).and_then(|i| self.nodes.get(i))
    }

    /// Fraction of the 32-bit hash space owned by each node (same order as `nodes()`); sums to 1 when
    /// the ring has points. With a single node it is 1 regardless of points.
    pub fn shares(&self) -> Vec<f64> {
        let mut owned = vec![0u64; self.nodes.len()];
        if self.nodes.len() == 1 {
            return vec![1.0];
        }
        let Some(last) = self.points.last() else {
            return vec![0.0; self.nodes.len()];
        };
        let mut prev = u64::from(last.hash);
        for (i, p) in self.points.iter().enumerate() {
            let cur = u64::from(p.hash);
            // The first point also owns the wrap-around arc (last, 2^32) + [0, first]; if every point has
            // the same value that arc is the whole space.
            let arc = if i == 0 {
                (1u64 << 32) - prev + cur
            } else {
                cur - prev
            };
            if let Some(slot) = owned.get_mut(p.node) {
                *slot += arc;
            }
            prev = cur;
        }
        owned
            .iter()
            .map(|&a| a as f64 / (1u64 << 32) as f64)
            .collect()
    }
}

/// Result of comparing placement before and after a membership change.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MoveCount {
    /// Keys examined.
    pub keys: usize,
    /// Keys whose server (host and port) differs between the two rings.
    pub moved: usize,
}

impl MoveCount {
    /// Moved keys as a percentage of all keys (0 when there are no keys).
    pub fn percent(&self) -> f64 {
        if self.keys == 0 {
            0.0
        } else {
            self.moved as f64 * 100.0 / self.keys as f64
        }
    }
}

/// True if `key` is owned by a different server (compared by host and port) in `after` than in `before`.
pub fn key_moved(before: &Ring, after: &Ring, key: &[u8]) -> bool {
    match (before.locate_node(key), after.locate_node(key)) {
        (Some(a), Some(b)) => !a.same_endpoint(b),
        (None, None) => false,
        _ => true,
    }
}

/// Counts how many of `keys` change server when the node list goes from `before` to `after`.
pub fn count_moved<I, K>(before: &[Node], after: &[Node], keys: I) -> MoveCount
where
    I: IntoIterator<Item = K>,
    K: AsRef<[u8]>,
{
    let (b, a) = (Ring::new(before), Ring::new(after));
    count_moved_rings(&b, &a, keys)
}

/// Same as [`count_moved`] with prebuilt rings.
pub fn count_moved_rings<I, K>(before: &Ring, after: &Ring, keys: I) -> MoveCount
where
    I: IntoIterator<Item = K>,
    K: AsRef<[u8]>,
{
    let mut c = MoveCount::default();
    for k in keys {
        c.keys += 1;
        if key_moved(before, after, k.as_ref()) {
            c.moved += 1;
        }
    }
    c
}

/// The synthetic key used by the CLI for sample `i`: `key:<i>`.
pub fn sample_key(i: usize) -> String {
    format!("key:{i}")
}

/// Usage text of the `ring` subcommand.
pub const RING_USAGE: &str = "\
usage: ferrocache ring --nodes NODE[,NODE...] [--add NODE]... [--remove NODE]... [--sample N] [KEY...]
  NODE is host[:port[:weight]] (port 11211, weight 1 by default); IPv6 as [addr]:port[:weight].
  Prints the libmemcached-compatible weighted ketama placement of each KEY. With --add/--remove it also
  prints where each KEY goes after the change and how many keys move (over the given KEYs, or over
  N synthetic keys key:0..key:N-1 when no KEY is given; N defaults to 10000).
";

/// Parsed options of the `ring` subcommand.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RingArgs {
    pub nodes: Vec<Node>,
    pub add: Vec<Node>,
    pub remove: Vec<Node>,
    pub sample: Option<usize>,
    pub keys: Vec<String>,
}

/// Appends the nodes of one `--nodes`/`--add`/`--remove` value (comma or space separated).
pub fn parse_node_list_arg(list: &str, out: &mut Vec<Node>) -> Result<(), String> {
    for spec in list
        .split(|c: char| c == ',' || c.is_ascii_whitespace())
        .filter(|s| !s.is_empty())
    {
        out.push(Node::parse(spec).map_err(|e| format!("node '{spec}': {e}"))?);
    }
    Ok(())
}

fn write_ring_summary(out: &mut String, label: &str, ring: &Ring) {
    let _ = writeln!(
        out,
        "{label}: nodes {} points {}",
        ring.nodes().len(),
        ring.points().len()
    );
    let shares = ring.shares();
    for (i, node) in ring.nodes().iter().enumerate() {
        let _ = writeln!(
            out,
            "  node {i} {node} weight {} points {} share {:.2}%",
            node.effective_weight(),
            ring.point_counts().get(i).copied().unwrap_or(0),
            shares.get(i).copied().unwrap_or(0.0) * 100.0
        );
    }
}

fn placement(ring: &Ring, key: &[u8]) -> String {
    match ring.locate_node(key) {
        Some(n) => n.to_string(),
        None => "-".to_string(),
    }
}

/// Renders the `ring` subcommand's output for already-parsed options. Pure: no I/O.
///
/// ```text
/// ring: nodes 3 points 480
///   node 0 127.0.0.1:11211 weight 1 points 160 share 33.07%
///   ...
/// key foo hash 3675831724 point 3682376632 node 127.0.0.1:11211
/// after: nodes 4 points 640              (only with --add/--remove)
///   node ...
/// move foo 127.0.0.1:11211 -> 127.0.0.1:11214
/// moved 1 of 8 keys (12.50%)
/// ```
pub fn render_ring(args: &RingArgs) -> Result<String, String> {
    if args.nodes.is_empty() {
        return Err(format!("--nodes is required\n{RING_USAGE}"));
    }
    let ring = Ring::new(&args.nodes);
    let mut out = String::new();
    write_ring_summary(&mut out, "ring", &ring);
    for key in &args.keys {
        let k = key.as_bytes();
        let h = key_hash(k);
        let point = if ring.nodes().len() == 1 {
            "-".to_string()
        } else {
            ring.point_for_hash(h)
                .map_or_else(|| "-".to_string(), |p| p.hash.to_string())
        };
        let _ = writeln!(
            out,
            "key {key} hash {h} point {point} node {}",
            placement(&ring, k)
        );
    }
    if args.add.is_empty() && args.remove.is_empty() {
        return Ok(out);
    }
    let mut after: Vec<Node> = args
        .nodes
        .iter()
        .filter(|n| !args.remove.iter().any(|r| r.same_endpoint(n)))
        .cloned()
        .collect();
    for r in &args.remove {
        if !args.nodes.iter().any(|n| n.same_endpoint(r)) {
            return Err(format!("--remove {r}: not in --nodes"));
        }
    }
    for a in &args.add {
        if after.iter().any(|n| n.same_endpoint(a)) {
            return Err(format!("--add {a}: already in the node list"));
        }
        after.push(a.clone());
    }
    let after_ring = Ring::new(&after);
    write_ring_summary(&mut out, "after", &after_ring);
    let count = if args.keys.is_empty() {
        let n = args.sample.unwrap_or(DEFAULT_SAMPLE_KEYS);
        count_moved_rings(&ring, &after_ring, (0..n).map(sample_key))
    } else {
        for key in &args.keys {
            let k = key.as_bytes();
            let (b, a) = (placement(&ring, k), placement(&after_ring, k));
            if key_moved(&ring, &after_ring, k) {
                let _ = writeln!(out, "move {key} {b} -> {a}");
            } else {
                let _ = writeln!(out, "stay {key} {b}");
            }
        }
        count_moved_rings(&ring, &after_ring, &args.keys)
    };
    let _ = writeln!(
        out,
        "moved {} of {} keys ({:.2}%)",
        count.moved,
        count.keys,
        count.percent()
    );
    Ok(out)
}

#[cfg(test)]
mod tests;
