//! Owns: Auto Discovery state — the cluster config version and the sorted node list; parsing node lists from
//! flags and cluster files, and payloads pushed with `config set cluster`; the version rules (1..=2^53-1,
//! strictly increasing); the exact reply bytes for `config get cluster`, `get AmazonElastiCache:cluster` and
//! binary CONFIG_GET (0x60); the cluster state file (format, load, atomic store).
//! Does not: touch sockets or threads, tokenize protocol lines (trailing spaces, bare LF and the `config`
//! verb are the protocol parser's job), resolve DNS, decide who may push a config, or hash keys (`ring`).
//!
//! # Wire format (ElastiCache Auto Discovery)
//!
//! ```text
//! payload = <version> "\n" <host>|<ip>|<port> [" " <host>|<ip>|<port>]... "\n"
//! text    = "CONFIG cluster 0 " <len(payload)> "\r\n" payload "\r\nEND\r\n"
//! legacy  = "VALUE AmazonElastiCache:cluster 0 " <len(payload)> "\r\n" payload "\r\nEND\r\n"
//! binary  = response to opcode 0x60: extras = 4 zero bytes (flags), no key, value = payload
//! ```
//!
//! Nodes are always emitted sorted by (host, port, ip) so every daemon given the same membership serves the
//! same bytes. The ip field may be empty (the two `|` stay).
//!
//! # Node list syntax (flags and cluster files)
//!
//! ```text
//! # comment to end of line
//! version 42                 # optional; also "version = 42" / "version=42"; at most once
//! cache-a.internal|10.0.0.1|11211        # discovery form: host|ip|port, ip may be empty
//! cache-b.internal|10.0.0.2|11211|3      # ... with a ring weight (4th field)
//! 10.0.0.3:11211, 10.0.0.4:11212:2       # host[:port[:weight]]; [v6]:port[:weight] for IPv6
//! ```
//!
//! Entries are separated by newlines, spaces, tabs or commas. In the `host:port` form the ip field is the
//! host itself when the host is an IP literal, and empty otherwise. Port defaults to 11211, weight to 1.
//! Weights only feed the ketama ring (`ferrocache ring`); they are not part of the discovery payload.

pub mod ring;
pub mod state;

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Key of `config get <key>` / `config set <key>` that this module serves.
pub const CONFIG_KEY: &str = "cluster";
/// Virtual key of the legacy discovery form (`get AmazonElastiCache:cluster`).
pub const LEGACY_KEY: &str = "AmazonElastiCache:cluster";
/// Largest accepted config version: JavaScript clients parse it as a double.
pub const MAX_VERSION: u64 = (1 << 53) - 1;
/// Largest accepted pushed payload or state file, in bytes.
pub const MAX_PAYLOAD_LEN: usize = 1 << 20;
/// Default file name of the cluster state inside the state directory.
pub const STATE_FILE_NAME: &str = "cluster.state";

/// Binary opcodes of the ElastiCache config commands.
pub const OP_CONFIG_GET: u8 = 0x60;
pub const OP_CONFIG_GETQ: u8 = 0x61;
pub const OP_CONFIG_GETK: u8 = 0x62;
pub const OP_CONFIG_GETKQ: u8 = 0x63;
pub const OP_CONFIG_SET: u8 = 0x64;
pub const OP_CONFIG_SETQ: u8 = 0x65;
pub const OP_CONFIG_DELETE: u8 = 0x66;
pub const OP_CONFIG_DELETEQ: u8 = 0x67;
pub const OP_CONFIG_LIST: u8 = 0x68;
/// Length of the extras (flags) in a CONFIG_GET response.
pub const BINARY_EXTRAS_LEN: u8 = 4;

/// Binary status "invalid arguments".
const STATUS_EINVAL: u16 = 0x0004;
/// Binary status "item not stored".
const STATUS_NOT_STORED: u16 = 0x0005;

/// Why a node list, payload or version was rejected. `Display` is the exact wire line (no CRLF).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterError {
    /// Payload is not `<version>\n<nodes>[\n]`, is not UTF-8, or a file has a malformed directive.
    BadFormat(String),
    /// Version is not an integer in 1..=2^53-1.
    BadVersion(String),
    /// Version is not strictly greater than the current one.
    VersionNotNewer { current: u64, proposed: u64 },
    /// A node entry is malformed.
    BadNode { entry: String, reason: String },
    /// The same host and port appear twice.
    DuplicateNode(String),
    /// The node list is empty.
    NoNodes,
    /// Payload larger than [`MAX_PAYLOAD_LEN`].
    TooLarge(usize),
}

