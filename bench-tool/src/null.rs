//! Owns: the null server (`--null-server ADDR`): a one-thread mio server that speaks enough of
//! the text protocol for this tool's workloads (`get`/`gets` with any number of keys, `set`) and
//! answers without storing anything: a get of one of this tool's keys returns the value the
//! tool would have written for it, generated on the spot, so the client's validation passes.
//! It reads everything available, answers every complete request and writes once per event,
//! so it measures what the machine's network path allows a memcached-protocol server to do.

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

use crate::workload::{KeyTable, ValueGen};

const LISTENER: Token = Token(usize::MAX);
/// Longest request line accepted; a longer one closes the connection.
const MAX_LINE: usize = 64 * 1024;
/// Largest value a `set` may carry.
const MAX_VALUE: usize = 16 << 20;

/// Answers waiting to be sent above which the server stops reading from the client.
const OUT_PAUSE: usize = 4 << 20;

struct Conn {
    stream: TcpStream,
    /// `buf[..len]` is input not answered yet.
    buf: Vec<u8>,
    len: usize,
    out: Vec<u8>,
    wpos: usize,
}

/// Serves until the process is killed.
pub fn serve(addr: SocketAddr, keys: &KeyTable, values: &ValueGen) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let mut listener = TcpListener::bind(addr)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    eprintln!(
        "ferrocache-bench: null server on {}",
        listener.local_addr()?
    );
    let mut conns: slab::Slab<Conn> = slab::Slab::new();
    let mut events = Events::with_capacity(1024);
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for ev in events.iter() {
            if ev.token() == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((mut stream, _)) => {
                            let _ = stream.set_nodelay(true);
                            let entry = conns.vacant_entry();
                            poll.registry().register(
                                &mut stream,
                                Token(entry.key()),
                                Interest::READABLE | Interest::WRITABLE,
                            )?;
                            entry.insert(Conn {
                                stream,
                                buf: vec![0; 64 * 1024],
                                len: 0,
                                out: Vec::with_capacity(64 * 1024),
                                wpos: 0,
                            });
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => {
                            // Out of descriptors or an aborted handshake: keep serving the rest.
                            log::warn!("null server: accept: {e}");
                            break;
                        }
                    }
                }
                continue;
            }
            let id = ev.token().0;
            let Some(conn) = conns.get_mut(id) else {
                continue;
            };
            if !conn.on_event(keys, values) {
                let mut c = conns.remove(id);
                let _ = poll.registry().deregister(&mut c.stream);
            }
        }
    }
}

