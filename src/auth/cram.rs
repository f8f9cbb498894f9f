//! Owns: SASL CRAM-MD5 (RFC 2195) as cyrus serves it to memcached's clients — the server's
//! challenge (`<random.time@host>`), splitting the client's `user SP hex-digest` response, and the
//! expected digest, HMAC-MD5 keyed with the password over the challenge.
//! Does not: look users up (see `Credentials::check_cram`).

use hmac::{Hmac, Mac};
use md5::Md5;
use password_hash::rand_core::{OsRng, RngCore};

type HmacMd5 = Hmac<Md5>;

/// A fresh challenge naming `host`.
pub fn challenge(host: &[u8]) -> Vec<u8> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut out = format!("<{}.{secs}@", OsRng.next_u32()).into_bytes();
    out.extend_from_slice(host);
    out.push(b'>');
    out
}

/// Splits a response into the user and the 16-byte digest it carries (32 hex digits after the
/// last space).
pub fn parse_response(resp: &[u8]) -> Option<(&[u8], [u8; 16])> {
    let at = resp.iter().rposition(|&b| b == b' ')?;
    let (user, hex) = (&resp[..at], &resp[at + 1..]);
    if user.is_empty() || user.len() > super::MAX_FIELD || hex.len() != 32 {
        return None;
    }
    let mut digest = [0u8; 16];
    for (d, pair) in digest.iter_mut().zip(hex.chunks(2)) {
        if !pair.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        let s = std::str::from_utf8(pair).ok()?;
        *d = u8::from_str_radix(s, 16).ok()?;
    }
    Some((user, digest))
}

/// The digest a client holding `password` answers `challenge` with.
pub fn digest(password: &[u8], challenge: &[u8]) -> [u8; 16] {
    // An HMAC key of any length is valid, so this cannot fail.
    let mut mac = <HmacMd5 as Mac>::new_from_slice(password).unwrap_or_else(|_| unreachable!());
    mac.update(challenge);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 2195's example exchange.
    #[test]
    fn rfc_2195_example() {
        let ch = b"<1896.697170952@postoffice.reston.mci.net>";
        let resp = b"tim b913a602c7eda7a495b4e6e7334d3890";
        let (user, d) = parse_response(resp).unwrap();
        assert_eq!(user, b"tim");
        assert_eq!(d, digest(b"tanstaaftanstaaf", ch));
    }

    #[test]
    fn challenges_differ_and_name_the_host() {
        let a = challenge(b"vm");
        assert!(a.starts_with(b"<") && a.ends_with(b"@vm>"));
        assert_ne!(a, challenge(b"vm"));
    }

    #[test]
    fn malformed_responses() {
        for bad in [
            &b""[..],
            b"tim",
            b" b913a602c7eda7a495b4e6e7334d3890",
            b"tim b913a602c7eda7a495b4e6e7334d389",
            b"tim b913a602c7eda7a495b4e6e7334d389z",
            b"tim +913a602c7eda7a495b4e6e7334d3890",
        ] {
            assert!(parse_response(bad).is_none(), "{bad:?}");
        }
    }
}
