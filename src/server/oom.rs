//! Owns: what a connection answers when its worker's `Budget` has no room — memcached 1.6.18's
//! replies and counters: a request without a response object closes the connection (its stacked
//! replies unwritten), a text get that runs out midway answers `SERVER_ERROR out of memory writing
//! get response`, and a value that cannot be received now is refused as memcached refuses one it
//! cannot allocate an item for.
//! Does not: count memory (see `budget`) or drive the connection (see `conn`).

use super::budget::Budget;
use crate::exec::{self, Action, Ctx};
use crate::protocol::ascii::{self, Command};
use crate::protocol::{binary, Kind, Limits, Parsed};
use crate::stats;

/// memcached's reply when a multi-key get runs out of response objects.
const GET_OOM: &str = "SERVER_ERROR out of memory writing get response";
/// memcached's reply when it cannot allocate the item a value is received into.
const STORE_OOM: &str = "SERVER_ERROR out of memory storing object";

/// Charges `n` response objects to a connection holding `resps`; false (counted as memcached's
/// `response_obj_oom`) when the budget has no room for them.
pub fn charge(mem: &mut Budget, resps: &mut usize, n: usize, st: &stats::ThreadStats) -> bool {
    if mem.take_resps(n) {
        *resps += n;
        true
    } else {
        stats::bump(&st.response_obj_oom);
        false
    }
}

/// Executes a text (or meta, or admin) command, charging a response object for it, or one per
/// key for a get. A get that runs out midway looks up the keys it has room for, then — as
/// memcached — drops the replies stacked on the connection (when none of them is partly written:
/// `written` false; with a limit the connection writes after every get and `mn`, as memcached,
/// so what is stacked is what came after the last one) and answers the error alone. None: no response
/// object left; the caller closes the connection without writing.
pub fn execute_text(
    cmd: Command<'_>,
    ctx: &Ctx<'_>,
    out: &mut Vec<u8>,
    written: bool,
    resps: &mut usize,
    mem: &mut Budget,
) -> Option<Action> {
    let n = match &cmd {
        Command::Get { keys, .. } => ascii::keys(keys).count().max(1),
        _ => 1,
    };
    if mem.take_resps(n) {
        *resps += n;
        return Some(exec::text::execute(cmd, ctx, out));
    }
    let Command::Get {
        kind,
        exptime,
        keys,
    } = cmd
    else {
        stats::bump(&ctx.stats.response_obj_oom);
        return None;
    };
    let Some(keys) = first_keys(keys, mem.resp_room()) else {
        stats::bump(&ctx.stats.response_obj_oom);
        return None;
    };
    let mut done = Vec::new();
    let cmd = Command::Get {
        kind,
        exptime,
        keys,
    };
    exec::text::execute(cmd, ctx, &mut done);
    // A key too long stops the lookups before the objects run out: that error instead.
    let oom = done.ends_with(b"END\r\n");
    if oom {
        stats::bump(&ctx.stats.response_obj_oom);
    }
    if !written {
        out.clear();
        mem.give_resps(std::mem::take(resps));
    }
    if !charge(mem, resps, 1, ctx.stats) {
        return None;
    }
    if oom {
        ascii::write_line(out, GET_OOM);
    } else {
        out.extend_from_slice(&done);
    }
    Some(Action::Continue)
}

/// The first `n` keys of a get line (None when `n` is 0 or the line has fewer).
fn first_keys(keys: &[u8], n: usize) -> Option<&[u8]> {
    let last = ascii::keys(keys).nth(n.checked_sub(1)?)?;
    let end = last.as_ptr() as usize - keys.as_ptr() as usize + last.len();
    Some(&keys[..end])
}

/// The request at the front of `input` needs a larger read buffer than values in flight may take
/// now. A storing request is answered as memcached answers when it cannot allocate the item
/// (text: `SERVER_ERROR out of memory storing object`, counted in `store_no_memory`; binary:
/// ENOMEM), a SET's old value goes, and its value is to be discarded as it arrives. Returns the
/// bytes the request's head used and the value bytes to discard; None for anything else (the
/// caller closes the connection).
pub fn refuse_inflight(
    kind: Kind,
    input: &[u8],
    limits: &Limits,
    ctx: &Ctx<'_>,
    (out, resps): (&mut Vec<u8>, &mut usize),
    mem: &mut Budget,
) -> Option<(usize, usize)> {
    // With no room for any item, every storing request parses as too large, with its length.
    let probe = Limits {
        item_size_max: 0,
        ..*limits
    };
    match kind {
        Kind::Binary => match binary::parse(input, &probe) {
            Ok(Parsed::Complete(f, used)) if f.check == binary::Check::TooLarge => {
                charge(mem, resps, 1, ctx.stats).then_some(())?;
                exec::binary::refuse_no_memory(&f, ctx, out);
                Some((used, f.skip))
            }
            _ => None,
        },
        Kind::Text => match crate::protocol::parse_ascii(input, &probe) {
            Ok(Parsed::Complete(
                Command::Swallow {
                    noreply,
                    skip,
                    too_large: true,
                    unlink,
                    ..
                },
                used,
            )) => {
                charge(mem, resps, 1, ctx.stats).then_some(())?;
                let cmd = Command::Swallow {
                    msg: STORE_OOM,
                    noreply,
                    skip,
                    too_large: false,
                    unlink,
                };
                exec::text::execute(cmd, ctx, out);
                stats::bump(&ctx.stats.store_no_memory);
                Some((used, skip))
            }
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::first_keys;

    #[test]
    fn first_keys_of_a_get_line() {
        assert_eq!(first_keys(b"a  bb c", 2), Some(&b"a  bb"[..]));
        assert_eq!(first_keys(b"a bb c", 3), Some(&b"a bb c"[..]));
        assert_eq!(first_keys(b"a bb", 3), None);
        assert_eq!(first_keys(b"a", 0), None);
    }
}
