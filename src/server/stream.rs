//! Owns: a client connection's byte stream — one type over every transport a listener can hand
//! out (TCP, UNIX today), implementing `Read`, `Write` and `mio::event::Source`, so `Conn`, the
//! worker and the protocol and executor code never name a socket type.
//! Does not: accept connections (see `listeners`) or buffer bytes (see `conn`).
//!
//! `TlsStream` is generic over its transport (any `Read + Write`; the server's is a mio
//! `TcpStream`), so the TLS fuzz target drives the very session code the worker runs over an
//! in-memory pipe.
//!
//! A new transport is one more variant here and one more arm in each match; the cost on the
//! read/write path is that match.
//!
//! TLS (`Stream::Tls`) is rustls' sans-I/O session over the TCP socket: a read drains decrypted
//! bytes, feeding the session from the socket (`read_tls` → `process_new_packets`) until the
//! caller's buffer is full or the socket would block, so a short read still means the socket is
//! empty; a write hands plaintext to the session and sends records (`write_tls`) until done or
//! the socket would block. Records the socket did not take stay in the session: `pending()` says
//! so and the connection waits for writability, `flush()` sends them. A handshake that fails
//! (wrong client certificate, plaintext, an old protocol version) is a read error: the
//! connection closes without any request reaching the protocol.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};

use std::sync::Arc;

use mio::net::{TcpStream, UnixStream};
use mio::{Interest, Registry, Token};
use rustls::{HandshakeKind, ServerConfig, ServerConnection};

use crate::stats::{self, ThreadStats};

/// A connected stream socket of either family, or a TLS session over TCP.
#[derive(Debug)]
pub enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
    Tls(Box<TlsStream>),
}

/// What a TLS session's handshake came to, for the `ssl_*` counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TlsEvent {
    /// Completed with a new session (not resumed).
    NewSession,
    /// Completed by resuming a session.
    Resumed,
    /// Failed.
    Failed,
}

/// A server-side TLS session over a byte transport (a TCP socket in the server).
#[derive(Debug)]
pub struct TlsStream<S: Read + Write = TcpStream> {
    sock: S,
    tls: ServerConnection,
    /// The handshake's outcome, until the connection takes it (`take_event`).
    event: Option<TlsEvent>,
    /// The handshake finished (or failed): no further event.
    settled: bool,
    /// The socket reached its end.
    eof: bool,
}

impl Stream {
    /// The connection's id for `stats conns` and the registry: its file descriptor.
    pub fn id(&self) -> i64 {
        self.as_raw_fd() as i64
    }

    /// A TLS session over `sock` with the configuration in force now.
    pub fn tls(sock: TcpStream, config: Arc<ServerConfig>) -> io::Result<Stream> {
        Ok(Stream::Tls(Box::new(TlsStream::new(sock, config)?)))
    }

    /// TLS records are waiting for the socket to take them.
    #[inline]
    pub fn pending(&self) -> bool {
        matches!(self, Stream::Tls(t) if t.pending())
    }

    /// Counts the handshake's outcome (`ssl_new_sessions`, `ssl_handshake_errors`) once, when
    /// it has one.
    #[inline]
    pub fn count_tls_event(&mut self, st: &ThreadStats) {
        if let Stream::Tls(t) = self {
            match t.event.take() {
                Some(TlsEvent::Failed) => stats::bump(&st.ssl_handshake_errors),
                Some(TlsEvent::NewSession) => stats::bump(&st.ssl_new_sessions),
                Some(TlsEvent::Resumed) | None => {}
            }
        }
    }

    /// Advances a TLS session's handshake as far as the socket allows (the handshake thread's
    /// step): `Done` once it has completed and every record it produced (session tickets
    /// included) is sent; an error when it failed (the alert sent if the socket takes it) or the
    /// peer closed first. A plaintext stream is always `Done`.
    pub fn handshake(&mut self) -> io::Result<Handshake> {
        match self {
            Stream::Tls(t) => t.handshake(),
            _ => Ok(Handshake::Done),
        }
    }
}

/// Where a handshake stands after `Stream::handshake`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handshake {
    /// Waiting for the peer's records.
    WantRead,
    /// Records are waiting for the socket to take them.
    WantWrite,
    /// Completed; the connection is ready for requests.
    Done,
}

impl<S: Read + Write> TlsStream<S> {
    /// A server session over `sock` with `config`, before its handshake.
    pub fn new(sock: S, config: Arc<ServerConfig>) -> io::Result<TlsStream<S>> {
        let tls = ServerConnection::new(config).map_err(io::Error::other)?;
        Ok(TlsStream {
            sock,
            tls,
            event: None,
            settled: false,
            eof: false,
        })
    }

