//! Owns: the values a connection's replies send straight from the store (`store::Pin`, taken
//! by gets of large values, text, meta and binary: memcached's responses point at items the
//! same way): each
//! pinned value's place in the connection's output, and sending it a piece at a time (at most
//! `BUF` bytes copied under the shard lock per piece) as the socket drains. A pin goes back to
//! the store once its value is sent, or when the connection drops it.
//! Does not: decide when the connection writes or stops reading (see `conn`).

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::Arc;

use super::budget::BUF;
use super::stream::Stream;
use crate::exec::PinSink;
use crate::state::Shared;
use crate::stats;
use crate::store::Pin;

/// One pinned value waiting in the output: its bytes go at `at` in the connection's output.
#[derive(Debug)]
struct Pending {
    sh: Arc<Shared>,
    pin: Option<Pin>,
    at: usize,
    /// Bytes of the value copied into the piece so far.
    sent: usize,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if let Some(p) = self.pin.take() {
            self.sh.store().unpin(p);
        }
    }
}

impl Pending {
    fn len(&self) -> usize {
        self.pin.as_ref().map_or(0, Pin::len)
    }
}

/// What `Pinned::send` left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sent {
    /// The socket would block.
    Blocked,
    /// Nothing pinned is due at this place of the output: write its bytes.
    Clear,
}

/// A connection's pinned values, in output order.
#[derive(Debug, Default)]
pub struct Pinned {
    queue: VecDeque<Pending>,
    /// The piece of the front value being written (empty, without capacity, when none).
    piece: Vec<u8>,
    ppos: usize,
    /// Bytes of pinned values not written yet.
    left: usize,
}

impl Pinned {
    /// Takes the pins a request left in `sink` (counted in `pinned_values`).
    pub fn take(&mut self, sink: &PinSink, sh: &Arc<Shared>, st: &stats::ThreadStats) {
        for (at, pin) in sink.borrow_mut().drain(..) {
            stats::bump(&st.pinned_values);
            self.left += pin.len();
            self.queue.push_back(Pending {
                sh: sh.clone(),
                pin: Some(pin),
                at,
                sent: 0,
            });
        }
    }

    /// True when no pinned byte is left to write.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Bytes of pinned values not written yet.
    pub fn unsent(&self) -> usize {
        self.left
    }

    /// The place in the output where the next pinned value goes.
    pub fn next_at(&self) -> Option<usize> {
        self.queue.front().map(|p| p.at)
    }

    /// With the output written up to `wpos`: writes the pinned value due there, a piece at a
    /// time, until the socket would block or none is due.
    pub fn send(
        &mut self,
        stream: &mut Stream,
        wpos: usize,
        st: &stats::ThreadStats,
    ) -> io::Result<Sent> {
        loop {
            if self.ppos < self.piece.len() {
                match stream.write(&self.piece[self.ppos..]) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => {
                        stats::add(&st.bytes_written, n as u64);
                        self.ppos += n;
                        self.left -= n;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Sent::Blocked),
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
                continue;
            }
            let Some(front) = self.queue.front_mut().filter(|p| p.at == wpos) else {
                if self.queue.is_empty() {
                    self.piece = Vec::new();
                }
                return Ok(Sent::Clear);
            };
            if front.sent < front.len() {
                let Some(pin) = front.pin.as_ref() else {
                    return Ok(Sent::Clear);
                };
                if self.piece.capacity() == 0 {
                    self.piece = Vec::with_capacity(BUF);
                }
                self.piece.clear();
                self.ppos = 0;
                front.sent += front
                    .sh
                    .store()
                    .read_pinned(pin, front.sent, BUF, &mut self.piece);
            } else {
                self.queue.pop_front();
            }
        }
    }

    /// What is left to write of `out` (written up to `wpos`) with the pinned values in their
    /// places, as one buffer; the pins go back.
    pub fn unsent_bytes(&mut self, out: &[u8], wpos: usize) -> Vec<u8> {
        let mut all = self.piece[self.ppos..].to_vec();
        let mut from = wpos;
        for p in self.queue.drain(..) {
            all.extend_from_slice(&out[from..p.at]);
            from = p.at;
            if let Some(pin) = p.pin.as_ref() {
                let len = pin.len();
                p.sh.store().read_pinned(pin, p.sent, len, &mut all);
            }
        }
        all.extend_from_slice(&out[from.min(out.len())..]);
        self.clear();
        all
    }

    /// Drops every pinned value (the connection closes): the pins go back.
    pub fn clear(&mut self) {
        self.queue.clear();
        self.piece = Vec::new();
        self.ppos = 0;
        self.left = 0;
    }
}
