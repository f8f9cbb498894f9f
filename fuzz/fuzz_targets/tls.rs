//! Owns: the TLS fuzz target — what a client sends over TLS, served by the session code the
//! worker runs (`server::stream::TlsStream`, with the configuration `-Z` builds) over an
//! in-memory pipe that the input cuts into short reads and full writes. The first byte picks
//! one of two kinds of input:
//! - raw: the bytes arrive as they are, as a handshake's first flights. No handshake completes
//!   and not one plaintext byte is handed on (nothing reaches the protocol before a handshake).
//! - established: a rustls client (TLS 1.3 or 1.2) completes a handshake, then the input is a
//!   script of steps: the client sends plaintext, the server reads into a small buffer, the
//!   server replies into a transport that takes only some bytes, a ciphertext byte in flight is
//!   flipped, the client closes. The server hands on only bytes the client sent, in order, and
//!   all of them unless a byte was flipped (then it may fail, never deliver a changed byte); the
//!   client receives exactly what the server wrote. What the server read is then walked by the
//!   text and binary parsers, as a connection's bytes are.
#![no_main]

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, LazyLock};

use ferrocache::server::stream::{Handshake, TlsStream};
use ferrocache::tls::{TlsContext, TlsSettings};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig};

/// The transport under the server's session: what the client sent and the server has not read,
/// and what the server sent, with the input's limits on both.
#[derive(Default)]
struct Pipe {
    inbox: Vec<u8>,
    pos: usize,
    /// A read returns at most this many bytes (at least 1).
    read_max: usize,
    outbox: Vec<u8>,
    /// Bytes the transport takes before it would block.
    room: usize,
    /// The client closed its side: an empty inbox reads as the end.
    closed: bool,
}

impl Pipe {
    fn unread(&self) -> usize {
        self.inbox.len() - self.pos
    }
}

impl Read for Pipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.unread().min(buf.len()).min(self.read_max.max(1));
        if n == 0 {
            return if self.closed || buf.is_empty() {
                Ok(0)
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            };
        }
        buf[..n].copy_from_slice(&self.inbox[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Write for Pipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.room == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = self.room.min(buf.len());
        self.outbox.extend_from_slice(&buf[..n]);
        self.room -= n;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Runs `openssl` in `dir`.
fn openssl(dir: &PathBuf, args: &[&str]) {
    let ok = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .map(|o| o.status.success());
    assert!(
        matches!(ok, Ok(true)),
        "openssl {args:?} (apt-get install -y openssl)"
    );
}

/// The server's configuration, built by `TlsContext` from a CA and a server certificate made
/// once per process, and the client configurations (TLS 1.3, TLS 1.2) trusting that CA.
struct Pki {
    server: Arc<ServerConfig>,
    clients: [Arc<ClientConfig>; 2],
}

static PKI: LazyLock<Pki> = LazyLock::new(|| {
    let dir = std::env::temp_dir().join(format!("ferrocache-fuzz-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(ec);
    ca.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "30",
        "-subj",
        "/CN=fuzz ca",
    ]);
    openssl(&dir, &ca);
    let mut csr = vec!["req"];
    csr.extend(ec);
    csr.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    openssl(&dir, &csr);
    std::fs::write(dir.join("server.ext"), "subjectAltName=DNS:localhost\n").unwrap();
    openssl(
        &dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            "30",
            "-extfile",
            "server.ext",
        ],
    );
    let settings = TlsSettings {
        enabled: true,
        chain_cert: Some(dir.join("server.crt")),
        key: Some(dir.join("server.key")),
        session_cache: true,
        ..TlsSettings::default()
    };
    let server = TlsContext::new(settings, 0).expect("TLS context").config();
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(dir.join("ca.crt")).unwrap())
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    // ring, as the server uses it (deprecated only for lacking post-quantum key exchange).
    #[allow(deprecated)]
    let client = |v: &'static rustls::SupportedProtocolVersion| {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            ClientConfig::builder_with_provider(provider)
                .with_protocol_versions(&[v])
                .unwrap()
                .with_root_certificates(roots.clone())
                .with_no_client_auth(),
        )
    };
    Pki {
        server,
        clients: [
            client(&rustls::version::TLS13),
            client(&rustls::version::TLS12),
        ],
    }
});

/// The input, read a byte or a run of bytes at a time (zeros past its end).
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn take(&mut self, n: usize) -> &'a [u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }
}

/// Raw bytes as a client's first flights: the handshake never completes, reads hand on nothing.
fn raw(read_max: usize, data: &[u8]) {
    let mut s = TlsStream::new(Pipe::default(), PKI.server.clone()).unwrap();
    let p = s.get_mut();
    p.inbox.extend_from_slice(data);
    p.read_max = read_max;
    p.room = usize::MAX;
    match s.handshake() {
        Ok(Handshake::Done) => panic!("a handshake completed from bytes no client made"),
        Ok(Handshake::WantWrite) => panic!("the pipe always takes the server's records"),
        Ok(Handshake::WantRead) => assert_eq!(s.get_ref().unread(), 0, "stopped early"),
        Err(_) => {}
    }
    s.get_mut().closed = true;
    assert!(!matches!(s.handshake(), Ok(Handshake::Done)));
    let mut buf = [0u8; 512];
    if let Ok(n) = s.read(&mut buf) {
        assert_eq!(n, 0, "plaintext handed on before a handshake");
    }
}

