//! Owns: the classic text commands' semantics — a parsed `Command` applied to the store (or to
//! the runtime settings), counted, and its reply line encoded; meta commands are passed on to
//! `meta`, `stats` and the admin commands to `stats`; and the `-Y` authentication step.
//! Does not: parse (see `protocol::text`) or touch sockets.

use super::{
    admin, cluster, count_lookup, flush_all, meta, stats, store_counted, Action, Ctx, Session,
};
use crate::protocol::ascii::{
    self, Command, GetKind, Reply, StoreCmd, BAD_CHUNK, BAD_FORMAT, NON_NUMERIC, OUT_OF_MEMORY,
    TOO_LARGE,
};
use crate::protocol::text::AuthLine;
use crate::state::Shutdown;
use crate::stats::{bump, PrefixOp};
use crate::store::{
    ArithOp, ArithOutcome, DeleteOutcome, Recency, StoreError, StoreMode, StoreOutcome,
};

/// Executes one text command, appending its reply to `out`.
pub fn execute(cmd: Command<'_>, ctx: &Ctx<'_>, out: &mut Vec<u8>) -> Action {
    let sh = ctx.shared;
    let st = ctx.stats;
    match cmd {
        Command::ConfigGet { key } => {
            cluster::config_get(key, ctx, out);
            Action::Continue
        }
        Command::ConfigSet {
            key,
            data,
            replaces,
            noreply,
        } => {
            cluster::config_set(key, data, replaces, Reply { noreply }, ctx, out);
            Action::Continue
        }
        Command::Get {
            kind,
            exptime,
            keys,
        } => {
            get(kind, exptime, keys, ctx, out);
            Action::Continue
        }
        Command::Store {
            cmd,
            key,
            flags,
            exptime,
            cas,
            data,
            noreply,
        } => {
            let mode = match cmd {
                StoreCmd::Set => StoreMode::Set,
                StoreCmd::Add => StoreMode::Add,
                StoreCmd::Replace => StoreMode::Replace,
                StoreCmd::Append => StoreMode::Append(0),
                StoreCmd::Prepend => StoreMode::Prepend(0),
                StoreCmd::Cas => StoreMode::Cas(cas),
            };
            if cluster::read_only(key, ctx) {
                Reply { noreply }.line(out, cluster::READ_ONLY);
                return Action::Continue;
            }
            stats::record_prefix(ctx, key, PrefixOp::Set);
            let reply = store(mode, key, flags, exptime, data, ctx);
            Reply { noreply }.line(out, reply);
            Action::Continue
        }
        Command::Delete { key, noreply } if cluster::read_only(key, ctx) => {
            Reply { noreply }.line(out, cluster::READ_ONLY);
            Action::Continue
        }
        Command::Delete { key, noreply } => {
            stats::record_prefix(ctx, key, PrefixOp::Delete);
            let h = sh.store().hash(key);
            let r = {
                let mut shard = sh.store().lock(h);
                super::watch::lookup_first(ctx, &mut shard, key, h);
                shard.delete(key, h, 0, ctx.now())
            };
            let reply = match r {
                DeleteOutcome::Deleted => {
                    bump(&st.delete_hits);
                    "DELETED"
                }
                _ => {
                    bump(&st.delete_misses);
                    "NOT_FOUND"
                }
            };
            Reply { noreply }.line(out, reply);
            Action::Continue
        }
        Command::Arith {
            incr,
            key,
            delta,
            noreply,
        } => {
            let h = sh.store().hash(key);
            let mut shard = sh.store().lock(h);
            super::watch::lookup_first(ctx, &mut shard, key, h);
            let r = shard.arith(
                key,
                h,
                if incr { ArithOp::Incr } else { ArithOp::Decr },
                delta,
                0,
                ctx.now(),
            );
            drop(shard);
            match r {
                Ok(ArithOutcome::Value(v, _)) => {
                    bump(if incr { &st.incr_hits } else { &st.decr_hits });
                    Reply { noreply }.number(out, v);
                }
                Ok(ArithOutcome::NotFound) | Ok(ArithOutcome::Exists) => {
                    bump(if incr {
                        &st.incr_misses
                    } else {
                        &st.decr_misses
                    });
                    Reply { noreply }.line(out, "NOT_FOUND");
                }
                Ok(ArithOutcome::NonNumeric) => Reply { noreply }.line(out, NON_NUMERIC),
                Err(_) => Reply { noreply }.line(out, "SERVER_ERROR out of memory"),
            }
            Action::Continue
        }
        Command::Touch {
            key,
            exptime,
            noreply,
        } => {
            let h = sh.store().hash(key);
            let exp = ctx.exptime(exptime);
            let miss = {
                let mut shard = sh.store().lock(h);
                let r = shard.touch(key, h, exp, ctx.now());
                super::watch::fetched(ctx, key, &r);
                r.err()
            };
            count_lookup(st, true, miss);
            Reply { noreply }.line(
                out,
                if miss.is_none() {
                    "TOUCHED"
                } else {
                    "NOT_FOUND"
                },
            );
            Action::Continue
        }
        Command::FlushAll { delay, noreply } => {
            bump(&st.cmd_flush);
            if !sh.config().flush_enabled {
                Reply { noreply }.line(out, "CLIENT_ERROR flush_all not allowed");
                return Action::Continue;
            }
            flush_all(sh, i64::from(delay), ctx.now());
            Reply { noreply }.line(out, "OK");
            Action::Continue
        }
        Command::Version => {
            out.extend_from_slice(b"VERSION ");
            ascii::write_line(out, crate::config::PROTOCOL_VERSION);
            Action::Continue
        }
        Command::Verbosity { level, noreply } => {
            sh.settings().set_verbosity(level.min(2));
            Reply { noreply }.line(out, "OK");
            Action::Continue
        }
        Command::Quit => Action::Close,
        Command::Shutdown { graceful } => {
            if !sh.config().shutdown_enabled {
                ascii::write_line(out, "ERROR: shutdown not enabled");
                return Action::Continue;
            }
            Action::Shutdown(if graceful {
                Shutdown::Graceful
            } else {
                Shutdown::Now
            })
        }
        Command::ShutdownBadMode => {
            if sh.config().shutdown_enabled {
                ascii::write_line(out, "CLIENT_ERROR invalid shutdown mode");
            } else {
                ascii::write_line(out, "ERROR: shutdown not enabled");
            }
            Action::Continue
        }
        Command::RefreshCerts { noreply } => {
            match sh.tls() {
                // memcached built with TLS answers so when started without -Z.
                None => ascii::write_line(out, "Error TLS not enabled"),
                Some(tls) => match tls.refresh(ctx.now()) {
                    Ok(()) => {
                        log::info!("refresh_certs: certificates reloaded for new connections");
                        Reply { noreply }.line(out, "OK");
                    }
                    Err(e) => {
                        log::error!("refresh_certs: {e}; the certificates in use stay");
                        ascii::write_line(out, &e);
                    }
                },
            }
            Action::Continue
        }
        Command::MemLimit { mb, noreply } => {
            Reply { noreply }.line(out, admin::mem_limit(mb, ctx));
            Action::Continue
        }
        Command::Stats(group) => {
            stats::stats(group, ctx, out);
            Action::Continue
        }
        Command::SlabsReassign { src, dst } => {
            ascii::write_line(out, admin::slabs_reassign(src, dst, ctx));
            Action::Continue
        }
        Command::SlabsAutomove { level, noreply } => {
            Reply { noreply }.line(out, admin::slabs_automove(level, ctx));
            Action::Continue
        }
        Command::LruCrawler(c) => admin::lru_crawler(c, ctx, out),
        Command::Lru { cmd, noreply } => {
            Reply { noreply }.line(out, admin::lru(cmd, ctx));
            Action::Continue
        }
        Command::Watch { streams, noreply } => super::watch::watch(streams, noreply, ctx, out),
        Command::MetaNoop => {
            ascii::write_line(out, "MN");
            Action::Flush
        }
        Command::Meta { tokens, data } => meta::execute(tokens, data, ctx, out),
        Command::BadDataChunk { noreply } => {
            // memcached counts the set once its data is read, before checking the `\r\n`.
            bump(&st.cmd_set);
            Reply { noreply }.line(out, BAD_CHUNK);
            Action::Continue
        }
        Command::Reply { msg, noreply } => {
            Reply { noreply }.line(out, msg);
            Action::Continue
        }
        Command::Swallow {
            msg,
            noreply,
            skip,
            too_large,
            unlink,
        } => {
            if let Some(key) = unlink {
                stats::record_prefix(ctx, key, PrefixOp::Set);
                let h = sh.store().hash(key);
                sh.store().lock(h).delete(key, h, 0, ctx.now());
            }
            if too_large {
                bump(&st.store_too_large);
            }
            Reply { noreply }.line(out, msg);
            Action::Swallow(skip)
        }
    }
}

