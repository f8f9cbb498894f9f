//! Owns: memcached's binary protocol semantics (1.6.18's `proto_bin.c`) — applying a framed
//! request through the same store operations and counters as the text protocol, quiet-mode
//! suppression, CAS and opaque echo, binary stats packets, SASL (PLAIN) and the pre-auth gate;
//! and the replies of both auth modes once credentials are checked (`finish_auth`).
//! Does not: frame packets (see `protocol::binary`) or check passwords (see `auth`).

use super::{count_lookup, flush_all, stats, store_counted, Action, Ctx, SaslStep, Session};

use crate::auth::cyrus::Mech;
use crate::auth::{self, Attempt};
use crate::protocol::admin;
use crate::protocol::ascii::{self, Stats};
use crate::protocol::binary::{op, status, unquiet, Check, Frame, Reply};
use crate::stats::{bump, PrefixOp};
use crate::store::{
    ArithOp, ArithOutcome, DeleteOutcome, Recency, StoreError, StoreMode, StoreOutcome,
};

/// Mechanisms offered to SASL clients of a credentials file (a sasldb's config names its own).
pub const MECHANISMS: &str = "PLAIN";

fn be_u32(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

fn be_u64(b: &[u8], at: usize) -> u64 {
    (u64::from(be_u32(b, at)) << 32) | u64::from(be_u32(b, at + 4))
}

/// Executes one binary request, appending its reply (if any) to `out`.
pub fn execute(f: &Frame<'_>, ctx: &Ctx<'_>, session: &mut Session, out: &mut Vec<u8>) -> Action {
    let h = &f.header;
    let opcode = h.opcode;
    let r = Reply::to(h);
    let err = |out: &mut Vec<u8>, s: u16| r.error(out, s);
    if f.check == Check::BadLengths {
        err(out, status::UNKNOWN_COMMAND);
        return Action::Close;
    }
    let sh = ctx.shared;
    let base = unquiet(opcode).0;
    if sh.config().sasl
        && !session.authenticated
        && !matches!(
            opcode,
            op::SASL_LIST_MECHS | op::SASL_AUTH | op::SASL_STEP | op::VERSION
        )
    {
        err(out, status::AUTH_ERROR);
        return Action::Close;
    }
    match f.check {
        Check::Invalid => {
            err(out, status::EINVAL);
            return Action::Close;
        }
        Check::Unknown => {
            err(out, status::UNKNOWN_COMMAND);
            return Action::Continue;
        }
        _ => {}
    }
    if matches!(
        base,
        op::SET
            | op::ADD
            | op::REPLACE
            | op::APPEND
            | op::PREPEND
            | op::DELETE
            | op::INCREMENT
            | op::DECREMENT
    ) && super::cluster::read_only(f.key, ctx)
    {
        err(out, status::NOT_STORED);
        return Action::Continue;
    }
    let st = ctx.stats;
    let ok = |out: &mut Vec<u8>, cas: u64, value: &[u8]| r.ok(out, cas, value);
    match base {
        op::GET | op::GETK | op::TOUCH | op::GAT | op::GATK => {
            get(f, base, r, ctx, out);
            Action::Continue
        }
        op::SET | op::ADD | op::REPLACE | op::APPEND | op::PREPEND => {
            update(f, base, r, ctx, out);
            Action::Continue
        }
        op::DELETE => {
            stats::record_prefix(ctx, f.key, PrefixOp::Delete);
            let hash = sh.store().hash(f.key);
            let r = {
                let mut shard = sh.store().lock(hash);
                super::watch::lookup_first(ctx, &mut shard, f.key, hash);
                shard.delete(f.key, hash, h.cas, ctx.now())
            };
            match r {
                DeleteOutcome::Deleted => {
                    bump(&st.delete_hits);
                    ok(out, 0, &[]);
                }
                DeleteOutcome::Exists => err(out, status::KEY_EEXISTS),
                DeleteOutcome::NotFound => {
                    bump(&st.delete_misses);
                    err(out, status::KEY_ENOENT);
                }
            }
            Action::Continue
        }
        op::INCREMENT | op::DECREMENT => {
            arith(f, base == op::INCREMENT, r, ctx, out);
            Action::Continue
        }
        op::QUIT => {
            ok(out, 0, &[]);
            Action::Close
        }
        op::FLUSH => {
            if !sh.config().flush_enabled {
                err(out, status::AUTH_ERROR);
                return Action::Continue;
            }
            let delay = if f.extras.len() == 4 {
                i64::from(be_u32(f.extras, 0))
            } else {
                0
            };
            flush_all(sh, delay, ctx.now());
            bump(&st.cmd_flush);
            ok(out, 0, &[]);
            Action::Continue
        }
        op::NOOP => {
            ok(out, 0, &[]);
            Action::Flush
        }
        op::VERSION => {
            ok(out, 0, crate::config::PROTOCOL_VERSION.as_bytes());
            Action::Continue
        }
        op::STAT => {
            stat(f.key, r, ctx, out);
            Action::Continue
        }
        op::SASL_LIST_MECHS => {
            if !sh.config().sasl {
                err(out, status::UNKNOWN_COMMAND);
            } else {
                match &sh.config().sasl_conf {
                    Some(conf) => ok(out, 0, conf.mech_list().as_bytes()),
                    None => ok(out, 0, MECHANISMS.as_bytes()),
                }
            }
            Action::Continue
        }
        op::SASL_AUTH | op::SASL_STEP => sasl(f, r, ctx, session, out),
        op::CONFIG_GET if sh.cluster().enabled() => {
            super::cluster::binary_get(f, r, ctx, out);
            Action::Continue
        }
        op::CONFIG_SET if sh.cluster().enabled() => {
            super::cluster::binary_set(f, r, ctx, out);
            Action::Continue
        }
        // Auto Discovery opcodes are unknown unless discovery is configured.
        _ => {
            err(out, status::UNKNOWN_COMMAND);
            Action::Continue
        }
    }
}

fn get(f: &Frame<'_>, base: u8, r: Reply, ctx: &Ctx<'_>, out: &mut Vec<u8>) {
    let sh = ctx.shared;
    let st = ctx.stats;
    let touch = matches!(base, op::TOUCH | op::GAT | op::GATK);
    let with_key = matches!(base, op::GETK | op::GATK);
    let now = ctx.now();
    let hash = sh.store().hash(f.key);
    let mut shard = sh.store().lock(hash);
    let res = if touch {
        let exp = ctx.exptime_wide(i64::from(be_u32(f.extras, 0)));
        shard.touch(f.key, hash, exp, now)
    } else {
        shard.get(f.key, hash, now, Recency::Bump)
    };
    super::watch::fetched(ctx, f.key, &res);
    let hit = res.is_ok();
    match res {
        Ok(v) => {
            let cas = ctx.visible_cas(v.cas);
            let key = if with_key { f.key } else { &[][..] };
            if base == op::TOUCH {
                r.hit(out, cas, (v.flags, key), [], 0);
            } else if let Some(sink) = ctx.pins.filter(|_| v.value.len() >= super::PIN_MIN) {
                // A large value is sent from the item as the socket drains, as a text get's
                // (see `Store::pin`): only the header, extras and key are written now.
                r.hit(out, cas, (v.flags, key), [], v.value.len());
                let pin = sh.store().pin(&mut shard, f.key, hash);
                sink.borrow_mut().extend(pin.map(|p| (out.len(), p)));
            } else {
                r.hit(out, cas, (v.flags, key), v.value.parts(), v.value.len());
            }
            drop(shard);
            count_lookup(st, touch, None);
        }
        Err(m) => {
            drop(shard);
            count_lookup(st, touch, Some(m));
            r.miss(out, with_key.then_some(f.key));
        }
    }
    stats::record_prefix(ctx, f.key, PrefixOp::Get { hit });
}

/// memcached drops the old value of a SET it cannot store rather than serve stale data.
fn drop_stale(key: &[u8], base: u8, ctx: &Ctx<'_>) {
    if base == op::SET {
        let sh = ctx.shared;
        let hash = sh.store().hash(key);
        sh.store().lock(hash).delete(key, hash, 0, ctx.now());
    }
}

/// A storing request refused before its value is received, because the connection cannot hold
/// it now (values in flight over the worker's budget): memcached's answer when it cannot
/// allocate the item — ENOMEM, and a SET's old value goes. The caller discards the value.
pub fn refuse_no_memory(f: &Frame<'_>, ctx: &Ctx<'_>, out: &mut Vec<u8>) {
    let (base, _) = f.base_opcode();
    drop_stale(f.key, base, ctx);
    Reply::to(&f.header).always(out, status::ENOMEM, &[], b"Out of memory allocating item");
}

fn update(f: &Frame<'_>, base: u8, r: Reply, ctx: &Ctx<'_>, out: &mut Vec<u8>) {
    let h = &f.header;
    stats::record_prefix(ctx, f.key, PrefixOp::Set);
    if f.check == Check::TooLarge {
        drop_stale(f.key, base, ctx);
        r.error(out, status::E2BIG);
        return;
    }
    let appending = matches!(base, op::APPEND | op::PREPEND);
    let (flags, exptime) = if appending {
        (0, 0)
    } else {
        (
            be_u32(f.extras, 0),
            ctx.exptime_wide(i64::from(be_u32(f.extras, 4))),
        )
    };
    let mode = match base {
        _ if h.cas != 0 && !appending => StoreMode::Cas(h.cas),
        op::ADD => StoreMode::Add,
        op::REPLACE => StoreMode::Replace,
        // Append and prepend honour a non-zero CAS.
        op::APPEND => StoreMode::Append(h.cas),
        op::PREPEND => StoreMode::Prepend(h.cas),
        _ => StoreMode::Set,
    };
    let res = store_counted(mode, f.key, flags, exptime, f.value, ctx);
    match res {
        Ok(StoreOutcome::Stored(cas)) => r.ok(out, ctx.visible_cas(cas), &[]),
        Ok(StoreOutcome::Exists) => r.error(out, status::KEY_EEXISTS),
        Ok(StoreOutcome::NotFound) => r.error(out, status::KEY_ENOENT),
        Ok(StoreOutcome::NotStored) | Err(StoreError::TooLarge) => {
            let s = match mode {
                StoreMode::Add => status::KEY_EEXISTS,
                StoreMode::Replace => status::KEY_ENOENT,
                _ if res.is_err() && base != op::APPEND && base != op::PREPEND => status::E2BIG,
                _ => status::NOT_STORED,
            };
            r.error(out, s);
        }
        Err(StoreError::OutOfMemory) => {
            r.always(out, status::ENOMEM, &[], b"Out of memory allocating item")
        }
    }
}

fn arith(f: &Frame<'_>, incr: bool, r: Reply, ctx: &Ctx<'_>, out: &mut Vec<u8>) {
    let sh = ctx.shared;
    let st = ctx.stats;
    let h = &f.header;
    let delta = be_u64(f.extras, 0);
    let initial = be_u64(f.extras, 8);
    let exptime = be_u32(f.extras, 16);
    let hash = sh.store().hash(f.key);
    let res = {
        let mut shard = sh.store().lock(hash);
        super::watch::lookup_first(ctx, &mut shard, f.key, hash);
        shard.arith(
            f.key,
            hash,
            if incr { ArithOp::Incr } else { ArithOp::Decr },
            delta,
            h.cas,
            ctx.now(),
        )
    };
    let value = |out: &mut Vec<u8>, v: u64, cas: u64| r.ok(out, cas, &v.to_be_bytes());
    let oom = |out: &mut Vec<u8>, msg: &[u8]| r.always(out, status::ENOMEM, &[], msg);
    match res {
        Ok(ArithOutcome::Value(v, cas)) => {
            bump(if incr { &st.incr_hits } else { &st.decr_hits });
            value(out, v, ctx.visible_cas(cas));
        }
        Ok(ArithOutcome::NotFound) if exptime != u32::MAX => {
            let mut b = itoa::Buffer::new();
            let digits = b.format(initial).as_bytes();
            let exp = ctx.exptime_wide(i64::from(exptime));
            match store_counted(StoreMode::Add, f.key, 0, exp, digits, ctx) {
                Ok(StoreOutcome::Stored(cas)) => value(out, initial, ctx.visible_cas(cas)),
                Ok(_) => r.error(out, status::NOT_STORED),
                Err(_) => oom(out, b"Out of memory allocating new item"),
            }
        }
        Ok(ArithOutcome::NotFound) => {
            bump(if incr {
                &st.incr_misses
            } else {
                &st.decr_misses
            });
            r.error(out, status::KEY_ENOENT);
        }
        Ok(ArithOutcome::Exists) => r.error(out, status::KEY_EEXISTS),
        Ok(ArithOutcome::NonNumeric) => r.error(out, status::DELTA_BADVAL),
        Err(_) => oom(out, b"Out of memory incrementing value"),
    }
}

/// Re-encodes text `STAT <name> <value>\r\n` lines as binary stat packets.
fn stat_packets(text_out: &[u8], r: Reply, out: &mut Vec<u8>) {
    for line in text_out.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(rest) = line.strip_prefix(b"STAT ") else {
            continue;
        };
        let (name, value) = match rest.iter().position(|&b| b == b' ') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &[][..]),
        };
        r.always(out, status::OK, name, value);
    }
}

