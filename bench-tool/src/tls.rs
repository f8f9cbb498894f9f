//! Owns: TLS for the load generator — the client configuration (`--tls`; the server's certificate
//! is verified only when `--tls-ca` names its CA, a benchmark needs no more; `--tls-cert` and
//! `--tls-key` for servers that require a client certificate), a TLS link over a connection's
//! non-blocking socket, and the handshake storm (`--handshake-rate`): full handshakes (no
//! resumption) on fresh connections at a fixed rate while the measured load runs.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, SignatureScheme};
use serde::Serialize;

/// The ring provider (rustls deprecates it only for lacking post-quantum key exchange).
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Accepts any server certificate (only the handshake's signatures are checked): without
/// `--tls-ca` the tool measures, it does not authenticate.
#[derive(Debug)]
struct AnyServer(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServer {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The client configuration `--tls`, `--tls-ca`, `--tls-cert` and `--tls-key` describe.
pub fn client_config(
    ca: Option<&Path>,
    cert: Option<&Path>,
    key: Option<&Path>,
) -> Result<Arc<ClientConfig>, String> {
    let p = provider();
    let builder = ClientConfig::builder_with_provider(p.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca).map_err(|e| format!("--tls-ca: {e}"))? {
                roots
                    .add(c.map_err(|e| format!("--tls-ca: {e}"))?)
                    .map_err(|e| format!("--tls-ca: {e}"))?;
            }
            builder.with_root_certificates(roots)
        }
        None => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServer(p))),
    };
    let config = match (cert, key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("--tls-cert: {e}"))?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("--tls-key: {e}"))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("--tls-cert/--tls-key: {e}"))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => return Err("--tls-cert and --tls-key go together".into()),
    };
    Ok(Arc::new(config))
}

/// Connects with a full handshake (blocking, bounded by `timeout`); returns the session and the
/// socket, still blocking.
pub fn handshake(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
    timeout: Duration,
) -> io::Result<(ClientConnection, std::net::TcpStream)> {
    let mut sock = std::net::TcpStream::connect_timeout(&addr, timeout)?;
    sock.set_nodelay(true)?;
    sock.set_read_timeout(Some(timeout))?;
    sock.set_write_timeout(Some(timeout))?;
    let name = ServerName::IpAddress(addr.ip().into());
    let mut tls = ClientConnection::new(config.clone(), name).map_err(io::Error::other)?;
    while tls.is_handshaking() {
        tls.complete_io(&mut sock)?;
    }
    Ok((tls, sock))
}

/// A connection's byte stream: plaintext, or TLS over the socket.
#[derive(Debug)]
pub enum Link {
    Plain(TcpStream),
    Tls(Box<(ClientConnection, TcpStream)>),
}

impl Link {
    /// Sends the session's records until none is left or the socket would block (`Ok` both).
    fn send(tls: &mut ClientConnection, sock: &mut TcpStream) -> io::Result<()> {
        while tls.wants_write() {
            match tls.write_tls(sock) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl Read for Link {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let (tls, sock) = match self {
            Link::Plain(s) => return s.read(buf),
            Link::Tls(t) => (&mut t.0, &mut t.1),
        };
        loop {
            match tls.reader().read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                r => return r,
            }
            if tls.read_tls(sock)? == 0 {
                return Ok(0);
            }
            tls.process_new_packets().map_err(io::Error::other)?;
            Link::send(tls, sock)?;
        }
    }
}

impl Write for Link {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let (tls, sock) = match self {
            Link::Plain(s) => return s.write(buf),
            Link::Tls(t) => (&mut t.0, &mut t.1),
        };
        Link::send(tls, sock)?;
        let n = tls.writer().write(buf)?;
        if n == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Link::send(tls, sock)?;
        Ok(n)
    }

    /// TLS: sends records a full socket kept back (`Ok` also when it is still full).
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Link::Plain(s) => s.flush(),
            Link::Tls(t) => Link::send(&mut t.0, &mut t.1),
        }
    }
}

