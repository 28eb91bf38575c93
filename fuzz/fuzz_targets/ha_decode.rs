//! cargo-fuzz target: the body is `sextant_remoting::fuzz::ha_decode` (HA chunks and offset
//! reports), which `cargo test` also runs over the committed corpus.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sextant_remoting::fuzz::ha_decode(data);
});