/// Moves the client's records into the server's inbox.
fn to_server(c: &mut ClientConnection, s: &mut TlsStream<Pipe>) {
    while c.wants_write() {
        c.write_tls(&mut s.get_mut().inbox).unwrap();
    }
}

/// Moves the server's sent records to the client; appends the plaintext it decrypts to `got`.
fn to_client(s: &mut TlsStream<Pipe>, c: &mut ClientConnection, got: &mut Vec<u8>) {
    let out = std::mem::take(&mut s.get_mut().outbox);
    let mut rest = &out[..];
    while !rest.is_empty() {
        c.read_tls(&mut rest).unwrap();
        c.process_new_packets()
            .expect("the server's records decrypt");
    }
    let mut buf = [0u8; 4096];
    loop {
        match c.reader().read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("client read: {e}"),
        }
    }
}

/// A completed handshake, then the input's script of steps.
fn established(version: usize, read_max: usize, mut input: Input) {
    let pki = &*PKI;
    let name = "localhost".try_into().unwrap();
    let mut c = ClientConnection::new(pki.clients[version].clone(), name).unwrap();
    let mut s = TlsStream::new(Pipe::default(), pki.server.clone()).unwrap();
    s.get_mut().read_max = read_max;
    s.get_mut().room = usize::MAX;
    let (mut sent, mut read, mut written, mut got) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut done = false;
    for _ in 0..16 {
        to_server(&mut c, &mut s);
        let step = s.handshake().expect("a real client's handshake");
        done |= step == Handshake::Done;
        to_client(&mut s, &mut c, &mut got);
        if done && !c.is_handshaking() {
            break;
        }
    }
    assert!(
        done && !c.is_handshaking(),
        "the handshake did not complete"
    );
    assert!(got.is_empty());
    let (mut flipped, mut failed, mut client_closed) = (false, false, false);
    let mut buf = vec![0u8; 256];
    for _ in 0..256 {
        let Some(op) = input.byte() else { break };
        let arg = input.byte().unwrap_or(0) as usize;
        match op % 6 {
            0 if !client_closed => {
                let chunk = input.take(arg);
                c.writer().write_all(chunk).unwrap();
                sent.extend_from_slice(chunk);
                to_server(&mut c, &mut s);
            }
            1 if !failed => match s.read(&mut buf[..arg + 1]) {
                Ok(n) => {
                    read.extend_from_slice(&buf[..n]);
                    assert!(sent.starts_with(&read), "the server read bytes never sent");
                    if n == 0 {
                        assert!(client_closed, "an end before the client's close");
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    assert!(flipped || read == sent, "would block with bytes unread");
                }
                Err(e) => {
                    assert!(flipped, "read failed on intact records: {e}");
                    failed = true;
                }
            },
            2 if !failed => {
                let chunk = input.take(arg);
                s.get_mut().room = input.byte().unwrap_or(0) as usize * 8;
                match s.write(chunk) {
                    Ok(n) => written.extend_from_slice(&chunk[..n]),
                    Err(e) => assert_eq!(e.kind(), io::ErrorKind::WouldBlock),
                }
                to_client(&mut s, &mut c, &mut got);
                assert!(
                    written.starts_with(&got),
                    "the client got bytes never written"
                );
            }
            3 if !failed => {
                s.get_mut().room = usize::MAX;
                s.flush().expect("flush into an open pipe");
                assert!(!s.pending());
                to_client(&mut s, &mut c, &mut got);
                assert_eq!(got, written, "a flush left written bytes unsent");
            }
            4 => {
                let p = s.get_mut();
                if p.unread() > 0 {
                    let at = p.pos + arg * 64 % p.unread();
                    p.inbox[at] ^= 1 << (arg % 8);
                    flipped = true;
                }
            }
            5 if !client_closed => {
                c.send_close_notify();
                to_server(&mut c, &mut s);
                s.get_mut().closed = true;
                client_closed = true;
            }
            _ => {}
        }
    }
    if !failed {
        s.get_mut().closed = true;
        for _ in 0..sent.len() + 2 {
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => read.extend_from_slice(&buf[..n]),
                Err(e) => {
                    assert!(flipped, "read failed on intact records: {e}");
                    break;
                }
            }
        }
        assert!(sent.starts_with(&read), "the server read bytes never sent");
        if !flipped {
            assert_eq!(
                read.len(),
                sent.len(),
                "the server lost bytes the client sent"
            );
        }
    }
    for lim in ferrocache_fuzz::limits() {
        ferrocache_fuzz::walk_ascii(&read, &lim);
        ferrocache_fuzz::walk_binary(&read, &lim);
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let (Some(kind), Some(cut)) = (input.byte(), input.byte()) else {
        return;
    };
    let read_max = 1 << (cut % 15);
    if kind & 1 == 0 {
        raw(read_max, input.0);
    } else {
        established(usize::from(kind & 2 != 0), read_max, input);
    }
});
