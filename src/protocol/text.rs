//! Owns: memcached's text protocol — the line tokenizer, parsing of every classic command into a
//! `Command`, and the reply strings. Follows memcached 1.6.18's `proto_text.c` token-count rules
//! (a wrong count of tokens is `ERROR`; bad numbers are `CLIENT_ERROR ...`).
//! Does not: touch the store; meta commands live in `meta`.

use super::{Limits, ParseError, Parsed};
use crate::num::{strtol32, strtoul32, strtoull};

/// memcached's `MAX_TOKENS`: at most 23 words are split off a line, the rest stays together.
pub const MAX_TOKENS: usize = 24;

/// The words of one command line (split on single spaces only, as memcached does).
#[derive(Debug, Clone, Copy)]
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
#[derive(Debug, Clone, Copy)]
pub enum Command<'a> {
    /// `config get <key>` (Auto Discovery).
    ConfigGet {
        key: &'a [u8],
    },
    /// `config set <key> <flags> <bytes> [noreply]` and its data block.
    ConfigSet {
        key: &'a [u8],
        data: &'a [u8],
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
    MemLimit {
        mb: Option<u32>,
        noreply: bool,
    },
    /// `stats [sub args...]`.
    Stats {
        tokens: Tokens<'a>,
    },
    SlabsReassign {
        src: i32,
        dst: i32,
    },
    SlabsAutomove {
        level: u32,
        noreply: bool,
    },
    /// `lru_crawler ...` and `lru ...`: admin commands with their words.
    LruCrawler {
        tokens: Tokens<'a>,
    },
    Lru {
        tokens: Tokens<'a>,
        noreply: bool,
    },
    Watch,
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

fn reply<'a>(msg: &'static str, noreply: bool) -> Command<'a> {
    Command::Reply { msg, noreply }
}

/// Finds the end of the command line: returns (line without `\r\n`/`\n`, bytes through `\n`).
fn line<'a>(buf: &'a [u8], lim: &Limits) -> Result<Option<(&'a [u8], usize)>, ParseError> {
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

#[inline]
fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&b| b == needle)
}

