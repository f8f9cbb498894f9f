//! Owns: what every ASCII parser (classic text, meta, admin) shares — line framing, the
//! tokenizer, data-block framing, `Command` (every ASCII request), the common error lines and
//! the ASCII reply encoders. Imports no sibling module: `text`, `meta` and `admin` import it, and
//! `protocol::parse_ascii` routes a line to one of them.
//! Does not: recognise any command word.

use super::{Limits, ParseError};
use crate::num::strtoul32;

/// memcached's `MAX_TOKENS`: at most 23 words are split off a line, the rest stays together.
pub const MAX_TOKENS: usize = 24;

/// The words of one command line (split on single spaces only, as memcached does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tokens<'a> {
    words: [&'a [u8]; MAX_TOKENS - 1],
    n: usize,
    /// Unsplit remainder when the line had more than 23 words.
    pub rest: &'a [u8],
}

impl<'a> Tokens<'a> {
    pub fn new(line: &'a [u8]) -> Tokens<'a> {
        let mut words: [&'a [u8]; MAX_TOKENS - 1] = [&[]; MAX_TOKENS - 1];
        let mut n = 0;
        let mut i = 0;
        let mut rest: &'a [u8] = &[];
        while i < line.len() {
            while i < line.len() && line[i] == b' ' {
                i += 1;
            }
            if i >= line.len() {
                break;
            }
            if n == MAX_TOKENS - 1 {
                rest = &line[i..];
                break;
            }
            let start = i;
            while i < line.len() && line[i] != b' ' {
                i += 1;
            }
            words[n] = &line[start..i];
            n += 1;
        }
        Tokens { words, n, rest }
    }
    /// memcached's `ntokens`: words plus the terminal token.
    pub fn ntokens(&self) -> usize {
        self.n + 1
    }
    pub fn len(&self) -> usize {
        self.n
    }
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }
    /// Word `i`, or an empty slice past the end.
    pub fn get(&self, i: usize) -> &'a [u8] {
        if i < self.n {
            self.words[i]
        } else {
            &[]
        }
    }
    /// The last word is exactly `noreply`.
    pub fn noreply(&self) -> bool {
        self.n > 0 && self.words[self.n - 1] == b"noreply"
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GetKind {
    Get,
    Gets,
    Gat,
    Gats,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreCmd {
    Set,
    Add,
    Replace,
    Append,
    Prepend,
    Cas,
}

/// A parsed text command. Keys and data borrow from the input buffer.
// `Meta` carries its tokenized line (as before, when the admin variants did too); boxing it would
// allocate per request.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Command<'a> {
    /// `config get <key>` (Auto Discovery).
    ConfigGet {
        key: &'a [u8],
    },
    /// `config set <key> <flags> <bytes> [<replaces>] [noreply]` and its data block; `replaces`
    /// makes it conditional on the version served (a compare-and-set).
    ConfigSet {
        key: &'a [u8],
        data: &'a [u8],
        replaces: Option<u64>,
        noreply: bool,
    },
    Get {
        kind: GetKind,
        exptime: i32,
        /// The keys, space separated, not yet checked for length.
        keys: &'a [u8],
    },
    Store {
        cmd: StoreCmd,
        key: &'a [u8],
        flags: u32,
        exptime: i32,
        cas: u64,
        data: &'a [u8],
        noreply: bool,
    },
    Delete {
        key: &'a [u8],
        noreply: bool,
    },
    Arith {
        incr: bool,
        key: &'a [u8],
        delta: u64,
        noreply: bool,
    },
    Touch {
        key: &'a [u8],
        exptime: i32,
        noreply: bool,
    },
    FlushAll {
        delay: i32,
        noreply: bool,
    },
    Version,
    Verbosity {
        level: u32,
        noreply: bool,
    },
    Quit,
    Shutdown {
        graceful: bool,
    },
    /// `shutdown` with an argument other than `graceful`.
    ShutdownBadMode,
    /// `refresh_certs [noreply]`: reload the TLS certificates for new connections.
    RefreshCerts {
        noreply: bool,
    },
    /// `cache_memlimit <mb> [noreply]`.
    MemLimit {
        mb: u32,
        noreply: bool,
    },
    /// `stats [group ...]` (also binary STAT, by its key).
    Stats(Stats<'a>),
    /// `slabs reassign <src> <dst>`.
    SlabsReassign {
        src: i32,
        dst: i32,
    },
    /// `slabs automove <level> [noreply]`.
    SlabsAutomove {
        level: u32,
        noreply: bool,
    },
    /// `lru_crawler <sub> ...`.
    LruCrawler(LruCrawler<'a>),
    /// `lru tune|mode|temp_ttl ...`.
    Lru {
        cmd: Lru,
        noreply: bool,
    },
    /// `watch [streams...]`: the stream bits, or `None` for an unknown stream name.
    Watch {
        streams: Option<u16>,
        noreply: bool,
    },
    /// `mn`: meta no-op, answered `MN`.
    MetaNoop,
    /// A meta command (`mg ms md ma me`) with its words and, for `ms`, its data block.
    Meta {
        tokens: Tokens<'a>,
        data: &'a [u8],
    },
    /// A storage command whose data block did not end in `\r\n` (its bytes are consumed).
    BadDataChunk {
        noreply: bool,
    },
    /// The parser's own reply: an error line (silenced when `noreply`).
    Reply {
        msg: &'static str,
        noreply: bool,
    },
    /// Reply, then discard `skip` more bytes of input (a data block too large to store).
    Swallow {
        msg: &'static str,
        noreply: bool,
        skip: usize,
        too_large: bool,
        /// For `set`: the key whose old value must go (memcached never leaves stale data).
        unlink: Option<&'a [u8]>,
    },
}

/// A `stats` group (parsed in `admin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stats<'a> {
    /// `stats` alone.
    General,
    Reset,
    DetailOn,
    DetailOff,
    DetailDump,
    /// `stats detail` with another word: the usage line (binary: not found).
    DetailUsage,
    Settings,
    /// `stats cachedump <class> <limit>`, or the error line for bad arguments (given only once
    /// dumps are allowed).
    Cachedump(Result<Cachedump, &'static str>),
    Conns,
    Items,
    Slabs,
    Sizes,
    SizesEnable,
    SizesDisable,
    /// `stats cluster` (a group only while Auto Discovery is on).
    Cluster,
    /// `stats ferrocache`: ferrocache's own fields (its version, shards, pages in use), kept out
    /// of the general group so that `stats` is field for field memcached's.
    Ferrocache,
    /// Any other group: `ERROR` (binary: not found).
    Unknown(&'a [u8]),
}

/// `stats cachedump` arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cachedump {
    /// Class id (1-based, below 64).
    pub class: u32,
    /// Most items to list; 0 lists all.
    pub limit: u32,
}

/// A list of class ids as `lru_crawler` takes it: `all` or comma-separated ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassIds<'a>(pub &'a [u8]);

impl ClassIds<'_> {
    /// The list is `all`, or every id in it names one of `classes` classes (ids are 1-based).
    pub fn within(&self, classes: usize) -> bool {
        self.0 == b"all"
            || self
                .0
                .split(|&b| b == b',')
                .all(|c| strtoul32(c).is_some_and(|id| id >= 1 && (id as usize) <= classes))
    }
}

/// `lru_crawler` subcommands that reach the executor (argument errors are `Command::Reply`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LruCrawler<'a> {
    Crawl(ClassIds<'a>),
    /// `metadump <ids|all|hash>`; `hash` is `None`.
    Metadump(Option<ClassIds<'a>>),
    Tocrawl(u32),
    /// Microseconds between crawl steps (at most one second).
    Sleep(u32),
    Enable,
    Disable,
}

/// `lru` subcommands (argument errors are `Command::Reply`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Lru {
    Tune {
        hot_pct: u32,
        warm_pct: u32,
        hot_factor: f64,
        warm_factor: f64,
    },
    /// `mode flat|segmented` (only with the LRU maintainer).
    Mode { segmented: bool },
    /// `temp_ttl <ttl>` (only with the LRU maintainer); a negative ttl turns the temp LRU off.
    TempTtl(i32),
}

pub const ERROR: &str = "ERROR";
pub const BAD_FORMAT: &str = "CLIENT_ERROR bad command line format";
pub const BAD_CHUNK: &str = "CLIENT_ERROR bad data chunk";
pub const TOO_LARGE: &str = "SERVER_ERROR object too large for cache";
pub const OUT_OF_MEMORY: &str = "SERVER_ERROR out of memory storing object";
pub const BAD_EXPTIME: &str = "CLIENT_ERROR invalid exptime argument";
pub const BAD_DELTA: &str = "CLIENT_ERROR invalid numeric delta argument";
pub const NON_NUMERIC: &str = "CLIENT_ERROR cannot increment or decrement non-numeric value";
pub const DELETE_USAGE: &str =
    "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]";

/// The parser's own reply line (silenced when `noreply`).
pub fn reply<'a>(msg: &'static str, noreply: bool) -> Command<'a> {
    Command::Reply { msg, noreply }
}

/// A data block of `vlen` bytes and its `\r\n`, starting at `at`.
#[derive(Debug, PartialEq, Eq)]
pub enum Block<'a> {
    /// Not all of it has arrived.
    Incomplete,
    /// The block does not end in `\r\n`; its bytes run to `end`.
    BadChunk { end: usize },
    /// The data (without `\r\n`) and the end of the block.
    Data { data: &'a [u8], end: usize },
}

/// Frames the data block of `vlen` bytes following a command line that ended at `at`.
pub fn data_block(buf: &[u8], at: usize, vlen: usize) -> Block<'_> {
    let end = at + vlen + 2;
    if buf.len() < end {
        return Block::Incomplete;
    }
    if &buf[at + vlen..end] != b"\r\n" {
        return Block::BadChunk { end };
    }
    Block::Data {
        data: &buf[at..at + vlen],
        end,
    }
}