fn stat(key: &[u8], r: Reply, ctx: &Ctx<'_>, out: &mut Vec<u8>) {
    let mut t = Vec::new();
    let rt = ctx.shared.settings();
    match admin::binary_stats(key) {
        Stats::General => stats::general(ctx.shared, &mut t),
        Stats::Reset => stats::reset(ctx),
        Stats::Settings => stats::settings(ctx.shared, &mut t),
        Stats::DetailDump => {
            let mut dump = Vec::new();
            rt.prefixes().dump(&mut dump);
            r.always(out, status::OK, b"detailed", &dump);
        }
        Stats::DetailOn => rt.set_detail(true),
        Stats::DetailOff => rt.set_detail(false),
        Stats::Items => stats::items(ctx.shared, &mut t),
        Stats::Slabs => stats::slabs(ctx.shared, &mut t),
        Stats::Sizes => stats::sizes(ctx, &mut t),
        Stats::Ferrocache => stats::ferrocache(ctx, &mut t),
        Stats::SizesEnable => stats::sizes_toggle(ctx, true, &mut t),
        Stats::SizesDisable => stats::sizes_toggle(ctx, false, &mut t),
        Stats::DetailUsage
        | Stats::Cachedump(_)
        | Stats::Conns
        | Stats::Cluster
        | Stats::Unknown(_) => {
            r.error(out, status::KEY_ENOENT);
            return;
        }
    }
    stat_packets(&t, r, out);
    r.always(out, status::OK, &[], &[]);
}

