//! Owns: credentials — the credentials file shared by SASL (`-S`) and ASCII auth (`-Y`), its
//! entries (memcached's plaintext `user:password`, or a PHC string: argon2id or PBKDF2-SHA256),
//! or cyrus' sasldb (`cyrus`, `sasldb`: users as `user@realm`), constant-time verification
//! (PLAIN and, for sasldb users, CRAM-MD5 in `cram`), the cache of successful verifications,
//! SASL PLAIN payloads, and making new hashed entries (`ferrocache passwd`).
//! Does not: run threads or sockets (the server runs slow verifications on its own pool and
//! reloads the file on SIGHUP), or speak any wire protocol.
//!
//! # File format
//!
//! ```text
//! # comment
//! alice:$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>
//! bob:$pbkdf2-sha256$i=600000,l=32$<salt>$<hash>
//! carol:plaintext-password          # memcached's format; accepted with a warning
//! ```
//!
//! A secret that starts with `$` must parse as a PHC string of a supported algorithm.
//!
//! # Timing
//!
//! Every comparison goes through HMAC-SHA256 digests under a per-process random key and
//! `subtle`'s constant-time equality, so neither the length nor the content of a stored secret
//! shows in timing. An unknown user is checked against a stand-in of the same kind (a real
//! entry's hash when the file has any), so it costs what a wrong password costs.

pub mod cram;
pub mod cyrus;
pub mod sasldb;

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::Path;

use hmac::{Hmac, Mac};
use parking_lot::Mutex;
use password_hash::rand_core::{OsRng, RngCore};
use password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Most successful verifications remembered before the cache starts over.
const CACHE_LIMIT: usize = 4096;
/// Longest accepted user name or password.
pub const MAX_FIELD: usize = 4096;

type HmacSha256 = Hmac<Sha256>;

/// A set of credentials to check, and where the answer goes.
#[derive(Clone, PartialEq, Eq)]
pub struct Attempt {
    pub user: Vec<u8>,
    pub password: Vec<u8>,
    pub reply: Reply,
}

impl fmt::Debug for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Attempt")
            .field("user", &String::from_utf8_lossy(&self.user))
            .field("reply", &self.reply)
            .finish_non_exhaustive()
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        self.password.fill(0);
    }
}

/// Which protocol's answer an attempt gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reply {
    /// A binary SASL_AUTH: echo the opcode and opaque.
    Binary { opcode: u8, opaque: u32 },
    /// memcached's ASCII auth `set`.
    Ascii,
}

/// Why a credentials file was refused.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("cannot read {path}: {err}")]
    Io { path: String, err: std::io::Error },
    #[error("line {line}: {reason}")]
    Malformed { line: usize, reason: String },
    #[error("{path}: {err}")]
    Sasldb {
        path: String,
        err: sasldb::SasldbError,
    },
}

#[derive(Clone)]
enum Secret {
    /// memcached's plaintext form, kept only as its keyed digest.
    Plain([u8; 32]),
    /// A PHC string.
    Hashed(String),
}

/// A loaded credentials file. Cheap to share behind an `Arc`; replaced whole on reload.
pub struct Credentials {
    users: HashMap<Vec<u8>, Secret>,
    /// Per-process key for digests and cache entries.
    key: [u8; 32],
    /// What an unknown user is checked against.
    standin: Secret,
    plaintext: usize,
    /// Some entry is hashed: then every check but a remembered success costs a key derivation,
    /// so timing tells neither unknown users nor plaintext entries apart.
    hashed: bool,
    /// Digests of (user, password, stored secret) that verified.
    verified: Mutex<HashSet<[u8; 32]>>,
    /// A sasldb's users: names are `user NUL realm`, and this is the realm of a name without
    /// `@realm`.
    realm: Option<Vec<u8>>,
    /// A sasldb's passwords in clear, for CRAM-MD5 (they are plaintext in the file already).
    clear: HashMap<Vec<u8>, Vec<u8>>,
}