/// Finds the end of the command line: returns (line without `\r\n`/`\n`, bytes through `\n`).
pub fn line<'a>(buf: &'a [u8], lim: &Limits) -> Result<Option<(&'a [u8], usize)>, ParseError> {
    match memchr(b'\n', buf) {
        Some(nl) => {
            let mut end = nl;
            if nl > 1 && buf[nl - 1] == b'\r' {
                end -= 1;
            }
            Ok(Some((&buf[..end], nl + 1)))
        }
        None => {
            if buf.len() > lim.max_line {
                let lead = buf.iter().take_while(|&&b| b == b' ').count();
                let rest = &buf[lead..];
                let is_get = rest.starts_with(b"get ") || rest.starts_with(b"gets ");
                if lead > 100 || !is_get || buf.len() > lim.max_get_line {
                    return Err(ParseError::LineTooLong);
                }
            }
            Ok(None)
        }
    }
}

/// The first `needle` in `hay` (the memchr crate: SIMD, not a byte loop).
#[inline]
pub fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    memchr::memchr(needle, hay)
}

/// The rest of the line after skipping `n` words.
pub fn after_words(text: &[u8], n: usize) -> &[u8] {
    let mut i = 0;
    for _ in 0..n {
        while i < text.len() && text[i] == b' ' {
            i += 1;
        }
        while i < text.len() && text[i] != b' ' {
            i += 1;
        }
    }
    &text[i..]
}