fn sasl(
    f: &Frame<'_>,
    r: Reply,
    ctx: &Ctx<'_>,
    session: &mut Session,
    out: &mut Vec<u8>,
) -> Action {
    let opcode = f.header.opcode;
    if !ctx.shared.config().sasl {
        r.error(out, status::UNKNOWN_COMMAND);
        return Action::Continue;
    }
    if f.check == Check::TooLarge {
        r.error(out, status::EINVAL);
        return Action::Close;
    }
    if f.key.len() > crate::protocol::binary::MAX_SASL_MECH_LEN {
        r.error(out, status::EINVAL);
        return Action::Continue;
    }
    let reply = auth::Reply::Binary {
        opcode,
        opaque: r.opaque,
    };
    let mech = match &ctx.shared.config().sasl_conf {
        Some(conf) => conf.offered(f.key),
        None => Some(Mech::Plain).filter(|_| f.key.eq_ignore_ascii_case(b"PLAIN")),
    };
    let step = std::mem::take(&mut session.sasl_step);
    if opcode == op::SASL_AUTH && f.value.is_empty() {
        // No initial response: PLAIN asks for it (empty challenge), CRAM-MD5 sends its
        // challenge; the answer comes in a STEP.
        let challenge = match mech {
            Some(Mech::Plain) => Some((SaslStep::Plain, Vec::new())),
            Some(Mech::CramMd5) => {
                let host = ctx
                    .shared
                    .config()
                    .sasl_conf
                    .as_ref()
                    .map_or(&[][..], |c| &c.realm[..]);
                let ch = auth::cram::challenge(host);
                Some((SaslStep::CramMd5(ch.clone()), ch))
            }
            None => None,
        };
        if let Some((next, ch)) = challenge {
            session.sasl_step = next;
            r.always(out, status::AUTH_CONTINUE, &[], &ch);
            return Action::Flush;
        }
    }
    // The STEP continuing an exchange carries the response whatever its key says.
    let plain = match (opcode, step) {
        (op::SASL_AUTH, _) => mech == Some(Mech::Plain),
        (_, SaslStep::Plain) => true,
        (_, SaslStep::CramMd5(challenge)) => {
            let ok = ctx
                .shared
                .credentials()
                .is_some_and(|c| c.check_cram(&challenge, f.value));
            finish_auth(ok, reply, ctx, session, out);
            return Action::Continue;
        }
        (_, SaslStep::None) => false,
    };
    let creds = plain.then(|| auth::parse_plain(f.value)).flatten();
    match creds {
        Some((user, pass)) => {
            session.pending = Some(Attempt {
                user: user.to_vec(),
                password: pass.to_vec(),
                reply,
            });
            Action::Verify
        }
        None => {
            finish_auth(false, reply, ctx, session, out);
            Action::Continue
        }
    }
}

/// Answers an authentication attempt once its credentials are checked (either protocol).
pub fn finish_auth(
    ok: bool,
    reply: auth::Reply,
    ctx: &Ctx<'_>,
    session: &mut Session,
    out: &mut Vec<u8>,
) {
    let st = ctx.stats;
    bump(&st.auth_cmds);
    session.authenticated = ok;
    if !ok {
        bump(&st.auth_errors);
    }
    match reply {
        auth::Reply::Binary { opcode, opaque } => {
            let r = Reply {
                opcode,
                opaque,
                quiet: false,
            };
            if ok {
                r.always(out, status::OK, &[], b"Authenticated");
            } else {
                r.error(out, status::AUTH_ERROR);
            }
        }
        auth::Reply::Ascii if ok => ascii::write_line(out, "STORED"),
        auth::Reply::Ascii => ascii::write_line(out, "CLIENT_ERROR authentication failure"),
    }
}
