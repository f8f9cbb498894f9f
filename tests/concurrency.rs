//! Concurrency: many client threads on shared keys against one ferrocache (several worker
//! threads), asserting that no update is lost and no value is torn. Loops are bounded in count
//! and time.

mod common;
use common::*;
use std::net::TcpStream;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

const THREADS: usize = 12;

fn run_threads<T: Send + 'static>(
    srv: &Server,
    f: impl Fn(usize, TcpStream) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let f = Arc::new(f);
    let barrier = Arc::new(Barrier::new(THREADS));
    let handles: Vec<_> = (0..THREADS)
        .map(|i| {
            let c = srv.connect();
            let f = f.clone();
            let barrier = barrier.clone();
            thread::spawn(move || {
                barrier.wait();
                f(i, c)
            })
        })
        .collect();
    handles
        .into_iter()
        .map(|h| h.join().expect("client thread panicked"))
        .collect()
}

fn value_of(reply: &[u8]) -> Option<Vec<u8>> {
    let text = show(reply);
    if text == "END\r\n" {
        return None;
    }
    let header_end = text.find("\r\n").expect("VALUE line");
    let header: Vec<&str> = text[..header_end].split(' ').collect();
    assert_eq!(header[0], "VALUE", "unexpected reply {text:?}");
    let n: usize = header[3].parse().unwrap();
    let start = header_end + 2;
    assert_eq!(
        &reply[start + n..],
        b"\r\nEND\r\n",
        "malformed reply {text:?}"
    );
    Some(reply[start..start + n].to_vec())
}

fn server() -> Server {
    Server::start(&["-t", "4"])
}

#[test]
fn parallel_incr_and_decr_sum_exactly() {
    let srv = server();
    let mut c = srv.connect();
    assert_eq!(
        show(&exchange(
            &mut c,
            b"set ctr 0 0 1\r\n0\r\nset down 0 0 6\r\n100000\r\n"
        )),
        "STORED\r\nSTORED\r\n"
    );
    const ROUNDS: usize = 40;
    const BATCH: usize = 25;
    let counts = run_threads(&srv, |i, mut c| {
        let mut n = 0u64;
        for _ in 0..ROUNDS {
            // A pipelined batch: every reply is a number, none may be lost.
            let mut req = Vec::new();
            for _ in 0..BATCH {
                req.extend_from_slice(b"incr ctr 1\r\n");
                req.extend_from_slice(b"decr down 1\r\n");
                req.extend_from_slice(format!("incr own{i} 2\r\n").as_bytes());
            }
            let out = show(&exchange(&mut c, &req));
            for line in out.lines() {
                if line != "NOT_FOUND" {
                    line.parse::<u64>()
                        .unwrap_or_else(|_| panic!("bad incr reply {line:?}"));
                }
            }
            n += BATCH as u64;
        }
        n
    });
    let total: u64 = counts.iter().sum();
    assert_eq!(total, (THREADS * ROUNDS * BATCH) as u64);
    assert_eq!(
        value_of(&exchange(&mut c, b"get ctr\r\n")).map(|v| show(&v).trim().to_string()),
        Some(total.to_string()),
        "parallel incr lost updates"
    );
    assert_eq!(
        value_of(&exchange(&mut c, b"get down\r\n")).map(|v| show(&v).trim().to_string()),
        Some((100_000 - total).to_string()),
        "parallel decr lost updates"
    );
}

