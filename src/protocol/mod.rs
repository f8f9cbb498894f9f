//! Owns: the wire formats — parsing requests out of a byte buffer: the shared result types, the
//! limits, protocol detection, and the ASCII dispatcher (`parse_ascii`, the one place that routes
//! a line to `text`, `meta` or `admin`). Pure: no sockets, no store, no threads; never panics on any input.
//! Does not: execute requests (see `exec`) or own buffers (see `server`).
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod admin;
pub mod ascii;
pub mod binary;
pub mod http;
pub mod meta;
pub mod text;
pub mod udp;
pub mod watch;

use ascii::{reply, Command, Tokens, ERROR};

/// Result of parsing a prefix of the input.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed<T> {
    /// A request and the bytes it used.
    Complete(T, usize),
    /// More bytes are needed.
    Incomplete,
}

/// Input that ends the connection (memcached closes silently in these cases).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("no newline within the line limit")]
    LineTooLong,
    #[error("HTTP request on the memcached port")]
    Http,
    #[error("bad magic byte in a binary request")]
    BadMagic,
    #[error("authentication token too long")]
    AuthTooLong,
}

/// Limits the parser enforces.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Longest key (memcached: 250).
    pub max_key: usize,
    /// Largest item (`-I`); longer data blocks are swallowed with an error.
    pub item_size_max: usize,
    /// A line without a newline longer than this closes the connection (memcached: 2048),
    /// unless it is a `get`/`gets` line.
    pub max_line: usize,
    /// Longest `get`/`gets` line accepted.
    pub max_get_line: usize,
    /// `config get|set` are commands (Auto Discovery on); otherwise they are unknown (`ERROR`).
    pub config_commands: bool,
    /// An item's size as `-I` counts it, from its key and value lengths, flags and whether CAS
    /// is on. The store defines it (`store::item::limit_size`, memcached's count); the server
    /// passes it in, so the parser refuses exactly what the store would, before the value
    /// arrives, without knowing the store.
    pub item_size: fn(klen: usize, vlen: usize, flags: u32, cas: bool) -> usize,
    /// CAS is on (not `-C`): items carry a CAS value.
    pub cas: bool,
}

impl Limits {
    /// Whether an item with this key, value length and flags is over the item size limit (`-I`).
    #[inline]
    pub fn too_large(&self, klen: usize, vlen: usize, flags: u32) -> bool {
        (self.item_size)(klen, vlen, flags, self.cas) > self.item_size_max
    }
}

/// A stand-in for the store's count in `Limits::default()`: items are only key and value.
fn key_and_value(klen: usize, vlen: usize, _flags: u32, _cas: bool) -> usize {
    klen + vlen
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_key: 250,
            item_size_max: 1 << 20,
            max_line: 2048,
            max_get_line: 1 << 20,
            config_commands: false,
            item_size: key_and_value,
            cas: true,
        }
    }
}

/// Which protocol a connection speaks, decided from its first byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Text,
    Binary,
}

/// memcached's per-connection protocol detection: a first byte of 0x80 means binary.
pub fn detect(first: u8) -> Kind {
    if first == 0x80 {
        Kind::Binary
    } else {
        Kind::Text
    }
}

/// Parses one ASCII request (classic text or meta) from the start of `buf`: frames the line,
/// tokenizes it, and hands it to the parser of its command word.
pub fn parse_ascii<'a>(buf: &'a [u8], lim: &Limits) -> Result<Parsed<Command<'a>>, ParseError> {
    let Some((line, used)) = ascii::line(buf, lim)? else {
        return Ok(Parsed::Incomplete);
    };
    let t = Tokens::new(line);
    match t.get(0) {
        w if t.ntokens() < 2 || w.len() < 2 => Ok(Parsed::Complete(reply(ERROR, false), used)),
        [b'm', _] => meta::parse_line(buf, used, t, lim),
        _ => match admin::parse(&t) {
            Some(c) => Ok(Parsed::Complete(c, used)),
            None => text::parse_command(buf, used, line, t, lim),
        },
    }
}
