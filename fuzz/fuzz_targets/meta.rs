//! Owns: the meta parser's fuzz target — the first byte picks a meta command word, the rest is
//! its line (and data block): framed by `parse_ascii`, flags parsed by `meta::parse_meta`; and
//! memcached's base64 key coding (what is encoded decodes to itself).
#![no_main]

use ferrocache::protocol::ascii::Command;
use ferrocache::protocol::meta::{base64_decode, base64_encode, parse_meta};
use ferrocache::protocol::{parse_ascii, Parsed};

const WORDS: [&[u8]; 8] = [b"mg ", b"ms ", b"md ", b"ma ", b"mn", b"me ", b"ms", b"mg"];

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let input = [WORDS[usize::from(pick) % WORDS.len()], rest].concat();
    for lim in ferrocache_fuzz::limits() {
        ferrocache_fuzz::walk_ascii(&input, &lim);
        if let Ok(Parsed::Complete(Command::Meta { tokens, data }, _)) = parse_ascii(&input, &lim) {
            if let Ok(req) = parse_meta(tokens, data) {
                assert!(!req.key().is_empty() && req.key().len() <= 250, "{req:?}");
                assert!(req.flag_words().count() <= tokens.len());
            }
        }
    }
    let mut enc = Vec::new();
    base64_encode(rest, &mut enc);
    let mut out = vec![0u8; rest.len() + 3];
    let n = base64_decode(&enc, &mut out);
    if !rest.is_empty() {
        assert_eq!(&out[..n], rest, "base64 of {rest:?} is {enc:?}");
    }
    // Arbitrary text as a key: never more than fits, never a panic.
    let mut key = [0u8; 250];
    assert!(base64_decode(rest, &mut key) <= key.len());
});
