//! Owns: the meta commands' semantics (`mg ms md ma me`; `mn` is answered by the caller) —
//! applying a parsed `MetaReq` to the store, counting it, and encoding the reply byte for byte as
//! memcached 1.6.18 does: return flags in request order, then `Z`, `X`, `W`; `q` hides only the
//! nominal reply (`EN` for mg, `HD` for ms/md/ma, and ma's `VA`), never an error.
//! Does not: parse flags (see `protocol::meta`) or keep a store path of its own (it composes the
//! shard operations).
//! Long because: the five commands share the flag walk, the quiet rules and the hit encoding;
//! one file per command would spread those over files.

use crate::protocol::ascii::{self, Tokens, NON_NUMERIC, OUT_OF_MEMORY, TOO_LARGE};
use crate::protocol::meta::{base64_encode, parse_meta, MetaCmd, MetaReq, OPAQUE_TOO_LONG};
use crate::stats::bump;
use crate::store::item::{FETCHED, KEY_BINARY, STALE, WIN_SENT};
use crate::store::{
    ArithOp, ArithOutcome, ItemView, MetaAccess, Recency, StoreError, StoreMode, StoreOutcome,
    StoreRequest,
};

use super::{count_lookup, Action, Ctx};

/// Executes one meta command (`tokens` are its words, `data` the `ms` data block).
pub fn execute(tokens: Tokens<'_>, data: &[u8], ctx: &Ctx<'_>, out: &mut Vec<u8>) -> Action {
    let req = match parse_meta(tokens, data) {
        Ok(r) => r,
        Err(e) => {
            ascii::write_line(out, e);
            return Action::Continue;
        }
    };
    if !matches!(req.cmd, MetaCmd::Get | MetaCmd::Debug)
        && super::cluster::read_only(req.key(), ctx)
    {
        ascii::write_line(out, super::cluster::READ_ONLY);
        return Action::Continue;
    }
    match req.cmd {
        MetaCmd::Get => mget(&req, ctx, out),
        MetaCmd::Set => mset(&req, ctx, out),
        MetaCmd::Delete => mdelete(&req, ctx, out),
        MetaCmd::Arith => marith(&req, ctx, out),
        MetaCmd::Debug => mdebug(&req, ctx, out),
    }
    Action::Continue
}

fn push_num(out: &mut Vec<u8>, flag: u8, n: impl itoa::Integer) {
    let mut b = itoa::Buffer::new();
    out.push(b' ');
    out.push(flag);
    out.extend_from_slice(b.format(n).as_bytes());
}

/// ` k<key>`, or ` k<base64 key> b` for a binary key.
fn push_key(out: &mut Vec<u8>, key: &[u8], binary: bool) {
    out.extend_from_slice(b" k");
    if binary {
        base64_encode(key, out);
        out.extend_from_slice(b" b");
    } else {
        out.extend_from_slice(key);
    }
}

/// Echoes `O` and `k` (the only flags miss and failure lines carry).
fn push_opaque_key(out: &mut Vec<u8>, req: &MetaReq<'_>) {
    for w in req.flag_words() {
        match w.first() {
            Some(b'O') => {
                out.push(b' ');
                out.extend_from_slice(w);
            }
            Some(b'k') => push_key(out, req.key(), req.flags.base64),
            _ => {}
        }
    }
}

/// The meta reply writer: it owns quiet mode (`q`). A quiet request's nominal outcome — a miss
/// for `mg`, a plain success (`HD`, or `ma`'s value) for `ms`, `md` and `ma` — is not written;
/// errors and every other outcome are.
#[derive(Clone, Copy)]
struct Quiet(bool);

impl Quiet {
    fn of(req: &MetaReq<'_>) -> Quiet {
        Quiet(req.flags.quiet)
    }
    /// Whether an outcome is left unwritten.
    fn hides(self, nominal: bool) -> bool {
        self.0 && nominal
    }
    /// Writes `code` with the `O`/`k` echo and the line end, unless the outcome is hidden.
    fn status(self, out: &mut Vec<u8>, code: &[u8], req: &MetaReq<'_>, nominal: bool) {
        if self.hides(nominal) {
            return;
        }
        out.extend_from_slice(code);
        push_opaque_key(out, req);
        out.extend_from_slice(b"\r\n");
    }
    /// Takes back a reply written from `start` on (its outcome known only after encoding it)
    /// when the outcome is hidden; true if it did.
    fn retract(self, out: &mut Vec<u8>, start: usize, nominal: bool) -> bool {
        if self.hides(nominal) {
            out.truncate(start);
            return true;
        }
        false
    }
}

