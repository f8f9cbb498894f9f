//! Owns: the client side of the admin endpoints — reading the config each node serves, and
//! pushing one new config (the same bytes, the same version) to every node, each push conditional
//! on the version that node was seen serving (`ferrocache cluster push`, the supervisor).
//! Does not: validate configs beyond building them (see `cluster`).
//!
//! Every connection is plaintext or, with `Access::tls` (`--tls`), TLS (rustls, the CA and
//! client certificate of `tls::ClientTls`); the health check opens its probes here too.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use rustls::{ClientConnection, StreamOwned};

use crate::cluster::{ClusterConfig, NodeList, EVENT_KEY};
use crate::tls::ClientTls;

const TIMEOUT: Duration = Duration::from_secs(5);

/// memcached ASCII-auth credentials (for nodes started with `-Y`).
#[derive(Clone, Debug)]
pub struct Login {
    pub user: String,
    pub password: String,
}

/// How the tools reach the nodes: a login for `-Y` nodes, TLS for `-Z` ones.
#[derive(Clone, Debug, Default)]
pub struct Access {
    pub login: Option<Login>,
    pub tls: Option<ClientTls>,
}

/// A connection to a node: plaintext or TLS.
#[allow(missing_debug_implementations)]
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

/// Connects to `addr` (reached as `host`, the name TLS verifies), every step bounded by
/// `timeout`; with `tls`, the handshake is done on return.
pub fn open_addr(
    addr: SocketAddr,
    host: &str,
    timeout: Duration,
    tls: Option<&ClientTls>,
) -> Result<Conn, String> {
    let s = TcpStream::connect_timeout(&addr, timeout).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    s.set_nodelay(true).map_err(|e| e.to_string())?;
    let Some(tls) = tls else {
        return Ok(Conn::Plain(s));
    };
    let name = tls.name_for(host)?;
    let c = ClientConnection::new(tls.config(), name).map_err(|e| format!("TLS: {e}"))?;
    let mut s = StreamOwned::new(c, s);
    while s.conn.is_handshaking() {
        s.conn
            .complete_io(&mut s.sock)
            .map_err(|e| format!("TLS handshake: {e}"))?;
    }
    Ok(Conn::Tls(Box::new(s)))
}

fn connect(endpoint: &str, access: &Access, timeout: Duration) -> Result<Conn, String> {
    let mut s = open(endpoint, timeout, access.tls.as_ref())?;
    let Some(l) = &access.login else {
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

fn open(endpoint: &str, timeout: Duration, tls: Option<&ClientTls>) -> Result<Conn, String> {
    let addr = endpoint
        .to_socket_addrs()
        .map_err(|e| format!("{endpoint}: {e}"))?
        .next()
        .ok_or_else(|| format!("{endpoint}: no address"))?;
    let host = endpoint.rsplit_once(':').map_or(endpoint, |(h, _)| h);
    open_addr(addr, host, timeout, tls).map_err(|e| format!("{endpoint}: {e}"))
}

/// Reads a reply until `terminator`, bounded in size.
fn read_reply(s: &mut Conn, done: impl Fn(&[u8]) -> bool) -> Result<Vec<u8>, String> {
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
fn call(endpoint: &str, access: &Access, timeout: Duration, req: &[u8]) -> Result<Vec<u8>, String> {
    let mut s = connect(endpoint, access, timeout)?;
    s.write_all(req).map_err(|e| e.to_string())?;
    read_reply(&mut s, |b| {
        b.ends_with(b"END\r\n")
            || b.ends_with(b"ERROR\r\n")
            || b.starts_with(b"CLIENT_ERROR") && b.ends_with(b"\r\n")
    })
}

/// The config an endpoint serves now (None: no config yet).
pub fn fetch_config(endpoint: &str, access: &Access) -> Result<Option<ClusterConfig>, String> {
    fetch_config_within(endpoint, access, TIMEOUT)
}

/// [`fetch_config`] with every step bounded by `timeout` (the supervisor's probe).
pub fn fetch_config_within(
    endpoint: &str,
    access: &Access,
    timeout: Duration,
) -> Result<Option<ClusterConfig>, String> {
    let r = call(endpoint, access, timeout, b"config get cluster\r\n")?;
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
pub fn current_version(endpoint: &str, access: &Access) -> Result<Option<u64>, String> {
    Ok(fetch_config(endpoint, access)?.map(|c| c.version()))
}

/// Pushes `config` to one endpoint; Ok on `STORED`. With `replaces`, the node stores it only
/// while it serves that version (`config set cluster 0 <bytes> <replaces>`).
pub fn push_one(
    endpoint: &str,
    config: &ClusterConfig,
    replaces: Option<u64>,
    access: &Access,
) -> Result<(), String> {
    let mut s = connect(endpoint, access, TIMEOUT)?;
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
pub fn notify(endpoint: &str, reason: &str, access: &Access) -> Result<(), String> {
    let mut s = connect(endpoint, access, TIMEOUT)?;
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
pub fn cluster_stats(endpoint: &str, access: &Access) -> Result<Vec<(String, String)>, String> {
    let r = call(endpoint, access, TIMEOUT, b"stats cluster\r\n")?;
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
    access: &Access,
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
        match current_version(ep, access) {
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
        let pushed = seen.and_then(|replaces| push_one(ep, &config, replaces, access));
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