impl fmt::Display for ClusterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ClusterError::BadFormat(_) => "CLIENT_ERROR bad cluster config format",
            ClusterError::BadVersion(_) => "CLIENT_ERROR bad cluster version",
            ClusterError::VersionNotNewer { .. } => "CLIENT_ERROR cluster version not newer",
            ClusterError::BadNode { .. } => "CLIENT_ERROR bad cluster node",
            ClusterError::DuplicateNode(_) => "CLIENT_ERROR duplicate cluster node",
            ClusterError::NoNodes => "CLIENT_ERROR empty cluster node list",
            ClusterError::TooLarge(_) => "CLIENT_ERROR cluster config too large",
        })
    }
}

impl std::error::Error for ClusterError {}

impl ClusterError {
    /// Appends the wire line and CRLF.
    pub fn write_wire(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
    }

    /// Binary protocol status for a rejected CONFIG_SET: 0x05 (not stored) for a stale version, else 0x04.
    pub fn binary_status(&self) -> u16 {
        match self {
            ClusterError::VersionNotNewer { .. } => STATUS_NOT_STORED,
            _ => STATUS_EINVAL,
        }
    }

    /// Human-readable explanation for logs and the command line (untrusted text is escaped).
    pub fn detail(&self) -> String {
        match self {
            ClusterError::BadFormat(why) => format!("bad cluster config format: {why}"),
            ClusterError::BadVersion(v) => format!(
                "bad cluster version '{}': must be an integer in 1..={MAX_VERSION}",
                v.escape_debug()
            ),
            ClusterError::VersionNotNewer { current, proposed } => {
                format!("cluster version {proposed} is not newer than the current {current}")
            }
            ClusterError::BadNode { entry, reason } => {
                format!("bad cluster node '{}': {reason}", entry.escape_debug())
            }
            ClusterError::DuplicateNode(n) => {
                format!("duplicate cluster node '{}'", n.escape_debug())
            }
            ClusterError::NoNodes => "empty cluster node list".to_string(),
            ClusterError::TooLarge(n) => {
                format!("cluster config of {n} bytes exceeds {MAX_PAYLOAD_LEN}")
            }
        }
    }
}

fn bad_node(entry: &str, reason: impl fmt::Display) -> ClusterError {
    // Bound what we keep of untrusted input.
    let entry: String = entry.chars().take(200).collect();
    ClusterError::BadNode {
        entry,
        reason: reason.to_string(),
    }
}

/// Checks that a version is in 1..=2^53-1.
pub fn validate_version(v: u64) -> Result<u64, ClusterError> {
    if (1..=MAX_VERSION).contains(&v) {
        Ok(v)
    } else {
        Err(ClusterError::BadVersion(v.to_string()))
    }
}

/// Parses a decimal version (digits only, no sign) in 1..=2^53-1.
pub fn parse_version(s: &str) -> Result<u64, ClusterError> {
    let bad = || ClusterError::BadVersion(s.chars().take(40).collect());
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let v: u64 = s.parse().map_err(|_| bad())?;
    validate_version(v).map_err(|_| bad())
}

/// The version to use for a membership change that did not come with one: `max(previous + 1, now, 1)`.
/// The daemon passes `now = 0` (so `previous + 1`, from 1), which keeps every node fed the same
/// membership on the same version; a caller wanting versions that also rise across restarts
/// without a state file can pass wall-clock seconds.
pub fn next_version(previous: Option<u64>, now_unix_secs: u64) -> Result<u64, ClusterError> {
    let after_prev = previous.map_or(1, |p| p.saturating_add(1));
    validate_version(after_prev.max(now_unix_secs).max(1))
}

/// One cluster member as served by Auto Discovery.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClusterNode {
    /// Hostname (or IP literal) clients may connect to; `[A-Za-z0-9._-]+` or an IPv6 literal.
    pub host: String,
    /// IP address clients may connect to, or empty.
    pub ip: String,
    pub port: u16,
    /// Ring weight, not on the wire; 1 by default.
    pub weight: u32,
}