// ----- mg -----------------------------------------------------------------------------------

/// What encoding an `mg` hit decided, applied to the item afterwards.
struct Hit {
    exptime: Option<u32>,
    won: bool,
    touched: bool,
}

fn mget(req: &MetaReq<'_>, ctx: &Ctx<'_>, out: &mut Vec<u8>) {
    let sh = ctx.shared;
    let st = ctx.stats;
    let f = &req.flags;
    let key = req.key();
    let now = ctx.now();
    let h = sh.store().hash(key);
    let mut shard = sh.store().lock(h);
    let mut miss = None;
    let mut created = false;
    let found = shard.peek(key, h, now);
    super::watch::fetched(ctx, key, &found);
    match found {
        Ok(_) => {}
        Err(m) => {
            miss = Some(m);
            if f.vivify.is_some() {
                // An empty item; its TTL is set when the `N` flag is reached below.
                let r = shard.store(StoreRequest::new(StoreMode::Add, key, h, b""), now);
                if let Ok(StoreOutcome::Stored(_)) = r {
                    created = true;
                    miss = None;
                }
            }
        }
    }
    if f.opaque_too_long {
        drop(shard);
        ascii::write_line(out, OPAQUE_TOO_LONG);
        return;
    }
    if let Some(m) = miss {
        drop(shard);
        count_lookup(st, false, Some(m));
        Quiet::of(req).status(out, b"EN", req, true);
        return;
    }
    // A large value is sent from the item as the socket drains, as a text get's (see
    // `Store::pin`): only its line is written now.
    let sink = ctx.pins.filter(|_| f.value);
    let (hit, pin) = match shard.peek(key, h, now) {
        Ok(v) => {
            let pin = sink.filter(|_| v.value.len() >= super::PIN_MIN);
            (
                encode_hit(req, ctx, v, created, now, out, pin.is_none()),
                pin,
            )
        }
        Err(_) => return, // unreachable: the lock is held since the lookup
    };
    if let Some(sink) = pin {
        let pin = sh.store().pin(&mut shard, key, h);
        sink.borrow_mut().extend(pin.map(|p| (out.len(), p)));
        out.extend_from_slice(b"\r\n");
    }
    let set = if hit.won { WIN_SENT } else { 0 };
    shard.meta_access(
        key,
        h,
        now,
        MetaAccess {
            exptime: hit.exptime,
            set,
            clear: 0,
            recency: if f.no_update {
                Recency::Keep
            } else {
                Recency::Bump
            },
        },
    );
    drop(shard);
    count_lookup(st, hit.touched, None);
}

