//! Owns: memcached 1.6.18's log streams as the `watch` command names them (stream bits, the
//! names `watch` accepts), the events a watcher is sent (`Event`) and their exact line formats,
//! keys URL-encoded as memcached encodes them.
//! Does not: buffer or send lines (see `state::logger` and `server::watcher`).

use std::fmt::Write as _;

/// Stream bits (memcached's `LOG_*` values).
pub const SYSEVENTS: u16 = 1 << 1;
pub const FETCHERS: u16 = 1 << 2;
pub const MUTATIONS: u16 = 1 << 3;
pub const CONNEVENTS: u16 = 1 << 5;
pub const EVICTIONS: u16 = 1 << 6;
pub const RAWCMDS: u16 = 1 << 9;
pub const PROXYREQS: u16 = 1 << 10;
pub const PROXYEVENTS: u16 = 1 << 11;
pub const PROXYUSER: u16 = 1 << 12;

/// The longest key a log line carries (memcached's `KEY_MAX_LENGTH`).
pub const KEY_MAX: usize = 250;

/// The streams `watch` names (words after the command): none means `fetchers`; an unknown name
/// is `None` (memcached answers `ERROR`). Streams ferrocache never produces (sysevents, rawcmds,
/// the proxy's) are accepted as memcached 1.6.18 accepts them.
pub fn streams<'a>(names: impl IntoIterator<Item = &'a [u8]>) -> Option<u16> {
    let mut mask = 0;
    let mut any = false;
    for name in names {
        any = true;
        mask |= match name {
            b"rawcmds" => RAWCMDS,
            b"evictions" => EVICTIONS,
            b"fetchers" => FETCHERS,
            b"mutations" => MUTATIONS,
            b"sysevents" => SYSEVENTS,
            b"connevents" => CONNEVENTS,
            b"proxyreqs" => PROXYREQS,
            b"proxyevents" => PROXYEVENTS,
            b"proxyuser" => PROXYUSER,
            _ => return None,
        };
    }
    Some(if any { mask } else { FETCHERS })
}

/// A key copied into an event (at most `KEY_MAX` bytes, no allocation).
#[derive(Clone, Copy)]
pub struct Key {
    bytes: [u8; KEY_MAX],
    len: u8,
}

impl Key {
    pub fn new(k: &[u8]) -> Key {
        let len = k.len().min(KEY_MAX);
        let mut bytes = [0; KEY_MAX];
        bytes[..len].copy_from_slice(&k[..len]);
        Key {
            bytes,
            len: len as u8,
        }
    }
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

/// How a lookup ended (`status=` of `item_get`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Found {
    NotFound = 0,
    Found = 1,
    Flushed = 2,
    Expired = 3,
}

/// How a store ended (`status=` of `item_store`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stored {
    NotStored,
    Stored,
    Exists,
    NotFound,
    TooLarge,
    NoMemory,
}

/// The storage command (`cmd=` of `item_store`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreCmd {
    Add,
    Set,
    Replace,
    Append,
    Prepend,
    Cas,
}

/// A connection's transport (`transport=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Local,
    Tcp,
    Udp,
}

/// Why a connection closed (`reason=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum CloseReason {
    #[default]
    Error,
    Normal,
    IdleTimeout,
    Shutdown,
}

/// One logged event, with what its line shows.
#[derive(Clone, Copy, Debug)]
pub enum Event {
    /// A key looked up (`size` is the value's length, 0 on a miss).
    ItemGet {
        key: Key,
        found: Found,
        clsid: u32,
        cfd: i64,
        size: usize,
    },
    /// A storage command's result (`ttl` in seconds from now, 0 when the item never expires).
    ItemStore {
        key: Key,
        status: Stored,
        cmd: StoreCmd,
        ttl: u32,
        clsid: u32,
        cfd: i64,
        size: usize,
    },
    /// An item evicted to make room (`ttl` -1 when it never expires, `la`: seconds since its
    /// last access).
    Eviction {
        key: Key,
        fetched: bool,
        ttl: i64,
        la: u32,
        clsid: u32,
        size: usize,
    },
    /// A client connection accepted (`peer` None for a UNIX socket; `core::net` addresses are
    /// plain values).
    ConnNew {
        peer: Option<core::net::SocketAddr>,
        transport: Transport,
        cfd: i64,
    },
    ConnClose {
        peer: Option<core::net::SocketAddr>,
        transport: Transport,
        reason: CloseReason,
        cfd: i64,
    },
}

impl Event {
    /// The stream the event belongs to.
    pub fn stream(&self) -> u16 {
        match self {
            Event::ItemGet { .. } => FETCHERS,
            Event::ItemStore { .. } => MUTATIONS,
            Event::Eviction { .. } => EVICTIONS,
            Event::ConnNew { .. } | Event::ConnClose { .. } => CONNEVENTS,
        }
    }
}

