//! cargo-fuzz target: the body is `sextant_checks::trace::fuzz_check` (the trace reader, then
//! the checker), which `cargo test` also runs over the committed corpus.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sextant_checks::trace::fuzz_check(data);
});
