//! Owns: TLS in transit as memcached's `-Z` and `-o ssl_*` options describe it — the settings
//! and their `stats settings` forms, the rustls server configuration they make (certificate chain
//! and key, client verification by `ssl_verify_mode`, protocol versions, TLS 1.2 cipher suites
//! from an OpenSSL cipher string, session resumption), reloading it for new connections
//! (`refresh_certs`, SIGHUP) with the old one kept when the new files do not load, and the
//! certificates' expiry dates (logged, with a warning within 30 days). The client side (the
//! cluster tools, the health check) is `client`.
//! Does not: touch sockets or run handshakes (see `server::stream`), parse the command line (see
//! `config::extended`).
//!
//! OpenSSL-only values have no rustls meaning: `ssl_min_version` 0 and 1 (TLS 1.0/1.1),
//! `ssl_keyformat` other than 1 (PEM) and 2 (DER), and cipher strings naming no suite rustls has
//! are refused at start-up with memcached's exit code 64; docs/protocol.md lists them.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{NoServerSessionStorage, ServerSessionMemoryCache, WebPkiClientVerifier};
use rustls::{CipherSuite, RootCertStore, ServerConfig, SupportedCipherSuite};

pub mod client;
pub use client::{ClientSettings, ClientTls};

/// memcached's OpenSSL key format numbers (`SSL_FILETYPE_PEM`, `SSL_FILETYPE_ASN1`).
pub const KEYFORMAT_PEM: i32 = 1;
pub const KEYFORMAT_DER: i32 = 2;

/// Sessions the server-side cache keeps (OpenSSL's default size, as memcached uses it).
const SESSION_CACHE_SIZE: usize = 20 * 1024;

/// A certificate expiring within this many days is warned about at start-up and on reload.
pub const EXPIRY_WARN_DAYS: i64 = 30;

/// The `-Z` and `-o ssl_*` settings, with memcached's defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    pub enabled: bool,
    pub chain_cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// 0 none, 1 request, 2 require, 3 once (as given to `ssl_verify_mode`).
    pub verify_mode: u8,
    pub keyformat: i32,
    pub ciphers: Option<String>,
    pub ca_cert: Option<PathBuf>,
    /// Bytes (the option is in kilobytes).
    pub wbuf_size: u32,
    pub session_cache: bool,
    pub kernel_tls: bool,
    /// 0 TLS 1.0, 1 TLS 1.1, 2 TLS 1.2, 3 TLS 1.3 (as given to `ssl_min_version`).
    pub min_version: u8,
}

impl Default for TlsSettings {
    fn default() -> Self {
        TlsSettings {
            enabled: false,
            chain_cert: None,
            key: None,
            verify_mode: 0,
            keyformat: KEYFORMAT_PEM,
            ciphers: None,
            ca_cert: None,
            wbuf_size: 16 * 1024,
            session_cache: false,
            kernel_tls: false,
            min_version: 2,
        }
    }
}

impl TlsSettings {
    /// `ssl_verify_mode` as memcached shows it: OpenSSL's flags (`SSL_VERIFY_PEER` 1,
    /// `FAIL_IF_NO_PEER_CERT` 2, `CLIENT_ONCE` 4).
    pub fn verify_flags(&self) -> u8 {
        match self.verify_mode {
            0 => 0,
            1 => 1,
            2 => 3,
            _ => 7,
        }
    }

    /// `ssl_min_version` as memcached shows it.
    pub fn min_version_name(&self) -> &'static str {
        version_name(self.min_version)
    }
}

/// memcached's names of the protocol versions `ssl_min_version` takes.
pub fn version_name(v: u8) -> &'static str {
    match v {
        0 => "tlsv1.0",
        1 => "tlsv1.1",
        2 => "tlsv1.2",
        3 => "tlsv1.3",
        _ => "unknown",
    }
}

/// One certificate's end of validity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expiry {
    /// `notAfter` as `YYYY-MM-DD HH:MM:SS UTC`.
    pub not_after: String,
    /// Seconds from now until then (negative: expired).
    pub seconds_left: i64,
}

/// The server's TLS state: the configuration new connections get, replaced whole by a reload.
#[derive(Debug)]
pub struct TlsContext {
    settings: TlsSettings,
    current: RwLock<Arc<ServerConfig>>,
    /// Server time of the last successful load (`time_since_server_cert_refresh`).
    refreshed_at: AtomicU32,
}