impl Conn {
    /// Reads, answers and writes; false when the connection is done. Stops reading while more
    /// than `OUT_PAUSE` bytes of answers wait to be sent (the next writable event goes on).
    fn on_event(&mut self, keys: &KeyTable, values: &ValueGen) -> bool {
        if !self.flush() {
            return false;
        }
        loop {
            if self.out.len() - self.wpos > OUT_PAUSE {
                return true;
            }
            if self.len == self.buf.len() {
                if self.buf.len() >= MAX_VALUE + MAX_LINE {
                    return false;
                }
                let n = self.buf.len() * 2;
                self.buf.resize(n, 0);
            }
            let (eof, drained) = match self.stream.read(&mut self.buf[self.len..]) {
                Ok(0) => (true, true),
                Ok(n) => {
                    self.len += n;
                    (false, false)
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => (false, true),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return false,
            };
            let mut pos = 0;
            loop {
                match answer(&self.buf[pos..self.len], keys, values, &mut self.out) {
                    Answer::Used(n) => pos += n,
                    Answer::Incomplete => break,
                    Answer::Close => return false,
                }
                if self.out.len() - self.wpos > OUT_PAUSE {
                    break;
                }
            }
            self.buf.copy_within(pos..self.len, 0);
            self.len -= pos;
            if !self.flush() || eof {
                return false;
            }
            if drained {
                return true;
            }
        }
    }

    fn flush(&mut self) -> bool {
        while self.wpos < self.out.len() {
            match self.stream.write(&self.out[self.wpos..]) {
                Ok(0) => return false,
                Ok(n) => self.wpos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        self.out.clear();
        self.wpos = 0;
        true
    }
}

/// What `answer` did with the start of the input.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    /// Answered one request of this many bytes.
    Used(usize),
    /// No complete request yet.
    Incomplete,
    /// A line longer than `MAX_LINE`: the connection goes.
    Close,
}

/// Answers the first complete request in `input`.
fn answer(input: &[u8], keys: &KeyTable, values: &ValueGen, out: &mut Vec<u8>) -> Answer {
    let Some(nl) = input.iter().position(|&b| b == b'\n') else {
        return if input.len() > MAX_LINE {
            Answer::Close
        } else {
            Answer::Incomplete
        };
    };
    let line = input[..nl].strip_suffix(b"\r").unwrap_or(&input[..nl]);
    let mut words = line.split(|&b| b == b' ').filter(|w| !w.is_empty());
    match words.next() {
        Some(cmd @ (b"get" | b"gets")) => {
            for key in words {
                let Some(idx) = keys.index_of(key) else {
                    continue;
                };
                out.extend_from_slice(b"VALUE ");
                out.extend_from_slice(key);
                out.extend_from_slice(b" 0 ");
                let mut n = itoa::Buffer::new();
                out.extend_from_slice(n.format(values.len_for(idx)).as_bytes());
                if cmd == b"gets" {
                    out.extend_from_slice(b" 1");
                }
                out.extend_from_slice(b"\r\n");
                values.write_value(idx, out);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"END\r\n");
            Answer::Used(nl + 1)
        }
        Some(b"set") => {
            let args: Vec<&[u8]> = words.collect();
            let bytes = args
                .get(3)
                .and_then(|b| std::str::from_utf8(b).ok())
                .and_then(|s| s.parse::<usize>().ok())
                .filter(|&n| n <= MAX_VALUE);
            let Some(bytes) = bytes else {
                out.extend_from_slice(b"CLIENT_ERROR bad command line format\r\n");
                return Answer::Used(nl + 1);
            };
            let total = nl + 1 + bytes + 2;
            if input.len() < total {
                return Answer::Incomplete;
            }
            if &input[total - 2..total] != b"\r\n" {
                out.extend_from_slice(b"CLIENT_ERROR bad data chunk\r\n");
            } else if args.get(4) != Some(&&b"noreply"[..]) {
                out.extend_from_slice(b"STORED\r\n");
            }
            Answer::Used(total)
        }
        _ => {
            out.extend_from_slice(b"ERROR\r\n");
            Answer::Used(nl + 1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::SizeSpec;

    #[test]
    fn answers_gets_with_the_generated_values_and_sets_without_storing() {
        let keys = KeyTable::new(100, 16).unwrap();
        let values = ValueGen::new("20".parse::<SizeSpec>().unwrap());
        let k3 = keys.key(3).to_vec();
        let mut req = b"get ".to_vec();
        req.extend_from_slice(&k3);
        req.extend_from_slice(b" nosuchkey\r\nset x 0 0 2\r\nab\r\nset y 0 0 2");
        let mut out = Vec::new();
        let Answer::Used(used) = answer(&req, &keys, &values, &mut out) else {
            panic!("get not answered");
        };
        let mut want = format!("VALUE {} 0 20\r\n", String::from_utf8_lossy(&k3)).into_bytes();
        values.write_value(3, &mut want);
        want.extend_from_slice(b"\r\nEND\r\n");
        assert_eq!(out, want);
        assert!(values.validate(3, &out[out.len() - 27..out.len() - 7]));
        out.clear();
        let rest = &req[used..];
        let Answer::Used(used2) = answer(rest, &keys, &values, &mut out) else {
            panic!("set not answered");
        };
        assert_eq!(out, b"STORED\r\n");
        // An incomplete set waits for its data; an endless line closes.
        assert_eq!(
            answer(&rest[used2..], &keys, &values, &mut out),
            Answer::Incomplete
        );
        let long = vec![b'g'; MAX_LINE + 1];
        assert_eq!(answer(&long, &keys, &values, &mut out), Answer::Close);
    }
}
