//! Owns: the text parser's fuzz target — every request of arbitrary bytes through
//! `protocol::parse_ascii` (classic, meta and admin lines), under two sets of limits.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    for lim in ferrocache_fuzz::limits() {
        ferrocache_fuzz::walk_ascii(data, &lim);
    }
});