/// Writes an `mg` hit: its line, and its value unless `with_value` is false (the caller sends
/// the value pinned).
fn encode_hit(
    req: &MetaReq<'_>,
    ctx: &Ctx<'_>,
    v: ItemView<'_>,
    created: bool,
    now: u32,
    out: &mut Vec<u8>,
    with_value: bool,
) -> Hit {
    let f = &req.flags;
    let mut exp = v.exptime;
    let mut hit = Hit {
        exptime: None,
        won: false,
        touched: false,
    };
    if f.value {
        let mut b = itoa::Buffer::new();
        out.extend_from_slice(b"VA ");
        out.extend_from_slice(b.format(v.value.len()).as_bytes());
    } else {
        out.extend_from_slice(b"HD");
    }
    for w in req.flag_words() {
        match w.first() {
            Some(b'T') => {
                exp = ctx.exptime(f.ttl.unwrap_or(0));
                hit.exptime = Some(exp);
                hit.touched = true;
            }
            Some(b'N') if created => {
                exp = ctx.exptime(f.vivify.unwrap_or(0));
                hit.exptime = Some(exp);
                hit.won = true;
            }
            Some(b'R') => {
                let recache = ctx.exptime(f.recache.unwrap_or(0));
                if v.bits & WIN_SENT == 0 && !created && exp != 0 && exp < recache {
                    hit.won = true;
                }
            }
            Some(b's') => push_num(out, b's', v.value.len()),
            Some(b't') => {
                if exp == 0 {
                    out.extend_from_slice(b" t-1");
                } else {
                    push_num(out, b't', exp.wrapping_sub(now));
                }
            }
            Some(b'c') => push_num(out, b'c', ctx.visible_cas(v.cas)),
            Some(b'f') => push_num(out, b'f', v.flags),
            Some(b'l') => push_num(out, b'l', now.wrapping_sub(v.atime)),
            Some(b'h') => push_num(out, b'h', u8::from(v.bits & FETCHED != 0)),
            Some(b'O') => {
                out.push(b' ');
                out.extend_from_slice(w);
            }
            Some(b'k') => push_key(out, v.key, v.bits & KEY_BINARY != 0),
            _ => {}
        }
    }
    if v.bits & WIN_SENT != 0 {
        out.extend_from_slice(b" Z");
    }
    if v.bits & STALE != 0 {
        out.extend_from_slice(b" X");
        if v.bits & WIN_SENT == 0 {
            hit.won = true;
        }
    }
    if hit.won {
        out.extend_from_slice(b" W");
    }
    out.extend_from_slice(b"\r\n");
    if f.value && with_value {
        out.reserve(v.value.len() + 2);
        for part in v.value.parts() {
            out.extend_from_slice(part);
        }
        out.extend_from_slice(b"\r\n");
    }
    hit
}

// ----- ms -----------------------------------------------------------------------------------

fn mset(req: &MetaReq<'_>, ctx: &Ctx<'_>, out: &mut Vec<u8>) {
    let sh = ctx.shared;
    let st = ctx.stats;
    let f = &req.flags;
    let key = req.key();
    let now = ctx.now();
    let mut mode = match f.mode {
        Some(b'E') => StoreMode::Add,
        // Append/prepend honour a non-zero `C`.
        Some(b'A') => StoreMode::Append(f.cas.unwrap_or(0)),
        Some(b'P') => StoreMode::Prepend(f.cas.unwrap_or(0)),
        Some(b'R') => StoreMode::Replace,
        _ => StoreMode::Set,
    };
    if let Some(c) = f.cas {
        if matches!(mode, StoreMode::Set | StoreMode::Replace) {
            mode = StoreMode::Cas(c);
        }
    }
    let mut exptime = ctx.exptime(f.ttl.unwrap_or(0));
    let h = sh.store().hash(key);
    let mut shard = sh.store().lock(h);
    // Checks memcached makes before storing that the plain store modes do not express.
    let mut keep_bits = 0;
    // `I` with an older CAS: store anyway, keep the TTL, mark stale (invalidation).
    if let StoreMode::Cas(c) = mode {
        if f.stale {
            if let Ok(v) = shard.peek(key, h, now) {
                let cur = ctx.visible_cas(v.cas);
                if c != cur && c < cur {
                    exptime = v.exptime;
                    keep_bits = STALE | (v.bits & WIN_SENT);
                    mode = StoreMode::Set;
                }
            }
        }
    }
    let store = StoreRequest {
        mode,
        key,
        hash: h,
        flags: f.client_flags,
        exptime,
        value: req.data,
    };
    let r = super::watch::store_logged(ctx, &mut shard, store);
    if let Ok(StoreOutcome::Stored(_)) = r {
        let bits = keep_bits | if f.base64 { KEY_BINARY } else { 0 };
        if bits != 0 {
            shard.update_bits(key, h, bits, now);
        }
    }
    drop(shard);
    bump(&st.cmd_set);
    let stale_store = keep_bits != 0;
    let (code, new_cas): (&[u8], u64) = match r {
        Ok(StoreOutcome::Stored(c)) => {
            if matches!(mode, StoreMode::Cas(_)) || stale_store {
                bump(&st.cas_hits);
            }
            (b"HD", ctx.visible_cas(c))
        }
        Ok(StoreOutcome::NotStored) => (b"NS", 0),
        Ok(StoreOutcome::Exists) => {
            if matches!(mode, StoreMode::Cas(_)) {
                bump(&st.cas_badval);
            }
            (b"EX", 0)
        }
        Ok(StoreOutcome::NotFound) => {
            bump(&st.cas_misses);
            (b"NF", 0)
        }
        Err(StoreError::TooLarge) => {
            bump(&st.store_too_large);
            ascii::write_line(out, TOO_LARGE);
            return;
        }
        Err(StoreError::OutOfMemory) => {
            bump(&st.store_no_memory);
            ascii::write_line(out, OUT_OF_MEMORY);
            return;
        }
    };
    if Quiet::of(req).hides(code == b"HD") {
        return;
    }
    out.extend_from_slice(code);
    // memcached walks every word after the key here, the data length included.
    for i in 2..req.tokens.len() {
        let w = req.tokens.get(i);
        match w.first() {
            Some(b'O') => {
                out.push(b' ');
                out.extend_from_slice(w);
            }
            Some(b'k') => push_key(out, key, f.base64),
            Some(b'c') => push_num(out, b'c', new_cas),
            _ => {}
        }
    }
    out.extend_from_slice(b"\r\n");
}