/// memcached's `uriencode`: every byte but ASCII letters, digits and `-._~` as `%XX`.
pub fn uriencode(key: &[u8], out: &mut String) {
    for &b in key {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
}

fn peer_fields(out: &mut String, peer: Option<core::net::SocketAddr>, transport: Transport) {
    let (ip, port) = match peer {
        Some(a) => (a.ip().to_string(), a.port()),
        None => ("unix".to_string(), 0),
    };
    let t = match transport {
        Transport::Local => "local",
        Transport::Tcp => "tcp",
        Transport::Udp => "udp",
    };
    let _ = write!(out, "rip={ip} rport={port} transport={t}");
}

/// Renders one event as memcached's logger thread does: `ts=<sec>.<usec> gid=<n> type=...`,
/// ended by `\n` (the microseconds are not zero-padded, as memcached prints them).
pub fn render(ev: &Event, gid: u64, secs: i64, usecs: u32, out: &mut String) {
    out.clear();
    let _ = write!(out, "ts={secs}.{usecs} gid={gid} ");
    match *ev {
        Event::ItemGet {
            key,
            found,
            clsid,
            cfd,
            size,
        } => {
            out.push_str("type=item_get key=");
            uriencode(key.as_bytes(), out);
            let status = match found {
                Found::NotFound => "not_found",
                Found::Found => "found",
                Found::Flushed => "flushed",
                Found::Expired => "expired",
            };
            let _ = write!(out, " status={status} clsid={clsid} cfd={cfd} size={size}");
        }
        Event::ItemStore {
            key,
            status,
            cmd,
            ttl,
            clsid,
            cfd,
            size,
        } => {
            out.push_str("type=item_store key=");
            uriencode(key.as_bytes(), out);
            let status = match status {
                Stored::NotStored => "not_stored",
                Stored::Stored => "stored",
                Stored::Exists => "exists",
                Stored::NotFound => "not_found",
                Stored::TooLarge => "too_large",
                Stored::NoMemory => "no_memory",
            };
            let cmd = match cmd {
                StoreCmd::Add => "add",
                StoreCmd::Set => "set",
                StoreCmd::Replace => "replace",
                StoreCmd::Append => "append",
                StoreCmd::Prepend => "prepend",
                StoreCmd::Cas => "cas",
            };
            let _ = write!(
                out,
                " status={status} cmd={cmd} ttl={ttl} clsid={clsid} cfd={cfd} size={size}"
            );
        }
        Event::Eviction {
            key,
            fetched,
            ttl,
            la,
            clsid,
            size,
        } => {
            out.push_str("type=eviction key=");
            uriencode(key.as_bytes(), out);
            let fetch = if fetched { "yes" } else { "no" };
            let _ = write!(
                out,
                " fetch={fetch} ttl={ttl} la={la} clsid={clsid} size={size}"
            );
        }
        Event::ConnNew {
            peer,
            transport,
            cfd,
        } => {
            out.push_str("type=conn_new ");
            peer_fields(out, peer, transport);
            let _ = write!(out, " cfd={cfd}");
        }
        Event::ConnClose {
            peer,
            transport,
            reason,
            cfd,
        } => {
            out.push_str("type=conn_close ");
            peer_fields(out, peer, transport);
            let reason = match reason {
                CloseReason::Error => "error",
                CloseReason::Normal => "normal",
                CloseReason::IdleTimeout => "idle_timeout",
                CloseReason::Shutdown => "shutdown",
            };
            let _ = write!(out, " reason={reason} cfd={cfd}");
        }
    }
    out.push('\n');
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn stream_names() {
        assert_eq!(streams([]), Some(FETCHERS));
        assert_eq!(
            streams([&b"mutations"[..], b"evictions"]),
            Some(MUTATIONS | EVICTIONS)
        );
        assert_eq!(streams([&b"proxyuser"[..]]), Some(PROXYUSER));
        // 1.6.18 has no `deletions` stream.
        assert_eq!(streams([&b"fetchers"[..], b"deletions"]), None);
    }

    #[test]
    fn keys_are_uri_encoded() {
        let mut s = String::new();
        uriencode(b"a-b.c_d~e f#/%\xff", &mut s);
        assert_eq!(s, "a-b.c_d~e%20f%23%2F%25%FF");
        let long = [b'#'; 300];
        assert_eq!(Key::new(&long).as_bytes().len(), KEY_MAX);
    }

    #[test]
    fn lines() {
        let mut s = String::new();
        let ev = Event::ItemGet {
            key: Key::new(b"foo"),
            found: Found::NotFound,
            clsid: 0,
            cfd: 17,
            size: 0,
        };
        render(&ev, 3, 1700000000, 5123, &mut s);
        assert_eq!(
            s,
            "ts=1700000000.5123 gid=3 type=item_get key=foo status=not_found clsid=0 cfd=17 size=0\n"
        );
        let ev = Event::ConnClose {
            peer: Some("127.0.0.1:4000".parse().unwrap()),
            transport: Transport::Tcp,
            reason: CloseReason::Normal,
            cfd: 9,
        };
        render(&ev, 1, 1, 0, &mut s);
        assert_eq!(
            s,
            "ts=1.0 gid=1 type=conn_close rip=127.0.0.1 rport=4000 transport=tcp reason=normal cfd=9\n"
        );
    }
}