impl mio::event::Source for Link {
    fn register(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Link::Plain(s) => s.register(r, t, i),
            Link::Tls(b) => b.1.register(r, t, i),
        }
    }
    fn reregister(&mut self, r: &Registry, t: Token, i: Interest) -> io::Result<()> {
        match self {
            Link::Plain(s) => s.reregister(r, t, i),
            Link::Tls(b) => b.1.reregister(r, t, i),
        }
    }
    fn deregister(&mut self, r: &Registry) -> io::Result<()> {
        match self {
            Link::Plain(s) => s.deregister(r),
            Link::Tls(b) => b.1.deregister(r),
        }
    }
}

/// What the handshake storm did.
#[derive(Debug, Clone, Serialize)]
pub struct StormSummary {
    pub target_per_sec: f64,
    pub handshakes: u64,
    pub failed: u64,
    pub per_sec: f64,
    /// Connect + full handshake + one `version` round trip, in microseconds.
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
}

/// One storm thread's share.
#[derive(Debug)]
pub struct StormPart {
    hist: hdrhistogram::Histogram<u64>,
    done: u64,
    failed: u64,
    seconds: f64,
}

/// The storm's threads: one per `PER_THREAD` handshakes per second asked (a handshake waits for
/// the server, so one thread alone cannot keep a high rate).
pub fn storm_threads(rate: f64) -> usize {
    const PER_THREAD: f64 = 25.0;
    ((rate / PER_THREAD).ceil() as usize).clamp(1, 32)
}

/// The storm's threads' results as one summary.
pub fn summarize(parts: Vec<StormPart>, rate: f64) -> Option<StormSummary> {
    let mut it = parts.into_iter();
    let mut all = it.next()?;
    for p in it {
        let _ = all.hist.add(&p.hist);
        all.done += p.done;
        all.failed += p.failed;
        all.seconds = all.seconds.max(p.seconds);
    }
    Some(StormSummary {
        target_per_sec: rate,
        handshakes: all.done,
        failed: all.failed,
        per_sec: if all.seconds > 0.0 {
            all.done as f64 / all.seconds
        } else {
            0.0
        },
        p50_us: all.hist.value_at_quantile(0.5),
        p99_us: all.hist.value_at_quantile(0.99),
        max_us: all.hist.max(),
    })
}

/// Opens `rate` new TLS connections per second (full handshakes: resumption off) on `addr`, each
/// answering one `version` then closed, until `stop`.
pub fn storm(
    addr: SocketAddr,
    config: &Arc<ClientConfig>,
    rate: f64,
    stop: &AtomicBool,
) -> StormPart {
    let mut config = (**config).clone();
    config.resumption = Resumption::disabled();
    let config = Arc::new(config);
    let mut hist = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)
        .expect("histogram bounds");
    let (mut done, mut failed) = (0u64, 0u64);
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now();
    let mut next = start;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now < next {
            std::thread::sleep((next - now).min(Duration::from_millis(50)));
            continue;
        }
        next += interval;
        let t0 = Instant::now();
        let ok = handshake(addr, &config, Duration::from_secs(5)).and_then(|(tls, sock)| {
            let mut s = rustls::StreamOwned::new(tls, sock);
            s.write_all(b"version\r\n")?;
            let mut buf = [0u8; 64];
            let mut got = 0;
            while !buf[..got].ends_with(b"\r\n") {
                match s.read(&mut buf[got..])? {
                    0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                    n => got += n,
                }
                if got == buf.len() {
                    break;
                }
            }
            Ok(())
        });
        match ok {
            Ok(()) => {
                done += 1;
                let _ = hist.record(t0.elapsed().as_micros().max(1) as u64);
            }
            Err(e) => {
                failed += 1;
                log::debug!("storm handshake: {e}");
            }
        }
    }
    StormPart {
        hist,
        done,
        failed,
        seconds: start.elapsed().as_secs_f64(),
    }
}