impl Drop for Credentials {
    fn drop(&mut self) {
        for p in self.clear.values_mut() {
            p.fill(0);
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("users", &self.users.len())
            .field("plaintext", &self.plaintext)
            .finish_non_exhaustive()
    }
}

fn digest(key: &[u8; 32], parts: &[&[u8]]) -> [u8; 32] {
    // An HMAC key of any length is valid, so this cannot fail.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    for p in parts {
        mac.update(&(p.len() as u64).to_le_bytes());
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

fn check_phc(phc: &str) -> Result<(), String> {
    let h = PasswordHash::new(phc).map_err(|e| format!("not a PHC string: {e}"))?;
    if h.salt.is_none() || h.hash.is_none() {
        return Err("PHC string without salt or hash".into());
    }
    if h.algorithm.as_str().starts_with("argon2") {
        let p = argon2::Params::try_from(&h).map_err(|e| format!("argon2 parameters: {e}"))?;
        if p.m_cost() > MAX_ARGON2_KIB {
            return Err(format!("argon2 memory cost over {MAX_ARGON2_KIB} KiB"));
        }
    }
    match h.algorithm.as_str() {
        "argon2id" | "argon2i" | "argon2d" | "pbkdf2-sha256" | "pbkdf2-sha512" => Ok(()),
        other => Err(format!("unsupported algorithm {other}")),
    }
}

fn verify_phc(phc: &str, password: &[u8]) -> bool {
    let Ok(h) = PasswordHash::new(phc) else {
        return false;
    };
    match h.algorithm.as_str() {
        "argon2id" | "argon2i" | "argon2d" => verify_argon2(&h, password),
        "pbkdf2-sha256" | "pbkdf2-sha512" => pbkdf2::Pbkdf2.verify_password(password, &h).is_ok(),
        _ => false,
    }
}

thread_local! {
    /// argon2's working memory, kept per verifying thread: allocating it per check (tens of MB)
    /// leaves the allocator holding freed arenas.
    static ARGON2_BLOCKS: std::cell::RefCell<Vec<argon2::Block>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

fn verify_argon2(h: &PasswordHash<'_>, password: &[u8]) -> bool {
    let (Ok(params), Ok(alg), Some(salt), Some(expected)) = (
        argon2::Params::try_from(h),
        argon2::Algorithm::try_from(h.algorithm),
        h.salt,
        h.hash,
    ) else {
        return false;
    };
    let version = match h.version.map(argon2::Version::try_from) {
        None => argon2::Version::V0x13,
        Some(Ok(v)) => v,
        Some(Err(_)) => return false,
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    let n = params.block_count();
    let hashed = ARGON2_BLOCKS.with(|b| {
        let mut blocks = b.borrow_mut();
        if blocks.len() < n {
            blocks.resize(n, argon2::Block::default());
        }
        argon2::Argon2::new(alg, version, params).hash_password_into_with_memory(
            password,
            salt,
            &mut out,
            &mut blocks[..n],
        )
    });
    hashed.is_ok() && bool::from(out.as_slice().ct_eq(expected.as_bytes()))
}

/// Largest argon2 memory cost accepted in a credentials file (KiB): bounds what a check takes.
const MAX_ARGON2_KIB: u32 = 256 * 1024;

impl Credentials {
    /// Reads and parses a credentials file.
    pub fn load(path: &Path) -> Result<Credentials, CredentialsError> {
        let text = std::fs::read_to_string(path).map_err(|err| CredentialsError::Io {
            path: path.display().to_string(),
            err,
        })?;
        Credentials::parse(&text)
    }

    /// Parses credentials text (see the module docs).
    pub fn parse(text: &str) -> Result<Credentials, CredentialsError> {
        let mut key = [0u8; 32];
        OsRng.fill_bytes(&mut key);
        let mut users = HashMap::new();
        let mut plaintext = 0;
        let mut standin = None;
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let l = raw.trim_end_matches('\r');
            if l.trim().is_empty() || l.trim_start().starts_with('#') {
                continue;
            }
            let bad = |reason: &str| CredentialsError::Malformed {
                line,
                reason: reason.to_string(),
            };
            let (user, secret) = l
                .split_once(':')
                .ok_or_else(|| bad("expected user:secret"))?;
            if user.is_empty() || user.len() > MAX_FIELD || user.contains([' ', '\t', '\0']) {
                return Err(bad("bad user name"));
            }
            if secret.is_empty() || secret.len() > MAX_FIELD {
                return Err(bad("empty or overlong secret"));
            }
            let s = if secret.starts_with('$') {
                check_phc(secret).map_err(|r| bad(&r))?;
                Secret::Hashed(secret.to_string())
            } else {
                plaintext += 1;
                Secret::Plain(digest(&key, &[secret.as_bytes()]))
            };
            if let Secret::Hashed(_) = &s {
                standin.get_or_insert_with(|| s.clone());
            }
            if users.insert(user.as_bytes().to_vec(), s).is_some() {
                return Err(bad("duplicate user"));
            }
        }
        Ok(Credentials::assemble(users, key, standin, plaintext))
    }

    fn assemble(
        users: HashMap<Vec<u8>, Secret>,
        key: [u8; 32],
        standin: Option<Secret>,
        plaintext: usize,
    ) -> Credentials {
        let standin = standin.unwrap_or_else(|| {
            let mut r = [0u8; 32];
            OsRng.fill_bytes(&mut r);
            Secret::Plain(digest(&key, &[&r]))
        });
        let hashed = matches!(standin, Secret::Hashed(_));
        Credentials {
            users,
            key,
            standin,
            plaintext,
            hashed,
            verified: Mutex::new(HashSet::new()),
            realm: None,
            clear: HashMap::new(),
        }
    }

    /// The users of a sasldb (their `userPassword` entries; every one is plaintext). A name
    /// without `@realm` logs in to `default_realm`, as cyrus does for memcached.
    pub fn from_sasldb(entries: Vec<sasldb::Entry>, default_realm: &[u8]) -> Credentials {
        let mut key = [0u8; 32];
        OsRng.fill_bytes(&mut key);
        let mut users = HashMap::new();
        let mut clear = HashMap::new();
        for mut e in entries {
            if e.property != sasldb::PASSWORD || e.user.len() > MAX_FIELD {
                continue;
            }
            let name = [&e.user[..], &b"\0"[..], &e.realm[..]].concat();
            users.insert(name.clone(), Secret::Plain(digest(&key, &[&e.value])));
            clear.insert(name, std::mem::take(&mut e.value));
        }
        let n = users.len();
        let mut c = Credentials::assemble(users, key, None, n);
        c.realm = Some(default_realm.to_vec());
        c.clear = clear;
        c
    }

    /// The name a login's user is stored under: itself, or for a sasldb `user NUL realm`, the
    /// realm being what follows the first `@` (else the default realm).
    fn name<'a>(&self, user: &'a [u8]) -> Cow<'a, [u8]> {
        let Some(realm) = &self.realm else {
            return Cow::Borrowed(user);
        };
        let (u, r) = match user.iter().position(|&b| b == b'@') {
            Some(at) => (&user[..at], &user[at + 1..]),
            None => (user, &realm[..]),
        };
        Cow::Owned([u, &b"\0"[..], r].concat())
    }

    /// Checks a CRAM-MD5 response (`user SP hex-digest`) to `challenge`. Only sasldb users can
    /// log in this way (it needs the password in clear).
    pub fn check_cram(&self, challenge: &[u8], response: &[u8]) -> bool {
        let Some((user, given)) = cram::parse_response(response) else {
            return false;
        };
        let name = self.name(user);
        let (password, known) = match self.clear.get(&*name) {
            Some(p) => (&p[..], true),
            None => (&self.key[..], false),
        };
        bool::from(cram::digest(password, challenge).ct_eq(&given)) & known
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Number of entries stored as plaintext (worth a warning).
    pub fn plaintext_entries(&self) -> usize {
        self.plaintext
    }

    fn entry(&self, user: &[u8]) -> (&Secret, bool) {
        match self.users.get(&*self.name(user)) {
            Some(s) => (s, true),
            None => (&self.standin, false),
        }
    }

    fn cache_tag(&self, user: &[u8], password: &[u8], secret: &Secret) -> [u8; 32] {
        match secret {
            Secret::Plain(d) => digest(&self.key, &[user, password, d]),
            Secret::Hashed(phc) => digest(&self.key, &[user, password, phc.as_bytes()]),
        }
    }

    /// Decides without running a key-derivation function when it can: every check when the file
    /// is all plaintext, and remembered successes otherwise. `None` means only `check` can tell
    /// (call it off the event loop).
    pub fn check_fast(&self, user: &[u8], password: &[u8]) -> Option<bool> {
        let (secret, known) = self.entry(user);
        if self.hashed {
            let tag = self.cache_tag(user, password, secret);
            return (known && self.verified.lock().contains(&tag)).then_some(true);
        }
        match secret {
            Secret::Plain(d) => {
                let given = digest(&self.key, &[password]);
                Some(bool::from(given.ct_eq(d)) & known)
            }
            Secret::Hashed(_) => None,
        }
    }

    /// Full check; may run argon2 or PBKDF2 (tens of milliseconds).
    pub fn check(&self, user: &[u8], password: &[u8]) -> bool {
        if let Some(r) = self.check_fast(user, password) {
            return r;
        }
        let (secret, known) = self.entry(user);
        let ok = match secret {
            Secret::Hashed(phc) => verify_phc(phc, password),
            Secret::Plain(d) => {
                // Same cost as a hashed entry: run the stand-in's derivation too.
                if let Secret::Hashed(phc) = &self.standin {
                    let _ = verify_phc(phc, password);
                }
                bool::from(digest(&self.key, &[password]).ct_eq(d))
            }
        } & known;
        if ok {
            let tag = self.cache_tag(user, password, secret);
            let mut v = self.verified.lock();
            if v.len() >= CACHE_LIMIT {
                v.clear();
            }
            v.insert(tag);
        }
        ok
    }
}

/// Password-hashing algorithms `ferrocache passwd` can write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Algorithm {
    Argon2id,
    Pbkdf2Sha256,
}

/// Makes a `user:<PHC>` line for the credentials file.
pub fn make_entry(user: &str, password: &[u8], alg: Algorithm) -> Result<String, String> {
    if user.is_empty() || user.contains([':', ' ', '\t', '\n', '\r', '\0']) {
        return Err("user names must be non-empty without ':' or whitespace".into());
    }
    if password.is_empty() {
        return Err("empty password".into());
    }
    let salt = SaltString::generate(&mut OsRng);
    let phc = match alg {
        Algorithm::Argon2id => argon2::Argon2::default()
            .hash_password(password, &salt)
            .map_err(|e| e.to_string())?
            .to_string(),
        Algorithm::Pbkdf2Sha256 => pbkdf2::Pbkdf2
            .hash_password(password, &salt)
            .map_err(|e| e.to_string())?
            .to_string(),
    };
    Ok(format!("{user}:{phc}"))
}

/// Splits a SASL PLAIN message (RFC 4616: `[authzid] NUL authcid NUL passwd`). An authzid
/// other than the user itself is refused (no proxy authorization).
pub fn parse_plain(msg: &[u8]) -> Option<(&[u8], &[u8])> {
    let mut parts = msg.splitn(3, |&b| b == 0);
    let authzid = parts.next()?;
    let user = parts.next()?;
    let pass = parts.next()?;
    if user.is_empty() || user.len() > MAX_FIELD || pass.len() > MAX_FIELD {
        return None;
    }
    if !authzid.is_empty() && authzid != user {
        return None;
    }
    Some((user, pass))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_entries_compare_exactly() {
        let c = Credentials::parse("# c\nfoo:bar\n\nbaz:qux quux\n").unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c.plaintext_entries(), 2);
        assert_eq!(c.check_fast(b"foo", b"bar"), Some(true));
        assert_eq!(c.check_fast(b"foo", b"ba"), Some(false));
        assert_eq!(c.check_fast(b"foo", b"barr"), Some(false));
        assert_eq!(c.check_fast(b"baz", b"qux quux"), Some(true));
        assert_eq!(c.check_fast(b"nobody", b"bar"), Some(false));
        assert!(!c.check(b"nobody", b"bar"));
    }

