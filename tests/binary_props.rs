//! Property tests for the binary framing: it never panics on arbitrary bytes, every proper
//! prefix of a valid packet is incomplete, a frame covers exactly its packet, and a stream of
//! packets frames the same however it is split.

use ferrocache::protocol::binary::{parse, request, Check, Frame};
use ferrocache::protocol::{Limits, Parsed};
use proptest::prelude::*;

/// Valid requests of the opcodes memcached implements, with their lengths right.
fn packet() -> impl Strategy<Value = Vec<u8>> {
    let key = proptest::collection::vec(any::<u8>(), 1..60);
    let val = proptest::collection::vec(any::<u8>(), 0..300);
    prop_oneof![
        (
            prop_oneof![
                Just(0x00u8),
                Just(0x09),
                Just(0x0c),
                Just(0x0d),
                Just(0x04),
                Just(0x14)
            ],
            key.clone(),
            any::<u32>()
        )
            .prop_map(|(o, k, q)| request(o, q, 0, &[], &k, &[])),
        (
            prop_oneof![
                Just(0x01u8),
                Just(0x02),
                Just(0x03),
                Just(0x11),
                Just(0x12),
                Just(0x13)
            ],
            key.clone(),
            val.clone(),
            any::<[u8; 8]>(),
            any::<u64>()
        )
            .prop_map(|(o, k, v, e, c)| request(o, 1, c, &e, &k, &v)),
        (
            prop_oneof![Just(0x0eu8), Just(0x0f), Just(0x19), Just(0x1a)],
            key.clone(),
            val.clone()
        )
            .prop_map(|(o, k, v)| request(o, 1, 0, &[], &k, &v)),
        (
            prop_oneof![Just(0x05u8), Just(0x06), Just(0x15), Just(0x16)],
            key.clone(),
            any::<[u8; 20]>()
        )
            .prop_map(|(o, k, e)| request(o, 1, 0, &e, &k, &[])),
        (
            prop_oneof![Just(0x1cu8), Just(0x1d), Just(0x1e), Just(0x23), Just(0x24)],
            key.clone(),
            any::<[u8; 4]>()
        )
            .prop_map(|(o, k, e)| request(o, 1, 0, &e, &k, &[])),
        prop_oneof![
            Just(0x0au8),
            Just(0x0b),
            Just(0x07),
            Just(0x17),
            Just(0x08),
            Just(0x18),
            Just(0x20)
        ]
        .prop_map(|o| request(o, 1, 0, &[], &[], &[])),
        (proptest::collection::vec(any::<u8>(), 0..20)).prop_map(|k| request(
            0x10,
            1,
            0,
            &[],
            &k,
            &[]
        )),
        (key, val).prop_map(|(k, v)| request(0x21, 1, 0, &[], &k, &v)),
    ]
}

/// (opcode, check, extras, key, value) of a frame.
type Seen = (u8, Check, Vec<u8>, Vec<u8>, Vec<u8>);

fn frames(mut input: &[u8], lim: &Limits) -> Vec<Seen> {
    let mut out = Vec::new();
    while let Ok(Parsed::Complete(f, used)) = parse(input, lim) {
        let Frame {
            header,
            check,
            extras,
            key,
            value,
            ..
        } = f;
        out.push((
            header.opcode,
            check,
            extras.to_vec(),
            key.to_vec(),
            value.to_vec(),
        ));
        input = &input[used..];
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let lim = Limits::default();
        let mut input = &bytes[..];
        // Frames are consumed as the connection would; stops at incomplete input or an error.
        for _ in 0..100 {
            match parse(input, &lim) {
                Ok(Parsed::Complete(_, used)) => {
                    prop_assert!(used >= 24 && used <= input.len());
                    input = &input[used..];
                }
                _ => break,
            }
        }
    }

    #[test]
    fn prefixes_are_incomplete_and_frames_are_exact(p in packet()) {
        let lim = Limits::default();
        for i in 0..p.len() {
            prop_assert_eq!(parse(&p[..i], &lim), Ok(Parsed::Incomplete), "prefix {}", i);
        }
        match parse(&p, &lim) {
            Ok(Parsed::Complete(f, used)) => {
                prop_assert_eq!(used, p.len());
                prop_assert_eq!(f.check, Check::Ok);
                prop_assert_eq!(f.skip, 0);
            }
            other => prop_assert!(false, "{:?}", other),
        }
    }

    #[test]
    fn split_points_do_not_matter(ps in proptest::collection::vec(packet(), 1..6), cut in any::<prop::sample::Index>()) {
        let lim = Limits::default();
        let stream: Vec<u8> = ps.concat();
        let whole = frames(&stream, &lim);
        prop_assert_eq!(whole.len(), ps.len());
        // Feeding the stream in two parts, as two reads would, frames the same packets.
        let at = cut.index(stream.len() + 1);
        let mut buf = stream[..at].to_vec();
        let mut got = Vec::new();
        let mut consumed = 0;
        loop {
            match parse(&buf[consumed..], &lim) {
                Ok(Parsed::Complete(f, used)) => {
                    got.push((f.header.opcode, f.check, f.extras.to_vec(), f.key.to_vec(), f.value.to_vec()));
                    consumed += used;
                }
                _ if buf.len() < stream.len() => buf.extend_from_slice(&stream[at..]),
                _ => break,
            }
        }
        prop_assert_eq!(got, whole);
    }
}