impl ClusterNode {
    /// A node with weight 1. Not validated: see [`ClusterNode::validate`].
    pub fn new(host: impl Into<String>, ip: impl Into<String>, port: u16) -> ClusterNode {
        ClusterNode {
            host: host.into(),
            ip: ip.into(),
            port,
            weight: 1,
        }
    }

    /// Checks the fields can be emitted safely and parsed back.
    pub fn validate(&self) -> Result<(), ClusterError> {
        let entry = || self.to_string();
        if !ring::valid_host(&self.host) {
            return Err(bad_node(&entry(), "bad host"));
        }
        if !self.ip.is_empty() && self.ip.parse::<IpAddr>().is_err() {
            return Err(bad_node(&entry(), "bad ip"));
        }
        if self.port == 0 {
            return Err(bad_node(&entry(), "bad port (1-65535)"));
        }
        if self.weight == 0 {
            return Err(bad_node(&entry(), "bad weight (1-4294967295)"));
        }
        Ok(())
    }

    /// Parses one wire entry `host|ip|port` (the `config set cluster` form; no weight).
    pub fn parse_wire(entry: &str) -> Result<ClusterNode, ClusterError> {
        let mut f = entry.split('|');
        let (Some(host), Some(ip), Some(port), None) = (f.next(), f.next(), f.next(), f.next())
        else {
            return Err(bad_node(entry, "expected host|ip|port"));
        };
        let port = ring::parse_port(port).map_err(|e| bad_node(entry, e))?;
        let node = ClusterNode::new(host, ip, port);
        node.validate()?;
        Ok(node)
    }

    /// Parses one entry of a flag or cluster file: `host|ip|port[|weight]` or `host[:port[:weight]]`.
    pub fn parse_entry(entry: &str) -> Result<ClusterNode, ClusterError> {
        if entry.contains('|') {
            let mut f = entry.split('|');
            let (Some(host), Some(ip), Some(port)) = (f.next(), f.next(), f.next()) else {
                return Err(bad_node(entry, "expected host|ip|port[|weight]"));
            };
            let weight = match (f.next(), f.next()) {
                (None, _) => 1,
                (Some(w), None) => ring::parse_weight(w).map_err(|e| bad_node(entry, e))?,
                (Some(_), Some(_)) => {
                    return Err(bad_node(entry, "expected host|ip|port[|weight]"))
                }
            };
            let port = ring::parse_port(port).map_err(|e| bad_node(entry, e))?;
            let node = ClusterNode {
                host: host.to_string(),
                ip: ip.to_string(),
                port,
                weight,
            };
            node.validate()?;
            return Ok(node);
        }
        let (host, port, weight) =
            ring::parse_host_port_weight(entry).map_err(|e| bad_node(entry, e))?;
        let ip = if host.parse::<IpAddr>().is_ok() {
            host.clone()
        } else {
            String::new()
        };
        let node = ClusterNode {
            host,
            ip,
            port,
            weight,
        };
        node.validate()?;
        Ok(node)
    }

    /// The ring node a client would build for this member: hashing the IP when `by_ip` and the IP is
    /// known (AWS Java, libmemcached fork), else the hostname (node `memcached`, emcache, ...).
    pub fn ring_node(&self, by_ip: bool) -> ring::Node {
        let host = if by_ip && !self.ip.is_empty() {
            &self.ip
        } else {
            &self.host
        };
        ring::Node::with_weight(host.clone(), self.port, self.weight)
    }

    fn sort_key(&self) -> (&str, u16, &str, u32) {
        (&self.host, self.port, &self.ip, self.weight)
    }

    fn write_wire(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.host.as_bytes());
        out.push(b'|');
        out.extend_from_slice(self.ip.as_bytes());
        out.push(b'|');
        out.extend_from_slice(self.port.to_string().as_bytes());
    }
}

impl fmt::Display for ClusterNode {
    /// `host|ip|port` — the wire form, weight not shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}|{}|{}", self.host, self.ip, self.port)
    }
}

