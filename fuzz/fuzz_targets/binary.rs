//! Owns: the binary parser's fuzz target — every request of arbitrary bytes through
//! `protocol::binary::parse` under two sets of limits, and the client-side response parser.
#![no_main]

use ferrocache::protocol::binary;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    for lim in ferrocache_fuzz::limits() {
        ferrocache_fuzz::walk_binary(data, &lim);
    }
    if let Some((r, used)) = binary::parse_response(data) {
        assert!(used >= binary::HEADER_LEN && used <= data.len());
        assert!(r.extras.len() + r.key.len() + r.value.len() + binary::HEADER_LEN == used);
    }
});
