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

mod discovery;
mod nodes;
pub mod ring;
pub mod state;
pub mod supervise;
#[cfg(test)]
mod tests;

pub use discovery::{load_state, state_tmp_path, store_state, ClusterConfig};
pub use nodes::{ClusterNode, NodeList};

use std::fmt;

/// Key of `config get <key>` / `config set <key>` that this module serves.
pub const CONFIG_KEY: &str = "cluster";
/// Key of `config set <key>` by which the supervisor tells a node why it changed its list.
pub const EVENT_KEY: &str = "cluster_event";
/// Longest reason a node keeps (longer ones are cut).
pub const MAX_EVENT_LEN: usize = 512;
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
/// Binary status "data exists" (memcached's CAS mismatch).
const STATUS_EXISTS: u16 = 0x0002;

/// Why a node list, payload or version was rejected. `Display` is the exact wire line (no CRLF).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterError {
    /// Payload is not `<version>\n<nodes>[\n]`, is not UTF-8, or a file has a malformed directive.
    BadFormat(String),
    /// Version is not an integer in 1..=2^53-1.
    BadVersion(String),
    /// Version is not strictly greater than the current one.
    VersionNotNewer { current: u64, proposed: u64 },
    /// A conditional push named a version it replaces that is not the one served (`None`: nothing
    /// is served yet).
    VersionMismatch { current: Option<u64>, expected: u64 },
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
        if let ClusterError::VersionMismatch { current, expected } = self {
            let current = current.map_or("none".to_string(), |c| c.to_string());
            return write!(
                f,
                "CLIENT_ERROR cluster version mismatch: expected {expected}, current {current}"
            );
        }
        f.write_str(match self {
            ClusterError::VersionMismatch { .. } => "",
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

    /// Binary protocol status for a rejected CONFIG_SET: 0x05 (not stored) for a stale version,
    /// 0x02 (exists, as a CAS mismatch) when the version it replaces is not current, else 0x04.
    pub fn binary_status(&self) -> u16 {
        match self {
            ClusterError::VersionNotNewer { .. } => STATUS_NOT_STORED,
            ClusterError::VersionMismatch { .. } => STATUS_EXISTS,
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
            ClusterError::VersionMismatch { current, expected } => match current {
                Some(c) => {
                    format!("the push replaces version {expected}, but the current one is {c}")
                }
                None => format!("the push replaces version {expected}, but no config is served"),
            },
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

pub(crate) fn bad_node(entry: &str, reason: impl fmt::Display) -> ClusterError {
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
