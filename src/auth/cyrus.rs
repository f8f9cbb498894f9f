//! Owns: cyrus SASL's configuration as memcached's `-S` users have it — finding `memcached.conf`
//! (`SASL_CONF_PATH`, else `/etc/sasl/memcached.conf`, `/etc/sasl2/memcached.conf`), its keys
//! (`mech_list`, `sasldb_path`, `pwcheck_method`, `auxprop_plugin`), the mechanisms offered, the
//! default realm (the host name, as memcached passes it), and loading the sasldb it names into
//! `Credentials` (read-only), with the file stamp that tells when to read it again.
//! Does not: decide when to reload (see `state`) or speak SASL (see `exec::binary`).

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use super::{sasldb, Credentials, CredentialsError};

/// Where cyrus looks for the user database when `sasldb_path` is not set.
pub const DEFAULT_SASLDB: &str = "/etc/sasldb2";
/// memcached's own search when `SASL_CONF_PATH` is unset (`sasl_defs.c`).
const LOCATIONS: [&str; 2] = ["/etc/sasl/memcached.conf", "/etc/sasl2/memcached.conf"];
/// What memcached prints when cyrus refuses to start.
pub const INIT_FAILED: &str = "Error initializing sasl.";

/// A SASL mechanism ferrocache serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mech {
    Plain,
    CramMd5,
}

impl Mech {
    pub const ALL: [Mech; 2] = [Mech::Plain, Mech::CramMd5];

    pub fn name(self) -> &'static str {
        match self {
            Mech::Plain => "PLAIN",
            Mech::CramMd5 => "CRAM-MD5",
        }
    }

    /// The mechanism a client names (case-insensitive, as cyrus).
    pub fn named(name: &[u8]) -> Option<Mech> {
        Mech::ALL
            .into_iter()
            .find(|m| name.eq_ignore_ascii_case(m.name().as_bytes()))
    }
}

/// Why cyrus-style SASL cannot start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CyrusError {
    #[error("no SASL config: SASL_CONF_PATH is unset and neither {} nor {} exists", LOCATIONS[0], LOCATIONS[1])]
    NoConfig,
    #[error("{path}: {err}")]
    Io { path: String, err: String },
    #[error("{path} line {line}: expected `key: value`")]
    Syntax { path: String, line: usize },
    #[error("{path}: {key}: {value} is not supported (ferrocache reads a sasldb itself{hint})")]
    Unsupported {
        path: String,
        key: String,
        value: String,
        hint: &'static str,
    },
}

/// The SASL set-up read from `memcached.conf`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslConf {
    /// The `memcached.conf` read (None: `SASL_CONF_PATH` named a directory without one).
    pub file: Option<PathBuf>,
    /// What `SASL LIST MECHS` offers, in `mech_list` order.
    pub mechs: Vec<Mech>,
    /// The user database.
    pub sasldb: PathBuf,
    /// The realm of a user name without `@realm`: the host name.
    pub realm: Vec<u8>,
}

/// This machine's host name (memcached's default SASL realm); empty when unknown.
pub fn hostname() -> Vec<u8> {
    nix::unistd::gethostname()
        .map(|h| h.into_encoded_bytes())
        .unwrap_or_default()
}

impl SaslConf {
    /// Finds and reads the config as memcached does: `conf_path` is `SASL_CONF_PATH` (a
    /// colon-separated list of directories holding `memcached.conf`).
    pub fn find(conf_path: Option<&OsStr>) -> Result<SaslConf, CyrusError> {
        let file = match conf_path {
            Some(dirs) => std::env::split_paths(dirs)
                .map(|d| d.join("memcached.conf"))
                .find(|f| f.is_file()),
            None => Some(
                LOCATIONS
                    .iter()
                    .map(PathBuf::from)
                    .find(|f| f.exists())
                    .ok_or(CyrusError::NoConfig)?,
            ),
        };
        let Some(file) = file else {
            return SaslConf::parse("", None);
        };
        let text = std::fs::read_to_string(&file).map_err(|e| CyrusError::Io {
            path: file.display().to_string(),
            err: e.to_string(),
        })?;
        SaslConf::parse(&text, Some(file))
    }

