//! Owns: framing of memcached's meta commands (`mg ms md ma mn me`): finding an `ms` data block.
//! Does not: interpret meta flags (see `exec::meta`).

use super::num::strtol32;
use super::text::{Command, Tokens, BAD_CHUNK, BAD_FORMAT, ERROR, TOO_LARGE};
use super::{Limits, ParseError, Parsed};

/// `ms <key> <datalen> <flags>*\r\n<data>\r\n`: waits for the whole data block.
pub fn parse_ms<'a>(
    buf: &'a [u8],
    used: usize,
    t: Tokens<'a>,
    lim: &Limits,
) -> Result<Parsed<Command<'a>>, ParseError> {
    let done = |c: Command<'a>, n: usize| Ok(Parsed::Complete(c, n));
    if t.ntokens() < 3 {
        return done(
            Command::Reply {
                msg: ERROR,
                noreply: false,
            },
            used,
        );
    }
    if t.get(1).len() > lim.max_key {
        return done(
            Command::Reply {
                msg: BAD_FORMAT,
                noreply: false,
            },
            used,
        );
    }
    let vlen = match strtol32(t.get(2)) {
        Some(v) if (0..=i32::MAX - 2).contains(&v) => v as usize,
        _ => {
            return done(
                Command::Reply {
                    msg: BAD_FORMAT,
                    noreply: false,
                },
                used,
            )
        }
    };
    if crate::store::item::total_size(t.get(1).len(), vlen) > lim.item_size_max {
        return done(
            Command::Swallow {
                msg: TOO_LARGE,
                noreply: false,
                skip: vlen + 2,
                too_large: true,
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
        return done(
            Command::Reply {
                msg: BAD_CHUNK,
                noreply: false,
            },
            end,
        );
    }
    done(
        Command::Meta {
            tokens: t,
            data: &buf[used..used + vlen],
        },
        end,
    )
}
