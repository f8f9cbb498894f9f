//! Owns: TLS's client side, for the cluster tools (`ferrocache cluster --tls`) and the health
//! check (`--cluster-health-tls`): the settings (a CA, an optional client certificate and key,
//! the server name to check) and the rustls client configuration they make, with the same
//! ring provider and PEM loading as the server's.
//! Does not: open connections (see `server::push`).

use std::path::PathBuf;
use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::ClientConfig;

use super::{load_chain, load_key, load_roots, provider, KEYFORMAT_PEM};

/// A TLS client's settings (`ferrocache cluster --tls`, `--cluster-health-tls`): the CA that
/// signs the servers' certificates, an optional client certificate (its key in its own file or
/// in the certificate's) for servers that ask for one (`ssl_verify_mode` 1 to 3), and the name
/// the server certificate must carry (default: the host connected to).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientSettings {
    pub ca: PathBuf,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub server_name: Option<String>,
}

/// The rustls client configuration `ClientSettings` describe (ring provider, TLS 1.2 and 1.3).
#[derive(Clone, Debug)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
    server_name: Option<ServerName<'static>>,
}

impl ClientTls {
    /// Loads the files the settings name.
    pub fn new(s: &ClientSettings) -> Result<ClientTls, String> {
        let roots = load_roots(&s.ca)
            .map_err(|e| format!("cannot load the CA certificate {}: {e}", s.ca.display()))?;
        let builder = ClientConfig::builder_with_provider(Arc::new(provider()))
            .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots);
        let config = match (&s.cert, &s.key) {
            (Some(cert), key) => {
                let chain = load_chain(Some(cert)).map_err(|e| {
                    format!("cannot load the client certificate {}: {e}", cert.display())
                })?;
                let key_path = key.as_deref().unwrap_or(cert);
                let key = load_key(Some(key_path), KEYFORMAT_PEM).map_err(|e| {
                    format!("cannot load the client key {}: {e}", key_path.display())
                })?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| format!("client certificate: {e}"))?
            }
            (None, Some(_)) => return Err("a client key needs its certificate".into()),
            (None, None) => builder.with_no_client_auth(),
        };
        let server_name = match &s.server_name {
            Some(n) => Some(server_name(n)?),
            None => None,
        };
        Ok(ClientTls {
            config: Arc::new(config),
            server_name,
        })
    }

    /// The configuration for a new connection.
    pub fn config(&self) -> Arc<ClientConfig> {
        self.config.clone()
    }

    /// The name a server reached as `host` (a DNS name or an IP address) must prove: the
    /// configured one, else `host` itself.
    pub fn name_for(&self, host: &str) -> Result<ServerName<'static>, String> {
        match &self.server_name {
            Some(n) => Ok(n.clone()),
            None => server_name(host),
        }
    }
}

/// A DNS name or an IP address (IPv6 with or without brackets) as a server name.
fn server_name(s: &str) -> Result<ServerName<'static>, String> {
    let bare = s.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(bare.to_string()).map_err(|e| format!("server name '{s}': {e}"))
}
