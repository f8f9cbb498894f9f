//! Owns: memcached's UDP framing — the 8-byte header of every datagram (request id, sequence
//! number, datagram count, reserved; big-endian u16s), which request datagrams are served, and
//! how replies become datagrams (`Replies`), exactly as memcached 1.6.18 sends them.
//! Does not: touch sockets (see `server::udp`) or parse the requests inside a datagram.
//!
//! memcached keeps one response object per request (per key for a text multi-get) and sends
//! each on its own: its datagrams carry sequence numbers from 0 and the count for that response
//! only, with at most 1400 bytes per datagram, header included (1392 of reply). A response that
//! is empty (a missed key of a multi-get) goes out as a bare header with count 0, unless a
//! datagram was just sent, in which case it is dropped; quiet responses (`noreply`) are never sent.

/// The frame header's size.
pub const HEADER: usize = 8;
/// The most a reply datagram holds, header included (memcached's `UDP_MAX_PAYLOAD_SIZE`).
pub const MAX_DATAGRAM: usize = 1400;
/// Reply bytes per datagram.
pub const DATA: usize = MAX_DATAGRAM - HEADER;

/// The request id and payload of a request datagram, or None for one memcached drops without
/// an answer: 8 bytes or fewer, or a request spread over several datagrams (the header's count
/// is not 1).
pub fn request(dgram: &[u8]) -> Option<(u16, &[u8])> {
    if dgram.len() <= HEADER || dgram[4] != 0 || dgram[5] != 1 {
        return None;
    }
    Some((u16::from_be_bytes([dgram[0], dgram[1]]), &dgram[HEADER..]))
}

/// The header of a reply datagram.
pub fn header(id: u16, seq: u16, total: u16) -> [u8; HEADER] {
    let (i, s, t) = (id.to_be_bytes(), seq.to_be_bytes(), total.to_be_bytes());
    [i[0], i[1], s[0], s[1], t[0], t[1], 0, 0]
}

/// One response object: where it ends in `Replies::out`, and whether it is quiet.
#[derive(Debug, Clone, Copy)]
struct Resp {
    end: usize,
    skip: bool,
}

/// The replies to one request datagram: executors append to `out`, the caller closes each
/// response with `end_response` and sends what is complete with `flush`.
#[derive(Debug, Default)]
pub struct Replies {
    /// Reply bytes of every response not yet flushed or discarded.
    pub out: Vec<u8>,
    resps: Vec<Resp>,
    id: u16,
}

impl Replies {
    /// Starts the replies to request `id`.
    pub fn reset(&mut self, id: u16) {
        self.out.clear();
        self.resps.clear();
        self.id = id;
    }

    fn start(&self) -> usize {
        self.resps.last().map_or(0, |r| r.end)
    }

    /// Closes the response written since the last one. An empty one is quiet when `quiet_if_empty`
    /// (a `noreply` request), else an empty response (a missed key of a multi-get).
    pub fn end_response(&mut self, quiet_if_empty: bool) {
        let end = self.out.len();
        let skip = quiet_if_empty && end == self.start();
        self.resps.push(Resp { end, skip });
    }

    /// Bytes written since the last closed response.
    pub fn open_len(&self) -> usize {
        self.out.len() - self.start()
    }

    /// Drops every response not yet flushed (what memcached does when the rest of a datagram
    /// closes its connection state).
    pub fn discard(&mut self) {
        self.out.clear();
        self.resps.clear();
    }

    /// Sends every closed response, datagram by datagram, through `send` (which returns false
    /// to stop: the rest is dropped). Bytes after the last closed response stay.
    pub fn flush(&mut self, mut send: impl FnMut(&[u8]) -> bool) {
        let mut dgram = Vec::with_capacity(MAX_DATAGRAM);
        let mut just_sent = false;
        let mut begin = 0;
        let mut ok = true;
        for r in &self.resps {
            let body = &self.out[begin..r.end];
            begin = r.end;
            if !ok || r.skip || (body.is_empty() && just_sent) {
                continue;
            }
            let total = body.len().div_ceil(DATA).min(usize::from(u16::MAX)) as u16;
            if body.is_empty() {
                ok = send(&header(self.id, 0, 0));
            }
            for (seq, chunk) in body.chunks(DATA).enumerate() {
                dgram.clear();
                dgram.extend_from_slice(&header(self.id, seq as u16, total));
                dgram.extend_from_slice(chunk);
                if !send(&dgram) {
                    ok = false;
                    break;
                }
            }
            just_sent = true;
        }
        self.out.drain(..begin);
        self.resps.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(r: &mut Replies) -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        r.flush(|d| {
            v.push(d.to_vec());
            true
        });
        v
    }

    #[test]
    fn requests() {
        assert_eq!(request(&[0, 7, 0, 0, 0, 1, 0, 0]), None);
        assert_eq!(
            request(&[0, 7, 0, 0, 0, 1, 0, 0, b'x']),
            Some((7, &b"x"[..]))
        );
        assert_eq!(request(&[0, 7, 0, 0, 0, 2, 0, 0, b'x']), None);
        assert_eq!(request(&[0, 7, 0, 0, 1, 1, 0, 0, b'x']), None);
        assert_eq!(request(&[]), None);
    }

    #[test]
    fn splits_and_numbers() {
        let mut r = Replies::default();
        r.reset(0x0102);
        r.out.extend(std::iter::repeat_n(b'a', DATA * 2 + 1));
        r.end_response(true);
        let d = sent(&mut r);
        assert_eq!(d.len(), 3);
        assert_eq!(&d[0][..8], &[1, 2, 0, 0, 0, 3, 0, 0]);
        assert_eq!(&d[2][..8], &[1, 2, 0, 2, 0, 3, 0, 0]);
        assert_eq!(d[0].len(), MAX_DATAGRAM);
        assert_eq!(d[2].len(), HEADER + 1);
    }

    #[test]
    fn empty_and_quiet_responses() {
        let mut r = Replies::default();
        r.reset(1);
        r.end_response(false); // empty: bare header
        r.end_response(true); // quiet: nothing
        r.out.extend_from_slice(b"V\r\n");
        r.end_response(false);
        r.end_response(false); // empty right after a send: nothing
        r.out.extend_from_slice(b"END\r\n");
        r.end_response(false);
        r.out.extend_from_slice(b"partial");
        let d = sent(&mut r);
        assert_eq!(d.len(), 3);
        assert_eq!(d[0], header(1, 0, 0));
        assert_eq!(&d[1][8..], b"V\r\n");
        assert_eq!(&d[2][8..], b"END\r\n");
        assert_eq!(r.out, b"partial");
    }

    #[test]
    fn a_failed_send_drops_the_rest() {
        let mut r = Replies::default();
        r.reset(1);
        r.out.extend_from_slice(b"A\r\n");
        r.end_response(true);
        r.out.extend_from_slice(b"B\r\n");
        r.end_response(true);
        let mut n = 0;
        r.flush(|_| {
            n += 1;
            false
        });
        assert_eq!(n, 1);
        assert!(r.out.is_empty());
    }
}
