//! Test support for TLS: certificates made at test time with the `openssl` CLI (none is kept in
//! the repository) and a rustls client over a blocking `TcpStream`.

use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

/// Files of one test PKI: a CA, a server certificate for 127.0.0.1/localhost signed by it, a
/// client certificate signed by it, and a client certificate signed by another CA.
#[derive(Debug, Clone)]
pub struct Pki {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub server_crt: PathBuf,
    pub server_key: PathBuf,
    pub client_crt: PathBuf,
    pub client_key: PathBuf,
    pub other_ca: PathBuf,
    pub stranger_crt: PathBuf,
    pub stranger_key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("the openssl CLI (apt-get install -y openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA named `name` (`name.crt`, `name.key`).
fn make_ca(dir: &Path, name: &str) {
    let (crt, key) = (format!("{name}.crt"), format!("{name}.key"));
    let subj = format!("/CN={name}");
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &crt,
            "-days",
            "30",
            "-subj",
            &subj,
        ],
    );
}

/// A leaf `name` signed by CA `ca`, valid `days` days, with `ext` (an extensions line).
pub fn make_leaf(dir: &Path, name: &str, ca: &str, days: u32, ext: &str) {
    let (crt, key, csr, extf) = (
        format!("{name}.crt"),
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.ext"),
    );
    std::fs::write(dir.join(&extf), ext).unwrap();
    let subj = format!("/O=ferrocache tests/OU={name}/CN=localhost");
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &csr,
            "-subj",
            &subj,
        ],
    );
    let (ca_crt, ca_key, days) = (format!("{ca}.crt"), format!("{ca}.key"), days.to_string());
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_crt,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            &days,
            "-extfile",
            &extf,
        ],
    );
}

pub const SERVER_EXT: &str = "subjectAltName=IP:127.0.0.1,DNS:localhost\n";
const CLIENT_EXT: &str = "extendedKeyUsage=clientAuth\n";

impl Pki {
    /// Makes a fresh PKI in a scratch directory named after the test.
    pub fn new(name: &str) -> Pki {
        let dir = super::tmpdir(&format!("tls-{name}"));
        make_ca(&dir, "ca");
        make_ca(&dir, "otherca");
        make_leaf(&dir, "server", "ca", 365, SERVER_EXT);
        make_leaf(&dir, "client", "ca", 365, CLIENT_EXT);
        make_leaf(&dir, "stranger", "otherca", 365, CLIENT_EXT);
        let p = |f: &str| dir.join(f);
        Pki {
            ca: p("ca.crt"),
            server_crt: p("server.crt"),
            server_key: p("server.key"),
            client_crt: p("client.crt"),
            client_key: p("client.key"),
            other_ca: p("otherca.crt"),
            stranger_crt: p("stranger.crt"),
            stranger_key: p("stranger.key"),
            dir,
        }
    }

    /// `-Z` and the server's certificate and key, plus `extra` `-o` settings.
    pub fn server_args(&self, extra: &[&str]) -> Vec<String> {
        let mut v = vec![
            "-Z".to_string(),
            "-o".to_string(),
            format!(
                "ssl_chain_cert={},ssl_key={}",
                self.server_crt.display(),
                self.server_key.display()
            ),
        ];
        for e in extra {
            v.push("-o".into());
            v.push((*e).to_string());
        }
        v
    }

    /// A client trusting this PKI's CA, with a client certificate (`client` or `stranger`) or
    /// none, for the given protocol versions (both when empty).
    pub fn client(
        &self,
        cert: Option<&str>,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> ClientConfig {
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_file_iter(&self.ca).unwrap() {
            roots.add(c.unwrap()).unwrap();
        }
        let versions = if versions.is_empty() {
            rustls::DEFAULT_VERSIONS
        } else {
            versions
        };
        let b = ClientConfig::builder_with_provider(Arc::new(provider()))
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots);
        match cert {
            None => b.with_no_client_auth(),
            Some(name) => {
                let chain = CertificateDer::pem_file_iter(self.dir.join(format!("{name}.crt")))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect();
                let key =
                    PrivateKeyDer::from_pem_file(self.dir.join(format!("{name}.key"))).unwrap();
                b.with_client_auth_cert(chain, key).unwrap()
            }
        }
    }
}

#[allow(deprecated)]
fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// A blocking TLS connection (10 s read timeout).
pub type Tls = StreamOwned<ClientConnection, TcpStream>;

/// Connects and completes the handshake; the error is the handshake's (or the socket's).
pub fn connect(addr: SocketAddr, config: ClientConfig) -> std::io::Result<Tls> {
    let sock = TcpStream::connect(addr)?;
    sock.set_read_timeout(Some(Duration::from_secs(10)))?;
    sock.set_nodelay(true)?;
    let name = ServerName::IpAddress(addr.ip().into());
    let conn = ClientConnection::new(Arc::new(config), name).map_err(std::io::Error::other)?;
    let mut s = StreamOwned::new(conn, sock);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    // TLS 1.3 servers check a client certificate after the client's handshake is done: a refusal
    // arrives with the first read. Probe with a request every server answers.
    Ok(s)
}

/// Sends `req` then `mn\r\n` and returns what came before `MN\r\n` (or everything until the
/// server closes: then `Err` with what was read).
pub fn exchange(s: &mut Tls, req: &[u8]) -> Result<Vec<u8>, Vec<u8>> {
    use std::io::{Read, Write};
    let mut msg = req.to_vec();
    msg.extend_from_slice(b"mn\r\n");
    if s.write_all(&msg).and_then(|()| s.flush()).is_err() {
        return Err(Vec::new());
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        if buf.ends_with(b"MN\r\n") {
            buf.truncate(buf.len() - 4);
            return Ok(buf);
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return Err(buf),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The connection is served: a handshake and a `version` both succeed.
pub fn served(addr: SocketAddr, config: ClientConfig) -> bool {
    match connect(addr, config) {
        Ok(mut s) => exchange(&mut s, b"version\r\n").is_ok_and(|r| r.starts_with(b"VERSION ")),
        Err(_) => false,
    }
}

/// The server's leaf certificate as a TLS connection sees it.
pub fn peer_cert(s: &Tls) -> Vec<u8> {
    s.conn.peer_certificates().expect("server certificate")[0].to_vec()
}

/// The DER of the first certificate of a PEM file.
pub fn file_cert(path: &Path) -> Vec<u8> {
    CertificateDer::pem_file_iter(path)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .to_vec()
}
