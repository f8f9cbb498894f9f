//! Property tests for the text parser: it never panics, every proper prefix of a valid request
//! is incomplete, and a request parses the same however it was split.

use ferrocache::protocol::ascii::Command;
use ferrocache::protocol::parse_ascii as parse;
use ferrocache::protocol::{Limits, Parsed};
use proptest::prelude::*;

fn key() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9:_.-]{1,40}"
}

/// Valid requests of every classic kind, rendered as bytes.
fn request() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (
            key(),
            any::<u32>(),
            -100i32..100000,
            proptest::collection::vec(any::<u8>(), 0..200),
            any::<bool>()
        )
            .prop_map(|(k, f, e, v, nr)| {
                let mut r = format!(
                    "set {k} {f} {e} {}{}\r\n",
                    v.len(),
                    if nr { " noreply" } else { "" }
                )
                .into_bytes();
                r.extend_from_slice(&v);
                r.extend_from_slice(b"\r\n");
                r
            }),
        (
            key(),
            any::<u64>(),
            proptest::collection::vec(any::<u8>(), 0..50)
        )
            .prop_map(|(k, c, v)| {
                let mut r = format!("cas {k} 0 0 {} {c}\r\n", v.len()).into_bytes();
                r.extend_from_slice(&v);
                r.extend_from_slice(b"\r\n");
                r
            }),
        proptest::collection::vec(key(), 1..10)
            .prop_map(|ks| format!("get {}\r\n", ks.join(" ")).into_bytes()),
        (key(), any::<u64>()).prop_map(|(k, d)| format!("incr {k} {d}\r\n").into_bytes()),
        (key(), -5i32..100).prop_map(|(k, e)| format!("touch {k} {e}\r\n").into_bytes()),
        key().prop_map(|k| format!("delete {k}\r\n").into_bytes()),
        Just(b"version\r\n".to_vec()),
        Just(b"stats items\r\n".to_vec()),
        Just(b"flush_all 10\n".to_vec()),
    ]
}

fn summary(c: &Command<'_>) -> String {
    format!("{c:?}")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..3000)) {
        let lim = Limits::default();
        let mut rest: &[u8] = &bytes;
        // Walk through everything the parser accepts; bounded by the input length.
        for _ in 0..bytes.len() + 1 {
            match parse(rest, &lim) {
                Ok(Parsed::Complete(_, used)) => {
                    prop_assert!(used > 0 && used <= rest.len());
                    rest = &rest[used..];
                }
                _ => break,
            }
        }
    }

    #[test]
    fn prefixes_are_incomplete(req in request()) {
        let lim = Limits::default();
        let whole = match parse(&req, &lim) {
            Ok(Parsed::Complete(c, used)) => { prop_assert_eq!(used, req.len()); summary(&c) }
            other => return Err(TestCaseError::fail(format!("not complete: {other:?}"))),
        };
        for cut in 0..req.len() {
            match parse(&req[..cut], &lim) {
                Ok(Parsed::Incomplete) => {}
                other => return Err(TestCaseError::fail(format!("prefix {cut}: {other:?}"))),
            }
        }
        // Followed by more input, the same request comes out.
        let mut more = req.clone();
        more.extend_from_slice(b"version\r\n");
        match parse(&more, &lim) {
            Ok(Parsed::Complete(c, used)) => { prop_assert_eq!(used, req.len()); prop_assert_eq!(summary(&c), whole); }
            other => return Err(TestCaseError::fail(format!("{other:?}"))),
        }
    }
}