// ----- md -----------------------------------------------------------------------------------

fn mdelete(req: &MetaReq<'_>, ctx: &Ctx<'_>, out: &mut Vec<u8>) {
    let sh = ctx.shared;
    let st = ctx.stats;
    let f = &req.flags;
    let key = req.key();
    let now = ctx.now();
    let h = sh.store().hash(key);
    let mut shard = sh.store().lock(h);
    let found = shard.peek(key, h, now);
    super::watch::fetched(ctx, key, &found);
    let found = found.map(|v| ctx.visible_cas(v.cas));
    let code: &[u8] = match found {
        Err(_) => {
            bump(&st.delete_misses);
            b"NF"
        }
        Ok(cur) if f.cas.is_some_and(|c| c != cur) => {
            bump(&st.delete_misses);
            b"EX"
        }
        Ok(_) if f.stale => {
            let exp = f.ttl.map(|t| ctx.exptime(t));
            shard.mark_stale(key, h, exp, now);
            b"HD"
        }
        Ok(_) => {
            shard.delete(key, h, 0, now);
            bump(&st.delete_hits);
            b"HD"
        }
    };
    drop(shard);
    Quiet::of(req).status(out, code, req, code == b"HD");
}

// ----- ma -----------------------------------------------------------------------------------

enum ArithResult {
    /// The new value and whether the item was created by `N`.
    Item(u64, bool),
    Line(&'static [u8]),
    Error(&'static str),
}

fn marith(req: &MetaReq<'_>, ctx: &Ctx<'_>, out: &mut Vec<u8>) {
    let sh = ctx.shared;
    let st = ctx.stats;
    let f = &req.flags;
    let key = req.key();
    let now = ctx.now();
    let incr = !matches!(f.mode, Some(b'D' | b'-'));
    let h = sh.store().hash(key);
    let mut shard = sh.store().lock(h);
    super::watch::lookup_first(ctx, &mut shard, key, h);
    let cas = f.cas.unwrap_or(0);
    let res = match shard.arith(
        key,
        h,
        if incr { ArithOp::Incr } else { ArithOp::Decr },
        f.delta,
        cas,
        now,
    ) {
        Ok(ArithOutcome::Value(v, _)) => {
            bump(if incr { &st.incr_hits } else { &st.decr_hits });
            ArithResult::Item(v, false)
        }
        Ok(ArithOutcome::NotFound) if f.vivify.is_some() => {
            let mut b = itoa::Buffer::new();
            let digits = b.format(f.initial).as_bytes();
            // memcached adds the new item as an `add` would: looked up again, then stored.
            let req = StoreRequest {
                exptime: ctx.exptime(f.vivify.unwrap_or(0)),
                ..StoreRequest::new(StoreMode::Add, key, h, digits)
            };
            match super::watch::store_logged(ctx, &mut shard, req) {
                Ok(StoreOutcome::Stored(_)) => ArithResult::Item(f.initial, true),
                Ok(_) => ArithResult::Line(b"NS"),
                Err(_) => ArithResult::Error("SERVER_ERROR Out of memory allocating new item"),
            }
        }
        Ok(ArithOutcome::NotFound) => {
            bump(if incr {
                &st.incr_misses
            } else {
                &st.decr_misses
            });
            ArithResult::Line(b"NF")
        }
        Ok(ArithOutcome::Exists) => ArithResult::Line(b"EX"),
        Ok(ArithOutcome::NonNumeric) => ArithResult::Error(NON_NUMERIC),
        Err(_) => ArithResult::Error("SERVER_ERROR out of memory"),
    };
    let (value, created) = match res {
        ArithResult::Item(v, c) => (v, c),
        ArithResult::Line(code) => {
            drop(shard);
            if f.opaque_too_long {
                ascii::write_line(out, OPAQUE_TOO_LONG);
            } else {
                Quiet::of(req).status(out, code, req, false);
            }
            return;
        }
        ArithResult::Error(e) => {
            drop(shard);
            ascii::write_line(out, e);
            return;
        }
    };
    let (item_cas, mut exp) = match shard.peek(key, h, now) {
        Ok(v) => (ctx.visible_cas(v.cas), v.exptime),
        Err(_) => (0, 0),
    };
    let start = out.len();
    let mut b = itoa::Buffer::new();
    let digits = b.format(value).as_bytes();
    if f.value {
        out.extend_from_slice(b"VA ");
        let mut n = itoa::Buffer::new();
        out.extend_from_slice(n.format(digits.len()).as_bytes());
    } else {
        out.extend_from_slice(b"HD");
    }
    let mut new_exp = None;
    let mut bad_opaque = false;
    for w in req.flag_words() {
        match w.first() {
            Some(b'c') => push_num(out, b'c', item_cas),
            Some(b't') => {
                if exp == 0 {
                    out.extend_from_slice(b" t-1");
                } else {
                    push_num(out, b't', exp.wrapping_sub(now));
                }
            }
            Some(b'T') => {
                exp = ctx.exptime(f.ttl.unwrap_or(0));
                new_exp = Some(exp);
            }
            Some(b'N') if created => {
                exp = ctx.exptime(f.vivify.unwrap_or(0));
                new_exp = Some(exp);
            }
            Some(b'O') => {
                if w.len() > crate::protocol::meta::MAX_OPAQUE {
                    bad_opaque = true;
                    break;
                }
                out.push(b' ');
                out.extend_from_slice(w);
            }
            Some(b'k') => push_key(out, key, f.base64),
            _ => {}
        }
    }
    if new_exp.is_some() {
        shard.meta_access(
            key,
            h,
            now,
            MetaAccess {
                exptime: new_exp,
                set: 0,
                clear: 0,
                recency: Recency::Keep,
            },
        );
    }
    drop(shard);
    if bad_opaque {
        out.truncate(start);
        ascii::write_line(out, OPAQUE_TOO_LONG);
        return;
    }
    // Only a plain success is quiet; a created item is always answered.
    if Quiet::of(req).retract(out, start, !created) {
        return;
    }
    out.extend_from_slice(b"\r\n");
    if f.value {
        out.extend_from_slice(digits);
        out.extend_from_slice(b"\r\n");
    }
}

// ----- me -----------------------------------------------------------------------------------

fn mdebug(req: &MetaReq<'_>, ctx: &Ctx<'_>, out: &mut Vec<u8>) {
    let sh = ctx.shared;
    let key = req.key();
    let now = ctx.now();
    let h = sh.store().hash(key);
    let mut shard = sh.store().lock(h);
    match shard.peek(key, h, now) {
        Ok(v) => {
            out.extend_from_slice(b"ME ");
            if v.bits & KEY_BINARY != 0 {
                base64_encode(v.key, out);
            } else {
                out.extend_from_slice(v.key);
            }
            // memcached prints `exp` as now minus the expiry time (negative while alive).
            let exp = if v.exptime == 0 {
                -1
            } else {
                now.wrapping_sub(v.exptime) as i32
            };
            let line = format!(
                " exp={} la={} cas={} fetch={} cls={} size={}\r\n",
                exp,
                now.wrapping_sub(v.atime),
                ctx.visible_cas(v.cas),
                if v.bits & FETCHED != 0 { "yes" } else { "no" },
                v.class + 1,
                v.total
            );
            out.extend_from_slice(line.as_bytes());
        }
        Err(_) => ascii::write_line(out, "EN"),
    }
    drop(shard);
    bump(&ctx.stats.cmd_meta);
}
