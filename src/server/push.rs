//! Owns: the client side of `ferrocache cluster push` — reading each node's current version and
//! pushing one new config (the same bytes, the same version) to every node's admin endpoint.
//! Does not: validate configs beyond building them (see `cluster`).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::cluster::{ClusterConfig, NodeList};

const TIMEOUT: Duration = Duration::from_secs(5);

/// memcached ASCII-auth credentials (for nodes started with `-Y`).
#[derive(Clone, Debug)]
pub struct Login {
    pub user: String,
    pub password: String,
}

fn connect(endpoint: &str, login: Option<&Login>) -> Result<TcpStream, String> {
    let mut s = open(endpoint)?;
    let Some(l) = login else {
        return Ok(s);
    };
    // Log in only where a login is asked for: on a node without `-Y` the token line would be
    // read as a command.
    s.write_all(b"version\r\n").map_err(|e| e.to_string())?;
    let r = read_reply(&mut s, |b| b.ends_with(b"\r\n"))?;
    if r != b"CLIENT_ERROR unauthenticated\r\n" {
        return Ok(s);
    }
    let token = format!("{} {}", l.user, l.password);
    let msg = format!("set auth 0 0 {}\r\n{token}\r\n", token.len());
    s.write_all(msg.as_bytes()).map_err(|e| e.to_string())?;
    let r = read_reply(&mut s, |b| b.ends_with(b"\r\n"))?;
    if r != b"STORED\r\n" {
        return Err(format!(
            "{endpoint}: login failed: {}",
            String::from_utf8_lossy(&r).trim()
        ));
    }
    Ok(s)
}

fn open(endpoint: &str) -> Result<TcpStream, String> {
    let addr = endpoint
        .to_socket_addrs()
        .map_err(|e| format!("{endpoint}: {e}"))?
        .next()
        .ok_or_else(|| format!("{endpoint}: no address"))?;
    let s = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| format!("{endpoint}: {e}"))?;
    s.set_read_timeout(Some(TIMEOUT))
        .map_err(|e| e.to_string())?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    Ok(s)
}

/// Reads a reply until `terminator`, bounded in size.
fn read_reply(s: &mut TcpStream, done: impl Fn(&[u8]) -> bool) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    while !done(&buf) {
        let n = s.read(&mut chunk).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("connection closed".into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.len() > 2 << 20 {
            return Err("reply too long".into());
        }
    }
    Ok(buf)
}

/// The version an endpoint serves now (None: no config yet).
pub fn current_version(endpoint: &str, login: Option<&Login>) -> Result<Option<u64>, String> {
    let mut s = connect(endpoint, login)?;
    s.write_all(b"config get cluster\r\n")
        .map_err(|e| e.to_string())?;
    let r = read_reply(&mut s, |b| {
        b.ends_with(b"END\r\n")
            || b.ends_with(b"ERROR\r\n")
            || b.starts_with(b"CLIENT_ERROR") && b.ends_with(b"\r\n")
    })?;
    if r == b"END\r\n" {
        return Ok(None);
    }
    let text = String::from_utf8_lossy(&r);
    let Some(rest) = text.strip_prefix("CONFIG cluster ") else {
        return Err(format!(
            "{endpoint}: discovery is not enabled ({})",
            text.trim()
        ));
    };
    let version = rest
        .split("\r\n")
        .nth(1)
        .and_then(|l| l.split('\n').next())
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| format!("{endpoint}: unreadable config reply"))?;
    Ok(Some(version))
}

/// Pushes `config` to one endpoint; Ok on `STORED`.
pub fn push_one(
    endpoint: &str,
    config: &ClusterConfig,
    login: Option<&Login>,
) -> Result<(), String> {
    let mut s = connect(endpoint, login)?;
    let p = config.payload();
    let mut msg = format!("config set cluster 0 {}\r\n", p.len()).into_bytes();
    msg.extend_from_slice(p);
    msg.extend_from_slice(b"\r\n");
    s.write_all(&msg).map_err(|e| e.to_string())?;
    let r = read_reply(&mut s, |b| b.ends_with(b"\r\n"))?;
    let line = String::from_utf8_lossy(&r).trim().to_string();
    if line == "STORED" {
        Ok(())
    } else {
        Err(line)
    }
}

/// `ferrocache cluster push --nodes LIST [--version N] ENDPOINT...`: returns the report and
/// whether every endpoint stored the config.
pub fn push_command(
    nodes: &[String],
    version: Option<u64>,
    endpoints: &[String],
    login: Option<&Login>,
) -> (String, bool) {
    let mut report = String::new();
    let list = match NodeList::parse_args(nodes) {
        Ok(l) => l,
        Err(e) => return (format!("--nodes: {}\n", e.detail()), false),
    };
    let version = match version.or(list.version) {
        Some(v) => v,
        None => {
            // One past the newest version any node serves, so every node accepts it.
            let mut newest = 0;
            for ep in endpoints {
                match current_version(ep, login) {
                    Ok(v) => newest = newest.max(v.unwrap_or(0)),
                    Err(e) => return (format!("{e}\n"), false),
                }
            }
            newest + 1
        }
    };
    let config = match ClusterConfig::new(version, list.nodes) {
        Ok(c) => c,
        Err(e) => return (format!("{}\n", e.detail()), false),
    };
    let mut all = true;
    for ep in endpoints {
        match push_one(ep, &config, login) {
            Ok(()) => report.push_str(&format!("{ep}: STORED version {version}\n")),
            Err(e) => {
                all = false;
                report.push_str(&format!("{ep}: FAILED {e}\n"));
            }
        }
    }
    (report, all)
}