/// Parses one text command from the start of `buf`.
pub fn parse<'a>(buf: &'a [u8], lim: &Limits) -> Result<Parsed<Command<'a>>, ParseError> {
    let Some((text, used)) = line(buf, lim)? else {
        return Ok(Parsed::Incomplete);
    };
    let t = Tokens::new(text);
    let nt = t.ntokens();
    let cmd = t.get(0);
    if nt < 2 || cmd.len() < 2 {
        return Ok(Parsed::Complete(reply(ERROR, false), used));
    }
    let done = |c: Command<'a>| Ok(Parsed::Complete(c, used));
    match cmd {
        b"get" | b"gets" | b"bget" => {
            if nt < 3 {
                return done(reply(ERROR, false));
            }
            let kind = if cmd == b"gets" {
                GetKind::Gets
            } else {
                GetKind::Get
            };
            done(Command::Get {
                kind,
                exptime: 0,
                keys: after_words(text, 1),
            })
        }
        b"gat" | b"gats" => {
            if nt < 3 {
                return done(reply(ERROR, false));
            }
            let Some(exptime) = strtol32(t.get(1)) else {
                return done(reply(BAD_EXPTIME, false));
            };
            let kind = if cmd == b"gats" {
                GetKind::Gats
            } else {
                GetKind::Gat
            };
            done(Command::Get {
                kind,
                exptime,
                keys: after_words(text, 2),
            })
        }
        b"set" | b"add" | b"replace" | b"append" | b"prepend" | b"cas" => {
            let is_cas = cmd == b"cas";
            let ok = if is_cas {
                nt == 7 || nt == 8
            } else {
                nt == 6 || nt == 7
            };
            if !ok {
                return done(reply(ERROR, false));
            }
            parse_store(buf, used, &t, is_cas, lim)
        }
        b"config" if lim.config_commands => parse_config(buf, used, &t),
        b"delete" => {
            if !(3..=5).contains(&nt) {
                return done(reply(ERROR, false));
            }
            let noreply = t.noreply();
            if nt > 3 {
                let hold_zero = t.get(2) == b"0";
                let valid =
                    (nt == 4 && (hold_zero || noreply)) || (nt == 5 && hold_zero && noreply);
                if !valid {
                    return done(reply(DELETE_USAGE, noreply));
                }
            }
            let key = t.get(1);
            if key.len() > lim.max_key {
                return done(reply(BAD_FORMAT, noreply));
            }
            done(Command::Delete { key, noreply })
        }
        b"incr" | b"decr" | b"touch" => {
            if nt != 4 && nt != 5 {
                return done(reply(ERROR, false));
            }
            let noreply = t.noreply();
            let key = t.get(1);
            if key.len() > lim.max_key {
                return done(reply(BAD_FORMAT, noreply));
            }
            if cmd == b"touch" {
                let Some(exptime) = strtol32(t.get(2)) else {
                    return done(reply(BAD_EXPTIME, noreply));
                };
                return done(Command::Touch {
                    key,
                    exptime,
                    noreply,
                });
            }
            let Some(delta) = strtoull(t.get(2)) else {
                return done(reply(BAD_DELTA, noreply));
            };
            done(Command::Arith {
                incr: cmd == b"incr",
                key,
                delta,
                noreply,
            })
        }
        b"flush_all" => {
            if !(2..=4).contains(&nt) {
                return done(reply(ERROR, false));
            }
            let noreply = t.noreply();
            let mut delay = 0;
            if nt != if noreply { 3 } else { 2 } {
                match strtol32(t.get(1)) {
                    Some(d) => delay = d,
                    None => return done(reply(BAD_EXPTIME, noreply)),
                }
            }
            done(Command::FlushAll { delay, noreply })
        }
        b"version" => done(Command::Version),
        b"quit" => done(Command::Quit),
        b"verbosity" => {
            if nt != 3 && nt != 4 {
                return done(reply(ERROR, false));
            }
            let noreply = t.noreply();
            match strtoul32(t.get(1)) {
                Some(level) => done(Command::Verbosity { level, noreply }),
                None => done(reply(BAD_FORMAT, noreply)),
            }
        }
        b"shutdown" => match nt {
            2 => done(Command::Shutdown { graceful: false }),
            3 if t.get(1) == b"graceful" => done(Command::Shutdown { graceful: true }),
            _ => done(Command::ShutdownBadMode),
        },
        b"cache_memlimit" => {
            if nt != 3 && nt != 4 {
                return done(reply(ERROR, false));
            }
            done(Command::MemLimit {
                mb: strtoul32(t.get(1)),
                noreply: t.noreply(),
            })
        }
        b"stats" => done(Command::Stats { tokens: t }),
        b"slabs" => {
            if nt == 5 && t.get(1) == b"reassign" {
                match (strtol32(t.get(2)), strtol32(t.get(3))) {
                    (Some(src), Some(dst)) => done(Command::SlabsReassign { src, dst }),
                    _ => done(reply(BAD_FORMAT, false)),
                }
            } else if nt >= 4 && t.get(1) == b"automove" {
                let noreply = t.noreply();
                match strtoul32(t.get(2)) {
                    Some(level) => done(Command::SlabsAutomove { level, noreply }),
                    None => done(reply(BAD_FORMAT, noreply)),
                }
            } else {
                done(reply(ERROR, false))
            }
        }
        b"lru_crawler" => done(Command::LruCrawler { tokens: t }),
        b"lru" => {
            if nt < 3 {
                return done(reply(ERROR, false));
            }
            done(Command::Lru {
                tokens: t,
                noreply: t.noreply(),
            })
        }
        b"watch" => done(Command::Watch),
        b"mn" => done(Command::MetaNoop),
        b"ms" => super::meta::parse_ms(buf, used, t, lim),
        [b'm', _] => done(Command::Meta {
            tokens: t,
            data: &[],
        }),
        _ => {
            if nt >= 3 && t.get(t.len() - 1).starts_with(b"HTTP/") {
                return Err(ParseError::Http);
            }
            done(reply(ERROR, false))
        }
    }
}

