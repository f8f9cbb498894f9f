//! memcached's UDP protocol (`-U`): the same datagrams sent to memcached 1.6.18 and to
//! ferrocache must get the same reply datagrams, frame headers included.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use common::Server;

/// One worker thread each, so datagrams are answered in the order sent.
const T: &[&str] = &["-t", "1"];

fn frame(id: u16, seq: u16, total: u16) -> Vec<u8> {
    let mut v = id.to_be_bytes().to_vec();
    v.extend_from_slice(&seq.to_be_bytes());
    v.extend_from_slice(&total.to_be_bytes());
    v.extend_from_slice(&[0, 0]);
    v
}

/// A client socket talking to one server's UDP port.
struct Udp {
    sock: UdpSocket,
    to: SocketAddr,
    next_id: u16,
}

impl Udp {
    fn new(to: SocketAddr) -> Udp {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Udp {
            sock,
            to,
            next_id: 100,
        }
    }

    fn recv(&self) -> Vec<u8> {
        let mut buf = vec![0u8; 70000];
        let n = self.sock.recv(&mut buf).expect("a reply datagram");
        buf.truncate(n);
        buf
    }

    /// Sends a raw datagram, then a `version` request with a fresh id, and returns every
    /// datagram received before the version reply: the first datagram's answer, with no wait
    /// for silence.
    fn exchange(&mut self, dgram: &[u8]) -> Vec<Vec<u8>> {
        self.sock.send_to(dgram, self.to).unwrap();
        self.next_id += 1;
        let marker = self.next_id;
        let mut v = frame(marker, 0, 1);
        v.extend_from_slice(b"version\r\n");
        self.sock.send_to(&v, self.to).unwrap();
        let mut got = Vec::new();
        for _ in 0..100_000 {
            let d = self.recv();
            if d[..2] == marker.to_be_bytes() {
                return got;
            }
            got.push(d);
        }
        panic!("no version reply");
    }

    /// Sends one request and reads its reply up to `END`. With several workers reading the
    /// socket, replies to different datagrams may come in any order, so no marker is used.
    fn until_end(&self, payload: &[u8]) -> String {
        let mut d = frame(5, 0, 1);
        d.extend_from_slice(payload);
        self.sock.send_to(&d, self.to).unwrap();
        let mut text = String::new();
        for _ in 0..100 {
            text.push_str(&String::from_utf8_lossy(&self.recv()[8..]));
            if text.ends_with("END\r\n") {
                break;
            }
        }
        text
    }

    /// One request in one datagram, with id 7.
    fn request(&mut self, payload: &[u8]) -> Vec<Vec<u8>> {
        let mut d = frame(7, 0, 1);
        d.extend_from_slice(payload);
        self.exchange(&d)
    }
}

/// memcached and ferrocache, each with a UDP port, ready to answer datagrams. None without the
/// reference memcached.
fn pair(args: &[&str]) -> Option<(Udp, Udp, Server, Server)> {
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let p = port.to_string();
    let mut margs = vec!["-U", p.as_str()];
    margs.extend_from_slice(args);
    // The oracle must be there (`make test` installs it): a missing one fails the test.
    let mut mc =
        Server::memcached(&margs).expect("memcached 1.6.18 is needed: `make test` installs it");
    mc.udp = Some(format!("127.0.0.1:{port}").parse().unwrap());
    let mut fargs = vec!["-U", "-1"];
    fargs.extend_from_slice(args);
    let fc = Server::start(&fargs);
    let a = Udp::new(mc.udp.unwrap());
    a.sock
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    // memcached binds UDP after TCP: ask until it answers (bounded).
    let mut ready = false;
    for _ in 0..100 {
        let mut v = frame(1, 0, 1);
        v.extend_from_slice(b"version\r\n");
        a.sock.send_to(&v, a.to).unwrap();
        let mut buf = [0u8; 64];
        if a.sock.recv(&mut buf).is_ok() {
            ready = true;
            break;
        }
    }
    assert!(ready, "memcached did not answer on UDP");
    a.sock
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let b = Udp::new(fc.udp.expect("ferrocache UDP address"));
    Some((a, b, mc, fc))
}

fn same(a: &mut Udp, b: &mut Udp, payload: &[u8]) -> Vec<Vec<u8>> {
    let x = a.request(payload);
    let y = b.request(payload);
    assert_eq!(
        x,
        y,
        "request {:?}",
        String::from_utf8_lossy(&payload[..payload.len().min(80)])
    );
    x
}

