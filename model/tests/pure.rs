//! The model crate stays pure: its only dependencies are `thiserror` and `md-5`. No tokio, no I/O
//! crate, no clock. Adding one is a design change (design.md §1) and must change this test.

#[test]
fn model_depends_on_no_io_crate() {
    let manifest = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
        .expect("model/Cargo.toml is readable");
    let deps: Vec<&str> = manifest
        .split("\n[")
        .find(|section| section.starts_with("dependencies]"))
        .expect("a [dependencies] section")
        .lines()
        .skip(1)
        .filter_map(|l| l.split(['=', '.']).next())
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(
        deps,
        ["md-5", "thiserror"],
        "model/ must stay free of I/O dependencies"
    );
}

#[test]
fn model_source_reads_no_clock_and_does_no_io() {
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
    let mut stack = vec![std::path::PathBuf::from(src)];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let code: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        for banned in [
            "std::time",
            "Instant::now",
            "SystemTime",
            "std::fs",
            "std::net",
            "std::thread",
            "tokio",
        ] {
            assert!(!code.contains(banned), "{} uses {banned}", path.display());
        }
    }
}