impl TlsContext {
    /// Loads the certificates and builds the configuration; the error is memcached's message.
    pub fn new(settings: TlsSettings, now: u32) -> Result<TlsContext, String> {
        check_unsupported(&settings)?;
        let config = build(&settings)?;
        log_expiry(&settings);
        Ok(TlsContext {
            settings,
            current: RwLock::new(Arc::new(config)),
            refreshed_at: AtomicU32::new(now),
        })
    }

    pub fn settings(&self) -> &TlsSettings {
        &self.settings
    }

    /// The configuration for a connection accepted now.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.current.read().clone()
    }

    /// Loads the certificate files again for new connections (existing ones keep theirs). On
    /// error the configuration in force stays and the error says which file failed.
    pub fn refresh(&self, now: u32) -> Result<(), String> {
        let config = build(&self.settings)?;
        *self.current.write() = Arc::new(config);
        self.refreshed_at.store(now, Ordering::Relaxed);
        log_expiry(&self.settings);
        Ok(())
    }

    /// Server time of the last successful load.
    pub fn refreshed_at(&self) -> u32 {
        self.refreshed_at.load(Ordering::Relaxed)
    }
}

/// Settings rustls cannot honour, refused once at start-up.
fn check_unsupported(s: &TlsSettings) -> Result<(), String> {
    if s.min_version < 2 {
        return Err(format!(
            "ssl_min_version={} ({}) is not supported: ferrocache speaks TLS 1.2 and 1.3 only (use 2 or 3)",
            s.min_version,
            s.min_version_name()
        ));
    }
    if s.verify_mode > 0 && s.ca_cert.is_none() {
        return Err(format!(
            "ssl_verify_mode={} needs ssl_ca_cert: the CA certificates client certificates are verified against",
            s.verify_mode
        ));
    }
    Ok(())
}

/// The ring provider: deprecated in rustls 0.23.48 only because it lacks the post-quantum key
/// exchange of aws-lc-rs, whose build needs cmake and a long C compile this project avoids.
#[allow(deprecated)]
fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// The rustls configuration the settings describe, loading every file they name.
fn build(s: &TlsSettings) -> Result<ServerConfig, String> {
    let chain_path = s.chain_cert.as_deref();
    let chain = load_chain(chain_path).map_err(|e| {
        format!(
            "Error loading the certificate chain: {} : {e}",
            shown(chain_path)
        )
    })?;
    // memcached's help: the key may be part of the chain file.
    let key_path = s.key.as_deref().or(chain_path);
    let key = load_key(key_path, s.keyformat)
        .map_err(|e| format!("Error loading the key: {} : {e}", shown(key_path)))?;
    let roots = match &s.ca_cert {
        Some(p) => Some(
            load_roots(p)
                .map_err(|e| format!("Error loading the CA certificate: {} : {e}", p.display()))?,
        ),
        None => None,
    };
    let mut provider = provider();
    provider.cipher_suites = cipher_suites(&provider.cipher_suites, s.ciphers.as_deref())?;
    let provider = Arc::new(provider);
    let versions: &[&rustls::SupportedProtocolVersion] = if s.min_version >= 3 {
        &[&rustls::version::TLS13]
    } else {
        &[&rustls::version::TLS12, &rustls::version::TLS13]
    };
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| format!("Error setting the protocol versions: {e}"))?;
    let builder = match (s.verify_mode, roots) {
        (1.., Some(roots)) => {
            let v = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let v = if s.verify_mode == 1 {
                v.allow_unauthenticated()
            } else {
                v
            };
            let v = v.build().map_err(|e| {
                format!(
                    "Error loading the CA certificate: {} : {e}",
                    shown(s.ca_cert.as_deref())
                )
            })?;
            builder.with_client_cert_verifier(v)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| format!("Error validating the certificate: {e}"))?;
    if s.session_cache {
        config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE_SIZE);
        config.ticketer = rustls::crypto::ring::Ticketer::new()
            .map_err(|e| format!("Error setting up session tickets: {e}"))?;
    } else {
        config.session_storage = Arc::new(NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
    }
    Ok(config)
}

fn shown(p: Option<&Path>) -> String {
    p.map_or("(null)".to_string(), |p| p.display().to_string())
}

fn load_chain(path: Option<&Path>) -> Result<Vec<CertificateDer<'static>>, String> {
    let path = path.ok_or("no ssl_chain_cert given")?;
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| e.to_string())?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no PEM certificate in the file".into());
    }
    Ok(certs)
}