/// The rest of the line after skipping `n` words.
fn after_words(text: &[u8], n: usize) -> &[u8] {
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

/// Largest `config set` payload.
const MAX_CONFIG_DATA: usize = 1 << 20;

fn parse_config<'a>(
    buf: &'a [u8],
    used: usize,
    t: &Tokens<'a>,
) -> Result<Parsed<Command<'a>>, ParseError> {
    let nt = t.ntokens();
    let done = |c: Command<'a>, n: usize| Ok(Parsed::Complete(c, n));
    match t.get(1) {
        b"get" if nt == 4 => done(Command::ConfigGet { key: t.get(2) }, used),
        b"set" if nt == 6 || nt == 7 => {
            let noreply = t.noreply();
            let (Some(_flags), Some(vlen)) = (strtoul32(t.get(3)), strtol32(t.get(4))) else {
                return done(reply(BAD_FORMAT, noreply), used);
            };
            if vlen < 0 {
                return done(reply(BAD_FORMAT, noreply), used);
            }
            let vlen = vlen as usize;
            if vlen > MAX_CONFIG_DATA {
                return done(
                    Command::Swallow {
                        msg: "CLIENT_ERROR cluster config too large",
                        noreply,
                        skip: vlen + 2,
                        too_large: false,
                        unlink: None,
                    },
                    used,
                );
            }
            let end = used + vlen + 2;
            if buf.len() < end {
                return Ok(Parsed::Incomplete);
            }
            if &buf[used + vlen..end] != b"\r\n" {
                return done(reply(BAD_CHUNK, noreply), end);
            }
            done(
                Command::ConfigSet {
                    key: t.get(2),
                    data: &buf[used..used + vlen],
                    noreply,
                },
                end,
            )
        }
        _ => done(reply(ERROR, false), used),
    }
}

fn parse_store<'a>(
    buf: &'a [u8],
    used: usize,
    t: &Tokens<'a>,
    is_cas: bool,
    lim: &Limits,
) -> Result<Parsed<Command<'a>>, ParseError> {
    let noreply = t.noreply();
    let done = |c: Command<'a>, n: usize| Ok(Parsed::Complete(c, n));
    let key = t.get(1);
    if key.len() > lim.max_key {
        return done(reply(BAD_FORMAT, noreply), used);
    }
    let (Some(flags), Some(exptime), Some(vlen)) =
        (strtoul32(t.get(2)), strtol32(t.get(3)), strtol32(t.get(4)))
    else {
        return done(reply(BAD_FORMAT, noreply), used);
    };
    let mut cas = 0;
    if is_cas {
        match strtoull(t.get(5)) {
            Some(c) => cas = c,
            None => return done(reply(BAD_FORMAT, noreply), used),
        }
    }
    if !(0..=i32::MAX - 2).contains(&vlen) {
        return done(reply(BAD_FORMAT, noreply), used);
    }
    let vlen = vlen as usize;
    if lim.too_large(key.len(), vlen) {
        return done(
            Command::Swallow {
                msg: TOO_LARGE,
                noreply,
                skip: vlen + 2,
                too_large: true,
                unlink: (t.get(0) == b"set").then_some(key),
            },
            used,
        );
    }
    let end = used + vlen + 2;
    if buf.len() < end {
        return Ok(Parsed::Incomplete);
    }
    if &buf[used + vlen..end] != b"\r\n" {
        return done(Command::BadDataChunk { noreply }, end);
    }
    let cmd = match t.get(0) {
        b"set" => StoreCmd::Set,
        b"add" => StoreCmd::Add,
        b"replace" => StoreCmd::Replace,
        b"append" => StoreCmd::Append,
        b"prepend" => StoreCmd::Prepend,
        _ => StoreCmd::Cas,
    };
    done(
        Command::Store {
            cmd,
            key,
            flags,
            exptime,
            cas,
            data: &buf[used..used + vlen],
            noreply,
        },
        end,
    )
}