/// Sorts by (host, port, ip, weight) and rejects a (host, port) that appears twice.
fn normalize_nodes(mut nodes: Vec<ClusterNode>) -> Result<Vec<ClusterNode>, ClusterError> {
    nodes.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));
    for w in nodes.windows(2) {
        // windows(2) yields slices of exactly two.
        if w[0].host == w[1].host && w[0].port == w[1].port {
            return Err(ClusterError::DuplicateNode(w[1].to_string()));
        }
    }
    Ok(nodes)
}

/// True if both sorted lists have the same (host, ip, port) entries, i.e. the same discovery payload.
fn same_members(a: &[ClusterNode], b: &[ClusterNode]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.host == y.host && x.ip == y.ip && x.port == y.port)
}

/// A node list read from flags or a cluster file: sorted, no duplicates, possibly empty.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NodeList {
    /// `version N` directive, if the file had one.
    pub version: Option<u64>,
    pub nodes: Vec<ClusterNode>,
}

impl NodeList {
    /// Parses the node list syntax described in the module docs.
    pub fn parse(text: &str) -> Result<NodeList, ClusterError> {
        if text.len() > MAX_PAYLOAD_LEN {
            return Err(ClusterError::TooLarge(text.len()));
        }
        let mut version = None;
        let mut nodes = Vec::new();
        for raw in text.lines() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if let Some(rest) = line.strip_prefix("version") {
                if rest.is_empty() || rest.starts_with([' ', '\t', '=']) {
                    let value = rest.trim_start().strip_prefix('=').unwrap_or(rest).trim();
                    if version.is_some() {
                        return Err(ClusterError::BadFormat("version given twice".into()));
                    }
                    version = Some(parse_version(value)?);
                    continue;
                }
            }
            for entry in line
                .split(|c: char| c == ',' || c.is_ascii_whitespace())
                .filter(|s| !s.is_empty())
            {
                nodes.push(ClusterNode::parse_entry(entry)?);
            }
        }
        Ok(NodeList {
            version,
            nodes: normalize_nodes(nodes)?,
        })
    }

    /// Parses several flag values (e.g. repeated `--cluster-node`), each holding one or more entries.
    pub fn parse_args<S: AsRef<str>>(args: &[S]) -> Result<NodeList, ClusterError> {
        let mut all = NodeList::default();
        for a in args {
            let part = NodeList::parse(a.as_ref())?;
            if part.version.is_some() {
                if all.version.is_some() {
                    return Err(ClusterError::BadFormat("version given twice".into()));
                }
                all.version = part.version;
            }
            all.nodes.extend(part.nodes);
        }
        all.nodes = normalize_nodes(all.nodes)?;
        Ok(all)
    }

    /// Renders the list in cluster-file syntax (`version N` line, then one `host|ip|port[|weight]` per
    /// line); [`NodeList::parse`] gives the same list back.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        if let Some(v) = self.version {
            s.push_str(&format!("version {v}\n"));
        }
        for n in &self.nodes {
            if n.weight == 1 {
                s.push_str(&format!("{n}\n"));
            } else {
                s.push_str(&format!("{n}|{}\n", n.weight));
            }
        }
        s
    }
}

/// The discovery state served to clients: a version and a non-empty, sorted node list, with the payload
/// rendered once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterConfig {
    version: u64,
    nodes: Vec<ClusterNode>,
    payload: Vec<u8>,
}

impl ClusterConfig {
    /// Validates (version range, at least one node, well-formed nodes, no duplicate host+port) and sorts.
    pub fn new(version: u64, nodes: Vec<ClusterNode>) -> Result<ClusterConfig, ClusterError> {
        validate_version(version)?;
        if nodes.is_empty() {
            return Err(ClusterError::NoNodes);
        }
        for n in &nodes {
            n.validate()?;
        }
        let nodes = normalize_nodes(nodes)?;
        let mut payload = Vec::with_capacity(24 + nodes.len() * 48);
        payload.extend_from_slice(version.to_string().as_bytes());
        payload.push(b'\n');
        for (i, n) in nodes.iter().enumerate() {
            if i > 0 {
                payload.push(b' ');
            }
            n.write_wire(&mut payload);
        }
        payload.push(b'\n');
        Ok(ClusterConfig {
            version,
            nodes,
            payload,
        })
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    /// Members, sorted by (host, port, ip).
    pub fn nodes(&self) -> &[ClusterNode] {
        &self.nodes
    }

    /// `<version>\n<host>|<ip>|<port>[ ...]\n` — the bytes counted by the reply length.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// Appends `CONFIG cluster 0 <len>\r\n<payload>\r\nEND\r\n`.
    pub fn write_config_reply(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"CONFIG cluster 0 ");
        out.extend_from_slice(self.payload.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.payload);
        out.extend_from_slice(b"\r\nEND\r\n");
    }