fn same_raw(a: &mut Udp, b: &mut Udp, dgram: &[u8]) -> Vec<Vec<u8>> {
    let x = a.exchange(dgram);
    let y = b.exchange(dgram);
    assert_eq!(x, y, "datagram {dgram:?}");
    x
}

#[test]
fn text_requests_match_memcached() {
    let Some((mut a, mut b, _m, _f)) = pair(T) else {
        return;
    };
    let r = same(&mut a, &mut b, b"set foo 0 0 6\r\nfooval\r\n");
    assert_eq!(r, vec![[frame(7, 0, 1), b"STORED\r\n".to_vec()].concat()]);
    let r = same(&mut a, &mut b, b"get foo\r\n");
    assert_eq!(&r[0][8..], b"VALUE foo 0 6\r\nfooval\r\nEND\r\n");
    same(&mut a, &mut b, b"get nothing\r\n");
    same(&mut a, &mut b, b"gets foo nothing foo\r\n");
    same(
        &mut a,
        &mut b,
        b"set n 0 0 2\r\n10\r\nincr n 5\r\ndecr n 100\r\nincr nope 1\r\n",
    );
    same(&mut a, &mut b, b"delete n\r\ndelete n\r\nget n\r\n");
    same(&mut a, &mut b, b"set q 0 0 1 noreply\r\nx\r\nget q\r\n");
    same(&mut a, &mut b, b"touch foo 100\r\ngat 0 foo\r\n");
    same(
        &mut a,
        &mut b,
        b"mg foo v\r\nmg nothing v\r\nmn\r\nms m 2\r\nhi\r\nmg m v q\r\n",
    );
    same(&mut a, &mut b, b"version\r\nverbosity 0\r\n");
    same(&mut a, &mut b, &b"version\r\n".repeat(45));
}

#[test]
fn multi_datagram_replies_match_memcached() {
    let Some((mut a, mut b, _m, _f)) = pair(T) else {
        return;
    };
    let big: Vec<u8> = (0..20000u32).map(|i| b'A' + (i % 26) as u8).collect();
    let mut set = b"set big 0 0 20000\r\n".to_vec();
    set.extend_from_slice(&big);
    set.extend_from_slice(b"\r\n");
    same(&mut a, &mut b, &set);
    let r = same(&mut a, &mut b, b"get big\r\n");
    assert_eq!(r.len(), 15);
    assert_eq!(&r[14][..8], &frame(7, 14, 15)[..]);
    let body: Vec<u8> = r.iter().flat_map(|d| d[8..].to_vec()).collect();
    assert!(body.ends_with(b"\r\nEND\r\n"));
    assert!(r.iter().all(|d| d.len() <= 1400));
    same(&mut a, &mut b, b"set s 0 0 3\r\nabc\r\n");
    // Each key is its own response, numbered from 0; a missed key first is a bare header.
    let r = same(&mut a, &mut b, b"get none big none s none big\r\n");
    assert_eq!(r[0], frame(7, 0, 0));
}

#[test]
fn dropped_and_bad_datagrams_match_memcached() {
    let Some((mut a, mut b, _m, _f)) = pair(T) else {
        return;
    };
    // Too short: nothing.
    assert!(same_raw(&mut a, &mut b, &frame(3, 0, 1)).is_empty());
    assert!(same_raw(&mut a, &mut b, &[0, 3, 0]).is_empty());
    // A request over several datagrams: dropped without an answer.
    let mut d = frame(3, 0, 2);
    d.extend_from_slice(b"version\r\n");
    assert!(same_raw(&mut a, &mut b, &d).is_empty());
    let mut d = frame(3, 0, 0x0101);
    d.extend_from_slice(b"version\r\n");
    assert!(same_raw(&mut a, &mut b, &d).is_empty());
    // Only the count is checked: the sequence number and reserved bytes are ignored.
    let mut d = frame(3, 1, 1);
    d.extend_from_slice(b"version\r\n");
    assert_eq!(same_raw(&mut a, &mut b, &d).len(), 1);
    let mut d = vec![0, 4, 9, 9, 0, 1, 7, 7];
    d.extend_from_slice(b"version\r\n");
    assert_eq!(same_raw(&mut a, &mut b, &d).len(), 1);
    same(&mut a, &mut b, b"garbage\r\n");
    same(&mut a, &mut b, b"\r\n");
    same(&mut a, &mut b, b"set a 0 0 1\r\nxx\r\nversion\r\n");
    // A line not ended: what was answered goes out, the rest is dropped.
    same(&mut a, &mut b, b"get a\r\nget a");
    same(&mut a, &mut b, b"version\r\nget a");
    // A line too long: nothing of that datagram is sent.
    let mut long = b"version\r\n".to_vec();
    long.extend(std::iter::repeat_n(b'x', 3000));
    assert!(same(&mut a, &mut b, &long).is_empty());
    let mut key = b"get a ".to_vec();
    key.extend(std::iter::repeat_n(b'k', 251));
    key.extend_from_slice(b" a\r\n");
    same(&mut a, &mut b, &key);
    same(&mut a, &mut b, b"quit\r\nversion\r\n");
}

