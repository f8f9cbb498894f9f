//! Owns: the UDP fuzz target — an arbitrary datagram served as a UDP port serves it
//! (`server::udp::serve_datagram`: frame header, text or binary requests run by the executors
//! against one long-lived store), checking every reply datagram's size and header.
#![no_main]

use ferrocache::exec::{self, ConnRef, Ctx};
use ferrocache::protocol::udp::{self, Replies};
use ferrocache::server::udp::serve_datagram;
use ferrocache::state::Shared;
use std::sync::{LazyLock, Mutex};

static SERVER: LazyLock<Shared> =
    LazyLock::new(|| ferrocache_fuzz::server(&["-m", "32", "-U", "0"]));
static REPLIES: LazyLock<Mutex<Replies>> = LazyLock::new(|| Mutex::new(Replies::default()));

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((id, payload)) = udp::request(data) else {
        return;
    };
    let sh = &*SERVER;
    let ctx = Ctx::new(
        sh,
        ConnRef {
            id: 7,
            worker: 0,
            admin: false,
            udp_peer: Some(([127, 0, 0, 1], 9).into()),
        },
    );
    let mut rep = REPLIES.lock().unwrap_or_else(|e| e.into_inner());
    rep.reset(id);
    let mut send = |d: &[u8]| {
        assert!(
            d.len() >= udp::HEADER && d.len() <= udp::MAX_DATAGRAM,
            "{} bytes",
            d.len()
        );
        assert_eq!(u16::from_be_bytes([d[0], d[1]]), id);
        let (seq, total) = (
            u16::from_be_bytes([d[2], d[3]]),
            u16::from_be_bytes([d[4], d[5]]),
        );
        assert!(
            seq < total || (total == 0 && d.len() == udp::HEADER),
            "{seq}/{total}"
        );
        true
    };
    serve_datagram(payload, &ctx, &exec::limits(sh), &mut rep, &mut send);
});