    /// Appends one `VALUE AmazonElastiCache:cluster 0 <len>[ <cas>]\r\n<payload>\r\n` block (no `END`, so it
    /// can sit inside a multi-key `get`). With `gets`, pass `Some(cas)`; the version is a natural choice.
    pub fn write_legacy_value(&self, out: &mut Vec<u8>, cas: Option<u64>) {
        out.extend_from_slice(b"VALUE ");
        out.extend_from_slice(LEGACY_KEY.as_bytes());
        out.extend_from_slice(b" 0 ");
        out.extend_from_slice(self.payload.len().to_string().as_bytes());
        if let Some(cas) = cas {
            out.push(b' ');
            out.extend_from_slice(cas.to_string().as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.payload);
        out.extend_from_slice(b"\r\n");
    }

    /// Appends the whole reply to `get AmazonElastiCache:cluster`: the VALUE block then `END\r\n`.
    pub fn write_legacy_reply(&self, out: &mut Vec<u8>) {
        self.write_legacy_value(out, None);
        out.extend_from_slice(b"END\r\n");
    }

    /// Appends the body of a binary CONFIG_GET (0x60) response: 4 bytes of flags (0), no key, the payload.
    /// The header must say extlen 4, keylen 0, bodylen [`ClusterConfig::binary_body_len`].
    pub fn write_binary_body(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[0, 0, 0, 0]);
        out.extend_from_slice(&self.payload);
    }

    pub fn binary_body_len(&self) -> usize {
        usize::from(BINARY_EXTRAS_LEN) + self.payload.len()
    }

    /// Parses a payload as stored by `config set cluster` or read from the state file:
    /// `<version>\n<entry>[ <entry>...]` with an optional final `\n`; `\r\n` line ends and runs of spaces or
    /// tabs between entries are tolerated. Entries are `host|ip|port`. The result is normalized (sorted,
    /// trailing `\n` added).
    pub fn parse_payload(data: &[u8]) -> Result<ClusterConfig, ClusterError> {
        if data.len() > MAX_PAYLOAD_LEN {
            return Err(ClusterError::TooLarge(data.len()));
        }
        let text = std::str::from_utf8(data)
            .map_err(|_| ClusterError::BadFormat("payload is not UTF-8".into()))?;
        let text = text
            .strip_suffix("\r\n")
            .or_else(|| text.strip_suffix('\n'))
            .unwrap_or(text);
        let Some((version_line, node_line)) = text.split_once('\n') else {
            return Err(ClusterError::BadFormat(
                "expected <version>\\n<host>|<ip>|<port> ...".into(),
            ));
        };
        if node_line.contains('\n') {
            return Err(ClusterError::BadFormat(
                "more than two lines in payload".into(),
            ));
        }
        let version_line = version_line.strip_suffix('\r').unwrap_or(version_line);
        let version = parse_version(version_line.trim_matches([' ', '\t']))?;
        let mut nodes = Vec::new();
        for entry in node_line.split([' ', '\t']).filter(|s| !s.is_empty()) {
            nodes.push(ClusterNode::parse_wire(entry)?);
        }
        ClusterConfig::new(version, nodes)
    }

    /// Handles `config set cluster` (text or binary 0x64): parses `payload` and accepts it only if its
    /// version is strictly greater than the current one.
    pub fn apply_push(
        current: Option<&ClusterConfig>,
        payload: &[u8],
    ) -> Result<ClusterConfig, ClusterError> {
        let new = ClusterConfig::parse_payload(payload)?;
        if let Some(cur) = current {
            if new.version <= cur.version {
                return Err(ClusterError::VersionNotNewer {
                    current: cur.version,
                    proposed: new.version,
                });
            }
        }
        Ok(new)
    }