#[test]
fn binary_requests_match_memcached() {
    let Some((mut a, mut b, _m, _f)) = pair(T) else {
        return;
    };
    let pkt = |op: u8, key: &[u8], extras: &[u8], value: &[u8]| {
        let mut p = vec![0x80, op];
        p.extend_from_slice(&(key.len() as u16).to_be_bytes());
        p.push(extras.len() as u8);
        p.extend_from_slice(&[0, 0, 0]);
        p.extend_from_slice(&((extras.len() + key.len() + value.len()) as u32).to_be_bytes());
        p.extend_from_slice(&[0; 12]);
        p.extend_from_slice(extras);
        p.extend_from_slice(key);
        p.extend_from_slice(value);
        p
    };
    let r = same(&mut a, &mut b, &pkt(0x01, b"bk", &[0; 8], b"bval"));
    assert_eq!(r.len(), 1);
    same(&mut a, &mut b, &pkt(0x00, b"bk", &[], &[]));
    same(&mut a, &mut b, &pkt(0x00, b"missing", &[], &[]));
    let two = [pkt(0x09, b"bk", &[], &[]), pkt(0x0c, b"bk", &[], &[])].concat();
    same(&mut a, &mut b, &two);
    same(&mut a, &mut b, &pkt(0x04, b"bk", &[], &[]));
}

#[test]
fn stats_count_udp_sockets_as_memcached_does() {
    let Some((a, b, m, f)) = pair(&["-t", "2"]) else {
        return;
    };
    let stat = |s: &Server, name: &str| {
        let mut c = s.connect();
        c.write_all(b"stats\r\n").unwrap();
        let mut all = Vec::new();
        let mut buf = [0u8; 8192];
        while !all.ends_with(b"END\r\n") {
            let n = c.read(&mut buf).unwrap();
            assert!(n > 0);
            all.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8(all).unwrap();
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("STAT {name} ")))
            .unwrap()
            .to_string();
        line
    };
    // UDP sockets count as connections. memcached frees a closed connection (its readiness
    // probe's) asynchronously, so its count is read until it settles (bounded).
    // `connection_structures` is not compared: memcached's grows when a new connection gets a
    // file descriptor no earlier connection had, which depends on when that close happened.
    let mut settled = false;
    for _ in 0..50 {
        if stat(&m, "curr_connections") == stat(&f, "curr_connections") {
            settled = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        settled,
        "curr_connections: memcached {} ferrocache {}",
        stat(&m, "curr_connections"),
        stat(&f, "curr_connections")
    );
    // `stats conns` over UDP: the asking socket shows its peer, the others their address.
    let text = b.until_end(b"stats conns\r\n");
    let port = f.udp.unwrap().port();
    assert_eq!(text.matches(":UDP UDP\r\n").count(), 2, "{text}");
    assert!(text.contains(&format!("listen_addr udp:127.0.0.1:{port}\r\n")));
    assert!(text.contains(":state conn_parse_cmd\r\n"));
    assert!(text.contains(&format!(":addr udp:127.0.0.1:{port}\r\n")));
    assert!(text.contains(":state conn_read\r\n"));
    let mc = a.until_end(b"stats conns\r\n");
    assert_eq!(mc.matches(":UDP UDP\r\n").count(), 2, "{mc}");
}

#[test]
fn udp_is_off_by_default_and_on_with_u() {
    let s = Server::start(&[]);
    assert!(s.udp.is_none());
    let mut c = s.connect();
    c.write_all(b"stats settings\r\n").unwrap();
    let mut all = Vec::new();
    let mut buf = [0u8; 8192];
    while !all.ends_with(b"END\r\n") {
        let n = c.read(&mut buf).unwrap();
        assert!(n > 0);
        all.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&all).contains("STAT udpport 0\r\n"));
    let s = Server::start(&["-U", "-1", "-t", "3"]);
    let u = Udp::new(s.udp.expect("a UDP socket"));
    let text = u.until_end(b"stats settings\r\n");
    assert!(text.contains("STAT num_threads_per_udp 3\r\n"), "{text}");
}