    /// The transport under the session.
    pub fn get_ref(&self) -> &S {
        &self.sock
    }

    /// The transport under the session, mutably (a test's pipe refilled between steps).
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.sock
    }

    /// Records are waiting for the transport to take them (`Stream::pending`).
    pub fn pending(&self) -> bool {
        self.tls.wants_write()
    }

    /// Sends the session's records until none is left (`Ok`) or the socket would block.
    fn send(&mut self) -> io::Result<()> {
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut self.sock) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// `send`, where a full socket is no error (the records stay pending).
    fn send_some(&mut self) -> io::Result<()> {
        match self.send() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            r => r,
        }
    }

    /// Records the handshake's end once.
    fn settle(&mut self, failed: bool) {
        if self.settled {
            return;
        }
        if failed {
            self.settled = true;
            self.event = Some(TlsEvent::Failed);
        } else if !self.tls.is_handshaking() {
            self.settled = true;
            self.event = Some(match self.tls.handshake_kind() {
                Some(HandshakeKind::Resumed) => TlsEvent::Resumed,
                _ => TlsEvent::NewSession,
            });
        }
    }

    /// `Stream::handshake` for this session.
    pub fn handshake(&mut self) -> io::Result<Handshake> {
        loop {
            if let Err(e) = self.send() {
                return match e.kind() {
                    io::ErrorKind::WouldBlock => Ok(Handshake::WantWrite),
                    _ => Err(e),
                };
            }
            if !self.tls.is_handshaking() {
                self.settle(false);
                return Ok(Handshake::Done);
            }
            match self.tls.read_tls(&mut self.sock) {
                Ok(0) => {
                    self.eof = true;
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Handshake::WantRead),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            if let Err(e) = self.tls.process_new_packets() {
                let _ = self.send();
                self.settle(true);
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
        }
    }

    fn read_plain(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        loop {
            if n == buf.len() {
                return Ok(n);
            }
            match self.tls.reader().read(&mut buf[n..]) {
                Ok(0) => return Ok(n), // the peer's close_notify
                Ok(k) => {
                    n += k;
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(n),
                Err(_) if n > 0 => return Ok(n),
                Err(e) => return Err(e),
            }
            if self.eof {
                return Ok(n);
            }
            match self.tls.read_tls(&mut self.sock) {
                Ok(0) => self.eof = true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return if n > 0 { Ok(n) } else { Err(e) };
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            if let Err(e) = self.tls.process_new_packets() {
                // The alert rustls queued, if the socket takes it.
                let _ = self.send();
                let handshaking = !self.settled;
                self.settle(handshaking);
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
            self.settle(false);
            self.send_some()?;
        }
    }

    fn write_plain(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.send()?;
        let n = self.tls.writer().write(buf)?;
        if n == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.send_some()?;
        Ok(n)
    }
}

impl<S: Read + Write> Read for TlsStream<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_plain(buf)
    }
}

impl<S: Read + Write> Write for TlsStream<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_plain(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

impl<S: Read + Write> Drop for TlsStream<S> {
    /// A polite end: the close_notify alert, if the socket takes it now.
    fn drop(&mut self) {
        if self.settled && self.event != Some(TlsEvent::Failed) {
            self.tls.send_close_notify();
            let _ = self.send();
        }
    }
}

impl AsRawFd for Stream {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Stream::Tcp(s) => s.as_raw_fd(),
            Stream::Unix(s) => s.as_raw_fd(),
            Stream::Tls(t) => t.sock.as_raw_fd(),
        }
    }
}

impl Read for Stream {
    #[inline]
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
            Stream::Tls(t) => t.read_plain(buf),
        }
    }
}

impl Write for Stream {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
            Stream::Tls(t) => t.write_plain(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush(),
            Stream::Unix(s) => s.flush(),
            Stream::Tls(t) => t.send(),
        }
    }
}

impl mio::event::Source for Stream {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.register(registry, token, interests),
            Stream::Unix(s) => s.register(registry, token, interests),
            Stream::Tls(t) => t.sock.register(registry, token, interests),
        }
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.reregister(registry, token, interests),
            Stream::Unix(s) => s.reregister(registry, token, interests),
            Stream::Tls(t) => t.sock.reregister(registry, token, interests),
        }
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => s.deregister(registry),
            Stream::Unix(s) => s.deregister(registry),
            Stream::Tls(t) => t.sock.deregister(registry),
        }
    }
}
