//! Owns: memcached's classic text commands — parsing one tokenized line (and its data block) into
//! a `Command`, following memcached 1.6.18's `proto_text.c` token-count rules (a wrong count of
//! tokens is `ERROR`; bad numbers are `CLIENT_ERROR ...`), and the `-Y` authentication line.
//! Does not: frame lines or tokenize (see `ascii`), or parse meta commands (see `meta`).

use super::ascii::{
    after_words, data_block, memchr, reply, Block, Command, GetKind, StoreCmd, Tokens, BAD_CHUNK,
    BAD_DELTA, BAD_EXPTIME, BAD_FORMAT, DELETE_USAGE, ERROR, TOO_LARGE,
};
use super::{Limits, ParseError, Parsed};
use crate::num::{strtol32, strtoul32, strtoull};

/// Parses a classic command whose line (`text`, tokenized as `t`, at least one word of two or
/// more bytes) ended at `used`.
pub fn parse_command<'a>(
    buf: &'a [u8],
    used: usize,
    text: &'a [u8],
    t: Tokens<'a>,
    lim: &Limits,
) -> Result<Parsed<Command<'a>>, ParseError> {
    let nt = t.ntokens();
    let cmd = t.get(0);
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
        b"refresh_certs" => done(Command::RefreshCerts {
            noreply: t.noreply(),
        }),
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
            let noreply = t.noreply();
            match strtoul32(t.get(1)) {
                Some(mb) => done(Command::MemLimit { mb, noreply }),
                None => done(reply(ERROR, noreply)),
            }
        }
        b"watch" => done(Command::Watch {
            streams: super::watch::streams((1..t.len()).map(|i| t.get(i))),
            noreply: t.noreply(),
        }),
        _ => {
            if nt >= 3 && t.get(t.len() - 1).starts_with(b"HTTP/") {
                return Err(ParseError::Http);
            }
            done(reply(ERROR, false))
        }
    }
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
        b"set" if (6..=8).contains(&nt) => {
            let noreply = t.noreply();
            let (Some(_flags), Some(vlen)) = (strtoul32(t.get(3)), strtol32(t.get(4))) else {
                return done(reply(BAD_FORMAT, noreply), used);
            };
            if vlen < 0 {
                return done(reply(BAD_FORMAT, noreply), used);
            }
            let vlen = vlen as usize;
            // The optional version it replaces sits where `cas` has its unique, before `noreply`.
            let replaces = match (nt, noreply) {
                (6, _) | (7, true) => Some(None),
                (7, false) | (8, true) => {
                    crate::num::strtoull(t.get(5)).filter(|&v| v > 0).map(Some)
                }
                _ => None,
            };
            // Refused before its data block, which is skipped.
            let swallow = |msg| {
                let skip = vlen + 2;
                let (too_large, unlink) = (false, None);
                done(
                    Command::Swallow {
                        msg,
                        noreply,
                        skip,
                        too_large,
                        unlink,
                    },
                    used,
                )
            };
            let Some(replaces) = replaces else {
                return swallow(BAD_FORMAT);
            };
            if vlen > MAX_CONFIG_DATA {
                return swallow("CLIENT_ERROR cluster config too large");
            }
            match data_block(buf, used, vlen) {
                Block::Incomplete => Ok(Parsed::Incomplete),
                Block::BadChunk { end } => done(reply(BAD_CHUNK, noreply), end),
                Block::Data { data, end } => done(
                    Command::ConfigSet {
                        key: t.get(2),
                        data,
                        replaces,
                        noreply,
                    },
                    end,
                ),
            }
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
    if lim.too_large(key.len(), vlen, flags) {
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
    let (data, end) = match data_block(buf, used, vlen) {
        Block::Incomplete => return Ok(Parsed::Incomplete),
        Block::BadChunk { end } => return done(Command::BadDataChunk { noreply }, end),
        Block::Data { data, end } => (data, end),
    };
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
            data,
            noreply,
        },
        end,
    )
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
