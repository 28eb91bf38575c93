//! cargo-fuzz target: the body is `sextant_remoting::fuzz::message_decode`, which `cargo test` also runs
//! over the committed corpus.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sextant_remoting::fuzz::message_decode(data);
});