fn load_key(path: Option<&Path>, format: i32) -> Result<PrivateKeyDer<'static>, String> {
    let path = path.ok_or("no ssl_key given")?;
    match format {
        KEYFORMAT_PEM => PrivateKeyDer::from_pem_file(path).map_err(|e| e.to_string()),
        KEYFORMAT_DER => {
            let der = std::fs::read(path).map_err(|e| e.to_string())?;
            PrivateKeyDer::try_from(der).map_err(|e| e.to_string())
        }
        other => Err(format!(
            "ssl_keyformat {other} is not supported (1: PEM, 2: DER)"
        )),
    }
}

fn load_roots(path: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| e.to_string())? {
        roots
            .add(cert.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    if roots.is_empty() {
        return Err("no PEM certificate in the file".into());
    }
    Ok(roots)
}

/// OpenSSL's names of the TLS 1.2 suites rustls has.
const OPENSSL_NAMES: &[(&str, CipherSuite)] = &[
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
    (
        "ECDHE-RSA-AES128-GCM-SHA256",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    ),
    (
        "ECDHE-RSA-AES256-GCM-SHA384",
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
    ),
    (
        "ECDHE-RSA-CHACHA20-POLY1305",
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ),
];

/// Keywords of OpenSSL's cipher-string language that select every suite rustls has.
const ALL_KEYWORDS: &[&str] = &["DEFAULT", "ALL", "HIGH", "SECURE", "COMPLEMENTOFDEFAULT"];

/// The suites an OpenSSL cipher string (`ssl_ciphers`) selects among rustls'. As
/// `SSL_CTX_set_cipher_list`, it governs TLS 1.2 only (TLS 1.3 suites stay), unknown names are
/// ignored and a string selecting no suite is an error. Understood: exact OpenSSL suite names,
/// `DEFAULT`/`ALL`/`HIGH`, the components of the names (`ECDHE`, `RSA`, `ECDSA`, `AES128`,
/// `AES256`, `CHACHA20`, `AESGCM`...), `!`/`-` removing what follows, `+` (ordering) ignored.
pub fn cipher_suites(
    all: &[SupportedCipherSuite],
    spec: Option<&str>,
) -> Result<Vec<SupportedCipherSuite>, String> {
    let Some(spec) = spec else {
        return Ok(all.to_vec());
    };
    let matches = |word: &str, name: &str| {
        ALL_KEYWORDS.contains(&word)
            || word == name
            || (word == "AESGCM" && name.contains("-GCM-"))
            || (word == "AES" && name.contains("-AES"))
            || (word == "EECDH" || word == "kEECDH") && name.starts_with("ECDHE-")
            || (word == "aRSA" && name.starts_with("ECDHE-RSA-"))
            || (word == "aECDSA" && name.starts_with("ECDHE-ECDSA-"))
            || name.split('-').any(|part| part == word)
    };
    let mut chosen: Vec<CipherSuite> = Vec::new();
    for word in spec
        .split([':', ',', ' '])
        .map(str::trim)
        .filter(|w| !w.is_empty())
    {
        if let Some(rest) = word.strip_prefix(['!', '-']) {
            chosen.retain(|s| {
                !OPENSSL_NAMES
                    .iter()
                    .any(|(n, c)| c == s && matches(rest, n))
            });
        } else if !word.starts_with('+') && !word.starts_with('@') {
            for (name, suite) in OPENSSL_NAMES {
                if matches(word, name) && !chosen.contains(suite) {
                    chosen.push(*suite);
                }
            }
        }
    }
    let tls12: Vec<SupportedCipherSuite> = chosen
        .iter()
        .filter_map(|c| all.iter().find(|s| s.suite() == *c).copied())
        .collect();
    if tls12.is_empty() {
        return Err(format!("Error setting the provided cipher(s): {spec}"));
    }
    let tls13 = all
        .iter()
        .filter(|s| matches!(s, SupportedCipherSuite::Tls13(_)))
        .copied();
    Ok(tls13.chain(tls12).collect())
}

/// Logs when each certificate of the chain file stops being valid, warning within
/// `EXPIRY_WARN_DAYS` (and loudly once expired).
fn log_expiry(s: &TlsSettings) {
    let Some(path) = s.chain_cert.as_deref() else {
        return;
    };
    let Ok(chain) = load_chain(Some(path)) else {
        return;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    for (i, cert) in chain.iter().enumerate() {
        let which = if i == 0 {
            "certificate".to_string()
        } else {
            format!("chain certificate {i}")
        };
        match expiry(cert, now) {
            Some(e) if e.seconds_left < 0 => log::error!(
                "TLS {which} of {} expired on {}",
                path.display(),
                e.not_after
            ),
            Some(e) if e.seconds_left < EXPIRY_WARN_DAYS * 86400 => log::warn!(
                "TLS {which} of {} expires on {}, in {} day(s)",
                path.display(),
                e.not_after,
                e.seconds_left / 86400
            ),
            Some(e) => log::info!(
                "TLS {which} of {} valid until {} ({} days)",
                path.display(),
                e.not_after,
                e.seconds_left / 86400
            ),
            None => log::warn!(
                "TLS {which} of {}: cannot read its validity dates",
                path.display()
            ),
        }
    }
}

/// A certificate's `notAfter`, against `now` (Unix seconds).
pub fn expiry(cert: &[u8], now: i64) -> Option<Expiry> {
    let (_, cert, _) = der(cert)?;
    let (_, tbs, _) = der(cert)?;
    let (tag, _, mut rest) = der(tbs)?;
    if tag != 0xa0 {
        rest = tbs; // no explicit version: the serial comes first
    }
    // serial, signature algorithm, issuer, then the validity sequence.
    for _ in 0..3 {
        rest = der(rest)?.2;
    }
    let (_, validity, _) = der(rest)?;
    let (_, _, after) = der(validity)?;
    let (tag, not_after, _) = der(after)?;
    let text = std::str::from_utf8(not_after).ok()?;
    let (full, rest) = match tag {
        0x17 => {
            // UTCTime: YY in 1950..2049.
            let yy: i64 = text.get(..2)?.parse().ok()?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &text[2..])
        }
        0x18 => (text.get(..4)?.parse().ok()?, &text[4..]),
        _ => return None,
    };
    let field = |i: usize| -> Option<i64> { rest.get(i..i + 2)?.parse().ok() };
    let (mo, d, h, mi, s) = (field(0)?, field(2)?, field(4)?, field(6)?, field(8)?);
    let at = days_from_civil(full, mo, d) * 86400 + h * 3600 + mi * 60 + s;
    Some(Expiry {
        not_after: format!("{full:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02} UTC"),
        seconds_left: at - now,
    })
}

/// One DER element: tag, contents, what follows.
fn der(buf: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *buf.first()?;
    let first = *buf.get(1)?;
    let (len, head) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for b in buf.get(2..2 + n)? {
            len = (len << 8) | *b as usize;
        }
        (len, 2 + n)
    };
    let body = buf.get(head..head.checked_add(len)?)?;
    Some((tag, body, &buf[head + len..]))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11017);
        assert_eq!(days_from_civil(2026, 12, 7), 20794);
    }

    #[test]
    fn der_lengths() {
        assert_eq!(
            der(&[0x30, 0x01, 0xff, 0x02]),
            Some((0x30, &[0xff][..], &[0x02][..]))
        );
        assert_eq!(
            der(&[0x30, 0x81, 0x01, 0xaa]),
            Some((0x30, &[0xaa][..], &[][..]))
        );
        assert_eq!(der(&[0x30, 0x05, 0x00]), None);
        assert_eq!(der(&[0x30, 0x80]), None);
    }

    #[test]
    fn cipher_strings() {
        let all = provider().cipher_suites;
        let n13 = all
            .iter()
            .filter(|s| matches!(s, SupportedCipherSuite::Tls13(_)))
            .count();
        let n12 = all.len() - n13;
        let count = |spec| cipher_suites(&all, Some(spec)).map(|v| v.len() - n13);
        assert_eq!(count("HIGH:!aNULL:!MD5"), Ok(n12));
        assert_eq!(count("ECDHE-RSA-AES128-GCM-SHA256"), Ok(1));
        assert_eq!(
            count("ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384"),
            Ok(2)
        );
        assert_eq!(count("ECDHE:!ECDSA"), Ok(3));
        assert_eq!(count("AESGCM"), Ok(4));
        assert!(count("AES128-SHA").is_err());
        assert!(count("RC4").is_err());
        assert_eq!(cipher_suites(&all, None).map(|v| v.len()), Ok(all.len()));
    }

    #[test]
    fn unsupported_settings_refused() {
        let s = TlsSettings {
            enabled: true,
            min_version: 1,
            ..TlsSettings::default()
        };
        assert!(check_unsupported(&s).unwrap_err().contains("tlsv1.1"));
        let s = TlsSettings {
            enabled: true,
            verify_mode: 2,
            ..TlsSettings::default()
        };
        assert!(check_unsupported(&s).unwrap_err().contains("ssl_ca_cert"));
        assert_eq!(
            TlsSettings {
                verify_mode: 3,
                ..TlsSettings::default()
            }
            .verify_flags(),
            7
        );
    }
}