    /// Reads config text (cyrus' syntax: `key: value` lines, `#` comments).
    pub fn parse(text: &str, file: Option<PathBuf>) -> Result<SaslConf, CyrusError> {
        let path = file
            .as_deref()
            .map_or_else(|| "SASL config".to_string(), |f| f.display().to_string());
        let unsupported = |key: &str, value: &str, hint| CyrusError::Unsupported {
            path: path.clone(),
            key: key.to_string(),
            value: value.to_string(),
            hint,
        };
        let mut mechs = Mech::ALL.to_vec();
        let mut sasldb = PathBuf::from(DEFAULT_SASLDB);
        for (i, raw) in text.lines().enumerate() {
            let l = raw.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let (key, value) = l.split_once(':').ok_or(CyrusError::Syntax {
                path: path.clone(),
                line: i + 1,
            })?;
            let (key, value) = (key.trim(), value.trim());
            match key {
                "mech_list" => {
                    let named: Vec<&str> = value
                        .split(|c: char| c.is_ascii_whitespace() || c == ',')
                        .filter(|m| !m.is_empty())
                        .collect();
                    mechs.clear();
                    for m in &named {
                        if let Some(m) = Mech::named(m.as_bytes()) {
                            if !mechs.contains(&m) {
                                mechs.push(m);
                            }
                        }
                    }
                    if mechs.is_empty() {
                        return Err(unsupported(key, value, "; it offers plain and cram-md5"));
                    }
                }
                "sasldb_path" => sasldb = PathBuf::from(value),
                "pwcheck_method" if !value.split_whitespace().all(|v| v == "auxprop") => {
                    return Err(unsupported(key, value, "; use auxprop"));
                }
                "auxprop_plugin" if !value.split_whitespace().all(|v| v == "sasldb") => {
                    return Err(unsupported(key, value, "; use sasldb"));
                }
                _ => {}
            }
        }
        Ok(SaslConf {
            file,
            mechs,
            sasldb,
            realm: hostname(),
        })
    }

    /// The `SASL LIST MECHS` reply.
    pub fn mech_list(&self) -> String {
        let names: Vec<&str> = self.mechs.iter().map(|m| m.name()).collect();
        names.join(" ")
    }

    /// The offered mechanism a client names.
    pub fn offered(&self, name: &[u8]) -> Option<Mech> {
        Mech::named(name).filter(|m| self.mechs.contains(m))
    }

    /// Reads the sasldb. A missing file is no users (cyrus opens it only at login, so users
    /// added later with `saslpasswd2` are picked up when its stamp changes).
    pub fn load(&self) -> Result<Credentials, CredentialsError> {
        let path = self.sasldb.display().to_string();
        let bytes = match read_limited(&self.sasldb) {
            Ok(b) => b,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(err) => return Err(CredentialsError::Io { path, err }),
        };
        let entries = if bytes.is_empty() {
            Vec::new()
        } else {
            sasldb::entries(&bytes).map_err(|err| CredentialsError::Sasldb { path, err })?
        };
        Ok(Credentials::from_sasldb(entries, &self.realm))
    }
}

fn read_limited(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::new();
    std::fs::File::open(path)?
        .take(sasldb::MAX_FILE as u64 + 1)
        .read_to_end(&mut out)?;
    Ok(out)
}

/// What identifies a version of a file: a different stamp means it changed (or appeared).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp(Option<(std::time::SystemTime, u64, u64)>);

/// The file's stamp now (modification time, size, inode); `Stamp(None)` when it is missing.
pub fn stamp(path: &Path) -> Stamp {
    use std::os::unix::fs::MetadataExt;
    Stamp(
        std::fs::metadata(path)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len(), m.ino()))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memcached_test_config() {
        let c = SaslConf::parse(
            "mech_list: plain cram-md5\nlog_level: 5\nsasldb_path: /tmp/x.sasldb\n",
            None,
        )
        .unwrap();
        assert_eq!(c.mechs, [Mech::Plain, Mech::CramMd5]);
        assert_eq!(c.mech_list(), "PLAIN CRAM-MD5");
        assert_eq!(c.sasldb, Path::new("/tmp/x.sasldb"));
        assert_eq!(c.offered(b"cram-md5"), Some(Mech::CramMd5));
        assert_eq!(c.offered(b"DIGEST-MD5"), None);
    }

    #[test]
    fn defaults_and_refusals() {
        let c = SaslConf::parse("# nothing\n\n", None).unwrap();
        assert_eq!(c.sasldb, Path::new(DEFAULT_SASLDB));
        assert_eq!(c.mech_list(), "PLAIN CRAM-MD5");
        let c = SaslConf::parse("mech_list: CRAM-MD5,digest-md5\n", None).unwrap();
        assert_eq!(c.mech_list(), "CRAM-MD5");
        assert_eq!(c.offered(b"PLAIN"), None);
        for bad in [
            "mech_list: digest-md5\n",
            "pwcheck_method: saslauthd\n",
            "auxprop_plugin: sql\n",
            "no colon here\n",
        ] {
            assert!(SaslConf::parse(bad, None).is_err(), "{bad}");
        }
        assert!(SaslConf::parse("pwcheck_method: auxprop\nauxprop_plugin: sasldb\n", None).is_ok());
    }

    #[test]
    fn a_directory_without_memcached_conf_is_the_defaults() {
        let c = SaslConf::find(Some(OsStr::new("/nonexistent-ferrocache-dir"))).unwrap();
        assert_eq!(c.file, None);
        assert_eq!(c.sasldb, Path::new(DEFAULT_SASLDB));
    }
}
