//! Replays the committed cargo-fuzz corpus of `trace_check` (`fuzz/corpus/trace_check/`)
//! through the function the target calls, on stable Rust: none may panic.

use std::path::PathBuf;

#[test]
fn trace_check_corpus() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/trace_check");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("the corpus") {
        let path = entry.expect("an entry").path();
        let data = std::fs::read(&path).expect("a file");
        sextant_checks::trace::fuzz_check(&data);
        n += 1;
    }
    assert!(n >= 3, "{} holds {n} inputs", dir.display());
}