    /// Builds the config from a static node list (flags or cluster file, at start-up or on reload), given
    /// the config currently served or loaded from the state file.
    ///
    /// - Same members (host, ip, port) as `current` and no version, or the same version: `current`'s
    ///   version is kept (so a restart that reloads an unchanged file does not bump it); weights are taken
    ///   from `list`.
    /// - Explicit version: must be greater than `current`'s version (else `VersionNotNewer`).
    /// - No version and new members: [`next_version`]`(current version, now)`.
    pub fn from_node_list(
        list: &NodeList,
        current: Option<&ClusterConfig>,
        now_unix_secs: u64,
    ) -> Result<ClusterConfig, ClusterError> {
        if list.nodes.is_empty() {
            return Err(ClusterError::NoNodes);
        }
        if let Some(cur) = current {
            let same = same_members(&cur.nodes, &list.nodes);
            match list.version {
                // Same wire bytes: keep the version (weights, which are not on the wire, may change).
                None if same => return ClusterConfig::new(cur.version, list.nodes.clone()),
                Some(v) if v == cur.version && same => {
                    return ClusterConfig::new(cur.version, list.nodes.clone())
                }
                Some(v) if v <= cur.version => {
                    return Err(ClusterError::VersionNotNewer {
                        current: cur.version,
                        proposed: v,
                    })
                }
                _ => {}
            }
        }
        let version = match list.version {
            Some(v) => v,
            None => next_version(current.map(|c| c.version), now_unix_secs)?,
        };
        ClusterConfig::new(version, list.nodes.clone())
    }

    /// The ketama ring a libmemcached-compatible client builds from this config (see
    /// [`ClusterNode::ring_node`] for `by_ip`).
    pub fn ring(&self, by_ip: bool) -> ring::Ring {
        let nodes: Vec<ring::Node> = self.nodes.iter().map(|n| n.ring_node(by_ip)).collect();
        ring::Ring::new(&nodes)
    }

    /// Content of the state file: exactly the payload (weights are not kept).
    pub fn state_file_contents(&self) -> &[u8] {
        &self.payload
    }

    /// Parses a state file's content.
    pub fn parse_state(data: &[u8]) -> Result<ClusterConfig, ClusterError> {
        ClusterConfig::parse_payload(data)
    }
}

/// Reads the state file. A missing file is `Ok(None)`; bad content is `InvalidData`.
pub fn load_state(path: &Path) -> io::Result<Option<ClusterConfig>> {
    let data = match std::fs::read(path) {
        Ok(d) => d,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    ClusterConfig::parse_state(&data)
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.detail()))
}

/// The temporary file used by [`store_state`]: `<path>.tmp`.
pub fn state_tmp_path(path: &Path) -> PathBuf {
    crate::fsutil::tmp_path(path)
}

/// Writes the state file atomically and durably (see [`crate::fsutil::write_atomically`]).
pub fn store_state(path: &Path, config: &ClusterConfig) -> io::Result<()> {
    crate::fsutil::write_atomically(path, config.state_file_contents())
}

#[cfg(test)]
mod tests {
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
            ClusterConfig::apply_push(Some(&cur), b"5\nb||1\n"),
            Err(ClusterError::VersionNotNewer {
                current: 5,
                proposed: 5
            })
        );
        assert!(matches!(
            ClusterConfig::apply_push(Some(&cur), b"4\nb||1\n"),
            Err(ClusterError::VersionNotNewer { .. })
        ));
        let new = ClusterConfig::apply_push(Some(&cur), b"6\nb||1").expect("newer");
        assert_eq!(new.payload(), b"6\nb||1\n");
        assert!(ClusterConfig::apply_push(None, b"1\nb||1").is_ok());
        // A malformed payload is reported as such even if its version would be stale.
        assert!(matches!(
            ClusterConfig::apply_push(Some(&cur), b"1\nb|1"),
            Err(ClusterError::BadNode { .. })
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
        let dir =
            std::env::temp_dir().join(format!("ferrocache-cluster-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let path = dir.join(STATE_FILE_NAME);
        assert!(matches!(load_state(&path), Ok(None)));
        let c = ClusterConfig::parse_payload(b"77\na|10.0.0.1|1 b||2\n").expect("valid");
        store_state(&path, &c).expect("store");
        assert!(!state_tmp_path(&path).exists());
        assert_eq!(load_state(&path).ok().flatten(), Some(c.clone()));
        let c2 = ClusterConfig::apply_push(Some(&c), b"78\nb||2").expect("newer");
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
}
