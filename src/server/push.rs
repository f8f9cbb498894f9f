//! Owns: the client side of the admin endpoints — reading the config each node serves, and
//! pushing one new config (the same bytes, the same version) to every node, each push conditional
//! on the version that node was seen serving (`ferrocache cluster push`, the supervisor).
//! Does not: validate configs beyond building them (see `cluster`).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::cluster::{ClusterConfig, NodeList, EVENT_KEY};

const TIMEOUT: Duration = Duration::from_secs(5);

/// memcached ASCII-auth credentials (for nodes started with `-Y`).
#[derive(Clone, Debug)]
pub struct Login {
    pub user: String,
    pub password: String,
}

fn connect(endpoint: &str, login: Option<&Login>, timeout: Duration) -> Result<TcpStream, String> {
    let mut s = open(endpoint, timeout)?;
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

fn open(endpoint: &str, timeout: Duration) -> Result<TcpStream, String> {
    let addr = endpoint
        .to_socket_addrs()
        .map_err(|e| format!("{endpoint}: {e}"))?
        .next()
        .ok_or_else(|| format!("{endpoint}: no address"))?;
    let s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{endpoint}: {e}"))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout))
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

/// Sends one request and reads its reply up to `END`, or an error line.
fn call(
    endpoint: &str,
    login: Option<&Login>,
    timeout: Duration,
    req: &[u8],
) -> Result<Vec<u8>, String> {
    let mut s = connect(endpoint, login, timeout)?;
    s.write_all(req).map_err(|e| e.to_string())?;
    read_reply(&mut s, |b| {
        b.ends_with(b"END\r\n")
            || b.ends_with(b"ERROR\r\n")
            || b.starts_with(b"CLIENT_ERROR") && b.ends_with(b"\r\n")
    })
}

/// The config an endpoint serves now (None: no config yet).
pub fn fetch_config(
    endpoint: &str,
    login: Option<&Login>,
) -> Result<Option<ClusterConfig>, String> {
    fetch_config_within(endpoint, login, TIMEOUT)
}

/// [`fetch_config`] with every step bounded by `timeout` (the supervisor's probe).
pub fn fetch_config_within(
    endpoint: &str,
    login: Option<&Login>,
    timeout: Duration,
) -> Result<Option<ClusterConfig>, String> {
    let r = call(endpoint, login, timeout, b"config get cluster\r\n")?;
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
    let unreadable = || format!("{endpoint}: unreadable config reply");
    let (len, body) = rest.split_once("\r\n").ok_or_else(unreadable)?;
    let len: usize = len
        .rsplit(' ')
        .next()
        .and_then(|l| l.parse().ok())
        .ok_or_else(unreadable)?;
    let payload = body.as_bytes().get(..len).ok_or_else(unreadable)?;
    ClusterConfig::parse_payload(payload)
        .map(Some)
        .map_err(|e| format!("{endpoint}: {}", e.detail()))
}

/// The version an endpoint serves now (None: no config yet).
pub fn current_version(endpoint: &str, login: Option<&Login>) -> Result<Option<u64>, String> {
    Ok(fetch_config(endpoint, login)?.map(|c| c.version()))
}

/// Pushes `config` to one endpoint; Ok on `STORED`. With `replaces`, the node stores it only
/// while it serves that version (`config set cluster 0 <bytes> <replaces>`).
pub fn push_one(
    endpoint: &str,
    config: &ClusterConfig,
    replaces: Option<u64>,
    login: Option<&Login>,
) -> Result<(), String> {
    let mut s = connect(endpoint, login, TIMEOUT)?;
    let p = config.payload();
    let cond = replaces.map_or(String::new(), |v| format!(" {v}"));
    let mut msg = format!("config set cluster 0 {}{cond}\r\n", p.len()).into_bytes();
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

/// Tells a node why the supervisor changed its list (`config set cluster_event`): the node
/// counts it in `stats cluster` and keeps the last one.
pub fn notify(endpoint: &str, reason: &str, login: Option<&Login>) -> Result<(), String> {
    let mut s = connect(endpoint, login, TIMEOUT)?;
    let mut msg = format!("config set {EVENT_KEY} 0 {}\r\n", reason.len()).into_bytes();
    msg.extend_from_slice(reason.as_bytes());
    msg.extend_from_slice(b"\r\n");
    s.write_all(&msg).map_err(|e| e.to_string())?;
    let r = read_reply(&mut s, |b| b.ends_with(b"\r\n"))?;
    match String::from_utf8_lossy(&r).trim() {
        "STORED" => Ok(()),
        other => Err(other.to_string()),
    }
}

/// `stats cluster` of an endpoint as (name, value) pairs.
pub fn cluster_stats(
    endpoint: &str,
    login: Option<&Login>,
) -> Result<Vec<(String, String)>, String> {
    let r = call(endpoint, login, TIMEOUT, b"stats cluster\r\n")?;
    let text = String::from_utf8_lossy(&r);
    if !text.ends_with("END\r\n") {
        return Err(text.trim().to_string());
    }
    Ok(text
        .lines()
        .filter_map(|l| l.strip_prefix("STAT "))
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

/// `ferrocache cluster push --nodes LIST [--version N] ENDPOINT...`: returns the report and
/// whether every endpoint stored the config. Each push replaces the version read from that
/// endpoint just before, so a change made meanwhile (another operator, the supervisor) is
/// reported as a mismatch instead of being overwritten.
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
    let explicit = version.or(list.version);
    // What each endpoint serves now: the version its push replaces.
    let mut seen = Vec::with_capacity(endpoints.len());
    for ep in endpoints {
        match current_version(ep, login) {
            Ok(v) => seen.push(Ok(v)),
            // Without --version every endpoint must answer (the version depends on all of them).
            Err(e) if explicit.is_none() => return (format!("{e}\n"), false),
            Err(e) => seen.push(Err(e)),
        }
    }
    // One past the newest version any node serves, so every node accepts it.
    let version = explicit.unwrap_or_else(|| {
        seen.iter()
            .filter_map(|v| v.as_ref().ok().copied().flatten())
            .max()
            .unwrap_or(0)
            + 1
    });
    let config = match ClusterConfig::new(version, list.nodes) {
        Ok(c) => c,
        Err(e) => return (format!("{}\n", e.detail()), false),
    };
    let mut all = true;
    for (ep, seen) in endpoints.iter().zip(seen) {
        let pushed = seen.and_then(|replaces| push_one(ep, &config, replaces, login));
        match pushed {
            Ok(()) => report.push_str(&format!("{ep}: STORED version {version}\n")),
            Err(e) => {
                all = false;
                report.push_str(&format!("{ep}: FAILED {e}\n"));
            }
        }
    }
    (report, all)
}
