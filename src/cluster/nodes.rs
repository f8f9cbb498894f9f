//! Owns: cluster members — one node (`ClusterNode`: host, ip, port, ring weight), its two text
//! forms (`host|ip|port` on the wire, `host[:port[:weight]]` in flags and files), and a parsed node
//! list (`NodeList`: sorted, no duplicate host and port). The syntax is in the module header of
//! `cluster`.

use std::fmt;
use std::net::IpAddr;

use super::{bad_node, parse_version, ring, ClusterError, MAX_PAYLOAD_LEN};

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

    pub(super) fn write_wire(&self, out: &mut Vec<u8>) {
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
pub(super) fn normalize_nodes(
    mut nodes: Vec<ClusterNode>,
) -> Result<Vec<ClusterNode>, ClusterError> {
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
pub(super) fn same_members(a: &[ClusterNode], b: &[ClusterNode]) -> bool {
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