/// Iterates over the space-separated keys of a get line.
pub fn keys(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    line.split(|&b| b == b' ').filter(|k| !k.is_empty())
}

/// Appends `VALUE <key> <flags> <bytes>[ <cas>]\r\n<data>\r\n`.
pub fn write_value<'a>(
    out: &mut Vec<u8>,
    key: &[u8],
    flags: u32,
    data: impl IntoIterator<Item = &'a [u8]>,
    len: usize,
    cas: Option<u64>,
) {
    write_value_line(out, key, flags, len, cas);
    out.reserve(len + 2);
    for part in data {
        out.extend_from_slice(part);
    }
    out.extend_from_slice(b"\r\n");
}

/// Appends `VALUE <key> <flags> <bytes>[ <cas>]\r\n`: a value's line, its data to follow.
pub fn write_value_line(out: &mut Vec<u8>, key: &[u8], flags: u32, len: usize, cas: Option<u64>) {
    let mut b = itoa::Buffer::new();
    out.extend_from_slice(b"VALUE ");
    out.extend_from_slice(key);
    out.push(b' ');
    out.extend_from_slice(b.format(flags).as_bytes());
    out.push(b' ');
    out.extend_from_slice(b.format(len).as_bytes());
    if let Some(c) = cas {
        out.push(b' ');
        out.extend_from_slice(b.format(c).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

/// The reply writer of one ASCII request that may carry `noreply`: such a request writes
/// nothing, its errors included (memcached's rule).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    pub noreply: bool,
}

impl Reply {
    /// Appends `line` and its `\r\n` unless the request was `noreply`.
    pub fn line(self, out: &mut Vec<u8>, line: &str) {
        if !self.noreply {
            write_line(out, line);
        }
    }
    /// Appends a number line unless the request was `noreply`.
    pub fn number(self, out: &mut Vec<u8>, n: u64) {
        if !self.noreply {
            let mut b = itoa::Buffer::new();
            write_line(out, b.format(n));
        }
    }
}

/// Appends a reply line with its `\r\n`.
pub fn write_line(out: &mut Vec<u8>, line: &str) {
    out.extend_from_slice(line.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends `STAT <name> <value>\r\n`.
pub fn write_stat(out: &mut Vec<u8>, name: &str, value: impl std::fmt::Display) {
    use std::io::Write;
    let _ = write!(out, "STAT {name} {value}\r\n");
}