    #[test]
    fn hashed_entries_verify_and_cache() {
        for alg in [Algorithm::Argon2id, Algorithm::Pbkdf2Sha256] {
            let line = make_entry("alice", b"s3cret", alg).unwrap();
            assert!(!line.contains("s3cret"));
            let c = Credentials::parse(&format!("{line}\nbob:plain\n")).unwrap();
            assert_eq!(c.check_fast(b"alice", b"s3cret"), None);
            assert_eq!(
                c.check_fast(b"ghost", b"s3cret"),
                None,
                "unknown users cost a KDF"
            );
            assert!(!c.check(b"alice", b"wrong"));
            assert!(!c.check(b"ghost", b"s3cret"));
            assert!(c.check(b"alice", b"s3cret"));
            assert_eq!(c.check_fast(b"alice", b"s3cret"), Some(true));
            assert_eq!(c.check_fast(b"alice", b"wrong"), None);
            assert!(c.check(b"bob", b"plain"));
            // In a file with hashed entries, plaintext ones cost a derivation too.
            assert_eq!(c.check_fast(b"bob", b"plain"), Some(true), "remembered");
            assert_eq!(c.check_fast(b"bob", b"wrong"), None);
            assert!(!c.check(b"bob", b"wrong"));
        }
    }

    #[test]
    fn malformed_files_are_refused() {
        for bad in [
            "nocolon\n",
            ":pw\n",
            "a:\n",
            "a:b\na:c\n",
            "a:$argon2id$garbage\n",
            "a:$md5$x$y\n",
        ] {
            assert!(Credentials::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sasldb_users_log_in_as_user_at_realm() {
        let e = |user: &str, realm: &str, prop: &[u8], value: &str| sasldb::Entry {
            user: user.into(),
            realm: realm.into(),
            property: prop.to_vec(),
            value: value.into(),
        };
        let c = Credentials::from_sasldb(
            vec![
                e("alice", "vm", sasldb::PASSWORD, "pw1"),
                e("testuser", "memcached.realm", sasldb::PASSWORD, "testpass"),
                e("otp", "vm", b"cmusaslsecretOTP", "x"),
            ],
            b"vm",
        );
        assert_eq!(c.len(), 2);
        assert_eq!(c.plaintext_entries(), 2);
        assert!(c.check(b"alice", b"pw1"));
        assert!(c.check(b"alice@vm", b"pw1"));
        assert!(c.check(b"testuser@memcached.realm", b"testpass"));
        assert!(!c.check(b"testuser", b"testpass"), "other realm");
        assert!(
            !c.check(b"alice@vm@x", b"pw1"),
            "realm is after the first @"
        );
        assert!(!c.check(b"otp", b"x"));
        assert!(!c.check(b"alice", b"pw2"));

        let ch = cram::challenge(b"vm");
        let answer = |user: &str, pw: &[u8]| {
            let d = cram::digest(pw, &ch);
            let hex: String = d.iter().map(|b| format!("{b:02x}")).collect();
            format!("{user} {hex}").into_bytes()
        };
        assert!(c.check_cram(&ch, &answer("alice", b"pw1")));
        assert!(c.check_cram(&ch, &answer("testuser@memcached.realm", b"testpass")));
        assert!(!c.check_cram(&ch, &answer("alice", b"pw2")));
        assert!(!c.check_cram(&ch, &answer("ghost", b"pw1")));
        assert!(!c.check_cram(b"<other>", &answer("alice", b"pw1")));
        // A credentials file's users have no clear password: no CRAM-MD5.
        let f = Credentials::parse("alice:pw1\n").unwrap();
        assert!(!f.check_cram(&ch, &answer("alice", b"pw1")));
    }

    #[test]
    fn plain_messages() {
        assert_eq!(parse_plain(b"\0foo\0bar"), Some((&b"foo"[..], &b"bar"[..])));
        assert_eq!(
            parse_plain(b"foo\0foo\0bar"),
            Some((&b"foo"[..], &b"bar"[..]))
        );
        assert_eq!(parse_plain(b"admin\0foo\0bar"), None);
        assert_eq!(parse_plain(b"\0foo"), None);
        assert_eq!(parse_plain(b"\0\0bar"), None);
        assert_eq!(
            parse_plain(b"\0foo\0ba\0r"),
            Some((&b"foo"[..], &b"ba\0r"[..]))
        );
    }
}