/// Appends `VALUE <key> <flags> <bytes>[ <cas>]\r\n<data>\r\n`.
pub fn write_value(out: &mut Vec<u8>, key: &[u8], flags: u32, data: &[u8], cas: Option<u64>) {
    let mut b = itoa::Buffer::new();
    out.extend_from_slice(b"VALUE ");
    out.extend_from_slice(key);
    out.push(b' ');
    out.extend_from_slice(b.format(flags).as_bytes());
    out.push(b' ');
    out.extend_from_slice(b.format(data.len()).as_bytes());
    if let Some(c) = cas {
        out.push(b' ');
        out.extend_from_slice(b.format(c).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
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

/// Longest ASCII authentication payload accepted (memcached's later releases use the same cap).
pub const MAX_AUTH_TOKEN: u64 = 16 * 1024;

/// One step of memcached's ASCII authentication (`-Y`): until a client authenticates, its only
/// accepted input is `set <key> <flags> <exptime> <bytes>\r\n<user> <password>\r\n` (key, flags
/// and exptime are ignored).
#[derive(Debug, PartialEq, Eq)]
pub enum AuthLine<'a> {
    /// The line is not an auth `set`: `CLIENT_ERROR unauthenticated`.
    Unauthenticated,
    /// The token does not end in `\r\n`.
    BadTermination,
    /// No space between user and password.
    BadFormat,
    Credentials {
        user: &'a [u8],
        password: &'a [u8],
    },
}

/// Parses one ASCII authentication attempt from the front of `buf`.
pub fn parse_auth<'a>(buf: &'a [u8], lim: &Limits) -> Result<Parsed<AuthLine<'a>>, ParseError> {
    if buf.len() < 2 {
        return Ok(Parsed::Incomplete);
    }
    let Some(nl) = memchr(b'\n', buf) else {
        return if buf.len() > lim.max_line {
            Err(ParseError::LineTooLong)
        } else {
            Ok(Parsed::Incomplete)
        };
    };
    let line = &buf[..nl];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let t = Tokens::new(line);
    let size = match strtoull(t.get(4)) {
        Some(n) if t.ntokens() >= 6 && t.get(0) == b"set" => n,
        _ => return Ok(Parsed::Complete(AuthLine::Unauthenticated, nl + 1)),
    };
    if size > MAX_AUTH_TOKEN {
        return Err(ParseError::AuthTooLong);
    }
    let need = nl + 1 + size as usize + 2;
    if buf.len() < need {
        return Ok(Parsed::Incomplete);
    }
    let payload = &buf[nl + 1..need];
    let r = match payload.strip_suffix(b"\r\n") {
        None => AuthLine::BadTermination,
        Some(body) => {
            // memcached 1.6.18 tokenizes the token: user and password are its first two words.
            let mut words = body.split(|&b| b == b' ').filter(|w| !w.is_empty());
            match (words.next(), words.next()) {
                (Some(user), Some(password)) => AuthLine::Credentials { user, password },
                _ => AuthLine::BadFormat,
            }
        }
    };
    Ok(Parsed::Complete(r, need))
}

#[cfg(test)]
mod auth_tests {
    use super::*;

    #[test]
    fn auth_lines() {
        let l = Limits::default();
        let ok = b"set a 0 0 7\r\nfoo bar\r\n";
        for i in 0..ok.len() {
            assert_eq!(
                parse_auth(&ok[..i], &l),
                Ok(Parsed::Incomplete),
                "prefix {i}"
            );
        }
        assert_eq!(
            parse_auth(ok, &l),
            Ok(Parsed::Complete(
                AuthLine::Credentials {
                    user: b"foo",
                    password: b"bar"
                },
                ok.len()
            ))
        );
        assert_eq!(
            parse_auth(b"get foo\r\n", &l),
            Ok(Parsed::Complete(AuthLine::Unauthenticated, 9))
        );
        assert_eq!(
            parse_auth(b"set a 0 0 x\r\n", &l),
            Ok(Parsed::Complete(AuthLine::Unauthenticated, 13))
        );
        assert_eq!(
            parse_auth(b"set a 0 0 3\r\nfoo\r\n", &l),
            Ok(Parsed::Complete(AuthLine::BadFormat, 18))
        );
        assert_eq!(
            parse_auth(b"set a 0 0 4\r\nfoo \r\n", &l),
            Ok(Parsed::Complete(AuthLine::BadFormat, 19))
        );
        assert_eq!(
            parse_auth(b"set a 0 0 9\r\n foo  bar\r\n", &l),
            Ok(Parsed::Complete(
                AuthLine::Credentials {
                    user: b"foo",
                    password: b"bar"
                },
                24
            ))
        );
        assert_eq!(
            parse_auth(b"set a 0 0 3\r\nfooXX", &l),
            Ok(Parsed::Complete(AuthLine::BadTermination, 18))
        );
        assert_eq!(
            parse_auth(b"set a 0 0 99999\r\n", &l),
            Err(ParseError::AuthTooLong)
        );
    }
}
