//! Owns: the `watch` command's semantics (refused under `-W`, after pipelined requests, for an
//! unknown stream, over UDP, and past 20 watchers, with memcached's replies; otherwise a watcher
//! slot and `Action::Watch`, after which the server hands the connection to its watcher thread)
//! and the fetcher and mutation events the executors log (`item_get`, `item_store`).
//! Does not: buffer or send log lines (see `state::logger`, `server::watcher`).

use super::{Action, Ctx};
use crate::protocol::ascii::{Reply, ERROR};
use crate::protocol::watch::{self, Event, Found, Key, StoreCmd, Stored};
use crate::store::{ItemView, Miss, Shard, StoreError, StoreMode, StoreOutcome, StoreRequest};

/// `watch [streams...]`: `out` holds the replies of this batch not yet written (memcached refuses
/// a watch pipelined behind other requests).
pub fn watch(streams: Option<u16>, noreply: bool, ctx: &Ctx<'_>, out: &mut Vec<u8>) -> Action {
    let reply = Reply { noreply };
    if !ctx.shared.config().watch_enabled {
        reply.line(out, "CLIENT_ERROR watch commands not allowed");
        return Action::Continue;
    }
    if ctx.conn.udp_peer.is_some() {
        reply.line(out, "CLIENT_ERROR watch commands not allowed over UDP");
        return Action::Continue;
    }
    if !out.is_empty() {
        reply.line(out, "ERROR cannot pipeline other commands before watch");
        return Action::Continue;
    }
    let Some(streams) = streams else {
        reply.line(out, ERROR);
        return Action::Continue;
    };
    match ctx.shared.logger().add_watcher(streams) {
        Ok(ticket) => Action::Watch(ticket),
        Err(_) => {
            reply.line(out, "WATCHER_TOO_MANY log watcher limit reached");
            Action::Continue
        }
    }
}

/// Logs a lookup of `key` (`item_get`) while fetchers are watched: on a miss memcached shows
/// class 0 and size 0.
pub fn fetched(ctx: &Ctx<'_>, key: &[u8], r: &Result<ItemView<'_>, Miss>) {
    let lg = ctx.shared.logger();
    if !lg.wants(watch::FETCHERS) {
        return;
    }
    let (found, clsid, size) = match r {
        Ok(v) => (Found::Found, v.class as u32 + 1, v.value.len()),
        Err(Miss::NotFound) => (Found::NotFound, 0, 0),
        Err(Miss::Flushed) => (Found::Flushed, 0, 0),
        Err(Miss::Expired) => (Found::Expired, 0, 0),
    };
    lg.log(Event::ItemGet {
        key: Key::new(key),
        found,
        clsid,
        cfd: ctx.conn.id,
        size,
    });
}

/// Logs the lookup a store or a delete makes first (memcached logs it), while fetchers are
/// watched.
pub fn lookup_first(ctx: &Ctx<'_>, shard: &mut Shard, key: &[u8], hash: u64) {
    if ctx.shared.logger().wants(watch::FETCHERS) {
        fetched(ctx, key, &shard.peek(key, hash, ctx.now()));
    }
}

/// Stores `req` in `shard` as memcached's `do_store_item` does while watched: the lookup first
/// (`item_get`), then the result (`item_store`).
pub fn store_logged(
    ctx: &Ctx<'_>,
    shard: &mut Shard,
    req: StoreRequest<'_>,
) -> Result<StoreOutcome, StoreError> {
    lookup_first(ctx, shard, req.key, req.hash);
    let log = StoreLog {
        mode: req.mode,
        key: req.key,
        hash: req.hash,
        flags: req.flags,
        exptime: req.exptime,
        value_len: req.value.len(),
    };
    let r = shard.store(req, ctx.now());
    stored(ctx, shard, log, &r);
    r
}

/// A storage request as `item_store` shows it.
#[derive(Clone, Copy, Debug)]
pub struct StoreLog<'a> {
    pub mode: StoreMode,
    pub key: &'a [u8],
    /// `Store::hash(key)`.
    pub hash: u64,
    pub flags: u32,
    /// Server-relative expiry (0: never).
    pub exptime: u32,
    pub value_len: usize,
}

/// Logs a storage request's result (`item_store`) while mutations are watched, under the shard
/// lock the store held: a stored item is shown as stored (an append's whole value and kept
/// expiry), another result with the request's own details. `ttl` is the seconds left from now
/// as memcached prints it (unsigned, so a past time wraps).
pub fn stored(
    ctx: &Ctx<'_>,
    shard: &mut Shard,
    req: StoreLog<'_>,
    r: &Result<StoreOutcome, StoreError>,
) {
    let lg = ctx.shared.logger();
    if !lg.wants(watch::MUTATIONS) {
        return;
    }
    let status = match r {
        Ok(StoreOutcome::Stored(_)) => Stored::Stored,
        Ok(StoreOutcome::NotStored) => Stored::NotStored,
        Ok(StoreOutcome::Exists) => Stored::Exists,
        Ok(StoreOutcome::NotFound) => Stored::NotFound,
        Err(StoreError::TooLarge) => Stored::TooLarge,
        Err(StoreError::OutOfMemory) => Stored::NoMemory,
    };
    let cmd = match req.mode {
        StoreMode::Set => StoreCmd::Set,
        StoreMode::Add => StoreCmd::Add,
        StoreMode::Replace => StoreCmd::Replace,
        StoreMode::Append(_) => StoreCmd::Append,
        StoreMode::Prepend(_) => StoreCmd::Prepend,
        StoreMode::Cas(_) => StoreCmd::Cas,
    };
    let now = ctx.now();
    let item = match r {
        Ok(StoreOutcome::Stored(_)) => shard
            .peek(req.key, req.hash, now)
            .ok()
            .map(|v| (v.exptime, v.class as u32 + 1, v.value.len())),
        _ => None,
    };
    let (exptime, clsid, size) = match r {
        // memcached logs a refused allocation without the item's details.
        Err(_) => (0, 0, 0),
        Ok(_) => item.unwrap_or_else(|| {
            let clsid = ctx
                .shared
                .store()
                .class_id_for(req.key, req.value_len, req.flags);
            (req.exptime, clsid, req.value_len)
        }),
    };
    lg.log(Event::ItemStore {
        key: Key::new(req.key),
        status,
        cmd,
        ttl: if exptime != 0 {
            exptime.wrapping_sub(now)
        } else {
            0
        },
        clsid,
        cfd: ctx.conn.id,
        size,
    });
}
