//! Owns: the discovery config served to clients (`ClusterConfig`: a version and a non-empty sorted
//! node list, its payload rendered once), its exact reply bytes (`config get cluster`, the legacy
//! key, binary 0x60), accepting a pushed payload, and the cluster state file (format, load, atomic
//! store).

use std::io;
use std::path::{Path, PathBuf};

use super::nodes::{normalize_nodes, same_members};
use super::*;

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
    /// version is strictly greater than the current one. A conditional push (`replaces`: the
    /// version it was built from) is also refused unless that version is the one served now, so
    /// two writers racing from the same version never both succeed.
    pub fn apply_push(
        current: Option<&ClusterConfig>,
        payload: &[u8],
        replaces: Option<u64>,
    ) -> Result<ClusterConfig, ClusterError> {
        let new = ClusterConfig::parse_payload(payload)?;
        if let Some(expected) = replaces {
            let served = current.map(|c| c.version);
            if served != Some(expected) {
                return Err(ClusterError::VersionMismatch {
                    current: served,
                    expected,
                });
            }
        }
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