/// One step of ASCII authentication (`-Y`) before the connection is authenticated.
pub fn ascii_auth(line: AuthLine<'_>, session: &mut Session, out: &mut Vec<u8>) -> Action {
    let msg = match line {
        AuthLine::Unauthenticated => "CLIENT_ERROR unauthenticated",
        AuthLine::BadTermination => "CLIENT_ERROR bad command line termination",
        AuthLine::BadFormat => "CLIENT_ERROR bad authentication token format",
        AuthLine::Credentials { user, password } => {
            session.pending = Some(crate::auth::Attempt {
                user: user.to_vec(),
                password: password.to_vec(),
                reply: crate::auth::Reply::Ascii,
            });
            return Action::Verify;
        }
    };
    ascii::write_line(out, msg);
    Action::Continue
}

fn get(kind: GetKind, exptime: i32, keys: &[u8], ctx: &Ctx<'_>, out: &mut Vec<u8>) {
    let sh = ctx.shared;
    let st = ctx.stats;
    let start = out.len();
    let now = ctx.now();
    let touch = matches!(kind, GetKind::Gat | GetKind::Gats);
    let want_cas = matches!(kind, GetKind::Gets | GetKind::Gats);
    let exp = if touch { ctx.exptime(exptime) } else { 0 };
    for key in ascii::keys(keys) {
        if key.len() > 250 {
            out.truncate(start);
            unpin_after(ctx, start);
            ascii::write_line(out, BAD_FORMAT);
            return;
        }
        if cluster::legacy_value(key, want_cas, ctx, out) {
            continue;
        }
        let h = sh.store().hash(key);
        let mut shard = sh.store().lock(h);
        let r = if touch {
            shard.touch(key, h, exp, now)
        } else {
            shard.get(key, h, now, Recency::Bump)
        };
        stats::record_prefix(ctx, key, PrefixOp::Get { hit: r.is_ok() });
        super::watch::fetched(ctx, key, &r);
        match r {
            Ok(v) => {
                let cas = want_cas.then_some(ctx.visible_cas(v.cas));
                match ctx.pins.filter(|_| v.value.len() >= super::PIN_MIN) {
                    // A large value is sent from the item as the socket drains (memcached's
                    // reply points at the item): only its line is written now.
                    Some(sink) => {
                        ascii::write_value_line(out, v.key, v.flags, v.value.len(), cas);
                        let pin = sh.store().pin(&mut shard, key, h);
                        sink.borrow_mut().extend(pin.map(|p| (out.len(), p)));
                        out.extend_from_slice(b"\r\n");
                    }
                    None => {
                        ascii::write_value(out, v.key, v.flags, v.value.parts(), v.value.len(), cas)
                    }
                }
                drop(shard);
                count_lookup(st, touch, None);
            }
            Err(m) => {
                drop(shard);
                count_lookup(st, touch, Some(m));
            }
        }
    }
    out.extend_from_slice(b"END\r\n");
}

/// Gives back the pins a get took for replies written past `start` (the get's replies are
/// dropped).
fn unpin_after(ctx: &Ctx<'_>, start: usize) {
    if let Some(sink) = ctx.pins {
        let mut pins = sink.borrow_mut();
        while pins.last().is_some_and(|&(at, _)| at > start) {
            if let Some((_, p)) = pins.pop() {
                ctx.shared.store().unpin(p);
            }
        }
    }
}

/// Stores a value and returns the reply line.
pub fn store(
    mode: StoreMode,
    key: &[u8],
    flags: u32,
    exptime: i32,
    data: &[u8],
    ctx: &Ctx<'_>,
) -> &'static str {
    match store_counted(mode, key, flags, ctx.exptime(exptime), data, ctx) {
        Ok(StoreOutcome::Stored(_)) => "STORED",
        Ok(StoreOutcome::NotStored) => "NOT_STORED",
        Ok(StoreOutcome::Exists) => "EXISTS",
        Ok(StoreOutcome::NotFound) => "NOT_FOUND",
        Err(StoreError::TooLarge) => TOO_LARGE,
        Err(StoreError::OutOfMemory) => OUT_OF_MEMORY,
    }
}
