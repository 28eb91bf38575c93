//! cargo-fuzz target: the body is `sextant_broker::fuzz::group_decode` (subscription group
//! bodies), which `cargo test` also runs over the committed corpus.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sextant_broker::fuzz::group_decode(data);
});