#[test]
fn cas_loops_increment_exactly() {
    let srv = server();
    let mut c = srv.connect();
    assert_eq!(
        show(&exchange(&mut c, b"set casctr 0 0 1\r\n0\r\n")),
        "STORED\r\n"
    );
    const PER_THREAD: u64 = 60;
    let deadline = Instant::now() + Duration::from_secs(30);
    let results = run_threads(&srv, move |_, mut c| {
        let (mut done, mut conflicts) = (0u64, 0u64);
        while done < PER_THREAD {
            assert!(Instant::now() < deadline, "cas loop did not finish in time");
            let reply = show(&exchange(&mut c, b"gets casctr\r\n"));
            let header = reply.lines().next().unwrap().to_string();
            let toks: Vec<&str> = header.split(' ').collect();
            assert_eq!(toks.len(), 5, "bad gets reply {reply:?}");
            let value: u64 = reply.lines().nth(1).unwrap().parse().unwrap();
            let cas = toks[4];
            let next = (value + 1).to_string();
            let req = format!("cas casctr 0 0 {} {cas}\r\n{next}\r\n", next.len());
            match show(&exchange(&mut c, req.as_bytes())).as_str() {
                "STORED\r\n" => done += 1,
                "EXISTS\r\n" => conflicts += 1,
                other => panic!("unexpected cas reply {other:?}"),
            }
        }
        conflicts
    });
    let conflicts: u64 = results.iter().sum();
    let want = THREADS as u64 * PER_THREAD;
    assert_eq!(
        value_of(&exchange(&mut c, b"get casctr\r\n")),
        Some(want.to_string().into_bytes()),
        "cas loops lost an update ({conflicts} conflicts seen)"
    );
    let stats = show(&exchange(&mut c, b"stats\r\n"));
    let stat = |name: &str| -> u64 {
        stats
            .lines()
            .find_map(|l| l.strip_prefix(&format!("STAT {name} ")))
            .unwrap()
            .parse()
            .unwrap()
    };
    assert_eq!(stat("cas_hits"), want);
    assert_eq!(stat("cas_badval"), conflicts);
}

#[test]
fn set_get_on_shared_keys_never_tears() {
    let srv = server();
    const KEYS: usize = 8;
    const OPS: usize = 400;
    run_threads(&srv, |i, mut c| {
        for n in 0..OPS {
            let key = format!("shared{}", n % KEYS);
            // A self-describing value: one byte repeated, its length tied to that byte.
            let b = b'a' + ((i * 7 + n) % 26) as u8;
            let len = 100 + (b - b'a') as usize * 997;
            let mut req = format!("set {key} {b} 0 {len}\r\n").into_bytes();
            req.extend(std::iter::repeat_n(b, len));
            req.extend_from_slice(b"\r\nget ");
            req.extend_from_slice(key.as_bytes());
            req.extend_from_slice(b"\r\n");
            let out = exchange(&mut c, &req);
            assert!(
                out.starts_with(b"STORED\r\n"),
                "{}",
                show(&out[..40.min(out.len())])
            );
            let v = value_of(&out[8..]).expect("a set key is present");
            let first = v[0];
            assert!(
                v.iter().all(|&x| x == first) && v.len() == 100 + (first - b'a') as usize * 997,
                "torn value for {key}: {} bytes starting {:?}",
                v.len(),
                show(&v[..20.min(v.len())])
            );
            // Flags were written together with the value.
            let header = show(&out[8..out.iter().skip(8).position(|&x| x == b'\r').unwrap() + 8]);
            assert_eq!(header.split(' ').nth(2), Some(first.to_string().as_str()));
        }
    });
}

#[test]
fn parallel_appends_keep_every_piece() {
    let srv = server();
    let mut c = srv.connect();
    assert_eq!(
        show(&exchange(&mut c, b"set log 0 0 0\r\n\r\n")),
        "STORED\r\n"
    );
    const PIECES: usize = 100;
    run_threads(&srv, |i, mut c| {
        for n in 0..PIECES {
            let piece = format!("[{i:02}:{n:03}]");
            let req = format!("append log 0 0 {}\r\n{piece}\r\n", piece.len());
            assert_eq!(show(&exchange(&mut c, req.as_bytes())), "STORED\r\n");
        }
    });
    let v = show(&value_of(&exchange(&mut c, b"get log\r\n")).unwrap());
    assert_eq!(v.len(), THREADS * PIECES * 8);
    for i in 0..THREADS {
        // Each thread's pieces all arrived, in its own order.
        let mine: Vec<&str> = v
            .split_inclusive(']')
            .filter(|p| p.starts_with(&format!("[{i:02}:")))
            .collect();
        let want: Vec<String> = (0..PIECES).map(|n| format!("[{i:02}:{n:03}]")).collect();
        assert_eq!(mine, want, "thread {i} lost or reordered appends");
    }
}
