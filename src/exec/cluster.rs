//! Owns: Auto Discovery requests — `config get cluster`, `config set cluster` and the
//! supervisor's `config set cluster_event` (admin endpoint only; conditional when it names the version it replaces: text after `<bytes>`, binary in the
//! header's CAS), the read-only legacy key `AmazonElastiCache:cluster`, and binary CONFIG_GET (0x60) /
//! CONFIG_SET (0x64).
//! Does not: build, version or persist configs (see `cluster` and `cluster::state`).

use super::Ctx;
use crate::cluster::state::UpdateError;
use crate::cluster::{CONFIG_KEY, EVENT_KEY, LEGACY_KEY};
use crate::protocol::ascii;
use crate::protocol::binary::{status, write_header, Check, Frame, Reply, ResHeader};

/// Reply to a push from a connection that is not on the admin endpoint.
pub const NOT_ADMIN: &str = "CLIENT_ERROR config set is accepted only on the admin endpoint";

/// Reply to a write of the legacy discovery key while discovery is on.
pub const READ_ONLY: &str = "CLIENT_ERROR AmazonElastiCache:cluster is read-only";

/// The legacy discovery key is served, not stored: writes to it are refused while discovery is on.
pub fn read_only(key: &[u8], ctx: &Ctx<'_>) -> bool {
    key == LEGACY_KEY.as_bytes() && ctx.shared.cluster().enabled()
}

/// `config get <key>`.
pub fn config_get(key: &[u8], ctx: &Ctx<'_>, out: &mut Vec<u8>) {
    if key != CONFIG_KEY.as_bytes() {
        ascii::write_line(out, "CLIENT_ERROR unknown config key");
        return;
    }
    match ctx.shared.cluster().current() {
        Some(c) => c.write_config_reply(out),
        None => out.extend_from_slice(b"END\r\n"),
    }
}

fn push(
    key: &[u8],
    data: &[u8],
    replaces: Option<u64>,
    ctx: &Ctx<'_>,
) -> Result<(), (u16, String)> {
    if !ctx.conn.admin {
        return Err((status::AUTH_ERROR, NOT_ADMIN.to_string()));
    }
    if key == EVENT_KEY.as_bytes() {
        ctx.shared.cluster().record_event(data);
        return Ok(());
    }
    if key != CONFIG_KEY.as_bytes() {
        return Err((
            status::KEY_ENOENT,
            "CLIENT_ERROR unknown config key".to_string(),
        ));
    }
    match ctx.shared.cluster().push(data, replaces) {
        Ok(_) => Ok(()),
        Err(UpdateError::Rejected(e)) => {
            log::warn!("cluster push refused: {}", e.detail());
            Err((e.binary_status(), e.to_string()))
        }
        Err(e) => {
            log::error!("{e}");
            Err((
                status::ENOMEM,
                "SERVER_ERROR cannot persist the cluster state".to_string(),
            ))
        }
    }
}

/// `config set <key> <flags> <bytes> [<replaces>]` with its data.
pub fn config_set(
    key: &[u8],
    data: &[u8],
    replaces: Option<u64>,
    r: ascii::Reply,
    ctx: &Ctx<'_>,
    out: &mut Vec<u8>,
) {
    match push(key, data, replaces, ctx) {
        Ok(()) => r.line(out, "STORED"),
        Err((_, msg)) => r.line(out, &msg),
    }
}

/// Serves the legacy discovery key inside a `get`/`gets`; false when it is not that key or
/// discovery is off (the key is then an ordinary one).
pub fn legacy_value(key: &[u8], with_cas: bool, ctx: &Ctx<'_>, out: &mut Vec<u8>) -> bool {
    if key != LEGACY_KEY.as_bytes() || !ctx.shared.cluster().enabled() {
        return false;
    }
    match ctx.shared.cluster().current() {
        Some(c) => {
            c.write_legacy_value(out, with_cas.then_some(c.version()));
            true
        }
        None => false,
    }
}

/// Binary CONFIG_GET (0x60): like a Get — 4 bytes of flags, no key, the payload.
pub fn binary_get(f: &Frame<'_>, r: Reply, ctx: &Ctx<'_>, out: &mut Vec<u8>) {
    match ctx.shared.cluster().current() {
        Some(c) if f.key == CONFIG_KEY.as_bytes() => {
            let body = c.binary_body_len();
            let h = ResHeader {
                opcode: r.opcode,
                status: status::OK,
                opaque: r.opaque,
                cas: 0,
            };
            write_header(out, h, 4, 0, body as u32);
            c.write_binary_body(out);
        }
        _ => r.error(out, status::KEY_ENOENT),
    }
}

/// Binary CONFIG_SET (0x64): the value is the payload; a non-zero CAS in the header is the
/// version it replaces (a mismatch answers "Data exists", as a CAS mismatch).
pub fn binary_set(f: &Frame<'_>, r: Reply, ctx: &Ctx<'_>, out: &mut Vec<u8>) {
    if f.check == Check::TooLarge {
        r.error(out, status::E2BIG);
        return;
    }
    let replaces = (f.header.cas != 0).then_some(f.header.cas);
    match push(f.key, f.value, replaces, ctx) {
        Ok(()) => r.ok(out, 0, &[]),
        Err((st, msg)) => r.always(out, st, &[], msg.as_bytes()),
    }
}
